//! Responses that carry record bytes without copying them.
//!
//! A Fetch response is mostly record batches. Copying them into the
//! response frame costs as much as everything else the broker does for a
//! consumer, so the frame is a rope instead: the protocol fields encoded by
//! kafka-protocol into one buffer, cut where a partition's records go, and
//! the records' own buffers between the cuts (the tail cache's, or a disk
//! read's, shared by reference count). The connection writes the pieces
//! with one vectored send.
//!
//! The cut is made inside kafka-protocol's encoder: the records field holds
//! a stand-in of the records' length (a slice of a zeroed region that is
//! never read), and the buffer the encoder writes into recognises the
//! stand-in by its address when the encoder copies it, and splices the
//! real records there instead. Every field, version and tagged field stays
//! kafka-protocol's; an encoding that did not splice every stand-in is an
//! error, never zeros on the wire.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use engine::Chunk;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::buf::ByteBufMut;

use crate::frame::{FrameError, encode_response_into};

/// Cached records at least this long are shared with the cache; shorter
/// ones are copied (one copy of a few hundred bytes is cheaper than another
/// buffer to reference and send).
const SHARE_BYTES_MIN: usize = 2 << 10;

/// The largest records field a stand-in covers: a whole fetch
/// (`FETCH_BYTES_MAX_PER_REQUEST`) and then some. Larger ones (a single
/// batch over 64 MiB) are copied into the frame.
const STAND_IN_BYTES: usize = 64 << 20;

/// Zeroed address space (calloc'ed: fresh pages the process never touches,
/// so no memory and nothing in the binary), never read or written.
static STAND_IN: std::sync::LazyLock<Box<[u8]>> =
    std::sync::LazyLock::new(|| vec![0u8; STAND_IN_BYTES].into_boxed_slice());

/// A partition's record bytes for a response, as buffers in order: cached
/// batches' records and batches read from disk by reference, everything
/// else (rewritten batch headers, small batches) copied together once.
/// `Send`: it is built on the shard that owns the partition and sent to the
/// one that answers.
#[derive(Debug, Clone, Default)]
pub struct RecordSlices {
    parts: Vec<Bytes>,
    len: usize,
}

impl RecordSlices {
    /// The bytes of `chunks` (whole batches, in order).
    pub fn from_chunks(chunks: &[Chunk]) -> RecordSlices {
        /// What of a batch is shared rather than copied: a cached batch's
        /// records (its header was rewritten apart from them), or the whole
        /// of a batch read from disk.
        fn shared(chunk: &Chunk) -> Option<Bytes> {
            match chunk {
                Chunk::Cached(batch) if batch.records.len() >= SHARE_BYTES_MIN => {
                    Some(batch.records.clone())
                }
                Chunk::Stored(buf) if buf.len() >= SHARE_BYTES_MIN => Some(buf.to_bytes()),
                _ => None,
            }
        }
        let len: usize = chunks.iter().map(Chunk::len).sum();
        let shares: Vec<Option<Bytes>> = chunks.iter().map(shared).collect();
        let copied: usize = chunks
            .iter()
            .zip(&shares)
            .map(|(c, s)| c.len() - s.as_ref().map_or(0, Bytes::len))
            .sum();
        let mut parts = Vec::new();
        let mut pending = BytesMut::with_capacity(copied);
        for (chunk, share) in chunks.iter().zip(shares) {
            match share {
                Some(bytes) => {
                    // A cached batch's header is copied; its records, or a
                    // stored batch whole, are shared.
                    if let Chunk::Cached(_) = chunk {
                        let [header, _] = chunk.slices();
                        pending.extend_from_slice(header);
                    }
                    if !pending.is_empty() {
                        parts.push(pending.split().freeze());
                    }
                    parts.push(bytes);
                }
                None => {
                    for slice in chunk.slices() {
                        pending.extend_from_slice(slice);
                    }
                }
            }
        }
        if !pending.is_empty() {
            parts.push(pending.freeze());
        }
        RecordSlices { parts, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffers, in order.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The bytes in one buffer (copied unless there is only one part).
    pub fn concat(&self) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [only] => only.clone(),
            parts => {
                let mut out = BytesMut::with_capacity(self.len);
                for part in parts {
                    out.extend_from_slice(part);
                }
                out.freeze()
            }
        }
    }
}

impl From<Bytes> for RecordSlices {
    fn from(bytes: Bytes) -> RecordSlices {
        let len = bytes.len();
        let parts = if bytes.is_empty() {
            vec![]
        } else {
            vec![bytes]
        };
        RecordSlices { parts, len }
    }
}

/// The records of one response, spliced into its frame by [`Splicer::encode`].
#[derive(Debug, Default)]
pub struct Splicer {
    records: Vec<RecordSlices>,
}

impl Splicer {
    /// The value to put in a response's records field for `records`: a
    /// stand-in that `encode` replaces with them. Fields must be taken in
    /// the order the encoder writes them (the response's order).
    pub fn field(&mut self, records: RecordSlices) -> Bytes {
        let stand_in: &'static [u8] = &STAND_IN;
        match stand_in.get(..records.len()) {
            Some(stand_in) if !records.is_empty() => {
                self.records.push(records);
                Bytes::from_static(stand_in)
            }
            _ => records.concat(),
        }
    }

    /// Encodes a whole response frame (size prefix, header, body) as
    /// buffers to send in order, with every field taken from this splicer
    /// replaced by its records.
    pub fn encode<R: Encodable + crate::handlers::error_codes::ErrorCodes>(
        self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &R,
    ) -> Result<Vec<Bytes>, FrameError> {
        // Records long enough to be referenced take no room in the head.
        let referenced: usize = self
            .records
            .iter()
            .map(RecordSlices::len)
            .filter(|&len| len >= SHARE_BYTES_MIN)
            .sum();
        let records = self.records;
        let rope = |frame_len: usize| Rope {
            head: BytesMut::with_capacity(frame_len.saturating_sub(referenced)),
            head_offset: 0,
            parts: Vec::with_capacity(2 * records.len() + 1),
            records: records.into_iter(),
            broken: false,
        };
        let finish = |mut out: Rope| {
            anyhow::ensure!(!out.broken, "a stand-in did not match its records");
            anyhow::ensure!(
                out.records.next().is_none(),
                "records left over: a stand-in was not spliced"
            );
            Ok(out.finish())
        };
        encode_response_into(api_key, version, correlation_id, body, rope, finish)
    }
}

/// The buffer kafka-protocol encodes into: `head` collects the encoded
/// fields; a stand-in's copy cuts it and puts the records between.
struct Rope {
    head: BytesMut,
    /// The frame offset `head` starts at.
    head_offset: usize,
    parts: Vec<Bytes>,
    records: std::vec::IntoIter<RecordSlices>,
    broken: bool,
}

impl Rope {
    fn splice(&mut self, stand_in_len: usize) {
        let Some(records) = self.records.next() else {
            self.broken = true;
            return;
        };
        if records.len() != stand_in_len {
            self.broken = true;
            return;
        }
        if records.len() < SHARE_BYTES_MIN {
            // Cheaper copied than sent as buffers of their own.
            for part in records.parts() {
                self.head.extend_from_slice(part);
            }
            return;
        }
        self.head_offset += self.head.len() + records.len();
        if !self.head.is_empty() {
            self.parts.push(self.head.split().freeze());
        }
        self.parts.extend(records.parts);
    }

    fn finish(mut self) -> Vec<Bytes> {
        if !self.head.is_empty() {
            self.parts.push(self.head.freeze());
        }
        self.parts
    }
}

// SAFETY: every method forwards to `head`, a BytesMut, whose own
// implementation upholds the trait's contract; `put_slice` either forwards
// too or writes nothing into the buffer (it records a splice).
unsafe impl BufMut for Rope {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's guarantee (cnt bytes of chunk_mut, which is
        // head's, were initialised) is the one head's advance_mut needs.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if !src.is_empty() && std::ptr::eq(src.as_ptr(), STAND_IN.as_ptr()) {
            self.splice(src.len());
        } else {
            self.head.put_slice(src);
        }
    }
}

impl ByteBufMut for Rope {
    fn offset(&self) -> usize {
        self.head_offset + self.head.len()
    }

    fn seek(&mut self, offset: usize) {
        match offset.checked_sub(self.head_offset) {
            Some(in_head) => self.head.resize(in_head, 0),
            None => self.broken = true,
        }
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let in_head = r.start.checked_sub(self.head_offset).and_then(|start| {
            let end = r.end.checked_sub(self.head_offset)?;
            Some(start..end)
        });
        match in_head {
            Some(range) if range.end <= self.head.len() => match self.head.get_mut(range) {
                Some(slice) => slice,
                None => &mut [],
            },
            _ => {
                // Only message encoders that back-patch use ranges, and
                // never across a splice; if one did, the frame is refused.
                self.broken = true;
                &mut []
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
    };
    use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::frame::encode_response;
    use crate::protocol::schema::generate::Rng;

    /// Records cut into random buffers, some short, some long.
    fn random_records(rng: &mut Rng) -> RecordSlices {
        let mut parts = Vec::new();
        for _ in 0..rng.below(5) {
            let len = match rng.below(3) {
                0 => rng.below(64) as usize,
                1 => rng.below(4096) as usize,
                _ => 4096 + rng.below(40_000) as usize,
            };
            let seed = rng.next_u64() as u8;
            let part: Vec<u8> = (0..len).map(|i| seed.wrapping_add(i as u8)).collect();
            parts.push(Bytes::from(part));
        }
        let parts: Vec<Bytes> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let len = parts.iter().map(Bytes::len).sum();
        RecordSlices { parts, len }
    }

    fn random_partition(
        rng: &mut Rng,
        version: i16,
        index: i32,
        records: Option<Bytes>,
    ) -> PartitionData {
        let aborted = (rng.below(3) == 0).then(|| {
            (0..rng.below(3))
                .map(|i| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(i as i64 + 7))
                        .with_first_offset(rng.below(1000) as i64)
                })
                .collect()
        });
        let leader = if version >= 12 {
            LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(rng.below(3) as i32))
                .with_leader_epoch(rng.below(9) as i32)
        } else {
            LeaderIdAndEpoch::default()
        };
        PartitionData::default()
            .with_partition_index(index)
            .with_error_code(rng.below(2) as i16)
            .with_high_watermark(rng.below(1 << 40) as i64)
            .with_last_stable_offset(rng.below(1 << 40) as i64)
            .with_log_start_offset(rng.below(1000) as i64)
            .with_aborted_transactions(aborted)
            .with_preferred_read_replica(BrokerId(-1))
            .with_current_leader(leader)
            .with_records(records)
    }

    /// The same response encoded twice, with each partition's records as
    /// one copied buffer (kafka-protocol alone) and spliced: at every
    /// served version, the bytes on the wire are the same.
    #[test]
    fn spliced_frames_equal_kafka_protocols_encoding_at_every_version() {
        let seed = std::env::var("SHARDLOG_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_f7c4_u64);
        eprintln!("seed {seed} (replay with SHARDLOG_TEST_SEED={seed})");
        let mut rng = Rng::new(seed);
        for round in 0..200 {
            let version = 4 + (round % 15) as i16;
            let mut splicer = Splicer::default();
            let mut plain_topics = Vec::new();
            let mut spliced_topics = Vec::new();
            for t in 0..rng.below(4) {
                let mut plain = Vec::new();
                let mut spliced = Vec::new();
                for p in 0..rng.below(5) as i32 {
                    let fields_seed = rng.next_u64();
                    let (plain_records, spliced_records) = match rng.below(4) {
                        0 => (None, None),
                        _ => {
                            let records = random_records(&mut rng);
                            let whole = records.concat();
                            (Some(whole), Some(splicer.field(records)))
                        }
                    };
                    let partition =
                        |records| random_partition(&mut Rng::new(fields_seed), version, p, records);
                    plain.push(partition(plain_records));
                    spliced.push(partition(spliced_records));
                }
                // v13+ names topics by id (KIP-516).
                let topic = |partitions| {
                    let response = FetchableTopicResponse::default().with_partitions(partitions);
                    if version >= 13 {
                        response.with_topic_id(uuid::Uuid::from_u64_pair(t, 9))
                    } else {
                        response.with_topic(TopicName(StrBytes::from_string(format!("topic-{t}"))))
                    }
                };
                plain_topics.push(topic(plain));
                spliced_topics.push(topic(spliced));
            }
            let response = |topics| {
                FetchResponse::default()
                    .with_throttle_time_ms(3)
                    .with_session_id(0)
                    .with_responses(topics)
            };
            let expected =
                encode_response(ApiKey::Fetch, version, 41, &response(plain_topics)).unwrap();
            let parts = splicer
                .encode(ApiKey::Fetch, version, 41, &response(spliced_topics))
                .unwrap();
            let joined: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
            assert_eq!(
                joined,
                expected.to_vec(),
                "round {round}, version {version}"
            );
        }
    }

    /// Records longer than a copy are sent from their own buffers: the
    /// frame references them instead of copying.
    #[test]
    fn long_records_are_referenced_not_copied() {
        let long = Bytes::from(vec![7u8; 100_000]);
        let mut splicer = Splicer::default();
        let field = splicer.field(RecordSlices::from(long.clone()));
        let response = FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![PartitionData::default().with_records(Some(field))]),
        ]);
        let parts = splicer.encode(ApiKey::Fetch, 11, 1, &response).unwrap();
        assert!(
            parts.iter().any(|p| p.as_ptr() == long.as_ptr()),
            "the records' own buffer is among the frame's"
        );
    }

    /// A batch read from disk goes to the frame as the read's own buffer,
    /// not a copy, and that buffer is `Send`: the shard that answers the
    /// Fetch need not be the one that read it.
    #[test]
    fn batches_read_from_disk_are_referenced_not_copied() {
        use engine::batch::builder::{BatchSpec, Record, encode_batch, encode_records};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let value = vec![5u8; 10_000];
        let (slices, stored) = engine::rt::run_on_executor("rope-test", None, move || async move {
            let config = engine::LogConfig {
                tail_cache_bytes: 0,
                ..engine::LogConfig::default()
            };
            let log = engine::Log::open(&path, config, 0).await.unwrap();
            let record = Record {
                key: None,
                value: Some(&value),
                headers: &[],
                timestamp_delta: 0,
            };
            let batch = encode_batch(&BatchSpec::new(1, 0), &encode_records(&[record]));
            log.append(Bytes::from(batch), 0).await.unwrap();
            let read = log.read(engine::Offset(0), 1 << 20).await.unwrap();
            assert!(matches!(read.chunks.as_slice(), [Chunk::Stored(_)]));
            let stored = read.chunks[0].slices()[0].as_ptr() as usize;
            let slices = RecordSlices::from_chunks(&read.chunks);
            log.close().await.unwrap();
            (slices, stored)
        })
        .unwrap();
        // Checked on this thread, after the executor that read it is gone.
        assert_eq!(slices.parts().len(), 1);
        assert_eq!(slices.parts()[0].as_ptr() as usize, stored);
        assert_eq!(slices.len(), slices.parts()[0].len());
        // The record's value, then its header count (0).
        assert!(slices.parts()[0].ends_with(&[5u8, 5, 5, 5, 0]));
    }

    /// A stand-in the encoder never reached (a field taken but left out of
    /// the response) fails the encoding rather than sending zeros.
    #[test]
    fn a_stand_in_left_out_fails_the_encoding() {
        let mut splicer = Splicer::default();
        let _unused = splicer.field(RecordSlices::from(Bytes::from(vec![1u8; 10_000])));
        let response = FetchResponse::default();
        assert!(splicer.encode(ApiKey::Fetch, 12, 1, &response).is_err());
    }
}
