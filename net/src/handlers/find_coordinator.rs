//! FindCoordinator (key 10): the coordinator of a consumer group or of a
//! transactional id is this node (one node holds every partition of
//! `__consumer_offsets` and `__transaction_state`). v4+ batches keys.

use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors::{INVALID_REQUEST, NONE};
use super::{Handler, decode_body};
use crate::broker::{Node, Shard};
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

pub fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: FindCoordinatorRequest = decode_body(request)?;
    let node = &shard.node;
    let response = if version >= BATCHED_VERSION {
        let coordinators = body
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let (code, message) = lookup(body.key_type, &key);
                coordinator_entry(node, code)
                    .with_key(key)
                    .with_error_message(message.map(StrBytes::from_static_str))
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let (code, message) = lookup(body.key_type, &body.key);
        let found = coordinator_entry(node, code);
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

/// The error code (and message) for a key: every group and transactional
/// id is coordinated here.
fn lookup(key_type: i8, key: &str) -> (i16, Option<&'static str>) {
    match key_type {
        KEY_TYPE_GROUP if key.is_empty() => (INVALID_REQUEST, Some("the group id is empty")),
        KEY_TYPE_GROUP => (NONE, None),
        KEY_TYPE_TRANSACTION if key.is_empty() => {
            (INVALID_REQUEST, Some("the transactional id is empty"))
        }
        KEY_TYPE_TRANSACTION => (NONE, None),
        _ => (INVALID_REQUEST, Some("unknown coordinator key type")),
    }
}

/// This node, or the "no node" entry Kafka sends with an error.
fn coordinator_entry(node: &Node, code: i16) -> Coordinator {
    if code == NONE {
        Coordinator::default()
            .with_node_id(BrokerId(node.node_id))
            .with_host(StrBytes::from_string(node.host.clone()))
            .with_port(node.port)
            .with_error_code(NONE)
    } else {
        Coordinator::default()
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::from_static_str(""))
            .with_port(-1)
            .with_error_code(code)
    }
}
