//! Kafka's topic configs, as text, mapped onto [`LogConfig`]: what
//! CreateTopics, AlterConfigs and DescribeConfigs read and write. Every
//! topic config Apache Kafka 3.9 defines is here, validated as Kafka
//! validates it; those that act on a single broker set typed fields, the
//! rest are kept as text (see [`TopicConfigKey::stored_default`]).

use std::collections::BTreeMap;

use super::{CleanupPolicy, FlushPolicy, LogConfig, TimestampType, TopicCompression};
use crate::batch::Compression;
use crate::limits::{SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};

/// How a config's text is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A Java long in `[min, max]`.
    Long { min: i64, max: i64 },
    /// A Java int in `[min, max]`.
    Int { min: i64, max: i64 },
    /// A double in [0, 1].
    Ratio,
    /// `true` or `false`, any case.
    Bool,
    /// Exactly one of these strings.
    OneOf(&'static [&'static str]),
    /// A comma-separated list of these strings (possibly empty).
    ListOf(&'static [&'static str]),
    /// `*`, or a list of `partition:broker` pairs (the replication throttles).
    ThrottledReplicas,
    /// A Kafka release or metadata version (`message.format.version`).
    FormatVersion,
    /// gzip's level: -1 (zlib's default) or 1-9.
    GzipLevel,
}

/// The type Kafka reports for a config (DescribeConfigs v3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Long,
    Double,
    List,
}

/// One topic config as Kafka defines it.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigKey {
    pub name: &'static str,
    /// The broker config that sets its default (Kafka's
    /// ServerTopicConfigSynonyms), if there is one.
    pub broker_name: Option<&'static str>,
    pub kind: ValueKind,
    /// For configs accepted, validated and described but with nothing to act
    /// on in a single broker yet (replication throttles, tiered storage, file
    /// deletion delays, down-conversion): the default as Kafka prints it; the
    /// value is kept as text. `None` for configs the engine holds typed.
    pub stored_default: Option<&'static str>,
}

impl TopicConfigKey {
    pub fn config_type(&self) -> ConfigType {
        match self.kind {
            ValueKind::Long { .. } => ConfigType::Long,
            ValueKind::Int { .. } | ValueKind::GzipLevel => ConfigType::Int,
            ValueKind::Ratio => ConfigType::Double,
            ValueKind::Bool => ConfigType::Boolean,
            ValueKind::OneOf(_) | ValueKind::FormatVersion => ConfigType::String,
            ValueKind::ListOf(_) | ValueKind::ThrottledReplicas => ConfigType::List,
        }
    }
}

/// Java's Long.MAX_VALUE: Kafka's "never" and "no bound".
const NEVER: i64 = i64::MAX;
const INT_MAX: i64 = i32::MAX as i64;

const fn long(min: i64) -> ValueKind {
    ValueKind::Long { min, max: NEVER }
}
const fn int(min: i64, max: i64) -> ValueKind {
    ValueKind::Int { min, max }
}

const fn key(
    name: &'static str,
    broker_name: Option<&'static str>,
    kind: ValueKind,
) -> TopicConfigKey {
    TopicConfigKey {
        name,
        broker_name,
        kind,
        stored_default: None,
    }
}

const fn stored(
    name: &'static str,
    broker_name: Option<&'static str>,
    kind: ValueKind,
    default: &'static str,
) -> TopicConfigKey {
    TopicConfigKey {
        name,
        broker_name,
        kind,
        stored_default: Some(default),
    }
}

/// The codecs `compression.type` names, and Kafka's "keep the producer's".
const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// Every topic config of Apache Kafka 3.9, sorted by name.
pub const TOPIC_CONFIGS: &[TopicConfigKey] = &[
    key(
        "cleanup.policy",
        Some("log.cleanup.policy"),
        ValueKind::ListOf(&["compact", "delete"]),
    ),
    key(
        "compression.gzip.level",
        Some("compression.gzip.level"),
        ValueKind::GzipLevel,
    ),
    key(
        "compression.lz4.level",
        Some("compression.lz4.level"),
        int(1, 17),
    ),
    key(
        "compression.type",
        Some("compression.type"),
        ValueKind::OneOf(COMPRESSION_TYPES),
    ),
    key(
        "compression.zstd.level",
        Some("compression.zstd.level"),
        int(-131_072, 22),
    ),
    key(
        "delete.retention.ms",
        Some("log.cleaner.delete.retention.ms"),
        long(0),
    ),
    stored(
        "file.delete.delay.ms",
        Some("log.segment.delete.delay.ms"),
        long(0),
        "60000",
    ),
    key(
        "flush.messages",
        Some("log.flush.interval.messages"),
        long(1),
    ),
    key("flush.ms", Some("log.flush.interval.ms"), long(0)),
    stored(
        "follower.replication.throttled.replicas",
        None,
        ValueKind::ThrottledReplicas,
        "",
    ),
    key(
        "index.interval.bytes",
        Some("log.index.interval.bytes"),
        int(0, INT_MAX),
    ),
    stored(
        "leader.replication.throttled.replicas",
        None,
        ValueKind::ThrottledReplicas,
        "",
    ),
    stored(
        "local.retention.bytes",
        Some("log.local.retention.bytes"),
        long(-2),
        "-2",
    ),
    stored(
        "local.retention.ms",
        Some("log.local.retention.ms"),
        long(-2),
        "-2",
    ),
    key(
        "max.compaction.lag.ms",
        Some("log.cleaner.max.compaction.lag.ms"),
        long(1),
    ),
    key(
        "max.message.bytes",
        Some("message.max.bytes"),
        int(0, INT_MAX),
    ),
    stored(
        "message.downconversion.enable",
        Some("log.message.downconversion.enable"),
        ValueKind::Bool,
        "true",
    ),
    stored(
        "message.format.version",
        Some("log.message.format.version"),
        ValueKind::FormatVersion,
        "3.0-IV1",
    ),
    key(
        "message.timestamp.after.max.ms",
        Some("log.message.timestamp.after.max.ms"),
        long(0),
    ),
    key(
        "message.timestamp.before.max.ms",
        Some("log.message.timestamp.before.max.ms"),
        long(0),
    ),
    key(
        "message.timestamp.difference.max.ms",
        Some("log.message.timestamp.difference.max.ms"),
        long(0),
    ),
    key(
        "message.timestamp.type",
        Some("log.message.timestamp.type"),
        ValueKind::OneOf(&["CreateTime", "LogAppendTime"]),
    ),
    key(
        "min.cleanable.dirty.ratio",
        Some("log.cleaner.min.cleanable.ratio"),
        ValueKind::Ratio,
    ),
    key(
        "min.compaction.lag.ms",
        Some("log.cleaner.min.compaction.lag.ms"),
        long(0),
    ),
    key(
        "min.insync.replicas",
        Some("min.insync.replicas"),
        int(1, INT_MAX),
    ),
    stored(
        "preallocate",
        Some("log.preallocate"),
        ValueKind::Bool,
        "false",
    ),
    stored("remote.log.copy.disable", None, ValueKind::Bool, "false"),
    stored(
        "remote.log.delete.on.disable",
        None,
        ValueKind::Bool,
        "false",
    ),
    stored("remote.storage.enable", None, ValueKind::Bool, "false"),
    key(
        "retention.bytes",
        Some("log.retention.bytes"),
        ValueKind::Long {
            min: i64::MIN,
            max: NEVER,
        },
    ),
    key("retention.ms", Some("log.retention.ms"), long(-1)),
    key(
        "segment.bytes",
        Some("log.segment.bytes"),
        ValueKind::Int {
            min: SEGMENT_BYTES_MIN as i64,
            max: SEGMENT_BYTES_MAX as i64,
        },
    ),
    stored(
        "segment.index.bytes",
        Some("log.index.size.max.bytes"),
        int(4, INT_MAX),
        "10485760",
    ),
    key("segment.jitter.ms", Some("log.roll.jitter.ms"), long(0)),
    key("segment.ms", Some("log.roll.ms"), long(1)),
    key(
        "unclean.leader.election.enable",
        Some("unclean.leader.election.enable"),
        ValueKind::Bool,
    ),
];

/// The topic config named `name`.
pub fn topic_config(name: &str) -> Option<&'static TopicConfigKey> {
    TOPIC_CONFIGS.iter().find(|k| k.name == name)
}

/// The topic config whose broker default `broker_name` sets.
pub fn topic_config_by_broker_name(broker_name: &str) -> Option<&'static TopicConfigKey> {
    TOPIC_CONFIGS
        .iter()
        .find(|k| k.broker_name == Some(broker_name))
}

/// The values of the configs kept as text, at their defaults.
pub(super) fn stored_defaults() -> BTreeMap<&'static str, String> {
    TOPIC_CONFIGS
        .iter()
        .filter_map(|k| Some((k.name, k.stored_default?.to_string())))
        .collect()
}

/// A config key or value the broker does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown topic config {0:?}")]
    UnknownKey(String),
    #[error("invalid value {value:?} for {key}: {reason}")]
    InvalidValue {
        key: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// A parsed, valid value.
#[derive(Debug, Clone, PartialEq)]
enum Value<'a> {
    Number(i64),
    Ratio(f64),
    Bool(bool),
    Text(&'a str),
    List(Vec<&'a str>),
}

/// Checks `value` as Kafka's ConfigDef would for `key`.
fn parse<'a>(key: &TopicConfigKey, value: &'a str) -> Result<Value<'a>, ConfigError> {
    let invalid = |reason| ConfigError::InvalidValue {
        key: key.name,
        value: value.to_string(),
        reason,
    };
    let trimmed = value.trim();
    let number = |min: i64, max: i64| -> Result<Value<'a>, ConfigError> {
        let n: i64 = trimmed.parse().map_err(|_| invalid("not an integer"))?;
        if n < min || n > max {
            return Err(invalid("out of range"));
        }
        Ok(Value::Number(n))
    };
    let list = || -> Vec<&'a str> {
        if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split(',').map(str::trim).collect()
        }
    };
    match key.kind {
        ValueKind::Long { min, max } | ValueKind::Int { min, max } => number(min, max),
        ValueKind::GzipLevel => match number(-1, 9)? {
            Value::Number(0) => Err(invalid("expected -1 or 1 to 9")),
            n => Ok(n),
        },
        ValueKind::Ratio => {
            let r: f64 = trimmed.parse().map_err(|_| invalid("not a number"))?;
            if !(0.0..=1.0).contains(&r) {
                return Err(invalid("expected a value between 0 and 1"));
            }
            Ok(Value::Ratio(r))
        }
        ValueKind::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(invalid("expected true or false")),
        },
        ValueKind::OneOf(allowed) => allowed
            .iter()
            .find(|a| **a == trimmed)
            .map(|_| Value::Text(trimmed))
            .ok_or_else(|| invalid("not one of the allowed values")),
        ValueKind::ListOf(allowed) => {
            let items = list();
            if items.iter().any(|i| !allowed.contains(i)) {
                return Err(invalid("a list item is not one of the allowed values"));
            }
            Ok(Value::List(items))
        }
        ValueKind::ThrottledReplicas => {
            let items = list();
            let pair = |item: &str| {
                item.split_once(':').is_some_and(|(p, b)| {
                    p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
                })
            };
            let valid = items == ["*"] || items.iter().all(|i| pair(i));
            if !valid {
                return Err(invalid("expected * or a list of partition:broker pairs"));
            }
            Ok(Value::List(items))
        }
        ValueKind::FormatVersion => {
            if !is_format_version(trimmed) {
                return Err(invalid("not a Kafka version (such as 2.8 or 3.0-IV1)"));
            }
            Ok(Value::Text(trimmed))
        }
    }
}

/// A Kafka release or metadata version up to 3.x: `0.10.2`, `2.8`,
/// `3.0-IV1`.
fn is_format_version(value: &str) -> bool {
    let (release, iv) = match value.split_once("-IV") {
        Some((release, iv)) => (release, Some(iv)),
        None => (value, None),
    };
    let parts: Vec<&str> = release.split('.').collect();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (2..=3).contains(&parts.len())
        && parts.iter().all(|p| numeric(p))
        && matches!(parts.first(), Some(&("0" | "1" | "2" | "3")))
        && iv.is_none_or(numeric)
}

/// A double as Java's Double.toString prints it ("0.5", "1.0").
fn java_double(r: f64) -> String {
    if r.fract() == 0.0 {
        format!("{r:.1}")
    } else if r >= 1e-3 {
        r.to_string()
    } else {
        let s = format!("{r:E}");
        match s.split_once('E') {
            Some((mantissa, exp)) if !mantissa.contains('.') => format!("{mantissa}.0E{exp}"),
            _ => s,
        }
    }
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// -1 (or any negative) as "unlimited".
fn limit(n: i64) -> Option<u64> {
    u64::try_from(n).ok()
}

impl LogConfig {
    /// Sets one Kafka topic config from its text value, as Kafka parses it.
    /// A refused value changes nothing.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let key = topic_config(name).ok_or_else(|| ConfigError::UnknownKey(name.to_string()))?;
        let parsed = parse(key, value)?;
        if key.stored_default.is_some() {
            if key.name == "remote.storage.enable" && parsed == Value::Bool(true) {
                return Err(ConfigError::InvalidValue {
                    key: key.name,
                    value: value.to_string(),
                    reason: "tiered storage is not enabled on this broker",
                });
            }
            let text = match parsed {
                Value::Bool(b) => b.to_string(),
                Value::List(items) => items.join(","),
                _ => value.trim().to_string(),
            };
            self.stored.insert(key.name, text);
            return Ok(());
        }
        let n = match parsed {
            Value::Number(n) => n,
            _ => 0,
        };
        match (key.name, parsed) {
            ("cleanup.policy", Value::List(items)) => {
                self.cleanup = CleanupPolicy {
                    delete: items.contains(&"delete"),
                    compact: items.contains(&"compact"),
                };
            }
            ("compression.type", Value::Text(codec)) => {
                self.compression = match codec {
                    "uncompressed" => TopicCompression::Codec(Compression::None),
                    "gzip" => TopicCompression::Codec(Compression::Gzip),
                    "snappy" => TopicCompression::Codec(Compression::Snappy),
                    "lz4" => TopicCompression::Codec(Compression::Lz4),
                    "zstd" => TopicCompression::Codec(Compression::Zstd),
                    _ => TopicCompression::Producer,
                }
            }
            ("compression.gzip.level", _) => self.gzip_level = n as i32,
            ("compression.lz4.level", _) => self.lz4_level = n as i32,
            ("compression.zstd.level", _) => self.zstd_level = n as i32,
            ("delete.retention.ms", _) => self.delete_retention_ms = unsigned(n),
            ("flush.messages", _) => self.flush = flush_policy(self.flush, None, Some(n)),
            ("flush.ms", _) => self.flush = flush_policy(self.flush, Some(n), None),
            ("index.interval.bytes", _) => self.index_interval_bytes = n as u32,
            ("max.compaction.lag.ms", _) => self.max_compaction_lag_ms = unsigned(n),
            ("max.message.bytes", _) => self.max_message_bytes = n as u32,
            ("message.timestamp.after.max.ms", _) => self.timestamp_after_max_ms = unsigned(n),
            ("message.timestamp.before.max.ms", _) => {
                self.timestamp_before_max_ms = unsigned(n);
            }
            ("message.timestamp.difference.max.ms", _) => {
                self.timestamp_difference_max_ms = unsigned(n);
            }
            ("message.timestamp.type", Value::Text(t)) => {
                self.timestamp_type = if t == "LogAppendTime" {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                };
            }
            ("min.cleanable.dirty.ratio", Value::Ratio(r)) => {
                self.min_cleanable_dirty_ratio = super::Ratio(r);
            }
            ("min.compaction.lag.ms", _) => self.min_compaction_lag_ms = unsigned(n),
            ("min.insync.replicas", _) => self.min_insync_replicas = n as u32,
            ("retention.bytes", _) => self.retention_bytes = limit(n),
            ("retention.ms", _) => self.retention_ms = limit(n),
            ("segment.bytes", _) => self.segment_bytes = unsigned(n),
            ("segment.jitter.ms", _) => self.segment_jitter_ms = unsigned(n),
            ("segment.ms", _) => self.segment_ms = unsigned(n),
            ("unclean.leader.election.enable", Value::Bool(b)) => {
                self.unclean_leader_election = b;
            }
            (other, _) => return Err(ConfigError::UnknownKey(other.to_string())),
        }
        Ok(())
    }

    /// The current value of a topic config, as Kafka prints it.
    pub fn get(&self, name: &str) -> Result<String, ConfigError> {
        let key = topic_config(name).ok_or_else(|| ConfigError::UnknownKey(name.to_string()))?;
        if let Some(default) = key.stored_default {
            return Ok(self
                .stored
                .get(key.name)
                .cloned()
                .unwrap_or_else(|| default.to_string()));
        }
        let limit = |v: Option<u64>| v.map_or("-1".to_string(), |n| n.to_string());
        let (ms, messages) = match self.flush {
            FlushPolicy::EveryAppend => (NEVER, 1),
            FlushPolicy::Interval { ms, messages } => (
                ms.map_or(NEVER, |n| i64::try_from(n).unwrap_or(NEVER)),
                messages.map_or(NEVER, |n| i64::try_from(n).unwrap_or(NEVER)),
            ),
        };
        Ok(match key.name {
            "cleanup.policy" => {
                let CleanupPolicy { delete, compact } = self.cleanup;
                let parts = [(compact, "compact"), (delete, "delete")];
                let named: Vec<&str> = parts.iter().filter(|p| p.0).map(|p| p.1).collect();
                named.join(",")
            }
            "compression.type" => match self.compression {
                TopicCompression::Producer => "producer",
                TopicCompression::Codec(Compression::None) => "uncompressed",
                TopicCompression::Codec(Compression::Gzip) => "gzip",
                TopicCompression::Codec(Compression::Snappy) => "snappy",
                TopicCompression::Codec(Compression::Lz4) => "lz4",
                TopicCompression::Codec(Compression::Zstd) => "zstd",
            }
            .to_string(),
            "compression.gzip.level" => self.gzip_level.to_string(),
            "compression.lz4.level" => self.lz4_level.to_string(),
            "compression.zstd.level" => self.zstd_level.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "flush.messages" => messages.to_string(),
            "flush.ms" => ms.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms.to_string(),
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms.to_string(),
            "message.timestamp.difference.max.ms" => self.timestamp_difference_max_ms.to_string(),
            "message.timestamp.type" => match self.timestamp_type {
                TimestampType::CreateTime => "CreateTime".to_string(),
                TimestampType::LogAppendTime => "LogAppendTime".to_string(),
            },
            "min.cleanable.dirty.ratio" => java_double(self.min_cleanable_dirty_ratio.0),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "retention.bytes" => limit(self.retention_bytes),
            "retention.ms" => limit(self.retention_ms),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.jitter.ms" => self.segment_jitter_ms.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "unclean.leader.election.enable" => self.unclean_leader_election.to_string(),
            other => return Err(ConfigError::UnknownKey(other.to_string())),
        })
    }

    /// Checks what no single config can: Kafka refuses a min.compaction.lag.ms
    /// above max.compaction.lag.ms.
    pub fn check_consistent(&self) -> Result<(), ConfigError> {
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms {
            return Err(ConfigError::InvalidValue {
                key: "min.compaction.lag.ms",
                value: self.min_compaction_lag_ms.to_string(),
                reason: "above max.compaction.lag.ms",
            });
        }
        Ok(())
    }
}

/// Combines a flush.ms or flush.messages setting with the current policy.
/// `flush.messages=1` is "sync every append": the default durable policy.
/// Kafka's "never" (Long.MAX_VALUE) on both returns to the default too,
/// since shardlog is durable by default.
fn flush_policy(current: FlushPolicy, ms: Option<i64>, messages: Option<i64>) -> FlushPolicy {
    let (old_ms, old_messages) = match current {
        FlushPolicy::EveryAppend => (None, None),
        FlushPolicy::Interval { ms, messages } => (ms, messages),
    };
    let finite = |n: i64| (n != NEVER).then_some(n as u64);
    let ms = match ms {
        Some(n) => finite(n),
        None => old_ms,
    };
    let messages = match messages {
        Some(n) => finite(n),
        None => old_messages,
    };
    match (ms, messages) {
        (None, None) | (_, Some(1)) => FlushPolicy::EveryAppend,
        (ms, messages) => FlushPolicy::Interval { ms, messages },
    }
}

#[cfg(test)]
#[path = "config_keys_test.rs"]
mod tests;
