//! The native driver's producer: our own pipelined Kafka client on the
//! broker's runtime (glommio, one executor thread per producer), so that on
//! a small machine the load generator costs less than librdkafka's threads.
//!
//! It negotiates versions (ApiVersions), finds each partition's leader
//! (Metadata), keeps one connection per leader, and pipelines Produce
//! requests (up to [`IN_FLIGHT_MAX`] per connection) of uncompressed v2
//! batches: messages are gathered per partition until `linger-ms` passes
//! or `batch-bytes` fill up, as a Java producer does. Keyed messages go to
//! `murmur2(key) % partitions`, the Java client's partitioner. Consumers
//! stay librdkafka clients.
//!
//! glommio is used here only: a port to another runtime replaces this file's
//! connection code.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use engine::batch::builder::{BatchSpec, Record, encode_batch, encode_records};
use futures::StreamExt;
use futures::channel::mpsc;
use futures::io::{AsyncReadExt, AsyncWriteExt, ReadHalf};
use glommio::net::TcpStream;
use glommio::sync::{Semaphore, StaticPermit};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::message::Generator;
use crate::rdkafka_driver::ProducerPlan;
use crate::schedule::Schedule;
use crate::tally::ProducerHandle;
use crate::workload::{Acks, Compression, Workload};

/// Produce requests under way per connection.
pub const IN_FLIGHT_MAX: u64 = 32;
const CLIENT_ID: &str = "shardlog-bench-native";
/// The highest versions this client speaks.
const PRODUCE_VERSION_MAX: i16 = 9;
const METADATA_VERSION_MAX: i16 = 9;

/// Kafka's murmur2 (the Java client's `Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len() as u32;
    let mut h = SEED ^ length;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client's default partitioner picks for a key.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Checks the workload is one this driver can send.
pub fn check(workload: &Workload) -> anyhow::Result<()> {
    anyhow::ensure!(
        workload.compression == Compression::None,
        "the native driver sends uncompressed batches; use --driver librdkafka for compression \
         {:?}",
        workload.compression.as_config()
    );
    Ok(())
}

/// What a producer thread needs, owned (it runs on its own executor).
#[derive(Debug, Clone)]
struct Plan {
    bootstrap: String,
    topic: String,
    partitions: i32,
    acks: i16,
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
    let owned = Plan {
        bootstrap: plan.bootstrap.to_string(),
        topic: plan.topic.to_string(),
        partitions: plan.partitions,
        acks: match plan.workload.acks {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        },
        linger: Duration::from_millis(u64::from(plan.workload.linger_ms)),
        batch_bytes: plan.workload.batch_bytes as usize,
        schedule: plan.schedule,
        end: plan.end,
        first_partition: plan.first_partition,
    };
    engine::rt::run_on_executor("bench-producer", None, move || run(owned, tally, generator))?
}

/// A request's framing: size, header, body.
fn frame<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation: i32,
    body: &R,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)))
        .encode(&mut buf, api.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    let size = i32::try_from(buf.len() - 4)?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Reads one response frame: its correlation id and body bytes.
async fn read_response(
    reader: &mut ReadHalf<TcpStream>,
    header_version: impl Fn(i32) -> i16,
) -> anyhow::Result<(i32, Bytes)> {
    let mut size = [0u8; 4];
    reader.read_exact(&mut size).await?;
    let size = usize::try_from(i32::from_be_bytes(size))?;
    anyhow::ensure!(size <= 256 << 20, "response of {size} bytes");
    let mut body = vec![0u8; size];
    reader.read_exact(&mut body).await?;
    let mut body = Bytes::from(body);
    anyhow::ensure!(body.len() >= 4, "short response");
    let correlation = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    ResponseHeader::decode(&mut body, header_version(correlation))?;
    Ok((correlation, body))
}

/// One request, one response, on a connection of its own.
/// Connects with the error as `std::io::Error` (glommio's is not `Sync`).
async fn connect(address: &str) -> anyhow::Result<TcpStream> {
    TcpStream::connect(address)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to {address}: {e}"))
}

async fn call<Req: Encodable, Resp: Decodable>(
    address: &str,
    api: ApiKey,
    version: i16,
    request: &Req,
) -> anyhow::Result<Resp> {
    let stream = connect(address).await?;
    let (mut reader, mut writer) = stream.split();
    writer.write_all(&frame(api, version, 1, request)?).await?;
    let (_, mut body) =
        read_response(&mut reader, |_| api.response_header_version(version)).await?;
    Resp::decode(&mut body, version)
}

/// Versions both sides speak, and where each partition's leader is.
async fn discover(plan: &Plan) -> anyhow::Result<(i16, Vec<String>)> {
    let versions: ApiVersionsResponse = call(
        &plan.bootstrap,
        ApiKey::ApiVersions,
        0,
        &ApiVersionsRequest::default(),
    )
    .await?;
    let max = |api: ApiKey| {
        versions
            .api_keys
            .iter()
            .find(|k| k.api_key == api as i16)
            .map(|k| k.max_version)
    };
    let produce = max(ApiKey::Produce)
        .map(|v| v.min(PRODUCE_VERSION_MAX))
        .filter(|&v| v >= 3)
        .ok_or_else(|| anyhow::anyhow!("the broker serves no Produce v3+"))?;
    let metadata = max(ApiKey::Metadata)
        .map(|v| v.min(METADATA_VERSION_MAX))
        .filter(|&v| v >= 1)
        .ok_or_else(|| anyhow::anyhow!("the broker serves no Metadata v1+"))?;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(plan.topic.clone())),
        ))]));
    let answer: MetadataResponse =
        call(&plan.bootstrap, ApiKey::Metadata, metadata, &request).await?;
    let topic = answer
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == plan.topic))
        .ok_or_else(|| anyhow::anyhow!("no metadata for topic {}", plan.topic))?;
    anyhow::ensure!(
        topic.error_code == 0,
        "metadata of {}: error {}",
        plan.topic,
        topic.error_code
    );
    let mut leaders = vec![String::new(); plan.partitions.max(0) as usize];
    for partition in &topic.partitions {
        let broker = answer
            .brokers
            .iter()
            .find(|b| b.node_id == partition.leader_id)
            .ok_or_else(|| {
                anyhow::anyhow!("partition {} has no leader", partition.partition_index)
            })?;
        if let Some(slot) = leaders.get_mut(partition.partition_index as usize) {
            *slot = format!("{}:{}", broker.host.as_str(), broker.port);
        }
    }
    anyhow::ensure!(
        leaders.iter().all(|l| !l.is_empty()),
        "metadata of {} lacks partitions",
        plan.topic
    );
    Ok((produce, leaders))
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
    bytes: usize,
    first_at: Option<Instant>,
}

/// A message on the wire: sequence number, due time (ns), bytes.
type Carried = (u64, u64, usize);

/// A request on the wire: what each of its partitions carried.
struct InFlight {
    partitions: Vec<(i32, Vec<Carried>)>,
    _permit: StaticPermit,
}

/// One pipelined connection to a leader.
struct Connection {
    outgoing: mpsc::UnboundedSender<Bytes>,
    in_flight: Rc<RefCell<HashMap<i32, InFlight>>>,
    slots: Rc<Semaphore>,
    next_correlation: i32,
}

impl Connection {
    async fn open(
        address: &str,
        version: i16,
        tally: ProducerHandle,
    ) -> anyhow::Result<Connection> {
        let stream = connect(address).await?;
        stream
            .set_nodelay(true)
            .map_err(|e| anyhow::anyhow!("TCP_NODELAY: {e}"))?;
        let (mut reader, mut writer) = stream.split();
        let (outgoing, mut queue) = mpsc::unbounded::<Bytes>();
        glommio::spawn_local(async move {
            while let Some(frame) = queue.next().await {
                if writer.write_all(&frame).await.is_err() {
                    break;
                }
            }
            let _ = writer.close().await;
        })
        .detach();
        let in_flight: Rc<RefCell<HashMap<i32, InFlight>>> = Rc::default();
        let answers = Rc::clone(&in_flight);
        glommio::spawn_local(async move {
            let header = |_| ApiKey::Produce.response_header_version(version);
            while let Ok((correlation, mut body)) = read_response(&mut reader, header).await {
                let Some(request) = answers.borrow_mut().remove(&correlation) else {
                    continue;
                };
                let now = Instant::now();
                let decoded = ProduceResponse::decode(&mut body, version).ok();
                let codes: HashMap<i32, i16> = decoded
                    .iter()
                    .flat_map(|r| r.responses.iter())
                    .flat_map(|t| t.partition_responses.iter())
                    .map(|p| (p.index, p.error_code))
                    .collect();
                for (partition, messages) in &request.partitions {
                    let ok = codes.get(partition) == Some(&0);
                    for &(sequence, due_ns, bytes) in messages {
                        tally.acked(sequence, due_ns, bytes, ok, now);
                    }
                }
            }
            // The connection is gone: whatever is under way failed.
            let lost: Vec<InFlight> = answers.borrow_mut().drain().map(|(_, r)| r).collect();
            let now = Instant::now();
            for request in lost {
                for (_, messages) in &request.partitions {
                    for &(sequence, due_ns, bytes) in messages {
                        tally.acked(sequence, due_ns, bytes, false, now);
                    }
                }
            }
        })
        .detach();
        Ok(Connection {
            outgoing,
            in_flight,
            slots: Rc::new(Semaphore::new(IN_FLIGHT_MAX)),
            next_correlation: 0,
        })
    }

    fn idle(&self) -> bool {
        self.in_flight.borrow().is_empty()
    }
}

async fn run(plan: Plan, tally: ProducerHandle, mut generator: Generator) -> anyhow::Result<()> {
    let (version, leaders) = discover(&plan).await?;
    let mut addresses: Vec<String> = leaders.clone();
    addresses.sort();
    addresses.dedup();
    let mut connections = Vec::with_capacity(addresses.len());
    for address in &addresses {
        connections.push(Connection::open(address, version, tally.clone()).await?);
    }
    let connection_of: Vec<usize> = leaders
        .iter()
        .map(|l| addresses.iter().position(|a| a == l).unwrap_or(0))
        .collect();
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
    loop {
        let now = Instant::now();
        if now >= plan.end {
            break;
        }
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
                Some(key) => partition_for_key(key, plan.partitions),
                None => {
                    let p = next_partition;
                    next_partition = (next_partition + 1) % plan.partitions.max(1);
                    p
                }
            };
            gathered += payload.len();
            if let Some(acc) = accumulators.get_mut(partition as usize) {
                acc.bytes += payload.len() + key.as_ref().map_or(0, Vec::len);
                acc.first_at.get_or_insert(now);
                acc.messages.push(Pending {
                    sequence,
                    due_ns,
                    key,
                    payload,
                });
            }
            tally.sent();
            sequence += 1;
        }
        sender
            .send_ready(&mut accumulators, &mut connections, false)
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
            glommio::timer::sleep((wake - now).min(Duration::from_millis(5))).await;
        } else {
            glommio::yield_if_needed().await;
        }
    }
    sender
        .send_ready(&mut accumulators, &mut connections, true)
        .await?;
    // Every answer, or 60 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !connections.iter().all(Connection::idle) && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    anyhow::ensure!(
        connections.iter().all(Connection::idle),
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
        connections: &mut [Connection],
        all: bool,
    ) -> anyhow::Result<()> {
        let now = Instant::now();
        for (index, connection) in connections.iter_mut().enumerate() {
            let mut partitions = Vec::new();
            for (partition, acc) in accumulators.iter_mut().enumerate() {
                let ready = acc.first_at.is_some_and(|first| {
                    all || acc.bytes >= self.plan.batch_bytes || now >= first + self.plan.linger
                });
                if ready && self.connection_of.get(partition) == Some(&index) {
                    partitions.push((partition as i32, std::mem::take(acc)));
                }
            }
            if !partitions.is_empty() {
                self.send(connection, partitions).await?;
            }
        }
        Ok(())
    }

    async fn send(
        &self,
        connection: &mut Connection,
        partitions: Vec<(i32, Accumulator)>,
    ) -> anyhow::Result<()> {
        let timestamp = engine::rt::wall_clock_ms();
        let mut data = Vec::with_capacity(partitions.len());
        let mut carried = Vec::with_capacity(partitions.len());
        for (partition, acc) in partitions {
            let records: Vec<Record<'_>> = acc
                .messages
                .iter()
                .map(|m| Record {
                    key: m.key.as_deref(),
                    value: Some(&m.payload),
                    ..Record::default()
                })
                .collect();
            let count = i32::try_from(records.len())?;
            let batch = encode_batch(&BatchSpec::new(count, timestamp), &encode_records(&records));
            data.push(
                PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(Bytes::from(batch))),
            );
            carried.push((
                partition,
                acc.messages
                    .iter()
                    .map(|m| (m.sequence, m.due_ns, m.payload.len()))
                    .collect::<Vec<Carried>>(),
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
        connection.next_correlation = connection.next_correlation.wrapping_add(1);
        let correlation = connection.next_correlation;
        let bytes = frame(ApiKey::Produce, self.version, correlation, &request)?;
        if self.plan.acks == 0 {
            // No answer comes: sent is all there is.
            let now = Instant::now();
            connection.outgoing.unbounded_send(bytes)?;
            for (_, messages) in &carried {
                for &(sequence, due_ns, size) in messages {
                    self.tally.acked(sequence, due_ns, size, true, now);
                }
            }
            return Ok(());
        }
        // Waits while IN_FLIGHT_MAX requests are under way (backpressure).
        let permit = connection
            .slots
            .acquire_static_permit(1)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        connection.in_flight.borrow_mut().insert(
            correlation,
            InFlight {
                partitions: carried,
                _permit: permit,
            },
        );
        connection.outgoing.unbounded_send(bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Java client's `UtilsTest.testMurmur2` vectors.
    #[test]
    fn murmur2_matches_the_java_client() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, hash) in cases {
            assert_eq!(murmur2(data), hash, "{}", String::from_utf8_lossy(data));
        }
        assert!((0..7).contains(&partition_for_key(b"21", 7)));
    }

    #[test]
    fn compressed_workloads_are_refused_with_the_way_out() {
        let workload = Workload {
            compression: Compression::Zstd,
            ..Workload::default()
        };
        let error = check(&workload).unwrap_err().to_string();
        assert!(error.contains("--driver librdkafka"), "{error}");
        check(&Workload::default()).unwrap();
    }
}
