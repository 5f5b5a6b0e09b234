//! Consumer groups with librdkafka (rdkafka crate) against a real broker:
//! members split a topic's partitions, and committed offsets survive a
//! broker SIGKILL.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use common::{Broker, free_addr, start_with};

/// A broker whose first join phase waits 300 ms instead of Kafka's 3 s.
fn start_broker(dir: &Path, addr: SocketAddr) -> Broker {
    let config = dir.join("shardlog.toml");
    std::fs::write(
        &config,
        "group-initial-rebalance-delay-ms = 300\noffsets-topic-num-partitions = 8\n",
    )
    .unwrap();
    start_with(
        &dir.join("data"),
        addr,
        "warn",
        &["--config", config.to_str().unwrap()],
    )
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

/// Produces `count` messages `0..count` round-robin over the partitions.
fn produce(addr: SocketAddr, topic: &str, partitions: i32, count: usize) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .create()
        .unwrap();
    for i in 0..count {
        let value = i.to_string();
        let record = BaseRecord::<(), _>::to(topic)
            .partition((i % partitions as usize) as i32)
            .payload(&value);
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

fn consumer(addr: SocketAddr, group: &str, auto_commit: bool) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", auto_commit.to_string())
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap()
}

/// The partitions each consumer owns.
fn assignments(consumers: &[BaseConsumer]) -> Vec<BTreeSet<i32>> {
    consumers
        .iter()
        .map(|c| {
            c.assignment()
                .unwrap()
                .elements()
                .iter()
                .map(|e| e.partition())
                .collect()
        })
        .collect()
}

#[test]
fn three_members_split_twelve_partitions_and_read_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_broker(tmp.path(), addr);
    create_topic(addr, "grouped", 12);
    let consumers: Vec<BaseConsumer> = (0..3).map(|_| consumer(addr, "three", true)).collect();
    for c in &consumers {
        c.subscribe(&["grouped"]).unwrap();
    }
    // Poll until the group settles: disjoint assignments covering all 12.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for c in &consumers {
            let _ = c.poll(Duration::from_millis(50));
        }
        let owned = assignments(&consumers);
        let total: usize = owned.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<i32> = owned.iter().flatten().copied().collect();
        if owned.iter().all(|o| !o.is_empty()) && total == 12 && union.len() == 12 {
            eprintln!("settled: {owned:?}");
            break;
        }
        assert!(Instant::now() < deadline, "group never settled: {owned:?}");
    }
    let owned = assignments(&consumers);
    produce(addr, "grouped", 12, 6_000);
    let mut seen: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read < 6_000 {
        assert!(Instant::now() < deadline, "read {read} of 6000");
        for (index, c) in consumers.iter().enumerate() {
            if let Some(Ok(message)) = c.poll(Duration::from_millis(20)) {
                assert!(
                    owned[index].contains(&message.partition()),
                    "consumer {index} read partition {} it does not own",
                    message.partition()
                );
                seen.entry(message.partition())
                    .or_default()
                    .push(message.offset());
                read += 1;
            }
        }
    }
    assert_eq!(seen.len(), 12);
    for (partition, offsets) in &seen {
        let expected: Vec<i64> = (0..500).collect();
        assert_eq!(
            offsets, &expected,
            "partition {partition}: every message once, in order"
        );
    }
}

#[test]
fn committed_offsets_survive_a_broker_sigkill_and_the_group_resumes_there() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let broker = start_broker(tmp.path(), addr);
    create_topic(addr, "resumed", 4);
    produce(addr, "resumed", 4, 2_000);
    let mut first_half = BTreeSet::new();
    {
        let c = consumer(addr, "resume", false);
        c.subscribe(&["resumed"]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while first_half.len() < 1_000 {
            assert!(
                Instant::now() < deadline,
                "read {} of 1000",
                first_half.len()
            );
            if let Some(Ok(message)) = c.poll(Duration::from_millis(100)) {
                let value: usize = std::str::from_utf8(message.payload().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                first_half.insert(value);
                c.commit_message(&message, CommitMode::Sync).unwrap();
            }
        }
    }
    drop(broker); // SIGKILL: every commit above was answered, so durable
    let _broker = start_broker(tmp.path(), addr);
    let c = consumer(addr, "resume", false);
    c.subscribe(&["resumed"]).unwrap();
    let mut second_half = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while first_half.len() + second_half.len() < 2_000 {
        assert!(
            Instant::now() < deadline,
            "read {} + {} of 2000",
            first_half.len(),
            second_half.len()
        );
        if let Some(Ok(message)) = c.poll(Duration::from_millis(100)) {
            let value: usize = std::str::from_utf8(message.payload().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                !first_half.contains(&value),
                "message {value} was committed before the restart and read again"
            );
            assert!(second_half.insert(value), "message {value} read twice");
        }
    }
    let all: BTreeSet<usize> = first_half.union(&second_half).copied().collect();
    assert_eq!(all.len(), 2_000, "nothing skipped");
}
