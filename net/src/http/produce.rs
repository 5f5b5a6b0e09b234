//! The HTTP produce API (Upstash's REST shape): `GET /produce/TOPIC/MESSAGE
//! ?key=KEY`; `GET|POST /produce/TOPIC` with a JSON message `{partition?,
//! timestamp?, key?, value, headers?: [{key, value}]}` or an array of them;
//! `GET|POST /produce` with an array of messages that each name their
//! `topic`. Each message becomes a record batch appended as a Produce with
//! acks=all would be (durable, and in sync on a replicated partition), and
//! is answered `{topic, partition, offset, timestamp}` (an array for an
//! array). A message's partition: the one it names, else its key's
//! (murmur2, as the Java client), else the next one round-robin.

use std::cell::Cell;

use bytes::Bytes;
use engine::TopicPartition;
use engine::batch::builder::{BatchSpec, Record, encode_batch, encode_records};
use hyper::StatusCode;
use serde::Deserialize;

use super::HttpError;
use crate::broker::Shard;
use crate::handlers::produce::{finish_one, stage_one};

/// One message as the API takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Message {
    pub topic: Option<String>,
    pub partition: Option<i32>,
    pub timestamp: Option<i64>,
    pub key: Option<String>,
    pub value: Option<String>,
    #[serde(default)]
    pub headers: Vec<Header>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Header {
    pub key: String,
    pub value: Option<String>,
}

/// A body: one message or an array of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Body {
    One(Message),
    Many(Vec<Message>),
}

thread_local! {
    /// The next partition of keyless messages without one (round-robin).
    static NEXT: Cell<u32> = const { Cell::new(0) };
}

/// Produces `messages` to `topic` (or each to its own `topic`); the answer
/// per message, in order. Bad input refuses the whole request before
/// anything is written; a write that fails is that message's error.
pub(super) async fn produce(
    shard: &Shard,
    topic: Option<&str>,
    messages: Vec<Message>,
) -> Result<Vec<Result<serde_json::Value, HttpError>>, HttpError> {
    let metadata = shard.metadata();
    let mut planned = Vec::with_capacity(messages.len());
    for message in messages {
        let name = match (topic, message.topic.as_deref()) {
            (Some(path), Some(named)) if path != named => {
                return Err(HttpError::bad_request(
                    "INVALID_REQUEST",
                    format!("the message names topic {named}, the path {path}"),
                ));
            }
            (Some(t), _) | (None, Some(t)) => t.to_string(),
            (None, None) => {
                return Err(HttpError::bad_request(
                    "INVALID_REQUEST",
                    "each message of /produce names its topic",
                ));
            }
        };
        let Some(described) = metadata.topic(&name) else {
            return Err(HttpError::new(
                StatusCode::NOT_FOUND,
                "UNKNOWN_TOPIC_OR_PARTITION",
                format!("no topic {name}"),
            ));
        };
        if message.value.is_none() {
            return Err(HttpError::bad_request(
                "INVALID_REQUEST",
                "a message needs a value",
            ));
        }
        let partitions = described.partitions;
        let partition = match (message.partition, message.key.as_deref()) {
            (Some(p), _) if !(0..partitions).contains(&p) => {
                return Err(HttpError::bad_request(
                    "UNKNOWN_TOPIC_OR_PARTITION",
                    format!(
                        "topic {name} has partitions 0 to {}, not {p}",
                        partitions - 1
                    ),
                ));
            }
            (Some(p), _) => p,
            (None, Some(key)) => engine::partitioner::partition_for_key(key.as_bytes(), partitions),
            (None, None) => {
                let next = NEXT.with(|n| {
                    let v = n.get();
                    n.set(v.wrapping_add(1));
                    v
                });
                i32::try_from(next % u32::try_from(partitions.max(1)).unwrap_or(1)).unwrap_or(0)
            }
        };
        planned.push((name, partition, message));
    }
    // Staged in order, then each finished (durable) together.
    let mut stages = Vec::with_capacity(planned.len());
    for (name, partition, message) in &planned {
        let timestamp = message.timestamp.unwrap_or_else(engine::rt::wall_clock_ms);
        let batch = encode(message, timestamp);
        let tp = TopicPartition::new(name, *partition);
        stages.push((timestamp, stage_one(shard, tp, Some(batch), -1, None).await));
    }
    let finished = futures::future::join_all(
        stages
            .into_iter()
            .map(|(timestamp, stage)| async move { (timestamp, finish_one(stage).await) }),
    )
    .await;
    let mut out = Vec::with_capacity(finished.len());
    for ((name, partition, _), (timestamp, response)) in planned.iter().zip(finished) {
        if response.error_code != 0 {
            out.push(Err(HttpError::from_kafka(
                response.error_code,
                format!("producing to {name}-{partition}"),
            )));
            continue;
        }
        let timestamp = if response.log_append_time_ms >= 0 {
            response.log_append_time_ms
        } else {
            timestamp
        };
        out.push(Ok(serde_json::json!({
            "topic": name,
            "partition": partition,
            "offset": response.base_offset,
            "timestamp": timestamp,
        })));
    }
    Ok(out)
}

/// A one-record batch of `message` at `timestamp`.
fn encode(message: &Message, timestamp: i64) -> Bytes {
    let headers: Vec<(&[u8], Option<&[u8]>)> = message
        .headers
        .iter()
        .map(|h| (h.key.as_bytes(), h.value.as_deref().map(str::as_bytes)))
        .collect();
    let record = Record {
        key: message.key.as_deref().map(str::as_bytes),
        value: message.value.as_deref().map(str::as_bytes),
        headers: &headers,
        timestamp_delta: 0,
    };
    let spec = BatchSpec::new(1, timestamp);
    Bytes::from(encode_batch(&spec, &encode_records(&[record])))
}
