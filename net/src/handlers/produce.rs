//! Produce (key 0): every partition's records go to the shard that owns the
//! partition, concurrently; the response waits for all (acks=1 and acks=-1
//! both mean durable on this single node, and acks=-1 is refused with
//! NOT_ENOUGH_REPLICAS when the topic's min.insync.replicas exceeds the one
//! replica). acks=0 gets no response. Two
//! stages: staging (ordered per connection) and the wait for durability
//! (overlapping the connection's next requests, so their flushes share an
//! fdatasync).

use bytes::Bytes;
use engine::StagedAppend;
use engine::TopicPartition;
use futures::future::{LocalBoxFuture, join_all};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

use replication::metadata::acl;

use super::errors::{
    CORRUPT_MESSAGE, INVALID_REQUIRED_ACKS, INVALID_TOPIC_EXCEPTION, NONE, NOT_LEADER_OR_FOLLOWER,
    TOPIC_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, UNKNOWN_SERVER_ERROR,
    partition_error_code,
};
use super::{Handler, Outcome, decode_body};
use crate::broker::Shard;
use crate::broker::groups::OFFSETS_TOPIC;
use crate::broker::partition_call::{PartitionError, PartitionOp, PartitionReply, PartitionResult};
use crate::broker::replica::Replicated;
use crate::broker::transactions::TRANSACTION_TOPIC;
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::Produce,
    // v0-2 are advertised but refused per partition (produce_legacy).
    min_version: 0,
    max_version: 12,
};

/// Stage one, in request order: validates and stages every partition's
/// batches on its owning shard (offsets assigned). The returned future is
/// stage two: it waits until they are durable and builds the response (none
/// for acks=0), so the connection can stage its next request meanwhile.
pub async fn handle(
    shard: &Shard,
    request: &Request,
) -> Result<LocalBoxFuture<'static, Outcome>, FrameError> {
    let version = request.version();
    let correlation_id = request.correlation_id();
    let body: ProduceRequest = decode_body(request)?;
    let acks = body.acks;
    let transactional_id = body.transactional_id.map(|id| id.0.to_string());
    // ACLs: Write on the transactional id (every partition fails without
    // it), and on each topic.
    let id_denied = transactional_id
        .as_ref()
        .is_some_and(|id| !shard.allowed_transactional_id(request, acl::operation::WRITE, id));
    let mut topics = Vec::with_capacity(body.topic_data.len());
    for topic in body.topic_data {
        let name = topic.name.0.to_string();
        // Only the coordinators write their internal topics.
        let internal = name == OFFSETS_TOPIC || name == TRANSACTION_TOPIC;
        let denied = if id_denied {
            Some(TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        } else if !shard.allowed_topic(request, acl::operation::WRITE, &name) {
            Some(TOPIC_AUTHORIZATION_FAILED)
        } else {
            None
        };
        // Refused partitions are answered here; the rest go to their
        // shards, one message to each other shard for all of its own.
        // (index, the bytes sent there, or the code that refused them)
        let mut sent: Vec<(i32, Result<usize, i16>)> =
            Vec::with_capacity(topic.partition_data.len());
        let mut ops = Vec::new();
        for data in topic.partition_data {
            let bytes = data.records.as_ref().map_or(0, Bytes::len);
            let op = match (denied, internal) {
                (Some(code), _) => Err(code),
                (None, true) => Err(INVALID_TOPIC_EXCEPTION),
                (None, false) => append_op(data.records, acks, transactional_id.clone()),
            };
            sent.push((data.index, op.as_ref().map(|_| bytes).map_err(|&code| code)));
            if let Ok(op) = op {
                ops.push((data.index, op));
            }
        }
        let mut results = shard.per_partition(&name, ops).await.into_iter();
        let staged: Vec<(i32, Stage)> = sent
            .into_iter()
            .map(|(index, sent)| {
                let stage = sent.and_then(|bytes| match results.next() {
                    Some((_, result)) => staged_from(&name, bytes, result),
                    None => Err(UNKNOWN_SERVER_ERROR),
                });
                (index, stage)
            })
            .collect();
        topics.push((topic.name, staged));
    }
    Ok(Box::pin(async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (name, staged) in topics {
            let partitions =
                join_all(staged.into_iter().map(|(index, stage)| async move {
                    finish_one(stage).await.with_index(index)
                }))
                .await;
            responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_partition_responses(partitions),
            );
        }
        if acks == 0 {
            return Outcome::NoResponse;
        }
        let response = ProduceResponse::default().with_responses(responses);
        match encode_response(ApiKey::Produce, version, correlation_id, &response) {
            Ok(frame) => Outcome::Respond(frame),
            Err(e) => Outcome::Close(e),
        }
    }))
}

/// A partition after stage one: staged, or its error code.
pub(crate) type Stage = Result<(StagedAppend, Option<Replicated>), i16>;

pub(crate) async fn stage_one(
    shard: &Shard,
    tp: TopicPartition,
    records: Option<Bytes>,
    acks: i16,
    transactional_id: Option<String>,
) -> Stage {
    let bytes = records.as_ref().map_or(0, Bytes::len);
    let op = append_op(records, acks, transactional_id)?;
    let topic = tp.topic.clone();
    staged_from(&topic, bytes, shard.partition_call(tp, op).await)
}

/// The append of a partition's records, or the error code that refuses it.
fn append_op(
    records: Option<Bytes>,
    acks: i16,
    transactional_id: Option<String>,
) -> Result<PartitionOp, i16> {
    if !matches!(acks, -1..=1) {
        return Err(INVALID_REQUIRED_ACKS);
    }
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Err(CORRUPT_MESSAGE);
    };
    Ok(PartitionOp::Append {
        records,
        acks,
        transactional_id,
    })
}

/// What staging an append of `bytes` on a partition of `topic` gave.
fn staged_from(topic: &str, bytes: usize, result: PartitionResult) -> Stage {
    match result {
        Ok(PartitionReply::Staged(staged, replicated)) => {
            crate::metrics::record_produced(topic, bytes, staged.info().record_count);
            Ok((staged, replicated))
        }
        Ok(_) => Err(UNKNOWN_SERVER_ERROR),
        Err(e) => {
            tracing::debug!(error = %e, "produce refused");
            Err(partition_error_code(&e))
        }
    }
}

pub(crate) async fn finish_one(stage: Stage) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default()
        .with_base_offset(-1)
        .with_log_append_time_ms(-1);
    let (staged, replicated) = match stage {
        Ok(staged) => staged,
        Err(code) => return response.with_error_code(code),
    };
    let staged_at = std::time::Instant::now();
    let done = staged.finish().await;
    if let (Ok(_), Some(replicated)) = (&done, replicated) {
        // acks=all on a replicated partition: the high watermark must pass
        // it; a leader that lost its role meanwhile cannot say it did.
        let code = replicated.await.unwrap_or(NOT_LEADER_OR_FOLLOWER);
        if code != NONE {
            return response.with_error_code(code);
        }
    }
    crate::metrics::record_durable(staged_at.elapsed());
    match done {
        Ok(info) => response
            .with_error_code(NONE)
            .with_base_offset(info.base_offset.get())
            .with_log_append_time_ms(info.log_append_time)
            .with_log_start_offset(info.log_start_offset.get()),
        Err(e) => {
            tracing::warn!(error = %e, "produce failed after staging");
            response.with_error_code(partition_error_code(&PartitionError::Engine(e)))
        }
    }
}
