//! confluent-kafka-python (on the librdkafka its wheel bundles, 2.16: newer
//! than the rdkafka crate's, so newer request versions) against a real
//! broker: an idempotent producer with every codec read back by a classic
//! and a KIP-848 group with commits, the AdminClient's calls (topics,
//! cluster, configs, partitions, offsets at the ends, by time and of the
//! largest timestamp, DeleteRecords, group offsets listed and altered,
//! groups listed, described and deleted) and a read-process-write
//! transaction, aborted once, read back read_committed. Needs the Python
//! clients scripts/test installs in .venv.

mod common;

/// Runs one scenario of the script against a fresh broker, then `after`
/// while the broker still runs.
fn scenario(name: &str, after: impl FnOnce(std::net::SocketAddr)) {
    common::python_on_fresh_broker("confluent_kafka_clients.py", &[name], after);
}

#[test]
fn confluent_kafka_produces_every_codec_and_consumes_in_both_group_protocols() {
    // The batches are stored as the client compressed them.
    scenario("produce-consume", |addr| {
        common::assert_stored_codecs(addr, "ck-", &common::EVERY_CODEC);
    });
}

#[test]
fn confluent_kafka_admin_client() {
    scenario("admin", |_| {});
}

#[test]
fn confluent_kafka_read_process_write_transactions() {
    scenario("transactions", |_| {});
}
