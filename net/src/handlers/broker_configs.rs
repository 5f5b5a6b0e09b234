//! The broker's own settings as Kafka names them, for DescribeConfigs of
//! the broker resource: read-only for the life of the process (set by flags
//! or the config file), beside the topic defaults that AlterConfigs can
//! change.

use crate::broker::Shard;
use crate::group::GroupConfig;

/// Kafka's ConfigType values (DescribeConfigs v3+).
pub const BOOLEAN: i8 = 1;
pub const STRING: i8 = 2;
pub const INT: i8 = 3;
pub const LONG: i8 = 5;
pub const DOUBLE: i8 = 6;
pub const LIST: i8 = 7;

/// One static setting: its Kafka name, value, whether that is the built-in
/// default, and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticConfig {
    pub name: &'static str,
    pub value: String,
    pub is_default: bool,
    pub config_type: i8,
}

fn entry(
    name: &'static str,
    value: impl ToString,
    default: impl ToString,
    config_type: i8,
) -> StaticConfig {
    let (value, default) = (value.to_string(), default.to_string());
    StaticConfig {
        name,
        is_default: value == default,
        value,
        config_type,
    }
}

/// This broker's static settings, in Kafka's names.
pub fn static_configs(shard: &Shard) -> Vec<StaticConfig> {
    let node = &shard.node;
    let settings = &shard.settings;
    let defaults = crate::broker::Settings::default();
    let group = &settings.group;
    let group_defaults = GroupConfig::default();
    let listener = node
        .listeners
        .iter()
        .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        entry("broker.id", node.node_id, "", INT),
        entry("node.id", node.node_id, "", INT),
        entry("advertised.listeners", &listener, "", STRING),
        entry("log.dirs", &node.log_dir, "", STRING),
        entry(
            "auto.create.topics.enable",
            settings.auto_create_topics,
            defaults.auto_create_topics,
            BOOLEAN,
        ),
        entry(
            "num.partitions",
            settings.num_partitions,
            defaults.num_partitions,
            INT,
        ),
        entry(
            "offsets.topic.num.partitions",
            settings.offsets_topic_partitions,
            defaults.offsets_topic_partitions,
            INT,
        ),
        entry(
            "offsets.retention.minutes",
            settings.offsets_retention_ms / 60_000,
            defaults.offsets_retention_ms / 60_000,
            INT,
        ),
        entry(
            "offsets.retention.check.interval.ms",
            settings.offsets_retention_check_interval.as_millis(),
            defaults.offsets_retention_check_interval.as_millis(),
            LONG,
        ),
        entry(
            "group.initial.rebalance.delay.ms",
            group.initial_rebalance_delay_ms,
            group_defaults.initial_rebalance_delay_ms,
            INT,
        ),
        entry(
            "group.min.session.timeout.ms",
            group.min_session_timeout_ms,
            group_defaults.min_session_timeout_ms,
            INT,
        ),
        entry(
            "group.max.session.timeout.ms",
            group.max_session_timeout_ms,
            group_defaults.max_session_timeout_ms,
            INT,
        ),
    ]
}
