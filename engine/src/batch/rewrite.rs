//! What the broker does to a producer's validated batches before storing
//! them, when the topic asks for it (Kafka's LogValidator): recompress the
//! records to the topic's `compression.type`, check each CreateTime
//! record's timestamp against `message.timestamp.before/after.max.ms`, and
//! on a compacted topic refuse records without a key (INVALID_RECORD: the
//! cleaner keeps the latest record per key).
//! Batches that need neither are copied untouched; with neither asked for,
//! nothing is read at all.

use super::codec;
use super::records::for_each_record;
use super::{BatchError, Compression, HEADER_BYTES, LOG_OVERHEAD, NO_TIMESTAMP, RecordBatch};

/// What a topic asks of its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rewrite {
    /// Store every batch in this codec, at this level.
    pub compression: Option<(Compression, Option<i32>)>,
    /// A CreateTime record's timestamp must lie within (before, after)
    /// milliseconds of `now_ms`.
    pub timestamps: Option<(u64, u64)>,
    pub now_ms: i64,
    /// max.message.bytes, checked again after recompression.
    pub max_message_bytes: u32,
    /// Every record needs a key (`cleanup.policy` has compact).
    pub require_keys: bool,
}

impl Rewrite {
    fn touches(&self, batch: &RecordBatch<'_>) -> bool {
        let recompress = self
            .compression
            .is_some_and(|(codec, _)| Some(codec) != batch.header().compression());
        recompress || self.timestamps.is_some() || self.require_keys
    }
}

/// Rewritten batches: the new buffer, and each batch's (position, size).
pub type Rewritten = (Vec<u8>, Vec<(usize, usize)>);

/// Applies `rewrite` to the validated batches of `buf` at `spans` (position,
/// size). `None` when no batch changes; otherwise the new buffer and spans.
pub fn rewrite_batches(
    buf: &[u8],
    spans: &[(usize, usize)],
    rewrite: &Rewrite,
) -> Result<Option<Rewritten>, BatchError> {
    let batches = || {
        spans.iter().filter_map(|&(at, size)| {
            let bytes = buf.get(at..at + size)?;
            Some((at, RecordBatch::from_checked(bytes)?))
        })
    };
    if !batches().any(|(_, b)| rewrite.touches(&b)) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(buf.len());
    let mut out_spans = Vec::with_capacity(spans.len());
    for (at, batch) in batches() {
        let start = out.len();
        if rewrite.touches(&batch) {
            rewrite_one(&batch, at as u64, rewrite, &mut out)?;
        } else {
            copy(&batch, &mut out);
        }
        out_spans.push((start, out.len() - start));
    }
    Ok(Some((out, out_spans)))
}

/// Appends `batch`, rewritten, to `out`.
fn rewrite_one(
    batch: &RecordBatch<'_>,
    position: u64,
    rewrite: &Rewrite,
    out: &mut Vec<u8>,
) -> Result<(), BatchError> {
    let header = batch.header();
    let codec = header.compression().unwrap_or(Compression::None);
    let codec_error = super::record_batch::codec_error(position);
    let raw = batch.raw_records(position)?;
    let raw = &raw[..];
    let mut count = 0i64;
    let mut outside = None;
    let mut keyless = false;
    let malformed = |_| BatchError::Invalid {
        position,
        reason: "a record is malformed",
    };
    for_each_record(raw, |record| {
        count += 1;
        keyless |= rewrite.require_keys && record.key.is_none();
        if let Some((before, after)) = rewrite.timestamps
            && header.base_timestamp() != NO_TIMESTAMP
        {
            let timestamp = header
                .base_timestamp()
                .saturating_add(record.timestamp_delta);
            let low = rewrite.now_ms.saturating_sub_unsigned(before);
            let high = rewrite.now_ms.saturating_add_unsigned(after);
            if outside.is_none() && !(low..=high).contains(&timestamp) {
                outside = Some((timestamp, low, high));
            }
        }
    })
    .map_err(malformed)?;
    if count != i64::from(header.record_count()) {
        return Err(BatchError::Invalid {
            position,
            reason: "record count does not match the records present",
        });
    }
    if keyless {
        return Err(BatchError::Invalid {
            position,
            reason: "a compacted topic's records need a key",
        });
    }
    if let Some((timestamp, low, high)) = outside {
        return Err(BatchError::Timestamp {
            position,
            timestamp,
            low,
            high,
        });
    }
    let Some((target, level)) = rewrite.compression.filter(|(target, _)| *target != codec) else {
        copy(batch, out);
        return Ok(());
    };
    let records = codec::compress(target, level, raw).map_err(codec_error)?;
    let size = HEADER_BYTES + records.len();
    if size as u64 > u64::from(rewrite.max_message_bytes) {
        return Err(BatchError::TooLarge {
            size: size as u64,
            max: rewrite.max_message_bytes,
        });
    }
    let mut header = header;
    header.set_records(target, (size - LOG_OVERHEAD) as i32, &records);
    out.extend_from_slice(&header.0);
    out.extend_from_slice(&records);
    Ok(())
}

fn copy(batch: &RecordBatch<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(batch.header_bytes());
    out.extend_from_slice(batch.records());
}

#[cfg(test)]
#[path = "rewrite_test.rs"]
mod tests;
