//! The admin CLI over the Kafka protocol, for any Kafka-compatible broker
//! (librdkafka underneath), in the spirit of rpk and kcat:
//! `shardlog topic list|create|describe|alter-config|add-partitions|delete`,
//! `shardlog produce TOPIC` (lines or JSON lines from stdin) and
//! `shardlog consume TOPIC` (JSON lines out).

use std::io::{BufRead, Write as _};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::executor::block_on;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Target {
    /// The broker to ask (`HOST:PORT`).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Authenticate with SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, requires = "sasl_user")]
    pub sasl_mechanism: Option<String>,
    #[arg(long, requires = "sasl_mechanism")]
    pub sasl_user: Option<String>,
    /// The SASL password (or the environment's SHARDLOG_SASL_PASSWORD).
    #[arg(long, env = "SHARDLOG_SASL_PASSWORD", hide_env_values = true)]
    pub sasl_password: Option<String>,
    /// Connect over TLS, trusting the CAs of this PEM file.
    #[arg(long)]
    pub ssl_ca: Option<std::path::PathBuf>,
    /// A client certificate (PEM) to present over TLS, with `--ssl-key`.
    #[arg(long, requires_all = ["ssl_ca", "ssl_key"])]
    pub ssl_cert: Option<std::path::PathBuf>,
    #[arg(long, requires = "ssl_cert")]
    pub ssl_key: Option<std::path::PathBuf>,
}

impl Target {
    /// How to authenticate, if the flags say to.
    pub fn sasl(&self) -> anyhow::Result<Option<crate::wire::Sasl>> {
        let (Some(mechanism), Some(user)) = (&self.sasl_mechanism, &self.sasl_user) else {
            return Ok(None);
        };
        let mechanism = net::sasl::Mechanism::from_name(mechanism).with_context(|| {
            format!("--sasl-mechanism {mechanism:?}: not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
        })?;
        let password = self
            .sasl_password
            .clone()
            .context("--sasl-password (or SHARDLOG_SASL_PASSWORD) is needed with --sasl-user")?;
        Ok(Some(crate::wire::Sasl {
            mechanism,
            user: user.clone(),
            password,
        }))
    }

    /// TLS, if the flags ask for it.
    pub fn tls(&self) -> Option<crate::wire::Tls> {
        self.ssl_ca.as_ref().map(|ca| crate::wire::Tls {
            ca: ca.clone(),
            client: self.ssl_cert.clone().zip(self.ssl_key.clone()),
        })
    }

    /// A librdkafka configuration for this broker, authenticating as the
    /// flags say.
    fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        let sasl = self.sasl()?;
        let protocol = match (&sasl, &self.ssl_ca) {
            (None, None) => "PLAINTEXT",
            (None, Some(_)) => "SSL",
            (Some(_), None) => "SASL_PLAINTEXT",
            (Some(_), Some(_)) => "SASL_SSL",
        };
        config.set("security.protocol", protocol);
        if let Some(sasl) = sasl {
            config
                .set("sasl.mechanism", sasl.mechanism.name())
                .set("sasl.username", &sasl.user)
                .set("sasl.password", &sasl.password);
        }
        let path = |p: &std::path::PathBuf| p.to_string_lossy().into_owned();
        if let Some(ca) = &self.ssl_ca {
            config.set("ssl.ca.location", path(ca));
        }
        if let (Some(cert), Some(key)) = (&self.ssl_cert, &self.ssl_key) {
            config
                .set("ssl.certificate.location", path(cert))
                .set("ssl.key.location", path(key));
        }
        Ok(config)
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum TopicCommand {
    /// Every topic: name, partitions, replication factor.
    List(Target),
    /// Creates a topic.
    Create {
        #[command(flatten)]
        target: Target,
        name: String,
        #[arg(short, long, default_value_t = 1)]
        partitions: i32,
        #[arg(short, long, default_value_t = 1)]
        replicas: i32,
        /// A topic config, `key=value` (repeatable).
        #[arg(short, long = "config", value_parser = key_value)]
        configs: Vec<(String, String)>,
    },
    /// Partitions (leader, replicas, in-sync replicas) and the configs
    /// set on the topic.
    Describe {
        #[command(flatten)]
        target: Target,
        name: String,
    },
    /// Sets (`-s key=value`) or removes (`-d key`) topic configs, keeping
    /// the others set on it.
    AlterConfig {
        #[command(flatten)]
        target: Target,
        name: String,
        #[arg(short, long = "set", value_parser = key_value)]
        set: Vec<(String, String)>,
        #[arg(short, long = "delete")]
        delete: Vec<String>,
    },
    /// Raises the partition count to `--to`.
    AddPartitions {
        #[command(flatten)]
        target: Target,
        name: String,
        #[arg(long)]
        to: usize,
    },
    /// Deletes topics.
    Delete {
        #[command(flatten)]
        target: Target,
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    target: Target,
    topic: String,
    /// Each line a JSON message: {"key", "value", "partition",
    /// "headers": {"name": "value", ...}} (all but value optional).
    #[arg(long)]
    json: bool,
    /// Plain lines: `KEY<sep>VALUE`, split at the first separator.
    #[arg(short = 'k', long)]
    key_separator: Option<String>,
    /// Every message to this partition (else by key, or spread).
    #[arg(short, long)]
    partition: Option<i32>,
    /// A header on every message, `name=value` (repeatable).
    #[arg(short = 'H', long = "header", value_parser = key_value)]
    headers: Vec<(String, String)>,
    /// acks: all (the default), 1 or 0.
    #[arg(long, default_value = "all")]
    acks: String,
}

#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    target: Target,
    topic: String,
    /// Where to start: beginning, end, an offset (every partition), or
    /// @MILLIS (the first record at or after that timestamp). In a group,
    /// only where a partition without a committed offset starts
    /// (beginning or end).
    #[arg(long, default_value = "beginning")]
    from: String,
    /// Consume in this group (its committed offsets first; commits as it
    /// goes).
    #[arg(short, long)]
    group: Option<String>,
    /// Only this partition (without a group).
    #[arg(short, long)]
    partition: Option<i32>,
    /// Stop after this many messages.
    #[arg(short = 'n', long)]
    count: Option<usize>,
    /// Stop when nothing arrives for this long.
    #[arg(long)]
    idle_ms: Option<u64>,
    /// read_committed (transactions' aborted records skipped) or
    /// read_uncommitted.
    #[arg(long, default_value = "read_committed")]
    isolation: String,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

fn admin(target: &Target) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    target.client_config()?.create().context("admin client")
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(TIMEOUT))
}

pub fn topic(command: TopicCommand) -> anyhow::Result<()> {
    match command {
        TopicCommand::List(target) => list(&target),
        TopicCommand::Create {
            target,
            name,
            partitions,
            replicas,
            configs,
        } => {
            let mut topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(replicas));
            for (k, v) in &configs {
                topic = topic.set(k, v);
            }
            for result in block_on(admin(&target)?.create_topics(&[topic], &options()))? {
                result.map_err(|(t, e)| anyhow::anyhow!("create {t}: {e}"))?;
            }
            println!("created {name}");
            Ok(())
        }
        TopicCommand::Describe { target, name } => describe(&target, &name),
        TopicCommand::AlterConfig {
            target,
            name,
            set,
            delete,
        } => alter_config(&target, &name, &set, &delete),
        TopicCommand::AddPartitions { target, name, to } => {
            let grow = NewPartitions::new(&name, to);
            for result in block_on(admin(&target)?.create_partitions(&[grow], &options()))? {
                result.map_err(|(t, e)| anyhow::anyhow!("add partitions to {t}: {e}"))?;
            }
            println!("{name} has {to} partitions");
            Ok(())
        }
        TopicCommand::Delete { target, names } => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            for result in block_on(admin(&target)?.delete_topics(&names, &options()))? {
                let name = result.map_err(|(t, e)| anyhow::anyhow!("delete {t}: {e}"))?;
                println!("deleted {name}");
            }
            Ok(())
        }
    }
}

fn list(target: &Target) -> anyhow::Result<()> {
    let admin = admin(target)?;
    let metadata = admin.inner().fetch_metadata(None, TIMEOUT)?;
    println!("{:<40} {:>10} {:>8}", "TOPIC", "PARTITIONS", "REPLICAS");
    let mut topics: Vec<_> = metadata.topics().iter().collect();
    topics.sort_by_key(|t| t.name());
    for t in topics {
        let replicas = t.partitions().first().map_or(0, |p| p.replicas().len());
        println!(
            "{:<40} {:>10} {:>8}",
            t.name(),
            t.partitions().len(),
            replicas
        );
    }
    Ok(())
}

fn describe(target: &Target, name: &str) -> anyhow::Result<()> {
    let admin = admin(target)?;
    let metadata = admin.inner().fetch_metadata(Some(name), TIMEOUT)?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == name)
        .context("no such topic in the metadata")?;
    if let Some(e) = topic.error() {
        bail!("{name}: {:?}", rdkafka::error::RDKafkaErrorCode::from(e));
    }
    println!("topic {name}: {} partitions", topic.partitions().len());
    println!(
        "{:>9} {:>6} {:<16} {:<16}",
        "PARTITION", "LEADER", "REPLICAS", "IN-SYNC"
    );
    let mut partitions: Vec<_> = topic.partitions().iter().collect();
    partitions.sort_by_key(|p| p.id());
    for p in partitions {
        println!(
            "{:>9} {:>6} {:<16} {:<16}",
            p.id(),
            p.leader(),
            format!("{:?}", p.replicas()),
            format!("{:?}", p.isr())
        );
    }
    println!("configs set on the topic:");
    for (key, value) in topic_configs(&admin, name)? {
        println!("  {key}={value}");
    }
    Ok(())
}

/// The configs set on the topic itself (not defaults), sorted.
fn topic_configs(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let resource = ResourceSpecifier::Topic(name);
    let mut out = Vec::new();
    for result in block_on(admin.describe_configs(&[resource], &options()))? {
        let resource = result.map_err(|e| anyhow::anyhow!("describe configs of {name}: {e}"))?;
        for entry in resource.entries {
            if entry.source == rdkafka::admin::ConfigSource::DynamicTopic
                && let Some(value) = entry.value
            {
                out.push((entry.name, value));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn alter_config(
    target: &Target,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> anyhow::Result<()> {
    let admin = admin(target)?;
    // AlterConfigs replaces the topic's whole set: the current one, changed.
    let mut configs: std::collections::BTreeMap<String, String> =
        topic_configs(&admin, name)?.into_iter().collect();
    for key in delete {
        configs.remove(key);
    }
    for (k, v) in set {
        configs.insert(k.clone(), v.clone());
    }
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(name));
    for (k, v) in &configs {
        alter = alter.set(k, v);
    }
    for result in block_on(admin.alter_configs(&[alter], &options()))? {
        result.map_err(|(_, e)| anyhow::anyhow!("alter configs of {name}: {e}"))?;
    }
    for (k, v) in &configs {
        println!("{k}={v}");
    }
    Ok(())
}

/// One message as `produce --json` reads it.
#[derive(Debug, serde::Deserialize)]
struct JsonMessage {
    key: Option<String>,
    value: Option<String>,
    partition: Option<i32>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

pub fn produce(args: &ProduceArgs) -> anyhow::Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = args
        .target
        .client_config()?
        .set("acks", &args.acks)
        .set("linger.ms", "5")
        .create()
        .context("producer")?;
    let mut count = 0usize;
    for (index, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        let message = if args.json {
            serde_json::from_str::<JsonMessage>(&line)
                .with_context(|| format!("line {}: not a JSON message", index + 1))?
        } else {
            let (key, value) = match args
                .key_separator
                .as_deref()
                .and_then(|s| line.split_once(s))
            {
                Some((k, v)) => (Some(k.to_string()), v.to_string()),
                None => (None, line.clone()),
            };
            JsonMessage {
                key,
                value: Some(value),
                partition: None,
                headers: Default::default(),
            }
        };
        let mut headers = OwnedHeaders::new();
        for (k, v) in args
            .headers
            .iter()
            .map(|(k, v)| (k, v))
            .chain(message.headers.iter())
        {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let mut record: BaseRecord<'_, str, str> = BaseRecord::to(&args.topic).headers(headers);
        if let Some(key) = &message.key {
            record = record.key(key.as_str());
        }
        if let Some(value) = &message.value {
            record = record.payload(value.as_str());
        }
        if let Some(partition) = message.partition.or(args.partition) {
            record = record.partition(partition);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) if e.to_string().contains("Queue full") => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => bail!("line {}: {e}", index + 1),
            }
        }
        count += 1;
    }
    producer
        .flush(Duration::from_secs(60))
        .context("messages not acknowledged within 60 s")?;
    eprintln!("produced {count} messages to {}", args.topic);
    Ok(())
}

pub fn consume(args: &ConsumeArgs) -> anyhow::Result<()> {
    let mut config = args.target.client_config()?;
    config.set("isolation.level", &args.isolation).set(
        "auto.offset.reset",
        if args.from == "end" {
            "latest"
        } else {
            "earliest"
        },
    );
    let consumer: BaseConsumer = match &args.group {
        Some(group) => {
            let consumer: BaseConsumer = config.set("group.id", group).create()?;
            consumer.subscribe(&[&args.topic])?;
            consumer
        }
        None => {
            let consumer: BaseConsumer = config
                .set("group.id", "shardlog-cli")
                .set("enable.auto.commit", "false")
                .create()?;
            consumer.assign(&start_positions(&consumer, args)?)?;
            consumer
        }
    };
    let mut out = std::io::stdout().lock();
    let mut count = 0usize;
    let mut last = Instant::now();
    while args.count.is_none_or(|n| count < n) {
        if args
            .idle_ms
            .is_some_and(|ms| last.elapsed() >= Duration::from_millis(ms))
        {
            break;
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        last = Instant::now();
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        let headers: Vec<serde_json::Value> = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| serde_json::json!({"key": h.key, "value": text(h.value)}))
                    .collect()
            })
            .unwrap_or_default();
        let line = serde_json::json!({
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
            "timestamp": message.timestamp().to_millis(),
            "key": text(message.key()),
            "value": text(message.payload()),
            "headers": headers,
        });
        writeln!(out, "{line}")?;
        count += 1;
    }
    out.flush()?;
    if args.group.is_some() && count > 0 {
        consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)?;
    }
    Ok(())
}

/// Without a group: every partition (or the one asked for) from `--from`.
fn start_positions(
    consumer: &BaseConsumer,
    args: &ConsumeArgs,
) -> anyhow::Result<TopicPartitionList> {
    let metadata = consumer.fetch_metadata(Some(&args.topic), TIMEOUT)?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == args.topic)
        .context("no such topic")?;
    if let Some(e) = topic.error() {
        bail!(
            "{}: {:?}",
            args.topic,
            rdkafka::error::RDKafkaErrorCode::from(e)
        );
    }
    let partitions: Vec<i32> = topic
        .partitions()
        .iter()
        .map(|p| p.id())
        .filter(|p| args.partition.is_none_or(|only| only == *p))
        .collect();
    let start = match args.from.as_str() {
        "beginning" => Offset::Beginning,
        "end" => Offset::End,
        at if at.starts_with('@') => {
            let ms: i64 = at[1..].parse().context("--from @MILLIS")?;
            let mut asked = TopicPartitionList::new();
            for p in &partitions {
                asked.add_partition_offset(&args.topic, *p, Offset::Offset(ms))?;
            }
            return Ok(consumer.offsets_for_times(asked, TIMEOUT)?);
        }
        offset => Offset::Offset(
            offset
                .parse()
                .context("--from beginning|end|OFFSET|@MILLIS")?,
        ),
    };
    let mut list = TopicPartitionList::new();
    for p in partitions {
        list.add_partition_offset(&args.topic, p, start)?;
    }
    Ok(list)
}
