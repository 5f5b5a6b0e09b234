//! The native driver's producer: messages are gathered per partition until
//! `linger-ms` passes or `batch-bytes` fill up, as a Java producer does,
//! compressed with the workload's codec, and sent as v2 batches in
//! Produce requests pipelined on one connection per leader (up to
//! [`IN_FLIGHT_MAX`] under way each). Keyed messages go to
//! `murmur2(key) % partitions`, the Java client's partitioner.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::batch::builder::{BatchSpec, Record, encode_batch, encode_records};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::wire::{self, Connection, Pool, Versions};
use crate::message::Generator;
use crate::rdkafka_driver::ProducerPlan;
use crate::schedule::{BEHIND_MAX, Schedule};
use crate::tally::ProducerHandle;
use crate::workload::{Acks, Workload};
use engine::batch::codec;

/// Produce requests under way per connection.
pub const IN_FLIGHT_MAX: usize = 32;
/// The Produce versions this client speaks (v3: record batches v2).
const PRODUCE_VERSIONS: std::ops::RangeInclusive<i16> = 3..=9;

/// What a producer thread needs, owned (it runs on its own executor).
#[derive(Debug, Clone)]
struct Plan {
    bootstrap: String,
    topic: String,
    partitions: i32,
    acks: i16,
    compression: engine::batch::Compression,
    linger: Duration,
    batch_bytes: usize,
    schedule: Schedule,
    end: Instant,
    first_partition: i32,
}

/// Runs one producer on its own executor until the plan's end and every
/// answer is in.
pub fn produce(
    plan: &ProducerPlan<'_>,
    tally: ProducerHandle,
    generator: Generator,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !plan.workload.idempotence,
        "idempotence: the native producer does not send producer ids yet (use --driver librdkafka)"
    );
    anyhow::ensure!(
        plan.workload.transaction_messages.is_none(),
        "transaction-messages: the native producer has no transactions (use --driver librdkafka)"
    );
    anyhow::ensure!(
        plan.workload.max_in_flight.is_none(),
        "max-in-flight: a librdkafka setting (the native producer keeps up to 32 per leader)"
    );
    let owned = Plan {
        bootstrap: plan.bootstrap.to_string(),
        topic: plan.topic.to_string(),
        partitions: plan.partitions,
        acks: match plan.workload.acks {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        },
        compression: codec_of(plan.workload),
        linger: Duration::from_millis(u64::from(plan.workload.linger_ms)),
        batch_bytes: plan.workload.batch_bytes as usize,
        schedule: plan.schedule,
        end: plan.end,
        first_partition: plan.first_partition,
    };
    wire::run("bench-producer", move || run(owned, tally, generator))
}

fn codec_of(workload: &Workload) -> engine::batch::Compression {
    use crate::workload::Compression as C;
    use engine::batch::Compression;
    match workload.compression {
        C::None => Compression::None,
        C::Gzip => Compression::Gzip,
        C::Snappy => Compression::Snappy,
        C::Lz4 => Compression::Lz4,
        C::Zstd => Compression::Zstd,
    }
}

/// A message waiting for its batch to go.
struct Pending {
    sequence: u64,
    due_ns: u64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// Messages of one partition gathered into the next batch.
#[derive(Default)]
struct Accumulator {
    messages: Vec<Pending>,
    /// The batch's encoded size at most (before compression).
    bytes: usize,
    first_at: Option<Instant>,
    /// The next message would take the batch past `batch_bytes`.
    full: bool,
}

/// A record batch's header (v2).
const BATCH_HEADER_BYTES: usize = 61;
/// What a record adds to its key and value at most: its length, attributes,
/// timestamp and offset deltas, key and value lengths (varints) and header
/// count.
const RECORD_OVERHEAD_BYTES_MAX: usize = 5 + 1 + 10 + 5 + 5 + 5 + 1;

impl Accumulator {
    /// Whether a message of `bytes` (key and value) fits a batch of at most
    /// `batch_bytes` with those gathered; the first always does, as with
    /// librdkafka's `batch.size` (a larger one meets the broker's
    /// `max.message.bytes`).
    fn fits(&self, bytes: usize, batch_bytes: usize) -> bool {
        self.messages.is_empty() || self.bytes + bytes + RECORD_OVERHEAD_BYTES_MAX <= batch_bytes
    }

    /// The gathered messages as records, each `timestamp_delta` after the
    /// batch's timestamp.
    fn records(&self, timestamp_delta: i64) -> Vec<Record<'_>> {
        self.messages
            .iter()
            .map(|m| Record {
                key: m.key.as_deref(),
                value: Some(&m.payload),
                timestamp_delta,
                ..Record::default()
            })
            .collect()
    }

    fn push(&mut self, message: Pending, now: Instant) {
        if self.messages.is_empty() {
            self.bytes = BATCH_HEADER_BYTES;
        }
        self.bytes += message.payload.len()
            + message.key.as_ref().map_or(0, Vec::len)
            + RECORD_OVERHEAD_BYTES_MAX;
        self.first_at.get_or_insert(now);
        self.messages.push(message);
    }
}

/// The messages of one request, by partition: sequence number, due time
/// (ns) and bytes of each, answered together.
type Carried = Vec<(i32, Vec<(u64, u64, usize)>)>;

/// One leader's connection and its bound on requests under way.
struct Leader {
    connection: Rc<Connection>,
    slots: Arc<Semaphore>,
}

/// The Produce version to speak, a connection per leader, and which of
/// them leads each partition.
async fn connect_leaders(plan: &Plan) -> anyhow::Result<(i16, Vec<Leader>, Vec<usize>)> {
    let mut pool = Pool::new(&plan.bootstrap);
    let bootstrap = pool.bootstrap().await?;
    let versions = Versions::of(&bootstrap).await?;
    let version = versions.pick(ApiKey::Produce, PRODUCE_VERSIONS)?;
    let leaders = wire::leaders(&bootstrap, &versions, std::slice::from_ref(&plan.topic)).await?;
    let leaders = leaders.get(&plan.topic).cloned().unwrap_or_default();
    anyhow::ensure!(
        leaders.len() == plan.partitions as usize,
        "{} has {} partitions, the workload {}",
        plan.topic,
        leaders.len(),
        plan.partitions
    );
    let mut addresses: Vec<String> = leaders.clone();
    addresses.sort();
    addresses.dedup();
    let mut connections = Vec::with_capacity(addresses.len());
    for address in &addresses {
        connections.push(Leader {
            connection: pool.get(address).await?,
            slots: Arc::new(Semaphore::new(IN_FLIGHT_MAX)),
        });
    }
    let connection_of: Vec<usize> = leaders
        .iter()
        .map(|l| addresses.iter().position(|a| a == l).unwrap_or(0))
        .collect();
    Ok((version, connections, connection_of))
}

async fn run(plan: Plan, tally: ProducerHandle, mut generator: Generator) -> anyhow::Result<()> {
    let (version, connections, connection_of) = connect_leaders(&plan).await?;
    let clock = tally.clock();
    let mut accumulators: Vec<Accumulator> = (0..plan.partitions)
        .map(|_| Accumulator::default())
        .collect();
    let topic = TopicName(StrBytes::from_string(plan.topic.clone()));
    let mut sequence = 0u64;
    let mut next_partition = plan.first_partition;
    let sender = Sender {
        plan: &plan,
        topic: &topic,
        version,
        connection_of: &connection_of,
        tally: &tally,
    };
    // A message that did not fit its partition's batch: it starts the
    // next one, once that batch went.
    let mut overflow: Option<(usize, Pending)> = None;
    loop {
        // Every message due before the end is sent, however late: dropping
        // the ones a slow broker delayed would hide the delay.
        let now = Instant::now();
        if let Some((partition, message)) = overflow.take()
            && let Some(acc) = accumulators.get_mut(partition)
        {
            acc.push(message, now);
        }
        if plan.schedule.due(sequence).unwrap_or(now) >= plan.end {
            break;
        }
        anyhow::ensure!(
            now < plan.end + BEHIND_MAX,
            "the producer is {BEHIND_MAX:?} behind its schedule"
        );
        // Every message due by now (at most a batch's worth per round).
        let mut gathered = 0;
        while gathered < plan.batch_bytes {
            let due_at = plan.schedule.due(sequence).unwrap_or(now);
            if due_at > now || due_at >= plan.end {
                break;
            }
            let due_ns = clock.ns(due_at);
            let (key, payload) = generator.message(sequence, due_ns);
            let partition = match &key {
                Some(key) => engine::partitioner::partition_for_key(key, plan.partitions),
                None => {
                    let p = next_partition;
                    next_partition = (next_partition + 1) % plan.partitions.max(1);
                    p
                }
            };
            gathered += payload.len();
            let message = Pending {
                sequence,
                due_ns,
                key,
                payload,
            };
            tally.sent();
            sequence += 1;
            let bytes = message.payload.len() + message.key.as_ref().map_or(0, Vec::len);
            if let Some(acc) = accumulators.get_mut(partition as usize) {
                if !acc.fits(bytes, plan.batch_bytes) {
                    acc.full = true;
                    overflow = Some((partition as usize, message));
                    break;
                }
                acc.push(message, now);
            }
        }
        sender
            .send_ready(&mut accumulators, &connections, false)
            .await?;
        // Until the next message is due or a batch's linger ends.
        let next_due = plan.schedule.due(sequence).unwrap_or(now);
        let linger_end = accumulators
            .iter()
            .filter_map(|a| a.first_at)
            .min()
            .map(|first| first + plan.linger);
        let wake = linger_end
            .map_or(next_due, |l| l.min(next_due))
            .min(plan.end);
        let now = Instant::now();
        if wake > now {
            wire::sleep((wake - now).min(Duration::from_millis(5))).await;
        } else {
            wire::yield_if_needed().await;
        }
    }
    sender
        .send_ready(&mut accumulators, &connections, true)
        .await?;
    if let Some((partition, message)) = overflow.take()
        && let Some(acc) = accumulators.get_mut(partition)
    {
        acc.push(message, Instant::now());
        sender
            .send_ready(&mut accumulators, &connections, true)
            .await?;
    }
    answered(&connections).await
}

/// Waits for every answer, or 60 s.
async fn answered(connections: &[Leader]) -> anyhow::Result<()> {
    let idle = |c: &Leader| c.slots.available_permits() == IN_FLIGHT_MAX;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !connections.iter().all(idle) && Instant::now() < deadline {
        wire::sleep(Duration::from_millis(1)).await;
    }
    anyhow::ensure!(
        connections.iter().all(idle),
        "produce requests still unanswered 60 s after the run"
    );
    Ok(())
}

/// Turns gathered messages into Produce requests.
struct Sender<'a> {
    plan: &'a Plan,
    topic: &'a TopicName,
    version: i16,
    connection_of: &'a [usize],
    tally: &'a ProducerHandle,
}

impl Sender<'_> {
    /// Sends every partition whose batch is full or lingered long enough
    /// (`all`: every non-empty one), one request per connection.
    async fn send_ready(
        &self,
        accumulators: &mut [Accumulator],
        connections: &[Leader],
        all: bool,
    ) -> anyhow::Result<()> {
        let now = Instant::now();
        for (index, leader) in connections.iter().enumerate() {
            let mut partitions = Vec::new();
            for (partition, acc) in accumulators.iter_mut().enumerate() {
                let ready = acc.first_at.is_some_and(|first| {
                    all || acc.full
                        || acc.bytes >= self.plan.batch_bytes
                        || now >= first + self.plan.linger
                });
                if ready && self.connection_of.get(partition) == Some(&index) {
                    partitions.push((partition as i32, std::mem::take(acc)));
                }
            }
            if !partitions.is_empty() {
                self.send(leader, partitions).await?;
            }
        }
        Ok(())
    }

    /// One partition's batch, compressed as the workload says.
    fn batch(&self, acc: &Accumulator, timestamp: i64) -> anyhow::Result<Vec<u8>> {
        let records = acc.records(0);
        let mut spec = BatchSpec::new(i32::try_from(records.len())?, timestamp);
        spec.compression = self.plan.compression;
        let records = codec::compress(spec.compression, Some(1), &encode_records(&records))?;
        Ok(encode_batch(&spec, &records))
    }

    async fn send(
        &self,
        leader: &Leader,
        partitions: Vec<(i32, Accumulator)>,
    ) -> anyhow::Result<()> {
        let timestamp = engine::rt::wall_clock_ms();
        let mut data = Vec::with_capacity(partitions.len());
        let mut carried: Carried = Vec::with_capacity(partitions.len());
        for (partition, acc) in partitions {
            let batch = self.batch(&acc, timestamp)?;
            data.push(
                PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch.into())),
            );
            let messages = acc.messages.iter();
            carried.push((
                partition,
                messages
                    .map(|m| (m.sequence, m.due_ns, m.payload.len()))
                    .collect(),
            ));
        }
        let request = ProduceRequest::default()
            .with_acks(self.plan.acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(self.topic.clone())
                    .with_partition_data(data),
            ]);
        if self.plan.acks == 0 {
            // No answer comes: sent is all there is.
            leader
                .connection
                .send_unanswered(ApiKey::Produce, self.version, &request)?;
            acknowledge(self.tally, &carried, &[], true);
            return Ok(());
        }
        // Waits while IN_FLIGHT_MAX requests are under way (backpressure).
        let permit = Arc::clone(&leader.slots).acquire_owned().await?;
        let reply = leader
            .connection
            .send(ApiKey::Produce, self.version, &request)?;
        let (tally, version) = (self.tally.clone(), self.version);
        wire::spawn(async move {
            let _permit: OwnedSemaphorePermit = permit;
            let answer = reply
                .await
                .ok()
                .and_then(|mut body| ProduceResponse::decode(&mut body, version).ok());
            let codes: Vec<(i32, i16)> = answer
                .iter()
                .flat_map(|r| r.responses.iter())
                .flat_map(|t| t.partition_responses.iter())
                .map(|p| (p.index, p.error_code))
                .collect();
            acknowledge(&tally, &carried, &codes, false);
        });
        Ok(())
    }
}

/// Counts a request's messages acknowledged: those of partitions answered
/// with no error, or every one when `all_ok`.
fn acknowledge(tally: &ProducerHandle, carried: &Carried, codes: &[(i32, i16)], all_ok: bool) {
    let now = Instant::now();
    for (partition, messages) in carried {
        let ok = all_ok || codes.contains(&(*partition, 0));
        for &(sequence, due_ns, bytes) in messages {
            tally.acked(sequence, due_ns, bytes, ok, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch gathered while messages fit is no larger, encoded, than
    /// `batch_bytes` (the broker refuses a batch past `max.message.bytes`
    /// with MESSAGE_TOO_LARGE).
    #[test]
    fn gathered_batches_fit_batch_bytes() {
        let now = Instant::now();
        for (value, key, batch_bytes) in [
            (1024, 0, 1 << 20),
            (1000, 24, 1 << 20),
            (100, 8, 16 << 10),
            (1, 0, 4096),
        ] {
            let mut acc = Accumulator::default();
            let mut sequence = 0;
            while acc.fits(value + key, batch_bytes) {
                let message = Pending {
                    sequence,
                    due_ns: u64::MAX,
                    key: (key > 0).then(|| vec![7; key]),
                    payload: vec![9; value],
                };
                acc.push(message, now);
                sequence += 1;
            }
            // The largest delta a batch carries: the longest varint.
            let records = acc.records(i64::from(i32::MAX));
            let spec = BatchSpec::new(i32::try_from(records.len()).unwrap(), 0);
            let encoded = encode_batch(&spec, &encode_records(&records)).len();
            assert!(
                encoded <= batch_bytes,
                "{value}+{key}: {encoded} > {batch_bytes}"
            );
            assert!(acc.messages.len() > 1);
        }
    }
}
