//! DeleteTopics (key 20): by name (v1-5) or topic id (v6); the metadata
//! writer deletes the topic and every shard then deletes its partitions.

use bytes::Bytes;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use replication::metadata::{Command, TopicId};

use replication::metadata::acl;

use super::errors::{
    INVALID_TOPIC_EXCEPTION, NONE, TOPIC_AUTHORIZATION_FAILED, UNKNOWN_TOPIC_ID, command_error_code,
};
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::groups::OFFSETS_TOPIC;
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::DeleteTopics,
    min_version: 1,
    max_version: 6,
};

/// The broker's own topic of committed offsets is not the clients' to
/// delete (Kafka refuses too).
fn internal_topic(result: DeletableTopicResult) -> DeletableTopicResult {
    result
        .with_error_code(INVALID_TOPIC_EXCEPTION)
        .with_error_message(Some(StrBytes::from_static_str(
            "__consumer_offsets is internal and cannot be deleted",
        )))
}

pub async fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: DeleteTopicsRequest = decode_body(request)?;
    // v1-5 name topics in `topic_names`; v6 in `topics`, by name or id.
    let mut wanted: Vec<(Option<String>, uuid::Uuid)> = body
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    wanted.extend(
        body.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let mut results = Vec::with_capacity(wanted.len());
    for (name, topic_id) in wanted {
        let name = name.or_else(|| {
            let metadata = shard.metadata();
            metadata
                .topic_by_id(TopicId(*topic_id.as_bytes()))
                .map(|t| t.name.clone())
        });
        let result = DeletableTopicResult::default().with_topic_id(topic_id);
        let Some(name) = name else {
            results.push(result.with_error_code(UNKNOWN_TOPIC_ID));
            continue;
        };
        let result = result.with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
        if !shard.allowed_topic(request, acl::operation::DELETE, &name) {
            results.push(result.with_error_code(TOPIC_AUTHORIZATION_FAILED));
            continue;
        }
        if name == OFFSETS_TOPIC {
            results.push(internal_topic(result));
            continue;
        }
        results.push(match shard.execute(Command::DeleteTopic { name }).await {
            Ok(_) => result.with_error_code(NONE),
            Err(e) => result
                .with_error_code(command_error_code(&e))
                .with_error_message(Some(StrBytes::from_string(e.to_string()))),
        });
    }
    let response = DeleteTopicsResponse::default().with_responses(results);
    encode_response(
        ApiKey::DeleteTopics,
        version,
        request.correlation_id(),
        &response,
    )
}
