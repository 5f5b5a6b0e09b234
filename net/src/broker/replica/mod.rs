//! Data replication on a cluster member: the ISR protocol's state machines
//! (`replication::isr`, sans-IO) driven for the partitions this shard owns
//! that have more than one replica.
//!
//! Per partition the shard holds a role, from the metadata:
//! 1. The leader ([`isr::Leader`]) is told what the shard stages
//!    ([`Shard::replica_appended`]) and what its log made durable (a
//!    watcher on the log end), and pushes batches to the followers as they
//!    are staged, over this shard's data link to each peer (`link`).
//!    Followers' acknowledgements move the high watermark, which bounds
//!    reads and answers acks=all appends waiting for it.
//! 2. A follower ([`isr::Follower`]) first cuts its log to the leader's
//!    history (asking the leader where its latest epoch ended), then
//!    appends the pushes that start at its log end through the engine's
//!    replica path, acknowledging its log end and durable offset.
//! 3. A tick retransmits lost pushes and questions, and moves lagging
//!    followers out of the ISR (AlterIsr through the controller).
//!
//! A role ends when the metadata says so (a new leader epoch, the
//! partition gone); the acks=all appends waiting on a leader that lost
//! its role answer NOT_LEADER_OR_FOLLOWER.

mod drive;
pub(crate) mod link;
mod throttle;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use engine::{Log, TopicPartition};
use futures::channel::oneshot;
use replication::isr::{self, Assignment, LeaderConfig, LogPosition};
use replication::metadata::{ClusterMetadata, PartitionState};

use super::Shard;
use super::partition_call::PartitionError;

/// How often roles tick (retransmits, ISR shrink and expand).
const TICK: Duration = Duration::from_millis(50);
/// A follower asks the leader again after this long without an answer.
const ASK_RETRY_MS: u64 = 500;

/// The answer an acks=all append waits for: a Kafka error code.
pub(crate) type Replicated = oneshot::Receiver<i16>;

/// A partition's role on this shard.
#[derive(Debug)]
enum Role {
    Leading(Leading),
    Following(Following),
}

#[derive(Debug)]
struct Leading {
    state: isr::Leader,
    /// acks=all appends waiting for the high watermark: (end, answer).
    waiting: Vec<(i64, oneshot::Sender<i16>)>,
    /// The log start the followers were last told, and when (ms).
    told_log_start: (i64, u64),
}

#[derive(Debug)]
struct Following {
    state: isr::Follower,
    /// The leader's log start, as it last told it, until this log reaches
    /// it and starts there too.
    log_start: Option<i64>,
}

#[derive(Debug)]
struct Entry {
    /// Unique per role, so a watcher of a role that ended stops.
    id: u64,
    role: Role,
}

/// This shard's replication state.
#[derive(Debug)]
pub struct Replicas {
    roles: RefCell<HashMap<TopicPartition, Entry>>,
    next_id: Cell<u64>,
    started: Instant,
    /// This process's life as a follower (the wall clock at its start, in
    /// µs): it grows with every restart, so a leader tells a restarted
    /// follower (whose log may have lost what it had not made durable)
    /// from the previous one. The broker epoch would not do: a restarted
    /// broker follows from the metadata it replays, before its new
    /// registration is there, so at its previous life's epoch.
    session: u64,
    links: link::Links,
    /// Catch-up pushes (to followers outside the ISR) go at this pace.
    throttle: throttle::Throttle,
    /// The shard itself, for the tasks its roles spawn.
    shard: RefCell<std::rc::Weak<Shard>>,
}

impl Replicas {
    pub fn new() -> Replicas {
        Replicas {
            roles: RefCell::new(HashMap::new()),
            next_id: Cell::new(1),
            started: Instant::now(),
            session: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            links: link::Links::default(),
            throttle: throttle::Throttle::default(),
            shard: RefCell::new(std::rc::Weak::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for Replicas {
    fn default() -> Replicas {
        Replicas::new()
    }
}

/// How often a leader tells its followers its log start again (one
/// restarted meanwhile missed it).
const LOG_START_RETELL_MS: u64 = 10_000;

/// A leader's log start to tell its followers, if it moved since it last
/// told them (or a while ago): (leader epoch, log start, followers).
fn log_start_news(leading: &mut Leading, log: &Log, now: u64) -> Option<(i32, i64, Vec<i32>)> {
    let start = log.log_start_offset().get();
    let (told, at) = leading.told_log_start;
    let due = start > told || (start > 0 && now.saturating_sub(at) >= LOG_START_RETELL_MS);
    if !due {
        return None;
    }
    leading.told_log_start = (start, now);
    let followers = leading.state.followers().collect();
    Some((leading.state.leader_epoch(), start, followers))
}

/// Whether the ISR protocol runs for a partition with this record: more
/// than one replica (a partition alone keeps today's path: what is durable
/// is readable).
fn replicated(record: &PartitionState) -> bool {
    record.replicas.len() > 1
}

/// The epochs a follower checks its log against (KIP-101): the log's
/// own, or, for a log with records but no epoch (written while its broker
/// ran alone), epoch 0 from its log start, as a leader answers for such a
/// log (`Shard::epoch_end`). Unchecked, such records would stay even where
/// the leader never had them; checked, the leader's answer cuts them.
fn follower_epochs(log: &Log) -> isr::EpochCache {
    let mut epochs = log.epochs();
    let start = log.log_start_offset().get();
    if epochs.latest_epoch().is_none() && log.next_offset().get() > start {
        epochs.assign(0, start);
    }
    epochs
}

fn position(log: &Log) -> LogPosition {
    LogPosition {
        log_end: log.next_offset().get(),
        durable: log.log_end_offset().get(),
        high_watermark: log.high_watermark().get(),
    }
}

impl Shard {
    /// Brings the role of `tp` (owned and hosted here) in line with its
    /// record in `metadata`. Called by reconciliation after the log exists
    /// (and, leading, took its epoch).
    pub(super) fn replica_role(&self, metadata: &ClusterMetadata, tp: &TopicPartition) {
        let me = self.node.node_id;
        let record = metadata
            .topic(&tp.topic)
            .and_then(|t| metadata.partition(t.topic_id, tp.partition))
            .filter(|r| replicated(r) && r.replicas.contains(&me));
        let Some(record) = record else {
            let had_role = self.replicas.roles.borrow_mut().remove(tp).is_some();
            // Left the only replica (a reassignment to one broker): its
            // own log end is what consumers may read, as for any partition
            // of one replica.
            if had_role && let Some(log) = self.partitions.get(tp) {
                log.set_high_watermark(None);
            }
            return;
        };
        let Some(log) = self.partitions.get(tp) else {
            return;
        };
        let now = self.replicas.now_ms();
        let started = {
            let mut roles = self.replicas.roles.borrow_mut();
            let current = roles.get_mut(tp).map(|e| &mut e.role);
            match current {
                Some(Role::Leading(l))
                    if record.leader == me && l.state.leader_epoch() == record.leader_epoch =>
                {
                    l.state.metadata_changed(
                        record.partition_epoch,
                        &record.replicas,
                        &record.isr,
                        now,
                    );
                    false
                }
                Some(Role::Following(f))
                    if record.leader == f.state.leader()
                        && record.leader_epoch == f.state.leader_epoch() =>
                {
                    false
                }
                _ => {
                    let role = if record.leader == me {
                        self.lead(record, &log, now)
                    } else if record.leader >= 0 {
                        self.follow(record, &log, now)
                    } else {
                        roles.remove(tp);
                        return;
                    };
                    let id = self.replicas.next_id.get();
                    self.replicas.next_id.set(id + 1);
                    roles.insert(tp.clone(), Entry { id, role });
                    true
                }
            }
        };
        if started {
            self.start_watcher(tp.clone());
        }
        self.drive(tp);
    }

    fn lead(&self, record: &PartitionState, log: &Log, now: u64) -> Role {
        let assignment = Assignment {
            leader_epoch: record.leader_epoch,
            partition_epoch: record.partition_epoch,
            replicas: record.replicas.clone(),
            isr: record.isr.clone(),
        };
        let at = position(log);
        let mut config = LeaderConfig::default();
        if let Some(cluster) = &self.settings.cluster {
            config.replica_lag_time_max_ms =
                u64::try_from(cluster.replica_lag_time_max.as_millis()).unwrap_or(u64::MAX);
        }
        let state = isr::Leader::new(config, self.node.node_id, &assignment, at, now);
        log.set_high_watermark(Some(engine::Offset(state.high_watermark())));
        tracing::info!(partition = ?log.dir().file_name(), epoch = record.leader_epoch,
            isr = ?record.isr, high_watermark = state.high_watermark(), "leading");
        Role::Leading(Leading {
            state,
            waiting: Vec::new(),
            told_log_start: (0, now),
        })
    }

    fn follow(&self, record: &PartitionState, log: &Log, now: u64) -> Role {
        let session = self.replicas.session;
        let at = position(log);
        log.set_high_watermark(Some(engine::Offset(at.high_watermark.min(at.durable))));
        let epochs = follower_epochs(log);
        let state = isr::Follower::new(
            record.leader,
            record.leader_epoch,
            session,
            &epochs,
            at,
            now,
        );
        tracing::info!(partition = ?log.dir().file_name(), leader = record.leader,
            epoch = record.leader_epoch, log_end = at.log_end,
            own_latest_epoch = ?epochs.latest_epoch(), "following");
        Role::Following(Following {
            state,
            log_start: None,
        })
    }

    /// Removes the roles of partitions no longer owned and hosted here.
    pub(super) fn retain_replica_roles(&self, keep: impl Fn(&TopicPartition) -> bool) {
        self.replicas.roles.borrow_mut().retain(|tp, _| keep(tp));
    }

    /// Before an acks=all append on a replicated partition: its ISR must
    /// hold `min.insync.replicas` (NOT_ENOUGH_REPLICAS otherwise). A
    /// replicated partition this shard does not lead by the protocol (yet)
    /// is NOT_LEADER_OR_FOLLOWER; a partition of one replica has nothing
    /// to check (`false`).
    pub(super) fn check_in_sync(
        &self,
        tp: &TopicPartition,
        log: &Log,
        acks: i16,
    ) -> Result<bool, PartitionError> {
        let roles = self.replicas.roles.borrow();
        let Some(entry) = roles.get(tp) else {
            // Replicated, but its role is not taken yet (reconciliation
            // is on its way): nothing may be acknowledged unreplicated.
            let replicated = self
                .in_partition_record(&tp.topic, tp.partition, |p| p.is_some_and(replicated))
                .unwrap_or(false);
            return if replicated {
                Err(PartitionError::NotLeader)
            } else {
                Ok(false)
            };
        };
        let Role::Leading(leading) = &entry.role else {
            return Err(PartitionError::NotLeader);
        };
        let required = log.min_insync_replicas();
        let in_sync = u32::try_from(leading.state.isr().len()).unwrap_or(u32::MAX);
        if acks == -1 && in_sync < required {
            return Err(PartitionError::NotEnoughReplicas { required, in_sync });
        }
        Ok(true)
    }

    /// An append staged on the leader of `tp` up to `end`: pushed to the
    /// followers now; with `wait` (acks=all), the returned answer comes
    /// once the high watermark passes `end`.
    pub(super) fn replica_appended(
        &self,
        tp: &TopicPartition,
        log: &Log,
        end: i64,
        wait: bool,
    ) -> Option<Replicated> {
        let answer = {
            let mut roles = self.replicas.roles.borrow_mut();
            let Some(Entry {
                role: Role::Leading(leading),
                ..
            }) = roles.get_mut(tp)
            else {
                return None;
            };
            leading.state.appended(log.next_offset().get());
            wait.then(|| {
                let (tx, rx) = oneshot::channel();
                if end <= leading.state.high_watermark() {
                    // Covered already: a retried batch answered with the
                    // offsets it was stored at first. The high watermark
                    // may never move again to answer it.
                    let _ = tx.send(drive::in_sync_code(leading, log.min_insync_replicas()));
                } else {
                    leading.waiting.push((end, tx));
                }
                rx
            })
        };
        self.drive(tp);
        answer
    }

    /// After a broker-written append on `tp` (a coordinator's records, a
    /// transaction marker) durable here up to `end`: waits, as acks=all
    /// does, until the in-sync replicas hold it too. At once for a
    /// partition of one replica. A Kafka error code when this broker does
    /// not lead it by the protocol (leadership moved meanwhile, or its
    /// role is not set up yet: NOT_LEADER_OR_FOLLOWER) or the ISR fell
    /// below `min.insync.replicas`.
    pub(super) async fn replicated_to_isr(
        &self,
        tp: &TopicPartition,
        log: &Log,
        end: i64,
    ) -> Result<(), i16> {
        use crate::handlers::errors::{NONE, NOT_LEADER_OR_FOLLOWER};
        let replicated_here = self
            .in_partition_record(&tp.topic, tp.partition, |p| p.is_some_and(replicated))
            .unwrap_or(false);
        if !replicated_here {
            return Ok(());
        }
        let Some(answer) = self.replica_appended(tp, log, end, true) else {
            return Err(NOT_LEADER_OR_FOLLOWER);
        };
        match answer.await {
            Ok(NONE) => Ok(()),
            Ok(code) => Err(code),
            Err(_) => Err(NOT_LEADER_OR_FOLLOWER),
        }
    }

    /// The shard's own handle, for the tasks it spawns.
    pub(crate) fn me(&self) -> Option<std::rc::Rc<Shard>> {
        self.replicas.shard.borrow().upgrade()
    }

    /// Starts replication on a cluster member's shard: the task that ticks
    /// every role.
    pub(super) fn start_replication(self: &std::rc::Rc<Self>) {
        *self.replicas.shard.borrow_mut() = std::rc::Rc::downgrade(self);
        if let Some(cluster) = &self.settings.cluster {
            let shards = u64::from(self.shards()).max(1);
            let rate = cluster.leader_replication_throttled_rate;
            // Split over the shards; a share never rounds down to no limit.
            self.replicas
                .throttle
                .set_rate(if rate == 0 { 0 } else { (rate / shards).max(1) });
        }
        let shard = std::rc::Rc::downgrade(self);
        crate::server::spawn(async move {
            loop {
                engine::rt::sleep(TICK).await;
                let Some(shard) = shard.upgrade() else {
                    return;
                };
                let now = shard.replicas.now_ms();
                let mut log_starts = Vec::new();
                let tps: Vec<TopicPartition> = {
                    let mut roles = shard.replicas.roles.borrow_mut();
                    for (tp, entry) in roles.iter_mut() {
                        match &mut entry.role {
                            Role::Leading(l) => {
                                l.state.tick(now);
                                if let Some(log) = shard.partitions.get(tp)
                                    && let Some(told) = log_start_news(l, &log, now)
                                {
                                    log_starts.push((tp.clone(), told));
                                }
                            }
                            Role::Following(f) => {
                                if let Some(log) = shard.partitions.get(tp) {
                                    f.state.tick(&follower_epochs(&log), now, ASK_RETRY_MS);
                                }
                            }
                        }
                    }
                    roles.keys().cloned().collect()
                };
                for (tp, (leader_epoch, offset, followers)) in log_starts {
                    shard.tell_log_start(&tp, leader_epoch, offset, &followers);
                }
                for tp in &tps {
                    shard.drive(tp);
                }
            }
        });
    }

    /// Follows the log end of `tp` while its role lasts: what became
    /// durable here is told to the role.
    fn start_watcher(&self, tp: TopicPartition) {
        let Some(shard) = self.me() else {
            return;
        };
        let Some(id) = self.replicas.roles.borrow().get(&tp).map(|e| e.id) else {
            return;
        };
        crate::server::spawn(async move {
            loop {
                let Some(log) = shard.partitions.get(&tp) else {
                    // Being truncated: back when it is.
                    engine::rt::sleep(Duration::from_millis(5)).await;
                    if shard.replicas.roles.borrow().get(&tp).map(|e| e.id) != Some(id) {
                        return;
                    }
                    continue;
                };
                let watch = log.end_watch();
                let mut moved = std::pin::pin!(watch.moved());
                moved.as_mut().enable();
                let durable = log.log_end_offset().get();
                let staged_end = log.next_offset().get();
                drop(log);
                {
                    let mut roles = shard.replicas.roles.borrow_mut();
                    match roles.get_mut(&tp) {
                        Some(e) if e.id == id => match &mut e.role {
                            Role::Leading(l) => {
                                // Appends not told (markers, coordinators').
                                l.state.appended(staged_end);
                                l.state.flushed(durable);
                            }
                            Role::Following(f) => f.state.flushed(durable),
                        },
                        _ => return,
                    }
                }
                shard.drive(&tp);
                moved.await;
            }
        });
    }
}
