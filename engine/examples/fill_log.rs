//! Fills partition logs with record batches at the disk's speed, for the
//! memory and startup benchmarks of docs/benchmarks.md (issue 19): a
//! broker's topic directories filled here are served by `shardlog serve`
//! (create the topic through the broker first, stop it, fill, start it).
//!
//! `cargo run --release -p engine --example fill_log -- MIB RECORDS_PER_BATCH DIR...`
//!
//! Appends MIB mebibytes of 1 KiB records to each DIR (a partition's
//! directory), RECORDS_PER_BATCH records per batch, timestamps one
//! millisecond apart per batch; default `segment.bytes` (1 GiB) unless
//! `SEGMENT_BYTES` says otherwise.

use bytes::Bytes;
use engine::batch::builder::simple_batch;
use engine::{FlushPolicy, Log, LogConfig};
use futures::StreamExt;

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: fill_log MIB RECORDS_PER_BATCH DIR...";
    let mib: u64 = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let per_batch: i32 = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let dirs: Vec<String> = args.collect();
    assert!(!dirs.is_empty(), "{usage}");
    let segment_bytes = std::env::var("SEGMENT_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(engine::limits::SEGMENT_BYTES_DEFAULT);
    engine::rt::run_on_executor("fill", None, move || async move {
        let config = LogConfig {
            segment_bytes,
            tail_cache_bytes: 0,
            flush: FlushPolicy::Interval {
                ms: None,
                messages: None,
            },
            ..LogConfig::default()
        };
        for dir in dirs {
            let log = Log::open(&dir, config.clone(), 0).await.expect("open");
            let batch_len = simple_batch(per_batch, 1_000, 0, 7).len() as u64;
            let batches = (mib << 20) / batch_len;
            // Many appends in flight, as a busy producer keeps them.
            futures::stream::iter(0..batches)
                .for_each_concurrent(64, |i| {
                    let t = 1_700_000_000_000 + i as i64;
                    let batch = Bytes::from(simple_batch(per_batch, 1_000, t, 7));
                    let log = &log;
                    async move {
                        log.append(batch, 0).await.expect("append");
                    }
                })
                .await;
            log.close().await.expect("close");
            println!("{dir}: {batches} batches, {} segments", segment_count(&dir));
        }
    })
    .expect("executor");
}

fn segment_count(dir: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .count()
        })
        .unwrap_or(0)
}
