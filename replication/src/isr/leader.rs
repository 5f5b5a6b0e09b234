//! [`Leader`]: one partition's leader side of the ISR protocol, sans-IO.
//!
//! The leader pushes what it appends to every follower as soon as it is
//! staged (not after its own fdatasync), several pushes in flight per
//! follower; followers acknowledge their log end and durable offset. The
//! high watermark is the lowest durable offset over the ISR (the leader's
//! own included) and never goes back: acks=all is answered when it passes a
//! batch. A follower that has not caught up with the leader's log end for
//! `replica.lag.time.max.ms` is dropped from the ISR, one that reached the
//! high watermark is taken back, both through the controller; while such a
//! change is pending the high watermark counts the union of both ISRs.

use std::collections::{BTreeMap, VecDeque};

use super::LogPosition;

/// The leader's settings.
#[derive(Debug, Clone, Copy)]
pub struct LeaderConfig {
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: u64,
    /// Pushes in flight per follower.
    pub max_in_flight: usize,
    /// A push unanswered this long is sent again from the follower's last
    /// acknowledged end.
    pub retransmit_ms: u64,
    /// After the controller refused an ISR change (a replica it holds
    /// ineligible, such as a broker not yet unfenced), none is asked for
    /// this long.
    pub isr_retry_ms: u64,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        LeaderConfig {
            replica_lag_time_max_ms: 30_000,
            max_in_flight: 8,
            retransmit_ms: 500,
            isr_retry_ms: 1_000,
        }
    }
}

/// A partition's replicas and leadership as the metadata has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// What the driver must do for the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderAction {
    /// Send `to` the records from `from` up to `end` (whole batches; the
    /// driver may send fewer, ending at a batch boundary, and tells with
    /// [`Leader::pushed`]), with the leader's high watermark. An empty push
    /// (`end == from`) only carries the high watermark.
    Push {
        to: i32,
        from: i64,
        end: i64,
        high_watermark: i64,
    },
    /// The high watermark moved here: consumers may read below it, and
    /// acks=all appends that end at or below it are answered.
    HighWatermark(i64),
    /// Ask the controller for this ISR (AlterPartition).
    AlterIsr {
        isr: Vec<i32>,
        leader_epoch: i32,
        partition_epoch: i32,
    },
}

#[derive(Debug, Clone)]
struct Progress {
    /// What the follower said it has: log end and durable offset.
    acked_end: i64,
    acked_durable: i64,
    /// The last time its log end reached the leader's (Kafka's
    /// lastCaughtUpTime).
    caught_up_ms: u64,
    /// Pushes sent and not acknowledged: (from, end, sent at).
    in_flight: VecDeque<(i64, i64, u64)>,
    /// Where the next push starts.
    next: i64,
    /// Whether the follower has said where its log ends in this epoch
    /// (nothing is pushed before).
    known: bool,
    /// The follower's session its acknowledgements come from.
    session: u64,
    /// A push was asked of the driver and it has not said what it sent.
    asked: bool,
}

impl Progress {
    /// A follower not heard from yet, pushed to from `log_end` once it
    /// says where it is.
    fn new(log_end: i64, now_ms: u64) -> Progress {
        Progress {
            acked_end: 0,
            acked_durable: 0,
            caught_up_ms: now_ms,
            in_flight: VecDeque::new(),
            next: log_end,
            known: false,
            session: 0,
            asked: false,
        }
    }
}

/// The leader of one partition at one leader epoch.
#[derive(Debug)]
pub struct Leader {
    config: LeaderConfig,
    me: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: Vec<i32>,
    /// An ISR asked of the controller and not yet seen in the metadata.
    pending_isr: Option<Vec<i32>>,
    /// When the controller last refused an ISR change.
    refused_at_ms: Option<u64>,
    log_end: i64,
    /// Where this leader's epoch starts: a follower joins the ISR once it
    /// has this leader's records (Kafka's leader epoch start offset).
    epoch_start: i64,
    durable: i64,
    high_watermark: i64,
    followers: BTreeMap<i32, Progress>,
    actions: Vec<LeaderAction>,
}

impl Leader {
    /// Becomes leader as the metadata's `assignment` says, over a log at
    /// `position`.
    pub fn new(
        config: LeaderConfig,
        me: i32,
        assignment: &Assignment,
        position: LogPosition,
        now_ms: u64,
    ) -> Leader {
        let Assignment {
            leader_epoch,
            partition_epoch,
            replicas,
            isr,
        } = assignment;
        let (leader_epoch, partition_epoch) = (*leader_epoch, *partition_epoch);
        let LogPosition {
            log_end,
            durable,
            high_watermark,
        } = position;
        let followers = replicas
            .iter()
            .filter(|&&r| r != me)
            .map(|&r| (r, Progress::new(log_end, now_ms)))
            .collect();
        Leader {
            config,
            me,
            leader_epoch,
            partition_epoch,
            isr: isr.to_vec(),
            pending_isr: None,
            refused_at_ms: None,
            log_end,
            epoch_start: log_end,
            durable,
            high_watermark: high_watermark.min(durable),
            followers,
            actions: Vec::new(),
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    /// The replicas it pushes to.
    pub fn followers(&self) -> impl Iterator<Item = i32> + '_ {
        self.followers.keys().copied()
    }

    /// Records were staged here up to `log_end`: push them.
    pub fn appended(&mut self, log_end: i64) {
        self.log_end = self.log_end.max(log_end);
        self.push_all();
    }

    /// This broker's own log is durable to `durable`.
    pub fn flushed(&mut self, durable: i64) {
        self.durable = self.durable.max(durable);
        self.advance();
    }

    /// A follower says where its log ends (when it starts following, after
    /// truncating, or refusing a push that does not start there) or what
    /// it appended and made durable.
    /// A follower restarted (a new `session`) may have lost what it had
    /// not made durable: it starts over from what it says.
    pub fn acknowledged(
        &mut self,
        follower: i32,
        leader_epoch: i32,
        session: u64,
        log_end: i64,
        durable: i64,
        now_ms: u64,
    ) {
        if leader_epoch != self.leader_epoch {
            return; // for another epoch: stale
        }
        let leader_end = self.log_end;
        let Some(progress) = self.followers.get_mut(&follower) else {
            return;
        };
        if session < progress.session {
            return; // from a previous life of the follower
        }
        if progress.known && session > progress.session {
            progress.known = false; // a new life: start over
            progress.acked_end = 0;
            progress.acked_durable = 0;
        }
        progress.session = session;
        if progress.known && log_end < progress.acked_end {
            return; // overtaken by a later acknowledgement (within a
            // session a follower's log only grows)
        }
        progress.acked_end = log_end.min(leader_end);
        progress.acked_durable = durable.min(log_end).min(leader_end);
        if log_end >= leader_end {
            progress.caught_up_ms = now_ms;
        }
        while progress
            .in_flight
            .front()
            .is_some_and(|&(_, end, _)| end <= log_end)
        {
            progress.in_flight.pop_front();
        }
        let expected = progress
            .in_flight
            .front()
            .map_or(progress.next, |&(from, _, _)| from);
        if !progress.known || log_end != expected {
            // The follower is not where the pushes in flight assume: send
            // again from where it is.
            // A push the driver holds (throttled) still finishes, is told
            // and is not counted; the next starts here.
            progress.in_flight.clear();
            progress.next = log_end.min(leader_end);
            progress.known = true;
        }
        self.advance();
        self.maybe_expand(now_ms);
        self.push_all();
    }

    /// The driver sent `to` the records from `from` to `end` (perhaps
    /// fewer than asked; `end == from` if it sent nothing). Nothing more
    /// is asked for that follower until the driver says this.
    pub fn pushed(&mut self, to: i32, from: i64, end: i64, now_ms: u64) {
        let Some(progress) = self.followers.get_mut(&to) else {
            return;
        };
        progress.asked = false;
        if from == progress.next && end > from {
            progress.in_flight.push_back((from, end, now_ms));
            progress.next = end;
        }
        self.push_all();
    }

    /// Time passes: pushes unanswered for too long are sent again, lagging
    /// followers leave the ISR.
    pub fn tick(&mut self, now_ms: u64) {
        for progress in self.followers.values_mut() {
            if progress
                .in_flight
                .front()
                .is_some_and(|&(_, _, at)| now_ms.saturating_sub(at) >= self.config.retransmit_ms)
            {
                // Unanswered: the follower may be gone (dead, cut off), so
                // where it is is not known. No records go to it (they
                // would take a catching-up follower's share of the
                // throttle) until it answers the empty pushes that ask.
                // A push the driver holds still finishes (and is told,
                // then not counted: it no longer starts at `next`).
                progress.in_flight.clear();
                progress.next = progress.acked_end;
                progress.known = false;
            }
        }
        self.maybe_shrink(now_ms);
        self.maybe_expand(now_ms);
        self.push_all();
        // A follower that has not said where it is, or whose durable
        // acknowledgement is missing with nothing in flight (lost, or not
        // flushed yet), is asked by an empty push, which it answers.
        let log_end = self.log_end;
        self.empty_pushes(|p| {
            let idle = p.in_flight.is_empty() && p.next >= log_end;
            !p.known || (idle && p.acked_durable < log_end)
        });
    }

    /// The metadata changed the partition (same leader epoch): its
    /// replicas (a reassignment adds and removes followers), ISR and
    /// partition epoch are now these.
    pub fn metadata_changed(
        &mut self,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        now_ms: u64,
    ) {
        if partition_epoch <= self.partition_epoch {
            return;
        }
        self.partition_epoch = partition_epoch;
        self.followers.retain(|r, _| replicas.contains(r));
        for &r in replicas {
            if r != self.me && !self.followers.contains_key(&r) {
                self.followers
                    .insert(r, Progress::new(self.log_end, now_ms));
            }
        }
        self.isr = isr.to_vec();
        if self.pending_isr.as_deref() == Some(isr) {
            self.pending_isr = None;
        } else if self.pending_isr.is_some() {
            // Another change won: ask again from this state if still needed.
            self.pending_isr = None;
        }
        self.advance();
    }

    /// The controller refused the pending ISR change (a newer partition
    /// epoch, a fenced replica): forget it; asked again, if still needed,
    /// once `isr_retry_ms` passed.
    pub fn isr_change_refused(&mut self, now_ms: u64) {
        self.pending_isr = None;
        self.refused_at_ms = Some(now_ms);
        self.advance();
    }

    /// The actions to perform, in order.
    pub fn poll(&mut self) -> Vec<LeaderAction> {
        std::mem::take(&mut self.actions)
    }

    /// The replicas the high watermark must wait for: the ISR, and while a
    /// change is pending, the union of both.
    fn counted(&self) -> Vec<i32> {
        let mut counted = self.isr.clone();
        for r in self.pending_isr.iter().flatten() {
            if !counted.contains(r) {
                counted.push(*r);
            }
        }
        counted
    }

    fn advance(&mut self) {
        let mut low = self.durable;
        for replica in self.counted() {
            if replica == self.me {
                continue;
            }
            let durable = self.followers.get(&replica).map_or(0, |p| p.acked_durable);
            low = low.min(durable);
        }
        if low > self.high_watermark {
            self.high_watermark = low;
            self.actions.push(LeaderAction::HighWatermark(low));
            // Followers with nothing left to take learn it from an empty push.
            let log_end = self.log_end;
            self.empty_pushes(|p| p.known && p.next >= log_end);
        }
    }

    /// Whether an ISR change may be asked now: none pending, none refused
    /// lately.
    fn may_ask(&self, now_ms: u64) -> bool {
        self.pending_isr.is_none()
            && self
                .refused_at_ms
                .is_none_or(|at| now_ms.saturating_sub(at) >= self.config.isr_retry_ms)
    }

    fn maybe_shrink(&mut self, now_ms: u64) {
        if !self.may_ask(now_ms) {
            return;
        }
        let lag = self.config.replica_lag_time_max_ms;
        let keep: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| {
                // Caught up now (an idle partition sends nothing to ack),
                // or not longer ago than the lag allowed.
                *r == self.me
                    || self.followers.get(r).is_some_and(|p| {
                        p.acked_end >= self.log_end || now_ms.saturating_sub(p.caught_up_ms) <= lag
                    })
            })
            .collect();
        if keep.len() < self.isr.len() {
            self.ask(keep);
        }
    }

    fn maybe_expand(&mut self, now_ms: u64) {
        if !self.may_ask(now_ms) {
            return;
        }
        // It has everything the high watermark covers, durably, and this
        // leader's records from its epoch's start (so its log is this
        // leader's).
        let joining: Vec<i32> = self
            .followers
            .iter()
            .filter(|(r, p)| {
                !self.isr.contains(r)
                    && p.known
                    && p.acked_durable >= self.high_watermark
                    && p.acked_durable >= self.epoch_start
            })
            .map(|(&r, _)| r)
            .collect();
        if !joining.is_empty() {
            let mut isr = self.isr.clone();
            isr.extend(joining);
            self.ask(isr);
        }
    }

    fn ask(&mut self, isr: Vec<i32>) {
        self.pending_isr = Some(isr.clone());
        self.actions.push(LeaderAction::AlterIsr {
            isr,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
        });
    }

    /// An empty push (the high watermark only) to every follower that
    /// `wanted` picks and no push is asked of the driver for.
    fn empty_pushes(&mut self, wanted: impl Fn(&Progress) -> bool) {
        for (&to, progress) in &self.followers {
            if !progress.asked && wanted(progress) {
                self.actions.push(LeaderAction::Push {
                    to,
                    from: progress.next,
                    end: progress.next,
                    high_watermark: self.high_watermark,
                });
            }
        }
    }

    fn push_all(&mut self) {
        for (&to, progress) in &mut self.followers {
            if progress.known
                && !progress.asked
                && progress.next < self.log_end
                && progress.in_flight.len() < self.config.max_in_flight
            {
                progress.asked = true;
                self.actions.push(LeaderAction::Push {
                    to,
                    from: progress.next,
                    end: self.log_end,
                    high_watermark: self.high_watermark,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(isr: &[i32]) -> Leader {
        let assignment = Assignment {
            leader_epoch: 3,
            partition_epoch: 7,
            replicas: vec![0, 1, 2],
            isr: isr.to_vec(),
        };
        let position = LogPosition {
            log_end: 10,
            durable: 10,
            high_watermark: 10,
        };
        Leader::new(LeaderConfig::default(), 0, &assignment, position, 0)
    }

    #[test]
    fn the_high_watermark_waits_for_every_in_sync_replica_s_disk() {
        let mut l = leader(&[0, 1, 2]);
        l.acknowledged(1, 3, 1, 10, 10, 0);
        l.acknowledged(2, 3, 1, 10, 10, 0);
        l.appended(15);
        let pushes: Vec<_> = l.poll();
        assert_eq!(
            pushes.len(),
            2,
            "both followers get the new records: {pushes:?}"
        );
        l.pushed(1, 10, 15, 1);
        l.pushed(2, 10, 15, 1);
        l.flushed(15);
        assert_eq!(l.high_watermark(), 10);
        l.acknowledged(1, 3, 1, 15, 15, 2);
        assert_eq!(l.high_watermark(), 10, "follower 2 has not written it");
        l.acknowledged(2, 3, 1, 15, 12, 2);
        assert_eq!(l.high_watermark(), 12, "durable, not merely received");
        l.acknowledged(2, 3, 1, 15, 15, 3);
        assert_eq!(l.high_watermark(), 15);
        assert!(l.poll().contains(&LeaderAction::HighWatermark(15)));
        // Another epoch's acknowledgement changes nothing.
        l.acknowledged(2, 2, 1, 99, 99, 3);
        assert_eq!(l.high_watermark(), 15);
    }

    #[test]
    fn a_lagging_follower_leaves_the_isr_and_the_pending_change_counts_both() {
        let mut l = leader(&[0, 1, 2]);
        l.acknowledged(1, 3, 1, 10, 10, 0);
        l.acknowledged(2, 3, 1, 10, 10, 0);
        l.appended(20);
        l.poll();
        l.pushed(1, 10, 20, 100);
        l.pushed(2, 10, 20, 100);
        l.acknowledged(1, 3, 1, 20, 20, 200);
        l.flushed(20);
        let lag = LeaderConfig::default().replica_lag_time_max_ms;
        l.tick(200 + lag);
        assert!(l.poll().contains(&LeaderAction::AlterIsr {
            isr: vec![0, 1],
            leader_epoch: 3,
            partition_epoch: 7
        }));
        assert_eq!(
            l.high_watermark(),
            10,
            "2 still counts while the change is pending"
        );
        l.metadata_changed(8, &[0, 1, 2], &[0, 1], 250);
        assert_eq!(l.high_watermark(), 20);
        // Caught up again (a new session: it restarted), it is taken back.
        l.acknowledged(2, 3, 2, 20, 20, 300_000);
        assert!(l.poll().contains(&LeaderAction::AlterIsr {
            isr: vec![0, 1, 2],
            leader_epoch: 3,
            partition_epoch: 8
        }));
    }

    #[test]
    fn a_refused_isr_change_is_asked_again_only_after_the_retry_interval() {
        let mut l = leader(&[0, 1]);
        l.acknowledged(1, 3, 1, 10, 10, 0);
        l.acknowledged(2, 3, 1, 10, 10, 0);
        let asked = |l: &mut Leader| {
            l.poll()
                .iter()
                .any(|a| matches!(a, LeaderAction::AlterIsr { .. }))
        };
        assert!(asked(&mut l), "2 caught up: taken back");
        l.isr_change_refused(100);
        l.tick(150);
        l.acknowledged(2, 3, 1, 10, 10, 200);
        assert!(!asked(&mut l), "refused a moment ago");
        l.tick(100 + LeaderConfig::default().isr_retry_ms);
        assert!(asked(&mut l), "asked again after the interval");
    }

    #[test]
    fn a_reassignment_adds_a_follower_that_catches_up_and_removes_one() {
        let mut l = leader(&[0, 1]);
        l.acknowledged(1, 3, 1, 10, 10, 0);
        l.flushed(10);
        l.poll();
        // 0,1,2 -> 0,3: 3 is pushed to once it says where it is, 1 and 2
        // are no longer.
        l.metadata_changed(8, &[0, 3, 1, 2], &[0, 1], 10);
        l.metadata_changed(9, &[0, 3], &[0], 20);
        l.acknowledged(1, 3, 1, 10, 10, 30);
        assert!(
            l.poll()
                .iter()
                .all(|a| !matches!(a, LeaderAction::Push { to: 1 | 2, .. }))
        );
        l.acknowledged(3, 3, 1, 0, 0, 40);
        assert!(l.poll().contains(&LeaderAction::Push {
            to: 3,
            from: 0,
            end: 10,
            high_watermark: 10
        }));
        l.pushed(3, 0, 10, 40);
        l.acknowledged(3, 3, 1, 10, 10, 50);
        assert!(l.poll().contains(&LeaderAction::AlterIsr {
            isr: vec![0, 3],
            leader_epoch: 3,
            partition_epoch: 9
        }));
    }

    #[test]
    fn an_unanswered_follower_gets_no_records_until_it_answers_and_no_push_twice() {
        let mut l = leader(&[0, 1]);
        l.acknowledged(1, 3, 1, 10, 10, 0);
        l.acknowledged(2, 3, 1, 10, 10, 0);
        l.appended(30);
        l.poll();
        l.pushed(2, 10, 20, 0);
        // The next push to 2 is held by the driver (a throttle) when the
        // first one goes unanswered.
        assert!(l.poll().contains(&LeaderAction::Push {
            to: 2,
            from: 20,
            end: 30,
            high_watermark: 10
        }));
        let retransmit = LeaderConfig::default().retransmit_ms;
        l.tick(retransmit);
        assert!(
            l.poll()
                .iter()
                .all(|a| !matches!(a, LeaderAction::Push { to: 2, .. })),
            "a push is still held: none asked besides it"
        );
        // Held push done: not counted (2 may be gone), and no records are
        // asked for 2 until it answers the empty push that asks where it is.
        l.pushed(2, 20, 30, retransmit);
        assert!(
            l.poll()
                .iter()
                .all(|a| !matches!(a, LeaderAction::Push { to: 2, .. }))
        );
        l.tick(retransmit + 50);
        let asked = l.poll();
        assert!(
            asked.contains(&LeaderAction::Push {
                to: 2,
                from: 10,
                end: 10,
                high_watermark: 10
            }),
            "{asked:?}"
        );
        l.acknowledged(2, 3, 1, 10, 10, retransmit + 60);
        assert!(l.poll().contains(&LeaderAction::Push {
            to: 2,
            from: 10,
            end: 30,
            high_watermark: 10
        }));
    }
}
