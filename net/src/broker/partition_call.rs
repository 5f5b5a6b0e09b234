//! Work on one partition, run by the shard that owns it: locally, or sent
//! over the mesh. Everything crossing shards is `Send`: a read's record
//! bytes go back as `RecordSlices` (cached records and batches read from
//! disk shared, small batches and rewritten headers copied once), which the
//! Fetch response sends without copying again.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use engine::{Log, Offset, PartitionTable, StagedAppend, TopicPartition, rt};
use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::{LocalBoxFuture, select, select_all};

use super::{Shard, ShardMessage};
use crate::rope::RecordSlices;

/// An operation on one partition.
#[derive(Debug)]
pub enum PartitionOp {
    Append {
        records: Bytes,
        /// The request's acks: acks=all needs min.insync.replicas in sync.
        acks: i16,
        /// The request's transactional id: a transactional batch is stored
        /// only in a transaction that has this partition (KIP-890).
        transactional_id: Option<String>,
    },
    /// A fetch's read; `committed` (read_committed) stops at the last
    /// stable offset.
    Read {
        offset: i64,
        max_bytes: usize,
        committed: bool,
    },
    /// ListOffsets: -2 earliest, -1 latest (the last stable offset for
    /// read_committed), -3 max timestamp, -4 earliest local (all of it is
    /// local), -5 latest tiered (nothing is), else by time.
    ListOffset { timestamp: i64, committed: bool },
    /// DeleteRecords to `offset` (-1: the high watermark); replies with the
    /// new log start offset.
    DeleteRecords { offset: i64 },
    /// DescribeLogDirs: the partition's bytes on disk.
    Size,
    /// A transaction marker from the coordinator (Kafka's WriteTxnMarkers):
    /// ends `producer_id`'s transaction here; replies with its offset.
    /// `coordinator_epoch` is the coordinator's (the leader epoch of its
    /// `__transaction_state` partition): an older one than the last
    /// marker's here is TRANSACTION_COORDINATOR_FENCED.
    WriteMarker {
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    },
    /// DescribeProducers: every producer's state here.
    Producers,
    /// OffsetForLeaderEpoch: where `leader_epoch` ended here, the asker
    /// believing the partition's leader epoch is `current_leader_epoch`
    /// (-1: unchecked); a consumer's answer stops at the high watermark.
    EpochEnd {
        current_leader_epoch: i32,
        leader_epoch: i32,
        consumer: bool,
    },
}

/// A read's result: whole batches, and the partition's bounds.
#[derive(Debug)]
pub struct ReadOut {
    pub records: RecordSlices,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// For read_committed: the aborted transactions the records overlap,
    /// (producer id, first offset).
    pub aborted: Option<Vec<(i64, i64)>>,
}

#[derive(Debug)]
pub enum PartitionReply {
    /// Offsets assigned; `finish()` waits for durability, and the answer
    /// (for acks=all on a replicated partition) for the high watermark.
    Staged(StagedAppend, Option<super::replica::Replicated>),
    Read(ReadOut),
    /// (offset, timestamp); offset -1 when nothing matches.
    Offset(i64, i64),
    Size(u64),
    Producers(Vec<engine::ProducerView>),
    /// EpochEnd: the largest epoch at or below the asked one, and where it
    /// ended (-1, -1: none).
    EpochEnd {
        epoch: i32,
        end: i64,
    },
}

/// Why an operation on a partition failed.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("partition not on this broker")]
    UnknownPartition,
    /// Another broker of the cluster leads it (or none does right now).
    #[error("this broker does not lead the partition")]
    NotLeader,
    #[error(transparent)]
    Engine(#[from] engine::Error),
    #[error("the owning shard is gone")]
    ShardGone,
    #[error("acks=all needs {required} in-sync replicas, {in_sync} in sync")]
    NotEnoughReplicas { required: u32, in_sync: u32 },
    /// A transactional batch for a partition its transaction does not
    /// have (or from a fenced producer): the Produce error code.
    #[error("transactional batch refused by its coordinator ({code})")]
    NotInTransaction { code: i16 },
    /// A broker-written append (a transaction marker) the in-sync replicas
    /// did not take: NOT_LEADER_OR_FOLLOWER or
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND.
    #[error("not replicated to the in-sync replicas ({code})")]
    NotReplicated { code: i16 },
    /// The asker's leader epoch is not the partition's: FENCED_LEADER_EPOCH
    /// (older) or UNKNOWN_LEADER_EPOCH (newer).
    #[error("leader epoch {asked}, the partition's is {current}")]
    LeaderEpoch { asked: i32, current: i32 },
    /// The ACLs do not let the request's principal do this to the topic:
    /// TOPIC_AUTHORIZATION_FAILED.
    #[error("denied by the ACLs")]
    TopicAuthorization,
}

pub type PartitionResult = Result<PartitionReply, PartitionError>;

impl Shard {
    /// KIP-890: a transactional batch opening a transaction here is checked
    /// with its coordinator, so a late batch of an ended transaction cannot
    /// open one nobody will close (holding read_committed readers forever).
    /// A producer whose transaction is open here already needs no check.
    async fn verify_in_transaction(
        &self,
        tp: &TopicPartition,
        log: &engine::Log,
        records: &Bytes,
        transactional_id: &str,
    ) -> Result<(), PartitionError> {
        use crate::handlers::errors::{
            COORDINATOR_NOT_AVAILABLE, INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE, NONE,
            NOT_COORDINATOR, NOT_ENOUGH_REPLICAS, PRODUCER_FENCED,
        };
        let Some(header) = records
            .first_chunk::<{ engine::batch::HEADER_BYTES }>()
            .map(|h| engine::batch::BatchHeader(*h))
        else {
            return Ok(());
        };
        let (producer_id, epoch) = (header.producer_id(), header.producer_epoch());
        if !header.is_transactional() || log.transaction_open(producer_id, epoch) {
            return Ok(());
        }
        let code = self
            .verify_transaction(transactional_id, producer_id, epoch, tp)
            .await;
        let code = match code {
            NONE => return Ok(()),
            PRODUCER_FENCED => INVALID_PRODUCER_EPOCH,
            // The coordinator moving or not reachable: the producer retries
            // (Kafka's answer to a check it could not make).
            COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR => NOT_ENOUGH_REPLICAS,
            other => {
                tracing::debug!(partition = %tp, producer_id, epoch, code = other, "transactional batch outside its transaction");
                INVALID_TXN_STATE
            }
        };
        Err(PartitionError::NotInTransaction { code })
    }

    /// A transaction marker on `log` (the partition `tp`); on a partition
    /// of `__consumer_offsets` its group offsets follow the outcome.
    /// `marker`: (producer id, producer epoch, commit, coordinator epoch).
    async fn write_marker(
        &self,
        tp: &TopicPartition,
        log: &engine::Log,
        marker: (i64, i16, bool, i32),
    ) -> PartitionResult {
        let (producer_id, epoch, commit, coordinator_epoch) = marker;
        let now = rt::wall_clock_ms();
        let append = log.append_marker(producer_id, epoch, commit, coordinator_epoch, now);
        let info = if tp.topic == super::groups::OFFSETS_TOPIC {
            self.offsets_marker(tp.partition, producer_id, commit, append)
                .await?
        } else {
            append.await?
        };
        // Written as acks=all: a marker the coordinator counts as written
        // survives a change of leader.
        let end = info.last_offset.get() + 1;
        self.replicated_to_isr(tp, log, end)
            .await
            .map_err(|code| PartitionError::NotReplicated { code })?;
        Ok(PartitionReply::Offset(info.base_offset.get(), -1))
    }

    /// Runs one operation per partition of `topic`, each on its owning
    /// shard, all concurrently; results come back in the order given. Each
    /// other shard gets one message with all of its partitions' operations
    /// (a consumer of 2,000 partitions fetches them all in every request).
    pub fn per_partition<'a>(
        &'a self,
        topic: &'a str,
        ops: impl IntoIterator<Item = (i32, PartitionOp)>,
    ) -> LocalBoxFuture<'a, Vec<(i32, PartitionResult)>> {
        // Collected and boxed: one future type for every caller's iterator
        // (the connection's future stays within the compiler's depth).
        let ops: Vec<(i32, PartitionOp)> = ops.into_iter().collect();
        self.per_partition_of(topic, ops).boxed_local()
    }

    async fn per_partition_of(
        &self,
        topic: &str,
        mut ops: Vec<(i32, PartitionOp)>,
    ) -> Vec<(i32, PartitionResult)> {
        if ops.len() == 1
            && let Some((partition, op)) = ops.pop()
        {
            // One partition (a producer of one topic-partition): no batch.
            let tp = TopicPartition::new(topic, partition);
            return vec![(partition, self.partition_call(tp, op).await)];
        }
        let mut answers = Vec::new();
        let mut led = Vec::new();
        for (partition, op) in ops {
            if !self.leads(topic, partition) {
                answers.push((partition, Some(Err(PartitionError::NotLeader))));
                continue;
            }
            led.push((answers.len(), partition, op));
            answers.push((partition, None));
        }
        let shards = self.shards();
        let batches = self
            .by_owner(led, |(_, partition, _)| {
                PartitionTable::owner_of(topic, *partition, shards)
            })
            .into_iter()
            .map(|(owner, ops)| self.on_owner(owner, topic, ops));
        for batch in futures::future::join_all(batches).await {
            for (place, result) in batch {
                if let Some((_, answer)) = answers.get_mut(place) {
                    *answer = Some(result);
                }
            }
        }
        answers
            .into_iter()
            .map(|(partition, result)| {
                (partition, result.unwrap_or(Err(PartitionError::ShardGone)))
            })
            .collect()
    }

    /// Runs `ops` on partitions of `topic` (each with its place in the
    /// caller's answer) on the shard `owner`: here, or in one message
    /// there.
    async fn on_owner(
        &self,
        owner: u32,
        topic: &str,
        ops: Vec<(usize, i32, PartitionOp)>,
    ) -> Vec<(usize, PartitionResult)> {
        let (places, ops): (Vec<usize>, Vec<(i32, PartitionOp)>) = ops
            .into_iter()
            .map(|(place, partition, op)| (place, (partition, op)))
            .unzip();
        let results = if owner == self.id() {
            self.partitions_local(topic, ops).await
        } else {
            let (reply, answer) = oneshot::channel();
            let message = ShardMessage::Partitions {
                topic: topic.to_string(),
                ops,
                seen: self.metadata_applied(),
                reply,
            };
            match self.mesh.send(owner, message).await {
                Ok(()) => answer.await.unwrap_or_default(),
                Err(_) => Vec::new(),
            }
        };
        let mut results = results.into_iter();
        places
            .into_iter()
            .map(|place| {
                let result = results.next().unwrap_or(Err(PartitionError::ShardGone));
                (place, result)
            })
            .collect()
    }

    /// Runs operations on partitions this shard owns, concurrently; reads
    /// that need no I/O (at the end, or from the tail cache) are answered
    /// on the spot, without a future each.
    pub(super) async fn partitions_local(
        &self,
        topic: &str,
        ops: Vec<(i32, PartitionOp)>,
    ) -> Vec<PartitionResult> {
        let mut answers: Vec<Option<PartitionResult>> = Vec::with_capacity(ops.len());
        let mut later = Vec::new();
        let logs = self.partitions.get_each(topic, ops.iter().map(|(p, _)| *p));
        for ((partition, op), log) in ops.into_iter().zip(logs) {
            match self.partition_now(log, op) {
                Ok(result) => answers.push(Some(result)),
                Err(op) => {
                    let tp = TopicPartition::new(topic, partition);
                    later.push((answers.len(), tp, op));
                    answers.push(None);
                }
            }
        }
        let calls = later
            .into_iter()
            .map(|(place, tp, op)| async move { (place, self.partition_local(&tp, op).await) });
        for (place, result) in futures::future::join_all(calls).await {
            if let Some(answer) = answers.get_mut(place) {
                *answer = Some(result);
            }
        }
        answers
            .into_iter()
            .map(|answer| answer.unwrap_or(Err(PartitionError::ShardGone)))
            .collect()
    }

    /// An operation answered without waiting (a read the tail cache or
    /// nothing answers), or given back to run as a future.
    fn partition_now(
        &self,
        log: Option<Rc<Log>>,
        op: PartitionOp,
    ) -> Result<PartitionResult, PartitionOp> {
        let PartitionOp::Read {
            offset,
            max_bytes,
            committed,
        } = op
        else {
            return Err(op);
        };
        let Some(log) = log else {
            return Ok(Err(PartitionError::UnknownPartition));
        };
        match log.read_now(Offset(offset), max_bytes, committed) {
            None => Err(op),
            Some(read) => Ok(read
                .map(|read| read_reply(&log, offset, committed, read))
                .map_err(PartitionError::from)),
        }
    }

    /// A long poll over `partitions`, each with the high watermark its
    /// reader saw: returns once an append moves any of them past it (the
    /// next read tells which), or at `deadline`. Each other shard that owns
    /// some gets one message for all of them.
    pub async fn wait_for_appends(
        &self,
        partitions: Vec<(TopicPartition, i64)>,
        deadline: Instant,
    ) {
        let shards = self.shards();
        let waits: Vec<LocalBoxFuture<'_, ()>> = self
            .by_owner(partitions, |(tp, _)| PartitionTable::owner(tp, shards))
            .into_iter()
            .map(|(owner, partitions)| {
                async move {
                    if owner == self.id() {
                        // The timeout below ends it.
                        return self.wait_here(partitions).await;
                    }
                    let (reply, answer) = oneshot::channel();
                    let message = ShardMessage::WaitForAppends {
                        partitions,
                        deadline,
                        seen: self.metadata_applied(),
                        reply,
                    };
                    if self.mesh.send(owner, message).await.is_ok() {
                        let _ = answer.await;
                    }
                }
                .boxed_local()
            })
            .collect();
        let timeout = rt::sleep(deadline.saturating_duration_since(Instant::now()));
        if waits.is_empty() {
            return timeout.await;
        }
        select(select_all(waits), std::pin::pin!(timeout)).await;
    }

    /// [`wait_for_appends`](Self::wait_for_appends) of partitions this
    /// shard owns, without its deadline (the caller's). One that is not
    /// here (closed, deleted) ends the wait: the next read reports it.
    pub(super) async fn wait_here(&self, partitions: Vec<(TopicPartition, i64)>) {
        let waits: Vec<LocalBoxFuture<'_, ()>> = partitions
            .into_iter()
            .map(|(tp, seen)| {
                async move {
                    let Some(log) = self.partitions.get(&tp) else {
                        return;
                    };
                    let watch = log.end_watch();
                    let mut moved = std::pin::pin!(watch.moved());
                    moved.as_mut().enable();
                    if log.high_watermark().get() > seen {
                        return;
                    }
                    // Not holding the log: it may close or be deleted
                    // meanwhile.
                    drop(log);
                    moved.await;
                }
                .boxed_local()
            })
            .collect();
        if !waits.is_empty() {
            select_all(waits).await;
        }
    }

    /// `items` by the shard that owns each (`owner` says which).
    fn by_owner<T>(&self, items: Vec<T>, owner: impl Fn(&T) -> u32) -> BTreeMap<u32, Vec<T>> {
        let mut by_owner: BTreeMap<u32, Vec<T>> = BTreeMap::new();
        for item in items {
            by_owner.entry(owner(&item)).or_default().push(item);
        }
        by_owner
    }

    /// [`per_partition`](Self::per_partition) for `request`: every
    /// partition fails with TOPIC_AUTHORIZATION_FAILED when its principal
    /// may not do `op` (Kafka's AclOperation) to `topic`.
    pub async fn per_partition_as(
        &self,
        request: &crate::frame::Request,
        op: i8,
        topic: &str,
        ops: impl IntoIterator<Item = (i32, PartitionOp)>,
    ) -> Vec<(i32, PartitionResult)> {
        if !self.allowed_topic(request, op, topic) {
            return ops
                .into_iter()
                .map(|(partition, _)| (partition, Err(PartitionError::TopicAuthorization)))
                .collect();
        }
        self.per_partition(topic, ops).await
    }

    /// The size in bytes of this broker's replica of each of `partitions`
    /// of `topic`, led here or followed (`None`: no replica here).
    pub async fn replica_sizes(
        &self,
        topic: &str,
        partitions: impl IntoIterator<Item = i32>,
    ) -> Vec<(i32, Option<u64>)> {
        let calls = partitions.into_iter().map(|partition| async move {
            let tp = TopicPartition::new(topic, partition);
            let size = match self.replica_call(tp, PartitionOp::Size).await {
                Ok(PartitionReply::Size(size)) => Some(size),
                _ => None,
            };
            (partition, size)
        });
        futures::future::join_all(calls).await
    }

    /// Runs `op` on the shard that owns `tp`, if this broker leads it.
    pub async fn partition_call(&self, tp: TopicPartition, op: PartitionOp) -> PartitionResult {
        if !self.leads(&tp.topic, tp.partition) {
            return Err(PartitionError::NotLeader);
        }
        self.replica_call(tp, op).await
    }

    /// Runs `op` on the shard that owns this broker's replica of `tp`,
    /// whoever leads it.
    async fn replica_call(&self, tp: TopicPartition, op: PartitionOp) -> PartitionResult {
        let owner = PartitionTable::owner(&tp, self.shards());
        if owner == self.id() {
            return self.partition_local(&tp, op).await;
        }
        let (reply, answer) = oneshot::channel();
        if self
            .mesh
            .send(
                owner,
                ShardMessage::Partition {
                    tp,
                    seen: self.metadata_applied(),
                    op,
                    reply,
                },
            )
            .await
            .is_err()
        {
            return Err(PartitionError::ShardGone);
        }
        answer.await.map_err(|_| PartitionError::ShardGone)?
    }

    /// OffsetForLeaderEpoch on the partition's leader (see [`PartitionOp::EpochEnd`]).
    fn epoch_end(
        &self,
        tp: &TopicPartition,
        log: &engine::Log,
        current_leader_epoch: i32,
        leader_epoch: i32,
        consumer: bool,
    ) -> PartitionResult {
        let current = self.leader_epoch_of(tp);
        if current_leader_epoch >= 0 && current_leader_epoch != current {
            return Err(PartitionError::LeaderEpoch {
                asked: current_leader_epoch,
                current,
            });
        }
        let (epoch, end) = if log.epochs().latest_epoch().is_none() {
            // Never led in a cluster: all of it is epoch 0, the epoch
            // Metadata gives.
            if leader_epoch >= 0 {
                (0, log.log_end_offset())
            } else {
                (-1, Offset(-1))
            }
        } else {
            log.epoch_end_offset(leader_epoch)
        };
        let end = if consumer && end.get() >= 0 {
            end.min(log.high_watermark())
        } else {
            end
        };
        Ok(PartitionReply::EpochEnd {
            epoch,
            end: end.get(),
        })
    }

    pub(super) async fn partition_local(
        &self,
        tp: &TopicPartition,
        op: PartitionOp,
    ) -> PartitionResult {
        let log = self
            .partitions
            .get(tp)
            .ok_or(PartitionError::UnknownPartition)?;
        match op {
            PartitionOp::Append {
                records,
                acks,
                transactional_id,
            } => {
                let replicated = self.check_in_sync(tp, &log, acks)?;
                // Alone (a single broker, or a partition of one replica)
                // the leader is the only in-sync replica.
                let (required, in_sync) = (log.min_insync_replicas(), 1);
                if !replicated && acks == -1 && required > in_sync {
                    return Err(PartitionError::NotEnoughReplicas { required, in_sync });
                }
                if let Some(id) = transactional_id {
                    self.verify_in_transaction(tp, &log, &records, &id).await?;
                }
                let staged = log.stage_append(records, rt::wall_clock_ms()).await?;
                let end = staged.info().last_offset.get() + 1;
                let replicated =
                    replicated.then(|| self.replica_appended(tp, &log, end, acks == -1));
                Ok(PartitionReply::Staged(staged, replicated.flatten()))
            }
            PartitionOp::Read {
                offset,
                max_bytes,
                committed,
            } => {
                let read = if committed {
                    log.read_committed(Offset(offset), max_bytes).await?
                } else {
                    log.read(Offset(offset), max_bytes).await?
                };
                Ok(read_reply(&log, offset, committed, read))
            }
            PartitionOp::ListOffset {
                timestamp,
                committed,
            } => {
                let (offset, ts) = list_offset(&log, timestamp, committed).await?;
                Ok(PartitionReply::Offset(offset, ts))
            }
            PartitionOp::Size => Ok(PartitionReply::Size(log.size_bytes())),
            PartitionOp::Producers => Ok(PartitionReply::Producers(log.producers())),
            PartitionOp::EpochEnd {
                current_leader_epoch,
                leader_epoch,
                consumer,
            } => self.epoch_end(tp, &log, current_leader_epoch, leader_epoch, consumer),
            PartitionOp::WriteMarker {
                producer_id,
                epoch,
                commit,
                coordinator_epoch,
            } => {
                let marker = (producer_id, epoch, commit, coordinator_epoch);
                self.write_marker(tp, &log, marker).await
            }
            PartitionOp::DeleteRecords { offset } => {
                let offset = if offset == -1 {
                    log.high_watermark()
                } else {
                    Offset(offset)
                };
                Ok(PartitionReply::Offset(
                    log.delete_records(offset).await?.get(),
                    -1,
                ))
            }
        }
    }
}

/// ListOffsets on one partition: (offset, timestamp), -1 when none.
async fn list_offset(
    log: &engine::Log,
    timestamp: i64,
    committed: bool,
) -> Result<(i64, i64), engine::Error> {
    Ok(match timestamp {
        -2 | -4 => (log.log_start_offset().get(), -1),
        -5 => (-1, -1),
        -1 if committed => (log.last_stable_offset().get(), -1),
        -1 => (log.high_watermark().get(), -1),
        -3 => log
            .max_timestamp()
            .map_or((-1, -1), |(ts, o)| (o.get(), ts)),
        t => log
            .offset_for_timestamp(t)
            .await?
            .map_or((-1, -1), |(o, ts)| (o.get(), ts)),
    })
}

/// A fetch's read of `log` from `offset` as the reply carries it (for
/// read_committed, with the aborted transactions it overlaps).
fn read_reply(
    log: &engine::Log,
    offset: i64,
    committed: bool,
    read: engine::ReadResult,
) -> PartitionReply {
    let stable = log.last_stable_offset();
    let records = RecordSlices::from_chunks(&read.chunks);
    let aborted = committed.then(|| {
        let end = Offset(offset).max(stable);
        log.aborted_transactions(Offset(offset), end)
            .into_iter()
            .map(|a| (a.producer_id, a.first_offset.get()))
            .collect()
    });
    PartitionReply::Read(ReadOut {
        records,
        high_watermark: read.high_watermark.get(),
        last_stable_offset: stable.get(),
        log_start_offset: read.log_start_offset.get(),
        aborted,
    })
}
