//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3) and
//! the first offset at or after a timestamp, from each partition's owner.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};

use replication::metadata::acl;

use super::errors::{NONE, partition_error_code};
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::partition_call::{PartitionOp, PartitionReply};
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::ListOffsets,
    min_version: 1,
    // v9 (KIP-1005: -5, latest tiered) and v10 (a timeout) answer as v8.
    max_version: 10,
};

/// The leader epoch exists from v4; below it the field must keep its
/// default (-1) or the response cannot be encoded at the client's version.
/// It is the partition's current one (0 for a broker alone): a client
/// validating its position against it (KIP-320) then finds the position
/// within the current epoch, never "truncated" by an epoch too old.
fn leader_epoch(version: i16, current: i32) -> i32 {
    if version >= 4 { current } else { -1 }
}

pub async fn handle(shard: &Shard, request: &Request) -> Result<bytes::Bytes, FrameError> {
    let version = request.version();
    let body: ListOffsetsRequest = decode_body(request)?;
    let mut topics = Vec::with_capacity(body.topics.len());
    for topic in body.topics {
        let ops = topic.partitions.iter().map(|p| {
            (
                p.partition_index,
                PartitionOp::ListOffset {
                    timestamp: p.timestamp,
                    committed: body.isolation_level == 1,
                },
            )
        });
        let partitions = shard
            .per_partition_as(request, acl::operation::DESCRIBE, &topic.name.0, ops)
            .await
            .into_iter()
            .map(|(index, result)| {
                let tp = engine::TopicPartition::new(topic.name.0.to_string(), index);
                let current = shard.leader_epoch_of(&tp);
                let response = ListOffsetsPartitionResponse::default().with_partition_index(index);
                match result {
                    Ok(PartitionReply::Offset(offset, timestamp)) => response
                        .with_error_code(NONE)
                        .with_offset(offset)
                        .with_timestamp(timestamp)
                        // No offset found (-1): no epoch either.
                        .with_leader_epoch(if offset >= 0 {
                            leader_epoch(version, current)
                        } else {
                            -1
                        }),
                    Ok(_) => response.with_error_code(super::errors::UNKNOWN_SERVER_ERROR),
                    Err(e) => response
                        .with_error_code(partition_error_code(&e))
                        .with_offset(-1)
                        .with_timestamp(-1),
                }
            })
            .collect();
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    let response = ListOffsetsResponse::default().with_topics(topics);
    encode_response(
        ApiKey::ListOffsets,
        version,
        request.correlation_id(),
        &response,
    )
}
