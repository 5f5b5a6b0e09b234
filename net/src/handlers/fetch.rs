//! Fetch (key 1): reads every requested partition on its owning shard.
//! With less than `min_bytes` there, it long-polls: each owning shard wakes
//! it as soon as an append moves a partition's end past what was read (no
//! timer polling), and it answers at `max_wait_ms` at the latest. An error
//! on any partition answers at once, as Kafka does. A client may open a
//! fetch session (KIP-227, `fetch_session`): its later requests name only
//! what changed, and its responses carry only the partitions with news.
//! From v13 topics are named by id (KIP-516); an unknown id gets
//! UNKNOWN_TOPIC_ID.

use std::time::{Duration, Instant};

use engine::TopicPartition;

use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use replication::metadata::TopicId;

use replication::metadata::acl;

use super::errors::{NONE, TOPIC_AUTHORIZATION_FAILED, UNKNOWN_TOPIC_ID, partition_error_code};
use super::fetch_session::Context;
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::partition_call::{PartitionOp, PartitionReply};
use crate::frame::{FrameError, Request};
use crate::limits::FETCH_BYTES_MAX_PER_REQUEST;
use crate::rope::{RecordSlices, Splicer};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::Fetch,
    min_version: 4,
    // v17 and v18 add replica-fetching fields (tagged) only.
    max_version: 18,
};

/// The longest a fetch waits, whatever the client asks.
const MAX_WAIT_MS: i32 = 30_000;

/// The response frame as buffers to send in order: record bytes are not
/// copied into it (`rope`).
pub async fn handle(shard: &Shard, request: &Request) -> Result<Vec<bytes::Bytes>, FrameError> {
    let version = request.version();
    let mut body: FetchRequest = decode_body(request)?;
    let deadline =
        Instant::now() + Duration::from_millis(body.max_wait_ms.clamp(0, MAX_WAIT_MS) as u64);
    let min_bytes = usize::try_from(body.min_bytes).unwrap_or(0);
    let context = shard.fetch_sessions.borrow_mut().begin(&mut body, version);
    if let Context::Error(code) = context {
        let response = FetchResponse::default().with_error_code(code);
        return Splicer::default().encode(
            ApiKey::Fetch,
            version,
            request.correlation_id(),
            &response,
        );
    }
    loop {
        let mut pass = read_all(shard, request, &body, version).await;
        let answer = pass.total >= min_bytes.max(1)
            || pass.failed
            || pass.seen.is_empty()
            || Instant::now() >= deadline;
        if answer {
            let mut sessions = shard.fetch_sessions.borrow_mut();
            let session_id = match context {
                Context::Full => sessions.open(&body, version, &pass.topics),
                Context::Incremental(id) => {
                    sessions.answered(id, &mut pass.topics);
                    id
                }
                Context::Sessionless | Context::Error(_) => 0,
            };
            drop(sessions);
            let response = FetchResponse::default()
                .with_error_code(NONE)
                .with_session_id(session_id)
                .with_responses(pass.topics);
            return pass.records.encode(
                ApiKey::Fetch,
                version,
                request.correlation_id(),
                &response,
            );
        }
        shard.wait_for_appends(pass.waits(), deadline).await;
    }
}

/// One pass over every requested partition.
struct Pass {
    topics: Vec<FetchableTopicResponse>,
    /// The records the topics' fields stand in for.
    records: Splicer,
    /// Record bytes included.
    total: usize,
    /// A partition answered with an error.
    failed: bool,
    /// Each partition read (its topic's place in `topics`, its number) and
    /// its high watermark then.
    seen: Vec<(usize, i32, i64)>,
}

impl Pass {
    /// What a long poll waits on: every partition read, past the high
    /// watermark it had (named only now: most passes are answered).
    fn waits(&self) -> Vec<(TopicPartition, i64)> {
        self.seen
            .iter()
            .filter_map(|&(topic, partition, seen)| {
                let name = &self.topics.get(topic)?.topic.0;
                Some((TopicPartition::new(name.as_str(), partition), seen))
            })
            .collect()
    }
}

/// The first version that names topics by id (KIP-516).
const TOPIC_ID_VERSION: i16 = 13;

/// A topic id this broker does not know: UNKNOWN_TOPIC_ID on each of its
/// partitions, as Kafka answers (the client refreshes its metadata).
fn unknown_topic_id(topic: &FetchTopic) -> FetchableTopicResponse {
    failed_topic(topic, UNKNOWN_TOPIC_ID)
}

/// `topic`'s partitions, each answered `code`.
fn failed_topic(topic: &FetchTopic, code: i16) -> FetchableTopicResponse {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            PartitionData::default()
                .with_partition_index(p.partition)
                .with_error_code(code)
                .with_high_watermark(-1)
                .with_preferred_read_replica(BrokerId(-1))
        })
        .collect();
    FetchableTopicResponse::default()
        .with_topic(topic.topic.clone())
        .with_topic_id(topic.topic_id)
        .with_partitions(partitions)
}

/// Reads every requested partition: at most `max_bytes` in all (never more
/// than the broker's `fetch.max.bytes`, whatever the client asks), or one
/// partition's first batches if they alone are larger.
async fn read_all(shard: &Shard, request: &Request, body: &FetchRequest, version: i16) -> Pass {
    let mut budget = usize::try_from(body.max_bytes)
        .unwrap_or(0)
        .clamp(1, FETCH_BYTES_MAX_PER_REQUEST);
    let (mut total, mut failed, mut seen) = (0, false, Vec::new());
    let mut topics = Vec::with_capacity(body.topics.len());
    let mut records = Splicer::default();
    let metadata = shard.metadata();
    for topic in &body.topics {
        // v13+ (KIP-516) names topics by id only.
        let name = if version >= TOPIC_ID_VERSION {
            match metadata.topic_by_id(TopicId(topic.topic_id.into_bytes())) {
                Some(found) => TopicName(StrBytes::from_string(found.name.clone())),
                None => {
                    failed = true;
                    topics.push(unknown_topic_id(topic));
                    continue;
                }
            }
        } else {
            topic.topic.clone()
        };
        if !shard.allowed_topic(request, acl::operation::READ, &name.0) {
            failed = true;
            topics.push(failed_topic(topic, TOPIC_AUTHORIZATION_FAILED));
            continue;
        }
        let ops = topic.partitions.iter().map(|p| {
            let max_bytes = usize::try_from(p.partition_max_bytes)
                .unwrap_or(0)
                .min(budget)
                .max(1);
            (
                p.partition,
                PartitionOp::Read {
                    offset: p.fetch_offset,
                    max_bytes,
                    committed: body.isolation_level == 1,
                },
            )
        });
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for (index, result) in shard.per_partition(&name.0, ops).await {
            let data = PartitionData::default()
                .with_partition_index(index)
                .with_preferred_read_replica(BrokerId(-1));
            partitions.push(match result {
                Ok(PartitionReply::Read(mut read)) => {
                    // Partitions are read concurrently; in request order, the
                    // first data goes in whatever its size (KIP-74), later
                    // data only while the response stays within max_bytes.
                    if total > 0 && read.records.len() > budget {
                        read.records = RecordSlices::default();
                    }
                    total += read.records.len();
                    budget = budget.saturating_sub(read.records.len());
                    crate::metrics::record_fetched(&name.0, read.records.len());
                    seen.push((topics.len(), index, read.high_watermark));
                    data.with_error_code(NONE)
                        .with_high_watermark(read.high_watermark)
                        .with_last_stable_offset(read.last_stable_offset)
                        .with_log_start_offset(read.log_start_offset)
                        // As Kafka: null for read_uncommitted; for
                        // read_committed the aborted transactions in range.
                        .with_aborted_transactions(read.aborted.map(|list| {
                            list.into_iter()
                                .map(|(producer_id, first_offset)| {
                                    AbortedTransaction::default()
                                        .with_producer_id(ProducerId(producer_id))
                                        .with_first_offset(first_offset)
                                })
                                .collect()
                        }))
                        .with_records(Some(records.field(read.records)))
                }
                Ok(_) => {
                    failed = true;
                    data.with_error_code(super::errors::UNKNOWN_SERVER_ERROR)
                }
                Err(e) => {
                    failed = true;
                    data.with_error_code(partition_error_code(&e))
                        .with_high_watermark(-1)
                }
            });
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(name)
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    Pass {
        topics,
        records,
        total,
        failed,
        seen,
    }
}
