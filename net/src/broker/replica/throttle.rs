//! The pace of catch-up: records a leader sends to a follower outside the
//! ISR (new, restarted, far behind: it reads the leader's log from disk)
//! take a shard's share of `leader-replication-throttled-rate`, Kafka's
//! `leader.replication.throttled.rate` applied to every follower out of
//! sync, so a catching-up replica cannot take the disk and network from
//! the producers and the in-sync followers (never throttled).

use std::cell::Cell;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(super) struct Throttle {
    /// This shard's share, in bytes per second; 0: no limit.
    bytes_per_second: Cell<u64>,
    /// When the sends so far have used the rate up to.
    next_free: Cell<Option<Instant>>,
}

impl Throttle {
    pub(super) fn set_rate(&self, bytes_per_second: u64) {
        self.bytes_per_second.set(bytes_per_second);
    }

    /// The most a throttled push carries: a tenth of a second at the rate
    /// (at least 16 KiB, at most `max`), so sends are paced smoothly and a
    /// push sent again (lost, or answered late) costs little of the rate.
    pub(super) fn push_bytes(&self, max: usize) -> usize {
        match self.bytes_per_second.get() {
            0 => max,
            rate => usize::try_from(rate / 10)
                .unwrap_or(max)
                .clamp(16 << 10, max),
        }
    }

    /// When `bytes` may be sent, asked at `now`: once the sends reserved
    /// before have had their time at the rate. Reserves theirs.
    fn reserve(&self, bytes: usize, now: Instant) -> Instant {
        let rate = self.bytes_per_second.get();
        if rate == 0 {
            return now;
        }
        let at = self.next_free.get().map_or(now, |free| free.max(now));
        let cost = Duration::from_secs_f64(bytes as f64 / rate as f64);
        self.next_free.set(Some(at + cost));
        at
    }

    /// Waits until `bytes` may be sent.
    pub(super) async fn wait(&self, bytes: usize) {
        let now = Instant::now();
        let at = self.reserve(bytes, now);
        if at > now {
            engine::rt::sleep(at - now).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_are_spaced_at_the_rate_and_an_idle_throttle_owes_nothing() {
        let throttle = Throttle::default();
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // No limit: every send at once.
        assert_eq!(throttle.reserve(1 << 30, t0), t0);
        throttle.set_rate(1_000_000);
        // 100 KB at 1 MB/s: 100 ms each, the first at once.
        assert_eq!(throttle.reserve(100_000, t0), t0);
        assert_eq!(throttle.reserve(100_000, t0), ms(100));
        assert_eq!(throttle.reserve(100_000, ms(50)), ms(200));
        // Idle past what was reserved: no debt, no credit either.
        assert_eq!(throttle.reserve(100_000, ms(1_000)), ms(1_000));
        assert_eq!(throttle.reserve(1, ms(1_000)), ms(1_100));
        assert_eq!(throttle.push_bytes(1 << 20), 100_000);
        throttle.set_rate(1_000);
        assert_eq!(throttle.push_bytes(1 << 20), 16 << 10);
        throttle.set_rate(1 << 30);
        assert_eq!(throttle.push_bytes(1 << 20), 1 << 20);
    }
}
