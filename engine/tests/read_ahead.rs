//! Read-ahead for readers behind the tail cache: what a read that
//! continues another gets is what a read from the disk gets, whatever was
//! read ahead, evicted, appended, rolled or truncated in between.

mod common;

use bytes::Bytes;
use common::*;
use engine::{Log, LogConfig, Offset, read_ahead_shard_usage, set_read_ahead_shard_budget};

/// Each stored batch: base offset, last offset, bytes.
type Batches = Vec<(i64, i64, Vec<u8>)>;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 << 10,
        index_interval_bytes: 4096,
        // Every read goes to the disk.
        tail_cache_bytes: 0,
        ..LogConfig::default()
    }
}

/// What a read from `offset` of at most `max_bytes` returns: the batch
/// holding `offset` (or the first after it), then whole batches while they
/// fit (Kafka's KIP-74 rule).
fn expected(stored: &Batches, offset: i64, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (_, _, bytes) in stored.iter().filter(|b| b.1 >= offset) {
        if !out.is_empty() && out.len() + bytes.len() > max_bytes {
            break;
        }
        out.extend_from_slice(bytes);
    }
    out
}

async fn append(log: &Log, stored: &mut Batches, rng: &mut Rng) {
    let records = 1 + rng.below(40) as i32;
    let value = 100 + rng.below(3000) as usize;
    let compressed = rng.below(4) == 0;
    let b = batch(rng, records, value, 0, compressed);
    let info = log.append(Bytes::from(b.clone()), 0).await.unwrap();
    stored.push((
        info.base_offset.0,
        info.last_offset.0,
        with_offset(&b, info.base_offset.0),
    ));
}

/// Three logs under one small read-ahead budget, each read by three
/// readers that mostly read on from where they stopped and sometimes jump,
/// with fetch sizes from one byte to 1 MiB, between appends, rolls and
/// truncations (after which other bytes take the same offsets): every read
/// returns exactly what the log holds, the shelf never holds more than its
/// budget, and reads that continued took what was read ahead for them.
#[test]
fn reads_that_continue_get_what_a_read_from_the_disk_gets() {
    run(|| async {
        const BUDGET: usize = 3 << 20;
        set_read_ahead_shard_budget(BUDGET);
        let mut rng = Rng(seed(
            "reads_that_continue_get_what_a_read_from_the_disk_gets",
        ));
        let tmp = tempfile::tempdir().unwrap();
        let mut logs = Vec::new();
        for i in 0..3 {
            let log = Log::open(&tmp.path().join(format!("t-{i}")), config(), 0)
                .await
                .unwrap();
            let mut stored = Batches::new();
            for _ in 0..120 {
                append(&log, &mut stored, &mut rng).await;
            }
            logs.push((Some(log), stored, [0i64; 3]));
        }
        let sizes = [1, 4096, 65_536, 200_000, 1 << 20];
        let before = read_ahead_shard_usage();
        let (mut reads, mut continuing) = (0, 0);
        for step in 0..1500 {
            let (log, stored, readers) = &mut logs[rng.below(3) as usize];
            let end = stored.last().map_or(0, |b| b.1 + 1);
            match rng.below(100) {
                0..=11 => append(log.as_ref().unwrap(), stored, &mut rng).await,
                12 => {
                    let to = rng.below(end as u64) as i64;
                    let cut = log.take().unwrap().truncate_to(Offset(to), config(), 0);
                    *log = Some(cut.await.unwrap());
                    stored.retain(|b| b.1 < to);
                }
                _ => {
                    let log = log.as_ref().unwrap();
                    let reader = rng.below(3) as usize;
                    let jumps = rng.below(8) == 0 || readers[reader] >= end;
                    if jumps {
                        readers[reader] = rng.below(end as u64) as i64;
                    } else {
                        continuing += 1;
                    }
                    let offset = readers[reader];
                    let max_bytes = sizes[rng.below(sizes.len() as u64) as usize];
                    let read = log.read(Offset(offset), max_bytes).await.unwrap();
                    let want = expected(stored, offset, max_bytes);
                    assert!(
                        concat(&read) == want,
                        "step {step}: read at {offset} of {max_bytes} bytes: {} bytes, want {}",
                        read.bytes(),
                        want.len()
                    );
                    reads += 1;
                    // On from the last batch served.
                    readers[reader] = stored
                        .iter()
                        .filter(|b| b.1 >= offset)
                        .scan(0usize, |total, b| {
                            *total += b.2.len();
                            (*total <= want.len()).then_some(b.1 + 1)
                        })
                        .last()
                        .unwrap_or(offset);
                }
            }
            let usage = read_ahead_shard_usage();
            assert!(usage.bytes <= BUDGET, "step {step}: {usage:?}");
        }
        let after = read_ahead_shard_usage();
        eprintln!("{reads} reads, {continuing} continuing: {before:?} -> {after:?}");
        assert!(
            after.taken - before.taken >= continuing / 4,
            "{continuing} of {reads} reads continued another; read ahead: {before:?} -> {after:?}"
        );
        // Closing waits for no read ahead.
        for (log, _, _) in logs {
            log.unwrap().close().await.unwrap();
        }
    });
}
