//! Latency statistics a shard keeps in its own memory (thread-local: no
//! lock, no atomic): the histogram type the broker's metrics use, and the
//! fdatasync latency of this shard's logs (flusher and group commits).

use std::cell::RefCell;
use std::time::Duration;

/// Latency buckets' upper bounds, in seconds (100 µs to 10 s).
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A latency histogram: counts per bucket (not cumulative), the rest past
/// the last bound, their sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    over: u64,
    pub sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        self.sum += seconds;
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .and_then(|i| self.counts.get_mut(i));
        match bucket {
            Some(count) => *count += 1,
            None => self.over += 1,
        }
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.over += other.over;
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.over
    }

    /// (upper bound, count) pairs, +Inf last; the encoder adds them up.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        LATENCY_BUCKETS
            .iter()
            .copied()
            .zip(self.counts)
            .chain(std::iter::once((f64::INFINITY, self.over)))
            .collect()
    }
}

thread_local! {
    static SYNC: RefCell<Histogram> = RefCell::new(Histogram::default());
    static SEGMENT_READ_BYTES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// This shard read `bytes` of a segment file.
pub(crate) fn record_segment_read(bytes: usize) {
    SEGMENT_READ_BYTES.set(SEGMENT_READ_BYTES.get() + bytes as u64);
}

/// The bytes this shard read from segment files so far (fetches served
/// from the disk, timestamp lookups, recovery, compaction).
pub fn segment_read_bytes() -> u64 {
    SEGMENT_READ_BYTES.get()
}

/// One fdatasync of this shard took `took`.
pub(crate) fn record_sync(took: Duration) {
    SYNC.with_borrow_mut(|h| h.observe(took.as_secs_f64()));
}

/// This shard's fdatasync latencies so far.
pub fn sync_latency() -> Histogram {
    SYNC.with_borrow(Clone::clone)
}
