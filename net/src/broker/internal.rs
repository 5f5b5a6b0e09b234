//! What the coordinators' internal topics (`__consumer_offsets`,
//! `__transaction_state`) share: created on first use with Kafka's
//! settings (compacted: the log cleaner keeps each key's latest record).

use engine::{Log, PartitionTable, TopicPartition};
use replication::metadata::Command;

use super::Shard;

impl Shard {
    /// The partition count of internal topic `name` as the metadata has it
    /// (1 while it does not exist: the hash of a key needs a divisor).
    pub(super) fn internal_partition_count(&self, name: &str) -> i32 {
        self.metadata().topic(name).map_or(1, |t| t.partitions)
    }

    /// Before a coordinator's append to partition `tp` of its internal
    /// topic: NOT_COORDINATOR unless this broker leads it by the latest
    /// metadata. A follower's copy is written by its leader only; a record
    /// of its own there would make it diverge.
    pub(super) fn coordinator_leads(&self, tp: &TopicPartition) -> Result<(), i16> {
        if self.leads(&tp.topic, tp.partition) {
            Ok(())
        } else {
            Err(crate::handlers::errors::NOT_COORDINATOR)
        }
    }

    /// After a coordinator's append to partition `tp` of its internal topic
    /// (durable here, ending with `info`): waits until the partition's
    /// in-sync replicas hold it, so what a coordinator answered survives
    /// its broker. Errors as Kafka's coordinators give them: NOT_COORDINATOR
    /// when this broker no longer leads the partition, else
    /// COORDINATOR_NOT_AVAILABLE (too few replicas in sync).
    pub(super) async fn coordinator_replicated(
        &self,
        tp: &TopicPartition,
        log: &Log,
        info: &engine::AppendInfo,
    ) -> Result<(), i16> {
        use crate::handlers::errors::{
            COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, NOT_LEADER_OR_FOLLOWER,
        };
        let end = info.last_offset.get() + 1;
        self.replicated_to_isr(tp, log, end).await.map_err(|code| {
            tracing::warn!(partition = %tp, code, "a coordinator's records not replicated");
            if code == NOT_LEADER_OR_FOLLOWER {
                NOT_COORDINATOR
            } else {
                COORDINATOR_NOT_AVAILABLE
            }
        })
    }

    /// The partitions of internal topic `name` this shard coordinates:
    /// owned here and led by this broker (none while the topic does not
    /// exist). A follower's replica is only written by its leader.
    pub(super) fn owned_partitions(&self, name: &str) -> Vec<i32> {
        let partitions = self.metadata().topic(name).map_or(0, |t| t.partitions);
        (0..partitions)
            .filter(|&p| {
                let tp = TopicPartition::new(name, p);
                PartitionTable::owner(&tp, self.shards()) == self.id() && self.leads(name, p)
            })
            .collect()
    }

    /// The partition count of a coordinator's internal topic (`name`),
    /// created with `partitions` and Kafka's settings for it (compacted,
    /// segments of `segment_bytes`) the first time it is needed.
    ///
    /// In a cluster its partitions get `replication_factor` replicas (at
    /// most the voters' count; the controller refuses while fewer brokers
    /// are alive, and the coordinator is not available until they are, as
    /// in Kafka), and `min_insync` of them must hold each of its records.
    pub(super) async fn internal_topic_partitions(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        min_insync: i16,
        segment_bytes: u64,
    ) -> Result<i32, i16> {
        if let Some(topic) = self.metadata().topic(name) {
            return Ok(topic.partitions);
        }
        let replication_factor = match &self.settings.cluster {
            Some(cluster) => {
                let voters = i16::try_from(cluster.voters.len()).unwrap_or(i16::MAX);
                replication_factor.clamp(1, voters.max(1))
            }
            None => -1,
        };
        let min_insync = min_insync.clamp(1, replication_factor.max(1)).to_string();
        let segment_bytes = segment_bytes.to_string();
        let configs = [
            ("cleanup.policy", "compact"),
            ("segment.bytes", &segment_bytes),
            ("min.insync.replicas", min_insync.as_str()),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        let command = Command::CreateTopic {
            name: name.to_string(),
            partitions,
            replication_factor,
            configs,
        };
        if let Err(e) = self.execute(command).await {
            // Another request may have created it meanwhile.
            tracing::debug!(error = %e, topic = name, "creating an internal topic");
        }
        self.metadata()
            .topic(name)
            .map(|t| t.partitions)
            .ok_or(crate::handlers::errors::COORDINATOR_NOT_AVAILABLE)
    }
}
