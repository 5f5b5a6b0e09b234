//! A broker killed with hundreds of clients connected and producing comes
//! back at once on the same port and data dir (issue 10): its connections'
//! sockets in TIME_WAIT and FIN_WAIT_2 must not block the new listener
//! (SO_REUSEADDR), while a broker that still listens keeps the port to
//! itself.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::probe::api_versions_v0;
use common::{create_topic_raw, fetch_records, free_addr, start};

const CONNECTIONS: usize = 300;

/// Produces one record at a time until `stop`, counting acknowledged ones;
/// errors (the broker is being killed) end the loop.
fn producer(addr: SocketAddr, stop: Arc<AtomicBool>, acked: Arc<AtomicUsize>) {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return;
    };
    let mut correlation = 0;
    while !stop.load(Ordering::Relaxed) {
        correlation += 1;
        match common::produce_one(&mut stream, "restart", correlation) {
            Ok(0) => {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

#[test]
fn a_broker_killed_under_load_restarts_at_once_on_its_port() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut broker = start(tmp.path(), addr, "warn");
    create_topic_raw(addr, "restart", 1);

    let mut clients: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            api_versions_v0(&mut stream).unwrap();
            stream
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, acked) = (Arc::clone(&stop), Arc::clone(&acked));
            std::thread::spawn(move || producer(addr, stop, acked))
        })
        .collect();
    while acked.load(Ordering::Relaxed) < 200 {
        std::thread::sleep(Duration::from_millis(10));
    }

    broker.0.kill().unwrap(); // SIGKILL, by PID
    broker.0.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for producer in producers {
        producer.join().unwrap();
    }
    let acknowledged = acked.load(Ordering::Relaxed);
    // Half the clients close (their broker-side sockets go to TIME_WAIT),
    // half stay open (FIN_WAIT_2 on the broker's side).
    clients.truncate(CONNECTIONS / 2);

    let broker = start(tmp.path(), addr, "warn");
    let (error, high_watermark, _) = fetch_records(addr, "restart", 0, 0);
    assert_eq!(error, 0);
    assert!(
        high_watermark >= acknowledged as i64,
        "{acknowledged} acknowledged, {high_watermark} after the restart"
    );
    let mut fresh = TcpStream::connect(addr).unwrap();
    api_versions_v0(&mut fresh).unwrap();

    // A second broker (its own data dir) on the port the first listens on.
    let second = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(tmp.path().join("second"))
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another process listens there"), "{stderr}");
    drop(clients);
    common::stop(broker);
}
