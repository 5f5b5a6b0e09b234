//! Log compaction with a real client (issue 14): a compacted topic written
//! by librdkafka's default (idempotent) producer, 1,000 keys updated 100
//! times each, is cleaned by the broker's own cleaner (a short
//! `log-cleaner-backoff-ms`), then read from the beginning: exactly one
//! record per key, its latest value, at the offset it was written at.
//! Then tombstones for a tenth of the keys: once `delete.retention.ms`
//! has passed, those keys are gone and the others read as before. And the
//! broker killed (SIGKILL) at each step of a segment's swap: each key
//! reads back as its latest acknowledged value.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{
    BaseRecord, DefaultProducerContext, Producer, ProducerContext, ThreadedProducer,
};

use common::{free_addr, start_configured};

/// A record as written or read: (offset, key, value).
type Stored = (i64, String, String);

/// Every acknowledged record, or the error.
#[derive(Clone, Default)]
struct Acknowledged(Arc<Mutex<Vec<Result<Stored, String>>>>);

impl ClientContext for Acknowledged {}

impl ProducerContext for Acknowledged {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
        let report = match result {
            Ok(m) => Ok((m.offset(), text(m.key()), text(m.payload()))),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.lock().unwrap().push(report);
    }
}

const KEYS: usize = 1_000;
const UPDATES: usize = 100;

/// Every record of partition 0 from the beginning to the end the broker
/// reports: (offset, key, value).
fn read_all(addr: std::net::SocketAddr, topic: &str) -> Vec<Stored> {
    read_all_at(addr, topic, "read_uncommitted")
}

/// [`read_all`] at `isolation` (read_committed or read_uncommitted).
fn read_all_at(addr: std::net::SocketAddr, topic: &str, isolation: &str) -> Vec<Stored> {
    let consumer = common::assigned_consumer(addr, topic, 1, "table-readers", isolation);
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.last().is_none_or(|(offset, _, _)| offset + 1 < high) {
        assert!(
            Instant::now() < deadline,
            "read {} records, end {high}",
            out.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            let text =
                |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
            out.push((
                message.offset(),
                text(message.key()),
                text(message.payload()),
            ));
        }
    }
    out
}

/// Creates the compacted topic "table" (one partition, 64 KiB segments,
/// cleaned at any dirty share: a pass during the writes can leave the last
/// updates' segments under the default 0.5; tombstones kept 2 s).
fn create_table(addr: std::net::SocketAddr) {
    create_compacted(addr, "table", 2_000);
}

/// Creates the compacted `topic` as [`create_table`] does, tombstones and
/// markers kept `delete_retention_ms`.
fn create_compacted(addr: std::net::SocketAddr, topic: &str, delete_retention_ms: u32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .create()
        .unwrap();
    let retention = delete_retention_ms.to_string();
    let topic = NewTopic::new(topic, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("segment.bytes", "65536")
        .set("delete.retention.ms", &retention);
    for result in
        futures::executor::block_on(admin.create_topics(&[topic], &AdminOptions::new())).unwrap()
    {
        result.unwrap();
    }
}

/// librdkafka's default producer (idempotent, acks=all), lz4, 16 KiB
/// batches, reporting to `acknowledged`.
fn table_producer(
    addr: std::net::SocketAddr,
    acknowledged: &Acknowledged,
) -> ThreadedProducer<Acknowledged> {
    ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        // Batches smaller than a segment: segments hold several, and the
        // cleaned ones are small enough to be merged.
        .set("batch.size", "16384")
        .create_with_context(acknowledged.clone())
        .unwrap()
}

#[test]
fn the_cleaner_keeps_the_latest_record_of_each_key_for_a_librdkafka_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_configured(tmp.path(), addr, "log-cleaner-backoff-ms = 200\n");
    create_table(addr);
    let acknowledged = Acknowledged::default();
    let producer = table_producer(addr, &acknowledged);
    for update in 0..UPDATES {
        for key in 0..KEYS {
            let (k, v) = (format!("key-{key}"), format!("value-{update}"));
            common::send_when_queued(&producer, BaseRecord::to("table").key(&k).payload(&v));
        }
    }
    fill(&producer, "table", "filler");
    producer.flush(Duration::from_secs(120)).unwrap();
    let mut written: Vec<Stored> = acknowledged
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.clone().unwrap())
        .collect();
    assert_eq!(
        written.len(),
        KEYS * UPDATES + 2_001,
        "everything acknowledged"
    );
    written.sort();
    let latest: BTreeMap<String, (i64, String)> = written
        .iter()
        .filter(|(_, key, _)| key.starts_with("key-"))
        .map(|(offset, key, value)| (key.clone(), (*offset, value.clone())))
        .collect();
    assert_eq!(latest.len(), KEYS);
    assert!(
        latest
            .values()
            .all(|(_, v)| *v == format!("value-{}", UPDATES - 1))
    );

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let read = read_all(addr, "table");
        let updates: Vec<&Stored> = read
            .iter()
            .filter(|(_, key, _)| key.starts_with("key-"))
            .collect();
        if updates.len() == KEYS {
            for (offset, key, value) in updates {
                assert_eq!(
                    (offset, value),
                    (&latest[key].0, &latest[key].1),
                    "{key}: its latest record, at its offset"
                );
            }
            let offsets: Vec<i64> = read.iter().map(|r| r.0).collect();
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "in offset order");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {} updates of {KEYS} keys after 2 minutes",
            updates.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    tombstones_remove_their_keys(addr, &producer, &latest);
}

/// Tombstones for the first [`DELETED`] keys: their values go at the next
/// pass, the tombstones themselves `delete.retention.ms` (2 s) after it;
/// the other keys keep their `latest` records.
fn tombstones_remove_their_keys(
    addr: std::net::SocketAddr,
    producer: &ThreadedProducer<Acknowledged>,
    latest: &BTreeMap<String, (i64, String)>,
) {
    for key in 0..DELETED {
        let k = format!("key-{key}");
        common::send_when_queued(producer, BaseRecord::<str, str>::to("table").key(&k));
    }
    fill(producer, "table", "more-filler");
    producer.flush(Duration::from_secs(120)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let read = read_all(addr, "table");
        let left: BTreeMap<&str, (i64, &str)> = read
            .iter()
            .filter(|(_, key, _)| key.starts_with("key-"))
            .map(|(offset, key, value)| (key.as_str(), (*offset, value.as_str())))
            .collect();
        let kept: BTreeMap<&str, (i64, &str)> = latest
            .iter()
            .filter(|(key, _)| !deleted(key))
            .map(|(key, (offset, value))| (key.as_str(), (*offset, value.as_str())))
            .collect();
        if left.len() == KEYS - DELETED {
            assert_eq!(left, kept, "the other keys' latest records");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} keys left after 2 minutes, of them {} deleted",
            left.len(),
            left.keys().filter(|k| deleted(k)).count()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Keys with a tombstone: the first [`DELETED`].
const DELETED: usize = 100;

fn deleted(key: &str) -> bool {
    key.strip_prefix("key-")
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| n < DELETED)
}

/// Records of other keys (`{prefix}-N`) after those a test checks, so that
/// those lie in sealed segments (the active one is never cleaned): hard to
/// compress (lz4), so that they fill more than a segment; then one more
/// request (key `filler-end`), which rolls the segment they end.
fn fill(producer: &ThreadedProducer<Acknowledged>, topic: &str, prefix: &str) {
    let mut noise = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..2_000 {
        let v: String = (0..12)
            .map(|_| {
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                format!("{noise:016x}")
            })
            .collect();
        let k = format!("{prefix}-{i}");
        common::send_when_queued(producer, BaseRecord::to(topic).key(&k).payload(&v));
    }
    // librdkafka may have sent all of it as one batch: a segment holds at
    // least one batch, so the segment would not roll before the next one.
    // One key for all: a producer's last batch, superseded by the next
    // producer's, stays as an empty batch that readers read past.
    producer.flush(Duration::from_secs(120)).unwrap();
    let end = BaseRecord::to(topic).key("filler-end").payload(prefix);
    common::send_when_queued(producer, end);
}

/// A crash at each step of a segment's swap (crash points in the cleaner,
/// `SHARDLOG_FAILPOINT`, the last two in the merge of the segments it
/// shrank): the data of each round (30 updates of 300 keys) is written and
/// acknowledged, the broker stopped, started again with the crash point
/// armed so that its cleaner SIGKILLs it there, then started as usual:
/// every key reads back as its latest acknowledged value, at its offset,
/// and cleaning resumes until one record per key is left.
#[test]
fn a_crash_at_any_step_of_cleaning_loses_no_latest_value() {
    const KEYS: usize = 300;
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    // The cleaner idle while a round is written, busy after.
    let idle = "log-cleaner-backoff-ms = 3600000\n";
    let busy = "log-cleaner-backoff-ms = 20\n";
    let mut broker = start_configured(tmp.path(), addr, idle);
    create_table(addr);
    let mut latest: BTreeMap<String, (i64, String)> = BTreeMap::new();
    let steps = [
        "clean-rewritten",
        "clean-indexes-removed",
        "clean-renamed",
        "clean-swapped",
        "merge-committed",
        "merge-old-deleted",
    ];
    for (round, step) in steps.into_iter().enumerate() {
        let acknowledged = Acknowledged::default();
        let producer = table_producer(addr, &acknowledged);
        for update in 0..30 {
            for key in 0..KEYS {
                let (k, v) = (format!("key-{key}"), format!("round-{round}-{update}"));
                common::send_when_queued(&producer, BaseRecord::to("table").key(&k).payload(&v));
            }
        }
        fill(&producer, "table", &format!("filler-{round}"));
        producer.flush(Duration::from_secs(120)).unwrap();
        drop(producer);
        for report in acknowledged.0.lock().unwrap().iter() {
            let (offset, key, value) = report.clone().expect("acknowledged");
            // Reports need not come in offset order.
            if key.starts_with("key-") && latest.get(&key).is_none_or(|(o, _)| *o < offset) {
                latest.insert(key, (offset, value));
            }
        }
        assert!(common::stop(broker).success());
        let mut crashing = common::start_configured_failing(tmp.path(), addr, busy, step);
        let status = wait_exit(&mut crashing.0, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{step}: the crash point was never reached"));
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "{step}: {status}"
        );
        broker = start_configured(tmp.path(), addr, busy);
        let want: BTreeMap<&str, (i64, &str)> = latest
            .iter()
            .map(|(k, (o, v))| (k.as_str(), (*o, v.as_str())))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let read = read_all(addr, "table");
            let offsets: Vec<i64> = read.iter().map(|r| r.0).collect();
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "in offset order");
            let updates: Vec<&Stored> = read.iter().filter(|r| r.1.starts_with("key-")).collect();
            let mut found: BTreeMap<&str, (i64, &str)> = BTreeMap::new();
            for (offset, key, value) in &updates {
                found.insert(key, (*offset, value));
            }
            assert_eq!(found, want, "after {step}: each key's latest value");
            if updates.len() == KEYS {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "after {step}: {} updates of {KEYS} keys after a minute",
                updates.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(common::stop(broker).success());
        broker = start_configured(tmp.path(), addr, idle);
    }
    drop(broker);
}

/// An abort marker the cleaner removed stays removed from the aborted
/// transactions a fetch lists, also when the broker is killed right after
/// the swap of its segment, before the pass's end rewrote the producers'
/// snapshot (whose older version lists it): a read_committed reader
/// (librdkafka) would otherwise skip the producer's later committed
/// records, waiting for a marker that is gone.
#[test]
fn an_abort_marker_cleaned_away_before_a_kill_stays_forgotten() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let idle = "log-cleaner-backoff-ms = 3600000\n";
    let busy = "log-cleaner-backoff-ms = 20\n";
    let broker = start_configured(tmp.path(), addr, idle);
    // Markers kept 10 s after a pass first saw them: time to stop the
    // broker after the pass that removes the aborted records and before
    // the one that removes their marker.
    create_compacted(addr, "ledger", 10_000);
    let timeout = Duration::from_secs(30);
    let writer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("transactional.id", "ledger-writer")
        .create()
        .unwrap();
    writer.init_transactions(timeout).unwrap();
    for outcome in ["aborted", "committed"] {
        writer.begin_transaction().unwrap();
        for key in 0..100 {
            let k = format!("key-{key}");
            common::send_when_queued(&writer, BaseRecord::to("ledger").key(&k).payload(outcome));
        }
        writer.flush(timeout).unwrap();
        match outcome {
            "aborted" => writer.abort_transaction(timeout).unwrap(),
            _ => writer.commit_transaction(timeout).unwrap(),
        }
    }
    drop(writer);
    let acknowledged = Acknowledged::default();
    let filler = table_producer(addr, &acknowledged);
    fill(&filler, "ledger", "filler");
    filler.flush(timeout).unwrap();
    drop(filler);
    let values = |read: &[Stored]| -> BTreeMap<String, String> {
        read.iter()
            .filter(|(_, key, _)| key.starts_with("key-"))
            .map(|(_, key, value)| (key.clone(), value.clone()))
            .collect()
    };
    let committed: BTreeMap<String, String> = (0..100)
        .map(|key| (format!("key-{key}"), "committed".to_string()))
        .collect();

    // The first pass: the aborted records go, their marker stays.
    assert!(common::stop(broker).success());
    let broker = start_configured(tmp.path(), addr, busy);
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_all(addr, "ledger").iter().any(|r| r.2 == "aborted") {
        assert!(
            Instant::now() < deadline,
            "aborted records left after a minute"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(common::stop(broker).success());

    // The pass that removes the marker, killed at its segment's swap.
    let mut crashing = common::start_configured_failing(tmp.path(), addr, busy, "clean-renamed");
    let status = wait_exit(&mut crashing.0, Duration::from_secs(60))
        .expect("the marker's swap was never reached");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "{status}"
    );
    let broker = start_configured(tmp.path(), addr, idle);
    assert_eq!(
        values(&read_all(addr, "ledger")),
        committed,
        "read_uncommitted"
    );
    let read = read_all_at(addr, "ledger", "read_committed");
    assert_eq!(
        values(&read),
        committed,
        "read_committed: the writer's later transaction"
    );
    assert!(common::stop(broker).success());
}

/// The child's exit status once it exits, or `None` after `within`.
fn wait_exit(
    child: &mut std::process::Child,
    within: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A consumer reading the table from the beginning, a few KiB a fetch,
/// while the cleaner (started with the broker) swaps the segments under
/// it: every record it reads is the one acknowledged at that offset, in
/// offset order, with no error, and the last value it reads of each key
/// is the key's latest.
#[test]
fn a_reader_mid_log_reads_on_while_segments_are_swapped() {
    const KEYS: usize = 1_000;
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let broker = start_configured(tmp.path(), addr, "log-cleaner-backoff-ms = 3600000\n");
    create_table(addr);
    let acknowledged = Acknowledged::default();
    let producer = table_producer(addr, &acknowledged);
    for update in 0..20 {
        for key in 0..KEYS {
            let (k, v) = (format!("key-{key}"), format!("value-{update}"));
            common::send_when_queued(&producer, BaseRecord::to("table").key(&k).payload(&v));
        }
    }
    fill(&producer, "table", "filler");
    producer.flush(Duration::from_secs(120)).unwrap();
    drop(producer);
    let written: BTreeMap<i64, (String, String)> = acknowledged
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            let (offset, key, value) = r.clone().unwrap();
            (offset, (key, value))
        })
        .collect();
    let mut latest: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, value) in written.values().filter(|(k, _)| k.starts_with("key-")) {
        latest.insert(key, value);
    }
    assert!(common::stop(broker).success());
    // The cleaner's first round 1.5 s after the start: the reader, paced
    // at about 5,000 records a second, is part way through by then.
    let _broker = start_configured(tmp.path(), addr, "log-cleaner-backoff-ms = 1500\n");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("group.id", "slow-reader")
        .set("enable.auto.commit", "false")
        .set("max.partition.fetch.bytes", "4096")
        .set("queued.max.messages.kbytes", "8")
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset("table", 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let end = *written.keys().last().unwrap();
    let mut last = -1i64;
    let mut read = 0usize;
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while last < end {
        assert!(Instant::now() < deadline, "read to {last} of {end}");
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("no error while the cleaner swaps");
        let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
        let (key, value) = (text(message.key()), text(message.payload()));
        assert!(message.offset() > last, "{} after {last}", message.offset());
        assert_eq!(
            written.get(&message.offset()),
            Some(&(key.clone(), value.clone())),
            "the record acknowledged at {}",
            message.offset()
        );
        last = message.offset();
        read += 1;
        std::thread::sleep(Duration::from_micros(200));
        if key.starts_with("key-") {
            seen.insert(key, value);
        }
    }
    let seen: BTreeMap<&str, &str> = seen.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(seen, latest, "each key's latest value read last");
    eprintln!(
        "read {read} of {} records written, {} left after cleaning (more: the reader was part way when segments were swapped)",
        written.len(),
        KEYS + 2_001
    );
}
