use proptest::prelude::*;

use super::*;
use crate::batch::builder::{BatchSpec, Record, encode_batch, encode_records, simple_batch};
use crate::batch::{BatchHeader, Compression};

const PRODUCE: ValidateMode = ValidateMode::Produce {
    max_message_bytes: 1 << 20,
};

fn one(buf: &[u8], mode: ValidateMode) -> Result<usize, BatchError> {
    let mut n = 0;
    for item in validate(buf, 0, mode) {
        item?;
        n += 1;
    }
    Ok(n)
}

#[test]
fn accepts_well_formed_batches_back_to_back() {
    let mut buf = simple_batch(3, 10, 1_000, b'a');
    buf.extend(simple_batch(1, 0, 2_000, b'b'));
    assert_eq!(one(&buf, PRODUCE), Ok(2));
    assert_eq!(one(&buf, ValidateMode::Stored), Ok(2));
}

#[test]
fn crc_mismatch_is_corrupt() {
    let mut buf = simple_batch(2, 16, 1, b'x');
    let last = buf.len() - 1;
    buf[last] ^= 0x40;
    let err = one(&buf, PRODUCE).unwrap_err();
    assert!(matches!(err, BatchError::Crc { position: 0, .. }), "{err}");
    assert_eq!(err.kind(), BatchErrorKind::Corrupt);
}

#[test]
fn wrong_magic_is_corrupt() {
    let mut buf = simple_batch(1, 4, 1, b'x');
    buf[16] = 1;
    assert_eq!(
        one(&buf, PRODUCE),
        Err(BatchError::Magic {
            position: 0,
            magic: 1
        })
    );
}

#[test]
fn truncated_batch_names_what_is_missing() {
    let buf = simple_batch(1, 100, 1, b'x');
    let cut = &buf[..buf.len() - 1];
    assert_eq!(
        one(cut, PRODUCE),
        Err(BatchError::Truncated {
            position: 0,
            need: buf.len() as u64,
            have: cut.len() as u64
        })
    );
    assert!(matches!(
        one(&buf[..5], PRODUCE),
        Err(BatchError::Truncated { need: 12, .. })
    ));
}

#[test]
fn oversized_batch_is_too_large_before_crc() {
    let buf = simple_batch(1, 2000, 1, b'x');
    let mode = ValidateMode::Produce {
        max_message_bytes: 1000,
    };
    let err = one(&buf, mode).unwrap_err();
    assert_eq!(
        err,
        BatchError::TooLarge {
            size: buf.len() as u64,
            max: 1000
        }
    );
    assert_eq!(err.kind(), BatchErrorKind::TooLarge);
}

#[test]
fn count_mismatch_is_invalid_record() {
    let records = encode_records(&[Record {
        value: Some(b"v"),
        ..Record::default()
    }]);
    let buf = encode_batch(&BatchSpec::new(2, 5), &records);
    let err = one(&buf, PRODUCE).unwrap_err();
    assert_eq!(err.kind(), BatchErrorKind::InvalidRecord, "{err}");
    // Stored mode trusts counts (compaction changes them), only framing and CRC.
    assert_eq!(one(&buf, ValidateMode::Stored), Ok(1));
}

#[test]
fn zero_records_and_bad_timestamps_are_invalid() {
    let empty = encode_batch(&BatchSpec::new(0, 5), &[]);
    assert_eq!(
        one(&empty, PRODUCE).unwrap_err().kind(),
        BatchErrorKind::InvalidRecord
    );
    let records = encode_records(&[Record::default()]);
    let mut spec = BatchSpec::new(1, 100);
    spec.max_timestamp = 50;
    let backwards = encode_batch(&spec, &records);
    assert_eq!(
        one(&backwards, PRODUCE).unwrap_err().kind(),
        BatchErrorKind::InvalidRecord
    );
}

#[test]
fn producer_fields_must_agree_and_markers_only_come_from_the_broker() {
    let records = encode_records(&[Record {
        value: Some(b"v"),
        ..Record::default()
    }]);
    let batch_with = |producer_id: i64, sequence: i32, transactional: bool| {
        let mut spec = BatchSpec::new(1, 1_000);
        spec.producer_id = producer_id;
        spec.producer_epoch = 0;
        spec.base_sequence = sequence;
        spec.transactional = transactional;
        encode_batch(&spec, &records)
    };
    assert_eq!(one(&batch_with(7, 0, true), PRODUCE), Ok(1));
    for (buf, what) in [
        (
            batch_with(-1, -1, true),
            "transactional without a producer id",
        ),
        (batch_with(7, -1, false), "a producer id without a sequence"),
        (
            crate::batch::builder::marker_batch(7, 0, true, 0, 1_000),
            "a control batch",
        ),
    ] {
        let err = one(&buf, PRODUCE).unwrap_err();
        assert_eq!(err.kind(), BatchErrorKind::InvalidRecord, "{what}: {err}");
        assert_eq!(
            one(&buf, ValidateMode::Stored),
            Ok(1),
            "{what}: stored is fine"
        );
    }
}

#[test]
fn compressed_batches_are_not_walked() {
    let records = encode_records(&[Record {
        value: Some(b"hello"),
        ..Record::default()
    }]);
    let compressed = lz4_flex::frame::FrameEncoder::new(Vec::new());
    let compressed = {
        use std::io::Write;
        let mut enc = compressed;
        enc.write_all(&records).unwrap();
        enc.finish().unwrap()
    };
    let mut spec = BatchSpec::new(1, 7);
    spec.compression = Compression::Lz4;
    let buf = encode_batch(&spec, &compressed);
    assert_eq!(one(&buf, PRODUCE), Ok(1));
    let header = BatchHeader(buf[..61].try_into().unwrap());
    assert_eq!(header.compression(), Some(Compression::Lz4));
}

#[test]
fn log_append_time_rewrite_keeps_the_crc_valid() {
    let buf = simple_batch(3, 8, 1_000, b'q');
    let mut header = BatchHeader(buf[..61].try_into().unwrap());
    header.set_log_append_time(99_999, &buf[61..]);
    header.set_base_offset(crate::Offset(42));
    header.set_partition_leader_epoch(7);
    let mut rewritten = header.0.to_vec();
    rewritten.extend_from_slice(&buf[61..]);
    assert_eq!(one(&rewritten, PRODUCE), Ok(1));
    let h = BatchHeader(rewritten[..61].try_into().unwrap());
    assert!(h.is_log_append_time());
    assert_eq!(
        (
            h.max_timestamp(),
            h.base_offset().0,
            h.partition_leader_epoch()
        ),
        (99_999, 42, 7)
    );
    assert_eq!(h.last_offset().0, 44);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = one(&bytes, PRODUCE);
        let _ = one(&bytes, ValidateMode::Stored);
    }

    #[test]
    fn mutated_batches_never_panic(flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..8)) {
        let mut buf = simple_batch(4, 30, 1_000, b'm');
        for (at, byte) in flips {
            let at = at % buf.len();
            buf[at] = byte;
        }
        let _ = one(&buf, PRODUCE);
    }

    #[test]
    fn varint_round_trips(value in any::<i32>()) {
        let mut out = Vec::new();
        crate::batch::builder::varint_for_tests(&mut out, i64::from(value));
        prop_assert_eq!(read_varint(&out), Some((value, out.len())));
    }
}
