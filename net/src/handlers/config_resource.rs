//! What DescribeConfigs, AlterConfigs and IncrementalAlterConfigs share:
//! config resources (a topic, or the broker defaults), the broker names of
//! topic configs, validation, and the metadata command that applies them.

use std::collections::BTreeMap;

use replication::metadata::Command;

use super::errors::{
    INVALID_CONFIG, INVALID_REQUEST, UNKNOWN_TOPIC_OR_PARTITION, command_error_code,
};
use crate::broker::Shard;

pub(super) const RESOURCE_TOPIC: i8 = 2;
pub(super) const RESOURCE_BROKER: i8 = 4;

/// Broker-default config names and the topic configs they set defaults for
/// (Kafka's ServerTopicConfigSynonyms), in topic-config order.
pub fn broker_keys() -> impl Iterator<Item = (&'static str, &'static str)> {
    engine::TOPIC_CONFIGS
        .iter()
        .filter_map(|k| Some((k.broker_name?, k.name)))
}

/// The topic config a name stands for: its own name, or its broker
/// default's (`log.retention.ms`).
pub fn topic_key_of(name: &str) -> Option<&'static str> {
    engine::topic_config(name)
        .or_else(|| engine::topic_config_by_broker_name(name))
        .map(|k| k.name)
}

/// A config resource: a topic, or the broker (whose configs are the
/// defaults of every topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Resource {
    Topic(String),
    Broker,
}

impl Resource {
    /// The topic whose configs the resource describes; "" for the broker,
    /// whose configs are every topic's defaults (`Shard::log_config`).
    pub(super) fn topic(&self) -> &str {
        match self {
            Resource::Topic(name) => name,
            Resource::Broker => "",
        }
    }
}

/// A failure for one resource: Kafka error code and message.
pub(super) type ResourceError = (i16, String);

/// The resource a request names, if the request's principal may do `op`
/// (DescribeConfigs or AlterConfigs) to it: on the topic, or on the
/// cluster for the broker (TOPIC_ or CLUSTER_AUTHORIZATION_FAILED).
pub(super) fn resource(
    shard: &Shard,
    request: &crate::frame::Request,
    op: i8,
    resource_type: i8,
    name: &str,
) -> Result<Resource, ResourceError> {
    let denied = |code| Err((code, "the principal may not do this (ACLs)".to_string()));
    match resource_type {
        RESOURCE_TOPIC if !shard.allowed_topic(request, op, name) => {
            denied(super::errors::TOPIC_AUTHORIZATION_FAILED)
        }
        RESOURCE_BROKER if !shard.allowed_cluster(request, op) => {
            denied(super::errors::CLUSTER_AUTHORIZATION_FAILED)
        }
        RESOURCE_TOPIC if shard.metadata().topic(name).is_some() => {
            Ok(Resource::Topic(name.to_string()))
        }
        RESOURCE_TOPIC => Err((
            UNKNOWN_TOPIC_OR_PARTITION,
            format!("unknown topic {name:?}"),
        )),
        RESOURCE_BROKER if name.is_empty() || name == shard.node.node_id.to_string() => {
            Ok(Resource::Broker)
        }
        RESOURCE_BROKER => Err((INVALID_REQUEST, format!("unknown broker {name:?}"))),
        other => Err((
            INVALID_REQUEST,
            format!("config resource type {other} is not supported"),
        )),
    }
}

/// The topic config key a config name stands for on `resource`.
pub(super) fn topic_key(resource: &Resource, name: &str) -> Result<&'static str, ResourceError> {
    let found = match resource {
        Resource::Topic(_) => engine::topic_config(name),
        Resource::Broker => engine::topic_config_by_broker_name(name),
    }
    .map(|k| k.name);
    found.ok_or_else(|| (INVALID_CONFIG, format!("unknown config {name:?}")))
}

/// Checks and applies config changes (topic keys) to a resource.
pub(super) async fn alter(
    shard: &Shard,
    resource: Resource,
    set: BTreeMap<String, String>,
    delete: Vec<String>,
    validate_only: bool,
) -> Result<(), ResourceError> {
    let mut check = shard.log_config(&shard.metadata(), resource.topic());
    for (key, value) in &set {
        check
            .set(key, value)
            .map_err(|e| (INVALID_CONFIG, e.to_string()))?;
    }
    check
        .check_consistent()
        .map_err(|e| (INVALID_CONFIG, e.to_string()))?;
    let topic = match resource {
        Resource::Topic(name) => Some(name),
        Resource::Broker => None,
    };
    let command = Command::AlterConfigs { topic, set, delete };
    shard
        .execute_or_validate(command, None, validate_only)
        .await
        .map(|_| ())
        .map_err(|e| (command_error_code(&e), e.to_string()))
}
