//! SASL on the Kafka listener (`sasl-enabled-mechanisms`, `sasl-users`):
//! kafka-python authenticates with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN
//! and produces and consumes, and a wrong password is refused; librdkafka
//! (built without SSL here, so no SCRAM) authenticates with PLAIN and is
//! refused a wrong password; a request before authentication closes the
//! connection.

mod common;

use std::time::Duration;

use common::run_python_script as run_script;
use common::{free_addr, python_or_skip, start_configured};

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
fn librdkafka_authenticates_with_plain_and_unauthenticated_requests_close_the_connection() {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_configured(tmp.path(), addr, CONFIG);
    let client = |password: &str| -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", addr.to_string())
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", "PLAIN")
            .set("sasl.username", "bob")
            .set("sasl.password", password)
            .create()
            .unwrap()
    };
    let metadata = client("other")
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.brokers().len(), 1);
    assert!(
        client("guess")
            .fetch_metadata(None, Duration::from_secs(3))
            .is_err(),
        "a wrong password gets no metadata"
    );
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
