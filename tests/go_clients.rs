//! The Go clients against a real broker (tests/clients/go): franz-go (its
//! default idempotent producer with every codec, a classic and a KIP-848
//! group with commits, kadm's admin calls, transactions read
//! read_committed and read_uncommitted), sarama (at its default protocol
//! version and at the newest it speaks, idempotent there, every codec, a
//! consumer group, the cluster admin) and segmentio/kafka-go (its Writer at
//! acks=0 and acks=all with every codec, its Reader in a group and from an
//! offset found by time, its Client's admin calls). Needs Go and the
//! program scripts/test builds.

mod common;

use std::process::Command;

use common::{free_addr, go_clients_or_skip, start};

/// Runs one scenario of the Go program against a fresh broker (the
/// program checks everything it read against what it produced), then
/// checks that the compressed topics under each of `prefixes` hold the
/// batches as the client compressed them (the scenario deletes the
/// uncompressed one).
fn scenario(name: &str, prefixes: &[&str]) {
    let Some(bin) = go_clients_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    let status = Command::new(&bin)
        .arg(name)
        .arg(addr.to_string())
        .status()
        .expect("the Go clients' program runs");
    assert!(status.success(), "goclients {name} failed: {status}");
    for prefix in prefixes {
        common::assert_stored_codecs(addr, prefix, &common::EVERY_CODEC[1..]);
    }
}

#[test]
fn franz_go_produces_consumes_in_groups_and_administers() {
    scenario("franz", &["go-franz-"]);
}

#[test]
fn franz_go_transactions_are_read_committed_and_uncommitted() {
    scenario("franz-txn", &[]);
}

#[test]
fn sarama_at_its_default_and_newest_versions() {
    scenario("sarama", &["go-sarama-default-", "go-sarama-newest-"]);
}

#[test]
fn segmentio_kafka_go_writer_reader_and_client() {
    scenario("segmentio", &["go-segmentio-"]);
}
