//! Recovery: rebuilding a segment's metadata by scanning its batches with
//! CRC checks, and deciding what a stop in the scan means.
//!
//! The rules (the numbered steps are in `engine/ARCHITECTURE.md`):
//! - The active (last) segment is scanned from its start unless the log was
//!   closed cleanly. The scan stops at the first batch that fails framing,
//!   magic or CRC, or whose offsets go backwards. Everything from there on is
//!   a torn or never-acknowledged tail: it is truncated and the truncation
//!   logged (zeros after the last batch are not a truncation: the padding of
//!   its last block, or blocks allocated ahead of writes that never came).
//! - Sealed segments were fdatasync'ed, truncated to size and indexed before
//!   the next segment was created, so they are never truncated. Their index
//!   files are verified when first read (missing ones at open); a bad index
//!   is rebuilt by a scan, and a corrupt batch met by that scan is logged
//!   with file and position and reported to any read that reaches it.

use crate::batch::BatchError;
use crate::io::SegmentFile;
use crate::limits::RECOVERY_READ_BYTES;
use crate::log::cursor::{BatchCursor, CursorError};
use crate::log::segment::SegmentMeta;
use crate::{IoError, Offset};

/// What a scan of one segment found.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    /// Metadata of the valid prefix.
    pub meta: SegmentMeta,
    /// Where and why the scan stopped early, unless what follows the valid
    /// prefix is only zeros (padding, or blocks allocated ahead).
    pub stop: Option<(u64, BatchError)>,
    /// The file's size on disk.
    pub physical_size: u64,
}

/// Scans `file` from its start, validating every batch.
pub(crate) async fn scan_segment(
    file: &SegmentFile,
    base_offset: Offset,
    index_interval_bytes: u32,
    now_ms: i64,
) -> Result<ScanOutcome, IoError> {
    let physical_size = file.size().await?;
    let mut meta = SegmentMeta::empty(base_offset, now_ms);
    let mut cursor = BatchCursor::new(file, 0, physical_size, RECOVERY_READ_BYTES);
    let stop = loop {
        match cursor.next().await {
            Ok(None) => break None,
            Ok(Some(batch)) => {
                let span = batch.header.last_offset().0 - base_offset.0;
                if batch.header.base_offset() < meta.next_offset || span > i64::from(u32::MAX) {
                    let cause = BatchError::Invalid {
                        position: batch.position,
                        reason: "batch offsets do not follow the previous batch",
                    };
                    break Some((batch.position, cause));
                }
                assert_eq!(batch.position, meta.size, "the scan is contiguous");
                meta.on_batch(&batch.header, index_interval_bytes);
            }
            Err(CursorError::Invalid { position, cause }) => break Some((position, cause)),
            Err(CursorError::Io(e)) => return Err(e),
        }
    };
    let stop = match stop {
        Some((position, _)) if is_zeros(file, position, physical_size).await? => None,
        other => other,
    };
    assert!(meta.size <= physical_size);
    Ok(ScanOutcome {
        meta,
        stop,
        physical_size,
    })
}

/// True if the bytes from `position` to `physical_size` are all zero: the
/// padding of the last block, or space allocated ahead of writes
/// (`SEGMENT_PREALLOCATE_BYTES`) that the crash left unwritten.
async fn is_zeros(file: &SegmentFile, position: u64, physical_size: u64) -> Result<bool, IoError> {
    assert!(position <= physical_size);
    let mut at = position;
    while at < physical_size {
        let len = (physical_size - at).min(RECOVERY_READ_BYTES as u64);
        let bytes = file.read_at(at, len as usize).await?;
        if bytes.is_empty() || bytes.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += bytes.len() as u64;
    }
    assert_eq!(at, physical_size);
    Ok(true)
}
