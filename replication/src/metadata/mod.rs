//! The cluster's topic metadata: [`ClusterMetadata`], its commands, records
//! and errors. Single writer: one shard decides and applies; the others get
//! immutable snapshots (clones) of the state.

mod record;
mod store;

use std::collections::BTreeMap;

pub use record::{DecodeError, MetadataRecord, TopicId};
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

/// What a client asks the metadata to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
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
}

/// The whole metadata state. Cloning it is how other shards get a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    topics: BTreeMap<String, TopicMetadata>,
    /// Broker-default config overrides (over the built-in defaults).
    broker_configs: BTreeMap<String, String>,
    /// The first producer id not yet handed out.
    next_producer_id: i64,
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
            } => {
                validate_topic_name(&name)?;
                if self.topics.contains_key(&name) {
                    return Err(MetadataError::TopicExists(name));
                }
                if !(1..=PARTITIONS_MAX).contains(&partitions) {
                    return Err(MetadataError::InvalidPartitions {
                        name,
                        requested: partitions,
                        current: 0,
                    });
                }
                if new_topic_id == TopicId::ZERO || self.topic_by_id(new_topic_id).is_some() {
                    return Err(MetadataError::TopicIdInUse);
                }
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
        }
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
        }
        self.applied += 1;
        Ok(())
    }
}

#[cfg(test)]
#[path = "metadata_test.rs"]
mod tests;
