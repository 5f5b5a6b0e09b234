//! What clients are told about brokers and partition leaders: this broker
//! alone when it runs alone, the cluster's metadata when it is a member.

use replication::metadata::{ClusterMetadata, PartitionState, TopicId};
use replication::quorum::NO_LEADER;

use super::Shard;
use super::groups::{OFFSETS_TOPIC, offsets_partition};
use super::transactions::TRANSACTION_TOPIC;
use crate::handlers::errors::COORDINATOR_NOT_AVAILABLE;

/// A broker as Metadata and DescribeCluster list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerView {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// A partition's leadership as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// -1: none right now (LEADER_NOT_AVAILABLE).
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

impl Shard {
    /// True when this broker is a member of a cluster.
    pub fn in_cluster(&self) -> bool {
        self.settings.cluster.is_some()
    }

    /// This broker on `listener` (none if it has no such listener).
    fn this_broker(&self, listener: &str) -> Option<BrokerView> {
        let advertised = self.node.advertised(listener)?;
        Some(BrokerView {
            node_id: self.node.node_id,
            host: advertised.host.clone(),
            port: advertised.port,
        })
    }

    /// The brokers clients of `listener` may use: this one, or the
    /// cluster's unfenced, each at its address on that listener (as Kafka,
    /// a broker without it is left out).
    pub fn live_brokers(&self, metadata: &ClusterMetadata, listener: &str) -> Vec<BrokerView> {
        if !self.in_cluster() {
            return self.this_broker(listener).into_iter().collect();
        }
        metadata
            .brokers()
            .filter(|b| !b.fenced)
            .filter_map(|b| {
                let endpoint = b.endpoints.iter().find(|e| e.name == listener)?;
                Some(BrokerView {
                    node_id: b.broker_id,
                    host: endpoint.host.clone(),
                    port: i32::from(endpoint.port),
                })
            })
            .collect()
    }

    /// The leader, epoch, replicas and ISR of a partition.
    pub fn partition_view(
        &self,
        metadata: &ClusterMetadata,
        topic_id: TopicId,
        partition: i32,
    ) -> PartitionView {
        if !self.in_cluster() {
            let me = self.node.node_id;
            return PartitionView {
                leader: me,
                leader_epoch: 0,
                replicas: vec![me],
                isr: vec![me],
            };
        }
        match metadata.partition(topic_id, partition) {
            Some(state) => PartitionView {
                leader: state.leader,
                leader_epoch: state.leader_epoch,
                replicas: state.replicas.clone(),
                isr: state.isr.clone(),
            },
            None => PartitionView {
                leader: NO_LEADER,
                leader_epoch: 0,
                replicas: Vec::new(),
                isr: Vec::new(),
            },
        }
    }

    /// Whether this broker holds a copy of the partition (every partition
    /// when it runs alone).
    pub fn hosts(&self, metadata: &ClusterMetadata, topic_id: TopicId, partition: i32) -> bool {
        !self.in_cluster()
            || metadata
                .partition(topic_id, partition)
                .is_some_and(|p| p.replicas.contains(&self.node.node_id))
    }

    /// `answer` applied to the cluster's record of `topic`/`partition`
    /// (`None` inside for a partition without one); `None` when the broker
    /// runs alone or does not know the topic.
    pub(super) fn in_partition_record<T>(
        &self,
        topic: &str,
        partition: i32,
        answer: impl FnOnce(Option<&PartitionState>) -> T,
    ) -> Option<T> {
        if !self.in_cluster() {
            return None;
        }
        let metadata = self.metadata();
        let topic = metadata.topic(topic)?;
        Some(answer(metadata.partition(topic.topic_id, partition)))
    }

    /// The partition's leader epoch as Metadata gives it (0 when the broker
    /// runs alone, or for a topic or partition it does not know).
    pub fn leader_epoch_of(&self, tp: &engine::TopicPartition) -> i32 {
        self.in_partition_record(&tp.topic, tp.partition, |p| p.map_or(0, |p| p.leader_epoch))
            .unwrap_or(0)
    }

    /// Whether this broker leads the partition `topic`/`partition`: always
    /// when it runs alone; in a cluster, only when its latest metadata says
    /// so. A topic it does not know is not led here: a restarted broker
    /// knows nothing until it caught up with the metadata log, and its logs
    /// on disk are not its to write meanwhile (they may have moved on
    /// elsewhere; an append here would be acknowledged unreplicated and
    /// later cut away).
    pub fn leads(&self, topic: &str, partition: i32) -> bool {
        if !self.in_cluster() {
            return true;
        }
        let me = self.node.node_id;
        self.in_partition_record(topic, partition, |p| p.is_some_and(|p| p.leader == me))
            .unwrap_or(false)
    }

    /// The broker coordinating `key`: a group (`transaction` false) or a
    /// transactional id, whose state lives in a partition of
    /// `__consumer_offsets` or `__transaction_state` (created if missing):
    /// that partition's leader, at its address on `listener`.
    pub async fn coordinator(
        &self,
        transaction: bool,
        key: &str,
        listener: &str,
    ) -> Result<BrokerView, i16> {
        if !self.in_cluster() {
            // Every partition is here: created when first used.
            return self.this_broker(listener).ok_or(COORDINATOR_NOT_AVAILABLE);
        }
        let (topic, partitions) = if transaction {
            (TRANSACTION_TOPIC, self.txn_topic_partitions().await?)
        } else {
            (OFFSETS_TOPIC, self.offsets_topic_partitions().await?)
        };
        let metadata = self.metadata();
        let Some(topic) = metadata.topic(topic) else {
            return Err(COORDINATOR_NOT_AVAILABLE);
        };
        let partition = offsets_partition(key, partitions);
        let leader = metadata
            .partition(topic.topic_id, partition)
            .map_or(NO_LEADER, |p| p.leader);
        self.live_brokers(&metadata, listener)
            .into_iter()
            .find(|b| b.node_id == leader)
            .ok_or(COORDINATOR_NOT_AVAILABLE)
    }
}
