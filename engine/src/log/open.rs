//! Opening a log: listing segments, loading or rebuilding their metadata,
//! truncating a torn tail. See `crate::recovery` for the rules.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use tokio::sync::{Mutex, Notify};

use super::cursor::BatchCursor;
use super::producers::Producers;
use super::read::corrupt;
use super::sealed::{Indexes, SealedSegment};
use super::segment::{
    ActiveSegment, SegmentMeta, index_path, log_path, parse_log_name, time_index_path,
};
use super::staging::Staging;
use super::tail_cache::TailCache;
use super::{Log, LogConfig, Shared, State};
use crate::checkpoint::Checkpoint;
use crate::index::{OffsetIndex, TimeEntry, TimeIndex};
use crate::io::{self, SegmentFile};
use crate::limits::{BLOCK_BYTES, RECOVERY_READ_BYTES};
use crate::recovery::scan_segment;
use crate::{IoError, Offset, Result};

impl Log {
    /// Opens the log in `dir` (created if missing), recovering from whatever
    /// state a crash left it in. `now_ms` is the wall clock in milliseconds.
    pub async fn open(dir: impl AsRef<Path>, config: LogConfig, now_ms: i64) -> Result<Log> {
        let dir = dir.as_ref().to_path_buf();
        let config = config.clamped();
        io::create_dir(&dir).await?;
        super::merge::finish_swaps(&dir).await?;
        let mut bases = list_segments(&dir).await?;
        let checkpoint = Checkpoint::read(&dir).await?;
        let first_base = bases.first().copied().unwrap_or(Offset::ZERO);
        let mut log_start = checkpoint
            .as_ref()
            .map_or(first_base, |c| c.log_start_offset.max(first_base));
        while let [first, second, ..] = bases[..] {
            if second > log_start {
                break;
            }
            delete_segment_files(&dir, first).await?;
            bases.remove(0);
        }
        if bases.is_empty() {
            bases.push(log_start);
            SegmentFile::open(&log_path(&dir, log_start), true)
                .await?
                .close()
                .await?;
            io::sync_dir(&dir).await?;
        }
        let clean_end = checkpoint.as_ref().map(|c| c.recovery_point);
        let mut sealed = Vec::with_capacity(bases.len());
        for pair in bases.windows(2) {
            if let [base, next] = *pair {
                sealed.push(open_sealed(&dir, base, next, &config, now_ms).await?);
            }
        }
        let last = bases.last().copied().unwrap_or(log_start);
        let (active, carry, trusted) = open_active(&dir, last, clean_end, &config, now_ms).await?;
        let next_offset = active.meta.next_offset;
        log_start = log_start.min(next_offset);
        let mut state = State {
            staging: Staging::new(config.write_buffer_bytes, active.meta.size, carry),
            readable_bytes: active.meta.size,
            tail: TailCache::new(config.tail_cache_bytes),
            read_ahead: super::read_ahead::ReadAheads::default(),
            config,
            sealed,
            active,
            log_start_offset: log_start,
            next_offset,
            log_end_offset: next_offset,
            poisoned: None,
            closed: false,
            allocating: false,
            sealing: false,
            producers: Producers::default(),
            leader_epoch: -1,
            epochs: replication::isr::EpochCache::default(),
            high_watermark: None,
            // Past the log end it would skip what is appended after a
            // crash lost the tail: capped there.
            first_dirty: checkpoint
                .as_ref()
                .map_or(Offset::ZERO, |c| c.cleaned_to.min(next_offset)),
            clean_passes: checkpoint
                .as_ref()
                .map(|c| c.clean_passes.clone())
                .unwrap_or_default(),
            tombstones_due: checkpoint.as_ref().and_then(|c| c.tombstones_due),
            cleaned_bytes: 0,
            last_cleaned_ms: None,
            checkpoint_on_disk: checkpoint.clone(),
            snapshot_on_disk: None,
        };
        // A crash may have lost the tail an epoch started in.
        state.epochs = super::epochs::read(&dir).await?;
        state.epochs.truncate_from(next_offset.get());
        state.leader_epoch = state.epochs.latest_epoch().unwrap_or(-1);
        tracing::debug!(dir = %dir.display(), next = next_offset.get(), epochs = ?state.epochs.entries(), "log opened");
        let (producers, snapshot) = rebuild_producers(&dir, &state, now_ms).await?;
        state.producers = producers;
        state.snapshot_on_disk = snapshot;
        // After a clean close that was trusted and matches, the checkpoint
        // stays until the first append (which marks it unclean first).
        let clean = trusted && state.checkpoint_on_disk == Some(state.checkpoint(true));
        let shared = Rc::new(Shared {
            dir,
            state: RefCell::new(state),
            append_lock: Mutex::new(()),
            segments_lock: Mutex::new(()),
            staged: Notify::new(),
            drained: Notify::new(),
            allocated: Notify::new(),
            end_moved: Rc::new(Notify::new()),
        });
        if !clean {
            // From here on a crash must rescan the active segment.
            shared.write_checkpoint(false).await?;
        }
        Ok(Log::start_flusher(shared))
    }
}

/// The idempotent producers' state: the snapshot's, then every batch from
/// its offset to the log end replayed. Without a usable snapshot (a log
/// from before snapshots, or a damaged file) the last two segments are
/// replayed, as Kafka does on upgrade: a producer last seen before them is
/// unknown, and an unknown producer may resume at any sequence.
///
/// Also returns the snapshot as read (encoded), if there was a usable one.
async fn rebuild_producers(
    dir: &Path,
    st: &State,
    now_ms: i64,
) -> Result<(Producers, Option<Vec<u8>>)> {
    let (mut producers, from, snapshot) = match Producers::read_snapshot(dir).await? {
        Some((producers, offset)) if offset <= st.next_offset => {
            let snapshot = producers.encode(offset);
            (producers, offset, Some(snapshot))
        }
        _ => {
            let from = st
                .sealed
                .last()
                .map_or(st.active.meta.base_offset, |s| s.meta.base_offset);
            (Producers::default(), from, None)
        }
    };
    let mut replayed = 0u64;
    for s in st.sealed.iter().filter(|s| s.meta.next_offset > from) {
        let file = s.store.file().await?;
        replayed += replay(&file, s.meta.size, from, &mut producers, now_ms).await?;
    }
    if st.active.meta.next_offset > from {
        let (file, size) = (&st.active.file, st.active.meta.size);
        replayed += replay(file, size, from, &mut producers, now_ms).await?;
    }
    let snapshot = if super::clean::forget_removed_markers(dir, st, &mut producers).await? {
        None
    } else {
        snapshot
    };
    producers.expire(now_ms, st.config.producer_id_expiration_ms);
    if producers.len() > 0 || replayed > 0 {
        tracing::debug!(dir = %dir.display(), producers = producers.len(), from = from.0, replayed, "producer state rebuilt");
    }
    Ok((producers, snapshot))
}

/// Replays the producer batches of `file`'s first `size` bytes from `from`
/// on; returns how many.
async fn replay(
    file: &SegmentFile,
    size: u64,
    from: Offset,
    producers: &mut Producers,
    now_ms: i64,
) -> Result<u64> {
    let mut replayed = 0;
    let mut cursor = BatchCursor::new(file, 0, size, RECOVERY_READ_BYTES);
    while let Some(batch) = cursor.next().await.map_err(|e| corrupt(file, e))? {
        if batch.header.last_offset() < from || batch.header.producer_id() < 0 {
            continue;
        }
        if batch.header.is_control() {
            if let Some(marker) = crate::batch::builder::read_marker(&batch.bytes) {
                producers.replay_marker(&batch.header, marker, now_ms);
            }
        } else {
            producers.replay(&batch.header, now_ms);
        }
        replayed += 1;
    }
    Ok(replayed)
}

/// Base offsets of the segments in `dir`, sorted; removes leftover temp files.
pub(super) async fn list_segments(dir: &Path) -> Result<Vec<Offset>, IoError> {
    let mut bases = Vec::new();
    for name in io::list_dir(dir)? {
        if let Some(base) = parse_log_name(&name) {
            bases.push(base);
        } else if name.ends_with(".tmp") || name.ends_with(".cleaned") {
            // A write that did not finish: a temp file, or a cleaner's
            // rewrite not swapped in (the segment it would replace is
            // whole).
            io::remove_file(&dir.join(&name)).await?;
        }
    }
    bases.sort();
    Ok(bases)
}

pub(super) async fn delete_segment_files(dir: &Path, base: Offset) -> Result<(), IoError> {
    io::remove_file(&log_path(dir, base)).await?;
    delete_index_files(dir, base).await
}

/// Removes a segment's index files (a scan rebuilds them on open).
pub(super) async fn delete_index_files(dir: &Path, base: Offset) -> Result<(), IoError> {
    for path in [index_path(dir, base), time_index_path(dir, base)] {
        io::remove_file(&path).await?;
    }
    io::sync_dir(dir).await
}

/// Opens a sealed segment `[base, next)` without reading it: its size from
/// the file system, its largest timestamp from the last entry of its time
/// index (the indexes themselves are read when a read needs them). Index
/// files missing or not whole entries (a crash while they were written) are
/// rebuilt now by a scan.
async fn open_sealed(
    dir: &Path,
    base: Offset,
    next: Offset,
    config: &LogConfig,
    now_ms: i64,
) -> Result<SealedSegment> {
    let path = log_path(dir, base);
    let span = (next.0 - base.0) as u64;
    let size = io::file_len(&path)?.unwrap_or(0);
    if let Some(last) = last_time_entry(dir, base, span).await? {
        let mut meta = SegmentMeta::empty(base, now_ms);
        meta.size = size;
        meta.next_offset = next;
        if let Some(last) = last {
            meta.max_timestamp = last.timestamp;
            meta.max_timestamp_batch = base.plus(i64::from(last.relative_offset));
        }
        return Ok(SealedSegment::unloaded(dir, meta));
    }
    let file = SegmentFile::open(&path, false).await?;
    let meta = rebuild_sealed(dir, &file, base, next, config, now_ms).await?;
    Ok(SealedSegment::new(dir, meta, Some(Rc::new(file))))
}

/// The last entry of a sealed segment's time index (`Some(None)`: no
/// timestamps), if both index files are there, not empty, and whole
/// entries.
async fn last_time_entry(
    dir: &Path,
    base: Offset,
    span: u64,
) -> Result<Option<Option<TimeEntry>>, IoError> {
    const TIME_ENTRY: u64 = 12;
    let offsets = io::file_len(&index_path(dir, base))?;
    let times_path = time_index_path(dir, base);
    let (Some(offsets), Some(times)) = (offsets, io::file_len(&times_path)?) else {
        return Ok(None);
    };
    if !offsets.is_multiple_of(8) || !times.is_multiple_of(TIME_ENTRY) {
        return Ok(None);
    }
    if offsets == 0 || times == 0 {
        // No entry: a segment without batches, or one whose file a crash
        // emptied before its entries were written (rebuilt; the scan of an
        // empty segment is nothing).
        return Ok(None);
    }
    let Some(bytes) = io::read_at(&times_path, times - TIME_ENTRY, TIME_ENTRY as usize).await?
    else {
        return Ok(None);
    };
    Ok(TimeIndex::decode(&bytes, span)
        .ok()
        .and_then(|index| index.last())
        .map(Some))
}

fn sealed_meta(
    base: Offset,
    next: Offset,
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    now_ms: i64,
) -> SegmentMeta {
    let mut meta = SegmentMeta::empty(base, now_ms);
    meta.size = size;
    meta.next_offset = next;
    if let Some(last) = time_index.last() {
        meta.max_timestamp = last.timestamp;
        meta.max_timestamp_batch = base.plus(i64::from(last.relative_offset));
    }
    meta.offset_index = offset_index;
    meta.time_index = time_index;
    meta
}

async fn load_indexes(
    dir: &Path,
    base: Offset,
    size: u64,
    span: u64,
) -> Result<Option<(OffsetIndex, TimeIndex)>, IoError> {
    let (Some(offsets), Some(times)) = (
        io::read_file(&index_path(dir, base)).await?,
        io::read_file(&time_index_path(dir, base)).await?,
    ) else {
        return Ok(None);
    };
    match Indexes::decode(&offsets, &times, size, span) {
        Ok(indexes) => Ok(Some((indexes.offsets, indexes.times))),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), base = base.0, error = %e, "index rejected; rebuilding");
            Ok(None)
        }
    }
}

async fn rebuild_sealed(
    dir: &Path,
    file: &SegmentFile,
    base: Offset,
    next: Offset,
    config: &LogConfig,
    now_ms: i64,
) -> Result<SegmentMeta> {
    let outcome = scan_segment(file, base, config.index_interval_bytes, now_ms).await?;
    let mut meta = outcome.meta;
    if let Some((position, cause)) = outcome.stop {
        tracing::error!(
            path = %file.path().display(), position, error = %cause,
            "corrupt batch in a sealed segment; reads reaching it fail with a corruption error"
        );
        meta.size = outcome.physical_size;
    }
    meta.next_offset = next;
    meta.finish_time_index();
    super::segment::write_indexes(dir, &meta).await?;
    Ok(meta)
}

/// Opens the last segment for appends. After a clean close (`clean_end` is
/// past its base and its indexes verify) nothing is scanned; otherwise it is
/// scanned and a torn tail truncated. Returns it with its partial last block,
/// and whether the clean close was trusted (nothing scanned).
async fn open_active(
    dir: &Path,
    base: Offset,
    clean_end: Option<Offset>,
    config: &LogConfig,
    now_ms: i64,
) -> Result<(ActiveSegment, Vec<u8>, bool)> {
    let path = log_path(dir, base);
    let file = SegmentFile::open(&path, false).await?;
    let mut meta = None;
    if let Some(end) = clean_end.filter(|&end| end > base) {
        let size = file.size().await?;
        if let Some((offsets, times)) =
            load_indexes(dir, base, size, (end.0 - base.0) as u64).await?
        {
            meta = Some(sealed_meta(base, end, size, offsets, times, now_ms));
        }
    }
    let trusted = meta.is_some();
    let meta = match meta {
        Some(meta) => meta,
        None => scan_active(&file, &path, base, config, now_ms).await?,
    };
    let block_start = meta.size - meta.size % BLOCK_BYTES;
    let carry = file
        .read_at(block_start, (meta.size - block_start) as usize)
        .await?
        .to_vec();
    if carry.len() as u64 != meta.size - block_start {
        let e = std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "segment shorter than its batches",
        );
        return Err(IoError::new("read", path, e).into());
    }
    Ok((
        ActiveSegment {
            meta,
            file: Rc::new(file),
        },
        carry,
        trusted,
    ))
}

async fn scan_active(
    file: &SegmentFile,
    path: &Path,
    base: Offset,
    config: &LogConfig,
    now_ms: i64,
) -> Result<SegmentMeta> {
    let outcome = scan_segment(file, base, config.index_interval_bytes, now_ms).await?;
    if let Some((position, cause)) = &outcome.stop {
        tracing::warn!(
            path = %path.display(), position, truncated_bytes = outcome.physical_size - position,
            last_valid_offset = outcome.meta.next_offset.0 - 1, reason = %cause,
            "truncating the torn or unacknowledged tail of the active segment"
        );
    }
    if outcome.physical_size != outcome.meta.size {
        file.truncate(outcome.meta.size).await?;
        file.fdatasync().await?;
    }
    Ok(outcome.meta)
}
