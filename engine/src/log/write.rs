//! The write path: append (validate, assign offsets, stage), the flusher
//! (write, group-committed fdatasync, resolve), rolling and closing.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::future::{select, try_join_all};
use tokio::sync::oneshot;

use super::segment::{ActiveSegment, SegmentMeta, index_path, log_path, time_index_path};
use super::staging::{FlushJob, Staging, Waiter};
use super::{AppendInfo, CachedBatch, FlushPolicy, Log, Shared, TimestampType};
use crate::batch::{BatchHeader, HEADER_BYTES, ValidateMode, validate};
use crate::checkpoint::Checkpoint;
use crate::io::{self, SegmentFile};
use crate::limits::STAGED_BYTES_MAX;
use crate::{Error, IoError, Result};

impl Log {
    /// Appends the record batches in `batches` (one or more, back to back)
    /// and resolves when they are durable (or written, under an interval
    /// flush policy). Nothing is stored unless every batch is valid.
    pub async fn append(&self, batches: Bytes, now_ms: i64) -> Result<AppendInfo> {
        let max_message_bytes = self.shared.state.borrow().config.max_message_bytes;
        let mode = ValidateMode::Produce { max_message_bytes };
        let mut spans = Vec::with_capacity(1);
        for item in validate(&batches, 0, mode) {
            let (position, batch) = item?;
            spans.push((position, batch.size()));
        }
        if spans.is_empty() {
            return Err(crate::batch::BatchError::Truncated {
                position: 0,
                need: 12,
                have: 0,
            }
            .into());
        }
        let guard = self.shared.append_lock.lock().await;
        self.shared.check_writable()?;
        while self.shared.state.borrow().staging.staged_bytes > STAGED_BYTES_MAX {
            self.shared.drained.notified().await;
            self.shared.check_writable()?;
        }
        let total: usize = spans.iter().map(|(_, size)| size).sum();
        let count: u64 = spans
            .iter()
            .map(|&(p, _)| batch_record_count(&batches, p))
            .sum();
        if self.shared.needs_roll(total as u64, count, now_ms) {
            self.shared.roll(now_ms).await?;
        }
        let (rx, info) = self.shared.stage(&batches, &spans, now_ms);
        drop(guard);
        self.shared.staged.notify_one();
        match rx.await {
            Ok(Ok(())) => Ok(info),
            Ok(Err(cause)) => Err(Error::Poisoned(cause)),
            Err(_) => Err(Error::Closed),
        }
    }

    /// Writes and fdatasyncs everything staged, whatever the flush policy.
    pub async fn flush(&self) -> Result<()> {
        self.shared.flush(true).await
    }

    /// Flushes, stops the flusher, writes the checkpoint and closes files.
    /// A poisoned log skips the flush and the clean-close marks (its next
    /// open recovers from disk), closes its files and reports the poison.
    pub async fn close(mut self) -> Result<()> {
        let guard = self.shared.append_lock.lock().await;
        let mut outcome = self.shared.flush(true).await;
        self.shared.state.borrow_mut().closed = true;
        self.shared.staged.notify_one();
        self.shared.drained.notify_waiters();
        if let Some(flusher) = self.flusher.take() {
            flusher.join().await;
        }
        if outcome.is_ok() {
            outcome = self.shared.seal_active_for_close().await;
        }
        drop(guard);
        // The flusher is gone, so the log holds the only reference left.
        let Ok(shared) = Rc::try_unwrap(self.shared) else {
            return Err(Error::Closed);
        };
        let state = shared.state.into_inner();
        let files = state
            .sealed
            .into_iter()
            .map(|s| s.file)
            .chain(std::iter::once(state.active.file));
        for file in files {
            let closed = close_file(file).await;
            if outcome.is_ok() {
                outcome = closed.map_err(Error::from);
            }
        }
        outcome
    }

    pub(super) fn start_flusher(shared: Rc<Shared>) -> Log {
        let task = io::spawn(flusher(Rc::clone(&shared)));
        Log {
            shared,
            flusher: Some(task),
        }
    }
}

/// Closes a file once no reader holds it (readers hold it only for the
/// duration of one read).
pub(super) async fn close_file(file: Rc<SegmentFile>) -> Result<(), IoError> {
    let mut file = file;
    loop {
        match Rc::try_unwrap(file) {
            Ok(owned) => return owned.close().await,
            Err(shared) => {
                file = shared;
                io::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    }
}

fn batch_record_count(batches: &Bytes, position: usize) -> u64 {
    batches
        .get(position..position + HEADER_BYTES)
        .and_then(|h| h.first_chunk::<HEADER_BYTES>())
        .map_or(0, |h| {
            u64::try_from(BatchHeader(*h).record_count()).unwrap_or(0)
        })
}

/// The flusher task of one log: writes whatever is staged as soon as it is
/// staged; under an interval policy also wakes every `flush.ms` to sync.
async fn flusher(shared: Rc<Shared>) {
    loop {
        let interval = shared.state.borrow().config.flush_interval();
        match interval {
            None => shared.staged.notified().await,
            Some(period) => {
                let staged = std::pin::pin!(shared.staged.notified());
                let tick = std::pin::pin!(io::sleep(period));
                let _ = select(staged, tick).await;
            }
        }
        let (closed, poisoned) = {
            let st = shared.state.borrow();
            (st.closed, st.poisoned.is_some())
        };
        if closed {
            return;
        }
        if !poisoned {
            // A failure poisons the log and is reported to every waiter.
            let _ = shared.flush(false).await;
        }
    }
}

impl Shared {
    pub(super) fn check_writable(&self) -> Result<()> {
        let st = self.state.borrow();
        if let Some(cause) = &st.poisoned {
            return Err(Error::Poisoned(Arc::clone(cause)));
        }
        if st.closed {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn needs_roll(&self, bytes: u64, records: u64, now_ms: i64) -> bool {
        let st = self.state.borrow();
        let meta = &st.active.meta;
        if meta.size == 0 {
            return false;
        }
        let too_big = meta.size + bytes > st.config.segment_bytes;
        let too_old = now_ms.saturating_sub(meta.created_ms)
            >= i64::try_from(st.config.segment_ms).unwrap_or(i64::MAX);
        let span = (st.next_offset.0 - meta.base_offset.0) as u64 + records;
        too_big || too_old || span >= u64::from(u32::MAX)
    }

    /// Assigns offsets to validated batches and stages them. Synchronous:
    /// appends are ordered by the append lock.
    fn stage(
        &self,
        batches: &Bytes,
        spans: &[(usize, usize)],
        now_ms: i64,
    ) -> (oneshot::Receiver<super::staging::FlushOutcome>, AppendInfo) {
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        let base_offset = st.next_offset;
        let log_append = st.config.timestamp_type == TimestampType::LogAppendTime;
        let interval = st.config.index_interval_bytes;
        let mut records_total = 0u64;
        for &(position, size) in spans {
            let header_bytes = batches
                .get(position..position + HEADER_BYTES)
                .and_then(|h| h.first_chunk());
            let Some(header_bytes) = header_bytes else {
                continue;
            };
            let mut header = BatchHeader(*header_bytes);
            let records = batches.slice(position + HEADER_BYTES..position + size);
            header.set_base_offset(st.next_offset);
            if log_append {
                header.set_log_append_time(now_ms, &records);
            }
            let record_count = u64::try_from(header.record_count()).unwrap_or(0);
            assert_eq!(
                st.active.meta.size,
                st.staging.end(),
                "staging and segment agree on the tail"
            );
            st.active.meta.on_batch(&header, interval);
            st.staging.stage(
                &st.active.file,
                &[&header.0, &records],
                header.last_offset(),
                record_count,
            );
            st.next_offset = header.last_offset().plus(1);
            records_total += record_count;
            st.tail.push(Rc::new(CachedBatch { header, records }));
        }
        let (tx, rx) = oneshot::channel();
        let last_offset = st.next_offset.plus(-1);
        st.staging.add_waiter(Waiter { last_offset, tx });
        let info = AppendInfo {
            base_offset,
            last_offset,
            log_append_time: if log_append { now_ms } else { -1 },
            log_start_offset: st.log_start_offset,
            record_count: records_total,
        };
        (rx, info)
    }

    /// Writes what is staged, fdatasyncs when the policy (or `force_sync`)
    /// says so, then makes the appends readable and resolves them.
    pub(super) async fn flush(&self, force_sync: bool) -> Result<()> {
        let _guard = self.flush_lock.lock().await;
        self.flush_locked(force_sync).await
    }

    async fn flush_locked(&self, force_sync: bool) -> Result<()> {
        self.check_not_poisoned()?;
        let (job, file) = {
            let mut st = self.state.borrow_mut();
            (st.staging.take(), Rc::clone(&st.active.file))
        };
        if let Some(job) = &job {
            self.state.borrow_mut().unsynced_writes = true;
            let writes = job
                .writes
                .iter()
                .map(|(position, _)| *position)
                .collect::<Vec<_>>();
            assert!(
                writes.windows(2).all(|w| matches!(w, [a, b] if a < b)),
                "writes in file order"
            );
        }
        let job = match job {
            Some(mut job) => {
                let writes = std::mem::take(&mut job.writes);
                let result = try_join_all(
                    writes
                        .into_iter()
                        .map(|(position, buf)| file.write_at(buf, position)),
                )
                .await;
                if let Err(e) = result {
                    return Err(self.poison(e, Some(job)));
                }
                Some(job)
            }
            None => None,
        };
        if self.sync_due(force_sync, job.as_ref()) {
            if let Err(e) = file.fdatasync().await {
                return Err(self.poison(e, job));
            }
            let mut st = self.state.borrow_mut();
            st.unsynced_messages = 0;
            st.unsynced_writes = false;
            st.last_sync = Instant::now();
        }
        if let Some(job) = job {
            self.resolve(job);
        }
        Ok(())
    }

    fn check_not_poisoned(&self) -> Result<()> {
        match &self.state.borrow().poisoned {
            Some(cause) => Err(Error::Poisoned(Arc::clone(cause))),
            None => Ok(()),
        }
    }

    fn sync_due(&self, force_sync: bool, job: Option<&FlushJob>) -> bool {
        let mut st = self.state.borrow_mut();
        st.unsynced_messages += job.map_or(0, |j| j.messages);
        if !st.unsynced_writes {
            return false;
        }
        match st.config.flush {
            _ if force_sync => true,
            FlushPolicy::EveryAppend => true,
            FlushPolicy::Interval { ms, messages } => {
                let by_count = messages.is_some_and(|n| st.unsynced_messages >= n);
                let by_time =
                    ms.is_some_and(|ms| st.last_sync.elapsed().as_millis() >= u128::from(ms));
                by_count || by_time
            }
        }
    }

    fn resolve(&self, job: FlushJob) {
        {
            let mut st = self.state.borrow_mut();
            assert!(job.last_offset < st.next_offset && job.last_offset >= st.log_end_offset);
            st.log_end_offset = job.last_offset.plus(1);
            st.readable_bytes = job.end;
        }
        for waiter in job.waiters {
            assert!(waiter.last_offset <= job.last_offset);
            let _ = waiter.tx.send(Ok(()));
        }
        self.drained.notify_waiters();
    }

    /// Records a failed write or sync: no more appends until reopened; every
    /// pending append fails. What was durable stays readable.
    fn poison(&self, e: IoError, job: Option<FlushJob>) -> Error {
        tracing::error!(dir = %self.dir.display(), error = %e, "write failed; partition poisoned until reopened");
        let cause = Arc::new(e);
        let outcome = Err(Arc::clone(&cause));
        if let Some(job) = job {
            for waiter in job.waiters {
                let _ = waiter.tx.send(outcome.clone());
            }
        }
        let mut st = self.state.borrow_mut();
        st.staging.fail_all(&outcome);
        st.poisoned = Some(Arc::clone(&cause));
        self.drained.notify_waiters();
        Error::Poisoned(cause)
    }

    /// Seals the active segment and starts a new one at the next offset.
    /// Called with the append lock held.
    pub(super) async fn roll(&self, now_ms: i64) -> Result<()> {
        let _flush = self.flush_lock.lock().await;
        self.flush_locked(true).await?;
        let (file, mut meta) = {
            let st = self.state.borrow();
            (Rc::clone(&st.active.file), st.active.meta.clone())
        };
        meta.finish_time_index();
        self.seal_files(&file, &meta)
            .await
            .map_err(|e| self.poison(e, None))?;
        let base = meta.next_offset;
        let path = log_path(&self.dir, base);
        // From here a failure leaves the old segment sealed on disk while it
        // is still the active one in memory: only a reopen sorts that out.
        let new_file = SegmentFile::open(&path, true)
            .await
            .map_err(|e| self.poison(e, None))?;
        io::sync_dir(&self.dir)
            .await
            .map_err(|e| self.poison(e, None))?;
        {
            let mut st = self.state.borrow_mut();
            let st = &mut *st;
            let buffer_bytes = st.config.write_buffer_bytes;
            let active = ActiveSegment {
                meta: SegmentMeta::empty(base, now_ms),
                file: Rc::new(new_file),
            };
            let mut old = std::mem::replace(&mut st.active, active).seal();
            old.meta = meta;
            st.sealed.push(old);
            st.staging = Staging::new(buffer_bytes, 0, Vec::new());
            st.readable_bytes = 0;
        }
        self.write_checkpoint(false)
            .await
            .map_err(|e| self.poison(e, None))?;
        tracing::debug!(dir = %self.dir.display(), base = base.0, "rolled to a new segment");
        Ok(())
    }

    /// Makes a finished segment sealed on disk: exact size, indexes written.
    pub(super) async fn seal_files(
        &self,
        file: &SegmentFile,
        meta: &SegmentMeta,
    ) -> Result<(), IoError> {
        file.truncate(meta.size).await?;
        file.fdatasync().await?;
        io::write_file_synced(
            &index_path(&self.dir, meta.base_offset),
            meta.offset_index.encode(),
        )
        .await?;
        io::write_file_synced(
            &time_index_path(&self.dir, meta.base_offset),
            meta.time_index.encode(),
        )
        .await?;
        Ok(())
    }

    /// Persists the log start offset and the recovery point: the active
    /// segment's base (every sealed segment is durable and checked), or with
    /// `clean` the log end (the active segment was written out exactly, with
    /// indexes, by a clean close, and need not be scanned on open).
    pub(super) async fn write_checkpoint(&self, clean: bool) -> Result<(), IoError> {
        let checkpoint = {
            let st = self.state.borrow();
            let recovery_point = if clean {
                st.next_offset
            } else {
                st.active.meta.base_offset
            };
            Checkpoint {
                log_start_offset: st.log_start_offset,
                recovery_point,
            }
        };
        checkpoint.write(&self.dir).await
    }

    /// On a clean close: the active segment gets its exact size and index
    /// files, and the checkpoint says so.
    async fn seal_active_for_close(&self) -> Result<()> {
        let (file, mut meta) = {
            let st = self.state.borrow();
            (Rc::clone(&st.active.file), st.active.meta.clone())
        };
        if meta.size == 0 {
            return Ok(self.write_checkpoint(false).await?);
        }
        meta.finish_time_index();
        self.seal_files(&file, &meta).await?;
        Ok(self.write_checkpoint(true).await?)
    }
}
