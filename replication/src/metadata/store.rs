//! [`MetadataStore`]: the cluster metadata kept durable as a log of records.
//! Opening replays the log; every change is appended (durably) before it is
//! applied, so what a client was told succeeded survives a crash.

use super::{ClusterMetadata, Command, DecodeError, MetadataError, MetadataRecord, TopicId};
use crate::log_store::LogStore;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError<E: std::error::Error + 'static> {
    /// The command is refused; nothing was written.
    #[error(transparent)]
    Refused(#[from] MetadataError),
    #[error("metadata log: {0}")]
    Log(#[source] E),
    /// A record in the log cannot be read: the log is damaged.
    #[error("metadata record at offset {offset} is unreadable")]
    Decode {
        offset: i64,
        #[source]
        source: DecodeError,
    },
    /// A record does not apply to the state its predecessors built.
    #[error("metadata record at offset {offset} does not apply")]
    Replay {
        offset: i64,
        #[source]
        source: MetadataError,
    },
}

/// The cluster metadata and the log that makes it durable. Single writer:
/// lives on one shard; others get clones of [`MetadataStore::state`].
#[derive(Debug)]
pub struct MetadataStore<L: LogStore> {
    log: L,
    state: ClusterMetadata,
}

impl<L: LogStore> MetadataStore<L> {
    /// Rebuilds the state by replaying every record in `log`.
    pub async fn open(log: L) -> Result<Self, StoreError<L::Error>> {
        let mut state = ClusterMetadata::default();
        for (offset, bytes) in log.read_records(0).await.map_err(StoreError::Log)? {
            let record = MetadataRecord::decode(&bytes)
                .map_err(|source| StoreError::Decode { offset, source })?;
            state
                .apply(record)
                .map_err(|source| StoreError::Replay { offset, source })?;
        }
        Ok(MetadataStore { log, state })
    }

    pub fn state(&self) -> &ClusterMetadata {
        &self.state
    }

    /// Checks `command`, makes its record durable, then applies it.
    pub async fn execute(
        &mut self,
        command: Command,
        new_topic_id: TopicId,
    ) -> Result<MetadataRecord, StoreError<L::Error>> {
        let record = self.state.decide(command, new_topic_id)?;
        let before = self.state.applied();
        self.log
            .append_record(&record.encode())
            .await
            .map_err(StoreError::Log)?;
        // decide() checked it against this state and nothing ran since.
        assert_eq!(self.state.applied(), before, "the store is the only writer");
        self.state
            .apply(record.clone())
            .map_err(|source| StoreError::Replay { offset: -1, source })?;
        Ok(record)
    }

    pub fn into_log(self) -> L {
        self.log
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::log_store::memory::{MemoryLog, block_on};

    #[test]
    fn changes_are_logged_before_applied_and_replayed_on_open() {
        block_on(async {
            let mut store = MetadataStore::open(MemoryLog::default()).await.unwrap();
            let create = Command::CreateTopic {
                name: "t".into(),
                partitions: 2,
                replication_factor: 1,
                configs: BTreeMap::new(),
            };
            store
                .execute(create.clone(), TopicId([1; 16]))
                .await
                .unwrap();
            let again = store.execute(create, TopicId([2; 16])).await;
            assert!(matches!(
                again,
                Err(StoreError::Refused(MetadataError::TopicExists(_)))
            ));
            store
                .execute(
                    Command::CreatePartitions {
                        name: "t".into(),
                        total: 3,
                    },
                    TopicId::ZERO,
                )
                .await
                .unwrap();
            let state = store.state().clone();
            let log = store.into_log();
            assert_eq!(log.0.borrow().len(), 2, "refused commands write nothing");
            let reopened = MetadataStore::open(log).await.unwrap();
            assert_eq!(reopened.state(), &state);
        });
    }

    #[test]
    fn a_damaged_log_is_reported_with_the_offset() {
        block_on(async {
            let log = MemoryLog::default();
            log.0.borrow_mut().push(vec![1, 2, 3]);
            match MetadataStore::open(log).await {
                Err(StoreError::Decode { offset: 0, .. }) => {}
                other => panic!("expected a decode error, got {other:?}"),
            }
        });
    }
}
