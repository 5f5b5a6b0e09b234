//! [`RaftJournal`]: a voter's Raft state kept durable in a [`LogStore`].
//!
//! Every [`Action::Persist`](super::Action::Persist) becomes one record:
//! the log is append-only, and the Raft log it holds is rebuilt by replay
//! (entries that start at or below the current end cut the tail there, as
//! Raft's appends do; the latest hard state wins).
//!
//! Record: version byte 1; hard state (u32 length, 0 for none, then its
//! protobuf bytes); entry count u32; each entry as u32 length and protobuf
//! bytes. All little-endian.

use protobuf::Message as _;
use raft::prelude::{Entry, HardState};

use super::node::DurableState;
use crate::log_store::LogStore;

const VERSION: u8 = 1;

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

impl<L: LogStore> RaftJournal<L> {
    /// Replays `log` into the state a voter restarts from, checked.
    pub async fn open(log: L) -> Result<(Self, DurableState), JournalError<L::Error>> {
        let mut state = DurableState::default();
        for (offset, bytes) in log.read_records(0).await.map_err(JournalError::Log)? {
            let damaged = |reason: String| JournalError::Damaged { offset, reason };
            let (entries, hard_state) = decode(&bytes).map_err(damaged)?;
            if let Some(first) = entries.first() {
                let end = state.entries.last().map_or(0, |e| e.index);
                if first.index == 0 || first.index > end + 1 {
                    return Err(damaged(format!(
                        "entries from index {} after a log ending at {end}",
                        first.index
                    )));
                }
                let keep = usize::try_from(first.index - 1).map_err(|e| damaged(e.to_string()))?;
                state.entries.truncate(keep);
                state.entries.extend(entries);
            }
            if let Some(hard_state) = hard_state {
                state.hard_state = hard_state;
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
}

/// What Raft assumes of a restarted voter: consecutive indexes from 1,
/// terms that never decrease, a commit index within the log, a term at
/// least the last entry's. (raft-rs panics otherwise; a damaged disk is
/// reported instead.)
fn check(state: &DurableState) -> Result<(), String> {
    let mut previous_term = 0;
    for (position, entry) in state.entries.iter().enumerate() {
        if usize::try_from(entry.index).ok() != Some(position + 1) {
            return Err(format!(
                "entry {} at position {}",
                entry.index,
                position + 1
            ));
        }
        if entry.term < previous_term {
            return Err(format!(
                "entry {} has term {} after {previous_term}",
                entry.index, entry.term
            ));
        }
        previous_term = entry.term;
    }
    let last = state.entries.last().map_or(0, |e| e.index);
    let hs = &state.hard_state;
    if hs.commit > last {
        return Err(format!(
            "commit index {} beyond the last entry {last}",
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

fn encode(entries: &[Entry], hard_state: Option<&HardState>) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, bytes: &[u8]) {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    // Writing protobuf into a vector fails only on sizes past 2 GiB.
    let bytes = |m: &dyn protobuf::Message| m.write_to_bytes().unwrap_or_default();
    let mut out = vec![VERSION];
    put(
        &mut out,
        &hard_state.map(|hs| bytes(hs)).unwrap_or_default(),
    );
    let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for entry in entries {
        put(&mut out, &bytes(entry));
    }
    out
}

type Decoded = (Vec<Entry>, Option<HardState>);

fn decode(record: &[u8]) -> Result<Decoded, String> {
    let mut input = Input(record);
    let version = input.take(1)?;
    if version != [VERSION] {
        return Err(format!("version {version:?}"));
    }
    let hs_bytes = input.chunk()?;
    let hard_state = if hs_bytes.is_empty() {
        None
    } else {
        Some(HardState::parse_from_bytes(hs_bytes).map_err(|e| e.to_string())?)
    };
    let count = input.u32()?;
    let mut entries = Vec::new();
    for _ in 0..count {
        let entry = Entry::parse_from_bytes(input.chunk()?).map_err(|e| e.to_string())?;
        if let Some(previous) = entries.last().map(|e: &Entry| e.index)
            && entry.index != previous + 1
        {
            return Err(format!("entry {} after {previous}", entry.index));
        }
        entries.push(entry);
    }
    if !input.0.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok((entries, hard_state))
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

    proptest! {
        /// Damaged records are errors, never panics.
        #[test]
        fn random_bytes_never_panic_the_replay(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            block_on(async {
                let log = MemoryLog::default();
                log.0.borrow_mut().push(bytes);
                let _ = RaftJournal::open(log).await;
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
            let (got, got_hs) = decode(&encode(&entries, Some(&hs))).unwrap();
            prop_assert_eq!(got, entries);
            prop_assert_eq!(got_hs, Some(hs));
        }
    }
}
