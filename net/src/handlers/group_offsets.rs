//! OffsetCommit (key 8) and OffsetFetch (key 9): committed offsets, kept
//! by each group's coordinator shard in `__consumer_offsets`. A commit is
//! answered once it is durable.

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::{INVALID_GROUP_ID, NONE, UNKNOWN_TOPIC_OR_PARTITION};
use super::group_membership::unexpected;
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::groups::{GroupAnswer, GroupOp};
use crate::frame::{FrameError, Request, encode_response};
use crate::group::{CommittedOffset, OffsetKey};

pub const COMMIT: Handler = Handler {
    api_key: ApiKey::OffsetCommit,
    min_version: 2,
    max_version: 8,
};
pub const FETCH: Handler = Handler {
    api_key: ApiKey::OffsetFetch,
    min_version: 1,
    max_version: 8,
};

/// Kafka's `offset.metadata.max.bytes`.
const METADATA_BYTES_MAX: usize = 4096;
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
/// The first OffsetFetch version that asks for several groups at once.
const MULTI_GROUP_VERSION: i16 = 8;

pub async fn commit(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: OffsetCommitRequest = decode_body(request)?;
    let group_id = body.group_id.0.to_string();
    let metadata = shard.metadata();
    let now = engine::rt::wall_clock_ms();
    // Per partition: its own error (unknown, metadata too large) or a slot
    // in the commit sent to the coordinator.
    let mut results: Vec<(TopicName, Vec<PartitionOutcome>)> = Vec::new();
    let mut offsets = Vec::new();
    for topic in &body.topics {
        let known = metadata.topic(&topic.name.0).map_or(0, |t| t.partitions);
        let mut partitions = Vec::new();
        for p in &topic.partitions {
            let meta = p.committed_metadata.as_deref().unwrap_or_default();
            let own = if group_id.is_empty() {
                Some(INVALID_GROUP_ID)
            } else if !(0..known).contains(&p.partition_index) {
                Some(UNKNOWN_TOPIC_OR_PARTITION)
            } else if meta.len() > METADATA_BYTES_MAX {
                Some(OFFSET_METADATA_TOO_LARGE)
            } else {
                offsets.push((
                    OffsetKey {
                        topic: topic.name.0.to_string(),
                        partition: p.partition_index,
                    },
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: meta.to_string(),
                        commit_timestamp_ms: now,
                    },
                ));
                None
            };
            partitions.push((p.partition_index, own));
        }
        results.push((topic.name.clone(), partitions));
    }
    let codes = if offsets.is_empty() {
        Vec::new()
    } else {
        let op = GroupOp::Commit {
            member_id: body.member_id.to_string(),
            instance_id: body.group_instance_id.map(|i| i.to_string()),
            generation: body.generation_id_or_member_epoch,
            offsets,
        };
        match shard.group_call(&group_id, op).await {
            GroupAnswer::Codes(codes) => codes,
            other => return unexpected(request, &other),
        }
    };
    let mut codes = codes.into_iter();
    let topics = results
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, own)| {
                    let code = own.unwrap_or_else(|| codes.next().unwrap_or(NONE));
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    let response = OffsetCommitResponse::default().with_topics(topics);
    encode_response(
        ApiKey::OffsetCommit,
        version,
        request.correlation_id(),
        &response,
    )
}

/// A partition of a commit: its index, and its own error if it has one
/// (otherwise the coordinator's code applies).
type PartitionOutcome = (i32, Option<i16>);

/// A committed offset as OffsetFetch reports it (-1 and "" when none).
#[derive(Debug)]
struct Committed {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
}

/// One group's committed offsets as asked, by topic; or a group error.
type GroupOffsets = Result<Vec<(String, Vec<Committed>)>, i16>;

async fn fetch_group(
    shard: &Shard,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> GroupOffsets {
    if group_id.is_empty() {
        return Err(INVALID_GROUP_ID);
    }
    let keys = topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|(topic, partitions)| {
                partitions.iter().map(|&partition| OffsetKey {
                    topic: topic.clone(),
                    partition,
                })
            })
            .collect()
    });
    let found = match shard.group_call(group_id, GroupOp::Fetch(keys)).await {
        GroupAnswer::Offsets(found) => found,
        GroupAnswer::Codes(codes) => return Err(codes.first().copied().unwrap_or(NONE)),
        _ => return Err(super::errors::UNKNOWN_SERVER_ERROR),
    };
    let mut by_topic: Vec<(String, Vec<Committed>)> = Vec::new();
    for (key, value) in found {
        let entry = match value {
            Some(v) => Committed {
                partition: key.partition,
                offset: v.offset,
                leader_epoch: v.leader_epoch,
                metadata: v.metadata,
            },
            None => Committed {
                partition: key.partition,
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
            },
        };
        match by_topic.iter_mut().find(|(t, _)| *t == key.topic) {
            Some((_, partitions)) => partitions.push(entry),
            None => by_topic.push((key.topic, vec![entry])),
        }
    }
    Ok(by_topic)
}

/// The response topics of one group's offsets. OffsetFetch v8 nests them
/// under groups in types of their own with the same fields, hence a macro.
macro_rules! offset_topics {
    ($found:expr, $topic:ident, $partition:ident) => {
        $found
            .into_iter()
            .map(|(name, partitions)| {
                $topic::default()
                    .with_name(TopicName(StrBytes::from_string(name)))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|c: Committed| {
                                $partition::default()
                                    .with_partition_index(c.partition)
                                    .with_committed_offset(c.offset)
                                    .with_committed_leader_epoch(c.leader_epoch)
                                    .with_metadata(Some(StrBytes::from_string(c.metadata)))
                                    .with_error_code(NONE)
                            })
                            .collect(),
                    )
            })
            .collect()
    };
}

pub async fn fetch(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: OffsetFetchRequest = decode_body(request)?;
    let response = if version >= MULTI_GROUP_VERSION {
        let mut groups = Vec::with_capacity(body.groups.len());
        for group in body.groups {
            let topics = group.topics.map(|topics| {
                topics
                    .into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            let entry = OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
            groups.push(match fetch_group(shard, &group.group_id.0, topics).await {
                Err(code) => entry.with_error_code(code),
                Ok(found) => entry.with_error_code(NONE).with_topics(offset_topics!(
                    found,
                    OffsetFetchResponseTopics,
                    OffsetFetchResponsePartitions
                )),
            });
        }
        OffsetFetchResponse::default().with_groups(groups)
    } else {
        let topics = body.topics.map(|topics| {
            topics
                .into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        match fetch_group(shard, &body.group_id.0, topics).await {
            Err(code) => OffsetFetchResponse::default().with_error_code(code),
            Ok(found) => OffsetFetchResponse::default()
                .with_error_code(NONE)
                .with_topics(offset_topics!(
                    found,
                    OffsetFetchResponseTopic,
                    OffsetFetchResponsePartition
                )),
        }
    };
    encode_response(
        ApiKey::OffsetFetch,
        version,
        request.correlation_id(),
        &response,
    )
}
