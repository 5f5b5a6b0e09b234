//! The controller: what the quorum's leader decides (Kafka's KRaft
//! controller). Sans-IO and without a clock of its own: every decision takes
//! the metadata state it is decided against and the driver's time in
//! milliseconds, and returns the records to append. Applying them is the
//! quorum node's job, in log order, on every voter alike.

use std::collections::{BTreeMap, BTreeSet};

use crate::metadata::{
    BrokerRegistration, ClusterMetadata, Command, Endpoint, MetadataError, MetadataRecord,
    PartitionState, TopicId,
};

/// No leader (every in-sync replica is fenced).
pub const NO_LEADER: i32 = -1;

/// The controller's settings (Kafka's names in the comments).
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub session_timeout_ms: u64,
    /// `default.replication.factor`: for topics created without one.
    pub default_replication_factor: i16,
    /// `auto.leader.rebalance.enable`: leadership goes back to preferred
    /// replicas (the first of each partition's replicas) by itself.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in ms.
    pub leader_imbalance_check_interval_ms: u64,
    /// `leader.imbalance.per.broker.percentage`: a broker's share of its
    /// preferred partitions led by others above which they move back.
    pub leader_imbalance_per_broker_percentage: u32,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            session_timeout_ms: 9_000,
            default_replication_factor: 1,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 300_000,
            leader_imbalance_per_broker_percentage: 10,
        }
    }
}

/// What brokers and admin clients ask the controller.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum ControllerRequest {
    /// A topic admin command; created partitions get replicas on the
    /// unfenced brokers (CreatePartitions: as many as partition 0 has).
    Admin { command: Command, topic_id: TopicId },
    /// BrokerRegistration: a starting broker joins, fenced.
    RegisterBroker {
        broker_id: i32,
        incarnation: u64,
        endpoints: Vec<Endpoint>,
    },
    /// BrokerHeartbeat: alive; `caught_up` once it applied the metadata
    /// log past its registration (then it is unfenced); `want_fence` at
    /// controlled shutdown (its leaderships move first).
    Heartbeat {
        broker_id: i32,
        broker_epoch: u64,
        caught_up: bool,
        want_fence: bool,
    },
    /// AlterPartition: a partition's leader shrinks or grows its ISR.
    AlterIsr {
        broker_id: i32,
        broker_epoch: u64,
        topic_id: TopicId,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// ElectLeaders: each partition named gets its preferred replica (the
    /// first of its replicas) as leader if that replica is in sync and
    /// unfenced; with `unclean`, each partition without a leader gets its
    /// first unfenced replica, in sync or not (what it lacks is lost).
    ElectLeaders {
        unclean: bool,
        partitions: Vec<(TopicId, i32)>,
    },
    /// [`Admin`](Self::Admin) whose created partitions get these replica
    /// lists, one per new partition in order (CreateTopics and
    /// CreatePartitions with explicit assignments).
    AdminAssigned {
        command: Command,
        topic_id: TopicId,
        assignments: Vec<Vec<i32>>,
    },
    /// AlterPartitionReassignments, one partition: move its replicas to
    /// `target` (KIP-455: the new ones are added and catch up, the old ones
    /// are removed once every target replica is in sync), or with `None`
    /// cancel the reassignment in progress (back to the replicas it
    /// started from). Without `allow_replication_factor_change` the target
    /// must have as many replicas as the partition.
    Reassign {
        topic_id: TopicId,
        partition: i32,
        target: Option<Vec<i32>>,
        allow_replication_factor_change: bool,
    },
}

/// Why the controller refuses a request; each maps to a Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Refused(#[from] MetadataError),
    /// NOT_CONTROLLER (41): this voter does not lead the quorum.
    #[error("not the controller (leader: {leader:?})")]
    NotController { leader: Option<u64> },
    /// INVALID_REPLICATION_FACTOR (38)
    #[error("replication factor {requested} with {available} unfenced brokers")]
    InvalidReplicationFactor { requested: i16, available: usize },
    /// STALE_BROKER_EPOCH (77): a request from a previous life of the broker.
    #[error("broker {broker_id}: stale or unknown broker epoch")]
    StaleBrokerEpoch { broker_id: i32 },
    /// DUPLICATE_BROKER_REGISTRATION (101): another live process has the id.
    #[error("broker {broker_id} is registered by another live process")]
    DuplicateBrokerRegistration { broker_id: i32 },
    /// NOT_LEADER_OR_FOLLOWER (6): AlterPartition from a broker that does
    /// not lead the partition.
    #[error("broker {broker_id} does not lead the partition")]
    NotLeader { broker_id: i32 },
    /// FENCED_LEADER_EPOCH (74)
    #[error("leader epoch {requested} is not the partition's {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    /// INVALID_UPDATE_VERSION (96): the partition changed since.
    #[error("partition epoch {requested} is not the partition's {current}")]
    InvalidUpdateVersion { requested: i32, current: i32 },
    /// INVALID_REPLICA_ASSIGNMENT (39): an explicit assignment the
    /// controller cannot follow.
    #[error("invalid replica assignment: {reason}")]
    InvalidReplicaAssignment { reason: String },
    /// INELIGIBLE_REPLICA (107): an ISR that names a fenced broker or a
    /// non-replica, or leaves the leader out.
    #[error("invalid ISR {isr:?}")]
    IneligibleReplica { isr: Vec<i32> },
    /// NO_REASSIGNMENT_IN_PROGRESS (85): a cancellation with nothing to
    /// cancel.
    #[error("no reassignment in progress")]
    NoReassignmentInProgress,
    /// INVALID_REPLICATION_FACTOR (38): a reassignment that changes the
    /// replication factor while the client does not allow it.
    #[error("the reassignment changes the replication factor from {from} to {to}")]
    ReplicationFactorChange { from: usize, to: usize },
}

/// The leader's controller: decides requests and notices silent brokers.
#[derive(Debug)]
pub struct Controller {
    config: ControllerConfig,
    /// When each broker last heartbeated (the driver's ms). Held by the
    /// leader only, not replicated: a new leader starts every broker's
    /// session afresh, as Kafka's controller does.
    last_heartbeat: BTreeMap<i32, u64>,
    /// When leadership imbalance was last checked.
    balance_checked_ms: u64,
    /// The time of the last session check.
    expired_at_ms: u64,
}

impl Controller {
    pub fn new(config: ControllerConfig) -> Self {
        Controller {
            config,
            last_heartbeat: BTreeMap::new(),
            balance_checked_ms: 0,
            expired_at_ms: 0,
        }
    }

    /// This voter became the leader at `now_ms`: every registered broker's
    /// session starts now, and the first imbalance check is an interval
    /// away.
    pub fn elected(&mut self, state: &ClusterMetadata, now_ms: u64) {
        self.last_heartbeat = state.brokers().map(|b| (b.broker_id, now_ms)).collect();
        self.balance_checked_ms = now_ms;
        self.expired_at_ms = now_ms;
    }

    /// The records `request` makes, decided against `state`: the committed
    /// metadata plus every record this leader appended and not yet
    /// committed (records of one request apply in order).
    pub fn decide(
        &mut self,
        state: &ClusterMetadata,
        request: ControllerRequest,
        now_ms: u64,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        match request {
            ControllerRequest::Admin { command, topic_id } => {
                self.admin(state, command, topic_id, None)
            }
            ControllerRequest::AdminAssigned {
                command,
                topic_id,
                assignments,
            } => self.admin(state, command, topic_id, Some(assignments)),
            ControllerRequest::RegisterBroker {
                broker_id,
                incarnation,
                endpoints,
            } => {
                if let Some(current) = state.broker(broker_id)
                    && current.incarnation != incarnation
                    && !current.fenced
                    && self.alive(broker_id, now_ms)
                {
                    return Err(ControllerError::DuplicateBrokerRegistration { broker_id });
                }
                self.last_heartbeat.insert(broker_id, now_ms);
                if let Some(current) = state.broker(broker_id)
                    && current.incarnation == incarnation
                    && current.endpoints == endpoints
                {
                    // Asked again while it replays the log up to its
                    // registration: registered already.
                    return Ok(Vec::new());
                }
                // A restarted broker's previous life leads nothing from now.
                let mut records = match state.broker(broker_id) {
                    Some(previous) if !previous.fenced => fence(state, previous),
                    _ => Vec::new(),
                };
                records.push(MetadataRecord::BrokerRegistered {
                    broker_id,
                    incarnation,
                    endpoints,
                });
                Ok(records)
            }
            ControllerRequest::Heartbeat {
                broker_id,
                broker_epoch,
                caught_up,
                want_fence,
            } => {
                let broker = current_broker(state, broker_id, broker_epoch)?;
                self.last_heartbeat.insert(broker_id, now_ms);
                Ok(match (broker.fenced, caught_up && !want_fence) {
                    (true, true) => unfence(state, broker),
                    (false, false) if want_fence => fence(state, broker),
                    _ => Vec::new(),
                })
            }
            ControllerRequest::AlterIsr {
                broker_id,
                broker_epoch,
                topic_id,
                partition,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                current_broker(state, broker_id, broker_epoch)?;
                alter_isr(
                    state,
                    broker_id,
                    topic_id,
                    partition,
                    (leader_epoch, partition_epoch),
                    isr,
                )
            }
            ControllerRequest::ElectLeaders {
                unclean,
                partitions,
            } => Ok(elect(state, unclean, partitions)),
            ControllerRequest::Reassign {
                topic_id,
                partition,
                target,
                allow_replication_factor_change,
            } => {
                let current = state.partition(topic_id, partition).ok_or(
                    MetadataError::UnknownPartition {
                        topic_id,
                        partition,
                    },
                )?;
                let next = match target {
                    Some(target) => {
                        reassigned(state, current, target, allow_replication_factor_change)?
                    }
                    None => cancelled(state, current)?,
                };
                Ok(vec![partition_record(topic_id, partition, next)])
            }
        }
    }

    /// Automatic preferred-leader election (Kafka's auto leader
    /// rebalance): once per check interval, for every broker that leads
    /// too few of the partitions it is the preferred replica of, the
    /// records that give them back to it.
    pub fn rebalance(&mut self, state: &ClusterMetadata, now_ms: u64) -> Vec<MetadataRecord> {
        if !self.config.auto_leader_rebalance
            || now_ms.saturating_sub(self.balance_checked_ms)
                < self.config.leader_imbalance_check_interval_ms
        {
            return Vec::new();
        }
        self.balance_checked_ms = now_ms;
        // Per preferred broker: its partitions, and those led by another.
        let mut preferred: BTreeMap<i32, (u64, Vec<(TopicId, i32)>)> = BTreeMap::new();
        for (topic_id, partition, current) in state.partitions() {
            let Some(&first) = current.replicas.first() else {
                continue;
            };
            let entry = preferred.entry(first).or_default();
            entry.0 += 1;
            if current.leader != first {
                entry.1.push((topic_id, partition));
            }
        }
        let percentage = u64::from(self.config.leader_imbalance_per_broker_percentage);
        let mut records = Vec::new();
        for (total, misled) in preferred.into_values() {
            if (misled.len() as u64) * 100 <= total * percentage {
                continue;
            }
            for (topic_id, partition) in misled {
                if let Some(current) = state.partition(topic_id, partition)
                    && let Some(leader) = preferred_leader(state, current)
                {
                    records.push(elected(topic_id, partition, current, leader));
                }
            }
        }
        records
    }

    /// The records that fence every unfenced broker whose session expired
    /// by `now_ms` (its leaderships move to other in-sync replicas).
    pub fn expire(&mut self, state: &ClusterMetadata, now_ms: u64) -> Vec<MetadataRecord> {
        // Checked every tick; a gap of half a session means this voter did
        // not run (a process frozen, a paused machine): the brokers' silence
        // meanwhile says nothing, so every session starts again now rather
        // than every broker being fenced at once.
        let gap = now_ms.saturating_sub(self.expired_at_ms);
        self.expired_at_ms = now_ms;
        if gap > self.config.session_timeout_ms / 2 {
            for at in self.last_heartbeat.values_mut() {
                *at = (*at).max(now_ms);
            }
            return Vec::new();
        }
        let expired: Vec<i32> = state
            .brokers()
            .filter(|b| !b.fenced && !self.alive(b.broker_id, now_ms))
            .map(|b| b.broker_id)
            .collect();
        if expired.is_empty() {
            return Vec::new();
        }
        // Each broker's records are decided against the ones before.
        let mut view = state.clone();
        let mut records = Vec::new();
        for broker_id in expired {
            let Some(broker) = view.broker(broker_id).cloned() else {
                continue;
            };
            let fenced = fence(&view, &broker);
            for record in &fenced {
                if let Err(e) = view.apply(record.clone()) {
                    tracing::error!(%e, "controller: a fencing record does not apply");
                }
            }
            records.extend(fenced);
        }
        records
    }

    fn alive(&self, broker_id: i32, now_ms: u64) -> bool {
        self.last_heartbeat
            .get(&broker_id)
            .is_some_and(|&at| now_ms.saturating_sub(at) <= self.config.session_timeout_ms)
    }

    fn admin(
        &self,
        state: &ClusterMetadata,
        command: Command,
        topic_id: TopicId,
        assignments: Option<Vec<Vec<i32>>>,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let (new_partitions, replication_factor) = match &command {
            Command::CreateTopic {
                partitions,
                name,
                replication_factor,
                ..
            } => (Some((name.clone(), 0..*partitions)), *replication_factor),
            Command::CreatePartitions { name, total } => {
                let current = state.topic(name).map_or(0, |t| t.partitions);
                (Some((name.clone(), current..*total)), -1)
            }
            _ => (None, -1),
        };
        let record = state.decide(command, topic_id)?;
        let mut records = vec![record];
        let Some((name, range)) = new_partitions else {
            return Ok(records);
        };
        let live: Vec<i32> = state
            .brokers()
            .filter(|b| !b.fenced)
            .map(|b| b.broker_id)
            .collect();
        let topic_id = state.topic(&name).map_or(topic_id, |t| t.topic_id);
        if let Some(assignments) = assignments {
            let width = state.partition(topic_id, 0).map(|p| p.target().len());
            check_assignments(state, &assignments, range.len(), width)?;
            for (partition, replicas) in range.zip(assignments) {
                let isr: Vec<i32> = replicas
                    .iter()
                    .copied()
                    .filter(|&r| is_unfenced(state, r))
                    .collect();
                records.push(MetadataRecord::PartitionChanged {
                    topic_id,
                    partition,
                    leader: isr.first().copied().unwrap_or(NO_LEADER),
                    isr,
                    replicas,
                    leader_epoch: 0,
                    adding: Vec::new(),
                    removing: Vec::new(),
                });
            }
            return Ok(records);
        }
        let factor = match replication_factor {
            -1 => state
                .partition(topic_id, 0)
                .map_or(self.config.default_replication_factor, |p| {
                    i16::try_from(p.target().len()).unwrap_or(i16::MAX)
                }),
            factor => factor,
        };
        let count = usize::try_from(factor).unwrap_or(0);
        if count == 0 || count > live.len() {
            return Err(ControllerError::InvalidReplicationFactor {
                requested: factor,
                available: live.len(),
            });
        }
        // Replicas on a ring of the unfenced brokers, each partition one
        // step further, from a start the topic id picks (spreads leaders).
        let start = usize::from(topic_id.0[15]);
        for partition in range {
            let first = start + usize::try_from(partition).unwrap_or(0);
            let replicas: Vec<i32> = (0..count)
                .filter_map(|k| live.get((first + k) % live.len()).copied())
                .collect();
            records.push(MetadataRecord::PartitionChanged {
                topic_id,
                partition,
                leader: replicas.first().copied().unwrap_or(NO_LEADER),
                isr: replicas.clone(),
                replicas,
                leader_epoch: 0,
                adding: Vec::new(),
                removing: Vec::new(),
            });
        }
        Ok(records)
    }
}

/// An explicit assignment of `count` new partitions: one replica list
/// each, all as long (as the topic's existing partitions, `width`, if
/// any), each naming registered brokers once and at least one unfenced
/// (the leader: the first unfenced; the ISR: the unfenced ones).
fn check_assignments(
    state: &ClusterMetadata,
    assignments: &[Vec<i32>],
    count: usize,
    width: Option<usize>,
) -> Result<(), ControllerError> {
    let refuse = |reason: String| Err(ControllerError::InvalidReplicaAssignment { reason });
    if assignments.len() != count {
        return refuse(format!(
            "{} replica lists for {count} new partitions",
            assignments.len()
        ));
    }
    let width = width.or_else(|| assignments.first().map(Vec::len));
    for (n, replicas) in assignments.iter().enumerate() {
        if let Err(reason) = check_replica_list(state, replicas) {
            return refuse(format!("partition {n}: {reason}"));
        }
        if Some(replicas.len()) != width {
            return refuse(format!(
                "partition {n}: {} replicas, the others {}",
                replicas.len(),
                width.unwrap_or(0)
            ));
        }
    }
    Ok(())
}

/// A replica list a partition may be given: registered brokers, each
/// once, at least one unfenced.
fn check_replica_list(state: &ClusterMetadata, replicas: &[i32]) -> Result<(), String> {
    let unique: BTreeSet<i32> = replicas.iter().copied().collect();
    if replicas.is_empty() || unique.len() != replicas.len() {
        return Err(format!("{replicas:?} is empty or names a broker twice"));
    }
    if let Some(unknown) = replicas.iter().find(|&&r| state.broker(r).is_none()) {
        return Err(format!("broker {unknown} is not registered"));
    }
    if !replicas.iter().any(|&r| is_unfenced(state, r)) {
        return Err(format!("every broker of {replicas:?} is fenced"));
    }
    Ok(())
}

/// The partition as a reassignment to `target` starts it, from the
/// replicas it had before any reassignment in progress (which the new one
/// replaces): the target's replicas then the ones to remove (so the
/// preferred replica is the target's first). When every target replica is
/// in sync already, as it ends ([`completed`]).
fn reassigned(
    state: &ClusterMetadata,
    current: &PartitionState,
    target: Vec<i32>,
    allow_replication_factor_change: bool,
) -> Result<PartitionState, ControllerError> {
    check_replica_list(state, &target)
        .map_err(|reason| ControllerError::InvalidReplicaAssignment { reason })?;
    let original = current.original();
    if !allow_replication_factor_change && target.len() != original.len() {
        return Err(ControllerError::ReplicationFactorChange {
            from: original.len(),
            to: target.len(),
        });
    }
    let mut next = current.clone();
    next.removing = original
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    next.adding = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    next.replicas = target;
    next.replicas.extend(next.removing.iter().copied());
    let next = within_replicas(state, next)?;
    Ok(completed(state, &next).unwrap_or(next))
}

/// The partition once its reassignment is done, if every target replica
/// is in sync: the target alone, the ISR within it, and a new leader (at
/// the next leader epoch) if the current one is not in it.
fn completed(state: &ClusterMetadata, next: &PartitionState) -> Option<PartitionState> {
    let target = next.target();
    if !target.iter().all(|r| next.isr.contains(r)) {
        return None;
    }
    let mut done = next.clone();
    done.isr.retain(|r| target.contains(r));
    done.replicas = target;
    done.adding.clear();
    done.removing.clear();
    Some(settled(state, done))
}

/// The partition as a cancelled reassignment leaves it: its original
/// replicas.
fn cancelled(
    state: &ClusterMetadata,
    current: &PartitionState,
) -> Result<PartitionState, ControllerError> {
    if !current.reassigning() {
        return Err(ControllerError::NoReassignmentInProgress);
    }
    let mut next = current.clone();
    next.replicas = current.original();
    next.adding.clear();
    next.removing.clear();
    within_replicas(state, next)
}

/// `next` (whose replicas changed) with its ISR within its replicas and a
/// leader among them; refused when none of them is in sync (a replica
/// being added that took over is all that has the data).
fn within_replicas(
    state: &ClusterMetadata,
    mut next: PartitionState,
) -> Result<PartitionState, ControllerError> {
    next.isr.retain(|r| next.replicas.contains(r));
    if next.isr.is_empty() {
        return Err(ControllerError::InvalidReplicaAssignment {
            reason: format!(
                "none of the replicas {:?} is in sync: the one that is must stay",
                next.replicas
            ),
        });
    }
    Ok(settled(state, next))
}

/// `next` with a leader among its replicas: the current one if it is
/// one, else the first in-sync unfenced replica (or none) at the next
/// leader epoch.
fn settled(state: &ClusterMetadata, mut next: PartitionState) -> PartitionState {
    if !next.replicas.contains(&next.leader) {
        next.leader = next
            .replicas
            .iter()
            .copied()
            .find(|&r| next.isr.contains(&r) && is_unfenced(state, r))
            .unwrap_or(NO_LEADER);
        next.leader_epoch = next.leader_epoch.saturating_add(1);
    }
    next
}

/// The record that gives a partition the state `next` (its partition
/// epoch is the metadata's to bump).
fn partition_record(topic_id: TopicId, partition: i32, next: PartitionState) -> MetadataRecord {
    MetadataRecord::PartitionChanged {
        topic_id,
        partition,
        replicas: next.replicas,
        isr: next.isr,
        leader: next.leader,
        leader_epoch: next.leader_epoch,
        adding: next.adding,
        removing: next.removing,
    }
}

/// The broker's registration if `broker_epoch` is its current one.
fn current_broker(
    state: &ClusterMetadata,
    broker_id: i32,
    broker_epoch: u64,
) -> Result<&BrokerRegistration, ControllerError> {
    state
        .broker(broker_id)
        .filter(|b| b.broker_epoch == broker_epoch)
        .ok_or(ControllerError::StaleBrokerEpoch { broker_id })
}

/// An ISR may name only the partition's replicas, once each, must hold its
/// leader, and may add only unfenced brokers.
fn isr_is_eligible(state: &ClusterMetadata, current: &PartitionState, isr: &[i32]) -> bool {
    let unique: BTreeSet<i32> = isr.iter().copied().collect();
    unique.len() == isr.len()
        && unique.contains(&current.leader)
        && isr.iter().all(|id| current.replicas.contains(id))
        && isr
            .iter()
            .all(|id| current.isr.contains(id) || state.broker(*id).is_some_and(|b| !b.fenced))
}

/// Fences `broker`: it leaves every ISR it is in (unless it is the last
/// member) and every partition it leads gets a new leader from the rest of
/// the ISR, or none until it comes back (never an unclean election).
fn fence(state: &ClusterMetadata, broker: &BrokerRegistration) -> Vec<MetadataRecord> {
    let id = broker.broker_id;
    let mut records = vec![MetadataRecord::BrokerFenced {
        broker_id: id,
        broker_epoch: broker.broker_epoch,
    }];
    for (topic_id, partition, current) in state.partitions() {
        if !current.isr.contains(&id) {
            continue;
        }
        let rest: Vec<i32> = current.isr.iter().copied().filter(|&r| r != id).collect();
        let isr = if rest.is_empty() {
            current.isr.clone()
        } else {
            rest
        };
        let mut next = current.clone();
        if current.leader == id {
            next.leader = current
                .replicas
                .iter()
                .copied()
                .find(|&r| r != id && isr.contains(&r) && is_unfenced(state, r))
                .unwrap_or(NO_LEADER);
            next.leader_epoch = current.leader_epoch.saturating_add(1);
        }
        next.isr = isr;
        records.push(partition_record(topic_id, partition, next));
    }
    records
}

/// Unfences `broker`: partitions left without a leader whose ISR holds it
/// get it as their leader.
fn unfence(state: &ClusterMetadata, broker: &BrokerRegistration) -> Vec<MetadataRecord> {
    let id = broker.broker_id;
    let mut records = vec![MetadataRecord::BrokerUnfenced {
        broker_id: id,
        broker_epoch: broker.broker_epoch,
    }];
    for (topic_id, partition, current) in state.partitions() {
        if current.leader == NO_LEADER && current.isr.contains(&id) {
            let mut next = current.clone();
            next.leader = id;
            next.leader_epoch = current.leader_epoch.saturating_add(1);
            records.push(partition_record(topic_id, partition, next));
        }
    }
    records
}

/// AlterPartition from the partition's leader, at its current leader and
/// partition epochs (`epochs`), to an eligible ISR.
fn alter_isr(
    state: &ClusterMetadata,
    broker_id: i32,
    topic_id: TopicId,
    partition: i32,
    (leader_epoch, partition_epoch): (i32, i32),
    isr: Vec<i32>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let current = state
        .partition(topic_id, partition)
        .ok_or(MetadataError::UnknownPartition {
            topic_id,
            partition,
        })?;
    if current.leader != broker_id {
        return Err(ControllerError::NotLeader { broker_id });
    }
    if leader_epoch != current.leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch {
            requested: leader_epoch,
            current: current.leader_epoch,
        });
    }
    if partition_epoch != current.partition_epoch {
        return Err(ControllerError::InvalidUpdateVersion {
            requested: partition_epoch,
            current: current.partition_epoch,
        });
    }
    if !isr_is_eligible(state, current, &isr) {
        return Err(ControllerError::IneligibleReplica { isr });
    }
    // The ISR that takes in the last target replica ends a reassignment.
    let mut next = current.clone();
    next.isr = isr;
    let next = if next.reassigning() {
        completed(state, &next).unwrap_or(next)
    } else {
        next
    };
    Ok(vec![partition_record(topic_id, partition, next)])
}

/// ElectLeaders: the records that give each partition named its preferred
/// leader or, `unclean`, a leader if it has none.
fn elect(
    state: &ClusterMetadata,
    unclean: bool,
    partitions: Vec<(TopicId, i32)>,
) -> Vec<MetadataRecord> {
    partitions
        .into_iter()
        .filter_map(|(topic_id, partition)| {
            let current = state.partition(topic_id, partition)?;
            let leader = if unclean {
                unclean_leader(state, current)
            } else {
                preferred_leader(state, current)
            }?;
            Some(elected(topic_id, partition, current, leader))
        })
        .collect()
}

/// The partition's preferred replica, if it may lead and does not: in
/// sync and unfenced.
fn preferred_leader(state: &ClusterMetadata, current: &PartitionState) -> Option<i32> {
    let first = *current.replicas.first()?;
    (current.leader != first && current.isr.contains(&first) && is_unfenced(state, first))
        .then_some(first)
}

/// For a partition without a leader, its first unfenced replica (in sync
/// or not: an unclean election).
fn unclean_leader(state: &ClusterMetadata, current: &PartitionState) -> Option<i32> {
    if current.leader != NO_LEADER {
        return None;
    }
    current
        .replicas
        .iter()
        .copied()
        .find(|&r| is_unfenced(state, r))
}

/// The record that makes `leader` the partition's leader at the next
/// leader epoch. Out of the ISR (an unclean election), it is the ISR
/// alone.
fn elected(
    topic_id: TopicId,
    partition: i32,
    current: &PartitionState,
    leader: i32,
) -> MetadataRecord {
    let mut next = current.clone();
    if !current.isr.contains(&leader) {
        next.isr = vec![leader];
    }
    next.leader = leader;
    next.leader_epoch = current.leader_epoch.saturating_add(1);
    partition_record(topic_id, partition, next)
}

fn is_unfenced(state: &ClusterMetadata, broker_id: i32) -> bool {
    state.broker(broker_id).is_some_and(|b| !b.fenced)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn apply_all(state: &mut ClusterMetadata, records: Vec<MetadataRecord>) {
        for record in records {
            state.apply(record).unwrap();
        }
    }

    fn register(
        controller: &mut Controller,
        state: &mut ClusterMetadata,
        id: i32,
        inc: u64,
        now: u64,
    ) {
        let request = ControllerRequest::RegisterBroker {
            broker_id: id,
            incarnation: inc,
            endpoints: Vec::new(),
        };
        let records = controller.decide(state, request, now).unwrap();
        apply_all(state, records);
        let epoch = state.broker(id).unwrap().broker_epoch;
        let heartbeat = ControllerRequest::Heartbeat {
            broker_id: id,
            broker_epoch: epoch,
            caught_up: true,
            want_fence: false,
        };
        let records = controller.decide(state, heartbeat, now).unwrap();
        apply_all(state, records);
    }

    #[test]
    fn a_restarted_broker_loses_its_leaderships_and_gets_them_back_when_unfenced() {
        let mut controller = Controller::new(ControllerConfig::default());
        let mut state = ClusterMetadata::default();
        for id in 0..3 {
            register(&mut controller, &mut state, id, 10 + id as u64, 0);
        }
        let create = ControllerRequest::Admin {
            command: Command::CreateTopic {
                name: "t".into(),
                partitions: 3,
                replication_factor: 1,
                configs: BTreeMap::new(),
            },
            topic_id: TopicId([1; 16]),
        };
        let records = controller.decide(&state, create, 0).unwrap();
        apply_all(&mut state, records);
        let led_by_1: Vec<i32> = state
            .partitions()
            .filter(|(_, _, p)| p.leader == 1)
            .map(|(_, i, _)| i)
            .collect();
        assert_eq!(led_by_1.len(), 1);
        // Broker 1 restarts: a new incarnation is refused while the previous
        // one's session lasts, then registers.
        let request = ControllerRequest::RegisterBroker {
            broker_id: 1,
            incarnation: 99,
            endpoints: Vec::new(),
        };
        assert_eq!(
            controller.decide(&state, request.clone(), 1),
            Err(ControllerError::DuplicateBrokerRegistration { broker_id: 1 })
        );
        let expired = ControllerConfig::default().session_timeout_ms + 1;
        let records = controller.decide(&state, request.clone(), expired).unwrap();
        apply_all(&mut state, records);
        let p = state.partition(TopicId([1; 16]), led_by_1[0]).unwrap();
        assert_eq!(
            (p.leader, p.leader_epoch, p.isr.clone()),
            (NO_LEADER, 1, vec![1])
        );
        let epoch = state.broker(1).unwrap().broker_epoch;
        // Asked again while it replays the log up to its registration: no
        // new registration (its broker epoch stays).
        assert_eq!(controller.decide(&state, request, expired), Ok(Vec::new()));
        let heartbeat = ControllerRequest::Heartbeat {
            broker_id: 1,
            broker_epoch: epoch,
            caught_up: true,
            want_fence: false,
        };
        let records = controller.decide(&state, heartbeat, expired).unwrap();
        apply_all(&mut state, records);
        let p = state.partition(TopicId([1; 16]), led_by_1[0]).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (1, 2));
    }
    /// Three brokers, topic "t" of 3 partitions with 3 replicas each.
    fn three_brokers_one_topic(controller: &mut Controller) -> ClusterMetadata {
        let mut state = ClusterMetadata::default();
        for id in 0..3 {
            register(controller, &mut state, id, 10 + id as u64, 0);
        }
        let create = ControllerRequest::Admin {
            command: Command::CreateTopic {
                name: "t".into(),
                partitions: 3,
                replication_factor: 3,
                configs: BTreeMap::new(),
            },
            topic_id: TopicId([1; 16]),
        };
        let records = controller.decide(&state, create, 0).unwrap();
        apply_all(&mut state, records);
        state
    }

    fn fence_broker(controller: &mut Controller, state: &mut ClusterMetadata, id: i32, now: u64) {
        let broker = state.broker(id).unwrap();
        let request = ControllerRequest::Heartbeat {
            broker_id: id,
            broker_epoch: broker.broker_epoch,
            caught_up: true,
            want_fence: true,
        };
        let records = controller.decide(state, request, now).unwrap();
        apply_all(state, records);
    }

    fn leaders(state: &ClusterMetadata) -> Vec<(i32, i32)> {
        state
            .partitions()
            .map(|(_, _, p)| (p.replicas[0], p.leader))
            .collect()
    }

    /// Four brokers, topic "r" of one partition on brokers 0 and 1.
    fn four_brokers_one_partition(controller: &mut Controller) -> ClusterMetadata {
        let mut state = ClusterMetadata::default();
        for id in 0..4 {
            register(controller, &mut state, id, 10 + id as u64, 0);
        }
        let create = ControllerRequest::AdminAssigned {
            command: Command::CreateTopic {
                name: "r".into(),
                partitions: 1,
                replication_factor: -1,
                configs: BTreeMap::new(),
            },
            topic_id: TopicId([2; 16]),
            assignments: vec![vec![0, 1]],
        };
        let records = controller.decide(&state, create, 0).unwrap();
        apply_all(&mut state, records);
        state
    }

    fn reassign(target: Option<Vec<i32>>, allow: bool) -> ControllerRequest {
        ControllerRequest::Reassign {
            topic_id: TopicId([2; 16]),
            partition: 0,
            target,
            allow_replication_factor_change: allow,
        }
    }

    /// The partition's (replicas, isr, leader, leader epoch, adding,
    /// removing).
    fn partition_r(state: &ClusterMetadata) -> (Vec<i32>, Vec<i32>, i32, i32, Vec<i32>, Vec<i32>) {
        let p = state.partition(TopicId([2; 16]), 0).unwrap();
        let (replicas, isr) = (p.replicas.clone(), p.isr.clone());
        (
            replicas,
            isr,
            p.leader,
            p.leader_epoch,
            p.adding.clone(),
            p.removing.clone(),
        )
    }

    fn alter_isr_r(controller: &mut Controller, state: &mut ClusterMetadata, isr: Vec<i32>) {
        let p = state.partition(TopicId([2; 16]), 0).unwrap();
        let request = ControllerRequest::AlterIsr {
            broker_id: p.leader,
            broker_epoch: state.broker(p.leader).unwrap().broker_epoch,
            topic_id: TopicId([2; 16]),
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr,
        };
        let records = controller.decide(state, request, 0).unwrap();
        apply_all(state, records);
    }

    #[test]
    fn a_reassignment_adds_replicas_then_removes_the_old_ones_once_the_new_are_in_sync() {
        let mut controller = Controller::new(ControllerConfig::default());
        let mut state = four_brokers_one_partition(&mut controller);
        // Bad targets: refused, nothing changes.
        for (target, allow) in [
            (vec![2, 2], true),
            (vec![2, 9], true),
            (Vec::new(), true),
            (vec![1, 2, 3], false),
        ] {
            assert!(
                controller
                    .decide(&state, reassign(Some(target), allow), 0)
                    .is_err()
            );
        }
        assert_eq!(
            controller.decide(&state, reassign(None, true), 0),
            Err(ControllerError::NoReassignmentInProgress)
        );
        // 0,1 -> 2,3: both added, the leader (0) stays until they are in sync.
        let records = controller
            .decide(&state, reassign(Some(vec![2, 3]), false), 0)
            .unwrap();
        apply_all(&mut state, records);
        assert_eq!(
            partition_r(&state),
            (vec![2, 3, 0, 1], vec![0, 1], 0, 0, vec![2, 3], vec![0, 1])
        );
        // One in sync: still moving.
        alter_isr_r(&mut controller, &mut state, vec![0, 1, 2]);
        assert_eq!(partition_r(&state).0, vec![2, 3, 0, 1]);
        // The last one in sync ends it: the target alone, a new leader
        // from it at the next epoch.
        alter_isr_r(&mut controller, &mut state, vec![0, 1, 2, 3]);
        assert_eq!(
            partition_r(&state),
            (vec![2, 3], vec![2, 3], 2, 1, Vec::new(), Vec::new())
        );
        // A target within the ISR (a shrink, a reorder) is done at once;
        // the leader stays when it is in the target.
        let records = controller
            .decide(&state, reassign(Some(vec![3]), true), 0)
            .unwrap();
        apply_all(&mut state, records);
        assert_eq!(
            partition_r(&state),
            (vec![3], vec![3], 3, 2, Vec::new(), Vec::new())
        );
    }

    #[test]
    fn a_cancelled_reassignment_goes_back_to_the_original_replicas() {
        let mut controller = Controller::new(ControllerConfig::default());
        let mut state = four_brokers_one_partition(&mut controller);
        let records = controller
            .decide(&state, reassign(Some(vec![1, 2]), true), 0)
            .unwrap();
        apply_all(&mut state, records);
        assert_eq!(
            partition_r(&state),
            (vec![1, 2, 0], vec![0, 1], 0, 0, vec![2], vec![0])
        );
        // A new target replaces it, from the replicas it started from (in
        // the order the reassignment keeps them: as Kafka, a reassignment
        // does not remember the original order).
        let records = controller
            .decide(&state, reassign(Some(vec![3, 2]), true), 0)
            .unwrap();
        apply_all(&mut state, records);
        assert_eq!(
            partition_r(&state),
            (vec![3, 2, 1, 0], vec![0, 1], 0, 0, vec![3, 2], vec![1, 0])
        );
        // Cancelled: the replicas it started from, the leader unchanged.
        let records = controller.decide(&state, reassign(None, true), 0).unwrap();
        apply_all(&mut state, records);
        assert_eq!(
            partition_r(&state),
            (vec![1, 0], vec![0, 1], 0, 0, Vec::new(), Vec::new())
        );
        // Fencing keeps a reassignment as it is; the ISR that takes in the
        // target ends it.
        let records = controller
            .decide(&state, reassign(Some(vec![2, 1]), true), 0)
            .unwrap();
        apply_all(&mut state, records);
        fence_broker(&mut controller, &mut state, 0, 10);
        assert_eq!(
            partition_r(&state),
            (vec![2, 1, 0], vec![1], 1, 1, vec![2], vec![0])
        );
        alter_isr_r(&mut controller, &mut state, vec![1, 2]);
        assert_eq!(
            partition_r(&state),
            (vec![2, 1], vec![1, 2], 1, 1, Vec::new(), Vec::new())
        );
    }

    #[test]
    fn preferred_leaders_come_back_when_asked_and_by_themselves() {
        let config = ControllerConfig {
            leader_imbalance_check_interval_ms: 1_000,
            ..ControllerConfig::default()
        };
        let mut controller = Controller::new(config);
        let mut state = three_brokers_one_topic(&mut controller);
        controller.elected(&state, 0);
        fence_broker(&mut controller, &mut state, 0, 10);
        let moved = state
            .partitions()
            .find(|(_, _, p)| p.replicas[0] == 0)
            .map(|(t, i, p)| (t, i, p.leader_epoch))
            .unwrap();
        assert_ne!(state.partition(moved.0, moved.1).unwrap().leader, 0);
        let all: Vec<(TopicId, i32)> = state.partitions().map(|(t, i, _)| (t, i)).collect();
        let elect = ControllerRequest::ElectLeaders {
            unclean: false,
            partitions: all.clone(),
        };
        // Fenced and out of the ISR, broker 0 cannot lead: nothing changes.
        assert_eq!(controller.decide(&state, elect.clone(), 20), Ok(Vec::new()));
        register(&mut controller, &mut state, 0, 99, 30);
        let epoch = state.partition(moved.0, moved.1).unwrap().partition_epoch;
        let leader = state.partition(moved.0, moved.1).unwrap().leader;
        let broker_epoch = state.broker(leader).unwrap().broker_epoch;
        let back_in_sync = ControllerRequest::AlterIsr {
            broker_id: leader,
            broker_epoch,
            topic_id: moved.0,
            partition: moved.1,
            leader_epoch: moved.2,
            partition_epoch: epoch,
            isr: vec![1, 2, 0],
        };
        let records = controller.decide(&state, back_in_sync, 40).unwrap();
        apply_all(&mut state, records);
        // The check interval has not passed since the election: no move yet.
        assert!(controller.rebalance(&state, 500).is_empty());
        let records = controller.decide(&state, elect, 600).unwrap();
        assert_eq!(
            records.len(),
            1,
            "only the partition broker 0 prefers moves"
        );
        apply_all(&mut state, records);
        let p = state.partition(moved.0, moved.1).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (0, moved.2 + 1));
        assert!(
            leaders(&state)
                .iter()
                .all(|(preferred, leader)| preferred == leader)
        );

        // Fenced and back again: the automatic check moves it home.
        fence_broker(&mut controller, &mut state, 0, 700);
        register(&mut controller, &mut state, 0, 100, 800);
        let p = state.partition(moved.0, moved.1).unwrap().clone();
        let broker_epoch = state.broker(p.leader).unwrap().broker_epoch;
        let back_in_sync = ControllerRequest::AlterIsr {
            broker_id: p.leader,
            broker_epoch,
            topic_id: moved.0,
            partition: moved.1,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![1, 2, 0],
        };
        let records = controller.decide(&state, back_in_sync, 900).unwrap();
        apply_all(&mut state, records);
        let records = controller.rebalance(&state, 1_000);
        assert_eq!(records.len(), 1);
        apply_all(&mut state, records);
        assert!(
            leaders(&state)
                .iter()
                .all(|(preferred, leader)| preferred == leader)
        );
        assert!(controller.rebalance(&state, 2_500).is_empty(), "balanced");
    }

    #[test]
    fn an_unclean_election_takes_a_replica_out_of_sync_only_for_a_leaderless_partition() {
        let mut controller = Controller::new(ControllerConfig::default());
        let mut state = three_brokers_one_topic(&mut controller);
        let all: Vec<(TopicId, i32)> = state.partitions().map(|(t, i, _)| (t, i)).collect();
        let unclean = ControllerRequest::ElectLeaders {
            unclean: true,
            partitions: all.clone(),
        };
        assert_eq!(
            controller.decide(&state, unclean.clone(), 1),
            Ok(Vec::new()),
            "all led"
        );
        // Brokers 1 and 2 fenced, then 0: each partition keeps ISR [0] and no leader.
        fence_broker(&mut controller, &mut state, 1, 2);
        fence_broker(&mut controller, &mut state, 2, 3);
        fence_broker(&mut controller, &mut state, 0, 4);
        assert!(
            state
                .partitions()
                .all(|(_, _, p)| p.leader == NO_LEADER && p.isr == [0])
        );
        // Broker 1 comes back: not in sync, it leads only by an unclean election.
        register(&mut controller, &mut state, 1, 50, 5);
        assert!(state.partitions().all(|(_, _, p)| p.leader == NO_LEADER));
        let preferred = ControllerRequest::ElectLeaders {
            unclean: false,
            partitions: all,
        };
        assert_eq!(controller.decide(&state, preferred, 6), Ok(Vec::new()));
        let records = controller.decide(&state, unclean, 7).unwrap();
        assert_eq!(records.len(), 3);
        apply_all(&mut state, records);
        assert!(
            state
                .partitions()
                .all(|(_, _, p)| p.leader == 1 && p.isr == [1])
        );
    }
    #[test]
    fn a_controller_that_did_not_run_for_a_while_fences_nobody_for_it() {
        let mut controller = Controller::new(ControllerConfig::default());
        let state = three_brokers_one_topic(&mut controller);
        controller.elected(&state, 0);
        // Frozen for a minute: nobody's silence counts.
        assert!(controller.expire(&state, 60_000).is_empty());
        // Running again, ticking every 100 ms: a session later, the silent
        // brokers are fenced.
        let mut now = 60_000;
        while now < 60_000 + 9_000 {
            now += 100;
            assert!(controller.expire(&state, now).is_empty(), "at {now}");
        }
        let records = controller.expire(&state, now + 100);
        let fenced = records
            .iter()
            .filter(|r| matches!(r, MetadataRecord::BrokerFenced { .. }))
            .count();
        assert_eq!(fenced, 3);
    }
    #[test]
    fn explicit_assignments_are_followed_or_refused_whole() {
        let mut controller = Controller::new(ControllerConfig::default());
        let mut state = three_brokers_one_topic(&mut controller);
        fence_broker(&mut controller, &mut state, 2, 1);
        let create = |assignments: Vec<Vec<i32>>| ControllerRequest::AdminAssigned {
            command: Command::CreateTopic {
                name: "placed".into(),
                partitions: i32::try_from(assignments.len()).unwrap(),
                replication_factor: -1,
                configs: BTreeMap::new(),
            },
            topic_id: TopicId([2; 16]),
            assignments,
        };
        for bad in [
            vec![vec![0, 5]],
            vec![vec![1, 1]],
            vec![vec![0, 1], vec![1]],
            vec![vec![]],
            vec![vec![2]],
        ] {
            let refused = controller.decide(&state, create(bad.clone()), 2);
            assert!(
                matches!(
                    refused,
                    Err(ControllerError::InvalidReplicaAssignment { .. })
                ),
                "{bad:?}: {refused:?}"
            );
        }
        let records = controller
            .decide(&state, create(vec![vec![2, 1], vec![0, 2]]), 2)
            .unwrap();
        apply_all(&mut state, records);
        let topic = state.topic("placed").unwrap().topic_id;
        let p0 = state.partition(topic, 0).unwrap();
        // Broker 2 is fenced: listed, not in sync, not the leader.
        assert_eq!(
            (p0.replicas.clone(), p0.isr.clone(), p0.leader),
            (vec![2, 1], vec![1], 1)
        );
        let p1 = state.partition(topic, 1).unwrap();
        assert_eq!(
            (p1.replicas.clone(), p1.isr.clone(), p1.leader),
            (vec![0, 2], vec![0], 0)
        );
        let grow = |assignments: Vec<Vec<i32>>| ControllerRequest::AdminAssigned {
            command: Command::CreatePartitions {
                name: "placed".into(),
                total: 3,
            },
            topic_id: TopicId([0; 16]),
            assignments,
        };
        assert!(
            controller.decide(&state, grow(vec![vec![1]]), 3).is_err(),
            "one replica, not two"
        );
        let records = controller
            .decide(&state, grow(vec![vec![1, 0]]), 3)
            .unwrap();
        apply_all(&mut state, records);
        assert_eq!(state.partition(topic, 2).unwrap().replicas, vec![1, 0]);
    }
}
