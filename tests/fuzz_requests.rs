//! Generated requests against a running broker (issue 18): every API key
//! and version Kafka defines, with random bodies; for every request the
//! broker decodes, bodies generated from its table at every version, then
//! each with every count and length rewritten to extreme values (-1, 0,
//! i32::MAX, just past the frame's end, ...) and cut at every field
//! boundary; request headers with hostile client ids and tagged fields.
//! Each frame is followed by an ApiVersions probe on the same connection:
//! the frame is answered, or its connection is closed, or (a long poll, a
//! held join) it is still waiting when the probe gives up.
//!
//! Afterwards the broker must still be the same process, every shard must
//! answer, a topic written before the fuzzing must read back byte for byte,
//! and librdkafka must produce and consume. `SHARDLOG_FUZZ_SEED` and
//! `SHARDLOG_FUZZ_SCALE` (frames per API version, default 1) explore more.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use net::protocol::schema::generate::{self, Rng, Shape};
use net::protocol::schema::{Message, REQUESTS};

use common::probe::{Fate, Prober, probe_frame, request_frame as frame};
use common::{Broker, fetch_records, free_addr};

const CANARY: &str = "Fuzz-Canary"; // upper case: generated names never are
/// Names generated requests use half the time: a topic with data that they
/// may read, write, grow, reconfigure or delete, a group, the internal
/// topic.
const WORDS: &[&str] = &[
    "fuzz",
    "fuzz-group",
    "__consumer_offsets",
    "range",
    "consumer",
];

/// Which kind of frame: valid bodies must be answered (Kafka answers a
/// request it can decode, with error codes), never cost the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Random,
    Valid,
    Hostile,
    Header,
}

/// Random bodies for every API key Kafka defines (and a few it does not)
/// at every version it defines and one past each end.
fn random_body_frames(rng: &mut Rng, scale: usize) -> Vec<(Origin, Vec<u8>)> {
    let mut keys: Vec<(i16, i16)> = ApiKey::iter()
        .map(|k| {
            let versions = k.valid_versions();
            (k as i16, versions.max)
        })
        .collect();
    keys.extend([(-1, 2), (75, 2), (1000, 2), (i16::MAX, 2)]);
    let mut frames = Vec::new();
    for (key, max) in keys {
        for version in -1..=max.saturating_add(1) {
            for _ in 0..3 * scale {
                let mut body = vec![0u8; rng.below(48) as usize];
                rng.fill(&mut body);
                let bytes = frame(key, version, rng.next_u64() as i32, &body);
                frames.push((Origin::Random, bytes));
            }
        }
    }
    frames
}

/// Bodies generated from the tables: valid ones, then hostile variants of
/// them, a sample of at most `variants` per version.
fn table_frames(message: &'static Message, rng: &mut Rng, scale: usize) -> Vec<(Origin, Vec<u8>)> {
    let Some(api_key) = message.api_key else {
        return Vec::new();
    };
    let mut frames = Vec::new();
    for version in message.versions.min..=message.versions.max {
        let mut hostile = Vec::new();
        for n in 0..10 * scale {
            let shape = Shape {
                words: WORDS,
                ..Shape::default()
            };
            let body = generate::body(message, version, shape, rng);
            // Kafka closes the connection on a version it does not serve.
            let served = net::handlers::find(api_key)
                .is_some_and(|h| (h.min_version..=h.max_version).contains(&version));
            let origin = if served {
                Origin::Valid
            } else {
                Origin::Hostile
            };
            frames.push((origin, frame(api_key as i16, version, 1, &body.bytes)));
            if n < 3 {
                hostile.extend(generate::extreme_variants(&body));
                hostile.extend(generate::truncations(&body).into_iter().map(<[u8]>::to_vec));
            }
        }
        let variants = 150 * scale;
        for _ in 0..variants.min(hostile.len()) {
            let pick = rng.below(hostile.len() as u64) as usize;
            let body = hostile.swap_remove(pick);
            frames.push((Origin::Hostile, frame(api_key as i16, version, 2, &body)));
        }
    }
    frames
}

/// Valid bodies behind hostile headers: client id lengths past the end or
/// negative, tagged-field counts and sizes past the end, cut headers.
fn header_frames(rng: &mut Rng) -> Vec<(Origin, Vec<u8>)> {
    let metadata = net::protocol::schema::request(ApiKey::Metadata).unwrap();
    let mut frames = Vec::new();
    for version in [1i16, 9, 12] {
        let body = generate::body(metadata, version, Shape::default(), rng).bytes;
        let flexible = version >= 9;
        for client_id_len in [-2i16, -1, 0, 3, i16::MAX] {
            for tagged in [
                &[][..],
                &[0x7f][..],
                &[0xff, 0xff, 0xff, 0xff, 0x0f],
                &[1, 0, 0x7f],
            ] {
                if !flexible && !tagged.is_empty() {
                    continue;
                }
                let mut inner = BytesMut::new();
                inner.put_i16(ApiKey::Metadata as i16);
                inner.put_i16(version);
                inner.put_i32(3);
                inner.put_i16(client_id_len);
                inner.put_slice(b"abc");
                inner.put_slice(tagged);
                if flexible && tagged.is_empty() {
                    inner.put_u8(0);
                }
                inner.put_slice(&body);
                for cut in [inner.len(), 9, 5] {
                    let mut out = (cut as i32).to_be_bytes().to_vec();
                    out.extend_from_slice(&inner[..cut]);
                    frames.push((Origin::Header, out));
                }
            }
        }
    }
    frames
}

fn start_broker(dir: &Path, addr: SocketAddr) -> Broker {
    common::start_configured_logged(
        dir,
        addr,
        "group-initial-rebalance-delay-ms = 0\nnum-partitions = 1\n",
    )
}

/// Writes three batches to each of the canary's two partitions (raw
/// Produce v9), returns what Fetch reads back from each.
fn write_canary(addr: SocketAddr) -> Vec<(i64, Option<Bytes>)> {
    use engine::batch::builder::{BatchSpec, Record, encode_batch, encode_records};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
    common::create_topic_raw(addr, CANARY, 2);
    for partition in 0..2 {
        for n in 0..3 {
            let value = format!("canary {partition} {n}");
            let record = Record {
                value: Some(value.as_bytes()),
                ..Record::default()
            };
            let batch = encode_batch(
                &BatchSpec::new(1, 1_700_000_000_000),
                &encode_records(&[record]),
            );
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(common::topic_name(CANARY))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(partition)
                                .with_records(Some(Bytes::from(batch))),
                        ]),
                ]);
            let response: ProduceResponse = common::call(addr, ApiKey::Produce, 9, &request);
            assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
        }
    }
    read_canary(addr)
}

fn read_canary(addr: SocketAddr) -> Vec<(i64, Option<Bytes>)> {
    (0..2)
        .map(|partition| {
            let (error, high_watermark, records) = fetch_records(addr, CANARY, partition, 0);
            assert_eq!(error, 0);
            (high_watermark, records)
        })
        .collect()
}

/// Every shard answers: connections spread over the shards (SO_REUSEPORT).
fn every_connection_answers(addr: SocketAddr) {
    for n in 0..16 {
        let mut prober = Prober::new(addr);
        prober.send(&probe_frame());
        assert_eq!(prober.tally.answered, 1, "connection {n} got no answer");
    }
}

fn librdkafka_produces_and_consumes(addr: SocketAddr) {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message as _;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("enable.idempotence", "false")
        .create()
        .unwrap();
    for i in 0..10 {
        producer
            .send(
                BaseRecord::to("Fuzz-After")
                    .key("k")
                    .payload(&format!("after {i}")),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("group.id", "Fuzz-Readers")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["Fuzz-After"]).unwrap();
    let mut read = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while read.len() < 10 && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            read.push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
        }
    }
    let expected: Vec<String> = (0..10).map(|i| format!("after {i}")).collect();
    assert_eq!(read, expected);
}

#[test]
fn generated_requests_of_every_api_and_version_leave_the_broker_serving_and_the_data_intact() {
    let seed = std::env::var("SHARDLOG_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xf022_2026_u64);
    let scale: usize = std::env::var("SHARDLOG_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    eprintln!("fuzz seed {seed} scale {scale} (SHARDLOG_FUZZ_SEED, SHARDLOG_FUZZ_SCALE)");
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut broker = start_broker(dir.path(), addr);
    let canary = write_canary(addr);
    common::create_topic_raw(addr, "fuzz", 3);

    let mut rng = Rng::new(seed);
    let mut frames = random_body_frames(&mut rng, scale);
    for message in REQUESTS {
        frames.extend(table_frames(message, &mut rng, scale));
    }
    frames.extend(header_frames(&mut rng));
    let mut prober = Prober::new(addr);
    let started = Instant::now();
    let mut valid_closed = Vec::new();
    for (n, (origin, frame)) in frames.iter().enumerate() {
        let fate = prober.send(frame);
        if *origin == Origin::Valid && fate == Fate::Closed {
            valid_closed.push(n);
        }
        if let Ok(Some(status)) = broker.0.try_wait() {
            let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap_or_default();
            panic!(
                "the broker exited ({status}) after frame {n} of seed {seed}: {:02x?}\n{log}",
                frame
            );
        }
    }
    eprintln!(
        "{} frames in {:.1} s: {:?}",
        frames.len(),
        started.elapsed().as_secs_f64(),
        prober.tally
    );
    assert!(frames.len() > 20_000);
    let valid = frames.iter().filter(|(o, _)| *o == Origin::Valid).count();
    assert!(
        prober.tally.answered >= valid - valid_closed.len(),
        "{:?}",
        prober.tally
    );
    let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap_or_default();
    assert!(
        valid_closed.is_empty(),
        "valid requests lost their connection: {:?}\n{}",
        valid_closed
            .iter()
            .take(5)
            .map(|&n| format!("frame {n}: {:02x?}", frames[n].1))
            .collect::<Vec<_>>(),
        log.lines()
            .filter(|l| !l.contains("not served"))
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );

    every_connection_answers(addr);
    assert_eq!(read_canary(addr), canary, "the canary topic changed");
    librdkafka_produces_and_consumes(addr);
    assert!(broker.0.try_wait().unwrap().is_none(), "the broker exited");
    let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap();
    assert!(!log.contains("panicked"), "{log}");
}
