//! Transactions across the brokers of a cluster, as Kafka's brokers do
//! them over their Kafka listeners:
//! 1. A transaction coordinator writes the markers of the partitions led
//!    by another broker with one WriteTxnMarkers request to that broker
//!    (`handlers::transactions::write_markers` answers it, writing each
//!    marker as the coordinator's own are: acks=all); its own partitions'
//!    through partition calls.
//! 2. A partition leader checks a transactional batch opening a
//!    transaction (KIP-890) with AddPartitionsToTxn verify_only at the
//!    transactional id's coordinator when that is another broker.

use std::net::{IpAddr, SocketAddr};

use engine::TopicPartition;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, TopicName,
    TransactionalId, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::Shard;
use super::partition_call::{PartitionError, PartitionOp};
use crate::handlers::errors::{
    COORDINATOR_NOT_AVAILABLE, NONE, NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
};
use crate::server::peer::PeerAddress;
use crate::txn::Markers;

/// WriteTxnMarkers' only version (Kafka 4).
const WRITE_MARKERS_VERSION: i16 = 1;
/// AddPartitionsToTxn's broker-to-broker version (KIP-890).
const VERIFY_VERSION: i16 = 5;

impl Shard {
    /// The inter-broker listener of live broker `node_id`, as it
    /// advertises it.
    pub(super) fn broker_addr(&self, node_id: i32) -> Option<PeerAddress> {
        let broker = self
            .live_brokers(&self.metadata(), &self.node.inter_broker_listener)
            .into_iter()
            .find(|b| b.node_id == node_id)?;
        let port = u16::try_from(broker.port).ok()?;
        let addr = match broker.host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            // A name: resolved by the system (brokers usually advertise
            // addresses; a name is looked up once per marker write).
            Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(broker.host.as_str(), port))
                .ok()?
                .next()?,
        };
        Some(PeerAddress {
            host: broker.host.clone(),
            addr,
        })
    }

    /// Writes the markers of a decided transaction to each of its
    /// partitions, at their leaders; returns the partitions not written
    /// (to retry), with why. A partition deleted meanwhile needs none.
    pub(super) async fn write_markers(
        &self,
        markers: &Markers,
        partitions: &[(String, i32)],
    ) -> Vec<(TopicPartition, String)> {
        let mut here = Vec::new();
        let mut elsewhere: std::collections::BTreeMap<i32, Vec<TopicPartition>> =
            std::collections::BTreeMap::new();
        for (topic, partition) in partitions {
            let tp = TopicPartition::new(topic.clone(), *partition);
            let leader = self.in_partition_record(topic, *partition, |p| p.map(|p| p.leader));
            match leader {
                // Alone, or a topic gone: the partition call says which.
                None | Some(None) => here.push(tp),
                Some(Some(leader)) if leader == self.node.node_id => here.push(tp),
                Some(Some(leader)) => elsewhere.entry(leader).or_default().push(tp),
            }
        }
        let coordinator_epoch = self.coordinator_epoch(&markers.transactional_id);
        let local = here.into_iter().map(|tp| async move {
            let op = PartitionOp::WriteMarker {
                producer_id: markers.producer_id,
                epoch: markers.epoch,
                commit: markers.commit,
                coordinator_epoch,
            };
            match self.partition_call(tp.clone(), op).await {
                Ok(_) | Err(PartitionError::UnknownPartition) => Vec::new(),
                Err(e) => vec![(tp, e.to_string())],
            }
        });
        let remote = elsewhere
            .into_iter()
            .map(|(leader, tps)| self.write_markers_at(leader, markers, coordinator_epoch, tps));
        let local = futures::future::join_all(local);
        let remote = futures::future::join_all(remote);
        let (local, remote) = futures::future::join(local, remote).await;
        local.into_iter().chain(remote).flatten().collect()
    }

    /// One WriteTxnMarkers request to broker `leader` for `tps`; the ones
    /// it did not write.
    async fn write_markers_at(
        &self,
        leader: i32,
        markers: &Markers,
        coordinator_epoch: i32,
        tps: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, String)> {
        let failed_all = |tps: Vec<TopicPartition>, why: String| {
            tps.into_iter().map(|tp| (tp, why.clone())).collect()
        };
        let Some(addr) = self.broker_addr(leader) else {
            return failed_all(tps, format!("broker {leader} is not alive"));
        };
        let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
        for tp in &tps {
            match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
                Some(topic) => topic.partition_indexes.push(tp.partition),
                None => topics.push(
                    WritableTxnMarkerTopic::default()
                        .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                        .with_partition_indexes(vec![tp.partition]),
                ),
            }
        }
        let request = WriteTxnMarkersRequest::default().with_markers(vec![
            WritableTxnMarker::default()
                .with_producer_id(ProducerId(markers.producer_id))
                .with_producer_epoch(markers.epoch)
                .with_transaction_result(markers.commit)
                .with_topics(topics)
                .with_coordinator_epoch(coordinator_epoch),
        ]);
        let response: WriteTxnMarkersResponse = match self
            .peers
            .call(
                &addr,
                ApiKey::WriteTxnMarkers,
                WRITE_MARKERS_VERSION,
                &request,
            )
            .await
        {
            Ok(response) => response,
            Err(e) => return failed_all(tps, format!("WriteTxnMarkers to broker {leader}: {e}")),
        };
        let codes: Vec<(String, i32, i16)> = response
            .markers
            .iter()
            .flat_map(|m| &m.topics)
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
            })
            .collect();
        tps.into_iter()
            .filter_map(|tp| {
                let code = codes
                    .iter()
                    .find(|(topic, partition, _)| *topic == tp.topic && *partition == tp.partition)
                    .map_or(NOT_LEADER_OR_FOLLOWER, |&(_, _, code)| code);
                (code != NONE && code != UNKNOWN_TOPIC_OR_PARTITION)
                    .then(|| (tp, format!("broker {leader} answered error {code}")))
            })
            .collect()
    }

    /// Whether `producer_id`'s transaction (at `epoch`) of
    /// `transactional_id` has partition `tp` (KIP-890): asked of its
    /// coordinator, here or on another broker of the cluster; the
    /// coordinator's code for the partition (NONE when it has it).
    pub(crate) async fn verify_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        tp: &TopicPartition,
    ) -> i16 {
        use super::transactions::{TxnAnswer, TxnOp};
        use crate::handlers::errors::{INVALID_TXN_STATE, NOT_COORDINATOR};
        let op = TxnOp::Verify {
            producer_id,
            epoch,
            partitions: vec![(tp.topic.clone(), tp.partition)],
        };
        // Boxed: the coordinator writes markers through partition calls.
        let verified: futures::future::LocalBoxFuture<'_, TxnAnswer> =
            Box::pin(self.txn_call(transactional_id, op));
        match verified.await {
            TxnAnswer::Codes(codes) if codes == [NOT_COORDINATOR] && self.in_cluster() => {
                self.verify_at_coordinator(transactional_id, producer_id, epoch, tp)
                    .await
            }
            TxnAnswer::Codes(codes) if let [code] = codes[..] => code,
            answer => {
                tracing::debug!(partition = %tp, ?answer, "unexpected answer to a transaction check");
                INVALID_TXN_STATE
            }
        }
    }

    /// KIP-890's check of a transactional batch for `tp`, at the
    /// coordinator of `transactional_id` on another broker: its code for
    /// the partition (NONE when the transaction has it).
    async fn verify_at_coordinator(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        tp: &TopicPartition,
    ) -> i16 {
        let coordinator = match self
            .coordinator(true, transactional_id, &self.node.inter_broker_listener)
            .await
        {
            Ok(coordinator) => coordinator,
            Err(code) => return code,
        };
        let Some(addr) = self.broker_addr(coordinator.node_id) else {
            return COORDINATOR_NOT_AVAILABLE;
        };
        let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(
                    transactional_id.to_string(),
                )))
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch)
                .with_verify_only(true)
                .with_topics(vec![
                    AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                        .with_partitions(vec![tp.partition]),
                ]),
        ]);
        let response: AddPartitionsToTxnResponse = match self
            .peers
            .call(&addr, ApiKey::AddPartitionsToTxn, VERIFY_VERSION, &request)
            .await
        {
            Ok(response) => response,
            Err(e) => {
                tracing::info!(transactional_id, partition = %tp, error = %e, "cannot verify with the coordinator");
                return COORDINATOR_NOT_AVAILABLE;
            }
        };
        if response.error_code != NONE {
            return response.error_code;
        }
        response
            .results_by_transaction
            .iter()
            .flat_map(|r| &r.topic_results)
            .flat_map(|t| &t.results_by_partition)
            .map(|p| p.partition_error_code)
            .next()
            .unwrap_or(COORDINATOR_NOT_AVAILABLE)
    }
}
