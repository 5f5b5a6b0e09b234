//! One partition's log: [`Log`].
//!
//! Lives on exactly one shard (it is `!Send`); every method runs on that
//! shard's executor. State is in a `RefCell` that is never borrowed across
//! an `.await`; two async locks order the operations that do await:
//! `append_lock` (offset assignment, rolls, retention, close) and
//! `segments_lock` (what removes or replaces sealed segments: retention,
//! DeleteRecords, the cleaner's swaps; taken before `append_lock`, so a
//! swap's file operations never hold producers up); the flusher task
//! alone writes and fdatasyncs the active segment.

mod clean;
mod config;
pub(crate) mod cursor;
mod epochs;
mod flush_group;
mod flusher;
mod log_store;
mod merge;
mod open;
mod producers;
mod read;
mod read_ahead;
mod retention;
mod sealed;
pub(crate) mod segment;
mod staging;
mod tail_cache;
mod truncate;
pub use read_ahead::{
    ReadAheadUsage, set_shard_budget as set_read_ahead_shard_budget,
    shard_usage as read_ahead_shard_usage,
};
pub use tail_cache::{
    set_shard_budget as set_tail_cache_shard_budget, shard_usage as tail_cache_shard_usage,
};
mod write;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::{Mutex, Notify};

pub use clean::CleanStats;
pub use config::{
    CleanupPolicy, ConfigError, ConfigType, FlushPolicy, LogConfig, Ratio, TOPIC_CONFIGS,
    TimestampType, TopicCompression, TopicConfigKey, ValueKind, topic_config,
    topic_config_by_broker_name,
};
pub use log_store::{InternalRecord, InternalTxn};
pub use producers::{AbortedTxn, PRODUCER_ID_EXPIRATION_MS, ProducerError, ProducerView};
pub use read::{Chunk, ReadResult};
pub use tail_cache::CachedBatch;
pub use write::StagedAppend;

use crate::io::TaskHandle;
use crate::{IoError, Offset};
use sealed::SealedSegment;
pub use sealed::{SegmentCacheUsage, segment_cache_usage, set_segment_cache_limits};
use segment::ActiveSegment;
use staging::Staging;
use tail_cache::TailCache;

/// What a successful append returns (the fields of a Produce response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    /// The broker time stamped on the batches, or -1 for CreateTime topics.
    pub log_append_time: i64,
    pub log_start_offset: Offset,
    /// Records appended.
    pub record_count: u64,
}

#[derive(Debug)]
struct State {
    config: LogConfig,
    /// Sealed segments in offset order.
    sealed: Vec<SealedSegment>,
    active: ActiveSegment,
    log_start_offset: Offset,
    /// The next offset to assign (staged appends included).
    next_offset: Offset,
    /// Offsets below this have resolved appends and are readable.
    log_end_offset: Offset,
    /// Bytes of the active segment written to disk and readable.
    readable_bytes: u64,
    staging: Staging,
    tail: TailCache,
    /// Reads started ahead of the readers that will ask for them.
    read_ahead: read_ahead::ReadAheads,
    poisoned: Option<Arc<IoError>>,
    closed: bool,
    /// The flusher has an allocation ahead of the writes under way.
    allocating: bool,
    /// A roll is sealing the active segment: no allocation may start (one
    /// finishing after its truncate would grow the sealed file again).
    sealing: bool,
    /// Idempotent producers' sequences and epochs.
    producers: producers::Producers,
    /// The leader epoch appended batches are stamped with, once a cluster
    /// made this replica a leader; -1 (batches keep what the producer sent)
    /// for a broker that runs alone.
    leader_epoch: i32,
    /// Where each leader epoch starts in this log.
    epochs: replication::isr::EpochCache,
    /// In a cluster, the high watermark replication allows consumers to
    /// read below; `None` for a broker that runs alone (everything durable
    /// is readable).
    high_watermark: Option<Offset>,
    /// Where the next cleaning pass maps keys from (the last pass's map
    /// ended there; kept in the checkpoint).
    first_dirty: Offset,
    /// When the cleaner first saw each part of the log (checkpointed).
    clean_passes: crate::clean::PassHistory,
    /// When the first tombstone the last pass kept may go
    /// (`delete.retention.ms` after the cleaner first saw it): the log is
    /// cleaned again then, dirty or not (checkpointed).
    tombstones_due: Option<i64>,
    /// Bytes the cleaner removed since the log was opened, and when its
    /// last pass ended (ms): for log lines and metrics.
    cleaned_bytes: u64,
    last_cleaned_ms: Option<i64>,
    /// What the checkpoint and producer snapshot files hold (as read at
    /// open or last written; `None` if unknown): an unchanged one is not
    /// written again, so partitions that were not written to open and close
    /// without a sync.
    checkpoint_on_disk: Option<crate::checkpoint::Checkpoint>,
    snapshot_on_disk: Option<Vec<u8>>,
}

impl State {
    /// Where the first segment still on disk begins.
    fn first_base(&self) -> Offset {
        self.sealed
            .first()
            .map_or(self.active.meta.base_offset, |s| s.meta.base_offset)
    }

    /// The checkpoint as of now: the recovery point is the log end if
    /// `clean` (the active segment written out exactly, with indexes), else
    /// the active segment's base.
    fn checkpoint(&self, clean: bool) -> crate::checkpoint::Checkpoint {
        crate::checkpoint::Checkpoint {
            log_start_offset: self.log_start_offset,
            recovery_point: if clean {
                self.next_offset
            } else {
                self.active.meta.base_offset
            },
            cleaned_to: self.first_dirty,
            clean_passes: self.clean_passes.clone(),
            tombstones_due: self.tombstones_due,
        }
    }

    /// Whether the checkpoint on disk may say the active segment need not
    /// be scanned on open (a clean close, and no write since), or is
    /// unknown.
    fn claims_clean(&self) -> bool {
        self.checkpoint_on_disk
            .as_ref()
            .is_none_or(|c| c.recovery_point > self.active.meta.base_offset)
    }

    /// What consumers may read below: the durable end, capped by the high
    /// watermark in a cluster.
    fn visible_end(&self) -> Offset {
        self.high_watermark
            .map_or(self.log_end_offset, |hw| hw.min(self.log_end_offset))
    }
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    state: RefCell<State>,
    append_lock: Mutex<()>,
    /// Held while sealed segments are removed or replaced (before
    /// `append_lock` when both are needed).
    segments_lock: Mutex<()>,
    /// Wakes the flusher: something was staged, or the log is closing.
    staged: Notify,
    /// Wakes appends waiting for staging room.
    drained: Notify,
    /// Wakes a roll waiting for an allocation under way to finish.
    allocated: Notify,
    /// Wakes readers waiting for the log end offset to move (or the close).
    end_moved: Rc<Notify>,
}

/// Waits for a log's end offset to move without keeping the log open.
#[derive(Debug, Clone)]
pub struct EndWatch(Rc<Notify>);

impl EndWatch {
    /// Completes at the next move of the log end offset, or when the log
    /// closes. Enable it (`Notified::enable`) before checking the end
    /// offset, so a move in between is not missed.
    pub fn moved(&self) -> tokio::sync::futures::Notified<'_> {
        self.0.notified()
    }
}

/// A partition's append-only log of record batches. See the module docs.
#[derive(Debug)]
pub struct Log {
    shared: Rc<Shared>,
    flusher: Option<TaskHandle<()>>,
}

impl Log {
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The first offset readers may fetch.
    pub fn log_start_offset(&self) -> Offset {
        self.shared.state.borrow().log_start_offset
    }

    /// One past the last readable offset (every append below it resolved).
    pub fn log_end_offset(&self) -> Offset {
        self.shared.state.borrow().log_end_offset
    }

    /// What consumers may read below ([`Log::log_end_offset`] when the
    /// broker runs alone; in a cluster, also below the high watermark).
    pub fn high_watermark(&self) -> Offset {
        self.shared.state.borrow().visible_end()
    }

    /// Sets (`Some`, in a cluster) the high watermark reads stop at, and
    /// wakes long polls. It never goes back here: a lower one is ignored.
    pub fn set_high_watermark(&self, high_watermark: Option<Offset>) {
        {
            let mut st = self.shared.state.borrow_mut();
            st.high_watermark = match (st.high_watermark, high_watermark) {
                (Some(old), Some(new)) => Some(old.max(new)),
                (_, new) => new,
            };
        }
        self.shared.end_moved.notify_waiters();
    }

    /// A handle to wait for [`Log::log_end_offset`] to move (long polls).
    pub fn end_watch(&self) -> EndWatch {
        EndWatch(Rc::clone(&self.shared.end_moved))
    }

    /// `min.insync.replicas`, without cloning the config (every produce
    /// with acks=all asks).
    pub fn min_insync_replicas(&self) -> u32 {
        self.shared.state.borrow().config.min_insync_replicas
    }

    pub fn config(&self) -> LogConfig {
        self.shared.state.borrow().config.clone()
    }

    /// Replaces the config; takes effect for later appends, rolls and
    /// retention runs (a flush-policy change applies after the next flush).
    pub fn set_config(&self, config: LogConfig) {
        self.shared.state.borrow_mut().config = config.clamped();
    }

    /// Bytes of all segments (for DescribeLogDirs and retention.bytes).
    pub fn size_bytes(&self) -> u64 {
        let st = self.shared.state.borrow();
        st.sealed.iter().map(|s| s.meta.size).sum::<u64>() + st.active.meta.size
    }

    pub fn segment_count(&self) -> usize {
        self.shared.state.borrow().sealed.len() + 1
    }

    /// The largest timestamp in the log and the base offset of its batch.
    pub fn max_timestamp(&self) -> Option<(i64, Offset)> {
        let st = self.shared.state.borrow();
        let segments = st
            .sealed
            .iter()
            .map(|s| &s.meta)
            .chain(std::iter::once(&st.active.meta));
        segments
            .filter(|m| m.max_timestamp >= 0 && m.max_timestamp_batch < st.visible_end())
            .max_by_key(|m| m.max_timestamp)
            .map(|m| {
                (
                    m.max_timestamp,
                    m.max_timestamp_batch.max(st.log_start_offset),
                )
            })
    }

    /// True once a write or sync failed; the log must be reopened.
    pub fn is_poisoned(&self) -> bool {
        self.shared.state.borrow().poisoned.is_some()
    }
}

#[cfg(test)]
#[path = "poison_test.rs"]
mod poison_test;
#[cfg(test)]
mod preallocate_test;
#[cfg(test)]
mod tail_cache_test;
