//! `shardlog crash-child`: appends batches to one log with many concurrent
//! appenders and prints `ack <base_offset> <last_offset> <crc32c> <bytes>` on stdout
//! for every append that resolved (so is durable), until killed.

use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::Bytes;
use engine::batch::builder::simple_batch;
use engine::rt::wall_clock_ms;
use engine::{Log, LogConfig};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The partition directory.
    #[arg(long)]
    dir: PathBuf,
    /// Seed for batch sizes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Concurrent appenders.
    #[arg(long, default_value_t = 8)]
    appenders: usize,
    /// segment.bytes, small so that rolls happen during the run.
    #[arg(long, default_value_t = 256 << 10)]
    segment_bytes: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    engine::rt::run_on_executor("crash-child", None, move || async move {
        let config = LogConfig {
            segment_bytes: args.segment_bytes,
            ..LogConfig::default()
        };
        let log = Rc::new(Log::open(&args.dir, config, wall_clock_ms()).await?);
        println!("ready {}", log.log_end_offset());
        let tasks = (0..args.appenders)
            .map(|i| append_forever(Rc::clone(&log), args.seed.wrapping_add(i as u64)));
        futures::future::join_all(tasks).await;
        anyhow::Ok(())
    })?
}

async fn append_forever(log: Rc<Log>, seed: u64) {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    loop {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let count = 1 + (state % 8) as i32;
        let value_bytes = (state >> 8) as usize % 3_000;
        let batch = simple_batch(count, value_bytes, wall_clock_ms(), (state >> 20) as u8);
        let (crc, len) = (crc_of_records(&batch), batch.len());
        match log.append(Bytes::from(batch), wall_clock_ms()).await {
            Ok(info) => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "ack {} {} {crc} {len}",
                    info.base_offset, info.last_offset
                );
                let _ = out.flush();
            }
            Err(e) => {
                eprintln!("append failed: {e}");
                std::process::exit(3);
            }
        }
    }
}

/// The CRC field of the batch (covers everything the log keeps unchanged).
fn crc_of_records(batch: &[u8]) -> u32 {
    batch
        .get(17..21)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}
