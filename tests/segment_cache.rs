//! A broker whose shards keep no sealed segment's index in memory and at
//! most one sealed segment file open: librdkafka consumes every message
//! from the beginning and looks offsets up by time, before and after a
//! restart, and gets exactly what it produced; the metrics show the
//! indexes were read from their files and nothing was kept.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "old-data";
const PARTITIONS: i32 = 2;
const MESSAGES: i64 = 3_000;
/// Message `i` goes to partition `i % 2` at timestamp `T0 + 10 i`.
const T0: i64 = 1_700_000_000_000;

fn value(i: i64) -> String {
    format!("message-{i}-{}", "v".repeat((i % 97) as usize * 5))
}

fn produce(addr: SocketAddr) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("linger.ms", "2")
        .set("batch.size", "4096")
        .create()
        .unwrap();
    for i in 0..MESSAGES {
        let value = value(i);
        let key = i.to_string();
        let record = BaseRecord::to(TOPIC)
            .partition((i % i64::from(PARTITIONS)) as i32)
            .key(&key)
            .payload(&value)
            .timestamp(T0 + 10 * i);
        producer.send(record).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn consumer(addr: SocketAddr) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("group.id", "segment-cache")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// Reads both partitions from their start: every message, in order, with
/// its timestamp.
fn consume_everything(addr: SocketAddr) {
    let consumer = consumer(addr);
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut next: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, i64::from(p))).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut read = 0;
    while read < MESSAGES {
        assert!(Instant::now() < deadline, "read {read} of {MESSAGES}");
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.unwrap();
        let i = next[&message.partition()];
        assert_eq!(message.payload(), Some(value(i).as_bytes()), "message {i}");
        assert_eq!(message.timestamp(), Timestamp::CreateTime(T0 + 10 * i));
        assert_eq!(message.offset(), i / i64::from(PARTITIONS), "message {i}");
        next.insert(message.partition(), i + i64::from(PARTITIONS));
        read += 1;
    }
}

/// ListOffsets by time (librdkafka's offsets_for_times) at and between the
/// messages' timestamps, over the whole log.
fn look_up_times(addr: SocketAddr) {
    let consumer = consumer(addr);
    for i in (0..MESSAGES).step_by(37) {
        let partition = (i % i64::from(PARTITIONS)) as i32;
        // The partition's messages are `PARTITIONS` apart, 10 ms each: at
        // t and just before it the first at or after t is message i; just
        // after it, the partition's next one.
        let offset = i / i64::from(PARTITIONS);
        for (t, want_offset) in [
            (T0 + 10 * i, offset),
            (T0 + 10 * i - 5, offset),
            (T0 + 10 * i + 5, offset + 1),
        ] {
            if t > T0 + 10 * (MESSAGES - 1) {
                continue;
            }
            let mut query = TopicPartitionList::new();
            query
                .add_partition_offset(TOPIC, partition, Offset::Offset(t))
                .unwrap();
            let found = consumer
                .offsets_for_times(query, Duration::from_secs(10))
                .unwrap();
            let offset = found.elements()[0].offset();
            assert_eq!(
                offset,
                Offset::Offset(want_offset),
                "partition {partition} at time {t}"
            );
        }
    }
    let mut past = TopicPartitionList::new();
    past.add_partition_offset(TOPIC, 0, Offset::Offset(T0 + 10 * MESSAGES))
        .unwrap();
    let found = consumer
        .offsets_for_times(past, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        found.elements()[0].offset(),
        Offset::End,
        "after every message"
    );
}

/// The values of a metric family over the shards.
fn metric(http: SocketAddr, family: &str) -> Vec<f64> {
    let (status, _, body) = common::http_request(http, "GET", "/metrics", "");
    assert_eq!(status, 200);
    body.lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with('{'))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect()
}

fn check_metrics(http: SocketAddr) {
    let loads: f64 = metric(http, "shardlog_shard_index_loads_total")
        .iter()
        .sum();
    assert!(loads > 0.0, "indexes were read from their files");
    let cached = metric(http, "shardlog_shard_index_cache_bytes");
    assert!(
        !cached.is_empty() && cached.iter().all(|&b| b == 0.0),
        "{cached:?}"
    );
    let open = metric(http, "shardlog_shard_segment_files_open");
    assert!(open.iter().all(|&n| n <= 1.0), "{open:?}");
    let reopens: f64 = metric(http, "shardlog_shard_segment_file_reopens_total")
        .iter()
        .sum();
    assert!(
        reopens > 0.0,
        "active segments' files were closed and reopened"
    );
}

#[test]
fn clients_read_old_data_through_a_cache_that_keeps_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (addr, http) = (common::free_addr(), common::free_addr());
    let toml = format!(
        "http-listen = \"{http}\"\n\
         index-cache-bytes-per-shard = 0\n\
         open-segment-files-per-shard = 1\n\
         tail-cache-bytes-per-shard = 1\n\
         [topic-defaults]\n\
         \"segment.bytes\" = 16384\n"
    );
    let broker = common::start_configured(tmp.path(), addr, &toml);
    common::create_topic_raw(addr, TOPIC, PARTITIONS);
    produce(addr);
    consume_everything(addr);
    look_up_times(addr);
    check_metrics(http);
    assert!(common::stop(broker).success());
    let segments = std::fs::read_dir(tmp.path().join("data").join(format!("{TOPIC}-0")))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("index".as_ref()))
        .count();
    assert!(segments > 20, "{segments} sealed segments");

    let broker = common::start_configured(tmp.path(), addr, &toml);
    look_up_times(addr);
    consume_everything(addr);
    check_metrics(http);
    assert!(common::stop(broker).success());
}
