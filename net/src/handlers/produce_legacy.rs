//! Produce v0-2: advertised, answered, never stored.
//!
//! These versions carry message sets of magic 0 and 1, which shardlog does
//! not store (Kafka 4.0 dropped them too, KIP-896). They are still listed in
//! ApiVersions because librdkafka before 2.10 decides whether the broker
//! supports compression by looking for Produce v0 in that list and otherwise
//! silently sends uncompressed batches (KAFKA-18659; Kafka 4.0 advertises
//! v0 for the same reason). A v0-2 request is decoded far enough to answer
//! every partition with UNSUPPORTED_VERSION, so an old client gets an error
//! it can report rather than a dropped connection. The request layout is
//! small and frozen, so it is read by hand (kafka-protocol knows v3+ only).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use super::errors::UNSUPPORTED_VERSION;
use crate::frame::{FrameError, Request, SIZE_PREFIX_BYTES};

/// The last Produce version with a legacy (magic 0/1) message set.
pub const LAST_LEGACY_VERSION: i16 = 2;

/// `Ok(None)`: acks=0, nothing to send back.
pub fn handle(request: &Request) -> Result<Option<Bytes>, FrameError> {
    let version = request.version();
    let bad = |what: &str| FrameError::BadBody {
        api_key: ApiKey::Produce,
        version,
        source: anyhow::anyhow!("{what}"),
    };
    let legacy = decode(request.body.clone()).map_err(bad)?;
    tracing::warn!(
        version,
        client = ?request.header.client_id,
        "Produce v{version} (message format v0/v1) is not served; every partition gets UNSUPPORTED_VERSION"
    );
    if legacy.acks == 0 {
        return Ok(None);
    }
    Ok(Some(encode_response(
        version,
        request.correlation_id(),
        &legacy.topics,
    )))
}

#[derive(Debug, PartialEq)]
struct LegacyProduce {
    acks: i16,
    /// Topic names (raw bytes as sent) and their partition indexes.
    topics: Vec<(Bytes, Vec<i32>)>,
}

fn decode(mut body: Bytes) -> Result<LegacyProduce, &'static str> {
    let acks = i16::from_be_bytes(take::<2>(&mut body)?);
    let _timeout_ms = i32::from_be_bytes(take::<4>(&mut body)?);
    let topic_count = count(&mut body, 2 + 4)?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name_len = usize::try_from(i16::from_be_bytes(take::<2>(&mut body)?))
            .map_err(|_| "null topic name")?;
        if body.remaining() < name_len {
            return Err("topic name past the end");
        }
        let name = body.split_to(name_len);
        let partition_count = count(&mut body, 4 + 4)?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            partitions.push(i32::from_be_bytes(take::<4>(&mut body)?));
            let set_len = i32::from_be_bytes(take::<4>(&mut body)?);
            let set_len = usize::try_from(set_len).unwrap_or(0);
            if body.remaining() < set_len {
                return Err("message set past the end");
            }
            body.advance(set_len);
        }
        topics.push((name, partitions));
    }
    if body.has_remaining() {
        return Err("bytes after the request body");
    }
    Ok(LegacyProduce { acks, topics })
}

fn take<const N: usize>(body: &mut Bytes) -> Result<[u8; N], &'static str> {
    let mut out = [0u8; N];
    if body.remaining() < N {
        return Err("request body ends early");
    }
    body.copy_to_slice(&mut out);
    Ok(out)
}

/// An array length, checked against the bytes left (each element takes at
/// least `element_bytes`), so a lying count cannot make us allocate.
fn count(body: &mut Bytes, element_bytes: usize) -> Result<usize, &'static str> {
    let n = i32::from_be_bytes(take::<4>(body)?);
    let n = usize::try_from(n).unwrap_or(0);
    if n.saturating_mul(element_bytes) > body.remaining() {
        return Err("array count larger than the request");
    }
    Ok(n)
}

/// Produce response v0-2: per partition the error, base offset -1; v1 adds
/// throttle_time_ms after the topics, v2 log_append_time per partition.
fn encode_response(version: i16, correlation_id: i32, topics: &[(Bytes, Vec<i32>)]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i32(0); // size, patched below
    out.put_i32(correlation_id);
    out.put_i32(len_i32(topics.len()));
    for (name, partitions) in topics {
        out.put_i16(i16::try_from(name.len()).unwrap_or(i16::MAX));
        out.put_slice(name);
        out.put_i32(len_i32(partitions.len()));
        for &partition in partitions {
            out.put_i32(partition);
            out.put_i16(UNSUPPORTED_VERSION);
            out.put_i64(-1); // base offset
            if version >= 2 {
                out.put_i64(-1); // log append time
            }
        }
    }
    if version >= 1 {
        out.put_i32(0); // throttle_time_ms
    }
    let size = len_i32(out.len() - SIZE_PREFIX_BYTES);
    if let Some(prefix) = out.get_mut(..SIZE_PREFIX_BYTES) {
        prefix.copy_from_slice(&size.to_be_bytes());
    }
    out.freeze()
}

/// Lengths here come from a frame under socket.request.max.bytes.
fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A topic name and its (partition, message set) pairs.
    type TopicData<'a> = (&'a str, &'a [(i32, &'a [u8])]);

    fn request_body(acks: i16, topics: &[TopicData<'_>]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(acks);
        b.put_i32(1500);
        b.put_i32(topics.len() as i32);
        for (name, partitions) in topics {
            b.put_i16(name.len() as i16);
            b.put_slice(name.as_bytes());
            b.put_i32(partitions.len() as i32);
            for (index, set) in *partitions {
                b.put_i32(*index);
                b.put_i32(set.len() as i32);
                b.put_slice(set);
            }
        }
        b.freeze()
    }

    #[test]
    fn decodes_topics_and_partitions() {
        let body = request_body(-1, &[("a", &[(0, b"xyz"), (3, b"")]), ("bb", &[(1, b"q")])]);
        assert_eq!(
            decode(body).unwrap(),
            LegacyProduce {
                acks: -1,
                topics: vec![
                    (Bytes::from_static(b"a"), vec![0, 3]),
                    (Bytes::from_static(b"bb"), vec![1]),
                ],
            }
        );
    }

    #[test]
    fn truncated_or_lying_bodies_are_refused() {
        let body = request_body(1, &[("topic", &[(0, b"message-set")])]);
        for cut in 0..body.len() {
            assert!(decode(body.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut lying = BytesMut::from(&body[..]);
        lying[6..10].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            decode(lying.freeze()),
            Err("array count larger than the request")
        );
    }

    #[test]
    fn response_layout_per_version() {
        let topics = vec![(Bytes::from_static(b"t"), vec![4])];
        // size, correlation id, 1 topic, name, 1 partition, index, error, offset
        let v0 = encode_response(0, 9, &topics);
        assert_eq!(v0.len(), 4 + 4 + 4 + 2 + 1 + 4 + 4 + 2 + 8);
        assert_eq!(&v0[..4], &(v0.len() as i32 - 4).to_be_bytes());
        assert_eq!(&v0[4..8], &9i32.to_be_bytes());
        assert_eq!(&v0[23..25], &UNSUPPORTED_VERSION.to_be_bytes());
        assert_eq!(encode_response(1, 9, &topics).len(), v0.len() + 4);
        assert_eq!(encode_response(2, 9, &topics).len(), v0.len() + 4 + 8);
    }
}
