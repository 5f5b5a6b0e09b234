//! The machine under the broker: `shardlog tune --check` says, setting by
//! setting, whether it suits a thread-per-core io_uring broker (OK, WARN or
//! FAIL, with what was found and the fix), and `tune --apply` makes the
//! changes it can (kernel settings in /proc and /sys, as root; `--dry-run`
//! prints them). Limits of the process (memlock, open files) are only told:
//! they belong to the shell or the service manager that starts `serve`.
//!
//! The checks read the machine through [`Machine`], so tests give them
//! exact files and limits ([`check`] is pure over it); [`RealMachine`] reads
//! this one.

mod checks;
pub mod iotune;
mod machine;

pub use checks::{Finding, Status, check};
pub use machine::{Limit, Machine, RealMachine, Resource};

/// A write `tune --apply` makes: `value` into `path` (a /proc or /sys file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub path: String,
    pub value: String,
}

/// Applies the writes of every finding that is not OK; with `dry_run`,
/// only returns them. Returns what was (or would be) written, and the
/// failures (path, error).
pub fn apply(findings: &[Finding], dry_run: bool) -> (Vec<Write>, Vec<(String, std::io::Error)>) {
    let writes: Vec<Write> = findings
        .iter()
        .filter(|f| f.status != Status::Ok)
        .flat_map(|f| f.apply.iter().cloned())
        .collect();
    if dry_run {
        return (writes, Vec::new());
    }
    let mut failed = Vec::new();
    let mut done = Vec::new();
    for write in writes {
        match std::fs::write(&write.path, &write.value) {
            Ok(()) => done.push(write),
            Err(e) => failed.push((write.path, e)),
        }
    }
    (done, failed)
}
