//! Idempotent producers (issue 11 item 1) against real broker processes:
//! InitProducerId at every version, ids never handed out twice across a
//! SIGKILL; a retried batch answered with its first offsets and stored
//! once, gaps and fenced epochs refused with Kafka's codes; and the clients
//! with idempotence on (kafka-python's default, librdkafka's
//! enable.idempotence=true) writing every message once, in order.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use common::{call, create_topic_raw, free_addr, start};

fn init_producer_id(
    addr: SocketAddr,
    version: i16,
    request: &InitProducerIdRequest,
) -> InitProducerIdResponse {
    call(addr, ApiKey::InitProducerId, version, request)
}

fn idempotent() -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
}

#[test]
fn producer_ids_are_new_at_every_version_and_never_reused_after_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let broker = start(tmp.path(), addr, "warn");
    let mut ids = HashSet::new();
    let mut txn_producer_ids = HashSet::new();
    for version in 0..=5 {
        for _ in 0..3 {
            let answer = init_producer_id(addr, version, &idempotent());
            assert_eq!(answer.error_code, 0, "v{version}");
            assert_eq!(answer.producer_epoch, 0, "v{version}");
            assert_eq!(answer.throttle_time_ms, 0, "v{version}");
            assert!(answer.producer_id.0 >= 0, "v{version}");
            assert!(
                ids.insert(answer.producer_id.0),
                "v{version}: {:?} twice",
                answer.producer_id
            );
        }
        // A transactional id keeps its producer id; each init bumps its
        // epoch (InitProducerId of a new instance).
        let transactional = idempotent()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("txn"))));
        let answer = init_producer_id(addr, version, &transactional);
        assert_eq!(answer.error_code, 0, "v{version}");
        assert_eq!(answer.producer_epoch, version, "v{version}");
        assert!(
            ids.insert(answer.producer_id.0) || version > 0,
            "v{version}"
        );
        txn_producer_ids.insert(answer.producer_id.0);
        let empty = idempotent()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str(""))));
        let answer = init_producer_id(addr, version, &empty);
        assert_eq!(
            answer.error_code, 42,
            "v{version}: an empty transactional id"
        );
        if version >= 3 {
            // An id without an epoch.
            let half = idempotent().with_producer_id(ProducerId(5));
            let answer = init_producer_id(addr, version, &half);
            assert_eq!(answer.error_code, 42, "v{version}: INVALID_REQUEST");
            // KIP-360: an idempotent producer asking for a bump gets a new id.
            let bump = idempotent()
                .with_producer_id(ProducerId(*ids.iter().max().unwrap()))
                .with_producer_epoch(0);
            let answer = init_producer_id(addr, version, &bump);
            assert_eq!(answer.error_code, 0, "v{version}");
            assert!(ids.insert(answer.producer_id.0), "v{version}: a new id");
        }
    }
    let before = *ids.iter().max().unwrap();
    drop(broker); // SIGKILL
    let _broker = start(tmp.path(), addr, "warn");
    let after = init_producer_id(addr, 4, &idempotent()).producer_id.0;
    assert!(after > before, "after a kill: {after}, before: {before}");
    assert_eq!(
        txn_producer_ids.len(),
        1,
        "one producer id for the transactional id"
    );
    let transactional =
        idempotent().with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("txn"))));
    let answer = init_producer_id(addr, 4, &transactional);
    assert_eq!(answer.error_code, 0);
    assert_eq!(answer.producer_epoch, 6, "the epoch survives the kill");
    assert!(txn_producer_ids.contains(&answer.producer_id.0));
}

/// One Produce of a 3-record batch from `producer` at `epoch`, sequences
/// from `sequence`: (error code, base offset).
fn produce(addr: SocketAddr, producer: i64, epoch: i16, sequence: i32) -> (i16, i64) {
    let batch = common::producer_batch(producer, epoch, sequence, 3, false);
    let answer = common::produce_batch(addr, "retries", batch, 9);
    (answer.error_code, answer.base_offset)
}

#[test]
fn retried_batches_get_their_first_offsets_and_gaps_and_old_epochs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let broker = start(tmp.path(), addr, "warn");
    create_topic_raw(addr, "retries", 1);
    let id = init_producer_id(addr, 4, &idempotent()).producer_id.0;
    assert_eq!(produce(addr, id, 0, 0), (0, 0));
    assert_eq!(produce(addr, id, 0, 3), (0, 3));
    assert_eq!(produce(addr, id, 0, 0), (0, 0), "a retry: its first offset");
    assert_eq!(
        produce(addr, id, 0, 9).0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    assert_eq!(produce(addr, id, 1, 0), (0, 6), "a new epoch starts at 0");
    assert_eq!(produce(addr, id, 0, 6).0, 47, "INVALID_PRODUCER_EPOCH");
    let (_, high_watermark, _) = common::fetch_records(addr, "retries", 0, 0);
    assert_eq!(high_watermark, 9, "three batches stored, the retry not");
    // The state survives a SIGKILL: the retry is still recognised.
    drop(broker);
    let _broker = start(tmp.path(), addr, "warn");
    assert_eq!(produce(addr, id, 1, 0), (0, 6), "a retry after a kill");
    assert_eq!(produce(addr, id, 1, 3), (0, 9));
}

#[test]
fn kafka_python_default_producer_writes_each_message_once() {
    common::python_on_fresh_broker("idempotent.py", &["kp-idempotent", "3000"], |_| {});
}

/// A delivery report: (partition, offset), or the error.
type Delivery = Result<(i32, i64), String>;

/// Delivery reports by message index (the payload's "value-I").
#[derive(Clone, Default)]
struct Deliveries(Arc<Mutex<Vec<(usize, Delivery)>>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        let (message, outcome) = match result {
            Ok(m) => (m, Ok((m.partition(), m.offset()))),
            Err((e, m)) => (m, Err(e.to_string())),
        };
        let value = std::str::from_utf8(message.payload().unwrap_or_default()).unwrap_or("");
        let i = value
            .strip_prefix("value-")
            .and_then(|i| i.parse().ok())
            .unwrap_or(usize::MAX);
        self.0.lock().unwrap().push((i, outcome));
    }
}

/// An idempotent librdkafka producer (acks=all by idempotence).
fn idempotent_producer(addr: SocketAddr, deliveries: &Deliveries) -> ThreadedProducer<Deliveries> {
    ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "120000")
        .set("reconnect.backoff.max.ms", "200")
        .create_with_context(deliveries.clone())
        .unwrap()
}

/// Sends "value-I" for I in `range`, keyed over 13 keys, waiting when the
/// queue is full.
fn send_all(producer: &ThreadedProducer<Deliveries>, topic: &str, range: std::ops::Range<usize>) {
    for i in range {
        let key = format!("key-{}", i % 13);
        let value = format!("value-{i}");
        common::send_when_queued(producer, BaseRecord::to(topic).key(&key).payload(&value));
    }
}

/// Every report a success.
fn assert_delivered(reports: &[(usize, Delivery)], count: usize) {
    assert_eq!(reports.len(), count);
    let failed: Vec<_> = reports.iter().filter(|r| r.1.is_err()).take(3).collect();
    assert!(failed.is_empty(), "deliveries failed: {failed:?}");
}

#[test]
fn librdkafka_idempotent_producer_writes_each_message_once_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    let topic = "rdk-idempotent";
    create_topic_raw(addr, topic, 4);
    let deliveries = Deliveries::default();
    let producer = idempotent_producer(addr, &deliveries);
    let count = 5000usize;
    send_all(&producer, topic, 0..count);
    producer.flush(Duration::from_secs(60)).unwrap();
    let reports = deliveries.0.lock().unwrap().clone();
    assert_delivered(&reports, count);
    assert_each_once_in_order(addr, topic, 4, count, &reports);
}

/// Reads `count` messages "value-I" from `partitions` partitions of
/// `topic`: each I once, each partition in send order, each where and at
/// the offset its delivery report said.
fn assert_each_once_in_order(
    addr: SocketAddr,
    topic: &str,
    partitions: i32,
    count: usize,
    reports: &[(usize, Delivery)],
) {
    let consumer = common::assigned_consumer(
        addr,
        topic,
        partitions,
        "rdk-idempotent",
        "read_uncommitted",
    );
    let mut per_partition: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    let mut stored = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut read = 0;
    while read < count {
        assert!(Instant::now() < deadline, "read {read} of {count}");
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let value = std::str::from_utf8(message.payload().unwrap()).unwrap();
        let i: usize = value.strip_prefix("value-").unwrap().parse().unwrap();
        per_partition
            .entry(message.partition())
            .or_default()
            .push(i);
        assert!(
            stored
                .insert(i, (message.partition(), message.offset()))
                .is_none(),
            "message {i} twice"
        );
        read += 1;
    }
    for (partition, values) in &per_partition {
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "partition {partition} in send order"
        );
    }
    let mut all: Vec<usize> = stored.keys().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..count).collect::<Vec<_>>(), "each message once");
    for (i, report) in reports {
        assert_eq!(
            report.as_ref().ok(),
            stored.get(i),
            "message {i}: reported where it is stored"
        );
    }
}

/// The producer keeps sending while the broker is SIGKILLed and restarted
/// three times under it: batches in flight at a kill are retried with their
/// sequences, so each acknowledged message is stored once, in order, with
/// nothing missing.
#[test]
fn librdkafka_idempotent_producer_across_three_sigkills_stores_each_message_once() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut broker = start(tmp.path(), addr, "error");
    let topic = "rdk-killed";
    create_topic_raw(addr, topic, 4);
    let deliveries = Deliveries::default();
    let producer = Arc::new(idempotent_producer(addr, &deliveries));
    let count = 100_000usize;
    let sender = {
        let producer = Arc::clone(&producer);
        // Unpaced: the kills land with batches in flight.
        std::thread::spawn(move || send_all(&producer, topic, 0..count))
    };
    // Each kill once deliveries have moved on since the last restart.
    for (kill, after) in [10_000, 40_000, 70_000].into_iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(60);
        while deliveries.0.lock().unwrap().len() < after {
            assert!(Instant::now() < deadline, "kill {kill}: deliveries stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
        let acked = deliveries.0.lock().unwrap().len();
        drop(broker); // SIGKILL
        println!("kill {kill}: {acked} deliveries reported before it");
        assert!(acked < count, "kill {kill} came after the last delivery");
        broker = start(tmp.path(), addr, "error");
    }
    sender.join().unwrap();
    producer.flush(Duration::from_secs(120)).unwrap();
    let reports = deliveries.0.lock().unwrap().clone();
    assert_delivered(&reports, count);
    assert_each_once_in_order(addr, topic, 4, count, &reports);
    drop(broker);
}

/// A TCP proxy on 127.0.0.1 in front of the broker whose connections can be
/// cut, all at once, from the test (both directions shut down, as a network
/// failure or a broker closing its side looks to a client).
struct CuttingProxy {
    addr: SocketAddr,
    live: Arc<Mutex<Vec<std::net::TcpStream>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl CuttingProxy {
    /// Listens on `addr` (free: the broker advertises it) for `broker`.
    fn start_at(addr: SocketAddr, broker: SocketAddr) -> CuttingProxy {
        let listener = std::net::TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let live: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (accepted, stopping) = (Arc::clone(&live), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let Ok(upstream) = std::net::TcpStream::connect(broker) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || pump(from, to));
                }
                accepted.lock().unwrap().extend([client, upstream]);
            }
        });
        CuttingProxy { addr, live, stop }
    }

    /// Shuts every connection through the proxy down; returns how many.
    fn cut(&self) -> usize {
        let streams = std::mem::take(&mut *self.live.lock().unwrap());
        for stream in &streams {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        streams.len() / 2
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.cut();
    }
}

fn pump(mut from: std::net::TcpStream, mut to: std::net::TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// The producer's connections are cut three times mid-stream (through a
/// proxy the broker advertises, so every connection passes it): requests
/// in flight are lost with their answers and retried, and each message is
/// still stored once, in order.
#[test]
fn librdkafka_idempotent_producer_across_cut_connections_stores_each_message_once() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let proxy_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_addr = proxy_listener.local_addr().unwrap();
    drop(proxy_listener);
    let _broker = common::start_with(
        tmp.path(),
        addr,
        "error",
        &["--advertised-listener", &proxy_addr.to_string()],
    );
    let proxy = CuttingProxy::start_at(proxy_addr, addr);
    let topic = "rdk-cut";
    create_topic_raw(addr, topic, 4);
    let deliveries = Deliveries::default();
    let producer = Arc::new(idempotent_producer(proxy.addr, &deliveries));
    let count = 100_000usize;
    let sender = {
        let producer = Arc::clone(&producer);
        std::thread::spawn(move || send_all(&producer, topic, 0..count))
    };
    for (cut, after) in [10_000, 40_000, 70_000].into_iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(60);
        while deliveries.0.lock().unwrap().len() < after {
            assert!(Instant::now() < deadline, "cut {cut}: deliveries stalled");
            std::thread::sleep(Duration::from_millis(2));
        }
        let cut_connections = proxy.cut();
        let acked = deliveries.0.lock().unwrap().len();
        println!("cut {cut}: {cut_connections} connections, {acked} deliveries reported");
        assert!(acked < count, "cut {cut} came after the last delivery");
    }
    sender.join().unwrap();
    producer.flush(Duration::from_secs(120)).unwrap();
    let reports = deliveries.0.lock().unwrap().clone();
    assert_delivered(&reports, count);
    assert_each_once_in_order(proxy.addr, topic, 4, count, &reports);
}
