//! `engine::Log` as the durable log behind replication's state machines
//! and the broker's internal topics: records in uncompressed batches the
//! broker builds itself.

use bytes::Bytes;
use replication::log_store::LogStore;

use super::Log;
use crate::batch::builder::{BatchSpec, Record, encode_batch, encode_records, marker_commit};
use crate::batch::records::records;
use crate::batch::{BatchError, BatchHeader, HEADER_BYTES};
use crate::{Error, Offset, Result, rt};

impl LogStore for Log {
    type Error = Error;

    async fn append_record(&self, value: &[u8]) -> Result<i64> {
        let now = rt::wall_clock_ms();
        let record = Record {
            value: Some(value),
            ..Record::default()
        };
        let batch = encode_batch(&BatchSpec::new(1, now), &encode_records(&[record]));
        let info = self.append(Bytes::from(batch), now).await?;
        Ok(info.base_offset.get())
    }

    async fn read_records(&self, from: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        Ok(self
            .read_internal(from)
            .await?
            .into_iter()
            .map(|r| (r.offset, r.value.unwrap_or_default()))
            .collect())
    }

    async fn delete_before(&self, offset: i64) -> Result<()> {
        self.delete_records(Offset(offset)).await.map(|_| ())
    }
}

/// One record of an internal topic, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalRecord {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// `None`: a tombstone.
    pub value: Option<Vec<u8>>,
    /// What the record's batch says about transactions.
    pub txn: InternalTxn,
}

/// The transaction a record of an internal topic belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalTxn {
    /// A plain record.
    None,
    /// Written inside `producer_id`'s transaction: it counts only once a
    /// commit marker from that producer follows.
    Data { producer_id: i64 },
    /// A marker ending `producer_id`'s transaction (no key or value).
    Marker { producer_id: i64, commit: bool },
}

impl Log {
    /// Appends broker-built records (key, value; no value is a tombstone)
    /// as one uncompressed batch, durably.
    pub async fn append_internal(
        &self,
        records: &[(&[u8], Option<&[u8]>)],
        now_ms: i64,
    ) -> Result<crate::AppendInfo> {
        let count = i32::try_from(records.len()).unwrap_or(i32::MAX);
        let batch = internal_batch(records, BatchSpec::new(count, now_ms));
        self.append(batch, now_ms).await
    }

    /// Appends broker-built records inside `producer_id`'s transaction
    /// (a transactional batch at `epoch`, the producer's next sequence):
    /// they count once the transaction's commit marker is written here.
    /// Appends for one producer must not overlap (the caller serializes
    /// them): each takes the sequence after the last stored one.
    pub async fn append_internal_txn(
        &self,
        records: &[(&[u8], Option<&[u8]>)],
        producer_id: i64,
        epoch: i16,
        now_ms: i64,
    ) -> Result<crate::AppendInfo> {
        let count = i32::try_from(records.len()).unwrap_or(i32::MAX);
        let mut spec = BatchSpec::new(count, now_ms);
        spec.producer_id = producer_id;
        spec.producer_epoch = epoch;
        spec.base_sequence = self.next_sequence(producer_id, epoch);
        spec.transactional = true;
        self.append(internal_batch(records, spec), now_ms).await
    }

    /// Every record at or after `from` of a log of broker-built batches.
    pub async fn read_internal(&self, from: i64) -> Result<Vec<InternalRecord>> {
        let mut out = Vec::new();
        let mut offset = Offset(from).max(self.log_start_offset());
        while offset < self.log_end_offset() {
            let mut next = offset;
            for chunk in &self.read(offset, 1 << 20).await?.chunks {
                let mut bytes = Vec::with_capacity(chunk.len());
                chunk.extend_into(&mut bytes);
                let Some(header) = bytes.first_chunk::<HEADER_BYTES>().map(|h| BatchHeader(*h))
                else {
                    continue;
                };
                let unreadable = BatchError::Invalid {
                    position: 0,
                    reason: "unreadable records",
                };
                let producer_id = header.producer_id();
                let txn = match (header.is_transactional(), header.is_control()) {
                    (_, true) => match marker_commit(&bytes) {
                        Some(commit) => InternalTxn::Marker {
                            producer_id,
                            commit,
                        },
                        None => InternalTxn::None,
                    },
                    (true, false) => InternalTxn::Data { producer_id },
                    (false, false) => InternalTxn::None,
                };
                for record in records(&bytes).map_err(|_| unreadable)? {
                    let record_offset = header.base_offset().get() + i64::from(record.offset_delta);
                    if record_offset >= from {
                        let is_marker = matches!(txn, InternalTxn::Marker { .. });
                        out.push(InternalRecord {
                            offset: record_offset,
                            key: record.key.filter(|_| !is_marker).map(<[u8]>::to_vec),
                            value: record.value.filter(|_| !is_marker).map(<[u8]>::to_vec),
                            txn,
                        });
                    }
                }
                next = header.last_offset().plus(1);
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
        Ok(out)
    }
}

/// One uncompressed batch of broker-built (key, value) records.
fn internal_batch(records: &[(&[u8], Option<&[u8]>)], spec: BatchSpec) -> Bytes {
    let records: Vec<Record<'_>> = records
        .iter()
        .map(|(key, value)| Record {
            key: Some(key),
            value: *value,
            ..Record::default()
        })
        .collect();
    Bytes::from(encode_batch(&spec, &encode_records(&records)))
}
