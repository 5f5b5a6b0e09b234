//! FindCoordinator (key 10): the coordinator of a consumer group or of a
//! transactional id is the leader of its partition of `__consumer_offsets`
//! or `__transaction_state` (this node, when it runs alone). v4+ batches
//! keys.

use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use replication::metadata::acl;

use super::errors::{
    GROUP_AUTHORIZATION_FAILED, INVALID_REQUEST, NONE, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
};
use super::{Handler, decode_body};
use crate::broker::{BrokerView, Shard};
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::FindCoordinator,
    min_version: 0,
    max_version: 5,
};

/// Kafka's CoordinatorType values.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The first version that batches keys.
const BATCHED_VERSION: i16 = 4;

pub async fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: FindCoordinatorRequest = decode_body(request)?;
    let response = if version >= BATCHED_VERSION {
        let mut coordinators = Vec::with_capacity(body.coordinator_keys.len());
        for key in body.coordinator_keys {
            let (found, message) = lookup(shard, request, body.key_type, &key).await;
            coordinators.push(
                coordinator_entry(found)
                    .with_key(key)
                    .with_error_message(message.map(StrBytes::from_static_str)),
            );
        }
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let (found, message) = lookup(shard, request, body.key_type, &body.key).await;
        let found = coordinator_entry(found);
        let code = found.error_code;
        FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_error_message(message.map(StrBytes::from_static_str))
            .with_node_id(found.node_id)
            .with_host(found.host)
            .with_port(found.port)
    };
    encode_response(
        ApiKey::FindCoordinator,
        version,
        request.correlation_id(),
        &response,
    )
}

/// The coordinator of a key, or the error code (and message) for it.
async fn lookup(
    shard: &Shard,
    request: &Request,
    key_type: i8,
    key: &str,
) -> (Result<BrokerView, i16>, Option<&'static str>) {
    let listener = &request.listener;
    // ACLs: Describe on the group or the transactional id.
    let denied = match key_type {
        KEY_TYPE_GROUP => (!shard.allowed_group(request, acl::operation::DESCRIBE, key))
            .then_some(GROUP_AUTHORIZATION_FAILED),
        KEY_TYPE_TRANSACTION => {
            (!shard.allowed_transactional_id(request, acl::operation::DESCRIBE, key))
                .then_some(TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        }
        _ => None,
    };
    if let Some(code) = denied {
        return (Err(code), Some("the principal may not describe it (ACLs)"));
    }
    match key_type {
        KEY_TYPE_GROUP if key.is_empty() => (Err(INVALID_REQUEST), Some("the group id is empty")),
        KEY_TYPE_TRANSACTION if key.is_empty() => {
            (Err(INVALID_REQUEST), Some("the transactional id is empty"))
        }
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => {
            let transaction = key_type == KEY_TYPE_TRANSACTION;
            (shard.coordinator(transaction, key, listener).await, None)
        }
        _ => (Err(INVALID_REQUEST), Some("unknown coordinator key type")),
    }
}

/// The coordinator, or the "no node" entry Kafka sends with an error.
fn coordinator_entry(found: Result<BrokerView, i16>) -> Coordinator {
    match found {
        Ok(broker) => Coordinator::default()
            .with_node_id(BrokerId(broker.node_id))
            .with_host(StrBytes::from_string(broker.host))
            .with_port(broker.port)
            .with_error_code(NONE),
        Err(code) => Coordinator::default()
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::from_static_str(""))
            .with_port(-1)
            .with_error_code(code),
    }
}
