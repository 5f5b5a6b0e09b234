//! Crash points for the tests of recovery: `SHARDLOG_FAILPOINT=<name>` in
//! the environment makes the broker kill itself with SIGKILL where the
//! code calls [`crash_if`] with that name, so a test can stop it at an
//! exact step (say, between two transaction markers) and check what a
//! restart makes of the disk. Unset (always, outside tests), a check is
//! one load of a value read once.

use std::sync::OnceLock;

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var("SHARDLOG_FAILPOINT").ok())
        .as_deref()
}

/// SIGKILLs this process if the failpoint `name` is armed.
pub fn crash_if(name: &str) {
    if armed() == Some(name) {
        tracing::warn!(failpoint = name, "failpoint reached: SIGKILL");
        // SAFETY: kill(2) of our own process; nothing to clean up, which is
        // the point.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

/// Whether the failpoint `name` is armed.
pub fn is_armed(name: &str) -> bool {
    armed() == Some(name)
}

/// Whether this broker is cut off from its peers, for the tests of a
/// network partition: while the file named by `SHARDLOG_CUT_OFF_FILE`
/// exists, every frame to or from another broker (quorum, replication,
/// broker-to-broker Kafka requests) is dropped, as a network that loses
/// everything would; connections stay up. A thread looks for the file
/// every 20 ms; unset, a check is one load.
pub fn cut_off() -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    static CUT: AtomicBool = AtomicBool::new(false);
    static WATCHER: OnceLock<()> = OnceLock::new();
    WATCHER.get_or_init(|| {
        let Some(path) = std::env::var_os("SHARDLOG_CUT_OFF_FILE") else {
            return;
        };
        let path = std::path::PathBuf::from(path);
        let spawned = std::thread::Builder::new()
            .name("cut-off-watch".into())
            .spawn(move || {
                loop {
                    let cut = path.exists();
                    if CUT.swap(cut, Ordering::Relaxed) != cut {
                        tracing::warn!(cut, "failpoint: cut off from the other brokers");
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "failpoint: cannot watch the cut-off file");
        }
    });
    CUT.load(Ordering::Relaxed)
}
