//! The log cleaner against a model (issue 14): random keyed appends (every
//! codec, tombstones, plain and idempotent producers), cleaning passes at
//! random points with the clock moving past `delete.retention.ms`,
//! reopens, and crashes (the directory copied as a crash leaves it, and
//! the log opened from the copy), between steps and at a random step of a
//! pass (a segment's rewrite, its swap, the merge after). After each step
//! a read from the log start must show, in offset order and at the
//! offsets they were written at: for each key whose latest record is a
//! value, that value last; for each key whose latest is a tombstone, that
//! tombstone last or nothing (never an older value); and every record at
//! or past the cleaner's point untouched. The seed is printed
//! (`SHARDLOG_TEST_SEED`).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use common::{Rng, run, seed};
use engine::batch::builder::{BatchSpec, Record, encode_batch, encode_records};
use engine::batch::{Compression, codec};
use engine::{CleanupPolicy, Log, LogConfig};

/// A record as written or read: (offset, key, value; `None` a tombstone).
type Stored = (i64, String, Option<String>);

fn config() -> LogConfig {
    LogConfig {
        cleanup: CleanupPolicy {
            delete: false,
            compact: true,
        },
        segment_bytes: 16 << 10,
        index_interval_bytes: 1024,
        delete_retention_ms: 5_000,
        ..LogConfig::default()
    }
}

async fn read_from_start(log: &Log) -> Vec<Stored> {
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    common::read_keyed(log)
        .await
        .into_iter()
        .map(|(offset, key, value)| (offset, text(key), value.map(text)))
        .collect()
}

/// Checks a read against everything written: see the module's rules.
fn check(read: &[Stored], written: &BTreeMap<i64, Stored>, untouched_from: i64, step: &str) {
    let offsets: Vec<i64> = read.iter().map(|r| r.0).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "{step}: offset order"
    );
    for record in read {
        assert_eq!(written.get(&record.0), Some(record), "{step}: as written");
    }
    let read_offsets: BTreeSet<i64> = offsets.iter().copied().collect();
    for offset in written.range(untouched_from..).map(|(o, _)| *o) {
        assert!(
            read_offsets.contains(&offset),
            "{step}: {offset} past the cleaner's point"
        );
    }
    let mut latest: BTreeMap<&str, &Stored> = BTreeMap::new();
    for record in written.values() {
        latest.insert(&record.1, record);
    }
    let mut last_read: BTreeMap<&str, &Stored> = BTreeMap::new();
    for record in read {
        last_read.insert(&record.1, record);
    }
    for (key, want) in latest {
        match (want.2.is_some(), last_read.get(key)) {
            (true, got) => assert_eq!(got, Some(&want), "{step}: {key}'s latest value"),
            (false, None) => {}
            (false, Some(got)) => assert_eq!(*got, want, "{step}: {key}'s tombstone or nothing"),
        }
    }
}

/// Appends a batch of 1-8 records of random keys (one in eight a
/// tombstone) in a random codec, from no producer or idempotent producer 1
/// or 2 (their `sequences` go on); notes them in `written`.
async fn append_random(
    log: &Log,
    rng: &mut Rng,
    step: usize,
    now: i64,
    sequences: &mut [i32; 3],
    written: &mut BTreeMap<i64, Stored>,
) {
    let count = 1 + rng.below(8) as usize;
    let records: Vec<(String, Option<Vec<u8>>)> = (0..count)
        .map(|i| {
            let key = format!("k{}", rng.below(24));
            let value = (rng.below(8) != 0).then(|| {
                let mut v = format!("s{step}r{i}-").into_bytes();
                v.extend((0..rng.below(400)).map(|_| b'a' + rng.below(4) as u8));
                v
            });
            (key, value)
        })
        .collect();
    let list: Vec<Record<'_>> = records
        .iter()
        .map(|(k, v)| Record {
            key: Some(k.as_bytes()),
            value: v.as_deref(),
            ..Record::default()
        })
        .collect();
    let codec = Compression::ALL[rng.below(5) as usize];
    let mut spec = BatchSpec::new(count as i32, now);
    spec.compression = codec;
    let producer = rng.below(3) as usize;
    if producer > 0 {
        spec.producer_id = producer as i64;
        spec.producer_epoch = 0;
        spec.base_sequence = sequences[producer];
        sequences[producer] += count as i32;
    }
    let raw = encode_records(&list);
    let batch = encode_batch(&spec, &codec::compress(codec, None, &raw).unwrap());
    let info = log.append(Bytes::from(batch), now).await.unwrap();
    for (i, (key, value)) in records.into_iter().enumerate() {
        let offset = info.base_offset.get() + i as i64;
        let value = value.map(|v| String::from_utf8(v).unwrap());
        written.insert(offset, (offset, key, value));
    }
}

/// The crash points of a pass (`engine::crashpoint`), in the order a
/// segment's rewrite, its swap and a merge pass them.
const PASS_STEPS: [&str; 6] = [
    "clean-rewritten",
    "clean-indexes-removed",
    "clean-renamed",
    "clean-swapped",
    "merge-committed",
    "merge-old-deleted",
];

/// Arms a crash in the next pass: the `nth` time (from 0) it passes
/// `point`, `dir` is copied to `crashed` as a crash there would leave it
/// (the pass goes on; the test then opens the copy). A pass that does not
/// get there leaves no copy.
fn crash_in_pass(dir: &std::path::Path, crashed: &std::path::Path, point: &'static str, nth: u64) {
    let (from, to) = (dir.to_path_buf(), crashed.to_path_buf());
    let mut seen = 0;
    engine::crashpoint::set_hook(move |name| {
        if name == point {
            if seen == nth {
                println!("crash at {point} #{nth}: {}", to.display());
                common::copy_as_crashed(&from, &to);
            }
            seen += 1;
        }
    });
}

#[test]
fn the_cleaner_keeps_what_the_model_says_through_reopens_and_crashes() {
    let seed = seed("compaction-model");
    for case in 0..8u64 {
        run(move || async move {
            if case % 2 == 1 {
                // Nothing cached: every read and swap loads from the files.
                engine::set_segment_cache_limits(0, 1);
            }
            let mut rng = Rng(seed ^ case.wrapping_mul(0x9e37_79b9));
            let tmp = tempfile::tempdir().unwrap();
            let mut dir = tmp.path().join("m-0");
            let mut log = Log::open(&dir, config(), 0).await.unwrap();
            let mut written: BTreeMap<i64, Stored> = BTreeMap::new();
            let mut sequences = [0i32; 3];
            let (mut now, mut untouched_from, mut crashes) = (0i64, 0i64, 0);
            for step in 0..240 {
                match rng.below(20) {
                    0..=13 => {
                        append_random(&log, &mut rng, step, now, &mut sequences, &mut written)
                            .await;
                    }
                    14..=16 => {
                        now += rng.below(4_000) as i64;
                        // A third of the passes crash at one of their steps.
                        let crashed = tmp.path().join(format!("m-crash{}", crashes + 1));
                        if rng.below(3) == 0 {
                            let point = PASS_STEPS[rng.below(PASS_STEPS.len() as u64) as usize];
                            let nth = rng.below(3);
                            crash_in_pass(&dir, &crashed, point, nth);
                        }
                        let stats = log
                            .clean(rng.below(2) as usize * 4096 + 600, now)
                            .await
                            .unwrap();
                        engine::crashpoint::clear_hook();
                        if let Some(from) = stats.dirty_from {
                            untouched_from = untouched_from.max(from.get());
                        }
                        if crashed.exists() {
                            crashes += 1;
                            log.close().await.unwrap();
                            dir = crashed;
                            log = Log::open(&dir, config(), now).await.unwrap();
                        }
                    }
                    17 => {
                        log.close().await.unwrap();
                        log = Log::open(&dir, config(), now).await.unwrap();
                    }
                    _ => {
                        crashes += 1;
                        let crashed = tmp.path().join(format!("m-crash{crashes}"));
                        common::copy_as_crashed(&dir, &crashed);
                        log.close().await.unwrap();
                        dir = crashed;
                        log = Log::open(&dir, config(), now).await.unwrap();
                    }
                }
                let read = read_from_start(&log).await;
                check(
                    &read,
                    &written,
                    untouched_from,
                    &format!("case {case} step {step}"),
                );
            }
            // Clean until nothing is left to do, the clock past every
            // tombstone's horizon: every key once, tombstones gone.
            for _ in 0..40 {
                now += 6_000;
                let stats = log.clean(1 << 20, now).await.unwrap();
                if stats.segments == 0 && !log.tombstones_due(now + 6_000) {
                    break;
                }
            }
            let read = read_from_start(&log).await;
            let sealed_end = untouched_from;
            check(&read, &written, i64::MAX, &format!("case {case} end"));
            let keys: Vec<&str> = read
                .iter()
                .filter(|r| r.0 < sealed_end)
                .map(|r| r.1.as_str())
                .collect();
            let distinct: BTreeSet<&str> = keys.iter().copied().collect();
            assert_eq!(
                keys.len(),
                distinct.len(),
                "case {case}: one record per key below {sealed_end}"
            );
            log.close().await.unwrap();
        });
    }
}
