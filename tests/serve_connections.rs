//! `shardlog serve` as a real process: it answers ApiVersions with bytes a
//! real client sent, survives bad input on other connections (each gets
//! closed, with a log line), refuses a second broker on the same data dir,
//! and exits 0 on SIGTERM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Stops the broker (SIGKILL by PID) when dropped, even if the test fails.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(data_dir: &Path, addr: SocketAddr) -> Broker {
    let child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args([
            "serve",
            "--shards",
            "2",
            "--listen",
            &addr.to_string(),
            "--data-dir",
        ])
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start shardlog serve");
    let broker = Broker(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "broker did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    broker
}

fn golden_api_versions() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/net/tests/golden/api_versions_v4_kafka_python_1.bin"
    ))
    .unwrap()
}

/// Sends the golden ApiVersions request and checks the response frame.
fn api_versions_round_trip(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = golden_api_versions();
    stream.write_all(&request).unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).unwrap();
    assert_eq!(body[..4], request[8..12], "correlation id echoed");
    assert_eq!(body[4..6], [0, 0], "error code NONE");
}

/// Sends `bytes` and expects the broker to close the connection.
fn expect_closed(addr: SocketAddr, bytes: &[u8], what: &str) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The broker may close before reading everything: a reset is fine too.
    let _ = stream.write_all(bytes);
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("{what}: expected the connection closed, got {n} bytes"),
    }
}

#[test]
fn serve_answers_api_versions_and_survives_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut broker = start(tmp.path(), addr);
    for _ in 0..4 {
        api_versions_round_trip(addr);
    }

    let mut seed = 0x5eed_u64;
    eprintln!("random bytes seed {seed}");
    let noise: Vec<u8> = (0..1 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    expect_closed(addr, &noise, "1 MiB of random bytes");
    expect_closed(
        addr,
        &0x7fff_ffffi32.to_be_bytes(),
        "a frame claiming 2 GiB",
    );
    expect_closed(addr, &(-1i32).to_be_bytes(), "a negative frame size");
    let mut unknown = golden_api_versions();
    unknown[4..6].copy_from_slice(&999i16.to_be_bytes());
    expect_closed(addr, &unknown, "an unknown API key");
    let mut truncated = golden_api_versions();
    truncated[0..4].copy_from_slice(&6i32.to_be_bytes());
    truncated.truncate(10);
    expect_closed(addr, &truncated, "a frame too short for a header");

    for _ in 0..4 {
        api_versions_round_trip(addr);
    }

    let second = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        !second.status.success(),
        "a second broker on the same data dir must refuse"
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("in use by another shardlog"));

    // SAFETY: sending SIGTERM to the child we started, by its PID.
    unsafe { libc::kill(broker.0.id() as i32, libc::SIGTERM) };
    let status = broker.0.wait().unwrap();
    assert!(status.success(), "SIGTERM exits 0, got {status}");
}
