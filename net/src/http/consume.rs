//! The read side of the HTTP API: `GET /offsets/TOPIC` (each partition's
//! earliest and latest offset) and `GET|POST /fetch` (a partition's
//! committed records from an offset, as JSON: topic, partition, offset,
//! timestamp, key, value, headers), `POST /commit/GROUP` and `GET
//! /committed/GROUP` (a group's offsets, committed as a consumer outside
//! the group protocol commits them). Consuming as a group member is
//! [`super::member`]'s.

use engine::TopicPartition;
use engine::batch::{ValidateMode, codec, records, validate};
use hyper::StatusCode;
use serde::Deserialize;

use super::HttpError;
use crate::broker::Shard;
use crate::broker::partition_call::{PartitionOp, PartitionReply};
use crate::handlers::errors::partition_error_code;

/// What `/fetch` reads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FetchRequest {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// At most about this many bytes of batches (whole batches).
    pub max_bytes: Option<usize>,
}

/// The bytes a fetch reads when the request does not say.
pub(super) const FETCH_BYTES_DEFAULT: usize = 1 << 20;
pub(super) const FETCH_BYTES_MAX: usize = 16 << 20;

fn partitions_of(shard: &Shard, topic: &str) -> Result<i32, HttpError> {
    shard
        .metadata()
        .topic(topic)
        .map(|t| t.partitions)
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::NOT_FOUND,
                "UNKNOWN_TOPIC_OR_PARTITION",
                format!("no topic {topic}"),
            )
        })
}

pub(super) async fn list_offset(
    shard: &Shard,
    tp: TopicPartition,
    timestamp: i64,
) -> Result<i64, HttpError> {
    let context = format!("offsets of {}-{}", tp.topic, tp.partition);
    if let Some(leader) = shard.led_elsewhere(&tp.topic, tp.partition) {
        return shard
            .list_offset_at(leader, &tp, timestamp)
            .await
            .map_err(|code| HttpError::from_kafka(code, context));
    }
    match shard
        .partition_call(
            tp,
            PartitionOp::ListOffset {
                timestamp,
                committed: false,
            },
        )
        .await
    {
        Ok(PartitionReply::Offset(offset, _)) => Ok(offset),
        Ok(_) => Err(HttpError::from_kafka(-1, context)),
        Err(e) => Err(HttpError::from_kafka(partition_error_code(&e), context)),
    }
}

/// The log end (latest offset) of a partition this broker leads, if it is
/// one.
pub(super) async fn log_end(shard: &Shard, topic: &str, partition: i32) -> Option<i64> {
    list_offset(shard, TopicPartition::new(topic, partition), -1)
        .await
        .ok()
}

/// `[{partition, earliest, latest}]` of every partition of `topic`.
pub(super) async fn offsets(shard: &Shard, topic: &str) -> Result<serde_json::Value, HttpError> {
    let partitions = partitions_of(shard, topic)?;
    let mut out = Vec::new();
    for partition in 0..partitions {
        let earliest = list_offset(shard, TopicPartition::new(topic, partition), -2).await?;
        let latest = list_offset(shard, TopicPartition::new(topic, partition), -1).await?;
        out.push(serde_json::json!({
            "partition": partition,
            "earliest": earliest,
            "latest": latest,
        }));
    }
    Ok(serde_json::Value::Array(out))
}

/// The committed records of a partition from an offset.
pub(super) async fn fetch(
    shard: &Shard,
    request: FetchRequest,
) -> Result<serde_json::Value, HttpError> {
    let partitions = partitions_of(shard, &request.topic)?;
    if !(0..partitions).contains(&request.partition) {
        return Err(HttpError::bad_request(
            "UNKNOWN_TOPIC_OR_PARTITION",
            format!(
                "topic {} has partitions 0 to {}, not {}",
                request.topic,
                partitions - 1,
                request.partition
            ),
        ));
    }
    let max_bytes = request
        .max_bytes
        .unwrap_or(FETCH_BYTES_DEFAULT)
        .clamp(1, FETCH_BYTES_MAX);
    let tp = TopicPartition::new(&request.topic, request.partition);
    let read = read_records(shard, tp, request.offset, max_bytes).await?;
    Ok(serde_json::Value::Array(read.records))
}

/// Records read from a partition as JSON, and the offset to read next.
#[derive(Debug)]
pub(super) struct Records {
    pub records: Vec<serde_json::Value>,
    /// Past every batch read (control batches and aborted records too),
    /// never past the last stable offset.
    pub next: i64,
}

/// The committed records of `tp` from `offset`, about `max_bytes` of
/// whole batches.
pub(super) async fn read_records(
    shard: &Shard,
    tp: TopicPartition,
    offset: i64,
    max_bytes: usize,
) -> Result<Records, HttpError> {
    let context = format!("fetching {}-{} at {offset}", tp.topic, tp.partition);
    let (topic, partition) = (tp.topic.clone(), tp.partition);
    let (bytes, stable, mut aborted) = match shard.led_elsewhere(&tp.topic, tp.partition) {
        Some(leader) => {
            let read = shard
                .fetch_at(leader, &tp, offset, max_bytes)
                .await
                .map_err(|code| HttpError::from_kafka(code, context.clone()))?;
            (read.records, read.last_stable_offset, read.aborted)
        }
        None => {
            let op = PartitionOp::Read {
                offset,
                max_bytes,
                committed: true,
            };
            let read = match shard.partition_call(tp, op).await {
                Ok(PartitionReply::Read(read)) => read,
                Ok(_) => return Err(HttpError::from_kafka(-1, context)),
                Err(e) => return Err(HttpError::from_kafka(partition_error_code(&e), context)),
            };
            let aborted = read.aborted.unwrap_or_default();
            (read.records.concat(), read.last_stable_offset, aborted)
        }
    };
    // Aborted transactions skipped as a read_committed consumer skips
    // them: a producer's transactional batches from the transaction's
    // first offset to its marker.
    aborted.sort_by_key(|&(_, first)| std::cmp::Reverse(first));
    let mut aborting = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut next = offset;
    for batch in validate(&bytes, 0, ValidateMode::Stored) {
        let (_, batch) = batch.map_err(|e| HttpError::from_kafka(-1, format!("{context}: {e}")))?;
        let header = batch.header();
        if header.base_offset().get() >= stable {
            break;
        }
        next = next.max(header.last_offset().get().saturating_add(1).min(stable));
        while let Some(&(producer, first)) = aborted.last()
            && first <= header.last_offset().get()
        {
            aborting.insert(producer);
            aborted.pop();
        }
        if header.is_control() {
            aborting.remove(&header.producer_id());
            continue;
        }
        if header.is_transactional() && aborting.contains(&header.producer_id()) {
            continue;
        }
        let compression = header
            .compression()
            .ok_or_else(|| HttpError::from_kafka(-1, format!("{context}: an unknown codec")))?;
        let raw = codec::decompress(
            compression,
            batch.records(),
            engine::limits::DECOMPRESSED_BYTES_MAX,
        )
        .map_err(|e| HttpError::from_kafka(-1, format!("{context}: {e}")))?;
        let base = header.base_offset().get();
        let log_append = header.is_log_append_time();
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        records::for_each_record(&raw, |record| {
            let at = base + i64::from(record.offset_delta);
            if at < offset || at >= stable {
                return;
            }
            let timestamp = if log_append {
                header.max_timestamp()
            } else {
                header.base_timestamp() + record.timestamp_delta
            };
            let headers: Vec<serde_json::Value> = record
                .header_pairs()
                .into_iter()
                .map(|(k, v)| serde_json::json!({"key": text(Some(k)), "value": text(v)}))
                .collect();
            out.push(serde_json::json!({
                "topic": topic,
                "partition": partition,
                "offset": at,
                "timestamp": timestamp,
                "key": text(record.key),
                "value": text(record.value),
                "headers": headers,
            }));
        })
        .map_err(|e| HttpError::from_kafka(-1, format!("{context}: {e}")))?;
    }
    Ok(Records { records: out, next })
}

/// One offset `/commit/GROUP` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Commit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    #[serde(default)]
    pub metadata: String,
}

/// Commits offsets for `group` as a consumer outside the group protocol
/// does (Kafka takes them while the group has no members); answers
/// `[{topic, partition, error}]` (`error` null when committed).
pub(super) async fn commit(
    shard: &Shard,
    group: &str,
    commits: Vec<Commit>,
) -> Result<serde_json::Value, HttpError> {
    use crate::broker::groups::{GroupAnswer, GroupOp};
    use crate::group::{CommittedOffset, OffsetKey};
    let metadata = shard.metadata();
    for c in &commits {
        let known = metadata
            .topic(&c.topic)
            .is_some_and(|t| (0..t.partitions).contains(&c.partition));
        if !known {
            return Err(HttpError::bad_request(
                "UNKNOWN_TOPIC_OR_PARTITION",
                format!("no partition {} of topic {}", c.partition, c.topic),
            ));
        }
    }
    let now = engine::rt::wall_clock_ms();
    let offsets: Vec<(OffsetKey, CommittedOffset)> = commits
        .iter()
        .map(|c| {
            (
                OffsetKey {
                    topic: c.topic.clone(),
                    partition: c.partition,
                },
                CommittedOffset {
                    offset: c.offset,
                    leader_epoch: -1,
                    metadata: c.metadata.clone(),
                    commit_timestamp_ms: now,
                },
            )
        })
        .collect();
    let op = GroupOp::Commit {
        member_id: String::new(),
        instance_id: None,
        generation: -1,
        version: 9,
        offsets,
    };
    let codes = match shard.group_call(group, op).await {
        GroupAnswer::Codes(codes) => codes,
        _ => return Err(HttpError::from_kafka(-1, format!("committing for {group}"))),
    };
    let out = commits
        .iter()
        .zip(codes)
        .map(|(c, code)| {
            let error = (code != 0).then(|| crate::metrics::error_name(code));
            serde_json::json!({"topic": c.topic, "partition": c.partition, "error": error})
        })
        .collect();
    Ok(serde_json::Value::Array(out))
}

/// `[{topic, partition, offset, metadata}]`: every offset `group` committed.
/// Only those of topics `describable` are shown.
pub(super) async fn committed(
    shard: &Shard,
    group: &str,
    describable: impl Fn(&str) -> bool,
) -> Result<serde_json::Value, HttpError> {
    use crate::broker::groups::{GroupAnswer, GroupOp};
    let op = GroupOp::Fetch {
        keys: None,
        require_stable: false,
        member: None,
    };
    let found = match shard.group_call(group, op).await {
        GroupAnswer::Offsets(found) => found,
        GroupAnswer::Codes(codes) => {
            let code = codes.first().copied().unwrap_or(-1);
            return Err(HttpError::from_kafka(code, format!("offsets of {group}")));
        }
        _ => return Err(HttpError::from_kafka(-1, format!("offsets of {group}"))),
    };
    let out = found
        .into_iter()
        .filter(|(key, _, _)| describable(&key.topic))
        .filter_map(|(key, value, _)| {
            value.map(|v| {
                serde_json::json!({
                    "topic": key.topic,
                    "partition": key.partition,
                    "offset": v.offset,
                    "metadata": v.metadata,
                })
            })
        })
        .collect();
    Ok(serde_json::Value::Array(out))
}
