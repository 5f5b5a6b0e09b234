//! A process's CPU time and memory from /proc, and what machine this is.

use serde::{Deserialize, Serialize};

/// CPU seconds and memory a process used during a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessUsage {
    pub pid: u32,
    /// User plus system CPU seconds during the run.
    pub cpu_seconds: f64,
    /// The largest resident set seen during the run (sampled every 100 ms).
    pub peak_rss_bytes: u64,
    /// System calls during the run (perf), where they could be counted.
    #[serde(default)]
    pub syscalls: Option<u64>,
    /// Context switches during the run (perf), where they could be counted.
    #[serde(default)]
    pub context_switches: Option<u64>,
}

/// One reading of /proc/PID.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    cpu_seconds: f64,
    rss_bytes: u64,
}

impl Sample {
    /// `None` when the process is gone or /proc cannot be read.
    pub fn take(pid: u32) -> Option<Sample> {
        let cpu_seconds = cpu_seconds(&format!("/proc/{pid}/stat"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        Some(Sample {
            cpu_seconds,
            rss_bytes: rss_kb * 1024,
        })
    }

    /// User plus system CPU seconds of every thread so far.
    pub fn cpu_seconds(&self) -> f64 {
        self.cpu_seconds
    }
}

/// User plus system CPU seconds from a stat file of /proc (a process's,
/// `/proc/PID/stat`, or a thread's, `/proc/thread-self/stat`); `None` when
/// it cannot be read.
pub fn cpu_seconds(stat_path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the command name (which may hold spaces): state is
    // field 3; utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / hz)
}

/// Follows a process through a run.
#[derive(Debug)]
pub struct Watch {
    pid: u32,
    first: Option<Sample>,
    last: Option<Sample>,
    peak_rss_bytes: u64,
}

impl Watch {
    pub fn new(pid: u32) -> Watch {
        let first = Sample::take(pid);
        Watch {
            pid,
            first,
            last: first,
            peak_rss_bytes: first.map_or(0, |s| s.rss_bytes),
        }
    }

    pub fn sample(&mut self) {
        if let Some(s) = Sample::take(self.pid) {
            self.peak_rss_bytes = self.peak_rss_bytes.max(s.rss_bytes);
            self.last = Some(s);
        }
    }

    /// `None` if the process could never be read.
    pub fn usage(&self) -> Option<ProcessUsage> {
        let (first, last) = (self.first?, self.last?);
        Some(ProcessUsage {
            pid: self.pid,
            cpu_seconds: last.cpu_seconds - first.cpu_seconds,
            peak_rss_bytes: self.peak_rss_bytes,
            syscalls: None,
            context_switches: None,
        })
    }
}

/// The machine a run was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub hostname: String,
    pub cpu_model: String,
    pub cpus: usize,
    pub memory_bytes: u64,
    pub kernel: String,
}

impl Machine {
    pub fn this() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        let memory_bytes = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        Machine {
            hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            memory_bytes,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_cpu_and_memory() {
        let mut watch = Watch::new(std::process::id());
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        watch.sample();
        let usage = watch.usage().unwrap();
        assert!(usage.cpu_seconds > 0.0, "{usage:?}");
        assert!(usage.peak_rss_bytes > 1 << 20, "{usage:?}");
        assert!(Watch::new(u32::MAX).usage().is_none());
        let machine = Machine::this();
        assert!(machine.cpus >= 1 && machine.memory_bytes > 0, "{machine:?}");
    }
}
