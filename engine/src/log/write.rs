//! The write path: append (validate, assign offsets, stage), the flusher
//! (write, group-committed fdatasync, resolve), rolling and closing.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::producers::{Updates, Verdict};
use super::sealed::SealedSegment;
use super::segment::{ActiveSegment, SegmentMeta, index_path, log_path, time_index_path};
use super::staging::{FlushOutcome, Staging, Waiter};
use super::{AppendInfo, CachedBatch, FlushPolicy, Log, Shared, TimestampType};
use crate::batch::{BatchHeader, HEADER_BYTES, Rewrite, ValidateMode, rewrite_batches, validate};
use crate::io::{self, SegmentFile};
use crate::limits::STAGED_BYTES_MAX;
use crate::{Error, IoError, Offset, Result};

/// An append with its offsets assigned, not yet durable. Dropping it does
/// not undo it: the flusher writes it anyway.
#[derive(Debug)]
#[must_use = "an append is acknowledged only after finish()"]
pub struct StagedAppend {
    durable: oneshot::Receiver<FlushOutcome>,
    info: AppendInfo,
}

impl StagedAppend {
    /// The offsets the append took (final; readable only once finished).
    pub fn info(&self) -> &AppendInfo {
        &self.info
    }

    /// Resolves when the append is durable (or written, under an interval
    /// flush policy), as [`Log::append`] does.
    pub async fn finish(self) -> Result<AppendInfo> {
        match self.durable.await {
            Ok(Ok(())) => Ok(self.info),
            Ok(Err(cause)) => Err(Error::Poisoned(cause)),
            Err(_) => Err(Error::Closed),
        }
    }
}

/// Validates the batches of an append; their (position, size), at least
/// one.
fn spans_of(batches: &[u8], mode: ValidateMode) -> Result<Vec<(usize, usize)>> {
    let mut spans = Vec::with_capacity(1);
    for item in validate(batches, 0, mode) {
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
    Ok(spans)
}

impl Log {
    /// Appends the record batches in `batches` (one or more, back to back)
    /// and resolves when they are durable (or written, under an interval
    /// flush policy). Nothing is stored unless every batch is valid.
    pub async fn append(&self, batches: Bytes, now_ms: i64) -> Result<AppendInfo> {
        self.stage_append(batches, now_ms).await?.finish().await
    }

    /// The first half of [`Log::append`]: validates the batches, assigns
    /// their offsets and queues them for the flusher. Appends are staged in
    /// the order their calls first reach the append lock (FIFO), so a caller
    /// that stages one request before starting the next keeps them in
    /// order while their flushes overlap.
    pub async fn stage_append(&self, batches: Bytes, now_ms: i64) -> Result<StagedAppend> {
        let rewrite = {
            let config = &self.shared.state.borrow().config;
            Rewrite {
                compression: config.target_compression(),
                timestamps: config.timestamp_window(),
                now_ms,
                max_message_bytes: config.max_message_bytes,
                require_keys: config.cleanup.compact,
            }
        };
        let mode = ValidateMode::Produce {
            max_message_bytes: rewrite.max_message_bytes,
        };
        let spans = spans_of(&batches, mode)?;
        // On this (the owning) shard, before the append lock: CPU only.
        let (batches, spans) = match rewrite_batches(&batches, &spans, &rewrite)? {
            Some((rewritten, spans)) => (Bytes::from(rewritten), spans),
            None => (batches, spans),
        };
        let guard = self.lock_for_append(&batches, &spans, now_ms).await?;
        let (durable, info) = match self.shared.check_producers(&batches, &spans, now_ms)? {
            Verdict::Append(updates) => {
                let staged = self.shared.stage(&batches, &spans, now_ms, true);
                self.shared.state.borrow_mut().producers.apply(updates);
                staged
            }
            Verdict::Duplicate { first, last } => self.shared.wait_for_duplicate(first, last),
        };
        drop(guard);
        self.shared.staged.notify_one();
        Ok(StagedAppend { durable, info })
    }

    /// A follower's append: batches its leader assigned offsets to and
    /// stamped with its epoch, starting exactly at this log's end, stored
    /// as they are (checked for framing and CRC: they came over the
    /// network). Producer and transaction state follow them without checks
    /// (the leader made them); a new epoch among them is recorded durably
    /// first. Resolves like [`Log::stage_append`].
    pub async fn append_replica(&self, batches: Bytes, now_ms: i64) -> Result<StagedAppend> {
        self.append_replicated(batches, None, now_ms).await
    }

    /// [`Log::append_replica`] of a push the leader read from `from` (this
    /// log's end, or the push is refused): its batches may skip offsets (a
    /// compacted leader's log has gaps, which the leader vouches for) but
    /// never go back.
    pub async fn append_replica_from(
        &self,
        batches: Bytes,
        from: Offset,
        now_ms: i64,
    ) -> Result<StagedAppend> {
        self.append_replicated(batches, Some(from), now_ms).await
    }

    async fn append_replicated(
        &self,
        batches: Bytes,
        gaps_from: Option<Offset>,
        now_ms: i64,
    ) -> Result<StagedAppend> {
        let spans = spans_of(&batches, ValidateMode::Stored)?;
        let guard = self.lock_for_append(&batches, &spans, now_ms).await?;
        let headers: Vec<BatchHeader> = spans
            .iter()
            .filter_map(|&(position, _)| {
                batches
                    .get(position..position + HEADER_BYTES)
                    .and_then(|h| h.first_chunk())
                    .map(|h| BatchHeader(*h))
            })
            .collect();
        let mut expected = self.shared.state.borrow().next_offset;
        if let Some(from) = gaps_from.filter(|&from| from != expected) {
            return Err(Error::ReplicaGap {
                expected,
                got: from,
            });
        }
        for header in &headers {
            let gap_allowed = gaps_from.is_some() && header.base_offset() > expected;
            if header.base_offset() != expected && !gap_allowed {
                return Err(Error::ReplicaGap {
                    expected,
                    got: header.base_offset(),
                });
            }
            expected = header.last_offset().plus(1);
        }
        let seen: Vec<(i32, Offset)> = headers
            .iter()
            .map(|h| (h.partition_leader_epoch(), h.base_offset()))
            .collect();
        self.note_epochs(&seen).await?;
        {
            let mut st = self.shared.state.borrow_mut();
            for (header, &(position, size)) in headers.iter().zip(&spans) {
                if header.producer_id() < 0 {
                    continue;
                }
                let marker = header
                    .is_control()
                    .then(|| batches.get(position..position + size))
                    .flatten()
                    .and_then(crate::batch::builder::read_marker);
                match marker {
                    Some(marker) => st.producers.replay_marker(header, marker, now_ms),
                    None if !header.is_control() => st.producers.replay(header, now_ms),
                    None => {}
                }
            }
        }
        let (durable, info) = self.shared.stage(&batches, &spans, now_ms, false);
        drop(guard);
        self.shared.staged.notify_one();
        Ok(StagedAppend { durable, info })
    }

    /// Appends a transaction marker (a control batch ending `producer_id`'s
    /// transaction here: commit or abort) and resolves when it is durable.
    /// Markers come from the transaction coordinator, never from clients;
    /// one from an older epoch than the producer's is refused, as is one
    /// from an older coordinator epoch than the producer's last marker
    /// here (a deposed coordinator's, late).
    pub async fn append_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let batch = Bytes::from(crate::batch::builder::marker_batch(
            producer_id,
            epoch,
            commit,
            coordinator_epoch,
            now_ms,
        ));
        let spans = [(0, batch.len())];
        let guard = self.lock_for_append(&batch, &spans, now_ms).await?;
        let staged = {
            let st = self.shared.state.borrow();
            st.producers.marker(
                producer_id,
                epoch,
                commit,
                coordinator_epoch,
                st.next_offset,
                now_ms,
            )?
        };
        let (durable, info) = self.shared.stage(&batch, &spans, now_ms, true);
        self.shared.state.borrow_mut().producers.apply(staged);
        drop(guard);
        self.shared.staged.notify_one();
        StagedAppend { durable, info }.finish().await
    }

    /// Takes the append lock for `batches`, once the staged bytes are under
    /// their bound, rolling first when they would not fit the segment.
    async fn lock_for_append(
        &self,
        batches: &Bytes,
        spans: &[(usize, usize)],
        now_ms: i64,
    ) -> Result<tokio::sync::MutexGuard<'_, ()>> {
        let guard = self.shared.append_lock.lock().await;
        self.shared.check_writable()?;
        while self.shared.state.borrow().staging.unwritten_bytes() > STAGED_BYTES_MAX {
            self.shared.drained.notified().await;
            self.shared.check_writable()?;
        }
        let total: usize = spans.iter().map(|(_, size)| size).sum();
        let count: u64 = spans
            .iter()
            .map(|&(p, _)| batch_record_count(batches, p))
            .sum();
        if self.shared.needs_roll(total as u64, count, now_ms) {
            self.shared.roll(now_ms).await?;
        }
        if self.shared.state.borrow().claims_clean() {
            // The first append since an open after a clean close: from here
            // a crash must rescan the active segment.
            self.shared
                .write_checkpoint(false)
                .await
                .map_err(|e| self.shared.poison(e))?;
        }
        Ok(guard)
    }

    /// Writes and fdatasyncs everything staged, whatever the flush policy.
    pub async fn flush(&self) -> Result<()> {
        self.shared.flush_all().await
    }

    /// Flushes, stops the flusher, writes the checkpoint and closes files.
    /// A poisoned log skips the flush and the clean-close marks (its next
    /// open recovers from disk), closes its files and reports the poison.
    pub async fn close(mut self) -> Result<()> {
        let guard = self.shared.append_lock.lock().await;
        tracing::debug!(dir = %self.shared.dir.display(), next = self.shared.state.borrow().next_offset.get(), "log closing");
        let mut outcome = self.shared.flush_all().await;
        self.shared.state.borrow_mut().closed = true;
        self.shared.staged.notify_one();
        self.shared.drained.notify_waiters();
        self.shared.end_moved.notify_waiters();
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
            .iter()
            .filter_map(|s| s.store.forget())
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
        let task = io::spawn(super::flusher::run(Rc::clone(&shared)));
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
        let max_age = st
            .config
            .segment_max_age_ms(meta.base_offset.0, meta.created_ms);
        let max_age = i64::try_from(max_age).unwrap_or(i64::MAX);
        let too_old = now_ms.saturating_sub(meta.created_ms) >= max_age;
        let span = (st.next_offset.0 - meta.base_offset.0) as u64 + records;
        too_big || too_old || span >= u64::from(u32::MAX)
    }

    /// Checks the idempotent producers' batches of an append against their
    /// state (nothing to do, and nothing allocated, for plain producers).
    fn check_producers(
        &self,
        batches: &Bytes,
        spans: &[(usize, usize)],
        now_ms: i64,
    ) -> Result<Verdict> {
        let headers = spans.iter().filter_map(|&(position, _)| {
            let bytes = batches.get(position..position + HEADER_BYTES)?;
            Some(BatchHeader(*bytes.first_chunk()?))
        });
        if headers.clone().all(|h| h.producer_id() < 0) {
            return Ok(Verdict::Append(Updates::default()));
        }
        let headers: Vec<BatchHeader> = headers.collect();
        let st = self.state.borrow();
        Ok(st.producers.check(&headers, st.next_offset, now_ms)?)
    }

    /// A retried batch already stored at [first, last]: resolves once
    /// everything staged so far is durable (the first copy with it), with
    /// the first copy's offsets; stores nothing.
    fn wait_for_duplicate(
        &self,
        first: Offset,
        last: Offset,
    ) -> (oneshot::Receiver<FlushOutcome>, AppendInfo) {
        let mut st = self.state.borrow_mut();
        let (tx, rx) = oneshot::channel();
        let needs_sync = st.config.flush == FlushPolicy::EveryAppend;
        let (end, last_offset) = (st.staging.end(), st.next_offset.plus(-1));
        st.staging.add_waiter(Waiter {
            end,
            last_offset,
            messages: 0,
            needs_sync,
            tx,
        });
        let info = AppendInfo {
            base_offset: first,
            last_offset: last,
            log_append_time: -1,
            log_start_offset: st.log_start_offset,
            record_count: 0,
        };
        (rx, info)
    }

    /// Assigns offsets to validated batches and stages them. Synchronous:
    /// appends are ordered by the append lock.
    /// Stages `batches` at the log end. `stamp`: the leader's append, which
    /// assigns offsets and stamps its epoch (and LogAppendTime); a
    /// follower's batches are stored as the leader made them.
    fn stage(
        &self,
        batches: &Bytes,
        spans: &[(usize, usize)],
        now_ms: i64,
        stamp: bool,
    ) -> (oneshot::Receiver<FlushOutcome>, AppendInfo) {
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
            if stamp {
                header.set_base_offset(st.next_offset);
                // Not covered by the CRC: the leader's to set (KIP-101).
                if st.leader_epoch >= 0 {
                    header.set_partition_leader_epoch(st.leader_epoch);
                }
                if log_append {
                    header.set_log_append_time(now_ms, &records);
                }
            }
            assert_eq!(
                st.active.meta.size,
                st.staging.end(),
                "staging and segment agree on the tail"
            );
            st.active.meta.on_batch(&header, interval);
            st.staging.stage(&st.active.file, &[&header.0, &records]);
            st.next_offset = header.last_offset().plus(1);
            records_total += u64::try_from(header.record_count()).unwrap_or(0);
            st.tail.push(Rc::new(CachedBatch { header, records }));
        }
        let (tx, rx) = oneshot::channel();
        let last_offset = st.next_offset.plus(-1);
        let needs_sync = st.config.flush == FlushPolicy::EveryAppend;
        let end = st.staging.end();
        st.staging.add_waiter(Waiter {
            end,
            last_offset,
            messages: records_total,
            needs_sync,
            tx,
        });
        let info = AppendInfo {
            base_offset,
            last_offset,
            log_append_time: if log_append { now_ms } else { -1 },
            log_start_offset: st.log_start_offset,
            record_count: records_total,
        };
        (rx, info)
    }

    /// Resolves once everything staged so far is written and fdatasync'ed,
    /// whatever the flush policy.
    pub(super) async fn flush_all(&self) -> Result<()> {
        let rx = {
            let mut st = self.state.borrow_mut();
            if let Some(cause) = &st.poisoned {
                return Err(Error::Poisoned(Arc::clone(cause)));
            }
            let (tx, rx) = oneshot::channel();
            let (end, last_offset) = (st.staging.end(), st.next_offset.plus(-1));
            st.staging.add_waiter(Waiter {
                end,
                last_offset,
                messages: 0,
                needs_sync: true,
                tx,
            });
            rx
        };
        self.staged.notify_one();
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(cause)) => Err(Error::Poisoned(cause)),
            Err(_) => Err(Error::Closed),
        }
    }

    /// Records a failed write or sync: no more appends until reopened; every
    /// pending append fails. What was readable stays readable.
    pub(super) fn poison(&self, e: IoError) -> Error {
        tracing::error!(dir = %self.dir.display(), error = %e, "write failed; partition poisoned until reopened");
        let cause = Arc::new(e);
        let outcome = Err(Arc::clone(&cause));
        let mut st = self.state.borrow_mut();
        st.staging.fail_all(&outcome);
        st.poisoned.get_or_insert_with(|| Arc::clone(&cause));
        drop(st);
        self.drained.notify_waiters();
        Error::Poisoned(cause)
    }

    /// Seals the active segment and starts a new one at the next offset.
    /// Called with the append lock held.
    pub(super) async fn roll(&self, now_ms: i64) -> Result<()> {
        self.state.borrow_mut().sealing = true;
        self.flush_all().await?;
        // An allocation ahead that finished after the truncate below would
        // grow the sealed file again.
        loop {
            let allocated = self.allocated.notified();
            if !self.state.borrow().allocating {
                break;
            }
            allocated.await;
        }
        let (file, mut meta) = {
            let st = self.state.borrow();
            (Rc::clone(&st.active.file), st.active.meta.clone())
        };
        meta.finish_time_index();
        self.seal_files(&file, &meta)
            .await
            .map_err(|e| self.poison(e))?;
        let base = meta.next_offset;
        let path = log_path(&self.dir, base);
        // From here a failure leaves the old segment sealed on disk while it
        // is still the active one in memory: only a reopen sorts that out.
        let new_file = SegmentFile::open(&path, true)
            .await
            .map_err(|e| self.poison(e))?;
        io::sync_dir(&self.dir).await.map_err(|e| self.poison(e))?;
        {
            let mut st = self.state.borrow_mut();
            let st = &mut *st;
            let buffer_bytes = st.config.write_buffer_bytes;
            let active = ActiveSegment {
                meta: SegmentMeta::empty(base, now_ms),
                file: Rc::new(new_file),
            };
            let old = std::mem::replace(&mut st.active, active);
            st.sealed
                .push(SealedSegment::new(&self.dir, meta, Some(old.file)));
            st.staging = Staging::new(buffer_bytes, 0, Vec::new());
            st.readable_bytes = 0;
            st.sealing = false;
        }
        self.write_checkpoint(false)
            .await
            .map_err(|e| self.poison(e))?;
        self.snapshot_producers(base, Some(now_ms))
            .await
            .map_err(|e| self.poison(e))?;
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
    /// Nothing is written when the file already says exactly that.
    pub(super) async fn write_checkpoint(&self, clean: bool) -> Result<(), IoError> {
        let checkpoint = self.state.borrow().checkpoint(clean);
        if self.state.borrow().checkpoint_on_disk.as_ref() == Some(&checkpoint) {
            return Ok(());
        }
        self.state.borrow_mut().checkpoint_on_disk = None;
        checkpoint.write(&self.dir).await?;
        self.state.borrow_mut().checkpoint_on_disk = Some(checkpoint);
        Ok(())
    }

    /// Writes the producers' state as of `offset` (everything below it
    /// staged), after forgetting those expired at `now_ms` if given (the
    /// appends' clock). Written also when there are none: an open then
    /// replays from `offset`, not from further back.
    pub(super) async fn snapshot_producers(
        &self,
        offset: Offset,
        now_ms: Option<i64>,
    ) -> Result<(), IoError> {
        let producers = {
            let mut st = self.state.borrow_mut();
            if let Some(now_ms) = now_ms {
                let expiration = st.config.producer_id_expiration_ms;
                st.producers.expire(now_ms, expiration);
            }
            let log_start = st.log_start_offset;
            st.producers.trim(log_start);
            st.producers.encode(offset)
        };
        if self.state.borrow().snapshot_on_disk.as_ref() == Some(&producers) {
            return Ok(());
        }
        self.state.borrow_mut().snapshot_on_disk = None;
        super::producers::write_snapshot(&self.dir, producers.clone()).await?;
        self.state.borrow_mut().snapshot_on_disk = Some(producers);
        Ok(())
    }

    /// On a clean close: the producers' snapshot at the log end, the active
    /// segment gets its exact size and index files, and the checkpoint says
    /// so.
    async fn seal_active_for_close(&self) -> Result<()> {
        let (file, mut meta, next) = {
            let st = self.state.borrow();
            (
                Rc::clone(&st.active.file),
                st.active.meta.clone(),
                st.next_offset,
            )
        };
        self.snapshot_producers(next, None).await?;
        if meta.size == 0 {
            return Ok(self.write_checkpoint(false).await?);
        }
        let unchanged = {
            let st = self.state.borrow();
            st.checkpoint_on_disk.as_ref() == Some(&st.checkpoint(true))
        };
        if unchanged {
            // Opened after a clean close and not appended to since: its
            // files are as that close left them.
            return Ok(());
        }
        meta.finish_time_index();
        self.seal_files(&file, &meta).await?;
        Ok(self.write_checkpoint(true).await?)
    }
}
