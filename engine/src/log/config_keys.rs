//! Kafka's topic config keys, as text, mapped onto [`LogConfig`]: what
//! CreateTopics, AlterConfigs and DescribeConfigs read and write.

use super::{CleanupPolicy, FlushPolicy, LogConfig, TimestampType};
use crate::limits::{SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};

/// Every topic config key the broker honours; anything else is refused
/// (Kafka's INVALID_CONFIG).
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "flush.messages",
    "flush.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

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

/// Kafka's "never" for flush.ms and flush.messages (Long.MAX_VALUE).
const NEVER: i64 = i64::MAX;

fn parse_i64(key: &'static str, value: &str) -> Result<i64, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::InvalidValue {
        key,
        value: value.to_string(),
        reason: "not an integer",
    })
}

/// A non-negative value, or `None` for -1 (unlimited).
fn parse_limit(key: &'static str, value: &str) -> Result<Option<u64>, ConfigError> {
    match parse_i64(key, value)? {
        -1 => Ok(None),
        n => u64::try_from(n)
            .map(Some)
            .map_err(|_| ConfigError::InvalidValue {
                key,
                value: value.to_string(),
                reason: "must be -1 (unlimited) or at least 0",
            }),
    }
}

fn parse_at_least(key: &'static str, value: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let n = parse_i64(key, value)?;
    if n < min || n > max {
        let reason = "out of range";
        return Err(ConfigError::InvalidValue {
            key,
            value: value.to_string(),
            reason,
        });
    }
    Ok(n)
}

fn key_of(key: &str) -> Result<&'static str, ConfigError> {
    TOPIC_CONFIG_KEYS
        .iter()
        .find(|k| **k == key)
        .copied()
        .ok_or_else(|| ConfigError::UnknownKey(key.to_string()))
}

impl LogConfig {
    /// Sets one Kafka topic config from its text value, as Kafka parses it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let key = key_of(key)?;
        let invalid = |reason| ConfigError::InvalidValue {
            key,
            value: value.to_string(),
            reason,
        };
        match key {
            "cleanup.policy" => {
                let mut policy = CleanupPolicy {
                    delete: false,
                    compact: false,
                };
                for part in value.split(',').map(str::trim) {
                    match part {
                        "delete" => policy.delete = true,
                        "compact" => policy.compact = true,
                        _ => return Err(invalid("expected delete, compact or both")),
                    }
                }
                self.cleanup = policy;
            }
            "flush.messages" => {
                let n = parse_at_least(key, value, 1, NEVER)?;
                self.flush = flush_policy(self.flush, None, Some(n));
            }
            "flush.ms" => {
                let n = parse_at_least(key, value, 0, NEVER)?;
                self.flush = flush_policy(self.flush, Some(n), None);
            }
            "max.message.bytes" => {
                self.max_message_bytes = parse_at_least(key, value, 0, i64::from(i32::MAX))? as u32;
            }
            "message.timestamp.type" => {
                self.timestamp_type = match value {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(invalid("expected CreateTime or LogAppendTime")),
                };
            }
            "retention.bytes" => self.retention_bytes = parse_limit(key, value)?,
            "retention.ms" => self.retention_ms = parse_limit(key, value)?,
            "segment.bytes" => {
                let min = SEGMENT_BYTES_MIN as i64;
                self.segment_bytes =
                    parse_at_least(key, value, min, SEGMENT_BYTES_MAX as i64)? as u64;
            }
            "segment.ms" => self.segment_ms = parse_at_least(key, value, 1, NEVER)? as u64,
            _ => return Err(ConfigError::UnknownKey(key.to_string())),
        }
        Ok(())
    }

    /// The current value of a topic config key, as Kafka prints it.
    pub fn get(&self, key: &str) -> Result<String, ConfigError> {
        let limit = |v: Option<u64>| v.map_or("-1".to_string(), |n| n.to_string());
        let (ms, messages) = match self.flush {
            FlushPolicy::EveryAppend => (NEVER, 1),
            FlushPolicy::Interval { ms, messages } => (
                ms.map_or(NEVER, |n| i64::try_from(n).unwrap_or(NEVER)),
                messages.map_or(NEVER, |n| i64::try_from(n).unwrap_or(NEVER)),
            ),
        };
        Ok(match key_of(key)? {
            "cleanup.policy" => match (self.cleanup.delete, self.cleanup.compact) {
                (true, true) => "compact,delete".to_string(),
                (false, true) => "compact".to_string(),
                _ => "delete".to_string(),
            },
            "flush.messages" => messages.to_string(),
            "flush.ms" => ms.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "message.timestamp.type" => match self.timestamp_type {
                TimestampType::CreateTime => "CreateTime".to_string(),
                TimestampType::LogAppendTime => "LogAppendTime".to_string(),
            },
            "retention.bytes" => limit(self.retention_bytes),
            "retention.ms" => limit(self.retention_ms),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            other => return Err(ConfigError::UnknownKey(other.to_string())),
        })
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
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_through_set_and_get() {
        let cases = [
            ("cleanup.policy", "compact,delete"),
            ("flush.ms", "1000"),
            ("flush.messages", "500"),
            ("max.message.bytes", "2097152"),
            ("message.timestamp.type", "LogAppendTime"),
            ("retention.bytes", "1073741824"),
            ("retention.ms", "-1"),
            ("segment.bytes", "536870912"),
            ("segment.ms", "3600000"),
        ];
        let mut config = LogConfig::default();
        for (key, value) in cases {
            config.set(key, value).unwrap();
        }
        for (key, value) in cases {
            assert_eq!(config.get(key).unwrap(), value, "{key}");
        }
        assert_eq!(
            config.flush,
            FlushPolicy::Interval {
                ms: Some(1000),
                messages: Some(500)
            }
        );
        assert_eq!(config.retention_ms, None);
    }

    #[test]
    fn defaults_read_as_kafka_prints_them() {
        let config = LogConfig::default();
        assert_eq!(config.get("retention.ms").unwrap(), "604800000");
        assert_eq!(config.get("retention.bytes").unwrap(), "-1");
        assert_eq!(config.get("cleanup.policy").unwrap(), "delete");
        assert_eq!(
            config.get("flush.messages").unwrap(),
            "1",
            "durable by default"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let mut config = LogConfig::default();
        assert_eq!(
            config.set("retention.hours", "1"),
            Err(ConfigError::UnknownKey("retention.hours".into()))
        );
        for (key, value) in [
            ("retention.ms", "soon"),
            ("retention.ms", "-2"),
            ("segment.bytes", "1"),
            ("segment.bytes", "4294967296"),
            ("cleanup.policy", "shred"),
            ("message.timestamp.type", "Now"),
            ("flush.messages", "0"),
        ] {
            assert!(
                matches!(
                    config.set(key, value),
                    Err(ConfigError::InvalidValue { .. })
                ),
                "{key}={value}"
            );
        }
        assert_eq!(
            config,
            LogConfig::default(),
            "refused values change nothing"
        );
    }

    #[test]
    fn flush_messages_one_or_never_means_durable_per_append() {
        let mut config = LogConfig::default();
        config.set("flush.ms", "100").unwrap();
        assert_eq!(
            config.flush,
            FlushPolicy::Interval {
                ms: Some(100),
                messages: None
            }
        );
        config.set("flush.messages", "1").unwrap();
        assert_eq!(config.flush, FlushPolicy::EveryAppend);
        config.set("flush.ms", "9223372036854775807").unwrap();
        assert_eq!(config.flush, FlushPolicy::EveryAppend);
    }
}
