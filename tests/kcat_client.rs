//! kcat (the command line client, on the system's librdkafka: 2.0.2 on this
//! machine's Debian, older than the rdkafka crate's) against a real broker,
//! as people use it first: produce keyed lines with every codec, consume
//! them back to the end, the last N offsets, offsets by time (-Q), a
//! balanced consumer group that commits and resumes, an idempotent and a
//! transactional producer read back read_committed, metadata (-L) and JSON
//! output. Installed by scripts/test with apt-get as root.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::{free_addr, kcat_or_skip, start};

const LINES: usize = 1000;

fn lines() -> String {
    (0..LINES)
        .map(|i| format!("key-{i}:value {i} {}\n", "x".repeat(i % 50)))
        .collect()
}

/// Runs kcat with `args` against `addr`, feeding it `input`; its standard
/// output, after asserting it succeeded.
fn kcat(bin: &str, addr: SocketAddr, args: &[&str], input: &str) -> String {
    let mut child = Command::new(bin)
        .arg("-b")
        .arg(addr.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sorted(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_string).collect()
}

/// A fresh broker and kcat, or `None` (skip) without kcat.
fn setup() -> Option<(&'static str, tempfile::TempDir, SocketAddr, common::Broker)> {
    let bin = kcat_or_skip()?;
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let broker = start(tmp.path(), addr, "warn");
    Some((bin, tmp, addr, broker))
}

#[test]
fn kcat_every_codec_the_last_offsets_and_offsets_by_time() {
    let Some((bin, _tmp, addr, _broker)) = setup() else {
        return;
    };
    let input = lines();
    let want = sorted(&input);
    // Every codec, produced and read back to the end of the partition.
    for (codec, _) in common::EVERY_CODEC {
        let topic = format!("kcat-{codec}");
        kcat(bin, addr, &["-P", "-t", &topic, "-z", codec, "-K:"], &input);
        let read = kcat(
            bin,
            addr,
            &["-C", "-t", &topic, "-e", "-q", "-f", "%k:%s\\n"],
            "",
        );
        assert_eq!(sorted(&read), want, "{topic} read back");
    }
    common::assert_stored_codecs(addr, "kcat-", &common::EVERY_CODEC);

    // The last ten offsets (-o -10: ListOffsets at the end, then Fetch).
    let tail = kcat(
        bin,
        addr,
        &[
            "-C", "-t", "kcat-lz4", "-o", "-10", "-e", "-q", "-f", "%o %k\\n",
        ],
        "",
    );
    let expected: String = (LINES - 10..LINES)
        .map(|i| format!("{i} key-{i}\n"))
        .collect();
    assert_eq!(tail, expected);

    // Offsets by time: the first record at or after 0, none after now.
    let first = kcat(bin, addr, &["-Q", "-t", "kcat-zstd:0:0"], "");
    assert!(first.contains("offset 0"), "-Q at 0: {first}");
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3_600_000;
    let none = kcat(
        bin,
        addr,
        &["-Q", "-t", &format!("kcat-zstd:0:{later}")],
        "",
    );
    assert!(none.contains("offset -1"), "-Q after every record: {none}");

    // Metadata and JSON output.
    let metadata = kcat(bin, addr, &["-L", "-t", "kcat-gzip"], "");
    assert!(
        metadata.contains(&format!("broker 0 at {addr}"))
            && metadata.contains("partition 0, leader 0"),
        "-L: {metadata}"
    );
    let json = kcat(
        bin,
        addr,
        &["-C", "-t", "kcat-none", "-c", "1", "-J", "-q"],
        "",
    );
    assert!(
        json.contains("\"offset\":0") && json.contains("\"key\":\"key-0\""),
        "-J: {json}"
    );
}

#[test]
fn kcat_group_commits_and_resumes() {
    let Some((bin, _tmp, addr, _broker)) = setup() else {
        return;
    };
    let input = lines();
    for topic in ["kcat-a", "kcat-b"] {
        kcat(bin, addr, &["-P", "-t", topic, "-K:"], &input);
    }
    // A balanced consumer reads two topics, commits as it leaves, and the
    // same group then resumes where it left off (nothing more to read).
    let group = [
        "-G",
        "kcat-group",
        "kcat-a",
        "kcat-b",
        "-X",
        "auto.offset.reset=earliest",
    ];
    let read = |args: &[&str]| kcat(bin, addr, &[&group[..], args].concat(), "");
    let first_read = read(&["-e", "-q", "-f", "%t %k\\n"]);
    assert_eq!(
        first_read.lines().count(),
        2 * LINES,
        "the group's first read"
    );
    assert_eq!(
        read(&["-e", "-q"]),
        "",
        "the group resumes from its commits"
    );
}

#[test]
fn kcat_idempotent_and_transactional_producers() {
    let Some((bin, _tmp, addr, _broker)) = setup() else {
        return;
    };
    let input = lines();
    let want = sorted(&input);
    kcat(
        bin,
        addr,
        &[
            "-P",
            "-t",
            "kcat-idempotent",
            "-K:",
            "-X",
            "enable.idempotence=true",
        ],
        &input,
    );
    let read = kcat(
        bin,
        addr,
        &["-C", "-t", "kcat-idempotent", "-e", "-q", "-f", "%k:%s\\n"],
        "",
    );
    assert_eq!(sorted(&read), want, "idempotent produce read back");
    kcat(
        bin,
        addr,
        &[
            "-P",
            "-t",
            "kcat-txn",
            "-K:",
            "-X",
            "transactional.id=kcat-txn",
        ],
        &input,
    );
    let read = kcat(
        bin,
        addr,
        &[
            "-C",
            "-t",
            "kcat-txn",
            "-e",
            "-q",
            "-f",
            "%k:%s\\n",
            "-X",
            "isolation.level=read_committed",
        ],
        "",
    );
    assert_eq!(
        sorted(&read),
        want,
        "a committed transaction read read_committed"
    );
}
