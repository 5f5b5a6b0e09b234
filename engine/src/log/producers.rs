//! Idempotent producers' state in one partition (Kafka's
//! ProducerStateManager): for each producer id, its epoch and the sequence
//! ranges and offsets of its last five batches. Every append is checked
//! against it under the append lock: a retried batch (same epoch, same
//! sequences as one of the five) is a duplicate, answered with the offsets
//! it got the first time and not stored again; a gap in the sequence is
//! OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is INVALID_PRODUCER_EPOCH.
//! A producer this partition does not know may start at any sequence (its
//! state may have gone with retention, as in Kafka since KIP-360).
//!
//! The state is rebuilt on open: from the snapshot written at the last roll
//! or clean close (`producer.snapshot`, the state as of its offset), then
//! the batches from that offset to the log end. Producers idle longer than
//! `producer.id.expiration.ms` ([`PRODUCER_ID_EXPIRATION_MS`] by default)
//! are forgotten at rolls and on open.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;

use crate::batch::BatchHeader;
use crate::batch::builder::Marker;
use crate::{IoError, Offset, io};

pub const SNAPSHOT_FILE: &str = "producer.snapshot";
/// Batches remembered per producer: Kafka's (and the clients')
/// `max.in.flight.requests.per.connection` bound for idempotence.
pub const BATCHES_KEPT: usize = 5;
/// Kafka's `producer.id.expiration.ms` default (1 day).
pub const PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;

const MAGIC: &[u8; 8] = b"SLPROD03";
/// The previous format, still read: no coordinator epochs.
const MAGIC_02: &[u8; 8] = b"SLPROD02";
/// No marker seen yet: any coordinator epoch is taken.
const NO_COORDINATOR_EPOCH: i32 = -1;

/// One remembered batch: its sequence range and where it was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchSeq {
    first_seq: i32,
    last_seq: i32,
    first_offset: Offset,
    last_offset: Offset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    epoch: i16,
    batches: VecDeque<BatchSeq>,
    /// Wall-clock time of its last append, for expiration.
    last_append_ms: i64,
    /// The first offset of its open transaction, if one is open here.
    txn_first: Option<Offset>,
    /// The coordinator epoch of its last marker here (Kafka's
    /// ProducerStateEntry.coordinatorEpoch): a marker from an older one
    /// comes from a deposed coordinator.
    coordinator_epoch: i32,
}

impl Entry {
    fn new(epoch: i16, now_ms: i64) -> Entry {
        Entry {
            epoch,
            batches: VecDeque::new(),
            last_append_ms: now_ms,
            txn_first: None,
            coordinator_epoch: NO_COORDINATOR_EPOCH,
        }
    }
}

/// A transaction that ended in an abort marker: consumers reading
/// committed data skip `producer_id`'s records from `first_offset` on, up
/// to the marker at `last_offset` (Kafka's .txnindex entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: Offset,
    pub last_offset: Offset,
}

/// One producer's state in a partition, as DescribeProducers shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerView {
    pub producer_id: i64,
    pub epoch: i16,
    /// The sequence of its last stored record; -1 if none in this epoch.
    pub last_sequence: i32,
    pub last_append_ms: i64,
    /// The first offset of its open transaction here.
    pub txn_start_offset: Option<Offset>,
    /// The coordinator epoch of its last marker here (-1: none).
    pub coordinator_epoch: i32,
}

/// Why an idempotent batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {producer_id}: sequence {got} does not follow {last}")]
    OutOfOrderSequence {
        producer_id: i64,
        last: i32,
        got: i32,
    },
    #[error("producer {producer_id}: epoch {got} is older than {current}")]
    InvalidEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
    /// TRANSACTION_COORDINATOR_FENCED: a marker from a coordinator older
    /// than the one that wrote this producer's last marker here.
    #[error("producer {producer_id}: marker from coordinator epoch {got}, older than {current}")]
    CoordinatorFenced {
        producer_id: i64,
        current: i32,
        got: i32,
    },
}

/// What an append is, for the producers' state.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Store it; then record these updates.
    Append(Updates),
    /// A retry of batches already stored at [first, last].
    Duplicate { first: Offset, last: Offset },
}

/// The entries an append changes, applied once it is staged, and the
/// transaction an abort marker ends.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Updates(Vec<(i64, Entry)>, Option<AbortedTxn>);

/// Every producer's state in one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Producers {
    entries: HashMap<i64, Entry>,
    /// Open transactions by first offset: the first is the last stable
    /// offset's bound.
    ongoing: BTreeSet<(Offset, i64)>,
    /// Aborted transactions still in the log, by marker offset.
    aborted: Vec<AbortedTxn>,
}

/// The sequence of a batch's last record (sequences wrap at i32::MAX).
pub(super) fn last_sequence(header: &BatchHeader) -> i32 {
    let (base, delta) = (header.base_sequence(), header.last_offset_delta());
    if base > i32::MAX - delta {
        delta - (i32::MAX - base) - 1
    } else {
        base + delta
    }
}

fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (last == i32::MAX && next == 0)
}

impl Producers {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Checks the batches of one append, whose first offset will be `base`,
    /// in order (later batches see earlier ones). `headers` are the batches'
    /// headers as sent.
    pub(super) fn check<'a>(
        &self,
        headers: impl IntoIterator<Item = &'a BatchHeader>,
        base: Offset,
        now_ms: i64,
    ) -> Result<Verdict, ProducerError> {
        let mut updated: Vec<(i64, Entry)> = Vec::new();
        let mut next = base;
        for header in headers {
            let first_offset = next;
            next = next.plus(i64::from(header.last_offset_delta()) + 1);
            let producer_id = header.producer_id();
            if producer_id < 0 {
                continue;
            }
            let at = updated.iter().position(|(id, _)| *id == producer_id);
            let current = match at {
                Some(i) => updated.get(i).map(|(_, e)| e),
                None => self.entries.get(&producer_id),
            };
            let (epoch, first_seq) = (header.producer_epoch(), header.base_sequence());
            let last_seq = last_sequence(header);
            let mut entry = match current {
                Some(entry) => {
                    if epoch < entry.epoch {
                        return Err(ProducerError::InvalidEpoch {
                            producer_id,
                            current: entry.epoch,
                            got: epoch,
                        });
                    }
                    if epoch == entry.epoch {
                        let same =
                            |b: &&BatchSeq| b.first_seq == first_seq && b.last_seq == last_seq;
                        if let Some(stored) = entry.batches.iter().find(same) {
                            // Kafka answers a request whose batch is a retry
                            // with the first stored copy's offsets.
                            return Ok(Verdict::Duplicate {
                                first: stored.first_offset,
                                last: stored.last_offset,
                            });
                        }
                        // With no batch yet in this epoch (a fencing marker
                        // opened it), the sequence starts at 0, as in Kafka.
                        let last = entry.batches.back().map_or(-1, |b| b.last_seq);
                        if !in_sequence(last, first_seq) {
                            return Err(ProducerError::OutOfOrderSequence {
                                producer_id,
                                last,
                                got: first_seq,
                            });
                        }
                        entry.clone()
                    } else {
                        // A new epoch starts its sequences again at 0.
                        if first_seq != 0 {
                            return Err(ProducerError::OutOfOrderSequence {
                                producer_id,
                                last: -1,
                                got: first_seq,
                            });
                        }
                        // An open transaction stays open until its marker.
                        Entry {
                            txn_first: entry.txn_first,
                            ..Entry::new(epoch, now_ms)
                        }
                    }
                }
                // Unknown here (new, or its state expired or was deleted
                // with the log's head): any sequence starts it.
                None => Entry::new(epoch, now_ms),
            };
            if header.is_transactional() && entry.txn_first.is_none() {
                entry.txn_first = Some(first_offset);
            }
            entry.batches.push_back(BatchSeq {
                first_seq,
                last_seq,
                first_offset,
                last_offset: next.plus(-1),
            });
            if entry.batches.len() > BATCHES_KEPT {
                entry.batches.pop_front();
            }
            entry.last_append_ms = now_ms;
            match at {
                Some(i) => {
                    if let Some(slot) = updated.get_mut(i) {
                        slot.1 = entry;
                    }
                }
                None => updated.push((producer_id, entry)),
            }
        }
        Ok(Verdict::Append(Updates(updated, None)))
    }

    /// Checks a commit or abort marker from `producer_id` at `epoch`, to be
    /// stored at `offset`: it closes the producer's open transaction here
    /// (if any; an abort is then remembered for read_committed readers). An
    /// older epoch is refused; a newer one starts the producer's sequences
    /// afresh (the coordinator fenced it).
    pub(super) fn marker(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        offset: Offset,
        now_ms: i64,
    ) -> Result<Updates, ProducerError> {
        if let Some(entry) = self.entries.get(&producer_id)
            && coordinator_epoch < entry.coordinator_epoch
        {
            return Err(ProducerError::CoordinatorFenced {
                producer_id,
                current: entry.coordinator_epoch,
                got: coordinator_epoch,
            });
        }
        let mut entry = match self.entries.get(&producer_id) {
            Some(entry) if epoch < entry.epoch => {
                return Err(ProducerError::InvalidEpoch {
                    producer_id,
                    current: entry.epoch,
                    got: epoch,
                });
            }
            Some(entry) if epoch == entry.epoch => entry.clone(),
            Some(entry) => Entry {
                txn_first: entry.txn_first,
                ..Entry::new(epoch, now_ms)
            },
            None => Entry::new(epoch, now_ms),
        };
        entry.coordinator_epoch = coordinator_epoch;
        let aborted = match entry.txn_first.take() {
            Some(first_offset) if !commit => Some(AbortedTxn {
                producer_id,
                first_offset,
                last_offset: offset,
            }),
            _ => None,
        };
        entry.last_append_ms = now_ms;
        Ok(Updates(vec![(producer_id, entry)], aborted))
    }

    pub(super) fn apply(&mut self, updates: Updates) {
        for (producer_id, entry) in updates.0 {
            if let Some(first) = self.entries.get(&producer_id).and_then(|e| e.txn_first) {
                self.ongoing.remove(&(first, producer_id));
            }
            if let Some(first) = entry.txn_first {
                self.ongoing.insert((first, producer_id));
            }
            self.entries.insert(producer_id, entry);
        }
        self.aborted.extend(updates.1);
    }

    /// The sequence `producer_id`'s next batch at `epoch` starts with.
    pub(super) fn next_sequence(&self, producer_id: i64, epoch: i16) -> i32 {
        match self.entries.get(&producer_id) {
            Some(entry) if entry.epoch == epoch => entry.batches.back().map_or(0, |b| {
                if b.last_seq == i32::MAX {
                    0
                } else {
                    b.last_seq + 1
                }
            }),
            _ => 0,
        }
    }

    /// Whether `producer_id` at `epoch` has a transaction open here.
    pub(super) fn transaction_open(&self, producer_id: i64, epoch: i16) -> bool {
        self.entries
            .get(&producer_id)
            .is_some_and(|e| e.epoch == epoch && e.txn_first.is_some())
    }

    /// Every producer's state, by producer id.
    pub(super) fn views(&self) -> Vec<ProducerView> {
        let mut views: Vec<ProducerView> = self
            .entries
            .iter()
            .map(|(&producer_id, e)| ProducerView {
                producer_id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_append_ms: e.last_append_ms,
                txn_start_offset: e.txn_first,
                coordinator_epoch: e.coordinator_epoch,
            })
            .collect();
        views.sort_by_key(|v| v.producer_id);
        views
    }

    /// The first offset of the earliest open transaction: nothing from it
    /// on is stable yet.
    pub(super) fn first_unstable(&self) -> Option<Offset> {
        self.ongoing.first().map(|(offset, _)| *offset)
    }

    /// Aborted transactions that a read of `[from, to)` overlaps, in
    /// marker order: (producer id, first offset).
    pub(super) fn aborted_between(&self, from: Offset, to: Offset) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets the aborted transaction of `producer_id` whose marker was at
    /// `marker` (the cleaner removed the marker, its records gone before
    /// it): reads stop listing it, so read_committed consumers do not skip
    /// the producer's later records waiting for a marker that is no more.
    pub(super) fn forget_aborted(&mut self, producer_id: i64, marker: Offset) {
        self.aborted
            .retain(|a| a.producer_id != producer_id || a.last_offset != marker);
    }

    /// Forgets aborted transactions wholly below `log_start`.
    pub(super) fn trim(&mut self, log_start: Offset) {
        self.aborted.retain(|a| a.last_offset >= log_start);
    }

    /// Replays a stored batch (its offsets final) while rebuilding.
    pub(super) fn replay(&mut self, header: &BatchHeader, now_ms: i64) {
        if header.producer_id() < 0 {
            return;
        }
        // Stored batches were checked when appended; a replay only records.
        match self.check([header], header.base_offset(), now_ms) {
            Ok(Verdict::Append(updates)) => self.apply(updates),
            // Recorded already (the snapshot was taken after it).
            Ok(Verdict::Duplicate { .. }) => {}
            Err(_) => self.restart(header, now_ms),
        }
    }

    /// Records `header` as its producer's only batch.
    fn restart(&mut self, header: &BatchHeader, now_ms: i64) {
        // A new epoch not starting at 0, say: the log is the truth.
        let first_offset = header.base_offset();
        let mut entry = Entry::new(header.producer_epoch(), now_ms);
        entry.batches.push_back(BatchSeq {
            first_seq: header.base_sequence(),
            last_seq: last_sequence(header),
            first_offset,
            last_offset: header.last_offset(),
        });
        if header.is_transactional() {
            entry.txn_first = self
                .entries
                .get(&header.producer_id())
                .and_then(|e| e.txn_first)
                .or(Some(first_offset));
        }
        self.apply(Updates(vec![(header.producer_id(), entry)], None));
    }

    /// Replays a stored commit or abort marker while rebuilding.
    pub(super) fn replay_marker(&mut self, header: &BatchHeader, marker: Marker, now_ms: i64) {
        let (producer_id, epoch) = (header.producer_id(), header.producer_epoch());
        let commit = marker.commit;
        let coordinator_epoch = marker.coordinator_epoch.unwrap_or(NO_COORDINATOR_EPOCH);
        let offset = header.base_offset();
        // The log is the truth: an older epoch's marker is taken as it is.
        let updates = self
            .marker(
                producer_id,
                epoch,
                commit,
                coordinator_epoch,
                offset,
                now_ms,
            )
            .unwrap_or_else(|_| {
                let entry = Entry {
                    coordinator_epoch,
                    ..Entry::new(epoch, now_ms)
                };
                Updates(vec![(producer_id, entry)], None)
            });
        self.apply(updates);
    }

    /// Forgets producers idle for `expiration_ms` (never one with an open
    /// transaction: the coordinator ends it first).
    pub(super) fn expire(&mut self, now_ms: i64, expiration_ms: i64) {
        self.entries.retain(|_, e| {
            e.txn_first.is_some() || now_ms.saturating_sub(e.last_append_ms) < expiration_ms
        });
    }

    /// The snapshot file's bytes: the state as of `offset` (every batch
    /// below it included). Little-endian fields, a CRC-32C last.
    pub(super) fn encode(&self, offset: Offset) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&offset.0.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        let mut ids: Vec<&i64> = self.entries.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(e) = self.entries.get(id) else {
                continue;
            };
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&e.epoch.to_le_bytes());
            out.extend_from_slice(&e.last_append_ms.to_le_bytes());
            let txn_first = e.txn_first.map_or(-1, |o| o.0);
            out.extend_from_slice(&txn_first.to_le_bytes());
            out.extend_from_slice(&e.coordinator_epoch.to_le_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_le_bytes());
                out.extend_from_slice(&b.last_seq.to_le_bytes());
                out.extend_from_slice(&b.first_offset.0.to_le_bytes());
                out.extend_from_slice(&b.last_offset.0.to_le_bytes());
            }
        }
        out.extend_from_slice(&(self.aborted.len() as u32).to_le_bytes());
        for a in &self.aborted {
            out.extend_from_slice(&a.producer_id.to_le_bytes());
            out.extend_from_slice(&a.first_offset.0.to_le_bytes());
            out.extend_from_slice(&a.last_offset.0.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses a snapshot: the state and its offset; `None` if malformed.
    pub(super) fn decode(bytes: &[u8]) -> Option<(Producers, Offset)> {
        let (body, crc) = bytes.split_last_chunk::<4>()?;
        if crc32c::crc32c(body) != u32::from_le_bytes(*crc) {
            return None;
        }
        let (mut rest, with_coordinator_epochs) = match body.strip_prefix(MAGIC) {
            Some(rest) => (rest, true),
            None => (body.strip_prefix(MAGIC_02)?, false),
        };
        let mut take = |n: usize| -> Option<&[u8]> {
            let (head, tail) = rest.split_at_checked(n)?;
            rest = tail;
            Some(head)
        };
        let i64_of = |b: &[u8]| b.try_into().ok().map(i64::from_le_bytes);
        let i32_of = |b: &[u8]| b.try_into().ok().map(i32::from_le_bytes);
        let offset = Offset(i64_of(take(8)?)?);
        let count = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let mut producers = Producers::default();
        for _ in 0..count {
            let id = i64_of(take(8)?)?;
            let epoch = i16::from_le_bytes(take(2)?.try_into().ok()?);
            let last_append_ms = i64_of(take(8)?)?;
            let txn_first = Some(Offset(i64_of(take(8)?)?)).filter(|o| o.0 >= 0);
            let coordinator_epoch = if with_coordinator_epochs {
                i32_of(take(4)?)?
            } else {
                NO_COORDINATOR_EPOCH
            };
            let n = *take(1)?.first()?;
            let mut batches = VecDeque::with_capacity(usize::from(n));
            for _ in 0..n {
                batches.push_back(BatchSeq {
                    first_seq: i32_of(take(4)?)?,
                    last_seq: i32_of(take(4)?)?,
                    first_offset: Offset(i64_of(take(8)?)?),
                    last_offset: Offset(i64_of(take(8)?)?),
                });
            }
            let entry = Entry {
                epoch,
                batches,
                last_append_ms,
                txn_first,
                coordinator_epoch,
            };
            producers.apply(Updates(vec![(id, entry)], None));
        }
        let aborted = u32::from_le_bytes(take(4)?.try_into().ok()?);
        for _ in 0..aborted {
            producers.aborted.push(AbortedTxn {
                producer_id: i64_of(take(8)?)?,
                first_offset: Offset(i64_of(take(8)?)?),
                last_offset: Offset(i64_of(take(8)?)?),
            });
        }
        rest.is_empty().then_some((producers, offset))
    }

    pub(super) async fn write_snapshot(&self, dir: &Path, offset: Offset) -> Result<(), IoError> {
        write_snapshot(dir, self.encode(offset)).await
    }

    /// The snapshot in `dir`, if there is a valid one.
    pub(super) async fn read_snapshot(dir: &Path) -> Result<Option<(Producers, Offset)>, IoError> {
        let path = dir.join(SNAPSHOT_FILE);
        Ok(io::read_file(&path).await?.and_then(|bytes| {
            let decoded = Producers::decode(&bytes);
            if decoded.is_none() {
                tracing::warn!(path = %path.display(), "producer snapshot unreadable; rebuilding from the log");
            }
            decoded
        }))
    }
}

/// Writes an encoded snapshot ([`Producers::encode`]).
pub(super) async fn write_snapshot(dir: &Path, encoded: Vec<u8>) -> Result<(), IoError> {
    io::write_file_atomic(&dir.join(SNAPSHOT_FILE), encoded).await
}

#[cfg(test)]
#[path = "producers_test.rs"]
mod tests;
