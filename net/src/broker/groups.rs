//! The group coordinator of a shard: drives the sans-IO machine in
//! [`crate::group`] with the clock, holds the requests it holds, and keeps
//! committed offsets durable in `__consumer_offsets`.
//!
//! A group belongs to partition `abs(java_hash(group id)) % partitions` of
//! `__consumer_offsets`, as in Kafka, and so to the shard owning that
//! partition; every request for the group runs there. The topic is created
//! (compacted: the log cleaner keeps each key's latest record) the first
//! time a group is used. A shard replays a partition's offset records
//! before it serves the first request of a group in it.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use engine::{InternalTxn, PartitionTable, TopicPartition, rt};
use futures::channel::oneshot;

use super::{Shard, ShardMessage};
use crate::group::consumer::{ConsumerGroup, Heartbeat, HeartbeatReply, TopicsView};
use crate::group::offsets::{decode_key, decode_value, encode_key, encode_value};
use crate::group::{
    CommittedOffset, Coordinator, GroupConfig, GroupState, Join, JoinReply, ListedGroup,
    MemberView, OffsetKey, Replies, Reply, Sync, SyncReply, Token,
};
use crate::handlers::errors::{
    COORDINATOR_NOT_AVAILABLE, GROUP_ID_NOT_FOUND, GROUP_SUBSCRIBED_TO_TOPIC, KAFKA_STORAGE_ERROR,
    NONE, PRODUCER_FENCED, UNSTABLE_OFFSET_COMMIT,
};

/// Kafka's internal topic of committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// How often held joins and member sessions are checked.
const TICK: Duration = Duration::from_millis(100);

/// The partition of `__consumer_offsets` a group belongs to (Kafka's rule:
/// `Utils.abs(groupId.hashCode()) % partitions`).
pub fn offsets_partition(group_id: &str, partitions: i32) -> i32 {
    let hash = group_id.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

/// A request for a group, run on its coordinator shard.
#[derive(Debug)]
pub enum GroupOp {
    Join(Join),
    Sync(Sync),
    Heartbeat {
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
    },
    Leave(Vec<(String, Option<String>)>),
    Commit {
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        /// The OffsetCommit version (consumer groups want v9+).
        version: i16,
        offsets: Vec<(OffsetKey, CommittedOffset)>,
    },
    /// TxnOffsetCommit: offsets held in `producer_id`'s transaction until
    /// its marker. An empty member id skips the member checks (a consumer
    /// outside the group protocol), as in Kafka.
    TxnCommit {
        producer_id: i64,
        epoch: i16,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        offsets: Vec<(OffsetKey, CommittedOffset)>,
    },
    /// OffsetFetch: `keys` (`None`: every committed offset of the group);
    /// with `require_stable` a partition an open transaction holds an
    /// offset for is UNSTABLE_OFFSET_COMMIT (the client retries).
    Fetch {
        keys: Option<Vec<OffsetKey>>,
        require_stable: bool,
        /// v9: the member asking and its epoch (checked in a consumer
        /// group).
        member: Option<(String, i32)>,
    },
    Describe,
    /// ConsumerGroupHeartbeat (KIP-848).
    ConsumerHeartbeat(Heartbeat),
    /// ConsumerGroupDescribe.
    ConsumerDescribe,
    Delete,
    /// OffsetDelete of these partitions.
    DeleteOffsets(Vec<OffsetKey>),
}

#[derive(Debug)]
pub enum GroupAnswer {
    Join(JoinReply),
    Sync(SyncReply),
    /// One code (Heartbeat), or one per member or partition, in order.
    Codes(Vec<i16>),
    /// OffsetFetch: per partition, its offset (if any) and error code.
    Offsets(Vec<(OffsetKey, Option<CommittedOffset>, i16)>),
    /// DescribeGroups: `None` for a group this coordinator does not know.
    Described(Option<GroupView>),
    ConsumerHeartbeat(HeartbeatReply),
    /// ConsumerGroupDescribe: the group, or its error code.
    ConsumerDescribed(Box<Result<ConsumerGroup, i16>>),
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupView {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberView>,
}

impl GroupAnswer {
    /// The answer every request gets when no coordinator can serve it.
    fn failed(op: &GroupOp, code: i16) -> GroupAnswer {
        match op {
            GroupOp::Join(join) => GroupAnswer::Join(JoinReply {
                error: code,
                generation: -1,
                protocol_type: None,
                protocol_name: None,
                leader: String::new(),
                member_id: join.member_id.clone(),
                members: Vec::new(),
            }),
            GroupOp::Sync(_) => GroupAnswer::Sync(SyncReply {
                error: code,
                protocol_type: None,
                protocol_name: None,
                assignment: bytes::Bytes::new(),
            }),
            GroupOp::Heartbeat { .. } => GroupAnswer::Codes(vec![code]),
            GroupOp::Leave(members) => GroupAnswer::Codes(vec![code; members.len()]),
            GroupOp::Commit { offsets, .. } | GroupOp::TxnCommit { offsets, .. } => {
                GroupAnswer::Codes(vec![code; offsets.len()])
            }
            GroupOp::Fetch { .. } | GroupOp::Describe | GroupOp::Delete => {
                GroupAnswer::Codes(vec![code])
            }
            GroupOp::DeleteOffsets(keys) => GroupAnswer::Codes(vec![code; keys.len()]),
            GroupOp::ConsumerHeartbeat(_) => GroupAnswer::ConsumerHeartbeat(HeartbeatReply::error(
                code,
                "the group coordinator cannot serve it",
            )),
            GroupOp::ConsumerDescribe => GroupAnswer::ConsumerDescribed(Box::new(Err(code))),
        }
    }
}

/// This shard's coordinator state.
#[derive(Debug)]
pub(super) struct Groups {
    coordinator: RefCell<Coordinator>,
    held: RefCell<HashMap<Token, oneshot::Sender<GroupAnswer>>>,
    next_token: Cell<Token>,
    /// `__consumer_offsets` partitions replayed into the coordinator.
    /// Partitions replayed, with the leader epoch they were replayed at.
    loaded: RefCell<BTreeMap<i32, i32>>,
    loading: tokio::sync::Mutex<()>,
    started: Instant,
    /// Serializes transactional offset appends (each takes its producer's
    /// next sequence).
    txn_appends: tokio::sync::Mutex<()>,
}

impl Groups {
    pub(super) fn new(config: GroupConfig) -> Groups {
        // Member ids carry a counter; starting it from the clock keeps ids
        // of a restarted broker apart from the ones before.
        let seed = u64::try_from(rt::wall_clock_ms()).unwrap_or(0) << 16;
        Groups {
            coordinator: RefCell::new(Coordinator::new(config, seed)),
            held: RefCell::default(),
            next_token: Cell::new(0),
            loaded: RefCell::default(),
            loading: tokio::sync::Mutex::new(()),
            started: Instant::now(),
            txn_appends: tokio::sync::Mutex::new(()),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A token and the receiver its answer comes to.
    fn hold(&self) -> (Token, oneshot::Receiver<GroupAnswer>) {
        let token = self.next_token.get() + 1;
        self.next_token.set(token);
        let (tx, rx) = oneshot::channel();
        self.held.borrow_mut().insert(token, tx);
        (token, rx)
    }

    fn deliver(&self, replies: Replies) {
        for (token, reply) in replies {
            let Some(tx) = self.held.borrow_mut().remove(&token) else {
                tracing::debug!(token, "answer for a request no longer held");
                continue;
            };
            let answer = match reply {
                Reply::Join(join) => GroupAnswer::Join(join),
                Reply::Sync(sync) => GroupAnswer::Sync(sync),
            };
            tracing::debug!(token, ?answer, "held request answered");
            let _ = tx.send(answer);
        }
    }
}

impl Shard {
    /// Starts the clock of this shard's coordinator (held joins, sessions).
    pub(super) fn start_group_ticks(self: &std::rc::Rc<Self>) {
        let shard = std::rc::Rc::clone(self);
        crate::server::spawn(async move {
            let mut last_expiry = Instant::now();
            loop {
                rt::sleep(TICK).await;
                let replies = shard
                    .groups
                    .coordinator
                    .borrow_mut()
                    .tick(shard.groups.now_ms());
                shard.groups.deliver(replies);
                if last_expiry.elapsed() >= shard.settings.offsets_retention_check_interval {
                    last_expiry = Instant::now();
                    shard.expire_offsets().await;
                }
            }
        });
    }

    /// Where `group_id` is coordinated on this broker: its
    /// `__consumer_offsets` partition and the shard that owns it; an error
    /// code when this broker does not coordinate it (NOT_COORDINATOR).
    pub(crate) async fn group_home(&self, group_id: &str) -> Result<(i32, u32), i16> {
        let partitions = self.offsets_topic_partitions().await?;
        let partition = offsets_partition(group_id, partitions);
        if !self.leads(OFFSETS_TOPIC, partition) {
            return Err(crate::handlers::errors::NOT_COORDINATOR);
        }
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
        Ok((partition, PartitionTable::owner(&tp, self.shards())))
    }

    /// Runs a consume of a group member over HTTP on its group's
    /// coordinator shard, where its instances live; an error code when
    /// this broker does not coordinate the group.
    pub(crate) async fn http_consume(
        &self,
        consume: crate::http::ConsumeCall,
    ) -> Result<crate::http::ConsumeAnswer, i16> {
        let (_, owner) = self.group_home(&consume.group).await?;
        if owner == self.id() {
            return Ok(crate::http::consume_here(self, consume).await);
        }
        let (reply, answer) = oneshot::channel();
        let message = ShardMessage::HttpConsume {
            consume,
            seen: self.metadata_applied(),
            reply,
        };
        if self.mesh.send(owner, message).await.is_err() {
            return Err(COORDINATOR_NOT_AVAILABLE);
        }
        answer.await.map_err(|_| COORDINATOR_NOT_AVAILABLE)
    }

    /// Runs `op` for `group_id` on its coordinator shard.
    pub async fn group_call(&self, group_id: &str, op: GroupOp) -> GroupAnswer {
        let (partition, owner) = match self.group_home(group_id).await {
            Ok(home) => home,
            Err(code) => return GroupAnswer::failed(&op, code),
        };
        if owner == self.id() {
            return self.group_local(group_id.to_string(), partition, op).await;
        }
        let (reply, answer) = oneshot::channel();
        let failed = GroupAnswer::failed(&op, COORDINATOR_NOT_AVAILABLE);
        let message = ShardMessage::Group {
            group_id: group_id.to_string(),
            partition,
            seen: self.metadata_applied(),
            op,
            reply,
        };
        if self.mesh.send(owner, message).await.is_err() {
            return failed;
        }
        answer.await.unwrap_or(failed)
    }

    /// The partition count of `__consumer_offsets`, created if missing.
    pub(crate) async fn offsets_topic_partitions(&self) -> Result<i32, i16> {
        let partitions = self.settings.offsets_topic_partitions;
        let factor = self.settings.offsets_topic_replication_factor;
        // Kafka's offsets topic takes the broker default, 1.
        let segment_bytes = self.settings.offsets_topic_segment_bytes;
        self.internal_topic_partitions(OFFSETS_TOPIC, partitions, factor, 1, segment_bytes)
            .await
    }

    /// On the coordinator shard: replays the group's offsets partition if
    /// needed, then runs the request.
    pub(super) async fn group_local(
        &self,
        group_id: String,
        partition: i32,
        op: GroupOp,
    ) -> GroupAnswer {
        if let Err(code) = self.load_offsets(partition).await {
            return GroupAnswer::failed(&op, code);
        }
        let groups = &self.groups;
        let now = groups.now_ms();
        match op {
            GroupOp::Join(join) => self.join_held(&group_id, now, join).await,
            GroupOp::Sync(sync) => self.sync_held(&group_id, sync).await,
            GroupOp::Heartbeat {
                member_id,
                instance_id,
                generation,
            } => {
                let code = groups.coordinator.borrow_mut().heartbeat(
                    now,
                    &group_id,
                    &member_id,
                    instance_id.as_deref(),
                    generation,
                );
                if code != NONE {
                    tracing::debug!(
                        group = %group_id,
                        member = %member_id,
                        generation,
                        code,
                        "heartbeat refused"
                    );
                }
                GroupAnswer::Codes(vec![code])
            }
            GroupOp::Leave(members) => {
                tracing::debug!(group = %group_id, ?members, "leave");
                let (codes, replies) = groups
                    .coordinator
                    .borrow_mut()
                    .leave(now, &group_id, &members);
                groups.deliver(replies);
                GroupAnswer::Codes(codes)
            }
            GroupOp::Commit {
                member_id,
                instance_id,
                generation,
                version,
                offsets,
            } => {
                let count = offsets.len();
                let checked = groups.coordinator.borrow().check_commit(
                    &group_id,
                    &member_id,
                    instance_id.as_deref(),
                    generation,
                    Some(version),
                );
                let code = match checked {
                    Ok(()) => self.commit_durably(&group_id, partition, offsets).await,
                    Err(code) => code,
                };
                GroupAnswer::Codes(vec![code; count])
            }
            GroupOp::TxnCommit {
                producer_id,
                epoch,
                member_id,
                instance_id,
                generation,
                offsets,
            } => {
                let count = offsets.len();
                let member = (member_id.as_str(), instance_id.as_deref(), generation);
                let code = self
                    .txn_commit(&group_id, partition, member, (producer_id, epoch), offsets)
                    .await;
                GroupAnswer::Codes(vec![code; count])
            }
            GroupOp::Fetch {
                keys,
                require_stable,
                member,
            } => self.fetch_offsets(&group_id, keys, require_stable, member),
            GroupOp::ConsumerHeartbeat(heartbeat) => {
                GroupAnswer::ConsumerHeartbeat(self.consumer_heartbeat(&group_id, now, heartbeat))
            }
            GroupOp::ConsumerDescribe => GroupAnswer::ConsumerDescribed(Box::new(
                groups.coordinator.borrow().consumer_group(&group_id),
            )),
            GroupOp::Describe => self.describe_classic(&group_id),
            GroupOp::Delete => {
                GroupAnswer::Codes(vec![self.delete_group(&group_id, partition).await])
            }
            GroupOp::DeleteOffsets(keys) => self.delete_offsets(&group_id, partition, keys).await,
        }
    }

    /// DescribeGroups: a classic group, or GROUP_ID_NOT_FOUND for a
    /// consumer group (Kafka's answer).
    fn describe_classic(&self, group_id: &str) -> GroupAnswer {
        let coordinator = self.groups.coordinator.borrow();
        if coordinator.is_consumer_group(group_id) {
            return GroupAnswer::Codes(vec![GROUP_ID_NOT_FOUND]);
        }
        GroupAnswer::Described(coordinator.describe(group_id).map(
            |(state, protocol_type, protocol, members)| GroupView {
                state,
                protocol_type,
                protocol,
                members,
            },
        ))
    }

    /// ConsumerGroupHeartbeat on the coordinator, the topics as this
    /// broker's metadata has them now.
    fn consumer_heartbeat(&self, group_id: &str, now: u64, heartbeat: Heartbeat) -> HeartbeatReply {
        let topics = self.topics_view();
        tracing::debug!(group = %group_id, member = %heartbeat.member_id, epoch = heartbeat.member_epoch, names = ?heartbeat.subscribed_topic_names, regex = ?heartbeat.subscribed_topic_regex, owned = ?heartbeat.owned.as_ref().map(|o| o.values().map(std::collections::BTreeSet::len).sum::<usize>()), "consumer group heartbeat");
        let reply = self
            .groups
            .coordinator
            .borrow_mut()
            .consumer_heartbeat(now, group_id, heartbeat, &topics);
        if reply.error == NONE {
            tracing::debug!(group = %group_id, epoch = reply.member_epoch, assigned = ?reply.assignment.as_ref().map(|a| a.values().map(std::collections::BTreeSet::len).sum::<usize>()), "consumer group heartbeat answered");
        } else {
            tracing::debug!(group = %group_id, error = reply.error, message = ?reply.message, "consumer group heartbeat refused");
        }
        reply
    }

    /// TxnOffsetCommit: the member (id, instance id, generation) checked
    /// unless its id is empty, then the offsets held in the transaction of
    /// `producer` (id, epoch).
    async fn txn_commit(
        &self,
        group_id: &str,
        partition: i32,
        (member_id, instance_id, generation): (&str, Option<&str>, i32),
        (producer_id, epoch): (i64, i16),
        offsets: Vec<(OffsetKey, CommittedOffset)>,
    ) -> i16 {
        if !member_id.is_empty() {
            let checked = self.groups.coordinator.borrow().check_commit(
                group_id,
                member_id,
                instance_id,
                generation,
                None,
            );
            if let Err(code) = checked {
                return code;
            }
        }
        self.txn_commit_durably(group_id, partition, producer_id, epoch, offsets)
            .await
    }

    /// OffsetFetch: the committed offsets of `keys` (`None`: all), each
    /// UNSTABLE_OFFSET_COMMIT under `require_stable` while an open
    /// transaction holds an offset for it.
    /// A member that names itself (v9) is checked first (a consumer
    /// group's member must be known and at its epoch).
    fn fetch_offsets(
        &self,
        group_id: &str,
        keys: Option<Vec<OffsetKey>>,
        require_stable: bool,
        member: Option<(String, i32)>,
    ) -> GroupAnswer {
        let coordinator = self.groups.coordinator.borrow();
        let member = member.as_ref().map(|(id, epoch)| (id.as_str(), *epoch));
        if let Err(code) = coordinator.check_fetch(group_id, member) {
            return GroupAnswer::Codes(vec![code]);
        }
        let found: Vec<(OffsetKey, Option<CommittedOffset>)> = match keys {
            Some(keys) => keys
                .into_iter()
                .map(|key| {
                    let value = coordinator.committed(group_id, &key).cloned();
                    (key, value)
                })
                .collect(),
            None => coordinator
                .all_committed(group_id)
                .into_iter()
                .map(|(k, v)| (k, Some(v)))
                .collect(),
        };
        let offsets = found
            .into_iter()
            .map(|(key, value)| {
                let unstable = require_stable
                    && coordinator.has_txn_offsets(group_id, Some(std::slice::from_ref(&key)));
                if unstable {
                    (key, None, UNSTABLE_OFFSET_COMMIT)
                } else {
                    (key, value, NONE)
                }
            })
            .collect();
        GroupAnswer::Offsets(offsets)
    }

    /// JoinGroup: answered now, or when the join phase ends.
    async fn join_held(&self, group_id: &str, now: u64, join: Join) -> GroupAnswer {
        let groups = &self.groups;
        let (token, answer) = groups.hold();
        tracing::debug!(
            group = %group_id,
            member = %join.member_id,
            client = %join.client_id,
            token,
            "join"
        );
        let (reply, replies) = groups.coordinator.borrow_mut().join(now, token, join);
        self.answer_or_wait(token, answer, reply.map(GroupAnswer::Join), replies)
            .await
    }

    /// SyncGroup: answered now, or when the leader's assignment comes.
    async fn sync_held(&self, group_id: &str, sync: Sync) -> GroupAnswer {
        let groups = &self.groups;
        let (token, answer) = groups.hold();
        tracing::debug!(
            group = %group_id,
            member = %sync.member_id,
            generation = sync.generation,
            assignments = sync.assignments.len(),
            token,
            "sync"
        );
        let (reply, replies) = groups.coordinator.borrow_mut().sync(token, sync);
        self.answer_or_wait(token, answer, reply.map(GroupAnswer::Sync), replies)
            .await
    }

    /// DeleteGroups of one group: tombstones for its offsets, then gone.
    async fn delete_group(&self, group_id: &str, partition: i32) -> i16 {
        let deletable = self.groups.coordinator.borrow().deletable(group_id);
        let keys = match deletable {
            Ok(keys) => keys,
            Err(code) => return code,
        };
        if let Err(code) = self.write_tombstones(group_id, partition, &keys).await {
            return code;
        }
        self.groups
            .coordinator
            .borrow_mut()
            .remove_group(group_id, &keys)
    }

    /// OffsetDelete: refused for topics an active member subscribes to.
    async fn delete_offsets(
        &self,
        group_id: &str,
        partition: i32,
        keys: Vec<OffsetKey>,
    ) -> GroupAnswer {
        let subscribed: BTreeSet<String> = {
            let coordinator = self.groups.coordinator.borrow();
            if let Ok(consumer) = coordinator.consumer_group(group_id) {
                consumer.subscribed_names()
            } else {
                let Some((state, _, _, members)) = coordinator.describe(group_id) else {
                    return GroupAnswer::Codes(vec![GROUP_ID_NOT_FOUND; keys.len()]);
                };
                if state == GroupState::Empty {
                    BTreeSet::new()
                } else {
                    members
                        .iter()
                        .flat_map(|m| subscribed_topics(&m.metadata))
                        .collect()
                }
            }
        };
        let (refused, deletable): (Vec<&OffsetKey>, Vec<&OffsetKey>) =
            keys.iter().partition(|k| subscribed.contains(&k.topic));
        let deletable: Vec<OffsetKey> = deletable.into_iter().cloned().collect();
        let written = self.write_tombstones(group_id, partition, &deletable).await;
        let codes = keys
            .iter()
            .map(|k| match (&written, refused.contains(&k)) {
                (_, true) => GROUP_SUBSCRIBED_TO_TOPIC,
                (Err(code), false) => *code,
                (Ok(()), false) => NONE,
            })
            .collect();
        GroupAnswer::Codes(codes)
    }

    /// Durably deletes committed offsets (tombstone records), then forgets
    /// them.
    async fn write_tombstones(
        &self,
        group_id: &str,
        partition: i32,
        keys: &[OffsetKey],
    ) -> Result<(), i16> {
        if keys.is_empty() {
            return Ok(());
        }
        let records = keys
            .iter()
            .map(|k| (encode_key(group_id, k), None))
            .collect();
        self.append_offset_records(partition, records, |coordinator| {
            for key in keys {
                coordinator.forget(group_id, key);
            }
        })
        .await
    }

    /// ListGroups: every group of every shard.
    pub async fn list_groups(&self) -> Vec<ListedGroup> {
        let mut all = self.list_local_groups().await;
        for to in (0..self.shards()).filter(|&to| to != self.id()) {
            let (reply, answer) = oneshot::channel();
            if self
                .mesh
                .send(to, ShardMessage::ListGroups { reply })
                .await
                .is_ok()
                && let Ok(groups) = answer.await
            {
                all.extend(groups);
            }
        }
        all.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        all
    }

    /// This shard's metrics, with the offsets its groups committed.
    pub(super) fn local_metrics(&self) -> crate::metrics::ShardMetrics {
        let mut metrics = crate::metrics::local(self.id());
        metrics.committed = self
            .groups
            .coordinator
            .borrow()
            .offsets_where(|_| true)
            .into_iter()
            .map(|(group, key, value)| (group, key.topic, key.partition, value.offset))
            .collect();
        let (held, opened) = self.fetch_sessions.borrow().count();
        metrics.fetch_sessions = (held as u64, opened);
        metrics
    }

    /// Every shard's metrics (a scrape), this one's first.
    pub async fn gather_metrics(&self) -> Vec<crate::metrics::ShardMetrics> {
        let mut all = vec![self.local_metrics()];
        for to in (0..self.shards()).filter(|&to| to != self.id()) {
            let (reply, answer) = oneshot::channel();
            if self
                .mesh
                .send(to, ShardMessage::Metrics { reply })
                .await
                .is_ok()
                && let Ok(metrics) = answer.await
            {
                all.push(metrics);
            }
        }
        all
    }

    /// Every topic, as the consumer groups' assignors see them.
    fn topics_view(&self) -> TopicsView {
        self.metadata()
            .topics()
            .filter(|t| !t.name.starts_with("__"))
            .map(|t| (t.name.clone(), (t.topic_id.0, t.partitions)))
            .collect()
    }

    /// The groups this shard coordinates, after replaying its partitions.
    pub(super) async fn list_local_groups(&self) -> Vec<ListedGroup> {
        for partition in self.owned_partitions(OFFSETS_TOPIC) {
            let _ = self.load_offsets(partition).await;
        }
        self.groups.coordinator.borrow().list()
    }

    async fn answer_or_wait(
        &self,
        token: Token,
        answer: oneshot::Receiver<GroupAnswer>,
        now: Option<GroupAnswer>,
        replies: Replies,
    ) -> GroupAnswer {
        if let Some(now) = now {
            tracing::debug!(token, answer = ?now, "answered at once");
            self.groups.held.borrow_mut().remove(&token);
            self.groups.deliver(replies);
            return now;
        }
        self.groups.deliver(replies);
        answer
            .await
            .unwrap_or(GroupAnswer::Codes(vec![COORDINATOR_NOT_AVAILABLE]))
    }

    /// Appends the offsets to the group's partition (durable), then makes
    /// them visible to OffsetFetch.
    async fn commit_durably(
        &self,
        group_id: &str,
        partition: i32,
        offsets: Vec<(OffsetKey, CommittedOffset)>,
    ) -> i16 {
        let records = offsets
            .iter()
            .map(|(key, value)| (encode_key(group_id, key), Some(encode_value(value))))
            .collect();
        self.append_offset_records(partition, records, |coordinator| {
            coordinator.commit(group_id, offsets);
        })
        .await
        .err()
        .unwrap_or(NONE)
    }

    /// TxnOffsetCommit: appends the offsets to the group's partition inside
    /// the producer's transaction (durable), then holds them until its
    /// marker. An epoch older than the partition's (a marker fenced it) is
    /// PRODUCER_FENCED.
    async fn txn_commit_durably(
        &self,
        group_id: &str,
        partition: i32,
        producer_id: i64,
        epoch: i16,
        offsets: Vec<(OffsetKey, CommittedOffset)>,
    ) -> i16 {
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
        let Some(log) = self.partitions.get(&tp) else {
            return COORDINATOR_NOT_AVAILABLE;
        };
        let records: Vec<(bytes::Bytes, bytes::Bytes)> = offsets
            .iter()
            .map(|(key, value)| (encode_key(group_id, key), encode_value(value)))
            .collect();
        let refs: Vec<(&[u8], Option<&[u8]>)> = records
            .iter()
            .map(|(k, v)| (k.as_ref(), Some(v.as_ref())))
            .collect();
        // One producer's appends take their sequences one after another.
        let _in_order = self.groups.txn_appends.lock().await;
        if let Err(code) = self.coordinator_leads(&tp) {
            return code;
        }
        match log
            .append_internal_txn(&refs, producer_id, epoch, rt::wall_clock_ms())
            .await
        {
            Ok(info) => {
                if let Err(code) = self.coordinator_replicated(&tp, &log, &info).await {
                    return code;
                }
                self.groups.coordinator.borrow_mut().stage_txn_offsets(
                    producer_id,
                    group_id,
                    offsets,
                );
                NONE
            }
            Err(engine::Error::Producer(e)) => {
                tracing::debug!(group = %group_id, error = %e, "transactional offsets refused");
                PRODUCER_FENCED
            }
            Err(e) => {
                tracing::error!(partition = %tp, error = %e, "cannot append to the offsets topic");
                KAFKA_STORAGE_ERROR
            }
        }
    }

    /// A transaction marker for `producer_id` reached partition `partition`
    /// of `__consumer_offsets` (`append` writes it): the offsets the
    /// transaction holds there are committed or dropped. The partition is
    /// replayed first (so the replay covers everything before the marker
    /// and memory takes the marker itself).
    pub(super) async fn offsets_marker(
        &self,
        partition: i32,
        producer_id: i64,
        commit: bool,
        append: impl std::future::Future<Output = engine::Result<engine::AppendInfo>>,
    ) -> engine::Result<engine::AppendInfo> {
        let loaded = self.load_offsets(partition).await.is_ok();
        let written = append.await?;
        let partitions = self.internal_partition_count(OFFSETS_TOPIC);
        if loaded {
            self.groups
                .coordinator
                .borrow_mut()
                .end_txn_offsets(producer_id, commit, |group| {
                    offsets_partition(group, partitions) == partition
                });
        }
        Ok(written)
    }

    /// Appends records (a value: a commit; none: a tombstone) to partition
    /// `partition` of `__consumer_offsets`, durably, and applies them in
    /// memory with `apply`.
    async fn append_offset_records(
        &self,
        partition: i32,
        records: Vec<(bytes::Bytes, Option<bytes::Bytes>)>,
        apply: impl FnOnce(&mut Coordinator),
    ) -> Result<(), i16> {
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
        let log = self.partitions.get(&tp).ok_or(COORDINATOR_NOT_AVAILABLE)?;
        let refs: Vec<(&[u8], Option<&[u8]>)> = records
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_deref()))
            .collect();
        {
            self.coordinator_leads(&tp)?;
            let info = log
                .append_internal(&refs, rt::wall_clock_ms())
                .await
                .map_err(|e| {
                    tracing::error!(partition = %tp, error = %e, "cannot append to the offsets topic");
                    KAFKA_STORAGE_ERROR
                })?;
            self.coordinator_replicated(&tp, &log, &info).await?;
            apply(&mut self.groups.coordinator.borrow_mut());
        }
        Ok(())
    }

    /// Deletes the offsets past `offsets.retention.minutes` (of groups
    /// without members) in the partitions this shard has replayed.
    async fn expire_offsets(&self) {
        let retention = self.settings.offsets_retention_ms;
        let expired = self
            .groups
            .coordinator
            .borrow()
            .expired_offsets(rt::wall_clock_ms(), retention);
        if expired.is_empty() {
            return;
        }
        let partitions = self.internal_partition_count(OFFSETS_TOPIC);
        let mut by_group: BTreeMap<String, Vec<OffsetKey>> = BTreeMap::new();
        for (group, key) in expired {
            by_group.entry(group).or_default().push(key);
        }
        for (group, keys) in by_group {
            let partition = offsets_partition(&group, partitions);
            if self
                .write_tombstones(&group, partition, &keys)
                .await
                .is_ok()
            {
                tracing::info!(group, offsets = keys.len(), "committed offsets expired");
            }
        }
        self.groups.coordinator.borrow_mut().drop_empty_groups();
    }

    /// Forgets what was replayed of partition `partition` of
    /// `__consumer_offsets` (its groups; their held joins and syncs are
    /// answered NOT_COORDINATOR).
    fn unload_offsets(&self, partition: i32) {
        if self.groups.loaded.borrow_mut().remove(&partition).is_none() {
            return;
        }
        let partitions = self.internal_partition_count(OFFSETS_TOPIC);
        let replies = self
            .groups
            .coordinator
            .borrow_mut()
            .unload(|group| offsets_partition(group, partitions) == partition);
        self.groups.deliver(replies);
        tracing::info!(
            partition,
            "groups unloaded: their partition is led elsewhere now"
        );
    }

    /// After new metadata: the groups of the partitions this broker no
    /// longer leads (or leads at a new epoch, maybe written by another
    /// leader meanwhile) are unloaded, so nothing answers or writes for
    /// them here; the next request replays them again if led here.
    pub(super) fn unload_moved_groups(&self) {
        let moved: Vec<i32> = self
            .groups
            .loaded
            .borrow()
            .iter()
            .filter(|&(&p, &epoch)| {
                let tp = TopicPartition::new(OFFSETS_TOPIC, p);
                !self.leads(OFFSETS_TOPIC, p) || self.leader_epoch_of(&tp) != epoch
            })
            .map(|(&p, _)| p)
            .collect();
        for partition in moved {
            self.unload_offsets(partition);
        }
    }

    /// Replays partition `partition` of `__consumer_offsets` once.
    async fn load_offsets(&self, partition: i32) -> Result<(), i16> {
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
        let epoch = self.leader_epoch_of(&tp);
        if self.groups.loaded.borrow().get(&partition) == Some(&epoch) {
            return Ok(());
        }
        let _one_at_a_time = self.groups.loading.lock().await;
        if self.groups.loaded.borrow().get(&partition) == Some(&epoch) {
            return Ok(());
        }
        // Replayed at an earlier leadership: stale since.
        self.unload_offsets(partition);
        let log = self
            .created_partition(&tp)
            .await
            .ok_or(COORDINATOR_NOT_AVAILABLE)?;
        let records = log.read_internal(0).await.map_err(|e| {
            tracing::error!(partition = %tp, error = %e, "cannot replay committed offsets");
            COORDINATOR_NOT_AVAILABLE
        })?;
        let partitions = self.internal_partition_count(OFFSETS_TOPIC);
        let mut coordinator = self.groups.coordinator.borrow_mut();
        let count = records.len();
        for record in records {
            if let InternalTxn::Marker {
                producer_id,
                commit,
            } = record.txn
            {
                coordinator.end_txn_offsets(producer_id, commit, |group| {
                    offsets_partition(group, partitions) == partition
                });
                continue;
            }
            let Some((group, key)) = record.key.as_deref().and_then(decode_key) else {
                continue;
            };
            match record.value.as_deref().map(decode_value) {
                Some(Some(value)) => match record.txn {
                    InternalTxn::Data { producer_id } => {
                        coordinator.stage_txn_offsets(producer_id, &group, vec![(key, value)])
                    }
                    _ => coordinator.commit(&group, vec![(key, value)]),
                },
                None => coordinator.forget(&group, &key),
                Some(None) => {
                    tracing::warn!(partition = %tp, offset = record.offset, "unreadable committed offset skipped")
                }
            }
        }
        drop(coordinator);
        tracing::info!(partition = %tp, records = count, "committed offsets replayed");
        self.groups.loaded.borrow_mut().insert(partition, epoch);
        Ok(())
    }
}

/// The topics a consumer-protocol member subscribes to (its metadata is a
/// ConsumerProtocolSubscription: a version, then the body at it).
fn subscribed_topics(metadata: &bytes::Bytes) -> Vec<String> {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    let mut bytes = metadata.clone();
    let Some(version) = bytes.first_chunk::<2>().map(|v| i16::from_be_bytes(*v)) else {
        return Vec::new();
    };
    bytes::Buf::advance(&mut bytes, 2);
    // Newer versions only add fields: read them as the newest we know.
    let version = version.clamp(0, 3);
    // The member's metadata is the client's bytes: walked before decoding.
    let schema = crate::protocol::schema::CONSUMER_PROTOCOL_SUBSCRIPTION;
    match crate::protocol::schema::check(schema, version, &bytes) {
        Ok(checked) if checked.decoded_bytes <= crate::limits::DECODED_BYTES_MAX_PER_REQUEST => {}
        Ok(checked) => {
            tracing::debug!(
                decoded_bytes = checked.decoded_bytes,
                "a member's subscription is too large to decode"
            );
            return Vec::new();
        }
        Err(e) => {
            tracing::debug!(error = %e, "a member's subscription does not decode");
            return Vec::new();
        }
    }
    ConsumerProtocolSubscription::decode(&mut bytes, version)
        .map(|s| s.topics.into_iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}
