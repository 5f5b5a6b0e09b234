//! The cluster's topic metadata: [`ClusterMetadata`], its commands, records
//! and errors. Single writer: one shard decides and applies; the others get
//! immutable snapshots (clones) of the state.

pub mod acl;
mod record;
mod snapshot;
mod store;

use std::collections::BTreeMap;

pub use acl::AclBinding;
pub use record::{DecodeError, Endpoint, MetadataRecord, TopicId};
pub use store::{MetadataStore, StoreError};

/// Kafka's longest topic name.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Partitions one topic may have (a bound, not a Kafka rule).
pub const PARTITIONS_MAX: i32 = 100_000;

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    pub topic_id: TopicId,
    pub partitions: i32,
    /// Topic-level config overrides (key -> value, as Kafka writes them).
    pub configs: BTreeMap<String, String>,
}

/// A registered broker, as the metadata log last described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub broker_id: i32,
    /// The position of its registration record in the metadata log.
    pub broker_epoch: u64,
    pub incarnation: u64,
    pub endpoints: Vec<Endpoint>,
    /// A fenced broker leads nothing and is told nothing is its to serve.
    pub fenced: bool,
}

/// One partition's replicas and leadership (absent for partitions of a
/// single-node broker, which are all its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// -1: no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped by every change of the partition's record.
    pub partition_epoch: i32,
    /// A reassignment in progress: replicas being added (catching up) and
    /// being removed (until every target replica is in sync).
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl PartitionState {
    /// Whether a reassignment is in progress.
    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas a reassignment moves to: all but the ones being
    /// removed (the replicas themselves when none is in progress).
    pub fn target(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }

    /// The replicas before the reassignment: all but the ones being added.
    pub fn original(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding.contains(r))
            .collect()
    }
}

/// A user's SCRAM credential for one mechanism as the metadata keeps it
/// (RFC 5802's stored form: never the password). Part of the archived
/// records and snapshots: never edit its fields.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct StoredScram {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// Kafka's numbers of the SCRAM mechanisms (the admin APIs' `Mechanism`).
pub const SCRAM_SHA_256: i8 = 1;
pub const SCRAM_SHA_512: i8 = 2;

/// What a client asks the metadata to change.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        /// Replicas per partition in a cluster (-1: the controller's
        /// default); a single-node broker has one copy of everything.
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    /// Grows a topic to `total` partitions.
    CreatePartitions {
        name: String,
        total: i32,
    },
    /// Sets and deletes config overrides of a topic, or of the broker
    /// defaults when `topic` is `None`.
    AlterConfigs {
        topic: Option<String>,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    /// Reserves the next `count` producer ids (InitProducerId).
    AllocateProducerIds {
        count: i64,
    },
    /// Sets a user's credential for a SCRAM mechanism ([`SCRAM_SHA_256`]
    /// or [`SCRAM_SHA_512`]), replacing the one it had.
    UpsertScramCredential {
        user: String,
        mechanism: i8,
        credential: StoredScram,
    },
    /// Removes a user's credential for a SCRAM mechanism.
    DeleteScramCredential {
        user: String,
        mechanism: i8,
    },
    /// Adds an ACL (an ACL already there stays, once).
    CreateAcl(AclBinding),
    /// Removes an ACL.
    DeleteAcl(AclBinding),
}

/// Why a command is refused; each maps to a Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// TOPIC_ALREADY_EXISTS (36)
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    /// UNKNOWN_TOPIC_OR_PARTITION (3)
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// INVALID_TOPIC_EXCEPTION (17)
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    /// INVALID_PARTITIONS (37)
    #[error("invalid partition count {requested} for {name:?} (has {current})")]
    InvalidPartitions {
        name: String,
        requested: i32,
        current: i32,
    },
    /// A topic id collision: the caller draws a new id and retries.
    #[error("topic id already in use")]
    TopicIdInUse,
    /// No producer ids left to hand out (or a block that does not fit).
    #[error("producer ids exhausted")]
    ProducerIdsExhausted,
    /// A broker record names a broker (or an epoch of it) that is not
    /// registered.
    #[error("broker {broker_id} at epoch {broker_epoch} is not registered")]
    UnknownBroker { broker_id: i32, broker_epoch: u64 },
    /// A partition record names a partition its topic does not have.
    #[error("partition {partition} of topic {topic_id:?} does not exist")]
    UnknownPartition { topic_id: TopicId, partition: i32 },
    /// RESOURCE_NOT_FOUND (91)
    #[error("user {user:?} has no credential of SCRAM mechanism {mechanism}")]
    UnknownScramCredential { user: String, mechanism: i8 },
    /// UNACCEPTABLE_CREDENTIAL (93)
    #[error("unacceptable credential: {0}")]
    UnacceptableCredential(&'static str),
    /// INVALID_REQUEST (42)
    #[error("invalid ACL: {0}")]
    InvalidAcl(&'static str),
    /// An ACL record removes one that is not there.
    #[error("no such ACL")]
    UnknownAcl,
}

/// The whole metadata state. Cloning it is how other shards get a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    topics: BTreeMap<String, TopicMetadata>,
    /// Broker-default config overrides (over the built-in defaults).
    broker_configs: BTreeMap<String, String>,
    /// The first producer id not yet handed out.
    next_producer_id: i64,
    brokers: BTreeMap<i32, BrokerRegistration>,
    partitions: BTreeMap<(TopicId, i32), PartitionState>,
    /// SCRAM credentials by user and mechanism.
    scram: BTreeMap<(String, i8), StoredScram>,
    acls: std::collections::BTreeSet<AclBinding>,
    /// Records applied so far: the position in the metadata log.
    applied: u64,
}

/// Checks a topic name as Kafka does.
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let invalid = |reason| {
        Err(MetadataError::InvalidTopicName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > TOPIC_NAME_BYTES_MAX {
        return invalid("must be 1 to 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not topic names");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

impl ClusterMetadata {
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, topic_id: TopicId) -> Option<&TopicMetadata> {
        self.topics.values().find(|t| t.topic_id == topic_id)
    }

    pub fn topics(&self) -> impl Iterator<Item = &TopicMetadata> {
        self.topics.values()
    }

    pub fn broker_configs(&self) -> &BTreeMap<String, String> {
        &self.broker_configs
    }

    /// The first producer id no shard holds yet.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    pub fn broker(&self, broker_id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&broker_id)
    }

    /// A partition's replicas and leader, if the metadata assigned them.
    pub fn partition(&self, topic_id: TopicId, partition: i32) -> Option<&PartitionState> {
        self.partitions.get(&(topic_id, partition))
    }

    /// Every assigned partition, by topic id and index.
    pub fn partitions(&self) -> impl Iterator<Item = (TopicId, i32, &PartitionState)> {
        self.partitions
            .iter()
            .map(|(&(topic_id, partition), state)| (topic_id, partition, state))
    }

    /// A user's credential for a SCRAM mechanism.
    pub fn scram_credential(&self, user: &str, mechanism: i8) -> Option<&StoredScram> {
        self.scram.get(&(user.to_string(), mechanism))
    }

    /// Every SCRAM credential, by user (in name order) and mechanism.
    pub fn scram_credentials(&self) -> impl Iterator<Item = (&str, i8, &StoredScram)> {
        self.scram
            .iter()
            .map(|((user, mechanism), credential)| (user.as_str(), *mechanism, credential))
    }

    /// Every ACL.
    pub fn acls(&self) -> impl Iterator<Item = &AclBinding> {
        self.acls.iter()
    }

    /// The ACLs that can apply to the resource of `resource_type` named
    /// `name` (lookups in the ordered set, not a scan of every ACL).
    pub fn acls_for(&self, resource_type: i8, name: &str) -> Vec<&AclBinding> {
        acl::applicable(&self.acls, resource_type, name)
    }

    /// How many records built this state.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Checks `command` against the current state and turns it into the
    /// record to persist and then [`apply`](Self::apply). `new_topic_id` is
    /// the id a created topic gets (drawn by the caller: this is sans-IO).
    /// Config keys and values are the caller's to validate.
    pub fn decide(
        &self,
        command: Command,
        new_topic_id: TopicId,
    ) -> Result<MetadataRecord, MetadataError> {
        match command {
            Command::CreateTopic {
                name,
                partitions,
                configs,
                ..
            } => {
                self.check_new_topic(&name, partitions, new_topic_id)?;
                Ok(MetadataRecord::TopicCreated {
                    name,
                    topic_id: new_topic_id,
                    partitions,
                    configs,
                })
            }
            Command::DeleteTopic { name } => {
                let topic = self
                    .topics
                    .get(&name)
                    .ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
                Ok(MetadataRecord::TopicDeleted {
                    name,
                    topic_id: topic.topic_id,
                })
            }
            Command::CreatePartitions { name, total } => {
                let topic = self
                    .topics
                    .get(&name)
                    .ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
                if total <= topic.partitions || total > PARTITIONS_MAX {
                    let current = topic.partitions;
                    return Err(MetadataError::InvalidPartitions {
                        name,
                        requested: total,
                        current,
                    });
                }
                Ok(MetadataRecord::PartitionsCreated { name, total })
            }
            Command::AlterConfigs { topic, set, delete } => {
                if let Some(name) = &topic
                    && !self.topics.contains_key(name)
                {
                    return Err(MetadataError::UnknownTopic(name.clone()));
                }
                Ok(MetadataRecord::ConfigsAltered { topic, set, delete })
            }
            Command::AllocateProducerIds { count } => {
                let first = self.next_producer_id;
                if count <= 0 || first.checked_add(count).is_none() {
                    return Err(MetadataError::ProducerIdsExhausted);
                }
                Ok(MetadataRecord::ProducerIdsAllocated { first, count })
            }
            Command::UpsertScramCredential {
                user,
                mechanism,
                credential,
            } => {
                if user.is_empty() {
                    return Err(MetadataError::UnacceptableCredential(
                        "the user name is empty",
                    ));
                }
                if ![SCRAM_SHA_256, SCRAM_SHA_512].contains(&mechanism) {
                    return Err(MetadataError::UnacceptableCredential(
                        "not a SCRAM mechanism",
                    ));
                }
                Ok(MetadataRecord::ScramCredentialSet {
                    user,
                    mechanism,
                    credential,
                })
            }
            Command::DeleteScramCredential { user, mechanism } => {
                if self.scram_credential(&user, mechanism).is_none() {
                    return Err(MetadataError::UnknownScramCredential { user, mechanism });
                }
                Ok(MetadataRecord::ScramCredentialDeleted { user, mechanism })
            }
            Command::CreateAcl(acl) => match acl.invalid() {
                Some(why) => Err(MetadataError::InvalidAcl(why)),
                None => Ok(MetadataRecord::AclCreated(acl)),
            },
            Command::DeleteAcl(acl) => {
                if !self.acls.contains(&acl) {
                    return Err(MetadataError::UnknownAcl);
                }
                Ok(MetadataRecord::AclDeleted(acl))
            }
        }
    }

    /// Whether a topic `name` of `partitions` with id `topic_id` may be
    /// created.
    fn check_new_topic(
        &self,
        name: &str,
        partitions: i32,
        topic_id: TopicId,
    ) -> Result<(), MetadataError> {
        validate_topic_name(name)?;
        if self.topics.contains_key(name) {
            return Err(MetadataError::TopicExists(name.to_string()));
        }
        if !(1..=PARTITIONS_MAX).contains(&partitions) {
            return Err(MetadataError::InvalidPartitions {
                name: name.to_string(),
                requested: partitions,
                current: 0,
            });
        }
        if topic_id == TopicId::ZERO || self.topic_by_id(topic_id).is_some() {
            return Err(MetadataError::TopicIdInUse);
        }
        Ok(())
    }

    /// Applies a record that [`decide`](Self::decide) produced, now or before
    /// a restart (replay). A record that does not fit the state means the
    /// metadata log itself is inconsistent: that is reported, not applied.
    pub fn apply(&mut self, record: MetadataRecord) -> Result<(), MetadataError> {
        match record {
            MetadataRecord::TopicCreated {
                name,
                topic_id,
                partitions,
                configs,
            } => {
                if self.topics.contains_key(&name) {
                    return Err(MetadataError::TopicExists(name));
                }
                let topic = TopicMetadata {
                    name: name.clone(),
                    topic_id,
                    partitions,
                    configs,
                };
                self.topics.insert(name, topic);
            }
            MetadataRecord::TopicDeleted { name, topic_id } => {
                match self.topics.get(&name) {
                    Some(topic) if topic.topic_id == topic_id => {}
                    _ => return Err(MetadataError::UnknownTopic(name)),
                }
                self.topics.remove(&name);
                self.partitions.retain(|&(id, _), _| id != topic_id);
            }
            MetadataRecord::PartitionsCreated { name, total } => {
                let topic = self
                    .topics
                    .get_mut(&name)
                    .ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
                if total <= topic.partitions {
                    let current = topic.partitions;
                    return Err(MetadataError::InvalidPartitions {
                        name,
                        requested: total,
                        current,
                    });
                }
                topic.partitions = total;
            }
            MetadataRecord::ConfigsAltered { topic, set, delete } => {
                let configs = match &topic {
                    Some(name) => {
                        let topic = self
                            .topics
                            .get_mut(name)
                            .ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
                        &mut topic.configs
                    }
                    None => &mut self.broker_configs,
                };
                for key in delete {
                    configs.remove(&key);
                }
                configs.extend(set);
            }
            MetadataRecord::ProducerIdsAllocated { first, count } => {
                if first < self.next_producer_id {
                    return Err(MetadataError::ProducerIdsExhausted);
                }
                self.next_producer_id = first.saturating_add(count);
            }
            MetadataRecord::ScramCredentialSet {
                user,
                mechanism,
                credential,
            } => {
                self.scram.insert((user, mechanism), credential);
            }
            MetadataRecord::ScramCredentialDeleted { user, mechanism } => {
                if self.scram.remove(&(user.clone(), mechanism)).is_none() {
                    return Err(MetadataError::UnknownScramCredential { user, mechanism });
                }
            }
            MetadataRecord::AclCreated(acl) => {
                self.acls.insert(acl);
            }
            MetadataRecord::AclDeleted(acl) => {
                if !self.acls.remove(&acl) {
                    return Err(MetadataError::UnknownAcl);
                }
            }
            cluster => self.apply_cluster(cluster)?,
        }
        self.applied += 1;
        Ok(())
    }

    /// The cluster's records: brokers and partition leadership.
    fn apply_cluster(&mut self, record: MetadataRecord) -> Result<(), MetadataError> {
        match record {
            MetadataRecord::BrokerRegistered {
                broker_id,
                incarnation,
                endpoints,
            } => {
                let registration = BrokerRegistration {
                    broker_id,
                    broker_epoch: self.applied,
                    incarnation,
                    endpoints,
                    fenced: true,
                };
                self.brokers.insert(broker_id, registration);
            }
            MetadataRecord::BrokerUnfenced {
                broker_id,
                broker_epoch,
            }
            | MetadataRecord::BrokerFenced {
                broker_id,
                broker_epoch,
            } => {
                let fenced = matches!(record, MetadataRecord::BrokerFenced { .. });
                match self.brokers.get_mut(&broker_id) {
                    Some(broker) if broker.broker_epoch == broker_epoch => broker.fenced = fenced,
                    _ => {
                        return Err(MetadataError::UnknownBroker {
                            broker_id,
                            broker_epoch,
                        });
                    }
                }
            }
            MetadataRecord::PartitionChanged {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                adding,
                removing,
            } => {
                let exists = self
                    .topic_by_id(topic_id)
                    .is_some_and(|topic| (0..topic.partitions).contains(&partition));
                if !exists {
                    return Err(MetadataError::UnknownPartition {
                        topic_id,
                        partition,
                    });
                }
                let partition_epoch = self
                    .partitions
                    .get(&(topic_id, partition))
                    .map_or(0, |state| state.partition_epoch.saturating_add(1));
                let state = PartitionState {
                    replicas,
                    isr,
                    leader,
                    leader_epoch,
                    partition_epoch,
                    adding,
                    removing,
                };
                self.partitions.insert((topic_id, partition), state);
            }
            // The topic records, which apply() handles itself.
            MetadataRecord::TopicCreated { .. }
            | MetadataRecord::TopicDeleted { .. }
            | MetadataRecord::PartitionsCreated { .. }
            | MetadataRecord::ConfigsAltered { .. }
            | MetadataRecord::ProducerIdsAllocated { .. }
            | MetadataRecord::ScramCredentialSet { .. }
            | MetadataRecord::ScramCredentialDeleted { .. }
            | MetadataRecord::AclCreated(_)
            | MetadataRecord::AclDeleted(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "metadata_test.rs"]
mod tests;
