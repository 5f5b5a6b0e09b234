//! TLS on the Kafka listener (`ssl-certificate`, `ssl-key`, `ssl-ca`,
//! `ssl-client-auth`), with certificates made here (rcgen): kafka-python
//! and librdkafka administer, produce and consume in a group over SSL
//! with a client certificate (mTLS required) and over SASL_SSL with
//! SCRAM-SHA-512 and PLAIN, and so does the Java client (PEM stores); a
//! client certificate from another CA, an expired one and none at all
//! are refused at the handshake with the
//! alert a client reports; a new certificate written over the old one is
//! served without a restart. The HTTP listener over TLS (`http-ssl`)
//! takes the same users as the Kafka listeners (`sasl-users` and the
//! metadata's SCRAM users) in basic authentication.

mod common;

use std::path::Path;
use std::process::Command;

use common::pki::Pki;
use common::{free_addr, python_or_skip, run_python_script, start_configured};

fn tls_config(pki: &Pki, client_auth: &str, sasl: bool) -> String {
    let mut config = format!(
        "ssl-certificate = {:?}\nssl-key = {:?}\nssl-ca = {:?}\nssl-client-auth = {client_auth:?}\n",
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    if sasl {
        config.push_str(
            "sasl-enabled-mechanisms = [\"SCRAM-SHA-512\", \"PLAIN\"]\nsasl-users = [\"alice:s3cret\"]\n",
        );
    }
    config
}

/// `shardlog ARGS` as `alice` over SASL_SSL (SCRAM-SHA-512) to the broker
/// at `addr` by the name its certificate has; the output.
fn cli_over_tls(addr: std::net::SocketAddr, ca: &str, args: &[&str]) -> String {
    let bootstrap = format!("localhost:{}", addr.port());
    let auth = [
        "--bootstrap",
        &bootstrap,
        "--ssl-ca",
        ca,
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--sasl-user",
        "alice",
        "--sasl-password",
        "s3cret",
    ];
    common::shardlog(&[args, &auth].concat())
}

/// `tls.py probe`: one handshake, `accepted CN VERSION` or `refused ...`.
fn probe(python: &Path, addr: std::net::SocketAddr, pki: &Pki, client: Option<&str>) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/tls.py");
    let mut command = Command::new(python);
    command.arg(script).args([
        "probe",
        "127.0.0.1",
        &addr.port().to_string(),
        &pki.path("ca.pem"),
    ]);
    if let Some(client) = client {
        command.args([
            "--cert",
            &pki.path(&format!("{client}.pem")),
            "--key",
            &pki.path(&format!("{client}.key")),
        ]);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// librdkafka with `settings`: creates a topic, produces 10 messages
/// (acks=all), reads them back in a group and commits.
fn librdkafka_round_trip(addr: std::net::SocketAddr, settings: &[(&str, &str)], topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::message::Message;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use std::time::{Duration, Instant};
    let config = |extra: &[(&str, &str)]| {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", addr.to_string());
        for (key, value) in settings.iter().chain(extra) {
            config.set(*key, *value);
        }
        config
    };
    let admin: AdminClient<DefaultClientContext> = config(&[]).create().unwrap();
    let new = NewTopic::new(topic, 2, TopicReplication::Fixed(1));
    let created =
        futures::executor::block_on(admin.create_topics([&new], &AdminOptions::new())).unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let producer: ThreadedProducer<DefaultProducerContext> =
        config(&[("acks", "all")]).create().unwrap();
    for i in 0..10 {
        let value = format!("v-{i}");
        let key = format!("k{i}");
        common::send_when_queued(&producer, BaseRecord::to(topic).key(&key).payload(&value));
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let consumer: BaseConsumer = config(&[
        ("group.id", &format!("g-{topic}")),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "false"),
    ])
    .create()
    .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while values.len() < 10 && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            values.push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
        }
    }
    values.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("v-{i}")).collect();
    expected.sort();
    assert_eq!(values, expected);
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();
}

#[test]
fn librdkafka_uses_ssl_with_a_client_certificate_and_sasl_ssl_with_scram() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "ca");
    pki.leaf("server", "broker", true, false);
    pki.leaf("client", "trader", false, false);
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client.key"),
    );
    let ssl_dir = tmp.path().join("ssl");
    std::fs::create_dir(&ssl_dir).unwrap();
    let addr = free_addr();
    let broker = start_configured(&ssl_dir, addr, &tls_config(&pki, "required", false));
    let ssl = [
        ("security.protocol", "SSL"),
        ("ssl.ca.location", ca.as_str()),
        ("ssl.certificate.location", cert.as_str()),
        ("ssl.key.location", key.as_str()),
    ];
    librdkafka_round_trip(addr, &ssl, "rd-ssl");
    drop(broker);
    let sasl_dir = tmp.path().join("sasl");
    std::fs::create_dir(&sasl_dir).unwrap();
    let addr = free_addr();
    let _broker = start_configured(&sasl_dir, addr, &tls_config(&pki, "none", true));
    // The CLI over TLS and SCRAM makes a user; librdkafka is that user.
    let cli = |args: &[&str]| cli_over_tls(addr, &ca, args);
    cli(&["user", "set", "bob", "--password", "b0b"]);
    let sasl_ssl = [
        ("security.protocol", "SASL_SSL"),
        ("ssl.ca.location", ca.as_str()),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "bob"),
        ("sasl.password", "b0b"),
    ];
    librdkafka_round_trip(addr, &sasl_ssl, "rd-sasl-ssl");
    assert!(cli(&["topic", "list"]).contains("rd-sasl-ssl"));
}

#[test]
fn kafka_python_uses_ssl_with_a_client_certificate_and_sasl_ssl() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "ca");
    pki.leaf("server", "broker", true, false);
    pki.leaf("client", "trader", false, false);
    // SSL with mTLS required.
    let ssl_dir = tmp.path().join("ssl");
    std::fs::create_dir(&ssl_dir).unwrap();
    let addr = free_addr();
    let broker = start_configured(&ssl_dir, addr, &tls_config(&pki, "required", false));
    let (bootstrap, ca) = (addr.to_string(), pki.path("ca.pem"));
    let (cert, key) = (pki.path("client.pem"), pki.path("client.key"));
    run_python_script(
        &python,
        "tls.py",
        &[
            "clients", &bootstrap, &ca, "SSL", "--cert", &cert, "--key", &key,
        ],
    );
    drop(broker);
    // SASL_SSL: SCRAM-SHA-512 and PLAIN inside TLS, no client certificate.
    let sasl_dir = tmp.path().join("sasl");
    std::fs::create_dir(&sasl_dir).unwrap();
    let addr = free_addr();
    let _broker = start_configured(&sasl_dir, addr, &tls_config(&pki, "none", true));
    let bootstrap = addr.to_string();
    for mechanism in ["SCRAM-SHA-512", "PLAIN"] {
        run_python_script(
            &python,
            "tls.py",
            &[
                "clients", &bootstrap, &ca, "SASL_SSL", "--sasl", mechanism, "alice", "s3cret",
            ],
        );
    }
}

#[test]
fn foreign_expired_and_missing_client_certificates_are_refused_and_new_certificates_are_served_without_a_restart()
 {
    let Some(python) = python_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "ca");
    pki.leaf("server", "broker", true, false);
    pki.leaf("client", "trader", false, false);
    pki.leaf("expired", "old-trader", false, true);
    let rogue = Pki::new(tmp.path(), "rogue-ca");
    rogue.leaf("rogue", "intruder", false, false);
    let addr = free_addr();
    let _broker = start_configured(tmp.path(), addr, &tls_config(&pki, "required", false));
    let accepted = probe(&python, addr, &pki, Some("client"));
    assert!(
        accepted.starts_with("accepted broker TLSv1.3"),
        "{accepted}"
    );
    // The alerts a client sees, as from a Kafka broker's TLS.
    for (client, alert) in [
        (Some("rogue"), "UNKNOWN_CA"),
        (Some("expired"), "CERTIFICATE_EXPIRED"),
        (None, "CERTIFICATE_REQUIRED"),
    ] {
        let answer = probe(&python, addr, &pki, client);
        eprintln!("{client:?}: {answer}");
        assert!(
            answer.starts_with("refused") && answer.contains(alert),
            "{client:?}: {answer}"
        );
    }
    // A new certificate over the old files: new connections get it (the
    // files are looked at once a second at most).
    pki.leaf("server", "broker-renewed", true, false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = probe(&python, addr, &pki, Some("client"));
        if answer.starts_with("accepted broker-renewed") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still served the old certificate: {answer}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[test]
fn https_takes_the_kafka_listeners_sasl_users_in_basic_authentication() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "ca");
    pki.leaf("server", "broker", true, false);
    let (addr, http) = (free_addr(), free_addr());
    let config = format!(
        "{}http-listen = \"{http}\"\nhttp-ssl = true\n",
        tls_config(&pki, "none", true)
    );
    let _broker = start_configured(tmp.path(), addr, &config);
    common::wait_listening(http);
    let ca = pki.path("ca.pem");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/https.py");
    let status = |method: &str, path: &str, user: &str, password: &str, body: Option<&str>| {
        let url = format!("https://localhost:{}{path}", http.port());
        let mut command = Command::new(&python);
        command
            .arg(&script)
            .args([method, &url, &ca, user, password]);
        if let Some(body) = body {
            command.arg(body);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    };
    assert_eq!(status("GET", "/metrics", "-", "", None), "401");
    assert_eq!(status("GET", "/metrics", "alice", "wrong", None), "401");
    assert_eq!(status("GET", "/metrics", "alice", "s3cret", None), "200");
    // A user made over the Kafka listener (TLS, SCRAM) is an HTTP user.
    cli_over_tls(addr, &ca, &["user", "set", "hugo", "--password", "hug0"]);
    cli_over_tls(addr, &ca, &["topic", "create", "web"]);
    for _ in 0..2 {
        // The second time from the shard's checked passwords.
        let body = Some(r#"{"value": "over https"}"#);
        assert_eq!(status("POST", "/produce/web", "hugo", "hug0", body), "200");
    }
    assert_eq!(
        status("POST", "/produce/web", "hugo", "nope", Some("{}")),
        "401"
    );
    // Plain HTTP to the HTTPS port gets no answer.
    use std::io::{Read, Write};
    let mut plain = std::net::TcpStream::connect(http).unwrap();
    plain
        .set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    plain.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
}

/// The Java client (kafka-clients, its defaults: idempotent producer,
/// acks=all) over SSL with a client certificate (PEM trust and key stores,
/// KIP-651): produce and group consume with every codec; over SASL_SSL
/// with SCRAM-SHA-512: admin, and transactions read back committed.
#[test]
fn the_java_client_uses_ssl_with_a_client_certificate_and_sasl_ssl_with_scram() {
    let Some(class_path) = common::java_clients_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "ca");
    pki.leaf("server", "broker", true, false);
    pki.leaf("client", "trader", false, false);
    // A PEM key store is the certificate and its key in one file.
    let keystore = pki.path("client-keystore.pem");
    let pem = |file: &str| std::fs::read_to_string(pki.path(file)).unwrap();
    std::fs::write(&keystore, pem("client.key") + &pem("client.pem")).unwrap();
    let ca = pki.path("ca.pem");
    let ssl = format!(
        "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={ca}\n\
         ssl.keystore.type=PEM\nssl.keystore.location={keystore}\n"
    );
    let sasl_ssl = format!(
        "security.protocol=SASL_SSL\nssl.truststore.type=PEM\nssl.truststore.location={ca}\n\
         sasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=org.apache.kafka.common.security.scram.\
         ScramLoginModule required username=\"alice\" password=\"s3cret\";\n"
    );
    let runs = [
        (
            "ssl",
            &ssl,
            tls_config(&pki, "required", false),
            "produce-consume",
        ),
        (
            "sasl",
            &sasl_ssl,
            tls_config(&pki, "none", true),
            "admin,transactions",
        ),
    ];
    for (name, properties, broker_config, scenarios) in runs {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let client_properties = dir.join("client.properties");
        std::fs::write(&client_properties, properties).unwrap();
        let addr = free_addr();
        let _broker = start_configured(&dir, addr, &broker_config);
        let status = Command::new("java")
            .arg("-cp")
            .arg(&class_path)
            .arg("shardlog.JavaClients")
            .arg(addr.to_string())
            .arg(scenarios)
            .env("SHARDLOG_JAVA_CLIENT_PROPERTIES", &client_properties)
            .status()
            .expect("java runs");
        assert!(status.success(), "JavaClients over {name} failed: {status}");
    }
}
