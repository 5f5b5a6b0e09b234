//! Log compaction's first pass (issue 14): a compacted log's sealed
//! segments, written in every codec with keys updated again and again,
//! are rewritten keeping the latest record of each key below where the
//! passes' maps ended; offsets never change, the active segment is
//! untouched, and the result reads the same after a clean reopen and
//! after a crash right after the passes.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{Rng, run, seed, small_config};
use engine::batch::builder::{BatchSpec, Record, encode_batch, encode_records};
use engine::batch::records::for_each_record;
use engine::batch::{Compression, ValidateMode, codec, validate};
use engine::{CleanupPolicy, Log, LogConfig, Offset};

fn compacted() -> LogConfig {
    LogConfig {
        cleanup: CleanupPolicy {
            delete: false,
            compact: true,
        },
        ..small_config()
    }
}

/// (offset, key, value) of every record a read from the log start gets.
async fn records(log: &Log) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    common::read_keyed(log)
        .await
        .into_iter()
        .map(|(offset, key, value)| (offset, key, value.expect("no tombstone")))
        .collect()
}

/// What the passes should leave: below `end`, each key's latest record
/// below `end`; from `end` on, everything.
fn expected(written: &[(i64, Vec<u8>, Vec<u8>)], end: i64) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    let mut latest: BTreeMap<&[u8], i64> = BTreeMap::new();
    for (offset, key, _) in written.iter().filter(|r| r.0 < end) {
        latest.insert(key, *offset);
    }
    written
        .iter()
        .filter(|(offset, key, _)| *offset >= end || latest[key.as_slice()] == *offset)
        .cloned()
        .collect()
}

#[test]
fn passes_keep_the_latest_record_per_key_in_every_codec_and_survive_reopen_and_crash() {
    let seed = seed("compaction");
    for budget in [1 << 20, 12 * 64] {
        run(move || async move {
            let mut rng = Rng(seed);
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("c-0");
            let log = Log::open(&dir, compacted(), 0).await.unwrap();
            let mut written = Vec::new();
            for b in 0..120 {
                let codec = Compression::ALL[b % Compression::ALL.len()];
                let keys: Vec<Vec<u8>> = (0..10)
                    .map(|_| format!("key-{}", rng.below(40)).into_bytes())
                    .collect();
                let values: Vec<Vec<u8>> = (0..10)
                    .map(|i| {
                        let mut value = format!("batch {b} record {i} ").into_bytes();
                        value.extend(rng.bytes(300));
                        value
                    })
                    .collect();
                let list: Vec<Record<'_>> = keys
                    .iter()
                    .zip(&values)
                    .map(|(k, v)| Record {
                        key: Some(k),
                        value: Some(v),
                        ..Record::default()
                    })
                    .collect();
                let mut spec = BatchSpec::new(10, 1_000 + b as i64);
                spec.compression = codec;
                let raw = encode_records(&list);
                let batch = encode_batch(&spec, &codec::compress(codec, None, &raw).unwrap());
                let info = log.append(Bytes::from(batch), 0).await.unwrap();
                for (i, (k, v)) in keys.into_iter().zip(values).enumerate() {
                    written.push((info.base_offset.get() + i as i64, k, v));
                }
            }
            assert_eq!(records(&log).await, written, "before cleaning");
            assert_eq!(log.dirty_ratio(0), 1.0, "nothing cleaned yet");
            let before = common::segment_files(&dir);
            assert!(before > 4, "{before} segments");
            // Passes until the map has covered every sealed segment.
            let mut end = 0;
            let mut passes = 0;
            loop {
                let stats = log.clean(budget, 0).await.unwrap();
                match stats.dirty_from {
                    Some(from) if from.get() > end => end = from.get(),
                    _ => break,
                }
                passes += 1;
                assert!(passes < 100, "passes that never end");
            }
            eprintln!("budget {budget}: {passes} passes, map ended at {end}");
            assert!(passes >= 1 && (budget > 1 << 10 || passes > 1));
            let want = expected(&written, end);
            assert!(want.len() < written.len(), "something was cleaned");
            assert_eq!(records(&log).await, want, "after cleaning");
            let after = common::segment_files(&dir);
            assert!(
                after < before,
                "shrunk segments merged: {before} -> {after}"
            );
            assert!(
                std::fs::read_dir(&dir)
                    .unwrap()
                    .all(|e| e.unwrap().path().extension() != Some("cleaned".as_ref())),
                "no rewrite left behind"
            );
            let crashed = tmp.path().join("crashed-0");
            common::copy_as_crashed(&dir, &crashed);
            log.close().await.unwrap();
            for reopened in [&dir, &crashed] {
                let log = Log::open(reopened, compacted(), 0).await.unwrap();
                assert_eq!(records(&log).await, want, "{}", reopened.display());
                assert_eq!(log.log_end_offset(), Offset(written.len() as i64));
                // Where the passes ended is kept: nothing is dirty.
                assert_eq!(log.dirty_ratio(0), 0.0, "{}", reopened.display());
                assert_eq!(log.clean(budget, 0).await.unwrap().segments, 0);
                log.close().await.unwrap();
            }
        });
    }
}

/// A rewrite that was not swapped in (a crash before the rename) is
/// deleted on open, and the segment reads as before.
#[test]
fn a_rewrite_left_behind_is_deleted_on_open() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c-0");
        let log = Log::open(&dir, compacted(), 0).await.unwrap();
        let mut rng = Rng(7);
        for _ in 0..100 {
            let batch = common::batch(&mut rng, 5, 500, 1_000, false);
            log.append(Bytes::from(batch), 0).await.unwrap();
        }
        let written = records(&log).await;
        log.close().await.unwrap();
        std::fs::write(dir.join("00000000000000000000.cleaned"), b"half a rewrite").unwrap();
        let log = Log::open(&dir, compacted(), 0).await.unwrap();
        assert!(!dir.join("00000000000000000000.cleaned").exists());
        assert_eq!(records(&log).await, written);
        log.close().await.unwrap();
    });
}

/// Segments with records newer than `min.compaction.lag.ms` are not
/// cleaned (nor counted dirty) until they are old enough.
#[test]
fn records_newer_than_the_compaction_lag_wait() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let config = LogConfig {
            min_compaction_lag_ms: 60_000,
            ..compacted()
        };
        let log = Log::open(tmp.path().join("c-0"), config, 0).await.unwrap();
        let mut rng = Rng(9);
        for _ in 0..100 {
            // Five records of keys key-0..key-4, stamped from 1,000 ms.
            let batch = common::batch(&mut rng, 5, 500, 1_000, false);
            log.append(Bytes::from(batch), 0).await.unwrap();
        }
        assert_eq!(log.dirty_ratio(30_000), 0.0, "younger than the lag");
        assert_eq!(log.clean(1 << 20, 30_000).await.unwrap().segments, 0);
        assert_eq!(log.dirty_ratio(120_000), 1.0);
        assert!(log.clean(1 << 20, 120_000).await.unwrap().segments > 0);
        log.close().await.unwrap();
    });
}

/// Appends one uncompressed batch of `(key, value)` records (`None`: a
/// tombstone) stamped `timestamp`; returns its base offset.
async fn append_keyed(log: &Log, records: &[(&str, Option<&[u8]>)], timestamp: i64) -> i64 {
    let list: Vec<Record<'_>> = records
        .iter()
        .map(|(key, value)| Record {
            key: Some(key.as_bytes()),
            value: *value,
            ..Record::default()
        })
        .collect();
    let spec = BatchSpec::new(i32::try_from(list.len()).unwrap(), timestamp);
    let batch = encode_batch(&spec, &encode_records(&list));
    log.append(Bytes::from(batch), 0)
        .await
        .unwrap()
        .base_offset
        .get()
}

/// Filler updates of keys `fill-0..fill-9`, enough to seal the segments
/// before them.
async fn fill(log: &Log, timestamp: i64) {
    let value = vec![b'f'; 1000];
    for _ in 0..100 {
        let batch: Vec<(String, Option<&[u8]>)> = (0..10)
            .map(|i| (format!("fill-{i}"), Some(&value[..])))
            .collect();
        let batch: Vec<(&str, Option<&[u8]>)> =
            batch.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        append_keyed(log, &batch, timestamp).await;
    }
}

/// The keys (not filler) a read from the start finds, with whether each
/// is a tombstone.
async fn keys_left(log: &Log) -> Vec<(String, bool)> {
    common::read_keyed(log)
        .await
        .into_iter()
        .filter(|(_, key, _)| !key.starts_with(b"fill-"))
        .map(|(_, key, value)| (String::from_utf8(key).unwrap(), value.is_none()))
        .collect()
}

/// A tombstone removes its key's older records at the first pass that
/// sees it, and goes itself `delete.retention.ms` after that pass (not
/// after it was written), at a pass made for it alone; when the passes
/// were is kept across a reopen.
#[test]
fn tombstones_go_delete_retention_after_the_cleaner_first_saw_them() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c-0");
        let config = LogConfig {
            delete_retention_ms: 10_000,
            ..compacted()
        };
        let log = Log::open(&dir, config.clone(), 0).await.unwrap();
        for key in ["a", "b", "c"] {
            append_keyed(&log, &[(key, Some(b"old"))], 0).await;
        }
        append_keyed(&log, &[("a", None), ("b", None)], 0).await;
        fill(&log, 0).await;
        // Seen first at 1,000: a's and b's values go, their tombstones stay.
        assert!(log.clean(1 << 20, 1_000).await.unwrap().segments > 0);
        let seen_first = vec![
            ("c".to_string(), false),
            ("a".to_string(), true),
            ("b".to_string(), true),
        ];
        assert_eq!(keys_left(&log).await, seen_first);
        assert!(!log.tombstones_due(10_999));
        // c's tombstone is written long after; its pass is at 5,000.
        append_keyed(&log, &[("c", None)], 4_000).await;
        fill(&log, 4_000).await;
        assert!(log.clean(1 << 20, 5_000).await.unwrap().segments > 0);
        assert_eq!(
            keys_left(&log).await,
            [
                ("a".to_string(), true),
                ("b".to_string(), true),
                ("c".to_string(), true)
            ]
        );
        log.close().await.unwrap();
        // When the passes were survives the reopen.
        let log = Log::open(&dir, config, 0).await.unwrap();
        assert_eq!(log.dirty_ratio(11_000), 0.0, "nothing dirty");
        assert!(log.tombstones_due(11_000), "a's and b's are due");
        log.clean(1 << 20, 11_000).await.unwrap();
        assert_eq!(keys_left(&log).await, [("c".to_string(), true)]);
        assert!(!log.tombstones_due(14_999));
        assert!(log.tombstones_due(15_000), "c's is due");
        log.clean(1 << 20, 15_000).await.unwrap();
        assert_eq!(keys_left(&log).await, []);
        assert!(!log.tombstones_due(i64::MAX), "none left");
        log.close().await.unwrap();
    });
}

/// A batch of `(key, value)` records from `producer_id` (epoch 0) at
/// `sequence`, in its open transaction.
fn txn_batch(producer_id: i64, sequence: i32, records: &[(&str, &[u8])]) -> Bytes {
    producer_batch(producer_id, sequence, records, true)
}

/// A batch of `(key, value)` records from idempotent producer
/// `producer_id` (epoch 0) at `sequence`, transactional or not.
fn producer_batch(
    producer_id: i64,
    sequence: i32,
    records: &[(&str, &[u8])],
    transactional: bool,
) -> Bytes {
    let list: Vec<Record<'_>> = records
        .iter()
        .map(|(key, value)| Record {
            key: Some(key.as_bytes()),
            value: Some(value),
            ..Record::default()
        })
        .collect();
    let mut spec = BatchSpec::new(i32::try_from(list.len()).unwrap(), 0);
    spec.producer_id = producer_id;
    spec.producer_epoch = 0;
    spec.base_sequence = sequence;
    spec.transactional = transactional;
    Bytes::from(encode_batch(&spec, &encode_records(&list)))
}

/// What a read from the log start finds, batch by batch (filler left
/// out): a marker as `marker P`, a data batch as its keys and values.
async fn batches(log: &Log) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 1).await.unwrap();
        let mut bytes = Vec::new();
        for chunk in &read.chunks {
            chunk.extend_into(&mut bytes);
        }
        for batch in validate(&bytes, 0, ValidateMode::Stored) {
            let (_, batch) = batch.unwrap();
            let header = batch.header();
            offset = offset.max(header.last_offset().plus(1));
            if header.is_control() {
                out.push(format!("marker {}", header.producer_id()));
                continue;
            }
            let mut records = Vec::new();
            for_each_record(batch.records(), |r| {
                let key = String::from_utf8_lossy(r.key.unwrap()).into_owned();
                let value = String::from_utf8_lossy(r.value.unwrap_or(b"-")).into_owned();
                records.push(format!("{key}={value}"));
            })
            .unwrap();
            if !records.iter().any(|r| r.starts_with("fill-")) {
                out.push(records.join(" "));
            }
        }
    }
    out
}

/// Kafka's rules for transactions in a compacted log: an aborted
/// transaction's records go (and never count as a key's latest); a
/// committed one's are compacted like any; a marker stays while a record
/// of its transaction is left, then until `delete.retention.ms` after the
/// cleaner first saw it; the log reopens with no transaction left open.
#[test]
fn transactions_are_cleaned_by_kafka_s_rules() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let config = LogConfig {
            delete_retention_ms: 10_000,
            ..compacted()
        };
        let log = Log::open(&dir, config.clone(), 0).await.unwrap();
        append_keyed(&log, &[("e", Some(b"1"))], 0).await;
        log.append(txn_batch(1, 0, &[("a", b"1"), ("b", b"1")]), 0)
            .await
            .unwrap();
        log.append_marker(1, 0, true, 0, 0).await.unwrap();
        log.append(txn_batch(2, 0, &[("a", b"2"), ("e", b"2")]), 0)
            .await
            .unwrap();
        log.append_marker(2, 0, false, 0, 0).await.unwrap();
        log.append(txn_batch(3, 0, &[("d", b"1")]), 0)
            .await
            .unwrap();
        log.append_marker(3, 0, true, 0, 0).await.unwrap();
        append_keyed(&log, &[("a", Some(b"3"))], 0).await;
        // Each producer's last batch, which would stay (empty) if
        // superseded: here its transactions' batches are not.
        for (producer, sequence) in [(1, 2), (2, 2), (3, 1)] {
            let key = format!("last-{producer}");
            let batch = producer_batch(producer, sequence, &[(&key, b"z")], false);
            log.append(batch, 0).await.unwrap();
        }
        fill(&log, 0).await;
        log.clean(1 << 20, 1_000).await.unwrap();
        let after_first = [
            "e=1", // the aborted e=2 does not supersede it
            "b=1", // a=1 superseded by a=3
            "marker 1", "marker 2", // its records are gone; it waits for the horizon
            "d=1", "marker 3", "a=3", "last-1=z", "last-2=z", "last-3=z",
        ];
        assert_eq!(batches(&log).await, after_first);
        log.clean(1 << 20, 11_000).await.unwrap();
        let mut after_horizon = after_first.to_vec();
        after_horizon.retain(|b| *b != "marker 2");
        assert_eq!(batches(&log).await, after_horizon);
        // Its marker gone, the transaction is no longer listed as aborted:
        // a read_committed reader would otherwise skip producer 2's later
        // records, waiting for that marker (found with the Java client).
        let everything = (Offset(0), log.log_end_offset());
        assert!(
            log.aborted_transactions(everything.0, everything.1)
                .is_empty(),
            "{:?}",
            log.aborted_transactions(everything.0, everything.1)
        );
        // b and d superseded: their transactions' markers follow them, at
        // once (seen at 1,000, more than 10 s ago).
        append_keyed(&log, &[("b", Some(b"4")), ("d", Some(b"4"))], 0).await;
        fill(&log, 0).await;
        log.clean(1 << 20, 12_000).await.unwrap();
        let last = ["e=1", "a=3", "last-1=z", "last-2=z", "last-3=z", "b=4 d=4"];
        assert_eq!(batches(&log).await, last);
        let end = log.log_end_offset();
        log.close().await.unwrap();
        let log = Log::open(&dir, config, 0).await.unwrap();
        assert_eq!(log.last_stable_offset(), end, "no transaction left open");
        assert_eq!(batches(&log).await, last);
        log.close().await.unwrap();
    });
}

/// Kafka's retained empty batch: when every record of an idempotent
/// producer's last batch is superseded, its header stays with no records,
/// so the producer's last sequence survives a rebuild of the producers'
/// state from the log (here: its snapshot deleted).
#[test]
fn a_producer_s_last_batch_stays_empty_and_keeps_its_sequence() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p-0");
        let log = Log::open(&dir, compacted(), 0).await.unwrap();
        let idempotent = |sequence: i32, keys: &[&str]| {
            let records: Vec<Record<'_>> = keys
                .iter()
                .map(|key| Record {
                    key: Some(key.as_bytes()),
                    value: Some(b"from 7"),
                    ..Record::default()
                })
                .collect();
            let mut spec = BatchSpec::new(i32::try_from(records.len()).unwrap(), 0);
            spec.producer_id = 7;
            spec.producer_epoch = 0;
            spec.base_sequence = sequence;
            Bytes::from(encode_batch(&spec, &encode_records(&records)))
        };
        log.append(idempotent(0, &["a", "b"]), 0).await.unwrap();
        append_keyed(&log, &[("a", Some(b"x")), ("b", Some(b"y"))], 0).await;
        // Ten filler batches: the first segment seals, the producers' state
        // rebuilt without a snapshot replays it.
        let value = vec![b'f'; 1000];
        for _ in 0..10 {
            let batch: Vec<(String, Option<&[u8]>)> = (0..10)
                .map(|i| (format!("fill-{i}"), Some(&value[..])))
                .collect();
            let batch: Vec<(&str, Option<&[u8]>)> =
                batch.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            append_keyed(&log, &batch, 0).await;
        }
        assert!(log.clean(1 << 20, 0).await.unwrap().segments > 0);
        let first = {
            let read = log.read(Offset(0), 1).await.unwrap();
            let mut bytes = Vec::new();
            for chunk in &read.chunks {
                chunk.extend_into(&mut bytes);
            }
            let (_, batch) = validate(&bytes, 0, ValidateMode::Stored)
                .next()
                .unwrap()
                .unwrap();
            let h = batch.header();
            (
                h.base_offset().get(),
                h.record_count(),
                h.producer_id(),
                h.last_offset_delta(),
            )
        };
        assert_eq!(
            first,
            (0, 0, 7, 1),
            "producer 7's batch, empty, offsets 0-1"
        );
        assert_eq!(
            keys_left(&log).await,
            [("a".to_string(), false), ("b".to_string(), false)]
        );
        log.close().await.unwrap();
        std::fs::remove_file(dir.join("producer.snapshot")).unwrap();
        let log = Log::open(&dir, compacted(), 0).await.unwrap();
        assert!(
            log.append(idempotent(9, &["c"]), 0).await.is_err(),
            "sequence 9 does not follow 1"
        );
        log.append(idempotent(2, &["c"]), 0).await.unwrap();
        log.close().await.unwrap();
    });
}

/// `cleanup.policy=compact,delete` applies both: retention deletes the
/// oldest segments (by size here), and the cleaner compacts what is left.
#[test]
fn compact_and_delete_both_apply() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let config = LogConfig {
            cleanup: CleanupPolicy {
                delete: true,
                compact: true,
            },
            retention_bytes: Some(128 << 10),
            ..small_config()
        };
        let log = Log::open(tmp.path().join("cd-0"), config, 0).await.unwrap();
        let mut rng = Rng(11);
        let mut written = Vec::new();
        for b in 0..120 {
            let keys: Vec<String> = (0..10).map(|_| format!("key-{}", rng.below(40))).collect();
            let value = vec![b'v'; 300];
            let records: Vec<(&str, Option<&[u8]>)> = keys
                .iter()
                .map(|k| (k.as_str(), Some(&value[..])))
                .collect();
            let base = append_keyed(&log, &records, b).await;
            for (i, key) in keys.into_iter().enumerate() {
                written.push((base + i as i64, key.into_bytes(), value.clone()));
            }
        }
        assert!(
            log.enforce_retention(0).await.unwrap() > 0,
            "segments deleted"
        );
        let start = log.log_start_offset().get();
        assert!(start > 0);
        let stats = log.clean(1 << 20, 0).await.unwrap();
        assert!(stats.segments > 0, "what is left is compacted");
        let end = stats.dirty_from.unwrap().get();
        let left: Vec<_> = written.into_iter().filter(|r| r.0 >= start).collect();
        assert_eq!(records(&log).await, expected(&left, end));
        log.close().await.unwrap();
    });
}
