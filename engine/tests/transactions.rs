//! Transactions in one partition: open transactions hold the last stable
//! offset back, commit and abort markers release it, aborted transactions
//! are listed for read_committed readers, and all of it survives a clean
//! reopen, a reopen from the snapshot a roll wrote, and a crash.

mod common;

use bytes::Bytes;
use common::{run, small_config};
use engine::batch::builder::producer_batch;
use engine::batch::{ValidateMode, validate};
use engine::{AbortedTxn, Error, Log, Offset, ProducerError};

/// `count` records of 1 KiB from `producer_id` (epoch 0), transactional or
/// not, sequences from `sequence`.
fn batch(producer_id: i64, sequence: i32, count: i32, transactional: bool) -> Bytes {
    Bytes::from(producer_batch(
        producer_id,
        0,
        sequence,
        count,
        1024,
        transactional,
    ))
}

async fn offsets_read_committed(log: &Log) -> Vec<i64> {
    let read = log
        .read_committed(log.log_start_offset(), 1 << 20)
        .await
        .unwrap();
    let mut bytes = Vec::new();
    for chunk in &read.chunks {
        chunk.extend_into(&mut bytes);
    }
    validate(&bytes, 0, ValidateMode::Stored)
        .map(|b| b.unwrap().1.header().base_offset().get())
        .collect()
}

fn aborted(producer_id: i64, first: i64, last: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id,
        first_offset: Offset(first),
        last_offset: Offset(last),
    }
}

#[test]
fn open_transactions_hold_the_stable_offset_and_markers_release_it() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path().join("t-0"), small_config(), 0)
            .await
            .unwrap();
        log.append(batch(1, 0, 3, true), 0).await.unwrap(); // 0-2, producer 1's transaction
        log.append(batch(-1, -1, 2, false), 0).await.unwrap(); // 3-4, plain
        log.append(batch(2, 0, 2, true), 0).await.unwrap(); // 5-6, producer 2's transaction
        assert_eq!(log.last_stable_offset(), Offset(0));
        assert!(offsets_read_committed(&log).await.is_empty());
        let commit = log.append_marker(1, 0, true, 0, 0).await.unwrap();
        assert_eq!(commit.base_offset, Offset(7));
        assert_eq!(
            log.last_stable_offset(),
            Offset(5),
            "producer 2's is still open"
        );
        assert_eq!(offsets_read_committed(&log).await, vec![0, 3]);
        log.append(batch(1, 3, 1, true), 0).await.unwrap(); // 8: producer 1's next transaction
        let abort = log.append_marker(2, 0, false, 0, 0).await.unwrap();
        assert_eq!(abort.base_offset, Offset(9));
        assert_eq!(log.last_stable_offset(), Offset(8));
        assert_eq!(
            log.aborted_transactions(Offset(0), Offset(10)),
            vec![aborted(2, 5, 9)]
        );
        assert!(log.aborted_transactions(Offset(10), Offset(12)).is_empty());
        assert_eq!(
            log.aborted_transactions(Offset(6), Offset(7)),
            vec![aborted(2, 5, 9)]
        );
        log.append_marker(1, 0, false, 0, 0).await.unwrap(); // 10
        assert_eq!(log.last_stable_offset(), log.log_end_offset());
        // A marker from an epoch older than the producer's is refused.
        log.append_marker(3, 4, true, 0, 0).await.unwrap();
        let stale = log.append_marker(3, 2, true, 0, 0).await;
        assert!(
            matches!(
                stale,
                Err(Error::Producer(ProducerError::InvalidEpoch { .. }))
            ),
            "{stale:?}"
        );
        log.close().await.unwrap();
    });
}

#[test]
fn transactions_survive_reopen_rolls_and_crashes() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let log = Log::open(&dir, small_config(), 0).await.unwrap();
        // Producer 7 opens a transaction first; 60 KiB of others' batches
        // roll segments (64 KiB) over it; producer 8's is aborted.
        log.append(batch(7, 0, 2, true), 0).await.unwrap(); // 0-1
        log.append(batch(8, 0, 2, true), 0).await.unwrap(); // 2-3
        log.append_marker(8, 0, false, 0, 0).await.unwrap(); // 4
        let mut sequence = 2;
        for _ in 0..40 {
            log.append(batch(7, sequence, 4, true), 0).await.unwrap();
            sequence += 4;
        }
        let end = log.log_end_offset();
        let segments = common::segment_files(&dir);
        assert!(segments > 2, "rolled ({segments} segments)");
        let crashed = tmp.path().join("crashed-0");
        common::copy_as_crashed(&dir, &crashed);
        log.close().await.unwrap();
        for reopened in [&dir, &crashed] {
            let log = Log::open(reopened, small_config(), 0).await.unwrap();
            let at = reopened.display();
            assert_eq!(log.log_end_offset(), end, "{at}");
            assert_eq!(
                log.last_stable_offset(),
                Offset(0),
                "{at}: producer 7's is open"
            );
            assert_eq!(
                log.aborted_transactions(Offset(0), end),
                vec![aborted(8, 2, 4)],
                "{at}"
            );
            let commit = log.append_marker(7, 0, true, 0, 0).await.unwrap();
            assert_eq!(log.last_stable_offset(), commit.last_offset.plus(1), "{at}");
            log.close().await.unwrap();
        }
    });
}

/// A marker from a coordinator older than the one that wrote the
/// producer's last marker here (a deposed coordinator's, late) is
/// TRANSACTION_COORDINATOR_FENCED and changes nothing; the coordinator
/// epoch is kept across a clean reopen (the producer snapshot) and a crash
/// (rebuilt from the markers in the log).
#[test]
fn a_deposed_coordinator_s_late_marker_is_fenced() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let log = Log::open(&dir, small_config(), 0).await.unwrap();
        log.append(batch(5, 0, 2, true), 0).await.unwrap(); // 0-1
        log.append_marker(5, 0, true, 3, 0).await.unwrap(); // 2, coordinator epoch 3
        log.append(batch(5, 2, 2, true), 0).await.unwrap(); // 3-4, the next transaction
        let late = log.append_marker(5, 0, false, 2, 0).await;
        assert!(
            matches!(
                late,
                Err(Error::Producer(ProducerError::CoordinatorFenced {
                    current: 3,
                    got: 2,
                    ..
                }))
            ),
            "{late:?}"
        );
        assert_eq!(log.last_stable_offset(), Offset(3), "still open");
        let end = log.log_end_offset();
        let crashed = tmp.path().join("crashed-0");
        common::copy_as_crashed(&dir, &crashed);
        log.close().await.unwrap();
        for reopened in [&dir, &crashed] {
            let at = reopened.display();
            let log = Log::open(reopened, small_config(), 0).await.unwrap();
            assert_eq!(log.log_end_offset(), end, "{at}");
            let late = log.append_marker(5, 0, false, 2, 0).await;
            assert!(
                matches!(
                    late,
                    Err(Error::Producer(ProducerError::CoordinatorFenced { .. }))
                ),
                "{at}: {late:?}"
            );
            // The next coordinator's marker ends it.
            let commit = log.append_marker(5, 0, true, 4, 0).await.unwrap();
            assert_eq!(log.last_stable_offset(), commit.last_offset.plus(1), "{at}");
            log.close().await.unwrap();
        }
    });
}
