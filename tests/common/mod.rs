//! Starting and stopping real broker processes for the end-to-end tests.
#![allow(dead_code)]

pub mod pki;
pub mod probe;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// A `shardlog serve` process; killed (SIGKILL, by PID) when dropped, even
/// if the test fails.
pub struct Broker(pub Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kills a helper process (by PID) when dropped, even if the test fails.
pub struct ChildGuard(pub u32);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.0) {
            // SAFETY: kill(2) on a PID this test started; an exited child
            // is still ours until reaped, so the PID is not reused.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// The Python interpreter of .venv, or `None` (outside CI) to skip.
pub fn python_or_skip() -> Option<std::path::PathBuf> {
    installed_or_skip(".venv/bin/python", "the Python clients in .venv")
}

/// `path` (under the workspace) once scripts/test installed or built it,
/// or `None` to skip; in CI, which runs scripts/test first, a missing one
/// fails the test instead.
fn installed_or_skip(path: &str, what: &str) -> Option<std::path::PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs scripts/test, which installs {what}"
    );
    eprintln!("skipped: no {what} (run scripts/test once to install it)");
    None
}

/// The kafkajs test client's directory once scripts/test installed its
/// packages, or `None` (outside CI) to skip.
pub fn kafkajs_or_skip() -> Option<std::path::PathBuf> {
    installed_or_skip("tests/clients/kafkajs/node_modules/kafkajs", "kafkajs")?;
    Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/kafkajs"))
}

/// The Go clients' test program (tests/clients/go, built by scripts/test
/// with `go build`): its path, or `None` (skip) outside CI when it was not
/// built.
pub fn go_clients_or_skip() -> Option<std::path::PathBuf> {
    installed_or_skip(
        "tests/clients/go/target/goclients",
        "the Go clients' program (tests/clients/go)",
    )
}

/// kcat (the command line client on the system's librdkafka, installed by
/// scripts/test with apt-get when it may): its name to run, or `None`
/// (skip) when it is missing and could not have been installed.
pub fn kcat_or_skip() -> Option<&'static str> {
    if Command::new("kcat")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some("kcat");
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        std::env::var_os("CI").is_none() || !root,
        "CI runs scripts/test, which installs kcat as root"
    );
    eprintln!("skipped: no kcat (scripts/test installs it with apt-get as root)");
    None
}

/// The Java client tests' build (tests/clients/java, built by scripts/test
/// with Maven): the class path to run them with, or `None` (skip) outside
/// CI when it was not built.
pub fn java_clients_or_skip() -> Option<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/java/target");
    if dir.join("classes/shardlog/JavaClients.class").exists() && dir.join("dependency").is_dir() {
        return Some(format!(
            "{}:{}/*",
            dir.join("classes").display(),
            dir.join("dependency").display()
        ));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs scripts/test, which builds tests/clients/java with Maven"
    );
    eprintln!("skipped: tests/clients/java is not built (run scripts/test once)");
    None
}

/// Kafka Connect's class path (tests/clients/connect, built by
/// scripts/test with Maven), or `None` (skip) outside CI when it was not
/// built.
pub fn connect_or_skip() -> Option<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/connect/target/dependency");
    if dir.is_dir() {
        return Some(format!("{}/*", dir.display()));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs scripts/test, which builds tests/clients/connect with Maven"
    );
    eprintln!("skipped: tests/clients/connect is not built (run scripts/test once)");
    None
}

/// Runs `tests/clients/<script>` with the Python of .venv; panics if it
/// fails.
pub fn run_python_script(python: &Path, script: &str, args: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let status = Command::new(python).arg(path).args(args).status().unwrap();
    assert!(status.success(), "{script} {args:?} failed: {status}");
}

/// Runs `script` (tests/clients) with a fresh broker's address, then
/// `args`, as its arguments; then `after` with that address while the
/// broker still runs. Skips as [`python_or_skip`] does.
pub fn python_on_fresh_broker(script: &str, args: &[&str], after: impl FnOnce(SocketAddr)) {
    let Some(python) = python_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    let bootstrap = addr.to_string();
    let all: Vec<&str> = std::iter::once(bootstrap.as_str())
        .chain(args.iter().copied())
        .collect();
    run_python_script(&python, script, &all);
    after(addr);
}

/// Stops the broker with SIGTERM (by PID) and waits for it to exit.
pub fn stop(mut broker: Broker) -> std::process::ExitStatus {
    let pid = libc::pid_t::try_from(broker.0.id()).unwrap();
    // SAFETY: kill(2) on the PID of a child we have not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    broker.0.wait().unwrap()
}

/// A free 127.0.0.1 port (the listener that found it is closed).
///
/// Ports come from below the kernel's ephemeral range (32768 and up by
/// default), starting from a place that differs per process: a port from
/// `bind(:0)` is in that range, so between the probe and the broker's bind
/// another test process could be handed it, or an outgoing connection could
/// take it as its source port and a connect to it then succeeds with no
/// listener (seen: `wait_listening` returned before the broker listened,
/// and the first request got ECONNRESET).
pub fn free_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const PORTS: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919) % PORTS;
    for _ in 0..PORTS {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (start + step.wrapping_mul(13)) % PORTS;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        if TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + PORTS);
}

/// Starts a two-shard broker on `data_dir` listening on `addr`, and waits
/// until it accepts connections.
pub fn start(data_dir: &Path, addr: SocketAddr, log_level: &str) -> Broker {
    start_with(data_dir, addr, log_level, &[])
}

/// [`start`] with more `serve` arguments.
pub fn start_with(data_dir: &Path, addr: SocketAddr, log_level: &str, extra: &[&str]) -> Broker {
    spawn_serve(data_dir, addr, log_level, extra, Stdio::inherit(), None)
}

/// [`start_with`], the broker's log (its stderr) appended to the file
/// `log`.
pub fn start_logged(
    data_dir: &Path,
    addr: SocketAddr,
    log_level: &str,
    extra: &[&str],
    log: &Path,
) -> Broker {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    spawn_serve(data_dir, addr, log_level, extra, log.into(), None)
}

/// While this file exists, the broker started on `data_dir` is cut off
/// from the other brokers of its cluster: every frame between them is
/// lost (the broker's `SHARDLOG_CUT_OFF_FILE` failpoint).
pub fn cut_off_file(data_dir: &Path) -> std::path::PathBuf {
    let mut name = data_dir.as_os_str().to_owned();
    name.push(".cut-off");
    name.into()
}

/// [`start_with`], the broker's log (its stderr) going to `log`.
fn spawn_serve(
    data_dir: &Path,
    addr: SocketAddr,
    log_level: &str,
    extra: &[&str],
    log: Stdio,
    failpoint: Option<&str>,
) -> Broker {
    wait_port_closed(addr);
    let mut command = Command::new(env!("CARGO_BIN_EXE_shardlog"));
    if let Some(failpoint) = failpoint {
        command.env("SHARDLOG_FAILPOINT", failpoint);
    }
    let child = command
        .args([
            "serve",
            "--shards",
            "2",
            "--listen",
            &addr.to_string(),
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", log_level)
        .env("SHARDLOG_CUT_OFF_FILE", cut_off_file(data_dir))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start shardlog serve");
    let broker = Broker(child);
    wait_listening(addr);
    broker
}

/// [`start`] with a config file holding `toml` (written into `dir`, data in
/// `dir/data`).
pub fn start_configured(dir: &Path, addr: SocketAddr, toml: &str) -> Broker {
    let config = dir.join("shardlog.toml");
    std::fs::write(&config, toml).unwrap();
    start_with(
        &dir.join("data"),
        addr,
        &std::env::var("SHARDLOG_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        &["--config", config.to_str().unwrap()],
    )
}

/// A two-shard broker whose listeners the config `toml` names (config
/// `listeners`, no `--listen`), written into `dir`, data in `dir/data`;
/// waits until each of `addrs` accepts connections.
pub fn start_listeners(dir: &Path, toml: &str, addrs: &[SocketAddr]) -> Broker {
    let config = dir.join("shardlog.toml");
    std::fs::write(&config, toml).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["serve", "--shards", "2", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env(
            "RUST_LOG",
            std::env::var("SHARDLOG_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .spawn()
        .unwrap();
    let broker = Broker(child);
    for &addr in addrs {
        wait_listening(addr);
    }
    broker
}

/// [`start_configured`] at log level warn, the broker's log in
/// `dir/broker.log` for the test to read.
pub fn start_configured_logged(dir: &Path, addr: SocketAddr, toml: &str) -> Broker {
    start_configured_logged_at(dir, addr, toml, "warn")
}

/// [`start_configured_logged`] at `log_level` (a `RUST_LOG` filter).
pub fn start_configured_logged_at(
    dir: &Path,
    addr: SocketAddr,
    toml: &str,
    log_level: &str,
) -> Broker {
    let config = dir.join("shardlog.toml");
    std::fs::write(&config, toml).unwrap();
    let log = std::fs::File::create(dir.join("broker.log")).unwrap();
    spawn_serve(
        &dir.join("data"),
        addr,
        log_level,
        &["--config", config.to_str().unwrap()],
        log.into(),
        None,
    )
}

/// `shardlog ARGS` (the CLI); its standard output. Fails the test, with
/// what it printed, if the command fails.
pub fn shardlog(args: &[&str]) -> String {
    shardlog_with_env(args, &[])
}

/// [`shardlog`] with these environment variables set.
pub fn shardlog_with_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(output.status.success(), "shardlog {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// [`start_configured`] with the crash point `failpoint` armed
/// (`SHARDLOG_FAILPOINT`): the broker SIGKILLs itself when it gets there.
pub fn start_configured_failing(
    dir: &Path,
    addr: SocketAddr,
    toml: &str,
    failpoint: &str,
) -> Broker {
    let config = dir.join("shardlog.toml");
    std::fs::write(&config, toml).unwrap();
    spawn_serve(
        &dir.join("data"),
        addr,
        "warn",
        &["--config", config.to_str().unwrap()],
        Stdio::inherit(),
        Some(failpoint),
    )
}

/// Waits (up to 30 s) until nothing accepts connections on `addr`. A
/// SIGKILLed broker's listening socket outlives the process for a moment
/// (its pending io_uring accept holds it until the kernel tears the ring
/// down): connections it takes then are reset, and a new broker would share
/// the port with it (SO_REUSEPORT).
pub fn wait_port_closed(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "{addr} still accepts connections"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (up to 30 s) until something accepts connections on `addr`.
pub fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "broker did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `--voters` for brokers 0, 1, ... with these internal addresses.
pub fn voters(internal: &[SocketAddr]) -> String {
    internal
        .iter()
        .enumerate()
        .map(|(id, addr)| format!("{id}@{addr}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// One connection, requests answered one at a time (correlation ids
/// counted from 1).
pub struct Conn {
    pub stream: TcpStream,
    correlation: i32,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Conn {
            stream,
            correlation: 0,
        }
    }

    /// Sends `request` and decodes its answer, which must carry the
    /// request's correlation id and nothing after the body.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("serve-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api_key.request_header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::with_capacity(4 + body.len());
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).unwrap();
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).unwrap();
        let mut response = vec![0u8; u32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut response).unwrap();
        let mut response = Bytes::from(response);
        let header =
            ResponseHeader::decode(&mut response, api_key.response_header_version(version))
                .unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        let body = Resp::decode(&mut response, version).unwrap();
        assert!(
            !response.has_remaining(),
            "{api_key:?}: bytes after the body"
        );
        body
    }
}

/// Sends one request and decodes its response (kafka-protocol's types, as
/// a client encodes them).
pub fn call<Req: Encodable, Resp: Decodable>(
    addr: SocketAddr,
    api_key: ApiKey,
    version: i16,
    request: &Req,
) -> Resp {
    Conn::open(addr).call(api_key, version, request)
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.into()))
}

/// Fetches (v11, no wait) `partition` of `topic` at `offset`: the error
/// code, the high watermark and the record batches as stored.
pub fn fetch_records(
    addr: SocketAddr,
    topic: &str,
    partition: i32,
    offset: i64,
) -> (i16, i64, Option<Bytes>) {
    fetch_waiting(addr, topic, partition, offset, 0)
}

/// [`fetch_records`] long-polling up to `max_wait_ms` for a first byte.
pub fn fetch_waiting(
    addr: SocketAddr,
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
) -> (i16, i64, Option<Bytes>) {
    let response = fetch_partitions(addr, topic, &[(partition, offset)], max_wait_ms);
    let data = &response.responses[0].partitions[0];
    (data.error_code, data.high_watermark, data.records.clone())
}

/// One Fetch (v11) of `topic`'s partitions, each at its offset (up to 1 MiB
/// each), waiting up to `max_wait_ms` for a byte.
pub fn fetch_partitions(
    addr: SocketAddr,
    topic: &str,
    offsets: &[(i32, i64)],
    max_wait_ms: i32,
) -> FetchResponse {
    call(
        addr,
        ApiKey::Fetch,
        11,
        &fetch_request(topic, offsets, max_wait_ms),
    )
}

/// The Fetch request of [`fetch_partitions`] (no topics if `offsets` is
/// empty).
pub fn fetch_request(topic: &str, offsets: &[(i32, i64)], max_wait_ms: i32) -> FetchRequest {
    let partitions = offsets
        .iter()
        .map(|&(partition, offset)| {
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    let topics = if offsets.is_empty() {
        Vec::new()
    } else {
        vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions),
        ]
    };
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(
            i32::try_from(offsets.len())
                .unwrap_or(i32::MAX)
                .saturating_mul(1 << 20),
        )
        .with_topics(topics)
}

/// How many records a read of `partition` of `topic` from its log start
/// to its high watermark finds (a compacted log has fewer than were
/// written).
pub fn records_stored(addr: SocketAddr, topic: &str, partition: i32) -> usize {
    use engine::batch::{ValidateMode, validate};
    let (mut offset, mut count) = (0i64, 0usize);
    loop {
        let (error, high_watermark, records) = fetch_records(addr, topic, partition, offset);
        assert_eq!(error, 0, "fetch of {topic}-{partition} at {offset}");
        if offset >= high_watermark {
            return count;
        }
        let bytes = records.unwrap_or_default();
        let before = offset;
        for batch in validate(&bytes, 0, ValidateMode::Stored) {
            let Ok((_, batch)) = batch else { break };
            let header = batch.header();
            count += usize::try_from(header.record_count()).unwrap();
            offset = offset.max(header.last_offset().get() + 1);
        }
        assert!(offset > before, "a fetch at {before} moved nothing");
    }
}

/// Waits (up to 60 s) until `partition` of `topic` stores at most `most`
/// records; panics with the count otherwise.
pub fn wait_compacted(addr: SocketAddr, topic: &str, partition: i32, most: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let stored = records_stored(addr, topic, partition);
        if stored <= most {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{topic}-{partition} still stores {stored} records (at most {most} wanted)"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Creates a topic with a CreateTopics v5 request; panics on an error.
pub fn create_topic_raw(addr: SocketAddr, name: &str, partitions: i32) {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ]);
    let response: CreateTopicsResponse = call(addr, ApiKey::CreateTopics, 5, &request);
    assert_eq!(response.topics[0].error_code, 0, "create {name}");
}

/// An acks=all Produce of `batch` to partition 0 of `topic`.
pub fn produce_request(topic: &str, batch: Vec<u8>) -> kafka_protocol::messages::ProduceRequest {
    use kafka_protocol::messages::ProduceRequest;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ])
}

/// Sends [`produce_request`] at `version` on a new connection; the answer
/// of partition 0 (the only one asked).
pub fn produce_batch(
    addr: SocketAddr,
    topic: &str,
    batch: Vec<u8>,
    version: i16,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    use kafka_protocol::messages::ProduceResponse;
    let response: ProduceResponse = call(
        addr,
        ApiKey::Produce,
        version,
        &produce_request(topic, batch),
    );
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].partition_responses.len(), 1);
    response.responses[0].partition_responses[0].clone()
}

/// A batch of `count` 100-byte records from `producer_id` at `epoch`
/// (sequences from `sequence`), transactional or not.
pub fn producer_batch(
    producer_id: i64,
    epoch: i16,
    sequence: i32,
    count: i32,
    transactional: bool,
) -> Vec<u8> {
    engine::batch::builder::producer_batch(producer_id, epoch, sequence, count, 100, transactional)
}

/// Produces one small batch (Produce v9, acks=all) to partition 0 of
/// `topic` on an open connection; the partition's error code.
pub fn produce_one(stream: &mut TcpStream, topic: &str, correlation: i32) -> std::io::Result<i16> {
    use kafka_protocol::messages::ProduceResponse;
    let batch = engine::batch::builder::simple_batch(1, 100, 1_700_000_000_000, b'r');
    let request = produce_request(topic, batch);
    let mut body = BytesMut::new();
    request.encode(&mut body, 9).unwrap();
    let frame = probe::request_frame(ApiKey::Produce as i16, 9, correlation, &body);
    stream.write_all(&frame)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let mut response = vec![0u8; u32::from_be_bytes(size) as usize];
    stream.read_exact(&mut response)?;
    let mut response = Bytes::from(response);
    let header =
        ResponseHeader::decode(&mut response, ApiKey::Produce.response_header_version(9)).unwrap();
    assert_eq!(header.correlation_id, correlation);
    let response = ProduceResponse::decode(&mut response, 9).unwrap();
    Ok(response.responses[0].partition_responses[0].error_code)
}

/// Checks that the batches stored in partitions 0-2 of `{prefix}{codec}`
/// carry `id` in their attributes' codec bits (none 0, gzip 1, snappy 2,
/// lz4 3, zstd 4): a client's compressed batches are stored as it sent them.
/// Every codec by its client name, with its id in a batch's attributes
/// (bits 0-2).
pub const EVERY_CODEC: [(&str, u8); 5] = [
    ("none", 0),
    ("gzip", 1),
    ("snappy", 2),
    ("lz4", 3),
    ("zstd", 4),
];

pub fn assert_stored_codecs(addr: SocketAddr, prefix: &str, codecs: &[(&str, u8)]) {
    for (codec, id) in codecs {
        let topic = format!("{prefix}{codec}");
        let stored: Vec<u8> = (0..3)
            .filter_map(|p| fetch_records(addr, &topic, p, 0).2)
            .filter_map(|records| records.get(21..23).map(|a| a[1] & 7))
            .collect();
        assert!(!stored.is_empty(), "{topic} holds batches");
        assert!(stored.iter().all(|c| c == id), "{topic}: codecs {stored:?}");
    }
}

/// Sends `record` through librdkafka, waiting while its queue is full (any
/// other refusal fails the test).
pub fn send_when_queued<'a, C, K, P>(
    producer: &rdkafka::producer::ThreadedProducer<C>,
    mut record: rdkafka::producer::BaseRecord<'a, K, P, C::DeliveryOpaque>,
) where
    C: rdkafka::producer::ProducerContext + 'static,
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((e, back)) => {
                assert!(e.to_string().contains("Queue full"), "send: {e}");
                record = back;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// A librdkafka consumer assigned every partition of `topic` from the
/// beginning, at `isolation` (read_committed or read_uncommitted); its
/// group id is only what librdkafka needs to assign (no subscribe, no
/// commits).
pub fn assigned_consumer(
    addr: SocketAddr,
    topic: &str,
    partitions: i32,
    group: &str,
    isolation: &str,
) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("enable.auto.commit", "false")
        .set("group.id", group)
        .set("isolation.level", isolation)
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    consumer
}

/// ListOffsets (v5) latest of partition 0 of `topic` at `isolation` (0
/// read_uncommitted: the high watermark; 1 read_committed: the last stable
/// offset).
pub fn latest_offset(addr: SocketAddr, topic: &str, isolation: i8) -> i64 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, ListOffsetsResponse};
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    let response: ListOffsetsResponse = call(addr, ApiKey::ListOffsets, 5, &request);
    response.topics[0].partitions[0].offset
}

/// One HTTP/1.1 exchange with `body` (none if empty), the connection closed
/// after it: (status, content type, body).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String, String) {
    http_request_with(addr, method, path, &[], body).0
}

/// [`http_request`] with extra request headers; also the response's head.
pub fn http_request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> ((u16, String, String), String) {
    use std::io::{Read, Write};
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, answer) = response.split_once("\r\n\r\n").expect("a whole response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_string();
    ((status, content_type, answer.to_string()), head.to_string())
}

/// A small loop-mounted ext4 filesystem (the engine tests' helper).
#[path = "../../engine/tests/common/small_disk.rs"]
pub mod small_disk;

/// The `headers` of a record as the CLI and the HTTP API print it
/// (`[{key, value}]`), as (key, value) pairs.
pub fn json_headers(record: &serde_json::Value) -> Vec<(String, String)> {
    record["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["key"].as_str().unwrap().to_string(),
                h["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
