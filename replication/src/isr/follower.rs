//! [`Follower`]: one partition's follower side of the ISR protocol, sans-IO.
//!
//! On following a leader at an epoch the follower first makes its log a
//! prefix of the leader's: it asks the leader where its own latest epoch
//! ended there (OffsetForLeaderEpoch) and cuts its log at
//! [`truncation_offset`](super::epochs::truncation_offset). Then it says
//! where its log ends and takes the leader's pushes that start exactly
//! there, acknowledging its log end and durable offset. It refuses pushes
//! of another epoch. Its high watermark is the leader's, within its log.

use super::LogPosition;
use super::epochs::{EpochCache, truncation_offset};

/// What the driver must do for the follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowerAction {
    /// Ask the leader where `epoch` ended in its log.
    AskEpochEnd { leader: i32, epoch: i32 },
    /// Cut the log at `offset` (everything from there on goes), then call
    /// [`Follower::truncated`].
    Truncate { offset: i64 },
    /// Empty the log and start it again at `offset` (it ended below the
    /// leader's log start), then call [`Follower::started_over`].
    StartOver { offset: i64 },
    /// Tell the leader where the log ends and what of it is durable.
    Acknowledge {
        leader: i32,
        leader_epoch: i32,
        session: u64,
        log_end: i64,
        durable: i64,
    },
    /// Append the pushed records (they start at the log end), then call
    /// [`Follower::appended`]; make them durable, then
    /// [`Follower::flushed`].
    Append,
    /// Consumers of this replica may read below this.
    HighWatermark(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the leader's OffsetForLeaderEpoch answer.
    AskingEpochEnd,
    /// Cutting the log.
    Truncating,
    /// Taking pushes.
    Following,
}

/// A follower of one partition at one leader epoch.
#[derive(Debug)]
pub struct Follower {
    leader: i32,
    leader_epoch: i32,
    /// Grows with every restart of this replica (the broker: its start time): the
    /// leader tells a restarted follower, whose log may have lost what was
    /// not durable, from late acknowledgements of its previous life.
    session: u64,
    phase: Phase,
    /// When the leader was last asked where our epoch ended.
    asked_at_ms: u64,
    log_end: i64,
    durable: i64,
    high_watermark: i64,
    actions: Vec<FollowerAction>,
}

/// Why a push was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushRefused {
    /// From another leader epoch (a deposed leader, or one this follower's
    /// metadata has not reached yet).
    Epoch,
    /// The follower is still making its log a prefix of the leader's.
    NotReady,
    /// It does not start at the log end: the leader is told where it ends.
    Offset,
}

impl Follower {
    /// Follows `leader` at `leader_epoch` in this replica's `session`,
    /// with a log at `position` whose epochs are `epochs`.
    pub fn new(
        leader: i32,
        leader_epoch: i32,
        session: u64,
        epochs: &EpochCache,
        position: LogPosition,
        now_ms: u64,
    ) -> Follower {
        let LogPosition {
            log_end,
            durable,
            high_watermark,
        } = position;
        let mut follower = Follower {
            leader,
            leader_epoch,
            session,
            phase: Phase::Following,
            asked_at_ms: now_ms,
            log_end,
            durable: durable.min(log_end),
            high_watermark: high_watermark.min(log_end),
            actions: Vec::new(),
        };
        match epochs.latest_epoch() {
            Some(epoch) => {
                follower.phase = Phase::AskingEpochEnd;
                follower
                    .actions
                    .push(FollowerAction::AskEpochEnd { leader, epoch });
            }
            None => follower.acknowledge(),
        }
        follower
    }

    pub fn leader(&self) -> i32 {
        self.leader
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn log_end(&self) -> i64 {
        self.log_end
    }

    /// Time passes: an unanswered question to the leader (lost, or the
    /// leader did not know yet that it leads) is asked again.
    pub fn tick(&mut self, epochs: &EpochCache, now_ms: u64, retry_ms: u64) {
        if self.phase == Phase::AskingEpochEnd
            && now_ms.saturating_sub(self.asked_at_ms) >= retry_ms
            && let Some(epoch) = epochs.latest_epoch()
        {
            self.asked_at_ms = now_ms;
            self.actions.push(FollowerAction::AskEpochEnd {
                leader: self.leader,
                epoch,
            });
        }
    }

    /// The leader's answer: `epoch` ended at `end` there (UNDEFINED for
    /// both when it knows none of this follower's epochs).
    pub fn epoch_end(&mut self, epochs: &EpochCache, epoch: i32, end: i64) {
        if self.phase != Phase::AskingEpochEnd {
            return;
        }
        let cut = truncation_offset(epochs, self.log_end, epoch, end);
        if cut < self.log_end {
            self.phase = Phase::Truncating;
            self.actions.push(FollowerAction::Truncate { offset: cut });
        } else {
            self.phase = Phase::Following;
            self.acknowledge();
        }
    }

    /// The log was cut at `offset`.
    pub fn truncated(&mut self, offset: i64) {
        self.log_end = self.log_end.min(offset);
        self.durable = self.durable.min(offset);
        self.high_watermark = self.high_watermark.min(offset);
        if self.phase == Phase::Truncating {
            self.phase = Phase::Following;
            self.acknowledge();
        }
    }

    /// The leader says this log ends below its log start: it starts over
    /// at `offset` (only a follower of that epoch, taking pushes, whose
    /// log does end below it).
    pub fn start_at(&mut self, leader_epoch: i32, offset: i64) {
        if leader_epoch == self.leader_epoch
            && self.phase == Phase::Following
            && offset > self.log_end
        {
            self.phase = Phase::Truncating;
            self.actions.push(FollowerAction::StartOver { offset });
        }
    }

    /// The log was emptied and starts at `offset`.
    pub fn started_over(&mut self, offset: i64) {
        self.log_end = offset;
        self.durable = offset;
        self.high_watermark = self.high_watermark.max(offset);
        if self.phase == Phase::Truncating {
            self.phase = Phase::Following;
            self.acknowledge();
        }
    }

    /// A push from the leader: records from `from` to `end` at
    /// `leader_epoch`, and the leader's high watermark. Taken (then the
    /// driver appends them: [`FollowerAction::Append`]; an empty push only
    /// carries the high watermark) or refused.
    pub fn push(
        &mut self,
        leader_epoch: i32,
        from: i64,
        end: i64,
        high_watermark: i64,
    ) -> Result<(), PushRefused> {
        if leader_epoch != self.leader_epoch {
            return Err(PushRefused::Epoch);
        }
        if self.phase != Phase::Following {
            return Err(PushRefused::NotReady);
        }
        if from == self.log_end && end == from {
            // Only the high watermark, or the leader asking where we are.
            self.learn_high_watermark(high_watermark);
            self.acknowledge();
            return Ok(());
        }
        if from != self.log_end || end < from {
            self.acknowledge();
            return Err(PushRefused::Offset);
        }
        self.actions.push(FollowerAction::Append);
        self.learn_high_watermark(high_watermark);
        Ok(())
    }

    /// The pushed records are appended: the log ends at `log_end`.
    pub fn appended(&mut self, log_end: i64) {
        self.log_end = self.log_end.max(log_end);
        self.acknowledge();
    }

    /// The log is durable to `durable`.
    pub fn flushed(&mut self, durable: i64) {
        let durable = durable.min(self.log_end);
        if durable > self.durable {
            self.durable = durable;
            self.acknowledge();
        }
    }

    /// The actions to perform, in order.
    pub fn poll(&mut self) -> Vec<FollowerAction> {
        std::mem::take(&mut self.actions)
    }

    fn learn_high_watermark(&mut self, leader_hw: i64) {
        let hw = leader_hw.min(self.log_end);
        if hw > self.high_watermark {
            self.high_watermark = hw;
            self.actions.push(FollowerAction::HighWatermark(hw));
        }
    }

    fn acknowledge(&mut self) {
        self.actions.push(FollowerAction::Acknowledge {
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            session: self.session,
            log_end: self.log_end,
            durable: self.durable,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn following(log_end: i64) -> Follower {
        let position = LogPosition {
            log_end,
            durable: log_end,
            high_watermark: log_end,
        };
        let mut follower = Follower::new(1, 4, 7, &EpochCache::default(), position, 0);
        follower.poll();
        follower
    }

    #[test]
    fn a_follower_below_the_leader_s_log_start_starts_over_there() {
        let mut follower = following(5);
        // Another epoch's word, or a start it has passed: nothing.
        follower.start_at(3, 100);
        follower.start_at(4, 5);
        assert!(follower.poll().is_empty());
        follower.start_at(4, 100);
        assert_eq!(follower.poll(), [FollowerAction::StartOver { offset: 100 }]);
        // Meanwhile pushes wait.
        assert_eq!(follower.push(4, 100, 110, 100), Err(PushRefused::NotReady));
        follower.started_over(100);
        assert_eq!(
            follower.poll(),
            [FollowerAction::Acknowledge {
                leader: 1,
                leader_epoch: 4,
                session: 7,
                log_end: 100,
                durable: 100,
            }]
        );
        assert_eq!(follower.push(4, 100, 110, 100), Ok(()));
        assert_eq!(follower.poll(), [FollowerAction::Append]);
    }
}
