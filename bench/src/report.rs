//! A run's results: what `result.json` holds, and the tables printed.

use serde::{Deserialize, Serialize};

use crate::histogram::{HistogramReport, Latency};
use crate::procfs::{Machine, ProcessUsage};
use crate::tally::{ConsumerTally, ProducerTally, Second, SeqSet};
use crate::workload::Workload;

/// `result.json`: one run per broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    pub tool: String,
    pub version: String,
    pub librdkafka: String,
    pub machine: Machine,
    /// Seconds since the Unix epoch when the first run started.
    pub started_unix: u64,
    pub workload: Workload,
    pub runs: Vec<RunResult>,
}

/// One workload against one broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub broker: String,
    pub bootstrap: String,
    pub driver: String,
    /// Seeds the run's payloads and keys.
    pub seed: u64,
    pub produce: ProduceResult,
    pub consume: ConsumeResult,
    /// Send (intended time) to acknowledgement, messages due in the window.
    pub publish_latency: HistogramReport,
    /// Send (intended time) to consumption, messages due in the window.
    pub end_to_end_latency: HistogramReport,
    /// Messages and bytes per second of the run (warm-up included).
    pub seconds: Vec<Second>,
    pub broker_process: Option<ProcessUsage>,
    pub bench_process: Option<ProcessUsage>,
    /// Requests the clients sent during the run (warm-up included, as the
    /// broker's CPU seconds are).
    #[serde(default)]
    pub requests: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProduceResult {
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    /// Requests the clients retried (librdkafka statistics).
    pub retries: u64,
    /// Acknowledged messages due in the measured window, per second.
    pub messages_per_second: f64,
    pub megabytes_per_second: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsumeResult {
    /// Messages read, duplicates included.
    pub messages: u64,
    /// Distinct acknowledged messages read.
    pub unique: u64,
    /// Read more than once (by one consumer or several).
    pub duplicates: u64,
    /// Acknowledged but never read.
    pub missing: u64,
    /// Read, but their send was not acknowledged (failed or timed out).
    pub unacknowledged: u64,
    pub errors: u64,
    /// Messages due in the measured window, read per second of it.
    pub messages_per_second: f64,
    pub megabytes_per_second: f64,
    /// Backlog consumers found when they started, and how long they took
    /// to read that much.
    pub backlog_messages: u64,
    pub backlog_drained_seconds: Option<f64>,
}

/// What is left of a run's clients once they stopped.
#[derive(Debug)]
pub struct Tallies {
    pub producers: Vec<ProducerTally>,
    pub consumers: Vec<ConsumerTally>,
    pub window_seconds: f64,
    pub backlog_messages: u64,
    pub backlog_drained_seconds: Option<f64>,
}

impl Tallies {
    /// Merges the clients' counts.
    pub fn summarize(&self) -> (ProduceResult, ConsumeResult, Latency, Latency, Vec<Second>) {
        let mut publish = Latency::new();
        let mut e2e = Latency::new();
        let mut seconds: Vec<Second> = Vec::new();
        let mut add_seconds = |from: &[Second]| {
            if seconds.len() < from.len() {
                seconds.resize(from.len(), Second::default());
            }
            for (into, s) in seconds.iter_mut().zip(from) {
                into.produced += s.produced;
                into.produced_bytes += s.produced_bytes;
                into.consumed += s.consumed;
                into.consumed_bytes += s.consumed_bytes;
            }
        };
        let (mut sent, mut acked, mut errors, mut retries) = (0, 0, 0, 0);
        let (mut window_acked, mut window_bytes) = (0, 0);
        for p in &self.producers {
            publish.add(&p.publish);
            add_seconds(&p.seconds);
            sent += p.sent;
            acked += p.acked.len();
            errors += p.errors;
            retries += p.retries;
            window_acked += p.acked_in_window;
            window_bytes += p.bytes_in_window;
        }
        let window = self.window_seconds.max(1e-9);
        let produce = ProduceResult {
            sent,
            acked,
            errors,
            retries,
            messages_per_second: window_acked as f64 / window,
            megabytes_per_second: window_bytes as f64 / 1e6 / window,
        };
        let mut consume = ConsumeResult {
            messages: 0,
            unique: 0,
            duplicates: 0,
            missing: 0,
            unacknowledged: 0,
            errors: 0,
            messages_per_second: 0.0,
            megabytes_per_second: 0.0,
            backlog_messages: self.backlog_messages,
            backlog_drained_seconds: self.backlog_drained_seconds,
        };
        // Every producer's sequence numbers, over all consumers.
        let mut seen: Vec<SeqSet> = vec![SeqSet::default(); self.producers.len()];
        let mut window_consumed = 0;
        for c in &self.consumers {
            e2e.add(&c.e2e);
            add_seconds(&c.seconds);
            consume.messages += c.messages;
            consume.duplicates += c.duplicates;
            consume.errors += c.errors;
            consume.unacknowledged += c.foreign;
            window_consumed += c.consumed_in_window;
            for (&producer, set) in &c.seen {
                match seen.get_mut(producer as usize) {
                    Some(all) => {
                        consume.duplicates += all.overlap(set);
                        all.union_with(set);
                    }
                    None => consume.unacknowledged += set.len(),
                }
            }
        }
        for (p, read) in self.producers.iter().zip(&seen) {
            consume.unique += read.len() - read.minus(&p.acked);
            consume.unacknowledged += read.minus(&p.acked);
            consume.missing += p.acked.minus(read);
        }
        let mean_bytes = if acked == 0 {
            0.0
        } else {
            seconds.iter().map(|s| s.produced_bytes).sum::<u64>() as f64 / acked as f64
        };
        consume.messages_per_second = window_consumed as f64 / window;
        consume.megabytes_per_second = window_consumed as f64 * mean_bytes / 1e6 / window;
        (produce, consume, publish, e2e, seconds)
    }
}

/// `12.3 ms`, `456 µs`: latencies as people read them.
fn micros(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else if us >= 1000 {
        format!("{:.2} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

type Cell = Option<(String, f64)>;
type Metric = Box<dyn Fn(&RunResult) -> Cell>;

fn metric(name: &str, f: impl Fn(&RunResult) -> Cell + 'static) -> (String, Metric) {
    (name.to_string(), Box::new(f))
}

/// Throughput, then latency percentiles and maxima.
fn speed_metrics() -> Vec<(String, Metric)> {
    let mut metrics = vec![
        metric("produce msgs/s", |r| {
            let v = r.produce.messages_per_second;
            Some((format!("{v:.0}"), v))
        }),
        metric("produce MB/s", |r| {
            let v = r.produce.megabytes_per_second;
            Some((format!("{v:.1}"), v))
        }),
        metric("consume msgs/s", |r| {
            let v = r.consume.messages_per_second;
            Some((format!("{v:.0}"), v))
        }),
    ];
    for (label, e2e) in [("publish", false), ("end-to-end", true)] {
        let pick = move |r: &RunResult| -> HistogramReport {
            if e2e {
                r.end_to_end_latency.clone()
            } else {
                r.publish_latency.clone()
            }
        };
        for p in crate::histogram::PERCENTILES {
            metrics.push(metric(&format!("{label} p{p}"), move |r| {
                let h = pick(r);
                (h.count > 0).then(|| (micros(h.at(p)), h.at(p) as f64))
            }));
        }
        metrics.push(metric(&format!("{label} max"), move |r| {
            let h = pick(r);
            (h.count > 0).then(|| (micros(h.max_us), h.max_us as f64))
        }));
    }
    metrics
}

/// A total of the broker's over the requests the clients sent, shown with
/// `decimals`; none without either.
fn per_request(
    r: &RunResult,
    total: impl Fn(&ProcessUsage) -> Option<f64>,
    decimals: usize,
) -> Cell {
    let total = total(r.broker_process.as_ref()?)?;
    let n = r.requests.filter(|&n| n > 0)?;
    let v = total / n as f64;
    Some((format!("{v:.decimals$}"), v))
}

/// Backlog, the broker's resources, and what went wrong.
fn cost_metrics() -> Vec<(String, Metric)> {
    let mut metrics = vec![
        metric("backlog drained", |r| {
            r.consume
                .backlog_drained_seconds
                .map(|s| (format!("{s:.1} s"), s))
        }),
        metric("broker CPU s", |r| {
            r.broker_process
                .as_ref()
                .map(|u| (format!("{:.1}", u.cpu_seconds), u.cpu_seconds))
        }),
        metric("broker CPU µs/msg", |r| {
            let cpu = r.broker_process.as_ref()?.cpu_seconds;
            (r.produce.acked > 0).then(|| {
                let v = cpu * 1e6 / r.produce.acked as f64;
                (format!("{v:.1}"), v)
            })
        }),
        metric("requests", |r| {
            r.requests.map(|n| (n.to_string(), n as f64))
        }),
        metric("broker CPU µs/request", |r| {
            per_request(r, |u| Some(u.cpu_seconds * 1e6), 1)
        }),
        metric("broker syscalls/request", |r| {
            per_request(r, |u| u.syscalls.map(|n| n as f64), 1)
        }),
        metric("broker ctx switches/request", |r| {
            per_request(r, |u| u.context_switches.map(|n| n as f64), 2)
        }),
        metric("broker peak RSS MiB", |r| {
            r.broker_process.as_ref().map(|u| {
                let mib = u.peak_rss_bytes as f64 / (1 << 20) as f64;
                (format!("{mib:.0}"), mib)
            })
        }),
    ];
    type Count = fn(&RunResult) -> u64;
    let counts: [(&str, Count); 4] = [
        ("errors", |r| r.produce.errors + r.consume.errors),
        ("retries", |r| r.produce.retries),
        ("missing", |r| r.consume.missing),
        ("duplicates", |r| r.consume.duplicates),
    ];
    for (name, count) in counts {
        metrics.push(metric(name, move |r| {
            let v = count(r);
            Some((v.to_string(), v as f64))
        }));
    }
    metrics
}

/// The rows of the side-by-side table: a name, and each run's value
/// (shown, and as a number for the ratio). Rows no run has are left out.
fn rows(runs: &[RunResult]) -> Vec<(String, Vec<(String, f64)>)> {
    speed_metrics()
        .into_iter()
        .chain(cost_metrics())
        .filter_map(|(name, metric)| {
            let values: Vec<Cell> = runs.iter().map(&metric).collect();
            values.iter().any(Option::is_some).then(|| {
                let cells = values
                    .into_iter()
                    .map(|v| v.unwrap_or_else(|| ("-".into(), f64::NAN)))
                    .collect();
                (name, cells)
            })
        })
        .collect()
}

/// The side-by-side table; with several runs each value after the first
/// also shows its ratio to the first's.
pub fn table(runs: &[RunResult]) -> String {
    let mut header = vec!["".to_string()];
    header.extend(runs.iter().map(|r| r.broker.clone()));
    let mut lines = vec![header];
    for (name, cells) in rows(runs) {
        let first = cells.first().map_or(f64::NAN, |c| c.1);
        let mut line = vec![name];
        for (i, (shown, value)) in cells.into_iter().enumerate() {
            let ratio = value / first;
            if i > 0 && ratio.is_finite() {
                line.push(format!("{shown} ({ratio:.2}x)"));
            } else {
                line.push(shown);
            }
        }
        lines.push(line);
    }
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .filter_map(|l| l.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        for (c, cell) in line.iter().enumerate() {
            let width = widths.get(c).copied().unwrap_or(0);
            let pad = width.saturating_sub(cell.chars().count());
            if c == 0 {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str("  ");
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(broker: &str, rate: f64, p50_us: u64) -> RunResult {
        let mut publish = Latency::new();
        for _ in 0..100 {
            publish.record(std::time::Duration::from_micros(p50_us));
        }
        RunResult {
            broker: broker.into(),
            bootstrap: "127.0.0.1:9092".into(),
            driver: "librdkafka".into(),
            seed: 1,
            produce: ProduceResult {
                sent: 10,
                acked: 10,
                errors: 0,
                retries: 0,
                messages_per_second: rate,
                megabytes_per_second: rate / 1000.0,
            },
            consume: ConsumeResult {
                messages: 10,
                unique: 10,
                duplicates: 0,
                missing: 0,
                unacknowledged: 0,
                errors: 0,
                messages_per_second: rate,
                megabytes_per_second: rate / 1000.0,
                backlog_messages: 0,
                backlog_drained_seconds: None,
            },
            publish_latency: publish.report(),
            end_to_end_latency: Latency::new().report(),
            seconds: Vec::new(),
            broker_process: None,
            requests: None,
            bench_process: None,
        }
    }

    #[test]
    fn the_table_shows_ratios_against_the_first_broker() {
        let table = table(&[run("shardlog", 1000.0, 500), run("other", 500.0, 2000)]);
        eprintln!("{table}");
        let line = |name: &str| {
            table
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in\n{table}"))
                .to_string()
        };
        assert!(line("produce msgs/s").contains("500 (0.50x)"));
        assert!(line("publish p50 ").contains("500 µs"));
        assert!(line("publish p50 ").contains("2.00 ms (4.00x)"));
        // Rows nobody measured are left out.
        assert!(!table.contains("end-to-end"), "{table}");
        assert!(!table.contains("broker CPU"), "{table}");
    }

    #[test]
    fn summaries_count_each_message_once_across_consumers() {
        let mut producer = ProducerTally::default();
        for s in 0..10 {
            producer.acked.insert(s);
        }
        producer.sent = 11;
        producer.errors = 1;
        let mut a = ConsumerTally::default();
        let mut b = ConsumerTally::default();
        for s in 0..6 {
            a.seen.entry(0).or_default().insert(s);
        }
        // 5 read twice (a rebalance), 6..9 by b, 10 was never acked, 9 lost.
        for s in [5, 6, 7, 8, 10] {
            b.seen.entry(0).or_default().insert(s);
        }
        a.messages = 6;
        b.messages = 5;
        let tallies = Tallies {
            producers: vec![producer],
            consumers: vec![a, b],
            window_seconds: 1.0,
            backlog_messages: 0,
            backlog_drained_seconds: None,
        };
        let (produce, consume, ..) = tallies.summarize();
        assert_eq!((produce.sent, produce.acked, produce.errors), (11, 10, 1));
        assert_eq!(consume.messages, 11);
        assert_eq!(consume.unique, 9);
        assert_eq!(consume.duplicates, 1);
        assert_eq!(consume.missing, 1);
        assert_eq!(consume.unacknowledged, 1);
    }
}
