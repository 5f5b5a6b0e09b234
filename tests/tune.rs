//! `shardlog tune` on this machine: `--check` prints every setting with
//! OK, WARN or FAIL (and exits 1 exactly when one FAILs); `--apply
//! --dry-run` lists the writes it would make and makes none.

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
