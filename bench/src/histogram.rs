//! Latency histograms: microsecond resolution, 1 µs to 1 hour, 3
//! significant digits (HdrHistogram).

use std::time::Duration;

use hdrhistogram::Histogram;

/// The percentiles every report shows.
pub const PERCENTILES: [f64; 5] = [50.0, 90.0, 99.0, 99.9, 99.99];

#[derive(Debug, Clone)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency::new()
    }
}

impl Latency {
    pub fn new() -> Latency {
        // Constant, valid bounds: construction cannot fail.
        let histogram =
            Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        Latency { histogram }
    }

    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.histogram.saturating_record(us);
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn percentile_us(&self, percentile: f64) -> u64 {
        self.histogram.value_at_percentile(percentile)
    }

    pub fn max_us(&self) -> u64 {
        self.histogram.max()
    }

    /// `p50 … max` in microseconds, one line.
    pub fn summary(&self) -> String {
        let mut line = String::new();
        for p in PERCENTILES {
            line.push_str(&format!("p{p}={}µs ", self.percentile_us(p)));
        }
        line.push_str(&format!("max={}µs", self.max_us()));
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_microseconds() {
        let mut h = Latency::new();
        for us in 1..=1000 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.percentile_us(50.0), 500);
        assert_eq!(h.max_us(), 1000);
        assert!(h.summary().starts_with("p50=500µs"));
    }
}
