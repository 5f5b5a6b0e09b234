//! Bringing a shard's partitions in line with the metadata, and the log
//! config of a topic (built-in defaults, broker defaults, topic overrides).

use std::collections::BTreeMap;

use engine::{LogConfig, PartitionTable, TopicPartition, rt};
use replication::metadata::ClusterMetadata;

use super::Shard;

/// The engine config of `topic`: built-in defaults, then the static broker
/// defaults, then the dynamic broker defaults, then the topic's own. Values
/// were validated when stored. `producer_id_expiration_ms` is the broker's.
pub(super) fn log_config(
    static_defaults: &BTreeMap<String, String>,
    producer_id_expiration_ms: i64,
    metadata: &ClusterMetadata,
    topic: &str,
) -> LogConfig {
    let mut config = LogConfig {
        producer_id_expiration_ms,
        ..LogConfig::default()
    };
    let topic_configs = metadata.topic(topic).map(|t| &t.configs);
    for (key, value) in static_defaults
        .iter()
        .chain(metadata.broker_configs())
        .chain(topic_configs.into_iter().flatten())
    {
        if let Err(e) = config.set(key, value) {
            tracing::warn!(topic, key, value, error = %e, "stored config ignored");
        }
    }
    config
}

/// Creates the partitions this shard owns that the metadata has and the
/// table lacks, applies config changes, and deletes the partitions of topics
/// that `previous` had and `current` no longer has, and, in a cluster, the
/// partitions reassigned to other brokers. A partition on disk that the
/// metadata never knew is left alone (and logged): losing the metadata
/// must not delete data.
pub(crate) async fn partitions(
    shard: &Shard,
    previous: &ClusterMetadata,
    current: &ClusterMetadata,
) {
    let table = &shard.partitions;
    for topic in current.topics() {
        let config = shard.log_config(current, &topic.name);
        for partition in 0..topic.partitions {
            let tp = TopicPartition::new(topic.name.clone(), partition);
            if PartitionTable::owner(&tp, shard.shards()) != shard.id()
                || !shard.hosts(current, topic.topic_id, partition)
            {
                continue;
            }
            match table.get(&tp) {
                Some(log) if log.config() != config => log.set_config(config.clone()),
                Some(_) => {}
                None => {
                    if let Err(e) = table
                        .create(tp.clone(), config.clone(), rt::wall_clock_ms())
                        .await
                    {
                        tracing::error!(partition = %tp, error = %e, "cannot create partition");
                    }
                }
            }
            // A cluster's leader stamps its epoch on what it appends.
            if shard.in_cluster()
                && let Some(record) = current.partition(topic.topic_id, partition)
                && record.leader == shard.node.node_id
                && let Some(log) = table.get(&tp)
                && record.leader_epoch > log.leader_epoch()
                && let Err(e) = log.become_leader(record.leader_epoch).await
            {
                tracing::error!(partition = %tp, error = %e, "cannot take the leader epoch");
            }
            if shard.in_cluster() {
                shard.replica_role(current, &tp);
            }
        }
    }
    if shard.in_cluster() {
        shard.retain_replica_roles(|tp| {
            current.topic(&tp.topic).is_some_and(|t| {
                tp.partition < t.partitions && shard.hosts(current, t.topic_id, tp.partition)
            })
        });
    }
    // Replayed records up to this process's own registration describe the
    // cluster as it was (a partition may have left this broker and come
    // back since); from there on they are the present.
    let live = shard.in_cluster()
        && current
            .broker(shard.node.node_id)
            .is_some_and(|b| b.incarnation == crate::cluster::incarnation());
    for tp in table.partitions() {
        let now = current.topic(&tp.topic);
        let before = previous.topic(&tp.topic);
        match (before, now) {
            (_, Some(topic))
                if live
                    && tp.partition < topic.partitions
                    && current.partition(topic.topic_id, tp.partition).is_some()
                    && !shard.hosts(current, topic.topic_id, tp.partition) =>
            {
                // Reassigned away: the in-sync replicas of the target hold
                // everything (the controller moved it only then).
                tracing::info!(partition = %tp, "partition reassigned to other brokers: its replica here is deleted");
                if let Err(e) = table.delete(&tp).await {
                    tracing::error!(partition = %tp, error = %e, "cannot delete partition");
                }
            }
            (_, Some(topic)) if tp.partition < topic.partitions => {}
            (Some(old), new) if new.is_none_or(|n| n.topic_id != old.topic_id) => {
                if let Err(e) = table.delete(&tp).await {
                    tracing::error!(partition = %tp, error = %e, "cannot delete partition");
                }
            }
            _ => {
                tracing::warn!(partition = %tp, "partition on disk is not in the cluster metadata; left alone")
            }
        }
    }
}
