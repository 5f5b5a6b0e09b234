//! OffsetForLeaderEpoch (key 23, v2-4): where a leader epoch ended in the
//! partition leader's log (KIP-101, KIP-320). Consumers ask it after a
//! leader change to learn whether the log they read from was truncated;
//! the answer is the largest epoch at or below the asked one and the
//! offset where it ended (for a consumer, at most the high watermark).
//! A broker that runs alone has led every partition at epoch 0 (as its
//! Metadata says).

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use replication::metadata::acl;

use super::errors::{NONE, partition_error_code};
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::partition_call::{PartitionOp, PartitionReply};
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::OffsetForLeaderEpoch,
    min_version: 2,
    max_version: 4,
};

pub async fn handle(shard: &Shard, request: &Request) -> Result<bytes::Bytes, FrameError> {
    let version = request.version();
    let body: OffsetForLeaderEpochRequest = decode_body(request)?;
    // v3+: -1 for a consumer, a broker id for a follower (v2: consumers).
    let consumer = version < 3 || body.replica_id.0 < 0;
    let mut topics = Vec::with_capacity(body.topics.len());
    for topic in body.topics {
        let ops = topic.partitions.iter().map(|p| {
            let op = PartitionOp::EpochEnd {
                current_leader_epoch: p.current_leader_epoch,
                leader_epoch: p.leader_epoch,
                consumer,
            };
            (p.partition, op)
        });
        let partitions = shard
            .per_partition_as(request, acl::operation::DESCRIBE, &topic.topic.0, ops)
            .await
            .into_iter()
            .map(|(index, result)| {
                let answer = EpochEndOffset::default().with_partition(index);
                match result {
                    Ok(PartitionReply::EpochEnd { epoch, end }) => answer
                        .with_error_code(NONE)
                        .with_leader_epoch(epoch)
                        .with_end_offset(end),
                    Ok(_) => answer
                        .with_error_code(super::errors::UNKNOWN_SERVER_ERROR)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1),
                    Err(e) => answer
                        .with_error_code(partition_error_code(&e))
                        .with_leader_epoch(-1)
                        .with_end_offset(-1),
                }
            })
            .collect();
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions),
        );
    }
    let response = OffsetForLeaderEpochResponse::default().with_topics(topics);
    encode_response(
        ApiKey::OffsetForLeaderEpoch,
        version,
        request.correlation_id(),
        &response,
    )
}
