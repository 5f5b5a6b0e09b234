//! The Java client (kafka-clients 4.4.0) against a real broker, with its
//! defaults (idempotent producer, acks=all): every codec produced and read
//! back in groups with the range and cooperative-sticky assignors, commits
//! found by the next member; AdminClient end to end (topics, configs,
//! partitions, the cluster, offsets by time, seek, group offsets altered and
//! deleted, groups deleted, records deleted); transactions (commit, abort,
//! read_committed and read_uncommitted, read-process-write with
//! sendOffsetsToTransaction, fencing); a static member with auto-commit;
//! a Kafka Streams word count with exactly_once_v2 (state store, changelog,
//! repartition topic) closed and started again mid-stream, its counts
//! exact; a compacted topic (tombstones, an aborted and a committed
//! transaction) cleaned by the broker, read back as its latest state;
//! KIP-848's consumer group protocol with the uniform and range assignors
//! (members joining and leaving, revocations committed, the group
//! described and listed), a subscription by regular expression that picks
//! up a topic created later, and static members taking over their place;
//! Kafka Connect standalone moving a file through a topic with the file
//! source and sink connectors. Every check compares what was acknowledged with what was read
//! (tests/clients/java). Needs Java 17 and the build scripts/test makes with
//! Maven.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ChildGuard, free_addr, java_clients_or_skip, start_configured};

/// Every scenario of shardlog.JavaClients, in the order one JVM runs them.
const SCENARIOS: &str =
    "produce-consume,admin,transactions,static-member,streams,compacted,consumer-protocol";

/// One JVM for every scenario (the budget: the Java module in one
/// JVM), against one broker; each scenario uses its own topics and groups.
/// `SHARDLOG_JAVA_SCENARIOS=a,b` runs only those (to chase one failure).
#[test]
fn java_clients_every_scenario_in_one_jvm_reads_back_what_was_acknowledged() {
    let Some(class_path) = java_clients_or_skip() else {
        return;
    };
    let scenarios = std::env::var("SHARDLOG_JAVA_SCENARIOS").unwrap_or_else(|_| SCENARIOS.into());
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    // Kafka's shipped server.properties: groups form without the 3 s wait.
    // A busy cleaner for the compacted scenario.
    // KIP-848 members heartbeat every half second (Kafka's 5 s default
    // would make each reconciliation step wait that long).
    let http = free_addr();
    let config = format!(
        "group-initial-rebalance-delay-ms = 0\nlog-cleaner-backoff-ms = 100\n\
         group-consumer-heartbeat-interval-ms = 500\nhttp-listen = \"{http}\"\n"
    );
    let _broker = start_configured(tmp.path(), addr, &config);
    let status = Command::new("java")
        .arg("-cp")
        .arg(&class_path)
        .arg("shardlog.JavaClients")
        .arg(addr.to_string())
        .arg(&scenarios)
        .status()
        .expect("java runs");
    assert!(
        status.success(),
        "JavaClients failed (its output names the scenario): {status}"
    );
    if scenarios.split(',').any(|s| s == "produce-consume") {
        // Stored as the Java producer compressed them.
        common::assert_stored_codecs(addr, "java-", &common::EVERY_CODEC);
        // Its consumers fetched on sessions (KIP-227), as they do by
        // default.
        let (_, _, metrics) = common::http_request(http, "GET", "/metrics", "");
        let opened: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("shardlog_shard_fetch_sessions_opened_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        assert!(opened > 0.0, "no fetch session opened:\n{metrics}");
    }
}

/// Kafka Connect standalone (connect-runtime 4.3.1, in its own JVM) with
/// the file source and sink connectors: a file of 5,000 lines (ASCII,
/// tabs, UTF-8) goes into a one-partition topic through the source's
/// idempotent producer and out through the sink's consumer group into
/// another file, which must come out byte for byte the same; the topic
/// holds each line once.
#[test]
fn kafka_connect_standalone_moves_a_file_through_a_topic_unchanged() {
    const LINES: usize = 5_000;
    let Some(class_path) = common::connect_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = "group-initial-rebalance-delay-ms = 0\n";
    let _broker = start_configured(tmp.path(), addr, config);
    common::create_topic_raw(addr, "connect-lines", 1);
    let input = tmp.path().join("in.txt");
    let output = tmp.path().join("out.txt");
    let text: String = (0..LINES)
        .map(|i| format!("line {i}\tcafé ☕ {}\n", "x".repeat(i % 97)))
        .collect();
    std::fs::write(&input, &text).unwrap();
    let file = |name: &str, body: String| {
        let path = tmp.path().join(name);
        std::fs::write(&path, body).unwrap();
        path
    };
    let worker = file(
        "worker.properties",
        format!(
            "bootstrap.servers={addr}\n\
             key.converter=org.apache.kafka.connect.storage.StringConverter\n\
             value.converter=org.apache.kafka.connect.storage.StringConverter\n\
             offset.storage.file.filename={}\n\
             offset.flush.interval.ms=1000\n\
             listeners=http://127.0.0.1:0\n",
            tmp.path().join("connect.offsets").display()
        ),
    );
    let source = file(
        "source.properties",
        format!(
            "name=file-source\n\
             connector.class=org.apache.kafka.connect.file.FileStreamSourceConnector\n\
             tasks.max=1\nfile={}\ntopic=connect-lines\n",
            input.display()
        ),
    );
    let sink = file(
        "sink.properties",
        format!(
            "name=file-sink\n\
             connector.class=org.apache.kafka.connect.file.FileStreamSinkConnector\n\
             tasks.max=1\nfile={}\ntopics=connect-lines\n",
            output.display()
        ),
    );
    let log_path = tmp.path().join("connect.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut connect = Command::new("java")
        .arg("-cp")
        .arg(&class_path)
        .arg("org.apache.kafka.connect.cli.ConnectStandalone")
        .args([&worker, &source, &sink])
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("java runs");
    let guard = ChildGuard(connect.id());
    let connect_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let written = std::fs::read(&output).unwrap_or_default();
        if written.len() >= text.len() {
            assert!(
                written == text.as_bytes(),
                "the sink's file differs from the source's ({} bytes, {} expected)",
                written.len(),
                text.len()
            );
            break;
        }
        if let Some(status) = connect.try_wait().unwrap() {
            panic!("Connect exited ({status}):\n{}", connect_log());
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} bytes moved after 2 minutes; Connect's log:\n{}",
            written.len(),
            text.len(),
            connect_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        common::records_stored(addr, "connect-lines", 0),
        LINES,
        "each line once in the topic"
    );
    drop(guard);
    let _ = connect.wait();
}
