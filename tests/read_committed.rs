//! read_committed through the protocol (issue 11 item 3): a transactional
//! batch no marker has closed holds the last stable offset at its first
//! offset, so Fetch with isolation_level=1 stops there (and says so in
//! last_stable_offset) while read_uncommitted reads everything, and
//! ListOffsets latest answers each isolation level its own end.

mod common;

use std::net::SocketAddr;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, InitProducerIdRequest, InitProducerIdResponse,
};

use common::{call, create_topic_raw, free_addr, start, topic_name};

const TOPIC: &str = "committed";

fn produce(addr: SocketAddr, producer_id: i64, sequence: i32, transactional: bool) -> i64 {
    let batch = common::producer_batch(producer_id, 0, sequence, 2, transactional);
    let answer = common::produce_batch(addr, TOPIC, batch, 9);
    assert_eq!(answer.error_code, 0);
    answer.base_offset
}

/// (high watermark, last stable offset, batches, aborted list length).
fn fetch(addr: SocketAddr, isolation: i8) -> (i64, i64, usize, Option<usize>) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(TOPIC))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response: FetchResponse = call(addr, ApiKey::Fetch, 11, &request);
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let records = p.records.clone().unwrap_or_default();
    let batches = engine::batch::validate(&records, 0, engine::batch::ValidateMode::Stored).count();
    let aborted = p.aborted_transactions.as_ref().map(Vec::len);
    (p.high_watermark, p.last_stable_offset, batches, aborted)
}

#[test]
fn an_open_transaction_holds_read_committed_readers_at_its_first_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let broker = start(tmp.path(), addr, "warn");
    create_topic_raw(addr, TOPIC, 1);
    let init = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let ids: Vec<i64> = (0..2)
        .map(|_| {
            let answer: InitProducerIdResponse = call(addr, ApiKey::InitProducerId, 4, &init);
            answer.producer_id.0
        })
        .collect();
    assert_eq!(produce(addr, ids[0], 0, false), 0); // 0-1, committed as written
    assert_eq!(produce(addr, ids[1], 0, true), 2); // 2-3, a transaction left open
    assert_eq!(produce(addr, ids[0], 2, false), 4); // 4-5
    assert_eq!(
        fetch(addr, 0),
        (6, 2, 3, None),
        "read_uncommitted: everything"
    );
    assert_eq!(
        fetch(addr, 1),
        (6, 2, 1, Some(0)),
        "read_committed: up to the open transaction"
    );
    assert_eq!(
        (
            common::latest_offset(addr, TOPIC, 0),
            common::latest_offset(addr, TOPIC, 1)
        ),
        (6, 2)
    );
    // The open transaction is found again after a SIGKILL.
    drop(broker);
    let _broker = start(tmp.path(), addr, "warn");
    assert_eq!(fetch(addr, 1), (6, 2, 1, Some(0)));
    assert_eq!(common::latest_offset(addr, TOPIC, 1), 2);
}
