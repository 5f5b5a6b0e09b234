//! `shardlog bench`: the same workload against any Kafka-compatible
//! brokers, measured so that stalls cannot hide.
//!
//! Producers send on an open-loop schedule (message `i` of a producer is due
//! at `start + i / rate`, whatever happened to the ones before), and
//! latencies are measured from that due time: a broker that stalls the
//! sender is charged for every message the stall delayed (coordinated
//! omission corrected). Each message carries its producer, sequence number
//! and due time, so consumers measure end-to-end latency and the run checks
//! that every acknowledged message was read exactly once.
//!
//! `bench run` loads one broker; `bench compare` runs the identical workload
//! against several in turn (fresh topics each) and prints them side by side
//! with ratios to the first. `--out DIR` writes `result.json` (workload,
//! machine, versions, every histogram) and `report.html`.
//!
//! Clients are librdkafka's (rdkafka crate) or, with `--driver native`, our
//! own pipelined client on the broker's runtime ([`native`]), producers and
//! consumers alike; `--consumer-driver` picks the consumers' apart, so one
//! client reads what the other wrote.

pub mod cost;
pub mod floor;
pub mod groups;
pub mod histogram;
pub mod html;
pub mod http_driver;
pub mod message;
pub mod native;
pub mod procfs;
pub mod rdkafka_driver;
pub mod report;
pub mod schedule;
pub mod tally;
pub mod workload;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use workload::Workload;

use message::{Generator, Source};
use procfs::Watch;
use rdkafka_driver::{ProducerPlan, Reading};
use report::{Output, RunResult, Tallies};
use schedule::Schedule;
use tally::{Clock, Run};
use workload::ConsumerMode;

/// What `run` and `compare` share.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkloadArgs {
    /// A workload file (TOML), or a preset: latency, throughput,
    /// omb-1topic-16p-1kb, adversarial-50-producers, adversarial-keyed,
    /// adversarial-catch-up, adversarial-retention.
    #[arg(long, default_value = "throughput")]
    pub workload: String,
    /// Measured seconds (after the warm-up), overriding the workload's.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Warm-up seconds (discarded), overriding the workload's.
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Messages per second over all producers, overriding the workload's.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Partitions per topic, overriding the workload's.
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replicas of each partition, overriding the workload's (a cluster's
    /// brokers go in the bootstrap list, comma-separated).
    #[arg(long)]
    pub replication_factor: Option<i16>,
    /// The producers' acks ("0", "1", "all"), overriding the workload's.
    #[arg(long)]
    pub acks: Option<String>,
    /// Writes result.json and report.html into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seeds payloads and keys (default: from the clock; always printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The clients: librdkafka's, the native pipelined client, or (for
    /// producers) shardlog's HTTP API at `--http`.
    #[arg(long, value_enum, default_value_t = Driver::Librdkafka)]
    pub driver: Driver,
    /// The consumers' client, when it is not the producers' (`--driver`).
    #[arg(long, value_enum)]
    pub consumer_driver: Option<Driver>,
}

/// Which client a run's producers or consumers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Driver {
    Librdkafka,
    Native,
    /// `POST /produce/TOPIC` with JSON arrays (producers only).
    Http,
}

impl WorkloadArgs {
    fn workload(&self) -> anyhow::Result<Workload> {
        let mut workload = Workload::load(&self.workload)?;
        if let Some(seconds) = self.duration {
            workload.duration_seconds = seconds;
        }
        if let Some(seconds) = self.warmup {
            workload.warmup_seconds = seconds;
        }
        if let Some(rate) = self.rate {
            workload.rate = Some(rate);
            workload.rate_mb = None;
        }
        if let Some(partitions) = self.partitions {
            workload.partitions = partitions;
        }
        if let Some(factor) = self.replication_factor {
            workload.replication_factor = factor;
        }
        if let Some(acks) = &self.acks {
            workload.acks = workload::Acks::parse(acks)?;
        }
        workload.check()?;
        Ok(workload)
    }

    fn seed(&self) -> u64 {
        self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
    }
}

/// `shardlog bench run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The broker to load (`HOST:PORT`).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// The broker's name in reports.
    #[arg(long, default_value = "broker")]
    pub name: String,
    /// The broker's HTTP listener (`HOST:PORT`), for `--driver http`.
    #[arg(long)]
    pub http: Option<String>,
    /// The broker's process id: its CPU seconds and peak memory are
    /// reported (read from /proc).
    #[arg(long)]
    pub broker_pid: Option<u32>,
    #[command(flatten)]
    pub common: WorkloadArgs,
}

/// `shardlog bench compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Brokers as `NAME=HOST:PORT`, or `NAME=HOST:PORT@PID` to report the
    /// process's CPU and memory. Ratios are against the first.
    #[arg(required = true, num_args = 1..)]
    pub brokers: Vec<String>,
    #[command(flatten)]
    pub common: WorkloadArgs,
}

/// A broker to load.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub bootstrap: String,
    pub pid: Option<u32>,
    /// Its HTTP listener, for HTTP producers.
    pub http: Option<String>,
}

impl Target {
    /// `NAME=HOST:PORT[@PID]`.
    pub fn parse(spec: &str) -> anyhow::Result<Target> {
        let (name, rest) = spec
            .split_once('=')
            .filter(|(name, rest)| !name.is_empty() && !rest.is_empty())
            .ok_or_else(|| anyhow::anyhow!("{spec:?}: expected NAME=HOST:PORT[@PID]"))?;
        let (bootstrap, pid) = match rest.rsplit_once('@') {
            Some((bootstrap, pid)) => {
                let pid = pid
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{spec:?}: {pid:?} is not a process id"))?;
                (bootstrap, Some(pid))
            }
            None => (rest, None),
        };
        Ok(Target {
            name: name.to_string(),
            bootstrap: bootstrap.to_string(),
            pid,
            http: None,
        })
    }
}

/// Runs the workload against the broker and prints the results.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let target = Target {
        name: args.name.clone(),
        bootstrap: args.bootstrap.clone(),
        pid: args.broker_pid,
        http: args.http.clone(),
    };
    measure(&[target], &args.common)
}

/// Runs the workload against each broker in turn and prints them side by
/// side.
pub fn compare(args: &CompareArgs) -> anyhow::Result<()> {
    let targets = args
        .brokers
        .iter()
        .map(|spec| Target::parse(spec))
        .collect::<anyhow::Result<Vec<_>>>()?;
    measure(&targets, &args.common)
}

fn measure(targets: &[Target], args: &WorkloadArgs) -> anyhow::Result<()> {
    let workload = args.workload()?;
    let seed = args.seed();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    eprintln!(
        "workload {}: {}",
        workload.name,
        serde_json::to_string(&workload)?
    );
    let mut runs = Vec::new();
    for target in targets {
        eprintln!("== {} ({}), seed {seed}", target.name, target.bootstrap);
        let drivers = Drivers {
            producers: args.driver,
            consumers: args.consumer_driver.unwrap_or(args.driver),
        };
        let result = execute(target, &workload, seed, drivers)?;
        runs.push(result);
    }
    let output = Output {
        tool: "shardlog bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        librdkafka: rdkafka_driver::version(),
        machine: procfs::Machine::this(),
        started_unix,
        workload,
        runs,
    };
    println!("{}", report::table(&output.runs));
    for run in &output.runs {
        let c = &run.consume;
        println!(
            "{}: sent {}, acked {}, errors {}, retries {}; read {} (unique {}, duplicates {}, \
             missing {}, unacknowledged {})",
            run.broker,
            run.produce.sent,
            run.produce.acked,
            run.produce.errors,
            run.produce.retries,
            c.messages,
            c.unique,
            c.duplicates,
            c.missing,
            c.unacknowledged
        );
    }
    if let Some(dir) = &args.out {
        write_out(dir, &output)?;
        eprintln!("wrote {0}/result.json and {0}/report.html", dir.display());
    }
    Ok(())
}

fn write_out(dir: &Path, output: &Output) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(output)?;
    std::fs::write(dir.join("result.json"), json)?;
    std::fs::write(dir.join("report.html"), html::render(output)?)?;
    Ok(())
}

/// The topics a run creates: fresh names every time.
fn topic_names(workload: &Workload) -> Vec<String> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let name: String = workload
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    (0..workload.topics)
        .map(|t| format!("bench-{name}-{stamp}-{t}"))
        .collect()
}

/// What each consumer reads.
fn readings(workload: &Workload, topics: &[String]) -> Vec<Reading> {
    match workload.consumer_mode {
        ConsumerMode::Group => {
            let group = format!("{}-group", topics.first().map_or("bench", String::as_str));
            (0..workload.consumers)
                .map(|_| Reading::Group {
                    group: group.clone(),
                    topics: topics.to_vec(),
                })
                .collect()
        }
        ConsumerMode::Standalone => {
            let mut shares = vec![Vec::new(); workload.consumers as usize];
            let all = topics
                .iter()
                .flat_map(|t| (0..workload.partitions).map(move |p| (t.clone(), p)));
            for (i, tp) in all.enumerate() {
                if let Some(share) = shares.get_mut(i % workload.consumers.max(1) as usize) {
                    share.push(tp);
                }
            }
            shares.into_iter().map(Reading::Partitions).collect()
        }
    }
}

/// The clients of a run.
#[derive(Debug, Clone, Copy)]
struct Drivers {
    producers: Driver,
    consumers: Driver,
}

impl Drivers {
    /// How reports name them.
    fn describe(self) -> String {
        let name = |driver| match driver {
            Driver::Librdkafka => format!("librdkafka {}", rdkafka_driver::version()),
            Driver::Native => "native".to_string(),
            Driver::Http => "HTTP".to_string(),
        };
        if self.producers == self.consumers {
            name(self.producers)
        } else {
            format!(
                "{} producers, {} consumers",
                name(self.producers),
                name(self.consumers)
            )
        }
    }
}

/// One workload against one broker.
fn execute(
    target: &Target,
    workload: &Workload,
    seed: u64,
    drivers: Drivers,
) -> anyhow::Result<RunResult> {
    let topics = topic_names(workload);
    let configs: Vec<(&str, &str)> = workload
        .topic_config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for topic in &topics {
        rdkafka_driver::create_topic(
            &target.bootstrap,
            &workload.client_config,
            topic,
            workload.partitions,
            workload.replication_factor,
            &configs,
        )?;
    }
    let setup = Setup {
        target,
        workload,
        seed,
        drivers,
        source: Source::load(workload, seed)?,
        readings: readings(workload, &topics),
        topics,
        run: Arc::new(Run::new(workload.producers, workload.consumers)),
        monitor: Monitor::new(target),
    };
    let (tallies, usage) = std::thread::scope(|scope| setup.drive(scope))?;
    let (produce, consume, publish, e2e, seconds) = tallies.summarize();
    Ok(RunResult {
        broker: target.name.clone(),
        bootstrap: target.bootstrap.clone(),
        driver: drivers.describe(),
        seed,
        produce,
        consume,
        publish_latency: publish.report(),
        end_to_end_latency: e2e.report(),
        seconds,
        broker_process: usage.broker,
        bench_process: usage.bench,
        requests: Some(usage.requests),
    })
}

/// A run about to start: its topics exist.
struct Setup<'a> {
    target: &'a Target,
    workload: &'a Workload,
    seed: u64,
    drivers: Drivers,
    source: Source,
    topics: Vec<String>,
    readings: Vec<Reading>,
    run: Arc<Run>,
    monitor: Monitor,
}

type Client<'scope> = std::thread::ScopedJoinHandle<'scope, anyhow::Result<()>>;

/// Joins client threads; the last failure, if any.
fn join_all(clients: Vec<Client<'_>>, failure: &mut Option<anyhow::Error>) {
    for client in clients {
        match client.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => *failure = Some(e),
            Err(_) => *failure = Some(anyhow::anyhow!("a client thread panicked")),
        }
    }
}

impl<'a> Setup<'a> {
    /// Starts the consumers (when they do not start late, waiting until
    /// they own every partition) and the producers; waits for the
    /// producers, then for the consumers to read everything.
    fn drive<'scope>(
        &'scope self,
        scope: &'scope std::thread::Scope<'scope, '_>,
    ) -> anyhow::Result<(Tallies, Usage)> {
        let workload = self.workload;
        let mut consumers = Vec::new();
        if workload.backlog_seconds == 0.0 && workload.consumers > 0 {
            consumers = self.start_consumers(scope);
            self.await_assignment()?;
        }
        let start = Instant::now();
        self.run
            .begin(Clock::new(start, workload.warmup(), workload.duration()));
        let watching = scope.spawn(|| self.monitor.watch(&self.run, workload));
        let producers = self.start_producers(scope, start);
        if workload.backlog_seconds > 0.0 && workload.consumers > 0 {
            std::thread::sleep(
                (start + workload.backlog()).saturating_duration_since(Instant::now()),
            );
            self.monitor.consumers_start(&self.run);
            consumers = self.start_consumers(scope);
        }
        let mut failure = None;
        join_all(producers, &mut failure);
        if failure.is_none() && workload.consumers > 0 {
            drain(&self.run);
        }
        self.run.stop.store(true, Ordering::Relaxed);
        join_all(consumers, &mut failure);
        self.monitor.done.store(true, Ordering::Relaxed);
        let usage = watching
            .join()
            .map_err(|_| anyhow::anyhow!("the monitor thread panicked"))?;
        if let Some(e) = failure {
            return Err(e);
        }
        let tallies = Tallies {
            producers: self.run.producer_tallies(),
            consumers: self.run.consumer_tallies(),
            window_seconds: workload.duration_seconds,
            backlog_messages: usage.backlog_messages,
            backlog_drained_seconds: usage.drained_seconds,
        };
        Ok((tallies, usage))
    }

    fn start_consumers<'scope>(
        &'scope self,
        scope: &'scope std::thread::Scope<'scope, '_>,
    ) -> Vec<Client<'scope>> {
        self.readings
            .iter()
            .enumerate()
            .map(|(i, reading)| {
                let tally = self.run.consumer(i as u32);
                let bootstrap = &self.target.bootstrap;
                let committed = self.workload.transaction_messages.is_some();
                scope.spawn(move || match self.drivers.consumers {
                    Driver::Librdkafka => {
                        let properties = &self.workload.client_config;
                        rdkafka_driver::consume(bootstrap, properties, reading, committed, tally)
                    }
                    Driver::Native if committed => Err(anyhow::anyhow!(
                        "transaction-messages: the native consumer reads uncommitted (use --consumer-driver librdkafka)"
                    )),
                    Driver::Native => native::consume(bootstrap, reading, tally),
                    Driver::Http => Err(anyhow::anyhow!(
                        "the HTTP driver only produces (set consumers = 0, or --consumer-driver)"
                    )),
                })
            })
            .collect()
    }

    /// Waits until the consumers own every partition, as many consumers
    /// as can have one having one: a group has settled before producers
    /// start, so no rebalance makes a consumer read again what another read.
    fn await_assignment(&self) -> anyhow::Result<()> {
        let total = u64::from(self.workload.topics) * self.workload.partitions as u64;
        let busy = total.min(u64::from(self.workload.consumers));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let owned = self.run.owned();
            let settled = owned.iter().sum::<u64>() == total
                && owned.iter().filter(|&&n| n > 0).count() as u64 == busy;
            if settled {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "consumers own {owned:?} of {total} partitions after 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn start_producers<'scope>(
        &'scope self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        start: Instant,
    ) -> Vec<Client<'scope>> {
        let workload = self.workload;
        let end = start + workload.warmup() + workload.duration();
        let rate = workload
            .messages_per_second()
            .map(|r| r / f64::from(workload.producers));
        let topics = self.topics.len();
        (0..workload.producers)
            .map(|i| {
                // Producers' schedules interleave rather than coincide.
                let spacing = Schedule::at_rate(start, rate).interval() * i / workload.producers;
                let plan = ProducerPlan {
                    bootstrap: &self.target.bootstrap,
                    topic: &self.topics[i as usize % topics],
                    partitions: workload.partitions,
                    workload,
                    schedule: Schedule::at_rate(start + spacing, rate),
                    end,
                    first_partition: (i as usize / topics) as i32 % workload.partitions,
                };
                let generator = Generator::new(workload, i, self.source.clone(), self.seed);
                let tally = self.run.producer(i);
                scope.spawn(move || match self.drivers.producers {
                    Driver::Librdkafka => rdkafka_driver::produce(&plan, tally, generator),
                    Driver::Native => native::produce(&plan, tally, generator),
                    Driver::Http => match &self.target.http {
                        Some(http) => http_driver::produce(&plan, http, tally, generator),
                        None => Err(anyhow::anyhow!("--driver http needs --http HOST:PORT")),
                    },
                })
            })
            .collect()
    }
}

/// Waits until the consumers read as many messages as were acknowledged,
/// or read nothing new for 15 s.
fn drain(run: &Run) {
    let mut last = run.consumed.load(Ordering::Relaxed);
    let mut moved = Instant::now();
    loop {
        let consumed = run.consumed.load(Ordering::Relaxed);
        if consumed >= run.acked.load(Ordering::Relaxed) {
            // Late duplicates or stragglers: a moment more.
            std::thread::sleep(Duration::from_millis(300));
            return;
        }
        if consumed != last {
            last = consumed;
            moved = Instant::now();
        } else if moved.elapsed() > Duration::from_secs(15) {
            eprintln!("consumers read nothing for 15 s: stopping them");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Watches a run from its own thread: the broker's and this process's
/// CPU and memory, the backlog's drain, and the progress line.
#[derive(Debug)]
struct Monitor {
    name: String,
    pid: Option<u32>,
    done: AtomicBool,
    /// Set when late consumers start: the backlog they face, and when.
    backlog: std::sync::Mutex<Option<(u64, Instant)>>,
}

#[derive(Debug)]
struct Usage {
    broker: Option<procfs::ProcessUsage>,
    requests: u64,
    bench: Option<procfs::ProcessUsage>,
    backlog_messages: u64,
    drained_seconds: Option<f64>,
}

impl Monitor {
    fn new(target: &Target) -> Monitor {
        Monitor {
            name: target.name.clone(),
            pid: target.pid,
            done: AtomicBool::new(false),
            backlog: std::sync::Mutex::new(None),
        }
    }

    fn consumers_start(&self, run: &Run) {
        let backlog = run.acked.load(Ordering::Relaxed);
        if let Ok(mut slot) = self.backlog.lock() {
            *slot = Some((backlog, Instant::now()));
        }
    }

    fn watch(&self, run: &Run, workload: &Workload) -> Usage {
        let mut broker = self.pid.map(Watch::new);
        let kernel = self.pid.and_then(cost::KernelCounts::start);
        let requests_before = cost::requests_sent();
        let mut bench = Watch::new(std::process::id());
        let tty = std::io::stderr().is_terminal();
        let started = Instant::now();
        let mut last_print = (Instant::now(), 0u64, 0u64);
        let mut drained = None;
        let mut backlog_messages = 0;
        let total = workload.warmup_seconds + workload.duration_seconds;
        while !self.done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if let Some(w) = &mut broker {
                w.sample();
            }
            bench.sample();
            let (acked, consumed) = (
                run.acked.load(Ordering::Relaxed),
                run.consumed.load(Ordering::Relaxed),
            );
            let backlog = self.backlog.lock().ok().and_then(|b| *b);
            if let Some((messages, since)) = backlog {
                backlog_messages = messages;
                if drained.is_none() && consumed >= messages {
                    drained = Some(since.elapsed().as_secs_f64());
                }
            }
            let every = if tty { 1 } else { 5 };
            if last_print.0.elapsed() >= Duration::from_secs(every) {
                let seconds = last_print.0.elapsed().as_secs_f64();
                let line = format!(
                    "[{}] {:.0}/{total:.0} s  produce {:.0} msg/s  consume {:.0} msg/s  \
                     publish p99 {} µs",
                    self.name,
                    started.elapsed().as_secs_f64(),
                    (acked - last_print.1) as f64 / seconds,
                    (consumed - last_print.2) as f64 / seconds,
                    run.publish_so_far().percentile_us(99.0),
                );
                if tty {
                    eprint!("\r{line:<100}");
                } else {
                    eprintln!("{line}");
                }
                last_print = (Instant::now(), acked, consumed);
            }
        }
        if tty {
            eprintln!();
        }
        let requests = cost::requests_sent() - requests_before;
        let counted = kernel.and_then(cost::KernelCounts::finish);
        let broker = broker.and_then(|w| w.usage()).map(|mut usage| {
            usage.syscalls = counted.map(|c| c.syscalls);
            usage.context_switches = counted.map(|c| c.context_switches);
            usage
        });
        Usage {
            broker,
            requests,
            bench: bench.usage(),
            backlog_messages,
            drained_seconds: drained,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_and_without_a_pid() {
        assert_eq!(
            Target::parse("shardlog=127.0.0.1:9092@4242").unwrap(),
            Target {
                name: "shardlog".into(),
                bootstrap: "127.0.0.1:9092".into(),
                pid: Some(4242),
                http: None,
            }
        );
        assert_eq!(Target::parse("k=h:1").unwrap().pid, None);
        for bad in ["127.0.0.1:9092", "=h:1", "k=", "k=h:1@me"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn standalone_consumers_split_every_partition() {
        let workload = Workload {
            topics: 2,
            partitions: 3,
            consumers: 4,
            ..Workload::default()
        };
        let topics = vec!["a".to_string(), "b".to_string()];
        let readings = readings(&workload, &topics);
        let mut all: Vec<(String, i32)> = readings
            .iter()
            .flat_map(|r| match r {
                Reading::Partitions(p) => p.clone(),
                Reading::Group { .. } => panic!("standalone"),
            })
            .collect();
        assert_eq!(readings.len(), 4);
        all.sort();
        assert_eq!(all.len(), 6);
        all.dedup();
        assert_eq!(all.len(), 6);
    }
}
