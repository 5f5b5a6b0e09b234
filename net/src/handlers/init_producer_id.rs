//! InitProducerId (key 22): an idempotent producer's id. Without a
//! transactional id Kafka hands out a fresh producer id at epoch 0 every
//! time, also when a v3+ client names its current id and epoch to have its
//! epoch bumped after an error (KIP-360): a new id serves it just as well,
//! and ids are never reused (blocks are reserved in the metadata log).
//! A transactional id goes to its transaction coordinator (rule 1 of
//! `crate::txn`): the timeout is checked against
//! transaction.max.timeout.ms, the id gets its producer id and a bumped
//! epoch, and a transaction its previous instance left running is aborted.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use replication::metadata::acl;

use super::errors::{
    CLUSTER_AUTHORIZATION_FAILED, INVALID_REQUEST, NONE, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    UNKNOWN_SERVER_ERROR, command_error_code,
};
use super::transactions::valid_transactional_id;
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::transactions::{TxnAnswer, TxnOp};
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::InitProducerId,
    min_version: 0,
    max_version: 5,
};

pub async fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: InitProducerIdRequest = decode_body(request)?;
    let refused = |code| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    // An id and an epoch come together or not at all.
    let response = if (body.producer_id.0 == -1) != (body.producer_epoch == -1) {
        refused(INVALID_REQUEST)
    } else if let Some(id) = &body.transactional_id {
        // Kafka: an empty transactional id is no id at all.
        if !valid_transactional_id(id) {
            refused(INVALID_REQUEST)
        } else if !shard.allowed_transactional_id(request, acl::operation::WRITE, id) {
            refused(TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        } else {
            let expected =
                (body.producer_id.0 >= 0).then_some((body.producer_id.0, body.producer_epoch));
            let op = TxnOp::InitProducerId {
                timeout_ms: body.transaction_timeout_ms,
                expected,
            };
            match shard.txn_call(id, op).await {
                TxnAnswer::Init(Ok((producer_id, epoch))) => InitProducerIdResponse::default()
                    .with_error_code(NONE)
                    .with_producer_id(ProducerId(producer_id))
                    .with_producer_epoch(epoch),
                TxnAnswer::Init(Err(code)) => refused(code),
                TxnAnswer::Codes(_) | TxnAnswer::Described(_) => refused(UNKNOWN_SERVER_ERROR),
            }
        }
    } else if !shard.allowed_cluster(request, acl::operation::IDEMPOTENT_WRITE)
        && !shard.allowed_any(request, acl::operation::WRITE, acl::resource::TOPIC)
    {
        // ACLs: IdempotentWrite on the cluster, or Write on any topic.
        refused(CLUSTER_AUTHORIZATION_FAILED)
    } else {
        match shard.new_producer_id().await {
            Ok(id) => InitProducerIdResponse::default()
                .with_error_code(NONE)
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0),
            Err(e) => {
                tracing::warn!(error = %e, "cannot reserve producer ids");
                refused(command_error_code(&e))
            }
        }
    };
    encode_response(
        ApiKey::InitProducerId,
        version,
        request.correlation_id(),
        &response,
    )
}
