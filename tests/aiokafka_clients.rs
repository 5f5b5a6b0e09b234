//! aiokafka (an independent asyncio client, as many Python services use it)
//! against a real broker, with its defaults: every codec produced, consumed
//! in a group with commits, offsets looked up at the ends and by time; and
//! its transactional producer (commit, abort, offsets in a transaction).
//! Needs the Python clients that scripts/test installs in .venv.

mod common;

use common::python_on_fresh_broker;

#[test]
fn aiokafka_produces_and_consumes_in_a_group_with_every_codec() {
    python_on_fresh_broker("aiokafka_clients.py", &[], |addr| {
        // The batches are stored as aiokafka compressed them (attributes'
        // codec bits: gzip 1, snappy 2, lz4 3, zstd 4).
        common::assert_stored_codecs(
            addr,
            "aio-",
            &[("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4)],
        );
    });
}

#[test]
fn aiokafka_transactions_commit_abort_and_send_offsets() {
    python_on_fresh_broker("aiokafka_transactions.py", &[], |_| {});
}
