use std::time::Duration;

use crate::limits::{
    INDEX_INTERVAL_BYTES_DEFAULT, MAX_MESSAGE_BYTES_DEFAULT, RETENTION_MS_DEFAULT,
    SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, SEGMENT_MS_DEFAULT,
    TAIL_CACHE_BYTES_DEFAULT, WRITE_BUFFER_BYTES_DEFAULT,
};

/// Which timestamp a topic stores (Kafka's `message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

/// Kafka's `cleanup.policy`: "delete", "compact" or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

/// When an append resolves and when the log is fdatasync'ed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    /// Every append resolves once its bytes are durable; concurrent appends
    /// share one fdatasync (group commit). The default.
    #[default]
    EveryAppend,
    /// Appends resolve when written; fdatasync runs every `ms` milliseconds
    /// and/or every `messages` messages (Kafka's `flush.ms`,
    /// `flush.messages`), whichever comes first.
    Interval {
        ms: Option<u64>,
        messages: Option<u64>,
    },
}

/// The per-partition settings the engine honours (a topic's configs merged
/// over the broker defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a non-empty active segment this old.
    pub segment_ms: u64,
    /// `retention.ms`; `None` keeps data forever (Kafka's -1).
    pub retention_ms: Option<u64>,
    /// `retention.bytes`; `None` is unlimited (Kafka's -1).
    pub retention_bytes: Option<u64>,
    /// `cleanup.policy`: whether retention deletes old segments and whether
    /// the log is compacted.
    pub cleanup: CleanupPolicy,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    pub flush: FlushPolicy,
    /// `index.interval.bytes`.
    pub index_interval_bytes: u32,
    /// Bytes of recent batches kept in memory for reads.
    pub tail_cache_bytes: usize,
    /// Size of one aligned staging buffer (a multiple of 4 KiB).
    pub write_buffer_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: SEGMENT_MS_DEFAULT,
            retention_ms: Some(RETENTION_MS_DEFAULT),
            retention_bytes: None,
            cleanup: CleanupPolicy {
                delete: true,
                compact: false,
            },
            max_message_bytes: MAX_MESSAGE_BYTES_DEFAULT,
            timestamp_type: TimestampType::CreateTime,
            flush: FlushPolicy::EveryAppend,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            tail_cache_bytes: TAIL_CACHE_BYTES_DEFAULT,
            write_buffer_bytes: WRITE_BUFFER_BYTES_DEFAULT,
        }
    }
}

impl LogConfig {
    /// Brings every field inside the bounds the engine relies on.
    pub(crate) fn clamped(mut self) -> LogConfig {
        self.segment_bytes = self
            .segment_bytes
            .clamp(SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX);
        self.segment_ms = self.segment_ms.max(1);
        self.index_interval_bytes = self.index_interval_bytes.max(1);
        let block = crate::limits::BLOCK_BYTES as usize;
        self.write_buffer_bytes = self.write_buffer_bytes.max(block).next_multiple_of(block);
        self
    }

    pub(crate) fn flush_interval(&self) -> Option<Duration> {
        match self.flush {
            FlushPolicy::Interval { ms: Some(ms), .. } => Some(Duration::from_millis(ms.max(1))),
            _ => None,
        }
    }
}

#[path = "config_keys.rs"]
mod config_keys;
pub use config_keys::{ConfigError, TOPIC_CONFIG_KEYS};
