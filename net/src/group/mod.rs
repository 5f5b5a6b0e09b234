//! The classic consumer-group protocol as a sans-IO state machine: requests
//! and the time come in, replies go out. Nothing here reads a clock, a
//! socket or a disk, so tests drive it with exact inputs and check exact
//! outputs.
//!
//! JoinGroup and SyncGroup replies may be held: a join waits for the join
//! phase to complete (every member rejoined, or the rebalance timeout), a
//! follower's sync waits for the leader's. A held request is named by the
//! caller's [`Token`]; when it completes, the machine returns
//! `(token, Reply)` pairs for the caller to deliver.
//!
//! States, as Kafka names them: Empty (no members; offsets may exist),
//! PreparingRebalance (join phase), CompletingRebalance (waiting for the
//! leader's assignment), Stable, Dead (deleted).
//!
//! A group is classic or, once a member heartbeats with KIP-848's
//! protocol, a consumer group ([`consumer`]); the two do not mix while
//! either has members (an empty group turns into the type of its next
//! member, its committed offsets kept).

pub mod assignor;
pub mod consumer;
pub mod offsets;
#[cfg(test)]
mod tests;

pub use offsets::{CommittedOffset, OffsetKey};

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::handlers::errors::{
    FENCED_INSTANCE_ID, GROUP_ID_NOT_FOUND, ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL,
    INVALID_GROUP_ID, INVALID_REQUEST, INVALID_SESSION_TIMEOUT, MEMBER_ID_REQUIRED,
    NON_EMPTY_GROUP, NONE, NOT_COORDINATOR, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
    UNSUPPORTED_VERSION,
};
use consumer::{ConsumerConfig, ConsumerGroup, Heartbeat, HeartbeatReply, TopicsView};

/// Names a held request (the caller keeps what answers it).
pub type Token = u64;

/// Broker settings of the coordinator (Kafka's names).
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: an empty group's first join phase
    /// waits this long for more members.
    pub initial_rebalance_delay_ms: i32,
    /// KIP-848's consumer groups.
    pub consumer: ConsumerConfig,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            consumer: ConsumerConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The name DescribeGroups and ListGroups report.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// A JoinGroup request, as the machine needs it.
#[derive(Debug, Clone)]
pub struct Join {
    pub group_id: String,
    /// Empty on a member's first join.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a first join gets MEMBER_ID_REQUIRED and an id (KIP-394).
    pub require_known_member_id: bool,
}

/// What a JoinGroup gets back.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinReply {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// The leader only: every member's id, instance id and metadata for the
    /// chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinReply {
    pub(crate) fn error(error: i16, member_id: &str) -> JoinReply {
        JoinReply {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup request.
#[derive(Debug, Clone)]
pub struct Sync {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    /// The leader's assignment: member id -> bytes.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncReply {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncReply {
    pub(crate) fn error(error: i16) -> SyncReply {
        SyncReply {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A reply the machine hands back for a held (or just answered) request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Join(JoinReply),
    Sync(SyncReply),
}

/// Replies to deliver, each to the request its token names.
pub type Replies = Vec<(Token, Reply)>;

#[derive(Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_heartbeat_ms: u64,
    awaiting_join: Option<Token>,
    awaiting_sync: Option<Token>,
    /// Order of arrival in the group: the leader is the member that has
    /// been in it longest, as in Kafka.
    arrival: u64,
}

/// One member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Metadata for the group's chosen protocol.
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug)]
struct Group {
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Members added so far (each member's `arrival`).
    arrivals: u64,
    /// Ids handed out with MEMBER_ID_REQUIRED, and when they expire.
    pending: BTreeMap<String, u64>,
    /// Static members: instance id -> member id.
    instances: BTreeMap<String, String>,
    /// The join phase ends at this time at the latest.
    join_deadline_ms: u64,
    /// An empty group's first join phase does not end before this.
    initial_delay_until_ms: u64,
    offsets: BTreeMap<OffsetKey, CommittedOffset>,
    /// A consumer group's (KIP-848) state; `None` for a classic group.
    consumer: Option<ConsumerGroup>,
}

impl Group {
    fn new() -> Group {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            arrivals: 0,
            pending: BTreeMap::new(),
            instances: BTreeMap::new(),
            join_deadline_ms: 0,
            initial_delay_until_ms: 0,
            offsets: BTreeMap::new(),
            consumer: None,
        }
    }

    /// No member of either protocol (and no classic join under way).
    fn is_empty(&self) -> bool {
        self.state == GroupState::Empty
            && self.consumer.as_ref().is_none_or(|c| c.members.is_empty())
    }

    fn has_consumer_members(&self) -> bool {
        self.consumer
            .as_ref()
            .is_some_and(|c| !c.members.is_empty())
    }
}

/// One group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub state: &'static str,
    pub protocol_type: String,
    /// `classic` or `consumer`.
    pub group_type: &'static str,
}

/// Every group one coordinator (one shard) owns.
#[derive(Debug, Default)]
pub struct Coordinator {
    config: GroupConfig,
    groups: BTreeMap<String, Group>,
    /// Member ids are `<client id>-<counter>`; the counter starts from the
    /// caller's seed so restarts do not reuse ids.
    next_member: u64,
    /// Offsets committed inside open transactions (TxnOffsetCommit), by
    /// producer id, in commit order: they become committed offsets when
    /// the transaction's commit marker reaches the group's partition, and
    /// vanish on an abort.
    txn_offsets: BTreeMap<i64, Vec<(String, OffsetKey, CommittedOffset)>>,
}

impl Coordinator {
    pub fn new(config: GroupConfig, member_id_seed: u64) -> Coordinator {
        Coordinator {
            config,
            groups: BTreeMap::new(),
            next_member: member_id_seed,
            txn_offsets: BTreeMap::new(),
        }
    }

    fn new_member_id(&mut self, client_id: &str) -> String {
        self.next_member += 1;
        format!("{client_id}-{:016x}", self.next_member)
    }

    pub fn state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    /// JoinGroup. The reply is immediate (`Some`) or held under `token`
    /// (`None`; it comes back from a later call).
    pub fn join(&mut self, now_ms: u64, token: Token, join: Join) -> (Option<JoinReply>, Replies) {
        if join.group_id.is_empty() {
            return (
                Some(JoinReply::error(INVALID_GROUP_ID, &join.member_id)),
                Vec::new(),
            );
        }
        let timeouts = self.config.min_session_timeout_ms..=self.config.max_session_timeout_ms;
        if !timeouts.contains(&join.session_timeout_ms) {
            return (
                Some(JoinReply::error(INVALID_SESSION_TIMEOUT, &join.member_id)),
                Vec::new(),
            );
        }
        if let Some(group) = self.groups.get_mut(&join.group_id) {
            if group.has_consumer_members() {
                return (
                    Some(JoinReply::error(
                        INCONSISTENT_GROUP_PROTOCOL,
                        &join.member_id,
                    )),
                    Vec::new(),
                );
            }
            group.consumer = None;
        }
        let fresh_id = join
            .member_id
            .is_empty()
            .then(|| self.new_member_id(&join.client_id));
        let config = self.config;
        let group = self
            .groups
            .entry(join.group_id.clone())
            .or_insert_with(Group::new);
        if !protocols_fit(group, &join) {
            return (
                Some(JoinReply::error(
                    INCONSISTENT_GROUP_PROTOCOL,
                    &join.member_id,
                )),
                Vec::new(),
            );
        }
        let mut replies = Vec::new();
        let member_id = match fresh_id {
            Some(id) => {
                if let Some(instance) = &join.instance_id
                    && let Some(old) = group.instances.get(instance).cloned()
                {
                    return rejoin_static(group, now_ms, token, join, old, id);
                }
                if join.require_known_member_id && join.instance_id.is_none() {
                    let expires = now_ms + to_ms(join.session_timeout_ms);
                    group.pending.insert(id.clone(), expires);
                    return (Some(JoinReply::error(MEMBER_ID_REQUIRED, &id)), Vec::new());
                }
                id
            }
            None => {
                let id = join.member_id.clone();
                if group.pending.remove(&id).is_none() && !group.members.contains_key(&id) {
                    return (Some(JoinReply::error(UNKNOWN_MEMBER_ID, &id)), Vec::new());
                }
                if let Some(instance) = &join.instance_id
                    && group.instances.get(instance).is_some_and(|m| *m != id)
                {
                    return (Some(JoinReply::error(FENCED_INSTANCE_ID, &id)), Vec::new());
                }
                id
            }
        };
        if let Some(reply) = admit(group, now_ms, token, &member_id, join, &mut replies) {
            return (Some(reply), replies);
        }
        prepare_rebalance(group, &config, now_ms, &mut replies);
        replies.extend(maybe_complete_join(group, now_ms));
        (None, replies)
    }

    /// SyncGroup: immediate, or held under `token`.
    pub fn sync(&mut self, token: Token, sync: Sync) -> (Option<SyncReply>, Replies) {
        let Some(group) = self.groups.get_mut(&sync.group_id) else {
            return (Some(SyncReply::error(UNKNOWN_MEMBER_ID)), Vec::new());
        };
        if let Err(code) = check_member(group, &sync.member_id, sync.instance_id.as_deref()) {
            return (Some(SyncReply::error(code)), Vec::new());
        }
        if sync.generation != group.generation {
            return (Some(SyncReply::error(ILLEGAL_GENERATION)), Vec::new());
        }
        match group.state {
            GroupState::Empty | GroupState::PreparingRebalance => {
                (Some(SyncReply::error(REBALANCE_IN_PROGRESS)), Vec::new())
            }
            GroupState::Stable => {
                let assignment = group
                    .members
                    .get(&sync.member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                (Some(sync_reply(group, assignment)), Vec::new())
            }
            GroupState::CompletingRebalance => {
                let mut replies = Vec::new();
                if let Some(member) = group.members.get_mut(&sync.member_id)
                    && let Some(older) = member.awaiting_sync.replace(token)
                {
                    replies.push((older, Reply::Sync(SyncReply::error(REBALANCE_IN_PROGRESS))));
                }
                if group.leader.as_deref() != Some(sync.member_id.as_str()) {
                    return (None, replies);
                }
                let assigned: BTreeMap<String, Bytes> = sync.assignments.into_iter().collect();
                for member in group.members.values_mut() {
                    member.assignment = assigned.get(&member.id).cloned().unwrap_or_default();
                }
                group.state = GroupState::Stable;
                let mut answers = Vec::new();
                for member in group.members.values_mut() {
                    if let Some(token) = member.awaiting_sync.take() {
                        answers.push((token, member.assignment.clone()));
                    }
                }
                for (token, assignment) in answers {
                    replies.push((token, Reply::Sync(sync_reply(group, assignment))));
                }
                (None, replies)
            }
        }
    }

    /// Heartbeat: an error code, at once.
    pub fn heartbeat(
        &mut self,
        now_ms: u64,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        let Some(group) = self.groups.get_mut(group_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        if let Err(code) = check_member(group, member_id, instance_id) {
            return code;
        }
        if let Some(member) = group.members.get_mut(member_id) {
            member.last_heartbeat_ms = now_ms;
        }
        if generation != group.generation {
            return ILLEGAL_GENERATION;
        }
        match group.state {
            GroupState::PreparingRebalance => REBALANCE_IN_PROGRESS,
            GroupState::Empty => UNKNOWN_MEMBER_ID,
            GroupState::CompletingRebalance | GroupState::Stable => NONE,
        }
    }

    /// LeaveGroup of `(member id, instance id)` pairs: a code per member.
    pub fn leave(
        &mut self,
        now_ms: u64,
        group_id: &str,
        leaving: &[(String, Option<String>)],
    ) -> (Vec<i16>, Replies) {
        let config = self.config;
        let Some(group) = self.groups.get_mut(group_id) else {
            return (vec![UNKNOWN_MEMBER_ID; leaving.len()], Vec::new());
        };
        let mut codes = Vec::with_capacity(leaving.len());
        let mut replies = Vec::new();
        for (member_id, instance_id) in leaving {
            // A static member may leave by instance id alone.
            let id = match (member_id.is_empty(), instance_id) {
                (true, Some(instance)) => group.instances.get(instance).cloned(),
                _ => Some(member_id.clone()),
            };
            let known = id.filter(|id| group.members.contains_key(id));
            let Some(id) = known else {
                codes.push(UNKNOWN_MEMBER_ID);
                continue;
            };
            if let Some(instance) = instance_id
                && group.instances.get(instance).is_some_and(|m| *m != id)
            {
                codes.push(FENCED_INSTANCE_ID);
                continue;
            }
            remove_member(group, &id, &mut replies);
            codes.push(NONE);
        }
        if codes.contains(&NONE) {
            after_removal(group, &config, now_ms, &mut replies);
        }
        (codes, replies)
    }

    /// Time passes: expired sessions, ended join phases, expired pending ids.
    pub fn tick(&mut self, now_ms: u64) -> Replies {
        let config = self.config;
        let mut replies = Vec::new();
        for group in self.groups.values_mut() {
            group.pending.retain(|_, expires| *expires > now_ms);
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| {
                    // Members held in a join phase answer to its deadline.
                    m.awaiting_join.is_none()
                        && m.last_heartbeat_ms + to_ms(m.session_timeout_ms) <= now_ms
                })
                .map(|m| m.id.clone())
                .collect();
            for id in &expired {
                tracing::info!(member = %id, "group member's session expired");
                remove_member(group, id, &mut replies);
            }
            if !expired.is_empty() {
                after_removal(group, &config, now_ms, &mut replies);
            }
            replies.extend(maybe_complete_join(group, now_ms));
            if let Some(consumer) = &mut group.consumer {
                for id in consumer.tick(now_ms, &config.consumer) {
                    tracing::info!(member = %id, "consumer group member's session or rebalance timeout expired");
                }
            }
        }
        replies
    }

    /// ConsumerGroupHeartbeat (KIP-848) of `group_id`, the topics as
    /// `topics` says now.
    pub fn consumer_heartbeat(
        &mut self,
        now_ms: u64,
        group_id: &str,
        heartbeat: Heartbeat,
        topics: &TopicsView,
    ) -> HeartbeatReply {
        if group_id.is_empty() {
            return HeartbeatReply::error(INVALID_REQUEST, "GroupId can't be empty.");
        }
        let config = self.config;
        let known = self.groups.contains_key(group_id);
        if !known && heartbeat.member_epoch != 0 {
            return HeartbeatReply::error(
                UNKNOWN_MEMBER_ID,
                format!("Group {group_id} has no member {}.", heartbeat.member_id),
            );
        }
        let group = self
            .groups
            .entry(group_id.to_string())
            .or_insert_with(Group::new);
        if group.consumer.is_none() {
            if group.state != GroupState::Empty {
                return HeartbeatReply::error(
                    GROUP_ID_NOT_FOUND,
                    format!("Group {group_id} is not a consumer group."),
                );
            }
            group.consumer = Some(ConsumerGroup::default());
        }
        let Some(consumer) = group.consumer.as_mut() else {
            return HeartbeatReply::error(GROUP_ID_NOT_FOUND, "not a consumer group");
        };
        consumer.heartbeat(now_ms, heartbeat, topics, &config.consumer)
    }

    /// The consumer group `group_id` (ConsumerGroupDescribe), or the error
    /// Kafka gives: GROUP_ID_NOT_FOUND for an unknown or classic group.
    pub fn consumer_group(&self, group_id: &str) -> Result<ConsumerGroup, i16> {
        self.groups
            .get(group_id)
            .and_then(|g| g.consumer.clone())
            .ok_or(GROUP_ID_NOT_FOUND)
    }

    /// Whether `group_id` is a consumer group (KIP-848).
    pub fn is_consumer_group(&self, group_id: &str) -> bool {
        self.groups
            .get(group_id)
            .is_some_and(|g| g.consumer.is_some())
    }

    /// Checks an OffsetFetch that names its member (v9): in a consumer
    /// group the member must be known and at its epoch. Classic groups
    /// and requests without a member pass.
    pub fn check_fetch(&self, group_id: &str, member: Option<(&str, i32)>) -> Result<(), i16> {
        let Some(consumer) = self.groups.get(group_id).and_then(|g| g.consumer.as_ref()) else {
            return Ok(());
        };
        match member {
            Some((member_id, epoch)) if !(member_id.is_empty() && epoch < 0) => {
                consumer.check_member_epoch(member_id, epoch)
            }
            _ => Ok(()),
        }
    }

    /// Checks an OffsetCommit (at `version`; `None`: TxnOffsetCommit)
    /// against the group; `Ok` lets it through. In a consumer group the
    /// generation is the member epoch.
    pub fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        version: Option<i16>,
    ) -> Result<(), i16> {
        if let Some(consumer) = self.groups.get(group_id).and_then(|g| g.consumer.as_ref()) {
            if generation < 0 && consumer.members.is_empty() {
                return Ok(());
            }
            if !consumer.members.contains_key(member_id) {
                return Err(UNKNOWN_MEMBER_ID);
            }
            // Kafka: members of the consumer protocol commit with v9+.
            if version.is_some_and(|v| v < 9) {
                return Err(UNSUPPORTED_VERSION);
            }
            return consumer.check_member_epoch(member_id, generation);
        }
        let Some(group) = self.groups.get(group_id) else {
            // Not managed by this coordinator: a simple consumer's commit.
            return if generation < 0 {
                Ok(())
            } else {
                Err(ILLEGAL_GENERATION)
            };
        };
        if generation < 0 && member_id.is_empty() && group.state == GroupState::Empty {
            return Ok(());
        }
        check_member(group, member_id, instance_id)?;
        if generation != group.generation {
            return Err(ILLEGAL_GENERATION);
        }
        if group.state == GroupState::CompletingRebalance {
            return Err(REBALANCE_IN_PROGRESS);
        }
        Ok(())
    }

    /// Stores committed offsets (after they are durable, or on replay).
    pub fn commit(&mut self, group_id: &str, offsets: Vec<(OffsetKey, CommittedOffset)>) {
        let group = self
            .groups
            .entry(group_id.to_string())
            .or_insert_with(Group::new);
        for (key, value) in offsets {
            group.offsets.insert(key, value);
        }
    }

    /// Holds offsets committed inside `producer_id`'s transaction (after
    /// they are durable, or on replay) until its marker.
    pub fn stage_txn_offsets(
        &mut self,
        producer_id: i64,
        group_id: &str,
        offsets: Vec<(OffsetKey, CommittedOffset)>,
    ) {
        let staged = self.txn_offsets.entry(producer_id).or_default();
        staged.extend(
            offsets
                .into_iter()
                .map(|(key, value)| (group_id.to_string(), key, value)),
        );
    }

    /// A marker of `producer_id`'s transaction reached a partition: the
    /// offsets it holds for the groups `in_partition` picks are committed
    /// (`commit`) or dropped.
    pub fn end_txn_offsets(
        &mut self,
        producer_id: i64,
        commit: bool,
        in_partition: impl Fn(&str) -> bool,
    ) {
        let Some(staged) = self.txn_offsets.remove(&producer_id) else {
            return;
        };
        let (ending, kept): (Vec<_>, Vec<_>) = staged
            .into_iter()
            .partition(|(group, _, _)| in_partition(group));
        if !kept.is_empty() {
            self.txn_offsets.insert(producer_id, kept);
        }
        if commit {
            for (group, key, value) in ending {
                self.commit(&group, vec![(key, value)]);
            }
        }
    }

    /// Whether an open transaction holds an offset of the group (for
    /// `keys`, or any): OffsetFetch with require_stable waits for it.
    pub fn has_txn_offsets(&self, group_id: &str, keys: Option<&[OffsetKey]>) -> bool {
        self.txn_offsets
            .values()
            .flatten()
            .any(|(group, key, _)| group == group_id && keys.is_none_or(|keys| keys.contains(key)))
    }

    /// Whether an open transaction holds offsets of a group `in_partition`
    /// picks.
    pub fn txn_offsets_where(&self, in_partition: impl Fn(&str) -> bool) -> bool {
        self.txn_offsets
            .values()
            .flatten()
            .any(|(group, _, _)| in_partition(group))
    }

    /// DeleteGroups: a group with no members can go; its committed offsets
    /// are returned (the caller writes their tombstones first, then calls
    /// [`Coordinator::remove_group`]).
    pub fn deletable(&self, group_id: &str) -> Result<Vec<OffsetKey>, i16> {
        let group = self.groups.get(group_id).ok_or(GROUP_ID_NOT_FOUND)?;
        if !group.members.is_empty() || group.has_consumer_members() {
            return Err(NON_EMPTY_GROUP);
        }
        Ok(group.offsets.keys().cloned().collect())
    }

    /// Removes a group that is still empty (its offsets already deleted
    /// durably); a group that gained members meanwhile stays. Pending
    /// members (told MEMBER_ID_REQUIRED, not joined yet) do not keep it,
    /// as in Kafka, where an Empty group is deletable.
    pub fn remove_group(&mut self, group_id: &str, offsets: &[OffsetKey]) -> i16 {
        let Some(group) = self.groups.get_mut(group_id) else {
            return NONE;
        };
        for key in offsets {
            group.offsets.remove(key);
        }
        if group.members.is_empty() && !group.has_consumer_members() {
            self.groups.remove(group_id);
            NONE
        } else {
            NON_EMPTY_GROUP
        }
    }

    /// Offsets past `offsets.retention.minutes`: those of groups with no
    /// members (Empty, or only offsets from standalone consumers) committed
    /// more than `retention_ms` before `now_wall_ms`. The caller deletes
    /// them durably, then calls [`Coordinator::forget`].
    pub fn expired_offsets(&self, now_wall_ms: i64, retention_ms: i64) -> Vec<(String, OffsetKey)> {
        self.groups
            .iter()
            .filter(|(_, g)| g.is_empty())
            .flat_map(|(id, g)| {
                g.offsets
                    .iter()
                    .filter(move |(_, v)| {
                        now_wall_ms.saturating_sub(v.commit_timestamp_ms) > retention_ms
                    })
                    .map(move |(k, _)| (id.clone(), k.clone()))
            })
            .collect()
    }

    /// Forgets the groups `in_partition` picks, with the offsets open
    /// transactions hold for them: their partition of `__consumer_offsets`
    /// is led by another broker now. Requests held in a join or sync phase
    /// are answered NOT_COORDINATOR, so their members find the new one.
    pub fn unload(&mut self, in_partition: impl Fn(&str) -> bool) -> Replies {
        let mut replies = Vec::new();
        let moved: Vec<String> = self
            .groups
            .keys()
            .filter(|id| in_partition(id))
            .cloned()
            .collect();
        for id in moved {
            let Some(group) = self.groups.remove(&id) else {
                continue;
            };
            for member in group.members.values() {
                if let Some(token) = member.awaiting_join {
                    let reply = JoinReply::error(NOT_COORDINATOR, &member.id);
                    replies.push((token, Reply::Join(reply)));
                }
                if let Some(token) = member.awaiting_sync {
                    replies.push((token, Reply::Sync(SyncReply::error(NOT_COORDINATOR))));
                }
            }
        }
        for staged in self.txn_offsets.values_mut() {
            staged.retain(|(group, _, _)| !in_partition(group));
        }
        self.txn_offsets.retain(|_, staged| !staged.is_empty());
        replies
    }

    /// Drops groups left with no members and no offsets.
    pub fn drop_empty_groups(&mut self) {
        self.groups
            .retain(|_, g| !(g.is_empty() && g.offsets.is_empty() && g.pending.is_empty()));
    }

    /// Every committed offset of the groups `in_partition` picks (for a
    /// snapshot of one `__consumer_offsets` partition).
    pub fn offsets_where(
        &self,
        in_partition: impl Fn(&str) -> bool,
    ) -> Vec<(String, OffsetKey, CommittedOffset)> {
        self.groups
            .iter()
            .filter(|(id, _)| in_partition(id))
            .flat_map(|(id, g)| {
                g.offsets
                    .iter()
                    .map(move |(k, v)| (id.clone(), k.clone(), v.clone()))
            })
            .collect()
    }

    /// Removes committed offsets (replayed tombstones, OffsetDelete).
    pub fn forget(&mut self, group_id: &str, key: &OffsetKey) {
        if let Some(group) = self.groups.get_mut(group_id) {
            group.offsets.remove(key);
        }
    }

    /// The group's committed offset of a partition.
    pub fn committed(&self, group_id: &str, key: &OffsetKey) -> Option<&CommittedOffset> {
        self.groups.get(group_id)?.offsets.get(key)
    }

    /// Every committed offset of the group.
    pub fn all_committed(&self, group_id: &str) -> Vec<(OffsetKey, CommittedOffset)> {
        self.groups
            .get(group_id)
            .map(|g| {
                g.offsets
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The group's state, protocol and members (DescribeGroups).
    pub fn describe(
        &self,
        group_id: &str,
    ) -> Option<(GroupState, String, String, Vec<MemberView>)> {
        let group = self.groups.get(group_id)?;
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let members = group
            .members
            .values()
            .map(|m| MemberView {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: metadata_for(m, &protocol),
                assignment: m.assignment.clone(),
            })
            .collect();
        Some((
            group.state,
            group.protocol_type.clone().unwrap_or_default(),
            protocol,
            members,
        ))
    }

    /// Every group.
    pub fn list(&self) -> Vec<ListedGroup> {
        self.groups
            .iter()
            .map(|(id, g)| match &g.consumer {
                Some(consumer) => ListedGroup {
                    group_id: id.clone(),
                    state: consumer::state_name(consumer),
                    protocol_type: "consumer".to_string(),
                    group_type: "consumer",
                },
                None => ListedGroup {
                    group_id: id.clone(),
                    state: g.state.name(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    group_type: "classic",
                },
            })
            .collect()
    }
}

/// Adds the joining member, or updates a known one and holds its join.
/// `Some`: the join changes nothing and is answered at once.
fn admit(
    group: &mut Group,
    now_ms: u64,
    token: Token,
    member_id: &str,
    join: Join,
    replies: &mut Replies,
) -> Option<JoinReply> {
    if let Some(member) = group.members.get_mut(member_id) {
        member.last_heartbeat_ms = now_ms;
        let unchanged = member.protocols == join.protocols;
        let is_leader = group.leader.as_deref() == Some(member_id);
        match group.state {
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && !(is_leader && group.state == GroupState::Stable) =>
            {
                return Some(current_join_reply(group, member_id));
            }
            _ => {
                // A second join while one is held: the older one is answered.
                member.protocols = join.protocols;
                if let Some(old) = member.awaiting_join.replace(token) {
                    replies.push((
                        old,
                        Reply::Join(JoinReply::error(UNKNOWN_MEMBER_ID, member_id)),
                    ));
                }
            }
        }
    } else {
        if let Some(instance) = &join.instance_id {
            group
                .instances
                .insert(instance.clone(), member_id.to_string());
        }
        group.members.insert(
            member_id.to_string(),
            Member {
                id: member_id.to_string(),
                instance_id: join.instance_id.clone(),
                client_id: join.client_id,
                client_host: join.client_host,
                session_timeout_ms: join.session_timeout_ms,
                rebalance_timeout_ms: join.rebalance_timeout_ms,
                protocols: join.protocols,
                assignment: Bytes::new(),
                last_heartbeat_ms: now_ms,
                awaiting_join: Some(token),
                awaiting_sync: None,
                arrival: group.arrivals,
            },
        );
        group.arrivals += 1;
        // Kafka's rule: the first member in leads until it leaves.
        if group.leader.is_none() {
            group.leader = Some(member_id.to_string());
        }
        if group.protocol_type.is_none() {
            group.protocol_type = Some(join.protocol_type);
        }
    }
    None
}

fn to_ms(ms: i32) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

/// The member exists, and a static member's instance maps to it.
fn check_member(group: &Group, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
    if let Some(instance) = instance_id
        && let Some(current) = group.instances.get(instance)
        && current != member_id
    {
        return Err(FENCED_INSTANCE_ID);
    }
    if group.members.contains_key(member_id) {
        Ok(())
    } else {
        Err(UNKNOWN_MEMBER_ID)
    }
}

/// The join's protocol type matches the group's, and the group's members
/// share a protocol with it.
fn protocols_fit(group: &Group, join: &Join) -> bool {
    if join.protocol_type.is_empty() || join.protocols.is_empty() {
        return false;
    }
    if group.members.is_empty() {
        return true;
    }
    if group.protocol_type.as_deref() != Some(join.protocol_type.as_str()) {
        return false;
    }
    join.protocols.iter().any(|(name, _)| {
        group
            .members
            .values()
            .filter(|m| m.id != join.member_id)
            .all(|m| m.protocols.iter().any(|(n, _)| n == name))
    })
}

/// A static member came back with a new process (no member id): it takes
/// the old member's place. In a stable group whose protocol it still
/// supports this costs no rebalance: it gets the current generation (a
/// leader also the member list) and, at SyncGroup, the old assignment.
/// Otherwise the group rebalances.
fn rejoin_static(
    group: &mut Group,
    now_ms: u64,
    token: Token,
    join: Join,
    old_id: String,
    new_id: String,
) -> (Option<JoinReply>, Replies) {
    let mut replies = Vec::new();
    let Some(mut member) = group.members.remove(&old_id) else {
        return (Some(JoinReply::error(UNKNOWN_MEMBER_ID, "")), replies);
    };
    if let Some(held) = member.awaiting_join.take() {
        replies.push((
            held,
            Reply::Join(JoinReply::error(FENCED_INSTANCE_ID, &old_id)),
        ));
    }
    if let Some(held) = member.awaiting_sync.take() {
        replies.push((held, Reply::Sync(SyncReply::error(FENCED_INSTANCE_ID))));
    }
    let was_leader = group.leader.as_deref() == Some(old_id.as_str());
    member.id = new_id.clone();
    member.last_heartbeat_ms = now_ms;
    member.session_timeout_ms = join.session_timeout_ms;
    member.rebalance_timeout_ms = join.rebalance_timeout_ms;
    member.client_id = join.client_id;
    member.client_host = join.client_host;
    member.protocols = join.protocols;
    if let Some(instance) = &join.instance_id {
        group.instances.insert(instance.clone(), new_id.clone());
    }
    if was_leader {
        group.leader = Some(new_id.clone());
    }
    group.members.insert(new_id.clone(), member);
    // As Kafka: no rebalance while the group's protocol stays the one the
    // members would choose (the subscription bytes may differ: they carry
    // what the old process owned).
    let quiet = group.state == GroupState::Stable && choose_protocol(group) == group.protocol_name;
    if !quiet && let Some(member) = group.members.get_mut(&new_id) {
        member.awaiting_join = Some(token);
    }
    if quiet {
        tracing::info!(member = %new_id, "static member rejoined without a rebalance");
        return (Some(current_join_reply(group, &new_id)), replies);
    }
    let config = GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    };
    prepare_rebalance(group, &config, now_ms, &mut replies);
    replies.extend(maybe_complete_join(group, now_ms));
    (None, replies)
}

/// The reply to a join that changes nothing (CompletingRebalance/Stable).
fn current_join_reply(group: &Group, member_id: &str) -> JoinReply {
    let is_leader = group.leader.as_deref() == Some(member_id);
    let protocol = group.protocol_name.clone().unwrap_or_default();
    JoinReply {
        error: NONE,
        generation: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        leader: group.leader.clone().unwrap_or_default(),
        member_id: member_id.to_string(),
        members: if is_leader {
            member_list(group, &protocol)
        } else {
            Vec::new()
        },
    }
}

fn member_list(group: &Group, protocol: &str) -> Vec<(String, Option<String>, Bytes)> {
    group
        .members
        .values()
        .map(|m| {
            (
                m.id.clone(),
                m.instance_id.clone(),
                metadata_for(m, protocol),
            )
        })
        .collect()
}

fn metadata_for(member: &Member, protocol: &str) -> Bytes {
    member
        .protocols
        .iter()
        .find(|(n, _)| n == protocol)
        .map(|(_, m)| m.clone())
        .unwrap_or_default()
}

fn sync_reply(group: &Group, assignment: Bytes) -> SyncReply {
    SyncReply {
        error: NONE,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        assignment,
    }
}

/// Enters (or stays in) the join phase. Held syncs of the old generation
/// get REBALANCE_IN_PROGRESS.
fn prepare_rebalance(group: &mut Group, config: &GroupConfig, now_ms: u64, replies: &mut Replies) {
    if group.state == GroupState::PreparingRebalance {
        return;
    }
    if group.state == GroupState::Empty {
        group.initial_delay_until_ms = now_ms + to_ms(config.initial_rebalance_delay_ms);
    }
    for member in group.members.values_mut() {
        if let Some(token) = member.awaiting_sync.take() {
            replies.push((token, Reply::Sync(SyncReply::error(REBALANCE_IN_PROGRESS))));
        }
    }
    let longest = group
        .members
        .values()
        .map(|m| to_ms(m.rebalance_timeout_ms))
        .max()
        .unwrap_or(0);
    group.join_deadline_ms = now_ms + longest;
    group.state = GroupState::PreparingRebalance;
}

/// Removes a member; its held requests get UNKNOWN_MEMBER_ID.
fn remove_member(group: &mut Group, id: &str, replies: &mut Replies) {
    let Some(member) = group.members.remove(id) else {
        return;
    };
    if let Some(instance) = &member.instance_id
        && group.instances.get(instance).is_some_and(|m| m == id)
    {
        group.instances.remove(instance);
    }
    if let Some(token) = member.awaiting_join {
        replies.push((token, Reply::Join(JoinReply::error(UNKNOWN_MEMBER_ID, id))));
    }
    if let Some(token) = member.awaiting_sync {
        replies.push((token, Reply::Sync(SyncReply::error(UNKNOWN_MEMBER_ID))));
    }
    if group.leader.as_deref() == Some(id) {
        group.leader = longest_member(group);
    }
}

/// The member that has been in the group longest.
fn longest_member(group: &Group) -> Option<String> {
    group
        .members
        .values()
        .min_by_key(|m| m.arrival)
        .map(|m| m.id.clone())
}

/// After members left: an empty group is Empty; otherwise the rest rejoin.
fn after_removal(group: &mut Group, config: &GroupConfig, now_ms: u64, replies: &mut Replies) {
    if group.members.is_empty() {
        group.state = GroupState::Empty;
        group.leader = None;
        group.protocol_name = None;
        group.generation += 1;
        return;
    }
    prepare_rebalance(group, config, now_ms, replies);
    replies.extend(maybe_complete_join(group, now_ms));
}

/// Ends the join phase when every member has rejoined (and an empty
/// group's initial delay is over), or at the deadline, dropping members
/// that did not rejoin. Then: a new generation, a protocol, a leader.
fn maybe_complete_join(group: &mut Group, now_ms: u64) -> Replies {
    let mut replies = Vec::new();
    if group.state != GroupState::PreparingRebalance {
        return replies;
    }
    let all_joined = group.members.values().all(|m| m.awaiting_join.is_some());
    let deadline = now_ms >= group.join_deadline_ms;
    if !(deadline || all_joined && now_ms >= group.initial_delay_until_ms) {
        return replies;
    }
    let late: Vec<String> = group
        .members
        .values()
        .filter(|m| m.awaiting_join.is_none())
        .map(|m| m.id.clone())
        .collect();
    for id in &late {
        remove_member(group, id, &mut replies);
    }
    group.generation += 1;
    if group.members.is_empty() {
        group.state = GroupState::Empty;
        group.protocol_name = None;
        group.leader = None;
        return replies;
    }
    group.protocol_name = choose_protocol(group);
    if group.leader.is_none() {
        group.leader = longest_member(group);
    }
    group.state = GroupState::CompletingRebalance;
    let protocol = group.protocol_name.clone().unwrap_or_default();
    let leader = group.leader.clone().unwrap_or_default();
    let members = member_list(group, &protocol);
    for member in group.members.values_mut() {
        member.last_heartbeat_ms = now_ms;
        member.assignment = Bytes::new();
        if let Some(token) = member.awaiting_join.take() {
            let is_leader = member.id == leader;
            replies.push((
                token,
                Reply::Join(JoinReply {
                    error: NONE,
                    generation: group.generation,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    leader: leader.clone(),
                    member_id: member.id.clone(),
                    members: if is_leader {
                        members.clone()
                    } else {
                        Vec::new()
                    },
                }),
            ));
        }
    }
    replies
}

/// The protocol every member supports that most members prefer (each
/// member votes for its first supported candidate), as Kafka chooses.
fn choose_protocol(group: &Group) -> Option<String> {
    let first = group.members.values().next()?;
    let candidates: Vec<&String> = first
        .protocols
        .iter()
        .map(|(n, _)| n)
        .filter(|name| {
            group
                .members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
        })
        .collect();
    let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
    for member in group.members.values() {
        if let Some((name, _)) = member
            .protocols
            .iter()
            .find(|(n, _)| candidates.contains(&n))
        {
            *votes.entry(name).or_default() += 1;
        }
    }
    candidates
        .iter()
        .max_by_key(|c| {
            (
                votes.get(*c).copied().unwrap_or(0),
                std::cmp::Reverse(candidates.iter().position(|x| x == *c)),
            )
        })
        .map(|c| (*c).clone())
}
