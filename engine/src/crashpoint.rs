//! Crash points for the tests of recovery: `SHARDLOG_FAILPOINT=<name>` in
//! the environment makes the process kill itself with SIGKILL where the
//! code calls [`crash_if`] with that name, so a test can stop the broker
//! at an exact step (say, between a segment's rewrite and its swap) and
//! check what a restart makes of the disk. Unset (always, outside tests),
//! a check is one load of a value read once.

use std::sync::OnceLock;

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var("SHARDLOG_FAILPOINT").ok())
        .as_deref()
}

/// SIGKILLs this process if the crash point `name` is armed.
pub fn crash_if(name: &str) {
    if armed() == Some(name) {
        tracing::warn!(failpoint = name, "failpoint reached: SIGKILL");
        // SAFETY: kill(2) of our own process; nothing to clean up, which is
        // the point.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

/// Whether the crash point `name` is armed.
pub fn is_armed(name: &str) -> bool {
    armed() == Some(name)
}
