//! The librdkafka driver (rdkafka crate): one producer on the open-loop
//! schedule, then one consumer reading the backlog.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::histogram::Latency;
use crate::schedule::Schedule;
use crate::workload::Workload;

/// What one run measured.
#[derive(Debug)]
pub struct RunResult {
    /// Publish latency (due time to acknowledgement) in the measured window.
    pub publish: Latency,
    /// Messages acknowledged in the measured window, and its length.
    pub acked: u64,
    pub window: Duration,
    pub errors: u64,
    /// Messages and seconds of the backlog read, if the workload reads it.
    pub consumed: Option<(u64, Duration)>,
}

impl RunResult {
    pub fn render(&self, workload: &Workload) -> String {
        let mb = |messages: u64, took: Duration| {
            messages as f64 * workload.message_bytes as f64 / 1e6 / took.as_secs_f64()
        };
        let mut out = format!(
            "produce: {:.0} msgs/s, {:.1} MB/s ({} messages of {} B in {:.1} s, {} errors)\n\
             publish latency: {}\n",
            self.acked as f64 / self.window.as_secs_f64(),
            mb(self.acked, self.window),
            self.acked,
            workload.message_bytes,
            self.window.as_secs_f64(),
            self.errors,
            self.publish.summary(),
        );
        if let Some((messages, took)) = self.consumed {
            out.push_str(&format!(
                "consume: {:.0} msgs/s, {:.1} MB/s ({messages} messages in {:.1} s)\n",
                messages as f64 / took.as_secs_f64(),
                mb(messages, took),
                took.as_secs_f64(),
            ));
        }
        out
    }
}

/// Delivery reports: the due time (ns from the schedule's start) travels as
/// the message's opaque.
struct Reports {
    schedule: Schedule,
    /// Messages due in [from, to) (ns) are measured.
    window_ns: (u64, u64),
    state: Mutex<ReportState>,
}

#[derive(Default)]
struct ReportState {
    publish: Latency,
    acked_in_window: u64,
    delivered: u64,
    errors: u64,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, due_ns: usize) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if result.is_err() {
            state.errors += 1;
            return;
        }
        state.delivered += 1;
        let due_ns = due_ns as u64;
        if (self.window_ns.0..self.window_ns.1).contains(&due_ns) {
            state.acked_in_window += 1;
            let due = self.schedule.start() + Duration::from_nanos(due_ns);
            state.publish.record(now.saturating_duration_since(due));
        }
    }
}

pub fn run(bootstrap: &str, workload: &Workload) -> anyhow::Result<RunResult> {
    let topic = format!(
        "bench-{}-{}",
        workload.name,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    create_topic(bootstrap, &topic, workload.partitions)?;
    let (produced, mut result) = produce(bootstrap, &topic, workload)?;
    if workload.consume_backlog {
        result.consumed = Some(consume(bootstrap, &topic, workload, produced)?);
    }
    Ok(result)
}

/// Creates a topic with `partitions` partitions (replication factor 1).
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = futures::executor::block_on(admin.create_topics([&new], &AdminOptions::new()))?;
    for result in results {
        result.map_err(|(name, code)| anyhow::anyhow!("creating {name}: {code}"))?;
    }
    Ok(())
}

/// Sends on the schedule until the warm-up and measured window are over,
/// then waits for every outstanding report.
fn produce(bootstrap: &str, topic: &str, workload: &Workload) -> anyhow::Result<(u64, RunResult)> {
    let start = Instant::now();
    let schedule = Schedule::new(start, workload.rate);
    let warmup_ns = schedule.offset_ns(start + workload.warmup);
    let end_ns = schedule.offset_ns(start + workload.warmup + workload.duration);
    let reports = Reports {
        schedule,
        window_ns: (warmup_ns, end_ns),
        state: Mutex::default(),
    };
    let producer: BaseProducer<Reports> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", workload.acks)
        .set("linger.ms", workload.linger_ms.to_string())
        .set("enable.idempotence", "false")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(reports)?;
    let payload = payload(workload.message_bytes);
    let end = start + workload.warmup + workload.duration;
    let mut sent = 0u64;
    loop {
        let due = schedule.due(sent);
        let now = Instant::now();
        let due_at = due.unwrap_or(now);
        if due_at >= end || now >= end {
            break;
        }
        if due_at > now {
            producer.poll(Duration::ZERO);
            std::thread::sleep((due_at - now).min(Duration::from_micros(200)));
            continue;
        }
        let due_ns = usize::try_from(schedule.offset_ns(due_at)).unwrap_or(usize::MAX);
        let partition = i32::try_from(sent % workload.partitions.max(1) as u64).unwrap_or(0);
        let mut record = BaseRecord::with_opaque_to(topic, due_ns)
            .partition(partition)
            .payload(&payload[..]);
        loop {
            match producer.send::<[u8], [u8]>(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        sent += 1;
        if sent.is_multiple_of(1024) {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(60))?;
    let window = workload.duration;
    let state = std::mem::take(
        &mut *producer
            .context()
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    Ok((
        state.delivered,
        RunResult {
            publish: state.publish,
            acked: state.acked_in_window,
            window,
            errors: state.errors,
            consumed: None,
        },
    ))
}

/// Reads `messages` from the beginning of every partition; returns how many
/// and how long it took.
fn consume(
    bootstrap: &str,
    topic: &str,
    workload: &Workload,
    messages: u64,
) -> anyhow::Result<(u64, Duration)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "shardlog-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "4194304")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..workload.partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let start = Instant::now();
    let mut read = 0u64;
    let give_up = start + Duration::from_secs(300);
    while read < messages {
        anyhow::ensure!(
            Instant::now() < give_up,
            "read {read} of {messages} in 300 s"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) if message.payload().is_some() => read += 1,
            Some(Ok(_)) => {}
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
    Ok((read, start.elapsed()))
}

/// Incompressible bytes (xorshift), so codecs and page sizes flatter nothing.
fn payload(size: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}
