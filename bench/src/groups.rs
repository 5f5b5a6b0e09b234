//! `shardlog bench groups`: consumer-group costs through librdkafka: how
//! long N members take to split a topic, how long one more member's
//! rebalance takes, and synchronous offset commits per second.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::histogram::Latency;

#[derive(Debug, clap::Args)]
pub struct GroupsArgs {
    /// The broker to load (`HOST:PORT`).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Members joining at once.
    #[arg(long, default_value_t = 10)]
    pub members: usize,
    /// Partitions of the topic they split.
    #[arg(long, default_value_t = 100)]
    pub partitions: i32,
    /// Seconds of synchronous commits.
    #[arg(long, default_value_t = 10)]
    pub commit_seconds: u64,
}

fn consumer(bootstrap: &str, group: &str) -> anyhow::Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "30000")
        .set("heartbeat.interval.ms", "1000")
        .create()?)
}

/// Polls until the members' assignments are disjoint, all non-empty, and
/// cover the topic; returns how long that took.
fn settle(members: &[BaseConsumer], partitions: usize, since: Instant) -> anyhow::Result<Duration> {
    let give_up = since + Duration::from_secs(120);
    loop {
        for member in members {
            let _ = member.poll(Duration::from_millis(1));
        }
        let owned: Vec<BTreeSet<i32>> = members
            .iter()
            .map(|m| {
                m.assignment()
                    .map(|a| a.elements().iter().map(|e| e.partition()).collect())
                    .unwrap_or_default()
            })
            .collect();
        let union: BTreeSet<i32> = owned.iter().flatten().copied().collect();
        let total: usize = owned.iter().map(BTreeSet::len).sum();
        if owned.iter().all(|o| !o.is_empty()) && total == partitions && union.len() == partitions {
            return Ok(since.elapsed());
        }
        anyhow::ensure!(
            Instant::now() < give_up,
            "the group did not settle in 120 s"
        );
    }
}

pub fn run(args: &GroupsArgs) -> anyhow::Result<()> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let topic = format!("bench-groups-{stamp}");
    let group = format!("bench-group-{stamp}");
    let properties = std::collections::BTreeMap::new();
    crate::rdkafka_driver::create_topic(
        &args.bootstrap,
        &properties,
        &topic,
        args.partitions,
        1,
        &[],
    )?;
    let partitions = usize::try_from(args.partitions).unwrap_or(0);

    let mut members = Vec::with_capacity(args.members + 1);
    for _ in 0..args.members {
        members.push(consumer(&args.bootstrap, &group)?);
    }
    let start = Instant::now();
    for member in &members {
        member.subscribe(&[&topic])?;
    }
    let first = settle(&members, partitions, start)?;
    println!(
        "{} members split {} partitions from nothing in {:.0} ms (includes the broker's group.initial.rebalance.delay)",
        args.members,
        args.partitions,
        first.as_secs_f64() * 1e3
    );
    let extra = consumer(&args.bootstrap, &group)?;
    let start = Instant::now();
    extra.subscribe(&[&topic])?;
    members.push(extra);
    let rebalance = settle(&members, partitions, start)?;
    println!(
        "one more member: every member reassigned in {:.0} ms",
        rebalance.as_secs_f64() * 1e3
    );
    drop(members);

    let committer = consumer(&args.bootstrap, &format!("{group}-commits"))?;
    let mut latency = Latency::new();
    let until = Instant::now() + Duration::from_secs(args.commit_seconds);
    let mut commits = 0u64;
    let began = Instant::now();
    while Instant::now() < until {
        let mut offsets = TopicPartitionList::new();
        let partition = i32::try_from(commits % partitions.max(1) as u64).unwrap_or(0);
        let offset = i64::try_from(commits).unwrap_or(i64::MAX);
        offsets.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
        let sent = Instant::now();
        committer.commit(&offsets, CommitMode::Sync)?;
        latency.record(sent.elapsed());
        commits += 1;
    }
    println!(
        "synchronous offset commits: {:.0}/s over {:.1} s; latency {}",
        commits as f64 / began.elapsed().as_secs_f64(),
        began.elapsed().as_secs_f64(),
        latency.summary()
    );
    Ok(())
}
