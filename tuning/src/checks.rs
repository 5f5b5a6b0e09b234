//! Each setting that matters to the broker, judged from what the
//! [`Machine`] shows.

use std::path::Path;

use crate::Write;
use crate::machine::{Limit, Machine, Resource};

/// Registered io_uring memory per shard when the limit allows it (the
/// engine's `IO_MEMORY_BYTES_MAX`), and the limit from which it does.
const IO_MEMORY_BYTES_MAX: u64 = 64 << 20;
const MEMLOCK_ROOMY: u64 = 4 * IO_MEMORY_BYTES_MAX;
/// Below this the shards do not start (glommio's rings).
const MEMLOCK_MIN: u64 = 512 << 10;
/// Open files: each partition holds its segment files and a connection is
/// a descriptor; Kafka's and Redpanda's guides ask for 100,000 or more.
const OPEN_FILES_WANT: u64 = 100_000;
const OPEN_FILES_MIN: u64 = 4_096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One setting: what was found, and the fix when it is not OK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub name: &'static str,
    pub status: Status,
    pub found: String,
    /// What to do (empty when OK).
    pub fix: String,
    /// What `tune --apply` writes for it.
    pub apply: Vec<Write>,
}

impl Finding {
    fn new(name: &'static str, status: Status, found: impl Into<String>) -> Finding {
        Finding {
            name,
            status,
            found: found.into(),
            fix: String::new(),
            apply: Vec::new(),
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = fix.into();
        self
    }

    fn apply(mut self, path: impl Into<String>, value: impl Into<String>) -> Finding {
        self.apply.push(Write {
            path: path.into(),
            value: value.into(),
        });
        self
    }
}

/// Every check, in the order `tune --check` prints them, for a broker
/// with `shards` shards on `data_dir`.
pub fn check(machine: &dyn Machine, data_dir: &Path, shards: usize) -> Vec<Finding> {
    let device = existing_ancestor(data_dir).and_then(|dir| machine.device_of(&dir));
    vec![
        io_uring(machine),
        memlock(machine, shards),
        open_files(machine),
        governor(machine),
        hugepages(machine),
        scheduler(machine, device),
        write_cache(machine, device),
        filesystem(machine, data_dir, device),
        swappiness(machine),
        irq_balancing(machine),
    ]
}

fn existing_ancestor(path: &Path) -> Option<std::path::PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    absolute
        .ancestors()
        .find(|p| p.exists())
        .and_then(|p| p.canonicalize().ok())
}

fn io_uring(machine: &dyn Machine) -> Finding {
    const NAME: &str = "io_uring";
    let disabled = machine.read("/proc/sys/kernel/io_uring_disabled");
    match machine.io_uring() {
        Ok(()) => Finding::new(NAME, Status::Ok, "available"),
        Err(libc::ENOSYS) => Finding::new(NAME, Status::Fail, "not in this kernel")
            .fix("run a kernel with io_uring (5.8 or newer; 6.x recommended)"),
        Err(errno) if disabled.as_deref().is_some_and(|d| d != "0") => Finding::new(
            NAME,
            Status::Fail,
            format!(
                "refused (errno {errno}): kernel.io_uring_disabled = {}",
                disabled.unwrap_or_default()
            ),
        )
        .fix("sysctl kernel.io_uring_disabled=0")
        .apply("/proc/sys/kernel/io_uring_disabled", "0"),
        Err(errno) => Finding::new(NAME, Status::Fail, format!("refused (errno {errno})")).fix(
            "a container's seccomp profile blocks io_uring_setup: run with a profile that \
             allows io_uring_setup, io_uring_enter and io_uring_register (docker: \
             --security-opt seccomp=<profile>)",
        ),
    }
}

fn memlock(machine: &dyn Machine, shards: usize) -> Finding {
    const NAME: &str = "memlock";
    let raise = "raise it where serve starts: `ulimit -l unlimited`, systemd LimitMEMLOCK=infinity, \
                 or memlock in /etc/security/limits.conf";
    let per_shard = format!("{} MiB registered per shard", IO_MEMORY_BYTES_MAX >> 20);
    if machine.is_root() {
        return Finding::new(NAME, Status::Ok, format!("root: {per_shard}"));
    }
    match machine.rlimit(Resource::Memlock) {
        Limit::Unlimited => Finding::new(NAME, Status::Ok, format!("unlimited: {per_shard}")),
        Limit::At(limit) if limit >= MEMLOCK_ROOMY => Finding::new(
            NAME,
            Status::Ok,
            format!("{}: {per_shard} ({shards} shards)", bytes(limit)),
        ),
        Limit::At(limit) if limit >= MEMLOCK_MIN => Finding::new(
            NAME,
            Status::Warn,
            format!(
                "{}: the shards register 1 MiB each and stage writes in heap pages",
                bytes(limit)
            ),
        )
        .fix(raise),
        Limit::At(limit) => Finding::new(
            NAME,
            Status::Fail,
            format!("{}: below the 512 KiB a shard's rings need", bytes(limit)),
        )
        .fix(raise),
        Limit::Unknown => Finding::new(NAME, Status::Warn, "unknown").fix(raise),
    }
}

fn open_files(machine: &dyn Machine) -> Finding {
    const NAME: &str = "open files";
    let raise = format!(
        "raise the hard limit where serve starts: `ulimit -Hn {OPEN_FILES_WANT}` (as root), \
         systemd LimitNOFILE=1048576, or nofile in /etc/security/limits.conf; serve keeps \
         segment files open in three quarters of it and needs one per connection"
    );
    match machine.rlimit(Resource::OpenFiles) {
        Limit::Unlimited => Finding::new(NAME, Status::Ok, "unlimited"),
        Limit::At(n) if n >= OPEN_FILES_WANT => Finding::new(NAME, Status::Ok, n.to_string()),
        Limit::At(n) if n >= OPEN_FILES_MIN => Finding::new(
            NAME,
            Status::Warn,
            format!(
                "{n} (the hard limit: serve raises its soft limit to it): serve keeps segment \
                 files open in three quarters of it (past that, the least recently used partition \
                 opens its file again when next read or written), each client a socket"
            ),
        )
        .fix(raise),
        Limit::At(n) => Finding::new(
            NAME,
            Status::Fail,
            format!(
                "{n} (the hard limit): a few thousand connections exhaust it, and partitions \
                 past a few thousand open their files again on each use"
            ),
        )
        .fix(raise),
        Limit::Unknown => Finding::new(NAME, Status::Warn, "unknown").fix(raise),
    }
}

fn governor(machine: &dyn Machine) -> Finding {
    const NAME: &str = "cpu governor";
    let files: Vec<String> = machine
        .list("/sys/devices/system/cpu", "cpu")
        .into_iter()
        .map(|cpu| format!("{cpu}/cpufreq/scaling_governor"))
        .filter(|f| machine.read(f).is_some())
        .collect();
    if files.is_empty() {
        return Finding::new(
            NAME,
            Status::Ok,
            "no cpufreq control (a VM, or fixed clocks: the host decides)",
        );
    }
    let slow: Vec<&String> = files
        .iter()
        .filter(|f| machine.read(f).as_deref() != Some("performance"))
        .collect();
    if slow.is_empty() {
        return Finding::new(
            NAME,
            Status::Ok,
            format!("performance on {} cpus", files.len()),
        );
    }
    let found = machine.read(slow[0]).unwrap_or_default();
    let mut finding = Finding::new(
        NAME,
        Status::Warn,
        format!(
            "{found} on {} of {} cpus: clocks ramp up after idle, adding latency",
            slow.len(),
            files.len()
        ),
    )
    .fix("set the performance governor (cpupower frequency-set -g performance)");
    for file in slow {
        finding = finding.apply(file.clone(), "performance");
    }
    finding
}

/// The bracketed choice of a sysfs multiple-choice file ("always [madvise] never").
fn chosen(text: &str) -> Option<&str> {
    let start = text.find('[')?;
    let end = text[start..].find(']')? + start;
    text.get(start + 1..end)
}

fn hugepages(machine: &dyn Machine) -> Finding {
    const NAME: &str = "transparent hugepages";
    const ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
    const DEFRAG: &str = "/sys/kernel/mm/transparent_hugepage/defrag";
    let enabled = machine.read(ENABLED);
    let defrag = machine.read(DEFRAG);
    let Some(enabled_text) = enabled.as_deref() else {
        return Finding::new(NAME, Status::Ok, "not in this kernel");
    };
    let enabled = chosen(enabled_text).unwrap_or(enabled_text);
    let defrag = defrag
        .as_deref()
        .map(|d| chosen(d).unwrap_or(d).to_string());
    let stalls = enabled == "always" || defrag.as_deref() == Some("always");
    if !stalls {
        return Finding::new(
            NAME,
            Status::Ok,
            format!("enabled {enabled}, defrag {}", defrag.unwrap_or_default()),
        );
    }
    let mut finding = Finding::new(
        NAME,
        Status::Warn,
        format!(
            "enabled {enabled}, defrag {}: page faults may stall on compaction",
            defrag.clone().unwrap_or_default()
        ),
    )
    .fix("madvise for both (echo madvise > .../transparent_hugepage/enabled and defrag)");
    if enabled == "always" {
        finding = finding.apply(ENABLED, "madvise");
    }
    if defrag.as_deref() == Some("always") {
        finding = finding.apply(DEFRAG, "madvise");
    }
    finding
}

/// The sysfs directory of the block device under `device` (the disk, not
/// the partition), and its name.
fn block_dir(machine: &dyn Machine, device: Option<(u32, u32)>) -> Option<(String, String)> {
    let (major, minor) = device?;
    let node = format!("/sys/dev/block/{major}:{minor}");
    let dir = if machine.read(&format!("{node}/partition")).is_some() {
        format!("{node}/..")
    } else {
        node
    };
    machine.read(&format!("{dir}/queue/scheduler"))?;
    let name = machine
        .read(&format!("{dir}/uevent"))
        .and_then(|u| {
            u.lines()
                .find_map(|l| l.strip_prefix("DEVNAME=").map(str::to_string))
        })
        .unwrap_or_else(|| format!("{major}:{minor}"));
    Some((dir, name))
}

fn scheduler(machine: &dyn Machine, device: Option<(u32, u32)>) -> Finding {
    const NAME: &str = "io scheduler";
    let Some((dir, name)) = block_dir(machine, device) else {
        return Finding::new(
            NAME,
            Status::Ok,
            "the data directory is not on a block device with a queue (tmpfs, overlay, device-mapper)",
        );
    };
    let path = format!("{dir}/queue/scheduler");
    let text = machine.read(&path).unwrap_or_default();
    let current = chosen(&text).unwrap_or(&text).to_string();
    let rotational = machine.read(&format!("{dir}/queue/rotational")).as_deref() == Some("1");
    match current.as_str() {
        "none" | "mq-deadline" | "noop" | "deadline" if !rotational => {
            Finding::new(NAME, Status::Ok, format!("{name}: {current}"))
        }
        _ if rotational => Finding::new(
            NAME,
            Status::Warn,
            format!("{name}: the kernel sees a rotational disk ({current}): every fdatasync would wait for a platter"),
        )
        .fix(format!(
            "put the data directory on an SSD or NVMe device; if it is one (a VM's virtio \
             disk often says rotational), echo 0 > {dir}/queue/rotational"
        )),
        _ => Finding::new(
            NAME,
            Status::Warn,
            format!("{name}: {current}: its queueing adds latency the broker's own batching does not need"),
        )
        .fix(format!("echo none > {path}"))
        .apply(path, "none"),
    }
}

fn write_cache(machine: &dyn Machine, device: Option<(u32, u32)>) -> Finding {
    const NAME: &str = "write cache";
    let Some((dir, name)) = block_dir(machine, device) else {
        return Finding::new(NAME, Status::Ok, "no block device queue to read");
    };
    match machine.read(&format!("{dir}/queue/write_cache")).as_deref() {
        Some("write back") => Finding::new(
            NAME,
            Status::Ok,
            format!(
                "{name}: write back (volatile: each fdatasync flushes it, so acknowledged writes are on stable media)"
            ),
        ),
        Some(other) => Finding::new(NAME, Status::Ok, format!("{name}: {other}")),
        None => Finding::new(NAME, Status::Ok, format!("{name}: not reported")),
    }
}

fn filesystem(machine: &dyn Machine, data_dir: &Path, device: Option<(u32, u32)>) -> Finding {
    const NAME: &str = "filesystem";
    let Some((major, minor)) = device else {
        return Finding::new(
            NAME,
            Status::Warn,
            format!("{} not found", data_dir.display()),
        );
    };
    let dir = existing_ancestor(data_dir).unwrap_or_else(|| data_dir.to_path_buf());
    let mountinfo = machine.read("/proc/self/mountinfo").unwrap_or_default();
    // Fields: id parent major:minor root mountpoint options [optional...] - fstype source super-options
    let wanted = format!("{major}:{minor}");
    let mount = mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            (fields.get(2) == Some(&wanted.as_str())).then(|| {
                (
                    fields.get(4).copied().unwrap_or(""),
                    fields.get(5).copied().unwrap_or(""),
                    fields.get(dash + 1).copied().unwrap_or(""),
                    fields.get(dash + 3).copied().unwrap_or(""),
                )
            })
        })
        .filter(|(point, _, _, _)| dir.starts_with(point))
        .max_by_key(|(point, _, _, _)| point.len());
    let Some((point, options, fstype, super_options)) = mount else {
        return Finding::new(
            NAME,
            Status::Warn,
            format!("no mount found for {}", dir.display()),
        );
    };
    let all: Vec<&str> = options.split(',').chain(super_options.split(',')).collect();
    let found = format!("{fstype} on {point} ({options})");
    if matches!(fstype, "tmpfs" | "ramfs") {
        return Finding::new(
            NAME,
            Status::Fail,
            format!("{found}: memory, gone at a reboot, and no O_DIRECT"),
        )
        .fix("put the data directory on a disk (XFS or ext4)");
    }
    if all.contains(&"nobarrier") || all.contains(&"barrier=0") {
        return Finding::new(
            NAME,
            Status::Fail,
            format!("{found}: nobarrier: fdatasync does not reach stable media"),
        )
        .fix("remount without nobarrier");
    }
    if !matches!(fstype, "xfs" | "ext4") {
        return Finding::new(
            NAME,
            Status::Warn,
            format!("{found}: tested on XFS and ext4 only"),
        )
        .fix("put the data directory on XFS or ext4");
    }
    if all.contains(&"data=journal") {
        return Finding::new(
            NAME,
            Status::Warn,
            format!("{found}: data=journal writes every byte twice"),
        )
        .fix("mount with the default data=ordered");
    }
    if !all.contains(&"noatime") {
        return Finding::new(
            NAME,
            Status::Warn,
            format!("{found}: reads update access times"),
        )
        .fix(format!("mount {point} with noatime"));
    }
    Finding::new(NAME, Status::Ok, found)
}

fn swappiness(machine: &dyn Machine) -> Finding {
    const NAME: &str = "swappiness";
    const PATH: &str = "/proc/sys/vm/swappiness";
    match machine.read(PATH).and_then(|s| s.parse::<u32>().ok()) {
        Some(n) if n <= 1 => Finding::new(NAME, Status::Ok, n.to_string()),
        Some(n) => Finding::new(
            NAME,
            Status::Warn,
            format!("{n}: the kernel may swap the broker's caches out under page-cache pressure"),
        )
        .fix("sysctl vm.swappiness=1")
        .apply(PATH, "1"),
        None => Finding::new(NAME, Status::Ok, "not reported"),
    }
}

fn irq_balancing(machine: &dyn Machine) -> Finding {
    const NAME: &str = "irq balancing";
    if machine.runs("irqbalance") {
        Finding::new(
            NAME,
            Status::Warn,
            "irqbalance runs: network and disk interrupts move onto the shards' cores",
        )
        .fix("stop irqbalance and pin the NIC's and disk's IRQs (/proc/irq/N/smp_affinity) to cores without a shard")
    } else {
        Finding::new(NAME, Status::Ok, "irqbalance does not run")
    }
}

fn bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{} KiB", n >> 10)
    }
}

#[cfg(test)]
#[path = "checks_test.rs"]
mod tests;
