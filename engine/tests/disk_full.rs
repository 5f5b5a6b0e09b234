//! A full disk: the append that cannot be written fails with an error and
//! poisons the partition; everything acknowledged before stays readable,
//! and survives a reopen. Runs on a small ext4 image mounted on a loop
//! device, so it needs root (CI runs as root; elsewhere it says it skipped).

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use common::*;
use engine::{Error, Log, LogConfig, Offset};

#[test]
fn disk_full_fails_the_append_poisons_the_log_and_keeps_what_was_acknowledged() {
    let Some(disk) = common::small_disk::SmallDisk::or_skip(24) else {
        return;
    };
    let dir = disk.mount.join("t-0");
    let acked = fill_until_full(dir.clone());
    assert!(
        acked.len() > 100,
        "filled {} batches before the disk was full",
        acked.len()
    );
    // Reopen: the tail the failed write may have left is truncated, every
    // acknowledged batch is there.
    run(move || async move {
        let log = Log::open(&dir, LogConfig::default(), 0).await.unwrap();
        assert!(log.log_end_offset() >= Offset(acked.len() as i64));
        check_acked(&log, &acked).await;
        let _ = log.close().await;
    });
}

fn fill_until_full(dir: PathBuf) -> Vec<Vec<u8>> {
    let mut acked = Vec::new();
    let (tx, rx) = std::sync::mpsc::channel();
    run(move || async move {
        let config = LogConfig {
            segment_bytes: 4 << 20,
            ..LogConfig::default()
        };
        let log = Log::open(&dir, config, 0).await.unwrap();
        let mut rng = Rng(31);
        let mut stored = Vec::new();
        let failure = loop {
            let b = batch(&mut rng, 1, 60_000, 0, false);
            match log.append(Bytes::from(b.clone()), 0).await {
                Ok(info) => stored.push(with_offset(&b, info.base_offset.0)),
                Err(e) => break e,
            }
            assert!(stored.len() < 10_000, "a 24 MiB disk cannot take 600 MB");
        };
        eprintln!("append failed after {} batches: {failure}", stored.len());
        assert!(
            matches!(failure, Error::Poisoned(_) | Error::Io(_)),
            "{failure}"
        );
        let again = log
            .append(Bytes::from(batch(&mut rng, 1, 10, 0, false)), 0)
            .await;
        assert!(matches!(again, Err(Error::Poisoned(_))), "{again:?}");
        assert!(log.is_poisoned());
        assert_eq!(
            log.log_end_offset(),
            Offset(stored.len() as i64),
            "nothing unacknowledged is visible"
        );
        check_acked(&log, &stored).await;
        assert!(log.close().await.is_err(), "closing reports the poison");
        tx.send(stored).unwrap();
    });
    acked.extend(rx.recv().unwrap());
    acked
}

async fn check_acked(log: &Log, acked: &[Vec<u8>]) {
    for (offset, bytes) in acked.iter().enumerate().step_by(11) {
        let read = log.read(Offset(offset as i64), 1).await.unwrap();
        assert_eq!(&concat(&read), bytes, "offset {offset}");
    }
}
