//! Encoding of record batches: used by the broker for the batches it writes
//! itself (internal topics), by tests and by benchmarks.

use super::{CRC_START, Compression, HEADER_BYTES, MAGIC_V2};

/// One record to encode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a [u8], Option<&'a [u8]>)],
    /// Milliseconds after the batch's base timestamp.
    pub timestamp_delta: i64,
}

/// The header fields of a batch to encode.
#[derive(Debug, Clone, Copy)]
pub struct BatchSpec {
    pub base_offset: i64,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub compression: Compression,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
    /// Part of a transaction (attributes bit 4).
    pub transactional: bool,
}

impl BatchSpec {
    /// An idempotence-free batch of `record_count` records at `timestamp`.
    pub fn new(record_count: i32, timestamp: i64) -> BatchSpec {
        BatchSpec {
            base_offset: 0,
            base_timestamp: timestamp,
            max_timestamp: timestamp,
            compression: Compression::None,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count,
            transactional: false,
        }
    }
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        let byte = (raw & 0x7f) as u8;
        raw >>= 7;
        if raw == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Encodes records (uncompressed) in the v2 record format, offset deltas
/// counting from 0.
pub fn encode_records(records: &[Record<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = Vec::new();
    for (offset_delta, record) in records.iter().enumerate() {
        body.clear();
        body.push(0); // attributes
        put_varint(&mut body, record.timestamp_delta);
        put_varint(&mut body, offset_delta as i64);
        put_bytes(&mut body, record.key);
        put_bytes(&mut body, record.value);
        put_varint(&mut body, record.headers.len() as i64);
        for (key, value) in record.headers {
            put_bytes(&mut body, Some(key));
            put_bytes(&mut body, *value);
        }
        put_varint(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    out
}

/// Encodes a whole batch around `records` (already compressed when
/// `spec.compression` says so) and computes its CRC.
pub fn encode_batch(spec: &BatchSpec, records: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + records.len());
    out.extend_from_slice(&spec.base_offset.to_be_bytes());
    let batch_length = (HEADER_BYTES - 12 + records.len()) as i32;
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]); // CRC, filled below
    let transactional = if spec.transactional { 0x10 } else { 0 };
    out.extend_from_slice(&(spec.compression.attribute_bits() | transactional).to_be_bytes());
    out.extend_from_slice(&(spec.record_count - 1).to_be_bytes());
    out.extend_from_slice(&spec.base_timestamp.to_be_bytes());
    out.extend_from_slice(&spec.max_timestamp.to_be_bytes());
    out.extend_from_slice(&spec.producer_id.to_be_bytes());
    out.extend_from_slice(&spec.producer_epoch.to_be_bytes());
    out.extend_from_slice(&spec.base_sequence.to_be_bytes());
    out.extend_from_slice(&spec.record_count.to_be_bytes());
    out.extend_from_slice(records);
    let crc = crc32c::crc32c(out.get(CRC_START..).unwrap_or_default());
    if let Some(field) = out.get_mut(17..CRC_START) {
        field.copy_from_slice(&crc.to_be_bytes());
    }
    out
}

/// A batch of `count` records of `value_bytes` bytes from `producer_id` at
/// `epoch`, sequences from `sequence` (all -1: a plain producer's batch),
/// transactional or not (tests and benchmarks).
pub fn producer_batch(
    producer_id: i64,
    epoch: i16,
    sequence: i32,
    count: i32,
    value_bytes: usize,
    transactional: bool,
) -> Vec<u8> {
    let value = vec![b'p'; value_bytes];
    let records: Vec<Record<'_>> = (0..count)
        .map(|_| Record {
            value: Some(&value),
            ..Record::default()
        })
        .collect();
    let mut spec = BatchSpec::new(count, 1_700_000_000_000);
    spec.producer_id = producer_id;
    spec.producer_epoch = epoch;
    spec.base_sequence = sequence;
    spec.transactional = transactional;
    encode_batch(&spec, &encode_records(&records))
}

/// A transaction marker: a control batch (transactional and control bits)
/// from `producer_id` at `epoch` with one record, key (version 0, type:
/// 0 abort, 1 commit) and value (version 0, coordinator epoch), as Kafka's
/// EndTransactionMarker.
pub fn marker_batch(
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Vec<u8> {
    let mut key = 0i16.to_be_bytes().to_vec();
    key.extend_from_slice(&i16::from(commit).to_be_bytes());
    let mut value = 0i16.to_be_bytes().to_vec();
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let record = Record {
        key: Some(&key),
        value: Some(&value),
        ..Record::default()
    };
    let mut spec = BatchSpec::new(1, timestamp);
    spec.producer_id = producer_id;
    spec.producer_epoch = epoch;
    spec.transactional = true;
    let mut batch = encode_batch(&spec, &encode_records(&[record]));
    // The control bit (0x20), which only the broker sets; CRC again.
    if let Some(attributes) = batch.get_mut(21..23) {
        attributes.copy_from_slice(&0x30i16.to_be_bytes());
    }
    let crc = crc32c::crc32c(batch.get(CRC_START..).unwrap_or_default());
    if let Some(field) = batch.get_mut(17..CRC_START) {
        field.copy_from_slice(&crc.to_be_bytes());
    }
    batch
}

/// What a transaction marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub commit: bool,
    /// The coordinator's epoch when it wrote it, if the value holds one.
    pub coordinator_epoch: Option<i32>,
}

/// The marker a control batch holds; `None` if it is not a marker.
pub fn read_marker(batch: &[u8]) -> Option<Marker> {
    let record = *super::records::records(batch).ok()?.first()?;
    let commit = match record.key? {
        [0, 0, 0, 1] => true,
        [0, 0, 0, 0] => false,
        _ => return None,
    };
    let coordinator_epoch = record
        .value
        .and_then(|v| v.get(2..6)?.try_into().ok())
        .map(i32::from_be_bytes);
    Some(Marker {
        commit,
        coordinator_epoch,
    })
}

/// Whether a control batch's record says commit (`Some(true)`) or abort;
/// `None` if it is not a marker.
pub fn marker_commit(batch: &[u8]) -> Option<bool> {
    read_marker(batch).map(|m| m.commit)
}

/// A batch of `count` uncompressed records whose values are `value_bytes`
/// long, filled from `fill` (tests and benchmarks).
pub fn simple_batch(count: i32, value_bytes: usize, timestamp: i64, fill: u8) -> Vec<u8> {
    let value = vec![fill; value_bytes];
    let records: Vec<Record<'_>> = (0..count)
        .map(|_| Record {
            value: Some(&value),
            ..Record::default()
        })
        .collect();
    encode_batch(&BatchSpec::new(count, timestamp), &encode_records(&records))
}

#[cfg(test)]
pub(crate) fn varint_for_tests(out: &mut Vec<u8>, value: i64) {
    put_varint(out, value);
}
