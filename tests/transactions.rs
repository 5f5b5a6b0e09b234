//! Transactions (issue 11 item 2) end to end with librdkafka against real
//! broker processes: commits and aborts over partitions on both shards
//! read back by read_committed and read_uncommitted consumers, a producer
//! fenced by a newer instance, an abandoned transaction aborted by its
//! timeout, and a broker SIGKILLed between a commit's markers whose restart
//! completes the commit. The tooling APIs (DescribeTransactions,
//! ListTransactions, DescribeProducers) are checked along the way.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, ListTransactionsRequest, ListTransactionsResponse,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use common::{Broker, call, create_topic_raw, free_addr, start, topic_name, wait_listening};

const TIMEOUT: Duration = Duration::from_secs(30);

fn transactional_producer(addr: SocketAddr, id: &str, extra: &[(&str, &str)]) -> BaseProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", addr.to_string())
        .set("transactional.id", id)
        .set("linger.ms", "2");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let producer: BaseProducer = config.create().unwrap();
    producer.init_transactions(TIMEOUT).unwrap();
    producer
}

/// Sends `payloads` as (partition, payload) inside the open transaction.
fn send_all(producer: &BaseProducer, topic: &str, payloads: &[(i32, String)]) {
    for (partition, payload) in payloads {
        let mut record = BaseRecord::<(), str>::to(topic)
            .partition(*partition)
            .payload(payload.as_str());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) => {
                    assert!(e.to_string().contains("Queue full"), "send: {e}");
                    record = back;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
}

/// Everything a consumer at `isolation` reads from `topic`, by partition:
/// `expected` messages, then nothing more for half a second.
fn read_all(
    addr: SocketAddr,
    topic: &str,
    partitions: i32,
    isolation: &str,
    expected: usize,
) -> BTreeMap<i32, Vec<String>> {
    let group = format!("reader-{isolation}");
    let consumer = common::assigned_consumer(addr, topic, partitions, &group, isolation);
    let mut got: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut count = 0;
    let deadline = Instant::now() + TIMEOUT;
    let mut quiet_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if quiet_until.is_some_and(|t| now >= t) {
            break;
        }
        assert!(
            now < deadline,
            "{isolation}: {count} of {expected} messages read"
        );
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            let payload = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            got.entry(message.partition()).or_default().push(payload);
            count += 1;
        }
        if count >= expected && quiet_until.is_none() {
            quiet_until = Some(Instant::now() + Duration::from_millis(500));
        }
    }
    got
}

fn by_partition(payloads: &[(i32, String)]) -> BTreeMap<i32, Vec<String>> {
    let mut map: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (p, payload) in payloads {
        map.entry(*p).or_default().push(payload.clone());
    }
    map
}

fn transaction(name: &str, partitions: i32, count: usize) -> Vec<(i32, String)> {
    (0..count)
        .map(|i| (i as i32 % partitions, format!("{name}-{i}")))
        .collect()
}

/// DescribeTransactions of one id: (error, state, producer id, epoch,
/// partitions in the running transaction).
fn describe(addr: SocketAddr, id: &str) -> (i16, String, i64, i16, usize) {
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(id.to_string()))]);
    let response: DescribeTransactionsResponse =
        call(addr, ApiKey::DescribeTransactions, 0, &request);
    let state = &response.transaction_states[0];
    (
        state.error_code,
        state.transaction_state.to_string(),
        state.producer_id.0,
        state.producer_epoch,
        state.topics.iter().map(|t| t.partitions.len()).sum(),
    )
}

fn wait_for_state(addr: SocketAddr, id: &str, state: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (_, current, ..) = describe(addr, id);
        if current == state {
            return;
        }
        assert!(Instant::now() < deadline, "{id}: {current}, not {state}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn commits_and_aborts_across_shards_reach_each_isolation_level() {
    const TOPIC: &str = "txn-many";
    const PARTITIONS: i32 = 8;
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    create_topic_raw(addr, TOPIC, PARTITIONS);
    let producer = transactional_producer(addr, "many", &[]);
    let (mut committed, mut everything) = (Vec::new(), Vec::new());
    for t in 0..10 {
        let payloads = transaction(&format!("t{t}"), PARTITIONS, 40);
        producer.begin_transaction().unwrap();
        send_all(&producer, TOPIC, &payloads);
        if t % 3 == 2 {
            // Flushed first, so the aborted records are in the log.
            producer.flush(TIMEOUT).unwrap();
            producer.abort_transaction(TIMEOUT).unwrap();
        } else {
            producer.commit_transaction(TIMEOUT).unwrap();
            committed.extend(payloads.iter().cloned());
        }
        everything.extend(payloads);
    }
    let (code, state, producer_id, epoch, partitions) = describe(addr, "many");
    assert_eq!(
        (code, state.as_str(), epoch, partitions),
        (0, "CompleteCommit", 0, 0)
    );
    assert!(producer_id >= 0);
    let read = read_all(addr, TOPIC, PARTITIONS, "read_committed", committed.len());
    assert_eq!(read, by_partition(&committed), "read_committed");
    let read = read_all(
        addr,
        TOPIC,
        PARTITIONS,
        "read_uncommitted",
        everything.len(),
    );
    assert_eq!(read, by_partition(&everything), "read_uncommitted");

    // The tools see the id and its producer in every partition.
    let listed: ListTransactionsResponse = call(
        addr,
        ApiKey::ListTransactions,
        1,
        &ListTransactionsRequest::default().with_duration_filter(-1),
    );
    let ids: Vec<(String, i64, String)> = listed
        .transaction_states
        .iter()
        .map(|s| {
            (
                s.transactional_id.to_string(),
                s.producer_id.0,
                s.transaction_state.to_string(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![(
            "many".to_string(),
            producer_id,
            "CompleteCommit".to_string()
        )]
    );
    let request = DescribeProducersRequest::default().with_topics(vec![
        TopicRequest::default()
            .with_name(topic_name(TOPIC))
            .with_partition_indexes((0..PARTITIONS).chain([99]).collect()),
    ]);
    let producers: DescribeProducersResponse = call(addr, ApiKey::DescribeProducers, 0, &request);
    let partitions = &producers.topics[0].partitions;
    assert_eq!(partitions.len(), PARTITIONS as usize + 1);
    for p in partitions {
        if p.partition_index == 99 {
            assert_eq!(p.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
            continue;
        }
        assert_eq!(p.error_code, 0);
        assert_eq!(
            p.active_producers.len(),
            1,
            "partition {}",
            p.partition_index
        );
        let state = &p.active_producers[0];
        assert_eq!(state.producer_id.0, producer_id);
        assert_eq!(state.current_txn_start_offset, -1, "no transaction open");
        // Five records per partition per transaction, ten transactions.
        assert_eq!(state.last_sequence, 10 * 5 - 1);
    }
}

#[test]
fn a_newer_instance_fences_the_older_and_aborts_its_transaction() {
    const TOPIC: &str = "txn-fence";
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    create_topic_raw(addr, TOPIC, 2);
    let old = transactional_producer(addr, "fenced", &[]);
    old.begin_transaction().unwrap();
    send_all(&old, TOPIC, &transaction("old", 2, 10));
    old.flush(TIMEOUT).unwrap();
    let (_, state, _, old_epoch, _) = describe(addr, "fenced");
    assert_eq!(state, "Ongoing");

    // The new instance's InitProducerId aborts the old transaction.
    let new = transactional_producer(addr, "fenced", &[]);
    let (_, state, _, new_epoch, _) = describe(addr, "fenced");
    assert_eq!(state, "Empty");
    assert!(new_epoch > old_epoch, "{new_epoch} after {old_epoch}");
    let refused = old.commit_transaction(TIMEOUT).unwrap_err();
    assert!(
        refused.to_string().to_lowercase().contains("fenced"),
        "the old instance is fenced: {refused}"
    );
    new.begin_transaction().unwrap();
    let kept = transaction("new", 2, 10);
    send_all(&new, TOPIC, &kept);
    new.commit_transaction(TIMEOUT).unwrap();
    let read = read_all(addr, TOPIC, 2, "read_committed", kept.len());
    assert_eq!(read, by_partition(&kept));
}

#[test]
fn an_abandoned_transaction_is_aborted_at_its_timeout() {
    const TOPIC: &str = "txn-timeout";
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    create_topic_raw(addr, TOPIC, 2);
    let abandoned = transactional_producer(addr, "slow", &[("transaction.timeout.ms", "2000")]);
    abandoned.begin_transaction().unwrap();
    send_all(&abandoned, TOPIC, &transaction("lost", 2, 10));
    abandoned.flush(TIMEOUT).unwrap();
    let (_, state, _, epoch, partitions) = describe(addr, "slow");
    assert_eq!((state.as_str(), partitions), ("Ongoing", 2));
    // The coordinator aborts it (and bumps the epoch) without the client.
    wait_for_state(addr, "slow", "CompleteAbort");
    let (_, _, _, bumped, _) = describe(addr, "slow");
    assert_eq!(bumped, epoch + 1, "the producer is fenced");
    assert!(abandoned.commit_transaction(TIMEOUT).is_err());

    // read_committed readers are no longer held: a later commit reads.
    let next = transactional_producer(addr, "slow", &[]);
    next.begin_transaction().unwrap();
    let kept = transaction("kept", 2, 6);
    send_all(&next, TOPIC, &kept);
    next.commit_transaction(TIMEOUT).unwrap();
    let read = read_all(addr, TOPIC, 2, "read_committed", kept.len());
    assert_eq!(read, by_partition(&kept));
}

/// A broker with the failpoint between a transaction's markers armed.
fn start_armed(data_dir: &std::path::Path, addr: SocketAddr) -> Broker {
    common::wait_port_closed(addr);
    let child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["serve", "--shards", "2", "--listen", &addr.to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .env("SHARDLOG_FAILPOINT", "txn-between-markers")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let broker = Broker(child);
    wait_listening(addr);
    broker
}

#[test]
fn a_kill_between_markers_is_completed_by_the_restart() {
    const TOPIC: &str = "txn-crash";
    const PARTITIONS: i32 = 4;
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut broker = start_armed(tmp.path(), addr);
    create_topic_raw(addr, TOPIC, PARTITIONS);
    let producer = transactional_producer(
        addr,
        "crash",
        &[
            ("message.timeout.ms", "10000"),
            ("transaction.timeout.ms", "60000"),
        ],
    );
    producer.begin_transaction().unwrap();
    let committed = transaction("c", PARTITIONS, 40);
    send_all(&producer, TOPIC, &committed);
    producer.flush(TIMEOUT).unwrap();
    // EndTxn: PrepareCommit is durable, one marker is written, then SIGKILL.
    let outcome = producer.commit_transaction(Duration::from_secs(5));
    let status = broker.0.wait().unwrap();
    assert!(
        !status.success(),
        "the failpoint killed the broker: {status}"
    );
    drop(producer);
    println!("commit during the crash: {outcome:?}");

    let _broker = start(tmp.path(), addr, "warn");
    // The restart finds PrepareCommit and writes the missing markers.
    wait_for_state(addr, "crash", "CompleteCommit");
    let read = read_all(addr, TOPIC, PARTITIONS, "read_committed", committed.len());
    assert_eq!(read, by_partition(&committed), "the commit, once");
    // The id goes on with a bumped epoch.
    let next = transactional_producer(addr, "crash", &[]);
    next.begin_transaction().unwrap();
    let more = transaction("d", PARTITIONS, 8);
    send_all(&next, TOPIC, &more);
    next.commit_transaction(TIMEOUT).unwrap();
    let mut all = committed.clone();
    all.extend(more);
    let read = read_all(addr, TOPIC, PARTITIONS, "read_committed", all.len());
    assert_eq!(read, by_partition(&all));
}

/// The latest offset of each partition of `topic` (read_uncommitted).
fn ends(addr: SocketAddr, topic: &str, partitions: i32) -> Vec<i64> {
    (0..partitions)
        .map(|p| common::fetch_records(addr, topic, p, 0).1)
        .collect()
}

#[test]
fn read_process_write_is_exactly_once_across_broker_kills() {
    const INPUT: &str = "rpw-in";
    const OUTPUT: &str = "rpw-out";
    const PARTITIONS: i32 = 2;
    const MESSAGES: usize = 400;
    let Some(python) = common::python_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut broker = start(tmp.path(), addr, "warn");
    create_topic_raw(addr, INPUT, PARTITIONS);
    create_topic_raw(addr, OUTPUT, PARTITIONS);
    let plain: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .create()
        .unwrap();
    let input: Vec<(i32, String)> = (0..MESSAGES)
        .map(|i| (i as i32 % PARTITIONS, format!("m-{i}")))
        .collect();
    send_all(&plain, INPUT, &input);
    plain.flush(TIMEOUT).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients/read_process_write.py");
    // The first run loses its broker three times as output grows; a run
    // that fails is started again until one finishes.
    for run in 0.. {
        assert!(run < 10, "the loop did not finish in {run} runs");
        let mut child = Command::new(&python)
            .arg(&script)
            .args([&addr.to_string(), INPUT, OUTPUT, "rpw", "rpw-1"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let _guard = common::ChildGuard(child.id());
        for kill in (1..=3).filter(|_| run == 0) {
            let target = kill * MESSAGES as i64 / 4;
            let deadline = Instant::now() + TIMEOUT;
            while ends(addr, OUTPUT, PARTITIONS).iter().sum::<i64>() < target {
                assert!(Instant::now() < deadline, "no progress to {target}");
                assert!(child.try_wait().unwrap().is_none(), "done before {target}");
                std::thread::sleep(Duration::from_millis(2));
            }
            drop(broker); // SIGKILL
            println!("run {run}: broker killed at {target}+ output records");
            broker = start(tmp.path(), addr, "warn");
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "run {run} hangs");
            std::thread::sleep(Duration::from_millis(50));
        };
        println!("run {run}: {status}");
        if status.success() {
            break;
        }
    }
    let expected: Vec<(i32, String)> = input.iter().map(|(p, v)| (*p, v.to_uppercase())).collect();
    let read = read_all(addr, OUTPUT, PARTITIONS, "read_committed", expected.len());
    assert_eq!(read, by_partition(&expected), "each input once, in order");
    drop(broker);
}

#[test]
fn kafka_python_commits_aborts_fences_and_sends_offsets() {
    let Some(python) = common::python_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    common::run_python_script(&python, "transactions.py", &[&addr.to_string()]);
}

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

fn add_partitions(
    addr: SocketAddr,
    id: &str,
    producer: (i64, i16),
    topic: &str,
    partitions: Vec<i32>,
) -> Vec<i16> {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::{
        AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ProducerId,
    };
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(producer.0))
        .with_v3_and_below_producer_epoch(producer.1)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(partitions),
        ]);
    let response: AddPartitionsToTxnResponse = call(addr, ApiKey::AddPartitionsToTxn, 3, &request);
    response.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect()
}

fn end_txn(addr: SocketAddr, id: &str, producer: (i64, i16), commit: bool) -> i16 {
    use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};
    let request = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_committed(commit);
    let response: EndTxnResponse = call(addr, ApiKey::EndTxn, 3, &request);
    response.error_code
}

#[test]
fn bad_transactional_requests_get_kafkas_codes() {
    use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    create_topic_raw(addr, "bad-txn", 2);
    let init = |id: TransactionalId, timeout_ms: i32, version: i16| -> InitProducerIdResponse {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(id))
            .with_transaction_timeout_ms(timeout_ms);
        call(addr, ApiKey::InitProducerId, version, &request)
    };
    // Timeouts outside 1..=transaction.max.timeout.ms (15 minutes).
    for timeout in [0, -1, 900_001] {
        let answer = init(txn_id("bad"), timeout, 4);
        assert_eq!(
            answer.error_code, 50,
            "INVALID_TRANSACTION_TIMEOUT for {timeout}"
        );
    }
    // An id longer than a TransactionLogKey holds (flexible versions can
    // carry one).
    let long = TransactionalId(StrBytes::from_string("x".repeat(40_000)));
    assert_eq!(init(long, 60_000, 4).error_code, 42, "INVALID_REQUEST");
    let answer = init(txn_id("bad"), 60_000, 4);
    assert_eq!(answer.error_code, 0);
    let producer = (answer.producer_id.0, answer.producer_epoch);

    // EndTxn without a transaction; for an unknown id; for another producer.
    assert_eq!(
        end_txn(addr, "bad", producer, true),
        48,
        "INVALID_TXN_STATE"
    );
    assert_eq!(
        end_txn(addr, "unknown", producer, true),
        49,
        "INVALID_PRODUCER_ID_MAPPING"
    );
    assert_eq!(end_txn(addr, "bad", (producer.0 + 1, 0), false), 49);
    // Negative and stale epochs are fenced.
    assert_eq!(
        add_partitions(addr, "bad", (producer.0, -7), "bad-txn", vec![0]),
        [90]
    );
    assert_eq!(
        end_txn(addr, "bad", (producer.0, -1), true),
        90,
        "PRODUCER_FENCED"
    );
    // Unknown partitions: UNKNOWN_TOPIC_OR_PARTITION, the rest not attempted.
    assert_eq!(
        add_partitions(addr, "bad", producer, "bad-txn", vec![0, 5]),
        [55, 3]
    );
    assert_eq!(
        add_partitions(addr, "bad", producer, "no-such-topic", vec![0]),
        [3]
    );
    // A real transaction: the other outcome is INVALID_TXN_STATE after it.
    assert_eq!(
        add_partitions(addr, "bad", producer, "bad-txn", vec![0, 1]),
        [0, 0]
    );
    assert_eq!(end_txn(addr, "bad", producer, false), 0);
    assert_eq!(
        end_txn(addr, "bad", producer, false),
        0,
        "a retry of the abort"
    );
    assert_eq!(end_txn(addr, "bad", producer, true), 48);
    let (code, state, ..) = describe(addr, "bad");
    assert_eq!((code, state.as_str()), (0, "CompleteAbort"));
    assert_eq!(
        describe(addr, "unknown").0,
        105,
        "TRANSACTIONAL_ID_NOT_FOUND"
    );

    // Idempotent sequences wrap at i32::MAX.
    let idempotent = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let answer: InitProducerIdResponse = call(addr, ApiKey::InitProducerId, 4, &idempotent);
    let id = answer.producer_id.0;
    assert!(id >= 0);
    let produce = |sequence: i32| {
        let batch = common::producer_batch(id, 0, sequence, 3, false);
        common::produce_batch(addr, "bad-txn", batch, 9).error_code
    };
    assert_eq!(produce(i32::MAX - 1), 0, "the last sequences, then 0");
    assert_eq!(produce(1), 0, "0 was the batch's last");
    assert_eq!(produce(5), 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
}

#[test]
fn a_transactional_batch_outside_its_transaction_is_refused() {
    use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    create_topic_raw(addr, "verified", 1);
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id("verified")))
        .with_transaction_timeout_ms(60_000);
    let answer: InitProducerIdResponse = call(addr, ApiKey::InitProducerId, 4, &request);
    let producer = (answer.producer_id.0, answer.producer_epoch);
    let produce = |sequence: i32| {
        let batch = common::producer_batch(producer.0, producer.1, sequence, 2, true);
        let request = common::produce_request("verified", batch)
            .with_transactional_id(Some(txn_id("verified")));
        let response: kafka_protocol::messages::ProduceResponse =
            call(addr, ApiKey::Produce, 9, &request);
        response.responses[0].partition_responses[0].error_code
    };
    assert_eq!(
        produce(0),
        48,
        "INVALID_TXN_STATE: the partition was not added"
    );
    assert_eq!(
        add_partitions(addr, "verified", producer, "verified", vec![0]),
        [0]
    );
    assert_eq!(produce(0), 0);
    assert_eq!(produce(2), 0, "the transaction is open here: no check");
    // Offsets likewise: only once AddOffsetsToTxn put the group's
    // partition in the transaction.
    assert_eq!(txn_offset_commit(addr, "verified", producer, "g"), 48);
    assert_eq!(add_offsets(addr, "verified", producer, "g"), 0);
    assert_eq!(txn_offset_commit(addr, "verified", producer, "g"), 0);
    assert_eq!(
        txn_offset_commit(addr, "verified", (producer.0, producer.1 + 1), "g"),
        90,
        "PRODUCER_FENCED"
    );
    assert_eq!(end_txn(addr, "verified", producer, false), 0);
    // A late batch of the aborted transaction would open one no marker
    // closes, holding read_committed readers at it for good.
    assert_eq!(produce(4), 48);
    let (high_watermark, last_stable) = {
        let (_, hw, _) = common::fetch_records(addr, "verified", 0, 0);
        (hw, common::latest_offset(addr, "verified", 1))
    };
    assert_eq!(high_watermark, 5, "two batches and the abort marker");
    assert_eq!(last_stable, 5, "nothing holds the last stable offset");
}

fn add_offsets(addr: SocketAddr, id: &str, producer: (i64, i16), group: &str) -> i16 {
    use kafka_protocol::messages::{
        AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, GroupId, ProducerId,
    };
    let request = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())));
    let response: AddOffsetsToTxnResponse = call(addr, ApiKey::AddOffsetsToTxn, 3, &request);
    response.error_code
}

/// TxnOffsetCommit of offset 1 of partition 0 of "verified" for `group`.
fn txn_offset_commit(addr: SocketAddr, id: &str, producer: (i64, i16), group: &str) -> i16 {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        GroupId, ProducerId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
    };
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id(id))
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_generation_id(-1)
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(topic_name("verified"))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1),
                ]),
        ]);
    let response: TxnOffsetCommitResponse = call(addr, ApiKey::TxnOffsetCommit, 3, &request);
    response.topics[0].partitions[0].error_code
}

#[test]
fn the_transaction_log_is_compacted_and_replayed_after_a_kill() {
    const TOPIC: &str = "txn-compacted";
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = format!(
        "listen = \"{addr}\"\nshards = 2\ntransaction-state-log-num-partitions = 3\n\
         transaction-state-log-segment-bytes = 1024\nlog-cleaner-backoff-ms = 100\n"
    );
    let broker = common::start_configured(tmp.path(), addr, &config);
    create_topic_raw(addr, TOPIC, 2);
    let producer = transactional_producer(addr, "compacted", &[]);
    let mut committed = Vec::new();
    for t in 0..8 {
        producer.begin_transaction().unwrap();
        let payloads = transaction(&format!("t{t}"), 2, 4);
        send_all(&producer, TOPIC, &payloads);
        producer.commit_transaction(TIMEOUT).unwrap();
        committed.extend(payloads);
    }
    drop(producer);
    let (_, state, producer_id, epoch, _) = describe(addr, "compacted");
    assert_eq!(state, "CompleteCommit");
    // Three records per transaction, all of one id in one partition: the
    // log cleaner leaves its latest and the active segment's.
    let partition = (0..3)
        .find(|&p| common::records_stored(addr, "__transaction_state", p) > 0)
        .unwrap();
    common::wait_compacted(addr, "__transaction_state", partition, 12);
    drop(broker); // SIGKILL
    let _broker = common::start_configured(tmp.path(), addr, &config);
    let (_, state, after_id, after_epoch, _) = describe(addr, "compacted");
    assert_eq!(
        (state.as_str(), after_id, after_epoch),
        ("CompleteCommit", producer_id, epoch),
        "replayed from the compacted log"
    );
    let next = transactional_producer(addr, "compacted", &[]);
    assert_eq!(describe(addr, "compacted").3, epoch + 1);
    next.begin_transaction().unwrap();
    let more = transaction("after", 2, 4);
    send_all(&next, TOPIC, &more);
    next.commit_transaction(TIMEOUT).unwrap();
    committed.extend(more);
    let read = read_all(addr, TOPIC, 2, "read_committed", committed.len());
    assert_eq!(read, by_partition(&committed));
}

/// WriteTxnMarkers is for the brokers of a cluster: a broker alone refuses
/// it (CLUSTER_AUTHORIZATION_FAILED for every partition), so no client can
/// end another's transaction.
#[test]
fn a_broker_alone_refuses_write_txn_markers() {
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    use kafka_protocol::messages::{ProducerId, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    create_topic_raw(addr, "guarded", 1);
    let producer = transactional_producer(addr, "guarded-tx", &[]);
    producer.begin_transaction().unwrap();
    send_all(&producer, "guarded", &[(0, "open".to_string())]);
    producer.flush(TIMEOUT).unwrap();
    let (_, state, producer_id, epoch, _) = describe(addr, "guarded-tx");
    assert_eq!(state, "Ongoing");
    let request = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_transaction_result(true)
            .with_topics(vec![
                WritableTxnMarkerTopic::default()
                    .with_name(topic_name("guarded"))
                    .with_partition_indexes(vec![0]),
            ]),
    ]);
    let response: WriteTxnMarkersResponse = call(addr, ApiKey::WriteTxnMarkers, 1, &request);
    let codes: Vec<i16> = response
        .markers
        .iter()
        .flat_map(|m| &m.topics)
        .flat_map(|t| &t.partitions)
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, [31], "CLUSTER_AUTHORIZATION_FAILED");
    assert_eq!(
        common::latest_offset(addr, "guarded", 1),
        0,
        "the transaction is still open: nothing stable"
    );
    producer.abort_transaction(TIMEOUT).unwrap();
}
