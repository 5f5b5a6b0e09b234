//! AlterPartitionReassignments (key 45) and ListPartitionReassignments
//! (key 46): moving a partition's replicas to other brokers (KIP-455).
//! The controller starts a reassignment (the new replicas follow the
//! leader and catch up), ends it once every target replica is in sync
//! (the old ones leave, and the leader moves if it was one of them) and
//! cancels it; any broker lists the ones in progress from its metadata.

use bytes::Bytes;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use replication::metadata::{ClusterMetadata, PartitionState};
use replication::quorum::ControllerRequest;

use replication::metadata::acl;

use super::errors::{
    CLUSTER_AUTHORIZATION_FAILED, INVALID_REPLICA_ASSIGNMENT, NO_REASSIGNMENT_IN_PROGRESS, NONE,
    UNKNOWN_TOPIC_OR_PARTITION,
};
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::frame::{FrameError, Request, encode_response};

pub const ALTER: Handler = Handler {
    api_key: ApiKey::AlterPartitionReassignments,
    min_version: 0,
    max_version: 1,
};

pub const LIST: Handler = Handler {
    api_key: ApiKey::ListPartitionReassignments,
    min_version: 0,
    max_version: 0,
};

fn broker_ids(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().copied().map(BrokerId).collect()
}

pub async fn alter(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: AlterPartitionReassignmentsRequest = decode_body(request)?;
    // Before v1 the replication factor may always change.
    let allow_change = version == 0 || body.allow_replication_factor_change;
    if !shard.allowed_cluster(request, acl::operation::ALTER) {
        let response = AlterPartitionReassignmentsResponse::default()
            .with_allow_replication_factor_change(allow_change)
            .with_error_code(CLUSTER_AUTHORIZATION_FAILED);
        return encode_response(
            ApiKey::AlterPartitionReassignments,
            version,
            request.correlation_id(),
            &response,
        );
    }
    let mut responses = Vec::with_capacity(body.topics.len());
    for topic in &body.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for asked in &topic.partitions {
            let target: Option<Vec<i32>> = asked
                .replicas
                .as_ref()
                .map(|ids| ids.iter().map(|id| id.0).collect());
            let (code, message) = reassign(
                shard,
                &topic.name.0,
                asked.partition_index,
                target,
                allow_change,
            )
            .await;
            partitions.push(
                ReassignablePartitionResponse::default()
                    .with_partition_index(asked.partition_index)
                    .with_error_code(code)
                    .with_error_message(message.map(StrBytes::from_string)),
            );
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_change)
        .with_error_code(NONE)
        .with_responses(responses);
    encode_response(
        ApiKey::AlterPartitionReassignments,
        version,
        request.correlation_id(),
        &response,
    )
}

/// One partition's reassignment to `target` (`None`: cancelled): the
/// error code and message to answer.
async fn reassign(
    shard: &Shard,
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
    allow_replication_factor_change: bool,
) -> (i16, Option<String>) {
    let metadata = shard.metadata();
    let Some(topic_id) = metadata
        .topic(topic)
        .filter(|t| (0..t.partitions).contains(&partition))
        .map(|t| t.topic_id)
    else {
        return (UNKNOWN_TOPIC_OR_PARTITION, None);
    };
    if !shard.in_cluster() {
        // A broker alone holds the only copy: it can move nowhere.
        let me = shard.node.node_id;
        return match target {
            None => (NO_REASSIGNMENT_IN_PROGRESS, None),
            Some(target) if target == [me] => (NONE, None),
            Some(target) => (
                INVALID_REPLICA_ASSIGNMENT,
                Some(format!(
                    "{target:?}: broker {me} runs alone, the only broker there is"
                )),
            ),
        };
    }
    let request = ControllerRequest::Reassign {
        topic_id,
        partition,
        target,
        allow_replication_factor_change,
    };
    match shard.ask_controller(request).await {
        Ok(_) => (NONE, None),
        Err(e) => (e.code, Some(e.message)),
    }
}

pub fn list(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let body: ListPartitionReassignmentsRequest = decode_body(request)?;
    if !shard.allowed_cluster(request, acl::operation::DESCRIBE) {
        let response = ListPartitionReassignmentsResponse::default()
            .with_error_code(CLUSTER_AUTHORIZATION_FAILED);
        return encode_response(
            ApiKey::ListPartitionReassignments,
            request.version(),
            request.correlation_id(),
            &response,
        );
    }
    let metadata = shard.metadata();
    let topics = match &body.topics {
        Some(topics) => topics
            .iter()
            .filter_map(|t| {
                let asked = t.partition_indexes.iter().copied();
                ongoing(&metadata, &t.name.0, asked)
            })
            .collect(),
        None => metadata
            .topics()
            .filter_map(|t| ongoing(&metadata, &t.name, 0..t.partitions))
            .collect(),
    };
    let response = ListPartitionReassignmentsResponse::default()
        .with_error_code(NONE)
        .with_topics(topics);
    encode_response(
        ApiKey::ListPartitionReassignments,
        request.version(),
        request.correlation_id(),
        &response,
    )
}

/// The reassignments in progress among `partitions` of `topic`; `None`
/// when there is none (an unknown topic or partition has none).
fn ongoing(
    metadata: &ClusterMetadata,
    topic: &str,
    partitions: impl Iterator<Item = i32>,
) -> Option<OngoingTopicReassignment> {
    let topic_id = metadata.topic(topic)?.topic_id;
    let moving: Vec<OngoingPartitionReassignment> = partitions
        .filter_map(|partition| {
            let state: &PartitionState = metadata.partition(topic_id, partition)?;
            state.reassigning().then(|| {
                OngoingPartitionReassignment::default()
                    .with_partition_index(partition)
                    .with_replicas(broker_ids(&state.replicas))
                    .with_adding_replicas(broker_ids(&state.adding))
                    .with_removing_replicas(broker_ids(&state.removing))
            })
        })
        .collect();
    (!moving.is_empty()).then(|| {
        OngoingTopicReassignment::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(moving)
    })
}
