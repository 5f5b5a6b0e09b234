//! [`QuorumNode`]: one voter of the metadata quorum, sans-IO.
//!
//! Raft is TiKV's raft-rs (`RawNode`), itself a state machine: this wraps it
//! with the cluster metadata it replicates and the controller that decides
//! what to append. The driver feeds it time ([`QuorumNode::tick`]), peer
//! messages ([`QuorumNode::step`]) and requests ([`QuorumNode::propose`]),
//! and performs the [`Action`]s [`QuorumNode::poll`] returns, in order.

use std::collections::BTreeMap;

use raft::prelude::{Entry, HardState, Message, MessageType, Snapshot};
use raft::storage::MemStorage;
use raft::{Config, GetEntriesContext, RaftState, RawNode, SnapshotStatus, StateRole, Storage};

use super::controller::{Controller, ControllerConfig, ControllerError, ControllerRequest};
use super::raft_logger::RaftLogger;
use crate::metadata::{ClusterMetadata, MetadataRecord};

/// A voter's settings.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This voter's id (Kafka's node.id), not 0.
    pub node_id: u64,
    /// Every voter's id, this one's too (a static quorum).
    pub voters: Vec<u64>,
    /// Ticks without a leader's word before a follower campaigns: the
    /// election timeout is drawn from [election_ticks, 2 * election_ticks).
    pub election_ticks: usize,
    /// Ticks between the leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// Seeds the election timeouts' draws (a simulator's seed, or any
    /// per-process value in a broker).
    pub seed: u64,
    /// The bytes of entries applied after which the voter takes a snapshot
    /// of the metadata and drops the log before it (Kafka's
    /// `metadata.log.max.record.bytes.between.snapshots`).
    pub snapshot_bytes: u64,
    pub controller: ControllerConfig,
}

/// What a voter keeps durable: Raft's hard state (term, vote, commit), its
/// latest snapshot and the log after it. A restarted voter is built from
/// what reached the disk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DurableState {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// From the entry after the snapshot's (or the first) on.
    pub entries: Vec<Entry>,
}

impl DurableState {
    /// The index the snapshot holds the state at (0 without one).
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.get_metadata().index)
    }

    /// The last index of the log (the snapshot's, without entries after).
    pub fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map_or_else(|| self.snapshot_index(), |e| e.index)
    }
}

/// Where an accepted request's records are in the metadata log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The Raft index of the entry holding them; 0 when the request needed
    /// no record (a heartbeat that changes nothing).
    pub index: u64,
    pub term: u64,
    /// The producer ids the entry reserved (first, count): the requester's
    /// own block, which the metadata applied later no longer tells apart
    /// from other brokers' blocks.
    pub producer_ids: Option<(i64, i64)>,
}

/// What the driver must do, in the order given.
#[derive(Debug)]
pub enum Action {
    /// Send each message to its `to` voter. Losing one is allowed (Raft
    /// sends again).
    Send(Vec<Message>),
    /// Make durable before performing any action after this one: the
    /// entries replace the log from the first one's index on (a conflicting
    /// tail is cut), then the hard state, if any, replaces the stored one.
    /// A driver that cannot must stop the voter and restart it from disk.
    Persist {
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
    },
    /// Committed records, now applied to [`QuorumNode::metadata`]: the
    /// broker brings its shards in line with them.
    Applied {
        index: u64,
        records: Vec<MetadataRecord>,
    },
    /// Make durable, in place of everything before: the snapshot, the
    /// hard state and the log entries after the snapshot's index. Taken by
    /// this voter, or sent by the leader to a voter far behind (then
    /// followed by [`Action::Restored`]).
    Snapshot {
        snapshot: Snapshot,
        hard_state: HardState,
        entries: Vec<Entry>,
    },
    /// [`QuorumNode::metadata`] was replaced by a snapshot's, at `index`:
    /// the broker brings its shards in line with it, as after
    /// [`Action::Applied`].
    Restored { index: u64 },
    /// The answer to the proposal with this id.
    Reply {
        id: u64,
        result: Result<Committed, ControllerError>,
    },
}

/// One voter: Raft, the committed metadata and, while it leads, the
/// controller.
pub struct QuorumNode {
    raw: RawNode<QuorumStorage>,
    /// The metadata every committed entry built, applied in index order.
    metadata: ClusterMetadata,
    /// While leading: `metadata` plus every entry appended but not yet
    /// committed, which the controller decides against.
    speculative: Option<ClusterMetadata>,
    controller: Controller,
    /// Proposals awaiting commit, by the index of their entry.
    pending: BTreeMap<u64, Pending>,
    actions: Vec<Action>,
    election_ticks: usize,
    rng: u64,
    now_ms: u64,
    snapshot_bytes: u64,
    /// Bytes of entries applied since the latest snapshot.
    applied_bytes: u64,
    /// Voters sent a snapshot in the Ready being handled.
    snapshots_sent: Vec<u64>,
}

/// Raft's log in memory (raft-rs's `MemStorage`) and the latest snapshot
/// with the metadata it holds, which `MemStorage` does not keep.
struct QuorumStorage {
    mem: MemStorage,
    latest: Snapshot,
}

impl Storage for QuorumStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    /// The latest snapshot, sent to a voter whose next entry is gone.
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.latest.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.latest.clone())
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    term: u64,
    id: u64,
}

impl std::fmt::Debug for QuorumNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumNode")
            .field("id", &self.raw.raft.id)
            .field("term", &self.raw.raft.term)
            .field("role", &self.raw.raft.state)
            .field("applied_records", &self.metadata.applied())
            .finish_non_exhaustive()
    }
}

impl QuorumNode {
    /// A voter starting from what it had made durable (nothing, the first
    /// time). The metadata starts as the snapshot's (empty without one);
    /// committed entries after it are applied again: the rest is rebuilt
    /// by replay. A snapshot that does not decode is a storage error.
    pub fn new(config: QuorumConfig, durable: DurableState) -> Result<Self, raft::Error> {
        let mem = MemStorage::new_with_conf_state((config.voters.clone(), Vec::new()));
        let mut metadata = ClusterMetadata::default();
        let mut latest = Snapshot::default();
        {
            let mut core = mem.wl();
            if let Some(snapshot) = durable.snapshot {
                metadata = ClusterMetadata::decode_snapshot(snapshot.get_data())
                    .map_err(|e| raft::Error::Store(raft::StorageError::Other(Box::new(e))))?;
                core.apply_snapshot(snapshot.clone())?;
                latest = snapshot;
            }
            core.append(&durable.entries)?;
            core.set_hardstate(durable.hard_state);
        }
        let storage = QuorumStorage { mem, latest };
        let raft_config = Config {
            id: config.node_id,
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            // Pre-vote: a voter cut off and back does not disturb a healthy
            // leader; check-quorum: a leader cut off from a majority steps
            // down instead of lingering.
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..Config::default()
        };
        raft_config.validate()?;
        let logger = slog::Logger::root(RaftLogger, slog::o!("voter" => config.node_id));
        let raw = RawNode::new(&raft_config, storage, &logger)?;
        let mut node = QuorumNode {
            raw,
            metadata,
            speculative: None,
            controller: Controller::new(config.controller),
            pending: BTreeMap::new(),
            actions: Vec::new(),
            election_ticks: config.election_ticks,
            rng: config.seed ^ config.node_id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            now_ms: 0,
            snapshot_bytes: config.snapshot_bytes,
            applied_bytes: 0,
            snapshots_sent: Vec::new(),
        };
        node.draw_election_timeout();
        Ok(node)
    }

    /// The committed metadata.
    pub fn metadata(&self) -> &ClusterMetadata {
        &self.metadata
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The voter this one believes leads, if any.
    pub fn leader(&self) -> Option<u64> {
        Some(self.raw.raft.leader_id).filter(|&id| id != raft::INVALID_ID)
    }

    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The index up to which entries are committed (as this voter knows).
    pub fn committed_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// Advances time to `now_ms` by one Raft tick; the leader also fences
    /// brokers whose sessions expired, then moves leaderships back to
    /// preferred replicas when it is time to.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.raw.tick();
        self.observe();
        // The controller's own proposals: nobody awaits them.
        if let Some(state) = &self.speculative {
            let records = self.controller.expire(state, now_ms);
            if !records.is_empty() {
                self.append(None, records);
            }
        }
        if let Some(state) = &self.speculative {
            let records = self.controller.rebalance(state, now_ms);
            if !records.is_empty() {
                self.append(None, records);
            }
        }
    }

    /// A message from another voter. A snapshot that does not decode is
    /// dropped before Raft takes it (Raft would count it applied).
    pub fn step(&mut self, message: Message) {
        if message.get_msg_type() == MessageType::MsgSnapshot
            && let Err(e) = ClusterMetadata::decode_snapshot(message.get_snapshot().get_data())
        {
            tracing::warn!(from = message.from, %e, "quorum: unreadable snapshot dropped");
            return;
        }
        if let Err(e) = self.raw.step(message) {
            tracing::debug!(%e, "quorum: message not taken");
        }
        self.observe();
    }

    /// A request to the controller; answered by a [`Action::Reply`] with
    /// `id` once its records are committed (or at once when refused, when
    /// there is nothing to append, or when this voter does not lead).
    pub fn propose(&mut self, id: u64, request: ControllerRequest) {
        let Some(state) = &self.speculative else {
            let leader = self.leader();
            self.reply(id, Err(ControllerError::NotController { leader }));
            return;
        };
        match self.controller.decide(state, request, self.now_ms) {
            Err(e) => self.reply(id, Err(e)),
            Ok(records) if records.is_empty() => self.reply(
                id,
                Ok(Committed {
                    index: 0,
                    term: self.term(),
                    producer_ids: None,
                }),
            ),
            Ok(records) => self.append(Some(id), records),
        }
    }

    /// The actions to perform, in order, since the last poll.
    pub fn poll(&mut self) -> Vec<Action> {
        while self.raw.has_ready() {
            let mut ready = self.raw.ready();
            if !ready.messages().is_empty() {
                self.send(ready.take_messages());
            }
            if !ready.snapshot().is_empty() {
                self.restore(ready.snapshot().clone());
            }
            // Committed entries in a Ready are durable here already.
            let committed = ready.take_committed_entries();
            self.apply(committed);
            let entries = ready.take_entries();
            let hard_state = ready.hs().cloned();
            if !entries.is_empty() || hard_state.is_some() {
                let mut core = self.raw.raft.raft_log.store.mem.wl();
                if let Err(e) = core.append(&entries) {
                    tracing::error!(%e, "quorum: entries do not fit the log");
                }
                if let Some(hs) = &hard_state {
                    core.set_hardstate(hs.clone());
                }
                drop(core);
                self.actions.push(Action::Persist {
                    entries,
                    hard_state,
                });
            }
            if !ready.persisted_messages().is_empty() {
                self.send(ready.take_persisted_messages());
            }
            let mut light = self.raw.advance(ready);
            if let Some(commit) = light.commit_index() {
                let mut core = self.raw.raft.raft_log.store.mem.wl();
                core.mut_hard_state().set_commit(commit);
                let hard_state = core.hard_state().clone();
                drop(core);
                self.actions.push(Action::Persist {
                    entries: Vec::new(),
                    hard_state: Some(hard_state),
                });
            }
            if !light.messages().is_empty() {
                self.send(light.take_messages());
            }
            let committed = light.take_committed_entries();
            self.apply(committed);
            self.raw.advance_apply();
            for to in std::mem::take(&mut self.snapshots_sent) {
                // Sent is as good as taken: Raft probes the voter next,
                // and one that did not get it is sent it again.
                self.raw.report_snapshot(to, SnapshotStatus::Finish);
            }
            self.observe();
        }
        if self.applied_bytes >= self.snapshot_bytes {
            self.take_snapshot();
        }
        std::mem::take(&mut self.actions)
    }

    /// Messages to send; Raft is told of the snapshots among them once
    /// they are on their way.
    fn send(&mut self, messages: Vec<Message>) {
        self.snapshots_sent.extend(
            messages
                .iter()
                .filter(|m| m.get_msg_type() == MessageType::MsgSnapshot)
                .map(|m| m.to),
        );
        self.actions.push(Action::Send(messages));
    }

    /// Snapshots the metadata at the applied index and drops the log up to
    /// it (the entries after it stay).
    fn take_snapshot(&mut self) {
        let index = self.raw.raft.raft_log.applied;
        let store = &self.raw.raft.raft_log.store;
        if index <= store.latest.get_metadata().index {
            return;
        }
        let read = (|| {
            let last = store.mem.last_index()?;
            let term = store.mem.term(index)?;
            let rest = if index < last {
                let context = GetEntriesContext::empty(false);
                store.mem.entries(index + 1, last + 1, None, context)?
            } else {
                Vec::new()
            };
            let state = store.mem.initial_state()?;
            Ok::<_, raft::Error>((term, rest, state))
        })();
        let (term, rest, state) = match read {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(index, %e, "quorum: no snapshot: the log does not hold its index");
                return;
            }
        };
        let hard_state = state.hard_state;
        let mut snapshot = Snapshot::default();
        snapshot.set_data(self.metadata.encode_snapshot().into());
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(state.conf_state);
        let mut header = snapshot.clone();
        header.set_data(Vec::new().into());
        let store = &mut self.raw.raft.raft_log.store;
        {
            // MemStorage keeps a snapshot's index and term, not its data:
            // the log from the snapshot on is the entries after it again.
            let mut core = store.mem.wl();
            let compacted = core
                .apply_snapshot(header)
                .and_then(|()| core.append(&rest));
            core.set_hardstate(hard_state.clone());
            if let Err(e) = compacted {
                tracing::error!(index, %e, "quorum: the log cannot be compacted");
                return;
            }
        }
        store.latest = snapshot.clone();
        self.applied_bytes = 0;
        tracing::debug!(index, term, "quorum: metadata snapshot taken");
        self.actions.push(Action::Snapshot {
            snapshot,
            hard_state,
            entries: rest,
        });
    }

    /// Takes the leader's snapshot in place of this voter's log and state.
    fn restore(&mut self, snapshot: Snapshot) {
        let index = snapshot.get_metadata().index;
        let metadata = match ClusterMetadata::decode_snapshot(snapshot.get_data()) {
            Ok(metadata) => metadata,
            // Checked in step(): nothing else brings a snapshot here.
            Err(e) => {
                tracing::error!(index, %e, "quorum: unreadable snapshot");
                return;
            }
        };
        let store = &mut self.raw.raft.raft_log.store;
        let hard_state = {
            let mut core = store.mem.wl();
            if let Err(e) = core.apply_snapshot(snapshot.clone()) {
                tracing::error!(index, %e, "quorum: snapshot not taken");
                return;
            }
            core.hard_state().clone()
        };
        store.latest = snapshot.clone();
        self.metadata = metadata;
        self.applied_bytes = 0;
        tracing::info!(
            index,
            "quorum: metadata restored from the leader's snapshot"
        );
        self.actions.push(Action::Snapshot {
            snapshot,
            hard_state,
            entries: Vec::new(),
        });
        self.actions.push(Action::Restored { index });
    }

    /// Appends one entry of `records`, already decided against the
    /// speculative state, and applies them there.
    fn append(&mut self, id: Option<u64>, records: Vec<MetadataRecord>) {
        let term = self.term();
        if let Err(e) = self.raw.propose(Vec::new(), encode_entry(&records)) {
            tracing::debug!(%e, "quorum: proposal dropped");
            if let Some(id) = id {
                let leader = self.leader();
                self.reply(id, Err(ControllerError::NotController { leader }));
            }
            return;
        }
        let index = self.raw.raft.raft_log.last_index();
        if let Some(state) = &mut self.speculative {
            for record in records {
                if let Err(e) = state.apply(record) {
                    tracing::error!(%e, "quorum: a decided record does not apply");
                }
            }
        }
        if let Some(id) = id {
            self.pending.insert(index, Pending { term, id });
        }
    }

    /// Applies committed entries in order and answers their proposals.
    fn apply(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            self.applied_bytes += u64::try_from(entry.data.len()).unwrap_or(u64::MAX) + 16;
            let records = if entry.data.is_empty() {
                Vec::new() // a new leader's empty entry
            } else {
                match decode_entry(&entry.data) {
                    Ok(records) => records,
                    Err(e) => {
                        // Every voter skips the same entry alike.
                        tracing::error!(index = entry.index, %e, "quorum: unreadable entry");
                        Vec::new()
                    }
                }
            };
            for record in &records {
                if let Err(e) = self.metadata.apply(record.clone()) {
                    tracing::error!(index = entry.index, %e, "quorum: record does not apply");
                }
            }
            if let Some(pending) = self.pending.remove(&entry.index) {
                let result = if pending.term == entry.term {
                    Ok(Committed {
                        index: entry.index,
                        term: entry.term,
                        producer_ids: records.iter().find_map(|r| match r {
                            MetadataRecord::ProducerIdsAllocated { first, count } => {
                                Some((*first, *count))
                            }
                            _ => None,
                        }),
                    })
                } else {
                    // Another leader's entry took the index.
                    Err(ControllerError::NotController {
                        leader: self.leader(),
                    })
                };
                self.reply(pending.id, result);
            }
            if !records.is_empty() {
                self.actions.push(Action::Applied {
                    index: entry.index,
                    records,
                });
            }
        }
    }

    /// Follows role changes: a new leader builds its speculative state and
    /// starts every broker's session; a deposed one fails what it awaits.
    fn observe(&mut self) {
        if self.raw.raft.election_elapsed == 0 {
            self.draw_election_timeout();
        }
        match (self.is_leader(), self.speculative.is_some()) {
            (true, false) => {
                let mut state = self.metadata.clone();
                let log = &self.raw.raft.raft_log;
                let (from, to) = (log.applied + 1, log.last_index() + 1);
                let uncommitted = if from < to {
                    log.slice(from, to, None, raft::GetEntriesContext::empty(false))
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                for entry in uncommitted.iter().filter(|e| !e.data.is_empty()) {
                    for record in decode_entry(&entry.data).unwrap_or_default() {
                        if let Err(e) = state.apply(record) {
                            tracing::error!(%e, "quorum: an uncommitted record does not apply");
                        }
                    }
                }
                self.controller.elected(&state, self.now_ms);
                self.speculative = Some(state);
            }
            (false, true) => {
                self.speculative = None;
                let leader = self.leader();
                for (_, pending) in std::mem::take(&mut self.pending) {
                    self.reply(pending.id, Err(ControllerError::NotController { leader }));
                }
            }
            _ => {}
        }
    }

    /// raft-rs draws election timeouts from the thread's RNG; they are
    /// drawn again here, from the seeded one, whenever Raft restarted its
    /// election clock, so a simulated run replays exactly. (Raft's safety
    /// never rests on timeouts; only which voter campaigns first does.)
    fn draw_election_timeout(&mut self) {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let spread = u64::try_from(self.election_ticks).unwrap_or(1).max(1);
        let extra = usize::try_from(self.rng % spread).unwrap_or(0);
        self.raw
            .raft
            .set_randomized_election_timeout(self.election_ticks + extra);
    }

    fn reply(&mut self, id: u64, result: Result<Committed, ControllerError>) {
        self.actions.push(Action::Reply { id, result });
    }
}

/// An entry's data: its records, each as a little-endian u32 length and
/// the record's encoding.
fn encode_entry(records: &[MetadataRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        let bytes = record.encode();
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// Why an entry's data is not a list of records.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("entry truncated")]
    Truncated,
    #[error(transparent)]
    Record(#[from] crate::metadata::DecodeError),
}

pub(super) fn decode_entry(mut data: &[u8]) -> Result<Vec<MetadataRecord>, EntryError> {
    let mut records = Vec::new();
    while !data.is_empty() {
        let (len, rest) = data.split_first_chunk::<4>().ok_or(EntryError::Truncated)?;
        let len = usize::try_from(u32::from_le_bytes(*len)).map_err(|_| EntryError::Truncated)?;
        if rest.len() < len {
            return Err(EntryError::Truncated);
        }
        let (record, rest) = rest.split_at(len);
        records.push(MetadataRecord::decode(record)?);
        data = rest;
    }
    Ok(records)
}
