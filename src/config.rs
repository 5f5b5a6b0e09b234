//! `shardlog serve --config FILE`: the broker's settings as TOML. The keys
//! are the command-line flags' names, plus broker settings and broker
//! defaults for topic configs; a flag given on the command line wins over
//! the file, the file over the built-in default.
//!
//! ```toml
//! listen = "0.0.0.0:9092"
//! advertised-listener = "10.0.0.5:9092"
//! # or several listeners, as Kafka names them (instead of listen):
//! # listeners = ["CLIENT://0.0.0.0:9093", "INTERNAL://10.0.0.5:9094"]
//! # advertised-listeners = ["CLIENT://broker1.example.com:9093"]
//! # listener-security-protocol-map = { CLIENT = "SASL_SSL", INTERNAL = "PLAINTEXT" }
//! # inter-broker-listener-name = "INTERNAL"   # the brokers' own Kafka requests
//! http-listen = "127.0.0.1:8082"          # HTTP (GET /metrics); off unless set
//! http-users = ["alice:secret"]           # HTTP basic authentication (none: open; with SASL,
//!                                         # the SASL users too)
//! http-ssl = true                         # HTTPS with ssl-certificate and ssl-key
//! sasl-enabled-mechanisms = ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] # the Kafka listener is SASL_PLAINTEXT
//! sasl-users = ["alice:secret"]           # its users (SCRAM credentials derived at start)
//! connections-max-reauth-ms = 3600000     # connections.max.reauth.ms (KIP-368; default 0: off)
//! authorizer-enabled = true               # ACLs (Kafka's StandardAuthorizer); default off
//! super-users = ["User:admin"]            # super.users
//! allow-everyone-if-no-acl-found = false  # allow.everyone.if.no.acl.found
//! ssl-certificate = "/etc/shardlog/server.pem" # TLS on the Kafka listener (SSL, or SASL_SSL
//! ssl-key = "/etc/shardlog/server.key"         # with SASL): chain and key, PEM, reloaded on change
//! ssl-client-auth = "required"            # ssl.client.auth: none (default), requested, required
//! ssl-ca = "/etc/shardlog/clients-ca.pem" # the CAs of client certificates (PEM)
//! data-dir = "/var/lib/shardlog"
//! shards = 8
//! node-id = 0
//! internal-listen = "127.0.0.1:9192"   # a cluster member's address for its peers
//! controller-quorum-voters = "0@127.0.0.1:9192,1@127.0.0.1:9193,2@127.0.0.1:9194"
//! broker-session-timeout-ms = 9000     # broker.session.timeout.ms
//! broker-heartbeat-interval-ms = 2000  # broker.heartbeat.interval.ms
//! replica-lag-time-max-ms = 30000      # replica.lag.time.max.ms
//! auto-leader-rebalance-enable = true  # auto.leader.rebalance.enable
//! leader-imbalance-check-interval-seconds = 300
//! leader-imbalance-per-broker-percentage = 10
//! leader-replication-throttled-rate = 104857600 # bytes/s to catching-up followers; 0: no limit
//! metadata-log-max-record-bytes-between-snapshots = 20971520 # metadata.log.max.record.bytes.between.snapshots
//! auto-create-topics = true            # auto.create.topics.enable
//! num-partitions = 3                   # num.partitions
//! socket-request-max-bytes = 104857600 # socket.request.max.bytes
//! max-connections-per-ip = 1000        # max.connections.per.ip (default: no limit)
//! connections-max-idle-ms = 600000     # connections.max.idle.ms
//! offsets-topic-num-partitions = 50    # offsets.topic.num.partitions
//! offsets-topic-replication-factor = 3 # offsets.topic.replication.factor (a cluster's; at most its voters)
//! group-initial-rebalance-delay-ms = 3000
//! group-min-session-timeout-ms = 6000
//! group-max-session-timeout-ms = 1800000
//! group-consumer-heartbeat-interval-ms = 5000 # group.consumer.heartbeat.interval.ms (KIP-848)
//! group-consumer-session-timeout-ms = 45000   # group.consumer.session.timeout.ms
//! offsets-retention-minutes = 10080    # offsets.retention.minutes
//! offsets-retention-check-interval-ms = 600000
//! offsets-topic-segment-bytes = 104857600 # offsets.topic.segment.bytes
//! transaction-state-log-num-partitions = 50 # transaction.state.log.num.partitions
//! transaction-state-log-replication-factor = 3 # transaction.state.log.replication.factor
//! transaction-max-timeout-ms = 900000  # transaction.max.timeout.ms
//! transaction-state-log-segment-bytes = 104857600 # transaction.state.log.segment.bytes
//! transactional-id-expiration-ms = 604800000 # transactional.id.expiration.ms
//! producer-id-expiration-ms = 86400000 # producer.id.expiration.ms
//! tail-cache-bytes-per-shard = 1610612736 # default: an eighth of memory, split over shards
//! read-ahead-bytes-per-shard = 67108864 # read ahead for consumers behind the tail cache (0: none)
//! index-cache-bytes-per-shard = 67108864 # sealed segments' indexes kept in memory (LRU)
//! open-segment-files-per-shard = 7500  # segment files kept open, active and sealed (LRU; default: 3/4 of the open files limit over the shards)
//! io-properties-file = "/var/lib/shardlog/io-properties.toml" # from `shardlog tune iotune`
//! in-flight-bytes-per-shard = 536870912 # request bytes read, not yet answered (queued.max.request.bytes)
//! pin-shards = true                    # shard N on CPU N (default: when shards <= cores)
//! slow-request-log-ms = 100            # log requests answered this long after read (0: all)
//! log-cleaner-backoff-ms = 15000       # log.cleaner.backoff.ms: between the cleaner's rounds
//! log-cleaner-dedupe-buffer-size = 134217728 # log.cleaner.dedupe.buffer.size, split over shards
//! log-cleaner-io-max-bytes-per-second = 0 # log.cleaner.io.max.bytes.per.second (0: unlimited), split over shards
//!
//! [topic-defaults]                     # topic keys or their broker names
//! "retention.ms" = 86400000
//! "log.segment.bytes" = 268435456
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use engine::LogConfig;
use serde::Deserialize;

/// The file, as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub advertised_listener: Option<SocketAddr>,
    /// `NAME://HOST:PORT` each (Kafka's `listeners`).
    pub listeners: Option<Vec<String>>,
    pub advertised_listeners: Option<Vec<String>>,
    /// Listener name -> security protocol.
    pub listener_security_protocol_map: Option<BTreeMap<String, String>>,
    pub inter_broker_listener_name: Option<String>,
    pub http_listen: Option<SocketAddr>,
    pub http_users: Option<Vec<String>>,
    pub http_ssl: Option<bool>,
    pub sasl_enabled_mechanisms: Option<Vec<String>>,
    pub sasl_users: Option<Vec<String>>,
    pub connections_max_reauth_ms: Option<u64>,
    pub authorizer_enabled: Option<bool>,
    pub super_users: Option<Vec<String>>,
    pub allow_everyone_if_no_acl_found: Option<bool>,
    pub ssl_certificate: Option<PathBuf>,
    pub ssl_key: Option<PathBuf>,
    pub ssl_ca: Option<PathBuf>,
    pub ssl_client_auth: Option<String>,
    pub node_id: Option<i32>,
    pub internal_listen: Option<SocketAddr>,
    /// TLS with client certificates on the internal listener (brokers'
    /// links), with the `ssl-*` files.
    pub internal_ssl: Option<bool>,
    /// How this broker authenticates on a SASL inter-broker listener
    /// (Kafka's `sasl.mechanism.inter.broker.protocol` and its JAAS
    /// user).
    pub inter_broker_sasl_mechanism: Option<String>,
    pub inter_broker_sasl_user: Option<String>,
    pub inter_broker_sasl_password: Option<String>,
    /// `ID@HOST:PORT,...`: the metadata quorum's voters.
    pub controller_quorum_voters: Option<String>,
    pub broker_session_timeout_ms: Option<u64>,
    pub broker_heartbeat_interval_ms: Option<u64>,
    pub replica_lag_time_max_ms: Option<u64>,
    pub auto_leader_rebalance_enable: Option<bool>,
    pub leader_imbalance_check_interval_seconds: Option<u64>,
    pub leader_imbalance_per_broker_percentage: Option<u32>,
    pub leader_replication_throttled_rate: Option<u64>,
    pub metadata_log_max_record_bytes_between_snapshots: Option<u64>,
    pub data_dir: Option<PathBuf>,
    pub shards: Option<usize>,
    pub auto_create_topics: Option<bool>,
    pub num_partitions: Option<i32>,
    pub socket_request_max_bytes: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub connections_max_idle_ms: Option<u64>,
    pub offsets_topic_num_partitions: Option<i32>,
    pub offsets_topic_replication_factor: Option<i16>,
    pub group_initial_rebalance_delay_ms: Option<i32>,
    pub group_min_session_timeout_ms: Option<i32>,
    pub group_max_session_timeout_ms: Option<i32>,
    pub group_consumer_heartbeat_interval_ms: Option<i32>,
    pub group_consumer_session_timeout_ms: Option<i32>,
    pub offsets_retention_minutes: Option<i64>,
    pub offsets_retention_check_interval_ms: Option<u64>,
    pub offsets_topic_segment_bytes: Option<u64>,
    pub transaction_state_log_segment_bytes: Option<u64>,
    pub transaction_state_log_num_partitions: Option<i32>,
    pub transaction_state_log_replication_factor: Option<i16>,
    pub transaction_max_timeout_ms: Option<i32>,
    pub transactional_id_expiration_ms: Option<i64>,
    pub producer_id_expiration_ms: Option<i64>,
    /// What the tail caches of one shard hold together.
    pub tail_cache_bytes_per_shard: Option<usize>,
    /// What one shard reads ahead for readers behind, at most.
    pub read_ahead_bytes_per_shard: Option<usize>,
    /// Bytes of sealed segments' indexes one shard keeps in memory.
    pub index_cache_bytes_per_shard: Option<usize>,
    /// Segment files one shard keeps open, active and sealed.
    pub open_segment_files_per_shard: Option<usize>,
    pub io_properties_file: Option<PathBuf>,
    /// Request bytes one shard holds read and not yet answered.
    pub in_flight_bytes_per_shard: Option<usize>,
    /// Shard N on CPU N (`--pin-shards`).
    pub pin_shards: Option<bool>,
    /// Requests answered this long after they were read are logged.
    pub slow_request_log_ms: Option<u64>,
    pub log_cleaner_backoff_ms: Option<u64>,
    pub log_cleaner_dedupe_buffer_size: Option<usize>,
    pub log_cleaner_io_max_bytes_per_second: Option<u64>,
    #[serde(default)]
    pub topic_defaults: BTreeMap<String, toml::Value>,
}

/// Parses `ID@HOST:PORT,ID@HOST:PORT,...` (Kafka's
/// `controller.quorum.voters`): each id once, each a node id (0 or more).
pub fn parse_voters(text: &str) -> anyhow::Result<Vec<(i32, SocketAddr)>> {
    let mut voters: Vec<(i32, SocketAddr)> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('@')
            .with_context(|| format!("{item:?}: expected ID@HOST:PORT"))?;
        let id: i32 = id
            .parse()
            .with_context(|| format!("{item:?}: the id is not a number"))?;
        anyhow::ensure!(id >= 0, "{item:?}: node ids are 0 or more");
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("{item:?}: expected an IP address and port"))?;
        anyhow::ensure!(
            voters.iter().all(|&(other, _)| other != id),
            "voter {id} is named twice"
        );
        voters.push((id, addr));
    }
    anyhow::ensure!(!voters.is_empty(), "no voters");
    Ok(voters)
}

impl FileConfig {
    /// Reads and checks `path`; errors name the file and the offending key.
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        FileConfig::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    /// The settings that must be at least 1 (when given), by key.
    fn at_least_one(&self) -> Vec<(&'static str, Option<i64>)> {
        let config = self;
        let wide = |n: Option<usize>| n.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let unsigned = |n: Option<u64>| n.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        vec![
            ("num-partitions", config.num_partitions.map(i64::from)),
            ("shards", wide(config.shards)),
            (
                "max-connections-per-ip",
                wide(config.max_connections_per_ip),
            ),
            (
                "connections-max-idle-ms",
                unsigned(config.connections_max_idle_ms),
            ),
            (
                "offsets-topic-num-partitions",
                config.offsets_topic_num_partitions.map(i64::from),
            ),
            (
                "offsets-topic-replication-factor",
                config.offsets_topic_replication_factor.map(i64::from),
            ),
            (
                "transaction-state-log-num-partitions",
                config.transaction_state_log_num_partitions.map(i64::from),
            ),
            (
                "transaction-state-log-replication-factor",
                config
                    .transaction_state_log_replication_factor
                    .map(i64::from),
            ),
            (
                "transaction-max-timeout-ms",
                config.transaction_max_timeout_ms.map(i64::from),
            ),
            (
                "transactional-id-expiration-ms",
                config.transactional_id_expiration_ms,
            ),
            (
                "producer-id-expiration-ms",
                config.producer_id_expiration_ms,
            ),
            (
                "offsets-retention-minutes",
                config.offsets_retention_minutes,
            ),
            (
                "offsets-topic-segment-bytes",
                unsigned(config.offsets_topic_segment_bytes),
            ),
            (
                "transaction-state-log-segment-bytes",
                unsigned(config.transaction_state_log_segment_bytes),
            ),
            (
                "offsets-retention-check-interval-ms",
                unsigned(config.offsets_retention_check_interval_ms),
            ),
            (
                "broker-session-timeout-ms",
                unsigned(config.broker_session_timeout_ms),
            ),
            (
                "broker-heartbeat-interval-ms",
                unsigned(config.broker_heartbeat_interval_ms),
            ),
            (
                "replica-lag-time-max-ms",
                unsigned(config.replica_lag_time_max_ms),
            ),
            (
                "leader-imbalance-check-interval-seconds",
                unsigned(config.leader_imbalance_check_interval_seconds),
            ),
        ]
    }

    pub fn parse(text: &str) -> anyhow::Result<FileConfig> {
        let config: FileConfig = toml::from_str(text)?;
        for (name, value) in config.at_least_one() {
            if let Some(n) = value {
                anyhow::ensure!(n >= 1, "{name} must be at least 1, not {n}");
            }
        }
        if let Some(bytes) = config.socket_request_max_bytes {
            anyhow::ensure!(
                (1..=i32::MAX as usize).contains(&bytes),
                "socket-request-max-bytes must be between 1 and {}, not {bytes}",
                i32::MAX
            );
        }
        for (name, value) in [
            (
                "group-initial-rebalance-delay-ms",
                config.group_initial_rebalance_delay_ms,
            ),
            (
                "group-min-session-timeout-ms",
                config.group_min_session_timeout_ms,
            ),
            (
                "group-max-session-timeout-ms",
                config.group_max_session_timeout_ms,
            ),
        ] {
            if let Some(ms) = value {
                anyhow::ensure!(ms >= 0, "{name} must not be negative, not {ms}");
            }
        }
        for (name, value) in [
            (
                "group-consumer-heartbeat-interval-ms",
                config.group_consumer_heartbeat_interval_ms,
            ),
            (
                "group-consumer-session-timeout-ms",
                config.group_consumer_session_timeout_ms,
            ),
        ] {
            if let Some(ms) = value {
                anyhow::ensure!(ms > 0, "{name} must be positive, not {ms}");
            }
        }
        if let Some(percentage) = config.leader_imbalance_per_broker_percentage {
            anyhow::ensure!(
                percentage <= 100,
                "leader-imbalance-per-broker-percentage must be at most 100, not {percentage}"
            );
        }
        if let Some(voters) = &config.controller_quorum_voters {
            parse_voters(voters).context("controller-quorum-voters")?;
        }
        config.topic_defaults()?;
        Ok(config)
    }

    /// The topic-config defaults keyed by topic key, each value checked.
    pub fn topic_defaults(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut defaults = BTreeMap::new();
        let mut check = LogConfig::default();
        for (name, value) in &self.topic_defaults {
            let key = topic_key(name)
                .with_context(|| format!("[topic-defaults]: unknown config {name:?}"))?;
            let value = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => anyhow::bail!(
                    "[topic-defaults] {name:?}: expected a string or a number, found {}",
                    other.type_str()
                ),
            };
            check
                .set(key, &value)
                .with_context(|| format!("[topic-defaults] {name:?}"))?;
            anyhow::ensure!(
                defaults.insert(key.to_string(), value).is_none(),
                "[topic-defaults]: {key:?} is set twice (under two names)"
            );
        }
        Ok(defaults)
    }
}

/// A topic config key, or the broker name of one (`log.retention.ms`).
fn topic_key(name: &str) -> Option<&'static str> {
    net::handlers::topic_key_of(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_and_broker_names_map_to_topic_keys() {
        let config = FileConfig::parse(
            r#"
            listen = "127.0.0.1:9093"
            advertised-listener = "10.0.0.5:9092"
            data-dir = "/tmp/x"
            shards = 2
            node-id = 7
            auto-create-topics = false
            num-partitions = 3
            socket-request-max-bytes = 1048576
            [topic-defaults]
            "retention.ms" = 86400000
            "log.segment.bytes" = 268435456
            "cleanup.policy" = "delete"
            "#,
        )
        .unwrap();
        assert_eq!(config.listen, Some("127.0.0.1:9093".parse().unwrap()));
        assert_eq!(config.node_id, Some(7));
        assert_eq!(config.auto_create_topics, Some(false));
        assert_eq!(config.num_partitions, Some(3));
        assert_eq!(config.socket_request_max_bytes, Some(1 << 20));
        let defaults = config.topic_defaults().unwrap();
        assert_eq!(
            defaults.into_iter().collect::<Vec<_>>(),
            [
                ("cleanup.policy".to_string(), "delete".to_string()),
                ("retention.ms".to_string(), "86400000".to_string()),
                ("segment.bytes".to_string(), "268435456".to_string()),
            ]
        );
    }

    #[test]
    fn an_empty_file_is_all_defaults() {
        let config = FileConfig::parse("").unwrap();
        assert!(config.listen.is_none() && config.topic_defaults.is_empty());
    }

    #[test]
    fn bad_files_name_what_is_wrong() {
        let cases = [
            ("lisen = \"127.0.0.1:1\"", "lisen"),
            ("shards = 0", "shards"),
            ("num-partitions = 0", "num-partitions"),
            ("listen = \"nowhere\"", "listen"),
            ("[topic-defaults]\n\"retention.mss\" = 1", "retention.mss"),
            (
                "[topic-defaults]\n\"cleanup.policy\" = \"shred\"",
                "cleanup.policy",
            ),
            ("[topic-defaults]\n\"retention.ms\" = 1.5", "retention.ms"),
            (
                "[topic-defaults]\n\"retention.ms\" = 1\n\"log.retention.ms\" = 2",
                "set twice",
            ),
        ];
        for (text, named) in cases {
            let error = format!("{:#}", FileConfig::parse(text).unwrap_err());
            assert!(error.contains(named), "{text:?}: {error}");
        }
    }
}
