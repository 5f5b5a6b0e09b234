//! shardlog storage: the durable partition log on io_uring direct I/O.
//!
//! Module map:
//! - [`batch`]: Kafka RecordBatch v2 as a zero-copy view ([`batch::RecordBatch`]),
//!   the pure validator (framing, magic, CRC-32C, counts, size) and the
//!   61-byte header that the broker rewrites (base offset, leader epoch,
//!   log-append time) without touching record bytes.
//! - [`log`]: one partition ([`Log`]): segments, the staging of appends into
//!   aligned DMA buffers, group-committed fdatasync, the tail cache, reads,
//!   rolling, retention and delete-records.
//! - [`index`]: the sparse offset and time indexes of a segment.
//! - [`clean`]: log compaction's parts (the key -> latest offset map).
//! - [`recovery`]: scanning a segment with CRC checks, used when a log opens.
//! - [`checkpoint`]: the per-partition checkpoint file (log start offset and
//!   recovery point), written atomically.
//! - [`partition_table`]: the partitions one shard owns under `<data-dir>`.
//! - `io`: the only module that touches glommio (DMA files, directories,
//!   tasks, timers); a port to another io_uring runtime changes only it.
//!
//! How an append flows: [`Log::append`] validates the batches (no
//! decompression), assigns offsets by rewriting each base offset, copies the
//! bytes once into the active segment's aligned staging buffers and keeps the
//! batch in the tail cache; the log's flusher task writes the staged buffers
//! (O_DIRECT), runs one fdatasync for everything staged so far, and resolves
//! every append it covered. `engine/ARCHITECTURE.md` lists the steps and what
//! recovery does after a crash at each of them.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod batch;
pub mod checkpoint;
pub mod clean;
pub mod crashpoint;
mod error;
pub mod index;
mod io;
mod io_tuning;
pub mod limits;
pub mod log;
mod lru;
mod offset;
pub mod partition_table;
pub mod partitioner;
pub mod recovery;
pub mod rt;
pub mod stats;

pub use error::{Error, IoError, Result};
pub use io_tuning::set_io_tuning;
pub use log::{
    AbortedTxn, AppendInfo, Chunk, CleanStats, CleanupPolicy, ConfigError, ConfigType, EndWatch,
    FlushPolicy, InternalRecord, InternalTxn, Log, LogConfig, PRODUCER_ID_EXPIRATION_MS,
    ProducerError, ProducerView, Ratio, ReadAheadUsage, ReadResult, SegmentCacheUsage,
    StagedAppend, TOPIC_CONFIGS, TimestampType, TopicCompression, TopicConfigKey, ValueKind,
    read_ahead_shard_usage, segment_cache_usage, set_read_ahead_shard_budget,
    set_segment_cache_limits, set_tail_cache_shard_budget, tail_cache_shard_usage, topic_config,
    topic_config_by_broker_name,
};
pub use offset::Offset;
pub use partition_table::{PartitionTable, Rewrite, TopicPartition};
