//! Staging of appended bytes into aligned DMA buffers.
//!
//! Bytes are copied once, from the request into a buffer whose first byte
//! sits at a block-aligned file position. A buffer is handed to a write only
//! when it is full (it then ends on a block boundary, so full buffers are
//! disjoint and written concurrently) or when a flush takes the partial last
//! one. A partial last block is written zero-padded; its valid prefix is kept
//! (`carry`) and copied to the start of the next buffer, so the next write
//! re-writes that block in place with the same prefix and more data: bytes
//! that were already durable are re-written with identical contents.

use tokio::sync::oneshot;

use crate::Offset;
use crate::io::{SegmentFile, WriteBuf};
use crate::limits::BLOCK_BYTES;

const BLOCK: usize = BLOCK_BYTES as usize;
/// Smallest staging buffer: small appends share one buffer until a flush.
const BUFFER_MIN_BYTES: usize = 64 << 10;

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

#[derive(Debug)]
pub(crate) struct Waiter {
    pub last_offset: Offset,
    pub tx: oneshot::Sender<FlushOutcome>,
}

/// Everything one flush writes and then resolves.
#[derive(Debug)]
pub(crate) struct FlushJob {
    pub writes: Vec<(u64, WriteBuf)>,
    /// The segment's logical size once these writes land.
    pub end: u64,
    pub last_offset: Offset,
    pub messages: u64,
    pub waiters: Vec<Waiter>,
}

#[derive(Debug)]
pub(crate) struct Staging {
    buffer_bytes: usize,
    full: Vec<(u64, WriteBuf)>,
    current: Option<Current>,
    /// Valid bytes of the partial block at `end` rounded down, already written.
    carry: Vec<u8>,
    /// The segment's logical size including staged bytes.
    end: u64,
    last_offset: Option<Offset>,
    messages: u64,
    pub(crate) staged_bytes: usize,
    waiters: Vec<Waiter>,
}

impl Staging {
    /// Staging for a segment whose durable content ends at `end`; `carry`
    /// holds its bytes from `end` rounded down to a block up to `end`.
    pub(crate) fn new(buffer_bytes: usize, end: u64, carry: Vec<u8>) -> Staging {
        assert_eq!(
            carry.len() as u64,
            end % BLOCK_BYTES,
            "carry must be the partial last block"
        );
        assert_eq!(buffer_bytes % BLOCK, 0);
        Staging {
            buffer_bytes,
            full: Vec::new(),
            current: None,
            carry,
            end,
            last_offset: None,
            messages: 0,
            staged_bytes: 0,
            waiters: Vec::new(),
        }
    }

    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Copies `parts` (one batch: header then records) behind what is staged.
    pub(crate) fn stage(
        &mut self,
        file: &SegmentFile,
        parts: &[&[u8]],
        last_offset: Offset,
        messages: u64,
    ) {
        for part in parts {
            let mut rest: &[u8] = part;
            while !rest.is_empty() {
                let current = self.current_buffer(file, rest.len());
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
                rest = later;
                if is_full && let Some(full) = self.current.take() {
                    // It ends on a block boundary: the next starts aligned.
                    self.full.push((full.position, full.buf));
                    self.carry.clear();
                }
            }
            self.staged_bytes += part.len();
        }
        assert!(
            self.last_offset.is_none_or(|last| last < last_offset),
            "staged offsets must increase"
        );
        self.last_offset = Some(last_offset);
        self.messages += messages;
    }

    pub(crate) fn add_waiter(&mut self, waiter: Waiter) {
        self.waiters.push(waiter);
    }

    fn current_buffer(&mut self, file: &SegmentFile, want: usize) -> &mut Current {
        let end = self.end;
        let carry = &self.carry;
        let buffer_bytes = self.buffer_bytes;
        self.current.get_or_insert_with(|| {
            let prefix = carry.len();
            assert_eq!(
                prefix as u64,
                end % BLOCK_BYTES,
                "a new buffer starts at the carried block"
            );
            let capacity = (prefix + want)
                .next_multiple_of(BLOCK)
                .clamp(BUFFER_MIN_BYTES.min(buffer_bytes), buffer_bytes);
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

    /// Takes everything staged for one flush, or `None` if nothing is staged.
    pub(crate) fn take(&mut self) -> Option<FlushJob> {
        let last_offset = self.last_offset.take()?;
        let mut writes = std::mem::take(&mut self.full);
        if let Some(mut current) = self.current.take()
            && current.filled > current.prefix
        {
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
            writes.push((current.position, current.buf));
        }
        assert_eq!(self.carry.len() as u64, self.end % BLOCK_BYTES);
        self.staged_bytes = 0;
        Some(FlushJob {
            writes,
            end: self.end,
            last_offset,
            messages: std::mem::take(&mut self.messages),
            waiters: std::mem::take(&mut self.waiters),
        })
    }

    /// Fails every waiting append (after the log was poisoned).
    pub(crate) fn fail_all(&mut self, outcome: &FlushOutcome) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.tx.send(outcome.clone());
        }
        self.full.clear();
        self.current = None;
        self.last_offset = None;
        self.staged_bytes = 0;
    }
}
