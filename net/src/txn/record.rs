//! Transaction records in `__transaction_state`, in Kafka's layout
//! (TransactionLogKey v0, TransactionLogValue v0) so Kafka's tools can read
//! the topic, with the two fields Kafka keeps only in memory appended (the
//! previous producer id and epoch, for KIP-360 retries across a restart);
//! a reader of Kafka's v0 stops before them.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{TxnMetadata, TxnRecord, TxnState};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

/// Kafka's TransactionState ids.
fn state_id(state: TxnState) -> i8 {
    match state {
        TxnState::Empty => 0,
        TxnState::Ongoing => 1,
        TxnState::PrepareCommit => 2,
        TxnState::PrepareAbort => 3,
        TxnState::CompleteCommit => 4,
        TxnState::CompleteAbort => 5,
    }
}

fn state_of(id: i8) -> Option<TxnState> {
    Some(match id {
        0 => TxnState::Empty,
        1 => TxnState::Ongoing,
        2 => TxnState::PrepareCommit,
        3 => TxnState::PrepareAbort,
        4 => TxnState::CompleteCommit,
        5 => TxnState::CompleteAbort,
        _ => return None,
    })
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + transactional_id.len());
    out.put_i16(KEY_VERSION);
    put_string(&mut out, transactional_id);
    out.freeze()
}

pub fn encode_value(metadata: &TxnMetadata) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    out.put_i16(VALUE_VERSION);
    out.put_i64(metadata.producer_id);
    out.put_i16(metadata.epoch);
    out.put_i32(metadata.timeout_ms);
    out.put_i8(state_id(metadata.state));
    // Partitions grouped by topic, as Kafka writes them.
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &metadata.partitions {
        match topics.last_mut() {
            Some((t, partitions)) if *t == topic.as_str() => partitions.push(*partition),
            _ => topics.push((topic, vec![*partition])),
        }
    }
    out.put_i32(i32::try_from(topics.len()).unwrap_or(i32::MAX));
    for (topic, partitions) in topics {
        put_string(&mut out, topic);
        out.put_i32(i32::try_from(partitions.len()).unwrap_or(i32::MAX));
        for partition in partitions {
            out.put_i32(partition);
        }
    }
    out.put_i64(metadata.update_ms);
    out.put_i64(metadata.start_ms);
    out.put_i64(metadata.last_producer_id);
    out.put_i16(metadata.last_epoch);
    out.freeze()
}

pub fn decode_key(mut key: &[u8]) -> Option<String> {
    if get_i16(&mut key)? != KEY_VERSION {
        return None;
    }
    let id = get_string(&mut key)?;
    key.is_empty().then_some(id)
}

/// A value (Kafka's v0, with or without our two trailing fields).
pub fn decode_value(mut value: &[u8]) -> Option<TxnMetadata> {
    if get_i16(&mut value)? != VALUE_VERSION {
        return None;
    }
    let producer_id = get_i64(&mut value)?;
    let epoch = get_i16(&mut value)?;
    let timeout_ms = get_i32(&mut value)?;
    let state = state_of(get_i8(&mut value)?)?;
    let mut partitions = BTreeSet::new();
    let topics = usize::try_from(get_i32(&mut value)?).ok()?;
    for _ in 0..topics {
        let topic = get_string(&mut value)?;
        let count = usize::try_from(get_i32(&mut value)?).ok()?;
        // Each partition takes 4 bytes: a count past the value is damage.
        if count > value.len() / 4 {
            return None;
        }
        for _ in 0..count {
            partitions.insert((topic.clone(), get_i32(&mut value)?));
        }
    }
    let update_ms = get_i64(&mut value)?;
    let start_ms = get_i64(&mut value)?;
    let (last_producer_id, last_epoch) = if value.is_empty() {
        (-1, -1)
    } else {
        (get_i64(&mut value)?, get_i16(&mut value)?)
    };
    value.is_empty().then_some(TxnMetadata {
        producer_id,
        last_producer_id,
        epoch,
        last_epoch,
        timeout_ms,
        state,
        partitions,
        start_ms,
        update_ms,
    })
}

/// A record of `__transaction_state` back as the coordinator's.
pub fn decode(key: &[u8], value: &[u8]) -> Option<TxnRecord> {
    Some(TxnRecord {
        transactional_id: decode_key(key)?,
        metadata: decode_value(value)?,
    })
}

fn put_string(out: &mut BytesMut, s: &str) {
    out.put_i16(i16::try_from(s.len()).unwrap_or(i16::MAX));
    out.put_slice(s.as_bytes());
}

fn get_string(buf: &mut &[u8]) -> Option<String> {
    let len = usize::try_from(get_i16(buf)?).ok()?;
    let bytes = buf.get(..len)?;
    let s = String::from_utf8(bytes.to_vec()).ok()?;
    buf.advance(len);
    Some(s)
}

fn get_i8(buf: &mut &[u8]) -> Option<i8> {
    (buf.remaining() >= 1).then(|| buf.get_i8())
}

fn get_i16(buf: &mut &[u8]) -> Option<i16> {
    (buf.remaining() >= 2).then(|| buf.get_i16())
}

fn get_i32(buf: &mut &[u8]) -> Option<i32> {
    (buf.remaining() >= 4).then(|| buf.get_i32())
}

fn get_i64(buf: &mut &[u8]) -> Option<i64> {
    (buf.remaining() >= 8).then(|| buf.get_i64())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn metadata() -> TxnMetadata {
        TxnMetadata {
            producer_id: 4_000,
            last_producer_id: 12,
            epoch: 3,
            last_epoch: 2,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [("a", 0), ("a", 7), ("b", 1)]
                .iter()
                .map(|(t, p)| (t.to_string(), *p))
                .collect(),
            start_ms: 1_700_000_000_000,
            update_ms: 1_700_000_000_500,
        }
    }

    #[test]
    fn records_round_trip_in_every_state() {
        for state in [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
        ] {
            let m = TxnMetadata {
                state,
                ..metadata()
            };
            let record = decode(&encode_key("orders-app"), &encode_value(&m)).unwrap();
            assert_eq!(record.transactional_id, "orders-app");
            assert_eq!(record.metadata, m, "{state:?}");
        }
    }

    #[test]
    fn kafkas_v0_value_reads_without_the_trailing_fields() {
        let full = encode_value(&metadata());
        let kafka_v0 = &full[..full.len() - 10];
        let m = decode_value(kafka_v0).unwrap();
        assert_eq!((m.last_producer_id, m.last_epoch), (-1, -1));
        assert_eq!(m.partitions, metadata().partitions);
    }

    #[test]
    fn damage_is_none_not_a_panic() {
        let value = encode_value(&metadata());
        for cut in 0..value.len() {
            if cut != value.len() - 10 {
                assert!(decode_value(&value[..cut]).is_none(), "cut at {cut}");
            }
        }
        let mut huge = value.to_vec();
        // The first topic's partition count, set past the value.
        let at = 2 + 8 + 2 + 4 + 1 + 4 + 2 + 1;
        huge[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_value(&huge).is_none());
        let mut bad_state = value.to_vec();
        bad_state[16] = 9;
        assert!(decode_value(&bad_state).is_none());
        assert!(decode_key(&[0, 1, 0, 5, b'x']).is_none());
    }
}
