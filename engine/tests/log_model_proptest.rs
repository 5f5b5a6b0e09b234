//! Random sequences of appends, reads, deletes, retention, truncations
//! (a follower cutting its log) and reopens,
//! checked against a simple in-memory model of the log.

mod common;

use bytes::Bytes;
use common::*;
use engine::{Error, Log, LogConfig, Offset};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

#[derive(Debug, Clone)]
enum Op {
    Append { batches: Vec<(i32, usize, bool)> },
    Read { pick: u64, max_bytes: usize },
    DeleteRecords { pick: u64 },
    Retention,
    Truncate { pick: u64 },
    Reopen { clean: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec((1i32..6, 0usize..3_000, any::<bool>()), 1..4)
            .prop_map(|batches| Op::Append { batches }),
        4 => (any::<u64>(), 1usize..20_000).prop_map(|(pick, max_bytes)| Op::Read { pick, max_bytes }),
        1 => any::<u64>().prop_map(|pick| Op::DeleteRecords { pick }),
        1 => Just(Op::Retention),
        1 => any::<u64>().prop_map(|pick| Op::Truncate { pick }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    segment_bytes: u64,
    tail_cache_bytes: usize,
    index_interval_bytes: u32,
    write_buffer_bytes: usize,
    retention_bytes: u64,
    /// The shard's sealed-segment cache: index bytes and open files
    /// (tiny: every lookup reads the index files, every read opens its file).
    segment_cache: (usize, usize),
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        8_000u64..64_000,
        prop_oneof![Just(0usize), Just(16 << 10), Just(1 << 20)],
        256u32..4096,
        1usize..20,
        10_000u64..100_000,
        prop_oneof![
            Just((0usize, 1usize)),
            Just((1_000, 2)),
            Just((64 << 20, 1024))
        ],
    )
        .prop_map(
            |(
                segment_bytes,
                tail_cache_bytes,
                index_interval_bytes,
                blocks,
                retention_bytes,
                segment_cache,
            )| Setup {
                segment_bytes,
                tail_cache_bytes,
                index_interval_bytes,
                write_buffer_bytes: blocks * 4096,
                retention_bytes,
                segment_cache,
            },
        )
}

/// The model: every stored batch (base, last, bytes) and the log start.
#[derive(Debug, Default)]
struct Model {
    batches: Vec<(i64, i64, Vec<u8>)>,
    log_start: i64,
}

impl Model {
    fn end(&self) -> i64 {
        self.batches.last().map_or(self.log_start, |b| b.1 + 1)
    }

    /// DeleteRecords to an offset `pick` chooses. Returns the offset.
    fn delete_records(&mut self, pick: u64) -> i64 {
        let offset = self.log_start + (pick % (self.end() - self.log_start + 1) as u64) as i64;
        self.log_start = offset;
        self.batches.retain(|b| b.1 >= offset);
        offset
    }

    /// A follower's cut at an offset `pick` chooses: at the first batch
    /// that reaches it. Returns the offset.
    fn truncate(&mut self, pick: u64) -> i64 {
        let offset = self.log_start + (pick % (self.end() - self.log_start + 1) as u64) as i64;
        if let Some(cut) = self.batches.iter().find(|b| b.1 >= offset).map(|b| b.0) {
            self.batches.retain(|b| b.1 < offset);
            self.log_start = self.log_start.min(cut);
        }
        offset
    }

    fn expected_read(&self, offset: i64, max_bytes: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for (_, last, bytes) in self.batches.iter().filter(|b| b.1 >= offset) {
            let _ = last;
            if !out.is_empty() && out.len() + bytes.len() > max_bytes {
                break;
            }
            out.extend_from_slice(bytes);
        }
        out
    }
}

/// A read at an offset `pick` chooses (around the log's bounds too) matches
/// the model.
async fn check_read(log: &Log, model: &Model, pick: u64, max_bytes: usize) {
    let span = (model.end() - model.log_start + 3) as u64;
    let offset = model.log_start - 1 + (pick % span) as i64;
    let result = log.read(Offset(offset), max_bytes).await;
    if offset < model.log_start || offset > model.end() {
        assert!(
            matches!(result, Err(Error::OffsetOutOfRange { .. })),
            "{offset}: {result:?}"
        );
    } else {
        let r = result.unwrap();
        let (got, want) = (concat(&r), model.expected_read(offset, max_bytes));
        let first_difference = got.iter().zip(&want).position(|(a, b)| a != b);
        assert!(
            got == want,
            "read at {offset} max {max_bytes}: got {} bytes, want {}, first difference at {first_difference:?}",
            got.len(),
            want.len()
        );
        assert_eq!(
            (r.log_start_offset.0, r.log_end_offset.0),
            (model.log_start, model.end())
        );
    }
}

async fn check_case(setup: Setup, ops: Vec<Op>, case_seed: u64) {
    engine::set_segment_cache_limits(setup.segment_cache.0, setup.segment_cache.1);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let config = LogConfig {
        segment_bytes: setup.segment_bytes,
        tail_cache_bytes: setup.tail_cache_bytes,
        index_interval_bytes: setup.index_interval_bytes,
        write_buffer_bytes: setup.write_buffer_bytes,
        retention_bytes: Some(setup.retention_bytes),
        retention_ms: None,
        ..LogConfig::default()
    };
    let mut rng = Rng(case_seed);
    let mut model = Model::default();
    let mut log = Log::open(&dir, config.clone(), 0).await.unwrap();
    for op in ops {
        match op {
            Op::Append { batches } => {
                let mut bytes = Vec::new();
                let mut encoded = Vec::new();
                for (count, size, compressed) in batches {
                    let b = batch(&mut rng, count, size / count as usize, 1_000, compressed);
                    bytes.extend_from_slice(&b);
                    encoded.push((count, b));
                }
                let info = log.append(Bytes::from(bytes), 0).await.unwrap();
                let mut next = info.base_offset.0;
                assert_eq!(next, model.end());
                for (count, b) in encoded {
                    model
                        .batches
                        .push((next, next + i64::from(count) - 1, with_offset(&b, next)));
                    next += i64::from(count);
                }
                assert_eq!(info.last_offset.0, next - 1);
            }
            Op::Read { pick, max_bytes } => check_read(&log, &model, pick, max_bytes).await,
            Op::DeleteRecords { pick } => {
                let offset = model.delete_records(pick);
                assert_eq!(
                    log.delete_records(Offset(offset)).await.unwrap(),
                    Offset(offset)
                );
            }
            Op::Retention => {
                log.enforce_retention(0).await.unwrap();
                let start = log.log_start_offset().0;
                assert!(start >= model.log_start);
                if start > model.log_start {
                    assert!(
                        model.batches.iter().any(|b| b.0 == start) || start == model.end(),
                        "segment boundary"
                    );
                    model.log_start = start;
                    model.batches.retain(|b| b.1 >= start);
                    assert!(log.size_bytes() >= setup.retention_bytes);
                }
            }
            Op::Truncate { pick } => {
                let offset = model.truncate(pick);
                log = log
                    .truncate_to(Offset(offset), config.clone(), 0)
                    .await
                    .unwrap();
            }
            Op::Reopen { clean } => {
                if clean {
                    log.close().await.unwrap();
                } else {
                    log.flush().await.unwrap();
                    std::mem::forget(log);
                }
                log = Log::open(&dir, config.clone(), 0).await.unwrap();
            }
        }
        assert_eq!(log.log_end_offset().0, model.end());
        assert_eq!(log.log_start_offset().0, model.log_start);
    }
    log.close().await.unwrap();
}

#[test]
fn random_operations_match_the_model() {
    let mut config = proptest_config("random_operations_match_the_model", 48);
    config.max_shrink_iters = 2_000;
    let mut runner = TestRunner::new(config);
    let strategy = (
        setup(),
        proptest::collection::vec(op(), 1..40),
        any::<u64>(),
    );
    runner
        .run(&strategy, |(setup, ops, case_seed)| {
            run(move || check_case(setup, ops, case_seed));
            Ok(())
        })
        .unwrap();
}
