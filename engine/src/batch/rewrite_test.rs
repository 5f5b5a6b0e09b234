use super::*;
use crate::batch::builder::{BatchSpec, Record, encode_batch, encode_records};
use crate::batch::{ValidateMode, validate};

const CODECS: [Compression; 5] = Compression::ALL;

const NOW: i64 = 1_700_000_000_000;

fn values() -> Vec<Vec<u8>> {
    (0..20u8).map(|i| vec![i; 300]).collect()
}

/// An idempotent producer's batch of `values()` in `codec`, record `i`
/// stamped `base + deltas[i]`.
fn batch(codec: Compression, base: i64, deltas: &[i64]) -> Vec<u8> {
    let values = values();
    let records: Vec<Record<'_>> = values
        .iter()
        .zip(deltas.iter().chain(std::iter::repeat(&0)))
        .map(|(v, delta)| Record {
            key: Some(b"k"),
            value: Some(v),
            headers: &[(b"h", Some(b"v"))],
            timestamp_delta: *delta,
        })
        .collect();
    let mut spec = BatchSpec::new(records.len() as i32, base);
    spec.max_timestamp = base + deltas.iter().copied().max().unwrap_or(0);
    spec.compression = codec;
    spec.producer_id = 42;
    spec.producer_epoch = 3;
    spec.base_sequence = 7;
    let raw = encode_records(&records);
    encode_batch(&spec, &codec::compress(codec, None, &raw).unwrap())
}

fn spans_of(buf: &[u8]) -> Vec<(usize, usize)> {
    validate(
        buf,
        0,
        ValidateMode::Produce {
            max_message_bytes: u32::MAX,
        },
    )
    .map(|b| b.map(|(at, batch)| (at, batch.size())).unwrap())
    .collect()
}

fn raw_records(batch: &RecordBatch<'_>) -> Vec<u8> {
    let codec = batch.header().compression().unwrap();
    codec::decompress(codec, batch.records(), usize::MAX).unwrap()
}

fn recompress_to(codec: Compression) -> Rewrite {
    Rewrite {
        compression: Some((codec, None)),
        max_message_bytes: u32::MAX,
        now_ms: NOW,
        ..Rewrite::default()
    }
}

#[test]
fn nothing_asked_nothing_read() {
    let buf = batch(Compression::Gzip, NOW, &[]);
    let spans = spans_of(&buf);
    assert_eq!(rewrite_batches(&buf, &spans, &Rewrite::default()), Ok(None));
    assert_eq!(
        rewrite_batches(&buf, &spans, &recompress_to(Compression::Gzip)),
        Ok(None),
        "already in the topic's codec"
    );
}

#[test]
fn every_codec_is_recompressed_to_every_other() {
    let expected = encode_records(
        &values()
            .iter()
            .map(|v| Record {
                key: Some(b"k"),
                value: Some(v),
                headers: &[(b"h", Some(b"v"))],
                timestamp_delta: 0,
            })
            .collect::<Vec<_>>(),
    );
    for from in CODECS {
        for to in CODECS.into_iter().filter(|to| *to != from) {
            let buf = batch(from, NOW, &[]);
            let before = RecordBatch::from_checked(&buf).unwrap().header();
            let (out, spans) = rewrite_batches(&buf, &spans_of(&buf), &recompress_to(to))
                .unwrap()
                .unwrap();
            assert_eq!(spans, spans_of(&out), "{from:?} -> {to:?}: spans");
            let mut batches = validate(
                &out,
                0,
                ValidateMode::Produce {
                    max_message_bytes: u32::MAX,
                },
            );
            let (_, rewritten) = batches.next().unwrap().unwrap();
            assert!(batches.next().is_none());
            let after = rewritten.header();
            assert_eq!(after.compression(), Some(to), "{from:?} -> {to:?}");
            assert_eq!(raw_records(&rewritten), expected, "{from:?} -> {to:?}");
            for (field, a, b) in [
                ("producer id", before.producer_id(), after.producer_id()),
                (
                    "epoch",
                    before.producer_epoch().into(),
                    after.producer_epoch().into(),
                ),
                (
                    "sequence",
                    before.base_sequence().into(),
                    after.base_sequence().into(),
                ),
                (
                    "count",
                    before.record_count().into(),
                    after.record_count().into(),
                ),
                (
                    "max timestamp",
                    before.max_timestamp(),
                    after.max_timestamp(),
                ),
            ] {
                assert_eq!(a, b, "{from:?} -> {to:?}: {field}");
            }
        }
    }
}

#[test]
fn batches_in_the_codec_already_are_copied_as_they_are() {
    let mut buf = batch(Compression::Lz4, NOW, &[]);
    let zstd = batch(Compression::Zstd, NOW, &[]);
    buf.extend_from_slice(&zstd);
    let (out, spans) = rewrite_batches(&buf, &spans_of(&buf), &recompress_to(Compression::Zstd))
        .unwrap()
        .unwrap();
    assert_eq!(spans.len(), 2);
    let (second_at, second_size) = spans[1];
    assert_eq!(&out[second_at..second_at + second_size], &zstd[..]);
}

#[test]
fn timestamps_outside_the_window_are_refused_in_any_codec() {
    let window = Rewrite {
        timestamps: Some((60_000, 1_000)),
        now_ms: NOW,
        max_message_bytes: u32::MAX,
        ..Rewrite::default()
    };
    for codec in CODECS {
        let inside = batch(codec, NOW - 60_000, &[0, 60_000, 61_000]);
        let (out, _) = rewrite_batches(&inside, &spans_of(&inside), &window)
            .unwrap()
            .unwrap();
        assert_eq!(out, inside, "{codec:?}: checked, not changed");
        // The third record is 1 ms past the window, its batch's base inside.
        let late = batch(codec, NOW - 60_000, &[0, 1, 61_001]);
        assert_eq!(
            rewrite_batches(&late, &spans_of(&late), &window),
            Err(BatchError::Timestamp {
                position: 0,
                timestamp: NOW + 1_001,
                low: NOW - 60_000,
                high: NOW + 1_000
            }),
            "{codec:?}"
        );
        let early = batch(codec, NOW - 60_001, &[]);
        assert!(
            matches!(
                rewrite_batches(&early, &spans_of(&early), &window),
                Err(BatchError::Timestamp { .. })
            ),
            "{codec:?}"
        );
    }
}

#[test]
fn undecodable_records_are_refused() {
    // A valid CRC over gzip bytes that are not gzip.
    let mut spec = BatchSpec::new(1, NOW);
    spec.compression = Compression::Gzip;
    let garbage = encode_batch(&spec, b"not gzip at all");
    assert!(matches!(
        rewrite_batches(
            &garbage,
            &spans_of(&garbage),
            &recompress_to(Compression::Zstd)
        ),
        Err(BatchError::Compression { .. })
    ));
    // Records that decompress but are fewer than the header says.
    let raw = encode_records(&[Record {
        value: Some(b"one"),
        ..Record::default()
    }]);
    let mut spec = BatchSpec::new(2, NOW);
    spec.compression = Compression::Lz4;
    let short = encode_batch(
        &spec,
        &codec::compress(Compression::Lz4, None, &raw).unwrap(),
    );
    assert!(matches!(
        rewrite_batches(&short, &spans_of(&short), &recompress_to(Compression::None)),
        Err(BatchError::Invalid { .. })
    ));
}

#[test]
fn a_batch_that_outgrows_max_message_bytes_is_refused() {
    let buf = batch(Compression::Zstd, NOW, &[]);
    let rewrite = Rewrite {
        max_message_bytes: buf.len() as u32 + 100,
        ..recompress_to(Compression::None)
    };
    assert!(matches!(
        rewrite_batches(&buf, &spans_of(&buf), &rewrite),
        Err(BatchError::TooLarge { .. })
    ));
}

#[test]
fn a_compacted_topic_takes_keyed_records_and_refuses_keyless_ones_in_every_codec() {
    let compacted = Rewrite {
        require_keys: true,
        max_message_bytes: u32::MAX,
        now_ms: NOW,
        ..Rewrite::default()
    };
    for codec in CODECS {
        let keyed = batch(codec, NOW, &[]);
        let spans = spans_of(&keyed);
        let (out, _) = rewrite_batches(&keyed, &spans, &compacted)
            .unwrap()
            .expect("every batch is read");
        assert_eq!(out, keyed, "{codec:?}: stored as sent");

        let records = [
            Record {
                key: Some(b"k"),
                value: Some(b"v"),
                ..Record::default()
            },
            Record {
                key: None,
                value: Some(b"no key"),
                ..Record::default()
            },
        ];
        let mut spec = BatchSpec::new(2, NOW);
        spec.compression = codec;
        let raw = encode_records(&records);
        let keyless = encode_batch(&spec, &codec::compress(codec, None, &raw).unwrap());
        let spans = spans_of(&keyless);
        let refused = rewrite_batches(&keyless, &spans, &compacted);
        assert!(
            matches!(refused, Err(BatchError::Invalid { .. })),
            "{codec:?}: {refused:?}"
        );
        assert_eq!(
            refused.unwrap_err().kind(),
            crate::batch::BatchErrorKind::InvalidRecord
        );
    }
}
