//! Read-ahead for readers behind the tail cache: a read from the disk that
//! stopped at its size, with more of the segment after it, starts reading
//! what follows at once. A consumer of a backlog asks for exactly that next
//! (its next Fetch starts where this one ended), and finds it read while it
//! was busy with the last one, instead of waiting for the disk again; a
//! follower catching up does the same.
//!
//! What is read ahead waits on the shard's shelf, under one byte budget
//! (`read-ahead-bytes-per-shard`; the least recently started go first past
//! it), until the read that continues there takes it. Each log keeps the
//! keys of its last few (two consumer groups at different places in one
//! partition each find theirs). A read ahead names the offset it serves
//! and where that offset's batch begins in its file, so the read that
//! takes it starts there, without an index lookup. It holds its file
//! weakly: a segment closed or replaced meanwhile is a miss, never a read
//! of another file, and never keeps a file from closing.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use futures::FutureExt;
use futures::future::{LocalBoxFuture, Shared};

use crate::Offset;
use crate::io::{ReadBuf, SegmentFile};
use crate::limits::READ_AHEAD_SHARD_BYTES_DEFAULT;
use crate::lru::Lru;

use super::read::DiskPlan;

/// Read-aheads a log keeps at once (readers at different places).
const PER_LOG: usize = 2;

/// One read ahead, under way or done, for the read from the offset its
/// log keeps it under.
#[derive(Debug)]
struct Prefetch {
    file: Weak<SegmentFile>,
    /// Where the batch holding that offset begins: the first byte read.
    position: u64,
    /// The segment's readable end and one past its last offset, as the
    /// read that started this one planned them.
    limit: u64,
    next_offset: Offset,
    len: usize,
    read: Shared<LocalBoxFuture<'static, Option<ReadBuf>>>,
}

/// This shard's read-aheads.
#[derive(Debug)]
struct Shelf {
    lru: Lru<Rc<Prefetch>>,
    ids: u64,
    usage: ReadAheadUsage,
}

/// What this shard's read-ahead holds and has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadAheadUsage {
    pub bytes: usize,
    pub bytes_limit: usize,
    /// Reads ahead started, and those a later read took (the rest were
    /// evicted, superseded, or left when their reader went elsewhere).
    pub started: u64,
    pub taken: u64,
    /// Of those taken, the ones still being read when taken.
    pub waited: u64,
}

thread_local! {
    static SHELF: RefCell<Shelf> = RefCell::new(Shelf {
        lru: Lru::new(READ_AHEAD_SHARD_BYTES_DEFAULT, |p| p.len),
        ids: 0,
        usage: ReadAheadUsage::default(),
    });
}

/// Sets this shard's read-ahead budget in bytes (0: no read-ahead).
pub fn set_shard_budget(bytes: usize) {
    SHELF.with_borrow_mut(|shelf| {
        shelf.lru.limit = bytes;
        if shelf.lru.held() > bytes {
            shelf.lru.clear();
        }
    });
}

pub fn shard_usage() -> ReadAheadUsage {
    SHELF.with_borrow(|shelf| ReadAheadUsage {
        bytes: shelf.lru.held(),
        bytes_limit: shelf.lru.limit,
        ..shelf.usage
    })
}

/// A log's read-aheads: the offset each serves and its key on the shelf,
/// oldest first; and where its last reads that stopped at their size
/// ended, to tell a reader that reads on from a reader that jumps. Dropping
/// them (a log closed, truncated or reopened) takes them off the shelf.
#[derive(Debug, Default)]
pub(super) struct ReadAheads {
    started: Vec<(Offset, u64)>,
    ended: Vec<Offset>,
}

/// Whether a read from an offset continues an earlier read.
pub(super) enum Continues {
    /// It does, and the part it reads first was read ahead for it.
    Ahead(Prefetched),
    /// It does; nothing was read ahead (its predecessor was not a
    /// continuation itself, or the budget evicted it).
    Unread,
    No,
}

impl ReadAheads {
    /// Whether a read from `offset` continues where another ended, and
    /// the read-ahead started for it, if it is still on the shelf and its
    /// file still open. `active` is the log's active segment, its readable
    /// end and next offset: a read ahead in it takes its readable end as it
    /// is now, not as it was.
    pub(super) fn continues(
        &mut self,
        offset: Offset,
        active: (&Rc<SegmentFile>, u64, Offset),
    ) -> Continues {
        if let Some(at) = self
            .started
            .iter()
            .position(|&(served, _)| served == offset)
        {
            let (_, id) = self.started.remove(at);
            return match Self::prefetched(id, active) {
                Some(prefetched) => Continues::Ahead(prefetched),
                None => Continues::Unread,
            };
        }
        match self.ended.iter().position(|&end| end == offset) {
            Some(at) => {
                self.ended.remove(at);
                Continues::Unread
            }
            None => Continues::No,
        }
    }

    /// The read-ahead under `id`, off the shelf, if it is still there and
    /// its file still open.
    fn prefetched(id: u64, active: (&Rc<SegmentFile>, u64, Offset)) -> Option<Prefetched> {
        let prefetch = SHELF.with_borrow_mut(|shelf| shelf.lru.remove(id))?;
        let file = prefetch.file.upgrade()?;
        let (limit, next_offset) = if Rc::ptr_eq(&file, active.0) {
            (active.1.max(prefetch.limit), active.2)
        } else {
            (prefetch.limit, prefetch.next_offset)
        };
        SHELF.with_borrow_mut(|shelf| {
            shelf.usage.taken += 1;
            shelf.usage.waited += u64::from(prefetch.read.peek().is_none());
        });
        Some(Prefetched {
            plan: DiskPlan {
                file,
                position: prefetch.position,
                limit,
                next_offset,
            },
            read: prefetch.read.clone(),
        })
    }

    /// A read stopped at its size before the batch at `position` of
    /// `plan`'s file, which holds `next`. If it continued another
    /// (`continued`), its reader reads on: the next `len` bytes are read
    /// now, unless the shard's budget cannot hold them. Else it is noted, in
    /// case its reader comes back for the rest (a reader that jumps about
    /// costs no reads it does not ask for).
    pub(super) fn ended(
        &mut self,
        plan: &DiskPlan,
        position: u64,
        next: Offset,
        len: usize,
        continued: bool,
    ) {
        if !continued {
            if self.ended.len() >= PER_LOG {
                self.ended.remove(0);
            }
            self.ended.push(next);
            return;
        }
        let room = usize::try_from(plan.limit.saturating_sub(position)).unwrap_or(usize::MAX);
        let len = len.min(room);
        if len == 0 || SHELF.with_borrow(|shelf| len > shelf.lru.limit) {
            return;
        }
        let file = Rc::clone(&plan.file);
        let read = async move { file.read_at(position, len).await.ok() }
            .boxed_local()
            .shared();
        // Runs on its own; the reader that takes it awaits the same read.
        crate::io::spawn_detached(read.clone().map(drop));
        let prefetch = Rc::new(Prefetch {
            file: Rc::downgrade(&plan.file),
            position,
            limit: plan.limit,
            next_offset: plan.next_offset,
            len,
            read,
        });
        let id = SHELF.with_borrow_mut(|shelf| {
            shelf.ids += 1;
            shelf.usage.started += 1;
            shelf.lru.insert(shelf.ids, prefetch);
            shelf.ids
        });
        self.forget(|served| served == next);
        if self.started.len() >= PER_LOG
            && let Some(&(oldest, _)) = self.started.first()
        {
            self.forget(|served| served == oldest);
        }
        self.started.push((next, id));
    }

    /// Drops the read-aheads `which` picks by the offset each serves.
    fn forget(&mut self, which: impl Fn(Offset) -> bool) {
        self.started.retain(|&(served, id)| {
            let keep = !which(served);
            if !keep {
                SHELF.with_borrow_mut(|shelf| shelf.lru.remove(id));
            }
            keep
        });
    }

    /// Drops them all (the segments they read may be replaced).
    pub(super) fn clear(&mut self) {
        self.forget(|_| true);
        self.ended.clear();
    }
}

impl Drop for ReadAheads {
    fn drop(&mut self) {
        // Not during the thread's teardown, when the shelf may be gone.
        let _ = SHELF.try_with(|shelf| {
            if let Ok(mut shelf) = shelf.try_borrow_mut() {
                for (_, id) in self.started.drain(..) {
                    shelf.lru.remove(id);
                }
            }
        });
    }
}

/// A read-ahead taken by the read it was for: where that read starts, and
/// its read, perhaps still under way.
pub(super) struct Prefetched {
    pub(super) plan: DiskPlan,
    read: Shared<LocalBoxFuture<'static, Option<ReadBuf>>>,
}

impl Prefetched {
    /// The bytes from the plan's position on, once read (`None` if the
    /// read failed: the reader reads again, and reports the error itself).
    pub(super) async fn bytes(&self) -> Option<ReadBuf> {
        self.read.clone().await
    }
}
