//! The HTTP produce API (Upstash's REST shape): `GET /produce/TOPIC/MESSAGE
//! ?key=KEY`; `GET|POST /produce/TOPIC` with a JSON message `{partition?,
//! timestamp?, key?, value, headers?: [{key, value}]}` or an array of them;
//! `GET|POST /produce` with an array of messages that each name their
//! `topic`. A request's messages to one partition become record batches
//! (in order; up to 256 KiB each) appended as a Produce with acks=all
//! would be (durable, and in sync on a replicated partition); each message
//! is answered `{topic, partition, offset, timestamp}` (an array for an
//! array; the messages of a batch share its fate). A message's partition: the one it names, else its key's
//! (murmur2, as the Java client), else the next one round-robin.

use std::borrow::Cow;
use std::cell::Cell;

use bytes::Bytes;
use engine::TopicPartition;
use engine::batch::builder::{BatchSpec, Record, encode_batch, encode_records};
use hyper::StatusCode;
use serde::Deserialize;

use super::HttpError;
use crate::broker::Shard;
use crate::handlers::produce::{finish_one, stage_one};

/// A JSON string, borrowed from the body unless it holds escapes (serde
/// borrows a `Cow<str>` only as a field of its own, not inside `Option`).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(super) struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for Text<'_> {
    fn from(text: String) -> Self {
        Text(Cow::Owned(text))
    }
}

/// One message as the API takes it; its strings borrow the body's bytes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Message<'a> {
    #[serde(borrow)]
    pub topic: Option<Text<'a>>,
    pub partition: Option<i32>,
    pub timestamp: Option<i64>,
    #[serde(borrow)]
    pub key: Option<Text<'a>>,
    #[serde(borrow)]
    pub value: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub headers: Vec<Header<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Header<'a> {
    #[serde(borrow)]
    pub key: Text<'a>,
    #[serde(borrow)]
    pub value: Option<Text<'a>>,
}

/// A body: one message, or an array of them (`true`).
pub(super) fn parse(body: &[u8]) -> Result<(Vec<Message<'_>>, bool), serde_json::Error> {
    let array = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'[');
    if array {
        Ok((serde_json::from_slice(body)?, true))
    } else {
        Ok((vec![serde_json::from_slice(body)?], false))
    }
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
    messages: Vec<Message<'_>>,
) -> Result<Vec<Result<serde_json::Value, HttpError>>, HttpError> {
    let planned = plan(shard, topic, messages)?;
    // The messages of a partition go as batches (in their order, at most
    // BATCH_BYTES each), staged in order, then finished (durable)
    // together.
    let batches = batches(&planned);
    // In a cluster, a partition another broker leads gets its batches
    // there, as a Kafka client's Produce.
    let mut answers: Vec<futures::future::LocalBoxFuture<'_, _>> =
        Vec::with_capacity(batches.len());
    for batch in &batches {
        let encoded = encode(&batch.messages);
        match shard.led_elsewhere(&batch.tp.topic, batch.tp.partition) {
            Some(leader) => answers.push(Box::pin(shard.produce_at(leader, &batch.tp, encoded))),
            None => {
                let stage = stage_one(shard, batch.tp.clone(), Some(encoded), -1, None).await;
                answers.push(Box::pin(finish_one(stage)));
            }
        }
    }
    let finished = futures::future::join_all(answers).await;
    let mut out: Vec<Option<Result<serde_json::Value, HttpError>>> =
        (0..planned.len()).map(|_| None).collect();
    for (batch, response) in batches.iter().zip(finished) {
        let (name, partition) = (&batch.tp.topic, batch.tp.partition);
        for (i, &(index, _, timestamp)) in batch.messages.iter().enumerate() {
            let answer = if response.error_code == 0 {
                let timestamp = if response.log_append_time_ms >= 0 {
                    response.log_append_time_ms
                } else {
                    timestamp
                };
                Ok(serde_json::json!({
                    "topic": name,
                    "partition": partition,
                    "offset": response.base_offset + i as i64,
                    "timestamp": timestamp,
                }))
            } else {
                Err(HttpError::from_kafka(
                    response.error_code,
                    format!("producing to {name}-{partition}"),
                ))
            };
            if let Some(slot) = out.get_mut(index) {
                *slot = Some(answer);
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(HttpError::from_kafka(-1, "not produced".into()))))
        .collect())
}

/// Each message with its topic and partition; bad input refuses them all.
fn plan<'a>(
    shard: &Shard,
    topic: Option<&str>,
    messages: Vec<Message<'a>>,
) -> Result<Vec<(String, i32, Message<'a>)>, HttpError> {
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
    Ok(planned)
}

/// A request's messages, with their topic and partition, as batches.
fn batches<'p>(planned: &'p [(String, i32, Message<'_>)]) -> Vec<Batch<'p>> {
    let now = engine::rt::wall_clock_ms();
    let mut batches: Vec<Batch<'_>> = Vec::new();
    let mut open: std::collections::HashMap<(&str, i32), usize> = Default::default();
    for (index, (name, partition, message)) in planned.iter().enumerate() {
        let bytes = message_bytes(message);
        let current = open
            .get(&(name.as_str(), *partition))
            .copied()
            .filter(|&b| {
                batches
                    .get(b)
                    .is_some_and(|b| b.bytes + bytes <= BATCH_BYTES)
            });
        let at = match current {
            Some(at) => at,
            None => {
                batches.push(Batch {
                    tp: TopicPartition::new(name, *partition),
                    messages: Vec::new(),
                    bytes: 0,
                });
                open.insert((name.as_str(), *partition), batches.len() - 1);
                batches.len() - 1
            }
        };
        if let Some(batch) = batches.get_mut(at) {
            batch.bytes += bytes;
            batch
                .messages
                .push((index, message, message.timestamp.unwrap_or(now)));
        }
    }
    batches
}

/// The most record bytes (about) one batch of a request takes: a
/// request's messages to one partition go as batches of at most this.
const BATCH_BYTES: usize = 256 * 1024;

/// Messages of one request to one partition, appended as one batch:
/// (index in the request, message, timestamp).
struct Batch<'a> {
    tp: TopicPartition,
    messages: Vec<(usize, &'a Message<'a>, i64)>,
    bytes: usize,
}

/// About what a message takes in a batch.
fn message_bytes(message: &Message<'_>) -> usize {
    let headers: usize = message
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()) + 10)
        .sum();
    message.key.as_ref().map_or(0, |k| k.len())
        + message.value.as_ref().map_or(0, |v| v.len())
        + headers
        + 24
}

/// A record's headers, as the batch builder takes them.
type HeaderPairs<'a> = Vec<(&'a [u8], Option<&'a [u8]>)>;

/// One batch of `messages` (each at its timestamp).
fn encode(messages: &[(usize, &Message<'_>, i64)]) -> Bytes {
    let base = messages.iter().map(|m| m.2).min().unwrap_or(0);
    let max = messages.iter().map(|m| m.2).max().unwrap_or(base);
    let headers: Vec<HeaderPairs<'_>> = messages
        .iter()
        .map(|(_, m, _)| {
            m.headers
                .iter()
                .map(|h| (h.key.as_bytes(), h.value.as_deref().map(str::as_bytes)))
                .collect()
        })
        .collect();
    let records: Vec<Record<'_>> = messages
        .iter()
        .zip(&headers)
        .map(|((_, m, timestamp), headers)| Record {
            key: m.key.as_deref().map(str::as_bytes),
            value: m.value.as_deref().map(str::as_bytes),
            headers,
            timestamp_delta: timestamp - base,
        })
        .collect();
    let mut spec = BatchSpec::new(i32::try_from(records.len()).unwrap_or(i32::MAX), base);
    spec.max_timestamp = max;
    Bytes::from(encode_batch(&spec, &encode_records(&records)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_borrowed_or_escaped_one_or_many() {
        let (one, array) = parse(br#" {"value":"plain","key":"k\"q"} "#).unwrap();
        assert!(!array);
        let message = &one[0];
        assert!(matches!(
            message.value.as_ref().map(|v| &v.0),
            Some(Cow::Borrowed("plain"))
        ));
        assert_eq!(message.key.as_deref(), Some("k\"q"), "an escape is decoded");
        let (many, array) =
            parse(b"\n [{\"value\":\"a\"},{\"value\":\"b\",\"headers\":[{\"key\":\"h\"}]}]")
                .unwrap();
        assert!(array);
        assert_eq!(many.len(), 2);
        assert_eq!(&*many[1].headers[0].key, "h");
        assert!(
            parse(b"[{\"value\":\"a\",\"extra\":1}]").is_err(),
            "unknown fields"
        );
        assert!(parse(b"\"just a string\"").is_err());
    }
}
