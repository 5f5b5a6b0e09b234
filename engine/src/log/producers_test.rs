use super::*;
use crate::batch::builder::{BatchSpec, encode_batch};

/// The header of a batch of `count` records from `producer_id` at `epoch`,
/// sequences from `base_sequence`, transactional or not.
fn header_of(
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    count: i32,
    transactional: bool,
) -> BatchHeader {
    let mut spec = BatchSpec::new(count, 0);
    spec.producer_id = producer_id;
    spec.producer_epoch = epoch;
    spec.base_sequence = base_sequence;
    spec.transactional = transactional;
    let bytes = encode_batch(&spec, &[]);
    BatchHeader(*bytes.first_chunk().unwrap())
}

fn header(producer_id: i64, epoch: i16, base_sequence: i32, count: i32) -> BatchHeader {
    header_of(producer_id, epoch, base_sequence, count, false)
}

/// Appends one batch at `base` if the state accepts it; returns the verdict.
fn append(producers: &mut Producers, h: &BatchHeader, base: i64) -> Result<Verdict, ProducerError> {
    let verdict = producers.check([h], Offset(base), 1_000)?;
    if let Verdict::Append(updates) = verdict {
        producers.apply(updates);
        return Ok(Verdict::Append(Updates::default()));
    }
    Ok(verdict)
}

fn appended() -> Result<Verdict, ProducerError> {
    Ok(Verdict::Append(Updates::default()))
}

#[test]
fn in_order_batches_append_and_retries_get_their_first_offsets() {
    let mut p = Producers::default();
    // Seven batches of 3 records: sequences 0-2, 3-5, ... at offsets 10, 13, ...
    for i in 0..7 {
        assert_eq!(
            append(&mut p, &header(7, 0, i * 3, 3), 10 + i64::from(i) * 3),
            appended()
        );
    }
    // Each of the last five is recognised, with its offsets.
    for i in 2..7 {
        let first = Offset(10 + i64::from(i) * 3);
        assert_eq!(
            append(&mut p, &header(7, 0, i * 3, 3), 99),
            Ok(Verdict::Duplicate {
                first,
                last: first.plus(2)
            }),
            "batch {i}"
        );
    }
    // Older than the five kept: out of sequence, as in Kafka.
    assert!(matches!(
        append(&mut p, &header(7, 0, 0, 3), 99),
        Err(ProducerError::OutOfOrderSequence { .. })
    ));
}

#[test]
fn gaps_old_epochs_and_restarted_sequences_are_refused() {
    let mut p = Producers::default();
    assert_eq!(append(&mut p, &header(1, 3, 0, 5), 0), appended());
    assert_eq!(
        append(&mut p, &header(1, 3, 6, 1), 5),
        Err(ProducerError::OutOfOrderSequence {
            producer_id: 1,
            last: 4,
            got: 6
        })
    );
    assert_eq!(
        append(&mut p, &header(1, 2, 5, 1), 5),
        Err(ProducerError::InvalidEpoch {
            producer_id: 1,
            current: 3,
            got: 2
        })
    );
    // A new epoch starts again at 0, and only there.
    assert!(matches!(
        append(&mut p, &header(1, 4, 5, 1), 5),
        Err(ProducerError::OutOfOrderSequence { .. })
    ));
    assert_eq!(append(&mut p, &header(1, 4, 0, 1), 5), appended());
    assert_eq!(append(&mut p, &header(1, 4, 1, 1), 6), appended());
}

#[test]
fn an_unknown_producer_may_start_anywhere_and_sequences_wrap() {
    let mut p = Producers::default();
    assert_eq!(
        append(&mut p, &header(9, 0, i32::MAX - 1, 2), 0),
        appended()
    );
    assert_eq!(
        append(&mut p, &header(9, 0, 0, 1), 2),
        appended(),
        "after i32::MAX comes 0"
    );
    // A batch that wraps inside itself.
    let mut q = Producers::default();
    assert_eq!(append(&mut q, &header(9, 0, i32::MAX, 3), 0), appended());
    assert_eq!(append(&mut q, &header(9, 0, 2, 1), 3), appended());
}

#[test]
fn later_batches_of_one_append_see_the_earlier_ones() {
    let p = Producers::default();
    let (a, b, gap) = (header(5, 0, 0, 2), header(5, 0, 2, 2), header(5, 0, 5, 1));
    let Ok(Verdict::Append(updates)) = p.check([&a, &b], Offset(100), 0) else {
        panic!("two consecutive batches in one append");
    };
    let mut applied = p.clone();
    applied.apply(updates);
    assert_eq!(
        applied.check([&b], Offset(0), 0),
        Ok(Verdict::Duplicate {
            first: Offset(102),
            last: Offset(103)
        })
    );
    assert!(
        p.check([&a, &gap], Offset(100), 0).is_err(),
        "nothing of a refused append"
    );
    assert_eq!(p, Producers::default());
}

#[test]
fn plain_batches_are_not_tracked() {
    let mut p = Producers::default();
    assert_eq!(append(&mut p, &header(-1, -1, -1, 4), 0), appended());
    assert_eq!(append(&mut p, &header(-1, -1, -1, 4), 4), appended());
    assert_eq!(p.len(), 0);
}

#[test]
fn snapshots_round_trip_and_damage_is_detected() {
    let mut p = Producers::default();
    for (id, epoch) in [(1i64, 0i16), (2, 7), (300_000, 1)] {
        for i in 0..7 {
            append(&mut p, &header(id, epoch, i * 2, 2), i64::from(i) * 2).unwrap();
        }
    }
    let bytes = p.encode(Offset(1234));
    assert_eq!(Producers::decode(&bytes), Some((p.clone(), Offset(1234))));
    for at in [0, 9, bytes.len() / 2, bytes.len() - 1] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x40;
        assert_eq!(Producers::decode(&damaged), None, "byte {at}");
    }
    assert_eq!(Producers::decode(&bytes[..bytes.len() - 3]), None);
    assert_eq!(Producers::decode(&[]), None);
}

#[test]
fn idle_producers_expire() {
    let mut p = Producers::default();
    let Ok(Verdict::Append(u)) = p.check([&header(1, 0, 0, 1)], Offset(0), 0) else {
        panic!()
    };
    p.apply(u);
    let Ok(Verdict::Append(u)) = p.check([&header(2, 0, 0, 1)], Offset(1), 50_000) else {
        panic!()
    };
    p.apply(u);
    p.expire(
        PRODUCER_ID_EXPIRATION_MS + 10_000,
        PRODUCER_ID_EXPIRATION_MS,
    );
    assert_eq!(p.len(), 1, "only the one active in the last day");
}

#[test]
fn replay_records_stored_batches_once() {
    let mut p = Producers::default();
    let mut stored = header(4, 0, 0, 3);
    stored.set_base_offset(Offset(40));
    p.replay(&stored, 0);
    p.replay(&stored, 0);
    let mut next = header(4, 0, 3, 1);
    next.set_base_offset(Offset(43));
    p.replay(&next, 0);
    assert_eq!(
        p.check([&header(4, 0, 0, 3)], Offset(0), 0),
        Ok(Verdict::Duplicate {
            first: Offset(40),
            last: Offset(42)
        })
    );
    // The log is the truth: a stored batch out of sequence restarts it.
    let mut odd = header(4, 0, 90, 1);
    odd.set_base_offset(Offset(44));
    p.replay(&odd, 0);
    assert_eq!(
        p.check([&header(4, 0, 91, 1)], Offset(45), 0).map(|_| ()),
        Ok(())
    );
}

fn txn_header(producer_id: i64, epoch: i16, base_sequence: i32, count: i32) -> BatchHeader {
    header_of(producer_id, epoch, base_sequence, count, true)
}

#[test]
fn transactions_open_at_their_first_batch_and_close_at_their_marker() {
    let mut p = Producers::default();
    append(&mut p, &txn_header(1, 0, 0, 2), 10).unwrap();
    append(&mut p, &txn_header(1, 0, 2, 2), 12).unwrap();
    append(&mut p, &txn_header(2, 0, 0, 1), 14).unwrap();
    assert_eq!(p.first_unstable(), Some(Offset(10)));
    let commit = p.marker(1, 0, true, 0, Offset(15), 0).unwrap();
    p.apply(commit);
    assert_eq!(p.first_unstable(), Some(Offset(14)));
    let abort = p.marker(2, 0, false, 0, Offset(16), 0).unwrap();
    p.apply(abort);
    assert_eq!(p.first_unstable(), None);
    let expected = AbortedTxn {
        producer_id: 2,
        first_offset: Offset(14),
        last_offset: Offset(16),
    };
    assert_eq!(p.aborted_between(Offset(0), Offset(20)), vec![expected]);
    assert_eq!(p.aborted_between(Offset(17), Offset(20)), vec![]);
    // A marker for a producer with nothing open records no abort.
    let empty = p.marker(3, 0, false, 0, Offset(17), 0).unwrap();
    p.apply(empty);
    assert_eq!(p.aborted_between(Offset(0), Offset(20)).len(), 1);
    assert!(matches!(
        p.marker(1, -1, true, 0, Offset(18), 0),
        Err(ProducerError::InvalidEpoch { .. })
    ));
    p.trim(Offset(17));
    assert_eq!(p.aborted_between(Offset(0), Offset(20)), vec![]);
}

#[test]
fn a_fencing_marker_closes_the_transaction_under_its_new_epoch() {
    let mut p = Producers::default();
    append(&mut p, &txn_header(5, 0, 0, 3), 0).unwrap();
    // The coordinator aborts it with epoch 1 (a timeout or a new instance).
    let fence = p.marker(5, 1, false, 0, Offset(3), 0).unwrap();
    p.apply(fence);
    assert_eq!(p.first_unstable(), None);
    assert_eq!(p.aborted_between(Offset(0), Offset(4)).len(), 1);
    assert!(matches!(
        append(&mut p, &txn_header(5, 0, 3, 1), 4),
        Err(ProducerError::InvalidEpoch { .. })
    ));
    assert!(
        matches!(
            append(&mut p, &txn_header(5, 1, 7, 1), 4),
            Err(ProducerError::OutOfOrderSequence { .. })
        ),
        "the new epoch starts at 0"
    );
    assert_eq!(append(&mut p, &txn_header(5, 1, 0, 1), 4), appended());
    assert_eq!(p.first_unstable(), Some(Offset(4)));
}

#[test]
fn snapshots_keep_open_transactions_and_aborts() {
    let mut p = Producers::default();
    append(&mut p, &txn_header(1, 0, 0, 2), 0).unwrap();
    append(&mut p, &txn_header(2, 0, 0, 2), 2).unwrap();
    let abort = p.marker(2, 0, false, 0, Offset(4), 0).unwrap();
    p.apply(abort);
    let (decoded, offset) = Producers::decode(&p.encode(Offset(5))).unwrap();
    assert_eq!(offset, Offset(5));
    assert_eq!(decoded, p);
    assert_eq!(decoded.first_unstable(), Some(Offset(0)));
}

#[test]
fn coordinator_epochs_fence_old_markers_and_are_kept_in_snapshots() {
    let mut p = Producers::default();
    append(&mut p, &header_of(9, 0, 0, 1, true), 0).unwrap();
    p.apply(p.marker(9, 0, true, 6, Offset(1), 0).unwrap());
    assert_eq!(
        p.marker(9, 0, false, 5, Offset(2), 0),
        Err(ProducerError::CoordinatorFenced {
            producer_id: 9,
            current: 6,
            got: 5
        })
    );
    let (decoded, _) = Producers::decode(&p.encode(Offset(2))).unwrap();
    assert_eq!(decoded, p);
    assert!(decoded.marker(9, 0, false, 5, Offset(2), 0).is_err());
    assert!(decoded.marker(9, 0, false, 6, Offset(2), 0).is_ok());
}

/// A snapshot of the previous format (SLPROD02: no coordinator epochs)
/// still decodes; its producers take any coordinator's next marker.
#[test]
fn snapshots_of_the_previous_format_still_decode() {
    let mut p = Producers::default();
    append(&mut p, &header_of(4, 1, 0, 3, true), 0).unwrap();
    append(&mut p, &header(5, 0, 0, 2), 3).unwrap();
    let current = p.encode(Offset(5));
    // The same state as SLPROD02 wrote it: without each entry's 4 bytes
    // of coordinator epoch (after its txn_first), CRC again.
    let mut old = b"SLPROD02".to_vec();
    let body = &current[8..current.len() - 4];
    old.extend_from_slice(&body[..12]); // offset, count
    let mut rest = &body[12..];
    for _ in 0..2 {
        let batches = usize::from(rest[8 + 2 + 8 + 8 + 4]);
        old.extend_from_slice(&rest[..8 + 2 + 8 + 8]);
        let after = 8 + 2 + 8 + 8 + 4;
        let len = 1 + batches * 24;
        old.extend_from_slice(&rest[after..after + len]);
        rest = &rest[after + len..];
    }
    old.extend_from_slice(rest);
    let crc = crc32c::crc32c(&old);
    old.extend_from_slice(&crc.to_le_bytes());
    let (decoded, offset) = Producers::decode(&old).unwrap();
    assert_eq!((decoded, offset), (p, Offset(5)));
}
