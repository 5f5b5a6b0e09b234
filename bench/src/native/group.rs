//! The native consumer as a member of a classic consumer group, as the
//! Java client's consumer with the range assignor: find the coordinator,
//! join (KIP-394: a first join without a member id gets one), the leader
//! assigns every subscribed partition in ranges, sync, resume from the
//! committed offsets, heartbeat beside the fetches. When the coordinator
//! says the group rebalances, the member commits what it has read before
//! it joins again, so the next owner of a partition reads on from there
//! and no message is read twice; on stop it commits and leaves.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::consumer::{Fetcher, TopicPartition};
use super::wire::{self, Connection, Pool, Versions};
use crate::tally::ConsumerHandle;

const SESSION_TIMEOUT_MS: i32 = 10_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1_000);
const ASSIGNOR: &str = "range";
/// Kafka's error codes a member acts on.
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

/// The versions this member speaks, each the highest the broker serves.
struct Apis {
    find_coordinator: i16,
    join: i16,
    sync: i16,
    heartbeat: i16,
    leave: i16,
    offset_fetch: i16,
    offset_commit: i16,
}

impl Apis {
    fn new(versions: &Versions) -> anyhow::Result<Apis> {
        Ok(Apis {
            find_coordinator: versions.pick(ApiKey::FindCoordinator, 0..=3)?,
            join: versions.pick(ApiKey::JoinGroup, 0..=5)?,
            sync: versions.pick(ApiKey::SyncGroup, 0..=3)?,
            heartbeat: versions.pick(ApiKey::Heartbeat, 0..=3)?,
            leave: versions.pick(ApiKey::LeaveGroup, 0..=3)?,
            offset_fetch: versions.pick(ApiKey::OffsetFetch, 1..=7)?,
            offset_commit: versions.pick(ApiKey::OffsetCommit, 2..=7)?,
        })
    }
}

/// One member's standing in its group.
struct Member {
    group: GroupId,
    topics: Vec<String>,
    apis: Apis,
    coordinator: Rc<Connection>,
    member_id: StrBytes,
    generation: i32,
}

/// Reads the group's share of `topics` until the run says stop.
pub async fn consume(
    pool: &mut Pool,
    versions: &Versions,
    fetcher: &mut Fetcher,
    group: &str,
    topics: &[String],
    tally: &ConsumerHandle,
) -> anyhow::Result<()> {
    let apis = Apis::new(versions)?;
    let group = GroupId(StrBytes::from_string(group.to_string()));
    let coordinator = find_coordinator(pool, &apis, &group).await?;
    let mut member = Member {
        group,
        topics: topics.to_vec(),
        apis,
        coordinator,
        member_id: StrBytes::default(),
        generation: -1,
    };
    while !tally.stopped() {
        let assigned = member.join(pool, versions).await?;
        tally.owns(assigned.len() as u64);
        let committed = member.committed(&assigned).await?;
        fetcher.assign(committed);
        // Heartbeats run beside the fetches until this generation ends.
        let ended: Rc<Cell<Option<i16>>> = Rc::default();
        spawn_heartbeats(&member, Rc::clone(&ended));
        while !tally.stopped() && ended.get().is_none() {
            fetcher.step(pool, tally).await?;
        }
        let why = ended.get();
        // Stops the heartbeats if they still run.
        ended.set(Some(why.unwrap_or(0)));
        member.commit(&fetcher.positions()).await?;
        fetcher.assign(Vec::new());
        tally.owns(0);
        if matches!(why, Some(UNKNOWN_MEMBER_ID)) {
            member.member_id = StrBytes::default();
        }
    }
    member.leave().await
}

/// The group's coordinator, asked of the bootstrap broker until it has one.
async fn find_coordinator(
    pool: &mut Pool,
    apis: &Apis,
    group: &GroupId,
) -> anyhow::Result<Rc<Connection>> {
    let mut waited = 0;
    loop {
        let any = pool.bootstrap().await?;
        let request = FindCoordinatorRequest::default()
            .with_key(group.0.clone())
            .with_key_type(0);
        let answer: FindCoordinatorResponse = any
            .call(ApiKey::FindCoordinator, apis.find_coordinator, &request)
            .await?;
        if answer.error_code == 0 {
            return pool
                .get(&format!("{}:{}", answer.host.as_str(), answer.port))
                .await;
        }
        anyhow::ensure!(
            waited < 300
                && [COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS]
                    .contains(&answer.error_code),
            "FindCoordinator({}): error {}",
            group.0.as_str(),
            answer.error_code
        );
        waited += 1;
        wire::sleep(Duration::from_millis(100)).await;
    }
}

impl Member {
    /// Joins (again) and syncs: the partitions this generation gives the
    /// member.
    async fn join(
        &mut self,
        pool: &mut Pool,
        versions: &Versions,
    ) -> anyhow::Result<Vec<TopicPartition>> {
        // What each attempt was answered, for the error if none succeeds.
        let mut answers = Vec::new();
        for _ in 0..100 {
            let answer = self.join_once().await?;
            answers.push(format!("join {}", answer.error_code));
            match answer.error_code {
                0 => {}
                MEMBER_ID_REQUIRED => {
                    self.member_id = answer.member_id;
                    continue;
                }
                UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION => {
                    self.member_id = StrBytes::default();
                    continue;
                }
                REBALANCE_IN_PROGRESS | COORDINATOR_LOAD_IN_PROGRESS => {
                    wire::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR => {
                    // As Kafka's clients: after a pause (retry.backoff.ms).
                    wire::sleep(Duration::from_millis(100)).await;
                    self.coordinator = find_coordinator(pool, &self.apis, &self.group).await?;
                    continue;
                }
                code => anyhow::bail!("JoinGroup({}): error {code}", self.group.0.as_str()),
            }
            self.member_id = answer.member_id.clone();
            self.generation = answer.generation_id;
            let assignments = if answer.leader == answer.member_id {
                self.assign(pool, versions, &answer).await?
            } else {
                Vec::new()
            };
            let request = SyncGroupRequest::default()
                .with_group_id(self.group.clone())
                .with_generation_id(self.generation)
                .with_member_id(self.member_id.clone())
                .with_assignments(assignments);
            let synced: SyncGroupResponse = self
                .coordinator
                .call(ApiKey::SyncGroup, self.apis.sync, &request)
                .await?;
            answers.push(format!("sync {}", synced.error_code));
            match synced.error_code {
                0 => return decode_assignment(synced.assignment),
                REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => continue,
                UNKNOWN_MEMBER_ID => {
                    self.member_id = StrBytes::default();
                    continue;
                }
                code => anyhow::bail!("SyncGroup({}): error {code}", self.group.0.as_str()),
            }
        }
        anyhow::bail!(
            "no stable membership of {} after 100 joins; the answers (error codes): {}",
            self.group.0.as_str(),
            answers.join(", ")
        )
    }

    async fn join_once(&self) -> anyhow::Result<JoinGroupResponse> {
        let subscription = ConsumerProtocolSubscription::default().with_topics(
            self.topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        );
        let request = JoinGroupRequest::default()
            .with_group_id(self.group.clone())
            .with_session_timeout_ms(SESSION_TIMEOUT_MS)
            .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
            .with_member_id(self.member_id.clone())
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(ASSIGNOR))
                    .with_metadata(versioned(&subscription, 0)?),
            ]);
        self.coordinator
            .call(ApiKey::JoinGroup, self.apis.join, &request)
            .await
    }

    /// The leader's work: every member's partitions, in ranges.
    async fn assign(
        &self,
        pool: &mut Pool,
        versions: &Versions,
        answer: &JoinGroupResponse,
    ) -> anyhow::Result<Vec<SyncGroupRequestAssignment>> {
        let mut subscriptions = BTreeMap::new();
        for member in &answer.members {
            let mut metadata = member.metadata.clone();
            anyhow::ensure!(
                metadata.remaining() >= 2,
                "a member's subscription is empty"
            );
            let version = metadata.get_i16();
            let subscription = ConsumerProtocolSubscription::decode(&mut metadata, version)?;
            let topics: Vec<String> = subscription.topics.iter().map(|t| t.to_string()).collect();
            subscriptions.insert(member.member_id.to_string(), topics);
        }
        let mut all: Vec<String> = subscriptions.values().flatten().cloned().collect();
        all.sort();
        all.dedup();
        let bootstrap = pool.bootstrap().await?;
        let leaders = wire::leaders(&bootstrap, versions, &all).await?;
        let partitions: BTreeMap<String, i32> = leaders
            .iter()
            .map(|(topic, l)| (topic.clone(), l.len() as i32))
            .collect();
        range_assign(&subscriptions, &partitions)
            .into_iter()
            .map(|(member, owned)| {
                let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
                    owned
                        .into_iter()
                        .map(|(topic, partitions)| {
                            AssignedTopic::default()
                                .with_topic(TopicName(StrBytes::from_string(topic)))
                                .with_partitions(partitions)
                        })
                        .collect(),
                );
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member))
                    .with_assignment(versioned(&assignment, 0)?))
            })
            .collect()
    }

    /// Where to read each partition from: its committed offset, or None.
    async fn committed(
        &self,
        assigned: &[TopicPartition],
    ) -> anyhow::Result<Vec<(TopicPartition, Option<i64>)>> {
        let request = OffsetFetchRequest::default()
            .with_group_id(self.group.clone())
            .with_topics(Some(
                by_topic(assigned.iter().map(|tp| (tp.clone(), ())))
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic)))
                            .with_partition_indexes(
                                partitions.into_iter().map(|(p, ())| p).collect(),
                            )
                    })
                    .collect(),
            ));
        let answer: OffsetFetchResponse = self
            .coordinator
            .call(ApiKey::OffsetFetch, self.apis.offset_fetch, &request)
            .await?;
        anyhow::ensure!(
            answer.error_code == 0,
            "OffsetFetch: error {}",
            answer.error_code
        );
        let mut committed: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for topic in &answer.topics {
            for p in &topic.partitions {
                if p.error_code == 0 && p.committed_offset >= 0 {
                    committed.insert(
                        (topic.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    );
                }
            }
        }
        Ok(assigned
            .iter()
            .map(|tp| (tp.clone(), committed.get(tp).copied()))
            .collect())
    }

    /// Commits positions under this generation. A refused commit (the
    /// group moved on without this member) is reported, not fatal.
    async fn commit(&self, positions: &[(TopicPartition, i64)]) -> anyhow::Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        let topics = by_topic(positions.iter().cloned())
            .into_iter()
            .map(|(topic, partitions)| {
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(partition, offset)| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(partition)
                                    .with_committed_offset(offset)
                            })
                            .collect(),
                    )
            })
            .collect();
        let request = OffsetCommitRequest::default()
            .with_group_id(self.group.clone())
            .with_generation_id_or_member_epoch(self.generation)
            .with_member_id(self.member_id.clone())
            .with_retention_time_ms(-1)
            .with_topics(topics);
        let answer: OffsetCommitResponse = self
            .coordinator
            .call(ApiKey::OffsetCommit, self.apis.offset_commit, &request)
            .await?;
        let refused: Vec<i16> = answer
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| p.error_code)
            .filter(|&code| code != 0)
            .collect();
        if !refused.is_empty() {
            eprintln!(
                "consumer: commit of {} refused: errors {refused:?}",
                self.group.0.as_str()
            );
        }
        Ok(())
    }

    async fn leave(&self) -> anyhow::Result<()> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        let mut request = LeaveGroupRequest::default().with_group_id(self.group.clone());
        if self.apis.leave >= 3 {
            request = request.with_members(vec![
                MemberIdentity::default().with_member_id(self.member_id.clone()),
            ]);
        } else {
            request = request.with_member_id(self.member_id.clone());
        }
        let _: LeaveGroupResponse = self
            .coordinator
            .call(ApiKey::LeaveGroup, self.apis.leave, &request)
            .await?;
        Ok(())
    }
}

/// Heartbeats every HEARTBEAT_INTERVAL until `ended` is set; sets it to
/// the error that ends the generation (a rebalance, a lost membership).
fn spawn_heartbeats(member: &Member, ended: Rc<Cell<Option<i16>>>) {
    let coordinator = Rc::clone(&member.coordinator);
    let version = member.apis.heartbeat;
    let request = HeartbeatRequest::default()
        .with_group_id(member.group.clone())
        .with_generation_id(member.generation)
        .with_member_id(member.member_id.clone());
    wire::spawn(async move {
        loop {
            wire::sleep(HEARTBEAT_INTERVAL).await;
            if ended.get().is_some() {
                return;
            }
            let answer: anyhow::Result<HeartbeatResponse> =
                coordinator.call(ApiKey::Heartbeat, version, &request).await;
            match answer.map(|a| a.error_code) {
                Ok(0) => {}
                Ok(code) => {
                    ended.set(Some(code));
                    return;
                }
                Err(_) => {
                    ended.set(Some(NOT_COORDINATOR));
                    return;
                }
            }
        }
    });
}

/// `message` after its version, as the consumer protocol carries it.
fn versioned<M: Encodable>(message: &M, version: i16) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message.encode(&mut buf, version)?;
    Ok(buf.freeze())
}

fn decode_assignment(mut bytes: Bytes) -> anyhow::Result<Vec<TopicPartition>> {
    if bytes.remaining() < 2 {
        return Ok(Vec::new());
    }
    let version = bytes.get_i16();
    let assignment = ConsumerProtocolAssignment::decode(&mut bytes, version)?;
    Ok(assignment
        .assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.0.to_string(), p)))
        .collect())
}

/// Values of each topic's partitions, grouped by topic.
fn by_topic<V>(
    items: impl Iterator<Item = (TopicPartition, V)>,
) -> BTreeMap<String, Vec<(i32, V)>> {
    let mut out: BTreeMap<String, Vec<(i32, V)>> = BTreeMap::new();
    for ((topic, partition), value) in items {
        out.entry(topic).or_default().push((partition, value));
    }
    out
}

/// The range assignor (Kafka's `RangeAssignor`): for each topic, its
/// subscribers in member-id order each take a contiguous run of
/// partitions, the first `partitions % members` one more than the rest.
/// Every member gets an entry, possibly empty.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<i32>>> = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for (topic, &count) in partitions {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        let Ok(n) = i32::try_from(members.len()) else {
            continue;
        };
        if n == 0 {
            continue;
        }
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, member) in (0..).zip(members) {
            let take = each + i32::from(i < extra);
            let owned: Vec<i32> = (next..next + take).collect();
            next += take;
            if let Some(mine) = out.get_mut(member) {
                mine.insert(topic.clone(), owned);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_assignor_splits_each_topic_as_kafkas_does() {
        let subscriptions: BTreeMap<String, Vec<String>> = [
            ("m-a", vec!["t0", "t1"]),
            ("m-b", vec!["t0", "t1"]),
            ("m-c", vec!["t1"]),
        ]
        .into_iter()
        .map(|(m, ts)| (m.to_string(), ts.into_iter().map(String::from).collect()))
        .collect();
        let partitions: BTreeMap<String, i32> =
            [("t0".to_string(), 3), ("t1".to_string(), 4)].into();
        let got = range_assign(&subscriptions, &partitions);
        let of = |m: &str, t: &str| got[m].get(t).cloned().unwrap_or_default();
        assert_eq!(of("m-a", "t0"), vec![0, 1]);
        assert_eq!(of("m-b", "t0"), vec![2]);
        assert_eq!(of("m-c", "t0"), Vec::<i32>::new());
        assert_eq!(of("m-a", "t1"), vec![0, 1]);
        assert_eq!(of("m-b", "t1"), vec![2]);
        assert_eq!(of("m-c", "t1"), vec![3]);
    }

    #[test]
    fn more_members_than_partitions_leaves_some_idle() {
        let subscriptions: BTreeMap<String, Vec<String>> = (0..4)
            .map(|i| (format!("m{i}"), vec!["t".to_string()]))
            .collect();
        let got = range_assign(&subscriptions, &[("t".to_string(), 2)].into());
        let owned: Vec<usize> = got.values().map(|t| t["t"].len()).collect();
        assert_eq!(owned, vec![1, 1, 0, 0]);
    }

    #[test]
    fn assignments_round_trip_through_the_consumer_protocol() {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            AssignedTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![0, 2]),
        ]);
        let bytes = versioned(&assignment, 0).unwrap();
        assert_eq!(&bytes[..2], &[0, 0], "version 0 first");
        assert_eq!(
            decode_assignment(bytes).unwrap(),
            vec![("t".to_string(), 0), ("t".to_string(), 2)]
        );
        assert!(decode_assignment(Bytes::new()).unwrap().is_empty());
    }
}
