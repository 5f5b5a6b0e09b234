//! A deterministic simulator of one partition's three replicas running the
//! ISR protocol, with a model of the controller (leaders elected from the
//! ISR only, epochs bumped, ISR changes checked by partition epoch), a
//! producer writing to whoever leads, and a hostile world: messages lost,
//! repeated and late (so reordered), replicas crashing and losing what they
//! had not made durable, fsyncs that take their time. One seed decides
//! everything and is printed.
//!
//! Checked as it happens: whatever a replica exposes below its high
//! watermark (what consumers may read) never changes or disappears, and
//! every acknowledged record is among it; a replica that takes the
//! leadership has every acknowledged record. At the end, healed: every
//! replica is back in the ISR with the leader's log.

use std::collections::BTreeMap;

use super::*;
use crate::sim_rng::Rng;

const REPLICAS: [i32; 3] = [0, 1, 2];
const STEP_MS: u64 = 5;
const SESSION_MS: u64 = 1_000;

#[derive(Debug, Clone, Copy)]
struct Faults {
    drop: u64,
    duplicate: u64,
    max_delay_ms: u64,
    crash: u64,
    /// Every replica crashes at once (a rack's power).
    power_failure: u64,
    /// A replica's fsync completes in this step.
    flush: u64,
    produce: u64,
}

const HOSTILE: Faults = Faults {
    drop: 50_000,
    duplicate: 20_000,
    max_delay_ms: 40,
    crash: 800,
    power_failure: 150,
    flush: 60_000,
    produce: 400_000,
};

const CALM: Faults = Faults {
    drop: 0,
    duplicate: 0,
    max_delay_ms: 2,
    crash: 0,
    power_failure: 0,
    flush: 300_000,
    produce: 0,
};

/// One record: the epoch it was written in and a unique payload.
type Record = (i32, u64);

#[derive(Debug, Clone)]
enum Message {
    Push {
        leader_epoch: i32,
        from: i64,
        records: Vec<Record>,
        high_watermark: i64,
    },
    Ack {
        leader_epoch: i32,
        session: u64,
        log_end: i64,
        durable: i64,
    },
    AskEpochEnd {
        epoch: i32,
    },
    EpochEnd {
        leader_epoch: i32,
        epoch: i32,
        end: i64,
    },
}

/// The controller's record of the partition.
#[derive(Debug, Clone)]
struct PartitionRecord {
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: Vec<i32>,
}

#[derive(Debug)]
enum Role {
    None,
    Leader(Leader),
    Follower(Follower),
}

#[derive(Debug)]
struct Replica {
    id: i32,
    up: bool,
    restart_at: u64,
    down_since: u64,
    log: Vec<Record>,
    durable: usize,
    epochs: EpochCache,
    high_watermark: i64,
    /// Counts restarts (a broker epoch's role).
    session: u64,
    /// Registered in this life: a restarted replica acts on no partition
    /// record until the controller fenced its previous life (moving any
    /// leadership it had to a new epoch) and unfenced this one, as the
    /// real controller does with a broker's new incarnation.
    registered: bool,
    role: Role,
    /// The partition record this replica acts on (metadata reaches it late).
    seen: Option<PartitionRecord>,
}

impl Replica {
    fn log_end(&self) -> i64 {
        self.log.len() as i64
    }

    fn position(&self) -> LogPosition {
        LogPosition {
            log_end: self.log_end(),
            durable: i64::try_from(self.durable).unwrap(),
            high_watermark: self.high_watermark,
        }
    }
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: u64,
    faults: Faults,
    replicas: Vec<Replica>,
    record: PartitionRecord,
    /// Fenced by the controller (down for a session).
    fenced: [bool; 3],
    net: Vec<(u64, u64, i32, i32, Message)>,
    seq: u64,
    /// Metadata on its way to a replica: (deliver at, to, record).
    metadata: Vec<(u64, i32, PartitionRecord)>,
    next_payload: u64,
    /// Produced at the leader, not yet acknowledged: offset -> record.
    pending: BTreeMap<i64, Record>,
    acknowledged: BTreeMap<i64, Record>,
    /// Everything any replica exposed below its high watermark.
    exposed: BTreeMap<i64, Record>,
    elections: u64,
    crashes: u64,
    isr_changes: u64,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let record = PartitionRecord {
            leader: 0,
            leader_epoch: 0,
            partition_epoch: 0,
            isr: REPLICAS.to_vec(),
        };
        let replicas = REPLICAS
            .iter()
            .map(|&id| Replica {
                id,
                up: true,
                restart_at: 0,
                down_since: 0,
                log: Vec::new(),
                durable: 0,
                epochs: EpochCache::default(),
                high_watermark: 0,
                session: 0,
                registered: true,
                role: Role::None,
                seen: None,
            })
            .collect();
        let mut sim = Sim {
            seed,
            rng: Rng(seed),
            now: 0,
            faults: HOSTILE,
            replicas,
            record,
            fenced: [false; 3],
            net: Vec::new(),
            seq: 0,
            metadata: Vec::new(),
            next_payload: 1,
            pending: BTreeMap::new(),
            acknowledged: BTreeMap::new(),
            exposed: BTreeMap::new(),
            elections: 0,
            crashes: 0,
            isr_changes: 0,
        };
        sim.publish();
        sim
    }

    fn replica(&mut self, id: i32) -> &mut Replica {
        &mut self.replicas[usize::try_from(id).unwrap()]
    }

    /// The controller's record goes out to every replica, each late.
    fn publish(&mut self) {
        for id in REPLICAS {
            let at = self.now + 1 + self.rng.below(self.faults.max_delay_ms);
            self.metadata.push((at, id, self.record.clone()));
        }
    }

    fn send(&mut self, from: i32, to: i32, message: Message) {
        if self.rng.chance(self.faults.drop) {
            return;
        }
        let copies = if self.rng.chance(self.faults.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            self.seq += 1;
            let at = self.now + 1 + self.rng.below(self.faults.max_delay_ms);
            self.net.push((at, self.seq, from, to, message.clone()));
        }
    }

    fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += STEP_MS;
            self.crashes_and_restarts();
            self.controller();
            self.deliver_metadata();
            self.deliver();
            self.produce();
            for id in REPLICAS {
                self.flush(id);
                self.tick(id);
                self.perform(id);
            }
        }
    }

    fn crashes_and_restarts(&mut self) {
        let power_failure = self.rng.chance(self.faults.power_failure);
        for id in REPLICAS {
            let now = self.now;
            let crash = power_failure || self.rng.chance(self.faults.crash);
            let downtime = 300 + self.rng.below(3_000);
            let replica = self.replica(id);
            if replica.up && crash {
                // What was not durable is gone.
                replica.up = false;
                replica.down_since = now;
                replica.restart_at = now + downtime;
                let durable = replica.durable;
                replica.log.truncate(durable);
                replica.epochs = epochs_of(&replica.log);
                replica.role = Role::None;
                replica.seen = None;
                replica.high_watermark = 0;
                replica.session += 1;
                replica.registered = false;
                self.crashes += 1;
            } else if !replica.up && replica.restart_at <= now {
                replica.up = true;
            }
        }
    }

    /// The controller: fences replicas down for a session (moving their
    /// leadership within the ISR, never outside it), and unfences those
    /// back (taking a leaderless partition if in its ISR).
    fn controller(&mut self) {
        let mut changed = false;
        for id in REPLICAS {
            let index = usize::try_from(id).unwrap();
            let replica = &self.replicas[index];
            // A previous life's session ends SESSION_MS after it died,
            // whether or not the replica is back.
            if !replica.registered
                && !self.fenced[index]
                && self.now - replica.down_since >= SESSION_MS
            {
                self.fenced[index] = true;
                let rest: Vec<i32> = self
                    .record
                    .isr
                    .iter()
                    .copied()
                    .filter(|&r| r != id)
                    .collect();
                if !rest.is_empty() {
                    self.record.isr = rest;
                }
                if self.record.leader == id {
                    let next = self
                        .record
                        .isr
                        .iter()
                        .copied()
                        .find(|&r| r != id && !self.fenced[usize::try_from(r).unwrap()]);
                    self.record.leader = next.unwrap_or(-1);
                    self.record.leader_epoch += 1;
                }
                self.record.partition_epoch += 1;
                changed = true;
            } else if replica.up && self.fenced[index] {
                // The new life registers and is unfenced.
                self.fenced[index] = false;
                self.replicas[index].registered = true;
                if self.record.leader == -1 && self.record.isr.contains(&id) {
                    self.record.leader = id;
                    self.record.leader_epoch += 1;
                    self.record.partition_epoch += 1;
                }
                changed = true;
            }
        }
        if changed {
            self.publish();
        }
    }

    /// AlterPartition from a leader.
    fn alter_isr(&mut self, from: i32, isr: Vec<i32>, leader_epoch: i32, partition_epoch: i32) {
        let r = &self.record;
        let ok = r.leader == from
            && r.leader_epoch == leader_epoch
            && r.partition_epoch == partition_epoch
            && isr.contains(&from)
            && isr
                .iter()
                .all(|x| r.isr.contains(x) || !self.fenced[usize::try_from(*x).unwrap()]);
        if ok {
            self.record.isr = isr;
            self.record.partition_epoch += 1;
            self.isr_changes += 1;
            self.publish();
        } else {
            let now = self.now;
            if let Role::Leader(leader) = &mut self.replica(from).role {
                leader.isr_change_refused(now);
            }
        }
    }

    fn deliver_metadata(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.metadata)
            .into_iter()
            .partition(|m| m.0 <= now);
        self.metadata = later;
        for (_, id, record) in due {
            self.learn(id, record);
        }
    }

    /// A replica acts on a partition record newer than what it has.
    fn learn(&mut self, id: i32, record: PartitionRecord) {
        let now = self.now;
        let seed = self.seed;
        let acknowledged = self.acknowledged.clone();
        let replica = self.replica(id);
        if !replica.up || !replica.registered {
            return;
        }
        if replica.seen.as_ref().is_some_and(|s| {
            s.partition_epoch >= record.partition_epoch && s.leader_epoch >= record.leader_epoch
        }) {
            return;
        }
        let new_epoch = replica
            .seen
            .as_ref()
            .is_none_or(|s| record.leader_epoch > s.leader_epoch);
        replica.seen = Some(record.clone());
        if !new_epoch {
            if let Role::Leader(leader) = &mut replica.role {
                leader.metadata_changed(record.partition_epoch, &REPLICAS, &record.isr, now);
            }
            return;
        }
        if record.leader == id {
            // It must have every acknowledged record: it was in the ISR.
            for (&offset, &rec) in &acknowledged {
                let here = replica.log.get(usize::try_from(offset).unwrap()).copied();
                assert_eq!(
                    here,
                    Some(rec),
                    "seed {seed}: replica {id} leads epoch {} without acknowledged offset {offset}",
                    record.leader_epoch
                );
            }
            let log_end = replica.log_end();
            replica.epochs.assign(record.leader_epoch, log_end);
            let config = LeaderConfig {
                replica_lag_time_max_ms: 2_000,
                max_in_flight: 4,
                retransmit_ms: 200,
                isr_retry_ms: 300,
            };
            let assignment = Assignment {
                leader_epoch: record.leader_epoch,
                partition_epoch: record.partition_epoch,
                replicas: REPLICAS.to_vec(),
                isr: record.isr.clone(),
            };
            let leader = Leader::new(config, id, &assignment, replica.position(), now);
            replica.role = Role::Leader(leader);
            self.elections += 1;
        } else if record.leader >= 0 {
            let follower = Follower::new(
                record.leader,
                record.leader_epoch,
                replica.session,
                &replica.epochs,
                replica.position(),
                now,
            );
            replica.role = Role::Follower(follower);
        } else {
            replica.role = Role::None;
        }
    }

    fn deliver(&mut self) {
        let now = self.now;
        let (mut due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.net)
            .into_iter()
            .partition(|m| m.0 <= now);
        self.net = later;
        due.sort_by_key(|m| (m.0, m.1));
        for (_, _, from, to, message) in due {
            self.receive(from, to, message);
        }
    }

    fn receive(&mut self, from: i32, to: i32, message: Message) {
        let now = self.now;
        let replica = self.replica(to);
        if !replica.up {
            return;
        }
        match message {
            Message::Push {
                leader_epoch,
                from: start,
                records,
                high_watermark,
            } => {
                let Role::Follower(follower) = &mut replica.role else {
                    return;
                };
                let end = start + records.len() as i64;
                if follower
                    .push(leader_epoch, start, end, high_watermark)
                    .is_ok()
                    && !records.is_empty()
                {
                    for record in records {
                        replica.epochs.assign(record.0, replica.log.len() as i64);
                        replica.log.push(record);
                    }
                    let log_end = replica.log_end();
                    if let Role::Follower(follower) = &mut replica.role {
                        follower.appended(log_end);
                    }
                }
            }
            Message::Ack {
                leader_epoch,
                session,
                log_end,
                durable,
            } => {
                if let Role::Leader(leader) = &mut replica.role {
                    leader.acknowledged(from, leader_epoch, session, log_end, durable, now);
                }
            }
            Message::AskEpochEnd { epoch } => {
                if let Role::Leader(leader) = &replica.role {
                    let leader_epoch = leader.leader_epoch();
                    let (epoch, end) = replica.epochs.end_offset_for(epoch, replica.log_end());
                    self.send(
                        to,
                        from,
                        Message::EpochEnd {
                            leader_epoch,
                            epoch,
                            end,
                        },
                    );
                }
            }
            Message::EpochEnd {
                leader_epoch,
                epoch,
                end,
            } => {
                let epochs = replica.epochs.clone();
                if let Role::Follower(follower) = &mut replica.role
                    && follower.leader_epoch() == leader_epoch
                {
                    follower.epoch_end(&epochs, epoch, end);
                }
            }
        }
    }

    fn produce(&mut self) {
        if !self.rng.chance(self.faults.produce) {
            return;
        }
        let payload = self.next_payload;
        let leader = REPLICAS.iter().copied().find(|&id| {
            let r = &self.replicas[usize::try_from(id).unwrap()];
            r.up && matches!(r.role, Role::Leader(_))
        });
        let Some(id) = leader else {
            return;
        };
        self.next_payload += 1;
        let replica = self.replica(id);
        let Role::Leader(leader) = &replica.role else {
            return;
        };
        let record = (leader.leader_epoch(), payload);
        replica.log.push(record);
        let offset = replica.log_end() - 1;
        let log_end = replica.log_end();
        if let Role::Leader(leader) = &mut replica.role {
            leader.appended(log_end);
        }
        // Several leaders may believe they lead for a moment; only what the
        // real one's high watermark passes is acknowledged.
        self.pending.insert(offset, record);
    }

    fn flush(&mut self, id: i32) {
        let flush = self.rng.chance(self.faults.flush);
        let replica = self.replica(id);
        if !replica.up || !flush || replica.durable == replica.log.len() {
            return;
        }
        replica.durable = replica.log.len();
        let durable = replica.log_end();
        match &mut replica.role {
            Role::Leader(leader) => leader.flushed(durable),
            Role::Follower(follower) => follower.flushed(durable),
            Role::None => {}
        }
    }

    fn tick(&mut self, id: i32) {
        let now = self.now;
        if now % 50 >= STEP_MS {
            return;
        }
        let replica = self.replica(id);
        match &mut replica.role {
            Role::Leader(leader) => leader.tick(now),
            Role::Follower(follower) => follower.tick(&replica.epochs, now, 200),
            Role::None => {}
        }
    }

    fn perform(&mut self, id: i32) {
        loop {
            let now = self.now;
            let replica = self.replica(id);
            if !replica.up {
                return;
            }
            match &mut replica.role {
                Role::Leader(leader) => {
                    let actions = leader.poll();
                    if actions.is_empty() {
                        return;
                    }
                    let leader_epoch = leader.leader_epoch();
                    for action in actions {
                        self.leader_action(id, leader_epoch, action, now);
                    }
                }
                Role::Follower(follower) => {
                    let actions = follower.poll();
                    if actions.is_empty() {
                        return;
                    }
                    for action in actions {
                        self.follower_action(id, action);
                    }
                }
                Role::None => return,
            }
        }
    }

    fn leader_action(&mut self, id: i32, leader_epoch: i32, action: LeaderAction, now: u64) {
        match action {
            LeaderAction::Push {
                to,
                from,
                end,
                high_watermark,
            } => {
                let replica = self.replica(id);
                let (a, b) = (
                    usize::try_from(from).unwrap(),
                    usize::try_from(end).unwrap(),
                );
                let records = replica.log[a..b.min(replica.log.len())].to_vec();
                let sent_end = from + records.len() as i64;
                if let Role::Leader(leader) = &mut replica.role {
                    leader.pushed(to, from, sent_end, now);
                }
                let push = Message::Push {
                    leader_epoch,
                    from,
                    records,
                    high_watermark,
                };
                self.send(id, to, push);
            }
            LeaderAction::HighWatermark(hw) => {
                self.expose(id, hw);
                let acked: Vec<i64> = self.pending.range(..hw).map(|(&o, _)| o).collect();
                let replica = &self.replicas[usize::try_from(id).unwrap()];
                for offset in acked {
                    let record = self.pending.remove(&offset).unwrap();
                    // Acknowledged only if it is what this leader holds there.
                    if replica.log.get(usize::try_from(offset).unwrap()) == Some(&record) {
                        assert_eq!(
                            self.exposed.get(&offset),
                            Some(&record),
                            "seed {}: acknowledged offset {offset} not exposed as written",
                            self.seed
                        );
                        self.acknowledged.insert(offset, record);
                    }
                }
            }
            LeaderAction::AlterIsr {
                isr,
                leader_epoch,
                partition_epoch,
            } => self.alter_isr(id, isr, leader_epoch, partition_epoch),
        }
    }

    fn follower_action(&mut self, id: i32, action: FollowerAction) {
        match action {
            FollowerAction::AskEpochEnd { leader, epoch } => {
                self.send(id, leader, Message::AskEpochEnd { epoch });
            }
            FollowerAction::Truncate { offset } => {
                let replica = self.replica(id);
                let keep = usize::try_from(offset).unwrap();
                replica.log.truncate(keep);
                replica.durable = replica.durable.min(keep);
                replica.epochs.truncate_from(offset);
                replica.high_watermark = replica.high_watermark.min(offset);
                if let Role::Follower(follower) = &mut replica.role {
                    follower.truncated(offset);
                }
            }
            FollowerAction::Acknowledge {
                leader,
                leader_epoch,
                session,
                log_end,
                durable,
            } => self.send(
                id,
                leader,
                Message::Ack {
                    leader_epoch,
                    session,
                    log_end,
                    durable,
                },
            ),
            FollowerAction::Append => {} // done on receipt
            FollowerAction::HighWatermark(hw) => self.expose(id, hw),
            FollowerAction::StartOver { offset } => {
                panic!(
                    "seed {}: start over at {offset}, but the simulated logs keep every record",
                    self.seed
                )
            }
        }
    }

    /// Replica `id` lets consumers read below `hw`: what is there must
    /// never change.
    fn expose(&mut self, id: i32, hw: i64) {
        let seed = self.seed;
        let replica = &mut self.replicas[usize::try_from(id).unwrap()];
        let before = replica.high_watermark;
        replica.high_watermark = replica.high_watermark.max(hw);
        // Below its previous high watermark it was checked already (a
        // truncation never cuts below it; a restart starts from 0).
        for offset in before..hw {
            let here = replica.log[usize::try_from(offset).unwrap()];
            let before = *self.exposed.entry(offset).or_insert(here);
            assert_eq!(
                before, here,
                "seed {seed}: replica {id} exposes {here:?} at {offset}, where {before:?} was read"
            );
        }
    }

    fn heal_and_settle(&mut self) {
        self.faults = CALM;
        for replica in &mut self.replicas {
            if !replica.up {
                replica.restart_at = self.now;
            }
        }
        self.run(15_000);
        let seed = self.seed;
        let leader = self.record.leader;
        if self.record.isr.len() != 3 {
            for r in &self.replicas {
                eprintln!(
                    "replica {} up {} log {} durable {} hw {} seen {:?}\n  role {:?}",
                    r.id,
                    r.up,
                    r.log.len(),
                    r.durable,
                    r.high_watermark,
                    r.seen,
                    r.role
                );
            }
            eprintln!("record {:?} fenced {:?}", self.record, self.fenced);
        }
        assert!(leader >= 0, "seed {seed}: no leader after healing");
        assert_eq!(
            self.record.isr.len(),
            3,
            "seed {seed}: ISR {:?} after healing",
            self.record.isr
        );
        let leader_log = self.replicas[usize::try_from(leader).unwrap()].log.clone();
        for (&offset, record) in &self.acknowledged {
            assert_eq!(
                leader_log.get(usize::try_from(offset).unwrap()),
                Some(record),
                "seed {seed}"
            );
        }
        for replica in &self.replicas {
            assert_eq!(
                replica.log, leader_log,
                "seed {seed}: replica {} differs",
                replica.id
            );
        }
    }
}

/// The epoch cache a log's records rebuild (as on open).
fn epochs_of(log: &[Record]) -> EpochCache {
    let mut epochs = EpochCache::default();
    for (offset, &(epoch, _)) in log.iter().enumerate() {
        epochs.assign(epoch, offset as i64);
    }
    epochs
}

fn simulate(seed: u64, hostile_ms: u64) -> (u64, u64, u64, usize) {
    println!("isr simulation: seed {seed}, {hostile_ms} ms hostile");
    let mut sim = Sim::new(seed);
    sim.run(hostile_ms);
    sim.heal_and_settle();
    println!(
        "  {} crashes, {} elections, {} ISR changes, {} acknowledged of {} produced",
        sim.crashes,
        sim.elections,
        sim.isr_changes,
        sim.acknowledged.len(),
        sim.next_payload - 1
    );
    (
        sim.crashes,
        sim.elections,
        sim.isr_changes,
        sim.acknowledged.len(),
    )
}

#[test]
fn no_acknowledged_record_is_lost_through_crashes_and_leader_changes() {
    let (mut crashes, mut elections, mut changes, mut acknowledged) = (0, 0, 0, 0);
    for seed in 1..=16 {
        let (c, e, i, a) = simulate(seed, 30_000);
        crashes += c;
        elections += e;
        changes += i;
        acknowledged += a;
    }
    assert!(crashes > 50, "crashes: {crashes}");
    assert!(elections > 50, "elections: {elections}");
    assert!(changes > 50, "ISR changes: {changes}");
    assert!(acknowledged > 10_000, "acknowledged: {acknowledged}");
}

/// `ISR_SIM_SEEDS=2000 cargo test --release -p replication isr_many_seeds
/// -- --ignored --nocapture` (seeds from 1000 on).
#[test]
#[ignore = "long: runs by name"]
fn isr_many_seeds() {
    let seeds: u64 = std::env::var("ISR_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    for seed in 1_000..1_000 + seeds {
        simulate(seed, 30_000);
    }
}

/// Seeds that reach the protocol's rarer paths, kept by name: 1007 loses an
/// acknowledged record if the high watermark counts received instead of
/// durable offsets; 1504 exposes a changed record if a follower cuts its
/// log at the leader's end for an earlier epoch without looking at its own
/// (KIP-279).
#[test]
fn seeds_that_caught_broken_variants_still_pass() {
    for seed in [1007, 1504] {
        simulate(seed, 30_000);
    }
}
