//! `shardlog bench`: load against any Kafka-compatible broker.
//!
//! Built so far: `shardlog bench run` with the librdkafka driver and two
//! built-in workloads (`throughput`: unlimited 1 KiB produce, then a full
//! read back; `latency`: 1 KiB at a fixed open-loop rate). Publish latency
//! is measured from each message's intended send time on the schedule, so a
//! stalled broker cannot hide behind a stalled sender (coordinated
//! omission). Still to come (the bench issue): workload files, the native
//! driver, `bench compare`, JSON and HTML reports.

pub mod groups;
pub mod histogram;
pub mod rdkafka_driver;
pub mod schedule;
pub mod workload;

use std::time::Duration;

pub use workload::Workload;

/// `shardlog bench run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The broker to load (`HOST:PORT`).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// A built-in workload: `throughput` or `latency`.
    #[arg(long, default_value = "throughput")]
    pub workload: String,
    /// Measured seconds (after the warm-up), overriding the workload's.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Messages per second (open loop), overriding the workload's.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Partitions of the topic the run creates.
    #[arg(long)]
    pub partitions: Option<i32>,
}

/// Runs the workload against the broker and prints the results.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let mut workload = Workload::preset(&args.workload)?;
    if let Some(seconds) = args.duration {
        workload.duration = Duration::from_secs(seconds);
    }
    if let Some(rate) = args.rate {
        workload.rate = Some(rate);
    }
    if let Some(partitions) = args.partitions {
        workload.partitions = partitions;
    }
    eprintln!("workload: {workload:?}");
    let result = rdkafka_driver::run(&args.bootstrap, &workload)?;
    println!("{}", result.render(&workload));
    Ok(())
}
