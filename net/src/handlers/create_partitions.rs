//! CreatePartitions (key 37): grows topics; the owning shards create the
//! new partitions. An explicit assignment is followed by a cluster's
//! controller; on a broker alone, when it puts every new partition on this
//! node alone (else INVALID_REPLICA_ASSIGNMENT).

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use replication::metadata::Command;

use replication::metadata::acl;

use super::errors::{
    INVALID_REPLICA_ASSIGNMENT, INVALID_TOPIC_EXCEPTION, NONE, TOPIC_AUTHORIZATION_FAILED,
    command_error_code,
};
use super::{Handler, decode_body, replica_assignment};
use crate::broker::Shard;
use crate::broker::groups::OFFSETS_TOPIC;
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::CreatePartitions,
    min_version: 0,
    max_version: 3,
};

/// An explicit assignment: one replica list per new partition (on a
/// broker alone, each this node alone); the lists. (An unknown topic, or a
/// count that does not grow it, is the metadata writer's error to give.)
fn check_assignments(
    shard: &Shard,
    name: &str,
    count: i32,
    assignments: &[CreatePartitionsAssignment],
) -> Result<Vec<Vec<i32>>, String> {
    let alone = (!shard.in_cluster()).then_some(shard.node.node_id);
    let lists =
        replica_assignment::check_replicas(alone, assignments.iter().map(|a| &a.broker_ids[..]))?;
    let metadata = shard.metadata();
    let Some(current) = metadata.topic(name).map(|t| t.partitions) else {
        return Ok(lists);
    };
    let new = i64::from(count) - i64::from(current);
    if new > 0 && new != assignments.len() as i64 {
        return Err(format!(
            "{new} partitions are added and {} assignments given",
            assignments.len()
        ));
    }
    Ok(lists)
}

pub async fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: CreatePartitionsRequest = decode_body(request)?;
    let mut results = Vec::with_capacity(body.topics.len());
    for topic in body.topics {
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        if !shard.allowed_topic(request, acl::operation::ALTER, &topic.name.0) {
            results.push(result.with_error_code(TOPIC_AUTHORIZATION_FAILED));
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
        // No assignment (null, or empty as some clients send it): placed
        // by the controller, or here.
        let mut lists = None;
        if let Some(assignments) = topic.assignments.as_ref().filter(|a| !a.is_empty()) {
            match check_assignments(shard, &topic.name.0, topic.count, assignments) {
                Ok(checked) => lists = shard.in_cluster().then_some(checked),
                Err(message) => {
                    results.push(
                        result
                            .with_error_code(INVALID_REPLICA_ASSIGNMENT)
                            .with_error_message(Some(StrBytes::from_string(message))),
                    );
                    continue;
                }
            }
        }
        let command = Command::CreatePartitions {
            name: topic.name.0.to_string(),
            total: topic.count,
        };
        let outcome = shard
            .execute_or_validate(command, lists, body.validate_only)
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
