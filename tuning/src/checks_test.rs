//! Each check's verdicts from exact machine contents.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;

/// A machine made of the files, limits and answers a test gives it.
struct Fake {
    files: BTreeMap<String, String>,
    memlock: Limit,
    open_files: Limit,
    root: bool,
    uring: Result<(), i32>,
    device: Option<(u32, u32)>,
    irqbalance: bool,
}

impl Fake {
    /// A well-set machine: every check OK.
    fn good() -> Fake {
        let files = [
            (
                "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
                "performance",
            ),
            (
                "/sys/devices/system/cpu/cpu1/cpufreq/scaling_governor",
                "performance",
            ),
            (
                "/sys/kernel/mm/transparent_hugepage/enabled",
                "always [madvise] never",
            ),
            (
                "/sys/kernel/mm/transparent_hugepage/defrag",
                "always defer defer+madvise [madvise] never",
            ),
            ("/sys/dev/block/259:1/partition", "1"),
            (
                "/sys/dev/block/259:1/../queue/scheduler",
                "[none] mq-deadline",
            ),
            ("/sys/dev/block/259:1/../queue/rotational", "0"),
            ("/sys/dev/block/259:1/../queue/write_cache", "write back"),
            (
                "/sys/dev/block/259:1/../uevent",
                "MAJOR=259\nMINOR=0\nDEVNAME=nvme0n1",
            ),
            (
                "/proc/self/mountinfo",
                "22 1 259:1 / / rw,noatime shared:1 - xfs /dev/nvme0n1p1 rw,attr2\n\
                 25 22 0:21 / /proc rw,nosuid - proc proc rw",
            ),
            ("/proc/sys/vm/swappiness", "1"),
        ];
        Fake {
            files: files
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            memlock: Limit::Unlimited,
            open_files: Limit::At(1_048_576),
            root: false,
            uring: Ok(()),
            device: Some((259, 1)),
            irqbalance: false,
        }
    }

    fn set(mut self, path: &str, value: &str) -> Fake {
        self.files.insert(path.to_string(), value.to_string());
        self
    }
}

impl Machine for Fake {
    fn read(&self, path: &str) -> Option<String> {
        self.files.get(path).cloned()
    }
    fn list(&self, dir: &str, prefix: &str) -> Vec<String> {
        let start = format!("{dir}/{prefix}");
        let mut out: Vec<String> = self
            .files
            .keys()
            .filter(|k| k.starts_with(&start))
            .filter_map(|k| {
                let rest = &k[dir.len() + 1..];
                rest.split('/').next().map(|name| format!("{dir}/{name}"))
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
    fn rlimit(&self, resource: Resource) -> Limit {
        match resource {
            Resource::Memlock => self.memlock,
            Resource::OpenFiles => self.open_files,
        }
    }
    fn is_root(&self) -> bool {
        self.root
    }
    fn io_uring(&self) -> Result<(), i32> {
        self.uring
    }
    fn device_of(&self, _: &Path) -> Option<(u32, u32)> {
        self.device
    }
    fn runs(&self, comm: &str) -> bool {
        comm == "irqbalance" && self.irqbalance
    }
}

fn verdict(machine: &Fake, name: &str) -> Finding {
    check(machine, Path::new("/"), 2)
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no check {name}"))
}

#[test]
fn a_well_set_machine_is_ok_everywhere() {
    let findings = check(&Fake::good(), Path::new("/"), 2);
    let names: Vec<&str> = findings.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "io_uring",
            "memlock",
            "open files",
            "cpu governor",
            "transparent hugepages",
            "io scheduler",
            "write cache",
            "filesystem",
            "swappiness",
            "irq balancing"
        ]
    );
    for f in &findings {
        assert_eq!(f.status, Status::Ok, "{f:?}");
        assert!(f.apply.is_empty(), "{f:?}");
    }
    assert_eq!(
        verdict(&Fake::good(), "io scheduler").found,
        "nvme0n1: none"
    );
    assert_eq!(
        verdict(&Fake::good(), "filesystem").found,
        "xfs on / (rw,noatime)"
    );
}

#[test]
fn io_uring_refusals_name_their_cause() {
    let mut m = Fake::good();
    m.uring = Err(libc::ENOSYS);
    assert_eq!(verdict(&m, "io_uring").status, Status::Fail);
    m.uring = Err(libc::EPERM);
    let seccomp = verdict(&m, "io_uring");
    assert_eq!(seccomp.status, Status::Fail);
    assert!(seccomp.fix.contains("seccomp"), "{seccomp:?}");
    let m = Fake {
        uring: Err(libc::EPERM),
        ..Fake::good()
    }
    .set("/proc/sys/kernel/io_uring_disabled", "2");
    let sysctl = verdict(&m, "io_uring");
    assert_eq!(sysctl.status, Status::Fail);
    assert_eq!(sysctl.apply[0].path, "/proc/sys/kernel/io_uring_disabled");
}

#[test]
fn limits_are_judged_against_what_the_shards_need() {
    let limit = |memlock, open_files| Fake {
        memlock,
        open_files,
        ..Fake::good()
    };
    let at = |m: &Fake| {
        (
            verdict(m, "memlock").status,
            verdict(m, "open files").status,
        )
    };
    assert_eq!(
        at(&limit(Limit::At(256 << 20), Limit::At(100_000))),
        (Status::Ok, Status::Ok)
    );
    assert_eq!(
        at(&limit(Limit::At(8 << 20), Limit::At(65_536))),
        (Status::Warn, Status::Warn)
    );
    assert_eq!(
        at(&limit(Limit::At(64 << 10), Limit::At(1_024))),
        (Status::Fail, Status::Fail)
    );
    let root = Fake {
        root: true,
        ..limit(Limit::At(64 << 10), Limit::Unlimited)
    };
    assert_eq!(at(&root), (Status::Ok, Status::Ok));
    // Limits are told, never applied.
    assert!(
        verdict(&limit(Limit::At(64 << 10), Limit::At(1_024)), "memlock")
            .apply
            .is_empty()
    );
}

#[test]
fn kernel_settings_that_add_latency_are_applied() {
    let m = Fake::good()
        .set(
            "/sys/devices/system/cpu/cpu1/cpufreq/scaling_governor",
            "powersave",
        )
        .set(
            "/sys/kernel/mm/transparent_hugepage/enabled",
            "[always] madvise never",
        )
        .set(
            "/sys/dev/block/259:1/../queue/scheduler",
            "mq-deadline [bfq] none",
        )
        .set("/proc/sys/vm/swappiness", "60");
    let governor = verdict(&m, "cpu governor");
    assert_eq!(governor.status, Status::Warn);
    assert_eq!(
        governor.apply,
        vec![Write {
            path: "/sys/devices/system/cpu/cpu1/cpufreq/scaling_governor".into(),
            value: "performance".into()
        }]
    );
    let thp = verdict(&m, "transparent hugepages");
    assert_eq!((thp.status, thp.apply.len()), (Status::Warn, 1));
    assert_eq!(verdict(&m, "io scheduler").apply[0].value, "none");
    assert_eq!(verdict(&m, "swappiness").apply[0].value, "1");
    let (writes, failed) = crate::apply(&check(&m, Path::new("/"), 2), true);
    assert_eq!(writes.len(), 4, "{writes:?}");
    assert!(failed.is_empty());
}

#[test]
fn filesystems_and_devices_that_break_durability_fail() {
    let mount = |line: &str| Fake::good().set("/proc/self/mountinfo", line);
    let status = |m: &Fake| verdict(m, "filesystem").status;
    assert_eq!(
        status(&mount("22 1 259:1 / / rw,relatime - ext4 /dev/x rw")),
        Status::Warn
    );
    assert_eq!(
        status(&mount("22 1 259:1 / / rw,noatime - ext4 /dev/x rw")),
        Status::Ok
    );
    assert_eq!(
        status(&mount(
            "22 1 259:1 / / rw,noatime - ext4 /dev/x rw,nobarrier"
        )),
        Status::Fail
    );
    assert_eq!(
        status(&mount("22 1 259:1 / / rw,noatime - tmpfs tmpfs rw")),
        Status::Fail
    );
    assert_eq!(
        status(&mount("22 1 259:1 / / rw,noatime - btrfs /dev/x rw")),
        Status::Warn
    );
    let spinning = Fake::good().set("/sys/dev/block/259:1/../queue/rotational", "1");
    assert_eq!(verdict(&spinning, "io scheduler").status, Status::Warn);
    let irq = Fake {
        irqbalance: true,
        ..Fake::good()
    };
    assert_eq!(verdict(&irq, "irq balancing").status, Status::Warn);
}
