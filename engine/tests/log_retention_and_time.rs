//! Retention, DeleteRecords and lookups by timestamp.

mod common;

use bytes::Bytes;
use common::*;
use engine::{Error, Log, LogConfig, Offset};

/// Appends 100 batches of 2 records, timestamps 1000, 1010, ... (batch i
/// has records at 1000 + 10 i and 1000 + 10 i + 1).
async fn filled(config: LogConfig, dir: &std::path::Path) -> Log {
    let log = Log::open(dir.join("t-0"), config, 0).await.unwrap();
    let mut rng = Rng(11);
    for i in 0..100 {
        let b = batch(&mut rng, 2, 900, 1_000 + 10 * i, i % 4 == 1);
        log.append(Bytes::from(b), 0).await.unwrap();
    }
    log
}

#[test]
fn retention_bytes_deletes_oldest_segments_and_moves_log_start() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_bytes: Some(40 << 10),
            retention_ms: None,
            tail_cache_bytes: 0,
            ..small_config()
        };
        let log = filled(config, dir.path()).await;
        let before = log.segment_count();
        assert!(before >= 3, "{before} segments");
        let deleted = log.enforce_retention(i64::MAX / 2).await.unwrap();
        assert!(deleted >= 1);
        assert_eq!(log.segment_count(), before - deleted);
        let start = log.log_start_offset();
        assert!(start > Offset(0));
        assert!(
            log.size_bytes() >= 40 << 10,
            "retention keeps at least retention.bytes"
        );
        assert!(matches!(
            log.read(start.plus(-1), 100).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
        assert_eq!(log.read(start, 1).await.unwrap().chunks.len(), 1);
        let segments = log_files(log.dir());
        log.close().await.unwrap();
        let log = Log::open(dir.path().join("t-0"), small_config(), 0)
            .await
            .unwrap();
        assert_eq!(log.log_start_offset(), start);
        assert_eq!(log_files(log.dir()), segments);
        log.close().await.unwrap();
    });
}

#[test]
fn retention_ms_deletes_segments_whose_newest_record_is_too_old() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_ms: Some(500),
            ..small_config()
        };
        let log = filled(config, dir.path()).await;
        // Newest timestamp is 1991: at now = 2000 nothing is 500 ms old past
        // the newest record of the last segments, but the first ones are.
        assert_eq!(log.enforce_retention(1_000).await.unwrap(), 0);
        let deleted = log.enforce_retention(2_000).await.unwrap();
        assert!(deleted >= 1);
        assert!(log.log_start_offset() > Offset(0));
        // Far in the future everything expires, the active segment included.
        log.enforce_retention(1_000_000).await.unwrap();
        assert_eq!(log.log_start_offset(), log.log_end_offset());
        assert_eq!(log.segment_count(), 1);
        let info = log
            .append(Bytes::from(batch(&mut Rng(1), 1, 10, 5, false)), 0)
            .await
            .unwrap();
        assert_eq!(info.base_offset, Offset(200));
        log.close().await.unwrap();
    });
}

#[test]
fn delete_records_moves_log_start_inside_a_segment_and_survives_reopen() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = filled(small_config(), dir.path()).await;
        assert_eq!(log.delete_records(Offset(77)).await.unwrap(), Offset(77));
        assert_eq!(
            log.delete_records(Offset(10)).await.unwrap(),
            Offset(77),
            "never moves back"
        );
        assert!(matches!(
            log.delete_records(Offset(201)).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
        assert!(matches!(
            log.read(Offset(76), 10).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
        // The batch holding 77 starts at 76: it is served whole.
        assert_eq!(log.read(Offset(77), 1).await.unwrap().chunks.len(), 1);
        log.close().await.unwrap();
        let log = Log::open(dir.path().join("t-0"), small_config(), 0)
            .await
            .unwrap();
        assert_eq!(log.log_start_offset(), Offset(77));
        log.close().await.unwrap();
    });
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = filled(small_config(), dir.path()).await;
        for clean_reopen in [false, true] {
            // Uncompressed batch 50 holds offsets 100 (ts 1500) and 101 (ts 1501).
            assert_eq!(log_ts(&log, 1_500).await, Some((Offset(100), 1_500)));
            assert_eq!(log_ts(&log, 1_501).await, Some((Offset(101), 1_501)));
            assert_eq!(log_ts(&log, 1_502).await, Some((Offset(102), 1_510)));
            // Batch 1 (offsets 2-3) is lz4-compressed: read as Kafka reads
            // it, record by record, not answered with its base offset.
            assert_eq!(log_ts(&log, 1_010).await, Some((Offset(2), 1_010)));
            assert_eq!(log_ts(&log, 1_011).await, Some((Offset(3), 1_011)));
            assert_eq!(log_ts(&log, 0).await, Some((Offset(0), 1_000)));
            assert_eq!(log_ts(&log, 5_000).await, None);
            assert_eq!(log.max_timestamp(), Some((1_991, Offset(198))));
            if clean_reopen {
                break;
            }
        }
        log.close().await.unwrap();
        let log = Log::open(dir.path().join("t-0"), small_config(), 0)
            .await
            .unwrap();
        assert_eq!(log_ts(&log, 1_500).await, Some((Offset(100), 1_500)));
        assert_eq!(log.max_timestamp(), Some((1_991, Offset(198))));
        log.close().await.unwrap();
    });
}

async fn log_ts(log: &Log, ts: i64) -> Option<(Offset, i64)> {
    log.offset_for_timestamp(ts).await.unwrap()
}

fn log_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

#[test]
fn compact_only_topics_are_not_trimmed_by_retention() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LogConfig {
            retention_bytes: Some(1),
            retention_ms: Some(1),
            ..small_config()
        };
        config.set("cleanup.policy", "compact").unwrap();
        let log = filled(config, dir.path()).await;
        assert_eq!(log.enforce_retention(i64::MAX / 2).await.unwrap(), 0);
        assert_eq!(log.log_start_offset(), Offset(0));
        log.close().await.unwrap();
    });
}
