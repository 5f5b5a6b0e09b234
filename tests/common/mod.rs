//! Starting and stopping real broker processes for the end-to-end tests.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `shardlog serve` process; killed (SIGKILL, by PID) when dropped, even
/// if the test fails.
pub struct Broker(pub Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free 127.0.0.1 port (the listener that found it is closed).
pub fn free_addr() -> SocketAddr {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}").parse().unwrap()
}

/// Starts a two-shard broker on `data_dir` listening on `addr`, and waits
/// until it accepts connections.
pub fn start(data_dir: &Path, addr: SocketAddr, log_level: &str) -> Broker {
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
        .env("RUST_LOG", log_level)
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
