//! The leader-epoch cache of one replica (Kafka's leader-epoch-checkpoint):
//! for each leader epoch, the offset of its first record in this log. It
//! answers OffsetForLeaderEpoch and decides where a follower's log must be
//! cut so that it is a prefix of its new leader's (KIP-101, KIP-279).

/// Epoch -1 and offset -1: Kafka's UNDEFINED answers.
pub const UNDEFINED: i32 = -1;

/// (epoch, start offset), both strictly increasing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochCache {
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    /// Records that `epoch` starts at `start` (the first record a leader of
    /// that epoch appended). An epoch already known, or older than the
    /// latest, changes nothing.
    pub fn assign(&mut self, epoch: i32, start: i64) {
        if self.entries.last().is_none_or(|&(last, _)| epoch > last) {
            self.entries.push((epoch, start));
        }
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|&(epoch, _)| epoch)
    }

    /// OffsetForLeaderEpoch, as a replica with this cache and `log_end`
    /// answers it: the largest epoch at or below `epoch` and the offset
    /// where it ended here (the next epoch's start, or the log end for the
    /// latest). (UNDEFINED, UNDEFINED) when every epoch here is later.
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> (i32, i64) {
        let Some(position) = self.entries.iter().rposition(|&(e, _)| e <= epoch) else {
            return (UNDEFINED, i64::from(UNDEFINED));
        };
        let found = self.entries.get(position).map_or(UNDEFINED, |&(e, _)| e);
        let end = self
            .entries
            .get(position + 1)
            .map_or(log_end, |&(_, next_start)| next_start);
        (found, end)
    }

    /// Forgets epochs that start at or after `offset` (the log was cut there).
    pub fn truncate_from(&mut self, offset: i64) {
        self.entries.retain(|&(_, start)| start < offset);
    }

    /// Forgets epochs wholly before `offset` (retention removed them), but
    /// keeps the one `offset` falls in.
    pub fn truncate_before(&mut self, offset: i64) {
        let keep_from = self
            .entries
            .iter()
            .rposition(|&(_, start)| start <= offset)
            .unwrap_or(0);
        self.entries.drain(..keep_from);
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }
}

/// Where a follower must cut its log, given the leader's answer to
/// OffsetForLeaderEpoch for the follower's latest epoch (KIP-279): the
/// leader knows that epoch, up to `leader_end`: cut there (or keep
/// everything if the follower ends earlier). The leader only knows an
/// earlier epoch: cut where that epoch ends in the follower's own log, or
/// where the leader's ended, whichever is first. UNDEFINED: the leader
/// knows none of the follower's epochs: cut everything the epochs cover
/// (to the follower's first epoch's start).
pub fn truncation_offset(
    follower: &EpochCache,
    follower_end: i64,
    leader_epoch: i32,
    leader_end: i64,
) -> i64 {
    let Some(latest) = follower.latest_epoch() else {
        return follower_end; // nothing with an epoch to check
    };
    if leader_epoch == UNDEFINED {
        let first = follower
            .entries
            .first()
            .map_or(follower_end, |&(_, start)| start);
        return first.min(follower_end);
    }
    if leader_epoch == latest {
        return leader_end.min(follower_end);
    }
    let (_, own_end) = follower.end_offset_for(leader_epoch, follower_end);
    own_end.min(leader_end).min(follower_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut cache = EpochCache::default();
        for &(e, s) in entries {
            cache.assign(e, s);
        }
        cache
    }

    #[test]
    fn the_leader_answers_where_an_epoch_ended() {
        let leader = cache(&[(0, 0), (2, 10), (5, 30)]);
        assert_eq!(leader.end_offset_for(0, 50), (0, 10));
        assert_eq!(
            leader.end_offset_for(1, 50),
            (0, 10),
            "1 was never led here"
        );
        assert_eq!(leader.end_offset_for(4, 50), (2, 30));
        assert_eq!(leader.end_offset_for(5, 50), (5, 50));
        assert_eq!(leader.end_offset_for(9, 50), (5, 50));
        assert_eq!(cache(&[(3, 0)]).end_offset_for(2, 5), (UNDEFINED, -1));
    }

    /// KIP-101's example: a follower that appended in an epoch the leader
    /// never saw cuts back to where the leader's history diverges.
    #[test]
    fn a_follower_cuts_its_log_to_the_leader_s_history() {
        let leader = cache(&[(0, 0), (2, 10)]);
        // The follower led epoch 1 briefly and wrote 10..14 there.
        let follower = cache(&[(0, 0), (1, 10)]);
        let (epoch, end) = leader.end_offset_for(1, 20);
        assert_eq!((epoch, end), (0, 10));
        assert_eq!(truncation_offset(&follower, 14, epoch, end), 10);
        // Same epoch: keep what the leader has too.
        let follower = cache(&[(0, 0), (2, 10)]);
        let (epoch, end) = leader.end_offset_for(2, 20);
        assert_eq!(truncation_offset(&follower, 25, epoch, end), 20);
        assert_eq!(truncation_offset(&follower, 15, epoch, end), 15);
        // The leader knows none of the follower's epochs.
        let follower = cache(&[(7, 3)]);
        assert_eq!(truncation_offset(&follower, 9, UNDEFINED, -1), 3);
    }

    #[test]
    fn truncation_forgets_epochs_and_retention_keeps_the_current_one() {
        let mut c = cache(&[(0, 0), (2, 10), (5, 30)]);
        c.truncate_from(30);
        assert_eq!(c.entries(), &[(0, 0), (2, 10)]);
        c.truncate_before(15);
        assert_eq!(c.entries(), &[(2, 10)]);
        c.assign(1, 40);
        assert_eq!(c.entries(), &[(2, 10)], "older epochs are not assigned");
    }
}
