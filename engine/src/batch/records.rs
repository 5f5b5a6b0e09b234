//! Reading the records of an uncompressed batch (the broker's own batches:
//! internal topics such as the metadata log). Producer batches are never
//! decoded on the hot path.

use super::{BatchHeader, Compression, HEADER_BYTES};
use crate::batch::read_varint;

/// One record, borrowed from its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The record's headers as encoded (a count, then each key and value):
    /// [`RecordView::header_pairs`] reads them.
    pub headers: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// The record's headers: (key, value; `None` for a null value), up to
    /// the first malformed one.
    pub fn header_pairs(&self) -> Vec<(&'a [u8], Option<&'a [u8]>)> {
        let Some((count, used)) = read_varint(self.headers) else {
            return Vec::new();
        };
        let mut rest = self.headers.get(used..).unwrap_or_default();
        let mut out = Vec::new();
        for _ in 0..count.max(0) {
            let Some((Some(key), after)) = read_bytes(rest) else {
                break;
            };
            let Some((value, after)) = read_bytes(after) else {
                break;
            };
            out.push((key, value));
            rest = after;
        }
        out
    }
}

/// Why a batch's records cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    #[error("batch records are compressed")]
    Compressed,
    #[error("malformed record at byte {0} of the records")]
    Malformed(usize),
}

/// The records of a whole, uncompressed batch (`batch` starts with its
/// 61-byte header). Headers of records are skipped.
pub fn records(batch: &[u8]) -> Result<Vec<RecordView<'_>>, RecordsError> {
    let header = batch
        .first_chunk::<HEADER_BYTES>()
        .map(|h| BatchHeader(*h))
        .ok_or(RecordsError::Malformed(0))?;
    if header.compression() != Some(Compression::None) {
        return Err(RecordsError::Compressed);
    }
    let body = batch.get(HEADER_BYTES..).unwrap_or_default();
    let mut out = Vec::new();
    for_each_record(body, |record| out.push(record))?;
    Ok(out)
}

/// Calls `f` with each record of `body`, a batch's records once
/// decompressed (what follows the 61-byte header), in order. Headers of
/// records are skipped.
pub fn for_each_record<'a>(
    body: &'a [u8],
    mut f: impl FnMut(RecordView<'a>),
) -> Result<(), RecordsError> {
    for_each_record_raw(body, |record, _| f(record))
}

/// [`for_each_record`], with each record's own bytes (its length prefix
/// included) as they are in `body`.
pub fn for_each_record_raw<'a>(
    body: &'a [u8],
    mut f: impl FnMut(RecordView<'a>, &'a [u8]),
) -> Result<(), RecordsError> {
    let mut at = 0usize;
    while at < body.len() {
        let malformed = RecordsError::Malformed(at);
        let (length, used) = body.get(at..).and_then(read_varint).ok_or(malformed)?;
        let end = usize::try_from(length)
            .ok()
            .and_then(|l| (at + used).checked_add(l))
            .ok_or(malformed)?;
        let record = body.get(at + used..end).ok_or(malformed)?;
        let raw = body.get(at..end).ok_or(malformed)?;
        f(parse_record(record).ok_or(malformed)?, raw);
        at = end;
    }
    Ok(())
}

fn parse_record(record: &[u8]) -> Option<RecordView<'_>> {
    let mut rest = record.get(1..)?; // attributes
    let (timestamp_delta, used) = read_varlong(rest)?;
    rest = rest.get(used..)?;
    let (offset_delta, used) = read_varint(rest)?;
    rest = rest.get(used..)?;
    let (key, rest) = read_bytes(rest)?;
    let (value, headers) = read_bytes(rest)?;
    Some(RecordView {
        offset_delta,
        timestamp_delta,
        key,
        value,
        headers,
    })
}

fn read_bytes(buf: &[u8]) -> Option<(Option<&[u8]>, &[u8])> {
    let (length, used) = read_varint(buf)?;
    let rest = buf.get(used..)?;
    if length < 0 {
        return Some((None, rest));
    }
    let length = usize::try_from(length).ok()?;
    Some((Some(rest.get(..length)?), rest.get(length..)?))
}

/// Decodes a zigzag varlong (at most 10 bytes).
pub(crate) fn read_varlong(buf: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, byte) in buf.iter().take(10).enumerate() {
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::builder::{BatchSpec, Record, encode_batch, encode_records};

    #[test]
    fn records_read_back_as_encoded() {
        let headers = [(&b"h"[..], Some(&b"v"[..]))];
        let input = [
            Record {
                key: Some(b"k1"),
                value: Some(b"value one"),
                headers: &headers,
                timestamp_delta: 0,
            },
            Record {
                key: None,
                value: None,
                headers: &[],
                timestamp_delta: 7,
            },
        ];
        let batch = encode_batch(&BatchSpec::new(2, 100), &encode_records(&input));
        let read = records(&batch).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(
            (read[0].key, read[0].value, read[0].offset_delta),
            (Some(&b"k1"[..]), Some(&b"value one"[..]), 0)
        );
        assert_eq!(
            (
                read[1].key,
                read[1].value,
                read[1].timestamp_delta,
                read[1].offset_delta
            ),
            (None, None, 7, 1)
        );
        assert_eq!(read[0].header_pairs(), vec![(&b"h"[..], Some(&b"v"[..]))]);
    }

    #[test]
    fn damaged_records_are_errors() {
        let batch = encode_batch(
            &BatchSpec::new(1, 1),
            &encode_records(&[Record {
                value: Some(b"x"),
                ..Record::default()
            }]),
        );
        for cut in 62..batch.len() {
            let _ = records(&batch[..cut]);
        }
        let mut bad = batch.clone();
        bad[61] = 0x7f; // a record length far past the end
        assert!(matches!(records(&bad), Err(RecordsError::Malformed(0))));
    }
}
