//! Fetch sessions (KIP-227) as a client sees them on the wire: a full
//! request opens one, incremental requests name only what changed and get
//! only the partitions with news (records, a moved high watermark), a long
//! poll on a session wakes on any of its partitions, forgotten partitions
//! leave it, and a wrong epoch, an unknown id or a change of topic naming
//! get Kafka's errors. kafka-python and the Java client open sessions by
//! default, so their tests run on them too.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::ForgottenTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse,
};

use common::{Conn, topic_name};

const TOPIC: &str = "sessions";
const PARTITIONS: i32 = 4;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;

/// Produces one batch of `count` records to `partition`; its base offset.
fn produce(addr: SocketAddr, partition: i32, count: i32) -> i64 {
    let batch = engine::batch::builder::simple_batch(count, 100, 1_700_000_000_000, 7);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(TOPIC))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ]);
    let response: ProduceResponse = common::call(addr, ApiKey::Produce, 9, &request);
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, 0, "produce to {partition}");
    answer.base_offset
}

/// A Fetch on session `id` at `epoch` of `(partition, offset)`s, forgetting
/// `forget`, waiting up to `wait_ms` for a byte.
fn fetch(
    id: i32,
    epoch: i32,
    topic_id: uuid::Uuid,
    partitions: &[(i32, i64)],
    forget: &[i32],
    wait_ms: i32,
) -> FetchRequest {
    let mut request = common::fetch_request(TOPIC, partitions, wait_ms);
    for topic in &mut request.topics {
        topic.topic_id = topic_id;
    }
    let forgotten = if forget.is_empty() {
        Vec::new()
    } else {
        vec![
            ForgottenTopic::default()
                .with_topic(topic_name(TOPIC))
                .with_topic_id(topic_id)
                .with_partitions(forget.to_vec()),
        ]
    };
    request
        .with_session_id(id)
        .with_session_epoch(epoch)
        .with_max_bytes(16 << 20)
        .with_forgotten_topics_data(forgotten)
}

/// Each partition in `response`: (partition, high watermark, record bytes).
fn answered(response: &FetchResponse) -> Vec<(i32, i64, usize)> {
    let mut out: Vec<(i32, i64, usize)> = response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            assert_eq!(p.error_code, 0, "partition {}", p.partition_index);
            let bytes = p.records.as_ref().map_or(0, Bytes::len);
            (p.partition_index, p.high_watermark, bytes)
        })
        .collect();
    out.sort_unstable();
    out
}

#[test]
fn a_session_answers_only_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = common::free_addr();
    let broker = common::start(tmp.path(), addr, "warn");
    common::create_topic_raw(addr, TOPIC, PARTITIONS);
    let metadata: MetadataResponse = common::call(
        addr,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(TOPIC))),
        ])),
    );
    let topic_id = metadata.topics[0].topic_id;
    for p in 0..PARTITIONS {
        produce(addr, p, 3);
    }
    let all: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 0)).collect();

    for version in [12, 13, 16] {
        let mut client = Conn::open(addr);
        let mut call = |request: &FetchRequest| -> FetchResponse {
            client.call(ApiKey::Fetch, version, request)
        };
        // A full request opens a session: every partition answered.
        let full = call(&fetch(0, 0, topic_id, &all, &[], 0));
        assert_eq!(full.error_code, 0);
        let id = full.session_id;
        assert!(id > 0, "v{version}: a session opened: {full:?}");
        let first = answered(&full);
        assert_eq!(first.len(), PARTITIONS as usize, "v{version}");
        let ends: Vec<(i32, i64)> = first.iter().map(|&(p, hw, _)| (p, hw)).collect();

        // The client moves its positions: nothing new, nothing answered.
        let moved = call(&fetch(id, 1, topic_id, &ends, &[], 0));
        assert_eq!((moved.error_code, moved.session_id), (0, id), "v{version}");
        assert_eq!(answered(&moved), [], "v{version}: nothing changed");
        let quiet = call(&fetch(id, 2, topic_id, &[], &[], 0));
        assert_eq!(answered(&quiet), [], "v{version}: nothing changed");

        // An append to one partition wakes a long poll on the whole session
        // and is all it answers.
        let waiting = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            produce(addr, 2, 5)
        });
        let woken = call(&fetch(id, 3, topic_id, &[], &[], 10_000));
        let base = waiting.join().unwrap();
        let news = answered(&woken);
        assert_eq!(news.len(), 1, "v{version}: {news:?}");
        assert_eq!((news[0].0, news[0].1), (2, base + 5), "v{version}");
        assert!(news[0].2 > 0, "v{version}: its records");

        // Positions not sent again stay where the session has them: the
        // same records come back until the client moves on.
        let again = answered(&call(&fetch(id, 4, topic_id, &[], &[], 0)));
        assert_eq!(again, news, "v{version}");
        let on = call(&fetch(id, 5, topic_id, &[(2, base + 5)], &[], 0));
        assert_eq!(answered(&on), [], "v{version}");

        // A forgotten partition leaves the session.
        let forgot = call(&fetch(id, 6, topic_id, &[], &[1], 0));
        assert_eq!(answered(&forgot), [], "v{version}");
        produce(addr, 1, 1);
        let without = call(&fetch(id, 7, topic_id, &[], &[], 0));
        assert_eq!(
            answered(&without),
            [],
            "v{version}: partition 1 is not in it"
        );

        // A wrong epoch, an unknown id: Kafka's errors, nothing else.
        let stale = call(&fetch(id, 7, topic_id, &[], &[], 0));
        assert_eq!(stale.error_code, INVALID_FETCH_SESSION_EPOCH, "v{version}");
        assert!(stale.responses.is_empty());
        let unknown = call(&fetch(id ^ 0x40_0000, 1, topic_id, &[], &[], 0));
        assert_eq!(unknown.error_code, FETCH_SESSION_ID_NOT_FOUND, "v{version}");

        // The same session by the other way of naming topics.
        let other = if version >= 13 { 12 } else { 13 };
        let mut other_client = Conn::open(addr);
        let switched: FetchResponse =
            other_client.call(ApiKey::Fetch, other, &fetch(id, 8, topic_id, &[], &[], 0));
        let (switched_code, switched_session) = (switched.error_code, switched.session_id);
        // Another connection may be on another shard, where the id is
        // not found.
        assert!(
            [FETCH_SESSION_TOPIC_ID_ERROR, FETCH_SESSION_ID_NOT_FOUND].contains(&switched_code),
            "v{version} then v{other}: {switched_code} (session {switched_session})"
        );

        // Epoch -1 closes it and reads without one.
        let closing = call(&fetch(id, -1, topic_id, &all, &[], 0));
        assert_eq!((closing.error_code, closing.session_id), (0, 0));
        assert_eq!(answered(&closing).len(), PARTITIONS as usize);
        let closed = call(&fetch(id, 9, topic_id, &[], &[], 0));
        assert_eq!(closed.error_code, FETCH_SESSION_ID_NOT_FOUND, "v{version}");
    }
    assert!(common::stop(broker).success());
}

/// kafka-python's consumer opens a session by default: it reads every
/// message of 12 partitions written a few at a time, in order, through
/// incremental fetches, with partitions paused and resumed in between
/// (tests/clients/fetch_sessions.py).
#[test]
fn kafka_python_consumes_on_a_fetch_session() {
    let Some(python) = common::python_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (addr, http) = (common::free_addr(), common::free_addr());
    let broker = common::start_configured(tmp.path(), addr, &format!("http-listen = \"{http}\"\n"));
    common::run_python_script(
        &python,
        "fetch_sessions.py",
        &[&addr.to_string(), &format!("http://{http}/metrics")],
    );
    assert!(common::stop(broker).success());
}
