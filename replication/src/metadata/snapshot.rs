//! A metadata snapshot: the whole [`ClusterMetadata`] at one point of the
//! metadata log, so the log before it can go (KRaft's snapshots; Raft's
//! log compaction).
//!
//! Encoding: one version byte, then the rkyv archive of [`SnapshotV3`]
//! (version 2's state and the ACLs; version 2: version 1's and the users'
//! SCRAM credentials). Each version is
//! its own structs, never edited: the state's types may change, a
//! snapshot written by an older build still decodes. Decoding copies the
//! archive into aligned memory and validates it (bytecheck) before use,
//! then checks what the state's own records would have guaranteed
//! (partitions of existing topics, unique names and ids), so a damaged or
//! foreign snapshot is an error, never a panic or a state no replay makes.

use std::collections::BTreeMap;

use rkyv::rancor;

use super::{
    AclBinding, BrokerRegistration, ClusterMetadata, DecodeError, Endpoint, PartitionState,
    StoredScram, TopicId, TopicMetadata,
};

const VERSION_1: u8 = 1;
const VERSION_2: u8 = 2;
const VERSION_3: u8 = 3;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct SnapshotV3 {
    base: SnapshotV2,
    acls: Vec<AclBinding>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct SnapshotV2 {
    base: SnapshotV1,
    scram: Vec<ScramV1>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct ScramV1 {
    user: String,
    mechanism: i8,
    credential: StoredScram,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct SnapshotV1 {
    topics: Vec<TopicV1>,
    broker_configs: BTreeMap<String, String>,
    next_producer_id: i64,
    brokers: Vec<BrokerV1>,
    partitions: Vec<PartitionV1>,
    applied: u64,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct TopicV1 {
    name: String,
    topic_id: TopicId,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct BrokerV1 {
    broker_id: i32,
    broker_epoch: u64,
    incarnation: u64,
    endpoints: Vec<Endpoint>,
    fenced: bool,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct PartitionV1 {
    topic_id: TopicId,
    partition: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    adding: Vec<i32>,
    removing: Vec<i32>,
}

impl ClusterMetadata {
    /// The whole state, encoded.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let scram = self
            .scram
            .iter()
            .map(|((user, mechanism), credential)| ScramV1 {
                user: user.clone(),
                mechanism: *mechanism,
                credential: credential.clone(),
            })
            .collect();
        let snapshot = SnapshotV3 {
            base: SnapshotV2 {
                base: self.snapshot_v1(),
                scram,
            },
            acls: self.acls.iter().cloned().collect(),
        };
        let mut out = vec![VERSION_3];
        out.extend_from_slice(&crate::archive::to_bytes(&snapshot));
        out
    }

    fn snapshot_v1(&self) -> SnapshotV1 {
        SnapshotV1 {
            topics: self
                .topics
                .values()
                .map(|t| TopicV1 {
                    name: t.name.clone(),
                    topic_id: t.topic_id,
                    partitions: t.partitions,
                    configs: t.configs.clone(),
                })
                .collect(),
            broker_configs: self.broker_configs.clone(),
            next_producer_id: self.next_producer_id,
            brokers: self
                .brokers
                .values()
                .map(|b| BrokerV1 {
                    broker_id: b.broker_id,
                    broker_epoch: b.broker_epoch,
                    incarnation: b.incarnation,
                    endpoints: b.endpoints.clone(),
                    fenced: b.fenced,
                })
                .collect(),
            partitions: self
                .partitions
                .iter()
                .map(|(&(topic_id, partition), p)| PartitionV1 {
                    topic_id,
                    partition,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    adding: p.adding.clone(),
                    removing: p.removing.clone(),
                })
                .collect(),
            applied: self.applied,
        }
    }

    /// The state a snapshot holds, checked.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<ClusterMetadata, DecodeError> {
        let (&version, archive) = bytes.split_first().ok_or(DecodeError::Empty)?;
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(archive.len());
        aligned.extend_from_slice(archive);
        let without_acls = |base| SnapshotV3 {
            base,
            acls: Vec::new(),
        };
        let snapshot = match version {
            VERSION_1 => without_acls(SnapshotV2 {
                base: rkyv::from_bytes::<SnapshotV1, rancor::Error>(&aligned)
                    .map_err(DecodeError::Invalid)?,
                scram: Vec::new(),
            }),
            VERSION_2 => without_acls(
                rkyv::from_bytes::<SnapshotV2, rancor::Error>(&aligned)
                    .map_err(DecodeError::Invalid)?,
            ),
            VERSION_3 => rkyv::from_bytes::<SnapshotV3, rancor::Error>(&aligned)
                .map_err(DecodeError::Invalid)?,
            other => return Err(DecodeError::Version(other)),
        };
        from_snapshot(snapshot).map_err(DecodeError::Inconsistent)
    }
}

fn from_snapshot(snapshot: SnapshotV3) -> Result<ClusterMetadata, String> {
    let mut state = from_snapshot_v1(snapshot.base.base)?;
    for acl in snapshot.acls {
        if let Some(why) = acl.invalid() {
            return Err(format!("an invalid ACL: {why}"));
        }
        if !state.acls.insert(acl) {
            return Err("an ACL twice".into());
        }
    }
    for ScramV1 {
        user,
        mechanism,
        credential,
    } in snapshot.base.scram
    {
        if state.scram.insert((user, mechanism), credential).is_some() {
            return Err("a SCRAM credential twice".into());
        }
    }
    Ok(state)
}

fn from_snapshot_v1(snapshot: SnapshotV1) -> Result<ClusterMetadata, String> {
    let mut state = ClusterMetadata {
        broker_configs: snapshot.broker_configs,
        next_producer_id: snapshot.next_producer_id,
        applied: snapshot.applied,
        ..ClusterMetadata::default()
    };
    for t in snapshot.topics {
        if state.topic_by_id(t.topic_id).is_some() || state.topics.contains_key(&t.name) {
            return Err(format!("topic {:?} twice", t.name));
        }
        let topic = TopicMetadata {
            name: t.name.clone(),
            topic_id: t.topic_id,
            partitions: t.partitions,
            configs: t.configs,
        };
        state.topics.insert(t.name, topic);
    }
    for b in snapshot.brokers {
        let broker = BrokerRegistration {
            broker_id: b.broker_id,
            broker_epoch: b.broker_epoch,
            incarnation: b.incarnation,
            endpoints: b.endpoints,
            fenced: b.fenced,
        };
        if state.brokers.insert(b.broker_id, broker).is_some() {
            return Err(format!("broker {} twice", b.broker_id));
        }
    }
    for p in snapshot.partitions {
        let exists = state
            .topic_by_id(p.topic_id)
            .is_some_and(|topic| (0..topic.partitions).contains(&p.partition));
        if !exists {
            return Err(format!(
                "partition {} of an unknown topic {:?}",
                p.partition, p.topic_id
            ));
        }
        let partition = PartitionState {
            replicas: p.replicas,
            isr: p.isr,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            adding: p.adding,
            removing: p.removing,
        };
        if state
            .partitions
            .insert((p.topic_id, p.partition), partition)
            .is_some()
        {
            return Err(format!("partition {} twice", p.partition));
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot as builds before SCRAM credentials wrote it (version 1)
    /// decodes to the same state.
    #[test]
    fn version_1_snapshots_still_decode() {
        let mut state = ClusterMetadata::default();
        let record = state
            .decide(
                super::super::Command::CreateTopic {
                    name: "orders".into(),
                    partitions: 3,
                    replication_factor: 1,
                    configs: BTreeMap::new(),
                },
                TopicId([7; 16]),
            )
            .unwrap();
        state.apply(record).unwrap();
        let mut v1 = vec![VERSION_1];
        v1.extend_from_slice(&crate::archive::to_bytes(&state.snapshot_v1()));
        assert_eq!(ClusterMetadata::decode_snapshot(&v1).unwrap(), state);
    }
}
