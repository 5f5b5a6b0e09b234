//! `shardlog groups list|describe`: consumer groups and their lag, read
//! from any Kafka-compatible broker through the Kafka protocol (librdkafka:
//! ListGroups, DescribeGroups, OffsetFetch, ListOffsets), printed like
//! `kafka-consumer-groups.sh --describe`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Kafka's internal topics, whose offsets no consumer group commits.
const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every group: name, state, protocol type.
    List(Target),
    /// A group's members and, per partition it committed, the committed
    /// offset, the log end offset (the last stable offset: an open
    /// transaction's records are not yet readable by read_committed
    /// consumers) and the lag.
    Describe {
        #[command(flatten)]
        target: Target,
        /// The group.
        group: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct Target {
    /// The broker to ask (`HOST:PORT`).
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List(target) => list(&target),
        Command::Describe { target, group } => {
            print!("{}", describe(&target, &group)?);
            Ok(())
        }
    }
}

/// A client that never joins: a group id only so librdkafka can ask about
/// that group's offsets.
fn client(bootstrap: &str, group: &str) -> anyhow::Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        // The end offsets are what a read_committed consumer can reach:
        // the last stable offset (the log end without open transactions).
        .set("isolation.level", "read_committed")
        .create()
        .context("creating the Kafka client")
}

fn list(target: &Target) -> anyhow::Result<()> {
    let consumer = client(&target.bootstrap, "shardlog-groups-cli")?;
    let groups = consumer.fetch_group_list(None, TIMEOUT)?;
    println!("{:<40} {:<20} PROTOCOL-TYPE", "GROUP", "STATE");
    for group in groups.groups() {
        println!(
            "{:<40} {:<20} {}",
            group.name(),
            group.state(),
            group.protocol_type()
        );
    }
    Ok(())
}

/// One committed partition's row.
struct Row {
    topic: String,
    partition: i32,
    committed: i64,
    end: i64,
    owner: Option<(String, String, String)>,
}

fn describe(target: &Target, group: &str) -> anyhow::Result<String> {
    let consumer = client(&target.bootstrap, group)?;
    let groups = consumer.fetch_group_list(Some(group), TIMEOUT)?;
    let info = groups
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .with_context(|| format!("group {group:?} not found"))?;
    // Which member owns which partition, from the assignments.
    let mut owners: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    for member in info.members() {
        let Some(bytes) = member.assignment() else {
            continue;
        };
        for (topic, partition) in assigned(bytes) {
            let who = (
                member.id().to_string(),
                member.client_host().to_string(),
                member.client_id().to_string(),
            );
            owners.insert((topic, partition), who);
        }
    }
    // Every partition of every topic, asked for its committed offset.
    let metadata = consumer.fetch_metadata(None, TIMEOUT)?;
    let mut wanted = TopicPartitionList::new();
    for topic in metadata
        .topics()
        .iter()
        .filter(|t| !INTERNAL_TOPICS.contains(&t.name()))
    {
        for partition in topic.partitions() {
            wanted.add_partition(topic.name(), partition.id());
        }
    }
    let committed = consumer.committed_offsets(wanted, TIMEOUT)?;
    let mut rows = Vec::new();
    for element in committed.elements() {
        let Offset::Offset(offset) = element.offset() else {
            continue;
        };
        let (_, end) = consumer.fetch_watermarks(element.topic(), element.partition(), TIMEOUT)?;
        let key = (element.topic().to_string(), element.partition());
        rows.push(Row {
            topic: key.0.clone(),
            partition: key.1,
            committed: offset,
            end,
            owner: owners.get(&key).cloned(),
        });
    }
    Ok(render(group, info.state(), &rows))
}

/// The partitions a ConsumerProtocolAssignment names.
fn assigned(bytes: &[u8]) -> Vec<(String, i32)> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let Some(version) = bytes.first_chunk::<2>().map(|v| i16::from_be_bytes(*v)) else {
        return Vec::new();
    };
    bytes::Buf::advance(&mut buf, 2);
    ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3))
        .map(|a| {
            a.assigned_partitions
                .into_iter()
                .flat_map(|t| {
                    let topic = t.topic.0.to_string();
                    t.partitions.into_iter().map(move |p| (topic.clone(), p))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn render(group: &str, state: &str, rows: &[Row]) -> String {
    let mut out = format!("group {group} ({state})\n");
    out.push_str(&format!(
        "{:<24} {:>9} {:>14} {:>14} {:>8}  {:<40} {:<16} CLIENT-ID\n",
        "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST"
    ));
    for row in rows {
        let (id, host, client) = row
            .owner
            .clone()
            .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
        out.push_str(&format!(
            "{:<24} {:>9} {:>14} {:>14} {:>8}  {:<40} {:<16} {}\n",
            row.topic,
            row.partition,
            row.committed,
            row.end,
            (row.end - row.committed).max(0),
            id,
            host,
            client
        ));
    }
    out
}
