//! CreateTopics (key 19): validates names, partition counts, replication
//! factors, explicit assignments (followed by a cluster's controller; on a
//! broker alone, valid when every partition is on this node alone) and
//! configs (unknown keys and bad values: INVALID_CONFIG), then
//! has the metadata writer create each topic; `validate_only` checks
//! without creating.

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use replication::metadata::Command;

use replication::metadata::acl;

use super::errors::{
    INVALID_CONFIG, INVALID_REPLICA_ASSIGNMENT, INVALID_REPLICATION_FACTOR, INVALID_REQUEST, NONE,
    TOPIC_AUTHORIZATION_FAILED, command_error_code,
};
use super::{Handler, decode_body, replica_assignment};
use crate::broker::Shard;
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::CreateTopics,
    min_version: 2,
    max_version: 7,
};

pub async fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: CreateTopicsRequest = decode_body(request)?;
    let mut results = Vec::with_capacity(body.topics.len());
    for topic in body.topics {
        // ACLs: Create on the cluster or on the topic.
        let name = topic.name.0.as_str();
        let permitted = shard.allowed_cluster(request, acl::operation::CREATE)
            || shard.allowed_topic(request, acl::operation::CREATE, name);
        results.push(if permitted {
            create_one(shard, topic, body.validate_only).await
        } else {
            CreatableTopicResult::default()
                .with_name(topic.name.clone())
                .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                .with_error_message(Some(StrBytes::from_static_str(
                    "the principal may not create this topic",
                )))
        });
    }
    let response = CreateTopicsResponse::default().with_topics(results);
    encode_response(
        ApiKey::CreateTopics,
        version,
        request.correlation_id(),
        &response,
    )
}

/// A refusal: the error code and message for the client.
type Refusal = (i16, String);

/// The partition count an explicit assignment gives and its replica lists
/// in partition order, if it is valid here (`alone`: on a broker alone,
/// its id): as in Kafka, with an assignment the partition count and
/// replication factor must be left to it (-1).
fn explicit_partitions(
    alone: Option<i32>,
    topic: &CreatableTopic,
) -> Result<(i32, Vec<Vec<i32>>), Refusal> {
    if topic.num_partitions != -1 || topic.replication_factor != -1 {
        return Err((
            INVALID_REQUEST,
            "both a partition count or replication factor and an assignment were given".into(),
        ));
    }
    let mut assignments: Vec<_> = topic.assignments.iter().collect();
    let count =
        replica_assignment::check_partition_indexes(assignments.iter().map(|a| a.partition_index))
            .map_err(|m| (INVALID_REPLICA_ASSIGNMENT, m))?;
    assignments.sort_by_key(|a| a.partition_index);
    let lists =
        replica_assignment::check_replicas(alone, assignments.iter().map(|a| &a.broker_ids[..]))
            .map_err(|m| (INVALID_REPLICA_ASSIGNMENT, m))?;
    Ok((count, lists))
}

async fn create_one(
    shard: &Shard,
    topic: CreatableTopic,
    validate_only: bool,
) -> CreatableTopicResult {
    let name = topic.name.0.to_string();
    let result = CreatableTopicResult::default().with_name(topic.name.clone());
    let fail = |code: i16, message: String| {
        result
            .clone()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    // In a cluster the controller checks it against the live brokers.
    let allowed = if shard.in_cluster() {
        topic.replication_factor == -1 || topic.replication_factor >= 1
    } else {
        matches!(topic.replication_factor, -1 | 1)
    };
    if !allowed {
        return fail(
            INVALID_REPLICATION_FACTOR,
            format!(
                "replication factor {} is impossible: {}",
                topic.replication_factor,
                if shard.in_cluster() {
                    "at least 1 (or -1, the default)"
                } else {
                    "a broker alone holds one replica of each partition"
                }
            ),
        );
    }
    let alone = (!shard.in_cluster()).then_some(shard.node.node_id);
    let mut assignments = None;
    let partitions = if !topic.assignments.is_empty() {
        match explicit_partitions(alone, &topic) {
            Ok((partitions, lists)) => {
                // A broker alone places every partition on itself anyway.
                assignments = alone.is_none().then_some(lists);
                partitions
            }
            Err((code, message)) => return fail(code, message),
        }
    } else if topic.num_partitions == -1 {
        shard.settings.num_partitions
    } else {
        topic.num_partitions
    };
    let mut configs = std::collections::BTreeMap::new();
    // Over the broker's defaults: a topic's configs must agree with them.
    let mut check = shard.log_config(&shard.metadata(), "");
    for config in &topic.configs {
        let key = config.name.to_string();
        let Some(value) = config.value.as_ref().map(|v| v.to_string()) else {
            continue;
        };
        if let Err(e) = check.set(&key, &value) {
            return fail(INVALID_CONFIG, e.to_string());
        }
        configs.insert(key, value);
    }
    if let Err(e) = check.check_consistent() {
        return fail(INVALID_CONFIG, e.to_string());
    }
    let command = Command::CreateTopic {
        name: name.clone(),
        partitions,
        replication_factor: topic.replication_factor,
        configs,
    };
    let outcome = shard
        .execute_or_validate(command, assignments, validate_only)
        .await;
    match outcome {
        Ok(state) => {
            let created = state.topic(&name);
            let topic_id = created
                .map(|t| uuid::Uuid::from_bytes(t.topic_id.0))
                .unwrap_or_default();
            let replication_factor = created
                .and_then(|t| state.partition(t.topic_id, 0))
                .map_or(1, |p| i16::try_from(p.replicas.len()).unwrap_or(i16::MAX));
            result
                .with_error_code(NONE)
                .with_error_message(None)
                .with_topic_id(topic_id)
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)
        }
        Err(e) => fail(command_error_code(&e), e.to_string()),
    }
}
