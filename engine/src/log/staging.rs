//! Staging of appended bytes into aligned DMA buffers, and the bookkeeping
//! of their writes: what is written, what is synced, which appends resolve.
//!
//! Bytes are copied once, from the request into a buffer whose first byte
//! sits at a block-aligned file position. A buffer is written as soon as it
//! is full: it then ends on a block boundary, so full buffers are disjoint
//! and many are in flight at once. The partial last buffer is written only
//! when nothing else is in flight, zero-padded to the block, and nothing is
//! issued until it completes (a barrier): its valid last-block prefix is
//! kept (`carry`) and starts the next buffer, whose write re-writes that
//! block in place with the same prefix and more data. So the same block is
//! never written by two writes at once, and bytes that were written are only
//! ever re-written with identical contents.

use std::collections::VecDeque;

use tokio::sync::oneshot;

use crate::Offset;
use crate::io::{SegmentFile, WriteBuf};
use crate::limits::BLOCK_BYTES;

const BLOCK: usize = BLOCK_BYTES as usize;

/// The result an append waits for: `Err` carries the write or sync failure
/// that poisoned the log.
pub(crate) type FlushOutcome = Result<(), std::sync::Arc<crate::IoError>>;

#[derive(Debug)]
struct Current {
    /// Block-aligned file position of `buf[0]`.
    position: u64,
    buf: WriteBuf,
    filled: usize,
    /// Bytes at the start that were already handed to a write (the carry).
    prefix: usize,
}

/// An append (or a flush request) waiting for its bytes to be written, or
/// written and synced.
#[derive(Debug)]
pub(crate) struct Waiter {
    /// File position just past the waiter's last byte.
    pub end: u64,
    pub last_offset: Offset,
    pub messages: u64,
    pub needs_sync: bool,
    pub tx: oneshot::Sender<FlushOutcome>,
}

/// One write handed to the flusher.
#[derive(Debug)]
pub(crate) struct Write {
    pub position: u64,
    pub buf: WriteBuf,
    /// The logical end of the data it carries.
    pub end: u64,
}

/// The smallest staging buffer (unless `write_buffer_bytes` is smaller):
/// one block, so a partition of small appends holds a block's worth while
/// its write is staged or under way (10,000 such partitions held 64 KiB
/// each, 0.6-1.2 GiB, at 64 KiB).
const BUFFER_BYTES_MIN: usize = BLOCK;

#[derive(Debug)]
pub(crate) struct Staging {
    /// The largest buffer (`write_buffer_bytes`).
    buffer_bytes: usize,
    /// The size of the next buffer: it doubles each time a buffer fills,
    /// and halves when a partial buffer goes out less than a quarter full,
    /// so a partition of small appends holds a small buffer (1,000 of them
    /// held ~0.5 MiB resident each at 1 MiB) and a busy one large writes.
    capacity: usize,
    full: VecDeque<(u64, WriteBuf)>,
    current: Option<Current>,
    /// Valid bytes of the partial block at `end` rounded down.
    carry: Vec<u8>,
    /// The segment's logical size including staged bytes.
    end: u64,
    /// Writes issued, in file order: (end, completed).
    issued: VecDeque<(u64, bool)>,
    /// A partial-buffer write is in flight; nothing else may be issued.
    barrier: bool,
    /// Every byte below this is written.
    pub(crate) written_end: u64,
    /// Every byte below this is written and fdatasync'ed.
    pub(crate) synced_end: u64,
    waiters: VecDeque<Waiter>,
    /// Waiters that need a sync (all of them under the default policy).
    sync_waiters: usize,
    /// Messages written since the last fdatasync was issued.
    pub(crate) unsynced_messages: u64,
}

impl Staging {
    /// Staging for a segment whose content (all durable) ends at `end`;
    /// `carry` holds its bytes from `end` rounded down to a block up to `end`.
    pub(crate) fn new(buffer_bytes: usize, end: u64, carry: Vec<u8>) -> Staging {
        assert_eq!(
            carry.len() as u64,
            end % BLOCK_BYTES,
            "carry must be the partial last block"
        );
        assert_eq!(buffer_bytes % BLOCK, 0);
        Staging {
            buffer_bytes,
            capacity: BUFFER_BYTES_MIN.min(buffer_bytes),
            full: VecDeque::new(),
            current: None,
            carry,
            end,
            issued: VecDeque::new(),
            barrier: false,
            written_end: end,
            synced_end: end,
            waiters: VecDeque::new(),
            sync_waiters: 0,
            unsynced_messages: 0,
        }
    }

    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Bytes staged but not yet written (for backpressure).
    pub(crate) fn unwritten_bytes(&self) -> u64 {
        self.end - self.written_end
    }

    /// Copies `parts` (one batch: header then records) behind what is staged.
    pub(crate) fn stage(&mut self, file: &SegmentFile, parts: &[&[u8]]) {
        // A new buffer is sized for the whole batch, so a batch larger than
        // the buffer size still goes out in one write.
        let mut remaining: usize = parts.iter().map(|p| p.len()).sum();
        for part in parts {
            let mut rest: &[u8] = part;
            while !rest.is_empty() {
                let current = self.current_buffer(file, remaining);
                let room = current.buf.as_slice().len() - current.filled;
                let (now, later) = rest.split_at(room.min(rest.len()));
                if let Some(dst) = current
                    .buf
                    .as_mut()
                    .get_mut(current.filled..current.filled + now.len())
                {
                    dst.copy_from_slice(now);
                }
                current.filled += now.len();
                let is_full = current.filled == current.buf.as_slice().len();
                self.end += now.len() as u64;
                remaining -= now.len();
                rest = later;
                if is_full && let Some(full) = self.current.take() {
                    // It ends on a block boundary: the next starts aligned.
                    self.full.push_back((full.position, full.buf));
                    self.carry.clear();
                    self.capacity = (self.capacity * 2).min(self.buffer_bytes);
                }
            }
        }
    }

    fn current_buffer(&mut self, file: &SegmentFile, want: usize) -> &mut Current {
        let end = self.end;
        let carry = &self.carry;
        let buffer_bytes = self.capacity;
        self.current.get_or_insert_with(|| {
            let prefix = carry.len();
            assert_eq!(
                prefix as u64,
                end % BLOCK_BYTES,
                "a new buffer starts at the carried block"
            );
            let capacity = (prefix + want)
                .next_multiple_of(BLOCK)
                .max(buffer_bytes.next_multiple_of(BLOCK));
            let mut buf = file.alloc(capacity);
            if let Some(dst) = buf.as_mut().get_mut(..prefix) {
                dst.copy_from_slice(carry);
            }
            Current {
                position: end - prefix as u64,
                buf,
                filled: prefix,
                prefix,
            }
        })
    }

    pub(crate) fn add_waiter(&mut self, waiter: Waiter) {
        assert!(waiter.end <= self.end);
        if let Some(last) = self.waiters.back() {
            assert!(
                last.end <= waiter.end && last.last_offset <= waiter.last_offset,
                "waiters in log order"
            );
        }
        self.sync_waiters += usize::from(waiter.needs_sync);
        self.waiters.push_back(waiter);
    }

    /// The next write to issue, if any may be issued now.
    pub(crate) fn next_write(&mut self) -> Option<Write> {
        if self.barrier {
            return None;
        }
        if let Some((position, buf)) = self.full.pop_front() {
            let end = position + buf.as_slice().len() as u64;
            self.issued.push_back((end, false));
            return Some(Write { position, buf, end });
        }
        if !self.issued.is_empty() {
            return None;
        }
        let mut current = self.current.take_if(|c| c.filled > c.prefix)?;
        if current.filled < current.buf.as_slice().len() / 4 {
            self.capacity = (self.capacity / 2).max(BUFFER_BYTES_MIN.min(self.buffer_bytes));
        }
        let aligned = current.filled.next_multiple_of(BLOCK);
        let block_start = current.filled - current.filled % BLOCK;
        let bytes = current.buf.as_mut();
        self.carry = bytes
            .get(block_start..current.filled)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        if let Some(padding) = bytes.get_mut(current.filled..aligned) {
            padding.fill(0);
        }
        current.buf.trim(aligned);
        let end = current.position + current.filled as u64;
        assert_eq!(end, self.end, "the partial buffer is the last staged");
        assert_eq!(self.carry.len() as u64, end % BLOCK_BYTES);
        self.barrier = true;
        self.issued.push_back((end, false));
        Some(Write {
            position: current.position,
            buf: current.buf,
            end,
        })
    }

    /// Records a completed write and advances `written_end` over the
    /// completed prefix of the issued writes.
    pub(crate) fn write_done(&mut self, end: u64) {
        let entry = self.issued.iter_mut().find(|(e, done)| *e == end && !*done);
        assert!(entry.is_some(), "completion for a write that was issued");
        if let Some(entry) = entry {
            entry.1 = true;
        }
        while let Some(&(end, true)) = self.issued.front() {
            assert!(end >= self.written_end);
            self.written_end = end;
            self.issued.pop_front();
        }
        if self.issued.is_empty() {
            self.barrier = false;
        }
    }

    /// Whether an fdatasync should cover newly written bytes now (beyond
    /// what the flush policy decides on its own).
    pub(crate) fn sync_requested(&self) -> bool {
        self.written_end > self.synced_end && self.sync_waiters > 0
    }

    /// Pops the waiters whose bytes are now written (or written and synced,
    /// for those that need it), in order.
    pub(crate) fn resolvable(&mut self) -> Vec<Waiter> {
        let mut ready = Vec::new();
        while let Some(front) = self.waiters.front() {
            let durable = if front.needs_sync {
                self.synced_end
            } else {
                self.written_end
            };
            if front.end > durable {
                break;
            }
            let Some(waiter) = self.waiters.pop_front() else {
                break;
            };
            self.sync_waiters -= usize::from(waiter.needs_sync);
            if !waiter.needs_sync {
                self.unsynced_messages += waiter.messages;
            }
            ready.push(waiter);
        }
        ready
    }

    /// Fails every waiting append (after the log was poisoned) and drops
    /// what is staged.
    pub(crate) fn fail_all(&mut self, outcome: &FlushOutcome) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.tx.send(outcome.clone());
        }
        self.sync_waiters = 0;
        self.full.clear();
        self.current = None;
    }
}
