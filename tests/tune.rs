//! `shardlog tune` on this machine: `--check` prints every setting with
//! OK, WARN or FAIL (and exits 1 exactly when one FAILs); `--apply
//! --dry-run` lists the writes it would make and makes none; `iotune` on a
//! small loop-mounted filesystem writes an io-properties file that `serve`
//! reads and says it uses.

mod common;

use std::process::Command;

const CHECKS: [&str; 10] = [
    "io_uring",
    "memlock",
    "open files",
    "cpu governor",
    "transparent hugepages",
    "io scheduler",
    "write cache",
    "filesystem",
    "swappiness",
    "irq balancing",
];

fn tune(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .arg("tune")
        .args(args)
        .output()
        .expect("shardlog runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    println!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    (output.status.code(), stdout)
}

#[test]
fn check_reports_every_setting_of_this_machine() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let (code, out) = tune(&["--check", "--data-dir", dir]);
    let verdicts: Vec<(&str, &str)> = out
        .lines()
        .filter(|l| !l.starts_with(' '))
        .map(|l| {
            let (status, rest) = l.split_once("  ").expect("STATUS  name: found");
            (status.trim(), rest.trim_start().split(':').next().unwrap())
        })
        .collect();
    let names: Vec<&str> = verdicts.iter().map(|v| v.1).collect();
    assert_eq!(names, CHECKS);
    assert!(
        verdicts
            .iter()
            .all(|v| ["OK", "WARN", "FAIL"].contains(&v.0)),
        "{verdicts:?}"
    );
    // The broker's tests run here, so io_uring works.
    assert_eq!(verdicts[0].0, "OK", "io_uring");
    let failed = verdicts.iter().any(|v| v.0 == "FAIL");
    assert_eq!(code, Some(i32::from(failed)), "exit code");
    // Every WARN and FAIL says how to fix it.
    for (i, line) in out.lines().enumerate() {
        if line.starts_with("WARN") || line.starts_with("FAIL") {
            let next = out.lines().nth(i + 1).unwrap_or_default();
            assert!(next.trim_start().starts_with("fix: "), "{line}");
        }
    }
}

#[test]
fn apply_dry_run_lists_writes_and_changes_nothing() {
    let swappiness = || std::fs::read_to_string("/proc/sys/vm/swappiness").ok();
    let before = swappiness();
    let (code, out) = tune(&["--apply", "--dry-run"]);
    assert_eq!(code, Some(0));
    assert!(
        out.lines()
            .all(|l| l.starts_with("would write ") || l == "nothing to apply"),
        "{out}"
    );
    assert!(!out.is_empty());
    assert_eq!(swappiness(), before, "a dry run writes nothing");
}

#[test]
fn iotune_measures_a_small_disk_and_serve_uses_what_it_wrote() {
    let Some(disk) = common::small_disk::SmallDisk::or_skip(64) else {
        return;
    };
    let dir = disk.mount.to_str().unwrap();
    let (code, out) = tune(&[
        "iotune",
        "--dir",
        dir,
        "--file-mib",
        "32",
        "--step-ms",
        "100",
    ]);
    assert_eq!(code, Some(0), "{out}");
    let file = disk.mount.join("io-properties.toml");
    let properties = tuning::iotune::read(&file).unwrap();
    let depths: Vec<usize> = properties.write_bandwidth.iter().map(|w| w.0).collect();
    assert_eq!(depths, tuning::iotune::DEPTHS);
    assert!(
        properties.write_bandwidth.iter().all(|w| w.1 > 0),
        "{properties:?}"
    );
    assert!(
        properties.read_bandwidth.iter().all(|r| r.1 > 0),
        "{properties:?}"
    );
    assert!(properties.read_iops > 0 && properties.write_iops > 0);
    assert!(
        properties
            .fdatasync_us
            .iter()
            .all(|s| s.1 > 0 && s.2 >= s.1)
    );
    assert!(tuning::iotune::DEPTHS.contains(&properties.writes_in_flight));
    // Its test files are gone.
    let mut left: Vec<String> = std::fs::read_dir(&disk.mount)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["io-properties.toml", "lost+found"]);

    // serve reads it (io-properties-file) and says what it uses.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("shardlog.toml");
    std::fs::write(
        &config,
        format!("io-properties-file = {:?}\n", file.to_str().unwrap()),
    )
    .unwrap();
    let log = tmp.path().join("broker.log");
    let addr = common::free_addr();
    let broker = common::start_logged(
        &tmp.path().join("data"),
        addr,
        "info",
        &["--config", config.to_str().unwrap()],
        &log,
    );
    common::create_topic_raw(addr, "tuned", 1);
    assert!(common::stop(broker).success());
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("io properties"))
        .unwrap_or_else(|| panic!("no io properties line in\n{text}"));
    assert!(
        line.contains(&format!("writes_in_flight={}", properties.writes_in_flight)),
        "{line}"
    );
}
