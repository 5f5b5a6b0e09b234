//! Sealed segments under the shard's cache bounds: with a budget so small
//! that nothing stays, every read of a sealed segment loads its index files
//! and opens its data file, and reads, lookups by time, retention and
//! reopens give exactly what was written.

mod common;

use bytes::Bytes;
use common::*;
use engine::{
    Error, Log, LogConfig, Offset, segment_cache_usage, set_read_ahead_shard_budget,
    set_segment_cache_limits,
};

/// Batch `i` has 3 records at timestamps `T0 + 10 i`, `+1`, `+2`.
const T0: i64 = 1_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 << 10,
        index_interval_bytes: 512,
        tail_cache_bytes: 0,
        retention_ms: None,
        ..small_config()
    }
}

/// What a log holds: (base, last, stored bytes) per batch.
type Batches = Vec<(i64, i64, Vec<u8>)>;

async fn fill(log: &Log, rng: &mut Rng, batches: usize) -> Batches {
    let mut stored = Vec::new();
    for i in 0..batches {
        let b = batch(rng, 3, 400, T0 + 10 * i as i64, i % 3 == 0);
        let info = log.append(Bytes::from(b.clone()), 0).await.unwrap();
        stored.push((
            info.base_offset.0,
            info.last_offset.0,
            with_offset(&b, info.base_offset.0),
        ));
    }
    stored
}

/// Reads at every offset of `from..` one batch at a time, and checks it is
/// the batch holding that offset.
async fn check_every_offset(log: &Log, stored: &Batches, from: i64) {
    for (base, last, bytes) in stored.iter().filter(|b| b.1 >= from) {
        for offset in (*base).max(from)..=*last {
            let read = log.read(Offset(offset), 1).await.unwrap();
            assert!(
                concat(&read) == *bytes,
                "read at {offset}: batch {base}..={last}"
            );
        }
    }
}

#[test]
fn reads_and_time_lookups_load_what_the_cache_let_go() {
    run(|| async {
        set_segment_cache_limits(0, 1);
        // Every read here continues the last: read ahead, it would start
        // where that one ended, without an index lookup to count.
        set_read_ahead_shard_budget(0);
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = Rng(seed("reads_and_time_lookups_load_what_the_cache_let_go"));
        let a = Log::open(tmp.path().join("a-0"), config(), 0)
            .await
            .unwrap();
        let b = Log::open(tmp.path().join("b-0"), config(), 0)
            .await
            .unwrap();
        let stored_a = fill(&a, &mut rng, 150).await;
        let stored_b = fill(&b, &mut rng, 150).await;
        assert!(a.segment_count() > 10, "{} segments", a.segment_count());
        let before = segment_cache_usage();
        check_every_offset(&a, &stored_a, 0).await;
        check_every_offset(&b, &stored_b, 0).await;
        let after = segment_cache_usage();
        // 150 batches of 3 records in each log, at most 20 in the active
        // segment.
        let sealed_reads = 2 * 3 * (150 - 20);
        assert!(
            after.index_loads - before.index_loads >= sealed_reads,
            "every read of a sealed segment loaded its indexes: {before:?} -> {after:?}"
        );
        assert_eq!(after.index_bytes, 0, "{after:?}");
        assert!(after.open_files <= 1, "{after:?}");

        // Lookups by time: each record's own timestamp finds it.
        for (i, (base, _, _)) in stored_a.iter().enumerate() {
            let t = T0 + 10 * i as i64;
            for delta in 0..3 {
                let found = a.offset_for_timestamp(t + delta).await.unwrap();
                assert_eq!(
                    found,
                    Some((Offset(base + delta), t + delta)),
                    "time {}",
                    t + delta
                );
            }
            if i + 1 < stored_a.len() {
                let between = a.offset_for_timestamp(t + 5).await.unwrap();
                assert_eq!(between, Some((Offset(base + 3), t + 10)), "time {}", t + 5);
            }
        }
        let last = T0 + 10 * (stored_a.len() as i64 - 1) + 2;
        assert_eq!(a.offset_for_timestamp(last + 1).await.unwrap(), None);

        // A reopen reads no index: they load when read.
        let (end, segments) = (a.log_end_offset(), a.segment_count());
        a.close().await.unwrap();
        let loads = segment_cache_usage().index_loads;
        let a = Log::open(tmp.path().join("a-0"), config(), 0)
            .await
            .unwrap();
        assert_eq!(
            segment_cache_usage().index_loads,
            loads,
            "no index read at open"
        );
        assert_eq!((a.log_end_offset(), a.segment_count()), (end, segments));
        assert_eq!(a.max_timestamp(), Some((last, Offset(end.0 - 3))));
        check_every_offset(&a, &stored_a, 0).await;

        // Retention deletes whole segments; what is left reads the same.
        let retained = LogConfig {
            retention_bytes: Some(40 << 10),
            ..config()
        };
        a.set_config(retained);
        assert!(a.enforce_retention(0).await.unwrap() > 0);
        let start = a.log_start_offset();
        assert!(matches!(
            a.read(start.plus(-1), 1).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
        check_every_offset(&a, &stored_a, start.0).await;
        let first = stored_a.iter().position(|s| s.0 == start.0).unwrap();
        let t = T0 + 10 * first as i64;
        assert_eq!(
            a.offset_for_timestamp(0).await.unwrap(),
            Some((start, t)),
            "the oldest record left"
        );
        a.close().await.unwrap();
        b.close().await.unwrap();
        assert_eq!(
            segment_cache_usage().open_files,
            0,
            "closed logs hold no file"
        );
    });
}

#[test]
fn a_read_that_found_a_segment_reads_it_while_retention_deletes_it() {
    run(|| async {
        set_segment_cache_limits(0, 1);
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = Rng(seed("a_read_that_found_a_segment_reads_it"));
        let log = Log::open(tmp.path().join("t-0"), config(), 0)
            .await
            .unwrap();
        let stored = fill(&log, &mut rng, 60).await;
        log.set_config(LogConfig {
            retention_bytes: Some(1),
            ..config()
        });
        // The read finds the first segment and waits for its file to open;
        // retention deletes the segment meanwhile.
        let (read, deleted) = futures::join!(log.read(Offset(0), 1), log.enforce_retention(0));
        assert!(deleted.unwrap() > 0);
        assert!(log.log_start_offset() > Offset(0));
        let read = read.unwrap();
        assert!(
            concat(&read) == stored[0].2,
            "the read got the deleted batch whole"
        );
        log.close().await.unwrap();
    });
}

/// Many partitions read in turn under small bounds: what the shard holds
/// never passes them (checked after every read), and every read is right.
#[test]
fn many_logs_share_the_shard_bounds() {
    run(|| async {
        const INDEX_BYTES: usize = 4 << 10;
        const FILES: usize = 3;
        set_segment_cache_limits(INDEX_BYTES, FILES);
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = Rng(seed("many_logs_share_the_shard_bounds"));
        let mut logs = Vec::new();
        for i in 0..12 {
            let log = Log::open(tmp.path().join(format!("t-{i}")), config(), 0)
                .await
                .unwrap();
            let stored = fill(&log, &mut rng, 40).await;
            assert!(log.segment_count() >= 3, "{} segments", log.segment_count());
            logs.push((log, stored));
        }
        let before = segment_cache_usage();
        for round in 0..40 {
            for (i, (log, stored)) in logs.iter().enumerate() {
                let (base, last, bytes) = &stored[(round * 7 + i * 5) % stored.len()];
                let offset = base + (round as i64 % (last - base + 1));
                let read = log.read(Offset(offset), 1).await.unwrap();
                assert!(concat(&read) == *bytes, "read at {offset}");
                let usage = segment_cache_usage();
                assert!(usage.index_bytes <= INDEX_BYTES, "{usage:?}");
                assert!(usage.open_files <= FILES, "{usage:?}");
            }
        }
        let after = segment_cache_usage();
        assert!(after.index_loads > before.index_loads + 100, "{after:?}");
        assert!(after.indexes > 0, "some stay cached: {after:?}");
        for (log, _) in logs {
            log.close().await.unwrap();
        }
    });
}

/// Descriptors of files under `dir` this process holds open (/proc/self/fd:
/// the kernel's count, not the engine's).
fn descriptors_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// More partitions than the shard may keep files open: appends, rolls,
/// reads and reopens go round all of them, each closing another's
/// descriptor and opening its own again; the process never holds more than
/// the bound (counted by the kernel after every round), and every partition
/// reads back exactly what was appended, before and after a reopen.
#[test]
fn more_partitions_than_open_files_all_written_and_read() {
    run(|| async {
        const FILES: usize = 4;
        const LOGS: usize = 16;
        set_segment_cache_limits(1 << 20, FILES);
        // A read ahead holds its descriptor until it completes, past the
        // bound as any read under way does; the count here is taken
        // between rounds, when no read is meant to be under way.
        set_read_ahead_shard_budget(0);
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = Rng(seed("more_partitions_than_open_files"));
        let dir = |i: usize| tmp.path().join(format!("t-{i}"));
        let mut logs = Vec::new();
        for i in 0..LOGS {
            logs.push(Log::open(dir(i), config(), 0).await.unwrap());
        }
        let before = segment_cache_usage();
        let mut stored: Vec<Batches> = vec![Vec::new(); LOGS];
        for round in 0..30 {
            for (log, stored) in logs.iter().zip(&mut stored) {
                let i = stored.len();
                let b = batch(&mut rng, 3, 400, T0 + 10 * i as i64, round % 2 == 0);
                let info = log.append(Bytes::from(b.clone()), 0).await.unwrap();
                let bytes = with_offset(&b, info.base_offset.0);
                stored.push((info.base_offset.0, info.last_offset.0, bytes));
            }
            // Reads in another order than the appends.
            for (log, stored) in logs.iter().zip(&stored).rev() {
                let (base, _, bytes) = &stored[round * 7 % stored.len()];
                let read = log.read(Offset(*base), 1).await.unwrap();
                assert!(concat(&read) == *bytes, "round {round}: read at {base}");
            }
            engine::rt::sleep(std::time::Duration::from_millis(1)).await;
            let open = descriptors_under(tmp.path());
            assert!(open <= FILES, "round {round}: {open} segment files open");
        }
        let after = segment_cache_usage();
        assert!(
            after.descriptor_reopens >= before.descriptor_reopens + 30 * LOGS as u64,
            "every round reopened every partition's file: {before:?} -> {after:?}"
        );
        assert!(logs[0].segment_count() > 1, "the logs rolled");
        for (log, stored) in logs.iter().zip(&stored) {
            check_every_offset(log, stored, 0).await;
        }
        for log in logs.drain(..) {
            log.close().await.unwrap();
        }
        assert_eq!(descriptors_under(tmp.path()), 0, "closed logs hold no file");
        for i in 0..LOGS {
            let log = Log::open(dir(i), config(), 0).await.unwrap();
            assert!(descriptors_under(tmp.path()) <= FILES);
            logs.push(log);
        }
        for (log, stored) in logs.iter().zip(&stored) {
            check_every_offset(log, stored, 0).await;
            assert_eq!(log.log_end_offset().0, stored.last().unwrap().1 + 1);
        }
        for log in logs {
            log.close().await.unwrap();
        }
    });
}
