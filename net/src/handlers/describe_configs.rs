//! DescribeConfigs (key 32): a topic's configs (with where each value comes
//! from: the topic, the broker defaults, or the built-in default) and the
//! broker-default configs.

use bytes::Bytes;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::config_resource::{BROKER_KEYS, Resource, resource};
use super::errors::NONE;
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::DescribeConfigs,
    min_version: 1,
    max_version: 4,
};

/// Kafka's ConfigSource values.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

pub async fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: DescribeConfigsRequest = decode_body(request)?;
    let metadata = shard.metadata();
    let mut results = Vec::with_capacity(body.resources.len());
    for wanted in body.resources {
        let result = DescribeConfigsResult::default()
            .with_resource_type(wanted.resource_type)
            .with_resource_name(wanted.resource_name.clone());
        let resource = match resource(shard, wanted.resource_type, &wanted.resource_name) {
            Ok(resource) => resource,
            Err((code, message)) => {
                results.push(
                    result
                        .with_error_code(code)
                        .with_error_message(Some(StrBytes::from_string(message))),
                );
                continue;
            }
        };
        let (topic, overrides) = match &resource {
            Resource::Topic(name) => (
                name.as_str(),
                metadata
                    .topic(name)
                    .map(|t| t.configs.clone())
                    .unwrap_or_default(),
            ),
            Resource::Broker => ("", Default::default()),
        };
        let config = shard.log_config(&metadata, topic);
        let names: Vec<(String, &str)> = match &resource {
            Resource::Topic(_) => engine::TOPIC_CONFIG_KEYS
                .iter()
                .map(|k| (k.to_string(), *k))
                .collect(),
            Resource::Broker => BROKER_KEYS
                .iter()
                .map(|(b, t)| (b.to_string(), *t))
                .collect(),
        };
        // Null or empty: every config.
        let wanted_keys = wanted
            .configuration_keys
            .filter(|keys| !keys.is_empty())
            .map(|keys| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>());
        let configs = names
            .into_iter()
            .filter(|(name, _)| wanted_keys.as_ref().is_none_or(|keys| keys.contains(name)))
            .map(|(name, key)| {
                let from_broker = metadata.broker_configs().contains_key(key);
                let source = match &resource {
                    Resource::Topic(_) if overrides.contains_key(key) => DYNAMIC_TOPIC_CONFIG,
                    // Asked of this broker by id: its (only) dynamic config.
                    Resource::Broker if from_broker && !wanted.resource_name.is_empty() => {
                        DYNAMIC_BROKER_CONFIG
                    }
                    _ if from_broker => DYNAMIC_DEFAULT_BROKER_CONFIG,
                    _ if shard.settings.topic_defaults.contains_key(key) => STATIC_BROKER_CONFIG,
                    _ => DEFAULT_CONFIG,
                };
                DescribeConfigsResourceResult::default()
                    .with_name(StrBytes::from_string(name))
                    .with_value(config.get(key).ok().map(StrBytes::from_string))
                    .with_read_only(false)
                    .with_config_source(source)
                    .with_is_sensitive(false)
                    .with_config_type(config_type(key))
            })
            .collect();
        results.push(
            result
                .with_error_code(NONE)
                .with_error_message(None)
                .with_configs(configs),
        );
    }
    let response = DescribeConfigsResponse::default().with_results(results);
    encode_response(
        ApiKey::DescribeConfigs,
        version,
        request.correlation_id(),
        &response,
    )
}

/// Kafka's ConfigType of each key (v3+).
fn config_type(key: &str) -> i8 {
    match key {
        "cleanup.policy" => 7,         // LIST
        "message.timestamp.type" => 2, // STRING
        "max.message.bytes" => 3,      // INT
        _ => 5,                        // LONG
    }
}
