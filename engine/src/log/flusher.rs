//! The flusher: one task per log that owns every write and fdatasync of the
//! active segment. It issues full staging buffers as soon as they fill (up
//! to the shard's writes in flight at once, `io_tuning`), the partial last
//! buffer when nothing else is in flight, and an fdatasync whenever newly
//! written bytes are owed one (group commit: one sync covers every append
//! written before it was issued, and runs while later writes proceed).
//! Appends resolve, in order, once their bytes are written (interval
//! policy) or written and synced (default).
//!
//! Ahead of the writes it allocates the segment's blocks: for large writes
//! (`PREALLOCATE_WRITE_BYTES_MIN`), `SEGMENT_PREALLOCATE_BYTES` at a time
//! with fallocate, and such a write that would pass the allocated size
//! waits for the allocation, so it lands in allocated space and does not
//! allocate on the write path; for small writes, by writing zeros past
//! everything written so far (32 KiB first, doubling up to
//! `SEGMENT_ZERO_AHEAD_BYTES` at a time as the writes go on), so the small
//! writes that follow are pure overwrites (inline in io_uring, and nothing
//! for their fdatasync to convert); a write waits only if it overlaps zeros
//! still being written. An allocation that fails (a full disk) only turns
//! this off for the segment: writes then grow the file, as they would
//! without it, and report their own errors.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::flush_group::{self, FlushGroup};
use super::staging::{Staging, Write};
use super::{FlushPolicy, Shared, State};
use crate::io::{self, SegmentFile};
use crate::limits::{
    BLOCK_BYTES, PREALLOCATE_WRITE_BYTES_MIN, SEGMENT_PREALLOCATE_BYTES, SEGMENT_ZERO_AHEAD_BYTES,
    SEGMENT_ZERO_AHEAD_BYTES_MIN,
};
use crate::{IoError, Offset};

/// Which segment an I/O belongs to (its base offset): completions for a
/// segment that has since been rolled away are ignored.
type Generation = Offset;
type IoFuture = Pin<Box<dyn Future<Output = (Generation, u64, Result<(), IoError>)>>>;

enum Event {
    Written(Generation, u64, Result<(), IoError>),
    Synced(Generation, u64, Result<(), IoError>),
    Allocated(Generation, u64, Result<(), IoError>),
    Staged,
    Tick,
}

/// The active segment's allocated size, and the write waiting for more.
struct Allocation {
    generation: Generation,
    /// The file's blocks below this are allocated (and, once zeros were
    /// written ahead, written).
    allocated: u64,
    /// The block-aligned end of every write issued so far: zeros go only
    /// past it.
    issued_end: u64,
    /// Zeros being written over this range: writes into it wait.
    zeroing: Option<(u64, u64)>,
    /// Blocks written with zeros (the latest contiguous run).
    zeroed: Option<(u64, u64)>,
    /// Zeroed blocks whose metadata one of this file's own fdatasyncs made
    /// durable: a write inside them is a pure overwrite, which a device
    /// flush alone makes durable ([`FlushGroup`]).
    pure: Option<(u64, u64)>,
    /// The end (bytes) of the last write issued that was not a pure
    /// overwrite, and how far this file's own fdatasyncs have synced: the
    /// device flush serves the log only once the first is below the second.
    impure_end: u64,
    own_synced_end: u64,
    /// The sync under way is the file's own: `zeroed` when it was issued.
    own_sync: Option<Option<(u64, u64)>>,
    /// The next zero-ahead write's length: it doubles after each.
    zero_step: u64,
    /// Allocation failed once for this segment: writes grow the file.
    off: bool,
    in_flight: Option<IoFuture>,
    /// The next write, held until the allocation covers it.
    held: Option<Write>,
}

impl Allocation {
    fn new(generation: Generation) -> Allocation {
        Allocation {
            generation,
            allocated: 0,
            issued_end: 0,
            zeroing: None,
            zeroed: None,
            pure: None,
            impure_end: 0,
            own_synced_end: 0,
            own_sync: None,
            zero_step: SEGMENT_ZERO_AHEAD_BYTES_MIN,
            off: false,
            in_flight: None,
            held: None,
        }
    }

    fn idle(&self) -> bool {
        self.in_flight.is_none() && self.held.is_none()
    }

    fn on_done(&mut self, generation: Generation, len: u64, result: Result<(), IoError>) {
        if generation != self.generation {
            return;
        }
        let zeroed = self.zeroing.take();
        match result {
            Ok(()) => {
                self.allocated = self.allocated.max(len);
                if let Some((from, to)) = zeroed {
                    self.zeroed = match self.zeroed {
                        Some((start, end)) if end == from => Some((start, to)),
                        _ => Some((from, to)),
                    };
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot allocate the segment ahead of its writes");
                self.off = true;
            }
        }
    }
}

pub(super) async fn run(shared: Rc<Shared>) {
    let mut writes: FuturesUnordered<IoFuture> = FuturesUnordered::new();
    let mut sync: Option<IoFuture> = None;
    let mut last_sync = Instant::now();
    let mut allocation = Allocation::new(Offset(-1));
    let group = flush_group::for_dir(&shared.dir);
    let mut staged = std::pin::pin!(shared.staged.notified());
    loop {
        let (closed, tick) = issue(
            &shared,
            &mut writes,
            &mut sync,
            &mut allocation,
            &mut last_sync,
            group.as_ref(),
        );
        if closed && writes.is_empty() && sync.is_none() && allocation.idle() {
            return;
        }
        let mut timer = tick.map(|period| Box::pin(io::sleep(period)));
        let event = std::future::poll_fn(|cx| {
            if let Poll::Ready(Some((generation, end, result))) = writes.poll_next_unpin(cx) {
                return Poll::Ready(Event::Written(generation, end, result));
            }
            if let Some(pending) = sync.as_mut()
                && let Poll::Ready((generation, target, result)) = pending.as_mut().poll(cx)
            {
                sync = None;
                return Poll::Ready(Event::Synced(generation, target, result));
            }
            if let Some(pending) = allocation.in_flight.as_mut()
                && let Poll::Ready((generation, len, result)) = pending.as_mut().poll(cx)
            {
                allocation.in_flight = None;
                return Poll::Ready(Event::Allocated(generation, len, result));
            }
            if staged.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Staged);
            }
            if let Some(timer) = timer.as_mut()
                && timer.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Event::Tick);
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Written(generation, end, result) => shared.on_written(generation, end, result),
            Event::Synced(generation, target, result) => {
                if let Some(zeroed) = allocation.own_sync.take()
                    && result.is_ok()
                    && generation == allocation.generation
                {
                    allocation.own_synced_end = allocation.own_synced_end.max(target);
                    allocation.pure = zeroed;
                }
                shared.on_synced(generation, target, result)
            }
            Event::Allocated(generation, len, result) => {
                allocation.on_done(generation, len, result);
                shared.state.borrow_mut().allocating = false;
                shared.allocated.notify_waiters();
            }
            Event::Staged => {
                staged.set(shared.staged.notified());
                // A flush request may already be covered.
                shared.resolve();
            }
            Event::Tick => {}
        }
    }
}

/// Issues every write and the sync that may go now. Returns whether the log
/// is closed and, under an interval policy, when to wake up for a sync.
fn issue(
    shared: &Shared,
    writes: &mut FuturesUnordered<IoFuture>,
    sync: &mut Option<IoFuture>,
    allocation: &mut Allocation,
    last_sync: &mut Instant,
    group: Option<&Rc<FlushGroup>>,
) -> (bool, Option<std::time::Duration>) {
    let mut st = shared.state.borrow_mut();
    let st = &mut *st;
    if st.poisoned.is_some() {
        allocation.held = None;
        return (st.closed, None);
    }
    let generation = st.active.meta.base_offset;
    if allocation.generation != generation {
        // A roll drains every staged byte first: nothing is held for the
        // segment before.
        assert!(allocation.held.is_none(), "a write held across a roll");
        *allocation = Allocation::new(generation);
    }
    while writes.len() < crate::io_tuning::writes_in_flight() {
        let Some(write) = allocation.held.take().or_else(|| st.staging.next_write()) else {
            break;
        };
        let end =
            (write.position + write.buf.as_slice().len() as u64).next_multiple_of(BLOCK_BYTES);
        // `allocated` is block-aligned, so the rounding changes nothing here.
        let covered = allocation.off || end <= allocation.allocated;
        // Only large writes (a filled staging buffer) allocate: small
        // durable writes ran 3-5% slower into allocated space (the
        // allocation's metadata joins their fdatasync) and gain nothing.
        // Nor while a roll seals the segment.
        let large = write.buf.as_slice().len() >= PREALLOCATE_WRITE_BYTES_MIN && !st.sealing;
        allocate_ahead(st, allocation, generation, end, large);
        let overlaps_zeros = allocation
            .zeroing
            .is_some_and(|(from, to)| write.position < to && end > from);
        if (large && !covered) || overlaps_zeros {
            allocation.held = Some(write);
            break;
        }
        allocation.issued_end = allocation.issued_end.max(end);
        let pure = allocation
            .pure
            .is_some_and(|(from, to)| write.position >= from && end <= to);
        if !pure {
            allocation.impure_end = allocation.impure_end.max(write.end);
        }
        let file = Rc::clone(&st.active.file);
        writes.push(Box::pin(async move {
            let result = file.write_at(write.buf, write.position).await;
            (generation, write.end, result)
        }));
    }
    let staging = &st.staging;
    let owed = staging.written_end > staging.synced_end;
    let due = match st.config.flush {
        FlushPolicy::EveryAppend => owed,
        FlushPolicy::Interval { ms, messages } => {
            let by_count = messages.is_some_and(|n| staging.unsynced_messages >= n);
            let by_time = ms.is_some_and(|ms| last_sync.elapsed().as_millis() >= u128::from(ms));
            staging.sync_requested() || (owed && (by_count || by_time))
        }
    };
    if sync.is_none() && due {
        st.staging.unsynced_messages = 0;
        *last_sync = Instant::now();
        *sync = Some(start_sync(st, allocation, generation, group));
    }
    let tick = st
        .config
        .flush_interval()
        .filter(|_| sync.is_none() && st.staging.written_end > st.staging.synced_end);
    (st.closed, tick)
}

/// Allocates the segment ahead of a write ending at `end`: fallocate ahead
/// of large writes, zeros ahead of small ones (past everything issued, this
/// write included); each goes out half a step early, so writes rarely wait.
/// Not while a roll seals the segment.
fn allocate_ahead(
    st: &mut State,
    allocation: &mut Allocation,
    generation: Generation,
    end: u64,
    large: bool,
) {
    if allocation.off || allocation.in_flight.is_some() || st.sealing {
        return;
    }
    let segment_end = st.config.segment_bytes.next_multiple_of(BLOCK_BYTES);
    let file = Rc::clone(&st.active.file);
    if large && end + SEGMENT_PREALLOCATE_BYTES / 2 > allocation.allocated {
        let len =
            (end.max(allocation.allocated) + SEGMENT_PREALLOCATE_BYTES).min(segment_end.max(end));
        assert!(len >= end && len.is_multiple_of(BLOCK_BYTES));
        if len > allocation.allocated {
            st.allocating = true;
            allocation.in_flight = Some(Box::pin(async move {
                (generation, len, file.pre_allocate(len).await)
            }));
        }
    } else if !large && end + allocation.zero_step / 2 > allocation.allocated {
        let from = allocation.issued_end.max(end).max(allocation.allocated);
        let to = (from + allocation.zero_step).min(segment_end);
        if to > from {
            allocation.zero_step = (allocation.zero_step * 2).min(SEGMENT_ZERO_AHEAD_BYTES);
            st.allocating = true;
            allocation.zeroing = Some((from, to));
            allocation.in_flight = Some(Box::pin(async move {
                (generation, to, file.write_zeros(from, to).await)
            }));
        }
    }
}

/// The sync of every byte written so far: a share of the device flush of
/// this shard's logs when every unsynced write is a pure overwrite, else
/// the file's own fdatasync.
fn start_sync(
    st: &State,
    allocation: &mut Allocation,
    generation: Generation,
    group: Option<&Rc<FlushGroup>>,
) -> IoFuture {
    let target = st.staging.written_end;
    let file = &st.active.file;
    match group {
        Some(group) if allocation.impure_end <= allocation.own_synced_end => {
            allocation.own_sync = None;
            let flush = group.flush(file);
            Box::pin(async move { (generation, target, flush.await) })
        }
        _ => {
            allocation.own_sync = Some(allocation.zeroed);
            sync_future(Rc::clone(file), generation, target)
        }
    }
}

fn sync_future(file: Rc<SegmentFile>, generation: Generation, target: u64) -> IoFuture {
    Box::pin(async move {
        let started = std::time::Instant::now();
        let synced = file.fdatasync().await;
        crate::stats::record_sync(started.elapsed());
        (generation, target, synced)
    })
}

impl Shared {
    fn on_written(&self, generation: Generation, end: u64, result: Result<(), IoError>) {
        if self.on_io_done(generation, result, |staging| staging.write_done(end)) {
            self.drained.notify_waiters();
        }
    }

    fn on_synced(&self, generation: Generation, target: u64, result: Result<(), IoError>) {
        self.on_io_done(generation, result, |staging| {
            assert!(
                target <= staging.written_end,
                "a sync covers only written bytes"
            );
            staging.synced_end = staging.synced_end.max(target);
        });
    }

    /// Applies a completed write or sync to the staging of the segment it
    /// was for (if that is still the active one) and resolves what it made
    /// durable; a failure poisons the log. Returns whether it was applied.
    fn on_io_done(
        &self,
        generation: Generation,
        result: Result<(), IoError>,
        apply: impl FnOnce(&mut Staging),
    ) -> bool {
        if let Err(e) = result {
            self.poison(e);
            return false;
        }
        let current = {
            let mut st = self.state.borrow_mut();
            let current = st.active.meta.base_offset == generation;
            if current {
                apply(&mut st.staging);
            }
            current
        };
        if current {
            self.resolve();
        }
        current
    }

    /// Makes resolvable appends readable, then resolves them.
    pub(super) fn resolve(&self) {
        let ready = {
            let mut st = self.state.borrow_mut();
            let ready = st.staging.resolvable();
            if let Some(last) = ready.last() {
                assert!(last.last_offset < st.next_offset);
                st.log_end_offset = st.log_end_offset.max(last.last_offset.plus(1));
                st.readable_bytes = st.readable_bytes.max(last.end);
            }
            ready
        };
        if !ready.is_empty() {
            self.end_moved.notify_waiters();
        }
        for waiter in ready {
            let _ = waiter.tx.send(Ok(()));
        }
    }
}
