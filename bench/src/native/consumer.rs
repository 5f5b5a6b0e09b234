//! The native driver's consumer: long-polling Fetch requests, one under
//! way per leader and pipelined with the reading of the answer (as soon as
//! a response is in, the next fetch from the new positions goes out, then
//! its records are counted), batches decompressed and walked in place.
//! Partitions either are given (standalone) or come from a consumer group
//! ([`super::group`]); a position no one committed starts at the log start
//! (auto.offset.reset=earliest), as does one the log no longer holds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::batch::records::for_each_record;
use engine::batch::{BatchHeader, HEADER_BYTES, LOG_OVERHEAD};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::wire::{self, Connection, Leaders, Pool, Versions};
use crate::rdkafka_driver::Reading;
use crate::tally::ConsumerHandle;
use engine::batch::codec;

/// How long the broker may hold a fetch with nothing to answer: also how
/// soon a consumer notices it should stop.
const FETCH_WAIT_MS: i32 = 100;
const FETCH_BYTES_MAX: i32 = 50 << 20;
const PARTITION_FETCH_BYTES_MAX: i32 = 4 << 20;
/// A batch's records may not decompress past this.
const BATCH_RECORDS_BYTES_MAX: usize = 64 << 20;
const FETCH_VERSIONS: std::ops::RangeInclusive<i16> = 4..=12;
const LIST_OFFSETS_VERSIONS: std::ops::RangeInclusive<i16> = 1..=7;
const OFFSET_OUT_OF_RANGE: i16 = 1;
/// The pause after an error before asking again.
const ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// ListOffsets' timestamp for the log start offset.
const EARLIEST: i64 = -2;

/// A partition of a topic.
pub type TopicPartition = (String, i32);

/// Reads until the run says stop.
pub fn consume(bootstrap: &str, reading: &Reading, tally: ConsumerHandle) -> anyhow::Result<()> {
    let (bootstrap, reading) = (bootstrap.to_string(), reading.clone());
    wire::run("bench-consumer", move || async move {
        let mut pool = Pool::new(&bootstrap);
        let first = pool.bootstrap().await?;
        let versions = Versions::of(&first).await?;
        let mut fetcher = Fetcher::new(&versions)?;
        match reading {
            Reading::Partitions(partitions) => {
                tally.owns(partitions.len() as u64);
                fetcher.assign(partitions.into_iter().map(|tp| (tp, None)).collect());
                while !tally.stopped() {
                    fetcher.step(&mut pool, &tally).await?;
                }
                Ok(())
            }
            Reading::Group { group, topics } => {
                super::group::consume(&mut pool, &versions, &mut fetcher, &group, &topics, &tally)
                    .await
            }
        }
    })
}

/// A fetch under way: which connection, and its answer.
type Pending = std::pin::Pin<Box<dyn Future<Output = (String, Option<Bytes>)>>>;

/// The positions of a consumer's partitions and its fetches under way.
/// Lives on the consumer's executor.
pub struct Fetcher {
    /// The broker's versions, negotiated once (Metadata on refreshes).
    versions: Versions,
    fetch_version: i16,
    list_offsets_version: i16,
    /// The next offset to read; None until looked up.
    positions: BTreeMap<TopicPartition, Option<i64>>,
    leaders: Leaders,
    pending: FuturesUnordered<Pending>,
    /// Leaders with a fetch under way.
    busy: Vec<String>,
    /// Fetch errors so far (each also counted in the tally).
    errors: u64,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("positions", &self.positions)
            .field("busy", &self.busy)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    pub fn new(versions: &Versions) -> anyhow::Result<Fetcher> {
        Ok(Fetcher {
            versions: versions.clone(),
            fetch_version: versions.pick(ApiKey::Fetch, FETCH_VERSIONS)?,
            list_offsets_version: versions.pick(ApiKey::ListOffsets, LIST_OFFSETS_VERSIONS)?,
            positions: BTreeMap::new(),
            leaders: Leaders::new(),
            pending: FuturesUnordered::new(),
            busy: Vec::new(),
            errors: 0,
        })
    }

    /// Reads these partitions from now on, each from its offset (None: the
    /// log start). Answers of fetches under way are dropped unread.
    pub fn assign(&mut self, partitions: Vec<(TopicPartition, Option<i64>)>) {
        self.pending.clear();
        self.busy.clear();
        self.positions = partitions.into_iter().collect();
    }

    /// Where each partition's reading stands: the offset after the last
    /// record counted (partitions not read yet are left out).
    pub fn positions(&self) -> Vec<(TopicPartition, i64)> {
        self.positions
            .iter()
            .filter_map(|(tp, at)| at.map(|at| (tp.clone(), at)))
            .collect()
    }

    /// Sends a fetch to every leader without one under way, waits for one
    /// answer (at most about FETCH_WAIT_MS once the broker holds it), sends
    /// that leader's next fetch and counts the records.
    pub async fn step(&mut self, pool: &mut Pool, tally: &ConsumerHandle) -> anyhow::Result<()> {
        if self.positions.is_empty() {
            wire::sleep(Duration::from_millis(u64::from(
                FETCH_WAIT_MS.unsigned_abs(),
            )))
            .await;
            return Ok(());
        }
        self.refresh(pool).await?;
        self.reset_unknown(pool, tally).await?;
        for leader in self.idle_leaders() {
            self.send_fetch(pool, &leader).await?;
        }
        let Some((leader, answer)) = self.pending.next().await else {
            // No leader known yet: look again shortly.
            wire::sleep(Duration::from_millis(10)).await;
            return Ok(());
        };
        self.busy.retain(|b| *b != leader);
        let Some(mut body) = answer else {
            tally.error();
            eprintln!("consumer: connection to {leader} lost");
            pool.forget(&leader);
            self.leaders.clear();
            return Ok(());
        };
        let response = FetchResponse::decode(&mut body, self.fetch_version)?;
        let now = Instant::now();
        let errors_before = self.errors;
        let records = self.advance(response, tally);
        if self.errors != errors_before {
            // Not the leader, not there yet: a moment before asking again.
            wire::sleep(ERROR_BACKOFF).await;
        }
        // The next fetch goes out before this one's records are counted.
        if !self.positions.values().any(Option::is_none) && self.idle_leaders().contains(&leader) {
            self.send_fetch(pool, &leader).await?;
        }
        for (records, from) in records {
            count(&records, from, now, tally)?;
        }
        Ok(())
    }

    /// Looks up partition leaders when some are not known.
    async fn refresh(&mut self, pool: &mut Pool) -> anyhow::Result<()> {
        let known = self.positions.keys().all(|(topic, partition)| {
            self.leaders
                .get(topic)
                .and_then(|l| l.get(usize::try_from(*partition).ok()?))
                .is_some()
        });
        if known {
            return Ok(());
        }
        let mut topics: Vec<String> = self.positions.keys().map(|(t, _)| t.clone()).collect();
        topics.dedup();
        let bootstrap = pool.bootstrap().await?;
        self.leaders = wire::leaders(&bootstrap, &self.versions, &topics).await?;
        Ok(())
    }

    fn leader_of(&self, (topic, partition): &TopicPartition) -> Option<&String> {
        self.leaders
            .get(topic)
            .and_then(|l| l.get(usize::try_from(*partition).ok()?))
    }

    fn idle_leaders(&self) -> Vec<String> {
        let mut leaders: Vec<String> = self
            .positions
            .keys()
            .filter_map(|tp| self.leader_of(tp))
            .filter(|l| !self.busy.contains(l))
            .cloned()
            .collect();
        leaders.sort();
        leaders.dedup();
        leaders
    }

    /// Asks each partition without a position for its log start offset.
    async fn reset_unknown(
        &mut self,
        pool: &mut Pool,
        tally: &ConsumerHandle,
    ) -> anyhow::Result<()> {
        let unknown: Vec<TopicPartition> = self
            .positions
            .iter()
            .filter(|(_, at)| at.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in unknown {
            let Some(leader) = self.leader_of(&tp).cloned() else {
                continue;
            };
            let connection = pool.get(&leader).await?;
            match self.log_start(&connection, &tp).await {
                Ok(offset) => {
                    self.positions.insert(tp, Some(offset));
                }
                Err(e) => {
                    tally.error();
                    eprintln!("consumer: log start of {}/{}: {e}", tp.0, tp.1);
                    self.leaders.clear();
                    wire::sleep(ERROR_BACKOFF).await;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    async fn log_start(
        &self,
        connection: &Connection,
        (topic, partition): &TopicPartition,
    ) -> anyhow::Result<i64> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(*partition)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(EARLIEST),
                    ]),
            ]);
        let answer: ListOffsetsResponse = connection
            .call(ApiKey::ListOffsets, self.list_offsets_version, &request)
            .await?;
        let found = answer
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == *partition)
            .ok_or_else(|| anyhow::anyhow!("no answer for the partition"))?;
        anyhow::ensure!(found.error_code == 0, "error {}", found.error_code);
        Ok(found.offset)
    }

    async fn send_fetch(&mut self, pool: &mut Pool, leader: &str) -> anyhow::Result<()> {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (tp, at) in &self.positions {
            let (Some(at), Some(l)) = (at, self.leader_of(tp)) else {
                continue;
            };
            if l != leader {
                continue;
            }
            let partition = FetchPartition::default()
                .with_partition(tp.1)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(*at)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(PARTITION_FETCH_BYTES_MAX);
            match topics.last_mut() {
                Some(last) if last.topic.0.as_str() == tp.0 => last.partitions.push(partition),
                _ => topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(tp.0.clone())))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        if topics.is_empty() {
            return Ok(());
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(FETCH_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_BYTES_MAX)
            .with_session_epoch(-1)
            .with_topics(topics);
        let connection = pool.get(leader).await?;
        let reply = connection.send(ApiKey::Fetch, self.fetch_version, &request)?;
        let leader = leader.to_string();
        self.busy.push(leader.clone());
        self.pending
            .push(Box::pin(async move { (leader, reply.await.ok()) }));
        Ok(())
    }

    /// Moves each answered partition's position past its whole batches;
    /// returns the records to count, each with the offset to count from.
    fn advance(&mut self, response: FetchResponse, tally: &ConsumerHandle) -> Vec<(Bytes, i64)> {
        let mut out = Vec::new();
        if response.error_code != 0 {
            tally.error();
            self.errors += 1;
            return out;
        }
        for topic in response.responses {
            for partition in topic.partitions {
                let tp = (topic.topic.0.to_string(), partition.partition_index);
                let Some(Some(at)) = self.positions.get(&tp).copied() else {
                    continue;
                };
                match partition.error_code {
                    0 => {}
                    OFFSET_OUT_OF_RANGE => {
                        self.positions.insert(tp, None);
                        continue;
                    }
                    _ => {
                        // Not the leader, not there yet: look again.
                        tally.error();
                        self.errors += 1;
                        self.leaders.clear();
                        continue;
                    }
                }
                let Some(records) = partition.records else {
                    continue;
                };
                let next = next_offset(&records, at);
                self.positions.insert(tp, Some(next));
                out.push((records, at));
            }
        }
        out
    }
}

/// The whole batches at the front of a partition's fetched records.
fn whole_batches(records: &[u8]) -> impl Iterator<Item = (BatchHeader, &[u8])> {
    let mut rest = records;
    std::iter::from_fn(move || {
        let header = BatchHeader(*rest.first_chunk::<HEADER_BYTES>()?);
        let size = usize::try_from(header.batch_length())
            .ok()?
            .checked_add(LOG_OVERHEAD)?;
        let (batch, tail) = rest.split_at_checked(size)?;
        rest = tail;
        Some((header, batch.get(HEADER_BYTES..)?))
    })
}

/// The offset after the last whole batch (`at` when there is none).
fn next_offset(records: &[u8], at: i64) -> i64 {
    whole_batches(records)
        .map(|(header, _)| header.last_offset().0 + 1)
        .fold(at, i64::max)
}

/// Counts each record at or past offset `from` (a fetch from inside a
/// batch returns the whole batch); control batches hold no messages.
fn count(records: &[u8], from: i64, now: Instant, tally: &ConsumerHandle) -> anyhow::Result<()> {
    for (header, body) in whole_batches(records) {
        if header.is_control() || header.last_offset().0 < from {
            continue;
        }
        let codec = header
            .compression()
            .ok_or_else(|| anyhow::anyhow!("batch of unknown compression"))?;
        let base = header.base_offset().0;
        let consume = |body: &[u8]| {
            for_each_record(body, |record| {
                if base + i64::from(record.offset_delta) >= from {
                    tally.consumed(record.value.unwrap_or_default(), now);
                }
            })
        };
        if codec == engine::batch::Compression::None {
            consume(body)?;
        } else {
            let raw = codec::decompress(codec, body, BATCH_RECORDS_BYTES_MAX)?;
            consume(&raw)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::message::Header;
    use crate::tally::{Clock, Run};
    use engine::batch::Compression;
    use engine::batch::builder::{BatchSpec, Record, encode_batch, encode_records};

    fn compressed(codec: Compression, base: i64, values: &[Vec<u8>]) -> Vec<u8> {
        let records: Vec<Record<'_>> = values
            .iter()
            .map(|v| Record {
                value: Some(v),
                ..Record::default()
            })
            .collect();
        let mut spec = BatchSpec::new(values.len() as i32, 0);
        spec.base_offset = base;
        spec.compression = codec;
        let body = codec::compress(codec, Some(1), &encode_records(&records)).unwrap();
        encode_batch(&spec, &body)
    }

    fn batch(base: i64, values: &[&[u8]]) -> Vec<u8> {
        let values: Vec<Vec<u8>> = values.iter().map(|v| v.to_vec()).collect();
        compressed(Compression::None, base, &values)
    }

    /// Messages of producer 0 with these sequence numbers.
    fn messages(sequences: std::ops::Range<u64>) -> Vec<Vec<u8>> {
        sequences
            .map(|sequence| {
                let mut payload = vec![7; 64];
                Header {
                    producer: 0,
                    sequence,
                    due_ns: 0,
                }
                .write(&mut payload);
                payload
            })
            .collect()
    }

    #[test]
    fn records_are_counted_from_the_position_in_every_codec_control_batches_skipped() {
        let start = Instant::now();
        let run = Arc::new(Run::new(0, 1));
        run.begin(Clock::new(start, Duration::ZERO, Duration::from_secs(1)));
        let tally = run.consumer(0);
        let mut records = compressed(Compression::Zstd, 0, &messages(0..4));
        let mut control = compressed(Compression::None, 4, &messages(100..101));
        control[22] |= 0x20; // attributes: control batch
        records.extend(control);
        records.extend(compressed(Compression::Snappy, 5, &messages(4..8)));
        records.extend(compressed(Compression::Lz4, 9, &messages(8..10)));
        records.extend(compressed(Compression::Gzip, 11, &messages(10..12)));
        // A fetch from offset 2 lands inside the first batch.
        count(&records, 2, start, &tally).unwrap();
        let consumed = &run.consumer_tallies()[0];
        assert_eq!((consumed.messages, consumed.duplicates), (10, 0));
        assert_eq!(consumed.seen[&0].len(), 10);
        assert_eq!(next_offset(&records, 2), 13);
    }

    #[test]
    fn a_damaged_compressed_batch_is_an_error() {
        let run = Arc::new(Run::new(0, 1));
        // gzip's CRC-32 finds any damage.
        let mut records = compressed(Compression::Gzip, 0, &messages(0..4));
        let middle = HEADER_BYTES + (records.len() - HEADER_BYTES) / 2;
        records[middle] ^= 0x55;
        assert!(count(&records, 0, Instant::now(), &run.consumer(0)).is_err());
    }

    #[test]
    fn positions_move_past_whole_batches_only() {
        let mut records = batch(10, &[b"a", b"b", b"c"]);
        records.extend(batch(13, &[b"d"]));
        assert_eq!(next_offset(&records, 10), 14);
        let whole = records.len();
        records.extend(&batch(14, &[b"e", b"f"])[..20]);
        assert_eq!(next_offset(&records, 10), 14, "a cut batch is not read");
        assert_eq!(whole_batches(&records).count(), 2);
        assert_eq!(next_offset(&records[..whole - 1], 10), 13);
        assert_eq!(next_offset(&[], 7), 7);
    }
}
