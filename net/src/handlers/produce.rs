//! Produce (key 0): every partition's records go to the shard that owns the
//! partition, concurrently; the response waits for all (acks=1 and acks=-1
//! both mean durable on this single node). acks=0 gets no response.

use bytes::Bytes;
use engine::TopicPartition;
use futures::future::join_all;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

use super::errors::{CORRUPT_MESSAGE, INVALID_REQUIRED_ACKS, NONE, partition_error_code};
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::partition_call::{PartitionOp, PartitionReply};
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::Produce,
    // v0-2 are advertised but refused per partition (produce_legacy).
    min_version: 0,
    max_version: 12,
};

/// `Ok(None)`: acks=0, nothing to send back.
pub async fn handle(shard: &Shard, request: &Request) -> Result<Option<Bytes>, FrameError> {
    let version = request.version();
    let body: ProduceRequest = decode_body(request)?;
    let valid_acks = matches!(body.acks, -1..=1);
    let mut topics = Vec::with_capacity(body.topic_data.len());
    for topic in body.topic_data {
        let name = topic.name.0.to_string();
        let calls = topic.partition_data.into_iter().map(|data| {
            let tp = TopicPartition::new(name.clone(), data.index);
            async move {
                (
                    data.index,
                    produce_one(shard, tp, data.records, valid_acks).await,
                )
            }
        });
        let partitions = join_all(calls)
            .await
            .into_iter()
            .map(|(index, response)| response.with_index(index))
            .collect();
        topics.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    if body.acks == 0 {
        return Ok(None);
    }
    let response = ProduceResponse::default().with_responses(topics);
    encode_response(
        ApiKey::Produce,
        version,
        request.correlation_id(),
        &response,
    )
    .map(Some)
}

async fn produce_one(
    shard: &Shard,
    tp: TopicPartition,
    records: Option<Bytes>,
    valid_acks: bool,
) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default()
        .with_base_offset(-1)
        .with_log_append_time_ms(-1);
    if !valid_acks {
        return response.with_error_code(INVALID_REQUIRED_ACKS);
    }
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return response.with_error_code(CORRUPT_MESSAGE);
    };
    match shard
        .partition_call(tp, PartitionOp::Append { records })
        .await
    {
        Ok(PartitionReply::Appended(info)) => response
            .with_error_code(NONE)
            .with_base_offset(info.base_offset.get())
            .with_log_append_time_ms(info.log_append_time)
            .with_log_start_offset(info.log_start_offset.get()),
        Ok(_) => response.with_error_code(super::errors::UNKNOWN_SERVER_ERROR),
        Err(e) => {
            tracing::debug!(error = %e, "produce failed");
            response.with_error_code(partition_error_code(&e))
        }
    }
}
