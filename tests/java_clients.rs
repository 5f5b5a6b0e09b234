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
//! transaction) cleaned by the broker, read back as its latest state.
//! Every check compares what was acknowledged with what was read
//! (tests/clients/java). Needs Java 17 and the build scripts/test makes with
//! Maven.

mod common;

use std::process::Command;

use common::{free_addr, java_clients_or_skip, start_configured};

/// Runs one scenario of shardlog.JavaClients against a fresh broker.
fn run_scenario(scenario: &str) {
    let Some(class_path) = java_clients_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    // Kafka's shipped server.properties: groups form without the 3 s wait.
    // A busy cleaner for the compacted scenario.
    let config = "group-initial-rebalance-delay-ms = 0\nlog-cleaner-backoff-ms = 100\n";
    let _broker = start_configured(tmp.path(), addr, config);
    let status = Command::new("java")
        .arg("-cp")
        .arg(&class_path)
        .arg("shardlog.JavaClients")
        .arg(addr.to_string())
        .arg(scenario)
        .status()
        .expect("java runs");
    assert!(status.success(), "JavaClients {scenario} failed: {status}");
    if scenario == "produce-consume" {
        // Stored as the Java producer compressed them.
        common::assert_stored_codecs(addr, "java-", &common::EVERY_CODEC);
    }
}

#[test]
fn java_producer_defaults_every_codec_and_consumer_groups_read_back_what_was_acknowledged() {
    run_scenario("produce-consume");
}

#[test]
fn java_admin_client_topics_configs_partitions_offsets_and_groups() {
    run_scenario("admin");
}

#[test]
fn java_transactions_commit_abort_read_process_write_and_fencing() {
    run_scenario("transactions");
}

#[test]
fn java_static_member_with_auto_commit_resumes_after_what_it_committed() {
    run_scenario("static-member");
}

#[test]
fn kafka_streams_word_count_exactly_once_v2_across_a_restart() {
    run_scenario("streams");
}

#[test]
fn java_reads_a_compacted_topic_with_tombstones_and_transactions_as_its_latest_state() {
    run_scenario("compacted");
}
