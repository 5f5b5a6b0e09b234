//! SASL on the Kafka listener (`sasl-enabled-mechanisms`, `sasl-users`):
//! kafka-python authenticates with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN
//! and produces and consumes, and a wrong password is refused; librdkafka
//! authenticates with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 and is
//! refused a wrong password; a request before authentication closes the
//! connection. Users made with AlterUserScramCredentials (kafka-python,
//! `shardlog user`) authenticate, across a restart, until deleted; the
//! admin APIs answer Kafka's error codes. Named listeners: a SASL one and
//! a PLAINTEXT one on the same broker, each client told the addresses of
//! its own.

mod common;

use std::time::Duration;

use common::run_python_script as run_script;
use common::{call, free_addr, python_or_skip, start, start_configured, stop};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

const CONFIG: &str = "sasl-enabled-mechanisms = [\"SCRAM-SHA-256\", \"SCRAM-SHA-512\", \"PLAIN\"]\n\
                      sasl-users = [\"alice:s3cret\", \"bob:other\"]\n";

#[test]
fn kafka_python_authenticates_with_every_mechanism_and_wrong_passwords_are_refused() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_configured(tmp.path(), addr, CONFIG);
    let bootstrap = addr.to_string();
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] {
        let args = [bootstrap.as_str(), mechanism, "alice", "s3cret", "ok"];
        run_script(&python, "sasl.py", &args);
    }
    // kafka-python retries a refused bootstrap until it gives up (~30 s):
    // one wrong password here; the others are the mechanisms' unit tests
    // and librdkafka's below.
    let args = [
        bootstrap.as_str(),
        "SCRAM-SHA-512",
        "alice",
        "wrong",
        "fail",
    ];
    run_script(&python, "sasl.py", &args);
}

#[test]
fn librdkafka_authenticates_with_every_mechanism_and_unauthenticated_requests_close_the_connection()
{
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_configured(tmp.path(), addr, CONFIG);
    let client = |mechanism: &str, password: &str| -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", addr.to_string())
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", mechanism)
            .set("sasl.username", "bob")
            .set("sasl.password", password)
            .create()
            .unwrap()
    };
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let metadata = client(mechanism, "other")
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap();
        assert_eq!(metadata.brokers().len(), 1, "{mechanism}");
        assert!(
            client(mechanism, "guess")
                .fetch_metadata(None, Duration::from_secs(3))
                .is_err(),
            "{mechanism}: a wrong password gets no metadata"
        );
    }
    // A plaintext client's first request after ApiVersions: closed.
    let plaintext: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .create()
        .unwrap();
    assert!(
        plaintext
            .fetch_metadata(None, Duration::from_secs(3))
            .is_err(),
        "no metadata without authentication"
    );
}

/// Before authentication a frame over 512 KiB (Kafka's
/// sasl.server.max.receive.size) closes the connection at its size
/// prefix; the same size after authenticating would be read.
#[test]
fn a_large_frame_before_authentication_is_refused_at_its_prefix() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_configured(tmp.path(), addr, CONFIG);
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(&(600_000i32).to_be_bytes()).unwrap();
    let mut byte = [0u8; 1];
    let closed = match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        // A timeout: the broker was waiting for the frame's bytes.
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(closed, "closed without reading 600,000 bytes");
}

/// librdkafka's PLAIN metadata request as `user`: whether it authenticated.
fn plain_authenticates(addr: std::net::SocketAddr, user: &str, password: &str) -> bool {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", password)
        .create()
        .unwrap();
    client.fetch_metadata(None, Duration::from_secs(5)).is_ok()
}

/// `shardlog user ...` as `admin` over SCRAM-SHA-256 (the CLI's own
/// SCRAM client); its output.
fn cli_user(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let bootstrap = addr.to_string();
    let auth = [
        "--bootstrap",
        &bootstrap,
        "--sasl-mechanism",
        "SCRAM-SHA-256",
        "--sasl-user",
        "alice",
    ];
    // The password from the environment, as the README shows it.
    let password = [("SHARDLOG_SASL_PASSWORD", "s3cret")];
    common::shardlog_with_env(&[&["user"][..], args, &auth].concat(), &password)
}

#[test]
fn users_set_through_the_admin_apis_authenticate_across_a_restart_until_deleted() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let broker = start_configured(tmp.path(), addr, CONFIG);
    let bootstrap = addr.to_string();
    run_script(&python, "scram_users.py", &[&bootstrap, "alice", "s3cret"]);
    cli_user(
        addr,
        &[
            "set",
            "gina",
            "--password",
            "g1na",
            "--mechanism",
            "SCRAM-SHA-512",
        ],
    );
    assert!(plain_authenticates(addr, "gina", "g1na"));
    // The credentials are in the metadata log: a restarted broker has them.
    assert!(stop(broker).success());
    let broker = start_configured(tmp.path(), addr, CONFIG);
    for (user, password) in [("carol", "c4rol"), ("dave", "d4ve"), ("gina", "g1na")] {
        assert!(
            plain_authenticates(addr, user, password),
            "{user} after a restart"
        );
    }
    assert!(!plain_authenticates(addr, "carol", "wrong"));
    let listed = cli_user(addr, &["list"]);
    assert_eq!(
        listed,
        "carol\tSCRAM-SHA-512\t8192\ndave\tSCRAM-SHA-256\t4096\ngina\tSCRAM-SHA-512\t4096\n"
    );
    cli_user(addr, &["delete", "carol"]);
    assert!(!plain_authenticates(addr, "carol", "c4rol"), "deleted");
    assert!(plain_authenticates(addr, "dave", "d4ve"));
    drop(broker);
}

fn upsertion(
    user: &str,
    mechanism: i8,
    iterations: i32,
    salted: usize,
) -> ScramCredentialUpsertion {
    ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_string(user.into()))
        .with_mechanism(mechanism)
        .with_iterations(iterations)
        .with_salt(bytes::Bytes::from_static(b"salt"))
        .with_salted_password(vec![7u8; salted].into())
}

fn deletion(user: &str, mechanism: i8) -> ScramCredentialDeletion {
    ScramCredentialDeletion::default()
        .with_name(StrBytes::from_string(user.into()))
        .with_mechanism(mechanism)
}

/// A described user: name, error code, (mechanism, iterations) each.
type Described = (String, i16, Vec<(i8, i32)>);

/// Kafka's codes, one result per user: DUPLICATE_RESOURCE (92),
/// UNSUPPORTED_SASL_MECHANISM (33), UNACCEPTABLE_CREDENTIAL (93),
/// RESOURCE_NOT_FOUND (91); a user refused anything changes nothing.
#[test]
fn alter_and_describe_user_scram_credentials_answer_kafkas_error_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    let alter = |request: AlterUserScramCredentialsRequest| -> Vec<(String, i16)> {
        let response: AlterUserScramCredentialsResponse =
            call(addr, ApiKey::AlterUserScramCredentials, 0, &request);
        response
            .results
            .iter()
            .map(|r| (r.user.to_string(), r.error_code))
            .collect()
    };
    let request = AlterUserScramCredentialsRequest::default()
        .with_deletions(vec![deletion("ann", 1), deletion("nobody", 2)])
        .with_upsertions(vec![
            upsertion("ann", 1, 4096, 32),
            upsertion("ok", 2, 4096, 64),
            upsertion("weird", 3, 4096, 32),
            upsertion("few", 1, 4095, 32),
            upsertion("many", 1, 16385, 32),
            upsertion("short", 2, 4096, 32),
            upsertion("", 1, 4096, 32),
        ]);
    let expected: Vec<(String, i16)> = [
        ("ann", 92),
        ("nobody", 91),
        ("ok", 0),
        ("weird", 33),
        ("few", 93),
        ("many", 93),
        ("short", 93),
        ("", 93),
    ]
    .iter()
    .map(|(u, c)| (u.to_string(), *c))
    .collect();
    assert_eq!(alter(request), expected);
    let describe = |users: Option<Vec<&str>>| -> Vec<Described> {
        let users = users.map(|names| {
            names
                .into_iter()
                .map(|n| UserName::default().with_name(StrBytes::from_string(n.into())))
                .collect()
        });
        let request = DescribeUserScramCredentialsRequest::default().with_users(users);
        let response: DescribeUserScramCredentialsResponse =
            call(addr, ApiKey::DescribeUserScramCredentials, 0, &request);
        assert_eq!(response.error_code, 0);
        response
            .results
            .iter()
            .map(|r| {
                let infos = r
                    .credential_infos
                    .iter()
                    .map(|i| (i.mechanism, i.iterations))
                    .collect();
                (r.user.to_string(), r.error_code, infos)
            })
            .collect()
    };
    // Only `ok` was changed.
    assert_eq!(describe(None), [("ok".to_string(), 0, vec![(2, 4096)])]);
    assert_eq!(
        describe(Some(vec!["ok", "ann", "ok"])),
        [
            ("ok".to_string(), 92, vec![]),
            ("ann".to_string(), 91, vec![]),
            ("ok".to_string(), 92, vec![]),
        ]
    );
}

/// `listeners` with a SASL_PLAINTEXT listener and a PLAINTEXT one, each
/// advertised at its own address: librdkafka on the SASL listener
/// authenticates and sees the broker at the SASL listener's advertised
/// port; a client on the PLAINTEXT one needs no authentication and sees
/// the other.
#[test]
fn named_listeners_each_serve_their_protocol_and_advertise_their_own_address() {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let tmp = tempfile::tempdir().unwrap();
    let (secured, open) = (free_addr(), free_addr());
    let config = format!(
        "{CONFIG}listeners = [\"CLIENT://{secured}\", \"INTERNAL://{open}\"]\n\
         advertised-listeners = [\"CLIENT://localhost:{}\"]\n\
         listener-security-protocol-map = {{ CLIENT = \"SASL_PLAINTEXT\", INTERNAL = \"PLAINTEXT\" }}\n",
        secured.port()
    );
    let _broker = common::start_listeners(tmp.path(), &config, &[secured, open]);
    let brokers = |addr: std::net::SocketAddr, sasl: bool| -> Vec<(String, i32)> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", addr.to_string());
        if sasl {
            config
                .set("security.protocol", "SASL_PLAINTEXT")
                .set("sasl.mechanism", "SCRAM-SHA-256")
                .set("sasl.username", "alice")
                .set("sasl.password", "s3cret");
        }
        let client: BaseConsumer = config.create().unwrap();
        let metadata = client
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap();
        metadata
            .brokers()
            .iter()
            .map(|b| (b.host().to_string(), b.port()))
            .collect()
    };
    let port = |addr: std::net::SocketAddr| i32::from(addr.port());
    assert_eq!(
        brokers(secured, true),
        [("localhost".to_string(), port(secured))]
    );
    assert_eq!(
        brokers(open, false),
        [("127.0.0.1".to_string(), port(open))]
    );
    // The SASL listener still wants authentication.
    let unauthenticated: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", secured.to_string())
        .create()
        .unwrap();
    assert!(
        unauthenticated
            .fetch_metadata(None, Duration::from_secs(3))
            .is_err()
    );
}

/// Counts librdkafka's delivery reports.
#[derive(Default)]
struct Delivered {
    ok: std::sync::atomic::AtomicUsize,
    failed: std::sync::Mutex<Vec<String>>,
}

impl rdkafka::ClientContext for Delivered {}

impl rdkafka::producer::ProducerContext for Delivered {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err((e, _)) => self.failed.lock().unwrap().push(e.to_string()),
        }
    }
}

/// One connection's requests, one at a time.
struct Conversation {
    stream: std::net::TcpStream,
    correlation: i32,
}

impl Conversation {
    fn open(addr: std::net::SocketAddr) -> Conversation {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Conversation {
            stream,
            correlation: 0,
        }
    }

    /// The answer to `body`, or `None` when the broker closed instead.
    fn call<Req, Resp>(&mut self, api: ApiKey, version: i16, body: &Req) -> Option<Resp>
    where
        Req: kafka_protocol::protocol::Encodable,
        Resp: kafka_protocol::protocol::Decodable,
    {
        use bytes::{BufMut, BytesMut};
        use kafka_protocol::messages::{RequestHeader, ResponseHeader};
        use kafka_protocol::protocol::{Decodable, Encodable};
        use std::io::{Read, Write};
        self.correlation += 1;
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .encode(&mut frame, api.request_header_version(version))
            .unwrap();
        body.encode(&mut frame, version).unwrap();
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&frame).ok()?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut response = vec![0u8; u32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut response).unwrap();
        let mut response = bytes::Bytes::from(response);
        let header =
            ResponseHeader::decode(&mut response, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        Some(Resp::decode(&mut response, version).unwrap())
    }

    /// SaslHandshake and a PLAIN SaslAuthenticate (v2): the handshake's
    /// error code, then the authentication's code and session lifetime.
    fn plain(&mut self, mechanism: &str, user: &str, password: &str) -> Option<(i16, i16, i64)> {
        use kafka_protocol::messages::{
            SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
            SaslHandshakeResponse,
        };
        let handshake =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into()));
        let answer: SaslHandshakeResponse = self.call(ApiKey::SaslHandshake, 1, &handshake)?;
        if answer.error_code != 0 {
            return Some((answer.error_code, -1, -1));
        }
        let auth = SaslAuthenticateRequest::default()
            .with_auth_bytes(format!("\0{user}\0{password}").into_bytes().into());
        let done: SaslAuthenticateResponse = self.call(ApiKey::SaslAuthenticate, 2, &auth)?;
        Some((0, done.error_code, done.session_lifetime_ms))
    }

    fn metadata(&mut self) -> bool {
        use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
        self.call::<_, MetadataResponse>(ApiKey::Metadata, 9, &MetadataRequest::default())
            .is_some()
    }
}

/// KIP-368 with `connections-max-reauth-ms`: the session lifetime is told
/// in SaslAuthenticate; authenticating again on the connection extends
/// it; a request after it ended closes the connection; re-authenticating
/// as another user or with another mechanism is refused and closes it.
/// librdkafka re-authenticates by itself and produces throughout.
#[test]
fn sessions_end_after_connections_max_reauth_ms_unless_the_client_authenticates_again() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = format!("{CONFIG}connections-max-reauth-ms = 1500\n");
    let broker = start_configured(tmp.path(), addr, &config);
    let mut conversation = Conversation::open(addr);
    assert_eq!(
        conversation.plain("PLAIN", "alice", "s3cret"),
        Some((0, 0, 1500))
    );
    assert!(conversation.metadata());
    std::thread::sleep(Duration::from_millis(1000));
    // Again, before the end: a new session of 1.5 s from now.
    assert_eq!(
        conversation.plain("PLAIN", "alice", "s3cret"),
        Some((0, 0, 1500))
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert!(conversation.metadata(), "the second session still runs");
    std::thread::sleep(Duration::from_millis(700));
    assert!(!conversation.metadata(), "closed: the session ended");
    // As someone else, or with another mechanism: refused, closed.
    let mut other = Conversation::open(addr);
    assert_eq!(other.plain("PLAIN", "alice", "s3cret"), Some((0, 0, 1500)));
    assert_eq!(other.plain("PLAIN", "bob", "other"), Some((0, 58, 0)));
    assert!(!other.metadata());
    let mut switch = Conversation::open(addr);
    assert_eq!(switch.plain("PLAIN", "alice", "s3cret"), Some((0, 0, 1500)));
    assert_eq!(
        switch.plain("SCRAM-SHA-256", "alice", "s3cret"),
        Some((33, -1, -1))
    );
    assert!(!switch.metadata());
    drop(broker);

    // librdkafka re-authenticates on its own: no connection is closed for
    // an ended session while it produces for 5 s (3 sessions).
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let logged = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = common::start_configured_logged_at(logged.path(), addr, &config, "info");
    for mechanism in ["PLAIN", "SCRAM-SHA-512"] {
        let producer: BaseProducer<Delivered> = ClientConfig::new()
            .set("bootstrap.servers", addr.to_string())
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", mechanism)
            .set("sasl.username", "alice")
            .set("sasl.password", "s3cret")
            .create_with_context(Delivered::default())
            .unwrap();
        let started = std::time::Instant::now();
        let mut sent = 0;
        while started.elapsed() < Duration::from_secs(5) {
            let value = format!("m-{sent}");
            producer
                .send(BaseRecord::<(), _>::to("reauth").payload(&value))
                .unwrap();
            producer.flush(Duration::from_secs(10)).unwrap();
            sent += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        let context = producer.context();
        let ok = context.ok.load(std::sync::atomic::Ordering::Relaxed);
        let failed = context.failed.lock().unwrap().clone();
        assert_eq!((ok, failed), (sent, Vec::new()), "{mechanism}");
    }
    let log = std::fs::read_to_string(logged.path().join("broker.log")).unwrap();
    assert!(
        !log.contains("after the SASL session ended"),
        "librdkafka let a session end:\n{log}"
    );
}
