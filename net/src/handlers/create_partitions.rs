//! CreatePartitions (key 37): grows topics; the owning shards create the
//! new partitions. Manual assignments are refused (one broker).

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use replication::metadata::Command;

use super::errors::{
    INVALID_REPLICA_ASSIGNMENT, INVALID_TOPIC_EXCEPTION, NONE, command_error_code,
};
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::groups::OFFSETS_TOPIC;
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::CreatePartitions,
    min_version: 0,
    max_version: 3,
};

pub async fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: CreatePartitionsRequest = decode_body(request)?;
    let mut results = Vec::with_capacity(body.topics.len());
    for topic in body.topics {
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        if topic.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            let message = StrBytes::from_static_str("manual replica assignment is not supported");
            results.push(
                result
                    .with_error_code(INVALID_REPLICA_ASSIGNMENT)
                    .with_error_message(Some(message)),
            );
            continue;
        }
        if topic.name.0.as_str() == OFFSETS_TOPIC {
            // Its partition count places every group: it must not change.
            let message = StrBytes::from_static_str("__consumer_offsets is internal");
            results.push(
                result
                    .with_error_code(INVALID_TOPIC_EXCEPTION)
                    .with_error_message(Some(message)),
            );
            continue;
        }
        let command = Command::CreatePartitions {
            name: topic.name.0.to_string(),
            total: topic.count,
        };
        let outcome = shard
            .execute_or_validate(command, body.validate_only)
            .await
            .map(|_| ());
        results.push(match outcome {
            Ok(()) => result.with_error_code(NONE).with_error_message(None),
            Err(e) => result
                .with_error_code(command_error_code(&e))
                .with_error_message(Some(StrBytes::from_string(e.to_string()))),
        });
    }
    let response = CreatePartitionsResponse::default().with_results(results);
    encode_response(
        ApiKey::CreatePartitions,
        version,
        request.correlation_id(),
        &response,
    )
}
