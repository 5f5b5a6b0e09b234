//! The HTTP API's appends to partitions another broker of the cluster
//! leads: sent to that broker's Kafka listener as a Kafka client sends them
//! (Produce, acks=all), over this shard's peer connections.

use bytes::Bytes;
use engine::TopicPartition;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Shard;
use crate::handlers::errors::{NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT, UNKNOWN_SERVER_ERROR};

/// The Produce version sent (flexible, topics by name).
const PRODUCE_VERSION: i16 = 9;
/// How long the leader may take to have the batch in sync.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;

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
        let Some(addr) = self.broker_addr(leader) else {
            return failed(NOT_LEADER_OR_FOLLOWER);
        };
        let partition = PartitionProduceData::default()
            .with_index(tp.partition)
            .with_records(Some(records));
        let topic = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
            .with_partition_data(vec![partition]);
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(PRODUCE_TIMEOUT_MS)
            .with_topic_data(vec![topic]);
        let answer = self
            .peers
            .call::<_, ProduceResponse>(addr, ApiKey::Produce, PRODUCE_VERSION, &request)
            .await;
        match answer {
            Ok(response) => response
                .responses
                .into_iter()
                .flat_map(|t| t.partition_responses)
                .find(|p| p.index == tp.partition)
                .unwrap_or_else(|| failed(UNKNOWN_SERVER_ERROR)),
            Err(e) => {
                tracing::info!(%tp.topic, tp.partition, leader, error = %e,
                    "a produce forwarded to the partition's leader failed");
                failed(REQUEST_TIMED_OUT)
            }
        }
    }
}
