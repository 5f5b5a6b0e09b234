//! Segments: `<20-digit base offset>.log` files of back-to-back record
//! batches, with their sparse indexes.
//!
//! An [`ActiveSegment`] takes appends; a roll seals it into a
//! [`super::sealed::SealedSegment`], which is only read and eventually
//! deleted. On disk
//! the active segment's last block is padded with zeros (direct I/O writes
//! whole blocks); a sealed segment is truncated to its exact size and has
//! `.index` and `.timeindex` files beside it.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::batch::BatchHeader;
use crate::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use crate::io::SegmentFile;
use crate::{Offset, batch::NO_TIMESTAMP};

pub(crate) fn file_stem(base_offset: Offset) -> String {
    format!("{:020}", base_offset.0)
}

pub(crate) fn log_path(dir: &Path, base_offset: Offset) -> PathBuf {
    dir.join(format!("{}.log", file_stem(base_offset)))
}
pub(crate) fn index_path(dir: &Path, base_offset: Offset) -> PathBuf {
    dir.join(format!("{}.index", file_stem(base_offset)))
}
pub(crate) fn time_index_path(dir: &Path, base_offset: Offset) -> PathBuf {
    dir.join(format!("{}.timeindex", file_stem(base_offset)))
}

/// Writes a sealed segment's `.index` and `.timeindex` beside it, each whole
/// or not at all (a temporary file renamed): a segment that is not the
/// last is trusted at open as long as its index files are there, so a crash
/// must not leave a prefix of them (its last time entry would understate
/// the segment's newest timestamp, and retention by time would delete it
/// early). A roll does not need this: until its next segment exists the
/// sealed one is the last, scanned at open after a crash.
pub(crate) async fn write_indexes(dir: &Path, meta: &SegmentMeta) -> Result<(), crate::IoError> {
    let base = meta.base_offset;
    crate::io::write_file_atomic(&index_path(dir, base), meta.offset_index.encode()).await?;
    crate::io::write_file_atomic(&time_index_path(dir, base), meta.time_index.encode()).await
}

/// Parses `<20 digits>.log` into its base offset.
pub(crate) fn parse_log_name(name: &str) -> Option<Offset> {
    let stem = name.strip_suffix(".log")?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit())).then_some(())?;
    stem.parse().ok().map(Offset)
}

/// What every segment knows about its contents.
#[derive(Debug, Clone)]
pub(crate) struct SegmentMeta {
    pub base_offset: Offset,
    /// Bytes of batches (logical size; staged bytes included while active).
    pub size: u64,
    /// One past the last offset in the segment.
    pub next_offset: Offset,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Largest batch max timestamp, or -1.
    pub max_timestamp: i64,
    /// Base offset of the batch holding `max_timestamp`.
    pub max_timestamp_batch: Offset,
    bytes_since_index: u64,
    /// When the segment was created (ms), for `segment.ms`.
    pub created_ms: i64,
}

impl SegmentMeta {
    pub(crate) fn empty(base_offset: Offset, created_ms: i64) -> SegmentMeta {
        SegmentMeta {
            base_offset,
            size: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            max_timestamp: NO_TIMESTAMP,
            max_timestamp_batch: base_offset,
            bytes_since_index: 0,
            created_ms,
        }
    }

    /// Offsets relative to the base fit in u32 while the segment stays below
    /// this many offsets; appends roll before crossing it.
    pub(crate) fn relative(&self, offset: Offset) -> u32 {
        let delta = offset.0 - self.base_offset.0;
        assert!(
            (0..=i64::from(u32::MAX)).contains(&delta),
            "offset {offset} outside segment {}",
            self.base_offset
        );
        delta as u32
    }

    /// Accounts for one batch placed at `position` (the current size):
    /// index entries every `interval` bytes, timestamps, offsets, size.
    pub(crate) fn on_batch(&mut self, header: &BatchHeader, interval: u32) {
        let position = self.size;
        assert!(
            header.base_offset() >= self.next_offset,
            "batch offsets must increase"
        );
        let relative = self.relative(header.base_offset());
        if header.max_timestamp() > self.max_timestamp {
            self.max_timestamp = header.max_timestamp();
            self.max_timestamp_batch = header.base_offset();
        }
        if position == 0 || self.bytes_since_index >= u64::from(interval) {
            let pos = u32::try_from(position).unwrap_or(u32::MAX);
            self.offset_index.push(OffsetEntry {
                relative_offset: relative,
                position: pos,
            });
            if self.max_timestamp >= 0 {
                // The largest timestamp up to and including this batch.
                self.time_index.maybe_push(TimeEntry {
                    timestamp: self.max_timestamp,
                    relative_offset: relative,
                });
            }
            self.bytes_since_index = 0;
        }
        let size = header.size() as u64;
        self.size += size;
        self.bytes_since_index += size;
        self.next_offset = header.last_offset().plus(1);
    }

    /// Adds the final time index entry (the segment's max timestamp) before
    /// the indexes are written at seal time.
    pub(crate) fn finish_time_index(&mut self) {
        if self.max_timestamp >= 0 {
            let relative = self.relative(self.max_timestamp_batch);
            self.time_index.maybe_push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: relative,
            });
        }
    }
}

/// The segment that takes appends; exactly one per log.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub meta: SegmentMeta,
    pub file: Rc<SegmentFile>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_twenty_digits() {
        assert_eq!(file_stem(Offset(42)), "00000000000000000042");
        assert_eq!(parse_log_name("00000000000000000042.log"), Some(Offset(42)));
        assert_eq!(parse_log_name("42.log"), None);
        assert_eq!(parse_log_name("00000000000000000042.index"), None);
        assert_eq!(parse_log_name("0000000000000000004x.log"), None);
    }
}
