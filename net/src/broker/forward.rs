//! The HTTP API's appends to and reads of partitions another broker of
//! the cluster leads: sent to that broker's Kafka listener as a Kafka
//! client sends them (Produce with acks=all, Fetch read_committed,
//! ListOffsets), over this shard's peer connections.

use bytes::Bytes;
use engine::TopicPartition;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::Shard;
use crate::handlers::errors::{NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT, UNKNOWN_SERVER_ERROR};

/// The Produce version sent (flexible, topics by name).
const PRODUCE_VERSION: i16 = 9;
/// How long the leader may take to have the batch in sync.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// The Fetch version sent (topics by name, read_committed).
const FETCH_VERSION: i16 = 11;
/// The ListOffsets version sent.
const LIST_OFFSETS_VERSION: i16 = 5;

/// A read from another broker: its records (whole batches), the last
/// stable offset, and the aborted transactions they overlap.
#[derive(Debug)]
pub(crate) struct RemoteRead {
    pub records: Bytes,
    pub last_stable_offset: i64,
    pub aborted: Vec<(i64, i64)>,
}

impl Shard {
    /// The leader of `topic`-`partition` when it is another broker.
    pub(crate) fn led_elsewhere(&self, topic: &str, partition: i32) -> Option<i32> {
        let leader = self
            .in_partition_record(topic, partition, |p| p.map(|p| p.leader))
            .flatten()?;
        (leader >= 0 && leader != self.node.node_id).then_some(leader)
    }

    /// Appends `records` (whole batches) to `tp` at broker `leader` with
    /// acks=all; its answer for the partition (an error code when it is
    /// not alive, does not answer or answers otherwise).
    pub(crate) async fn produce_at(
        &self,
        leader: i32,
        tp: &TopicPartition,
        records: Bytes,
    ) -> PartitionProduceResponse {
        let failed = |code| {
            PartitionProduceResponse::default()
                .with_index(tp.partition)
                .with_error_code(code)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
        };
        let partition = PartitionProduceData::default()
            .with_index(tp.partition)
            .with_records(Some(records));
        let topic = TopicProduceData::default()
            .with_name(topic_name(&tp.topic))
            .with_partition_data(vec![partition]);
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(PRODUCE_TIMEOUT_MS)
            .with_topic_data(vec![topic]);
        let answer: Result<ProduceResponse, i16> = self
            .call_leader(leader, tp, ApiKey::Produce, PRODUCE_VERSION, &request)
            .await;
        match answer {
            Ok(response) => response
                .responses
                .into_iter()
                .flat_map(|t| t.partition_responses)
                .find(|p| p.index == tp.partition)
                .unwrap_or_else(|| failed(UNKNOWN_SERVER_ERROR)),
            Err(code) => failed(code),
        }
    }

    /// Reads `tp` at broker `leader` from `offset` (read_committed), about
    /// `max_bytes` of batches; a Kafka error code when it cannot.
    pub(crate) async fn fetch_at(
        &self,
        leader: i32,
        tp: &TopicPartition,
        offset: i64,
        max_bytes: usize,
    ) -> Result<RemoteRead, i16> {
        let max_bytes = i32::try_from(max_bytes).unwrap_or(i32::MAX);
        let partition = FetchPartition::default()
            .with_partition(tp.partition)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(max_bytes);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_isolation_level(1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name(&tp.topic))
                    .with_partitions(vec![partition]),
            ]);
        let response: FetchResponse = self
            .call_leader(leader, tp, ApiKey::Fetch, FETCH_VERSION, &request)
            .await?;
        let data = response
            .responses
            .into_iter()
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == tp.partition)
            .ok_or(UNKNOWN_SERVER_ERROR)?;
        if data.error_code != 0 {
            return Err(data.error_code);
        }
        Ok(RemoteRead {
            records: data.records.unwrap_or_default(),
            last_stable_offset: data.last_stable_offset,
            aborted: data
                .aborted_transactions
                .unwrap_or_default()
                .into_iter()
                .map(|a| (a.producer_id.0, a.first_offset))
                .collect(),
        })
    }

    /// ListOffsets of `tp` at broker `leader`: -2 the earliest, -1 the
    /// latest (the high watermark), else by time.
    pub(crate) async fn list_offset_at(
        &self,
        leader: i32,
        tp: &TopicPartition,
        timestamp: i64,
    ) -> Result<i64, i16> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(0)
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic_name(&tp.topic))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(tp.partition)
                            .with_timestamp(timestamp),
                    ]),
            ]);
        let response: ListOffsetsResponse = self
            .call_leader(
                leader,
                tp,
                ApiKey::ListOffsets,
                LIST_OFFSETS_VERSION,
                &request,
            )
            .await?;
        let found = response
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == tp.partition)
            .ok_or(UNKNOWN_SERVER_ERROR)?;
        if found.error_code != 0 {
            return Err(found.error_code);
        }
        Ok(found.offset)
    }

    /// Sends `request` about `tp` to broker `leader`'s Kafka listener; its
    /// answer, or NOT_LEADER_OR_FOLLOWER when that broker is not alive and
    /// REQUEST_TIMED_OUT when it does not answer (logged).
    async fn call_leader<Req: Encodable, Resp: Decodable>(
        &self,
        leader: i32,
        tp: &TopicPartition,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, i16> {
        let addr = self.broker_addr(leader).ok_or(NOT_LEADER_OR_FOLLOWER)?;
        self.peers
            .call(&addr, api_key, version, request)
            .await
            .map_err(|e| {
                tracing::info!(%tp.topic, tp.partition, leader, ?api_key, error = %e,
                    "a request sent to the partition's leader failed");
                REQUEST_TIMED_OUT
            })
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}
