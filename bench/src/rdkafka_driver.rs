//! The librdkafka driver (rdkafka crate): each producer and consumer of a
//! workload is a librdkafka client on its own thread.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::cost::CumulativeRequests;
use crate::message::Generator;
use crate::schedule::{BEHIND_MAX, Schedule};
use crate::tally::{ConsumerHandle, ProducerHandle};
use crate::workload::Workload;

/// librdkafka's version, for reports.
pub fn version() -> String {
    rdkafka::util::get_rdkafka_version().1
}

/// A librdkafka configuration with the workload's `client-config`.
fn client_config(properties: &BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in properties {
        config.set(key, value);
    }
    config
}

/// Creates a topic with `partitions` partitions of `replication_factor`
/// replicas and `configs`, through an admin client with `properties`.
pub fn create_topic(
    bootstrap: &str,
    properties: &BTreeMap<String, String>,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(&str, &str)],
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(properties)
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let mut new = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(i32::from(replication_factor)),
    );
    for (key, value) in configs {
        new = new.set(key, value);
    }
    let results = futures::executor::block_on(admin.create_topics([&new], &AdminOptions::new()))?;
    for result in results {
        result.map_err(|(name, code)| anyhow::anyhow!("creating {name}: {code}"))?;
    }
    Ok(())
}

/// What travels with a message to its delivery report.
struct Sent {
    sequence: u64,
    due_ns: u64,
    bytes: usize,
}

/// Delivery reports and statistics go to the producer's tally.
struct Reports {
    tally: ProducerHandle,
    /// librdkafka's count of retried requests (statistics).
    retries: AtomicU64,
    requests: CumulativeRequests,
}

impl ClientContext for Reports {
    fn stats(&self, statistics: Statistics) {
        let retries = statistics.brokers.values().map(|b| b.txretries).sum();
        self.retries.store(retries, Ordering::Relaxed);
        self.requests
            .observe(statistics.brokers.values().map(|b| b.tx).sum());
    }
}

/// A consumer's statistics: the requests it sent.
#[derive(Default)]
struct Counting {
    requests: CumulativeRequests,
}

impl ClientContext for Counting {
    fn stats(&self, statistics: Statistics) {
        self.requests
            .observe(statistics.brokers.values().map(|b| b.tx).sum());
    }
}

impl ConsumerContext for Counting {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<Sent>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Sent>) {
        self.tally.acked(
            sent.sequence,
            sent.due_ns,
            sent.bytes,
            result.is_ok(),
            Instant::now(),
        );
    }
}

/// How long a transactional producer waits for its coordinator.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Commits the open transaction once its messages are acknowledged.
/// librdkafka's commit waits for them itself, but in 100 ms steps (its
/// flush wait): a transaction of 100 messages would take 100 ms whatever
/// the broker, so the wait is done here in steps of 100 us.
fn commit(producer: &ThreadedProducer<Reports>) -> anyhow::Result<()> {
    let deadline = Instant::now() + TRANSACTION_TIMEOUT;
    while producer.in_flight_count() > 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "messages unacknowledged for 60 s"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
    producer.commit_transaction(TRANSACTION_TIMEOUT)?;
    Ok(())
}

/// One producer: sends `generator`'s messages to `topic` on `schedule`
/// until `end`, then waits for every delivery report.
#[derive(Debug)]
pub struct ProducerPlan<'a> {
    pub bootstrap: &'a str,
    pub topic: &'a str,
    pub partitions: i32,
    pub workload: &'a Workload,
    pub schedule: Schedule,
    pub end: Instant,
    /// Where this producer's round-robin starts (spreads producers).
    pub first_partition: i32,
}

pub fn produce(
    plan: &ProducerPlan<'_>,
    tally: ProducerHandle,
    mut generator: Generator,
) -> anyhow::Result<()> {
    let workload = plan.workload;
    // A ThreadedProducer serves delivery reports on its own thread as they
    // come: a sender that polled between sends would take one report per
    // poll and, on a busy machine, fall behind them (reports queued in the
    // client read as broker latency).
    let mut config = client_config(&workload.client_config);
    if let Some(n) = workload.max_in_flight {
        config.set("max.in.flight.requests.per.connection", n.to_string());
    }
    if workload.transaction_messages.is_some() {
        static PRODUCERS: AtomicU64 = AtomicU64::new(0);
        let n = PRODUCERS.fetch_add(1, Ordering::Relaxed);
        let id = format!("shardlog-bench-{}-{n}", std::process::id());
        config.set("transactional.id", id);
    }
    let idempotence = workload.idempotence || workload.transaction_messages.is_some();
    let producer: ThreadedProducer<Reports> = config
        .set("bootstrap.servers", plan.bootstrap)
        .set("acks", workload.acks.as_config())
        .set("linger.ms", workload.linger_ms.to_string())
        .set("batch.size", workload.batch_bytes.to_string())
        .set("compression.type", workload.compression.as_config())
        .set("enable.idempotence", idempotence.to_string())
        // The Java client's partitioner, so keys land where Kafka puts them.
        .set("partitioner", "murmur2_random")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .set("statistics.interval.ms", "1000")
        .create_with_context(Reports {
            tally: tally.clone(),
            retries: AtomicU64::new(0),
            requests: CumulativeRequests::default(),
        })?;
    let transaction = workload.transaction_messages.map(u64::from);
    if transaction.is_some() {
        producer.init_transactions(TRANSACTION_TIMEOUT)?;
        producer.begin_transaction()?;
    }
    let clock = tally.clock();
    let mut sequence = 0u64;
    let mut partition = plan.first_partition;
    loop {
        let now = Instant::now();
        let due_at = plan.schedule.due(sequence).unwrap_or(now);
        // Every message due before the end is sent, however late.
        if due_at >= plan.end {
            break;
        }
        anyhow::ensure!(
            now < plan.end + BEHIND_MAX,
            "the producer is far behind its schedule"
        );
        if due_at > now {
            std::thread::sleep((due_at - now).min(Duration::from_micros(200)));
            continue;
        }
        let due_ns = clock.ns(due_at);
        let (key, payload) = generator.message(sequence, due_ns);
        let sent = Box::new(Sent {
            sequence,
            due_ns,
            bytes: payload.len(),
        });
        let mut record = BaseRecord::with_opaque_to(plan.topic, sent).payload(&payload[..]);
        match &key {
            Some(key) => record = record.key(&key[..]),
            None => {
                record = record.partition(partition);
                partition = (partition + 1) % plan.partitions.max(1);
            }
        }
        loop {
            match producer.send::<[u8], [u8]>(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        tally.sent();
        sequence += 1;
        // A commit waits for every message of the transaction, then for
        // the markers: the next messages are sent late by that much.
        if transaction.is_some_and(|n| sequence.is_multiple_of(n)) {
            commit(&producer)?;
            producer.begin_transaction()?;
        }
    }
    if transaction.is_some() {
        commit(&producer)?;
    }
    producer.flush(Duration::from_secs(60))?;
    tally.set_retries(producer.context().retries.load(Ordering::Relaxed));
    Ok(())
}

/// What a consumer reads: a group's share of the topics, or partitions.
#[derive(Debug, Clone)]
pub enum Reading {
    Group { group: String, topics: Vec<String> },
    Partitions(Vec<(String, i32)>),
}

/// One consumer: reads until the run says stop, telling the tally how many
/// partitions it owns (checked every 100 ms).
pub fn consume(
    bootstrap: &str,
    properties: &BTreeMap<String, String>,
    reading: &Reading,
    read_committed: bool,
    tally: ConsumerHandle,
) -> anyhow::Result<()> {
    let mut config = client_config(properties);
    let isolation = if read_committed {
        "read_committed"
    } else {
        "read_uncommitted"
    };
    config
        .set("bootstrap.servers", bootstrap)
        .set("isolation.level", isolation)
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "4194304")
        .set("statistics.interval.ms", "1000");
    let consumer: BaseConsumer<Counting> = match reading {
        Reading::Group { group, topics } => {
            let consumer: BaseConsumer<Counting> = config
                .set("group.id", group)
                .create_with_context(Counting::default())?;
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            consumer.subscribe(&topics)?;
            consumer
        }
        Reading::Partitions(partitions) => {
            let consumer: BaseConsumer<Counting> = config
                .set("group.id", "shardlog-bench-standalone")
                .set("enable.auto.commit", "false")
                .create_with_context(Counting::default())?;
            let mut assignment = TopicPartitionList::new();
            for (topic, partition) in partitions {
                assignment.add_partition_offset(topic, *partition, Offset::Beginning)?;
            }
            consumer.assign(&assignment)?;
            consumer
        }
    };
    let mut checked = Instant::now();
    while !tally.stopped() {
        let polled = consumer.poll(Duration::from_millis(50));
        if checked.elapsed() >= Duration::from_millis(100) {
            checked = Instant::now();
            let owned = consumer.assignment().map_or(0, |a| a.count());
            tally.owns(owned as u64);
        }
        match polled {
            Some(Ok(message)) => tally.consumed(message.payload().unwrap_or(&[]), Instant::now()),
            Some(Err(e)) => {
                tally.error();
                eprintln!("consumer: {e}");
            }
            None => {}
        }
    }
    Ok(())
}
