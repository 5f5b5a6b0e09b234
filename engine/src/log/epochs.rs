//! The partition's leader epochs (Kafka's `leader-epoch-checkpoint`): for
//! each epoch this replica wrote or took records in, the offset of its first
//! record. Replication reads it to answer OffsetForLeaderEpoch and to cut a
//! follower's log to its leader's history (`replication::isr`).
//!
//! File `leader-epoch.checkpoint`: one `EPOCH START` line per epoch, then
//! `crc N` (CRC-32C of the lines before, as `partition.checkpoint` ends);
//! replaced atomically (temp, fdatasync, rename, fsync dir) whenever an
//! epoch is added or cut. A damaged file is ignored with a warning (the
//! cache starts empty: the next truncation then keeps less, never more, of
//! the follower's log).

use std::fmt::Write as _;
use std::path::Path;

use replication::isr::EpochCache;

use super::Log;
use crate::checkpoint::{checked_body, with_crc};
use crate::io;
use crate::{IoError, Offset, Result};

pub const FILE_NAME: &str = "leader-epoch.checkpoint";

fn encode(cache: &EpochCache) -> String {
    let mut body = String::new();
    for (epoch, start) in cache.entries() {
        let _ = writeln!(body, "{epoch} {start}");
    }
    with_crc(body)
}

fn decode(text: &str) -> Option<EpochCache> {
    let body = checked_body(text)?;
    let mut cache = EpochCache::default();
    for line in body.lines() {
        let (epoch, start) = line.split_once(' ')?;
        cache.assign(epoch.parse().ok()?, start.parse().ok()?);
    }
    Some(cache)
}

pub(super) async fn read(dir: &Path) -> std::result::Result<EpochCache, IoError> {
    let path = dir.join(FILE_NAME);
    let Some(bytes) = io::read_file(&path).await? else {
        return Ok(EpochCache::default());
    };
    match std::str::from_utf8(&bytes).ok().and_then(decode) {
        Some(cache) => Ok(cache),
        None => {
            tracing::warn!(path = %path.display(), "leader epoch checkpoint unreadable; starting empty");
            Ok(EpochCache::default())
        }
    }
}

async fn write(dir: &Path, cache: &EpochCache) -> std::result::Result<(), IoError> {
    tracing::debug!(dir = %dir.display(), epochs = ?cache.entries(), "leader epochs written");
    io::write_file_atomic(&dir.join(FILE_NAME), encode(cache).into_bytes()).await
}

impl Log {
    /// This replica leads the partition at `epoch` from now on: batches it
    /// appends are stamped with it, and the epoch starts at the current log
    /// end (durable before this returns). An epoch not above the current
    /// one changes nothing.
    pub async fn become_leader(&self, epoch: i32) -> Result<()> {
        let _guard = self.shared.append_lock.lock().await;
        let cache = {
            let mut st = self.shared.state.borrow_mut();
            if epoch < 0 || epoch <= st.leader_epoch {
                return Ok(());
            }
            st.leader_epoch = epoch;
            let start = st.next_offset.get();
            st.epochs.assign(epoch, start);
            st.epochs.clone()
        };
        write(&self.shared.dir, &cache).await?;
        Ok(())
    }

    /// Writes the epoch cache as it is now (after a truncation's reopen
    /// dropped epochs past the end).
    pub(super) async fn write_epochs(&self) -> Result<()> {
        let cache = self.shared.state.borrow().epochs.clone();
        write(&self.shared.dir, &cache).await?;
        Ok(())
    }

    /// The leader epoch batches appended here are stamped with.
    pub fn leader_epoch(&self) -> i32 {
        self.shared.state.borrow().leader_epoch
    }

    /// The epochs of this log and where each starts.
    pub fn epochs(&self) -> EpochCache {
        self.shared.state.borrow().epochs.clone()
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` here and
    /// the offset where it ended (the log end for the latest).
    pub fn epoch_end_offset(&self, epoch: i32) -> (i32, Offset) {
        let st = self.shared.state.borrow();
        let (found, end) = st.epochs.end_offset_for(epoch, st.next_offset.get());
        (found, Offset(end))
    }

    /// Records that the batches of a follower's append carry these epochs
    /// (epoch, base offset), durably, before they are staged.
    pub(super) async fn note_epochs(&self, seen: &[(i32, Offset)]) -> Result<()> {
        let cache = {
            let mut st = self.shared.state.borrow_mut();
            let before = st.epochs.clone();
            for &(epoch, base) in seen {
                if epoch >= 0 {
                    st.epochs.assign(epoch, base.get());
                    st.leader_epoch = st.leader_epoch.max(epoch);
                }
            }
            (st.epochs != before).then(|| st.epochs.clone())
        };
        if let Some(cache) = cache {
            write(&self.shared.dir, &cache).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_and_damage_is_refused() {
        let mut cache = EpochCache::default();
        assert_eq!(decode(&encode(&cache)), Some(cache.clone()));
        cache.assign(0, 0);
        cache.assign(3, 120);
        let text = encode(&cache);
        assert_eq!(decode(&text), Some(cache));
        assert_eq!(decode(&text.replace("120", "121")), None);
        assert_eq!(decode(""), None);
    }
}
