//! Consumer groups with librdkafka (rdkafka crate) against a real broker:
//! members split a topic's partitions, and committed offsets survive a
//! broker SIGKILL; the same with KIP-848's consumer protocol.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientContext, TopicPartitionList};

use common::{Broker, create_topic_raw, free_addr, start_configured};

/// A broker whose first join phase waits 300 ms instead of Kafka's 3 s.
fn start_broker(dir: &Path, addr: SocketAddr) -> Broker {
    start_configured(dir, addr, GROUP_TEST_CONFIG)
}

/// Shorter group delays for tests, and fewer offsets partitions.
pub const GROUP_TEST_CONFIG: &str =
    "group-initial-rebalance-delay-ms = 300\noffsets-topic-num-partitions = 8\n";

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
    create_topic_raw(addr, "grouped", 12);
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
    leave(&consumers);
}

/// Unsubscribes every consumer and polls until none owns a partition, so
/// that dropping them runs no rebalance callback: librdkafka's
/// `rd_kafka_rebalance_protocol()` called from the callback during close
/// can block forever (librdkafka issue 4041; seen here as a test hung in
/// `BaseConsumer::drop` while the others' leaves rebalanced the group).
fn leave(consumers: &[BaseConsumer]) {
    for c in consumers {
        c.unsubscribe();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while assignments(consumers).iter().any(|owned| !owned.is_empty()) {
        assert!(Instant::now() < deadline, "consumers still own partitions");
        for c in consumers {
            let _ = c.poll(Duration::from_millis(20));
        }
    }
}

#[test]
fn committed_offsets_survive_a_broker_sigkill_and_the_group_resumes_there() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let broker = start_broker(tmp.path(), addr);
    create_topic_raw(addr, "resumed", 4);
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

/// Counts the rebalances a consumer goes through (revocations and
/// assignments alike).
#[derive(Clone, Default)]
struct Rebalances(Arc<AtomicUsize>);

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn partitions_of(list: &TopicPartitionList) -> BTreeSet<i32> {
    list.elements().iter().map(|e| e.partition()).collect()
}

/// Polls `consumers` until `done` holds of their assignments.
fn poll_until<C: ConsumerContext>(
    consumers: &[&BaseConsumer<C>],
    what: &str,
    done: impl Fn(&[BTreeSet<i32>]) -> bool,
) -> Vec<BTreeSet<i32>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for c in consumers {
            let _ = c.poll(Duration::from_millis(20));
        }
        let owned: Vec<BTreeSet<i32>> = consumers
            .iter()
            .map(|c| partitions_of(&c.assignment().unwrap()))
            .collect();
        if done(&owned) {
            return owned;
        }
        assert!(Instant::now() < deadline, "{what}: {owned:?}");
    }
}

fn split_in_two(owned: &[BTreeSet<i32>], partitions: usize) -> bool {
    owned.iter().all(|o| !o.is_empty())
        && owned.iter().map(BTreeSet::len).sum::<usize>() == partitions
}

fn static_consumer(
    addr: SocketAddr,
    instance: &str,
    rebalances: Rebalances,
) -> BaseConsumer<Rebalances> {
    ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("group.id", "static")
        .set("group.instance.id", instance)
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "30000")
        .set("heartbeat.interval.ms", "500")
        .create_with_context(rebalances)
        .unwrap()
}

#[test]
fn a_restarted_static_member_gets_its_partitions_back_without_a_rebalance() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_broker(tmp.path(), addr);
    create_topic_raw(addr, "statics", 6);
    let (count1, count2) = (Rebalances::default(), Rebalances::default());
    let s1 = static_consumer(addr, "s1", count1.clone());
    let s2 = static_consumer(addr, "s2", count2);
    s1.subscribe(&["statics"]).unwrap();
    s2.subscribe(&["statics"]).unwrap();
    let before = poll_until(&[&s1, &s2], "never split", |o| split_in_two(o, 6));
    let settled = count1.0.load(Ordering::SeqCst);
    // A static member's close does not leave the group (KIP-345).
    drop(s2);
    let s2 = static_consumer(addr, "s2", Rebalances::default());
    s2.subscribe(&["statics"]).unwrap();
    let after = poll_until(&[&s1, &s2], "s2 never came back", |o| !o[1].is_empty());
    assert_eq!(after, before, "same partitions for the same instances");
    // Give a rebalance, if one were under way, time to reach s1.
    let quiet = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet {
        let _ = s1.poll(Duration::from_millis(50));
        let _ = s2.poll(Duration::from_millis(50));
    }
    assert_eq!(
        count1.0.load(Ordering::SeqCst),
        settled,
        "s1 saw no rebalance"
    );
}

#[test]
fn a_member_leaving_cleanly_hands_over_without_waiting_for_its_session_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_broker(tmp.path(), addr);
    create_topic_raw(addr, "leaving", 4);
    // A minute of session timeout: a handover well inside it was the leave.
    let long_session = |group: &str| -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", addr.to_string())
            .set("group.id", group)
            .set("session.timeout.ms", "60000")
            .set("heartbeat.interval.ms", "500")
            .create()
            .unwrap()
    };
    let (b, c) = (long_session("leave"), long_session("leave"));
    b.subscribe(&["leaving"]).unwrap();
    c.subscribe(&["leaving"]).unwrap();
    poll_until(&[&b, &c], "never split", |o| split_in_two(o, 4));
    let left = Instant::now();
    drop(c); // LeaveGroup
    poll_until(&[&b], "b never took over", |o| o[0].len() == 4);
    assert!(
        left.elapsed() < Duration::from_secs(30),
        "handover came from the session timeout"
    );
}

#[test]
fn a_killed_members_partitions_are_read_by_the_others_after_its_session_timeout() {
    let Some(python) = common::python_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_broker(tmp.path(), addr);
    create_topic_raw(addr, "takeover", 4);
    produce(addr, "takeover", 4, 400);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/group_member.py");
    let mut killed = std::process::Command::new(python)
        .arg(script)
        .args([&addr.to_string(), "takeover", "takeover"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let guard = common::ChildGuard(killed.id());
    let lines = std::io::BufReader::new(killed.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let b = consumer(addr, "takeover", true);
    b.subscribe(&["takeover"]).unwrap();
    let mut theirs = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    let read = |b: &BaseConsumer, seen: &mut BTreeMap<i32, BTreeSet<i64>>| {
        if let Some(Ok(m)) = b.poll(Duration::from_millis(20)) {
            seen.entry(m.partition()).or_default().insert(m.offset());
        }
    };
    loop {
        read(&b, &mut seen);
        while let Ok(line) = rx.try_recv() {
            if let Some(list) = line.strip_prefix("assigned ") {
                theirs = list
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| p.parse().unwrap())
                    .collect();
            }
        }
        let ours = partitions_of(&b.assignment().unwrap());
        if !theirs.is_empty() && !ours.is_empty() && ours.len() + theirs.len() == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never split: ours {ours:?} theirs {theirs:?}"
        );
    }
    killed.kill().unwrap(); // SIGKILL: no LeaveGroup, no commit
    killed.wait().unwrap();
    drop(guard);
    while seen.values().map(BTreeSet::len).sum::<usize>() < 400 {
        read(&b, &mut seen);
        assert!(
            Instant::now() < deadline,
            "read {:?}",
            seen.iter().map(|(p, o)| (p, o.len())).collect::<Vec<_>>()
        );
    }
    for p in &theirs {
        assert_eq!(
            seen[p].len(),
            100,
            "partition {p} of the killed member, read from its start"
        );
    }
}

#[test]
fn shardlog_groups_describe_prints_committed_offsets_and_lag() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_broker(tmp.path(), addr);
    create_topic_raw(addr, "lagging", 2);
    produce(addr, "lagging", 2, 40);
    // A standalone consumer's commit (no membership, generation -1).
    let c = consumer(addr, "lag", false);
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("lagging", 0, rdkafka::Offset::Offset(20))
        .unwrap();
    offsets
        .add_partition_offset("lagging", 1, rdkafka::Offset::Offset(5))
        .unwrap();
    c.commit(&offsets, CommitMode::Sync).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args([
            "groups",
            "describe",
            "--bootstrap",
            &addr.to_string(),
            "lag",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("lagging"))
        .map(|l| l.split_whitespace().take(5).collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["lagging", "0", "20", "20", "0"],
            ["lagging", "1", "5", "20", "15"]
        ],
        "{stdout}"
    );
}

/// Records the partitions a consumer is asked to give up.
#[derive(Clone, Default)]
struct Revocations(Arc<std::sync::Mutex<Vec<BTreeSet<i32>>>>);

impl ClientContext for Revocations {}

impl ConsumerContext for Revocations {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            self.0.lock().unwrap().push(partitions_of(list));
        }
    }
}

#[test]
fn cooperative_sticky_moves_only_some_partitions_and_the_rest_keep_consuming() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_broker(tmp.path(), addr);
    create_topic_raw(addr, "sticky", 6);
    let cooperative = |revocations: Revocations| -> BaseConsumer<Revocations> {
        ClientConfig::new()
            .set("bootstrap.servers", addr.to_string())
            .set("group.id", "sticky")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .create_with_context(revocations)
            .unwrap()
    };
    let revoked = Revocations::default();
    let a = cooperative(revoked.clone());
    a.subscribe(&["sticky"]).unwrap();
    poll_until(&[&a], "a never got all six", |o| o[0].len() == 6);
    let b = cooperative(Revocations::default());
    b.subscribe(&["sticky"]).unwrap();
    // Until the split, a must never be left with nothing: only the
    // partitions moving to b are taken from it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (kept, moved) = loop {
        let _ = a.poll(Duration::from_millis(20));
        let _ = b.poll(Duration::from_millis(20));
        let ours = partitions_of(&a.assignment().unwrap());
        let theirs = partitions_of(&b.assignment().unwrap());
        assert!(
            !ours.is_empty(),
            "a lost every partition: an eager rebalance"
        );
        if !theirs.is_empty() && ours.len() + theirs.len() == 6 && ours.is_disjoint(&theirs) {
            break (ours, theirs);
        }
        assert!(
            Instant::now() < deadline,
            "never split: {ours:?} {theirs:?}"
        );
    };
    assert_eq!((kept.len(), moved.len()), (3, 3));
    let revoked: BTreeSet<i32> = revoked
        .0
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .copied()
        .collect();
    assert_eq!(revoked, moved, "a gave up exactly what b took");
}

/// KIP-848 with librdkafka (`group.protocol=consumer`): three members
/// split twelve partitions by the broker's assignment, read every message
/// once in order, and when two leave the third gets every partition and
/// reads what comes next.
#[test]
fn librdkafka_consumer_protocol_members_split_partitions_and_take_them_over() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = format!("{GROUP_TEST_CONFIG}group-consumer-heartbeat-interval-ms = 300\n");
    let _broker = start_configured(tmp.path(), addr, &config);
    create_topic_raw(addr, "kip848", 12);
    let member = || -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", addr.to_string())
            .set("group.id", "kip848")
            .set("group.protocol", "consumer")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap()
    };
    let consumers: Vec<BaseConsumer> = (0..3).map(|_| member()).collect();
    for c in &consumers {
        c.subscribe(&["kip848"]).unwrap();
    }
    let settled = |consumers: &[BaseConsumer], want: &[usize]| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for c in consumers {
                let _ = c.poll(Duration::from_millis(50));
            }
            let owned = assignments(consumers);
            let union: BTreeSet<i32> = owned.iter().flatten().copied().collect();
            let sizes: Vec<usize> = owned.iter().map(BTreeSet::len).collect();
            if sizes == want && union.len() == 12 {
                return owned;
            }
            assert!(Instant::now() < deadline, "never {want:?}: {owned:?}");
        }
    };
    let owned = settled(&consumers, &[4, 4, 4]);
    produce(addr, "kip848", 12, 6_000);
    let mut seen: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read < 6_000 {
        assert!(Instant::now() < deadline, "read {read} of 6000");
        for (index, c) in consumers.iter().enumerate() {
            if let Some(Ok(message)) = c.poll(Duration::from_millis(20)) {
                assert!(owned[index].contains(&message.partition()));
                seen.entry(message.partition())
                    .or_default()
                    .push(message.offset());
                read += 1;
            }
        }
    }
    for (partition, offsets) in &seen {
        assert_eq!(
            offsets,
            &(0..500).collect::<Vec<i64>>(),
            "partition {partition}"
        );
    }
    for c in &consumers {
        c.commit_consumer_state(CommitMode::Sync).unwrap();
    }
    let mut consumers = consumers;
    let last = consumers.remove(0);
    leave(&consumers);
    drop(consumers);
    let alone = std::slice::from_ref(&last);
    settled(alone, &[12]);
    produce(addr, "kip848", 12, 1_200);
    let mut more: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read < 1_200 {
        assert!(
            Instant::now() < deadline,
            "after the others left: read {read} of 1200"
        );
        if let Some(Ok(message)) = last.poll(Duration::from_millis(20)) {
            more.entry(message.partition())
                .or_default()
                .push(message.offset());
            read += 1;
        }
    }
    for (partition, offsets) in &more {
        assert_eq!(
            offsets,
            &(500..600).collect::<Vec<i64>>(),
            "partition {partition}"
        );
    }
    leave(alone);
}
