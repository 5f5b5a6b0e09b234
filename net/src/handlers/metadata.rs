//! Metadata (key 3): brokers (this one), and topics with their partitions,
//! all led by this node. Unknown topics are created when the client allows
//! it and auto.create.topics.enable is on (the default), with num.partitions.
//! v10+ may name topics by id instead (KIP-516; the Java client resolves the
//! topic ids of a KIP-848 assignment so): an unknown id is UNKNOWN_TOPIC_ID,
//! never created.

use bytes::Bytes;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use replication::metadata::{ClusterMetadata, Command, TopicId, TopicMetadata};

use replication::metadata::acl;

use super::errors::{
    LEADER_NOT_AVAILABLE, NONE, TOPIC_AUTHORIZATION_FAILED, UNKNOWN_TOPIC_ID,
    UNKNOWN_TOPIC_OR_PARTITION, command_error_code,
};
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::groups::OFFSETS_TOPIC;
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::Metadata,
    min_version: 0,
    max_version: 12,
};

pub async fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: MetadataRequest = decode_body(request)?;
    // v0: an empty list means all topics; v1+: null means all topics. A
    // topic without a name is asked for by its id.
    let mut by_id: Vec<TopicId> = Vec::new();
    let requested: Option<Vec<String>> = match body.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(
            topics
                .into_iter()
                .filter_map(|t| match t.name.filter(|n| !n.is_empty()) {
                    Some(name) => Some(name.0.to_string()),
                    None => {
                        by_id.push(TopicId(*t.topic_id.as_bytes()));
                        None
                    }
                })
                .collect(),
        ),
        _ => None,
    };
    let allow_create = version < 4 || body.allow_auto_topic_creation;
    let mut metadata = shard.metadata();
    tracing::debug!(
        shard = shard.id(),
        applied = metadata.applied(),
        ?requested,
        allow_create,
        "metadata request"
    );
    // ACLs: a topic the principal may not describe is left out of "all
    // topics" and answered TOPIC_AUTHORIZATION_FAILED when named (whether
    // it exists or not); creating one needs Create on the cluster or it.
    let describable = |name: &str| shard.allowed_topic(request, acl::operation::DESCRIBE, name);
    let mut create_errors = Vec::new();
    if let (Some(names), true) = (
        &requested,
        allow_create && shard.settings.auto_create_topics,
    ) {
        (metadata, create_errors) = auto_create(shard, request, names, metadata).await;
    }
    let by_id = by_id.into_iter().map(|id| match metadata.topic_by_id(id) {
        Some(topic) if describable(&topic.name) => topic_entry(shard, &metadata, topic),
        found => MetadataResponseTopic::default()
            .with_error_code(if found.is_some() {
                TOPIC_AUTHORIZATION_FAILED
            } else {
                UNKNOWN_TOPIC_ID
            })
            // Null from v12 (Kafka's answer), empty before.
            .with_name((version < 12).then(|| TopicName(StrBytes::default())))
            .with_topic_id(uuid::Uuid::from_bytes(id.0)),
    });
    let by_id: Vec<MetadataResponseTopic> = by_id.collect();
    let mut topics: Vec<MetadataResponseTopic> = match &requested {
        Some(names) => names
            .iter()
            .map(|name| match metadata.topic(name) {
                Some(topic) if describable(name) => topic_entry(shard, &metadata, topic),
                _ => {
                    let code = if !describable(name) {
                        TOPIC_AUTHORIZATION_FAILED
                    } else {
                        create_errors
                            .iter()
                            .find(|(n, _)| n == name)
                            .map_or(UNKNOWN_TOPIC_OR_PARTITION, |e| e.1)
                    };
                    MetadataResponseTopic::default()
                        .with_error_code(code)
                        .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                }
            })
            .collect(),
        None => metadata
            .topics()
            .filter(|topic| describable(&topic.name))
            .map(|topic| topic_entry(shard, &metadata, topic))
            .collect(),
    };
    topics.extend(by_id);
    let response = response(shard, &metadata, topics, &request.listener);
    encode_response(
        ApiKey::Metadata,
        version,
        request.correlation_id(),
        &response,
    )
}

/// Creates the topics of `names` that do not exist and the principal may
/// describe and create (Create on the cluster or the topic); the state
/// after, and the codes of those that failed.
async fn auto_create(
    shard: &Shard,
    request: &Request,
    names: &[String],
    mut metadata: std::sync::Arc<ClusterMetadata>,
) -> (std::sync::Arc<ClusterMetadata>, Vec<(String, i16)>) {
    let permitted = |name: &str| {
        shard.allowed_topic(request, acl::operation::DESCRIBE, name)
            && (shard.allowed_cluster(request, acl::operation::CREATE)
                || shard.allowed_topic(request, acl::operation::CREATE, name))
    };
    let missing: Vec<String> = names
        .iter()
        .filter(|n| metadata.topic(n).is_none() && permitted(n))
        .cloned()
        .collect();
    let mut errors = Vec::new();
    for name in missing {
        let command = Command::CreateTopic {
            name: name.clone(),
            partitions: shard.settings.num_partitions,
            replication_factor: -1,
            configs: Default::default(),
        };
        match shard.execute(command).await {
            Ok(state) => metadata = state,
            Err(e) => errors.push((name, command_error_code(&e))),
        }
    }
    (metadata, errors)
}

fn response(
    shard: &Shard,
    metadata: &ClusterMetadata,
    topics: Vec<MetadataResponseTopic>,
    listener: &str,
) -> MetadataResponse {
    let node = &shard.node;
    let brokers = shard
        .live_brokers(metadata, listener)
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port)
        })
        .collect();
    // Any broker takes admin requests to the controller (as in KRaft).
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(node.cluster_id.clone())))
        .with_controller_id(BrokerId(node.node_id))
        .with_topics(topics)
}

fn topic_entry(
    shard: &Shard,
    metadata: &ClusterMetadata,
    topic: &TopicMetadata,
) -> MetadataResponseTopic {
    let ids = |ids: Vec<i32>| ids.into_iter().map(BrokerId).collect::<Vec<_>>();
    let partitions = (0..topic.partitions)
        .map(|index| {
            let view = shard.partition_view(metadata, topic.topic_id, index);
            let code = if view.leader == replication::quorum::NO_LEADER {
                LEADER_NOT_AVAILABLE
            } else {
                NONE
            };
            MetadataResponsePartition::default()
                .with_error_code(code)
                .with_partition_index(index)
                .with_leader_id(BrokerId(view.leader))
                .with_leader_epoch(view.leader_epoch)
                .with_replica_nodes(ids(view.replicas))
                .with_isr_nodes(ids(view.isr))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(NONE)
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(uuid::Uuid::from_bytes(topic.topic_id.0))
        .with_is_internal(topic.name == OFFSETS_TOPIC)
        .with_partitions(partitions)
}
