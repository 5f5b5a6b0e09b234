//! `shardlog serve` as a real process: it answers ApiVersions with bytes a
//! real client sent, survives bad input on other connections (each gets
//! closed, with a log line), refuses a second broker on the same data dir,
//! and exits 0 on SIGTERM; requests over many partitions of both shards
//! are answered per partition and their long polls woken by any of them.

mod common;

use std::io::{Read, Write};

use bytes::Bytes;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{call, fetch_records, free_addr, start, topic_name};

fn golden_api_versions() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/net/tests/golden/api_versions_v4_kafka_python_1.bin"
    ))
    .unwrap()
}

/// Sends the golden ApiVersions request and checks the response frame.
fn api_versions_round_trip(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = golden_api_versions();
    stream.write_all(&request).unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).unwrap();
    assert_eq!(body[..4], request[8..12], "correlation id echoed");
    assert_eq!(body[4..6], [0, 0], "error code NONE");
}

/// Sends `bytes` and expects the broker to close the connection.
fn expect_closed(addr: SocketAddr, bytes: &[u8], what: &str) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The broker may close before reading everything: a reset is fine too.
    let _ = stream.write_all(bytes);
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("{what}: expected the connection closed, got {n} bytes"),
    }
}

/// Sends a Metadata v9 request for `topic` and returns the topic's error
/// code and partition count from the response.
fn metadata_for(addr: SocketAddr, topic: &str, allow_auto_topic_creation: bool) -> (i16, usize) {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
        ]))
        .with_allow_auto_topic_creation(allow_auto_topic_creation);
    let body: MetadataResponse = call(addr, ApiKey::Metadata, 9, &request);
    assert_eq!(body.brokers.len(), 1);
    let entry = body
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
        .unwrap();
    (entry.error_code, entry.partitions.len())
}

/// Produces `records` to partition 0 of `topic`; returns the error code.
fn produce(addr: SocketAddr, topic: &str, records: Vec<u8>) -> i16 {
    produce_to(addr, topic, vec![(0, records)])[0].1
}

/// Produces to each partition its records, in one request (acks=all):
/// each partition's (index, error code, base offset).
fn produce_to(addr: SocketAddr, topic: &str, records: Vec<(i32, Vec<u8>)>) -> Vec<(i32, i16, i64)> {
    let data = records
        .into_iter()
        .map(|(p, records)| {
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(Bytes::from(records)))
        })
        .collect();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(data),
        ]);
    let response: ProduceResponse = call(addr, ApiKey::Produce, 9, &request);
    response.responses[0]
        .partition_responses
        .iter()
        .map(|p| (p.index, p.error_code, p.base_offset))
        .collect()
}

/// Fetches partition 0 of `topic` at `offset`; returns the error code and
/// the high watermark.
fn fetch(addr: SocketAddr, topic: &str, offset: i64) -> (i16, i64) {
    let (code, high_watermark, _) = fetch_records(addr, topic, 0, offset);
    (code, high_watermark)
}

#[test]
fn corrupt_produce_is_refused_and_stores_nothing_and_fetch_past_the_end_is_out_of_range() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "info");
    assert_eq!(metadata_for(addr, "bad-input", true), (0, 1));
    let good = engine::batch::builder::simple_batch(3, 100, 1_700_000_000_000, b'x');
    let mut corrupt = good.clone();
    *corrupt.last_mut().unwrap() ^= 0xff;
    assert_eq!(produce(addr, "bad-input", corrupt), 2, "CORRUPT_MESSAGE");
    assert_eq!(fetch(addr, "bad-input", 0), (0, 0), "nothing stored");
    assert_eq!(
        produce(addr, "bad-input", vec![1, 2, 3]),
        2,
        "CORRUPT_MESSAGE for a truncated batch"
    );
    assert_eq!(
        produce(addr, "no-such-topic-partition", good.clone()),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(produce(addr, "bad-input", good), 0);
    assert_eq!(fetch(addr, "bad-input", 0), (0, 3));
    assert_eq!(fetch(addr, "bad-input", 4).0, 1, "OFFSET_OUT_OF_RANGE");
}

#[test]
fn metadata_creates_unknown_topics_only_when_the_client_allows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "info");
    assert_eq!(
        metadata_for(addr, "not-created", false),
        (3, 0),
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(
        metadata_for(addr, "auto-created", true),
        (0, 1),
        "created with num.partitions = 1"
    );
    assert_eq!(
        metadata_for(addr, "auto-created", false),
        (0, 1),
        "and there afterwards"
    );
    assert_eq!(
        metadata_for(addr, "bad/name", true),
        (17, 0),
        "INVALID_TOPIC_EXCEPTION"
    );
}

#[test]
fn serve_answers_api_versions_and_survives_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut broker = start(tmp.path(), addr, "info");
    for _ in 0..4 {
        api_versions_round_trip(addr);
    }

    let mut seed = 0x5eed_u64;
    eprintln!("random bytes seed {seed}");
    let noise: Vec<u8> = (0..1 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    expect_closed(addr, &noise, "1 MiB of random bytes");
    expect_closed(
        addr,
        &0x7fff_ffffi32.to_be_bytes(),
        "a frame claiming 2 GiB",
    );
    expect_closed(addr, &(-1i32).to_be_bytes(), "a negative frame size");
    let mut unknown = golden_api_versions();
    unknown[4..6].copy_from_slice(&999i16.to_be_bytes());
    expect_closed(addr, &unknown, "an unknown API key");
    let mut truncated = golden_api_versions();
    truncated[0..4].copy_from_slice(&6i32.to_be_bytes());
    truncated.truncate(10);
    expect_closed(addr, &truncated, "a frame too short for a header");

    for _ in 0..4 {
        api_versions_round_trip(addr);
    }

    let second = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["serve", "--listen", &free_addr().to_string(), "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        !second.status.success(),
        "a second broker on the same data dir must refuse"
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("in use by another shardlog"));

    // SAFETY: sending SIGTERM to the child we started, by its PID.
    unsafe { libc::kill(broker.0.id() as i32, libc::SIGTERM) };
    let status = broker.0.wait().unwrap();
    assert!(status.success(), "SIGTERM exits 0, got {status}");
}

/// The request that killed the broker (issue 18): DeleteRecords v0, 20
/// bytes, whose topic array claims 0x7fffffff elements; the decoder asked
/// for ~100 GB and the process aborted. Now the connection is closed and
/// every other one is served.
#[test]
fn an_array_count_past_the_frame_closes_its_connection_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut broker = start(tmp.path(), addr, "info");
    let mut frame = Vec::new();
    frame.extend_from_slice(&20i32.to_be_bytes());
    frame.extend_from_slice(&21i16.to_be_bytes()); // DeleteRecords
    frame.extend_from_slice(&0i16.to_be_bytes()); // v0
    frame.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    frame.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    frame.extend_from_slice(&0x7fff_ffffi32.to_be_bytes()); // topics
    frame.extend_from_slice(&[0; 6]);
    assert_eq!(frame.len(), 24);
    for _ in 0..3 {
        expect_closed(addr, &frame, "DeleteRecords with 0x7fffffff topics");
    }
    api_versions_round_trip(addr);
    assert!(
        broker.0.try_wait().unwrap().is_none(),
        "the broker is alive"
    );
}

/// Every advertised ListOffsets version answers, offsets right: v1-v3 have
/// no leader epoch, and setting one made the response impossible to encode
/// (the connection was closed: kafkajs, kcat and aiokafka read nothing).
#[test]
fn list_offsets_answers_at_every_advertised_version() {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "info");
    assert_eq!(metadata_for(addr, "offsets", true), (0, 1));
    let batch = engine::batch::builder::simple_batch(5, 10, 1_700_000_000_000, b'o');
    assert_eq!(produce(addr, "offsets", batch), 0);
    for version in 1..=8 {
        for (timestamp, expected) in [(-2, 0), (-1, 5)] {
            let request = ListOffsetsRequest::default()
                .with_replica_id(kafka_protocol::messages::BrokerId(-1))
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(topic_name("offsets"))
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(timestamp),
                        ]),
                ]);
            let response: ListOffsetsResponse = call(addr, ApiKey::ListOffsets, version, &request);
            let partition = &response.topics[0].partitions[0];
            assert_eq!(partition.error_code, 0, "v{version}");
            assert_eq!(
                partition.offset, expected,
                "v{version} timestamp {timestamp}"
            );
            let epoch = if version >= 4 { 0 } else { -1 };
            assert_eq!(partition.leader_epoch, epoch, "v{version}");
        }
    }
}

#[test]
fn find_coordinator_names_this_node_for_groups_and_transactional_ids() {
    use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "info");
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_static_str("group-a"))
        .with_key_type(0);
    let single: FindCoordinatorResponse = call(addr, ApiKey::FindCoordinator, 3, &request);
    assert_eq!(single.error_code, 0);
    assert_eq!((single.node_id.0, single.port), (0, i32::from(addr.port())));
    assert_eq!(single.host.as_str(), "127.0.0.1");

    let batched = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![
            StrBytes::from_static_str("group-a"),
            StrBytes::from_static_str(""),
        ]);
    let answer: FindCoordinatorResponse = call(addr, ApiKey::FindCoordinator, 4, &batched);
    let codes: Vec<(&str, i16, i32)> = answer
        .coordinators
        .iter()
        .map(|c| (c.key.as_str(), c.error_code, c.node_id.0))
        .collect();
    assert_eq!(codes, [("group-a", 0, 0), ("", 42, -1)], "INVALID_REQUEST");

    let transaction = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![
            StrBytes::from_static_str("tx"),
            StrBytes::from_static_str(""),
        ]);
    let answer: FindCoordinatorResponse = call(addr, ApiKey::FindCoordinator, 4, &transaction);
    let codes: Vec<(&str, i16, i32)> = answer
        .coordinators
        .iter()
        .map(|c| (c.key.as_str(), c.error_code, c.node_id.0))
        .collect();
    assert_eq!(codes, [("tx", 0, 0), ("", 42, -1)]);
    let single = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_key(StrBytes::from_static_str("tx"));
    let answer: FindCoordinatorResponse = call(addr, ApiKey::FindCoordinator, 2, &single);
    assert_eq!((answer.error_code, answer.node_id.0), (0, 0));
}

#[test]
fn a_long_poll_returns_the_data_appended_while_it_waits() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "info");
    // Topics spread over both shards (placement hashes the name); the
    // fetch's connection may land on either.
    for t in 0..4 {
        let topic = format!("wake-{t}");
        assert_eq!(metadata_for(addr, &topic, true), (0, 1));
        let batch = engine::batch::builder::simple_batch(2, 10, 1_700_000_000_000, b'a');
        assert_eq!(produce(addr, &topic, batch), 0);
        let waiting = {
            let topic = topic.clone();
            // Waits at offset 2, the end, for up to 50 s.
            std::thread::spawn(move || common::fetch_waiting(addr, &topic, 0, 2, 50_000))
        };
        std::thread::sleep(Duration::from_millis(100));
        let batch = engine::batch::builder::simple_batch(5, 10, 1_700_000_000_000, b'b');
        assert_eq!(produce(addr, &topic, batch), 0);
        let (code, high_watermark, records) = waiting.join().unwrap();
        assert_eq!((code, high_watermark), (0, 7), "{topic}");
        let records = records.expect("the appended batch");
        assert_eq!(
            i64::from_be_bytes(records[..8].try_into().unwrap()),
            2,
            "{topic}: the batch appended during the wait"
        );
    }
}

/// A request over many partitions, on both shards: one Produce to all 16
/// partitions of a topic is answered per partition, and a Fetch of all 16
/// that long-polls at their ends is woken by an append to any one of them
/// (long before its 50 s wait) with that partition's records alone.
#[test]
fn requests_over_many_partitions_produce_read_and_wake_on_each() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "info");
    let topic = "many";
    common::create_topic_raw(addr, topic, 16);
    let batch =
        |count: i32| engine::batch::builder::simple_batch(count, 10, 1_700_000_000_000, b'a');
    // Partition p gets p + 1 records.
    assert_eq!(
        produce_to(addr, topic, (0..16).map(|p| (p, batch(p + 1))).collect()),
        (0..16).map(|p| (p, 0, 0)).collect::<Vec<_>>()
    );
    let mut ends: Vec<i64> = (0..16).map(|p| i64::from(p) + 1).collect();
    for woken in [3usize, 12, 0, 15, 7, 3] {
        let waiting = {
            let ends = ends.clone();
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                let offsets: Vec<(i32, i64)> = (0..).zip(ends).collect();
                let response = common::fetch_partitions(addr, topic, &offsets, 50_000);
                (response, started.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            produce_to(addr, topic, vec![(woken as i32, batch(2))]),
            vec![(woken as i32, 0, ends[woken])]
        );
        let (fetched, waited) = waiting.join().unwrap();
        assert!(
            waited < Duration::from_secs(40),
            "answered at the deadline, not woken: {waited:?}"
        );
        let with_records: Vec<(i32, i64)> = fetched.responses[0]
            .partitions
            .iter()
            .filter(|p| p.records.as_ref().is_some_and(|r| !r.is_empty()))
            .map(|p| (p.partition_index, p.high_watermark))
            .collect();
        assert_eq!(with_records, vec![(woken as i32, ends[woken] + 2)]);
        let records = fetched.responses[0].partitions[woken]
            .records
            .clone()
            .unwrap();
        assert_eq!(
            i64::from_be_bytes(records[..8].try_into().unwrap()),
            ends[woken],
            "partition {woken}: the batch appended during the wait"
        );
        ends[woken] += 2;
    }
}

#[test]
fn pipelined_produce_requests_are_appended_and_answered_in_order() {
    use bytes::{Buf, BufMut, BytesMut};
    use kafka_protocol::messages::{RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable};
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "info");
    assert_eq!(metadata_for(addr, "pipelined", true), (0, 1));
    // 100 requests written before any answer is read: more than the 32 a
    // connection may have under way, so the broker must stop reading and
    // resume without losing order.
    let requests = 100;
    let mut wire = BytesMut::new();
    for i in 0..requests {
        let batch = engine::batch::builder::simple_batch(3, 100, 1_700_000_000_000, i as u8);
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name("pipelined"))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(Bytes::from(batch))),
                    ]),
            ]);
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(9)
            .with_correlation_id(i)
            .encode(&mut body, ApiKey::Produce.request_header_version(9))
            .unwrap();
        request.encode(&mut body, 9).unwrap();
        wire.put_i32(body.len() as i32);
        wire.extend_from_slice(&body);
    }
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || stream.write_all(&wire).unwrap())
    };
    for i in 0..requests {
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).unwrap();
        let mut frame = vec![0u8; u32::from_be_bytes(size) as usize];
        stream.read_exact(&mut frame).unwrap();
        let mut frame = Bytes::from(frame);
        let header =
            ResponseHeader::decode(&mut frame, ApiKey::Produce.response_header_version(9)).unwrap();
        assert_eq!(header.correlation_id, i, "responses in request order");
        let body = ProduceResponse::decode(&mut frame, 9).unwrap();
        assert!(!frame.has_remaining());
        let partition = &body.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0);
        assert_eq!(
            partition.base_offset,
            i64::from(i) * 3,
            "appended in request order"
        );
    }
    writer.join().unwrap();
    // Each batch is where its request put it.
    let (_, high_watermark, records) = fetch_records(addr, "pipelined", 0, 0);
    assert_eq!(high_watermark, i64::from(requests) * 3);
    let records = records.unwrap();
    let mut position = 0;
    for k in 0..requests {
        let batch = &records[position..];
        assert_eq!(
            i64::from_be_bytes(batch[..8].try_into().unwrap()),
            i64::from(k) * 3
        );
        let size = 12 + u32::from_be_bytes(batch[8..12].try_into().unwrap()) as usize;
        let fill = [k as u8; 50];
        assert!(
            batch[..size].windows(50).any(|w| w == fill),
            "batch {k} holds request {k}'s records"
        );
        position += size;
    }
    assert_eq!(position, records.len());
}

/// glommio adds a clone of the accept loop's waker at every poll of its
/// pending accept, the loop re-polls it at every stop check (50 ms), and a
/// glommio task allows `i16::MAX` clones: a broker with no new connection
/// on a shard for about 27 minutes panicked ("Waker invariant broken").
/// With 20 µs stop checks that many polls take about a second.
#[test]
fn an_idle_broker_survives_hours_worth_of_stop_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut broker =
        common::start_with(tmp.path(), addr, "warn", &["--stop-poll-interval-us", "20"]);
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        broker.0.try_wait().unwrap().is_none(),
        "the broker died while idle"
    );
    // New connections land on either shard: each still serves.
    for _ in 0..8 {
        api_versions_round_trip(addr);
    }
    assert!(broker.0.try_wait().unwrap().is_none());
}

/// Fetch v13+ names topics by id (KIP-516): a known id reads the topic, an
/// unknown one gets UNKNOWN_TOPIC_ID (100).
#[test]
fn fetch_by_topic_id_reads_the_topic_and_an_unknown_id_is_refused() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse};
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "info");
    assert_eq!(metadata_for(addr, "by-id", true), (0, 1));
    let batch = engine::batch::builder::simple_batch(3, 10, 1_700_000_000_000, b'i');
    assert_eq!(produce(addr, "by-id", batch), 0);
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name("by-id"))),
    ]));
    let metadata: MetadataResponse = call(addr, ApiKey::Metadata, 12, &request);
    let topic_id = metadata.topics[0].topic_id;
    assert!(!topic_id.is_nil());
    let unknown = uuid::Uuid::from_u128(0x5eed);
    for version in 13..=16 {
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(
                [topic_id, unknown]
                    .into_iter()
                    .map(|id| {
                        FetchTopic::default()
                            .with_topic_id(id)
                            .with_partitions(vec![
                                FetchPartition::default()
                                    .with_partition(0)
                                    .with_partition_max_bytes(1 << 20),
                            ])
                    })
                    .collect(),
            );
        let response: FetchResponse = call(addr, ApiKey::Fetch, version, &request);
        let (known, missing) = (&response.responses[0], &response.responses[1]);
        assert_eq!(known.topic_id, topic_id, "v{version}");
        assert_eq!(known.partitions[0].error_code, 0, "v{version}");
        assert_eq!(known.partitions[0].high_watermark, 3, "v{version}");
        assert!(
            known.partitions[0]
                .records
                .as_ref()
                .is_some_and(|r| !r.is_empty()),
            "v{version}"
        );
        assert_eq!(missing.topic_id, unknown, "v{version}");
        assert_eq!(
            missing.partitions[0].error_code, 100,
            "v{version}: UNKNOWN_TOPIC_ID"
        );
    }
}
