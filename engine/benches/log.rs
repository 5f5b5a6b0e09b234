//! Criterion benchmarks of the storage hot paths: batch validation, append
//! (validate + stage + write + group-committed fdatasync), the idempotent
//! producer check on append, and read; and the log cleaner's pass.
//!
//! `cargo bench -p engine --bench log` (filters work: `-- append/1MiB`).
//! Files go to `$SHARDLOG_BENCH_DIR` (default: the system temp dir); put it on
//! the disk you want to measure. Numbers and the reference measurements they
//! are compared with are in docs/benchmarks.md.

use std::cell::Cell;
use std::hint::black_box;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use engine::batch::builder::simple_batch;
use engine::batch::{ValidateMode, validate};
use engine::{FlushPolicy, Log, LogConfig, Offset};

/// A batch of 1 KiB records (1,000-byte values plus record framing) of
/// about `batch_bytes` bytes.
fn batch_of(batch_bytes: usize) -> Vec<u8> {
    let one = simple_batch(1, 1_000, 1, 7).len() - 61;
    simple_batch(
        (batch_bytes / one).max(1) as i32,
        1_000,
        1_700_000_000_000,
        7,
    )
}

/// Where the pseudo-random offsets of the read benchmarks start.
const XORSHIFT_SEED: u64 = 0x2545_f491_4f6c_dd1d;

/// The next of a xorshift sequence: offsets spread over a log, the same in
/// every run.
fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn bench_dir() -> PathBuf {
    std::env::var_os("SHARDLOG_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

fn validate_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    for (label, size) in [("16KiB", 16 << 10), ("1MiB", 1 << 20)] {
        let batch = batch_of(size);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(label, |b| {
            let mode = ValidateMode::Produce {
                max_message_bytes: 2 << 20,
            };
            b.iter(|| validate(black_box(&batch), 0, mode).count());
        });
    }
    group.finish();
}

/// Appends `iters` copies of `batch` with `appenders` appends in flight to a
/// fresh log and returns the time from the first append to the last ack.
fn timed_appends(batch: Bytes, iters: u64, appenders: usize, flush: FlushPolicy) -> Duration {
    let parent = bench_dir();
    engine::rt::run_on_executor("bench", None, move || async move {
        let tmp = tempfile::tempdir_in(parent).expect("temp dir");
        let config = LogConfig {
            flush,
            segment_bytes: 1 << 30,
            max_message_bytes: 2 << 20,
            ..LogConfig::default()
        };
        let log = Rc::new(
            Log::open(tmp.path().join("bench-0"), config, 0)
                .await
                .expect("open"),
        );
        let issued = Rc::new(Cell::new(0u64));
        let start = Instant::now();
        let workers = (0..appenders).map(|_| {
            let (log, issued, batch) = (Rc::clone(&log), Rc::clone(&issued), batch.clone());
            async move {
                while issued.get() < iters {
                    issued.set(issued.get() + 1);
                    log.append(batch.clone(), 0).await.expect("append");
                }
            }
        });
        futures::future::join_all(workers).await;
        let elapsed = start.elapsed();
        Rc::try_unwrap(log)
            .expect("sole owner")
            .close()
            .await
            .expect("close");
        elapsed
    })
    .expect("executor")
}

fn append_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    let interval = FlushPolicy::Interval {
        ms: Some(1_000),
        messages: None,
    };
    for (label, size) in [("16KiB", 16 << 10), ("1MiB", 1 << 20)] {
        let batch = Bytes::from(batch_of(size));
        group.throughput(Throughput::Bytes(batch.len() as u64));
        for (mode, appenders, flush) in [
            ("durable-1", 1, FlushPolicy::EveryAppend),
            ("durable-64", 64, FlushPolicy::EveryAppend),
            ("interval-1", 1, interval),
            ("interval-64", 64, interval),
        ] {
            let id = BenchmarkId::new(label, mode);
            group.bench_function(id, |b| {
                b.iter_custom(|iters| timed_appends(batch.clone(), iters, appenders, flush));
            });
        }
    }
    group.finish();
}

/// A 16-record batch of 1 KiB records from `producer_id` (-1: a plain
/// producer) with sequences from `sequence`.
fn producer_batch(producer_id: i64, sequence: i32) -> Bytes {
    let (epoch, sequence) = if producer_id < 0 {
        (-1, -1)
    } else {
        (0, sequence)
    };
    let batch =
        engine::batch::builder::producer_batch(producer_id, epoch, sequence, 16, 1_000, false);
    Bytes::from(batch)
}

/// Times `iters` staged appends (validation, the producer check, offsets,
/// the copy into staging: the append's CPU work, not the disk) of 16 KiB
/// batches from one producer, idempotent or plain. Batches are built, and
/// the staged bytes written, untimed, 1,024 at a time (16 MiB, under the
/// staging bound), so both variants time exactly the same work but the
/// check.
fn timed_producer_appends(iters: u64, idempotent: bool) -> Duration {
    let parent = bench_dir();
    engine::rt::run_on_executor("bench", None, move || async move {
        let tmp = tempfile::tempdir_in(parent).expect("temp dir");
        let config = LogConfig {
            flush: FlushPolicy::Interval {
                ms: Some(1_000),
                messages: None,
            },
            segment_bytes: 1 << 30,
            ..LogConfig::default()
        };
        let log = Log::open(tmp.path().join("bench-0"), config, 0)
            .await
            .expect("open");
        let producer_id = if idempotent { 7 } else { -1 };
        let (mut done, mut sequence, mut elapsed) = (0u64, 0i32, Duration::ZERO);
        while done < iters {
            let n = (iters - done).min(1_024);
            let batches: Vec<Bytes> = (0..n)
                .map(|i| producer_batch(producer_id, sequence + 16 * i as i32))
                .collect();
            sequence += 16 * n as i32;
            let start = Instant::now();
            for batch in batches {
                drop(log.stage_append(batch, 0).await.expect("stage"));
            }
            elapsed += start.elapsed();
            log.flush().await.expect("flush");
            done += n;
        }
        log.close().await.expect("close");
        elapsed
    })
    .expect("executor")
}

fn producer_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("append-producer");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Bytes(producer_batch(-1, 0).len() as u64));
    for (label, idempotent) in [("16KiB/plain", false), ("16KiB/idempotent", true)] {
        group.bench_function(label, |b| {
            b.iter_custom(|iters| timed_producer_appends(iters, idempotent));
        });
    }
    group.finish();
}

/// Fills a log with 64 MiB of 16 KiB batches, then times `iters` reads of
/// up to 1 MiB at pseudo-random offsets.
fn timed_reads(iters: u64, tail_cache_bytes: usize) -> Duration {
    let parent = bench_dir();
    engine::rt::run_on_executor("bench", None, move || async move {
        let tmp = tempfile::tempdir_in(parent).expect("temp dir");
        let flush = FlushPolicy::Interval {
            ms: None,
            messages: None,
        };
        let config = LogConfig {
            tail_cache_bytes,
            flush,
            ..LogConfig::default()
        };
        let log = Log::open(tmp.path().join("bench-0"), config, 0)
            .await
            .expect("open");
        let batch = Bytes::from(batch_of(16 << 10));
        for _ in 0..(64 << 20) / batch.len() {
            log.append(batch.clone(), 0).await.expect("append");
        }
        log.flush().await.expect("flush");
        let end = log.log_end_offset().0;
        let mut x = XORSHIFT_SEED;
        let start = Instant::now();
        for _ in 0..iters {
            let offset = Offset((xorshift(&mut x) % end as u64) as i64);
            black_box(log.read(offset, 1 << 20).await.expect("read").bytes());
        }
        let elapsed = start.elapsed();
        log.close().await.expect("close");
        elapsed
    })
    .expect("executor")
}

fn read_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Bytes(1 << 20));
    group.bench_function("1MiB/tail-cache", |b| {
        b.iter_custom(|iters| timed_reads(iters, 128 << 20))
    });
    group.bench_function("1MiB/direct-io", |b| {
        b.iter_custom(|iters| timed_reads(iters, 0))
    });
    group.finish();
}

/// Fills a log with two full segments of the default `segment.bytes`
/// (1 GiB) of 16 KiB batches a millisecond apart, then times `iters` lookups
/// in the sealed first segment at pseudo-random offsets: a one-batch read,
/// or a ListOffsets by time. `cold`: the shard's segment cache keeps
/// nothing, so each lookup loads the segment's indexes from their files
/// and opens it; warm, both stay cached after the first.
fn timed_sealed_lookups(iters: u64, cold: bool, by_time: bool) -> Duration {
    static FILLED: std::sync::OnceLock<(tempfile::TempDir, u64, i32)> = std::sync::OnceLock::new();
    let (tmp, first_batches, count) = FILLED.get_or_init(fill_two_segments);
    let (dir, first_batches, count) = (tmp.path().join("bench-0"), *first_batches, *count);
    engine::rt::run_on_executor("bench", None, move || async move {
        if cold {
            engine::set_segment_cache_limits(0, 1);
        }
        let config = LogConfig {
            tail_cache_bytes: 0,
            ..LogConfig::default()
        };
        let log = Log::open(dir, config, 0).await.expect("open");
        let mut x = XORSHIFT_SEED;
        let start = Instant::now();
        for _ in 0..iters {
            let batch = (xorshift(&mut x) % first_batches) as i64;
            if by_time {
                let found = log.offset_for_timestamp(1_700_000_000_001 + batch);
                black_box(found.await.expect("lookup"));
            } else {
                let offset = Offset(batch * i64::from(count));
                black_box(log.read(offset, 1).await.expect("read").bytes());
            }
        }
        let elapsed = start.elapsed();
        log.close().await.expect("close");
        elapsed
    })
    .expect("executor")
}

/// The log [`timed_sealed_lookups`] reads: its directory, the batches in
/// its first segment, and the records per batch.
fn fill_two_segments() -> (tempfile::TempDir, u64, i32) {
    let tmp = tempfile::tempdir_in(bench_dir()).expect("temp dir");
    let dir = tmp.path().join("bench-0");
    let (batches, count) = engine::rt::run_on_executor("bench", None, move || async move {
        let flush = FlushPolicy::Interval {
            ms: None,
            messages: None,
        };
        let config = LogConfig {
            tail_cache_bytes: 0,
            flush,
            ..LogConfig::default()
        };
        let log = Log::open(dir, config, 0).await.expect("open");
        let one = simple_batch(1, 1_000, 1, 7).len() - 61;
        let count = ((16 << 10) / one) as i32;
        let mut t = 1_700_000_000_000;
        while log.segment_count() < 3 {
            t += 1;
            let batch = Bytes::from(simple_batch(count, 1_000, t, 7));
            log.append(batch, 0).await.expect("append");
        }
        log.close().await.expect("close");
        ((t - 1_700_000_000_000) as u64 / 2, count)
    })
    .expect("executor");
    (tmp, batches, count)
}

fn sealed_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sealed");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for (label, cold, by_time) in [
        ("read/warm", false, false),
        ("read/cold", true, false),
        ("time/warm", false, true),
        ("time/cold", true, true),
    ] {
        group.bench_function(label, |b| {
            b.iter_custom(|iters| timed_sealed_lookups(iters, cold, by_time))
        });
    }
    group.finish();
}

/// Bytes of the log a cleaning pass gets: 1 KiB records over
/// [`CLEAN_KEYS`] keys, each updated about six times.
const CLEAN_LOG_BYTES: usize = 32 << 20;
const CLEAN_KEYS: usize = 5_000;

/// `iters` cleaning passes, each over a fresh compacted log of
/// [`CLEAN_LOG_BYTES`] in 4 MiB segments, all of it dirty (writing it is
/// not timed); the time of the passes.
fn timed_cleans(iters: u64) -> Duration {
    use engine::CleanupPolicy;
    use engine::batch::builder::{BatchSpec, Record, encode_batch, encode_records};
    let parent = bench_dir();
    engine::rt::run_on_executor("bench", None, move || async move {
        let mut total = Duration::ZERO;
        let value = vec![b'v'; 1_000];
        for _ in 0..iters {
            let tmp = tempfile::tempdir_in(&parent).expect("temp dir");
            let config = LogConfig {
                segment_bytes: 4 << 20,
                cleanup: CleanupPolicy {
                    delete: false,
                    compact: true,
                },
                ..LogConfig::default()
            };
            let log = Log::open(tmp.path().join("clean-0"), config, 0)
                .await
                .expect("open");
            let mut key = 0usize;
            while (log.log_end_offset().get() as usize) * 1_030 < CLEAN_LOG_BYTES {
                let keys: Vec<String> = (0..16)
                    .map(|i| format!("key-{}", (key + i) % CLEAN_KEYS))
                    .collect();
                key += 16;
                let records: Vec<Record<'_>> = keys
                    .iter()
                    .map(|k| Record {
                        key: Some(k.as_bytes()),
                        value: Some(&value),
                        ..Record::default()
                    })
                    .collect();
                let batch = encode_batch(&BatchSpec::new(16, 1), &encode_records(&records));
                log.append(Bytes::from(batch), 0).await.expect("append");
            }
            let start = Instant::now();
            let stats = log.clean(128 << 20, 0).await.expect("clean");
            total += start.elapsed();
            assert!(stats.segments > 0, "the pass rewrote nothing");
            log.close().await.expect("close");
        }
        total
    })
    .expect("executor")
}

fn clean_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("clean");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(CLEAN_LOG_BYTES as u64));
    group.bench_function("32MiB-5000-keys", |b| b.iter_custom(timed_cleans));
    group.finish();
}

criterion_group!(
    benches,
    validate_bench,
    append_bench,
    producer_bench,
    read_bench,
    sealed_bench,
    clean_bench
);
criterion_main!(benches);
