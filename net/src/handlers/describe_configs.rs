//! DescribeConfigs (key 32): a topic's configs (with where each value comes
//! from: the topic, the broker defaults, or the built-in default, and the
//! synonyms at each level when asked), and the broker's: the topic defaults
//! in their broker names, then its read-only settings (listeners, ids, log
//! dirs, partitions, group and offsets settings) as Kafka names them.

use bytes::Bytes;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use replication::metadata::ClusterMetadata;

use replication::metadata::acl;

use super::config_resource::{Resource, broker_keys, resource};
use super::errors::NONE;
use super::{Handler, broker_configs, decode_body};
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
        let resource = match resource(
            shard,
            request,
            acl::operation::DESCRIBE_CONFIGS,
            wanted.resource_type,
            &wanted.resource_name,
        ) {
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
        // Null or empty: every config.
        let wanted_keys = wanted
            .configuration_keys
            .filter(|keys| !keys.is_empty())
            .map(|keys| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>());
        let mut configs = log_configs(
            shard,
            &metadata,
            &resource,
            &wanted.resource_name,
            body.include_synonyms,
        );
        if resource == Resource::Broker {
            configs.extend(broker_configs::static_configs(shard).into_iter().map(|c| {
                let source = if c.is_default {
                    DEFAULT_CONFIG
                } else {
                    STATIC_BROKER_CONFIG
                };
                DescribeConfigsResourceResult::default()
                    .with_name(StrBytes::from_static_str(c.name))
                    .with_value(Some(StrBytes::from_string(c.value)))
                    .with_read_only(true)
                    .with_config_source(source)
                    .with_is_sensitive(false)
                    .with_config_type(c.config_type)
            }));
        }
        configs.retain(|c| {
            wanted_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k == c.name.as_str()))
        });
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

/// Kafka's ConfigType of a topic config (v3+).
fn config_type(key: &str) -> i8 {
    use engine::ConfigType;
    match engine::topic_config(key).map(|k| k.config_type()) {
        Some(ConfigType::Boolean) => broker_configs::BOOLEAN,
        Some(ConfigType::String) => broker_configs::STRING,
        Some(ConfigType::Int) => broker_configs::INT,
        Some(ConfigType::Double) => broker_configs::DOUBLE,
        Some(ConfigType::List) => broker_configs::LIST,
        Some(ConfigType::Long) | None => broker_configs::LONG,
    }
}

/// The topic configs of a topic, or the topic defaults of the broker (in
/// their broker names): each with its value, where it comes from and, when
/// asked, its synonyms in order of precedence (the topic's own value, the
/// dynamic broker default, the config file's, the built-in default).
fn log_configs(
    shard: &Shard,
    metadata: &ClusterMetadata,
    resource: &Resource,
    resource_name: &str,
    include_synonyms: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let overrides = metadata
        .topic(resource.topic())
        .map(|t| t.configs.clone())
        .unwrap_or_default();
    let config = shard.log_config(metadata, resource.topic());
    let builtin = engine::LogConfig::default();
    fn broker_name(key: &'static str) -> &'static str {
        engine::topic_config(key)
            .and_then(|k| k.broker_name)
            .unwrap_or(key)
    }
    let names: Vec<(&str, &str)> = match resource {
        Resource::Topic(_) => engine::TOPIC_CONFIGS
            .iter()
            .map(|k| (k.name, k.name))
            .collect(),
        Resource::Broker => broker_keys().collect(),
    };
    // Asked of this broker by id: its (only) dynamic config.
    let dynamic_source = match resource {
        Resource::Broker if !resource_name.is_empty() => DYNAMIC_BROKER_CONFIG,
        _ => DYNAMIC_DEFAULT_BROKER_CONFIG,
    };
    names
        .into_iter()
        .map(|(name, key)| {
            let dynamic = metadata.broker_configs().get(key);
            let file = shard.settings.topic_defaults.get(key);
            let mut levels: Vec<(&str, Option<String>, i8)> = Vec::new();
            if let Some(value) = overrides.get(key) {
                levels.push((key, Some(value.clone()), DYNAMIC_TOPIC_CONFIG));
            }
            if let Some(value) = dynamic {
                levels.push((broker_name(key), Some(value.clone()), dynamic_source));
            }
            if let Some(value) = file {
                levels.push((broker_name(key), Some(value.clone()), STATIC_BROKER_CONFIG));
            }
            // A config with no broker default (the replication throttles,
            // tiered storage's) has no default synonym, as in Kafka.
            if engine::topic_config(key).is_some_and(|k| k.broker_name.is_some()) {
                levels.push((broker_name(key), builtin.get(key).ok(), DEFAULT_CONFIG));
            }
            let source = levels.first().map_or(DEFAULT_CONFIG, |l| l.2);
            let synonyms = if include_synonyms {
                levels
                    .into_iter()
                    .map(|(name, value, source)| {
                        DescribeConfigsSynonym::default()
                            .with_name(StrBytes::from_string(name.to_string()))
                            .with_value(value.map(StrBytes::from_string))
                            .with_source(source)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_string(name.to_string()))
                .with_value(config.get(key).ok().map(StrBytes::from_string))
                .with_read_only(false)
                .with_config_source(source)
                .with_is_sensitive(false)
                .with_config_type(config_type(key))
                .with_synonyms(synonyms)
        })
        .collect()
}
