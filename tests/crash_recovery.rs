//! Crash test with real processes: a child appends batches and prints every
//! durable acknowledgement; it is killed with SIGKILL at random moments.
//! After every kill the log must hold every acknowledged batch byte for byte
//! (same size and CRC-32C), with contiguous offsets; only never-acknowledged
//! batches at the tail may be missing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use engine::batch::BatchHeader;
use engine::{Log, LogConfig, Offset};

/// Kills the child (by PID, SIGKILL) when dropped, even if the test fails.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ack {
    base: i64,
    last: i64,
    crc: u32,
    len: usize,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut parts = line.strip_prefix("ack ")?.split(' ');
    Some(Ack {
        base: parts.next()?.parse().ok()?,
        last: parts.next()?.parse().ok()?,
        crc: parts.next()?.parse().ok()?,
        len: parts.next()?.parse().ok()?,
    })
}

/// Starts the child and returns it with a channel of its stdout lines.
/// With `readers`, it also reads what is there at random offsets, with a
/// segment cache that keeps nothing and one segment file open (every read
/// of a sealed segment loads its indexes and opens its file, which closes
/// the active segment's: the appends' writes and fdatasyncs open it again).
fn start_child(dir: &Path, seed: u64, readers: bool) -> (KillOnDrop, mpsc::Receiver<String>) {
    let read_args: &[&str] = if readers {
        &[
            "--readers",
            "2",
            "--index-cache-bytes",
            "0",
            "--open-segment-files",
            "1",
        ]
    } else {
        &[]
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["crash-child", "--dir"])
        .arg(dir)
        .args(read_args)
        .args([
            "--seed",
            &seed.to_string(),
            "--appenders",
            "8",
            "--segment-bytes",
            "262144",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start crash-child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (KillOnDrop(child), rx)
}

/// Where each thread of a process is (name, wait channel, kernel stack),
/// for a failure message: a child that never got ready says where it hung.
fn thread_states(pid: u32) -> String {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return format!("(no /proc/{pid}/task)");
    };
    let mut out = String::new();
    for task in tasks.flatten() {
        let path = task.path();
        let read = |name: &str| std::fs::read_to_string(path.join(name)).unwrap_or_default();
        out.push_str(&format!(
            "{} {} wchan={}\n{}",
            path.display(),
            read("comm").trim(),
            read("wchan"),
            read("stack")
        ));
    }
    out
}

/// How long reopening and reading the log may take before the test fails
/// with the state of every thread (it takes well under a second).
const REOPEN_PATIENCE: Duration = Duration::from_secs(120);

/// Every batch in the log: (base, last, crc, len). A reopen that hangs fails
/// the test with where each thread waits, instead of hanging it.
fn read_log(dir: PathBuf, uncached: bool) -> Vec<Ack> {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(read_log_on_executor(dir, uncached));
    });
    result.recv_timeout(REOPEN_PATIENCE).unwrap_or_else(|e| {
        panic!(
            "reopening the log did not finish in {REOPEN_PATIENCE:?} ({e}); this process's threads:\n{}",
            thread_states(std::process::id())
        )
    })
}

fn read_log_on_executor(dir: PathBuf, uncached: bool) -> Vec<Ack> {
    engine::rt::run_on_executor("verify", None, move || async move {
        if uncached {
            engine::set_segment_cache_limits(0, 1);
        }
        let log = Log::open(&dir, LogConfig::default(), 0)
            .await
            .expect("reopen after SIGKILL");
        let mut batches = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let read = log.read(offset, 1 << 20).await.expect("read");
            assert!(
                !read.chunks.is_empty(),
                "a read at {offset:?}, below the log end {:?}, returned no batch",
                log.log_end_offset()
            );
            for chunk in &read.chunks {
                let mut bytes = Vec::new();
                chunk.extend_into(&mut bytes);
                let header = BatchHeader(bytes[..61].try_into().unwrap());
                batches.push(Ack {
                    base: header.base_offset().0,
                    last: header.last_offset().0,
                    crc: header.crc(),
                    len: bytes.len(),
                });
                offset = header.last_offset().plus(1);
            }
        }
        assert_eq!(offset, log.log_end_offset());
        log.close().await.expect("close");
        batches
    })
    .expect("executor")
}

#[test]
fn acknowledged_batches_survive_sigkill_at_random_moments() {
    let seed: u64 = std::env::var("SHARDLOG_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x000c_4a54);
    let rounds: u64 = std::env::var("SHARDLOG_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    eprintln!("crash test: seed {seed}, {rounds} rounds (replay with SHARDLOG_TEST_SEED={seed})");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("crash-0");
    let mut acked: Vec<Ack> = Vec::new();
    let mut rng = seed;
    for round in 0..rounds {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let run_for = Duration::from_millis(20 + (rng >> 33) % 400);
        // Odd rounds read while they append, and verify, with nothing cached.
        let uncached = round % 2 == 1;
        let (child, lines) = start_child(&dir, seed.wrapping_add(round), uncached);
        let ready = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| {
                panic!(
                    "round {round}: child not ready ({e}); its threads:\n{}",
                    thread_states(child.0.id())
                )
            });
        assert!(ready.starts_with("ready "), "{ready}");
        let deadline = Instant::now() + run_for;
        let mut round_acks = 0;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(line) => {
                    acked.push(parse_ack(&line).unwrap_or_else(|| panic!("bad line {line:?}")));
                    round_acks += 1;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("child exited early"),
            }
        }
        drop(child); // SIGKILL
        // Acks printed before the kill but not yet read are acknowledged too.
        acked.extend(lines.try_iter().filter_map(|l| parse_ack(&l)));
        let stored = read_log(dir.clone(), uncached);
        let mut next = 0;
        for batch in &stored {
            assert_eq!(batch.base, next, "round {round}: offsets are contiguous");
            next = batch.last + 1;
        }
        let by_base: std::collections::HashMap<i64, Ack> =
            stored.iter().map(|b| (b.base, *b)).collect();
        for ack in &acked {
            assert_eq!(
                by_base.get(&ack.base),
                Some(ack),
                "round {round}: acknowledged batch at {} lost or changed",
                ack.base
            );
        }
        eprintln!(
            "round {round}: ran {run_for:?}, {round_acks} acks, log end {next}, {} unacknowledged batches kept",
            stored.len() - acked.len()
        );
        assert!(Offset(next) >= Offset(acked.iter().map(|a| a.last + 1).max().unwrap_or(0)));
    }
    assert!(acked.len() > rounds as usize, "the child made progress");
}
