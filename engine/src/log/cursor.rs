//! Sequential reading of the batches of a segment file, validating each one
//! (framing, magic, CRC) before it is handed out. Shared by fetch reads,
//! timestamp lookups and the recovery scan.

use crate::IoError;
use crate::Offset;
use crate::batch::{
    BatchError, BatchHeader, HEADER_BYTES, LOG_OVERHEAD, ValidateMode, check_batch,
};
use crate::io::{ReadBuf, SegmentFile};

/// Why a cursor stopped before its limit.
#[derive(Debug)]
pub(crate) enum CursorError {
    /// The bytes at `position` are not a valid batch.
    Invalid {
        position: u64,
        cause: BatchError,
    },
    Io(IoError),
}

/// One validated batch: its file position, its header and its bytes (a
/// slice of the read buffer, not a copy).
#[derive(Debug)]
pub(crate) struct StoredBatch {
    pub position: u64,
    pub header: BatchHeader,
    pub bytes: ReadBuf,
}

/// What the first bytes of a batch say before it is read whole.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Framing {
    pub base_offset: Offset,
    /// The whole batch's bytes, length field included.
    pub size: usize,
}

#[derive(Debug)]
pub(crate) struct BatchCursor<'f> {
    file: &'f SegmentFile,
    position: u64,
    limit: u64,
    read_bytes: usize,
    buf: Option<(u64, ReadBuf)>,
}

impl<'f> BatchCursor<'f> {
    /// Reads batches from `position` up to `limit`, `read_bytes` per I/O.
    pub(crate) fn new(file: &'f SegmentFile, position: u64, limit: u64, read_bytes: usize) -> Self {
        BatchCursor {
            file,
            position,
            limit,
            read_bytes,
            buf: None,
        }
    }

    /// Starts with `bytes`, read from the cursor's position on.
    pub(crate) fn buffer(&mut self, bytes: ReadBuf) {
        self.buf = Some((self.position, bytes));
    }

    /// Where the next batch begins.
    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    /// Reads from now on take `read_bytes` (or what a batch needs).
    pub(crate) fn set_read_bytes(&mut self, read_bytes: usize) {
        self.read_bytes = read_bytes;
    }

    /// The buffered bytes from the cursor position on.
    fn buffered(&self) -> &[u8] {
        match &self.buf {
            Some((start, buf)) if *start <= self.position => buf
                .get((self.position - start) as usize..)
                .unwrap_or_default(),
            _ => &[],
        }
    }

    /// Makes at least `need` bytes from the position available, if the file
    /// has them (fewer at its end).
    async fn fill(&mut self, need: usize) -> Result<(), IoError> {
        if self.buffered().len() >= need {
            return Ok(());
        }
        let room = usize::try_from(self.limit - self.position).unwrap_or(usize::MAX);
        let len = self.read_bytes.max(need).min(room);
        let buf = self.file.read_at(self.position, len).await?;
        self.buf = Some((self.position, buf));
        Ok(())
    }

    /// The next batch's base offset and size from its first bytes alone,
    /// without reading or validating the rest: enough to decide to stop
    /// before it, never to serve or to skip it (a later read starts there
    /// and validates it). `Ok(None)` at the limit.
    pub(crate) async fn peek(&mut self) -> Result<Option<Framing>, CursorError> {
        if self.position >= self.limit {
            return Ok(None);
        }
        let position = self.position;
        let room = self.limit - position;
        self.fill(LOG_OVERHEAD.min(room as usize))
            .await
            .map_err(CursorError::Io)?;
        let size = match crate::batch::framed_size_of(self.buffered()) {
            Some(Ok(size)) if size as u64 <= room => size,
            Some(Ok(size)) => {
                let cause = BatchError::Truncated {
                    position,
                    need: size as u64,
                    have: room,
                };
                return Err(CursorError::Invalid { position, cause });
            }
            Some(Err(_)) => {
                let cause = BatchError::Invalid {
                    position,
                    reason: "batch length below the v2 header size",
                };
                return Err(CursorError::Invalid { position, cause });
            }
            None => {
                let cause = BatchError::Truncated {
                    position,
                    need: LOG_OVERHEAD as u64,
                    have: room,
                };
                return Err(CursorError::Invalid { position, cause });
            }
        };
        let base = self
            .buffered()
            .first_chunk::<8>()
            .copied()
            .unwrap_or_default();
        Ok(Some(Framing {
            base_offset: Offset(i64::from_be_bytes(base)),
            size,
        }))
    }

    /// The next batch, `Ok(None)` at the limit.
    pub(crate) async fn next(&mut self) -> Result<Option<StoredBatch>, CursorError> {
        let Some(Framing { size, .. }) = self.peek().await? else {
            return Ok(None);
        };
        let position = self.position;
        self.fill(size.max(HEADER_BYTES))
            .await
            .map_err(CursorError::Io)?;
        let (start, buf) = self.buf.as_ref().ok_or(CursorError::Invalid {
            position,
            cause: BatchError::Truncated {
                position,
                need: size as u64,
                have: 0,
            },
        })?;
        let at = (position - start) as usize;
        let available = buf.len().saturating_sub(at) as u64;
        let bytes = buf.slice(at, size).ok_or(CursorError::Invalid {
            position,
            cause: BatchError::Truncated {
                position,
                need: size as u64,
                have: available,
            },
        })?;
        let batch = check_batch(&bytes, position, ValidateMode::Stored)
            .map_err(|cause| CursorError::Invalid { position, cause })?;
        let header = batch.header();
        self.position += size as u64;
        Ok(Some(StoredBatch {
            position,
            header,
            bytes,
        }))
    }
}
