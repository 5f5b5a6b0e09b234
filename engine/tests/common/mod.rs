//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::io::Write;

use engine::batch::Compression;
use engine::batch::builder::{BatchSpec, Record, encode_batch, encode_records};

/// Runs an async test body on a fresh io_uring executor.
pub fn run<F, G>(make: G)
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    engine::rt::run_on_executor("test", None, make).expect("executor");
}

/// The seed for randomized tests: `SHARDLOG_TEST_SEED` or a fixed default,
/// printed so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("SHARDLOG_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    eprintln!("{test}: seed {seed} (replay with SHARDLOG_TEST_SEED={seed})");
    seed
}

pub fn proptest_config(test: &str, cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed(test)),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// A small deterministic generator (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A batch of `count` records with `value_bytes`-byte values, lz4-compressed
/// if asked, timestamps from `timestamp` one ms apart.
pub fn batch(
    rng: &mut Rng,
    count: i32,
    value_bytes: usize,
    timestamp: i64,
    compressed: bool,
) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..count).map(|_| rng.bytes(value_bytes)).collect();
    let keys: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("key-{i}").into_bytes())
        .collect();
    let headers = [(&b"h"[..], Some(&b"v"[..]))];
    let records: Vec<Record<'_>> = (0..count as usize)
        .map(|i| Record {
            key: Some(&keys[i]),
            value: Some(&values[i]),
            headers: &headers,
            timestamp_delta: i as i64,
        })
        .collect();
    let mut encoded = encode_records(&records);
    let mut spec = BatchSpec::new(count, timestamp);
    spec.max_timestamp = timestamp + i64::from(count) - 1;
    if compressed {
        let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
        enc.write_all(&encoded).unwrap();
        encoded = enc.finish().unwrap();
        spec.compression = Compression::Lz4;
    }
    encode_batch(&spec, &encoded)
}

/// `bytes` with its base offset set to `offset` (what the log stores).
pub fn with_offset(bytes: &[u8], offset: i64) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[..8].copy_from_slice(&offset.to_be_bytes());
    out
}

pub fn concat(result: &engine::ReadResult) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in &result.chunks {
        chunk.extend_into(&mut out);
    }
    out
}

pub fn small_config() -> engine::LogConfig {
    engine::LogConfig {
        segment_bytes: 64 << 10,
        index_interval_bytes: 1024,
        ..engine::LogConfig::default()
    }
}

/// Every batch from the log start to the log end, read one batch at a time.
pub async fn read_all(log: &engine::Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 1).await.unwrap();
        let chunk = read.chunks.first().unwrap();
        let mut bytes = Vec::new();
        chunk.extend_into(&mut bytes);
        offset = engine::batch::BatchHeader(bytes[..61].try_into().unwrap())
            .last_offset()
            .plus(1);
        out.extend(bytes);
    }
    out
}

/// Copies the files of a partition directory as they are now, the log
/// still open: what a crash at this moment leaves on disk.
pub fn copy_as_crashed(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

/// How many segment files a partition directory holds.
pub fn segment_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("log".as_ref()))
        .count()
}

/// (offset, key, value) of every keyed record a read from the log start
/// gets, batch by batch in any codec; `None` for a tombstone.
pub async fn read_keyed(log: &engine::Log) -> Vec<(i64, Vec<u8>, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 256 << 10).await.unwrap();
        let mut bytes = Vec::new();
        for chunk in &read.chunks {
            chunk.extend_into(&mut bytes);
        }
        assert!(!bytes.is_empty(), "a read at {offset} returned nothing");
        for batch in engine::batch::validate(&bytes, 0, engine::batch::ValidateMode::Stored) {
            let (_, batch) = batch.unwrap();
            let header = batch.header();
            let codec = header.compression().unwrap();
            let raw = engine::batch::codec::decompress(codec, batch.records(), usize::MAX).unwrap();
            engine::batch::records::for_each_record(&raw, |r| {
                let at = header.base_offset().get() + i64::from(r.offset_delta);
                if at >= offset.get() {
                    out.push((at, r.key.unwrap().to_vec(), r.value.map(<[u8]>::to_vec)));
                }
            })
            .unwrap();
            offset = offset.max(header.last_offset().plus(1));
        }
    }
    out
}

#[allow(dead_code)]
pub mod small_disk;
