//! Grouping the segments cleaning shrank (Kafka's cleaner groups segments
//! by size): after a pass, each run of adjacent sealed segments below the
//! first dirty offset whose sizes add up to at most `segment.bytes` (and
//! whose offsets span at most `i32::MAX`) becomes one segment, its base
//! the first's and its range theirs, so a
//! compacted log does not keep one file (and its indexes) per segment it
//! ever had.
//!
//! 1. The run's batches are copied, in order, into `<first>.cleaned` and
//!    made durable; its indexes are built as it is written.
//! 2. Under the segments lock, if the run is still in the log as it was:
//!    `<first>.cleaned` is renamed `<first>-<end>.swap` (dir fsynced: the
//!    commit point; `end` is the run's next offset).
//! 3. The run's segment files are deleted (dir fsynced), the swap renamed
//!    `<first>.log` (dir fsynced), its indexes written, and the run
//!    replaced by the one segment in memory.
//!
//! A crash before 2 leaves the old segments and a `.cleaned` that open
//! deletes; from 2 on, open finishes the swap ([`finish_swaps`]): every
//! segment file in `[first, end)` deleted, the swap renamed, its indexes
//! rebuilt by a scan. Readers of the old files read on from them.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::Log;
use super::clean::{ChunkWriter, cleaned_path};
use super::cursor::BatchCursor;
use super::open::delete_segment_files;
use super::read::corrupt;
use super::sealed::{SealedSegment, SegmentStore};
use super::segment::{SegmentMeta, log_path, parse_log_name, write_indexes};
use crate::clean::throttle;
use crate::crashpoint::crash_if;
use crate::io::{self, SegmentFile};
use crate::limits::RECOVERY_READ_BYTES;
use crate::{IoError, Offset, Result};

const CRASH_COMMITTED: &str = "merge-committed";
const CRASH_OLD_DELETED: &str = "merge-old-deleted";

fn swap_path(dir: &Path, base: Offset, end: Offset) -> PathBuf {
    dir.join(format!("{:020}-{:020}.swap", base.get(), end.get()))
}

fn parse_swap_name(name: &str) -> Option<(Offset, Offset)> {
    let (base, end) = name.strip_suffix(".swap")?.split_once('-')?;
    let parse = |s: &str| {
        (s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok().map(Offset))
            .flatten()
    };
    Some((parse(base)?, parse(end)?))
}

/// On open, before the segments are listed: finishes every swap a crash
/// interrupted after its commit point (step 2 above).
pub(super) async fn finish_swaps(dir: &Path) -> Result<(), IoError> {
    let names = io::list_dir(dir)?;
    for name in &names {
        let Some((base, end)) = parse_swap_name(name) else {
            continue;
        };
        for covered in names.iter().filter_map(|n| parse_log_name(n)) {
            if covered >= base && covered < end {
                delete_segment_files(dir, covered).await?;
            }
        }
        io::rename(&dir.join(name), &log_path(dir, base)).await?;
        io::sync_dir(dir).await?;
        tracing::info!(dir = %dir.display(), base = base.get(), end = end.get(), "interrupted segment merge finished");
    }
    Ok(())
}

/// One run of segments to merge, as planned.
struct Run {
    segments: Vec<(Offset, Rc<SegmentStore>, u64)>,
    end: Offset,
}

impl Log {
    /// Merges each run of adjacent cleaned sealed segments that fits in
    /// `segment.bytes` (see the module's steps); returns how many segments
    /// the log has fewer.
    pub(super) async fn merge_cleaned_segments(&self, now_ms: i64) -> Result<usize> {
        let runs = {
            let st = self.shared.state.borrow();
            let limit = st.config.segment_bytes;
            let mut runs = Vec::new();
            let mut run: Vec<(Offset, Rc<SegmentStore>, u64)> = Vec::new();
            let (mut size, mut end) = (0u64, Offset::ZERO);
            for s in st
                .sealed
                .iter()
                .filter(|s| s.meta.next_offset <= st.first_dirty)
            {
                // A segment's index holds offsets relative to its base in
                // 32 bits (Kafka bounds a group by `Int.MaxValue` too).
                let span = run
                    .first()
                    .map_or(0, |(first, _, _)| s.meta.next_offset.get() - first.get());
                if !run.is_empty() && (size + s.meta.size > limit || span > i64::from(i32::MAX)) {
                    if run.len() > 1 {
                        runs.push(Run {
                            segments: std::mem::take(&mut run),
                            end,
                        });
                    }
                    run.clear();
                    size = 0;
                }
                run.push((s.meta.base_offset, Rc::clone(&s.store), s.meta.size));
                size += s.meta.size;
                end = s.meta.next_offset;
            }
            if run.len() > 1 {
                runs.push(Run { segments: run, end });
            }
            runs
        };
        let mut fewer = 0;
        for run in runs {
            if self.merge_run(&run, now_ms).await? {
                fewer += run.segments.len() - 1;
            }
        }
        Ok(fewer)
    }

    /// Steps 1-3 for one run; false if the run changed meanwhile.
    async fn merge_run(&self, run: &Run, now_ms: i64) -> Result<bool> {
        let dir = &self.shared.dir;
        let Some(&(first, _, _)) = run.segments.first() else {
            return Ok(false);
        };
        let interval = self.shared.state.borrow().config.index_interval_bytes;
        let cleaned = cleaned_path(dir, first);
        let mut writer = ChunkWriter::create(&cleaned).await?;
        let mut meta = SegmentMeta::empty(first, now_ms);
        let mut size = 0u64;
        for (_, store, len) in &run.segments {
            let file = &store.file().await?;
            let mut cursor = BatchCursor::new(file, 0, *len, RECOVERY_READ_BYTES);
            while let Some(batch) = cursor.next().await.map_err(|e| corrupt(file, e))? {
                io::yield_queue().await;
                throttle(batch.bytes.len() as u64).await;
                meta.on_batch(&batch.header, interval);
                writer.push(&batch.bytes).await?;
                size += batch.bytes.len() as u64;
            }
        }
        writer.finish(size).await?;
        meta.next_offset = run.end;
        meta.size = size;
        meta.finish_time_index();
        let _segments = self.shared.segments_lock.lock().await;
        let at = |st: &super::State| {
            let at = st.sealed.iter().position(|s| s.meta.base_offset == first)?;
            let same = st
                .sealed
                .get(at..at + run.segments.len())
                .is_some_and(|now| {
                    now.iter().zip(&run.segments).all(|(s, (base, store, _))| {
                        s.meta.base_offset == *base && Rc::ptr_eq(&s.store, store)
                    })
                });
            same.then_some(at)
        };
        if at(&self.shared.state.borrow()).is_none() {
            io::remove_file(&cleaned).await?;
            return Ok(false);
        }
        for (_, store, _) in &run.segments {
            // Readers that found these segments keep reading their files.
            store.retire().await?;
        }
        let swap = swap_path(dir, first, run.end);
        io::rename(&cleaned, &swap).await?;
        io::sync_dir(dir).await?;
        crash_if(CRASH_COMMITTED);
        for (base, _, _) in &run.segments {
            delete_segment_files(dir, *base).await?;
        }
        crash_if(CRASH_OLD_DELETED);
        io::rename(&swap, &log_path(dir, first)).await?;
        io::sync_dir(dir).await?;
        write_indexes(dir, &meta).await?;
        let file = Rc::new(SegmentFile::open(&log_path(dir, first), false).await?);
        let mut st = self.shared.state.borrow_mut();
        if let Some(at) = at(&st) {
            let merged = SealedSegment::new(dir, meta, Some(file));
            st.sealed.splice(at..at + run.segments.len(), [merged]);
        }
        st.read_ahead.clear();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_names_round_trip() {
        let path = swap_path(Path::new("/d"), Offset(12), Offset(3400));
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(name, "00000000000000000012-00000000000000003400.swap");
        assert_eq!(parse_swap_name(name), Some((Offset(12), Offset(3400))));
        assert_eq!(parse_swap_name("12-3400.swap"), None);
        assert_eq!(parse_swap_name("00000000000000000012.log"), None);
    }
}
