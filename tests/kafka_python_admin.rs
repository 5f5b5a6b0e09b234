//! kafka-python drives topic administration against a real broker process,
//! across a restart: topics, partition counts and error codes as Kafka gives
//! them. Needs the Python client that scripts/test installs in .venv.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
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

fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    venv.exists().then_some(venv)
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
        .env("RUST_LOG", "warn")
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

fn run_client(python: &Path, addr: SocketAddr, phase: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/admin.py");
    let status = Command::new(python)
        .arg(script)
        .arg(addr.to_string())
        .arg(phase)
        .status()
        .unwrap();
    assert!(status.success(), "admin.py {phase} failed: {status}");
}

#[test]
fn kafka_python_creates_lists_and_describes_topics_across_a_restart() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs scripts/test, which installs .venv"
        );
        eprintln!("skipped: no .venv (run scripts/test once to install the Python clients)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let broker = start(tmp.path(), addr);
    run_client(&python, addr, "create");
    drop(broker); // SIGKILL: the metadata was durable before each answer
    let _broker = start(tmp.path(), addr);
    run_client(&python, addr, "check");
}
