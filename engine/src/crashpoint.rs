//! Crash points for the tests of recovery: `SHARDLOG_FAILPOINT=<name>` in
//! the environment makes the process kill itself with SIGKILL where the
//! code calls [`crash_if`] with that name, so a test can stop the broker
//! at an exact step (say, between a segment's rewrite and its swap) and
//! check what a restart makes of the disk. Unset (always, outside tests),
//! a check is one load of a value read once. In-process tests set a
//! [`set_hook`] instead: it is told each crash point the thread passes
//! (say, to copy a directory as a crash there would leave it).

use std::cell::RefCell;
use std::sync::OnceLock;

type Hook = Box<dyn FnMut(&str)>;

thread_local! {
    static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
}

/// Calls `hook` with the name of each crash point this thread passes,
/// until [`clear_hook`] (for tests).
pub fn set_hook(hook: impl FnMut(&str) + 'static) {
    HOOK.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
}

/// Removes the hook [`set_hook`] set.
pub fn clear_hook() {
    HOOK.with(|h| h.borrow_mut().take());
}

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var("SHARDLOG_FAILPOINT").ok())
        .as_deref()
}

/// SIGKILLs this process if the crash point `name` is armed.
pub fn crash_if(name: &str) {
    HOOK.with(|h| {
        if let Some(hook) = h.borrow_mut().as_mut() {
            hook(name);
        }
    });
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
