use proptest::prelude::*;

use super::*;
use crate::batch::builder::{BatchSpec, Record, encode_batch, encode_records};
use crate::batch::records::for_each_record;
use crate::batch::{BatchHeader, ValidateMode, validate};

/// One record to write: key, value (None: a tombstone), timestamp delta.
type Written = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// A stored batch of `records` in `codec`, with producer fields, at
/// `base_offset` and leader epoch 7.
fn stored(codec: Compression, base_offset: i64, records: &[Written]) -> Vec<u8> {
    let encoded: Vec<Record<'_>> = records
        .iter()
        .map(|(key, value, delta)| Record {
            key: key.as_deref(),
            value: value.as_deref(),
            headers: &[(b"h", Some(b"v"))],
            timestamp_delta: *delta,
        })
        .collect();
    let mut spec = BatchSpec::new(i32::try_from(records.len()).unwrap(), 1_000_000);
    spec.base_offset = base_offset;
    spec.max_timestamp = 1_000_000 + records.iter().map(|r| r.2).max().unwrap_or(0);
    spec.compression = codec;
    spec.producer_id = 77;
    spec.producer_epoch = 2;
    spec.base_sequence = 40;
    spec.transactional = true;
    let raw = encode_records(&encoded);
    let mut batch = encode_batch(&spec, &codec::compress(codec, None, &raw).unwrap());
    let mut header = BatchHeader(*batch.first_chunk().unwrap());
    header.set_partition_leader_epoch(7);
    batch[..header.0.len()].copy_from_slice(&header.0);
    batch
}

/// A record read back: offset, key, value, timestamp.
type Read = (i64, Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// Every record of one stored batch.
fn read(batch: &[u8]) -> Vec<Read> {
    let (_, batch) = validate(batch, 0, ValidateMode::Stored)
        .next()
        .unwrap()
        .unwrap();
    let header = batch.header();
    let codec = header.compression().unwrap();
    let raw = codec::decompress(codec, batch.records(), usize::MAX).unwrap();
    let mut out = Vec::new();
    for_each_record(&raw, |r| {
        out.push((
            header.base_offset().get() + i64::from(r.offset_delta),
            r.key.map(<[u8]>::to_vec),
            r.value.map(<[u8]>::to_vec),
            header.base_timestamp() + r.timestamp_delta,
        ));
    })
    .unwrap();
    out
}

fn written() -> impl Strategy<Value = Written> {
    (
        proptest::option::weighted(0.95, proptest::collection::vec(any::<u8>(), 0..12)),
        proptest::option::weighted(0.8, proptest::collection::vec(any::<u8>(), 0..300)),
        0i64..5_000,
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(14),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Whatever is kept, in every codec: exactly the kept records, at
    /// their offsets and timestamps, in a valid batch that keeps the base
    /// offset, last offset delta, producer fields, flags and leader epoch.
    #[test]
    fn the_kept_records_stay_at_their_offsets_in_every_codec(
        records in proptest::collection::vec(written(), 1..40),
        mask in proptest::collection::vec(any::<bool>(), 40),
        codec in proptest::sample::select(Compression::ALL.to_vec()),
        base_offset in 0i64..1_000_000,
    ) {
        let batch = stored(codec, base_offset, &records);
        let all = read(&batch);
        let (_, view) = validate(&batch, 0, ValidateMode::Stored).next().unwrap().unwrap();
        let kept = |i: usize| mask[i];
        let retained = retain_records(&view, 0, |_, offset| {
            kept(usize::try_from(offset - base_offset).unwrap())
        })
        .unwrap();
        let expected: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| kept(*i))
            .map(|(_, r)| r.clone())
            .collect();
        match retained {
            Retained::All => prop_assert_eq!(expected.len(), records.len()),
            Retained::None => prop_assert!(expected.is_empty()),
            Retained::Some(out) => {
                prop_assert!(!expected.is_empty() && expected.len() < records.len());
                prop_assert_eq!(read(&out), expected.clone());
                let (old, new) = (view.header(), BatchHeader(*out.first_chunk().unwrap()));
                prop_assert_eq!(new.size(), out.len());
                prop_assert_eq!(new.base_offset(), old.base_offset());
                prop_assert_eq!(new.last_offset_delta(), old.last_offset_delta());
                prop_assert_eq!(new.base_timestamp(), old.base_timestamp());
                prop_assert_eq!(new.attributes(), old.attributes());
                prop_assert_eq!(new.producer_id(), old.producer_id());
                prop_assert_eq!(new.producer_epoch(), old.producer_epoch());
                prop_assert_eq!(new.base_sequence(), old.base_sequence());
                prop_assert_eq!(new.partition_leader_epoch(), 7);
                prop_assert_eq!(new.record_count(), i32::try_from(expected.len()).unwrap());
                let max = expected.iter().map(|r| r.3).max().unwrap();
                prop_assert_eq!(new.max_timestamp(), max);
            }
        }
    }
}

#[test]
fn a_damaged_compressed_batch_is_an_error_not_a_panic() {
    let records: Vec<Written> = (0..10)
        .map(|i| (Some(vec![i]), Some(vec![i; 100]), 0))
        .collect();
    let mut batch = stored(Compression::Zstd, 0, &records);
    let end = batch.len();
    batch[end - 20] ^= 0xff;
    // Read back as the cleaner would, without the CRC check.
    let view = RecordBatch::from_checked(&batch).unwrap();
    let result = retain_records(&view, 0, |_, _| false);
    assert!(result.is_err(), "{result:?}");
}
