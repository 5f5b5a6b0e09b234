//! The transaction coordinator of a shard: drives the sans-IO machine in
//! [`crate::txn`] with the clock, keeps its records durable in
//! `__transaction_state` and writes the markers that end transactions.
//!
//! A transactional id belongs to partition `abs(java_hash(id)) % partitions`
//! of `__transaction_state` (Kafka's rule, as for groups), and so to the
//! shard owning that partition; every request for the id runs there. The
//! topic is created (compacted, 50 partitions) on the first transactional
//! InitProducerId. Rules of the driver:
//!
//! 1. A decision's record is appended (durable) before it is applied and
//!    answered; a failed append abandons it.
//! 2. EndTxn answers once PrepareCommit/PrepareAbort is durable and the
//!    markers are written to every partition of the transaction (each on
//!    its owning shard, all at once), and CompleteCommit/CompleteAbort is
//!    appended; so a read_committed consumer finds the outcome as soon as
//!    the producer's commit returns. Markers that fail are retried by the
//!    tick; the client is answered NONE anyway (the outcome is decided).
//! 3. Every second, the tick replays the partitions this shard owns that
//!    are not replayed yet (so Prepare* transactions found after a crash
//!    are completed without waiting for a client), aborts transactions past
//!    their timeout (with a bumped epoch, fencing their producer), retries
//!    unfinished markers and expires idle ids.
//! 4. `__transaction_state` is a compacted topic: the log cleaner keeps
//!    each id's latest record (engine/ARCHITECTURE.md, "Compaction"), as
//!    for `__consumer_offsets`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use engine::{PartitionTable, TopicPartition, rt};
use futures::channel::oneshot;

use super::groups::offsets_partition;

use super::{Shard, ShardMessage};
use crate::failpoint;
use crate::handlers::errors::{
    COORDINATOR_NOT_AVAILABLE, INVALID_PRODUCER_ID_MAPPING, INVALID_TXN_STATE, KAFKA_STORAGE_ERROR,
    NONE, PRODUCER_FENCED, command_error_code,
};
use crate::txn::record::{decode, decode_key, encode_key, encode_value};
use crate::txn::{Coordinator, Decision, TxnMetadata, TxnPartition, TxnRecord, TxnState};

/// Kafka's internal topic of transaction state.
pub const TRANSACTION_TOPIC: &str = "__transaction_state";
/// The failpoint between a transaction's first marker and the others.
pub const CRASH_BETWEEN_MARKERS: &str = "txn-between-markers";
/// How often timeouts, unfinished markers and idle ids are looked at.
const TICK: Duration = Duration::from_secs(1);

/// A request for a transactional id, run on its coordinator shard.
#[derive(Debug)]
pub enum TxnOp {
    /// `expected`: the v3+ request's current (producer id, epoch).
    InitProducerId {
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    },
    /// AddPartitionsToTxn and AddOffsetsToTxn.
    AddPartitions {
        producer_id: i64,
        epoch: i16,
        partitions: Vec<TxnPartition>,
    },
    /// AddPartitionsToTxn v4+ verify_only (KIP-890): whether each partition
    /// is in the producer's running transaction.
    Verify {
        producer_id: i64,
        epoch: i16,
        partitions: Vec<TxnPartition>,
    },
    EndTxn {
        producer_id: i64,
        epoch: i16,
        commit: bool,
    },
    Describe,
}

#[derive(Debug)]
pub enum TxnAnswer {
    Init(Result<(i64, i16), i16>),
    /// One code, or one per partition (Verify), in order.
    Codes(Vec<i16>),
    Described(Option<TxnMetadata>),
}

impl TxnAnswer {
    fn failed(op: &TxnOp, code: i16) -> TxnAnswer {
        match op {
            TxnOp::InitProducerId { .. } => TxnAnswer::Init(Err(code)),
            TxnOp::Verify { partitions, .. } => TxnAnswer::Codes(vec![code; partitions.len()]),
            TxnOp::AddPartitions { .. } | TxnOp::EndTxn { .. } | TxnOp::Describe => {
                TxnAnswer::Codes(vec![code])
            }
        }
    }
}

/// One transactional id as ListTransactions shows it.
#[derive(Debug, Clone)]
pub struct TxnListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
    /// When its running transaction began (-1: none).
    pub start_ms: i64,
}

/// This shard's coordinator state.
#[derive(Debug)]
pub(super) struct Txns {
    coordinator: RefCell<Coordinator>,
    /// `__transaction_state` partitions replayed into the coordinator.
    /// Partitions replayed, with the leader epoch they were replayed at.
    loaded: RefCell<BTreeMap<i32, i32>>,
    loading: tokio::sync::Mutex<()>,
    /// Ids whose markers are being written, and how to wait for that.
    completing: RefCell<HashMap<String, std::rc::Rc<tokio::sync::Notify>>>,
}

/// An id's turn at writing its markers; ends (and wakes whoever waits) when
/// dropped.
struct Completing<'a> {
    txns: &'a Txns,
    transactional_id: &'a str,
}

impl Drop for Completing<'_> {
    fn drop(&mut self) {
        let done = self
            .txns
            .completing
            .borrow_mut()
            .remove(self.transactional_id);
        if let Some(done) = done {
            done.notify_waiters();
        }
    }
}

impl Txns {
    pub(super) fn new(max_timeout_ms: i32) -> Txns {
        Txns {
            coordinator: RefCell::new(Coordinator::with_max_timeout(max_timeout_ms)),
            loaded: RefCell::default(),
            loading: tokio::sync::Mutex::new(()),
            completing: RefCell::default(),
        }
    }
}

impl Shard {
    /// Starts the coordinator's clock (rule 3).
    pub(super) fn start_txn_ticks(self: &std::rc::Rc<Self>) {
        let shard = std::rc::Rc::clone(self);
        crate::server::spawn(async move {
            loop {
                rt::sleep(TICK).await;
                shard.txn_tick().await;
            }
        });
    }

    async fn txn_tick(&self) {
        if self.metadata().topic(TRANSACTION_TOPIC).is_none() {
            return;
        }
        for partition in self.owned_partitions(TRANSACTION_TOPIC) {
            let _ = self.load_txns(partition).await;
        }
        let now = rt::wall_clock_ms();
        let expired = self.txns.coordinator.borrow_mut().expired(now);
        for record in expired {
            let id = record.transactional_id.clone();
            tracing::info!(transactional_id = %id, producer_id = record.metadata.producer_id, "transaction timed out: aborting");
            if self.persist_txn(record).await.is_ok() {
                self.finish_txn(&id).await;
            }
        }
        let unfinished: Vec<String> = self
            .txns
            .coordinator
            .borrow()
            .markers()
            .into_iter()
            .map(|m| m.transactional_id)
            .collect();
        for id in unfinished {
            self.finish_txn(&id).await;
        }
        self.expire_txn_ids(now).await;
    }

    /// Tombstones for ids idle past transactional.id.expiration.ms.
    async fn expire_txn_ids(&self, now: i64) {
        let expiration = self.settings.transactional_id_expiration_ms;
        let idle = self
            .txns
            .coordinator
            .borrow_mut()
            .take_idle(now, expiration);
        if idle.is_empty() {
            return;
        }
        let partitions = self.internal_partition_count(TRANSACTION_TOPIC);
        for id in idle {
            let partition = offsets_partition(&id, partitions);
            let key = encode_key(&id);
            match self
                .append_txn_records(partition, &[(key.as_ref(), None)])
                .await
            {
                Ok(()) => {
                    tracing::info!(transactional_id = %id, "transactional id expired");
                    self.txns.coordinator.borrow_mut().remove(&id);
                }
                Err(_) => self.txns.coordinator.borrow_mut().abandon(&id),
            }
        }
    }

    /// Runs `op` for `transactional_id` on its coordinator shard.
    pub async fn txn_call(&self, transactional_id: &str, op: TxnOp) -> TxnAnswer {
        let partitions = match self.txn_topic_partitions().await {
            Ok(partitions) => partitions,
            Err(code) => return TxnAnswer::failed(&op, code),
        };
        let partition = offsets_partition(transactional_id, partitions);
        if !self.leads(TRANSACTION_TOPIC, partition) {
            return TxnAnswer::failed(&op, crate::handlers::errors::NOT_COORDINATOR);
        }
        let tp = TopicPartition::new(TRANSACTION_TOPIC, partition);
        let owner = PartitionTable::owner(&tp, self.shards());
        if owner == self.id() {
            return self
                .txn_local(transactional_id.to_string(), partition, op)
                .await;
        }
        let (reply, answer) = oneshot::channel();
        let failed = TxnAnswer::failed(&op, COORDINATOR_NOT_AVAILABLE);
        let message = ShardMessage::Txn {
            transactional_id: transactional_id.to_string(),
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

    /// The partition count of `__transaction_state`, created if missing.
    pub(crate) async fn txn_topic_partitions(&self) -> Result<i32, i16> {
        let partitions = self.settings.transaction_topic_partitions;
        let factor = self.settings.transaction_topic_replication_factor;
        // transaction.state.log.min.isr: Kafka's default, 2.
        let segment_bytes = self.settings.transaction_topic_segment_bytes;
        self.internal_topic_partitions(TRANSACTION_TOPIC, partitions, factor, 2, segment_bytes)
            .await
    }

    /// On the coordinator shard: replays the id's partition if needed,
    /// then runs the request.
    pub(super) async fn txn_local(
        &self,
        transactional_id: String,
        partition: i32,
        op: TxnOp,
    ) -> TxnAnswer {
        if let Err(code) = self.load_txns(partition).await {
            return TxnAnswer::failed(&op, code);
        }
        let id = transactional_id.as_str();
        let now = rt::wall_clock_ms();
        match op {
            TxnOp::InitProducerId {
                timeout_ms,
                expected,
            } => {
                let fresh = match self.new_producer_id().await {
                    Ok(fresh) => fresh,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot reserve producer ids");
                        return TxnAnswer::Init(Err(command_error_code(&e)));
                    }
                };
                let decision = self
                    .txns
                    .coordinator
                    .borrow_mut()
                    .init_producer_id(id, timeout_ms, expected, fresh, now);
                match decision {
                    Err(code) => TxnAnswer::Init(Err(code)),
                    Ok(Decision::Reply(reply)) => TxnAnswer::Init(reply),
                    Ok(Decision::Persist { record, reply }) => {
                        let aborting = record.metadata.state == TxnState::PrepareAbort;
                        if let Err(code) = self.persist_txn(record).await {
                            return TxnAnswer::Init(Err(code));
                        }
                        if aborting {
                            tracing::info!(transactional_id = %id, "a new producer instance aborts the running transaction");
                            self.finish_txn(id).await;
                        }
                        TxnAnswer::Init(reply)
                    }
                }
            }
            TxnOp::AddPartitions {
                producer_id,
                epoch,
                partitions,
            } => {
                let decision = self.txns.coordinator.borrow_mut().add_partitions(
                    id,
                    producer_id,
                    epoch,
                    &partitions,
                    now,
                );
                TxnAnswer::Codes(vec![self.settle(decision).await])
            }
            TxnOp::Verify {
                producer_id,
                epoch,
                partitions,
            } => {
                let coordinator = self.txns.coordinator.borrow();
                let codes = match coordinator.metadata(id) {
                    None => vec![INVALID_PRODUCER_ID_MAPPING; partitions.len()],
                    Some(m) if m.producer_id != producer_id => {
                        vec![INVALID_PRODUCER_ID_MAPPING; partitions.len()]
                    }
                    Some(m) if m.epoch != epoch => vec![PRODUCER_FENCED; partitions.len()],
                    Some(m) => partitions
                        .iter()
                        .map(|p| {
                            if m.state == TxnState::Ongoing && m.partitions.contains(p) {
                                NONE
                            } else {
                                INVALID_TXN_STATE
                            }
                        })
                        .collect(),
                };
                TxnAnswer::Codes(codes)
            }
            TxnOp::EndTxn {
                producer_id,
                epoch,
                commit,
            } => {
                let decision =
                    self.txns
                        .coordinator
                        .borrow_mut()
                        .end_txn(id, producer_id, epoch, commit, now);
                let persisted = matches!(decision, Ok(Decision::Persist { .. }));
                let code = self.settle(decision).await;
                if code == NONE && persisted {
                    self.finish_txn(id).await;
                }
                TxnAnswer::Codes(vec![code])
            }
            TxnOp::Describe => {
                TxnAnswer::Described(self.txns.coordinator.borrow().metadata(id).cloned())
            }
        }
    }

    /// The code a decision answers with, once its record (if any) is durable.
    async fn settle(&self, decision: Result<Decision<()>, i16>) -> i16 {
        match decision {
            Err(code) => code,
            Ok(Decision::Reply(())) => NONE,
            Ok(Decision::Persist { record, reply: () }) => {
                self.persist_txn(record).await.err().unwrap_or(NONE)
            }
        }
    }

    /// The coordinator epoch of `transactional_id`'s coordinator here: the
    /// leader epoch of its `__transaction_state` partition (Kafka's), which
    /// its markers carry, so a deposed coordinator's late ones are fenced.
    pub(super) fn coordinator_epoch(&self, transactional_id: &str) -> i32 {
        let partition = offsets_partition(
            transactional_id,
            self.internal_partition_count(TRANSACTION_TOPIC),
        );
        self.leader_epoch_of(&TopicPartition::new(TRANSACTION_TOPIC, partition))
    }

    /// Appends a decided record (rule 1), then applies it; abandons it if
    /// the append fails.
    async fn persist_txn(&self, record: TxnRecord) -> Result<(), i16> {
        let partition = offsets_partition(
            &record.transactional_id,
            self.internal_partition_count(TRANSACTION_TOPIC),
        );
        let key = encode_key(&record.transactional_id);
        let value = encode_value(&record.metadata);
        let id = record.transactional_id.clone();
        let written = self
            .append_txn_records(partition, &[(key.as_ref(), Some(value.as_ref()))])
            .await;
        match written {
            Ok(()) => {
                self.txns.coordinator.borrow_mut().apply(record);
                Ok(())
            }
            Err(code) => {
                self.txns.coordinator.borrow_mut().abandon(&id);
                Err(code)
            }
        }
    }

    /// Appends records to a partition of `__transaction_state`, durably.
    async fn append_txn_records(
        &self,
        partition: i32,
        records: &[(&[u8], Option<&[u8]>)],
    ) -> Result<(), i16> {
        let tp = TopicPartition::new(TRANSACTION_TOPIC, partition);
        let log = self.partitions.get(&tp).ok_or(COORDINATOR_NOT_AVAILABLE)?;
        self.coordinator_leads(&tp)?;
        let info = log
            .append_internal(records, rt::wall_clock_ms())
            .await
            .map_err(|e| {
                tracing::error!(partition = %tp, error = %e, "cannot append to the transaction log");
                KAFKA_STORAGE_ERROR
            })?;
        self.coordinator_replicated(&tp, &log, &info).await
    }

    /// Writes the markers of `transactional_id`'s decided transaction to
    /// every partition in it, then completes it (rule 2). A partition
    /// deleted meanwhile needs no marker.
    /// If another task is already at it (the tick, or a request), this
    /// waits for that one to end instead: an EndTxn is answered only once
    /// its markers are written, whoever writes them.
    async fn finish_txn(&self, transactional_id: &str) {
        let running = self.txns.completing.borrow().get(transactional_id).cloned();
        if let Some(done) = running {
            let notified = done.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.txns.completing.borrow().contains_key(transactional_id) {
                notified.await;
            }
            return;
        }
        self.txns.completing.borrow_mut().insert(
            transactional_id.to_string(),
            std::rc::Rc::new(tokio::sync::Notify::new()),
        );
        // Cleared however this ends, even if the task is dropped midway.
        let _completing = Completing {
            txns: &self.txns,
            transactional_id,
        };
        let markers = self
            .txns
            .coordinator
            .borrow()
            .markers()
            .into_iter()
            .find(|m| m.transactional_id == transactional_id);
        if let Some(markers) = markers {
            if failpoint::is_armed(CRASH_BETWEEN_MARKERS) {
                // A test's crash after the first marker only.
                if let Some(first) = markers.partitions.first() {
                    let _ = self
                        .write_markers(&markers, std::slice::from_ref(first))
                        .await;
                }
                failpoint::crash_if(CRASH_BETWEEN_MARKERS);
            }
            let partitions: Vec<TxnPartition> = markers.partitions.iter().cloned().collect();
            let failed = self.write_markers(&markers, &partitions).await;
            for (tp, why) in &failed {
                tracing::warn!(transactional_id, partition = %tp, error = %why, "transaction marker not written; retried");
            }
            if failed.is_empty() {
                let record = self
                    .txns
                    .coordinator
                    .borrow_mut()
                    .complete(transactional_id, rt::wall_clock_ms());
                if let Some(record) = record {
                    let outcome = if markers.commit {
                        "committed"
                    } else {
                        "aborted"
                    };
                    tracing::debug!(
                        transactional_id,
                        producer_id = markers.producer_id,
                        partitions = markers.partitions.len(),
                        outcome,
                        "transaction complete"
                    );
                    let _ = self.persist_txn(record).await;
                }
            }
        }
    }

    /// ListTransactions: every id of every shard.
    pub async fn list_transactions(&self) -> Vec<TxnListing> {
        let mut all = self.list_local_transactions().await;
        for to in (0..self.shards()).filter(|&to| to != self.id()) {
            let (reply, answer) = oneshot::channel();
            if self
                .mesh
                .send(to, ShardMessage::ListTransactions { reply })
                .await
                .is_ok()
                && let Ok(listed) = answer.await
            {
                all.extend(listed);
            }
        }
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }

    /// The ids this shard coordinates, after replaying its partitions.
    pub(super) async fn list_local_transactions(&self) -> Vec<TxnListing> {
        for partition in self.owned_partitions(TRANSACTION_TOPIC) {
            let _ = self.load_txns(partition).await;
        }
        self.txns
            .coordinator
            .borrow()
            .transactional_ids()
            .map(|(id, m)| TxnListing {
                transactional_id: id.to_string(),
                producer_id: m.producer_id,
                state: m.state,
                start_ms: if m.state == TxnState::Ongoing {
                    m.start_ms
                } else {
                    -1
                },
            })
            .collect()
    }

    /// Forgets what was replayed of partition `partition` of
    /// `__transaction_state`.
    fn unload_txns(&self, partition: i32) {
        if self.txns.loaded.borrow_mut().remove(&partition).is_none() {
            return;
        }
        let partitions = self.internal_partition_count(TRANSACTION_TOPIC);
        self.txns
            .coordinator
            .borrow_mut()
            .unload(|id| offsets_partition(id, partitions) == partition);
        tracing::info!(
            partition,
            "transactional ids unloaded: their partition is led elsewhere now"
        );
    }

    /// After new metadata: as [`Shard::unload_moved_groups`], for the
    /// transaction coordinator.
    pub(super) fn unload_moved_txns(&self) {
        let moved: Vec<i32> = self
            .txns
            .loaded
            .borrow()
            .iter()
            .filter(|&(&p, &epoch)| {
                let tp = TopicPartition::new(TRANSACTION_TOPIC, p);
                !self.leads(TRANSACTION_TOPIC, p) || self.leader_epoch_of(&tp) != epoch
            })
            .map(|(&p, _)| p)
            .collect();
        for partition in moved {
            self.unload_txns(partition);
        }
    }

    /// Replays partition `partition` of `__transaction_state` once.
    async fn load_txns(&self, partition: i32) -> Result<(), i16> {
        let tp = TopicPartition::new(TRANSACTION_TOPIC, partition);
        let epoch = self.leader_epoch_of(&tp);
        if self.txns.loaded.borrow().get(&partition) == Some(&epoch) {
            return Ok(());
        }
        let _one_at_a_time = self.txns.loading.lock().await;
        if self.txns.loaded.borrow().get(&partition) == Some(&epoch) {
            return Ok(());
        }
        // Replayed at an earlier leadership: stale since.
        self.unload_txns(partition);
        let log = self
            .created_partition(&tp)
            .await
            .ok_or(COORDINATOR_NOT_AVAILABLE)?;
        let records = log.read_internal(0).await.map_err(|e| {
            tracing::error!(partition = %tp, error = %e, "cannot replay the transaction log");
            COORDINATOR_NOT_AVAILABLE
        })?;
        let count = records.len();
        let mut coordinator = self.txns.coordinator.borrow_mut();
        for record in records {
            let Some(key) = record.key.as_deref() else {
                continue;
            };
            match record.value.as_deref() {
                None => {
                    if let Some(id) = decode_key(key) {
                        coordinator.remove(&id);
                    }
                }
                Some(value) => match decode(key, value) {
                    Some(record) => coordinator.apply(record),
                    None => {
                        tracing::warn!(partition = %tp, offset = record.offset, "unreadable transaction record skipped")
                    }
                },
            }
        }
        let unfinished = coordinator.markers().len();
        drop(coordinator);
        tracing::info!(partition = %tp, records = count, unfinished, "transaction log replayed");
        self.txns.loaded.borrow_mut().insert(partition, epoch);
        Ok(())
    }
}
