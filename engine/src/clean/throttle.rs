//! The cleaner's I/O limit (Kafka's `log.cleaner.io.max.bytes.per.second`,
//! unlimited by default), per shard: a pass counts the bytes it reads and
//! writes and, when it runs ahead of the rate, sleeps until it is back on
//! it. Measured over windows of a second, so a pass that waited (for the
//! disk, for requests) does not then burst to catch up for long.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

thread_local! {
    static LIMIT: Cell<Option<u64>> = const { Cell::new(None) };
    static WINDOW: RefCell<Option<(Instant, u64)>> = const { RefCell::new(None) };
}

const WINDOW_LENGTH: Duration = Duration::from_secs(1);

/// Sets this shard's cleaner I/O limit in bytes per second (`None`:
/// unlimited).
pub fn set_io_limit(bytes_per_second: Option<u64>) {
    LIMIT.with(|limit| limit.set(bytes_per_second.filter(|&b| b > 0)));
}

/// How long to sleep after `bytes` were done `elapsed` into a window, to
/// keep to `rate` bytes per second.
fn pause(bytes: u64, elapsed: Duration, rate: u64) -> Duration {
    let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
    due.saturating_sub(elapsed)
}

/// Counts `bytes` of the cleaner's I/O on this shard and sleeps if it ran
/// ahead of the limit.
pub(crate) async fn throttle(bytes: u64) {
    let Some(rate) = LIMIT.with(Cell::get) else {
        return;
    };
    let now = Instant::now();
    let wait = WINDOW.with(|window| {
        let mut window = window.borrow_mut();
        let (start, done) = window.get_or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW_LENGTH {
            (*start, *done) = (now, 0);
        }
        *done += bytes;
        pause(*done, now.duration_since(*start), rate)
    });
    if !wait.is_zero() {
        crate::io::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_ahead_of_the_rate_sleeps_until_it_is_back_on_it() {
        let mb = 1_000_000;
        // 5 MB at 10 MB/s is due at 0.5 s: 0.2 s in, sleep 0.3 s.
        assert_eq!(
            pause(5 * mb, Duration::from_millis(200), 10 * mb),
            Duration::from_millis(300)
        );
        assert_eq!(
            pause(mb, Duration::from_millis(200), 10 * mb),
            Duration::ZERO
        );
    }
}
