//! Recovery after crashes and damage: torn tails are truncated, corruption
//! inside sealed segments is reported and never served, nothing else lost.

mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::*;
use engine::{Error, Log, LogConfig, Offset};

/// Appends `n` single-record batches (700-byte values) and "crashes": the
/// log is flushed and leaked, never closed. Returns the stored batches.
async fn crashed_log(dir: &Path, config: LogConfig, n: usize) -> Vec<Vec<u8>> {
    let log = Log::open(dir, config, 0).await.unwrap();
    let mut rng = Rng(21);
    let mut stored = Vec::new();
    for i in 0..n {
        let b = batch(&mut rng, 1, 700, i as i64, i % 5 == 0);
        let info = log.append(Bytes::from(b.clone()), 0).await.unwrap();
        stored.push(with_offset(&b, info.base_offset.0));
    }
    log.flush().await.unwrap();
    std::mem::forget(log);
    stored
}

/// Small segments, and every read from the disk.
fn disk_only() -> LogConfig {
    LogConfig {
        tail_cache_bytes: 0,
        ..small_config()
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

fn write_at(path: &Path, position: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(position)).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn garbage_after_the_last_batch_is_truncated_and_appends_continue() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let stored = crashed_log(&dir, LogConfig::default(), 20).await;
        let active = segment_files(&dir).pop().unwrap();
        let valid_len: u64 = stored.iter().map(|b| b.len() as u64).sum();
        // A torn write: the start of a batch header then noise, past the end.
        write_at(
            &active,
            valid_len,
            &[0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 2, 0, 0xde, 0xad],
        );
        write_at(&active, valid_len + 5_000, &Rng(9).bytes(3_000));
        let log = Log::open(&dir, LogConfig::default(), 0).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(20));
        assert_eq!(read_all(&log).await, stored.concat());
        assert_eq!(
            std::fs::metadata(&active).unwrap().len(),
            valid_len,
            "tail truncated on disk"
        );
        let info = log
            .append(Bytes::from(batch(&mut Rng(3), 2, 10, 0, false)), 0)
            .await
            .unwrap();
        assert_eq!(info.base_offset, Offset(20));
        log.close().await.unwrap();
        let log = Log::open(&dir, LogConfig::default(), 0).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(22));
        log.close().await.unwrap();
    });
}

#[test]
fn a_flipped_byte_or_zeroed_block_in_the_tail_truncates_from_that_batch() {
    run(|| async {
        for zero_block in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("t-0");
            let stored = crashed_log(&dir, LogConfig::default(), 30).await;
            let active = segment_files(&dir).pop().unwrap();
            // Damage batch 25 (all batches of this log have one record).
            let at: u64 = stored[..25].iter().map(|b| b.len() as u64).sum();
            if zero_block {
                let block = at / 4096 * 4096;
                write_at(&active, block, &[0u8; 4096]);
            } else {
                write_at(&active, at + 100, &[0xff]);
            }
            let log = Log::open(&dir, LogConfig::default(), 0).await.unwrap();
            let end = log.log_end_offset().0 as usize;
            assert!(end <= 25, "damaged batch 25 and later are gone, end {end}");
            assert_eq!(
                read_all(&log).await,
                stored[..end].concat(),
                "the valid prefix is intact"
            );
            if !zero_block {
                assert_eq!(end, 25);
            }
            log.close().await.unwrap();
        }
    });
}

#[test]
fn corruption_inside_a_sealed_segment_is_reported_and_nothing_else_is_lost() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let config = disk_only();
        let stored = crashed_log(&dir, config.clone(), 300).await;
        let files = segment_files(&dir);
        assert!(files.len() >= 3);
        // Flip a byte inside batch 10 of the first (sealed) segment.
        let at: u64 = stored[..10].iter().map(|b| b.len() as u64).sum();
        write_at(&files[0], at + 80, &[0x5a ^ stored[10][80]]);
        let log = Log::open(&dir, config, 0).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(300), "nothing truncated");
        match log.read(Offset(10), 1).await {
            Err(Error::Corrupt { path, position, .. }) => {
                assert_eq!(path, files[0]);
                assert_eq!(position, at);
            }
            other => panic!("expected a corruption error, got {other:?}"),
        }
        for offset in [0, 9, 150, 299] {
            let r = log.read(Offset(offset), 1).await.unwrap();
            let mut bytes = Vec::new();
            r.chunks[0].extend_into(&mut bytes);
            assert_eq!(bytes, stored[offset as usize]);
        }
        log.append(Bytes::from(batch(&mut Rng(1), 1, 5, 0, false)), 0)
            .await
            .unwrap();
        log.close().await.unwrap();
    });
}

/// A damaged length field ends a read that already has batches before it
/// (they are served) and is reported to the read that starts there: never
/// served, never taken for the end of the data.
#[test]
fn a_damaged_batch_length_ends_the_read_before_it_and_fails_the_read_at_it() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let config = disk_only();
        let stored = crashed_log(&dir, config.clone(), 300).await;
        let files = segment_files(&dir);
        let at: u64 = stored[..10].iter().map(|b| b.len() as u64).sum();
        for length in [1_000_000_i32, stored[10].len() as i32 + 20, 3] {
            write_at(&files[0], at + 8, &length.to_be_bytes());
            let log = Log::open(&dir, config.clone(), 0).await.unwrap();
            let served = log.read(Offset(7), 1 << 20).await.unwrap();
            assert_eq!(
                concat(&served),
                stored[7..10].concat(),
                "length {length}: the batches before the damage, and nothing else"
            );
            match log.read(Offset(10), 1 << 20).await {
                Err(Error::Corrupt { path, position, .. }) => {
                    assert_eq!((path, position), (files[0].clone(), at), "length {length}");
                }
                other => panic!("length {length}: expected a corruption error, got {other:?}"),
            }
            log.close().await.unwrap();
        }
    });
}

#[test]
fn damaged_index_files_and_checkpoint_are_rebuilt() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let config = disk_only();
        let stored = crashed_log(&dir, config.clone(), 300).await;
        assert!(segment_files(&dir).len() >= 4, "three sealed segments");
        let first = segment_files(&dir)[0].clone();
        std::fs::write(first.with_extension("index"), [1, 2, 3]).unwrap();
        std::fs::write(first.with_extension("timeindex"), vec![0xff; 24]).unwrap();
        std::fs::write(dir.join("partition.checkpoint"), "garbage").unwrap();
        // Whole entries, pointing outside the segment: rejected when a read
        // first loads it (open reads no index), and rebuilt by a scan.
        let second = segment_files(&dir)[1].clone();
        std::fs::write(second.with_extension("index"), vec![0x7f; 16]).unwrap();
        // Emptied (a crash between its truncation and its entries): its
        // newest timestamp is unknown until a scan, which open does.
        let third = segment_files(&dir)[2].clone();
        std::fs::write(third.with_extension("timeindex"), []).unwrap();
        let log = Log::open(&dir, config, 0).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(300));
        assert_eq!(read_all(&log).await, stored.concat());
        for t in 0..300 {
            assert_eq!(
                log.offset_for_timestamp(t).await.unwrap(),
                Some((Offset(t), t)),
                "time {t}"
            );
        }
        log.close().await.unwrap();
    });
}

/// The inode and modification time of each of `names` in `dir`.
fn file_versions(dir: &Path, names: &[String]) -> Vec<(u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    names
        .iter()
        .map(|name| {
            let meta = std::fs::metadata(dir.join(name)).unwrap();
            (meta.ino(), meta.modified().unwrap())
        })
        .collect()
}

/// A partition opened after a clean close and not written to opens and
/// closes without writing a file (10,000 idle partitions restart without
/// 40,000 syncs); the first append marks the checkpoint unclean before any
/// byte reaches the segment, so a crash after it recovers by a scan.
#[test]
fn an_untouched_partition_writes_nothing_and_a_written_one_is_rescanned_after_a_crash() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let config = disk_only();
        let mut rng = Rng(5);
        let log = Log::open(&dir, config.clone(), 0).await.unwrap();
        let mut stored = Vec::new();
        for i in 0..30 {
            let b = batch(&mut rng, 2, 500, i, i % 3 == 0);
            let info = log.append(Bytes::from(b.clone()), 0).await.unwrap();
            stored.push(with_offset(&b, info.base_offset.0));
        }
        log.close().await.unwrap();
        let active = segment_files(&dir).last().unwrap().clone();
        let names: Vec<String> = [
            "partition.checkpoint".to_string(),
            "producer.snapshot".to_string(),
            active
                .with_extension("index")
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string(),
            active
                .with_extension("timeindex")
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string(),
        ]
        .into();
        let before = file_versions(&dir, &names);
        for _ in 0..2 {
            let log = Log::open(&dir, config.clone(), 0).await.unwrap();
            assert_eq!(log.log_end_offset(), Offset(60));
            assert_eq!(read_all(&log).await, stored.concat());
            log.close().await.unwrap();
        }
        assert_eq!(file_versions(&dir, &names), before, "nothing rewritten");

        let log = Log::open(&dir, config.clone(), 0).await.unwrap();
        let b = batch(&mut rng, 3, 500, 99, false);
        let info = log.append(Bytes::from(b.clone()), 0).await.unwrap();
        assert_eq!(info.base_offset, Offset(60));
        stored.push(with_offset(&b, 60));
        let crashed = tmp.path().join("t-1");
        copy_as_crashed(&dir, &crashed);
        let recovered = Log::open(&crashed, config.clone(), 0).await.unwrap();
        assert_eq!(recovered.log_end_offset(), Offset(63));
        assert_eq!(read_all(&recovered).await, stored.concat());
        let next = batch(&mut rng, 1, 10, 100, false);
        let info = recovered.append(Bytes::from(next), 0).await.unwrap();
        assert_eq!(info.base_offset, Offset(63));
        recovered.close().await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn random_bytes_as_segments_never_panic_the_recovery() {
    let seed = seed("random_bytes_as_segments_never_panic_the_recovery");
    run(move || async move {
        let mut rng = Rng(seed);
        for round in 0..24 {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("t-0");
            std::fs::create_dir_all(&dir).unwrap();
            let len = rng.below(20_000) as usize;
            let mut bytes = rng.bytes(len);
            if round % 2 == 0 {
                // A valid prefix followed by noise.
                let mut valid = batch(&mut rng, 3, 200, 1, false);
                valid.extend(bytes);
                bytes = valid;
            }
            std::fs::write(dir.join("00000000000000000000.log"), &bytes).unwrap();
            if round % 3 == 0 {
                std::fs::write(dir.join("00000000000000000000.index"), rng.bytes(64)).unwrap();
                std::fs::write(dir.join("00000000000000009999.log"), rng.bytes(100)).unwrap();
            }
            match Log::open(&dir, LogConfig::default(), 0).await {
                Ok(log) => {
                    let end = log.log_end_offset();
                    let _ = log.read(log.log_start_offset(), 1 << 20).await;
                    log.append(Bytes::from(batch(&mut rng, 1, 5, 0, false)), 0)
                        .await
                        .unwrap();
                    assert_eq!(log.log_end_offset(), end.plus(1));
                    log.close().await.unwrap();
                }
                Err(e) => eprintln!("round {round}: open refused with {e}"),
            }
        }
    });
}
