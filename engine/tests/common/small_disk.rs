//! A small ext4 filesystem on a loop device for a test, unmounted when
//! dropped. Mounting needs root: CI runs as root; elsewhere `new` gives
//! `None` and the test says it skipped. Shared by the engine's tests and the
//! broker's (tests/common includes this file).

use std::path::PathBuf;
use std::process::Command;

pub struct SmallDisk {
    pub mount: PathBuf,
    _tmp: tempfile::TempDir,
}

impl SmallDisk {
    /// A filesystem of `mib` MiB, or `None` if it cannot be mounted here.
    pub fn new(mib: u32) -> Option<SmallDisk> {
        let tmp = tempfile::tempdir().ok()?;
        let image = tmp.path().join("disk.img");
        let mount = tmp.path().join("mnt");
        std::fs::create_dir(&mount).ok()?;
        let ok = |cmd: &mut Command| cmd.output().map(|o| o.status.success()).unwrap_or(false);
        let made = ok(Command::new("truncate")
            .args(["-s", &format!("{mib}M")])
            .arg(&image))
            && ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))
            && ok(Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(&mount));
        made.then_some(SmallDisk { mount, _tmp: tmp })
    }

    /// [`SmallDisk::new`], or `None` after saying the test skipped; in CI
    /// (which can mount) a failure to mount fails the test.
    pub fn or_skip(mib: u32) -> Option<SmallDisk> {
        let disk = SmallDisk::new(mib);
        if disk.is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must be able to mount a loop device (runs as root)"
            );
            eprintln!("skipped: mounting a loop device needs root");
        }
        disk
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}
