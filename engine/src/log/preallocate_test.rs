//! The active segment's blocks are allocated ahead of its large writes and
//! written with zeros ahead of its small ones; a crash leaves the zeros,
//! which recovery drops without calling them a torn tail; a roll or close
//! cuts the file to its exact size; zeros never cover data; a failed
//! allocation or zero write only turns it off.

use std::path::Path;

use bytes::Bytes;

use crate::batch::builder::simple_batch;
use crate::io::failpoint;
use crate::limits::{
    PREALLOCATE_WRITE_BYTES_MIN, SEGMENT_PREALLOCATE_BYTES, SEGMENT_ZERO_AHEAD_BYTES,
    SEGMENT_ZERO_AHEAD_BYTES_MIN,
};
use crate::{Log, LogConfig, Offset};

const SEGMENT: &str = "00000000000000000000.log";

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Values large enough that each batch's write allocates ahead.
const LARGE: usize = PREALLOCATE_WRITE_BYTES_MIN / 2 + 1000;

/// Appends ten 2-record batches of `value_bytes` values; returns them and
/// their bytes on disk.
async fn append_ten(log: &Log, value_bytes: usize) -> (Vec<Vec<u8>>, u64) {
    let batches: Vec<Vec<u8>> = (0..10)
        .map(|i| simple_batch(2, value_bytes, i, i as u8))
        .collect();
    for b in &batches {
        log.append(Bytes::from(b.clone()), 0).await.unwrap();
    }
    let size = batches.iter().map(|b| b.len() as u64).sum();
    (batches, size)
}

async fn check_batches(log: &Log, batches: &[Vec<u8>]) {
    assert_eq!(log.log_end_offset(), Offset(2 * batches.len() as i64));
    for (i, b) in batches.iter().enumerate() {
        let read = log.read(Offset(2 * i as i64), 1).await.unwrap();
        let mut bytes = Vec::new();
        read.chunks[0].extend_into(&mut bytes);
        assert_eq!(&bytes[12..], &b[12..], "batch {i}");
    }
}

/// A crash now (the log's files as they are, copied aside to
/// `tmp/crashed-0`), then a clean close of `log`, which cuts its segment to
/// the `size` its `batches` take; the crashed copy opens with every batch
/// and without the zeros. Returns the recovered log.
async fn crash_close_and_recover(
    log: Log,
    tmp: &Path,
    dir: &Path,
    batches: &[Vec<u8>],
    size: u64,
) -> Log {
    let crashed = tmp.join("crashed-0");
    std::fs::create_dir(&crashed).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, crashed.join(path.file_name().unwrap())).unwrap();
    }
    log.close().await.unwrap();
    assert_eq!(
        file_len(&dir.join(SEGMENT)),
        size,
        "a clean close cuts to size"
    );
    let log = Log::open(&crashed, LogConfig::default(), 0).await.unwrap();
    check_batches(&log, batches).await;
    assert_eq!(
        file_len(&crashed.join(SEGMENT)),
        size,
        "recovery drops the zeros"
    );
    log
}

#[test]
fn the_active_segment_is_allocated_ahead_and_a_crash_leaves_only_zeros_to_drop() {
    crate::rt::run_on_executor("prealloc", None, move || async move {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let log = Log::open(&dir, LogConfig::default(), 0).await.unwrap();
        let (batches, size) = append_ten(&log, LARGE).await;
        let allocated = file_len(&dir.join(SEGMENT));
        assert!(
            allocated >= size + SEGMENT_PREALLOCATE_BYTES / 2 && allocated.is_multiple_of(4096),
            "allocated {allocated} for {size}"
        );
        let log = crash_close_and_recover(log, tmp.path(), &dir, &batches, size).await;
        let more = simple_batch(3, 50, 0, 9);
        let info = log.append(Bytes::from(more), 0).await.unwrap();
        assert_eq!(info.base_offset, Offset(20));
        log.close().await.unwrap();
    })
    .unwrap();
}

#[test]
fn allocation_never_passes_segment_bytes_and_a_roll_cuts_to_size() {
    crate::rt::run_on_executor("prealloc-roll", None, move || async move {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let segment_bytes = 4 << 20;
        let config = LogConfig {
            segment_bytes,
            ..LogConfig::default()
        };
        let log = Log::open(&dir, config.clone(), 0).await.unwrap();
        let (_, size) = append_ten(&log, LARGE).await;
        assert!(size < segment_bytes);
        assert_eq!(file_len(&dir.join(SEGMENT)), segment_bytes);
        // Appends until one would pass segment.bytes: that one rolls.
        let mut in_first = size;
        for next in (20..).step_by(2) {
            let b = simple_batch(2, LARGE, next, 1);
            let passes = in_first + b.len() as u64 > segment_bytes;
            log.append(Bytes::from(b.clone()), 0).await.unwrap();
            if passes {
                break;
            }
            in_first += b.len() as u64;
        }
        assert_eq!(
            file_len(&dir.join(SEGMENT)),
            in_first,
            "sealed at its exact size"
        );
        log.close().await.unwrap();
    })
    .unwrap();
}

#[test]
fn small_writes_get_zeros_ahead_that_never_cover_their_data() {
    crate::rt::run_on_executor("zeros-small", None, move || async move {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let log = Log::open(&dir, LogConfig::default(), 0).await.unwrap();
        let (batches, size) = append_ten(&log, 300).await;
        let len = file_len(&dir.join(SEGMENT));
        assert!(
            len >= size + SEGMENT_ZERO_AHEAD_BYTES_MIN / 2 && len.is_multiple_of(4096),
            "zeros ahead: {len} for {size}"
        );
        // Durable small appends across several zeroing steps: every batch
        // is acknowledged after its own write and sync, while zeros go on
        // ahead of it; each must read back whole.
        let mut all = batches;
        let mut total = size;
        let steps = 3 * SEGMENT_ZERO_AHEAD_BYTES;
        let mut i = all.len();
        while total < size + steps {
            let b = simple_batch(2, 700 + (i * 37) % 900, 2 * i as i64, i as u8);
            log.append(Bytes::from(b.clone()), 0).await.unwrap();
            total += b.len() as u64;
            all.push(b);
            i += 1;
        }
        check_batches(&log, &all).await;
        let log = crash_close_and_recover(log, tmp.path(), &dir, &all, total).await;
        log.close().await.unwrap();
    })
    .unwrap();
}

/// The next `op` ("fallocate" or "zeros") fails: appends of
/// `value_bytes` values still succeed, grow the file as they would without
/// allocation ahead, and read back, before and after a reopen.
fn a_failed_allocation_only_turns_it_off(op: &'static str, value_bytes: usize) {
    crate::rt::run_on_executor(op, None, move || async move {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let log = Log::open(&dir, LogConfig::default(), 0).await.unwrap();
        failpoint::fail_next(op);
        let (batches, size) = append_ten(&log, value_bytes).await;
        assert!(!log.is_poisoned());
        assert_eq!(
            file_len(&dir.join(SEGMENT)),
            size.next_multiple_of(4096),
            "writes grew the file"
        );
        check_batches(&log, &batches).await;
        log.close().await.unwrap();
        let log = Log::open(&dir, LogConfig::default(), 0).await.unwrap();
        check_batches(&log, &batches).await;
        log.close().await.unwrap();
    })
    .unwrap();
}

#[test]
fn a_failed_zero_write_only_turns_it_off_for_the_segment() {
    a_failed_allocation_only_turns_it_off("zeros", 300);
}

#[test]
fn a_failed_allocation_only_turns_it_off_for_the_segment() {
    a_failed_allocation_only_turns_it_off("fallocate", LARGE);
}

/// The length of the batches a segment file holds, parsed back to back.
fn batches_length(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 0usize;
    while let Some(length) = bytes.get(at + 8..at + 12) {
        let length = i32::from_be_bytes(length.try_into().unwrap());
        assert!(length > 0, "{}: no batch at {at}", path.display());
        at += 12 + length as usize;
    }
    at as u64
}

#[test]
fn rolls_under_large_writes_leave_every_sealed_segment_exact() {
    crate::rt::run_on_executor("prealloc-rolls", None, move || async move {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let config = LogConfig {
            segment_bytes: 1 << 20,
            ..LogConfig::default()
        };
        let log = Log::open(&dir, config, 0).await.unwrap();
        for i in 0..60 {
            let b = simple_batch(2, LARGE, i, i as u8);
            log.append(Bytes::from(b), 0).await.unwrap();
        }
        let mut logs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        assert!(logs.len() >= 10, "{} segments", logs.len());
        let active = logs.pop().unwrap();
        // Every sealed segment ends with its last batch: no allocated tail.
        for path in &logs {
            assert_eq!(file_len(path), batches_length(path), "{}", path.display());
        }
        log.close().await.unwrap();
        assert_eq!(file_len(&active), batches_length(&active));
    })
    .unwrap();
}
