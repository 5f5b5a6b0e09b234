//! [`RaftJournal`]: a voter's Raft state kept durable in a [`LogStore`].
//!
//! Every [`Action::Persist`](super::Action::Persist) becomes one record:
//! the log is append-only, and the Raft log it holds is rebuilt by replay
//! (entries that start at or below the current end cut the tail there, as
//! Raft's appends do; the latest hard state wins). A snapshot
//! ([`Action::Snapshot`](super::Action::Snapshot)) is one record holding
//! the whole state from then on (the snapshot, the hard state and the
//! entries after the snapshot); once it is durable the records before it
//! are deleted, so the journal stays about one snapshot long.
//!
//! Records, all little-endian:
//! - version 1, appended entries: the hard state (u32 length, 0 for none,
//!   then its protobuf bytes); entry count u32; each entry as u32 length
//!   and protobuf bytes.
//! - version 2, a snapshot: the hard state as above; the snapshot (u32
//!   length, then raft's `Snapshot` protobuf: its index, term, voters and
//!   the metadata it holds); entry count u32 and entries as above.

use protobuf::Message as _;
use raft::prelude::{Entry, HardState, Snapshot};

use super::node::DurableState;
use crate::log_store::LogStore;

const APPEND: u8 = 1;
const SNAPSHOT: u8 = 2;

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError<E: std::error::Error + 'static> {
    #[error("raft journal: {0}")]
    Log(#[source] E),
    #[error("raft journal record at offset {offset} is unreadable: {reason}")]
    Damaged { offset: i64, reason: String },
    /// What was read back is not a Raft state a voter may start from.
    #[error("raft journal: {0}")]
    Inconsistent(String),
}

/// A voter's Raft hard state and log, durable.
#[derive(Debug)]
pub struct RaftJournal<L: LogStore> {
    log: L,
}

/// One journal record, decoded.
#[derive(Debug, PartialEq)]
enum Record {
    Append {
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
    },
    Snapshot {
        snapshot: Snapshot,
        hard_state: HardState,
        entries: Vec<Entry>,
    },
}

impl<L: LogStore> RaftJournal<L> {
    /// Replays `log` into the state a voter restarts from, checked.
    pub async fn open(log: L) -> Result<(Self, DurableState), JournalError<L::Error>> {
        let mut state = DurableState::default();
        for (offset, bytes) in log.read_records(0).await.map_err(JournalError::Log)? {
            let damaged = |reason: String| JournalError::Damaged { offset, reason };
            match decode(&bytes).map_err(damaged)? {
                Record::Append {
                    entries,
                    hard_state,
                } => {
                    replay_entries(&mut state, entries).map_err(damaged)?;
                    if let Some(hard_state) = hard_state {
                        state.hard_state = hard_state;
                    }
                }
                Record::Snapshot {
                    snapshot,
                    hard_state,
                    entries,
                } => {
                    state = DurableState {
                        hard_state,
                        snapshot: Some(snapshot),
                        entries,
                    };
                }
            }
        }
        check(&state).map_err(JournalError::Inconsistent)?;
        Ok((RaftJournal { log }, state))
    }

    pub fn into_log(self) -> L {
        self.log
    }

    /// Makes `entries` (replacing the log from the first one's index) and
    /// `hard_state` durable; resolves once they are.
    pub async fn persist(
        &self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), JournalError<L::Error>> {
        let record = encode(entries, hard_state);
        self.log
            .append_record(&record)
            .await
            .map_err(JournalError::Log)?;
        Ok(())
    }

    /// Makes the state from `snapshot` on durable (the snapshot, the hard
    /// state, the entries after it), then deletes every record before it.
    pub async fn snapshot(
        &self,
        snapshot: &Snapshot,
        hard_state: &HardState,
        entries: &[Entry],
    ) -> Result<(), JournalError<L::Error>> {
        let record = encode_snapshot(snapshot, hard_state, entries);
        let offset = self
            .log
            .append_record(&record)
            .await
            .map_err(JournalError::Log)?;
        self.log
            .delete_before(offset)
            .await
            .map_err(JournalError::Log)
    }
}

/// Appended entries replace the log from the first one's index on.
fn replay_entries(state: &mut DurableState, entries: Vec<Entry>) -> Result<(), String> {
    let Some(first) = entries.first() else {
        return Ok(());
    };
    let base = state.snapshot_index();
    let end = state.last_index();
    if first.index <= base || first.index > end + 1 {
        return Err(format!(
            "entries from index {} after a log from {} to {end}",
            first.index,
            base + 1
        ));
    }
    let keep = usize::try_from(first.index - base - 1).map_err(|e| e.to_string())?;
    state.entries.truncate(keep);
    state.entries.extend(entries);
    Ok(())
}

/// What Raft assumes of a restarted voter: consecutive indexes from the
/// one after the snapshot (or 1), terms that never decrease, a commit
/// index within the log and not below the snapshot, a term at least the
/// last entry's. (raft-rs panics otherwise; a damaged disk is reported
/// instead.)
fn check(state: &DurableState) -> Result<(), String> {
    let base = state.snapshot_index();
    let mut previous_term = state.snapshot.as_ref().map_or(0, |s| s.get_metadata().term);
    for (position, entry) in (base + 1..).zip(&state.entries) {
        if entry.index != position {
            return Err(format!("entry {} at position {position}", entry.index));
        }
        if entry.term < previous_term {
            return Err(format!(
                "entry {} has term {} after {previous_term}",
                entry.index, entry.term
            ));
        }
        previous_term = entry.term;
    }
    let last = state.last_index();
    let hs = &state.hard_state;
    if hs.commit > last || hs.commit < base {
        return Err(format!(
            "commit index {} outside the log from {base} to {last}",
            hs.commit
        ));
    }
    if hs.term < previous_term {
        return Err(format!(
            "term {} below the last entry's {previous_term}",
            hs.term
        ));
    }
    Ok(())
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Writing protobuf into a vector fails only on sizes past 2 GiB.
fn bytes(message: &dyn protobuf::Message) -> Vec<u8> {
    message.write_to_bytes().unwrap_or_default()
}

fn put_entries(out: &mut Vec<u8>, entries: &[Entry]) {
    let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for entry in entries {
        put(out, &bytes(entry));
    }
}

fn encode(entries: &[Entry], hard_state: Option<&HardState>) -> Vec<u8> {
    let mut out = vec![APPEND];
    put(
        &mut out,
        &hard_state.map(|hs| bytes(hs)).unwrap_or_default(),
    );
    put_entries(&mut out, entries);
    out
}

fn encode_snapshot(snapshot: &Snapshot, hard_state: &HardState, entries: &[Entry]) -> Vec<u8> {
    let mut out = vec![SNAPSHOT];
    put(&mut out, &bytes(hard_state));
    put(&mut out, &bytes(snapshot));
    put_entries(&mut out, entries);
    out
}

fn decode(record: &[u8]) -> Result<Record, String> {
    let mut input = Input(record);
    let version = input.take(1)?;
    let hs_bytes = input.chunk()?;
    let hard_state = if hs_bytes.is_empty() {
        None
    } else {
        Some(HardState::parse_from_bytes(hs_bytes).map_err(|e| e.to_string())?)
    };
    let decoded = match version {
        [APPEND] => Record::Append {
            entries: input.entries()?,
            hard_state,
        },
        [SNAPSHOT] => {
            let snapshot = Snapshot::parse_from_bytes(input.chunk()?).map_err(|e| e.to_string())?;
            let entries = input.entries()?;
            if let Some(first) = entries.first()
                && first.index != snapshot.get_metadata().index + 1
            {
                return Err(format!(
                    "entry {} after a snapshot at {}",
                    first.index,
                    snapshot.get_metadata().index
                ));
            }
            Record::Snapshot {
                snapshot,
                hard_state: hard_state.unwrap_or_default(),
                entries,
            }
        }
        other => return Err(format!("version {other:?}")),
    };
    if !input.0.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(decoded)
}

/// Reads a record front to back; every read is bounded by what is left.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let bytes: [u8; 4] = self.take(4)?.try_into().map_err(|_| "truncated")?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn chunk(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.u32()?).map_err(|e| e.to_string())?;
        self.take(len)
    }

    /// Consecutive entries.
    fn entries(&mut self) -> Result<Vec<Entry>, String> {
        let count = self.u32()?;
        let mut entries = Vec::new();
        for _ in 0..count {
            let entry = Entry::parse_from_bytes(self.chunk()?).map_err(|e| e.to_string())?;
            if let Some(previous) = entries.last().map(|e: &Entry| e.index)
                && entry.index != previous + 1
            {
                return Err(format!("entry {} after {previous}", entry.index));
            }
            entries.push(entry);
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::log_store::memory::{MemoryLog, block_on};

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Entry::default()
        }
    }

    fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
        HardState {
            term,
            vote,
            commit,
            ..HardState::default()
        }
    }

    #[test]
    fn replay_rebuilds_the_log_with_conflicting_tails_cut() {
        block_on(async {
            let (journal, empty) = RaftJournal::open(MemoryLog::default()).await.unwrap();
            assert!(empty.entries.is_empty());
            let entries = [entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")];
            journal
                .persist(&entries, Some(&hard_state(1, 1, 0)))
                .await
                .unwrap();
            // A new leader's entries replace index 2 onwards.
            journal
                .persist(&[entry(2, 2, b"x")], Some(&hard_state(2, 3, 2)))
                .await
                .unwrap();
            journal
                .persist(&[], Some(&hard_state(2, 3, 2)))
                .await
                .unwrap();
            let (_, state) = RaftJournal::open(journal.log).await.unwrap();
            let got: Vec<(u64, u64, Vec<u8>)> = state
                .entries
                .iter()
                .map(|e| (e.index, e.term, e.data.to_vec()))
                .collect();
            assert_eq!(got, vec![(1, 1, b"a".to_vec()), (2, 2, b"x".to_vec())]);
            assert_eq!(state.hard_state, hard_state(2, 3, 2));
        });
    }

    #[test]
    fn a_state_raft_would_panic_on_is_an_error() {
        block_on(async {
            let log = MemoryLog::default();
            log.0
                .borrow_mut()
                .push(encode(&[entry(1, 1, b"a")], Some(&hard_state(1, 1, 5))));
            let result = RaftJournal::open(log).await;
            assert!(
                matches!(result, Err(JournalError::Inconsistent(_))),
                "{result:?}"
            );
            let log = MemoryLog::default();
            log.0.borrow_mut().push(encode(&[entry(3, 1, b"a")], None));
            let result = RaftJournal::open(log).await;
            assert!(
                matches!(result, Err(JournalError::Damaged { .. })),
                "{result:?}"
            );
        });
    }

    fn snapshot_at(index: u64, term: u64) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.set_data(b"metadata".to_vec().into());
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = term;
        snapshot
    }

    #[test]
    fn a_snapshot_replaces_the_log_before_it_which_is_deleted() {
        block_on(async {
            let (journal, _) = RaftJournal::open(MemoryLog::default()).await.unwrap();
            let entries: Vec<Entry> = (1..=5).map(|i| entry(i, 1, b"e")).collect();
            journal
                .persist(&entries, Some(&hard_state(1, 1, 3)))
                .await
                .unwrap();
            // Taken at 3: entries 4 and 5 stay.
            journal
                .snapshot(&snapshot_at(3, 1), &hard_state(1, 1, 3), &entries[3..])
                .await
                .unwrap();
            journal
                .persist(
                    &[entry(5, 2, b"x"), entry(6, 2, b"y")],
                    Some(&hard_state(2, 2, 6)),
                )
                .await
                .unwrap();
            assert_eq!(
                journal.log.1.get(),
                1,
                "the records before the snapshot's go"
            );
            let (journal, state) = RaftJournal::open(journal.log).await.unwrap();
            assert_eq!(state.snapshot, Some(snapshot_at(3, 1)));
            assert_eq!(state.snapshot_index(), 3);
            let got: Vec<(u64, u64)> = state.entries.iter().map(|e| (e.index, e.term)).collect();
            assert_eq!(got, vec![(4, 1), (5, 2), (6, 2)]);
            assert_eq!(state.hard_state, hard_state(2, 2, 6));
            // A snapshot sent by the leader: nothing after it.
            journal
                .snapshot(&snapshot_at(9, 3), &hard_state(3, 0, 9), &[])
                .await
                .unwrap();
            let (_, state) = RaftJournal::open(journal.log).await.unwrap();
            assert_eq!((state.snapshot_index(), state.last_index()), (9, 9));
            assert!(state.entries.is_empty());
        });
    }

    #[test]
    fn entries_or_a_commit_behind_the_snapshot_are_errors() {
        block_on(async {
            let log = MemoryLog::default();
            log.0.borrow_mut().push(encode_snapshot(
                &snapshot_at(3, 1),
                &hard_state(1, 1, 3),
                &[],
            ));
            log.0.borrow_mut().push(encode(&[entry(3, 1, b"a")], None));
            let result = RaftJournal::open(log).await;
            assert!(
                matches!(result, Err(JournalError::Damaged { .. })),
                "{result:?}"
            );
            let log = MemoryLog::default();
            log.0.borrow_mut().push(encode_snapshot(
                &snapshot_at(3, 1),
                &hard_state(1, 1, 2),
                &[],
            ));
            let result = RaftJournal::open(log).await;
            assert!(
                matches!(result, Err(JournalError::Inconsistent(_))),
                "{result:?}"
            );
            // Entries in the record that do not follow the snapshot.
            let record = encode_snapshot(
                &snapshot_at(3, 1),
                &hard_state(1, 1, 3),
                &[entry(5, 1, b"a")],
            );
            assert!(decode(&record).is_err());
        });
    }

    proptest! {
        /// Damaged records are errors, never panics.
        #[test]
        fn random_bytes_never_panic_the_replay(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            block_on(async {
                for version in [APPEND, SNAPSHOT] {
                    let log = MemoryLog::default();
                    let mut record = vec![version];
                    record.extend_from_slice(&bytes);
                    log.0.borrow_mut().push(record);
                    let _ = RaftJournal::open(log).await;
                }
            });
        }

        /// Every record decodes to what was encoded.
        #[test]
        fn records_round_trip(terms in proptest::collection::vec(1u64..5, 0..20), commit in 0u64..3) {
            let mut sorted = terms.clone();
            sorted.sort_unstable();
            let entries: Vec<Entry> = sorted
                .iter()
                .enumerate()
                .map(|(i, &t)| entry(i as u64 + 1, t, &t.to_le_bytes()))
                .collect();
            let hs = hard_state(5, 1, commit);
            let got = decode(&encode(&entries, Some(&hs))).unwrap();
            prop_assert_eq!(got, Record::Append { entries, hard_state: Some(hs) });
        }
    }
}
