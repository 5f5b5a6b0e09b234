//! One cleaning pass of a compacted log (issue 14; the shard's cleaner
//! task picks the log, `PartitionTable::clean_dirtiest`):
//!
//! 1. The cleanable part: sealed segments wholly below the visible end
//!    (the high watermark in a cluster), the first open transaction and
//!    the first segment with a record newer than `min.compaction.lag.ms`.
//!    The active segment is never cleaned.
//! 2. The map: each key's latest offset from the first dirty offset (where
//!    the last pass's map ended) on, until the map's budget is spent; of
//!    data batches only, not of markers nor of aborted transactions.
//! 3. Each sealed segment below the map's end is rewritten by Kafka's
//!    rules ([`Pass`]): without the records the map supersedes
//!    ([`OffsetMap::keeps`]), the records of aborted transactions, and
//!    the tombstones (a key with a null value) and markers the cleaner
//!    first saw `delete.retention.ms` ago or more ([`PassHistory`]: this
//!    pass saw what lies between the last pass's end and its own; a
//!    marker only once its transaction has no record left); an idempotent
//!    producer's last batch stays, empty if need be: `<base>.cleaned`
//!    written and fdatasynced; then, under the segments lock (not the
//!    append lock: producers go on meanwhile) and only if the segment is
//!    still the one read (not deleted by retention or cut meanwhile), its
//!    index files removed (dir fsynced), `.cleaned` renamed
//!    over `.log` (dir fsynced: the commit point) and new indexes written.
//!    A crash leaves the old file or the new one, never both: a `.cleaned`
//!    left behind is deleted on open, and a segment without index files
//!    has them rebuilt by a scan. The segment keeps its offset range (its
//!    next offset stays the next segment's base), so readers skip the gaps.
//! 4. The first dirty offset moves to the map's end; the pass joins the
//!    history, and the time the first tombstone or marker kept may go is
//!    noted (both in the checkpoint): the log is cleaned again then, dirty
//!    or not, and that pass, with nothing new to map, only drops them.
//! 5. Runs of cleaned segments that fit in `segment.bytes` together are
//!    merged into one (`log/merge.rs`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use super::Log;
use super::cursor::BatchCursor;
use super::open::delete_index_files;
use super::producers::{AbortedTxn, last_sequence};
use super::read::corrupt;
use super::sealed::{SealedSegment, SegmentStore};
use super::segment::{SegmentMeta, log_path, write_indexes};
use crate::batch::records::{RecordView, for_each_record};
use crate::batch::{BatchError, BatchHeader, Compression, RecordBatch, Retained, retain_records};
use crate::clean::{OffsetMap, PassHistory, throttle};
use crate::crashpoint::crash_if;
use crate::io::{self, SegmentFile};
use crate::limits::{BLOCK_BYTES, RECOVERY_READ_BYTES};
use crate::{Error, Offset, Result};

/// Crash points of a pass (`SHARDLOG_FAILPOINT`, for the tests of a
/// crash while cleaning): a segment's rewrite written and durable; its
/// index files removed; the rewrite renamed over it; every segment of the
/// pass swapped, before the checkpoint says where the pass ended.
const CRASH_REWRITTEN: &str = "clean-rewritten";
const CRASH_INDEXES_REMOVED: &str = "clean-indexes-removed";
const CRASH_RENAMED: &str = "clean-renamed";
const CRASH_SWAPPED: &str = "clean-swapped";

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Segments rewritten.
    pub segments: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Bytes of dirty segments read to build the map.
    pub bytes_mapped: u64,
    /// Segments fewer after the small ones were merged (`log/merge.rs`).
    pub merged: usize,
    /// Where the pass's map ended (the next pass maps from there).
    pub dirty_from: Option<Offset>,
}

/// What a pass starts from.
struct Plan {
    /// The cleanable sealed segments.
    found: Vec<Found>,
    /// Where the map starts.
    dirty_from: Offset,
    passes: PassHistory,
    /// `delete.retention.ms`.
    retention: i64,
    aborted: Aborted,
    /// Each idempotent producer's epoch and last sequence.
    last_batches: HashMap<i64, (i16, i32)>,
}

/// A sealed segment as the pass found it.
struct Found {
    base: Offset,
    next: Offset,
    size: u64,
    store: Rc<SegmentStore>,
}

/// The name of a segment's rewrite until it is swapped in.
pub(super) fn cleaned_path(dir: &std::path::Path, base: Offset) -> std::path::PathBuf {
    log_path(dir, base).with_extension("cleaned")
}

impl Log {
    /// The part of the cleanable log the cleaner has not mapped yet, by
    /// bytes of sealed segments (Kafka's dirty ratio; 0 when there is
    /// nothing to clean or the topic is not compacted).
    pub fn dirty_ratio(&self, now_ms: i64) -> f64 {
        let st = self.shared.state.borrow();
        if !st.config.cleanup.compact {
            return 0.0;
        }
        let bound = cleanable_bound(&st, now_ms);
        let (mut dirty, mut total) = (0u64, 0u64);
        for s in st.sealed.iter().filter(|s| s.meta.next_offset <= bound) {
            total += s.meta.size;
            if s.meta.next_offset > st.first_dirty {
                dirty += s.meta.size;
            }
        }
        if total == 0 {
            return 0.0;
        }
        dirty as f64 / total as f64
    }

    /// Whether the oldest dirty segment has waited longer than
    /// `max.compaction.lag.ms` (by its newest record): then it is cleaned
    /// whatever the dirty ratio.
    pub fn compaction_overdue(&self, now_ms: i64) -> bool {
        let st = self.shared.state.borrow();
        let lag = i64::try_from(st.config.max_compaction_lag_ms).unwrap_or(i64::MAX);
        let bound = cleanable_bound(&st, now_ms);
        st.sealed
            .iter()
            .find(|s| s.meta.next_offset > st.first_dirty && s.meta.next_offset <= bound)
            .is_some_and(|s| {
                s.meta.max_timestamp >= 0 && now_ms.saturating_sub(s.meta.max_timestamp) > lag
            })
    }

    /// What the cleaner did to this log since it was opened: bytes it
    /// removed, and when its last pass ended (ms).
    pub fn cleaned(&self) -> (u64, Option<i64>) {
        let st = self.shared.state.borrow();
        (st.cleaned_bytes, st.last_cleaned_ms)
    }

    /// Whether a tombstone the last pass kept may go now: the log is
    /// cleaned again, dirty or not.
    pub fn tombstones_due(&self, now_ms: i64) -> bool {
        let st = self.shared.state.borrow();
        st.config.cleanup.compact && st.tombstones_due.is_some_and(|due| due <= now_ms)
    }

    /// What a pass starts from (step 1), `None` unless the topic's
    /// `cleanup.policy` has compact.
    fn plan(&self, now_ms: i64) -> Option<Plan> {
        let st = self.shared.state.borrow();
        if !st.config.cleanup.compact {
            return None;
        }
        let bound = cleanable_bound(&st, now_ms);
        let found: Vec<Found> = st
            .sealed
            .iter()
            .filter(|s| s.meta.next_offset <= bound && s.meta.next_offset > st.log_start_offset)
            .map(|s| Found {
                base: s.meta.base_offset,
                next: s.meta.next_offset,
                size: s.meta.size,
                store: Rc::clone(&s.store),
            })
            .collect();
        let last_batches: HashMap<i64, (i16, i32)> = st
            .producers
            .views()
            .into_iter()
            .filter(|p| p.last_sequence >= 0)
            .map(|p| (p.producer_id, (p.epoch, p.last_sequence)))
            .collect();
        Some(Plan {
            found,
            dirty_from: st.first_dirty.max(st.log_start_offset),
            passes: st.clean_passes.clone(),
            retention: i64::try_from(st.config.delete_retention_ms).unwrap_or(i64::MAX),
            aborted: Aborted::new(st.producers.aborted_between(st.log_start_offset, bound)),
            last_batches,
        })
    }

    /// One cleaning pass (see the module's steps), the map within
    /// `map_bytes`. Nothing happens unless the topic's `cleanup.policy`
    /// has compact.
    pub async fn clean(&self, map_bytes: usize, now_ms: i64) -> Result<CleanStats> {
        let Some(Plan {
            found,
            dirty_from,
            mut passes,
            retention,
            aborted,
            last_batches,
        }) = self.plan(now_ms)
        else {
            return Ok(CleanStats::default());
        };
        let tombstones_due = self.tombstones_due(now_ms);
        let mut map = OffsetMap::new(map_bytes);
        let bytes_mapped = self
            .build_map(&found, dirty_from, &aborted, &mut map)
            .await?;
        let end = match map.end() {
            Some(end) => end,
            None => {
                // No key in the dirty part (keyless records of an older
                // build): it is mapped, and stays as it is.
                if let Some(last) = found.last().filter(|s| s.next > dirty_from) {
                    let mut st = self.shared.state.borrow_mut();
                    st.first_dirty = st.first_dirty.max(last.next);
                }
                if !tombstones_due {
                    return Ok(CleanStats::default());
                }
                // Only the cleaned part's tombstones to look at again.
                dirty_from.get()
            }
        };
        passes.record(end, now_ms);
        let pass = Pass {
            map: &map,
            passes: &passes,
            aborted: &aborted,
            delete_retention_ms: retention,
            now_ms,
            next_due: Cell::new(None),
            open_data: RefCell::new(HashMap::new()),
            last_batches,
            removed_markers: RefCell::new(Vec::new()),
            removed: RefCell::new(Vec::new()),
        };
        let mut stats = CleanStats {
            dirty_from: Some(Offset(end)),
            bytes_mapped,
            ..CleanStats::default()
        };
        for segment in found.iter().filter(|s| s.base.get() < end) {
            if let Some((before, after)) = self.clean_segment(segment, &pass, now_ms).await? {
                stats.segments += 1;
                stats.bytes_before += before;
                stats.bytes_after += after;
            }
        }
        crash_if(CRASH_SWAPPED);
        {
            let _guard = self.shared.append_lock.lock().await;
            {
                let mut st = self.shared.state.borrow_mut();
                st.first_dirty = st.first_dirty.max(Offset(end));
                st.clean_passes = passes.clone();
                st.tombstones_due = pass.next_due.get();
                st.cleaned_bytes += stats.bytes_before.saturating_sub(stats.bytes_after);
                st.last_cleaned_ms = Some(now_ms);
            }
            self.shared
                .write_checkpoint(false)
                .await
                .map_err(|e| self.shared.poison(e))?;
            if !pass.removed.borrow().is_empty() {
                // A snapshot from before would list the forgotten
                // transactions again after a restart: this one does not,
                // and the file that made up for it can go.
                let next = self.shared.state.borrow().next_offset;
                self.shared
                    .snapshot_producers(next, None)
                    .await
                    .map_err(|e| self.shared.poison(e))?;
                io::remove_file(&self.shared.dir.join(REMOVED_MARKERS_FILE)).await?;
            }
        }
        stats.merged = self.merge_cleaned_segments(now_ms).await?;
        tracing::debug!(
            dir = %self.shared.dir.display(),
            segments = stats.segments,
            merged = stats.merged,
            before = stats.bytes_before,
            after = stats.bytes_after,
            dirty_from = end,
            tombstones_due = ?pass.next_due.get(),
            "log cleaned"
        );
        Ok(stats)
    }

    /// Maps the keys of `found` from `from` on: of data batches, not of
    /// markers nor of aborted transactions (their records go anyway).
    /// Returns the bytes of the segments read.
    async fn build_map(
        &self,
        found: &[Found],
        from: Offset,
        aborted: &Aborted,
        map: &mut OffsetMap,
    ) -> Result<u64> {
        let mut read = 0;
        for segment in found.iter().filter(|s| s.next > from) {
            read += segment.size;
            let file = segment.store.file().await?;
            let mut cursor = BatchCursor::new(&file, 0, segment.size, RECOVERY_READ_BYTES);
            while let Some(batch) = cursor.next().await.map_err(|e| corrupt(&file, e))? {
                // A background task: requests go first between batches.
                io::yield_queue().await;
                throttle(batch.bytes.len() as u64).await;
                let header = batch.header;
                if header.last_offset() < from || header.is_control() || aborted.holds(&header) {
                    continue;
                }
                let mut full = false;
                each_key(&batch.bytes, batch.position, |key, offset| {
                    if !full && offset >= from.get() {
                        full = !map.put(key, offset);
                    }
                })?;
                if full {
                    return Ok(read);
                }
            }
        }
        Ok(read)
    }

    /// Rewrites `segment` without what `map` supersedes and swaps it in;
    /// its size before and after, or `None` if nothing went (or it changed
    /// meanwhile).
    async fn clean_segment(
        &self,
        segment: &Found,
        pass: &Pass<'_>,
        now_ms: i64,
    ) -> Result<Option<(u64, u64)>> {
        let interval = self.shared.state.borrow().config.index_interval_bytes;
        let dir = &self.shared.dir;
        let cleaned = cleaned_path(dir, segment.base);
        let mut meta = SegmentMeta::empty(segment.base, now_ms);
        // Nothing is written until a batch changes; then the unchanged
        // bytes before it are copied first.
        let mut writer: Option<ChunkWriter> = None;
        let mut after = 0u64;
        pass.removed_markers.borrow_mut().clear();
        let file = segment.store.file().await?;
        let mut cursor = BatchCursor::new(&file, 0, segment.size, RECOVERY_READ_BYTES);
        while let Some(batch) = cursor.next().await.map_err(|e| corrupt(&file, e))? {
            io::yield_queue().await;
            throttle(batch.bytes.len() as u64).await;
            let invalid = |reason| {
                Error::Batch(BatchError::Invalid {
                    position: batch.position,
                    reason,
                })
            };
            let view = RecordBatch::from_checked(&batch.bytes).ok_or(invalid("short batch"))?;
            let kept = pass.retain(&view, batch.position)?;
            if writer.is_none() && kept != Retained::All {
                let mut rewrite = ChunkWriter::create(&cleaned).await?;
                rewrite.copy_from(&file, after).await?;
                writer = Some(rewrite);
            }
            let bytes: &[u8] = match &kept {
                Retained::All => &batch.bytes,
                Retained::Some(bytes) => bytes,
                Retained::None => continue,
            };
            let header = bytes
                .first_chunk()
                .map(|h| BatchHeader(*h))
                .ok_or(invalid("short batch"))?;
            meta.on_batch(&header, interval);
            after += bytes.len() as u64;
            if let Some(writer) = &mut writer {
                writer.push(bytes).await?;
            }
        }
        let Some(writer) = writer else {
            return Ok(None);
        };
        writer.finish(after).await?;
        crash_if(CRASH_REWRITTEN);
        meta.next_offset = segment.next;
        meta.finish_time_index();
        // Not the append lock: producers go on while the files are
        // swapped (a roll only adds a segment at the end).
        let _segments = self.shared.segments_lock.lock().await;
        let present = |st: &super::State| {
            st.sealed.iter().position(|s| {
                s.meta.base_offset == segment.base && Rc::ptr_eq(&s.store, &segment.store)
            })
        };
        if present(&self.shared.state.borrow()).is_none() {
            // Deleted (retention) or cut (a follower) meanwhile.
            io::remove_file(&cleaned).await?;
            return Ok(None);
        }
        let removing = pass.removed_markers.borrow().clone();
        if !removing.is_empty() {
            // Before the swap: a crash after it and before the pass's end
            // (the producers' snapshot) leaves an older snapshot listing
            // these markers' transactions; the open forgets them.
            let list = {
                let mut removed = pass.removed.borrow_mut();
                removed.extend(removing);
                encode_removed_markers(&removed)
            };
            io::write_file_atomic(&dir.join(REMOVED_MARKERS_FILE), list).await?;
        }
        // Readers that found the segment keep reading its old file.
        segment.store.retire().await?;
        delete_index_files(dir, segment.base).await?;
        crash_if(CRASH_INDEXES_REMOVED);
        io::rename(&cleaned, &log_path(dir, segment.base)).await?;
        io::sync_dir(dir).await?;
        crash_if(CRASH_RENAMED);
        write_indexes(dir, &meta).await?;
        let file = SegmentFile::open(&log_path(dir, segment.base), false).await?;
        meta.size = after;
        let mut st = self.shared.state.borrow_mut();
        if let Some(at) = present(&st)
            && let Some(slot) = st.sealed.get_mut(at)
        {
            *slot = SealedSegment::new(dir, meta, Some(Rc::new(file)));
        }
        st.read_ahead.clear();
        // Readers of this range go to the rewritten file, not the cache.
        st.tail.drop_below(segment.next);
        // A removed abort marker's transaction is no longer listed.
        for (producer, marker) in pass.removed_markers.take() {
            st.producers.forget_aborted(producer, marker);
        }
        Ok(Some((segment.size, after)))
    }
}

/// The markers the swaps of an unfinished pass removed: (producer id,
/// marker offset) pairs, written (atomically) before the first swap that
/// removes one and deleted once the producers' snapshot no longer lists
/// their transactions.
pub(super) const REMOVED_MARKERS_FILE: &str = "removed-markers";
const REMOVED_MARKERS_MAGIC: &[u8; 8] = b"SLRMRK01";

fn encode_removed_markers(markers: &[(i64, Offset)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + markers.len() * 16);
    out.extend_from_slice(REMOVED_MARKERS_MAGIC);
    out.extend_from_slice(&(markers.len() as u32).to_le_bytes());
    for (producer, marker) in markers {
        out.extend_from_slice(&producer.to_le_bytes());
        out.extend_from_slice(&marker.get().to_le_bytes());
    }
    out
}

fn decode_removed_markers(bytes: &[u8]) -> Option<Vec<(i64, Offset)>> {
    let rest = bytes.strip_prefix(REMOVED_MARKERS_MAGIC)?;
    let (count, rest) = rest.split_first_chunk::<4>()?;
    let count = u32::from_le_bytes(*count) as usize;
    if rest.len() != count.checked_mul(16)? {
        return None;
    }
    rest.chunks_exact(16)
        .map(|pair| {
            let (producer, marker) = pair.split_first_chunk::<8>()?;
            let marker = marker.first_chunk::<8>()?;
            Some((
                i64::from_le_bytes(*producer),
                Offset(i64::from_le_bytes(*marker)),
            ))
        })
        .collect()
}

/// On open, after a pass that did not finish (its
/// [`REMOVED_MARKERS_FILE`] is still there): forgets the aborted
/// transactions of the listed markers that are no longer in the log (the
/// swap that removed them happened), writes the producers' snapshot (the
/// state as of the log end) and deletes the file. An unreadable file (a
/// damaged disk) has every aborted transaction's marker looked for.
/// Returns whether there was such a file (and the snapshot was written).
pub(super) async fn forget_removed_markers(
    dir: &std::path::Path,
    st: &super::State,
    producers: &mut super::producers::Producers,
) -> Result<bool> {
    let path = dir.join(REMOVED_MARKERS_FILE);
    let Some(bytes) = io::read_file(&path).await? else {
        return Ok(false);
    };
    let markers = decode_removed_markers(&bytes).unwrap_or_else(|| {
        tracing::warn!(path = %path.display(), "removed markers' list unreadable; looking for every abort marker");
        producers
            .aborted_between(Offset(0), Offset(i64::MAX))
            .into_iter()
            .map(|txn| (txn.producer_id, txn.last_offset))
            .collect()
    });
    let mut forgotten = 0usize;
    for (producer, marker) in markers {
        if !marker_stored(st, marker).await? {
            producers.forget_aborted(producer, marker);
            forgotten += 1;
        }
    }
    tracing::info!(dir = %dir.display(), forgotten, "an unfinished cleaning pass's removed markers applied");
    producers.write_snapshot(dir, st.next_offset).await?;
    io::remove_file(&path).await?;
    Ok(true)
}

/// Whether a control batch at `marker` is in the log.
async fn marker_stored(st: &super::State, marker: Offset) -> Result<bool> {
    if marker < st.log_start_offset || marker >= st.next_offset {
        return Ok(false);
    }
    let plan = super::read::plan_disk_read(st, marker)
        .resolve(super::read::Target::Offset(marker))
        .await?;
    let mut cursor = BatchCursor::new(&plan.file, plan.position, plan.limit, RECOVERY_READ_BYTES);
    while let Some(batch) = cursor.next().await.map_err(|e| corrupt(&plan.file, e))? {
        if batch.header.last_offset() >= marker {
            return Ok(batch.header.base_offset() == marker && batch.header.is_control());
        }
    }
    Ok(false)
}

/// The aborted transactions of the cleanable part, by producer: (first
/// offset, marker offset).
struct Aborted(HashMap<i64, Vec<(Offset, Offset)>>);

impl Aborted {
    fn new(list: Vec<AbortedTxn>) -> Aborted {
        let mut by_producer: HashMap<i64, Vec<(Offset, Offset)>> = HashMap::new();
        for txn in list {
            by_producer
                .entry(txn.producer_id)
                .or_default()
                .push((txn.first_offset, txn.last_offset));
        }
        Aborted(by_producer)
    }

    /// Whether `header` is a data batch of an aborted transaction.
    fn holds(&self, header: &BatchHeader) -> bool {
        let base = header.base_offset();
        header.is_transactional()
            && !header.is_control()
            && self.0.get(&header.producer_id()).is_some_and(|txns| {
                txns.iter()
                    .any(|&(first, marker)| first <= base && base < marker)
            })
    }
}

/// What one pass keeps (Kafka's rules): of data batches, the latest record
/// of each key the map covers ([`OffsetMap::keeps`]), a tombstone only
/// until `delete.retention.ms` after the cleaner first saw it; nothing of
/// an aborted transaction; a transaction marker while a record of its
/// transaction is left before it, and then until `delete.retention.ms`
/// after the cleaner first saw it (a marker goes only with the last of its
/// transaction's records, so no replay of the log ever meets a
/// transaction's records without its end). Segments are passed in offset
/// order from the log start, so every record of a transaction is met
/// before its marker.
struct Pass<'a> {
    map: &'a OffsetMap,
    passes: &'a PassHistory,
    aborted: &'a Aborted,
    delete_retention_ms: i64,
    now_ms: i64,
    /// When the first tombstone or marker kept may go.
    next_due: Cell<Option<i64>>,
    /// Producers whose transaction since their last marker has records
    /// left.
    open_data: RefCell<HashMap<i64, bool>>,
    /// Each idempotent producer's epoch and last sequence: its last batch.
    last_batches: HashMap<i64, (i16, i32)>,
    /// Markers the segment being rewritten drops: (producer, offset).
    removed_markers: RefCell<Vec<(i64, Offset)>>,
    /// Markers the swaps of this pass dropped so far (the
    /// [`REMOVED_MARKERS_FILE`]'s list).
    removed: RefCell<Vec<(i64, Offset)>>,
}

impl Pass<'_> {
    fn retain(&self, batch: &RecordBatch<'_>, position: u64) -> Result<Retained> {
        let header = batch.header();
        let producer = header.producer_id();
        if header.is_control() {
            let had_data = self
                .open_data
                .borrow_mut()
                .remove(&producer)
                .unwrap_or(false);
            let keep = had_data || !self.horizon_passed(header.base_offset().get());
            if !keep {
                self.removed_markers
                    .borrow_mut()
                    .push((producer, header.base_offset()));
            }
            return Ok(if keep { Retained::All } else { Retained::None });
        }
        let mut kept = if self.aborted.holds(&header) {
            Retained::None
        } else {
            retain_records(batch, position, |record, offset| self.keeps(record, offset))?
        };
        if kept == Retained::None
            && self.last_batches.get(&producer)
                == Some(&(header.producer_epoch(), last_sequence(&header)))
        {
            // The producer's last batch: its header stays, empty, so the
            // producer's last sequence survives a rebuild of the producers'
            // state from the log (Kafka's retained empty batch).
            let max_timestamp = header.max_timestamp();
            let mut empty = header.clone();
            empty.set_retained(Compression::None, 0, max_timestamp, &[]);
            kept = Retained::Some(empty.0.to_vec());
        }
        if header.is_transactional() && kept != Retained::None {
            self.open_data.borrow_mut().insert(producer, true);
        }
        Ok(kept)
    }

    fn keeps(&self, record: &RecordView<'_>, offset: i64) -> bool {
        if !self.map.keeps(record.key, offset) {
            return false;
        }
        if record.key.is_none() || record.value.is_some() {
            return true;
        }
        !self.horizon_passed(offset)
    }

    /// Whether the tombstone or marker at `offset` may go: the cleaner
    /// first saw it `delete.retention.ms` ago or more. One it keeps makes
    /// the log due again then; one past this pass waits for a later one.
    fn horizon_passed(&self, offset: i64) -> bool {
        let Some(seen) = self.passes.seen_at(offset) else {
            return false;
        };
        let due = seen.saturating_add(self.delete_retention_ms);
        if due <= self.now_ms {
            return true;
        }
        let next = self.next_due.get().map_or(due, |next| next.min(due));
        self.next_due.set(Some(next));
        false
    }
}

/// Where cleaning stops: the visible end (the high watermark in a
/// cluster), the first open transaction, or the first segment with a
/// record newer than `min.compaction.lag.ms`, whichever is lowest.
fn cleanable_bound(st: &super::State, now_ms: i64) -> Offset {
    let lag = i64::try_from(st.config.min_compaction_lag_ms).unwrap_or(i64::MAX);
    // No lag (the default): no time bound, as in Kafka (records stamped
    // in the future do not hold cleaning back).
    let recent = st
        .sealed
        .iter()
        .find(|s| lag > 0 && s.meta.max_timestamp > now_ms.saturating_sub(lag))
        .map(|s| s.meta.base_offset);
    let bound = st
        .producers
        .first_unstable()
        .map_or(st.visible_end(), |unstable| unstable.min(st.visible_end()));
    recent.map_or(bound, |recent| recent.min(bound))
}

/// Bytes a rewrite writes at once (block aligned; the rest waits).
const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// A segment's rewrite, written in block-aligned chunks as it is built
/// (a segment may be far larger than what a pass should hold in memory).
pub(super) struct ChunkWriter {
    file: SegmentFile,
    pending: Vec<u8>,
    written: u64,
}

impl ChunkWriter {
    pub(super) async fn create(path: &std::path::Path) -> Result<ChunkWriter> {
        Ok(ChunkWriter {
            file: SegmentFile::open(path, true).await?,
            pending: Vec::with_capacity(2 * WRITE_CHUNK_BYTES),
            written: 0,
        })
    }

    /// Copies the first `len` bytes of `from` (the unchanged batches
    /// before the first that changed).
    async fn copy_from(&mut self, from: &SegmentFile, len: u64) -> Result<()> {
        let mut at = 0;
        while at < len {
            let chunk = usize::try_from(len - at)
                .map_or(WRITE_CHUNK_BYTES, |left| left.min(WRITE_CHUNK_BYTES));
            let read = from.read_at(at, chunk).await?;
            if read.is_empty() {
                break;
            }
            self.push(&read).await?;
            at += read.len() as u64;
        }
        Ok(())
    }

    pub(super) async fn push(&mut self, bytes: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= WRITE_CHUNK_BYTES {
            let aligned = self.pending.len() - self.pending.len() % BLOCK_BYTES as usize;
            self.write(aligned).await?;
        }
        Ok(())
    }

    /// Writes the first `len` pending bytes, padded to a block.
    async fn write(&mut self, len: usize) -> Result<()> {
        let padded = len.next_multiple_of(BLOCK_BYTES as usize);
        let mut buf = self.file.alloc(padded);
        if let (Some(to), Some(from)) = (buf.as_mut().get_mut(..len), self.pending.get(..len)) {
            to.copy_from_slice(from);
        }
        self.file.write_at(buf, self.written).await?;
        self.pending.drain(..len);
        self.written += len as u64;
        Ok(())
    }

    /// Writes the rest, cuts the file to `size` bytes, makes it durable
    /// and closes it.
    pub(super) async fn finish(mut self, size: u64) -> Result<()> {
        if !self.pending.is_empty() {
            self.write(self.pending.len()).await?;
        }
        self.file.truncate(size).await?;
        self.file.fdatasync().await?;
        self.file.close().await?;
        Ok(())
    }
}

/// Calls `f(key, offset)` for each keyed record of the stored batch
/// `bytes` (at `position` of its segment), decompressing it if need be.
fn each_key(bytes: &[u8], position: u64, mut f: impl FnMut(&[u8], i64)) -> Result<()> {
    let invalid = |reason| Error::Batch(BatchError::Invalid { position, reason });
    let view = RecordBatch::from_checked(bytes).ok_or(invalid("short batch"))?;
    let raw = view.raw_records(position)?;
    let base = view.header().base_offset().get();
    for_each_record(&raw, |record| {
        if let Some(key) = record.key {
            f(key, base + i64::from(record.offset_delta));
        }
    })
    .map_err(|_| invalid("a record is malformed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_markers_read_back_and_damage_is_told() {
        let markers = vec![
            (7, Offset(12)),
            (i64::MAX, Offset(0)),
            (-1, Offset(i64::MAX)),
        ];
        let bytes = encode_removed_markers(&markers);
        assert_eq!(decode_removed_markers(&bytes), Some(markers));
        assert_eq!(
            decode_removed_markers(&encode_removed_markers(&[])),
            Some(vec![])
        );
        for cut in 0..bytes.len() {
            assert_eq!(decode_removed_markers(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_removed_markers(&longer), None);
        let mut count = bytes;
        count[8] = 0xff;
        assert_eq!(decode_removed_markers(&count), None);
    }
}
