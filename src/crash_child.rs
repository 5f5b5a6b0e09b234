//! `shardlog crash-child`: appends batches to one log with many concurrent
//! appenders and prints `ack <base_offset> <last_offset> <crc32c> <bytes>` on stdout
//! for every append that resolved (so is durable), until killed. With
//! `--readers`, tasks read back what is already there meanwhile, at random
//! offsets, and exit the process (code 4) on a read that fails or returns
//! a batch that does not hold its offset: with a tiny segment cache every
//! such read loads sealed segments' indexes and opens their files.

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
    /// Tasks reading at random offsets while the appenders run.
    #[arg(long, default_value_t = 0)]
    readers: usize,
    /// The shard's sealed-segment cache: index bytes kept in memory.
    #[arg(long)]
    index_cache_bytes: Option<usize>,
    /// The shard's segment files kept open (active and sealed).
    #[arg(long)]
    open_segment_files: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    engine::rt::run_on_executor("crash-child", None, move || async move {
        engine::set_segment_cache_limits(
            args.index_cache_bytes
                .unwrap_or(engine::limits::INDEX_CACHE_SHARD_BYTES_DEFAULT),
            args.open_segment_files
                .unwrap_or(engine::limits::SEGMENT_FILES_SHARD_DEFAULT),
        );
        let config = LogConfig {
            segment_bytes: args.segment_bytes,
            ..LogConfig::default()
        };
        let log = Rc::new(Log::open(&args.dir, config, wall_clock_ms()).await?);
        println!("ready {}", log.log_end_offset());
        let appenders = (0..args.appenders)
            .map(|i| append_forever(Rc::clone(&log), args.seed.wrapping_add(i as u64)));
        let readers = (0..args.readers)
            .map(|i| read_forever(Rc::clone(&log), args.seed.wrapping_add(1000 + i as u64)));
        futures::future::join(
            futures::future::join_all(appenders),
            futures::future::join_all(readers),
        )
        .await;
        anyhow::Ok(())
    })?
}

/// A task's pseudo-random sequence from `seed` (xorshift).
fn sequence(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

async fn append_forever(log: Rc<Log>, seed: u64) {
    let mut next = sequence(seed);
    loop {
        let state = next();
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

async fn read_forever(log: Rc<Log>, seed: u64) {
    let mut next = sequence(seed);
    loop {
        let state = next();
        let (start, end) = (log.log_start_offset().0, log.log_end_offset().0);
        if end > start {
            let offset = engine::Offset(start + (state % (end - start) as u64) as i64);
            match log.read(offset, 1).await {
                Ok(read) if holds(&read, offset) => {}
                Ok(_) => {
                    eprintln!("read at {offset}: no batch holding it");
                    std::process::exit(4);
                }
                Err(e) => {
                    eprintln!("read at {offset} failed: {e}");
                    std::process::exit(4);
                }
            }
        }
        engine::rt::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Whether the first batch read holds `offset`.
fn holds(read: &engine::ReadResult, offset: engine::Offset) -> bool {
    let Some(chunk) = read.chunks.first() else {
        return false;
    };
    let mut bytes = Vec::new();
    chunk.extend_into(&mut bytes);
    bytes
        .first_chunk::<{ engine::batch::HEADER_BYTES }>()
        .map(|h| engine::batch::BatchHeader(*h))
        .is_some_and(|h| h.base_offset() <= offset && offset <= h.last_offset())
}

/// The CRC field of the batch (covers everything the log keeps unchanged).
fn crc_of_records(batch: &[u8]) -> u32 {
    batch
        .get(17..21)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}
