//! The records a log cleaner keeps of one stored batch (Kafka's
//! `MemoryRecords.filterTo`), compressed or not: the batch is decompressed,
//! the records the caller keeps are copied as they are (their offset and
//! timestamp deltas unchanged) and compressed again with the batch's own
//! codec. Everything clients rely on stays: the base offset and the last
//! offset delta (so the producer's last sequence still ends the batch, as
//! Kafka's `overrideLastOffset`), the base timestamp, the producer id,
//! epoch and base sequence, the transactional and control flags and the
//! partition leader epoch. The record count, max timestamp (CreateTime),
//! length and CRC are the kept records'.

use super::codec;
use super::records::{RecordView, for_each_record_raw};
use super::{BatchError, Compression, NO_TIMESTAMP, RecordBatch};

/// What is left of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retained {
    /// Every record: the batch as it is.
    All,
    /// Some records: the new batch.
    Some(Vec<u8>),
    /// No record. (Whether an empty batch must stay for its producer's
    /// sake is the cleaner's to decide.)
    None,
}

/// Filters the records of the stored `batch` (at byte `position` of its
/// segment, for errors): `keep(record, offset)` for each, in order.
pub fn retain_records(
    batch: &RecordBatch<'_>,
    position: u64,
    mut keep: impl FnMut(&RecordView<'_>, i64) -> bool,
) -> Result<Retained, BatchError> {
    let header = batch.header();
    let codec = header.compression().unwrap_or(Compression::None);
    let raw = batch.raw_records(position)?;
    let raw = &raw[..];
    let base_offset = header.base_offset().get();
    let mut kept = Vec::with_capacity(raw.len());
    let (mut total, mut count) = (0i32, 0i32);
    let mut max_timestamp = NO_TIMESTAMP;
    for_each_record_raw(raw, |record, bytes| {
        total += 1;
        if keep(&record, base_offset + i64::from(record.offset_delta)) {
            count += 1;
            kept.extend_from_slice(bytes);
            let timestamp = header
                .base_timestamp()
                .saturating_add(record.timestamp_delta);
            max_timestamp = max_timestamp.max(timestamp);
        }
    })
    .map_err(|_| BatchError::Invalid {
        position,
        reason: "a record is malformed",
    })?;
    if count == total {
        return Ok(Retained::All);
    }
    if count == 0 {
        return Ok(Retained::None);
    }
    let records =
        codec::compress(codec, None, &kept).map_err(super::record_batch::codec_error(position))?;
    let mut header = header;
    header.set_retained(codec, count, max_timestamp, &records);
    let mut out = Vec::with_capacity(header.0.len() + records.len());
    out.extend_from_slice(&header.0);
    out.extend_from_slice(&records);
    Ok(Retained::Some(out))
}

#[cfg(test)]
#[path = "compact_test.rs"]
mod tests;
