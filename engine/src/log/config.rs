use std::collections::BTreeMap;
use std::time::Duration;

use crate::batch::Compression;

use crate::limits::{
    DELETE_RETENTION_MS_DEFAULT, INDEX_INTERVAL_BYTES_DEFAULT, MAX_MESSAGE_BYTES_DEFAULT,
    RETENTION_MS_DEFAULT, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
    SEGMENT_MS_DEFAULT, TAIL_CACHE_BYTES_DEFAULT,
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

/// Kafka's `compression.type`: keep the producer's codec, or store every
/// batch in this one (recompressing on the owning shard as it is appended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicCompression {
    #[default]
    Producer,
    Codec(Compression),
}

/// A ratio in [0, 1] (`min.cleanable.dirty.ratio`), compared by its bits so
/// a config stays `Eq`.
#[derive(Debug, Clone, Copy)]
pub struct Ratio(pub f64);

impl PartialEq for Ratio {
    fn eq(&self, other: &Ratio) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Ratio {}

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
    /// `compression.type` and the levels of `compression.<codec>.level`
    /// (gzip -1 is zlib's default).
    pub compression: TopicCompression,
    pub gzip_level: i32,
    pub lz4_level: i32,
    pub zstd_level: i32,
    /// `message.timestamp.before.max.ms` and `...after.max.ms`: how far a
    /// CreateTime record's timestamp may lie before or after the broker's
    /// clock; `...difference.max.ms` (deprecated) stands in for either when
    /// it is left at Kafka's "no bound" (Long.MAX_VALUE).
    pub timestamp_before_max_ms: u64,
    pub timestamp_after_max_ms: u64,
    pub timestamp_difference_max_ms: u64,
    /// `min.insync.replicas`: an acks=all produce needs this many in-sync
    /// replicas (one on a single broker).
    pub min_insync_replicas: u32,
    /// `segment.jitter.ms`: segments roll up to this much before `segment.ms`,
    /// so partitions created together do not all roll at once.
    pub segment_jitter_ms: u64,
    /// Compaction's settings: `delete.retention.ms`, `min.compaction.lag.ms`,
    /// `max.compaction.lag.ms` (also caps a compacted log's segment age) and
    /// `min.cleanable.dirty.ratio`.
    pub delete_retention_ms: u64,
    pub min_compaction_lag_ms: u64,
    pub max_compaction_lag_ms: u64,
    pub min_cleanable_dirty_ratio: Ratio,
    /// `unclean.leader.election.enable`, for replication.
    pub unclean_leader_election: bool,
    /// Topic configs kept as text: accepted and described, with nothing to
    /// act on in a single broker yet ([`TopicConfigKey::stored_default`]).
    pub stored: BTreeMap<&'static str, String>,
    /// Bytes of recent batches kept in memory for reads.
    pub tail_cache_bytes: usize,
    /// The broker's `producer.id.expiration.ms`: a producer with no open
    /// transaction that wrote nothing here for this long is forgotten.
    pub producer_id_expiration_ms: i64,
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
            compression: TopicCompression::Producer,
            gzip_level: -1,
            lz4_level: 9,
            zstd_level: 3,
            timestamp_before_max_ms: NO_BOUND_MS,
            timestamp_after_max_ms: NO_BOUND_MS,
            timestamp_difference_max_ms: NO_BOUND_MS,
            min_insync_replicas: 1,
            segment_jitter_ms: 0,
            delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: NO_BOUND_MS,
            min_cleanable_dirty_ratio: Ratio(0.5),
            unclean_leader_election: false,
            stored: config_keys::stored_defaults(),
            tail_cache_bytes: TAIL_CACHE_BYTES_DEFAULT,
            producer_id_expiration_ms: super::producers::PRODUCER_ID_EXPIRATION_MS,
            write_buffer_bytes: crate::io_tuning::write_buffer_bytes(),
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

    /// The codec and level batches are stored in, when the topic names one.
    pub fn target_compression(&self) -> Option<(Compression, Option<i32>)> {
        let TopicCompression::Codec(codec) = self.compression else {
            return None;
        };
        let level = match codec {
            Compression::Gzip => Some(self.gzip_level),
            Compression::Lz4 => Some(self.lz4_level),
            Compression::Zstd => Some(self.zstd_level),
            Compression::None | Compression::Snappy => None,
        };
        Some((codec, level))
    }

    /// The window a CreateTime record's timestamp must fall in, as
    /// (before, after) milliseconds around now; `None` when unbounded.
    pub fn timestamp_window(&self) -> Option<(u64, u64)> {
        if self.timestamp_type == TimestampType::LogAppendTime {
            return None;
        }
        let or_difference = |ms: u64| {
            if ms == NO_BOUND_MS {
                self.timestamp_difference_max_ms
            } else {
                ms
            }
        };
        let before = or_difference(self.timestamp_before_max_ms);
        let after = or_difference(self.timestamp_after_max_ms);
        (before != NO_BOUND_MS || after != NO_BOUND_MS).then_some((before, after))
    }

    /// How old the active segment may grow before it rolls: `segment.ms`,
    /// capped by `max.compaction.lag.ms` on a compacted log, less this
    /// segment's share of `segment.jitter.ms` (fixed per segment, from its
    /// base offset and creation time).
    pub(crate) fn segment_max_age_ms(&self, base_offset: i64, created_ms: i64) -> u64 {
        let mut age = self.segment_ms;
        if self.cleanup.compact {
            age = age.min(self.max_compaction_lag_ms);
        }
        let span = self.segment_jitter_ms.min(self.segment_ms);
        if span > 0 {
            // SplitMix64's finalizer: a well-spread value from the segment.
            let mut z = (base_offset as u64) ^ (created_ms as u64).rotate_left(32);
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            age = age.saturating_sub(z % span);
        }
        age.max(1)
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
pub use config_keys::{
    ConfigError, ConfigType, TOPIC_CONFIGS, TopicConfigKey, ValueKind, topic_config,
    topic_config_by_broker_name,
};

/// Kafka's Long.MAX_VALUE where a config means "no bound".
const NO_BOUND_MS: u64 = i64::MAX as u64;
