//! Brokers in a cluster, as real processes on 127.0.0.1 (issue 13: the
//! metadata quorum and data replication).
//!
//! Three brokers elect a controller; librdkafka creates a topic through one
//! of them, an idempotent producer (acks=all) writes to every partition's
//! leader, spread over the brokers, and a consumer group reads everything
//! back. Each broker in turn is SIGKILLed: the others go on (topics are
//! created through them, the quorum has a majority), the dead one's
//! partitions of one replica have no leader until it is back, and after
//! its restart every acknowledged message is read again. A topic of three
//! replicas loses no acknowledged write while its leaders are killed one
//! after another. A group's committed offsets survive its coordinator's
//! broker (killed, or frozen past its session and woken), and transactions
//! span partitions led by every broker. A broker's internal port turns
//! away strangers and garbage without harm. A leader cut off from its
//! peers loses its leadership and acknowledges nothing meanwhile; a
//! restarted broker gets its preferred leaderships back (ElectLeaders, or
//! the controller's automatic rebalance), and partitions move to other
//! brokers and back (AlterPartitionReassignments).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest,
    InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use common::{Broker, call, free_addr, start_logged};

/// Short sessions so a dead broker is fenced within seconds.
const CONFIG: &str = "broker-session-timeout-ms = 3000\nbroker-heartbeat-interval-ms = 500\n";

struct Cluster {
    dir: PathBuf,
    clients: Vec<SocketAddr>,
    voters: String,
    brokers: Vec<Option<Broker>>,
    /// The brokers' log filter (SHARDLOG_TEST_LOG, or warnings).
    log_filter: String,
    /// Broker 0's HTTP listener, if it has one.
    http: Option<SocketAddr>,
}

/// A failed test shows the end of every broker's log; SHARDLOG_TEST_LOGS
/// names a directory to keep the whole logs in (a directory per test).
impl Drop for Cluster {
    fn drop(&mut self) {
        for broker in &mut self.brokers {
            drop(broker.take());
        }
        // One directory per test (libtest names its threads after them).
        let keep = std::env::var_os("SHARDLOG_TEST_LOGS").map(|dir| {
            let test = std::thread::current().name().unwrap_or("main").to_string();
            PathBuf::from(dir).join(test)
        });
        for id in 0..self.brokers.len() {
            let path = self.log_path(id);
            if let Some(keep) = &keep {
                let _ = std::fs::create_dir_all(keep);
                let _ = std::fs::copy(&path, keep.join(format!("broker-{id}.log")));
            }
            if std::thread::panicking() {
                let log = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                eprintln!("---- the last lines of broker {id}'s log");
                for line in &lines[lines.len().saturating_sub(60)..] {
                    eprintln!("[broker {id}] {line}");
                }
            }
        }
    }
}

impl Cluster {
    fn start(dir: &Path, size: usize) -> Cluster {
        Cluster::start_configured(dir, size, CONFIG)
    }

    fn start_configured(dir: &Path, size: usize, config: &str) -> Cluster {
        Cluster::start_with_http(dir, size, config, None)
    }

    /// [`start_configured`](Self::start_configured), broker 0 also
    /// serving HTTP on `http`.
    fn start_with_http(dir: &Path, size: usize, config: &str, http: Option<SocketAddr>) -> Cluster {
        let clients: Vec<SocketAddr> = (0..size).map(|_| free_addr()).collect();
        let internal: Vec<SocketAddr> = (0..size).map(|_| free_addr()).collect();
        let voters = common::voters(&internal);
        std::fs::write(dir.join("shardlog.toml"), config).unwrap();
        let mut cluster = Cluster {
            dir: dir.to_path_buf(),
            clients,
            voters,
            brokers: (0..size).map(|_| None).collect(),
            // Roles, ISR changes and the quorum's leaders at info: what a
            // failed test's log tail needs to tell why.
            log_filter: std::env::var("SHARDLOG_TEST_LOG")
                .unwrap_or_else(|_| "warn,net::broker::replica=info,net::cluster=info".into()),
            http,
        };
        for id in 0..size {
            cluster.start_broker(id);
        }
        cluster
    }

    /// Starts broker `id`, its log appended to `broker-{id}.log` in the
    /// cluster's directory (shown when a test fails).
    fn start_broker(&mut self, id: usize) {
        let config = self.dir.join("shardlog.toml");
        let node = id.to_string();
        let mut args = vec![
            "--node-id",
            &node,
            "--voters",
            &self.voters,
            "--config",
            config.to_str().unwrap(),
        ];
        let http = self.http.filter(|_| id == 0).map(|a| a.to_string());
        if let Some(http) = &http {
            args.extend(["--http-listen", http.as_str()]);
        }
        let broker = start_logged(
            &self.dir.join(format!("data-{id}")),
            self.clients[id],
            &self.log_filter,
            &args,
            &self.log_path(id),
        );
        self.brokers[id] = Some(broker);
    }

    fn log_path(&self, id: usize) -> PathBuf {
        self.dir.join(format!("broker-{id}.log"))
    }

    fn kill(&mut self, id: usize) {
        // Broker's drop sends SIGKILL (by PID) and reaps it.
        drop(self.brokers[id].take());
        common::wait_port_closed(self.clients[id]);
    }

    /// Sends `signal` to broker `id` (by PID): SIGSTOP freezes it as a
    /// long pause would (it misses its heartbeats and is fenced, alive),
    /// SIGCONT wakes it. A frozen broker is still killed at the end.
    fn signal(&self, id: usize, signal: libc::c_int) {
        let broker = self.brokers[id].as_ref().expect("a running broker");
        let pid = libc::pid_t::try_from(broker.0.id()).unwrap();
        // SAFETY: kill(2) on a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    fn bootstrap(&self) -> String {
        self.live()
            .map(|id| self.clients[id].to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.brokers.len()).filter(|&id| self.brokers[id].is_some())
    }

    /// Waits until broker `via` lists exactly `brokers` and, for `topic`,
    /// a leader for every partition except those of `dead`, which have none.
    fn wait_metadata(
        &self,
        via: usize,
        brokers: &[i32],
        topic: Option<&str>,
        dead: Option<i32>,
    ) -> MetadataResponse {
        self.wait_metadata_within(via, brokers, topic, dead, Duration::from_secs(60))
    }

    fn wait_metadata_within(
        &self,
        via: usize,
        brokers: &[i32],
        topic: Option<&str>,
        dead: Option<i32>,
        within: Duration,
    ) -> MetadataResponse {
        let deadline = Instant::now() + within;
        loop {
            let request = MetadataRequest::default().with_topics(None);
            let response: MetadataResponse =
                call(self.clients[via], ApiKey::Metadata, 12, &request);
            let listed: BTreeSet<i32> = response.brokers.iter().map(|b| b.node_id.0).collect();
            let wanted: BTreeSet<i32> = brokers.iter().copied().collect();
            let topic_ok = topic.is_none_or(|name| {
                response
                    .topics
                    .iter()
                    .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
                    .is_some_and(|t| {
                        !t.partitions.is_empty()
                            && t.partitions.iter().all(|p| {
                                let replica = p.replica_nodes.first().map(|r| r.0);
                                if replica == dead {
                                    p.leader_id.0 == -1
                                } else {
                                    p.leader_id.0 >= 0 && Some(p.leader_id.0) == replica
                                }
                            })
                    })
            });
            if listed == wanted && topic_ok {
                return response;
            }
            assert!(
                Instant::now() < deadline,
                "broker {via} lists {listed:?}, wanted {wanted:?} (topic {topic:?}, dead {dead:?})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn topic<'a>(
    metadata: &'a MetadataResponse,
    name: &str,
) -> &'a kafka_protocol::messages::metadata_response::MetadataResponseTopic {
    metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
        .unwrap()
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    create_replicated_topic(bootstrap, name, partitions, 1);
}

fn create_replicated_topic(bootstrap: &str, name: &str, partitions: i32, replicas: i32) {
    create_new_topic(
        bootstrap,
        &NewTopic::new(name, partitions, TopicReplication::Fixed(replicas)),
    );
}

/// Creates `topic` with librdkafka's admin client.
fn create_new_topic(bootstrap: &str, topic: &NewTopic<'_>) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results =
        futures::executor::block_on(admin.create_topics(std::slice::from_ref(topic), &options))
            .unwrap();
    for result in results {
        result.unwrap_or_else(|(topic, e)| panic!("create {topic}: {e}"));
    }
}

/// One delivery report: (partition, offset, value) or the error.
type Report = Result<(i32, i64, String), String>;

#[derive(Clone, Default)]
struct Deliveries(Arc<Mutex<Vec<Report>>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        let report = match result {
            Ok(m) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                Ok((m.partition(), m.offset(), value))
            }
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.lock().unwrap().push(report);
    }
}

/// Produces `count` messages with an idempotent librdkafka producer
/// (acks=all) to `partitions` (each message to the partition of its index);
/// returns what was acknowledged: (partition, offset) -> value.
fn produce(
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    count: usize,
    tag: &str,
) -> BTreeMap<(i32, i64), String> {
    produce_with(bootstrap, topic, partitions, count, tag, &[])
}

/// [`produce`] with more producer settings.
fn produce_with(
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    count: usize,
    tag: &str,
    settings: &[(&str, &str)],
) -> BTreeMap<(i32, i64), String> {
    let deliveries = Deliveries::default();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2");
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let producer: ThreadedProducer<Deliveries> =
        config.create_with_context(deliveries.clone()).unwrap();
    for i in 0..count {
        let partition = partitions[i % partitions.len()];
        let value = format!("{tag}-{i}");
        let record = BaseRecord::<(), _>::to(topic)
            .partition(partition)
            .payload(&value);
        common::send_when_queued(&producer, record);
    }
    if let Err(e) = producer.flush(Duration::from_secs(60)) {
        let reports = deliveries.0.lock().unwrap();
        let errors: Vec<&Report> = reports.iter().filter(|r| r.is_err()).take(5).collect();
        panic!(
            "{tag}: {e}: {} of {count} reported, {} in flight, errors {errors:?}",
            reports.len(),
            producer.in_flight_count()
        );
    }
    let reports = deliveries.0.lock().unwrap().clone();
    assert_eq!(reports.len(), count);
    reports
        .into_iter()
        .map(|r| {
            let (partition, offset, value) = r.unwrap();
            ((partition, offset), value)
        })
        .collect()
}

/// Reads `topic` from the start in a consumer group until `expected`
/// records came (or a minute passed); returns (partition, offset) -> value.
fn consume(
    bootstrap: &str,
    topic: &str,
    group: &str,
    expected: usize,
) -> BTreeMap<(i32, i64), String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut got = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < expected && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let Ok(message) = message else {
            continue;
        };
        let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        let previous = got.insert((message.partition(), message.offset()), value);
        assert!(previous.is_none(), "offset read twice");
    }
    consumer
        .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .unwrap();
    got
}

#[test]
fn three_brokers_share_topics_and_each_survives_the_death_of_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    create_topic(&cluster.clients[1].to_string(), "spread", 6);
    let metadata = cluster.wait_metadata(2, &[0, 1, 2], Some("spread"), None);
    let leaders: BTreeSet<i32> = topic(&metadata, "spread")
        .partitions
        .iter()
        .map(|p| p.leader_id.0)
        .collect();
    assert_eq!(
        leaders,
        BTreeSet::from([0, 1, 2]),
        "partitions spread over the brokers"
    );
    let all: Vec<i32> = (0..6).collect();
    let mut acknowledged = produce(&cluster.bootstrap(), "spread", &all, 600, "first");
    check_leaders_stamp_their_epoch(&cluster, "spread");
    let read = consume(
        &cluster.bootstrap(),
        "spread",
        "readers",
        acknowledged.len(),
    );
    assert_eq!(read, acknowledged, "every acknowledged message, read once");

    for victim in 0..3 {
        cluster.kill(victim);
        let survivors: Vec<i32> = (0..3).filter(|&id| id != victim as i32).collect();
        let via = usize::try_from(survivors[0]).unwrap();
        // Fenced after its session: its partitions lose their leader.
        cluster.wait_metadata(via, &survivors, Some("spread"), Some(victim as i32));
        // The quorum has a majority: topics are created through survivors.
        let name = format!("while-{victim}-is-down");
        create_topic(&cluster.bootstrap(), &name, 2);
        // The partitions of the living are still written.
        let metadata = cluster.wait_metadata(via, &survivors, Some("spread"), Some(victim as i32));
        let alive: Vec<i32> = topic(&metadata, "spread")
            .partitions
            .iter()
            .filter(|p| p.leader_id.0 >= 0)
            .map(|p| p.partition_index)
            .collect();
        assert_eq!(alive.len(), 4);
        let tag = format!("without-{victim}");
        acknowledged.extend(produce(&cluster.bootstrap(), "spread", &alive, 200, &tag));
        cluster.start_broker(victim);
        cluster.wait_metadata(via, &[0, 1, 2], Some("spread"), None);
        cluster.wait_metadata(victim, &[0, 1, 2], Some(&name), None);
    }
    let read = consume(&cluster.bootstrap(), "spread", "after", acknowledged.len());
    assert_eq!(read.len(), acknowledged.len());
    assert_eq!(
        read, acknowledged,
        "nothing acknowledged lost across three SIGKILLs"
    );
    // Leaders that came back took new epochs, which their new batches carry.
    let all: Vec<i32> = (0..6).collect();
    produce(&cluster.bootstrap(), "spread", &all, 60, "last");
    check_leaders_stamp_their_epoch(&cluster, "spread");
}

/// OffsetForLeaderEpoch v4 as a consumer asks it: (error, epoch, end).
fn epoch_end(
    addr: SocketAddr,
    name: &str,
    partition: i32,
    current: i32,
    epoch: i32,
) -> (i16, i32, i64) {
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(common::topic_name(name))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(partition)
                        .with_current_leader_epoch(current)
                        .with_leader_epoch(epoch),
                ]),
        ]);
    let response: OffsetForLeaderEpochResponse =
        call(addr, ApiKey::OffsetForLeaderEpoch, 4, &request);
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

/// Each partition's leader answers a fetch with batches stamped with the
/// leader epochs it led in (never decreasing, the latest as Metadata gives
/// it), and every other broker answers NOT_LEADER_OR_FOLLOWER.
fn check_leaders_stamp_their_epoch(cluster: &Cluster, name: &str) {
    let metadata = cluster.wait_metadata(0, &[0, 1, 2], Some(name), None);
    for p in &topic(&metadata, name).partitions {
        let leader = usize::try_from(p.leader_id.0).unwrap();
        let mut epochs = Vec::new();
        let mut offset = 0;
        loop {
            let (code, high_watermark, records) =
                common::fetch_records(cluster.clients[leader], name, p.partition_index, offset);
            assert_eq!(code, 0);
            let records = records.unwrap_or_default();
            let mut rest = &records[..];
            while rest.len() >= 61 {
                let base = i64::from_be_bytes(rest[..8].try_into().unwrap());
                let length = usize::try_from(i32::from_be_bytes(rest[8..12].try_into().unwrap()));
                let count = i64::from(i32::from_be_bytes(rest[57..61].try_into().unwrap()));
                epochs.push(i32::from_be_bytes(rest[12..16].try_into().unwrap()));
                offset = base + count;
                rest = &rest[(12 + length.unwrap()).min(rest.len())..];
            }
            if offset >= high_watermark {
                break;
            }
        }
        assert!(!epochs.is_empty());
        assert_eq!(
            epochs.last(),
            Some(&p.leader_epoch),
            "partition {}: epochs {epochs:?}",
            p.partition_index
        );
        assert!(epochs.windows(2).all(|w| w[0] <= w[1]), "{epochs:?}");
        // OffsetForLeaderEpoch agrees: the current epoch ends at the high
        // watermark; an epoch the client believes current but is not is
        // fenced (older) or unknown (newer).
        let addr = cluster.clients[leader];
        let (code, epoch, end) = epoch_end(
            addr,
            name,
            p.partition_index,
            p.leader_epoch,
            p.leader_epoch,
        );
        assert_eq!((code, epoch), (0, p.leader_epoch));
        assert_eq!(end, offset, "the current epoch ends at the high watermark");
        if p.leader_epoch > 0 {
            let (code, ..) = epoch_end(addr, name, p.partition_index, p.leader_epoch - 1, 0);
            assert_eq!(code, 74, "FENCED_LEADER_EPOCH");
        }
        let (code, ..) = epoch_end(addr, name, p.partition_index, p.leader_epoch + 1, 0);
        assert_eq!(code, 76, "UNKNOWN_LEADER_EPOCH");
        // ListOffsets gives the current epoch with the latest offset.
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(common::topic_name(name))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(p.partition_index)
                            .with_timestamp(-1),
                    ]),
            ]);
        let listed: ListOffsetsResponse = call(addr, ApiKey::ListOffsets, 7, &request);
        let latest = &listed.topics[0].partitions[0];
        assert_eq!(
            (latest.offset, latest.leader_epoch),
            (offset, p.leader_epoch)
        );
        for other in (0..3).filter(|&id| id != leader) {
            let (code, _, _) =
                common::fetch_records(cluster.clients[other], name, p.partition_index, 0);
            assert_eq!(code, 6, "NOT_LEADER_OR_FOLLOWER from broker {other}");
        }
    }
}

#[test]
fn a_broker_stopped_with_sigterm_hands_over_at_once_and_rejoins_at_once() {
    // Sessions far longer than the waits below: only a controlled shutdown
    // fences the broker in time, and only then may its next life register.
    let config = "broker-session-timeout-ms = 120000\nbroker-heartbeat-interval-ms = 500\n";
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start_configured(dir.path(), 3, config);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    create_topic(&cluster.bootstrap(), "handover", 3);
    cluster.wait_metadata(0, &[0, 1, 2], Some("handover"), None);
    let acknowledged = produce(&cluster.bootstrap(), "handover", &[0, 1, 2], 90, "before");
    let status = common::stop(cluster.brokers[2].take().unwrap());
    assert!(status.success(), "SIGTERM: {status}");
    let within = Duration::from_secs(20);
    cluster.wait_metadata_within(0, &[0, 1], Some("handover"), Some(2), within);
    cluster.start_broker(2);
    cluster.wait_metadata_within(0, &[0, 1, 2], Some("handover"), None, within);
    let read = consume(&cluster.bootstrap(), "handover", "g", acknowledged.len());
    assert_eq!(read, acknowledged);
}

/// kafka-python, another client with its own protocol code, administers
/// the cluster through one broker and checks through another: topics
/// created, refused, grown, configured and deleted through the controller,
/// partitions spread over the three brokers; then produces through one and
/// consumes through another.
#[test]
fn kafka_python_administers_and_uses_the_cluster_through_any_broker() {
    let Some(python) = common::python_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    let via = |id: usize| cluster.clients[id].to_string();
    common::run_python_script(&python, "admin.py", &[&via(1), "create", "3"]);
    common::run_python_script(&python, "admin.py", &[&via(2), "check", "3"]);
    common::run_python_script(&python, "produce_consume.py", &[&via(0), "produce", "3000"]);
    common::run_python_script(&python, "produce_consume.py", &[&via(2), "consume", "3000"]);
    // A deleted topic leaves no partition behind on any broker.
    for id in 0..3 {
        let data = dir.path().join(format!("data-{id}"));
        let left: Vec<String> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("doomed-"))
            .collect();
        assert!(left.is_empty(), "broker {id} keeps {left:?}");
    }
}

#[test]
fn a_broker_alone_has_led_everything_at_epoch_0() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = common::start(dir.path(), addr, "warn");
    common::create_topic_raw(addr, "alone", 1);
    let bootstrap = addr.to_string();
    produce(&bootstrap, "alone", &[0], 30, "x");
    assert_eq!(epoch_end(addr, "alone", 0, 0, 0), (0, 0, 30));
    assert_eq!(epoch_end(addr, "alone", 0, -1, 7), (0, 0, 30));
    assert_eq!(epoch_end(addr, "alone", 0, 1, 0).0, 76);
    assert_eq!(epoch_end(addr, "alone", 0, -1, -1), (0, -1, -1));
    assert_eq!(
        epoch_end(addr, "alone", 5, -1, 0).0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
}

/// Reads until the peer closes the connection (or 10 s pass).
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    matches!(stream.read(&mut buf), Ok(0) | Err(_))
}

#[test]
fn a_voter_s_internal_port_turns_away_garbage_and_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 1);
    cluster.wait_metadata(0, &[0], None, None);
    let internal: SocketAddr = cluster.voters.split_once('@').unwrap().1.parse().unwrap();
    let hello = |node: u64, cluster_id: &str| {
        replication::quorum::wire::encode(&replication::quorum::wire::Frame::Hello {
            node_id: node,
            cluster_id: cluster_id.into(),
        })
    };
    let metadata: MetadataResponse = call(
        cluster.clients[0],
        ApiKey::Metadata,
        12,
        &MetadataRequest::default(),
    );
    let cluster_id = metadata.cluster_id.unwrap().to_string();
    let seed = std::process::id();
    println!("internal port garbage: seed {seed}");
    let mut state = u64::from(seed) | 1;
    let mut garbage = vec![0u8; 512];
    for byte in &mut garbage {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    let huge = [0x7fu8, 0xff, 0xff, 0xff, 1];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", garbage),
        ("an oversized frame", huge.to_vec()),
        ("another cluster's hello", hello(1, "someone-else")),
        ("a node that is not a voter", hello(9, &cluster_id)),
        ("a hello and then garbage", {
            let mut bytes = hello(1, &cluster_id);
            bytes.extend_from_slice(&[0, 0, 0, 5, 99, 1, 2, 3, 4]);
            bytes
        }),
    ];
    for (what, bytes) in cases {
        let mut stream = TcpStream::connect(internal).unwrap();
        let _ = stream.write_all(&bytes);
        assert!(
            closed_by_peer(&mut stream),
            "{what}: the connection stays open"
        );
    }
    // The broker serves on, and what it stored survives a SIGKILL: the
    // quorum's journal is replayed.
    create_topic(&cluster.clients[0].to_string(), "kept", 3);
    let acknowledged = produce(&cluster.bootstrap(), "kept", &[0, 1, 2], 90, "kept");
    cluster.kill(0);
    cluster.start_broker(0);
    cluster.wait_metadata(0, &[0], Some("kept"), None);
    let read = consume(&cluster.bootstrap(), "kept", "g", acknowledged.len());
    assert_eq!(read, acknowledged);
}

/// Waits (a minute at most) until broker `via` gives every partition of
/// `name` a live leader and `in_sync` replicas in sync; returns the
/// leaders by partition.
fn wait_replicated(cluster: &Cluster, via: usize, name: &str, in_sync: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let request = MetadataRequest::default().with_topics(None);
        let response: MetadataResponse = call(cluster.clients[via], ApiKey::Metadata, 12, &request);
        let found = response
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name));
        if let Some(t) = found {
            let live = |id: i32| usize::try_from(id).is_ok_and(|id| cluster.brokers[id].is_some());
            let ready = !t.partitions.is_empty()
                && t.partitions
                    .iter()
                    .all(|p| live(p.leader_id.0) && p.isr_nodes.len() >= in_sync);
            if ready {
                return t.partitions.iter().map(|p| p.leader_id.0).collect();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{name}: no leaders with {in_sync} in sync via {via}: {found:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Item 3 and the failover test of issue 13: a topic of 3 replicas with
/// min.insync.replicas=2, an idempotent librdkafka producer (acks=all,
/// as the Java client's default is) writing all along, and the leader of
/// partition 0 SIGKILLed again and again (restarted each time, back in
/// the ISR before the next kill): every acknowledged message is read back
/// exactly once, in order per partition. (Without idempotence, librdkafka's
/// own default, a batch whose answer died with the leader is sent again
/// and stored twice: at least once, as in Kafka.) SHARDLOG_FAILOVERS sets
/// the count (10 by default).
#[test]
fn replicated_writes_survive_repeated_leader_kills() {
    let failovers: usize = std::env::var("SHARDLOG_FAILOVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    create_min_insync_topic(&cluster, "replicated", 2);
    let sent = write_through(&mut cluster, "replicated", 2, |cluster, acknowledged| {
        for round in 0..failovers {
            std::thread::sleep(Duration::from_millis(700));
            let via = cluster.live().next().unwrap();
            let victim =
                usize::try_from(wait_replicated(cluster, via, "replicated", 3)[0]).unwrap();
            eprintln!(
                "failover {round}: SIGKILL broker {victim} (leads partition 0); {} acknowledged so far",
                acknowledged()
            );
            cluster.kill(victim);
            let via = cluster.live().next().unwrap();
            wait_replicated(cluster, via, "replicated", 2);
            std::thread::sleep(Duration::from_millis(500));
            cluster.start_broker(victim);
        }
        let via = cluster.live().next().unwrap();
        wait_replicated(cluster, via, "replicated", 3);
    });
    eprintln!("{sent} messages, {failovers} failovers, all read back");
}

/// A rolling restart, as operators upgrade a cluster: each broker in turn
/// stopped with SIGTERM (its leaderships handed over at once by its
/// controlled shutdown), started again and waited for back in every ISR,
/// twice over, while an idempotent producer writes with acks=all; every
/// acknowledged message is read back exactly once, in order.
#[test]
fn a_rolling_restart_under_load_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    create_min_insync_topic(&cluster, "rolled", 3);
    let sent = write_through(&mut cluster, "rolled", 3, |cluster, acknowledged| {
        for id in [0, 1, 2, 0, 1, 2] {
            std::thread::sleep(Duration::from_millis(500));
            eprintln!(
                "SIGTERM broker {id}; {} acknowledged so far",
                acknowledged()
            );
            let status = common::stop(cluster.brokers[id].take().unwrap());
            assert!(status.success(), "broker {id} stopped: {status}");
            common::wait_port_closed(cluster.clients[id]);
            cluster.start_broker(id);
            let via = cluster.live().find(|&live| live != id).unwrap();
            wait_replicated(cluster, via, "rolled", 3);
        }
    });
    eprintln!("{sent} messages through two rolling restarts, all read back");
}

/// A restarted broker knows the cluster only once it caught up with the
/// metadata log; until then its logs on disk are not its to write, even
/// where its last metadata made it the leader (the rolling restart above
/// lost acknowledged records that way: a producer with the old metadata
/// wrote to the broker before it knew it had been replaced, unreplicated,
/// and the next leader's history cut them). Here it cannot catch up at
/// all: it is the only voter of three alive.
#[test]
fn a_restarted_broker_takes_no_write_before_it_caught_up_with_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    create_replicated_topic(&cluster.bootstrap(), "stale", 1, 3);
    wait_replicated(&cluster, 0, "stale", 3);
    let acknowledged = produce(&cluster.bootstrap(), "stale", &[0], 20, "before");
    for id in 0..3 {
        cluster.kill(id);
    }
    cluster.start_broker(0);
    let mut stream = TcpStream::connect(cluster.clients[0]).unwrap();
    let code = common::produce_one(&mut stream, "stale", 1).unwrap();
    assert_eq!(
        code, 6,
        "NOT_LEADER_OR_FOLLOWER before the broker caught up"
    );
    for id in 1..3 {
        cluster.start_broker(id);
    }
    wait_replicated(&cluster, 0, "stale", 3);
    let read = consume(&cluster.bootstrap(), "stale", "g", acknowledged.len());
    assert_eq!(read, acknowledged);
}

/// Creates `name` with `partitions` partitions of three replicas and
/// min.insync.replicas=2, and waits until all three are in sync.
fn create_min_insync_topic(cluster: &Cluster, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .create()
        .unwrap();
    let topic =
        NewTopic::new(name, partitions, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in futures::executor::block_on(admin.create_topics(&[topic], &options)).unwrap() {
        result.unwrap();
    }
    wait_replicated(cluster, 0, name, 3);
}

/// Runs `disturb` (given the cluster and a count of the messages
/// acknowledged so far) while an idempotent librdkafka producer (acks=all,
/// as the Java client's default is) writes "m-N" round robin over
/// `partitions` partitions of `topic` at about 10,000 messages/s; then
/// checks every message was delivered and reads them all back: exactly
/// the acknowledged ones at their offsets, in order per partition. (Without
/// idempotence, librdkafka's own default, a batch whose answer died with
/// its leader is sent again and stored twice: at least once, as in Kafka.)
/// Returns how many were sent.
fn write_through(
    cluster: &mut Cluster,
    topic: &str,
    partitions: i32,
    disturb: impl FnOnce(&mut Cluster, &dyn Fn() -> usize),
) -> usize {
    let deliveries = Deliveries::default();
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create_with_context(deliveries.clone())
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let count = usize::try_from(partitions).unwrap();
    let sent = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let value = format!("m-{i}");
                let record = BaseRecord::<(), _>::to(topic)
                    .partition(i32::try_from(i % count).unwrap())
                    .payload(&value);
                if !send_unless_stopped(&producer, record, &stop) {
                    break;
                }
                i += 1;
                if i.is_multiple_of(50) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            i
        });
        // A failed wait in `disturb` must stop the writer too, or the
        // scope would wait for it forever.
        let _stop_writer = StopOnDrop(&stop);
        let acknowledged = || deliveries.0.lock().unwrap().len();
        disturb(cluster, &acknowledged);
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap()
    });
    producer.flush(Duration::from_secs(120)).unwrap();
    let reports = deliveries.0.lock().unwrap().clone();
    assert_eq!(reports.len(), sent, "a report for every message");
    let failed: Vec<&String> = reports.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} not delivered: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let acknowledged: BTreeMap<(i32, i64), String> = reports
        .into_iter()
        .filter_map(Result::ok)
        .map(|(p, o, v)| ((p, o), v))
        .collect();
    let group = format!("{topic}-checkers");
    let read = consume(&cluster.bootstrap(), topic, &group, acknowledged.len());
    assert_read_exactly(&acknowledged, &read, partitions);
    sent
}

/// Sets the flag when dropped (also when a panic unwinds past it).
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Sends `record`, waiting while librdkafka's queue is full, unless `stop`
/// is set first; says whether it was sent.
fn send_unless_stopped(
    producer: &ThreadedProducer<Deliveries>,
    mut record: BaseRecord<'_, (), String>,
    stop: &std::sync::atomic::AtomicBool,
) -> bool {
    loop {
        match producer.send(record) {
            Ok(()) => return true,
            Err((e, back)) => {
                assert!(
                    e.to_string().contains("Queue full"),
                    "send: {e}; the producer's fatal error: {:?}",
                    producer.client().fatal_error()
                );
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return false;
                }
                record = back;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// What was read is exactly what was acknowledged, at the same offsets,
/// and the values ("m-N", N rising as they were sent) of each of the
/// `partitions` rise with the offsets.
fn assert_read_exactly(
    acknowledged: &BTreeMap<(i32, i64), String>,
    read: &BTreeMap<(i32, i64), String>,
    partitions: i32,
) {
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|(at, value)| read.get(at) != Some(value))
        .take(5)
        .collect();
    let extra: Vec<_> = read
        .iter()
        .filter(|(at, _)| !acknowledged.contains_key(at))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && read.len() == acknowledged.len(),
        "read {} of {} acknowledged; lost or changed (first): {missing:?}; never acknowledged (first): {extra:?}",
        read.len(),
        acknowledged.len()
    );
    for partition in 0..partitions {
        let values: Vec<usize> = read
            .range((partition, 0)..(partition, i64::MAX))
            .map(|(_, v)| v.trim_start_matches("m-").parse().unwrap())
            .collect();
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "partition {partition} out of order"
        );
    }
}

/// Producer ids come from blocks every broker reserves through the
/// controller: asked of all three brokers at once (each with two shards
/// reserving), no id is handed out twice.
#[test]
fn producer_ids_are_unique_across_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    let ids: Vec<i64> = std::thread::scope(|scope| {
        let askers: Vec<_> = (0..6)
            .map(|asker| {
                let addr = cluster.clients[asker % 3];
                scope.spawn(move || {
                    (0..20)
                        .map(|_| {
                            let request = InitProducerIdRequest::default()
                                .with_transactional_id(None)
                                .with_transaction_timeout_ms(60_000)
                                .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                                .with_producer_epoch(-1);
                            let response: InitProducerIdResponse =
                                call(addr, ApiKey::InitProducerId, 4, &request);
                            assert_eq!(response.error_code, 0, "{response:?}");
                            response.producer_id.0
                        })
                        .collect::<Vec<i64>>()
                })
            })
            .collect();
        askers.into_iter().flat_map(|a| a.join().unwrap()).collect()
    });
    let distinct: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "an id handed out twice: {ids:?}");
}

/// The broker coordinating `group`, as broker `via` answers FindCoordinator
/// (waiting, a minute at most, for one among the living).
fn group_coordinator(cluster: &Cluster, via: usize, group: &str) -> usize {
    find_coordinator(cluster, via, group, 0)
}

/// The broker coordinating `key` of `key_type` (0 a group, 1 a
/// transactional id), among the living.
fn find_coordinator(cluster: &Cluster, via: usize, key: &str, key_type: i8) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let request = FindCoordinatorRequest::default()
            .with_key(kafka_protocol::protocol::StrBytes::from_string(key.into()))
            .with_key_type(key_type);
        let response: FindCoordinatorResponse =
            call(cluster.clients[via], ApiKey::FindCoordinator, 3, &request);
        let node = usize::try_from(response.node_id.0).ok();
        if response.error_code == 0
            && let Some(node) =
                node.filter(|&n| cluster.brokers.get(n).is_some_and(Option::is_some))
        {
            return node;
        }
        assert!(
            Instant::now() < deadline,
            "no live coordinator for {key} via {via}: {response:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `__consumer_offsets` has as many replicas as the cluster has voters, so
/// a group's committed offsets survive its coordinator's broker: killed,
/// the group moves to the new leader of its partition, which replays them,
/// and the consumers go on from where they committed (nothing read twice,
/// nothing skipped); the same after the broker's return.
#[test]
fn committed_offsets_survive_the_group_coordinator_s_broker() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    create_replicated_topic(&cluster.bootstrap(), "jobs", 2, 3);
    wait_replicated(&cluster, 0, "jobs", 3);
    let first = produce(&cluster.bootstrap(), "jobs", &[0, 1], 200, "first");
    let read = consume(&cluster.bootstrap(), "jobs", "workers", first.len());
    assert_eq!(read, first, "the first 200, read once and committed");
    wait_replicated(&cluster, 0, "__consumer_offsets", 3);

    let coordinator = group_coordinator(&cluster, 0, "workers");
    eprintln!("SIGKILL broker {coordinator}, the coordinator of group workers");
    cluster.kill(coordinator);
    let via = cluster.live().next().unwrap();
    let next = group_coordinator(&cluster, via, "workers");
    assert_ne!(next, coordinator);
    let second = produce(&cluster.bootstrap(), "jobs", &[0, 1], 100, "second");
    let read = consume(&cluster.bootstrap(), "jobs", "workers", second.len());
    assert_eq!(
        read, second,
        "broker {next} coordinates from the offsets committed at {coordinator}"
    );

    cluster.start_broker(coordinator);
    wait_replicated(&cluster, via, "__consumer_offsets", 3);
    let third = produce(&cluster.bootstrap(), "jobs", &[0, 1], 50, "third");
    let read = consume(&cluster.bootstrap(), "jobs", "workers", third.len());
    assert_eq!(read, third, "and again with broker {coordinator} back");

    // A coordinator frozen past its session (a long pause) is fenced
    // alive; its groups move. Woken, it learns so: a commit sent to it
    // then (one that would rewind the group) is refused, and nothing of
    // it reaches the group's offsets.
    let frozen = group_coordinator(&cluster, via, "workers");
    cluster.signal(frozen, libc::SIGSTOP);
    let others: Vec<i32> = (0..3).filter(|&id| id != frozen as i32).collect();
    let via = usize::try_from(others[0]).unwrap();
    cluster.wait_metadata(via, &others, None, None);
    // The shards of a broker each take the new metadata in turn: the one
    // that answers FindCoordinator may not have it yet.
    let deadline = Instant::now() + Duration::from_secs(10);
    let next = loop {
        let next = group_coordinator(&cluster, via, "workers");
        if next != frozen || Instant::now() >= deadline {
            break next;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(next, frozen, "fenced, broker {frozen} coordinates nothing");
    let bootstrap: Vec<String> = others
        .iter()
        .map(|&id| cluster.clients[usize::try_from(id).unwrap()].to_string())
        .collect();
    let fourth = produce(&bootstrap.join(","), "jobs", &[0, 1], 50, "fourth");
    let read = consume(&bootstrap.join(","), "jobs", "workers", fourth.len());
    assert_eq!(read, fourth, "broker {next} took the group over");
    cluster.signal(frozen, libc::SIGCONT);
    let rewind = commit_offset(cluster.clients[frozen], "workers", "jobs", 0, 0);
    assert_ne!(rewind, 0, "a commit to the woken ex-coordinator is refused");
    cluster.wait_metadata(via, &[0, 1, 2], None, None);
    wait_replicated(&cluster, via, "__consumer_offsets", 3);
    let fifth = produce(&cluster.bootstrap(), "jobs", &[0, 1], 50, "fifth");
    let read = consume(&cluster.bootstrap(), "jobs", "workers", fifth.len());
    assert_eq!(read, fifth, "the group's offsets as it committed them");
}

/// Preferred leaders (the first of each partition's replicas): a broker
/// SIGKILLed and restarted is back in every ISR but leads nothing until
/// kafka-python asks for the preferred leaders (ElectLeaders), or, with
/// auto leader rebalance, until the controller's next imbalance check.
/// The moved partitions lose and repeat nothing.
fn preferred_leaders_come_back(auto_rebalance: bool) {
    let config = if auto_rebalance {
        format!("{CONFIG}leader-imbalance-check-interval-seconds = 1\n")
    } else {
        format!("{CONFIG}auto-leader-rebalance-enable = false\n")
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start_configured(dir.path(), 3, &config);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    create_replicated_topic(&cluster.bootstrap(), "homes", 3, 3);
    cluster.wait_metadata(0, &[0, 1, 2], Some("homes"), None);
    let mut written = produce(&cluster.bootstrap(), "homes", &[0, 1, 2], 300, "before");
    cluster.kill(1);
    cluster.wait_metadata(0, &[0, 2], None, None);
    cluster.start_broker(1);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    wait_replicated(&cluster, 0, "homes", 3);
    if auto_rebalance {
        cluster.wait_metadata(2, &[0, 1, 2], Some("homes"), None);
    } else {
        let leaders = wait_replicated(&cluster, 0, "homes", 3);
        assert!(!leaders.contains(&1), "broker 1 leads {leaders:?} unasked");
        let Some(python) = common::python_or_skip() else {
            return;
        };
        let via = cluster.clients[2].to_string();
        common::run_python_script(&python, "elect_leaders.py", &[&via, "homes"]);
        cluster.wait_metadata(0, &[0, 1, 2], Some("homes"), None);
    }
    written.extend(produce(
        &cluster.bootstrap(),
        "homes",
        &[0, 1, 2],
        300,
        "after",
    ));
    let read = consume(&cluster.bootstrap(), "homes", "homes-reader", written.len());
    assert_eq!(read, written);
    // Every broker holds a replica of every partition, led there or not.
    for id in 0..3 {
        let sizes = replica_sizes(&cluster, id, "homes");
        assert_eq!(sizes.len(), 3, "broker {id}: {sizes:?}");
        assert!(
            sizes.values().all(|&size| size > 0),
            "broker {id}: {sizes:?}"
        );
    }
}

/// The partitions of `topic` broker `via` has a replica of, with their
/// sizes (DescribeLogDirs).
fn replica_sizes(cluster: &Cluster, via: usize, topic: &str) -> BTreeMap<i32, i64> {
    use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
    let request = DescribeLogDirsRequest::default().with_topics(None);
    let response: DescribeLogDirsResponse =
        call(cluster.clients[via], ApiKey::DescribeLogDirs, 4, &request);
    response
        .results
        .iter()
        .flat_map(|dir| &dir.topics)
        .filter(|t| t.name.0.as_str() == topic)
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, p.partition_size))
        .collect()
}

#[test]
fn elect_leaders_gives_partitions_back_to_their_preferred_replicas() {
    preferred_leaders_come_back(false);
}

#[test]
fn auto_leader_rebalance_gives_partitions_back_to_their_preferred_replicas() {
    preferred_leaders_come_back(true);
}

/// A simple (group-less) OffsetCommit of `offset` for `topic`/`partition`
/// in `group`, sent to `addr`; its error code.
fn commit_offset(addr: SocketAddr, group: &str, topic: &str, partition: i32, offset: i64) -> i16 {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetCommitResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1),
                ]),
        ]);
    let response: OffsetCommitResponse = call(addr, ApiKey::OffsetCommit, 8, &request);
    response.topics[0].partitions[0].error_code
}

/// Transactions whose partitions are led by all three brokers: the
/// coordinator (the leader of its id's partition of `__transaction_state`)
/// is asked by the other leaders whether a partition is in the transaction
/// (AddPartitionsToTxn verify_only) and writes the markers at each leader
/// (WriteTxnMarkers). A read_committed reader gets exactly the committed
/// messages, and reads past the aborted ones; offsets sent in a transaction
/// to a group coordinated elsewhere are committed with it.
#[test]
fn transactions_span_the_brokers_of_a_cluster() {
    use rdkafka::producer::BaseProducer;
    const WAIT: Duration = Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    create_replicated_topic(&cluster.bootstrap(), "ledger", 3, 3);
    let leaders: BTreeSet<i32> = wait_replicated(&cluster, 0, "ledger", 3)
        .into_iter()
        .collect();
    assert_eq!(leaders.len(), 3, "a leader on each broker: {leaders:?}");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("transactional.id", "spread")
        .set("linger.ms", "2")
        .create()
        .unwrap();
    producer.init_transactions(WAIT).unwrap();
    let mut committed = BTreeSet::new();
    for t in 0..4 {
        producer.begin_transaction().unwrap();
        let values: Vec<String> = (0..30).map(|i| format!("t{t}-{i}")).collect();
        for (i, value) in values.iter().enumerate() {
            let record = BaseRecord::<(), String>::to("ledger")
                .partition(i32::try_from(i % 3).unwrap())
                .payload(value);
            producer.send(record).map_err(|(e, _)| e).unwrap();
        }
        if t == 2 {
            // Flushed first, so the aborted records are in the logs.
            producer.flush(WAIT).unwrap();
            producer.abort_transaction(WAIT).unwrap();
        } else {
            producer.commit_transaction(WAIT).unwrap();
            committed.extend(values);
        }
    }
    // Offsets sent inside a transaction (read-process-write) to a group
    // coordinated by another broker than the transaction: they count once
    // the marker reaches that broker's partition of __consumer_offsets.
    let coordinator = find_coordinator(&cluster, 0, "spread", 1);
    let group = (0..)
        .map(|n| format!("ledger-app-{n}"))
        .find(|g| group_coordinator(&cluster, 0, g) != coordinator)
        .unwrap();
    let app: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut offsets = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        offsets
            .add_partition_offset("ledger", p, rdkafka::Offset::Offset(7 + i64::from(p)))
            .unwrap();
    }
    producer.begin_transaction().unwrap();
    producer
        .send_offsets_to_transaction(&offsets, &app.group_metadata().unwrap(), WAIT)
        .unwrap();
    producer.commit_transaction(WAIT).unwrap();
    let mut asked = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        asked.add_partition("ledger", p);
    }
    let committed_offsets: Vec<rdkafka::Offset> = app
        .committed_offsets(asked, WAIT)
        .unwrap()
        .elements()
        .iter()
        .map(rdkafka::topic_partition_list::TopicPartitionListElem::offset)
        .collect();
    assert_eq!(
        committed_offsets,
        (7..10).map(rdkafka::Offset::Offset).collect::<Vec<_>>(),
        "the offsets sent in the transaction, committed at {group}'s coordinator"
    );

    let consumer = common::assigned_consumer(
        cluster.clients[0],
        "ledger",
        3,
        "ledger-readers",
        "read_committed",
    );
    let mut read = BTreeSet::new();
    let deadline = Instant::now() + WAIT;
    while read.len() < committed.len() && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
            assert!(read.insert(value.into_owned()), "a message read twice");
        }
    }
    assert_eq!(
        read, committed,
        "read_committed: the committed transactions"
    );
    deposed_coordinator_markers_are_fenced(&cluster, "ledger");
}

/// A marker from a coordinator epoch older than the one the coordinator
/// wrote `topic`-0's last marker with (what a deposed coordinator would
/// send late) is TRANSACTION_COORDINATOR_FENCED at the partition's leader.
fn deposed_coordinator_markers_are_fenced(cluster: &Cluster, topic: &str) {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    use kafka_protocol::messages::{
        DescribeProducersRequest, DescribeProducersResponse, WriteTxnMarkersRequest,
        WriteTxnMarkersResponse,
    };
    let leader = leader_of(cluster, 0, topic, 0).unwrap();
    let leader = cluster.clients[usize::try_from(leader).unwrap()];
    let request = DescribeProducersRequest::default().with_topics(vec![
        TopicRequest::default()
            .with_name(common::topic_name(topic))
            .with_partition_indexes(vec![0]),
    ]);
    let described: DescribeProducersResponse = call(leader, ApiKey::DescribeProducers, 0, &request);
    let producer = described.topics[0].partitions[0].active_producers[0].clone();
    assert!(
        producer.coordinator_epoch >= 0,
        "the coordinator's epoch is kept: {producer:?}"
    );
    let late = WritableTxnMarker::default()
        .with_producer_id(producer.producer_id)
        .with_producer_epoch(i16::try_from(producer.producer_epoch).unwrap())
        .with_transaction_result(false)
        .with_coordinator_epoch(producer.coordinator_epoch - 1)
        .with_topics(vec![
            WritableTxnMarkerTopic::default()
                .with_name(common::topic_name(topic))
                .with_partition_indexes(vec![0]),
        ]);
    let request = WriteTxnMarkersRequest::default().with_markers(vec![late]);
    let response: WriteTxnMarkersResponse = call(leader, ApiKey::WriteTxnMarkers, 1, &request);
    let code = response.markers[0].topics[0].partitions[0].error_code;
    assert_eq!(code, 52, "TRANSACTION_COORDINATOR_FENCED");
}

/// The ISR of `topic`'s partition `partition`, as broker `via` has it.
fn isr_of(cluster: &Cluster, via: usize, topic: &str, partition: i32) -> Vec<i32> {
    let request = MetadataRequest::default().with_topics(None);
    let response: MetadataResponse = call(cluster.clients[via], ApiKey::Metadata, 12, &request);
    let found = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .and_then(|t| t.partitions.iter().find(|p| p.partition_index == partition));
    let mut isr: Vec<i32> = found.map_or(Vec::new(), |p| p.isr_nodes.iter().map(|b| b.0).collect());
    isr.sort_unstable();
    isr
}

/// A follower that stalls (frozen by SIGSTOP, as by a long pause, but not
/// long enough to be fenced) leaves the ISR after
/// `replica-lag-time-max-ms`, so acks=all writes go on with the other two;
/// woken, it catches up and comes back; everything acknowledged is read
/// back once, in order.
#[test]
fn a_stalled_follower_leaves_the_isr_after_the_replica_lag_time() {
    let config = "broker-session-timeout-ms = 120000\n\
                  broker-heartbeat-interval-ms = 500\n\
                  replica-lag-time-max-ms = 2000\n";
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start_configured(dir.path(), 3, config);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    create_replicated_topic(&cluster.bootstrap(), "steady", 1, 3);
    let leader = usize::try_from(wait_replicated(&cluster, 0, "steady", 3)[0]).unwrap();
    let follower = (0..3).find(|&id| id != leader).unwrap();
    let awake: Vec<String> = (0..3)
        .filter(|&id| id != follower)
        .map(|id| cluster.clients[id].to_string())
        .collect();
    let mut acknowledged = produce(&cluster.bootstrap(), "steady", &[0], 100, "before");

    cluster.signal(follower, libc::SIGSTOP);
    // Delivered within 15 s: the follower is out after 2 s (with Kafka's
    // default of 30 s these would time out).
    let stalled = produce_with(
        &awake.join(","),
        "steady",
        &[0],
        100,
        "stalled",
        &[("message.timeout.ms", "15000")],
    );
    let isr = isr_of(&cluster, leader, "steady", 0);
    assert!(
        !isr.contains(&i32::try_from(follower).unwrap()) && isr.len() == 2,
        "broker {follower} out of the ISR: {isr:?}"
    );
    cluster.signal(follower, libc::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(60);
    while isr_of(&cluster, leader, "steady", 0).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "broker {follower} never came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    acknowledged.extend(stalled);
    let read = consume(&cluster.bootstrap(), "steady", "steady-readers", 200);
    assert_eq!(read, acknowledged);
}

/// The leader of partition `partition` of `topic` as broker `via` says.
fn leader_of(cluster: &Cluster, via: usize, topic: &str, partition: i32) -> Option<i32> {
    let request = MetadataRequest::default().with_topics(None);
    let response: MetadataResponse = call(cluster.clients[via], ApiKey::Metadata, 12, &request);
    response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .and_then(|t| t.partitions.iter().find(|p| p.partition_index == partition))
        .map(|p| p.leader_id.0)
}

/// A leader cut off from the other brokers (every frame between them lost:
/// the brokers' SHARDLOG_CUT_OFF_FILE failpoint) is fenced once its
/// session ends and its partition gets a new leader from the ISR; it
/// acknowledges no acks=all write while cut off: a producer that knows
/// only it (and is told it still leads) gets none of its messages
/// acknowledged, and none of them is ever read. Healed, it follows the new
/// leader, cuts what it took alone and rejoins the ISR; everything
/// acknowledged before and after is read back, once, in order.
#[test]
fn a_leader_cut_off_from_its_peers_acknowledges_nothing_and_loses_its_leadership() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    create_min_insync_topic(&cluster, "isolated", 1);
    let mut acknowledged = produce(&cluster.bootstrap(), "isolated", &[0], 200, "before");
    let cut_leader = wait_replicated(&cluster, 0, "isolated", 3)[0];
    let others: Vec<i32> = (0..3).filter(|&id| id != cut_leader).collect();
    let via = usize::try_from(others[0]).unwrap();
    let cut = common::cut_off_file(&dir.path().join(format!("data-{cut_leader}")));
    std::fs::write(&cut, b"").unwrap();
    eprintln!("broker {cut_leader}, the leader of isolated-0, cut off");

    cluster.wait_metadata(via, &others, None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    let new_leader = loop {
        match leader_of(&cluster, via, "isolated", 0) {
            Some(leader) if leader >= 0 && leader != cut_leader => break leader,
            other => assert!(Instant::now() < deadline, "isolated-0 led by {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        leader_of(
            &cluster,
            usize::try_from(cut_leader).unwrap(),
            "isolated",
            0
        ),
        Some(cut_leader),
        "cut off, the old leader has not heard of its successor"
    );
    let deliveries = Deliveries::default();
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set(
            "bootstrap.servers",
            cluster.clients[usize::try_from(cut_leader).unwrap()].to_string(),
        )
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("request.timeout.ms", "3000")
        .set("message.timeout.ms", "6000")
        .create_with_context(deliveries.clone())
        .unwrap();
    for i in 0..50 {
        let value = format!("during-{i}");
        common::send_when_queued(
            &producer,
            BaseRecord::<(), _>::to("isolated")
                .partition(0)
                .payload(&value),
        );
    }
    let _ = producer.flush(Duration::from_secs(30));
    let reports = deliveries.0.lock().unwrap().clone();
    assert_eq!(reports.len(), 50, "a report for every message");
    let taken: Vec<_> = reports.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert!(taken.is_empty(), "acknowledged while cut off: {taken:?}");

    std::fs::remove_file(&cut).unwrap();
    cluster.wait_metadata(via, &[0, 1, 2], None, None);
    assert_eq!(wait_replicated(&cluster, via, "isolated", 3)[0], new_leader);
    acknowledged.extend(produce(
        &cluster.bootstrap(),
        "isolated",
        &[0],
        200,
        "after",
    ));
    let read = consume(
        &cluster.bootstrap(),
        "isolated",
        "isolated-readers",
        acknowledged.len(),
    );
    assert_eq!(
        read, acknowledged,
        "exactly what was acknowledged, none of the cut-off writes"
    );
}

/// The base offsets of the segment files of `topic`-`partition` on broker
/// `id`.
fn segment_bases(dir: &Path, id: usize, topic: &str, partition: i32) -> Vec<i64> {
    let path = dir
        .join(format!("data-{id}"))
        .join(format!("{topic}-{partition}"));
    let mut bases: Vec<i64> = std::fs::read_dir(path)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

/// The log start offset broker `id` persisted for `topic`-`partition`.
fn checkpointed_log_start(dir: &Path, id: usize, topic: &str, partition: i32) -> Option<i64> {
    log_start_in(
        &dir.join(format!("data-{id}"))
            .join(format!("{topic}-{partition}")),
    )
}

/// The log start offset persisted in the log directory `dir`.
fn log_start_in(dir: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join("partition.checkpoint")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("log_start_offset ")?.parse().ok())
}

/// A follower that was away while its leader's log start moved past its
/// log end (DeleteRecords removed the segments it would read next) is
/// told to start over there: its old segments go, it takes the leader's
/// batches from the one holding the log start, and it is back in the ISR.
/// Readers get everything acknowledged from the new log start on, also
/// from the next leader (followers' logs start where the leader's does).
#[test]
fn a_follower_left_below_the_leader_s_log_start_starts_over_and_rejoins() {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, TopicName};
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    let topic = NewTopic::new("trimmed", 1, TopicReplication::Fixed(3))
        .set("min.insync.replicas", "2")
        .set("segment.bytes", "16384");
    create_new_topic(&cluster.bootstrap(), &topic);
    let leader = usize::try_from(wait_replicated(&cluster, 0, "trimmed", 3)[0]).unwrap();
    let away = (leader + 1) % 3;
    produce(&cluster.bootstrap(), "trimmed", &[0], 300, "early");
    cluster.kill(away);
    eprintln!("broker {away} away; broker {leader} leads trimmed-0");
    // Small batches: many segments of 16 KiB.
    let small = [("batch.size", "2000"), ("linger.ms", "0")];
    let kept = produce_with(&cluster.bootstrap(), "trimmed", &[0], 3000, "later", &small);
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(TopicName(
                    kafka_protocol::protocol::StrBytes::from_static_str("trimmed"),
                ))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(3000),
                ]),
        ]);
    let response: DeleteRecordsResponse =
        call(cluster.clients[leader], ApiKey::DeleteRecords, 2, &request);
    let deleted = &response.topics[0].partitions[0];
    assert_eq!((deleted.error_code, deleted.low_watermark), (0, 3000));
    let retained = segment_bases(dir.path(), leader, "trimmed", 0)[0];
    assert!(
        retained > 300,
        "the leader removed the segments below {retained}"
    );

    cluster.start_broker(away);
    wait_replicated(&cluster, leader, "trimmed", 3);
    let bases = segment_bases(dir.path(), away, "trimmed", 0);
    assert!(
        bases[0] >= retained && bases[0] <= 3000,
        "broker {away} started over: segments {bases:?}, the leader's from {retained}"
    );
    let mut expected: BTreeMap<(i32, i64), String> = kept
        .into_iter()
        .filter(|((_, offset), _)| *offset >= 3000)
        .collect();
    expected.extend(produce(&cluster.bootstrap(), "trimmed", &[0], 100, "after"));
    let read = consume(
        &cluster.bootstrap(),
        "trimmed",
        "trimmed-readers",
        expected.len(),
    );
    assert_eq!(
        read, expected,
        "everything acknowledged from the log start on"
    );
    // The followers' logs start where the leader's does (as each persisted
    // it): the one in sync all along and the one that started over below
    // it. Whichever leads next serves nothing below it.
    for follower in [away, 3 - leader - away] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while checkpointed_log_start(dir.path(), follower, "trimmed", 0) != Some(3000) {
            assert!(
                Instant::now() < deadline,
                "broker {follower}'s log starts at {:?}",
                checkpointed_log_start(dir.path(), follower, "trimmed", 0)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    cluster.kill(leader);
    let third = 3 - leader - away;
    let others = format!("{},{}", cluster.clients[away], cluster.clients[third]);
    let read = consume(&others, "trimmed", "trimmed-readers-2", expected.len());
    assert_eq!(read, expected, "the next leader starts where the last did");
}

/// Whether broker `id` has a replica of `topic`-`partition` on disk.
fn has_replica(dir: &Path, id: usize, topic: &str, partition: i32) -> bool {
    dir.join(format!("data-{id}"))
        .join(format!("{topic}-{partition}"))
        .exists()
}

/// Partition reassignments (KIP-455) asked by kafka-python: partition 0
/// moves from brokers [0, 1] to [2, 1], partition 1 from [1, 2] to [0]
/// alone, while an idempotent producer writes to both. The new replicas
/// catch up from the leaders' logs, the old ones leave (their copies
/// deleted) and the leaderships move with them; every acknowledged message
/// is read back exactly, in order. Then, broker 0 down, a move that
/// cannot finish is listed in progress until it is cancelled.
#[test]
fn reassignments_move_replicas_to_other_brokers_and_back() {
    let Some(python) = common::python_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    let placed: [&[i32]; 2] = [&[0, 1], &[1, 2]];
    create_new_topic(
        &cluster.bootstrap(),
        &NewTopic::new("moving", 2, TopicReplication::Variable(&placed)),
    );
    wait_replicated(&cluster, 0, "moving", 2);
    let root = dir.path().to_path_buf();
    // An idempotent producer writes all along; every acknowledged message
    // is read back exactly, in order.
    let sent = write_through(&mut cluster, "moving", 2, |cluster, acknowledged| {
        while acknowledged() < 500 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let bootstrap = cluster.bootstrap();
        common::run_python_script(&python, "reassign.py", &[&bootstrap, "moving", "move"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while has_replica(&root, 0, "moving", 0)
            || has_replica(&root, 1, "moving", 1)
            || has_replica(&root, 2, "moving", 1)
        {
            assert!(
                Instant::now() < deadline,
                "the removed replicas are still on disk"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(has_replica(&root, 2, "moving", 0) && has_replica(&root, 0, "moving", 1));
    });
    cluster.kill(0);
    // Fenced: by a controller that is alive (kafka-python sends to it).
    let metadata = cluster.wait_metadata(1, &[1, 2], None, None);
    assert!([1, 2].contains(&metadata.controller_id.0), "{metadata:?}");
    let others = format!("{},{}", cluster.clients[1], cluster.clients[2]);
    common::run_python_script(&python, "reassign.py", &[&others, "moving", "cancel"]);
    cluster.start_broker(0);
    wait_replicated(&cluster, 1, "moving", 1);
    let read = consume(&cluster.bootstrap(), "moving", "movers-again", sent);
    assert_eq!(read.len(), sent, "broker 0 back with partition 1");
}

/// A follower catching up (restarted after 3 MiB were written without it)
/// is sent the leader's log at `leader-replication-throttled-rate` (here
/// 256 KiB/s for the broker): it stays out of the ISR for as long as that
/// takes at least, while producers are answered as usual, then rejoins;
/// every acknowledged message is read back.
#[test]
fn a_follower_catching_up_is_throttled_and_producers_go_on() {
    let config = format!("{CONFIG}leader-replication-throttled-rate = 262144\n");
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start_configured(dir.path(), 3, &config);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    create_replicated_topic(&cluster.bootstrap(), "paced", 1, 3);
    let leader = usize::try_from(wait_replicated(&cluster, 0, "paced", 3)[0]).unwrap();
    let away = (leader + 1) % 3;
    let away_id = i32::try_from(away).unwrap();
    let mut written = produce(&cluster.bootstrap(), "paced", &[0], 100, "before");
    cluster.kill(away);
    let others: Vec<i32> = (0..3).filter(|&id| id != away_id).collect();
    cluster.wait_metadata(leader, &others, None, None);
    let big = "x".repeat(4096);
    written.extend(produce(&cluster.bootstrap(), "paced", &[0], 800, &big));
    cluster.start_broker(away);
    cluster.wait_metadata(leader, &[0, 1, 2], None, None);
    let back = Instant::now();
    written.extend(produce(&cluster.bootstrap(), "paced", &[0], 100, "during"));
    // 3.2 MiB at 256 KiB/s (or less: a shard's share) is 12 s at least.
    while back.elapsed() < Duration::from_secs(3) {
        let isr = isr_of(&cluster, leader, "paced", 0);
        assert!(!isr.contains(&away_id), "caught up too soon: {isr:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while isr_of(&cluster, leader, "paced", 0).len() < 3 {
        assert!(Instant::now() < deadline, "broker {away} never caught up");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("broker {away} caught up in {:?}", back.elapsed());
    let read = consume(
        &cluster.bootstrap(),
        "paced",
        "paced-readers",
        written.len(),
    );
    assert_eq!(read, written);
}

/// The topic names broker `via` answers Metadata with.
fn topic_names(cluster: &Cluster, via: usize) -> BTreeSet<String> {
    let request = MetadataRequest::default().with_topics(None);
    let response: MetadataResponse = call(cluster.clients[via], ApiKey::Metadata, 12, &request);
    response
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect()
}

/// Metadata snapshots (KRaft's): with snapshots every 2 KiB of metadata
/// records, the voters delete their Raft journal before each snapshot; a
/// voter that was down while 60 topics were created is behind the
/// leader's first entry and is sent the leader's snapshot, from which it
/// answers Metadata and follows its partitions (back in the ISR of a
/// topic whose ISR shrank without it); a voter restarted from a journal
/// that begins with a snapshot has the whole metadata, and everything
/// acknowledged is read back.
#[test]
fn a_voter_far_behind_is_sent_the_metadata_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{CONFIG}metadata-log-max-record-bytes-between-snapshots = 2048\n");
    let mut cluster = Cluster::start_configured(dir.path(), 3, &config);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    let kept = NewTopic::new("kept", 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    create_new_topic(&cluster.bootstrap(), &kept);
    wait_replicated(&cluster, 0, "kept", 3);
    let mut expected = produce(&cluster.bootstrap(), "kept", &[0], 100, "before");
    cluster.kill(2);
    // Broker 2 fenced: out of the ISR, and 60 topics of records without it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while isr_of(&cluster, 0, "kept", 0).contains(&2) {
        assert!(Instant::now() < deadline, "broker 2 stays in the ISR");
        std::thread::sleep(Duration::from_millis(100));
    }
    let names: Vec<String> = (0..60).map(|i| format!("away-{i}")).collect();
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| NewTopic::new(name, 1, TopicReplication::Fixed(2)))
        .collect();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .create()
        .unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in futures::executor::block_on(admin.create_topics(&topics, &options)).unwrap() {
        result.unwrap_or_else(|(topic, e)| panic!("create {topic}: {e}"));
    }
    expected.extend(produce(&cluster.bootstrap(), "kept", &[0], 100, "away"));
    // The live voters' journals start at a snapshot now.
    for id in [0, 1] {
        let journal = dir.path().join(format!("data-{id}")).join("quorum");
        let deadline = Instant::now() + Duration::from_secs(30);
        while log_start_in(&journal).unwrap_or(0) == 0 {
            assert!(
                Instant::now() < deadline,
                "broker {id}'s journal was never cut"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // What the leader queued for broker 2 while it was down is stale a
    // second later and dropped: broker 2 is told where the log is now.
    std::thread::sleep(Duration::from_millis(1500));
    cluster.log_filter =
        "warn,net::broker::replica=info,net::cluster=info,replication::quorum=info".into();
    cluster.start_broker(2);
    wait_replicated(&cluster, 0, "kept", 3);
    let log = std::fs::read_to_string(cluster.log_path(2)).unwrap();
    assert!(
        log.contains("metadata restored from the leader's snapshot"),
        "broker 2 caught up without the snapshot"
    );
    let all: BTreeSet<String> = names.iter().cloned().chain(["kept".to_string()]).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !topic_names(&cluster, 2).is_superset(&all) {
        assert!(
            Instant::now() < deadline,
            "broker 2 lacks topics: {:?}",
            topic_names(&cluster, 2)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    cluster.kill(0);
    cluster.start_broker(0);
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    assert!(
        topic_names(&cluster, 0).is_superset(&all),
        "broker 0 replayed its journal"
    );
    wait_replicated(&cluster, 0, "kept", 3);
    expected.extend(produce(&cluster.bootstrap(), "kept", &[0], 100, "after"));
    let read = consume(&cluster.bootstrap(), "kept", "kept-readers", expected.len());
    assert_eq!(read, expected, "everything acknowledged, in order");
}

/// The HTTP API of one broker produces to every partition of a
/// replicated topic, the ones other brokers lead too (sent to the leader
/// as a Kafka Produce with acks=all): each message is answered with its
/// offset, in order per partition, and a Kafka consumer reads exactly
/// those; the same broker's HTTP reads find them too.
#[test]
fn http_produce_on_one_broker_reaches_every_partition_s_leader() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_addr();
    let cluster = Cluster::start_with_http(dir.path(), 3, CONFIG, Some(http));
    cluster.wait_metadata(0, &[0, 1, 2], None, None);
    let topic = NewTopic::new("web", 6, TopicReplication::Fixed(2));
    create_new_topic(&cluster.bootstrap(), &topic);
    let leaders = wait_replicated(&cluster, 0, "web", 2);
    assert!(
        leaders.iter().any(|&l| l != 0),
        "some partition led elsewhere: {leaders:?}"
    );
    let messages: Vec<String> = (0..60)
        .map(|i| format!(r#"{{"value":"web-{i}","partition":{}}}"#, i % 6))
        .collect();
    let body = format!("[{}]", messages.join(","));
    let (status, _, answer) = common::http_request(http, "POST", "/produce/web", &body);
    assert_eq!(status, 200, "{answer}");
    let answers: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let mut expected = BTreeMap::new();
    for (i, answer) in answers.as_array().unwrap().iter().enumerate() {
        let partition = i32::try_from(answer["partition"].as_i64().unwrap()).unwrap();
        let offset = answer
            .get("offset")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or_else(|| panic!("message {i}: {answer}"));
        assert_eq!(
            (partition, offset),
            ((i % 6) as i32, (i / 6) as i64),
            "{answer}"
        );
        expected.insert((partition, offset), format!("web-{i}"));
    }
    let read = consume(&cluster.bootstrap(), "web", "web-readers", expected.len());
    assert_eq!(read, expected);
    http_reads_reach_every_partition_s_leader(http, &expected);
}

/// Through broker 0's HTTP listener: `/offsets` and `/fetch` of every
/// partition (read at its leader), and a `/consume` member of a group
/// broker 0 coordinates (others answer 503 NOT_COORDINATOR) reading all.
fn http_reads_reach_every_partition_s_leader(
    http: SocketAddr,
    expected: &BTreeMap<(i32, i64), String>,
) {
    let json = |body: &str| -> serde_json::Value { serde_json::from_str(body).unwrap() };
    let (status, _, body) = common::http_request(http, "GET", "/offsets/web", "");
    assert_eq!(status, 200, "{body}");
    for entry in json(&body).as_array().unwrap() {
        assert_eq!(
            (&entry["earliest"], &entry["latest"]),
            (&0.into(), &10.into()),
            "{entry}"
        );
    }
    let mut fetched = BTreeMap::new();
    for partition in 0..6 {
        let path = format!("/fetch?topic=web&partition={partition}&offset=0");
        let (status, _, body) = common::http_request(http, "GET", &path, "");
        assert_eq!(status, 200, "{body}");
        for record in json(&body).as_array().unwrap() {
            let at = (partition, record["offset"].as_i64().unwrap());
            fetched.insert(at, record["value"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(&fetched, expected, "/fetch");
    // What a consume returned is committed when its instance leaves: the
    // probe's records count, and the reader goes on after them.
    let mut consumed = BTreeMap::new();
    let take = |consumed: &mut BTreeMap<(i32, i64), String>, body: &str| {
        for record in json(body).as_array().unwrap() {
            let at = (
                i32::try_from(record["partition"].as_i64().unwrap()).unwrap(),
                record["offset"].as_i64().unwrap(),
            );
            let value = record["value"].as_str().unwrap().to_string();
            assert!(consumed.insert(at, value).is_none(), "{at:?} twice");
        }
    };
    let group = (0..50)
        .map(|i| format!("web-http-{i}"))
        .find(|group| {
            let path = format!("/consume/web/{group}/probe?reset=earliest&timeout=0");
            let (status, _, body) = common::http_request(http, "GET", &path, "");
            if status == 200 {
                take(&mut consumed, &body);
                let path = format!("/consume/web/{group}/probe");
                let (status, _, body) = common::http_request(http, "DELETE", &path, "");
                assert_eq!(status, 200, "{body}");
                return true;
            }
            assert_eq!(status, 503, "{body}");
            assert_eq!(json(&body)["error"], "NOT_COORDINATOR", "{body}");
            false
        })
        .expect("broker 0 coordinates one of 50 groups");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let path = format!("/consume/web/{group}/reader?reset=earliest&timeout=500");
        let (status, _, body) = common::http_request(http, "GET", &path, "");
        assert_eq!(status, 200, "{body}");
        take(&mut consumed, &body);
        if consumed.len() >= expected.len() {
            break;
        }
        assert!(Instant::now() < deadline, "consumed {}", consumed.len());
    }
    assert_eq!(&consumed, expected, "/consume");
}
