//! kafka-python (an independent, pure-Python client) against real broker
//! processes, across SIGKILL restarts: topic administration, and keyed
//! messages with headers produced with acks=all and consumed back.
//! Needs the Python client that scripts/test installs in .venv.

mod common;

use common::run_python_script as run_script;
use common::{free_addr, python_or_skip, start, stop};
use engine::batch::{Compression, ValidateMode, validate};

#[test]
fn kafka_python_creates_lists_and_describes_topics_across_a_restart() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let broker = start(tmp.path(), addr, "warn");
    run_script(&python, "admin.py", &[&addr.to_string(), "create"]);
    for p in 0..6 {
        assert!(
            tmp.path().join(format!("grows-{p}")).is_dir(),
            "grown partition {p} created"
        );
    }
    for p in 0..3 {
        assert!(
            !tmp.path().join(format!("doomed-{p}")).exists(),
            "deleted partition {p} removed"
        );
    }
    drop(broker); // SIGKILL: the metadata was durable before each answer
    let _broker = start(tmp.path(), addr, "warn");
    run_script(&python, "admin.py", &[&addr.to_string(), "check"]);
}

/// How the broker goes down between produce and consume.
enum Restart {
    /// SIGKILL after every acks=all answer.
    Kill,
    /// SIGTERM with interval flushing: acknowledged before fdatasync, so
    /// only the shutdown's flush puts the tail on disk.
    Term,
}

fn produce_restart_consume(restart: Restart) {
    let Some(python) = python_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let bootstrap = addr.to_string();
    let broker = start(tmp.path(), addr, "warn");
    let mut produce = vec![bootstrap.as_str(), "produce", "3000"];
    if let Restart::Term = restart {
        produce.push("flush.ms=3600000");
    }
    run_script(&python, "produce_consume.py", &produce);
    match restart {
        Restart::Kill => drop(broker),
        Restart::Term => {
            let status = stop(broker);
            assert!(status.success(), "SIGTERM exits 0 after flushing: {status}");
        }
    }
    let _broker = start(tmp.path(), addr, "warn");
    run_script(
        &python,
        "produce_consume.py",
        &[&bootstrap, "consume", "3000"],
    );
}

#[test]
fn kafka_python_produces_and_consumes_across_a_sigkill_restart() {
    produce_restart_consume(Restart::Kill);
}

#[test]
fn kafka_python_produces_and_consumes_across_a_sigterm_restart() {
    produce_restart_consume(Restart::Term);
}

#[test]
fn legacy_produce_versions_get_unsupported_version_and_store_nothing() {
    common::python_on_fresh_broker("legacy_produce.py", &[], |_| {});
}

#[test]
fn every_compression_codec_round_trips() {
    common::python_on_fresh_broker("compression.py", &[], |_| {});
}

/// DescribeConfigs of the broker: its settings as Kafka names them, with
/// sources; a topic config's synonyms at each level.
#[test]
fn describe_configs_lists_the_brokers_settings_and_a_topic_configs_synonyms() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let toml = "node-id = 7\nnum-partitions = 3\ngroup-initial-rebalance-delay-ms = 0\n";
    let _broker = common::start_configured(tmp.path(), addr, toml);
    run_script(&python, "broker_configs.py", &[&addr.to_string(), "7"]);
}

/// IncrementalAlterConfigs APPEND and SUBTRACT on cleanup.policy, as
/// kafka-python's admin client sends them (refused until issue 10).
#[test]
fn incremental_alter_configs_appends_and_subtracts_list_items() {
    common::python_on_fresh_broker("incremental_configs.py", &[], |_| {});
}

#[test]
fn kafka_python_consumes_in_a_group_and_administers_groups() {
    common::python_on_fresh_broker("groups.py", &[], |_| {});
}

/// Every Kafka 3.9 topic config described, set and validated; those that
/// act here take effect. The batches of the compression.type topics, sent
/// in five codecs, are all stored in the topic's codec.
#[test]
fn every_kafka_topic_config_is_described_validated_and_acted_on() {
    common::python_on_fresh_broker("topic_configs.py", &[], |addr| {
        for (topic, codec) in [
            ("recompress-zstd", Compression::Zstd),
            ("recompress-uncompressed", Compression::None),
            ("recompress-gzip", Compression::Gzip),
        ] {
            let mut offset = 0;
            let mut batches = 0;
            loop {
                let (error, high_watermark, records) =
                    common::fetch_records(addr, topic, 0, offset);
                assert_eq!(error, 0, "{topic}");
                let records = records.unwrap_or_default();
                for batch in validate(&records, 0, ValidateMode::Stored) {
                    let Ok((_, batch)) = batch else {
                        break; // a batch cut at the fetch's byte limit
                    };
                    let header = batch.header();
                    assert_eq!(header.compression(), Some(codec), "{topic} at {offset}");
                    offset = header.last_offset().get() + 1;
                    batches += 1;
                }
                if offset >= high_watermark {
                    break;
                }
            }
            assert_eq!(offset, 1000, "{topic}: every record was read");
            println!("{topic}: {batches} batches, all {codec:?}");
        }
    });
}
