//! EIO from a write or an fdatasync: the append fails, the log is poisoned
//! (no more appends until reopened), everything acknowledged stays readable
//! and is there after a reopen.

use bytes::Bytes;

use crate::batch::builder::simple_batch;
use crate::io::failpoint;
use crate::{Error, Log, LogConfig, Offset};

fn run_with_failure(op: &'static str) {
    crate::rt::run_on_executor("poison", None, move || async move {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let log = Log::open(&dir, LogConfig::default(), 0).await.unwrap();
        let batches: Vec<Vec<u8>> = (0..10).map(|i| simple_batch(2, 100, i, i as u8)).collect();
        for b in &batches {
            log.append(Bytes::from(b.clone()), 0).await.unwrap();
        }
        failpoint::fail_next(op);
        let failed = log.append(Bytes::from(simple_batch(1, 10, 0, 0)), 0).await;
        match &failed {
            Err(Error::Poisoned(cause)) => {
                assert_eq!(cause.source.raw_os_error(), Some(libc::EIO), "{cause}")
            }
            other => panic!("expected a poisoned log, got {other:?}"),
        }
        assert!(log.is_poisoned());
        let again = log.append(Bytes::from(simple_batch(1, 10, 0, 0)), 0).await;
        assert!(matches!(again, Err(Error::Poisoned(_))), "{again:?}");
        assert_eq!(
            log.log_end_offset(),
            Offset(20),
            "the failed append never became visible"
        );
        for (i, b) in batches.iter().enumerate() {
            let read = log.read(Offset(2 * i as i64), 1).await.unwrap();
            let mut bytes = Vec::new();
            read.chunks[0].extend_into(&mut bytes);
            assert_eq!(&bytes[12..], &b[12..], "batch {i}");
        }
        assert!(log.close().await.is_err(), "close reports the poison");
        let log = Log::open(&dir, LogConfig::default(), 0).await.unwrap();
        assert!(log.log_end_offset() >= Offset(20));
        let info = log
            .append(Bytes::from(simple_batch(1, 10, 0, 0)), 0)
            .await
            .unwrap();
        assert_eq!(info.base_offset, log.log_end_offset().plus(-1));
        log.close().await.unwrap();
    })
    .unwrap();
}

#[test]
fn eio_on_write_fails_the_append_and_poisons_the_log() {
    run_with_failure("write");
}

#[test]
fn eio_on_fdatasync_fails_the_append_and_poisons_the_log() {
    run_with_failure("fdatasync");
}
