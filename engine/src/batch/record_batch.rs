use super::{CRC_START, HEADER_BYTES, LOG_OVERHEAD};
use crate::Offset;

/// The compression codec named by a batch's attributes (bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Every codec, uncompressed first.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    pub fn from_attributes(attributes: i16) -> Option<Compression> {
        match attributes & 0x07 {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    pub fn attribute_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// The fixed 61-byte header of one batch, owned, so the broker can rewrite
/// the fields outside the CRC (base offset, partition leader epoch) and the
/// log-append time (which needs the CRC recomputed) without copying records.
#[derive(Clone, PartialEq, Eq)]
pub struct BatchHeader(pub [u8; HEADER_BYTES]);

impl std::fmt::Debug for BatchHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchHeader")
            .field("base_offset", &self.base_offset())
            .field("batch_length", &self.batch_length())
            .field("record_count", &self.record_count())
            .finish()
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "the header is a fixed 61-byte array and every range is a constant inside it"
)]
impl BatchHeader {
    fn i16_at(&self, at: usize) -> i16 {
        i16::from_be_bytes([self.0[at], self.0[at + 1]])
    }
    fn i32_at(&self, at: usize) -> i32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[at..at + 4]);
        i32::from_be_bytes(b)
    }
    fn i64_at(&self, at: usize) -> i64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[at..at + 8]);
        i64::from_be_bytes(b)
    }

    pub fn base_offset(&self) -> Offset {
        Offset(self.i64_at(0))
    }
    /// Bytes after the batch length field (Kafka's `batchLength`).
    pub fn batch_length(&self) -> i32 {
        self.i32_at(8)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        self.i32_at(12)
    }
    pub fn magic(&self) -> i8 {
        i8::from_be_bytes([self.0[16]])
    }
    pub fn crc(&self) -> u32 {
        self.i32_at(17) as u32
    }
    pub fn attributes(&self) -> i16 {
        self.i16_at(21)
    }
    pub fn last_offset_delta(&self) -> i32 {
        self.i32_at(23)
    }
    pub fn base_timestamp(&self) -> i64 {
        self.i64_at(27)
    }
    pub fn max_timestamp(&self) -> i64 {
        self.i64_at(35)
    }
    pub fn producer_id(&self) -> i64 {
        self.i64_at(43)
    }
    pub fn producer_epoch(&self) -> i16 {
        self.i16_at(51)
    }
    pub fn base_sequence(&self) -> i32 {
        self.i32_at(53)
    }
    pub fn record_count(&self) -> i32 {
        self.i32_at(57)
    }

    pub fn compression(&self) -> Option<Compression> {
        Compression::from_attributes(self.attributes())
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & TIMESTAMP_TYPE_BIT != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }
    /// The offset of the last record: base offset + last offset delta.
    pub fn last_offset(&self) -> Offset {
        self.base_offset().plus(i64::from(self.last_offset_delta()))
    }
    /// Total bytes of the batch, header included.
    pub fn size(&self) -> usize {
        // Validated batches have batch_length >= 49, so this never wraps.
        LOG_OVERHEAD + usize::try_from(self.batch_length()).unwrap_or(0)
    }

    /// Sets the base offset; outside the CRC, so nothing else changes.
    pub fn set_base_offset(&mut self, offset: Offset) {
        self.0[0..8].copy_from_slice(&offset.0.to_be_bytes());
    }
    /// Sets the partition leader epoch; outside the CRC.
    pub fn set_partition_leader_epoch(&mut self, epoch: i32) {
        self.0[12..16].copy_from_slice(&epoch.to_be_bytes());
    }

    /// Makes this the header of `records` in `codec` (a recompressed batch):
    /// sets the codec bits, the batch length and the CRC.
    pub fn set_records(&mut self, codec: Compression, batch_length: i32, records: &[u8]) {
        let attributes = (self.attributes() & !0x07) | codec.attribute_bits();
        self.0[21..23].copy_from_slice(&attributes.to_be_bytes());
        self.0[8..12].copy_from_slice(&batch_length.to_be_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&self.0[CRC_START..]), records);
        self.0[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    /// Makes this the header of the records a cleaner kept of its batch:
    /// `count` of them, `records` in `codec`, the greatest CreateTime
    /// timestamp among them `max_timestamp` (a LogAppendTime batch keeps
    /// its own); the base offset, last offset delta, base timestamp,
    /// producer fields and flags stay, so offsets and sequences do.
    pub fn set_retained(
        &mut self,
        codec: Compression,
        count: i32,
        max_timestamp: i64,
        records: &[u8],
    ) {
        self.0[57..61].copy_from_slice(&count.to_be_bytes());
        if !self.is_log_append_time() {
            self.0[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
        }
        let batch_length = HEADER_BYTES - LOG_OVERHEAD + records.len();
        let batch_length = i32::try_from(batch_length).unwrap_or(i32::MAX);
        self.set_records(codec, batch_length, records);
    }

    /// Marks the batch LogAppendTime with `now_ms` as its max timestamp and
    /// recomputes the CRC over the new header fields and the unchanged
    /// `records` (the bytes after the header).
    pub fn set_log_append_time(&mut self, now_ms: i64, records: &[u8]) {
        let attributes = self.attributes() | TIMESTAMP_TYPE_BIT;
        self.0[21..23].copy_from_slice(&attributes.to_be_bytes());
        self.0[35..43].copy_from_slice(&now_ms.to_be_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&self.0[CRC_START..]), records);
        self.0[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

/// A zero-copy view of one complete record batch (header and records).
/// Only built by the validator or over bytes the log validated, so its
/// length always matches its batch length field.
#[derive(Debug, Clone, Copy)]
pub struct RecordBatch<'a> {
    header: &'a [u8; HEADER_BYTES],
    records: &'a [u8],
}

/// A codec's failure on the batch at `position`, as a batch error.
pub(crate) fn codec_error(position: u64) -> impl Fn(super::codec::CodecError) -> super::BatchError {
    move |e| match e {
        super::codec::CodecError::TooLarge(limit) => {
            super::BatchError::DecompressedTooLarge { position, limit }
        }
        super::codec::CodecError::Malformed { .. } => super::BatchError::Compression {
            position,
            reason: e.to_string(),
        },
    }
}

impl<'a> RecordBatch<'a> {
    /// The batch's records uncompressed (borrowed when they are stored
    /// so), within the decompressed size bound; `position` is the batch's
    /// in its buffer or segment, for errors.
    pub fn raw_records(
        &self,
        position: u64,
    ) -> Result<std::borrow::Cow<'a, [u8]>, super::BatchError> {
        match self.header().compression().unwrap_or(Compression::None) {
            Compression::None => Ok(std::borrow::Cow::Borrowed(self.records)),
            codec => {
                super::codec::decompress(codec, self.records, crate::limits::DECOMPRESSED_BYTES_MAX)
                    .map(std::borrow::Cow::Owned)
                    .map_err(codec_error(position))
            }
        }
    }

    /// Splits `bytes`, already checked to be exactly one batch of at least
    /// `HEADER_BYTES`, into header and records.
    pub(crate) fn from_checked(bytes: &'a [u8]) -> Option<RecordBatch<'a>> {
        let (header, records) = bytes.split_first_chunk::<HEADER_BYTES>()?;
        Some(RecordBatch { header, records })
    }

    pub fn header(&self) -> BatchHeader {
        BatchHeader(*self.header)
    }
    pub fn header_bytes(&self) -> &'a [u8; HEADER_BYTES] {
        self.header
    }
    /// The record bytes after the fixed header, compressed or not.
    pub fn records(&self) -> &'a [u8] {
        self.records
    }
    pub fn size(&self) -> usize {
        HEADER_BYTES + self.records.len()
    }
}
