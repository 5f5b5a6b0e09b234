//! The read path: batches by offset (tail cache first, then direct I/O
//! reads checked batch by batch), and offset lookup by timestamp.

use std::rc::Rc;

use super::cursor::{BatchCursor, CursorError};
use super::producers::AbortedTxn;
use super::read_ahead::Continues;
use super::sealed::SegmentStore;
use super::tail_cache::CachedBatch;
use super::{Log, State};
use crate::batch::records::for_each_record;
use crate::batch::{Compression, HEADER_BYTES, NO_TIMESTAMP, codec};
use crate::io::{ReadBuf, SegmentFile};
use crate::limits::{BLOCK_BYTES, DECOMPRESSED_BYTES_MAX, READ_BYTES_MIN};
use crate::{Error, IoError, Offset, Result};

/// One whole record batch handed to a reader, without copying its bytes:
/// either from the tail cache (rewritten header + the producer's records) or
/// a slice of a direct I/O read buffer. Write `slices()` to a socket in order.
#[derive(Debug, Clone)]
pub enum Chunk {
    Cached(Rc<CachedBatch>),
    Stored(ReadBuf),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Cached(batch) => batch.size(),
            Chunk::Stored(buf) => buf.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch's bytes as one or two slices, in order.
    pub fn slices(&self) -> [&[u8]; 2] {
        match self {
            Chunk::Cached(batch) => [&batch.header.0, &batch.records],
            Chunk::Stored(buf) => [buf, &[]],
        }
    }

    /// Copies the batch into `out` (tests, tools; the broker writes slices).
    pub fn extend_into(&self, out: &mut Vec<u8>) {
        for slice in self.slices() {
            out.extend_from_slice(slice);
        }
    }
}

/// What a read returns: whole batches, and the log's bounds at that time.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    pub chunks: Vec<Chunk>,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
    /// What consumers may read below (the log end when the broker runs
    /// alone).
    pub high_watermark: Offset,
}

impl ReadResult {
    pub fn bytes(&self) -> usize {
        self.chunks.iter().map(Chunk::len).sum()
    }
}

/// Where a read starts, before a sealed segment's file and indexes are at
/// hand ([`Planned::resolve`] gets them).
pub(super) enum Planned {
    Ready(DiskPlan),
    Sealed {
        store: Rc<SegmentStore>,
        base: Offset,
        limit: u64,
        next_offset: Offset,
    },
}

/// What a read looks for in a segment.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    Offset(Offset),
    /// The first batch whose max timestamp is at or after this.
    Time(i64),
}

impl Planned {
    fn sealed(s: &super::sealed::SealedSegment) -> Planned {
        Planned::Sealed {
            store: Rc::clone(&s.store),
            base: s.meta.base_offset,
            limit: s.meta.size,
            next_offset: s.meta.next_offset,
        }
    }

    /// Where on disk the read of `target` starts.
    pub(super) async fn resolve(self, target: Target) -> Result<DiskPlan, IoError> {
        match self {
            Planned::Ready(plan) => Ok(plan),
            Planned::Sealed {
                store,
                base,
                limit,
                next_offset,
            } => {
                let handles = store.handles().await?;
                let indexes = &handles.indexes;
                let relative = match target {
                    Target::Offset(offset) => relative(base, offset),
                    Target::Time(timestamp) => indexes.times.lookup(timestamp),
                };
                Ok(DiskPlan {
                    position: u64::from(indexes.offsets.lookup(relative)),
                    file: handles.file,
                    limit,
                    next_offset,
                })
            }
        }
    }
}

/// `offset` relative to a segment's `base` (0 below it).
fn relative(base: Offset, offset: Offset) -> u32 {
    u32::try_from((offset.0 - base.0).max(0)).unwrap_or(u32::MAX)
}

/// Where on disk a read starts.
pub(super) struct DiskPlan {
    pub(super) file: Rc<SegmentFile>,
    pub(super) position: u64,
    pub(super) limit: u64,
    /// One past the segment's last offset.
    pub(super) next_offset: Offset,
}

/// How the read of one segment ended.
enum SegmentEnd {
    /// At the segment's end: the next segment may follow.
    Complete,
    /// At the read's size, before the batch at `position` in the file,
    /// which the next read (from `next`) starts with.
    Full { position: u64, next: Offset },
    /// At the read's end offset, or at damage after what it served.
    Stopped,
}

/// Reads the batches of one segment from `offset` on into `chunks`,
/// starting with the bytes `buffered` holds (from the plan's position) if
/// any.
async fn read_segment(
    plan: &DiskPlan,
    buffered: Option<ReadBuf>,
    offset: Offset,
    end: Offset,
    max_bytes: usize,
    total: &mut usize,
    chunks: &mut Vec<Chunk>,
) -> Result<SegmentEnd> {
    let mut cursor = BatchCursor::new(&plan.file, plan.position, plan.limit, READ_BYTES_MIN);
    if let Some(bytes) = buffered {
        cursor.buffer(bytes);
    }
    // One past the last batch served.
    let mut served_to = offset;
    loop {
        let full = SegmentEnd::Full {
            position: cursor.position(),
            next: served_to,
        };
        if *total >= max_bytes {
            return Ok(full);
        }
        // A batch that would end the read is not read: only its framing,
        // and once something is served a read for it takes no more than
        // what is left to serve (a block at least). Reading it whole, then
        // leaving it out, read and checked every batch a consumer behind
        // got twice.
        cursor.set_read_bytes(if *total == 0 {
            READ_BYTES_MIN.max(max_bytes)
        } else {
            (max_bytes - *total).max(BLOCK_BYTES as usize)
        });
        // Before anything is served the batch is read and checked whole
        // whatever its framing says: a damaged framing is reported, never
        // taken for an end.
        match cursor.peek().await {
            Ok(Some(next)) if *total > 0 => {
                if next.base_offset >= end {
                    return Ok(SegmentEnd::Stopped);
                }
                if *total + next.size > max_bytes {
                    return Ok(full);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => return Ok(SegmentEnd::Complete),
            Err(_) if !chunks.is_empty() => return Ok(SegmentEnd::Stopped),
            Err(e) => return Err(corrupt(&plan.file, e)),
        }
        let batch = match cursor.next().await {
            Ok(Some(batch)) => batch,
            Ok(None) => return Ok(SegmentEnd::Complete),
            // Serve what precedes the damage; the next read reports it.
            Err(_) if !chunks.is_empty() => return Ok(SegmentEnd::Stopped),
            Err(e) => return Err(corrupt(&plan.file, e)),
        };
        if batch.header.last_offset() < offset {
            continue;
        }
        if batch.header.base_offset() >= end {
            return Ok(SegmentEnd::Stopped);
        }
        *total += batch.bytes.len();
        served_to = Offset(batch.header.last_offset().0 + 1);
        chunks.push(Chunk::Stored(batch.bytes));
    }
}

impl Log {
    /// Reads whole batches starting with the one containing `offset`, up to
    /// `max_bytes` (always at least one batch if any is readable, as Kafka
    /// does since KIP-74). Offsets outside `[log_start, log_end]` fail with
    /// `OffsetOutOfRange`; `offset == log_end` returns no batches.
    pub async fn read(&self, offset: Offset, max_bytes: usize) -> Result<ReadResult> {
        self.read_below(offset, max_bytes, State::visible_end).await
    }

    /// [`Log::read`] of committed data only (Kafka's read_committed): up to
    /// the last stable offset, which no open transaction's data reaches.
    pub async fn read_committed(&self, offset: Offset, max_bytes: usize) -> Result<ReadResult> {
        self.read_below(offset, max_bytes, self.read_end(true))
            .await
    }

    /// Where a consumer's read stops: the visible end, and for
    /// read_committed (`committed`) the last stable offset before it.
    fn read_end(&self, committed: bool) -> impl FnOnce(&State) -> Offset + use<> {
        let stable = committed.then(|| self.last_stable_offset());
        move |st: &State| stable.map_or(st.visible_end(), |stable| stable.min(st.visible_end()))
    }

    /// [`Log::read`] (`committed`: [`Log::read_committed`]) when it needs
    /// no I/O: nothing to read yet, or the reading starts in the tail
    /// cache. `None`: it starts on the disk (call the async read). A
    /// consumer of many partitions reads most of them at their end, and
    /// each pass of its fetch asks them all.
    pub fn read_now(
        &self,
        offset: Offset,
        max_bytes: usize,
        committed: bool,
    ) -> Option<Result<ReadResult>> {
        let start = self.read_start(offset, max_bytes, self.read_end(committed), |st| {
            st.log_start_offset
        });
        match start {
            Err(e) => Some(Err(e)),
            Ok((result, _, true)) => Some(Ok(result)),
            Ok((_, _, false)) => None,
        }
    }

    /// A leader's read for its followers: whole batches from the one
    /// holding `offset`, up to `max_bytes` (at least one), staged ones
    /// included while they are in the tail cache (a follower gets them
    /// before they are durable here), else what is written; the high
    /// watermark does not bound it. Empty when nothing is there yet. It may
    /// start below the log start, down to the first segment's base (the
    /// batch holding the log start begins there: a follower that starts
    /// over takes it whole).
    pub async fn read_for_replica(&self, offset: Offset, max_bytes: usize) -> Result<Vec<Chunk>> {
        {
            let st = self.shared.state.borrow();
            if offset >= st.log_start_offset && st.tail.covers(offset) {
                let (mut cached, mut total) = (Vec::new(), 0);
                st.tail
                    .read_into(offset, st.next_offset, max_bytes, &mut total, &mut cached);
                return Ok(cached.into_iter().map(Chunk::Cached).collect());
            }
        }
        let read = self.read_from(offset, max_bytes, |st| st.log_end_offset, State::first_base);
        Ok(read.await?.chunks)
    }

    /// Where the first segment still here begins (at or below the log
    /// start).
    pub fn first_retained_offset(&self) -> Offset {
        self.shared.state.borrow().first_base()
    }

    /// The offset the next staged record takes: the end of what the
    /// leader has appended, durable or not.
    pub fn next_offset(&self) -> Offset {
        self.shared.state.borrow().next_offset
    }

    /// The offset below which every transaction is decided (Kafka's LSO):
    /// the first offset of the earliest open transaction, or the log end.
    pub fn last_stable_offset(&self) -> Offset {
        let st = self.shared.state.borrow();
        st.producers
            .first_unstable()
            .map_or(st.visible_end(), |first| first.min(st.visible_end()))
    }

    /// The sequence `producer_id`'s next batch at `epoch` starts with here
    /// (0 for a new producer or epoch).
    pub fn next_sequence(&self, producer_id: i64, epoch: i16) -> i32 {
        self.shared
            .state
            .borrow()
            .producers
            .next_sequence(producer_id, epoch)
    }

    /// Whether `producer_id` at `epoch` has a transaction open here (its
    /// batches need no check with the coordinator: KIP-890).
    pub fn transaction_open(&self, producer_id: i64, epoch: i16) -> bool {
        self.shared
            .state
            .borrow()
            .producers
            .transaction_open(producer_id, epoch)
    }

    /// The state of every producer that wrote here (DescribeProducers).
    pub fn producers(&self) -> Vec<super::producers::ProducerView> {
        self.shared.state.borrow().producers.views()
    }

    /// The aborted transactions a read of `[from, to)` overlaps, for a
    /// read_committed fetch to hand the consumer.
    pub fn aborted_transactions(&self, from: Offset, to: Offset) -> Vec<AbortedTxn> {
        self.shared
            .state
            .borrow()
            .producers
            .aborted_between(from, to)
    }

    /// Reads from `offset` below the end `bound` gives (the visible end, or
    /// less, or the written end for a follower).
    async fn read_below(
        &self,
        offset: Offset,
        max_bytes: usize,
        bound: impl FnOnce(&State) -> Offset,
    ) -> Result<ReadResult> {
        self.read_from(offset, max_bytes, bound, |st| st.log_start_offset)
            .await
    }

    /// [`read_below`](Self::read_below) from an offset no lower than
    /// `floor`.
    async fn read_from(
        &self,
        offset: Offset,
        max_bytes: usize,
        bound: impl FnOnce(&State) -> Offset,
        floor: impl FnOnce(&State) -> Offset,
    ) -> Result<ReadResult> {
        let (mut result, end, done) = self.read_start(offset, max_bytes, bound, floor)?;
        if done {
            return Ok(result);
        }
        let mut next = offset;
        let mut total = 0usize;
        let mut full = None;
        let mut continued = false;
        // One segment per step, until max_bytes or the end.
        while total < max_bytes && next < end {
            let (planned, ahead) = {
                let mut st = self.shared.state.borrow_mut();
                if st.tail.covers(next) {
                    read_tail(&st, next, end, max_bytes, &mut total, &mut result.chunks);
                    break;
                }
                let st = &mut *st;
                let active = (
                    &st.active.file,
                    st.readable_bytes,
                    st.active.meta.next_offset,
                );
                // Only a read's start continues another; a later segment
                // step would use up another reader's note.
                let ahead = if next == offset {
                    let ahead = st.read_ahead.continues(next, active);
                    continued = !matches!(ahead, Continues::No);
                    ahead
                } else {
                    Continues::No
                };
                (plan_disk_read(st, next), ahead)
            };
            let (plan, buffered) = match ahead {
                Continues::Ahead(ahead) => {
                    let bytes = ahead.bytes().await;
                    (ahead.plan, bytes)
                }
                Continues::Unread | Continues::No => {
                    (planned.resolve(Target::Offset(next)).await?, None)
                }
            };
            let chunks = &mut result.chunks;
            match read_segment(&plan, buffered, next, end, max_bytes, &mut total, chunks).await? {
                SegmentEnd::Complete if plan.next_offset > next => next = plan.next_offset,
                SegmentEnd::Full { position, next } => {
                    full = Some((plan, position, next));
                    break;
                }
                SegmentEnd::Complete | SegmentEnd::Stopped => break,
            }
        }
        // Stopped at its size with more to read: its reader may come back
        // for the rest (read_ahead.rs).
        if let Some((plan, position, next)) = full
            && next < end
        {
            let len = max_bytes.max(READ_BYTES_MIN);
            let mut st = self.shared.state.borrow_mut();
            st.read_ahead.ended(&plan, position, next, len, continued);
        }
        Ok(result)
    }

    /// A read's start, without I/O: the range checked, the result's bounds,
    /// the end it reads below, and whether it is done (nothing to read, or
    /// all of it from the tail cache) or goes on from the disk at `offset`.
    fn read_start(
        &self,
        offset: Offset,
        max_bytes: usize,
        bound: impl FnOnce(&State) -> Offset,
        floor: impl FnOnce(&State) -> Offset,
    ) -> Result<(ReadResult, Offset, bool)> {
        let st = self.shared.state.borrow();
        check_range(&st, offset, floor(&st))?;
        let mut result = ReadResult {
            chunks: Vec::new(),
            log_start_offset: st.log_start_offset,
            log_end_offset: st.log_end_offset,
            high_watermark: st.visible_end(),
        };
        let end = bound(&st);
        if max_bytes == 0 || offset >= end {
            return Ok((result, end, true));
        }
        if !st.tail.covers(offset) {
            return Ok((result, end, false));
        }
        read_tail(&st, offset, end, max_bytes, &mut 0, &mut result.chunks);
        Ok((result, end, true))
    }

    /// The first offset whose timestamp is at or after `timestamp`, with that
    /// timestamp (ListOffsets by time); `None` if every record is older. A
    /// compressed CreateTime batch is decompressed to find the record, as
    /// Kafka does.
    pub async fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(Offset, i64)>> {
        let (found, log_start, log_end) = {
            let st = self.shared.state.borrow();
            let reaches = |meta: &super::segment::SegmentMeta| {
                meta.max_timestamp >= timestamp && meta.next_offset > st.log_start_offset
            };
            let found = match st.sealed.iter().find(|s| reaches(&s.meta)) {
                Some(s) => Some(Planned::sealed(s)),
                None if reaches(&st.active.meta) => {
                    let meta = &st.active.meta;
                    let relative = meta.time_index.lookup(timestamp);
                    Some(Planned::Ready(DiskPlan {
                        file: Rc::clone(&st.active.file),
                        position: u64::from(meta.offset_index.lookup(relative)),
                        limit: st.readable_bytes,
                        next_offset: meta.next_offset,
                    }))
                }
                None => None,
            };
            (found, st.log_start_offset, st.visible_end())
        };
        let Some(found) = found else {
            return Ok(None);
        };
        let plan = found.resolve(Target::Time(timestamp)).await?;
        let mut cursor = BatchCursor::new(&plan.file, plan.position, plan.limit, READ_BYTES_MIN);
        while let Some(batch) = cursor.next().await.map_err(|e| corrupt(&plan.file, e))? {
            let header = &batch.header;
            if header.base_offset() >= log_end {
                break;
            }
            if header.last_offset() < log_start || header.max_timestamp() < timestamp {
                continue;
            }
            let found = first_record_at_or_after(&batch.bytes, timestamp)
                .unwrap_or((header.base_offset(), header.max_timestamp()));
            return Ok(Some((found.0.max(log_start), found.1)));
        }
        Ok(None)
    }
}

/// The tail cache's batches from `from`, below `end` and within `max_bytes`
/// (`total` counts what the read holds so far).
fn read_tail(
    st: &State,
    from: Offset,
    end: Offset,
    max_bytes: usize,
    total: &mut usize,
    chunks: &mut Vec<Chunk>,
) {
    let mut cached = Vec::new();
    st.tail.read_into(from, end, max_bytes, total, &mut cached);
    chunks.extend(cached.into_iter().map(Chunk::Cached));
}

fn check_range(st: &State, offset: Offset, floor: Offset) -> Result<()> {
    if offset < floor || offset > st.log_end_offset {
        return Err(Error::OffsetOutOfRange {
            offset,
            log_start_offset: st.log_start_offset,
            log_end_offset: st.log_end_offset,
        });
    }
    Ok(())
}

/// Which segment holds `offset`, and where in it the read starts when that
/// is known without I/O (the active segment's indexes are in memory).
pub(super) fn plan_disk_read(st: &State, offset: Offset) -> Planned {
    let active = || {
        let meta = &st.active.meta;
        Planned::Ready(DiskPlan {
            file: Rc::clone(&st.active.file),
            position: u64::from(meta.offset_index.lookup(relative(meta.base_offset, offset))),
            limit: st.readable_bytes,
            next_offset: meta.next_offset,
        })
    };
    if offset >= st.active.meta.base_offset {
        return active();
    }
    let at = st
        .sealed
        .partition_point(|s| s.meta.base_offset <= offset)
        .saturating_sub(1);
    st.sealed.get(at).map_or_else(active, Planned::sealed)
}

pub(super) fn corrupt(file: &SegmentFile, e: CursorError) -> Error {
    match e {
        CursorError::Io(e) => Error::Io(e),
        CursorError::Invalid { position, cause } => {
            tracing::error!(path = %file.path().display(), position, error = %cause, "corrupt stored batch");
            Error::Corrupt {
                path: file.path().to_path_buf(),
                position,
                cause,
            }
        }
    }
}

/// For a CreateTime batch, the offset and timestamp of its first record
/// with timestamp >= `timestamp` (a compressed batch is decompressed, as
/// Kafka does, up to `DECOMPRESSED_BYTES_MAX`); `None` otherwise.
fn first_record_at_or_after(batch: &[u8], timestamp: i64) -> Option<(Offset, i64)> {
    let header = crate::batch::BatchHeader(*batch.first_chunk::<HEADER_BYTES>()?);
    if header.is_log_append_time() {
        return None;
    }
    let records = batch.get(HEADER_BYTES..)?;
    let decompressed;
    let raw = match header.compression()? {
        Compression::None => records,
        codec => {
            decompressed = codec::decompress(codec, records, DECOMPRESSED_BYTES_MAX).ok()?;
            &decompressed[..]
        }
    };
    let base_ts = header.base_timestamp();
    let mut found = None;
    for_each_record(raw, |record| {
        let record_ts = if base_ts == NO_TIMESTAMP {
            NO_TIMESTAMP
        } else {
            base_ts + record.timestamp_delta
        };
        if found.is_none() && record_ts >= timestamp {
            let offset = header.base_offset().plus(i64::from(record.offset_delta));
            found = Some((offset, record_ts));
        }
    })
    .ok()?;
    found
}
