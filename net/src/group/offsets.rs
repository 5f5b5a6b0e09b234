//! Committed offsets, and their records in `__consumer_offsets` in Kafka's
//! own layout (OffsetCommitKey v1, OffsetCommitValue v3), so Kafka's tools
//! can read the topic. A record with no value (a tombstone) deletes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A partition a group committed an offset for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OffsetKey {
    pub topic: String,
    pub partition: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    /// -1 when the client did not send one.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

const KEY_VERSION: i16 = 1;
const VALUE_VERSION: i16 = 3;

/// The record key of a committed offset.
pub fn encode_key(group: &str, key: &OffsetKey) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + 2 + group.len() + 2 + key.topic.len() + 4);
    out.put_i16(KEY_VERSION);
    put_string(&mut out, group);
    put_string(&mut out, &key.topic);
    out.put_i32(key.partition);
    out.freeze()
}

/// The record value of a committed offset.
pub fn encode_value(value: &CommittedOffset) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + 8 + 4 + 2 + value.metadata.len() + 8);
    out.put_i16(VALUE_VERSION);
    out.put_i64(value.offset);
    out.put_i32(value.leader_epoch);
    put_string(&mut out, &value.metadata);
    out.put_i64(value.commit_timestamp_ms);
    out.freeze()
}

/// A key of an offset commit record: `None` for other record kinds
/// (group metadata) or damage.
pub fn decode_key(mut key: &[u8]) -> Option<(String, OffsetKey)> {
    let version = get_i16(&mut key)?;
    if !(0..=1).contains(&version) {
        return None;
    }
    let group = get_string(&mut key)?;
    let topic = get_string(&mut key)?;
    let partition = get_i32(&mut key)?;
    Some((group, OffsetKey { topic, partition }))
}

/// A value of an offset commit record (versions 1 and 3 are read).
pub fn decode_value(mut value: &[u8]) -> Option<CommittedOffset> {
    let version = get_i16(&mut value)?;
    let offset = get_i64(&mut value)?;
    let leader_epoch = if version >= 3 {
        get_i32(&mut value)?
    } else {
        -1
    };
    let metadata = get_string(&mut value)?;
    let commit_timestamp_ms = get_i64(&mut value)?;
    (1..=3).contains(&version).then_some(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

fn put_string(out: &mut BytesMut, s: &str) {
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    out.put_i16(len);
    out.put_slice(s.as_bytes().get(..len as usize).unwrap_or_default());
}

fn get_i16(b: &mut &[u8]) -> Option<i16> {
    (b.remaining() >= 2).then(|| b.get_i16())
}

fn get_i32(b: &mut &[u8]) -> Option<i32> {
    (b.remaining() >= 4).then(|| b.get_i32())
}

fn get_i64(b: &mut &[u8]) -> Option<i64> {
    (b.remaining() >= 8).then(|| b.get_i64())
}

fn get_string(b: &mut &[u8]) -> Option<String> {
    let len = usize::try_from(get_i16(b)?).ok()?;
    let bytes = b.get(..len)?;
    let s = std::str::from_utf8(bytes).ok()?.to_string();
    b.advance(len);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_in_kafkas_layout() {
        let key = OffsetKey {
            topic: "orders".into(),
            partition: 7,
        };
        let encoded = encode_key("billing", &key);
        // version 1, "billing", "orders", 7
        assert_eq!(&encoded[..4], &[0, 1, 0, 7]);
        assert_eq!(decode_key(&encoded), Some(("billing".into(), key)));
        let value = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        let encoded = encode_value(&value);
        assert_eq!(encoded.len(), 2 + 8 + 4 + 3 + 8);
        assert_eq!(decode_value(&encoded), Some(value));
    }

    #[test]
    fn damaged_records_decode_to_none() {
        let key = encode_key(
            "g",
            &OffsetKey {
                topic: "t".into(),
                partition: 0,
            },
        );
        for cut in 0..key.len() {
            assert_eq!(decode_key(&key[..cut]), None);
        }
        // Group metadata keys (version 2) are not offset keys.
        assert_eq!(decode_key(&[0, 2, 0, 1, b'g']), None);
        assert_eq!(decode_value(&[0, 9]), None);
    }
}
