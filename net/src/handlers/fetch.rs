//! Fetch (key 1): reads every requested partition on its owning shard.
//! With less than `min_bytes` there, it long-polls: each owning shard wakes
//! it as soon as an append moves a partition's end past what was read (no
//! timer polling), and it answers at `max_wait_ms` at the latest. An error
//! on any partition answers at once, as Kafka does. Fetch sessions
//! (KIP-227) are declined: the response's session id is 0, so clients send
//! full requests.

use std::time::{Duration, Instant};

use engine::TopicPartition;
use futures::future::{Either, select, select_all};

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};

use super::errors::{NONE, partition_error_code};
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::partition_call::{PartitionOp, PartitionReply};
use crate::frame::{FrameError, Request, encode_response};
use crate::limits::FETCH_BYTES_MAX_PER_REQUEST;

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::Fetch,
    min_version: 4,
    max_version: 12,
};

/// The longest a fetch waits, whatever the client asks.
const MAX_WAIT_MS: i32 = 30_000;

pub async fn handle(shard: &Shard, request: &Request) -> Result<bytes::Bytes, FrameError> {
    let version = request.version();
    let body: FetchRequest = decode_body(request)?;
    let deadline =
        Instant::now() + Duration::from_millis(body.max_wait_ms.clamp(0, MAX_WAIT_MS) as u64);
    let min_bytes = usize::try_from(body.min_bytes).unwrap_or(0);
    loop {
        let pass = read_all(shard, &body).await;
        let answer = pass.total >= min_bytes.max(1)
            || pass.failed
            || pass.seen.is_empty()
            || Instant::now() >= deadline;
        if answer {
            let response = FetchResponse::default()
                .with_error_code(NONE)
                .with_session_id(0)
                .with_responses(pass.topics);
            return encode_response(ApiKey::Fetch, version, request.correlation_id(), &response);
        }
        wait_for_append(shard, pass.seen, deadline).await;
    }
}

/// Waits until an append moves any of the partitions past the end `seen`
/// in the last pass, or until `deadline`.
async fn wait_for_append(shard: &Shard, seen: Vec<(TopicPartition, i64)>, deadline: Instant) {
    let waits = seen.into_iter().map(|(tp, seen)| {
        Box::pin(shard.partition_call(tp, PartitionOp::WaitForAppend { seen, deadline }))
    });
    let timeout = engine::rt::sleep(deadline.saturating_duration_since(Instant::now()));
    if let Either::Left(((Err(e), _, _), _)) = select(select_all(waits), Box::pin(timeout)).await {
        // The next pass reads the partition and reports its error.
        tracing::debug!(error = %e, "long poll ended by an error");
    }
}

/// One pass over every requested partition.
struct Pass {
    topics: Vec<FetchableTopicResponse>,
    /// Record bytes included.
    total: usize,
    /// A partition answered with an error.
    failed: bool,
    /// Each partition read and its high watermark then.
    seen: Vec<(TopicPartition, i64)>,
}

/// Reads every requested partition: at most `max_bytes` in all (never more
/// than the broker's `fetch.max.bytes`, whatever the client asks), or one
/// partition's first batches if they alone are larger.
async fn read_all(shard: &Shard, body: &FetchRequest) -> Pass {
    let mut budget = usize::try_from(body.max_bytes)
        .unwrap_or(0)
        .clamp(1, FETCH_BYTES_MAX_PER_REQUEST);
    let (mut total, mut failed, mut seen) = (0, false, Vec::new());
    let mut topics = Vec::with_capacity(body.topics.len());
    for topic in &body.topics {
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
                },
            )
        });
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for (index, result) in shard.per_partition(&topic.topic.0, ops).await {
            let data = PartitionData::default()
                .with_partition_index(index)
                .with_preferred_read_replica(BrokerId(-1));
            partitions.push(match result {
                Ok(PartitionReply::Read(mut read)) => {
                    // Partitions are read concurrently; in request order, the
                    // first data goes in whatever its size (KIP-74), later
                    // data only while the response stays within max_bytes.
                    if total > 0 && read.records.len() > budget {
                        read.records = bytes::Bytes::new();
                    }
                    total += read.records.len();
                    budget = budget.saturating_sub(read.records.len());
                    let tp = TopicPartition::new(topic.topic.0.as_str(), index);
                    seen.push((tp, read.high_watermark));
                    data.with_error_code(NONE)
                        .with_high_watermark(read.high_watermark)
                        .with_last_stable_offset(read.high_watermark)
                        .with_log_start_offset(read.log_start_offset)
                        .with_aborted_transactions(Some(Vec::new()))
                        .with_records(Some(read.records))
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
                .with_topic(topic.topic.clone())
                .with_partitions(partitions),
        );
    }
    Pass {
        topics,
        total,
        failed,
        seen,
    }
}
