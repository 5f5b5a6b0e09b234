//! Idempotent producers through the log: a retried batch is answered with
//! its first offsets and stored once; gaps and old epochs are refused; the
//! state survives a clean reopen, a reopen after rolls (from the snapshot
//! plus the batches after it) and a crash (a copy of the files taken while
//! the log was open).

mod common;

use bytes::Bytes;
use common::{run, small_config};
use engine::batch::builder::producer_batch;
use engine::{Error, Log, Offset, ProducerError};

/// A batch of `count` 1 KiB records from `producer_id` at `epoch`,
/// sequences from `sequence`.
fn batch(producer_id: i64, epoch: i16, sequence: i32, count: i32) -> Bytes {
    Bytes::from(producer_batch(
        producer_id,
        epoch,
        sequence,
        count,
        1024,
        false,
    ))
}

async fn offsets(log: &Log, b: Bytes) -> Result<(i64, i64), Error> {
    log.append(b, 0)
        .await
        .map(|info| (info.base_offset.get(), info.last_offset.get()))
}

#[test]
fn retries_are_stored_once_and_out_of_order_batches_refused() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path().join("t-0"), small_config(), 0)
            .await
            .unwrap();
        assert_eq!(offsets(&log, batch(-1, -1, -1, 2)).await.unwrap(), (0, 1));
        assert_eq!(offsets(&log, batch(8, 0, 0, 3)).await.unwrap(), (2, 4));
        assert_eq!(offsets(&log, batch(8, 0, 3, 3)).await.unwrap(), (5, 7));
        // The retry of the first: its offsets, nothing stored.
        assert_eq!(offsets(&log, batch(8, 0, 0, 3)).await.unwrap(), (2, 4));
        assert_eq!(log.log_end_offset(), Offset(8));
        let refused = offsets(&log, batch(8, 0, 7, 1)).await;
        assert!(
            matches!(
                refused,
                Err(Error::Producer(ProducerError::OutOfOrderSequence { .. }))
            ),
            "{refused:?}"
        );
        let fenced = offsets(&log, batch(8, -1, 6, 1)).await;
        assert!(
            matches!(
                fenced,
                Err(Error::Producer(ProducerError::InvalidEpoch { .. }))
            ),
            "{fenced:?}"
        );
        assert_eq!(log.log_end_offset(), Offset(8), "refusals store nothing");
        log.close().await.unwrap();
    });
}

#[test]
fn producer_state_survives_reopen_rolls_and_crashes() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        // 64 KiB segments: 30 batches of 4 KiB roll several times.
        let log = Log::open(&dir, small_config(), 0).await.unwrap();
        for i in 0..30 {
            let producer = 100 + i64::from(i % 3);
            let sequence = (i / 3) * 4;
            offsets(&log, batch(producer, 1, sequence, 4))
                .await
                .unwrap();
        }
        let segments = common::segment_files(&dir);
        assert!(segments > 1, "rolled ({segments} segments)");
        assert!(
            dir.join("producer.snapshot").exists(),
            "a roll wrote a snapshot"
        );
        // A crash now: the files as they are, the log still open.
        let crashed = tmp.path().join("crashed-0");
        common::copy_as_crashed(&dir, &crashed);
        log.close().await.unwrap();
        for reopened in [&dir, &crashed] {
            let log = Log::open(reopened, small_config(), 0).await.unwrap();
            let end = log.log_end_offset();
            assert_eq!(end, Offset(120), "{}", reopened.display());
            // Producer 100's last batch (sequences 36-39) was the 28th: offsets 108-111.
            assert_eq!(
                offsets(&log, batch(100, 1, 36, 4)).await.unwrap(),
                (108, 111),
                "{}: a retry after reopening",
                reopened.display()
            );
            assert_eq!(log.log_end_offset(), end);
            let gap = offsets(&log, batch(101, 1, 44, 4)).await;
            assert!(matches!(gap, Err(Error::Producer(_))), "{gap:?}");
            assert_eq!(
                offsets(&log, batch(102, 1, 40, 4)).await.unwrap(),
                (120, 123)
            );
            log.close().await.unwrap();
        }
    });
}
