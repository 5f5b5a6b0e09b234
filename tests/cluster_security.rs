//! A secured cluster (issue 17): three brokers whose only Kafka listener
//! is SASL_SSL (the inter-broker one: transaction markers and KIP-890's
//! checks go over it, the brokers authenticating as their SCRAM user) and
//! whose internal listeners (the metadata quorum and the ISR protocol) are
//! TLS with client certificates (`internal-ssl`), under an authorizer.
//! librdkafka writes transactions over partitions of three replicas led
//! by every broker and reads them back committed, before and after the
//! brokers' SASL sessions with each other end (KIP-368: they connect
//! again rather than send on an ended session). The internal port refuses
//! a peer speaking plaintext, a certificate of another CA, and a
//! certificate of the cluster's CA whose principal may not act for the
//! cluster (no ClusterAction): each connection is closed, with a log line.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use common::pki::Pki;
use common::{Broker, free_addr, start_logged};

const BROKERS: usize = 3;
const TOPIC: &str = "secured";
const MESSAGES: usize = 30;

struct SecuredCluster {
    dir: PathBuf,
    clients: Vec<SocketAddr>,
    internal: Vec<SocketAddr>,
    _brokers: Vec<Broker>,
}

impl SecuredCluster {
    fn start(dir: &Path, pki: &Pki) -> SecuredCluster {
        let config = format!(
            "broker-session-timeout-ms = 3000\n\
             broker-heartbeat-interval-ms = 500\n\
             ssl-certificate = {:?}\nssl-key = {:?}\nssl-ca = {:?}\n\
             internal-ssl = true\n\
             sasl-enabled-mechanisms = [\"SCRAM-SHA-512\"]\n\
             sasl-users = [\"broker:br0ker\", \"admin:adm1n\"]\n\
             inter-broker-sasl-mechanism = \"SCRAM-SHA-512\"\n\
             inter-broker-sasl-user = \"broker\"\n\
             inter-broker-sasl-password = \"br0ker\"\n\
             connections-max-reauth-ms = 2500\n\
             authorizer-enabled = true\n\
             super-users = [\"User:admin\", \"User:broker\", \"User:CN=broker,O=shardlog tests\"]\n",
            pki.path("broker.pem"),
            pki.path("broker.key"),
            pki.path("ca.pem"),
        );
        let path = dir.join("shardlog.toml");
        std::fs::write(&path, config).unwrap();
        let clients: Vec<SocketAddr> = (0..BROKERS).map(|_| free_addr()).collect();
        let internal: Vec<SocketAddr> = (0..BROKERS).map(|_| free_addr()).collect();
        let voters = common::voters(&internal);
        let brokers = (0..BROKERS)
            .map(|id| {
                let node = id.to_string();
                let args = [
                    "--node-id",
                    &node,
                    "--voters",
                    &voters,
                    "--config",
                    path.to_str().unwrap(),
                ];
                start_logged(
                    &dir.join(format!("data-{id}")),
                    clients[id],
                    "warn,net::server=info",
                    &args,
                    &dir.join(format!("broker-{id}.log")),
                )
            })
            .collect();
        SecuredCluster {
            dir: dir.to_path_buf(),
            clients,
            internal,
            _brokers: brokers,
        }
    }

    fn logs(&self) -> String {
        (0..BROKERS)
            .map(|id| {
                std::fs::read_to_string(self.dir.join(format!("broker-{id}.log")))
                    .unwrap_or_default()
            })
            .collect()
    }

    /// A librdkafka configuration of the administrator over SASL_SSL.
    fn client(&self, ca: &str) -> ClientConfig {
        let bootstrap = self
            .clients
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("security.protocol", "SASL_SSL")
            .set("ssl.ca.location", ca)
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", "admin")
            .set("sasl.password", "adm1n");
        config
    }
}

/// On failure, the end of every broker's log.
struct ShowLogsOnPanic<'a>(&'a SecuredCluster);

impl Drop for ShowLogsOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.0.logs();
            let lines: Vec<&str> = logs.lines().collect();
            for line in &lines[lines.len().saturating_sub(80)..] {
                eprintln!("[brokers] {line}");
            }
        }
    }
}

/// Waits until the cluster lists every broker and `TOPIC` has a leader
/// on each partition, each a different broker.
fn wait_topic_led_everywhere(config: &ClientConfig) {
    let client: BaseConsumer = config.create().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(metadata) = client.fetch_metadata(Some(TOPIC), Duration::from_secs(5)) {
            let leaders: std::collections::BTreeSet<i32> = metadata
                .topics()
                .iter()
                .flat_map(|t| t.partitions().iter().map(|p| p.leader()))
                .filter(|&l| l >= 0)
                .collect();
            if metadata.brokers().len() == BROKERS && leaders.len() == BROKERS {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the topic is not led by every broker"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the cluster lists every broker (each registered with the
/// controller over the internal TLS links), as librdkafka's admin client
/// needs a controller.
fn wait_brokers(config: &ClientConfig) {
    let client: BaseConsumer = config.create().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metadata = client.fetch_metadata(None, Duration::from_secs(5));
        if metadata.is_ok_and(|m| m.brokers().len() == BROKERS) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the brokers did not all register"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn create_topic(config: &ClientConfig) {
    let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    loop {
        let topic = NewTopic::new(TOPIC, BROKERS as i32, TopicReplication::Fixed(3));
        let created = runtime
            .block_on(admin.create_topics(&[topic], &AdminOptions::new()))
            .unwrap();
        match &created[0] {
            Ok(_) => return,
            // Not every broker registered yet: fewer live brokers than
            // replicas.
            Err((_, e)) => {
                assert!(Instant::now() < deadline, "creating {TOPIC}: {e:?}");
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }
}

/// A transaction over every partition, committed; the values sent.
fn write_transaction(config: &ClientConfig, tag: &str) -> Vec<String> {
    let producer: ThreadedProducer<DefaultProducerContext> = config
        .clone()
        .set("transactional.id", "secured-txn")
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    producer.begin_transaction().unwrap();
    let values: Vec<String> = (0..MESSAGES).map(|i| format!("{tag}-{i}")).collect();
    for (i, value) in values.iter().enumerate() {
        let partition = (i % BROKERS) as i32;
        let record = BaseRecord::<(), _>::to(TOPIC)
            .payload(value)
            .partition(partition);
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer
        .commit_transaction(Duration::from_secs(30))
        .unwrap();
    values
}

fn read_committed(config: &ClientConfig, expected: usize) -> Vec<String> {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", "secured-readers")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < expected && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
        }
    }
    got.sort();
    got
}

/// Whether the other end closed `stream` (read to its end, or failed),
/// rather than waiting for more within the read timeout.
fn closed_by_peer(stream: &mut impl Read) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// A TLS client of the internal port with `certificate` (FILE.pem and
/// FILE.key of `pki`), trusting `ca`, sends a Hello; whether the broker
/// closed the connection.
fn internal_port_turns_away(addr: SocketAddr, ca: &Path, pki: &Pki, certificate: &str) -> bool {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(pki.path(&format!("{certificate}.pem")))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(pki.path(&format!("{certificate}.key"))).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    // A Hello naming a node that does not exist: what matters is whether
    // the broker reads it at all.
    let hello = replication::quorum::wire::encode(&replication::quorum::wire::Frame::Hello {
        node_id: 1_000,
        cluster_id: "intruders".into(),
    });
    if tls.write_all(&hello).and_then(|()| tls.flush()).is_err() {
        return true; // the handshake failed
    }
    closed_by_peer(&mut tls)
}

#[test]
fn a_cluster_with_sasl_ssl_between_brokers_and_mutual_tls_inside_runs_transactions() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "ca");
    pki.leaf("broker", "broker", true, false);
    pki.leaf("mallory", "mallory", false, false);
    let rogue = Pki::new(tmp.path(), "rogue-ca");
    rogue.leaf("stranger", "broker", true, false);
    let cluster = SecuredCluster::start(tmp.path(), &pki);
    let _logs = ShowLogsOnPanic(&cluster);
    let ca = pki.path("ca.pem");
    let config = cluster.client(&ca);
    wait_brokers(&config);
    create_topic(&config);
    wait_topic_led_everywhere(&config);
    let mut expected = write_transaction(&config, "first");
    // The brokers' SASL sessions with each other end after 2.5 s: they
    // open new connections rather than send on an ended session.
    std::thread::sleep(Duration::from_secs(3));
    expected.extend(write_transaction(&config, "second"));
    expected.sort();
    assert_eq!(read_committed(&config, expected.len()), expected);
    let ended = "a request after the SASL session ended";
    assert!(
        !cluster.logs().contains(ended),
        "a broker used an ended session"
    );

    // The internal port: a certificate of the cluster's CA without
    // ClusterAction, one of another CA, and plaintext are all turned away.
    let internal = cluster.internal[0];
    let ca_path = Path::new(&ca);
    // Refusals are logged at most once a second: the first one is.
    std::thread::sleep(Duration::from_millis(1_100));
    assert!(internal_port_turns_away(internal, ca_path, &pki, "mallory"));
    assert!(internal_port_turns_away(
        internal, ca_path, &rogue, "stranger"
    ));
    let mut plain = TcpStream::connect(internal).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let hello = replication::quorum::wire::encode(&replication::quorum::wire::Frame::Hello {
        node_id: 1,
        cluster_id: "x".into(),
    });
    plain.write_all(&hello).unwrap();
    assert!(closed_by_peer(&mut plain), "plaintext is closed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster
        .logs()
        .contains("User:CN=mallory,O=shardlog tests may not act for the cluster")
    {
        assert!(
            Instant::now() < deadline,
            "no log line of the refused certificate"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The cluster still serves.
    let again: BaseConsumer = config.create().unwrap();
    let metadata = again.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    assert_eq!(metadata.brokers().len(), BROKERS);
}
