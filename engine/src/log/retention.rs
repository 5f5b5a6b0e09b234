//! Retention (by time and size) and DeleteRecords: both move the log start
//! offset forward, persist it, then delete whole segments below it.

use std::rc::Rc;

use super::open::delete_segment_files;
use super::write::close_file;
use super::{Log, State};
use crate::{Error, Offset, Result};

impl Log {
    /// Deletes the oldest segments past `retention.ms` (by their largest
    /// timestamp) or beyond `retention.bytes`, as Kafka does; an expired
    /// active segment is rolled first so it can go too. Does nothing unless
    /// `cleanup.policy` includes delete. Returns how many segments were
    /// deleted.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        let _segments = self.shared.segments_lock.lock().await;
        let _guard = self.shared.append_lock.lock().await;
        self.shared.check_writable()?;
        if !self.shared.state.borrow().config.cleanup.delete {
            return Ok(0);
        }
        let active_expired = {
            let st = self.shared.state.borrow();
            st.sealed
                .iter()
                .all(|s| expired_by_time(&st, s.meta.max_timestamp, now_ms))
                && st.active.meta.size > 0
                && st.log_end_offset == st.next_offset
                && expired_by_time(&st, st.active.meta.max_timestamp, now_ms)
        };
        if active_expired {
            self.shared.roll(now_ms).await?;
        }
        let count = {
            let st = self.shared.state.borrow();
            let mut remaining: u64 =
                st.sealed.iter().map(|s| s.meta.size).sum::<u64>() + st.active.meta.size;
            let mut count = 0;
            for segment in &st.sealed {
                let by_size = st
                    .config
                    .retention_bytes
                    .is_some_and(|max| remaining - segment.meta.size >= max);
                if !by_size && !expired_by_time(&st, segment.meta.max_timestamp, now_ms) {
                    break;
                }
                remaining -= segment.meta.size;
                count += 1;
            }
            count
        };
        if count == 0 {
            return Ok(0);
        }
        let new_start = {
            let st = self.shared.state.borrow();
            st.sealed
                .get(count)
                .map_or(st.active.meta.base_offset, |s| s.meta.base_offset)
        };
        self.advance_log_start(new_start).await
    }

    /// Kafka's DeleteRecords: makes `offset` the new log start offset (if it
    /// is ahead of it) and deletes the segments wholly below it. `offset`
    /// may be at most the log end offset. Returns the new log start offset.
    pub async fn delete_records(&self, offset: Offset) -> Result<Offset> {
        let _segments = self.shared.segments_lock.lock().await;
        let _guard = self.shared.append_lock.lock().await;
        self.shared.check_writable()?;
        {
            let st = self.shared.state.borrow();
            if offset < Offset::ZERO || offset > st.log_end_offset {
                return Err(Error::OffsetOutOfRange {
                    offset,
                    log_start_offset: st.log_start_offset,
                    log_end_offset: st.log_end_offset,
                });
            }
        }
        self.advance_log_start(offset).await?;
        Ok(self.log_start_offset())
    }

    /// Persists a new log start offset, then deletes the sealed segments
    /// that end at or below it. Called with the append lock held.
    async fn advance_log_start(&self, offset: Offset) -> Result<usize> {
        let changed = {
            let mut st = self.shared.state.borrow_mut();
            let changed = offset > st.log_start_offset;
            if changed {
                assert!(offset <= st.next_offset);
                st.log_start_offset = offset;
            }
            changed
        };
        if !changed {
            return Ok(0);
        }
        self.shared.write_checkpoint(false).await?;
        let doomed: Vec<_> = {
            let mut st = self.shared.state.borrow_mut();
            let keep_from = st.sealed.partition_point(|s| s.meta.next_offset <= offset);
            st.read_ahead.clear();
            st.sealed.drain(..keep_from).collect()
        };
        let count = doomed.len();
        for segment in doomed {
            let base = segment.meta.base_offset;
            if Rc::strong_count(&segment.store) > 1 {
                // A reader found it: it reads the file it found.
                segment.store.retire().await?;
            } else if let Some(file) = segment.store.forget() {
                close_file(file).await?;
            }
            delete_segment_files(self.dir(), base).await?;
            tracing::info!(dir = %self.dir().display(), base = base.0, "deleted segment");
        }
        Ok(count)
    }
}

fn expired_by_time(st: &State, max_timestamp: i64, now_ms: i64) -> bool {
    let Some(retention_ms) = st.config.retention_ms else {
        return false;
    };
    let retention_ms = i64::try_from(retention_ms).unwrap_or(i64::MAX);
    max_timestamp >= 0 && now_ms.saturating_sub(max_timestamp) > retention_ms
}
