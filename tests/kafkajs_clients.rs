//! kafkajs (a pure-JavaScript client) against a real broker, with its
//! defaults: every codec produced (snappy, LZ4 and zstd through the codec
//! packages kafkajs users add), consumed in a group with commits, offsets
//! at the ends and by time (ListOffsets: kafkajs asks v1-v3, which failed
//! to encode until issue 10); and its transactions, read by read_committed
//! (kafkajs' default) and read_uncommitted consumers. Needs Node.js and the
//! packages scripts/test installs.

mod common;

use std::process::Command;

use common::{free_addr, kafkajs_or_skip, start};

#[test]
fn kafkajs_produces_and_consumes_in_a_group_with_every_codec() {
    let Some(dir) = kafkajs_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    let status = Command::new("node")
        .arg(dir.join("kafkajs_clients.js"))
        .arg(addr.to_string())
        .env("KAFKAJS_NO_PARTITIONER_WARNING", "1")
        .status()
        .expect("node runs");
    assert!(status.success(), "kafkajs_clients.js failed: {status}");
    // The batches are stored as kafkajs compressed them.
    common::assert_stored_codecs(addr, "kjs-", &common::EVERY_CODEC);
}

#[test]
fn kafkajs_transactions_commit_abort_and_send_offsets() {
    let Some(dir) = kafkajs_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    let status = Command::new("node")
        .arg(dir.join("kafkajs_transactions.js"))
        .arg(addr.to_string())
        .env("KAFKAJS_NO_PARTITIONER_WARNING", "1")
        .status()
        .expect("node runs");
    assert!(status.success(), "kafkajs_transactions.js failed: {status}");
}
