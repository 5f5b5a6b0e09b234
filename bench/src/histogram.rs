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

    /// A histogram back from its report (the JSON form).
    pub fn from_report(report: &HistogramReport) -> Latency {
        let mut latency = Latency::new();
        for &(us, count) in &report.buckets {
            let _ = latency.histogram.record_n(us.max(1), count);
        }
        latency
    }

    pub fn add(&mut self, other: &Latency) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    /// The whole distribution, for JSON: the percentiles reports show, and
    /// every recorded value with its count.
    pub fn report(&self) -> HistogramReport {
        HistogramReport {
            count: self.count(),
            min_us: self.histogram.min(),
            mean_us: self.histogram.mean(),
            max_us: self.max_us(),
            percentiles_us: PERCENTILES
                .iter()
                .map(|&p| (p, self.percentile_us(p)))
                .collect(),
            buckets: self
                .histogram
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        }
    }

    /// Points of the percentile curve: (percentile, µs), from p0 to the
    /// highest percentile this many samples can tell.
    pub fn curve(&self) -> Vec<(f64, u64)> {
        let count = self.count();
        if count == 0 {
            return Vec::new();
        }
        // 1 / (1 - q) from 1 to `count`, 20 steps per decade.
        let top = (count as f64).log10();
        let steps = (top * 20.0).ceil().max(1.0) as usize;
        (0..=steps)
            .map(|i| {
                let q = 1.0 - 10f64.powf(-(i as f64 / 20.0).min(top));
                (q * 100.0, self.histogram.value_at_quantile(q))
            })
            .collect()
    }
}

/// A histogram as `result.json` holds it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HistogramReport {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub max_us: u64,
    /// (percentile, µs) for p50, p90, p99, p99.9, p99.99.
    pub percentiles_us: Vec<(f64, u64)>,
    /// (µs, count) of every recorded value.
    pub buckets: Vec<(u64, u64)>,
}

impl HistogramReport {
    /// The value at a percentile reports show (0 when absent).
    pub fn at(&self, percentile: f64) -> u64 {
        self.percentiles_us
            .iter()
            .find(|(p, _)| (*p - percentile).abs() < 1e-9)
            .map_or(0, |(_, v)| *v)
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
        let report = h.report();
        assert_eq!(
            (report.count, report.min_us, report.max_us),
            (1000, 1, 1000)
        );
        assert_eq!(report.at(99.0), 990);
        assert_eq!(report.buckets.iter().map(|b| b.1).sum::<u64>(), 1000);
        assert_eq!(Latency::from_report(&report).report(), report);
        let curve = h.curve();
        assert_eq!(curve.first(), Some(&(0.0, 1)));
        let last = curve.last().unwrap();
        assert!(last.0 > 99.89 && last.1 >= 999, "{last:?}");
    }
}
