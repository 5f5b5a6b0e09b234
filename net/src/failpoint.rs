//! Failpoints for the tests: crash points (`SHARDLOG_FAILPOINT=<name>`,
//! [`crash_if`], the engine's, which has its own in the log cleaner), and
//! a network cut off from the other brokers ([`cut_off`]).

use std::sync::OnceLock;

pub use engine::crashpoint::{crash_if, is_armed};

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
