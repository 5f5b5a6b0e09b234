//! Pure validation of record batches, without decompressing anything.
//!
//! The same checks guard both directions of the disk: before an append
//! (`ValidateMode::Produce`, strict) and after a read or during recovery
//! (`ValidateMode::Stored`: framing, magic and CRC, because compaction may
//! legitimately leave batches whose count differs from their offset span).

use super::{CRC_START, HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2, NO_TIMESTAMP, RecordBatch};

/// Why bytes are not an acceptable record batch. `position` is the byte
/// where the offending batch starts, within the buffer or file examined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch at byte {position} is truncated: needs {need} bytes, {have} present")]
    Truncated { position: u64, need: u64, have: u64 },
    #[error("record batch at byte {position} has magic {magic}, only magic 2 is supported")]
    Magic { position: u64, magic: i8 },
    #[error(
        "record batch at byte {position} fails its CRC: stored {stored:#010x}, computed {computed:#010x}"
    )]
    Crc {
        position: u64,
        stored: u32,
        computed: u32,
    },
    #[error("record batch at byte {position} is invalid: {reason}")]
    Invalid { position: u64, reason: &'static str },
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: u64, max: u32 },
    #[error("record batch at byte {position} decompresses past {limit} bytes")]
    DecompressedTooLarge { position: u64, limit: usize },
    #[error("record batch at byte {position} cannot be decompressed: {reason}")]
    Compression { position: u64, reason: String },
    #[error(
        "record batch at byte {position} has timestamp {timestamp}, outside the topic's window [{low}, {high}]"
    )]
    Timestamp {
        position: u64,
        timestamp: i64,
        low: i64,
        high: i64,
    },
}

/// The Kafka error family a [`BatchError`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchErrorKind {
    /// CORRUPT_MESSAGE (2)
    Corrupt,
    /// INVALID_RECORD (87)
    InvalidRecord,
    /// MESSAGE_TOO_LARGE (10)
    TooLarge,
    /// INVALID_TIMESTAMP (32)
    InvalidTimestamp,
}

impl BatchError {
    pub fn kind(&self) -> BatchErrorKind {
        match self {
            BatchError::Truncated { .. }
            | BatchError::Magic { .. }
            | BatchError::Crc { .. }
            | BatchError::Compression { .. } => BatchErrorKind::Corrupt,
            BatchError::Invalid { .. } => BatchErrorKind::InvalidRecord,
            BatchError::TooLarge { .. } | BatchError::DecompressedTooLarge { .. } => {
                BatchErrorKind::TooLarge
            }
            BatchError::Timestamp { .. } => BatchErrorKind::InvalidTimestamp,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidateMode {
    /// Bytes from a producer: everything Kafka's LogValidator checks without
    /// decompressing.
    Produce { max_message_bytes: u32 },
    /// Bytes read back from our own files: framing, magic and CRC.
    Stored,
}

/// Iterates the batches of a buffer, validating each, and stops after the
/// first error. Yields each batch with its byte position in the buffer.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    buf: &'a [u8],
    position: usize,
    base_position: u64,
    mode: ValidateMode,
    failed: bool,
}

/// Validates the batches in `buf`; `base_position` is added to every
/// position reported (the file position of `buf`, or 0 for a request).
pub fn validate(buf: &[u8], base_position: u64, mode: ValidateMode) -> Batches<'_> {
    Batches {
        buf,
        position: 0,
        base_position,
        mode,
        failed: false,
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<(usize, RecordBatch<'a>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.buf.get(self.position..).filter(|r| !r.is_empty())?;
        let at = self.base_position + self.position as u64;
        match check_batch(rest, at, self.mode) {
            Ok(batch) => {
                let position = self.position;
                self.position += batch.size();
                Some(Ok((position, batch)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Reads the total size of the batch starting at `buf` from its length field,
/// checking only that it is plausible. `None` if fewer than 12 bytes.
pub(crate) fn framed_size_of(buf: &[u8]) -> Option<Result<usize, i32>> {
    let length = i32::from_be_bytes(*buf.get(8..LOG_OVERHEAD)?.first_chunk::<4>()?);
    let min = (HEADER_BYTES - LOG_OVERHEAD) as i32;
    Some(if length < min {
        Err(length)
    } else {
        Ok(LOG_OVERHEAD + length as usize)
    })
}

/// Validates the one batch that starts at `buf[0]` (more bytes may follow).
pub fn check_batch(
    buf: &[u8],
    position: u64,
    mode: ValidateMode,
) -> Result<RecordBatch<'_>, BatchError> {
    let have = buf.len() as u64;
    let truncated = |need: u64| BatchError::Truncated {
        position,
        need,
        have,
    };
    let size = match framed_size_of(buf) {
        None => return Err(truncated(LOG_OVERHEAD as u64)),
        Some(Err(_)) => {
            return Err(BatchError::Invalid {
                position,
                reason: "batch length below the v2 header size",
            });
        }
        Some(Ok(size)) => size,
    };
    if let ValidateMode::Produce { max_message_bytes } = mode
        && size as u64 > u64::from(max_message_bytes)
    {
        return Err(BatchError::TooLarge {
            size: size as u64,
            max: max_message_bytes,
        });
    }
    let bytes = buf.get(..size).ok_or_else(|| truncated(size as u64))?;
    let batch = RecordBatch::from_checked(bytes).ok_or_else(|| truncated(HEADER_BYTES as u64))?;
    let header = batch.header();
    if header.magic() != MAGIC_V2 {
        return Err(BatchError::Magic {
            position,
            magic: header.magic(),
        });
    }
    let covered = bytes.get(CRC_START..).unwrap_or_default();
    let computed = crc32c::crc32c(covered);
    if computed != header.crc() {
        return Err(BatchError::Crc {
            position,
            stored: header.crc(),
            computed,
        });
    }
    if let ValidateMode::Produce { .. } = mode {
        check_producer_fields(&batch, position)?;
    }
    Ok(batch)
}

fn check_producer_fields(batch: &RecordBatch<'_>, position: u64) -> Result<(), BatchError> {
    let header = batch.header();
    let invalid = |reason| Err(BatchError::Invalid { position, reason });
    let Some(compression) = header.compression() else {
        return invalid("unknown compression codec");
    };
    if header.record_count() <= 0 {
        return invalid("record count is not positive");
    }
    if i64::from(header.last_offset_delta()) != i64::from(header.record_count()) - 1 {
        return invalid("last offset delta does not match the record count");
    }
    if header.is_control() {
        return invalid("producers may not write control batches");
    }
    if header.is_transactional() && header.producer_id() < 0 {
        return invalid("a transactional batch needs a producer id");
    }
    if header.producer_id() >= 0 && header.base_sequence() < 0 {
        return invalid("a batch with a producer id needs a sequence number");
    }
    let (base, max) = (header.base_timestamp(), header.max_timestamp());
    if base < NO_TIMESTAMP || max < NO_TIMESTAMP || (base >= 0 && max >= 0 && max < base) {
        return invalid("timestamps are negative or max timestamp precedes base timestamp");
    }
    if compression == super::Compression::None {
        let count = count_records(batch.records()).ok_or(BatchError::Invalid {
            position,
            reason: "a record length overruns the batch",
        })?;
        if count != i64::from(header.record_count()) {
            return invalid("record count does not match the records present");
        }
    }
    Ok(())
}

/// Counts length-prefixed records (zigzag varint lengths); `None` if the
/// lengths do not tile `records` exactly.
fn count_records(records: &[u8]) -> Option<i64> {
    let mut at = 0usize;
    let mut count = 0i64;
    while at < records.len() {
        let (length, used) = read_varint(records.get(at..)?)?;
        let length = usize::try_from(length).ok()?;
        at = at.checked_add(used)?.checked_add(length)?;
        count += 1;
    }
    (at == records.len()).then_some(count)
}

/// Decodes a zigzag varint of at most 5 bytes (an i32), returning the value
/// and the bytes used.
pub(crate) fn read_varint(buf: &[u8]) -> Option<(i32, usize)> {
    let mut raw: u32 = 0;
    for (i, byte) in buf.iter().take(5).enumerate() {
        raw |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let value = ((raw >> 1) as i32) ^ -((raw & 1) as i32);
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
#[path = "validator_test.rs"]
mod tests;
