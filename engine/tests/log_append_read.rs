//! Appends and reads: offsets, bytes, rolls, reopen, flush policies.

mod common;

use bytes::Bytes;
use common::*;
use engine::{Error, FlushPolicy, Log, LogConfig, Offset, TimestampType};

#[test]
fn appended_batches_read_back_byte_for_byte_with_assigned_offsets() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path().join("t-0"), LogConfig::default(), 1_000)
            .await
            .unwrap();
        let mut rng = Rng(1);
        let a = batch(&mut rng, 3, 100, 1_000, false);
        let b = batch(&mut rng, 5, 40, 2_000, true);
        let ia = log.append(Bytes::from(a.clone()), 1_000).await.unwrap();
        let ib = log.append(Bytes::from(b.clone()), 1_000).await.unwrap();
        assert_eq!(
            (ia.base_offset, ia.last_offset, ia.record_count),
            (Offset(0), Offset(2), 3)
        );
        assert_eq!((ib.base_offset, ib.last_offset), (Offset(3), Offset(7)));
        assert_eq!(ib.log_append_time, -1);
        assert_eq!(log.log_end_offset(), Offset(8));
        let mut expected = with_offset(&a, 0);
        expected.extend(with_offset(&b, 3));
        let all = log.read(Offset(0), 1 << 20).await.unwrap();
        assert_eq!(concat(&all), expected);
        // From the middle of the second batch: whole batch from its start.
        let tail = log.read(Offset(5), 1 << 20).await.unwrap();
        assert_eq!(concat(&tail), with_offset(&b, 3));
        // max_bytes below one batch still returns one batch.
        let one = log.read(Offset(0), 1).await.unwrap();
        assert_eq!(one.chunks.len(), 1);
        assert!(log.read(Offset(8), 100).await.unwrap().chunks.is_empty());
        assert!(matches!(
            log.read(Offset(9), 100).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
        log.close().await.unwrap();
    });
}

#[test]
fn invalid_batches_are_rejected_and_nothing_is_stored() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            max_message_bytes: 2_000,
            ..LogConfig::default()
        };
        let log = Log::open(dir.path().join("t-0"), config, 0).await.unwrap();
        let mut rng = Rng(2);
        let good = batch(&mut rng, 1, 10, 5, false);
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        let mut two = good.clone();
        two.extend(&bad_crc);
        let big = batch(&mut rng, 1, 3_000, 5, false);
        for bytes in [bad_crc, two, big, vec![], vec![1, 2, 3]] {
            let err = log.append(Bytes::from(bytes), 0).await.unwrap_err();
            assert!(matches!(err, Error::Batch(_)), "{err}");
        }
        assert_eq!(log.log_end_offset(), Offset(0));
        log.append(Bytes::from(good), 0).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(1));
        log.close().await.unwrap();
    });
}

#[test]
fn concurrent_appends_resolve_in_order_with_contiguous_offsets() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path().join("t-0"), small_config(), 0)
            .await
            .unwrap();
        let mut rng = Rng(3);
        let batches: Vec<Vec<u8>> = (0..64)
            .map(|i| batch(&mut rng, 1 + i % 4, 700, 10, i % 3 == 0))
            .collect();
        let appends = batches
            .iter()
            .map(|b| log.append(Bytes::from(b.clone()), 0));
        let infos = futures::future::join_all(appends).await;
        let mut next = 0;
        let mut expected = Vec::new();
        for (info, bytes) in infos.into_iter().zip(&batches) {
            let info = info.unwrap();
            assert_eq!(info.base_offset, Offset(next));
            next = info.last_offset.0 + 1;
            expected.extend(with_offset(bytes, info.base_offset.0));
        }
        assert!(log.segment_count() > 1, "64 KiB segments roll");
        let got = read_all(&log).await;
        assert_eq!(got, expected);
        log.close().await.unwrap();
    });
}

#[test]
fn reopened_log_serves_everything_from_disk_across_segments() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let config = LogConfig {
            tail_cache_bytes: 0,
            ..small_config()
        };
        let mut rng = Rng(4);
        let mut expected = Vec::new();
        {
            let log = Log::open(&path, config.clone(), 0).await.unwrap();
            for i in 0..200 {
                let b = batch(&mut rng, 2, 500, i, i % 2 == 0);
                let info = log.append(Bytes::from(b.clone()), 0).await.unwrap();
                expected.push((info.base_offset, with_offset(&b, info.base_offset.0)));
            }
            assert!(log.segment_count() >= 3);
            log.close().await.unwrap();
        }
        for clean in [true, false] {
            let log = Log::open(&path, config.clone(), 0).await.unwrap();
            assert_eq!(log.log_end_offset(), Offset(400));
            for (offset, bytes) in expected.iter().step_by(7) {
                let r = log.read(*offset, 1).await.unwrap();
                assert_eq!(
                    &concat(&r),
                    bytes,
                    "offset {offset} (clean reopen: {clean})"
                );
            }
            if clean {
                log.close().await.unwrap();
            } else {
                // Leave it open: the next open recovers as after a crash.
                log.flush().await.unwrap();
                std::mem::forget(log);
            }
        }
    });
}

#[test]
fn log_append_time_topics_stamp_the_broker_time() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        };
        let log = Log::open(dir.path().join("t-0"), config, 0).await.unwrap();
        let b = batch(&mut Rng(5), 2, 10, 100, true);
        let info = log.append(Bytes::from(b), 777_000).await.unwrap();
        assert_eq!(info.log_append_time, 777_000);
        let r = log.read(Offset(0), 1 << 20).await.unwrap();
        let bytes = concat(&r);
        let header = engine::batch::BatchHeader(bytes[..61].try_into().unwrap());
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp(), 777_000);
        assert_eq!(crc32c::crc32c(&bytes[21..]), header.crc());
        log.close().await.unwrap();
    });
}

#[test]
fn interval_flush_policy_resolves_on_write_and_syncs_on_schedule() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let config = LogConfig {
            flush: FlushPolicy::Interval {
                ms: Some(5),
                messages: Some(100),
            },
            ..LogConfig::default()
        };
        let log = Log::open(&path, config.clone(), 0).await.unwrap();
        let mut rng = Rng(6);
        for i in 0..50 {
            log.append(Bytes::from(batch(&mut rng, 3, 64, i, false)), 0)
                .await
                .unwrap();
        }
        assert_eq!(log.log_end_offset(), Offset(150));
        assert_eq!(log.read(Offset(149), 100).await.unwrap().chunks.len(), 1);
        log.close().await.unwrap();
        let log = Log::open(&path, config, 0).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(150));
        log.close().await.unwrap();
    });
}

#[test]
fn segment_ms_rolls_an_old_active_segment() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_ms: 1_000,
            ..LogConfig::default()
        };
        let log = Log::open(dir.path().join("t-0"), config, 0).await.unwrap();
        let mut rng = Rng(7);
        log.append(Bytes::from(batch(&mut rng, 1, 10, 0, false)), 10)
            .await
            .unwrap();
        log.append(Bytes::from(batch(&mut rng, 1, 10, 0, false)), 500)
            .await
            .unwrap();
        assert_eq!(log.segment_count(), 1);
        log.append(Bytes::from(batch(&mut rng, 1, 10, 0, false)), 1_500)
            .await
            .unwrap();
        assert_eq!(log.segment_count(), 2);
        log.close().await.unwrap();
    });
}

#[test]
fn staged_appends_keep_their_order_while_their_flushes_overlap_and_wake_end_watchers() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path().join("t-0"), LogConfig::default(), 0)
            .await
            .unwrap();
        let watch = log.end_watch();
        let mut moved = std::pin::pin!(watch.moved());
        moved.as_mut().enable();
        let mut rng = Rng(7);
        let batches: Vec<Vec<u8>> = (0..4).map(|i| batch(&mut rng, 2, 50, i, false)).collect();
        // Staged one after another, finished together.
        let mut staged = Vec::new();
        for b in &batches {
            staged.push(log.stage_append(Bytes::from(b.clone()), 0).await.unwrap());
        }
        let bases: Vec<i64> = staged.iter().map(|s| s.info().base_offset.0).collect();
        assert_eq!(bases, [0, 2, 4, 6], "offsets in staging order");
        assert_eq!(
            log.log_end_offset(),
            Offset(0),
            "not readable before durable"
        );
        let infos = futures::future::join_all(staged.into_iter().map(|s| s.finish())).await;
        assert!(infos.iter().all(Result::is_ok));
        moved.await; // woken by the end moving
        assert_eq!(log.log_end_offset(), Offset(8));
        let mut expected = Vec::new();
        for (b, base) in batches.iter().zip(bases) {
            expected.extend(with_offset(b, base));
        }
        assert_eq!(
            concat(&log.read(Offset(0), 1 << 20).await.unwrap()),
            expected
        );
        // Closing wakes whoever still waits.
        let mut on_close = std::pin::pin!(watch.moved());
        on_close.as_mut().enable();
        log.close().await.unwrap();
        on_close.await;
    });
}

/// Batches read from disk are buffers of their own: they go to another
/// thread as they are (a Fetch answered by another shard sends them without
/// a copy) and stay intact after the executor that read them is gone.
#[test]
fn batches_read_from_disk_outlive_their_executor_on_another_thread() {
    let (tx, rx) = std::sync::mpsc::channel();
    let expected = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let written = std::sync::Arc::clone(&expected);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run(move || async move {
        let config = LogConfig {
            tail_cache_bytes: 0,
            ..small_config()
        };
        let log = Log::open(&path, config, 0).await.unwrap();
        let mut rng = Rng(19);
        for i in 0..40 {
            let b = batch(&mut rng, 3, 1_500, i, i % 3 == 0);
            let info = log.append(Bytes::from(b.clone()), 0).await.unwrap();
            written
                .lock()
                .unwrap()
                .push(with_offset(&b, info.base_offset.0));
        }
        let r = log.read(Offset(0), 1 << 20).await.unwrap();
        for chunk in &r.chunks {
            match chunk {
                engine::Chunk::Stored(buf) => tx.send(buf.to_bytes()).unwrap(),
                engine::Chunk::Cached(_) => panic!("a tail cache of 0 bytes served a batch"),
            }
        }
        log.close().await.unwrap();
    });
    let read: Vec<Bytes> = rx.try_iter().collect();
    let expected = expected.lock().unwrap();
    assert_eq!(read.len(), expected.len(), "every batch, one chunk each");
    for (i, (bytes, want)) in read.iter().zip(expected.iter()).enumerate() {
        assert_eq!(&bytes[..], &want[..], "batch {i}");
    }
}

/// A consumer behind the tail reads from the disk, a fetch's worth at a
/// time: each fetch reads at most its own size (and the blocks its read is
/// aligned to), not also the whole batch after the ones it serves (it once
/// read and checked that batch whole, then left it out: twice the reads,
/// half the throughput). Every byte still comes back, in order, whatever
/// the fetch size.
#[test]
fn fetch_sized_reads_from_disk_read_no_batch_they_leave_out() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 8 << 20,
            tail_cache_bytes: 0,
            ..LogConfig::default()
        };
        let log = Log::open(&dir.path().join("t-0"), config, 0).await.unwrap();
        let mut rng = Rng(7);
        let mut expected = Vec::new();
        for i in 0..40 {
            // 100-190 KB batches, so fetches end at every kind of boundary.
            let b = batch(&mut rng, 10, 10_000 + 1_000 * (i % 10), i as i64, false);
            let info = log.append(Bytes::from(b.clone()), 0).await.unwrap();
            expected.extend(with_offset(&b, info.base_offset.0));
        }
        log.flush().await.unwrap();
        for fetch_bytes in [200_000, 400_000, 1 << 20] {
            let before = engine::stats::segment_read_bytes();
            let mut read = Vec::new();
            let mut offset = Offset(0);
            let mut fetches = 0;
            while offset < log.log_end_offset() {
                fetches += 1;
                let result = log.read(offset, fetch_bytes).await.unwrap();
                let bytes = concat(&result);
                assert!(!bytes.is_empty(), "a read at {offset} returned nothing");
                let mut at = 0;
                while at < bytes.len() {
                    let header = engine::batch::BatchHeader(bytes[at..at + 61].try_into().unwrap());
                    offset = header.last_offset().plus(1);
                    at += 12
                        + header.0[8..12]
                            .iter()
                            .fold(0usize, |n, b| n << 8 | *b as usize);
                }
                read.extend(bytes);
            }
            assert!(
                read == expected,
                "{fetch_bytes}-byte fetches read back what was written"
            );
            let disk = engine::stats::segment_read_bytes() - before;
            assert!(
                disk <= (fetches * (fetch_bytes + 8192)) as u64,
                "{fetches} {fetch_bytes}-byte fetches of {} bytes read {disk} from the disk",
                expected.len()
            );
        }
    });
}

/// A read without I/O (`read_now`, a fetch's first try) gives what the read
/// gives wherever it answers: at every offset, with small and large
/// budgets, plain and read_committed; it declines only where the read
/// starts below the tail cache, and refuses what is out of range as the
/// read does.
#[test]
fn a_read_without_io_matches_the_read_or_declines() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            tail_cache_bytes: 8 << 10,
            ..small_config()
        };
        let log = Log::open(dir.path().join("t-0"), config, 0).await.unwrap();
        let mut rng = Rng(227);
        for i in 0..60 {
            let b = batch(&mut rng, 3, 300, i, i % 3 == 0);
            log.append(Bytes::from(b), 0).await.unwrap();
        }
        let end = log.log_end_offset().0;
        let (mut answered, mut declined) = (0, 0);
        for offset in 0..=end {
            for max_bytes in [0, 1, 2_000, 1 << 20] {
                for committed in [false, true] {
                    let read = if committed {
                        log.read_committed(Offset(offset), max_bytes).await
                    } else {
                        log.read(Offset(offset), max_bytes).await
                    }
                    .unwrap();
                    let Some(now) = log.read_now(Offset(offset), max_bytes, committed) else {
                        declined += 1;
                        continue;
                    };
                    let now = now.unwrap();
                    answered += 1;
                    let what = format!("offset {offset}, {max_bytes} bytes, committed {committed}");
                    assert_eq!(concat(&now), concat(&read), "{what}");
                    assert_eq!(
                        (now.log_start_offset, now.log_end_offset, now.high_watermark),
                        (
                            read.log_start_offset,
                            read.log_end_offset,
                            read.high_watermark
                        ),
                        "{what}"
                    );
                }
            }
        }
        // The tail cache holds the last few batches only.
        assert!(
            answered > 0 && declined > 0,
            "{answered} answered, {declined} declined"
        );
        assert!(matches!(
            log.read_now(Offset(end + 1), 100, false),
            Some(Err(Error::OffsetOutOfRange { .. }))
        ));
        log.close().await.unwrap();
    });
}
