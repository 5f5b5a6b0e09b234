//! Sparse per-segment indexes: the active segment's in memory, written
//! beside a segment when it is sealed (`.index`, `.timeindex`) and read
//! back when a read needs them (`log/sealed.rs`).
//!
//! File formats (big-endian, no header; the entry count is the file size
//! divided by the entry size):
//! - `.index`: entries of (relative offset u32, file position u32), both
//!   strictly increasing.
//! - `.timeindex`: entries of (timestamp i64, relative offset u32), both
//!   strictly increasing.
//!
//! After a crash an index file may be short, torn or missing: loading a
//! sealed segment's index checks every entry against the segment (monotone,
//! inside the file, inside the segment's offsets) and rebuilds the index
//! from the log when any check fails. The active segment's indexes are never on disk;
//! they are rebuilt by the recovery scan.

mod offset_index;
mod time_index;

pub use offset_index::{OffsetEntry, OffsetIndex};
pub use time_index::{TimeEntry, TimeIndex};

/// Why an index file was rejected (the caller rebuilds it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("index size {0} is not a whole number of entries")]
    PartialEntry(usize),
    #[error("index entry {0} does not increase")]
    NotIncreasing(usize),
    #[error("index entry {0} points outside the segment")]
    OutOfSegment(usize),
    #[error("index file unreadable: {0}")]
    Unreadable(String),
}
