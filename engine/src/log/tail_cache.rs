//! The tail cache: the most recent batches of a partition, in memory, so
//! consumers that keep up are served without touching the disk.
//!
//! Each entry is the batch's rewritten 61-byte header plus the producer's
//! record bytes, shared with the request buffer they arrived in (no copy).
//! A partition's cache holds at most its `tail_cache_bytes`; the caches of
//! a shard together at most the shard's budget ([`set_shard_budget`]),
//! past which the batch cached longest ago on the shard is dropped first.
//! A read of a dropped batch goes to the disk.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use bytes::Bytes;

use crate::Offset;
use crate::batch::{BatchHeader, HEADER_BYTES};
use crate::limits::TAIL_CACHE_SHARD_BYTES_DEFAULT;

/// One batch as it was appended.
#[derive(Debug)]
pub struct CachedBatch {
    pub header: BatchHeader,
    pub records: Bytes,
}

impl CachedBatch {
    pub fn size(&self) -> usize {
        HEADER_BYTES + self.records.len()
    }
}

/// A partition's cached batches, newest last, each with the shard-wide
/// sequence number it was cached under.
#[derive(Debug, Default)]
struct Entries {
    batches: VecDeque<(u64, Rc<CachedBatch>)>,
    bytes: usize,
}

impl Entries {
    /// Drops the oldest batch, giving its bytes back to the shard.
    fn pop_front(&mut self, budget: &mut ShardBudget) -> Option<u64> {
        let (seq, batch) = self.batches.pop_front()?;
        self.bytes -= batch.size();
        budget.used -= batch.size();
        budget.live -= 1;
        Some(seq)
    }
}

/// What the tail caches of one shard hold together. Past `limit`, the
/// batch cached longest ago on the shard goes first, whatever its
/// partition: busy partitions keep more, idle ones give theirs back.
#[derive(Debug)]
struct ShardBudget {
    limit: usize,
    used: usize,
    /// Batches cached now (`order` also holds stale slots).
    live: usize,
    /// Every batch cached, oldest first: its partition's entries and its
    /// sequence number. A slot whose batch already left (its partition's
    /// own bound, or the partition closed) is skipped.
    order: VecDeque<(Weak<RefCell<Entries>>, u64)>,
    next_seq: u64,
}

thread_local! {
    static BUDGET: RefCell<ShardBudget> = const {
        RefCell::new(ShardBudget {
            limit: TAIL_CACHE_SHARD_BYTES_DEFAULT,
            used: 0,
            live: 0,
            order: VecDeque::new(),
            next_seq: 0,
        })
    };
}

/// Sets the bytes the tail caches of this shard (the calling executor
/// thread) hold together; caches over it give up their oldest batches at
/// their next append.
pub fn set_shard_budget(bytes: usize) {
    BUDGET.with(|b| b.borrow_mut().limit = bytes);
}

/// Bytes the tail caches of this shard hold, and their bound.
pub fn shard_usage() -> (usize, usize) {
    BUDGET.with(|b| {
        let b = b.borrow();
        (b.used, b.limit)
    })
}

impl ShardBudget {
    /// Evicts the shard's oldest cached batches while over the limit.
    fn evict_over_limit(&mut self) {
        while self.used > self.limit {
            let Some((entries, seq)) = self.order.pop_front() else {
                break;
            };
            let Some(entries) = entries.upgrade() else {
                continue;
            };
            let mut entries = entries.borrow_mut();
            // Batches leave a partition oldest first: if this one is still
            // cached, it is that partition's oldest.
            if entries
                .batches
                .front()
                .is_some_and(|(front, _)| *front == seq)
            {
                entries.pop_front(self);
            }
        }
        // Stale slots from partitions' own evictions: dropped once they
        // outnumber the live ones.
        if self.order.len() > 2 * self.live + 1024 {
            self.order.retain(|(entries, seq)| {
                entries.upgrade().is_some_and(|e| {
                    e.borrow()
                        .batches
                        .front()
                        .is_some_and(|(front, _)| front <= seq)
                })
            });
        }
    }
}

#[derive(Debug)]
pub(crate) struct TailCache {
    entries: Rc<RefCell<Entries>>,
    max_bytes: usize,
}

impl Drop for TailCache {
    fn drop(&mut self) {
        let entries = self.entries.borrow();
        BUDGET.with(|b| {
            let mut b = b.borrow_mut();
            b.used -= entries.bytes;
            b.live -= entries.batches.len();
        });
    }
}

impl TailCache {
    pub(crate) fn new(max_bytes: usize) -> TailCache {
        TailCache {
            entries: Rc::default(),
            max_bytes,
        }
    }

    pub(crate) fn push(&mut self, batch: Rc<CachedBatch>) {
        BUDGET.with(|budget| {
            let mut budget = budget.borrow_mut();
            let seq = budget.next_seq;
            budget.next_seq += 1;
            {
                let mut entries = self.entries.borrow_mut();
                if let Some((_, last)) = entries.batches.back() {
                    assert!(batch.header.base_offset() > last.header.last_offset());
                }
                entries.bytes += batch.size();
                budget.used += batch.size();
                budget.live += 1;
                entries.batches.push_back((seq, batch));
                while entries.bytes > self.max_bytes {
                    if entries.pop_front(&mut budget).is_none() {
                        break;
                    }
                }
            }
            budget.order.push_back((Rc::downgrade(&self.entries), seq));
            budget.evict_over_limit();
        });
    }

    /// Drops the cached batches that begin below `offset` (their segment
    /// was rewritten on disk: readers go there).
    pub(crate) fn drop_below(&mut self, offset: Offset) {
        BUDGET.with(|budget| {
            let mut budget = budget.borrow_mut();
            let mut entries = self.entries.borrow_mut();
            while entries
                .batches
                .front()
                .is_some_and(|(_, b)| b.header.base_offset() < offset)
            {
                if entries.pop_front(&mut budget).is_none() {
                    break;
                }
            }
        });
    }

    /// True if every batch from `offset` on is in the cache.
    pub(crate) fn covers(&self, offset: Offset) -> bool {
        self.entries
            .borrow()
            .batches
            .front()
            .is_some_and(|(_, first)| first.header.base_offset() <= offset)
    }

    /// Pushes onto `out` the batches from the one containing `offset`, below
    /// `end`, while `total` stays within `max_bytes` (the first batch of a
    /// read goes in whatever its size).
    pub(crate) fn read_into(
        &self,
        offset: Offset,
        end: Offset,
        max_bytes: usize,
        total: &mut usize,
        out: &mut Vec<Rc<CachedBatch>>,
    ) {
        let entries = self.entries.borrow();
        let start = entries
            .batches
            .partition_point(|(_, b)| b.header.last_offset() < offset);
        for (_, batch) in entries.batches.iter().skip(start) {
            if batch.header.base_offset() >= end
                || (*total > 0 && *total + batch.size() > max_bytes)
            {
                break;
            }
            *total += batch.size();
            out.push(Rc::clone(batch));
        }
    }
}
