//! KIP-848's consumer group protocol (`group.protocol=consumer`) as a
//! sans-IO state machine beside the classic one: members heartbeat
//! (ConsumerGroupHeartbeat) with their subscription and the partitions
//! they own; the coordinator computes the group's target assignment with
//! a server-side assignor ([`super::assignor`]) and moves each member
//! towards its target, one heartbeat at a time, as Kafka's
//! `CurrentAssignmentBuilder` does:
//!
//! 1. The group epoch goes up when a member joins, leaves or changes its
//!    subscription or assignor, and when a subscribed topic appears, goes
//!    or gains partitions. A group epoch past the assignment epoch makes
//!    the next heartbeat compute a new target assignment (sticky), at the
//!    group epoch.
//! 2. A member behind the target first revokes what its target no longer
//!    holds (Unrevoked: same epoch, its assignment minus those
//!    partitions); once a heartbeat shows it owns none of them it takes
//!    the target epoch and those target partitions no other member still
//!    owns (Unreleased while some are still owned elsewhere: they come at
//!    a later heartbeat, once released); then Stable.
//! 3. A member that does not heartbeat for `group.consumer.session.timeout.ms`
//!    leaves; one that does not revoke within its rebalance timeout is
//!    fenced (removed: it rejoins at epoch 0).
//! 4. A member subscribes by names, by a regular expression (the whole
//!    topic name must match, RE2 syntax as Kafka's RE2J), or both; a topic
//!    created later that matches joins the subscription (a new epoch).
//! 5. A static member (`group.instance.id`) that leaves with epoch -2 keeps
//!    its place and partitions until its session times out: the next
//!    member with its instance id takes them over at its epoch, without a
//!    rebalance.
//!
//! The state is in memory: after a restart (or a coordinator move in a
//! cluster) members are told UNKNOWN_MEMBER_ID and rejoin; committed
//! offsets are durable as for classic groups.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use crate::handlers::errors::{
    FENCED_MEMBER_EPOCH, INVALID_REGULAR_EXPRESSION, INVALID_REQUEST, NONE, UNKNOWN_MEMBER_ID,
    UNRELEASED_INSTANCE_ID, UNSUPPORTED_ASSIGNOR,
};

use super::assignor::{self, Subscriber};

/// A topic id (Kafka's Uuid).
pub type TopicUuid = [u8; 16];
/// Partitions by topic id.
pub type Assignment = BTreeMap<TopicUuid, BTreeSet<i32>>;
/// The topics the coordinator knows: name -> (id, partition count).
pub type TopicsView = BTreeMap<String, (TopicUuid, i32)>;

/// The assignor of a group whose members name none.
pub const DEFAULT_ASSIGNOR: &str = super::assignor::ASSIGNORS[0];
/// The member epoch a member leaves with.
pub const LEAVE_EPOCH: i32 = -1;
/// The member epoch a static member leaves with (it may come back).
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// A ConsumerGroupHeartbeat, as the machine needs it.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub version: i16,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    /// `None`: unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    /// `None`: unchanged.
    pub server_assignor: Option<String>,
    /// `None`: unchanged since the last heartbeat.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

/// What a heartbeat gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub error: i16,
    pub message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent when it changed, or on a full request.
    pub assignment: Option<Assignment>,
}

impl HeartbeatReply {
    pub fn error(error: i16, message: impl Into<String>) -> HeartbeatReply {
        HeartbeatReply {
            error,
            message: Some(message.into()),
            member_id: String::new(),
            member_epoch: -1,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

/// Settings of the consumer protocol (Kafka's names).
#[derive(Debug, Clone, Copy)]
pub struct ConsumerConfig {
    /// `group.consumer.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms`.
    pub session_timeout_ms: i32,
}

impl Default for ConsumerConfig {
    fn default() -> ConsumerConfig {
        ConsumerConfig {
            heartbeat_interval_ms: 5_000,
            session_timeout_ms: 45_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    /// Waiting for the member to revoke partitions its target lost.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions other members still own.
    UnreleasedPartitions,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    previous_epoch: i32,
    pub state: MemberState,
    /// Sorted, deduplicated.
    pub subscribed: Vec<String>,
    pub regex: Option<String>,
    /// `regex`, compiled to match whole names.
    compiled: Option<Regex>,
    /// A static member that left with epoch -2, its place kept.
    departed: bool,
    assignor: Option<String>,
    rebalance_timeout_ms: i32,
    pub assigned: Assignment,
    revoking: Assignment,
    last_heartbeat_ms: u64,
    /// Unrevoked since: fenced past this.
    revoke_deadline_ms: Option<u64>,
}

/// One consumer group's KIP-848 state.
#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, Member>,
    /// Each member's target assignment at `assignment_epoch`.
    pub target: BTreeMap<String, Assignment>,
    /// The subscribed topics as of the last epoch bump.
    subscribed_topics: TopicsView,
    /// The assignor the last target assignment used.
    pub assignor: String,
    /// Who holds each partition (assigned or still revoking).
    owners: BTreeMap<(TopicUuid, i32), String>,
    /// Static members: instance id -> member id.
    instances: BTreeMap<String, String>,
    /// Member ids handed out (v0: the coordinator names members).
    next_member: u64,
}

/// The group state ConsumerGroupDescribe and ListGroups report.
pub fn state_name(group: &ConsumerGroup) -> &'static str {
    if group.members.is_empty() {
        "Empty"
    } else if group.epoch > group.assignment_epoch {
        "Assigning"
    } else if group
        .members
        .values()
        .any(|m| m.epoch != group.assignment_epoch || m.state != MemberState::Stable)
    {
        "Reconciling"
    } else {
        "Stable"
    }
}

/// A subscription's regular expression, matching whole topic names.
fn compile(regex: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{regex})$"))
        .map_err(|e| format!("SubscribedTopicRegex {regex} is invalid: {e}"))
}

impl Member {
    /// The topics it subscribes to among `topics`' and by name, sorted.
    fn topics(&self, topics: &TopicsView) -> Vec<String> {
        let mut names = self.subscribed.clone();
        if let Some(regex) = &self.compiled {
            names.extend(topics.keys().filter(|t| regex.is_match(t)).cloned());
            names.sort();
            names.dedup();
        }
        names
    }
}

fn is_subset(small: &Assignment, big: &Assignment) -> bool {
    small.iter().all(|(topic, partitions)| {
        partitions.is_empty()
            || big
                .get(topic)
                .is_some_and(|owned| partitions.is_subset(owned))
    })
}

fn overlaps(a: &Assignment, b: &Assignment) -> bool {
    a.iter().any(|(topic, partitions)| {
        b.get(topic)
            .is_some_and(|other| !partitions.is_disjoint(other))
    })
}

fn partitions_of(a: &Assignment) -> impl Iterator<Item = (TopicUuid, i32)> + '_ {
    a.iter()
        .flat_map(|(topic, partitions)| partitions.iter().map(move |p| (*topic, *p)))
}

impl ConsumerGroup {
    /// Checks the fields as Kafka does before anything else.
    fn validate(hb: &Heartbeat) -> Result<(), (i16, String)> {
        let invalid = |what: &str| Err((INVALID_REQUEST, what.to_string()));
        if hb.member_epoch < STATIC_LEAVE_EPOCH {
            return invalid("MemberEpoch is invalid.");
        }
        if hb.version >= 1 && hb.member_id.is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if hb.version == 0 && hb.member_epoch > 0 && hb.member_id.is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if hb.member_epoch == 0 {
            if hb.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if hb.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if hb.subscribed_topic_names.is_none() && hb.subscribed_topic_regex.is_none() {
                return invalid(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                );
            }
        }
        if hb.member_epoch == STATIC_LEAVE_EPOCH && hb.instance_id.is_none() {
            return invalid("InstanceId can't be null when leaving as a static member.");
        }
        if let Some(assignor) = &hb.server_assignor
            && !assignor::ASSIGNORS.contains(&assignor.as_str())
        {
            return Err((
                UNSUPPORTED_ASSIGNOR,
                format!("ServerAssignor {assignor} is not supported; use uniform or range."),
            ));
        }
        if let Some(regex) = hb
            .subscribed_topic_regex
            .as_deref()
            .filter(|r| !r.is_empty())
        {
            compile(regex).map_err(|e| (INVALID_REGULAR_EXPRESSION, e))?;
        }
        Ok(())
    }

    /// One heartbeat at `now_ms`, the topics as `topics` says now.
    pub fn heartbeat(
        &mut self,
        now_ms: u64,
        hb: Heartbeat,
        topics: &TopicsView,
        config: &ConsumerConfig,
    ) -> HeartbeatReply {
        if let Err((code, message)) = Self::validate(&hb) {
            return HeartbeatReply::error(code, message);
        }
        if hb.member_epoch == LEAVE_EPOCH || hb.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(&hb);
        }
        let (member_id, took_over) = match self.admit(now_ms, &hb) {
            Ok(admitted) => admitted,
            Err((code, message)) => return HeartbeatReply::error(code, message),
        };
        let Some(member) = self.members.get_mut(&member_id) else {
            return HeartbeatReply::error(UNKNOWN_MEMBER_ID, "unknown member");
        };
        member.last_heartbeat_ms = now_ms;
        let before = member.assigned.clone();
        // Subscription, assignor, timeout: a change bumps the group epoch.
        let mut bump = hb.member_epoch == 0 && !took_over;
        if let Some(mut names) = hb.subscribed_topic_names.clone() {
            names.sort();
            names.dedup();
            if names != member.subscribed {
                member.subscribed = names;
                bump = true;
            }
        }
        if let Some(regex) = &hb.subscribed_topic_regex {
            let regex = Some(regex.clone()).filter(|r| !r.is_empty());
            if regex != member.regex {
                member.compiled = regex.as_deref().and_then(|r| compile(r).ok());
                member.regex = regex;
                bump = true;
            }
        }
        if hb.server_assignor.is_some() && hb.server_assignor != member.assignor {
            member.assignor = hb.server_assignor.clone();
            bump = true;
        }
        if hb.rebalance_timeout_ms >= 0 {
            member.rebalance_timeout_ms = hb.rebalance_timeout_ms;
        }
        if hb.rack_id.is_some() {
            member.rack_id = hb.rack_id.clone();
        }
        let topics_now = self.subscribed_view(topics);
        if topics_now != self.subscribed_topics {
            self.subscribed_topics = topics_now;
            bump = true;
        }
        if bump {
            self.epoch += 1;
        }
        if self.epoch > self.assignment_epoch {
            self.assign(topics);
        }
        self.reconcile(&member_id, hb.owned.as_ref(), now_ms);
        let Some(member) = self.members.get(&member_id) else {
            return HeartbeatReply::error(UNKNOWN_MEMBER_ID, "unknown member");
        };
        let full = hb.member_epoch == 0
            || (hb.rebalance_timeout_ms != -1
                && hb.subscribed_topic_names.is_some()
                && hb.owned.is_some());
        HeartbeatReply {
            error: NONE,
            message: None,
            member_id: member_id.clone(),
            member_epoch: member.epoch,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            assignment: (full || member.assigned != before).then(|| member.assigned.clone()),
        }
    }

    /// The member the heartbeat names: a new one (epoch 0), or a known one
    /// at its epoch (or at its previous epoch with a subset of its
    /// partitions: the reply that bumped it may have been lost).
    fn admit(&mut self, now_ms: u64, hb: &Heartbeat) -> Result<(String, bool), (i16, String)> {
        if hb.member_epoch == 0 {
            let id = if hb.member_id.is_empty() {
                self.next_member += 1;
                format!("{}-{now_ms:x}-{:x}", hb.client_id, self.next_member)
            } else {
                hb.member_id.clone()
            };
            if let Some(instance) = &hb.instance_id
                && let Some(holder) = self.instances.get(instance).cloned()
                && holder != id
            {
                match self.members.get(&holder) {
                    Some(m) if m.departed => {
                        self.take_over(&holder, &id, now_ms, hb);
                        return Ok((id, true));
                    }
                    Some(_) => {
                        return Err((
                            UNRELEASED_INSTANCE_ID,
                            format!("Static member with instance id {instance} is still active."),
                        ));
                    }
                    None => {
                        self.instances.remove(instance);
                    }
                }
            }
            // A known member rejoining starts over, as a new one.
            self.remove_member(&id);
            let member = Member {
                id: id.clone(),
                instance_id: hb.instance_id.clone(),
                rack_id: hb.rack_id.clone(),
                client_id: hb.client_id.clone(),
                client_host: hb.client_host.clone(),
                epoch: 0,
                previous_epoch: 0,
                state: MemberState::Stable,
                subscribed: Vec::new(),
                regex: None,
                compiled: None,
                departed: false,
                assignor: None,
                rebalance_timeout_ms: hb.rebalance_timeout_ms,
                assigned: Assignment::new(),
                revoking: Assignment::new(),
                last_heartbeat_ms: now_ms,
                revoke_deadline_ms: None,
            };
            if let Some(instance) = &hb.instance_id {
                self.instances.insert(instance.clone(), id.clone());
            }
            self.members.insert(id.clone(), member);
            return Ok((id, false));
        }
        let Some(member) = self.members.get(&hb.member_id) else {
            return Err((
                UNKNOWN_MEMBER_ID,
                format!("Member {} is not a member of the group.", hb.member_id),
            ));
        };
        let lost_reply = hb.member_epoch == member.previous_epoch
            && hb
                .owned
                .as_ref()
                .is_some_and(|owned| is_subset(owned, &member.assigned));
        if hb.member_epoch != member.epoch && !lost_reply {
            return Err((
                FENCED_MEMBER_EPOCH,
                format!(
                    "The member epoch {} is not the current one, {}.",
                    hb.member_epoch, member.epoch
                ),
            ));
        }
        Ok((hb.member_id.clone(), false))
    }

    /// The static member `old` (departed) is `new` from now on: its epoch,
    /// subscription and partitions, its target.
    fn take_over(&mut self, old: &str, new: &str, now_ms: u64, hb: &Heartbeat) {
        let Some(mut member) = self.members.remove(old) else {
            return;
        };
        member.id = new.to_string();
        member.departed = false;
        member.last_heartbeat_ms = now_ms;
        member.client_id.clone_from(&hb.client_id);
        member.client_host.clone_from(&hb.client_host);
        for owner in self.owners.values_mut().filter(|o| *o == old) {
            *owner = new.to_string();
        }
        if let Some(target) = self.target.remove(old) {
            self.target.insert(new.to_string(), target);
        }
        if let Some(instance) = &member.instance_id {
            self.instances.insert(instance.clone(), new.to_string());
        }
        self.members.insert(new.to_string(), member);
    }

    fn leave(&mut self, hb: &Heartbeat) -> HeartbeatReply {
        let id = if hb.member_id.is_empty() {
            hb.instance_id
                .as_ref()
                .and_then(|i| self.instances.get(i).cloned())
                .unwrap_or_default()
        } else {
            hb.member_id.clone()
        };
        let Some(member) = self.members.get_mut(&id) else {
            return HeartbeatReply::error(
                UNKNOWN_MEMBER_ID,
                format!("Member {id} is not a member of the group."),
            );
        };
        if hb.member_epoch == STATIC_LEAVE_EPOCH && member.instance_id.is_some() {
            // Its place is kept for the next member with its instance id.
            member.departed = true;
        } else {
            self.remove_member(&id);
            self.epoch += 1;
        }
        HeartbeatReply {
            error: NONE,
            message: None,
            member_id: id,
            member_epoch: hb.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }

    /// Removes a member and frees what it held (the caller bumps the epoch).
    fn remove_member(&mut self, id: &str) {
        let Some(member) = self.members.remove(id) else {
            return;
        };
        for tp in partitions_of(&member.assigned).chain(partitions_of(&member.revoking)) {
            if self.owners.get(&tp).is_some_and(|owner| owner == id) {
                self.owners.remove(&tp);
            }
        }
        self.target.remove(id);
        if let Some(instance) = &member.instance_id
            && self.instances.get(instance).is_some_and(|m| m == id)
        {
            self.instances.remove(instance);
        }
    }

    /// The topics some member subscribes to that exist.
    fn subscribed_view(&self, topics: &TopicsView) -> TopicsView {
        self.members
            .values()
            .flat_map(|m| m.topics(topics))
            .filter_map(|name| topics.get(&name).map(|t| (name, *t)))
            .collect()
    }

    /// A new target assignment at the group epoch: the assignor most
    /// members ask for (uniform when none does), sticky to the last target.
    fn assign(&mut self, topics: &TopicsView) {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(a) = &member.assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let chosen = votes
            .iter()
            .max_by_key(|(name, count)| (**count, std::cmp::Reverse(**name)))
            .map_or(DEFAULT_ASSIGNOR, |(name, _)| *name)
            .to_string();
        let subscriptions: Vec<(&Member, Vec<String>)> = self
            .members
            .values()
            .map(|m| (m, m.topics(topics)))
            .collect();
        let subscribers: Vec<Subscriber<'_>> = subscriptions
            .iter()
            .map(|(m, names)| Subscriber {
                member_id: &m.id,
                topics: names,
                current: self.target.get(&m.id),
            })
            .collect();
        let target = assignor::assign(&chosen, &subscribers, topics);
        self.target = target;
        self.assignor = chosen;
        self.assignment_epoch = self.epoch;
    }

    /// Moves `member_id` towards its target (Kafka's CurrentAssignmentBuilder).
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now_ms: u64) {
        let target_epoch = self.assignment_epoch;
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let Some(member) = self.members.get(member_id) else {
            return;
        };
        // Whether the member still owns any of `partitions` (without its
        // owned list, it is taken to).
        let still_owns = |partitions: &Assignment| owned.is_none_or(|o| overlaps(o, partitions));
        let next = match member.state {
            MemberState::Stable if member.epoch == target_epoch => return,
            MemberState::UnrevokedPartitions if still_owns(&member.revoking) => return,
            _ => self.next_assignment(member, &target, target_epoch, &still_owns),
        };
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        for tp in partitions_of(&member.assigned).chain(partitions_of(&member.revoking)) {
            if self.owners.get(&tp).is_some_and(|o| o == member_id) {
                self.owners.remove(&tp);
            }
        }
        let (state, epoch, assigned, revoking) = next;
        if epoch != member.epoch {
            member.previous_epoch = member.epoch;
        }
        member.state = state;
        member.epoch = epoch;
        member.assigned = assigned;
        member.revoking = revoking;
        member.revoke_deadline_ms = (state == MemberState::UnrevokedPartitions).then(|| {
            now_ms.saturating_add(u64::try_from(member.rebalance_timeout_ms.max(0)).unwrap_or(0))
        });
        for tp in partitions_of(&member.assigned).chain(partitions_of(&member.revoking)) {
            self.owners.insert(tp, member_id.to_string());
        }
    }

    /// The member's next (state, epoch, assigned, revoking).
    fn next_assignment(
        &self,
        member: &Member,
        target: &Assignment,
        target_epoch: i32,
        still_owns: &dyn Fn(&Assignment) -> bool,
    ) -> (MemberState, i32, Assignment, Assignment) {
        let mut kept = Assignment::new();
        let mut revoking = Assignment::new();
        let mut added = Assignment::new();
        let mut unreleased = false;
        let topics: BTreeSet<&TopicUuid> = target.keys().chain(member.assigned.keys()).collect();
        for topic in topics {
            let empty = BTreeSet::new();
            let want = target.get(topic).unwrap_or(&empty);
            let have = member.assigned.get(topic).unwrap_or(&empty);
            let both: BTreeSet<i32> = have.intersection(want).copied().collect();
            let gone: BTreeSet<i32> = have.difference(want).copied().collect();
            if !both.is_empty() {
                kept.insert(*topic, both);
            }
            if !gone.is_empty() {
                revoking.insert(*topic, gone);
            }
            for p in want.difference(have) {
                let free = self
                    .owners
                    .get(&(*topic, *p))
                    .is_none_or(|owner| *owner == member.id);
                if free {
                    added.entry(*topic).or_default().insert(*p);
                } else {
                    unreleased = true;
                }
            }
        }
        if !revoking.is_empty() && still_owns(&revoking) {
            return (
                MemberState::UnrevokedPartitions,
                member.epoch,
                kept,
                revoking,
            );
        }
        for (topic, partitions) in added {
            kept.entry(topic).or_default().extend(partitions);
        }
        let state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        (state, target_epoch, kept, Assignment::new())
    }

    /// Time passes: members past their session or rebalance timeout go.
    /// Returns the ids removed.
    pub fn tick(&mut self, now_ms: u64, config: &ConsumerConfig) -> Vec<String> {
        let session = u64::try_from(config.session_timeout_ms.max(0)).unwrap_or(0);
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.last_heartbeat_ms.saturating_add(session) <= now_ms
                    || m.revoke_deadline_ms.is_some_and(|d| d <= now_ms)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            self.remove_member(id);
        }
        if !gone.is_empty() {
            self.epoch += 1;
        }
        gone
    }

    /// Checks an offset commit or fetch by a member at `epoch`.
    pub fn check_member_epoch(&self, member_id: &str, epoch: i32) -> Result<(), i16> {
        let member = self.members.get(member_id).ok_or(UNKNOWN_MEMBER_ID)?;
        match epoch.cmp(&member.epoch) {
            std::cmp::Ordering::Greater => Err(FENCED_MEMBER_EPOCH),
            std::cmp::Ordering::Less => Err(crate::handlers::errors::STALE_MEMBER_EPOCH),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    /// Every topic some member subscribes to (by name, or by a regular
    /// expression as of the last group epoch).
    pub fn subscribed_names(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .chain(self.subscribed_topics.keys().cloned())
            .collect()
    }
}

#[cfg(test)]
#[path = "consumer_tests.rs"]
mod tests;
