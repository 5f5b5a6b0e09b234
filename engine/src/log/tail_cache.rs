//! The tail cache: the most recent batches of a partition, in memory, so
//! consumers that keep up are served without touching the disk.
//!
//! Each entry is the batch's rewritten 61-byte header plus the producer's
//! record bytes, shared with the request buffer they arrived in (no copy).

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;

use crate::Offset;
use crate::batch::{BatchHeader, HEADER_BYTES};

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

#[derive(Debug)]
pub(crate) struct TailCache {
    entries: VecDeque<Rc<CachedBatch>>,
    bytes: usize,
    max_bytes: usize,
}

impl TailCache {
    pub(crate) fn new(max_bytes: usize) -> TailCache {
        TailCache {
            entries: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }

    pub(crate) fn push(&mut self, batch: Rc<CachedBatch>) {
        if let Some(last) = self.entries.back() {
            assert!(batch.header.base_offset() > last.header.last_offset());
        }
        self.bytes += batch.size();
        self.entries.push_back(batch);
        while self.bytes > self.max_bytes {
            match self.entries.pop_front() {
                Some(old) => self.bytes -= old.size(),
                None => break,
            }
        }
    }

    /// True if every batch from `offset` on is in the cache.
    pub(crate) fn covers(&self, offset: Offset) -> bool {
        self.entries
            .front()
            .is_some_and(|first| first.header.base_offset() <= offset)
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
        let start = self
            .entries
            .partition_point(|b| b.header.last_offset() < offset);
        for batch in self.entries.iter().skip(start) {
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
