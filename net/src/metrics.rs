//! Prometheus metrics: each shard counts in thread-local state (no lock, no
//! atomic on the hot path); a scrape (`GET /metrics` on the HTTP listener)
//! gathers every shard's [`ShardMetrics`] over the mesh and encodes them
//! with the prometheus-client crate's text encoder.
//!
//! So far: Kafka requests per API and version, requests that could not be
//! answered per API, error codes in responses per API, version and error, request latency (read whole to response written) per
//! API, connections open and accepted per shard, bytes and records
//! produced and bytes fetched per topic, produce-to-durable and fdatasync
//! latency; the scrape adds partitions, their log sizes, under-replicated
//! partitions and consumer group lag; per shard, its busy time (running
//! tasks and driving io_uring) and tasks run, and its queues: Kafka
//! requests read and not yet answered, and requests from other shards
//! being served.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

pub use engine::stats::{Histogram, LATENCY_BUCKETS};

/// A per-topic counter family: name, help, and which count it shows.
type TopicFamily = (&'static str, &'static str, fn(&TopicCounts) -> u64);
/// A per-shard family: name, help, and which value it shows.
type ShardFamily<T> = (&'static str, &'static str, fn(&ShardMetrics) -> T);

/// Per-shard time counters (seconds).
const SHARD_SECONDS: [ShardFamily<f64>; 2] = [
    (
        "shardlog_shard_busy_seconds",
        "Time each shard's executor was busy: running tasks and driving io_uring",
        |m| m.executor.busy_time.as_secs_f64(),
    ),
    (
        "shardlog_shard_task_seconds",
        "Time each shard's executor ran tasks",
        |m| m.executor.tasks_time.as_secs_f64(),
    ),
];

/// Per-shard counters.
const SHARD_COUNTS: [ShardFamily<u64>; 9] = [
    (
        "shardlog_shard_tasks",
        "Tasks each shard's executor ran",
        |m| m.executor.tasks,
    ),
    (
        "shardlog_shard_index_loads",
        "Sealed segments' indexes the shard read from their files (cache misses)",
        |m| m.segment_cache.index_loads,
    ),
    (
        "shardlog_shard_segment_file_opens",
        "Sealed segment files the shard opened to read them (cache misses)",
        |m| m.segment_cache.file_opens,
    ),
    (
        "shardlog_shard_segment_file_reopens",
        "Segment files the shard closed to stay within open-segment-files-per-shard \
             and opened again when next used",
        |m| m.segment_cache.descriptor_reopens,
    ),
    (
        "shardlog_shard_segment_read_bytes",
        "Bytes the shard read from segment files: fetches served from the disk, \
             timestamp lookups, recovery, compaction",
        |m| m.segment_read_bytes,
    ),
    (
        "shardlog_shard_read_aheads",
        "Reads the shard started ahead of a reader that read on from the disk",
        |m| m.read_ahead.started,
    ),
    (
        "shardlog_shard_read_aheads_taken",
        "Reads ahead that the read they were for took (the rest were evicted \
             by read-ahead-bytes-per-shard, or their reader went elsewhere)",
        |m| m.read_ahead.taken,
    ),
    (
        "shardlog_shard_read_aheads_waited",
        "Reads ahead still being read when the read they were for took them",
        |m| m.read_ahead.waited,
    ),
    (
        "shardlog_shard_fetch_sessions_opened",
        "Fetch sessions (KIP-227) the shard opened",
        |m| m.fetch_sessions.1,
    ),
];

/// Per-shard gauges.
const SHARD_GAUGES: [ShardFamily<u64>; 7] = [
    (
        "shardlog_shard_requests_in_flight",
        "Kafka requests read whole and not yet answered, by shard",
        |m| m.requests_in_flight,
    ),
    (
        "shardlog_shard_mesh_in_progress",
        "Requests from other shards being served, by shard",
        |m| m.mesh_in_progress,
    ),
    (
        "shardlog_shard_tail_cache_bytes",
        "Bytes of recent batches the shard's tail caches hold",
        |m| m.tail_cache_bytes,
    ),
    (
        "shardlog_shard_read_ahead_bytes",
        "Bytes the shard read ahead and holds for their readers, at most \
             read-ahead-bytes-per-shard",
        |m| m.read_ahead.bytes as u64,
    ),
    (
        "shardlog_shard_fetch_sessions",
        "Fetch sessions (KIP-227) the shard holds, at most 1,000",
        |m| m.fetch_sessions.0,
    ),
    (
        "shardlog_shard_index_cache_bytes",
        "Bytes of sealed segments' indexes the shard holds in memory",
        |m| m.segment_cache.index_bytes as u64,
    ),
    (
        "shardlog_shard_segment_files_open",
        "Segment files (active and sealed) the shard holds open, at most \
             open-segment-files-per-shard",
        |m| m.segment_cache.descriptors as u64,
    ),
];

/// A topic's traffic on one shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicCounts {
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
}

/// `h` as a Prometheus histogram.
fn encode_histogram(
    h: &Histogram,
    mut encoder: prometheus_client::encoding::MetricEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        h.sum,
        h.count(),
        &h.buckets(),
        None,
    )
}

/// One shard's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardMetrics {
    pub shard: u32,
    /// Answered requests by (API key, version).
    pub requests: BTreeMap<(i16, i16), u64>,
    /// Requests that closed their connection unanswered (malformed, not
    /// served), by API key.
    pub failures: BTreeMap<i16, u64>,
    /// Error codes in responses, by (API key, version, error code).
    pub errors: BTreeMap<(i16, i16, i16), u64>,
    /// Read whole to response written, by API key.
    pub latency: BTreeMap<i16, Histogram>,
    pub connections_open: u64,
    pub connections_accepted: u64,
    /// Per topic: bytes and records produced, bytes fetched.
    pub topics: BTreeMap<String, TopicCounts>,
    /// A produce's wait from staged to durable (and in sync).
    pub produce_durable: Histogram,
    /// This shard's fdatasyncs.
    pub fdatasync: Histogram,
    /// Offsets committed by the groups this shard coordinates: (group,
    /// topic, partition, offset).
    pub committed: Vec<(String, String, i32, i64)>,
    /// The executor's work since the start.
    pub executor: engine::rt::ExecutorTotals,
    /// Kafka requests read whole and not yet answered.
    pub requests_in_flight: u64,
    /// Requests from other shards being served here.
    pub mesh_in_progress: u64,
    /// Sealed segments' indexes and files the shard holds.
    pub segment_cache: engine::SegmentCacheUsage,
    /// Bytes in the shard's tail caches.
    pub tail_cache_bytes: u64,
    /// Bytes the shard read from segment files.
    pub segment_read_bytes: u64,
    /// What the shard read ahead for readers behind the tail cache.
    pub read_ahead: engine::ReadAheadUsage,
    /// Fetch sessions (KIP-227) the shard holds, and opened since it
    /// started.
    pub fetch_sessions: (u64, u64),
}

/// A queue a [`Queued`] guard counts an entry of while it lives.
#[derive(Debug, Clone, Copy)]
pub enum Queue {
    /// A Kafka request read whole, until its answer is written.
    Requests,
    /// A request from another shard, until served.
    Mesh,
}

/// Counts one entry of its queue while it lives.
#[derive(Debug)]
pub struct Queued(Queue);

impl Queued {
    pub fn enter(queue: Queue) -> Queued {
        LOCAL.with_borrow_mut(|m| *Queued::count(m, queue) += 1);
        Queued(queue)
    }

    fn count(m: &mut ShardMetrics, queue: Queue) -> &mut u64 {
        match queue {
            Queue::Requests => &mut m.requests_in_flight,
            Queue::Mesh => &mut m.mesh_in_progress,
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        LOCAL.with_borrow_mut(|m| {
            let count = Queued::count(m, self.0);
            *count = count.saturating_sub(1);
        });
    }
}

thread_local! {
    static LOCAL: RefCell<ShardMetrics> = RefCell::new(ShardMetrics::default());
}

/// An answered request: its API, version and time from read to written.
pub fn record_request(api: ApiKey, version: i16, took: Duration) {
    LOCAL.with_borrow_mut(|m| {
        *m.requests.entry((api as i16, version)).or_default() += 1;
        m.latency
            .entry(api as i16)
            .or_default()
            .observe(took.as_secs_f64());
    });
}

/// Batches staged for `topic`: their bytes and records.
pub fn record_produced(topic: &str, bytes: usize, records: u64) {
    LOCAL.with_borrow_mut(|m| {
        with_topic(&mut m.topics, topic, |counts| {
            counts.bytes_in += bytes as u64;
            counts.records_in += records;
        });
    });
}

/// Record bytes a fetch returned for `topic`.
pub fn record_fetched(topic: &str, bytes: usize) {
    if bytes > 0 {
        LOCAL.with_borrow_mut(|m| {
            with_topic(&mut m.topics, topic, |counts| {
                counts.bytes_out += bytes as u64
            });
        });
    }
}

/// A produce's wait from staged to durable.
pub fn record_durable(took: Duration) {
    LOCAL.with_borrow_mut(|m| m.produce_durable.observe(took.as_secs_f64()));
}

/// Updates the topic's counts (added on first use: allocates only then).
fn with_topic(
    topics: &mut BTreeMap<String, TopicCounts>,
    topic: &str,
    f: impl FnOnce(&mut TopicCounts),
) {
    if let Some(counts) = topics.get_mut(topic) {
        f(counts);
        return;
    }
    let mut counts = TopicCounts::default();
    f(&mut counts);
    topics.insert(topic.to_string(), counts);
}

/// A request that closed its connection unanswered.
pub fn record_failure(api: ApiKey) {
    LOCAL.with_borrow_mut(|m| *m.failures.entry(api as i16).or_default() += 1);
}

/// An error code (not NONE) in a response to `api` at `version`.
pub fn record_error(api: ApiKey, version: i16, code: i16) {
    LOCAL.with_borrow_mut(|m| *m.errors.entry((api as i16, version, code)).or_default() += 1);
}

/// A Kafka connection opened; it counts as open until the guard drops.
pub fn connection_opened() -> ConnectionGuard {
    LOCAL.with_borrow_mut(|m| {
        m.connections_open += 1;
        m.connections_accepted += 1;
    });
    ConnectionGuard(())
}

/// Counts a connection as open while it lives.
#[derive(Debug)]
pub struct ConnectionGuard(());

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        LOCAL.with_borrow_mut(|m| m.connections_open = m.connections_open.saturating_sub(1));
    }
}

/// This shard's counts, labelled with its id.
pub fn local(shard: u32) -> ShardMetrics {
    let mut m = LOCAL.with_borrow(Clone::clone);
    m.shard = shard;
    m.fdatasync = engine::stats::sync_latency();
    m.executor = engine::rt::executor_totals();
    m.segment_cache = engine::segment_cache_usage();
    m.tail_cache_bytes = engine::tail_cache_shard_usage().0 as u64;
    m.segment_read_bytes = engine::stats::segment_read_bytes();
    m.read_ahead = engine::read_ahead_shard_usage();
    m
}

/// A partition's log, as the scrape reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSize {
    pub topic: String,
    pub partition: i32,
    pub bytes: u64,
}

/// Everything one scrape encodes.
#[derive(Debug, Default)]
pub struct Scrape {
    pub shards: Vec<ShardMetrics>,
    pub partitions: Vec<PartitionSize>,
    /// Partitions this broker leads with fewer in-sync replicas than
    /// replicas.
    pub under_replicated: u64,
    /// (group, topic, partition) -> the log end minus the committed offset.
    pub lag: BTreeMap<(String, String, i32), i64>,
}

/// Kafka's name of an error code (`NOT_LEADER_OR_FOLLOWER`).
pub fn error_name(code: i16) -> String {
    let Some(error) = kafka_protocol::error::ResponseError::try_from_code(code) else {
        return "NONE".to_string();
    };
    let camel = error.to_string();
    if camel.starts_with("Unknown error code") {
        return format!("ERROR_{code}");
    }
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|()| key.to_string(), |k| format!("{k:?}"))
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_requests(&mut encoder)?;
        self.encode_connections(&mut encoder)?;
        self.encode_shards(&mut encoder)?;
        self.encode_topics(&mut encoder)?;
        self.encode_partitions(&mut encoder)?;
        self.encode_groups(&mut encoder)
    }
}

impl Scrape {
    fn encode_requests(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut requests: BTreeMap<(i16, i16), u64> = BTreeMap::new();
        let mut failures: BTreeMap<i16, u64> = BTreeMap::new();
        let mut errors: BTreeMap<(i16, i16, i16), u64> = BTreeMap::new();
        let mut latency: BTreeMap<i16, Histogram> = BTreeMap::new();
        for shard in &self.shards {
            for (k, n) in &shard.requests {
                *requests.entry(*k).or_default() += n;
            }
            for (k, n) in &shard.failures {
                *failures.entry(*k).or_default() += n;
            }
            for (k, n) in &shard.errors {
                *errors.entry(*k).or_default() += n;
            }
            for (k, h) in &shard.latency {
                latency.entry(*k).or_default().merge(h);
            }
        }
        let mut family = encoder.encode_descriptor(
            "shardlog_requests",
            "Kafka requests answered, by API and version",
            None,
            MetricType::Counter,
        )?;
        for ((api, version), n) in &requests {
            let labels = [("api", api_name(*api)), ("version", version.to_string())];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "shardlog_request_failures",
            "Kafka requests that closed their connection unanswered (malformed, not served), by API",
            None,
            MetricType::Counter,
        )?;
        for (api, n) in &failures {
            let labels = [("api", api_name(*api))];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "shardlog_request_errors",
            "Error codes in Kafka responses (each topic's, partition's or member's), by API, version and error",
            None,
            MetricType::Counter,
        )?;
        for ((api, version, code), n) in &errors {
            let labels = [
                ("api", api_name(*api)),
                ("version", version.to_string()),
                ("error", error_name(*code)),
            ];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "shardlog_request_duration_seconds",
            "Kafka requests from read whole to response written, by API",
            None,
            MetricType::Histogram,
        )?;
        for (api, h) in &latency {
            let labels = [("api", api_name(*api))];
            encode_histogram(h, family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn encode_connections(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "shardlog_connections_open",
            "Kafka connections open, by shard",
            None,
            MetricType::Gauge,
        )?;
        for shard in &self.shards {
            let labels = [("shard", shard.shard.to_string())];
            ConstGauge::new(i64::try_from(shard.connections_open).unwrap_or(i64::MAX))
                .encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "shardlog_connections_accepted",
            "Kafka connections accepted, by shard",
            None,
            MetricType::Counter,
        )?;
        for shard in &self.shards {
            let labels = [("shard", shard.shard.to_string())];
            ConstCounter::new(shard.connections_accepted).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// Each of `families` as a counter, one sample per shard.
    fn encode_shard_counters<T>(
        &self,
        encoder: &mut DescriptorEncoder,
        families: &[ShardFamily<T>],
    ) -> Result<(), std::fmt::Error>
    where
        ConstCounter<T>: EncodeMetric,
    {
        for (name, help, pick) in families {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for shard in &self.shards {
                let labels = [("shard", shard.shard.to_string())];
                ConstCounter::new(pick(shard)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }

    fn encode_shards(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_shard_counters(encoder, &SHARD_SECONDS)?;
        self.encode_shard_counters(encoder, &SHARD_COUNTS)?;
        for (name, help, pick) in SHARD_GAUGES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for shard in &self.shards {
                let labels = [("shard", shard.shard.to_string())];
                ConstGauge::new(i64::try_from(pick(shard)).unwrap_or(i64::MAX))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }

    fn encode_topics(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut topics: BTreeMap<&str, TopicCounts> = BTreeMap::new();
        let mut durable = Histogram::default();
        for shard in &self.shards {
            for (topic, counts) in &shard.topics {
                let sum = topics.entry(topic).or_default();
                sum.bytes_in += counts.bytes_in;
                sum.records_in += counts.records_in;
                sum.bytes_out += counts.bytes_out;
            }
            durable.merge(&shard.produce_durable);
        }
        let per_topic: [TopicFamily; 3] = [
            (
                "shardlog_topic_bytes_in",
                "Record batch bytes produced, by topic",
                |c| c.bytes_in,
            ),
            (
                "shardlog_topic_records_in",
                "Records produced, by topic",
                |c| c.records_in,
            ),
            (
                "shardlog_topic_bytes_out",
                "Record batch bytes fetched by consumers, by topic",
                |c| c.bytes_out,
            ),
        ];
        for (name, help, pick) in per_topic {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (topic, counts) in &topics {
                let labels = [("topic", (*topic).to_string())];
                ConstCounter::new(pick(counts)).encode(family.encode_family(&labels)?)?;
            }
        }
        let family = encoder.encode_descriptor(
            "shardlog_produce_durable_seconds",
            "A produce's wait from staged to durable (fdatasync; acks=all: in sync too)",
            None,
            MetricType::Histogram,
        )?;
        encode_histogram(&durable, family)
    }

    fn encode_groups(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "shardlog_consumer_group_lag",
            "The log end offset minus the group's committed offset, by group and partition",
            None,
            MetricType::Gauge,
        )?;
        for ((group, topic, partition), lag) in &self.lag {
            let labels = [
                ("group", group.clone()),
                ("topic", topic.clone()),
                ("partition", partition.to_string()),
            ];
            ConstGauge::new(*lag).encode(family.encode_family(&labels)?)?;
        }
        let mut syncs = Histogram::default();
        for shard in &self.shards {
            syncs.merge(&shard.fdatasync);
        }
        let family = encoder.encode_descriptor(
            "shardlog_fdatasync_seconds",
            "fdatasync calls of the logs (a partition's own, or a group commit's)",
            None,
            MetricType::Histogram,
        )?;
        encode_histogram(&syncs, family)
    }

    fn encode_partitions(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let family = encoder.encode_descriptor(
            "shardlog_partitions",
            "Partitions with a replica on this broker",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(self.partitions.len()).unwrap_or(i64::MAX)).encode(family)?;
        let family = encoder.encode_descriptor(
            "shardlog_under_replicated_partitions",
            "Partitions this broker leads with fewer in-sync replicas than replicas",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(self.under_replicated).unwrap_or(i64::MAX)).encode(family)?;
        let mut family = encoder.encode_descriptor(
            "shardlog_log_size_bytes",
            "Bytes of each partition's log on this broker",
            None,
            MetricType::Gauge,
        )?;
        for p in &self.partitions {
            let labels = [
                ("topic", p.topic.clone()),
                ("partition", p.partition.to_string()),
            ];
            ConstGauge::new(i64::try_from(p.bytes).unwrap_or(i64::MAX))
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The scrape in the text exposition format.
pub fn encode(scrape: Scrape) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut out = String::new();
    // Writing into a String does not fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_summed_and_histograms_are_cumulative() {
        let mut a = ShardMetrics::default();
        a.requests.insert((0, 9), 3);
        a.latency.entry(0).or_default().observe(0.0002);
        a.latency.entry(0).or_default().observe(20.0);
        let mut b = ShardMetrics {
            shard: 1,
            connections_open: 2,
            requests_in_flight: 3,
            executor: engine::rt::ExecutorTotals {
                tasks_time: Duration::from_millis(1500),
                busy_time: Duration::from_millis(2500),
                tasks: 9,
            },
            ..ShardMetrics::default()
        };
        b.requests.insert((0, 9), 4);
        b.failures.insert(3, 1);
        b.latency.entry(0).or_default().observe(0.003);
        let text = encode(Scrape {
            shards: vec![a, b],
            partitions: vec![PartitionSize {
                topic: "t".into(),
                partition: 0,
                bytes: 42,
            }],
            under_replicated: 1,
            lag: BTreeMap::from([(("g".to_string(), "t".to_string(), 0), 5)]),
        });
        assert!(
            text.contains("shardlog_requests_total{api=\"Produce\",version=\"9\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("shardlog_request_failures_total{api=\"Metadata\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "shardlog_request_duration_seconds_bucket{le=\"0.00025\",api=\"Produce\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "shardlog_request_duration_seconds_bucket{le=\"0.005\",api=\"Produce\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "shardlog_request_duration_seconds_bucket{le=\"+Inf\",api=\"Produce\"} 3"
            ),
            "{text}"
        );
        assert!(
            text.contains("shardlog_request_duration_seconds_count{api=\"Produce\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("shardlog_connections_open{shard=\"1\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("shardlog_log_size_bytes{topic=\"t\",partition=\"0\"} 42"),
            "{text}"
        );
        assert!(text.contains("shardlog_partitions 1"), "{text}");
        assert!(
            text.contains("shardlog_shard_busy_seconds_total{shard=\"1\"} 2.5"),
            "{text}"
        );
        assert!(
            text.contains("shardlog_shard_tasks_total{shard=\"1\"} 9"),
            "{text}"
        );
        assert!(
            text.contains("shardlog_shard_requests_in_flight{shard=\"1\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("shardlog_under_replicated_partitions 1"),
            "{text}"
        );
        assert!(
            text.contains("shardlog_consumer_group_lag{group=\"g\",topic=\"t\",partition=\"0\"} 5"),
            "{text}"
        );
    }
}
