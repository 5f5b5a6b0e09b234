//! What replication needs of a partition's log: a leader stamps its epoch
//! on what it appends and remembers where each epoch starts (durably); a
//! follower stores the leader's batches exactly as they are, at the
//! leader's offsets, only at its log end, and its producer state follows.

mod common;

use bytes::Bytes;
use common::*;
use engine::batch::builder::producer_batch;
use engine::{Error, Log, LogConfig, Offset};

fn all_bytes(result: &engine::ReadResult) -> Vec<u8> {
    concat(result)
}

#[test]
fn a_follower_stores_the_leader_s_batches_as_they_are() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let leader = Log::open(dir.path().join("leader"), LogConfig::default(), 0)
            .await
            .unwrap();
        leader.become_leader(3).await.unwrap();
        let mut rng = Rng(seed("a_follower_stores_the_leader_s_batches_as_they_are"));
        leader
            .append(Bytes::from(batch(&mut rng, 4, 50, 10, false)), 0)
            .await
            .unwrap();
        leader.become_leader(5).await.unwrap();
        leader
            .append(Bytes::from(producer_batch(7, 0, 0, 3, 20, false)), 0)
            .await
            .unwrap();
        leader
            .append(Bytes::from(batch(&mut rng, 2, 500, 20, true)), 0)
            .await
            .unwrap();
        let stored = all_bytes(&leader.read(Offset(0), 1 << 20).await.unwrap());
        // Every batch carries its leader's epoch (bytes 12..16).
        assert_eq!(&stored[12..16], &3i32.to_be_bytes());
        assert_eq!(leader.epochs().entries(), &[(3, 0), (5, 4)]);
        assert_eq!(leader.epoch_end_offset(3), (3, Offset(4)));
        assert_eq!(leader.epoch_end_offset(4), (3, Offset(4)));
        assert_eq!(leader.epoch_end_offset(9), (5, Offset(9)));

        let follower = Log::open(dir.path().join("follower"), LogConfig::default(), 0)
            .await
            .unwrap();
        // Whole batches, in two pieces, as pushes would bring them.
        let first = all_bytes(&leader.read(Offset(0), 1).await.unwrap());
        let info = follower
            .append_replica(Bytes::from(first.clone()), 0)
            .await
            .unwrap()
            .finish()
            .await
            .unwrap();
        assert_eq!((info.base_offset, info.last_offset), (Offset(0), Offset(3)));
        let rest = Bytes::from(stored[first.len()..].to_vec());
        follower
            .append_replica(rest, 0)
            .await
            .unwrap()
            .finish()
            .await
            .unwrap();
        assert_eq!(follower.log_end_offset(), Offset(9));
        let copied = all_bytes(&follower.read(Offset(0), 1 << 20).await.unwrap());
        assert_eq!(copied, stored, "byte for byte, offsets and epochs included");
        assert_eq!(follower.epochs(), leader.epochs());
        assert_eq!(follower.next_sequence(7, 0), 3, "producer state follows");
        leader.close().await.unwrap();
        follower.close().await.unwrap();
        // Both survive a reopen as they were.
        let follower = Log::open(dir.path().join("follower"), LogConfig::default(), 0)
            .await
            .unwrap();
        assert_eq!(follower.epochs().entries(), &[(3, 0), (5, 4)]);
        assert_eq!(follower.leader_epoch(), 5);
        assert_eq!(
            all_bytes(&follower.read(Offset(0), 1 << 20).await.unwrap()),
            stored
        );
        follower.close().await.unwrap();
    });
}

#[test]
fn a_replicated_append_that_does_not_start_at_the_log_end_is_refused() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let leader = Log::open(dir.path().join("leader"), LogConfig::default(), 0)
            .await
            .unwrap();
        leader.become_leader(1).await.unwrap();
        let mut rng = Rng(seed(
            "a_replicated_append_that_does_not_start_at_the_log_end",
        ));
        for _ in 0..3 {
            leader
                .append(Bytes::from(batch(&mut rng, 2, 30, 1, false)), 0)
                .await
                .unwrap();
        }
        let second = all_bytes(&leader.read(Offset(2), 1).await.unwrap());
        let follower = Log::open(dir.path().join("follower"), LogConfig::default(), 0)
            .await
            .unwrap();
        let refused = follower.append_replica(Bytes::from(second), 0).await;
        assert!(
            matches!(
                refused,
                Err(Error::ReplicaGap {
                    expected: Offset(0),
                    got: Offset(2)
                })
            ),
            "{refused:?}"
        );
        assert_eq!(follower.log_end_offset(), Offset(0));
        let mut damaged = all_bytes(&leader.read(Offset(0), 1).await.unwrap());
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(matches!(
            follower.append_replica(Bytes::from(damaged), 0).await,
            Err(Error::Batch(_))
        ));
        assert_eq!(follower.log_end_offset(), Offset(0), "nothing stored");
        leader.close().await.unwrap();
        follower.close().await.unwrap();
    });
}

#[test]
fn a_follower_cuts_its_log_to_a_new_leader_s_history_and_takes_its_records() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 5_000,
            ..small_config()
        };
        let old = Log::open(dir.path().join("old-leader"), config.clone(), 0)
            .await
            .unwrap();
        let mut rng = Rng(seed("a_follower_cuts_its_log_to_a_new_leader_s_history"));
        old.become_leader(1).await.unwrap();
        for _ in 0..6 {
            old.append(Bytes::from(batch(&mut rng, 3, 900, 1, false)), 0)
                .await
                .unwrap();
        }
        old.become_leader(2).await.unwrap();
        for sequence in [0, 2] {
            old.append(
                Bytes::from(producer_batch(9, 0, sequence, 2, 100, false)),
                0,
            )
            .await
            .unwrap();
        }
        let follower_dir = dir.path().join("follower");
        let follower = Log::open(&follower_dir, config.clone(), 0).await.unwrap();
        // A batch per push, as the leader appended them.
        while follower.log_end_offset() < old.log_end_offset() {
            let one = all_bytes(&old.read(follower.log_end_offset(), 1).await.unwrap());
            follower
                .append_replica(Bytes::from(one), 0)
                .await
                .unwrap()
                .finish()
                .await
                .unwrap();
        }
        assert_eq!(follower.log_end_offset(), Offset(22));
        assert!(
            follower.segment_count() > 2,
            "small segments: the cut spans several"
        );
        assert_eq!(follower.next_sequence(9, 0), 4);
        // The new leader never had epoch 2: cut inside the batch [9, 11]
        // (it goes whole) and everything after.
        let follower = follower
            .truncate_to(Offset(10), config.clone(), 0)
            .await
            .unwrap();
        assert_eq!(follower.log_end_offset(), Offset(9));
        assert_eq!(follower.epochs().entries(), &[(1, 0)]);
        assert_eq!(follower.next_sequence(9, 0), 0, "producer 9's batches went");
        let kept = all_bytes(&follower.read(Offset(0), 1 << 24).await.unwrap());
        let expected = all_bytes(&old.read(Offset(0), 1 << 24).await.unwrap());
        assert_eq!(kept, expected[..kept.len()], "what stays is untouched");
        // The new leader's records at epoch 3 follow.
        let new = Log::open(dir.path().join("new-leader"), config.clone(), 0)
            .await
            .unwrap();
        new.append_replica(Bytes::from(kept.clone()), 0)
            .await
            .unwrap()
            .finish()
            .await
            .unwrap();
        new.become_leader(3).await.unwrap();
        new.append(Bytes::from(batch(&mut rng, 4, 100, 2, true)), 0)
            .await
            .unwrap();
        let theirs = all_bytes(&new.read(Offset(9), 1 << 24).await.unwrap());
        follower
            .append_replica(Bytes::from(theirs), 0)
            .await
            .unwrap()
            .finish()
            .await
            .unwrap();
        assert_eq!(follower.epochs().entries(), &[(1, 0), (3, 9)]);
        let both = all_bytes(&follower.read(Offset(0), 1 << 24).await.unwrap());
        assert_eq!(
            both,
            all_bytes(&new.read(Offset(0), 1 << 24).await.unwrap())
        );
        // And it all survives a reopen.
        follower.close().await.unwrap();
        let follower = Log::open(&follower_dir, config, 0).await.unwrap();
        assert_eq!(follower.log_end_offset(), Offset(13));
        assert_eq!(follower.epochs().entries(), &[(1, 0), (3, 9)]);
        for log in [old, new, follower] {
            log.close().await.unwrap();
        }
    });
}

#[test]
fn reads_stop_at_the_high_watermark_in_a_cluster() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path().join("t-0"), LogConfig::default(), 0)
            .await
            .unwrap();
        let mut rng = Rng(seed("reads_stop_at_the_high_watermark_in_a_cluster"));
        let a = batch(&mut rng, 3, 10, 1, false);
        let b = batch(&mut rng, 5, 10, 2, false);
        log.append(Bytes::from(a.clone()), 0).await.unwrap();
        log.append(Bytes::from(b), 0).await.unwrap();
        assert_eq!(log.high_watermark(), Offset(8), "alone: everything durable");
        log.set_high_watermark(Some(Offset(3)));
        assert_eq!(log.high_watermark(), Offset(3));
        assert_eq!(log.log_end_offset(), Offset(8));
        let read = log.read(Offset(0), 1 << 20).await.unwrap();
        assert_eq!(concat(&read), with_offset(&a, 0), "the batch below it only");
        assert_eq!(read.high_watermark, Offset(3));
        // Between the high watermark and the log end: nothing yet, no error.
        assert!(
            log.read(Offset(5), 1 << 20)
                .await
                .unwrap()
                .chunks
                .is_empty()
        );
        assert!(log.last_stable_offset() <= Offset(3));
        assert!(
            log.offset_for_timestamp(5).await.unwrap().is_none(),
            "only past it"
        );
        // A long poll wakes when it moves; it never goes back.
        let watch = log.end_watch();
        let moved = watch.moved();
        let mut moved = std::pin::pin!(moved);
        moved.as_mut().enable();
        log.set_high_watermark(Some(Offset(8)));
        moved.await;
        log.set_high_watermark(Some(Offset(5)));
        assert_eq!(log.high_watermark(), Offset(8));
        assert_eq!(log.read(Offset(3), 1 << 20).await.unwrap().chunks.len(), 1);
        log.close().await.unwrap();
    });
}

/// A follower whose log ends below its leader's log start (DeleteRecords
/// or retention removed the segments it would read next) empties its log
/// and starts again where the leader's first batch begins; the leader
/// reads for it from there, below its log start, and the follower then
/// holds exactly the leader's batches from that offset, across a reopen.
#[test]
fn a_follower_below_the_leader_s_log_start_starts_over_there() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 5_000,
            ..small_config()
        };
        let leader = Log::open(dir.path().join("leader"), config.clone(), 0)
            .await
            .unwrap();
        let mut rng = Rng(seed(
            "a_follower_below_the_leader_s_log_start_starts_over_there",
        ));
        leader.become_leader(1).await.unwrap();
        for _ in 0..12 {
            leader
                .append(Bytes::from(batch(&mut rng, 3, 900, 1, false)), 0)
                .await
                .unwrap();
        }
        let follower_dir = dir.path().join("follower");
        let follower = Log::open(&follower_dir, config.clone(), 0).await.unwrap();
        let first = all_bytes(&leader.read(Offset(0), 1).await.unwrap());
        follower
            .append_replica(Bytes::from(first), 0)
            .await
            .unwrap()
            .finish()
            .await
            .unwrap();
        assert_eq!(follower.log_end_offset(), Offset(3));
        // The leader's log now starts inside the batch [27, 29], past
        // whole segments it removed.
        leader.delete_records(Offset(28)).await.unwrap();
        assert!(leader.first_retained_offset() > Offset(3));
        let chunks = leader.read_for_replica(Offset(28), 1).await.unwrap();
        let head: [u8; engine::batch::HEADER_BYTES] = *chunks[0].slices()[0].first_chunk().unwrap();
        let start = engine::batch::BatchHeader(head).base_offset();
        assert_eq!(start, Offset(27));
        assert!(
            leader.read(Offset(27), 1).await.is_err(),
            "consumers: below the log start"
        );

        let follower = follower
            .start_over_at(start, config.clone(), 0)
            .await
            .unwrap();
        assert_eq!(
            (follower.log_start_offset(), follower.log_end_offset()),
            (Offset(27), Offset(27))
        );
        assert!(follower.epochs().entries().is_empty());
        let rest: Vec<u8> = leader
            .read_for_replica(start, 1 << 24)
            .await
            .unwrap()
            .iter()
            .flat_map(|c| c.slices().into_iter().flatten().copied())
            .collect();
        follower
            .append_replica(Bytes::from(rest), 0)
            .await
            .unwrap()
            .finish()
            .await
            .unwrap();
        assert_eq!(follower.log_end_offset(), Offset(36));
        assert_eq!(follower.epochs().entries(), &[(1, 27)]);
        follower.close().await.unwrap();
        let follower = Log::open(&follower_dir, config, 0).await.unwrap();
        assert_eq!(
            (follower.log_start_offset(), follower.log_end_offset()),
            (Offset(27), Offset(36))
        );
        assert_eq!(
            all_bytes(&follower.read(Offset(27), 1 << 24).await.unwrap()),
            all_bytes(&leader.read(Offset(28), 1 << 24).await.unwrap()),
            "the same batches from the one holding the leader's log start"
        );
        leader.close().await.unwrap();
        follower.close().await.unwrap();
    });
}

/// A compacted leader's log skips offsets (whole batches cleaned away): a
/// push read from the follower's log end may skip them too, never go back,
/// and must start where the follower's log ends.
#[test]
fn a_push_from_a_compacted_leader_may_skip_offsets() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let follower = Log::open(dir.path().join("follower"), LogConfig::default(), 0)
            .await
            .unwrap();
        let mut rng = Rng(seed("a_push_from_a_compacted_leader_may_skip_offsets"));
        let mut push = with_offset(&batch(&mut rng, 2, 30, 1, false), 0);
        push.extend(with_offset(&batch(&mut rng, 2, 30, 1, false), 4));
        follower
            .append_replica_from(Bytes::from(push.clone()), Offset(0), 0)
            .await
            .unwrap()
            .finish()
            .await
            .unwrap();
        assert_eq!(
            follower.log_end_offset(),
            Offset(6),
            "offsets 2 and 3 skipped"
        );
        let stale = follower
            .append_replica_from(Bytes::from(push.clone()), Offset(3), 0)
            .await;
        assert!(
            matches!(
                stale,
                Err(Error::ReplicaGap {
                    expected: Offset(6),
                    got: Offset(3)
                })
            ),
            "{stale:?}"
        );
        let back = with_offset(&batch(&mut rng, 2, 30, 1, false), 5);
        let refused = follower
            .append_replica_from(Bytes::from(back), Offset(6), 0)
            .await;
        assert!(
            matches!(refused, Err(Error::ReplicaGap { .. })),
            "{refused:?}"
        );
        // The strict form still refuses a skip.
        let ahead = with_offset(&batch(&mut rng, 2, 30, 1, false), 9);
        assert!(
            follower
                .append_replica(Bytes::from(ahead), 0)
                .await
                .is_err()
        );
        assert_eq!(follower.log_end_offset(), Offset(6));
        follower.close().await.unwrap();
    });
}
