//! The transaction coordinator as a sans-IO state machine (Kafka's
//! TransactionCoordinator and TransactionMetadata): requests and the time
//! come in; out come replies and the records to make durable first.
//!
//! Every change is a [`TxnRecord`] (the whole state of one transactional
//! id) that the caller persists in `__transaction_state` before it answers:
//! [`Coordinator::decide`]-style methods check a request against the state
//! and return `Persist { record, reply }`, or an immediate reply. The
//! transactional id is marked pending until the caller [`apply`]s the
//! record (written) or [`abandon`]s it (the write failed): meanwhile other
//! requests for it get CONCURRENT_TRANSACTIONS, as in Kafka.
//!
//! States, as Kafka names them: Empty (an id with no transaction),
//! Ongoing (partitions added), PrepareCommit / PrepareAbort (EndTxn
//! accepted, markers to write), CompleteCommit / CompleteAbort (markers
//! written). Rules:
//!
//! 1. InitProducerId: a new id starts at epoch 0 with a fresh producer id.
//!    Otherwise, from Empty or Complete*, the epoch is bumped (a retry
//!    naming the previous epoch gets the current one back); at the epoch
//!    limit a fresh producer id starts at 0. From Ongoing, the running
//!    transaction is aborted with a bumped epoch (fencing its producer) and
//!    the caller is told CONCURRENT_TRANSACTIONS (it retries). From
//!    Prepare*, CONCURRENT_TRANSACTIONS. A v3+ caller naming a producer id
//!    that is neither the current nor (with an exhausted epoch) the last
//!    one is PRODUCER_FENCED (KIP-360).
//! 2. AddPartitionsToTxn / AddOffsetsToTxn: the producer id must be the
//!    id's (else INVALID_PRODUCER_ID_MAPPING), the epoch current (else
//!    PRODUCER_FENCED); from Prepare*, CONCURRENT_TRANSACTIONS; partitions
//!    already in the Ongoing transaction need no write; else the state
//!    becomes Ongoing with them (the transaction's clock starts if it was
//!    not Ongoing).
//! 3. EndTxn: Ongoing becomes PrepareCommit or PrepareAbort; the reply
//!    follows that record, and the caller then writes the markers and
//!    [`complete`](Coordinator::complete)s it. A retry of a finished or
//!    finishing outcome is NONE or CONCURRENT_TRANSACTIONS; the other
//!    outcome, or EndTxn from Empty, is INVALID_TXN_STATE.
//! 4. An Ongoing transaction older than its timeout is aborted with a
//!    bumped epoch ([`expired`](Coordinator::expired)).
//! 5. Records replayed in order rebuild the state; transactions found in
//!    Prepare* have their markers written again (markers are idempotent).
//!
//! The driver (records in `__transaction_state`, markers, the clock) is
//! `crate::broker::transactions`; docs/transactions.md puts both together.

pub mod record;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use crate::handlers::errors::{
    CONCURRENT_TRANSACTIONS, INVALID_PRODUCER_ID_MAPPING, INVALID_REQUEST,
    INVALID_TRANSACTION_TIMEOUT, INVALID_TXN_STATE, PRODUCER_FENCED,
};

/// Kafka's `transaction.max.timeout.ms` default (15 minutes).
pub const TRANSACTION_MAX_TIMEOUT_MS: i32 = 900_000;
/// The highest epoch before a producer id is replaced (Kafka's
/// `Short.MAX_VALUE - 1`: one value is kept for fencing bumps).
const EPOCH_EXHAUSTED: i16 = i16::MAX - 1;
/// "No epoch" on the wire.
const NO_EPOCH: i16 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }
}

/// A partition in a transaction.
pub type TxnPartition = (String, i32);

/// Everything known about one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    /// The producer id before the last change of id (KIP-360 retries).
    pub last_producer_id: i64,
    pub epoch: i16,
    /// The epoch before the last bump, or -1.
    pub last_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    /// When the running transaction began (its first added partition).
    pub start_ms: i64,
    pub update_ms: i64,
}

/// The durable form of a change: one transactional id's whole state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub metadata: TxnMetadata,
}

/// What a request leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<T> {
    /// Answer now; nothing changes.
    Reply(T),
    /// Persist `record`, [`apply`](Coordinator::apply) it, then answer.
    Persist { record: TxnRecord, reply: T },
}

/// Markers the caller must write: every partition of a transaction gets a
/// commit or abort control batch from `producer_id` at `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markers {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    pub partitions: BTreeSet<TxnPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// `None` for a new id whose first record is not applied yet.
    metadata: Option<TxnMetadata>,
    /// A decided record not yet applied or abandoned.
    pending: bool,
}

/// Every transactional id one coordinator owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    ids: BTreeMap<String, Entry>,
    /// `transaction.max.timeout.ms`.
    max_timeout_ms: i32,
}

impl Default for Coordinator {
    fn default() -> Coordinator {
        Coordinator::with_max_timeout(TRANSACTION_MAX_TIMEOUT_MS)
    }
}

type Outcome<T> = Result<Decision<T>, i16>;

/// InitProducerId's answer: (producer id, epoch), or an error code to
/// answer once the record is persisted (CONCURRENT_TRANSACTIONS after the
/// running transaction's abort).
pub type InitReply = Result<(i64, i16), i16>;

impl Coordinator {
    /// A coordinator refusing timeouts over `max_timeout_ms`.
    pub fn with_max_timeout(max_timeout_ms: i32) -> Coordinator {
        Coordinator {
            ids: BTreeMap::new(),
            max_timeout_ms,
        }
    }

    pub fn metadata(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.ids.get(transactional_id)?.metadata.as_ref()
    }

    pub fn transactional_ids(&self) -> impl Iterator<Item = (&str, &TxnMetadata)> {
        self.ids
            .iter()
            .filter_map(|(id, e)| Some((id.as_str(), e.metadata.as_ref()?)))
    }

    /// Marks `transactional_id` pending and hands `metadata` out to persist.
    fn persist<T>(
        &mut self,
        transactional_id: &str,
        metadata: TxnMetadata,
        reply: T,
    ) -> Outcome<T> {
        self.ids
            .entry(transactional_id.to_string())
            .or_insert(Entry {
                metadata: None,
                pending: false,
            })
            .pending = true;
        let record = TxnRecord {
            transactional_id: transactional_id.to_string(),
            metadata,
        };
        Ok(Decision::Persist { record, reply })
    }

    /// The current state of an id that may take a request: pending ones
    /// are CONCURRENT_TRANSACTIONS.
    fn settled(&self, transactional_id: &str) -> Result<Option<&TxnMetadata>, i16> {
        match self.ids.get(transactional_id) {
            Some(entry) if entry.pending => Err(CONCURRENT_TRANSACTIONS),
            Some(entry) => Ok(entry.metadata.as_ref()),
            None => Ok(None),
        }
    }

    /// InitProducerId with a transactional id (rule 1). `fresh_producer_id`
    /// is used when the id is new or its epochs are exhausted; `expected`
    /// is the v3+ request's (producer id, epoch), if it named one.
    /// Replies (producer id, epoch).
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fresh_producer_id: i64,
        now_ms: i64,
    ) -> Outcome<InitReply> {
        if transactional_id.is_empty() {
            return Err(INVALID_REQUEST);
        }
        if timeout_ms <= 0 || timeout_ms > self.max_timeout_ms {
            return Err(INVALID_TRANSACTION_TIMEOUT);
        }
        let Some(current) = self.settled(transactional_id)?.cloned() else {
            let metadata = TxnMetadata {
                producer_id: fresh_producer_id,
                last_producer_id: -1,
                epoch: 0,
                last_epoch: NO_EPOCH,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                update_ms: now_ms,
            };
            return self.persist(transactional_id, metadata, Ok((fresh_producer_id, 0)));
        };
        if let Some((producer_id, epoch)) = expected {
            let valid = producer_id == current.producer_id
                || (producer_id == current.last_producer_id && epoch >= EPOCH_EXHAUSTED);
            if !valid {
                return Err(PRODUCER_FENCED);
            }
        }
        match current.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => Err(CONCURRENT_TRANSACTIONS),
            TxnState::Ongoing => {
                // Abort the running transaction under a bumped epoch; the
                // caller retries once it is complete.
                let mut metadata = current.clone();
                metadata.last_epoch = current.epoch;
                metadata.epoch = current.epoch.saturating_add(1);
                metadata.state = TxnState::PrepareAbort;
                metadata.update_ms = now_ms;
                self.persist(transactional_id, metadata, Err(CONCURRENT_TRANSACTIONS))
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let mut metadata = current.clone();
                metadata.timeout_ms = timeout_ms;
                metadata.update_ms = now_ms;
                metadata.partitions.clear();
                metadata.state = TxnState::Empty;
                let expected_epoch = expected.map(|(_, epoch)| epoch);
                if current.epoch >= EPOCH_EXHAUSTED
                    && expected_epoch.is_none_or(|e| e == current.epoch)
                {
                    metadata.last_producer_id = current.producer_id;
                    metadata.producer_id = fresh_producer_id;
                    metadata.last_epoch = NO_EPOCH;
                    metadata.epoch = 0;
                } else {
                    match expected_epoch {
                        None => {
                            metadata.epoch = current.epoch + 1;
                            metadata.last_epoch = NO_EPOCH;
                        }
                        Some(e) if e == current.epoch => {
                            metadata.epoch = current.epoch + 1;
                            metadata.last_epoch = current.epoch;
                        }
                        // A retry of a bump whose answer was lost.
                        Some(e) if e == current.last_epoch => {
                            return Ok(Decision::Reply(Ok((current.producer_id, current.epoch))));
                        }
                        Some(_) => return Err(PRODUCER_FENCED),
                    }
                }
                let reply = Ok((metadata.producer_id, metadata.epoch));
                self.persist(transactional_id, metadata, reply)
            }
        }
    }

    /// Checks a producer's right to act on `transactional_id` (rule 2).
    fn producer_of(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
    ) -> Result<TxnMetadata, i16> {
        let current = self
            .settled(transactional_id)?
            .ok_or(INVALID_PRODUCER_ID_MAPPING)?;
        if current.producer_id != producer_id {
            return Err(INVALID_PRODUCER_ID_MAPPING);
        }
        if current.epoch != epoch {
            return Err(PRODUCER_FENCED);
        }
        Ok(current.clone())
    }

    /// AddPartitionsToTxn and AddOffsetsToTxn (whose partition is the
    /// group's `__consumer_offsets` partition).
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TxnPartition],
        now_ms: i64,
    ) -> Outcome<()> {
        let current = self.producer_of(transactional_id, producer_id, epoch)?;
        match current.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => Err(CONCURRENT_TRANSACTIONS),
            TxnState::Ongoing if partitions.iter().all(|p| current.partitions.contains(p)) => {
                Ok(Decision::Reply(()))
            }
            state => {
                let mut metadata = current;
                if state != TxnState::Ongoing {
                    metadata.partitions.clear();
                    metadata.start_ms = now_ms;
                }
                metadata.partitions.extend(partitions.iter().cloned());
                metadata.state = TxnState::Ongoing;
                metadata.update_ms = now_ms;
                self.persist(transactional_id, metadata, ())
            }
        }
    }

    /// EndTxn (rule 3). After the record, the caller writes
    /// [`markers`](Self::markers) and completes the transaction.
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Outcome<()> {
        let current = self.producer_of(transactional_id, producer_id, epoch)?;
        match (current.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut metadata = current;
                metadata.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                metadata.update_ms = now_ms;
                self.persist(transactional_id, metadata, ())
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Ok(Decision::Reply(()))
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(CONCURRENT_TRANSACTIONS)
            }
            _ => Err(INVALID_TXN_STATE),
        }
    }

    /// Transactions whose markers are to be written: every settled one in
    /// Prepare* (after EndTxn, a timeout, or a restart).
    pub fn markers(&self) -> Vec<Markers> {
        self.ids
            .iter()
            .filter(|(_, e)| !e.pending)
            .filter_map(|(id, e)| {
                let metadata = e.metadata.as_ref()?;
                let commit = match metadata.state {
                    TxnState::PrepareCommit => true,
                    TxnState::PrepareAbort => false,
                    _ => return None,
                };
                Some(Markers {
                    transactional_id: id.clone(),
                    producer_id: metadata.producer_id,
                    epoch: metadata.epoch,
                    commit,
                    partitions: metadata.partitions.clone(),
                })
            })
            .collect()
    }

    /// The record that completes a transaction whose markers are written.
    pub fn complete(&mut self, transactional_id: &str, now_ms: i64) -> Option<TxnRecord> {
        let current = self.settled(transactional_id).ok()??.clone();
        let state = match current.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return None,
        };
        let mut metadata = current;
        metadata.state = state;
        metadata.partitions.clear();
        metadata.update_ms = now_ms;
        match self.persist(transactional_id, metadata, ()) {
            Ok(Decision::Persist { record, .. }) => Some(record),
            _ => None,
        }
    }

    /// Records that abort every Ongoing transaction past its timeout, each
    /// under a bumped epoch so its producer is fenced (rule 4).
    pub fn expired(&mut self, now_ms: i64) -> Vec<TxnRecord> {
        let due: Vec<(String, TxnMetadata)> = self
            .ids
            .iter()
            .filter(|(_, e)| !e.pending)
            .filter_map(|(id, e)| Some((id, e.metadata.as_ref()?)))
            .filter(|(_, m)| {
                m.state == TxnState::Ongoing
                    && now_ms.saturating_sub(m.start_ms) > i64::from(m.timeout_ms)
            })
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect();
        due.into_iter()
            .filter_map(|(id, current)| {
                let mut metadata = current.clone();
                metadata.last_epoch = current.epoch;
                metadata.epoch = current.epoch.saturating_add(1);
                metadata.state = TxnState::PrepareAbort;
                metadata.update_ms = now_ms;
                match self.persist(&id, metadata, ()) {
                    Ok(Decision::Persist { record, .. }) => Some(record),
                    _ => None,
                }
            })
            .collect()
    }

    /// Ids idle past `expiration_ms` (Kafka's transactional.id.expiration.ms)
    /// with no transaction running, marked pending: the caller writes their
    /// tombstones, then [`remove`](Self::remove)s them (or
    /// [`abandon`](Self::abandon)s, if the write failed).
    pub fn take_idle(&mut self, now_ms: i64, expiration_ms: i64) -> Vec<String> {
        let idle: Vec<String> = self
            .ids
            .iter()
            .filter(|(_, e)| !e.pending)
            .filter_map(|(id, e)| Some((id, e.metadata.as_ref()?)))
            .filter(|(_, m)| {
                matches!(
                    m.state,
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                ) && now_ms.saturating_sub(m.update_ms) > expiration_ms
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &idle {
            if let Some(entry) = self.ids.get_mut(id) {
                entry.pending = true;
            }
        }
        idle
    }

    /// Forgets the ids `in_partition` picks: their partition of
    /// `__transaction_state` is led by another broker now, which replays
    /// them (and finishes what they left unfinished).
    pub fn unload(&mut self, in_partition: impl Fn(&str) -> bool) {
        self.ids.retain(|id, _| !in_partition(id));
    }

    /// Forgets an id (its tombstone is written, or replayed).
    pub fn remove(&mut self, transactional_id: &str) {
        self.ids.remove(transactional_id);
    }

    /// Applies a persisted record (also when replaying the log).
    pub fn apply(&mut self, record: TxnRecord) {
        self.ids.insert(
            record.transactional_id,
            Entry {
                metadata: Some(record.metadata),
                pending: false,
            },
        );
    }

    /// Forgets a decision whose record could not be written.
    pub fn abandon(&mut self, transactional_id: &str) {
        let new = match self.ids.get_mut(transactional_id) {
            Some(entry) => {
                entry.pending = false;
                entry.metadata.is_none()
            }
            None => false,
        };
        // A new id whose first record failed never existed.
        if new {
            self.ids.remove(transactional_id);
        }
    }
}
