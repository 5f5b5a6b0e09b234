//! `shardlog serve --config FILE`: the file's settings apply, flags win
//! over it, and a bad file stops the broker with a message naming the key.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;

use common::{call, free_addr, start_with, topic_name};

#[test]
fn config_file_settings_apply_and_flags_win() {
    let tmp = tempfile::tempdir().unwrap();
    let (file_addr, flag_addr) = (free_addr(), free_addr());
    let config = tmp.path().join("shardlog.toml");
    std::fs::write(
        &config,
        format!(
            r#"
listen = "{file_addr}"
num-partitions = 3
socket-request-max-bytes = 65536
[topic-defaults]
"log.retention.ms" = 3600000
"#
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let _broker = start_with(
        &data,
        flag_addr,
        "info",
        &["--config", config.to_str().unwrap()],
    );
    assert!(
        TcpStream::connect(file_addr).is_err(),
        "--listen wins over the file's listen"
    );

    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name("auto"))),
        ]))
        .with_allow_auto_topic_creation(true);
    let metadata: MetadataResponse = call(flag_addr, ApiKey::Metadata, 9, &request);
    assert_eq!(metadata.topics.len(), 1);
    assert_eq!(metadata.topics[0].error_code, 0);
    assert_eq!(metadata.topics[0].partitions.len(), 3, "num-partitions");

    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("auto"))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str("retention.ms")])),
    ]);
    let described: DescribeConfigsResponse = call(flag_addr, ApiKey::DescribeConfigs, 4, &request);
    let entry = &described.results[0].configs[0];
    assert_eq!(entry.name.as_str(), "retention.ms");
    assert_eq!(entry.value.as_deref(), Some("3600000"));
    assert_eq!(entry.config_source, 4, "STATIC_BROKER_CONFIG");

    // A 100 KiB frame is over the file's socket-request-max-bytes.
    let mut stream = TcpStream::connect(flag_addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(&(100i32 << 10).to_be_bytes()).unwrap();
    let mut byte = [0u8; 1];
    assert!(
        matches!(stream.read(&mut byte), Ok(0) | Err(_)),
        "the oversized frame closes the connection"
    );
}

#[test]
fn a_bad_config_file_is_refused_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("bad.toml");
    std::fs::write(&config, "[topic-defaults]\n\"retention.mss\" = 5\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["serve", "--listen", &free_addr().to_string(), "--data-dir"])
        .arg(tmp.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("retention.mss"), "{stderr}");
}

#[test]
fn a_relative_data_dir_works() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .current_dir(tmp.path())
        .args(["serve", "--shards", "2", "--listen", &addr.to_string()])
        .args(["--data-dir", "data"])
        .spawn()
        .unwrap();
    let _broker = common::Broker(child);
    common::wait_listening(addr);
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name("rel"))),
        ]))
        .with_allow_auto_topic_creation(true);
    let metadata: MetadataResponse = call(addr, ApiKey::Metadata, 9, &request);
    assert_eq!(metadata.topics[0].error_code, 0);
    assert!(tmp.path().join("data/rel-0").is_dir());
}

#[test]
fn a_port_held_by_another_socket_is_refused_not_shared() {
    let tmp = tempfile::tempdir().unwrap();
    // The kernel's choice of port, held from the start: a port found free
    // and bound again later may be taken in between by anything on the
    // machine (it was once, in CI).
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

/// The CPUs a task may run on, from its `/proc/.../status`.
fn cpus_allowed(status: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

/// The CPUs a task of `pid` may run on (`Cpus_allowed_list`), by thread name.
fn threads_cpus(pid: u32) -> Vec<(String, String)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path();
        let (Ok(name), Ok(status)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("status")),
        ) else {
            continue; // the thread ended meanwhile
        };
        threads.push((name.trim().to_string(), cpus_allowed(&status)));
    }
    threads
}

/// Shards are pinned one per CPU by default (two shards here, on a
/// machine of two or more CPUs: each shard's executor thread on its own
/// CPU), and `--pin-shards false` leaves every one of them the process's
/// CPUs. A shard's blocking-pool thread has its name too, and may have been
/// started before the executor pinned itself: it may keep every CPU.
#[test]
fn pin_shards_decides_where_shard_threads_may_run() {
    let cores = std::thread::available_parallelism().unwrap().get();
    for pin in [None, Some("false"), Some("true")] {
        let tmp = tempfile::tempdir().unwrap();
        let addr = free_addr();
        let extra: Vec<&str> = pin.map(|p| vec!["--pin-shards", p]).unwrap_or_default();
        let broker = start_with(&tmp.path().join("data"), addr, "warn", &extra);
        let pid = broker.0.id();
        let process_cpus =
            cpus_allowed(&std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap());
        let pinned = pin != Some("false") && (pin.is_some() || 2 <= cores);
        let expected = |shard: usize| {
            if pinned {
                (shard % cores).to_string()
            } else {
                process_cpus.clone()
            }
        };
        let of_shard = |threads: &[(String, String)], shard: usize| -> Vec<String> {
            let prefix = format!("shard-{shard}-");
            threads
                .iter()
                .filter(|(name, _)| name.starts_with(&prefix))
                .map(|(_, cpus)| cpus.clone())
                .collect()
        };
        // The broker answers once one shard listens; a shard's executor
        // pins itself as it starts, which may be a moment later.
        let mut threads = threads_cpus(pid);
        for _ in 0..100 {
            if (0..2).all(|shard| of_shard(&threads, shard).contains(&expected(shard))) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            threads = threads_cpus(pid);
        }
        for shard in 0..2 {
            let cpus = of_shard(&threads, shard);
            assert!(
                !cpus.is_empty(),
                "{pin:?}: threads of shard {shard}: {threads:?}"
            );
            let expected = expected(shard);
            assert!(
                cpus.contains(&expected),
                "{pin:?}: shard {shard} on {expected} ({threads:?})"
            );
            for cpu in &cpus {
                assert!(
                    *cpu == expected || *cpu == process_cpus,
                    "{pin:?}: shard {shard} ({threads:?})"
                );
            }
        }
    }
}

/// `slow-request-log-ms = 0` logs every request but those that wait by
/// design, with where its time went, at most one line a second per shard.
#[test]
fn slow_requests_are_logged_with_where_the_time_went() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let broker = common::start_configured_logged(tmp.path(), addr, "slow-request-log-ms = 0\n");
    common::create_topic_raw(addr, "slow", 1);
    // Past the one-line-a-second bound of whichever shard logged before.
    std::thread::sleep(Duration::from_millis(1_100));
    let batch = engine::batch::builder::simple_batch(1, 100, 1_700_000_000_000, b's');
    assert_eq!(common::produce_batch(addr, "slow", batch, 9).error_code, 0);
    let (error, _, _) = common::fetch_records(addr, "slow", 0, 0);
    assert_eq!(error, 0);
    assert!(common::stop(broker).success());
    let log = std::fs::read_to_string(tmp.path().join("broker.log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("slow request")).collect();
    let produce = lines
        .iter()
        .find(|l| l.contains("api=Produce"))
        .unwrap_or_else(|| panic!("a Produce line in {lines:#?}"));
    for field in ["total_ms=", "ordered_ms=", "completing_ms=", "sending_ms="] {
        assert!(produce.contains(field), "{field} in {produce}");
    }
    assert!(
        !lines.iter().any(|l| l.contains("api=Fetch")),
        "Fetch waits by design: {lines:#?}"
    );
}
