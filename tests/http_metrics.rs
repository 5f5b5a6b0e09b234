//! The HTTP listener's `GET /metrics` against a real broker: the page
//! parses as Prometheus text, and its counters move with traffic (librdkafka
//! produces and reads; a malformed request counts as a failure): requests
//! and their latency per API, records and bytes per topic in and out, the
//! produce-to-durable and fdatasync histograms, log sizes, partitions,
//! under-replicated partitions and a group's lag; other paths and methods
//! get JSON errors.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use common::{create_topic_raw, free_addr, start_with};

fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    common::http_request(addr, method, path, "")
}

/// Every sample of the page: `name{labels}` -> value; checks the format.
fn samples(page: &str) -> BTreeMap<String, f64> {
    assert!(
        page.ends_with("# EOF\n"),
        "an OpenMetrics page ends with # EOF"
    );
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("sample: {l}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {l}"));
            (name.to_string(), value)
        })
        .collect()
}

fn scrape(http_addr: SocketAddr) -> BTreeMap<String, f64> {
    let (status, content_type, body) = http(http_addr, "GET", "/metrics");
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    samples(&body)
}

fn sum(samples: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn metrics_move_with_traffic_and_errors_are_json() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let http_addr = free_addr();
    let _broker = start_with(
        tmp.path(),
        addr,
        "warn",
        &["--http-listen", &http_addr.to_string()],
    );
    create_topic_raw(addr, "metered", 2);
    let before = scrape(http_addr);
    assert_eq!(before["shardlog_partitions"], 2.0);
    assert_eq!(sum(&before, "shardlog_requests_total{api=\"Produce\""), 0.0);

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .create()
        .unwrap();
    let payload = "x".repeat(1000);
    for i in 0..200 {
        let key = i.to_string();
        common::send_when_queued(
            &producer,
            BaseRecord::to("metered").key(&key).payload(&payload),
        );
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    drop(producer);
    // A malformed Metadata request: the broker closes the connection.
    let mut bad = TcpStream::connect(addr).unwrap();
    bad.write_all(&common::probe::request_frame(3, 12, 7, &[0xff; 9]))
        .unwrap();
    let mut rest = Vec::new();
    let _ = bad.read_to_end(&mut rest);

    let after = scrape(http_addr);
    let produces = sum(&after, "shardlog_requests_total{api=\"Produce\"");
    assert!(produces >= 1.0, "{after:?}");
    assert_eq!(
        after["shardlog_request_duration_seconds_count{api=\"Produce\"}"], produces,
        "every answered Produce timed"
    );
    assert_eq!(
        after["shardlog_request_duration_seconds_bucket{le=\"+Inf\",api=\"Produce\"}"],
        produces
    );
    assert!(after["shardlog_request_failures_total{api=\"Metadata\"}"] >= 1.0);
    // Per topic: every record produced counted once, its bytes too; a
    // consumer's fetch counts bytes out.
    assert_eq!(
        after["shardlog_topic_records_in_total{topic=\"metered\"}"],
        200.0
    );
    assert!(after["shardlog_topic_bytes_in_total{topic=\"metered\"}"] >= 200.0 * 1000.0);
    // One wait per partition of each Produce (a request may carry both).
    let durable = after["shardlog_produce_durable_seconds_count"];
    assert!(
        (produces..=2.0 * produces).contains(&durable),
        "{durable} of {produces}"
    );
    let read =
        common::records_stored(addr, "metered", 0) + common::records_stored(addr, "metered", 1);
    assert_eq!(read, 200);
    let fetched = scrape(http_addr);
    assert!(fetched["shardlog_topic_bytes_out_total{topic=\"metered\"}"] >= 200.0 * 1000.0);
    assert!(
        after["shardlog_fdatasync_seconds_count"] >= 1.0,
        "durable appends synced"
    );
    assert_eq!(after["shardlog_under_replicated_partitions"], 0.0);
    // A group's lag: the log end minus what it committed.
    let (_, _, offsets) = http(http_addr, "GET", "/offsets/metered");
    let offsets: serde_json::Value = serde_json::from_str(&offsets).unwrap();
    let end = offsets[0]["latest"].as_i64().unwrap();
    assert!(end > 10, "{offsets}");
    let commit = r#"[{"topic":"metered","partition":0,"offset":10}]"#;
    let (status, _, _) = common::http_request(http_addr, "POST", "/commit/lagging", commit);
    assert_eq!(status, 200);
    let lagging = scrape(http_addr);
    assert_eq!(
        lagging["shardlog_consumer_group_lag{group=\"lagging\",topic=\"metered\",partition=\"0\"}"],
        (end - 10) as f64
    );
    shards_count_their_work(&before, &after);
    // An error code in a response counts by API and error.
    let (error, _, _) = common::fetch_records(addr, "metered", 0, 1 << 40);
    assert_eq!(error, 1, "OFFSET_OUT_OF_RANGE");
    let errors = scrape(http_addr);
    assert_eq!(
        errors["shardlog_request_errors_total{api=\"Fetch\",version=\"11\",error=\"OFFSET_OUT_OF_RANGE\"}"],
        1.0,
        "{errors:?}"
    );
    let logged = sum(&after, "shardlog_log_size_bytes{topic=\"metered\"");
    assert!(logged >= 200.0 * 1000.0, "log sizes {logged}");
    assert!(
        sum(&after, "shardlog_connections_accepted_total")
            > sum(&before, "shardlog_connections_accepted_total")
    );

    let (status, content_type, body) = http(http_addr, "GET", "/nowhere");
    assert_eq!((status, content_type.as_str()), (404, "application/json"));
    assert!(body.contains("\"error\":\"NOT_FOUND\""), "{body}");
    let (status, _, body) = http(http_addr, "POST", "/metrics");
    assert_eq!(status, 405);
    assert!(body.contains("\"error\":\"INVALID_REQUEST\""), "{body}");
}

/// Each shard's executor counted busy time and tasks, more after the
/// traffic; nothing is in flight between requests (the scrape itself is
/// HTTP, not a Kafka request).
fn shards_count_their_work(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) {
    for shard in ["0", "1"] {
        for family in [
            "shardlog_shard_busy_seconds_total",
            "shardlog_shard_tasks_total",
        ] {
            let key = format!("{family}{{shard=\"{shard}\"}}");
            assert!(after[&key] > before[&key], "{key}: {after:?}");
        }
        let busy = after[&format!("shardlog_shard_busy_seconds_total{{shard=\"{shard}\"}}")];
        let tasks = after[&format!("shardlog_shard_task_seconds_total{{shard=\"{shard}\"}}")];
        assert!(tasks <= busy, "running tasks is part of being busy");
        let key = format!("shardlog_shard_requests_in_flight{{shard=\"{shard}\"}}");
        assert_eq!(after[&key], 0.0, "{key}");
        let key = format!("shardlog_shard_mesh_in_progress{{shard=\"{shard}\"}}");
        assert!(
            after[&key] <= 1.0,
            "at most the scrape's own gathering: {key}"
        );
    }
}
