//! A follower cutting its log to its new leader's history (replication's
//! truncation by leader epoch): everything from a given offset goes.
//!
//! Built on the recovery path: the log is closed (everything staged made
//! durable), its files are cut, and it is opened again, so indexes, the
//! producer state and the epoch cache come back as recovery builds them.
//! Crash-safe at every step: first the checkpoint says "rescan from the
//! start", then segments go last first (each step leaves a log that is a
//! prefix of the one before), then the segment holding the offset is cut
//! at the first batch that reaches it and its stale index files go.

use std::path::Path;

use super::cursor::BatchCursor;
use super::open::{delete_segment_files, list_segments};
use super::read::corrupt;
use super::segment::{index_path, log_path, time_index_path};
use super::{Log, LogConfig};
use crate::checkpoint::Checkpoint;
use crate::io::{self, SegmentFile};
use crate::limits::RECOVERY_READ_BYTES;
use crate::{Offset, Result};

impl Log {
    /// Cuts the log so it ends at or before `offset` (at the start of the
    /// batch holding it: a batch is never split), never below the log
    /// start, and opens it again with `config`. The log is closed for the
    /// duration: callers hold it alone (the partition table's
    /// `truncate`). Nothing to cut: the log comes back as it was.
    pub async fn truncate_to(self, offset: Offset, config: LogConfig, now_ms: i64) -> Result<Log> {
        let (log_start, next) = {
            let st = self.shared.state.borrow();
            (st.log_start_offset, st.next_offset)
        };
        if offset >= next {
            return Ok(self);
        }
        let offset = offset.max(log_start);
        let dir = self.dir().to_path_buf();
        self.close().await?;
        Checkpoint {
            log_start_offset: log_start,
            recovery_point: log_start,
            cleaned_to: log_start,
            ..Checkpoint::default()
        }
        .write(&dir)
        .await?;
        let mut bases = list_segments(&dir).await?;
        while bases.len() > 1 && bases.last().is_some_and(|&base| base > offset) {
            if let Some(base) = bases.pop() {
                delete_segment_files(&dir, base).await?;
            }
        }
        if let Some(&base) = bases.last() {
            cut_segment(&dir, base, offset).await?;
        }
        let log = Log::open(&dir, config, now_ms).await?;
        // Open dropped the epochs past the new end from memory: on disk too.
        log.write_epochs().await?;
        tracing::info!(
            dir = %dir.display(),
            from = next.get(),
            to = log.log_end_offset().get(),
            "log truncated"
        );
        Ok(log)
    }
}

/// Cuts segment `base` at the first batch whose last offset reaches
/// `offset`, durably, and removes its index files (rebuilt on open).
async fn cut_segment(dir: &Path, base: Offset, offset: Offset) -> Result<()> {
    let file = SegmentFile::open(&log_path(dir, base), false).await?;
    let size = file.size().await?;
    let mut cut = None;
    {
        let mut cursor = BatchCursor::new(&file, 0, size, RECOVERY_READ_BYTES);
        while let Some(batch) = cursor.next().await.map_err(|e| corrupt(&file, e))? {
            if batch.header.last_offset() >= offset {
                cut = Some(batch.position);
                break;
            }
        }
    }
    if let Some(cut) = cut {
        file.truncate(cut).await?;
        file.fdatasync().await?;
    }
    file.close().await?;
    for path in [index_path(dir, base), time_index_path(dir, base)] {
        io::remove_file(&path).await?;
    }
    io::sync_dir(dir).await?;
    Ok(())
}

impl Log {
    /// Empties the log and starts it again at `offset`: a follower whose
    /// log ends below its leader's log start (Kafka's
    /// `truncateFullyAndStartAt`), which then takes the leader's batches
    /// from there. Nothing changes when the log already ends at or past
    /// `offset`. The log is closed for the duration: callers hold it
    /// alone. Crash-safe: the checkpoint first says the log starts at
    /// `offset`; segments go first to last, so a crash leaves a suffix of
    /// the old log (which the next start over removes); the epochs and the
    /// producers' snapshot, which describe the old batches, go last.
    pub async fn start_over_at(
        self,
        offset: Offset,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<Log> {
        let next = self.shared.state.borrow().next_offset;
        if offset <= next {
            return Ok(self);
        }
        let dir = self.dir().to_path_buf();
        self.close().await?;
        Checkpoint {
            log_start_offset: offset,
            recovery_point: offset,
            cleaned_to: offset,
            ..Checkpoint::default()
        }
        .write(&dir)
        .await?;
        for base in list_segments(&dir).await? {
            delete_segment_files(&dir, base).await?;
        }
        // A missing snapshot is not an error.
        io::remove_file(&dir.join(super::producers::SNAPSHOT_FILE)).await?;
        let log = Log::open(&dir, config, now_ms).await?;
        {
            let mut st = log.shared.state.borrow_mut();
            st.epochs = replication::isr::EpochCache::default();
            st.leader_epoch = -1;
        }
        log.write_epochs().await?;
        tracing::info!(dir = %dir.display(), from = next.get(), to = offset.get(), "log started over");
        Ok(log)
    }
}
