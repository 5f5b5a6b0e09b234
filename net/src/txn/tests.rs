#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use proptest::prelude::*;

use super::*;

const T: &str = "txn-1";

/// Persists and applies a decision, as the driver does; returns the reply.
fn run<R>(c: &mut Coordinator, outcome: Outcome<R>) -> Result<R, i16> {
    match outcome? {
        Decision::Reply(reply) => Ok(reply),
        Decision::Persist { record, reply } => {
            c.apply(record);
            Ok(reply)
        }
    }
}

fn init(c: &mut Coordinator, fresh: i64, now: i64) -> InitReply {
    let outcome = c.init_producer_id(T, 60_000, None, fresh, now);
    run(c, outcome)?
}

fn tp(topic: &str, partition: i32) -> TxnPartition {
    (topic.to_string(), partition)
}

#[test]
fn a_transaction_commits_and_the_next_init_bumps_the_epoch() {
    let mut c = Coordinator::default();
    assert_eq!(init(&mut c, 7, 0), Ok((7, 0)));
    let add = c.add_partitions(T, 7, 0, &[tp("a", 0), tp("b", 1)], 10);
    run(&mut c, add).unwrap();
    assert_eq!(c.metadata(T).unwrap().state, TxnState::Ongoing);
    // Partitions already in: nothing to write.
    assert_eq!(
        c.add_partitions(T, 7, 0, &[tp("a", 0)], 11),
        Ok(Decision::Reply(()))
    );
    let end = c.end_txn(T, 7, 0, true, 20);
    run(&mut c, end).unwrap();
    let markers = c.markers();
    assert_eq!(markers.len(), 1);
    assert!(markers[0].commit);
    assert_eq!(markers[0].partitions.len(), 2);
    // Until the markers are written, the id is busy.
    assert_eq!(
        c.add_partitions(T, 7, 0, &[tp("a", 0)], 21),
        Err(CONCURRENT_TRANSACTIONS)
    );
    assert_eq!(init(&mut c, 8, 21), Err(CONCURRENT_TRANSACTIONS));
    // A retried EndTxn is told to wait, the other outcome is refused.
    assert_eq!(c.end_txn(T, 7, 0, true, 21), Err(CONCURRENT_TRANSACTIONS));
    assert_eq!(c.end_txn(T, 7, 0, false, 21), Err(INVALID_TXN_STATE));
    let done = c.complete(T, 30).unwrap();
    c.apply(done);
    assert_eq!(c.metadata(T).unwrap().state, TxnState::CompleteCommit);
    assert!(c.markers().is_empty());
    assert_eq!(
        c.end_txn(T, 7, 0, true, 31),
        Ok(Decision::Reply(())),
        "a retry"
    );
    assert_eq!(c.end_txn(T, 7, 0, false, 31), Err(INVALID_TXN_STATE));
    assert_eq!(init(&mut c, 9, 40), Ok((7, 1)), "same id, next epoch");
    assert_eq!(
        c.add_partitions(T, 7, 0, &[tp("a", 0)], 41),
        Err(PRODUCER_FENCED)
    );
    assert_eq!(
        c.add_partitions(T, 6, 1, &[tp("a", 0)], 41),
        Err(INVALID_PRODUCER_ID_MAPPING)
    );
}

#[test]
fn init_during_a_transaction_aborts_it_under_a_new_epoch() {
    let mut c = Coordinator::default();
    init(&mut c, 3, 0).unwrap();
    let add = c.add_partitions(T, 3, 0, &[tp("a", 0)], 1);
    run(&mut c, add).unwrap();
    // A new instance of the same transactional id.
    assert_eq!(init(&mut c, 4, 2), Err(CONCURRENT_TRANSACTIONS));
    let meta = c.metadata(T).unwrap();
    assert_eq!((meta.state, meta.epoch), (TxnState::PrepareAbort, 1));
    let markers = c.markers();
    assert_eq!((markers[0].commit, markers[0].epoch), (false, 1));
    // The old instance is fenced.
    assert_eq!(c.end_txn(T, 3, 0, true, 3), Err(PRODUCER_FENCED));
    let done = c.complete(T, 4).unwrap();
    c.apply(done);
    assert_eq!(init(&mut c, 5, 5), Ok((3, 2)));
}

#[test]
fn timeouts_abort_and_fence() {
    let mut c = Coordinator::default();
    init(&mut c, 3, 0).unwrap();
    let add = c.add_partitions(T, 3, 0, &[tp("a", 0)], 1_000);
    run(&mut c, add).unwrap();
    assert!(
        c.expired(61_000).is_empty(),
        "exactly the timeout is not past it"
    );
    let expired = c.expired(61_001);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].metadata.state, TxnState::PrepareAbort);
    assert_eq!(expired[0].metadata.epoch, 1);
    c.apply(expired[0].clone());
    assert_eq!(c.end_txn(T, 3, 0, true, 61_002), Err(PRODUCER_FENCED));
}

#[test]
fn idle_ids_expire_but_not_with_a_transaction_running() {
    let mut c = Coordinator::with_max_timeout(120_000);
    assert_eq!(
        c.init_producer_id(T, 120_001, None, 1, 0),
        Err(INVALID_TRANSACTION_TIMEOUT),
        "over transaction.max.timeout.ms"
    );
    init(&mut c, 1, 0).unwrap();
    let other = c.init_producer_id("txn-2", 60_000, None, 2, 0);
    run(&mut c, other).unwrap().unwrap();
    let add = c.add_partitions("txn-2", 2, 0, &[tp("a", 0)], 0);
    run(&mut c, add).unwrap();
    assert!(c.take_idle(1_000, 1_000).is_empty(), "not idle yet");
    // txn-2 is Ongoing: only the timeout ends it, never expiry.
    assert_eq!(c.take_idle(1_001, 1_000), vec![T.to_string()]);
    assert_eq!(
        c.init_producer_id(T, 60_000, None, 3, 1_002),
        Err(CONCURRENT_TRANSACTIONS),
        "pending while its tombstone is written"
    );
    c.remove(T);
    assert!(c.metadata(T).is_none());
    // A new instance starts afresh with the next producer id.
    assert_eq!(init(&mut c, 4, 2_000), Ok((4, 0)));
    // A failed tombstone keeps the id.
    let _ = c.take_idle(10_000, 1_000);
    c.abandon(T);
    assert_eq!(c.metadata(T).map(|m| m.producer_id), Some(4));
}

#[test]
fn bad_requests_get_kafkas_codes() {
    let mut c = Coordinator::default();
    assert_eq!(
        c.init_producer_id("", 1000, None, 1, 0),
        Err(INVALID_REQUEST)
    );
    for timeout in [0, -5, TRANSACTION_MAX_TIMEOUT_MS + 1] {
        assert_eq!(
            c.init_producer_id(T, timeout, None, 1, 0),
            Err(INVALID_TRANSACTION_TIMEOUT)
        );
    }
    assert_eq!(
        c.add_partitions(T, 1, 0, &[tp("a", 0)], 0),
        Err(INVALID_PRODUCER_ID_MAPPING)
    );
    assert_eq!(
        c.end_txn(T, 1, 0, true, 0),
        Err(INVALID_PRODUCER_ID_MAPPING)
    );
    init(&mut c, 1, 0).unwrap();
    assert_eq!(
        c.end_txn(T, 1, 0, true, 0),
        Err(INVALID_TXN_STATE),
        "nothing to end"
    );
    assert_eq!(c.complete(T, 0), None);
    // KIP-360: a producer id that is not this id's.
    assert_eq!(
        c.init_producer_id(T, 1000, Some((99, 0)), 2, 0),
        Err(PRODUCER_FENCED)
    );
}

#[test]
fn kip_360_retries_and_exhausted_epochs() {
    let mut c = Coordinator::default();
    init(&mut c, 1, 0).unwrap();
    let bump = c.init_producer_id(T, 1000, Some((1, 0)), 2, 1);
    assert_eq!(run(&mut c, bump).unwrap(), Ok((1, 1)));
    // The answer was lost: the same request again gets the current epoch.
    let retry = c.init_producer_id(T, 1000, Some((1, 0)), 2, 2);
    assert_eq!(retry, Ok(Decision::Reply(Ok((1, 1)))));
    // At the epoch limit a new producer id starts over.
    let mut record = TxnRecord {
        transactional_id: T.into(),
        metadata: c.metadata(T).unwrap().clone(),
    };
    record.metadata.epoch = EPOCH_EXHAUSTED;
    c.apply(record);
    assert_eq!(init(&mut c, 50, 3), Ok((50, 0)));
    assert_eq!(c.metadata(T).unwrap().last_producer_id, 1);
}

#[test]
fn an_abandoned_first_record_leaves_no_id() {
    let mut c = Coordinator::default();
    let Ok(Decision::Persist { .. }) = c.init_producer_id(T, 1000, None, 1, 0) else {
        panic!("a new id is persisted");
    };
    assert_eq!(
        c.init_producer_id(T, 1000, None, 2, 0),
        Err(CONCURRENT_TRANSACTIONS)
    );
    c.abandon(T);
    assert_eq!(c.metadata(T), None);
    assert_eq!(c, Coordinator::default());
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Op {
    Init {
        expected: Option<(i64, i16)>,
    },
    Add {
        partitions: Vec<i32>,
        stale: bool,
    },
    End {
        commit: bool,
        stale: bool,
    },
    Complete,
    Expire {
        after_ms: i64,
    },
    /// The next persisted record fails to be written.
    FailNextWrite,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        proptest::option::of((0i64..4, -1i16..4)).prop_map(|expected| Op::Init { expected }),
        (proptest::collection::vec(0i32..4, 1..3), any::<bool>())
            .prop_map(|(partitions, stale)| Op::Add { partitions, stale }),
        (any::<bool>(), any::<bool>()).prop_map(|(commit, stale)| Op::End { commit, stale }),
        Just(Op::Complete),
        (0i64..120_000).prop_map(|after_ms| Op::Expire { after_ms }),
        Just(Op::FailNextWrite),
    ]
}

/// A fixed seed (SHARDLOG_TEST_SEED, else a default), printed.
fn config() -> ProptestConfig {
    let seed = std::env::var("SHARDLOG_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x7a11_2026);
    eprintln!("txn property test: seed {seed} (replay with SHARDLOG_TEST_SEED={seed})");
    ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Random requests in every state: the answers keep Kafka's invariants
    /// (epochs only grow under one producer id, a stale epoch never gets
    /// NONE, partitions only while a transaction runs, Prepare* only from
    /// Ongoing), and replaying the applied records rebuilds the state.
    #[test]
    fn random_requests_keep_the_invariants_and_replay_exactly(ops in proptest::collection::vec(op(), 1..60)) {
        let mut c = Coordinator::default();
        let mut log: Vec<TxnRecord> = Vec::new();
        let mut now = 0i64;
        let mut fail_next = false;
        let mut fresh = 100i64;
        for op in ops {
            now += 1_000;
            let before = c.metadata(T).cloned();
            let current = before.as_ref().map(|m| (m.producer_id, m.epoch)).unwrap_or((0, 0));
            let stale_epoch = current.1 - 1;
            let mut persist = |c: &mut Coordinator, record: TxnRecord| {
                if std::mem::take(&mut fail_next) {
                    c.abandon(T);
                    false
                } else {
                    log.push(record.clone());
                    c.apply(record);
                    true
                }
            };
            match op {
                Op::Init { expected } => {
                    fresh += 1;
                    if let Ok(Decision::Persist { record, .. }) =
                        c.init_producer_id(T, 60_000, expected, fresh, now)
                    {
                        persist(&mut c, record);
                    }
                }
                Op::Add { partitions, stale } => {
                    let epoch = if stale { stale_epoch } else { current.1 };
                    let tps: Vec<TxnPartition> = partitions.iter().map(|p| tp("t", *p)).collect();
                    let outcome = c.add_partitions(T, current.0, epoch, &tps, now);
                    if stale && before.is_some() {
                        prop_assert!(outcome.is_err(), "a stale epoch added partitions");
                    }
                    if let Ok(Decision::Persist { record, .. }) = outcome {
                        prop_assert_eq!(record.metadata.state, TxnState::Ongoing);
                        persist(&mut c, record);
                    }
                }
                Op::End { commit, stale } => {
                    let epoch = if stale { stale_epoch } else { current.1 };
                    let outcome = c.end_txn(T, current.0, epoch, commit, now);
                    if stale && before.is_some() {
                        prop_assert!(outcome.is_err(), "a stale epoch ended a transaction");
                    }
                    if let Ok(Decision::Persist { record, .. }) = outcome {
                        prop_assert_eq!(before.as_ref().map(|m| m.state), Some(TxnState::Ongoing));
                        persist(&mut c, record);
                    }
                }
                Op::Complete => {
                    if let Some(record) = c.complete(T, now) {
                        persist(&mut c, record);
                    }
                }
                Op::Expire { after_ms } => {
                    for record in c.expired(now + after_ms) {
                        persist(&mut c, record);
                    }
                }
                Op::FailNextWrite => fail_next = true,
            }
            if let (Some(b), Some(a)) = (&before, c.metadata(T)) {
                if a.producer_id == b.producer_id {
                    prop_assert!(a.epoch >= b.epoch, "epoch went back: {b:?} -> {a:?}");
                } else {
                    prop_assert_eq!(a.epoch, 0, "a new producer id starts at epoch 0");
                    prop_assert_eq!(a.last_producer_id, b.producer_id);
                }
            }
            if let Some(m) = c.metadata(T) {
                let running = matches!(
                    m.state,
                    TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
                );
                prop_assert!(running || m.partitions.is_empty(), "partitions left in {m:?}");
            }
        }
        let mut replayed = Coordinator::default();
        for record in log {
            replayed.apply(record);
        }
        prop_assert_eq!(replayed.metadata(T), c.metadata(T));
    }
}
