//! What a run does: workloads from TOML files, and the presets.
//!
//! Every key is optional (defaults below); an unknown key or a bad value is
//! an error naming the key. Example:
//!
//! ```toml
//! name = "keyed-16p"
//! topics = 1
//! partitions = 16             # per topic
//! replication-factor = 3      # replicas of each partition (a cluster's)
//! producers = 4               # producer clients, spread over the topics
//! consumers = 2               # consumer clients
//! consumer-mode = "group"     # or "standalone" (partitions assigned)
//! message-size = 1024         # or { min = 100, max = 4000 } (uniform)
//! keys = { skewed = 10000 }   # "none", { uniform = K }, { skewed = K }
//! payload = "random"          # or { file = "payload.json" }
//! acks = "all"                # "0", "1", "all"
//! idempotence = false         # librdkafka's enable.idempotence (acks = "all")
//! max-in-flight = 5           # requests in flight per connection (librdkafka's
//!                             # max.in.flight; default: the client's own)
//! transaction-messages = 100  # transactional producers, a commit every 100
//!                             # messages (librdkafka; consumers read_committed)
//! compression = "lz4"         # none, gzip, snappy, lz4, zstd
//! linger-ms = 1
//! batch-bytes = 1048576
//! rate = 50000                # messages/s over all producers; or
//! # rate-mb = 50              # MB/s; neither: unlimited
//! warmup-seconds = 10
//! duration-seconds = 60
//! backlog-seconds = 0         # consumers start this late and catch up
//! [topic-config]              # configs of the topics the run creates
//! "retention.bytes" = "16777216"
//! [client-config]             # librdkafka properties of every librdkafka
//! "security.protocol" = "SSL" # client (admin, producers, consumers): TLS,
//! "ssl.ca.location" = "ca.pem" # SASL, tuning
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One run's load.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Workload {
    pub name: String,
    pub topics: u32,
    /// Partitions of each topic.
    pub partitions: i32,
    /// Replicas of each partition (more than 1 needs a cluster).
    pub replication_factor: i16,
    pub producers: u32,
    pub consumers: u32,
    pub consumer_mode: ConsumerMode,
    pub message_size: MessageSize,
    pub keys: Keys,
    pub payload: Payload,
    pub acks: Acks,
    /// Idempotent producers (librdkafka's `enable.idempotence`).
    pub idempotence: bool,
    /// librdkafka's `max.in.flight.requests.per.connection` (its default
    /// when unset: 1,000,000, or 5 with idempotence).
    pub max_in_flight: Option<u32>,
    /// Transactional producers committing every this many messages
    /// (librdkafka); consumers then read with isolation.level
    /// read_committed, so end-to-end latency includes the commit.
    pub transaction_messages: Option<u32>,
    pub compression: Compression,
    pub linger_ms: u32,
    pub batch_bytes: u32,
    /// Messages per second over all producers (open loop).
    pub rate: Option<u64>,
    /// Megabytes (10^6) per second over all producers (open loop).
    pub rate_mb: Option<f64>,
    pub warmup_seconds: f64,
    pub duration_seconds: f64,
    /// Consumers start this long after the producers.
    pub backlog_seconds: f64,
    pub topic_config: BTreeMap<String, String>,
    /// librdkafka properties set on every librdkafka client of the run.
    pub client_config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumerMode {
    /// One consumer group per topic; the broker's coordinator splits it.
    Group,
    /// Partitions handed out by the benchmark, no group.
    Standalone,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum MessageSize {
    Fixed(usize),
    /// Uniform in `min..=max`.
    Uniform {
        min: usize,
        max: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keys {
    None,
    /// Each message's key is one of this many, equally likely.
    Uniform(u64),
    /// One of this many, Zipf-distributed (exponent 1): a few hot keys.
    Skewed(u64),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Payload {
    /// Incompressible bytes.
    Random,
    /// Slices of this file, so compression has something to do.
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Acks {
    #[serde(rename = "0")]
    None,
    #[serde(rename = "1")]
    Leader,
    #[serde(rename = "all", alias = "-1")]
    All,
}

impl Acks {
    /// `0`, `1`, `all` (or `-1`).
    pub fn parse(text: &str) -> anyhow::Result<Acks> {
        match text {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => anyhow::bail!("acks: {other:?} is not 0, 1 or all"),
        }
    }

    pub fn as_config(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// The bytes each message starts with: its producer, sequence number and
/// due time, so consumers measure end-to-end latency and count each
/// message once.
pub const HEADER_BYTES: usize = 20;

/// The presets `--workload` accepts by name.
pub const PRESETS: [&str; 7] = [
    "latency",
    "throughput",
    "omb-1topic-16p-1kb",
    "adversarial-50-producers",
    "adversarial-keyed",
    "adversarial-catch-up",
    "adversarial-retention",
];

impl Default for Workload {
    fn default() -> Workload {
        Workload {
            name: "custom".into(),
            topics: 1,
            partitions: 8,
            replication_factor: 1,
            producers: 1,
            consumers: 1,
            consumer_mode: ConsumerMode::Standalone,
            message_size: MessageSize::Fixed(1024),
            keys: Keys::None,
            payload: Payload::Random,
            acks: Acks::All,
            idempotence: false,
            max_in_flight: None,
            transaction_messages: None,
            compression: Compression::None,
            linger_ms: 1,
            batch_bytes: 1_048_576,
            rate: None,
            rate_mb: None,
            warmup_seconds: 5.0,
            duration_seconds: 30.0,
            backlog_seconds: 0.0,
            topic_config: BTreeMap::new(),
            client_config: BTreeMap::new(),
        }
    }
}

impl Workload {
    /// A preset by name, or else a TOML file at that path.
    pub fn load(name_or_path: &str) -> anyhow::Result<Workload> {
        if let Some(preset) = Workload::preset(name_or_path) {
            return Ok(preset);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            anyhow::bail!(
                "{name_or_path:?} is neither a workload file nor a preset ({})",
                PRESETS.join(", ")
            );
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let mut workload = Workload::parse(&text)
            .map_err(|e| anyhow::anyhow!("workload {}: {e}", path.display()))?;
        if workload.name == Workload::default().name
            && let Some(stem) = path.file_stem()
        {
            workload.name = stem.to_string_lossy().into_owned();
        }
        // A payload file is relative to the workload file.
        if let Payload::File(file) = &workload.payload
            && file.is_relative()
            && let Some(dir) = path.parent()
        {
            workload.payload = Payload::File(dir.join(file));
        }
        Ok(workload)
    }

    /// Parses and checks a workload file's text.
    pub fn parse(text: &str) -> anyhow::Result<Workload> {
        let workload: Workload = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        workload.check()?;
        Ok(workload)
    }

    /// Values serde accepts but a run cannot use, named by key.
    pub fn check(&self) -> anyhow::Result<()> {
        let positive = [
            ("topics", u64::from(self.topics)),
            ("partitions", u64::try_from(self.partitions).unwrap_or(0)),
            ("producers", u64::from(self.producers)),
        ];
        for (key, value) in positive {
            anyhow::ensure!(value > 0, "{key}: must be at least 1");
        }
        let (smallest, largest) = match self.message_size {
            MessageSize::Fixed(n) => (n, n),
            MessageSize::Uniform { min, max } => {
                anyhow::ensure!(min <= max, "message-size: min {min} is above max {max}");
                (min, max)
            }
        };
        anyhow::ensure!(
            smallest >= HEADER_BYTES,
            "message-size: at least {HEADER_BYTES} bytes (each message carries its send time)"
        );
        anyhow::ensure!(largest <= 64 << 20, "message-size: at most 64 MiB");
        match self.keys {
            Keys::Uniform(0) | Keys::Skewed(0) => anyhow::bail!("keys: at least one key"),
            _ => {}
        }
        anyhow::ensure!(
            self.rate.is_none() || self.rate_mb.is_none(),
            "rate and rate-mb: give one of them (neither: unlimited)"
        );
        anyhow::ensure!(self.rate != Some(0), "rate: must be above 0");
        anyhow::ensure!(
            self.replication_factor >= 1,
            "replication-factor: at least 1"
        );
        anyhow::ensure!(
            !self.idempotence || self.acks == Acks::All,
            "idempotence: needs acks = \"all\""
        );
        if let Some(n) = self.transaction_messages {
            anyhow::ensure!(n >= 1, "transaction-messages: at least 1");
            anyhow::ensure!(
                self.acks == Acks::All,
                "transaction-messages: needs acks = \"all\""
            );
        }
        if let Some(n) = self.max_in_flight {
            anyhow::ensure!(n >= 1, "max-in-flight: at least 1");
            anyhow::ensure!(
                !self.idempotence || n <= 5,
                "max-in-flight: at most 5 with idempotence"
            );
        }
        if let Some(mb) = self.rate_mb {
            anyhow::ensure!(mb > 0.0 && mb.is_finite(), "rate-mb: must be above 0");
        }
        let seconds = [
            ("warmup-seconds", self.warmup_seconds),
            ("duration-seconds", self.duration_seconds),
            ("backlog-seconds", self.backlog_seconds),
        ];
        for (key, value) in seconds {
            anyhow::ensure!(
                value.is_finite() && (0.0..=86_400.0).contains(&value),
                "{key}: between 0 and 86400"
            );
        }
        anyhow::ensure!(
            self.duration_seconds > 0.0,
            "duration-seconds: must be above 0"
        );
        if let Payload::File(path) = &self.payload {
            anyhow::ensure!(!path.as_os_str().is_empty(), "payload: file needs a path");
        }
        Ok(())
    }

    pub fn preset(name: &str) -> Option<Workload> {
        let base = Workload {
            name: name.to_string(),
            ..Workload::default()
        };
        let workload = match name {
            // Well below capacity: the latency of a quiet broker.
            "latency" => Workload {
                partitions: 1,
                rate: Some(5_000),
                linger_ms: 0,
                ..base
            },
            "throughput" => base,
            // OpenMessaging Benchmark's 1-topic-16-partitions-1kb (its Kafka
            // driver: acks all, linger 1 ms, 1 MiB batches).
            "omb-1topic-16p-1kb" => Workload {
                partitions: 16,
                rate: Some(50_000),
                warmup_seconds: 10.0,
                duration_seconds: 60.0,
                ..base
            },
            "adversarial-50-producers" => Workload {
                partitions: 16,
                producers: 50,
                consumers: 4,
                consumer_mode: ConsumerMode::Group,
                rate: Some(20_000),
                ..base
            },
            "adversarial-keyed" => Workload {
                partitions: 16,
                producers: 4,
                consumers: 4,
                consumer_mode: ConsumerMode::Group,
                keys: Keys::Skewed(10_000),
                message_size: MessageSize::Uniform {
                    min: 100,
                    max: 2000,
                },
                rate: Some(20_000),
                ..base
            },
            // Consumers start 20 s late and read a backlog while producers
            // keep writing: reads from disk compete with appends.
            "adversarial-catch-up" => Workload {
                partitions: 16,
                consumers: 2,
                rate: Some(20_000),
                duration_seconds: 40.0,
                backlog_seconds: 20.0,
                ..base
            },
            // Small segments and a small retention: the broker deletes
            // segments under the producers and consumers all the time.
            "adversarial-retention" => Workload {
                partitions: 4,
                rate: Some(20_000),
                topic_config: [("segment.bytes", "1048576"), ("retention.bytes", "4194304")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..base
            },
            _ => return None,
        };
        Some(workload)
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_seconds)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_seconds)
    }

    pub fn backlog(&self) -> Duration {
        Duration::from_secs_f64(self.backlog_seconds)
    }

    /// Mean message size in bytes.
    pub fn mean_message_bytes(&self) -> f64 {
        match self.message_size {
            MessageSize::Fixed(n) => n as f64,
            MessageSize::Uniform { min, max } => (min + max) as f64 / 2.0,
        }
    }

    /// Messages per second over all producers; `None`: unlimited.
    pub fn messages_per_second(&self) -> Option<f64> {
        match (self.rate, self.rate_mb) {
            (Some(rate), _) => Some(rate as f64),
            (None, Some(mb)) => Some(mb * 1e6 / self.mean_message_bytes()),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid_and_names_itself() {
        for name in PRESETS {
            let workload = Workload::preset(name).unwrap();
            workload.check().unwrap();
            assert_eq!(workload.name, name);
        }
        assert_eq!(Workload::preset("fast"), None);
    }

    #[test]
    fn a_full_file_parses() {
        let workload = Workload::parse(
            r#"
            name = "keyed"
            topics = 2
            partitions = 16
            producers = 4
            consumers = 2
            consumer-mode = "group"
            message-size = { min = 100, max = 4000 }
            keys = { skewed = 1000 }
            payload = { file = "data.json" }
            acks = "1"
            compression = "zstd"
            linger-ms = 5
            batch-bytes = 65536
            rate-mb = 20.5
            warmup-seconds = 2
            duration-seconds = 10.5
            backlog-seconds = 3
            [topic-config]
            "retention.ms" = "60000"
            "#,
        )
        .unwrap();
        assert_eq!(workload.topics, 2);
        assert_eq!(workload.consumer_mode, ConsumerMode::Group);
        assert_eq!(
            workload.message_size,
            MessageSize::Uniform {
                min: 100,
                max: 4000
            }
        );
        assert_eq!(workload.keys, Keys::Skewed(1000));
        assert_eq!(workload.payload, Payload::File("data.json".into()));
        assert_eq!(workload.acks, Acks::Leader);
        assert_eq!(workload.compression, Compression::Zstd);
        assert_eq!(workload.rate_mb, Some(20.5));
        assert_eq!(workload.duration(), Duration::from_millis(10_500));
        assert_eq!(workload.topic_config["retention.ms"], "60000");
        let rate = workload.messages_per_second().unwrap();
        assert!((rate - 20.5e6 / 2050.0).abs() < 1e-6, "{rate}");
        // Every key is optional.
        assert_eq!(Workload::parse("").unwrap(), Workload::default());
        assert_eq!(Workload::parse("keys = \"none\"").unwrap().keys, Keys::None);
        assert_eq!(Workload::parse("acks = \"-1\"").unwrap().acks, Acks::All);
    }

    /// Each bad file's error names the key that is wrong.
    #[test]
    fn bad_files_get_an_error_naming_the_field() {
        let cases = [
            ("partitons = 3", "partitons"),
            ("partitions = 0", "partitions"),
            ("partitions = \"many\"", "partitions"),
            ("producers = -1", "producers"),
            ("acks = \"2\"", "acks"),
            ("compression = \"brotli\"", "compression"),
            ("message-size = 8", "message-size"),
            ("message-size = { min = 500, max = 100 }", "message-size"),
            ("message-size = { mean = 100 }", "message-size"),
            ("keys = { zipf = 10 }", "keys"),
            ("keys = { uniform = 0 }", "keys"),
            ("rate = 10\nrate-mb = 1.0", "rate-mb"),
            ("rate = 0", "rate"),
            ("replication-factor = 0", "replication-factor"),
            ("duration-seconds = 0", "duration-seconds"),
            ("warmup-seconds = -1", "warmup-seconds"),
            ("consumer-mode = \"shared\"", "consumer-mode"),
            ("payload = \"zeros\"", "payload"),
            ("[topic-config]\n\"retention.ms\" = 5", "retention.ms"),
        ];
        for (text, key) in cases {
            let error = Workload::parse(text).unwrap_err().to_string();
            assert!(error.contains(key), "{text:?}: {error}");
        }
    }

    #[test]
    fn load_takes_presets_then_files_and_says_what_exists() {
        assert_eq!(Workload::load("latency").unwrap().rate, Some(5_000));
        let error = Workload::load("fast").unwrap_err().to_string();
        assert!(error.contains("omb-1topic-16p-1kb"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.toml");
        std::fs::write(&path, "payload = { file = \"p.txt\" }\nlinger-ms = \"x\"").unwrap();
        let error = Workload::load(path.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("mine.toml") && error.contains("linger-ms"),
            "{error}"
        );
        std::fs::write(&path, "payload = { file = \"p.txt\" }").unwrap();
        let workload = Workload::load(path.to_str().unwrap()).unwrap();
        assert_eq!(workload.name, "mine");
        assert_eq!(workload.payload, Payload::File(dir.path().join("p.txt")));
    }
}
