//! librdkafka (through the rdkafka crate), the C client most Kafka clients
//! are built on, against a real broker process: 100k keyed messages with
//! headers over 8 partitions with acks=all, read back byte for byte, in
//! order per partition, each key on one partition; and every compression
//! codec.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use common::{fetch_records, free_addr, start};

/// One delivery report: (partition, offset) or the error.
type Report = Result<(i32, i64), String>;

/// Records every delivery report.
#[derive(Clone, Default)]
struct Deliveries(Arc<Mutex<Vec<Report>>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        let report = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.lock().unwrap().push(report);
    }
}

fn create_topic(addr: SocketAddr, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .create()
        .unwrap();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let results =
        futures::executor::block_on(admin.create_topics(&[topic], &AdminOptions::new())).unwrap();
    for result in results {
        result.unwrap_or_else(|(topic, e)| panic!("create {topic}: {e}"));
    }
}

fn produce(addr: SocketAddr, topic: &str, count: usize, compression: &str) {
    let deliveries = Deliveries::default();
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", compression)
        .set("enable.idempotence", "false")
        .create_with_context(deliveries.clone())
        .unwrap();
    for i in 0..count {
        let (key, value) = (
            format!("key-{}", i % 1000),
            format!("value-{i}-{}", "x".repeat(i % 200)),
        );
        let headers = OwnedHeaders::new().insert(Header {
            key: "i",
            value: Some(&i.to_string()),
        });
        let record = BaseRecord::to(topic)
            .key(&key)
            .payload(&value)
            .headers(headers)
            .timestamp(1_700_000_000_000 + i as i64);
        common::send_when_queued(&producer, record);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let reports = deliveries.0.lock().unwrap();
    assert_eq!(reports.len(), count);
    let failed: Vec<_> = reports
        .iter()
        .filter_map(|r| r.as_ref().err())
        .take(3)
        .collect();
    assert!(
        failed.is_empty(),
        "{compression}: deliveries failed: {failed:?}"
    );
}

/// Reads `count` messages from every partition of `topic` from the start
/// and checks them; returns how many partitions held data.
fn consume_and_check(addr: SocketAddr, topic: &str, partitions: i32, count: usize) -> usize {
    let consumer = common::assigned_consumer(
        addr,
        topic,
        partitions,
        "librdkafka-test",
        "read_uncommitted",
    );
    let mut seen = vec![false; count];
    let mut last_offset: HashMap<i32, i64> = HashMap::new();
    let mut key_partition: HashMap<String, i32> = HashMap::new();
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while received < count {
        assert!(Instant::now() < deadline, "read {received} of {count}");
        let message = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Ok(message)) => message,
            // With a group id librdkafka also looks for a group coordinator,
            // which this broker does not serve yet, and reports that through
            // poll; the deadline above is what checks progress.
            Some(Err(e)) => {
                eprintln!("consumer event: {e}");
                continue;
            }
        };
        let header = message.headers().unwrap().get(0);
        let i: usize = std::str::from_utf8(header.value.unwrap())
            .unwrap()
            .parse()
            .unwrap();
        let key = format!("key-{}", i % 1000);
        assert_eq!(message.key(), Some(key.as_bytes()));
        assert_eq!(
            message.payload(),
            Some(format!("value-{i}-{}", "x".repeat(i % 200)).as_bytes())
        );
        assert_eq!(
            message.timestamp().to_millis(),
            Some(1_700_000_000_000 + i as i64)
        );
        let previous = last_offset.insert(message.partition(), message.offset());
        assert!(
            previous.is_none_or(|p| p < message.offset()),
            "order within a partition"
        );
        let partition = *key_partition.entry(key).or_insert(message.partition());
        assert_eq!(partition, message.partition(), "each key on one partition");
        assert!(!seen[i], "message {i} read twice");
        seen[i] = true;
        received += 1;
    }
    last_offset.len()
}

#[test]
fn hundred_thousand_keyed_messages_over_eight_partitions_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    create_topic(addr, "rd-keyed", 8);
    produce(addr, "rd-keyed", 100_000, "none");
    assert_eq!(consume_and_check(addr, "rd-keyed", 8, 100_000), 8);
}

#[test]
fn every_compression_codec_round_trips_through_librdkafka() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    for (codec, id) in [("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4)] {
        let topic = format!("rd-{codec}");
        create_topic(addr, &topic, 2);
        produce(addr, &topic, 5_000, codec);
        // librdkafka compresses only if ApiVersions shows Produce v0
        // (KAFKA-18659) and, for lz4, FindCoordinator; each stored batch
        // says which codec it used. A batch that would not shrink (a lone
        // small message) is sent uncompressed, so: some batches in the
        // codec, none in another.
        let (code, _, records) = fetch_records(addr, &topic, 0, 0);
        assert_eq!(code, 0);
        let records = records.expect("partition 0 has records");
        let mut codecs = std::collections::BTreeSet::new();
        let mut at = 0;
        while at + 61 <= records.len() {
            let length = u32::from_be_bytes(records[at + 8..at + 12].try_into().unwrap());
            codecs.insert(i16::from_be_bytes([records[at + 21], records[at + 22]]) & 7);
            at += 12 + length as usize;
        }
        assert!(
            codecs.contains(&id),
            "{codec}: batches stored with codecs {codecs:?}"
        );
        assert!(
            codecs.iter().all(|c| *c == id || *c == 0),
            "{codec}: {codecs:?}"
        );
        assert_eq!(consume_and_check(addr, &topic, 2, 5_000), 2, "{codec}");
    }
}

/// librdkafka's admin API with explicit replica assignments (issue 10):
/// placing every partition on this broker alone is followed, naming any
/// other broker is INVALID_REPLICA_ASSIGNMENT.
#[test]
fn explicit_assignments_on_this_broker_create_and_grow_topics() {
    use rdkafka::admin::NewPartitions;
    use rdkafka::types::RDKafkaErrorCode;
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .create()
        .unwrap();
    let options = AdminOptions::new();
    let here: &[i32] = &[0];
    let elsewhere: &[i32] = &[7];
    let create = |name: &str, assignment: &[&[i32]]| {
        let count = assignment.len() as i32;
        let topic = NewTopic::new(name, count, TopicReplication::Variable(assignment));
        let results = futures::executor::block_on(admin.create_topics(&[topic], &options)).unwrap();
        results.into_iter().next().unwrap().map_err(|(_, e)| e)
    };
    assert_eq!(
        create("assigned", &[here, here]),
        Ok("assigned".to_string())
    );
    assert_eq!(
        create("misassigned", &[here, elsewhere]),
        Err(RDKafkaErrorCode::InvalidReplicaAssignment)
    );
    let grow = |total: usize, assignment: &[&[i32]]| {
        let partitions = NewPartitions::new("assigned", total).assign(assignment);
        let results =
            futures::executor::block_on(admin.create_partitions(&[partitions], &options)).unwrap();
        results.into_iter().next().unwrap().map_err(|(_, e)| e)
    };
    assert_eq!(
        grow(4, &[here, elsewhere]),
        Err(RDKafkaErrorCode::InvalidReplicaAssignment)
    );
    assert_eq!(grow(4, &[here, here]), Ok("assigned".to_string()));
    let metadata = admin
        .inner()
        .fetch_metadata(Some("assigned"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 4);
    let (error, _, _) = fetch_records(addr, "misassigned", 0, 0);
    assert_eq!(error, 3, "the refused topic does not exist");
}
