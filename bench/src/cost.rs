//! What a run cost the broker per message and per request: the requests
//! the bench's clients sent (every driver counts them here) and, where
//! `perf` can read them, the broker's system calls and context switches.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// Requests sent to brokers by every client of this process, since it
/// started; a run reads it before and after.
static REQUESTS_SENT: AtomicU64 = AtomicU64::new(0);

pub fn requests_sent() -> u64 {
    REQUESTS_SENT.load(Ordering::Relaxed)
}

/// One request sent (the native clients count each one).
pub fn count_request() {
    REQUESTS_SENT.fetch_add(1, Ordering::Relaxed);
}

/// A librdkafka client's cumulative request count (its statistics' `tx`,
/// summed over brokers), turned into additions to the process's count.
#[derive(Debug, Default)]
pub struct CumulativeRequests {
    seen: AtomicU64,
}

impl CumulativeRequests {
    pub fn observe(&self, total: u64) {
        let before = self.seen.fetch_max(total, Ordering::Relaxed);
        if total > before {
            REQUESTS_SENT.fetch_add(total - before, Ordering::Relaxed);
        }
    }
}

/// The broker's system calls and context switches over a run, counted by
/// `perf stat` attached to its process. `None` when perf is missing or may
/// not trace it (tracepoints need root or `perf_event_paranoid` <= -1).
#[derive(Debug)]
pub struct KernelCounts {
    perf: Child,
}

/// What `perf stat` counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub syscalls: u64,
    pub context_switches: u64,
}

impl KernelCounts {
    pub fn start(pid: u32) -> Option<KernelCounts> {
        let perf = Command::new("perf")
            .args(["stat", "-x", ",", "--no-big-num"])
            .args(["-e", "raw_syscalls:sys_enter", "-e", "context-switches"])
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        Some(KernelCounts { perf })
    }

    /// Stops counting (SIGINT, as perf expects) and reads the counts.
    pub fn finish(mut self) -> Option<Counted> {
        // SAFETY: kill only sends a signal to the perf child, by its PID.
        unsafe { libc::kill(self.perf.id() as libc::pid_t, libc::SIGINT) };
        let mut output = String::new();
        self.perf.stderr.take()?.read_to_string(&mut output).ok()?;
        self.perf.wait().ok()?;
        parse(&output)
    }
}

/// `perf stat -x ,` lines: `count,unit,event,...`; `<not supported>` or
/// `<not counted>` where it could not count.
fn parse(output: &str) -> Option<Counted> {
    let count = |event: &str| {
        output.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields.get(2) == Some(&event))
                .then(|| fields.first()?.trim().parse::<u64>().ok())
                .flatten()
        })
    };
    Some(Counted {
        syscalls: count("raw_syscalls:sys_enter")?,
        context_switches: count("context-switches")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_stat_csv_parses_and_refusals_give_none() {
        let out = "# started on Wed Dec  2 01:15:19 2026\n\n\
                   123456,,raw_syscalls:sys_enter,10003045272,100.00,,\n\
                   7890,,context-switches,10003045272,100.00,,\n";
        assert_eq!(
            parse(out),
            Some(Counted {
                syscalls: 123456,
                context_switches: 7890
            })
        );
        let refused = "<not supported>,,raw_syscalls:sys_enter,0,100.00,,\n\
                       12,,context-switches,10003045272,100.00,,\n";
        assert_eq!(parse(refused), None);
        assert_eq!(parse("Error: no permission"), None);
    }

    #[test]
    fn cumulative_counts_add_only_what_is_new() {
        let client = CumulativeRequests::default();
        let before = requests_sent();
        client.observe(10);
        client.observe(10);
        client.observe(25);
        client.observe(20); // an older report arriving late
        assert!(requests_sent() - before >= 25);
    }
}
