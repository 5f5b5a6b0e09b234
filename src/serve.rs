//! `shardlog serve`: one executor per shard, each pinned to its core,
//! owning its partitions' logs and listening on the Kafka port (SO_REUSEPORT:
//! the kernel spreads connections over the shards). The shards open and
//! recover every partition in the data directory, serve the Kafka protocol,
//! enforce retention, and close cleanly on SIGINT or SIGTERM.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use engine::rt::{sleep, spawn_executor, wall_clock_ms};
use net::broker::{MESH_CHANNEL_CAPACITY, Node, Settings, Shard, ShardMessage};
use net::group::GroupConfig;
use net::server::ListenerConfig;
use net::server::mesh::MeshPlan;

use crate::config::FileConfig;

/// Kafka's `log.retention.check.interval.ms` default (5 minutes).
const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(300);
/// The cluster id clients see (one node, one cluster).
const CLUSTER_ID: &str = "shardlog-single-node";
/// How long `serve` waits for its port to be released.
const PORT_WAIT: Duration = Duration::from_secs(5);
/// `leader.replication.throttled.rate`'s default here (Kafka's has no
/// limit): 100 MiB/s to catching-up followers, a small part of what a
/// server's disk and network carry, so catch-up never starves producers.
const LEADER_REPLICATION_THROTTLED_RATE: u64 = 100 << 20;
/// `metadata.log.max.record.bytes.between.snapshots`, Kafka's default:
/// a restarted voter replays at most this much of the metadata log.
const METADATA_SNAPSHOT_BYTES: u64 = 20 << 20;
/// How often a shard looks at the stop flag.
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The address every shard listens on for Kafka clients [default: 127.0.0.1:9092].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The address clients are told to connect to (default: --listen).
    #[arg(long)]
    advertised_listener: Option<SocketAddr>,
    /// The HTTP listener's address (`GET /metrics`); off unless set.
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// This broker's node id [default: 0].
    #[arg(long)]
    node_id: Option<i32>,
    /// A cluster member's address for its peers (the metadata quorum and,
    /// later, replication); needed with --voters.
    #[arg(long)]
    internal_listen: Option<SocketAddr>,
    /// The metadata quorum's voters, `ID@HOST:PORT,...` (their
    /// --internal-listen addresses); this broker must be one of them.
    /// Without it the broker is a one-node cluster.
    #[arg(long)]
    voters: Option<String>,
    /// Where partitions live (`<data-dir>/<topic>-<partition>/`) [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Number of shards (one executor thread each); default: available cores.
    #[arg(long)]
    shards: Option<usize>,
    /// Pin shard N to CPU N [default: true when shards <= cores]. `false`
    /// leaves the shards to the scheduler: for machines the broker shares
    /// with busy processes (clients, other services), where a pinned shard
    /// waits for its one CPU while another is free.
    #[arg(long)]
    pin_shards: Option<bool>,
    /// A TOML file with the same keys, broker settings and broker defaults
    /// for topic configs (see the README); flags win over it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Test knob: microseconds between the accept loop's stop checks
    /// (default 50 ms); a short one makes hours of idle polling take seconds.
    #[arg(long, hide = true)]
    stop_poll_interval_us: Option<u64>,
}

/// Flags over the config file over built-in defaults.
#[derive(Debug)]
struct ServeConfig {
    /// The Kafka listeners, in order (the first named in logs).
    listeners: Vec<crate::listeners::Listener>,
    /// The listener peers send this broker Kafka requests on.
    inter_broker_listener: String,
    /// How this broker authenticates on its peers' inter-broker listener.
    inter_broker_security: net::server::peer::PeerSecurity,
    http_listen: Option<SocketAddr>,
    /// Who may use the HTTP listener, and whether it is HTTPS.
    http: net::http::HttpSecurity,
    /// The Kafka listener's SASL (`sasl-enabled-mechanisms`, `sasl-users`).
    sasl: Option<std::sync::Arc<net::handlers::sasl::SaslConfig>>,
    /// The Kafka listener's TLS (`ssl-*`).
    tls: Option<std::sync::Arc<net::server::tls::Tls>>,
    node_id: i32,
    data_dir: PathBuf,
    shards: usize,
    request_bytes_max: usize,
    max_connections_per_ip: usize,
    connections_max_idle: Duration,
    stop_poll_interval: Option<Duration>,
    tail_cache_bytes_per_shard: usize,
    read_ahead_bytes_per_shard: usize,
    /// Index bytes, and open segment files (default: [`segment_files_share`])
    /// per shard.
    segment_cache: (usize, Option<usize>),
    /// Writes in flight per partition and write buffer bytes, from the
    /// io-properties file (`shardlog tune iotune`), if one is configured.
    io_tuning: Option<(usize, usize)>,
    in_flight_bytes_per_shard: usize,
    pin_shards: bool,
    slow_request_log: Duration,
    cleaner: Cleaner,
    settings: Settings,
}

/// The log cleaner's settings, per shard.
#[derive(Debug, Clone, Copy)]
struct Cleaner {
    /// `log.cleaner.backoff.ms`: the pause between rounds.
    backoff: Duration,
    /// A shard's part of `log.cleaner.dedupe.buffer.size`: its passes'
    /// key map.
    map_bytes: usize,
    /// A shard's part of `log.cleaner.io.max.bytes.per.second` (`None`,
    /// or 0 in the file: unlimited, Kafka's default).
    io_bytes_per_second: Option<u64>,
}

impl Cleaner {
    fn from_file(file: &FileConfig, shards: usize) -> Cleaner {
        Cleaner {
            backoff: file
                .log_cleaner_backoff_ms
                .map_or(LOG_CLEANER_BACKOFF, Duration::from_millis),
            map_bytes: file
                .log_cleaner_dedupe_buffer_size
                .unwrap_or(LOG_CLEANER_DEDUPE_BUFFER_BYTES)
                / shards.max(1),
            io_bytes_per_second: file
                .log_cleaner_io_max_bytes_per_second
                .filter(|&b| b > 0)
                .map(|b| (b / shards.max(1) as u64).max(1)),
        }
    }
}

/// `log.cleaner.backoff.ms`'s default.
const LOG_CLEANER_BACKOFF: Duration = Duration::from_secs(15);
/// `log.cleaner.dedupe.buffer.size`'s default (the broker's, over shards).
const LOG_CLEANER_DEDUPE_BUFFER_BYTES: usize = 128 << 20;
/// Passes per round at most (each is one partition's).
const CLEANER_PASSES_PER_ROUND: usize = 16;

/// The cluster settings, when --voters (or `controller-quorum-voters`) is
/// given: this broker must be a voter, with its --internal-listen address.
fn cluster_config(
    args: &Args,
    file: &FileConfig,
    node_id: i32,
    tls: Option<&std::sync::Arc<net::server::tls::Tls>>,
) -> anyhow::Result<Option<net::cluster::ClusterConfig>> {
    let Some(voters) = args
        .voters
        .as_ref()
        .or(file.controller_quorum_voters.as_ref())
    else {
        anyhow::ensure!(
            file.internal_ssl.is_none(),
            "internal-ssl is for a cluster's brokers (--voters)"
        );
        return Ok(None);
    };
    let tls = match file.internal_ssl {
        Some(true) => {
            let tls = tls.ok_or_else(|| {
                anyhow::anyhow!("internal-ssl needs ssl-certificate, ssl-key and ssl-ca")
            })?;
            anyhow::ensure!(
                file.ssl_ca.is_some(),
                "internal-ssl needs ssl-ca (the CAs that sign the brokers' certificates)"
            );
            let internal = tls
                .requiring_client_certificates()
                .map_err(|e| anyhow::anyhow!("internal-ssl: {e:#}"))?;
            Some(std::sync::Arc::new(internal))
        }
        _ => None,
    };
    let voters = crate::config::parse_voters(voters).context("--voters")?;
    let listed = voters
        .iter()
        .find(|&&(id, _)| id == node_id)
        .map(|&(_, a)| a);
    let Some(listed) = listed else {
        anyhow::bail!("--node-id {node_id} is not one of the --voters (every voter is a broker)");
    };
    let internal_listen = args
        .internal_listen
        .or(file.internal_listen)
        .unwrap_or(listed);
    anyhow::ensure!(
        internal_listen.port() == listed.port(),
        "--internal-listen {internal_listen} does not match this voter's address {listed}"
    );
    Ok(Some(net::cluster::ClusterConfig {
        node_id,
        internal_listen,
        voters,
        session_timeout: Duration::from_millis(file.broker_session_timeout_ms.unwrap_or(9_000)),
        heartbeat_interval: Duration::from_millis(
            file.broker_heartbeat_interval_ms.unwrap_or(2_000),
        ),
        tick: Duration::from_millis(100),
        replica_lag_time_max: Duration::from_millis(file.replica_lag_time_max_ms.unwrap_or(30_000)),
        auto_leader_rebalance: file.auto_leader_rebalance_enable.unwrap_or(true),
        leader_imbalance_check_interval: Duration::from_secs(
            file.leader_imbalance_check_interval_seconds.unwrap_or(300),
        ),
        leader_imbalance_per_broker_percentage: file
            .leader_imbalance_per_broker_percentage
            .unwrap_or(10),
        leader_replication_throttled_rate: file
            .leader_replication_throttled_rate
            .unwrap_or(LEADER_REPLICATION_THROTTLED_RATE),
        metadata_snapshot_bytes: file
            .metadata_log_max_record_bytes_between_snapshots
            .unwrap_or(METADATA_SNAPSHOT_BYTES)
            .max(1),
        tls,
    }))
}

impl ServeConfig {
    fn resolve(args: Args) -> anyhow::Result<ServeConfig> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shards = args.shards.or(file.shards).unwrap_or(cores).max(1);
        let node_id = args.node_id.or(file.node_id).unwrap_or(0);
        let (sasl, tls) = (sasl(&file)?, tls(&file)?);
        let cluster = cluster_config(&args, &file, node_id, tls.as_ref())?;
        let secured = (sasl.is_some(), tls.is_some());
        let (listeners, inter_broker_listener) =
            listeners(&args, &file, secured, cluster.is_some())?;
        let inter_broker_security =
            inter_broker_security(&file, &listeners, &inter_broker_listener, tls.as_ref())?;
        Ok(ServeConfig {
            inter_broker_security,
            stop_poll_interval: args.stop_poll_interval_us.map(Duration::from_micros),
            listeners,
            inter_broker_listener,
            http_listen: args.http_listen.or(file.http_listen),
            http: http_security(&file, sasl.as_ref(), tls.as_ref())?,
            sasl,
            tls,
            node_id,
            data_dir: args
                .data_dir
                .or_else(|| file.data_dir.clone())
                .unwrap_or_else(|| PathBuf::from("./data")),
            shards,
            tail_cache_bytes_per_shard: file
                .tail_cache_bytes_per_shard
                .unwrap_or_else(|| tail_cache_share(shards)),
            read_ahead_bytes_per_shard: file
                .read_ahead_bytes_per_shard
                .unwrap_or(engine::limits::READ_AHEAD_SHARD_BYTES_DEFAULT),
            segment_cache: (
                file.index_cache_bytes_per_shard
                    .unwrap_or(engine::limits::INDEX_CACHE_SHARD_BYTES_DEFAULT),
                file.open_segment_files_per_shard,
            ),
            io_tuning: file
                .io_properties_file
                .as_deref()
                .map(io_tuning)
                .transpose()?,
            in_flight_bytes_per_shard: file
                .in_flight_bytes_per_shard
                .unwrap_or(net::limits::IN_FLIGHT_BYTES_MAX_PER_SHARD),
            pin_shards: args
                .pin_shards
                .or(file.pin_shards)
                .unwrap_or(shards <= cores),
            slow_request_log: file
                .slow_request_log_ms
                .map_or(net::limits::SLOW_REQUEST_LOG, Duration::from_millis),
            cleaner: Cleaner::from_file(&file, shards),
            request_bytes_max: file
                .socket_request_max_bytes
                .unwrap_or(net::limits::REQUEST_BYTES_MAX),
            max_connections_per_ip: file.max_connections_per_ip.unwrap_or(usize::MAX),
            connections_max_idle: file
                .connections_max_idle_ms
                .map_or(net::server::CONNECTIONS_MAX_IDLE, Duration::from_millis),
            settings: settings(&file, cluster)?,
        })
    }
}

/// The shards' settings from the file (built-in defaults where silent).
fn settings(
    file: &FileConfig,
    cluster: Option<net::cluster::ClusterConfig>,
) -> anyhow::Result<Settings> {
    let defaults = Settings::default();
    Ok(Settings {
        cluster,
        authorizer: authorizer(file)?,
        auto_create_topics: file
            .auto_create_topics
            .unwrap_or(defaults.auto_create_topics),
        num_partitions: file.num_partitions.unwrap_or(defaults.num_partitions),
        topic_defaults: file.topic_defaults()?,
        offsets_topic_partitions: file
            .offsets_topic_num_partitions
            .unwrap_or(defaults.offsets_topic_partitions),
        offsets_retention_ms: file
            .offsets_retention_minutes
            .map_or(defaults.offsets_retention_ms, |m| m.saturating_mul(60_000)),
        offsets_retention_check_interval: file.offsets_retention_check_interval_ms.map_or(
            defaults.offsets_retention_check_interval,
            Duration::from_millis,
        ),
        offsets_topic_segment_bytes: file
            .offsets_topic_segment_bytes
            .unwrap_or(defaults.offsets_topic_segment_bytes),
        transaction_topic_segment_bytes: file
            .transaction_state_log_segment_bytes
            .unwrap_or(defaults.transaction_topic_segment_bytes),
        offsets_topic_replication_factor: file
            .offsets_topic_replication_factor
            .unwrap_or(defaults.offsets_topic_replication_factor),
        transaction_topic_replication_factor: file
            .transaction_state_log_replication_factor
            .unwrap_or(defaults.transaction_topic_replication_factor),
        transaction_topic_partitions: file
            .transaction_state_log_num_partitions
            .unwrap_or(defaults.transaction_topic_partitions),
        transaction_max_timeout_ms: file
            .transaction_max_timeout_ms
            .unwrap_or(defaults.transaction_max_timeout_ms),
        transactional_id_expiration_ms: file
            .transactional_id_expiration_ms
            .unwrap_or(defaults.transactional_id_expiration_ms),
        producer_id_expiration_ms: file
            .producer_id_expiration_ms
            .unwrap_or(defaults.producer_id_expiration_ms),
        group: group_config(file, &defaults.group),
    })
}

/// The HTTP listener's users: `name:password` entries of `http-users`.
/// The HTTP listener's users (`http-users`, and the Kafka listeners' SASL
/// users when SASL is on) and TLS (`http-ssl`, with the Kafka listeners'
/// certificate).
fn http_security(
    file: &FileConfig,
    sasl: Option<&std::sync::Arc<net::handlers::sasl::SaslConfig>>,
    tls: Option<&std::sync::Arc<net::server::tls::Tls>>,
) -> anyhow::Result<net::http::HttpSecurity> {
    let tls = match file.http_ssl {
        Some(true) => Some(
            tls.cloned()
                .ok_or_else(|| anyhow::anyhow!("http-ssl needs ssl-certificate and ssl-key"))?,
        ),
        _ => None,
    };
    Ok(net::http::HttpSecurity {
        users: users("http-users", file.http_users.as_deref())?,
        sasl: sasl.cloned(),
        tls,
    })
}

/// `name:password` entries of the list `key`.
fn users(key: &str, entries: Option<&[String]>) -> anyhow::Result<Vec<(String, String)>> {
    entries
        .into_iter()
        .flatten()
        .map(|u| {
            u.split_once(':')
                .map(|(n, p)| (n.to_string(), p.to_string()))
                .ok_or_else(|| anyhow::anyhow!("{key}: {u:?} is not name:password"))
        })
        .collect()
}

/// The Kafka listener's SASL: on when `sasl-enabled-mechanisms` names
/// any, for the users of `sasl-users`.
fn sasl(
    file: &FileConfig,
) -> anyhow::Result<Option<std::sync::Arc<net::handlers::sasl::SaslConfig>>> {
    use net::sasl::Mechanism;
    let names = file.sasl_enabled_mechanisms.as_deref().unwrap_or_default();
    if names.is_empty() {
        return Ok(None);
    }
    let mechanisms = names
        .iter()
        .map(|name| {
            Mechanism::from_name(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "sasl-enabled-mechanisms: {name:?} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let users = users("sasl-users", file.sasl_users.as_deref())?;
    anyhow::ensure!(
        !users.is_empty(),
        "sasl-enabled-mechanisms: no sasl-users to authenticate"
    );
    let mut config = net::handlers::sasl::SaslConfig::new(mechanisms, &users);
    config.session_lifetime = file
        .connections_max_reauth_ms
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis);
    Ok(Some(std::sync::Arc::new(config)))
}

/// The ACL authorizer: on with `authorizer-enabled`, its `super-users`
/// (`User:NAME` each) and `allow-everyone-if-no-acl-found`.
fn authorizer(
    file: &FileConfig,
) -> anyhow::Result<Option<replication::metadata::acl::AuthorizerConfig>> {
    if file.authorizer_enabled != Some(true) {
        anyhow::ensure!(
            file.super_users.is_none() && file.allow_everyone_if_no_acl_found.is_none(),
            "super-users and allow-everyone-if-no-acl-found need authorizer-enabled = true"
        );
        return Ok(None);
    }
    let super_users = file.super_users.clone().unwrap_or_default();
    for user in &super_users {
        anyhow::ensure!(
            user.split_once(':')
                .is_some_and(|(t, n)| !t.is_empty() && !n.is_empty()),
            "super-users: {user:?} is not TYPE:NAME (User:admin)"
        );
    }
    Ok(Some(replication::metadata::acl::AuthorizerConfig {
        super_users,
        allow_if_no_acl: file.allow_everyone_if_no_acl_found.unwrap_or(false),
    }))
}

/// The Kafka listeners (`listen` or `listeners`), given whether SASL and
/// TLS are configured (`secured`), and the inter-broker one's name.
fn listeners(
    args: &Args,
    file: &FileConfig,
    secured: (bool, bool),
    in_cluster: bool,
) -> anyhow::Result<(Vec<crate::listeners::Listener>, String)> {
    crate::listeners::resolve(&crate::listeners::ListenerKeys {
        listen: args.listen.or(file.listen),
        advertised_listener: args.advertised_listener.or(file.advertised_listener),
        listeners: file.listeners.as_deref(),
        advertised_listeners: file.advertised_listeners.as_deref(),
        protocol_map: file.listener_security_protocol_map.as_ref(),
        inter_broker_listener_name: file.inter_broker_listener_name.as_deref(),
        sasl: secured.0,
        tls: secured.1,
        in_cluster,
        inter_broker_sasl: file.inter_broker_sasl_mechanism.is_some(),
        ssl_ca: file.ssl_ca.is_some(),
        internal_ssl: file.internal_ssl == Some(true),
    })
}

/// How this broker calls its peers' inter-broker listener: TLS with its
/// certificate when that listener is SSL or SASL_SSL, SASL with the
/// `inter-broker-sasl-*` user when it is SASL_PLAINTEXT or SASL_SSL.
fn inter_broker_security(
    file: &FileConfig,
    listeners: &[crate::listeners::Listener],
    inter_broker_listener: &str,
    tls: Option<&std::sync::Arc<net::server::tls::Tls>>,
) -> anyhow::Result<net::server::peer::PeerSecurity> {
    let protocol = listeners
        .iter()
        .find(|l| l.name == inter_broker_listener)
        .map(|l| l.protocol);
    let mechanism = match file.inter_broker_sasl_mechanism.as_deref() {
        None => {
            anyhow::ensure!(
                file.inter_broker_sasl_user.is_none() && file.inter_broker_sasl_password.is_none(),
                "inter-broker-sasl-user and -password need inter-broker-sasl-mechanism"
            );
            None
        }
        Some(name) => Some(net::sasl::Mechanism::from_name(name).ok_or_else(|| {
            anyhow::anyhow!(
                "inter-broker-sasl-mechanism: {name:?} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            )
        })?),
    };
    let sasl = match (mechanism, protocol.is_some_and(|p| p.sasl())) {
        (Some(mechanism), true) => Some(net::server::peer::PeerSasl {
            mechanism,
            user: file.inter_broker_sasl_user.clone().ok_or_else(|| {
                anyhow::anyhow!("inter-broker-sasl-mechanism needs inter-broker-sasl-user")
            })?,
            password: file.inter_broker_sasl_password.clone().ok_or_else(|| {
                anyhow::anyhow!("inter-broker-sasl-mechanism needs inter-broker-sasl-password")
            })?,
        }),
        _ => None,
    };
    Ok(net::server::peer::PeerSecurity {
        tls: tls.filter(|_| protocol.is_some_and(|p| p.tls())).cloned(),
        sasl,
    })
}

/// The Kafka listener's TLS: on when `ssl-certificate` is set (with
/// `ssl-key`); the files are loaded now, so a bad one stops the start.
fn tls(file: &FileConfig) -> anyhow::Result<Option<std::sync::Arc<net::server::tls::Tls>>> {
    use net::server::tls::{ClientAuth, Tls, TlsFiles};
    let Some(certificate) = file.ssl_certificate.clone() else {
        anyhow::ensure!(
            file.ssl_key.is_none() && file.ssl_ca.is_none() && file.ssl_client_auth.is_none(),
            "ssl-key, ssl-ca and ssl-client-auth need ssl-certificate"
        );
        return Ok(None);
    };
    let key = file
        .ssl_key
        .clone()
        .ok_or_else(|| anyhow::anyhow!("ssl-certificate needs ssl-key"))?;
    let client_auth = match file.ssl_client_auth.as_deref() {
        None => ClientAuth::None,
        Some(value) => ClientAuth::parse(value).ok_or_else(|| {
            anyhow::anyhow!("ssl-client-auth: {value:?} is not none, requested or required")
        })?,
    };
    let files = TlsFiles {
        certificate,
        key,
        ca: file.ssl_ca.clone(),
        client_auth,
    };
    let tls = Tls::load(files).map_err(|e| anyhow::anyhow!("TLS: {e:#}"))?;
    Ok(Some(std::sync::Arc::new(tls)))
}

/// What an io-properties file (`shardlog tune iotune`) sizes: writes in
/// flight per partition and the write buffer.
fn io_tuning(path: &std::path::Path) -> anyhow::Result<(usize, usize)> {
    let properties =
        tuning::iotune::read(path).map_err(|e| anyhow::anyhow!("io-properties-file {e}"))?;
    tracing::info!(
        file = %path.display(),
        writes_in_flight = properties.writes_in_flight,
        write_buffer_bytes = properties.write_buffer_bytes,
        measured_on = %properties.dir,
        "io properties: writes in flight per partition and write buffer from iotune"
    );
    Ok((properties.writes_in_flight, properties.write_buffer_bytes))
}

/// The group coordinator's settings: the file's, else the defaults.
fn group_config(file: &FileConfig, defaults: &GroupConfig) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: file
            .group_initial_rebalance_delay_ms
            .unwrap_or(defaults.initial_rebalance_delay_ms),
        min_session_timeout_ms: file
            .group_min_session_timeout_ms
            .unwrap_or(defaults.min_session_timeout_ms),
        max_session_timeout_ms: file
            .group_max_session_timeout_ms
            .unwrap_or(defaults.max_session_timeout_ms),
        consumer: net::group::consumer::ConsumerConfig {
            heartbeat_interval_ms: file
                .group_consumer_heartbeat_interval_ms
                .unwrap_or(defaults.consumer.heartbeat_interval_ms),
            session_timeout_ms: file
                .group_consumer_session_timeout_ms
                .unwrap_or(defaults.consumer.session_timeout_ms),
        },
    }
}

/// The default budget of a shard's tail caches: an eighth of the
/// machine's memory, split over the shards, within 64 MiB and 4 GiB.
fn tail_cache_share(shards: usize) -> usize {
    // SAFETY: sysconf only reads configuration values.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let memory =
        usize::try_from(pages.max(0)).unwrap_or(0) * usize::try_from(page.max(0)).unwrap_or(0);
    (memory / 8 / shards.max(1)).clamp(64 << 20, 4 << 30)
}

/// Raises the soft limit on open files to the hard one, as the JVM does for
/// Kafka (`MaxFDLimit`): segment files stay open while partitions are used
/// (up to a share of the limit, [`segment_files_share`]), and each client
/// has a socket, so the usual soft limit of 1,024 would make a few hundred
/// busy partitions reopen their files. `shardlog tune --check` says when
/// the hard limit itself is low. Returns the soft limit in effect after it
/// (`None` if it could not be read).
fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) != 0 {
            return None;
        }
        let soft = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if soft >= limit.rlim_max || libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) != 0 {
            return Some(soft);
        }
    }
    tracing::debug!(
        open_files = limit.rlim_max,
        "raised the open files limit to its hard limit"
    );
    Some(limit.rlim_max)
}

/// The segment files one shard keeps open unless the config says: three
/// quarters of the soft open files limit (1,024 if unknown) over the
/// shards. The rest is for sockets (a connection each), the shards' rings
/// and the small files logs write. Past its share a shard closes its least
/// recently used segment files and opens them again when next used, so
/// partitions beyond the limit cost opens, not EMFILE.
fn segment_files_share(open_files: Option<u64>, shards: usize) -> usize {
    let open_files = open_files.map_or(1024, |n| usize::try_from(n).unwrap_or(usize::MAX));
    (open_files.min(1 << 30) / 4 * 3 / shards.max(1)).max(16)
}

/// Has glibc's malloc serve blocks up to 8 MiB from its heaps and keep up
/// to 16 MiB of freed heap for reuse. By default it maps every block over
/// 128 KiB (up to 32 MiB as it adapts) with its own mmap and unmaps it on
/// free, so each new 1 MiB read or request buffer cost 256 page faults and
/// the kernel zeroing every page: a Java consumer reading 1 GB from disk
/// took 521,000 faults and 3.0 broker CPU-s, 7,000 and 1.5 with this
/// (docs/benchmarks.md, "Fetch from disk"). Not when the operator set
/// malloc's tunables (`GLIBC_TUNABLES`, or the older `MALLOC_*_`
/// variables): theirs win.
fn keep_large_blocks() {
    let set_by_operator = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("malloc"))
        || std::env::vars_os().any(|(k, _)| {
            k.to_str()
                .is_some_and(|k| k.starts_with("MALLOC_") && k.ends_with('_'))
        });
    if set_by_operator {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MALLOC_MMAP_BYTES: libc::c_int = 8 << 20;
        const MALLOC_KEEP_BYTES: libc::c_int = 16 << 20;
        // SAFETY: mallopt only changes the allocator's parameters; called
        // before any shard thread starts.
        let set = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_BYTES) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, MALLOC_KEEP_BYTES) == 1
        };
        if !set {
            tracing::warn!("could not set malloc's mmap and trim thresholds");
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = ServeConfig::resolve(args)?;
    let data_dir = std::path::absolute(&config.data_dir)
        .with_context(|| format!("data dir {}", config.data_dir.display()))?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let _lock = lock_data_dir(&data_dir)?;
    for listener in &config.listeners {
        ensure_port_free(listener.listen)?;
    }
    if let Some(http) = config.http_listen {
        ensure_port_free(http)?;
    }
    keep_large_blocks();
    let open_files = raise_open_files_limit();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shards = config.shards;
    // Signals go to the main thread only: block them before any shard starts.
    let signals = block_stop_signals();
    let stop = Arc::new(AtomicBool::new(false));
    let plan = MeshPlan::new(shards, MESH_CHANNEL_CAPACITY);
    let segment_cache = (
        config.segment_cache.0,
        config
            .segment_cache
            .1
            .unwrap_or_else(|| segment_files_share(open_files, shards)),
    );
    let node = node(&config, &data_dir);
    let listeners = listener_configs(&config);
    let mut handles = Vec::with_capacity(shards);
    for shard in 0..shards {
        let (data_dir, stop) = (data_dir.clone(), Arc::clone(&stop));
        let cpu = config.pin_shards.then_some(shard % cores);
        let (node, settings, plan) = (node.clone(), config.settings.clone(), plan.clone());
        let listeners = listeners.clone();
        let tail_cache = config.tail_cache_bytes_per_shard;
        let read_ahead = config.read_ahead_bytes_per_shard;
        let cleaner = config.cleaner;
        let http_listen = config.http_listen;
        let http = config.http.clone();
        let io_tuning = config.io_tuning;
        let handle = spawn_executor(&format!("shard-{shard}"), cpu, move || {
            engine::set_tail_cache_shard_budget(tail_cache);
            engine::set_read_ahead_shard_budget(read_ahead);
            engine::set_segment_cache_limits(segment_cache.0, segment_cache.1);
            if let Some((writes_in_flight, write_buffer_bytes)) = io_tuning {
                engine::set_io_tuning(writes_in_flight, write_buffer_bytes);
            }
            let services = Services {
                cleaner,
                http_listen,
                http,
            };
            run_shard(data_dir, listeners, node, settings, plan, stop, services)
        })?;
        handles.push(handle);
    }
    let listening: Vec<String> = config
        .listeners
        .iter()
        .map(|l| format!("{}://{} ({})", l.name, l.listen, l.protocol.name()))
        .collect();
    tracing::info!(shards, listen = listening.join(", "), data_dir = %data_dir.display(), "shardlog serving");
    let signal = wait_for_signal(&signals);
    tracing::info!(signal, "stopping: flushing and closing every partition");
    stop.store(true, Ordering::Release);
    let mut failed = false;
    for handle in handles {
        if let Err(e) = handle.join().map_err(anyhow::Error::from).and_then(|r| r) {
            tracing::error!(error = %e, "shard failed");
            failed = true;
        }
    }
    anyhow::ensure!(!failed, "a shard failed; see the log above");
    Ok(())
}

/// What a shard runs beside its Kafka listener.
struct Services {
    cleaner: Cleaner,
    /// The HTTP listener's address, if one is configured, and its users.
    http_listen: Option<SocketAddr>,
    http: net::http::HttpSecurity,
}

async fn run_shard(
    data_dir: PathBuf,
    configs: Vec<ListenerConfig>,
    node: Node,
    settings: Settings,
    plan: MeshPlan<ShardMessage>,
    stop: Arc<AtomicBool>,
    Services {
        cleaner,
        http_listen,
        http: http_security,
    }: Services,
) -> anyhow::Result<()> {
    let listeners = configs
        .iter()
        .map(|config| {
            net::server::bind(config)
                .with_context(|| format!("cannot listen on {} ({})", config.listen, config.name))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let listen = configs.first().map(|c| c.listen);
    let http = http_listen
        .zip(configs.first())
        .map(|(addr, config)| {
            net::http::bind(addr, http_security, config)
                .with_context(|| format!("cannot listen for HTTP on {addr}"))
        })
        .transpose()?;
    let shard = Shard::start(node, settings, &data_dir, plan).await?;
    tracing::info!(shard = shard.id(), partitions = shard.partitions.partitions().len(), listen = ?listen, "shard ready");
    let stopped = || stop.load(Ordering::Acquire);
    engine::rt::spawn_background(clean_logs(Rc::clone(&shard), Arc::clone(&stop), cleaner));
    let housekeeping = async {
        let mut last_retention = Instant::now();
        while !stopped() {
            sleep(STOP_POLL_INTERVAL).await;
            if last_retention.elapsed() >= RETENTION_CHECK_INTERVAL {
                shard.partitions.enforce_retention(wall_clock_ms()).await;
                last_retention = Instant::now();
            }
        }
    };
    let http = async {
        if let Some(http) = http {
            http.serve(Rc::clone(&shard), stopped).await;
        }
    };
    let kafka = futures::future::join_all(
        listeners
            .into_iter()
            .map(|listener| listener.serve(Rc::clone(&shard), stopped)),
    );
    futures::future::join3(kafka, housekeeping, http).await;
    shard.leave_cluster().await;
    shard.partitions.close_all().await?;
    Ok(())
}

/// What this broker tells clients and peers about itself.
fn node(config: &ServeConfig, data_dir: &std::path::Path) -> Node {
    Node {
        node_id: config.node_id,
        listeners: config
            .listeners
            .iter()
            .map(|l| net::broker::AdvertisedListener {
                name: l.name.clone(),
                host: l.advertised_host.clone(),
                port: i32::from(l.advertised_port),
            })
            .collect(),
        inter_broker_listener: config.inter_broker_listener.clone(),
        inter_broker_security: config.inter_broker_security.clone(),
        cluster_id: config
            .settings
            .cluster
            .as_ref()
            .map_or_else(|| CLUSTER_ID.to_string(), |c| c.cluster_id()),
        log_dir: std::fs::canonicalize(data_dir)
            .unwrap_or_else(|_| data_dir.to_path_buf())
            .display()
            .to_string(),
    }
}

/// Each Kafka listener's settings for the shards.
fn listener_configs(config: &ServeConfig) -> Vec<ListenerConfig> {
    let per_ip = net::server::admission::PerIp::new(config.max_connections_per_ip);
    config
        .listeners
        .iter()
        .map(|spec| {
            let mut listener = ListenerConfig::new(spec.listen);
            listener.name = Arc::from(spec.name.as_str());
            listener.request_bytes_max = config.request_bytes_max;
            listener.connections_max_idle = config.connections_max_idle;
            listener.in_flight_bytes_per_shard = config.in_flight_bytes_per_shard;
            listener.slow_request_log = config.slow_request_log;
            listener.per_ip = Arc::clone(&per_ip);
            listener.sasl = config.sasl.clone().filter(|_| spec.protocol.sasl());
            listener.tls = config.tls.clone().filter(|_| spec.protocol.tls());
            if let Some(interval) = config.stop_poll_interval {
                listener.stop_poll_interval = interval;
            }
            listener
        })
        .collect()
}

/// The log cleaner of one shard, in its background queue (a small CPU
/// share): every `backoff`, passes over the compacted partitions most in
/// need, while they make progress; until the broker stops.
async fn clean_logs(shard: Rc<Shard>, stop: Arc<AtomicBool>, cleaner: Cleaner) {
    engine::clean::set_io_limit(cleaner.io_bytes_per_second);
    let stopped = || stop.load(Ordering::Acquire);
    while !stopped() {
        let round = Instant::now();
        while round.elapsed() < cleaner.backoff {
            if stopped() {
                return;
            }
            sleep(STOP_POLL_INTERVAL).await;
        }
        for _ in 0..CLEANER_PASSES_PER_ROUND {
            if stopped() {
                return;
            }
            let pass = shard
                .partitions
                .clean_dirtiest(wall_clock_ms(), cleaner.map_bytes)
                .await;
            if pass.is_none_or(|(_, stats)| stats.dirty_from.is_none()) {
                break;
            }
        }
    }
}

/// The shards bind with SO_REUSEPORT, which would let them share the port
/// with any other socket of this user already listening there (traffic
/// split between unrelated processes). A plain bind first makes that an
/// error: it has SO_REUSEADDR and not SO_REUSEPORT, so it succeeds past the
/// TIME_WAIT connections a killed broker leaves and fails only if something
/// listens. The probe never listens itself: a client connecting in the
/// moment it existed would land in its queue and be reset when it closed
/// (seen in tests on a loaded machine: the first request after start
/// reset). A broker killed a moment ago may still listen for a moment (its
/// pending io_uring accept keeps the socket open until the kernel tears the
/// ring down), so this waits a little before giving up.
fn probe_bind(listen: SocketAddr) -> std::io::Result<()> {
    let domain = socket2::Domain::for_address(listen);
    let probe = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
    probe.set_reuse_address(true)?;
    probe.bind(&listen.into())
}

fn ensure_port_free(listen: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + PORT_WAIT;
    loop {
        match probe_bind(listen) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot listen on {listen}: another process listens there \
                         (a broker still running? `ss -ltnp 'sport = :{}'` names it)",
                        listen.port()
                    )
                });
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot listen on {listen}"));
            }
        }
    }
}

/// Takes an exclusive lock on `<data-dir>/.lock` for the process lifetime,
/// so a second broker on the same data dir refuses to start.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<File> {
    let path = dir.join(".lock");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    anyhow::ensure!(
        rc == 0,
        "data dir {} is in use by another shardlog process (lock {} is held)",
        dir.display(),
        path.display()
    );
    Ok(file)
}

fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use,
    // and pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> &'static str {
    let mut signal: libc::c_int = 0;
    // SAFETY: `set` is a valid, initialised signal set and `signal` a valid out pointer.
    unsafe { libc::sigwait(set, &mut signal) };
    if signal == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}
