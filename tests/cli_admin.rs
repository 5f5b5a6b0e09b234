//! The admin CLI against a real broker, end to end: `shardlog topic`
//! create, list, describe, alter-config (the other configs kept),
//! add-partitions and delete; `shardlog produce` of JSON lines (keys,
//! partitions, headers) and of `KEY<sep>VALUE` lines; `shardlog consume`
//! from the beginning, from an offset, from a time and in a group, its JSON
//! lines holding exactly what was produced.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::{free_addr, start};

fn shardlog(addr: SocketAddr, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(args)
        .args(["--bootstrap", &addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "shardlog {args:?}: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// (partition, offset) -> (key, value, headers) of consumed JSON lines.
type Read = BTreeMap<(i64, i64), (Option<String>, String, Vec<(String, String)>)>;

fn parse(lines: &str) -> Read {
    lines
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let headers = common::json_headers(&v);
            (
                (
                    v["partition"].as_i64().unwrap(),
                    v["offset"].as_i64().unwrap(),
                ),
                (
                    v["key"].as_str().map(str::to_string),
                    v["value"].as_str().unwrap().to_string(),
                    headers,
                ),
            )
        })
        .collect()
}

#[test]
fn topics_produce_and_consume_round_trip_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    let topic = |args: &[&str]| {
        let mut all = vec!["topic"];
        all.extend_from_slice(args);
        shardlog(addr, &all, "")
    };
    topic(&["create", "cli-t", "-p", "3", "-c", "retention.ms=123456"]);
    let listed = topic(&["list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["cli-t", "3", "1"]),
        "{listed}"
    );
    topic(&[
        "alter-config",
        "cli-t",
        "-s",
        "cleanup.policy=delete,compact",
    ]);
    topic(&["add-partitions", "cli-t", "--to", "4"]);
    let described = topic(&["describe", "cli-t"]);
    assert!(
        described.contains("topic cli-t: 4 partitions"),
        "{described}"
    );
    assert!(
        described.contains("retention.ms=123456"),
        "kept: {described}"
    );
    assert!(
        described.contains("cleanup.policy=compact,delete"),
        "{described}"
    );

    // JSON lines to chosen partitions with headers, then keyed lines.
    let json: String = (0..40)
        .map(|i| {
            format!(
                "{{\"key\":\"k{i}\",\"value\":\"json {i}\",\"partition\":{},\"headers\":{{\"n\":\"{i}\"}}}}\n",
                i % 4
            )
        })
        .collect();
    shardlog(addr, &["produce", "cli-t", "--json"], &json);
    let keyed: String = (0..20).map(|i| format!("key{i}\tline {i}\n")).collect();
    shardlog(
        addr,
        &["produce", "cli-t", "-k", "\t", "-p", "2", "-H", "src=cli"],
        &keyed,
    );

    let all = parse(&shardlog(addr, &["consume", "cli-t", "-n", "60"], ""));
    assert_eq!(all.len(), 60);
    for i in 0..40i64 {
        let (_, (key, value, headers)) = all
            .iter()
            .find(|(_, m)| m.1 == format!("json {i}"))
            .unwrap_or_else(|| panic!("json {i} missing"));
        assert_eq!(key.as_deref(), Some(format!("k{i}").as_str()));
        assert_eq!(headers, &vec![("n".to_string(), i.to_string())]);
        let _ = value;
    }
    let on_two: Vec<&str> = all
        .iter()
        .filter(|((p, _), m)| *p == 2 && m.1.starts_with("line "))
        .map(|(_, m)| m.1.as_str())
        .collect();
    let want: Vec<String> = (0..20).map(|i| format!("line {i}")).collect();
    assert_eq!(on_two, want, "keyed lines in order on partition 2");
    let (_, (key, _, headers)) = all.iter().find(|(_, m)| m.1 == "line 7").unwrap();
    assert_eq!(key.as_deref(), Some("key7"));
    assert_eq!(headers, &vec![("src".to_string(), "cli".to_string())]);

    consume_from_an_offset_a_time_and_a_group(addr, &all);

    topic(&["delete", "cli-t"]);
    let listed = topic(&["list"]);
    assert!(!listed.contains("cli-t"), "{listed}");
}

/// `consume` from an offset of one partition, from a time (all of it:
/// everything was written after the topic was created) and in a group
/// (everything once, then nothing more: committed); `all` is what a read
/// from the beginning got.
fn consume_from_an_offset_a_time_and_a_group(addr: SocketAddr, all: &Read) {
    let from_five = parse(&shardlog(
        addr,
        &["consume", "cli-t", "-p", "2", "--from", "5", "-n", "25"],
        "",
    ));
    let expected: Read = all
        .iter()
        .filter(|((p, o), _)| *p == 2 && *o >= 5)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    assert_eq!(from_five, expected);
    let by_time = parse(&shardlog(
        addr,
        &["consume", "cli-t", "--from", "@0", "-n", "60"],
        "",
    ));
    assert_eq!(&by_time, all);

    let grouped = parse(&shardlog(
        addr,
        &["consume", "cli-t", "-g", "cli-g", "-n", "60"],
        "",
    ));
    assert_eq!(&grouped, all);
    let again = shardlog(
        addr,
        &["consume", "cli-t", "-g", "cli-g", "--idle-ms", "3000"],
        "",
    );
    assert!(again.is_empty(), "past the committed offsets: {again}");
}
