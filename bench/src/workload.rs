//! What a run does: the built-in workloads.

use std::time::Duration;

/// One run's load.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    pub partitions: i32,
    pub message_bytes: usize,
    /// Messages per second, open loop; `None`: as fast as the broker takes.
    pub rate: Option<u64>,
    /// Discarded before measuring.
    pub warmup: Duration,
    pub duration: Duration,
    /// librdkafka's `acks`.
    pub acks: &'static str,
    pub linger_ms: u32,
    /// Read everything produced back afterwards, timing the read.
    pub consume_backlog: bool,
}

impl Workload {
    pub fn preset(name: &str) -> anyhow::Result<Workload> {
        let base = Workload {
            name: name.to_string(),
            partitions: 8,
            message_bytes: 1024,
            rate: None,
            warmup: Duration::from_secs(3),
            duration: Duration::from_secs(20),
            acks: "all",
            linger_ms: 5,
            consume_backlog: true,
        };
        match name {
            "throughput" => Ok(base),
            "latency" => Ok(Workload {
                partitions: 1,
                rate: Some(5_000),
                linger_ms: 0,
                consume_backlog: false,
                ..base
            }),
            other => anyhow::bail!("unknown workload {other:?}: use throughput or latency"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_exist_and_unknown_names_say_which_exist() {
        assert_eq!(Workload::preset("latency").unwrap().rate, Some(5_000));
        assert_eq!(Workload::preset("throughput").unwrap().rate, None);
        let error = Workload::preset("fast").unwrap_err().to_string();
        assert!(error.contains("throughput or latency"), "{error}");
    }
}
