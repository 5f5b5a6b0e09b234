//! Metadata records: what the metadata log holds, one per change.
//!
//! Encoding: one version byte, then the rkyv archive of the record: version
//! 1 for the records of the first single-node broker (topics, configs,
//! producer ids), version 2 for the cluster's (brokers, partition
//! leadership), version 3 for partition records during a reassignment
//! (a partition record without one is still written as version 2),
//! version 4 for users' SCRAM credentials, version 5 for ACLs. Each
//! version is its own archived enum, never edited, so records written by
//! older builds decode unchanged.
//! Decoding copies the archive into aligned memory and validates it
//! (bytecheck) before use, so damaged or foreign bytes are an error.

use std::collections::BTreeMap;
use std::fmt;

use rkyv::rancor;

use super::{AclBinding, StoredScram};

/// Kafka's 16-byte topic id (a UUID).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    /// Kafka's "no topic id" (all zero); never given to a topic.
    pub const ZERO: TopicId = TopicId([0; 16]);
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Where clients reach a broker: one listener's advertised address.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Endpoint {
    /// The listener's name ("PLAINTEXT" until named listeners exist).
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// One change to the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    TopicCreated {
        name: String,
        topic_id: TopicId,
        partitions: i32,
        configs: BTreeMap<String, String>,
    },
    TopicDeleted {
        name: String,
        topic_id: TopicId,
    },
    PartitionsCreated {
        name: String,
        total: i32,
    },
    /// `topic: None` alters the broker defaults.
    ConfigsAltered {
        topic: Option<String>,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    /// Producer ids `[first, first + count)` handed to a shard: never
    /// handed out again, whatever restarts follow.
    ProducerIdsAllocated {
        first: i64,
        count: i64,
    },
    /// A broker (re)joins the cluster, fenced until it has caught up. Its
    /// broker epoch is this record's position in the metadata log, so a
    /// restarted broker's requests are told from its previous life's.
    BrokerRegistered {
        broker_id: i32,
        /// Drawn once per process: a second process claiming the same id
        /// while the first is alive is refused.
        incarnation: u64,
        endpoints: Vec<Endpoint>,
    },
    /// The broker may lead and serve partitions (it caught up and
    /// heartbeats).
    BrokerUnfenced {
        broker_id: i32,
        broker_epoch: u64,
    },
    /// The broker stopped heartbeating (or shut down): it leads nothing.
    BrokerFenced {
        broker_id: i32,
        broker_epoch: u64,
    },
    /// A partition's replicas, in-sync replicas and leader, whole (Kafka's
    /// PartitionRecord and PartitionChangeRecord in one). Applying it bumps
    /// the partition epoch; `leader_epoch` is the decider's to bump.
    PartitionChanged {
        topic_id: TopicId,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        /// -1: no leader (every in-sync replica is fenced).
        leader: i32,
        leader_epoch: i32,
        /// During a reassignment (KIP-455): the replicas being added (in
        /// `replicas`, catching up) and being removed (in `replicas` until
        /// every target replica is in sync). Both empty otherwise.
        adding: Vec<i32>,
        removing: Vec<i32>,
    },
    /// A user's credential for a SCRAM mechanism (Kafka's number: 1
    /// SCRAM-SHA-256, 2 SCRAM-SHA-512), replacing the one it had.
    ScramCredentialSet {
        user: String,
        mechanism: i8,
        credential: StoredScram,
    },
    ScramCredentialDeleted {
        user: String,
        mechanism: i8,
    },
    AclCreated(AclBinding),
    AclDeleted(AclBinding),
}

/// The records of version 1, exactly as they were first written (rkyv's
/// layout follows the variants' order and fields: never edit this enum;
/// add records to [`RecordV2`]).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
enum RecordV1 {
    TopicCreated {
        name: String,
        topic_id: TopicId,
        partitions: i32,
        configs: BTreeMap<String, String>,
    },
    TopicDeleted {
        name: String,
        topic_id: TopicId,
    },
    PartitionsCreated {
        name: String,
        total: i32,
    },
    ConfigsAltered {
        topic: Option<String>,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    ProducerIdsAllocated {
        first: i64,
        count: i64,
    },
}

/// The cluster's records (version 2): brokers and partition leadership.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
enum RecordV2 {
    BrokerRegistered {
        broker_id: i32,
        incarnation: u64,
        endpoints: Vec<Endpoint>,
    },
    BrokerUnfenced {
        broker_id: i32,
        broker_epoch: u64,
    },
    BrokerFenced {
        broker_id: i32,
        broker_epoch: u64,
    },
    PartitionChanged {
        topic_id: TopicId,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
    },
}

/// Version 3: a partition record with a reassignment in progress.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
enum RecordV3 {
    PartitionChanged {
        topic_id: TopicId,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        adding: Vec<i32>,
        removing: Vec<i32>,
    },
}

/// Version 4: users' SCRAM credentials.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
enum RecordV4 {
    ScramCredentialSet {
        user: String,
        mechanism: i8,
        credential: StoredScram,
    },
    ScramCredentialDeleted {
        user: String,
        mechanism: i8,
    },
}

const VERSION_1: u8 = 1;
const VERSION_2: u8 = 2;
const VERSION_3: u8 = 3;
const VERSION_4: u8 = 4;
const VERSION_5: u8 = 5;

/// Version 5: ACLs.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
enum RecordV5 {
    AclCreated(AclBinding),
    AclDeleted(AclBinding),
}

/// Bytes that are not a metadata record of a version we read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty metadata record")]
    Empty,
    #[error("metadata record version {0} is not supported")]
    Version(u8),
    #[error("invalid metadata record: {0}")]
    Invalid(#[source] rancor::Error),
    /// A snapshot whose parts contradict each other.
    #[error("inconsistent metadata snapshot: {0}")]
    Inconsistent(String),
}

fn archive<T>(version: u8, value: &T) -> Vec<u8>
where
    T: for<'a> rkyv::Serialize<crate::archive::Serializer<'a>>,
{
    let mut out = vec![version];
    out.extend_from_slice(&crate::archive::to_bytes(value));
    out
}

impl MetadataRecord {
    pub fn encode(&self) -> Vec<u8> {
        match self.clone() {
            MetadataRecord::TopicCreated {
                name,
                topic_id,
                partitions,
                configs,
            } => archive(
                VERSION_1,
                &RecordV1::TopicCreated {
                    name,
                    topic_id,
                    partitions,
                    configs,
                },
            ),
            MetadataRecord::TopicDeleted { name, topic_id } => {
                archive(VERSION_1, &RecordV1::TopicDeleted { name, topic_id })
            }
            MetadataRecord::PartitionsCreated { name, total } => {
                archive(VERSION_1, &RecordV1::PartitionsCreated { name, total })
            }
            MetadataRecord::ConfigsAltered { topic, set, delete } => {
                archive(VERSION_1, &RecordV1::ConfigsAltered { topic, set, delete })
            }
            MetadataRecord::ProducerIdsAllocated { first, count } => {
                archive(VERSION_1, &RecordV1::ProducerIdsAllocated { first, count })
            }
            MetadataRecord::BrokerRegistered {
                broker_id,
                incarnation,
                endpoints,
            } => archive(
                VERSION_2,
                &RecordV2::BrokerRegistered {
                    broker_id,
                    incarnation,
                    endpoints,
                },
            ),
            MetadataRecord::BrokerUnfenced {
                broker_id,
                broker_epoch,
            } => archive(
                VERSION_2,
                &RecordV2::BrokerUnfenced {
                    broker_id,
                    broker_epoch,
                },
            ),
            MetadataRecord::BrokerFenced {
                broker_id,
                broker_epoch,
            } => archive(
                VERSION_2,
                &RecordV2::BrokerFenced {
                    broker_id,
                    broker_epoch,
                },
            ),
            MetadataRecord::PartitionChanged {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                adding,
                removing,
            } => encode_partition(RecordV3::PartitionChanged {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                adding,
                removing,
            }),
            MetadataRecord::ScramCredentialSet {
                user,
                mechanism,
                credential,
            } => archive(
                VERSION_4,
                &RecordV4::ScramCredentialSet {
                    user,
                    mechanism,
                    credential,
                },
            ),
            MetadataRecord::ScramCredentialDeleted { user, mechanism } => archive(
                VERSION_4,
                &RecordV4::ScramCredentialDeleted { user, mechanism },
            ),
            MetadataRecord::AclCreated(acl) => archive(VERSION_5, &RecordV5::AclCreated(acl)),
            MetadataRecord::AclDeleted(acl) => archive(VERSION_5, &RecordV5::AclDeleted(acl)),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, DecodeError> {
        let (&version, archive) = bytes.split_first().ok_or(DecodeError::Empty)?;
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(archive.len());
        aligned.extend_from_slice(archive);
        match version {
            VERSION_1 => rkyv::from_bytes::<RecordV1, rancor::Error>(&aligned)
                .map(MetadataRecord::from)
                .map_err(DecodeError::Invalid),
            VERSION_2 => rkyv::from_bytes::<RecordV2, rancor::Error>(&aligned)
                .map(MetadataRecord::from)
                .map_err(DecodeError::Invalid),
            VERSION_3 => rkyv::from_bytes::<RecordV3, rancor::Error>(&aligned)
                .map(MetadataRecord::from)
                .map_err(DecodeError::Invalid),
            VERSION_4 => rkyv::from_bytes::<RecordV4, rancor::Error>(&aligned)
                .map(MetadataRecord::from)
                .map_err(DecodeError::Invalid),
            VERSION_5 => rkyv::from_bytes::<RecordV5, rancor::Error>(&aligned)
                .map(|record| match record {
                    RecordV5::AclCreated(acl) => MetadataRecord::AclCreated(acl),
                    RecordV5::AclDeleted(acl) => MetadataRecord::AclDeleted(acl),
                })
                .map_err(DecodeError::Invalid),
            other => Err(DecodeError::Version(other)),
        }
    }
}

impl From<RecordV1> for MetadataRecord {
    fn from(record: RecordV1) -> Self {
        match record {
            RecordV1::TopicCreated {
                name,
                topic_id,
                partitions,
                configs,
            } => MetadataRecord::TopicCreated {
                name,
                topic_id,
                partitions,
                configs,
            },
            RecordV1::TopicDeleted { name, topic_id } => {
                MetadataRecord::TopicDeleted { name, topic_id }
            }
            RecordV1::PartitionsCreated { name, total } => {
                MetadataRecord::PartitionsCreated { name, total }
            }
            RecordV1::ConfigsAltered { topic, set, delete } => {
                MetadataRecord::ConfigsAltered { topic, set, delete }
            }
            RecordV1::ProducerIdsAllocated { first, count } => {
                MetadataRecord::ProducerIdsAllocated { first, count }
            }
        }
    }
}

impl From<RecordV2> for MetadataRecord {
    fn from(record: RecordV2) -> Self {
        match record {
            RecordV2::BrokerRegistered {
                broker_id,
                incarnation,
                endpoints,
            } => MetadataRecord::BrokerRegistered {
                broker_id,
                incarnation,
                endpoints,
            },
            RecordV2::BrokerUnfenced {
                broker_id,
                broker_epoch,
            } => MetadataRecord::BrokerUnfenced {
                broker_id,
                broker_epoch,
            },
            RecordV2::BrokerFenced {
                broker_id,
                broker_epoch,
            } => MetadataRecord::BrokerFenced {
                broker_id,
                broker_epoch,
            },
            RecordV2::PartitionChanged {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
            } => MetadataRecord::PartitionChanged {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                adding: Vec::new(),
                removing: Vec::new(),
            },
        }
    }
}

impl From<RecordV3> for MetadataRecord {
    fn from(record: RecordV3) -> Self {
        let RecordV3::PartitionChanged {
            topic_id,
            partition,
            replicas,
            isr,
            leader,
            leader_epoch,
            adding,
            removing,
        } = record;
        MetadataRecord::PartitionChanged {
            topic_id,
            partition,
            replicas,
            isr,
            leader,
            leader_epoch,
            adding,
            removing,
        }
    }
}

/// A partition record without a reassignment, as version 2 has it.
impl From<RecordV3> for RecordV2 {
    fn from(record: RecordV3) -> Self {
        let RecordV3::PartitionChanged {
            topic_id,
            partition,
            replicas,
            isr,
            leader,
            leader_epoch,
            ..
        } = record;
        RecordV2::PartitionChanged {
            topic_id,
            partition,
            replicas,
            isr,
            leader,
            leader_epoch,
        }
    }
}

/// A partition record: version 3 during a reassignment, else version 2.
fn encode_partition(record: RecordV3) -> Vec<u8> {
    let RecordV3::PartitionChanged {
        adding, removing, ..
    } = &record;
    if !adding.is_empty() || !removing.is_empty() {
        archive(VERSION_3, &record)
    } else {
        archive(VERSION_2, &RecordV2::from(record))
    }
}

impl From<RecordV4> for MetadataRecord {
    fn from(record: RecordV4) -> Self {
        match record {
            RecordV4::ScramCredentialSet {
                user,
                mechanism,
                credential,
            } => MetadataRecord::ScramCredentialSet {
                user,
                mechanism,
                credential,
            },
            RecordV4::ScramCredentialDeleted { user, mechanism } => {
                MetadataRecord::ScramCredentialDeleted { user, mechanism }
            }
        }
    }
}
