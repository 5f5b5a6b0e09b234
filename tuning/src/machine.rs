//! What the checks read of the machine, behind a trait.

use std::path::Path;

/// A process limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `ulimit -l`: memory io_uring may register (bytes).
    Memlock,
    /// `ulimit -n`: open files.
    OpenFiles,
}

/// A process limit's soft value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Unlimited,
    At(u64),
    Unknown,
}

/// The machine as the checks see it.
pub trait Machine {
    /// A small text file's contents (/proc, /sys), trimmed; `None` if it
    /// cannot be read.
    fn read(&self, path: &str) -> Option<String>;
    /// Paths matching a glob-free pattern's directory listing: the entries
    /// of `dir` whose names start with `prefix`, as full paths, sorted.
    fn list(&self, dir: &str, prefix: &str) -> Vec<String>;
    /// The soft limit.
    fn rlimit(&self, resource: Resource) -> Limit;
    fn is_root(&self) -> bool;
    /// Sets up an io_uring of one entry: `Err(errno)` if the kernel refuses.
    fn io_uring(&self) -> Result<(), i32>;
    /// The device number (major, minor) of the filesystem holding `path`.
    fn device_of(&self, path: &Path) -> Option<(u32, u32)>;
    /// Whether a process with this command name runs.
    fn runs(&self, comm: &str) -> bool;
}

/// This machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealMachine;

impl Machine for RealMachine {
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn list(&self, dir: &str, prefix: &str) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                    .map(|e| e.path().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    fn rlimit(&self, resource: Resource) -> Limit {
        let which = match resource {
            Resource::Memlock => libc::RLIMIT_MEMLOCK,
            Resource::OpenFiles => libc::RLIMIT_NOFILE,
        };
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the rlimit we pass, nothing else.
        if unsafe { libc::getrlimit(which, &mut limit) } != 0 {
            Limit::Unknown
        } else {
            // serve raises its soft limit on open files to the hard one.
            let value = match resource {
                Resource::OpenFiles => limit.rlim_max,
                Resource::Memlock => limit.rlim_cur,
            };
            if value == libc::RLIM_INFINITY {
                Limit::Unlimited
            } else {
                Limit::At(value)
            }
        }
    }

    fn is_root(&self) -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    fn io_uring(&self) -> Result<(), i32> {
        // struct io_uring_params: 120 bytes, zeroed asks for defaults.
        let mut params = [0u8; 120];
        // SAFETY: io_uring_setup(2) reads and writes the params we pass
        // (the size the kernel expects); the ring fd it returns is closed.
        let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        // SAFETY: closing the fd io_uring_setup just gave us.
        unsafe { libc::close(i32::try_from(fd).unwrap_or(-1)) };
        Ok(())
    }

    fn device_of(&self, path: &Path) -> Option<(u32, u32)> {
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata(path).ok()?.dev();
        Some((libc::major(dev), libc::minor(dev)))
    }

    fn runs(&self, comm: &str) -> bool {
        self.list("/proc", "")
            .iter()
            .filter(|p| {
                p.rsplit('/')
                    .next()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            })
            .any(|p| self.read(&format!("{p}/comm")).as_deref() == Some(comm))
    }
}
