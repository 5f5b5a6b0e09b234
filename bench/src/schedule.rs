//! The open-loop schedule: message `i` is due at `start + i / rate`,
//! whenever the previous one actually went out. Latency is measured from
//! the due time, so time a sender spends blocked on a slow broker counts
//! against the broker (coordinated-omission correction).

use std::time::{Duration, Instant};

/// How long past the end of a run a producer may still be sending what was
/// due before the end (every scheduled message is sent: dropping the ones
/// a slow broker delayed would hide the delay).
pub const BEHIND_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    /// Nanoseconds between sends; 0: unlimited (due as soon as possible).
    interval_ns: u64,
}

impl Schedule {
    pub fn new(start: Instant, rate: Option<u64>) -> Schedule {
        Schedule::at_rate(start, rate.map(|r| r as f64))
    }

    /// `rate` messages per second (fractional rates allowed); `None` or a
    /// rate of zero: unlimited.
    pub fn at_rate(start: Instant, rate: Option<f64>) -> Schedule {
        let interval_ns = rate
            .filter(|&r| r > 0.0 && r.is_finite())
            .map_or(0, |r| ((1e9 / r) as u64).max(1));
        Schedule { start, interval_ns }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// When message `i` is due; `None` when unlimited (due now).
    pub fn due(&self, i: u64) -> Option<Instant> {
        (self.interval_ns > 0)
            .then(|| self.start + Duration::from_nanos(i.saturating_mul(self.interval_ns)))
    }

    /// Nanoseconds since the start (delivery reports carry this).
    pub fn offset_ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn start(&self) -> Instant {
        self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Latency;

    #[test]
    fn due_times_follow_the_rate_whatever_the_sender_does() {
        let start = Instant::now();
        let schedule = Schedule::new(start, Some(1_000));
        assert_eq!(schedule.due(0), Some(start));
        assert_eq!(
            schedule.due(1500),
            Some(start + Duration::from_millis(1500))
        );
        assert_eq!(Schedule::new(start, None).due(7), None);
    }

    /// A 100 ms stall during a 1 ms schedule: a sender measuring from its
    /// actual send times sees one slow message; measured from due times,
    /// every message queued behind the stall is late, and p99.9 shows it.
    #[test]
    fn a_stall_shows_in_the_tail_when_measured_from_due_times() {
        let start = Instant::now();
        let schedule = Schedule::new(start, Some(1_000));
        let mut corrected = Latency::new();
        let mut naive = Latency::new();
        let service = Duration::from_micros(200);
        let mut free_at = start;
        for i in 0..10_000u64 {
            let due = schedule.due(i).unwrap();
            // The sender sends when due or when the last send returned.
            let sent = due.max(free_at);
            let stall = if i == 5_000 {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            };
            let acked = sent + service + stall;
            free_at = acked;
            corrected.record(acked - due);
            naive.record(acked - sent);
        }
        let p999 = |h: &Latency| h.percentile_us(99.9);
        assert!(p999(&naive) < 1_000, "naive p99.9 {} µs", p999(&naive));
        assert!(
            p999(&corrected) >= 50_000,
            "corrected p99.9 {} µs",
            p999(&corrected)
        );
    }
}
