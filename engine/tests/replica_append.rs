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
