//! OffsetCommit (key 8), OffsetFetch (key 9) and TxnOffsetCommit (key 28):
//! committed offsets, kept by each group's coordinator shard in
//! `__consumer_offsets`. A commit is answered once it is durable.

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;

use replication::metadata::acl;

use super::errors::{
    GROUP_AUTHORIZATION_FAILED, INVALID_GROUP_ID, INVALID_REQUEST, NONE,
    TOPIC_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, UNKNOWN_TOPIC_OR_PARTITION,
};
use super::group_membership::unexpected;
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::groups::{GroupAnswer, GroupOp};
use crate::frame::{FrameError, Request, encode_response};
use crate::group::{CommittedOffset, OffsetKey};

pub const COMMIT: Handler = Handler {
    api_key: ApiKey::OffsetCommit,
    min_version: 2,
    max_version: 9,
};
/// v9 names the member and its epoch (KIP-848's consumer groups check
/// them).
pub const FETCH: Handler = Handler {
    api_key: ApiKey::OffsetFetch,
    min_version: 1,
    max_version: 9,
};
/// v5 is KIP-890's second part (transaction.version 2), not served.
pub const TXN_COMMIT: Handler = Handler {
    api_key: ApiKey::TxnOffsetCommit,
    min_version: 0,
    max_version: 4,
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
    let topics = body.topics.into_iter().map(|t| {
        let partitions = t.partitions.into_iter().map(|p| OffsetToCommit {
            partition: p.partition_index,
            offset: p.committed_offset,
            leader_epoch: p.committed_leader_epoch,
            metadata: p.committed_metadata,
        });
        (t.name, partitions.collect())
    });
    let (results, offsets) = check_offsets(shard, request, &group_id, topics.collect());
    let codes = if offsets.is_empty() {
        Vec::new()
    } else {
        let op = GroupOp::Commit {
            member_id: body.member_id.to_string(),
            instance_id: body.group_instance_id.map(|i| i.to_string()),
            generation: body.generation_id_or_member_epoch,
            version,
            offsets,
        };
        match shard.group_call(&group_id, op).await {
            GroupAnswer::Codes(codes) => codes,
            other => return unexpected(request, &other),
        }
    };
    let topics = per_partition(results, codes, |name, partitions| {
        let partitions = partitions
            .into_iter()
            .map(|(index, code)| {
                OffsetCommitResponsePartition::default()
                    .with_partition_index(index)
                    .with_error_code(code)
            })
            .collect();
        OffsetCommitResponseTopic::default()
            .with_name(name)
            .with_partitions(partitions)
    });
    let response = OffsetCommitResponse::default().with_topics(topics);
    encode_response(
        ApiKey::OffsetCommit,
        version,
        request.correlation_id(),
        &response,
    )
}

/// TxnOffsetCommit (key 28): offsets committed inside a transaction, held
/// by the group's coordinator until the transaction's marker reaches the
/// group's `__consumer_offsets` partition (visible on commit, dropped on
/// abort).
pub async fn txn_commit(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: TxnOffsetCommitRequest = decode_body(request)?;
    let group_id = body.group_id.0.to_string();
    let transaction = (
        body.transactional_id.0.to_string(),
        body.producer_id.0,
        body.producer_epoch,
    );
    let topics = body.topics.into_iter().map(|t| {
        let partitions = t.partitions.into_iter().map(|p| OffsetToCommit {
            partition: p.partition_index,
            offset: p.committed_offset,
            leader_epoch: p.committed_leader_epoch,
            metadata: p.committed_metadata,
        });
        (t.name, partitions.collect())
    });
    // ACLs as Kafka checks them: Write on the transactional id before
    // anything else (every partition refused), then the group and topics.
    let txn_denied =
        !shard.allowed_transactional_id(request, acl::operation::WRITE, &transaction.0);
    let (mut results, offsets) = check_offsets(shard, request, &group_id, topics.collect());
    if txn_denied {
        for (_, partitions) in &mut results {
            for (_, own) in partitions.iter_mut() {
                *own = Some(TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
            }
        }
    }
    let codes = if offsets.is_empty() || txn_denied {
        Vec::new()
    } else if transaction.0.is_empty() {
        vec![INVALID_REQUEST; offsets.len()]
    } else if let Err(code) = offsets_in_transaction(shard, &transaction, &group_id).await {
        vec![code; offsets.len()]
    } else {
        let op = GroupOp::TxnCommit {
            producer_id: body.producer_id.0,
            epoch: body.producer_epoch,
            member_id: body.member_id.to_string(),
            instance_id: body.group_instance_id.map(|i| i.to_string()),
            generation: body.generation_id,
            offsets,
        };
        match shard.group_call(&group_id, op).await {
            GroupAnswer::Codes(codes) => codes,
            other => return unexpected(request, &other),
        }
    };
    let topics = per_partition(results, codes, |name, partitions| {
        let partitions = partitions
            .into_iter()
            .map(|(index, code)| {
                TxnOffsetCommitResponsePartition::default()
                    .with_partition_index(index)
                    .with_error_code(code)
            })
            .collect();
        TxnOffsetCommitResponseTopic::default()
            .with_name(name)
            .with_partitions(partitions)
    });
    let response = TxnOffsetCommitResponse::default().with_topics(topics);
    encode_response(
        ApiKey::TxnOffsetCommit,
        version,
        request.correlation_id(),
        &response,
    )
}

/// Whether the group's `__consumer_offsets` partition is in the producer's
/// transaction (AddOffsetsToTxn came first): offsets outside one would be
/// held for a marker that never comes. PRODUCER_FENCED and
/// INVALID_PRODUCER_ID_MAPPING pass through, a coordinator that cannot be
/// asked is COORDINATOR_NOT_AVAILABLE (retried); anything else is
/// INVALID_TXN_STATE.
async fn offsets_in_transaction(
    shard: &Shard,
    (transactional_id, producer_id, epoch): &(String, i64, i16),
    group_id: &str,
) -> Result<(), i16> {
    use super::errors::{
        COORDINATOR_NOT_AVAILABLE, INVALID_PRODUCER_ID_MAPPING, INVALID_TXN_STATE, NOT_COORDINATOR,
        PRODUCER_FENCED,
    };
    use crate::broker::groups::{OFFSETS_TOPIC, offsets_partition};
    let partitions = shard.offsets_topic_partitions().await?;
    let tp = engine::TopicPartition::new(OFFSETS_TOPIC, offsets_partition(group_id, partitions));
    // Its coordinator may be another broker of the cluster.
    match shard
        .verify_transaction(transactional_id, *producer_id, *epoch, &tp)
        .await
    {
        NONE => Ok(()),
        code @ (PRODUCER_FENCED | INVALID_PRODUCER_ID_MAPPING) => Err(code),
        // The transaction's coordinator moving or unreachable: retried.
        COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR => Err(COORDINATOR_NOT_AVAILABLE),
        _ => Err(INVALID_TXN_STATE),
    }
}

/// One partition's offset as a commit request carries it.
struct OffsetToCommit {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: Option<StrBytes>,
}

/// Checks each partition of a commit on its own (unknown, metadata too
/// large); the others become the offsets sent to the coordinator, in order.
fn check_offsets(
    shard: &Shard,
    request: &Request,
    group_id: &str,
    topics: Vec<(TopicName, Vec<OffsetToCommit>)>,
) -> (Outcomes, Vec<(OffsetKey, CommittedOffset)>) {
    let metadata = shard.metadata();
    let now = engine::rt::wall_clock_ms();
    let mut results = Vec::with_capacity(topics.len());
    let mut offsets = Vec::new();
    // ACLs: Read on the group, then on each topic.
    let group_denied = !shard.allowed_group(request, acl::operation::READ, group_id);
    for (name, requested) in topics {
        let known = metadata.topic(&name.0).map_or(0, |t| t.partitions);
        let topic_denied = !shard.allowed_topic(request, acl::operation::READ, &name.0);
        let mut partitions = Vec::with_capacity(requested.len());
        for p in requested {
            let meta = p.metadata.as_deref().unwrap_or_default();
            let own = if group_denied {
                Some(GROUP_AUTHORIZATION_FAILED)
            } else if topic_denied {
                Some(TOPIC_AUTHORIZATION_FAILED)
            } else if group_id.is_empty() {
                Some(INVALID_GROUP_ID)
            } else if !(0..known).contains(&p.partition) {
                Some(UNKNOWN_TOPIC_OR_PARTITION)
            } else if meta.len() > METADATA_BYTES_MAX {
                Some(OFFSET_METADATA_TOO_LARGE)
            } else {
                offsets.push((
                    OffsetKey {
                        topic: name.0.to_string(),
                        partition: p.partition,
                    },
                    CommittedOffset {
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        metadata: meta.to_string(),
                        commit_timestamp_ms: now,
                    },
                ));
                None
            };
            partitions.push((p.partition, own));
        }
        results.push((name, partitions));
    }
    (results, offsets)
}

/// The response topics of a commit: each partition's own error, or the
/// coordinator's code for it (`codes` in the order the offsets were sent).
fn per_partition<T>(
    results: Outcomes,
    codes: Vec<i16>,
    topic: impl Fn(TopicName, Vec<(i32, i16)>) -> T,
) -> Vec<T> {
    let mut codes = codes.into_iter();
    results
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, own)| (index, own.unwrap_or_else(|| codes.next().unwrap_or(NONE))))
                .collect();
            topic(name, partitions)
        })
        .collect()
}

/// A partition of a commit: its index, and its own error if it has one
/// (otherwise the coordinator's code applies).
type PartitionOutcome = (i32, Option<i16>);
/// Every partition of a commit, by topic.
type Outcomes = Vec<(TopicName, Vec<PartitionOutcome>)>;

/// A committed offset as OffsetFetch reports it (-1 and "" when none).
#[derive(Debug)]
struct Committed {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    error: i16,
}

/// One group's committed offsets as asked, by topic; or a group error.
type GroupOffsets = Result<Vec<(String, Vec<Committed>)>, i16>;

async fn fetch_group(
    shard: &Shard,
    request: &Request,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
    member: Option<(String, i32)>,
) -> GroupOffsets {
    if group_id.is_empty() {
        return Err(INVALID_GROUP_ID);
    }
    // ACLs: Describe on the group; on each topic (all of a group's: the
    // topics the principal may describe; named: the others refused).
    if !shard.allowed_group(request, acl::operation::DESCRIBE, group_id) {
        return Err(GROUP_AUTHORIZATION_FAILED);
    }
    let every_topic = topics.is_none();
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
    let op = GroupOp::Fetch {
        keys,
        require_stable,
        member,
    };
    let found = match shard.group_call(group_id, op).await {
        GroupAnswer::Offsets(found) => found,
        GroupAnswer::Codes(codes) => return Err(codes.first().copied().unwrap_or(NONE)),
        _ => return Err(super::errors::UNKNOWN_SERVER_ERROR),
    };
    let mut by_topic: Vec<(String, Vec<Committed>)> = Vec::new();
    for (key, value, error) in found {
        let (value, error) = if shard.allowed_topic(request, acl::operation::DESCRIBE, &key.topic) {
            (value, error)
        } else if every_topic {
            continue;
        } else {
            (None, TOPIC_AUTHORIZATION_FAILED)
        };
        let entry = match value {
            Some(v) => Committed {
                partition: key.partition,
                offset: v.offset,
                leader_epoch: v.leader_epoch,
                metadata: v.metadata,
                error,
            },
            None => Committed {
                partition: key.partition,
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
                error,
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
                                    .with_error_code(c.error)
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
            let member = group
                .member_id
                .map(|id| (id.to_string(), group.member_epoch));
            let fetched = fetch_group(
                shard,
                request,
                &group.group_id.0,
                topics,
                body.require_stable,
                member,
            )
            .await;
            groups.push(match fetched {
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
        match fetch_group(
            shard,
            request,
            &body.group_id.0,
            topics,
            body.require_stable,
            None,
        )
        .await
        {
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
