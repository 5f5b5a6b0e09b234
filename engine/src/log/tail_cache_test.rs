//! The tail caches of a shard share one budget: over it, the batches cached
//! longest ago on the shard go first, whatever their partition; reads of
//! evicted batches come from the disk, whole; closing partitions gives
//! their bytes back.

use bytes::Bytes;

use super::Chunk;
use crate::batch::builder::simple_batch;
use crate::{Log, LogConfig, Offset, set_tail_cache_shard_budget, tail_cache_shard_usage};

#[test]
fn many_partitions_stay_within_the_shard_budget_and_read_back_whole() {
    crate::rt::run_on_executor("tail-budget", None, move || async move {
        const BUDGET: usize = 64 << 10;
        const LOGS: usize = 12;
        const ROUNDS: usize = 20;
        set_tail_cache_shard_budget(BUDGET);
        let tmp = tempfile::tempdir().unwrap();
        let mut logs = Vec::new();
        for i in 0..LOGS {
            let dir = tmp.path().join(format!("t-{i}"));
            logs.push(Log::open(&dir, LogConfig::default(), 0).await.unwrap());
        }
        let mut written: Vec<Vec<Vec<u8>>> = vec![Vec::new(); LOGS];
        for round in 0..ROUNDS {
            for (i, log) in logs.iter().enumerate() {
                // 2-4 KiB batches, different per partition and round.
                let value = 1000 + (round * 131 + i * 71) % 1000;
                let batch = simple_batch(2, value, 0, (round * LOGS + i) as u8);
                log.append(Bytes::from(batch.clone()), 0).await.unwrap();
                written[i].push(batch);
                let (used, limit) = tail_cache_shard_usage();
                assert!(used <= limit, "{used} cached over a budget of {limit}");
            }
        }
        let (used, _) = tail_cache_shard_usage();
        assert!(used > BUDGET / 2, "the budget is used: {used}");
        let mut cached_reads = 0;
        for (i, log) in logs.iter().enumerate() {
            for (n, batch) in written[i].iter().enumerate() {
                let read = log.read(Offset(2 * n as i64), 1).await.unwrap();
                let mut bytes = Vec::new();
                read.chunks[0].extend_into(&mut bytes);
                assert_eq!(&bytes[12..], &batch[12..], "partition {i}, batch {n}");
                if matches!(read.chunks[0], Chunk::Cached(_)) {
                    cached_reads += 1;
                    assert!(n >= ROUNDS / 2, "partition {i}: old batch {n} still cached");
                }
            }
        }
        // The last round's batches are the newest on the shard: cached.
        assert!(cached_reads >= LOGS, "{cached_reads} reads from the cache");
        for log in logs {
            log.close().await.unwrap();
        }
        assert_eq!(tail_cache_shard_usage().0, 0, "closed partitions give back");
    })
    .unwrap();
}
