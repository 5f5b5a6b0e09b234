use super::IndexError;

/// The largest timestamp seen up to and
/// including the batch at `relative_offset` is `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

const ENTRY_BYTES: usize = 12;

/// The sparse time index of one segment: entries whose timestamps and
/// offsets both strictly increase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Adds an entry if it raises the maximum timestamp; otherwise ignores it.
    pub fn maybe_push(&mut self, entry: TimeEntry) {
        match self.entries.last() {
            Some(last) if entry.timestamp <= last.timestamp => {}
            Some(last) => {
                assert!(entry.relative_offset > last.relative_offset);
                self.entries.push(entry);
            }
            None => self.entries.push(entry),
        }
    }

    /// The relative offset of a batch from which a forward scan finds the
    /// first batch with max timestamp >= `timestamp`: the batch of the last
    /// entry whose timestamp is below it (every batch before that one has
    /// smaller timestamps), or 0.
    pub fn lookup(&self, timestamp: i64) -> u32 {
        let below = self.entries.partition_point(|e| e.timestamp < timestamp);
        below
            .checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .map_or(0, |e| e.relative_offset)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(keep);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8], offset_span: u64) -> Result<Self, IndexError> {
        if !bytes.len().is_multiple_of(ENTRY_BYTES) {
            return Err(IndexError::PartialEntry(bytes.len()));
        }
        let mut index = TimeIndex::default();
        for (i, chunk) in bytes.chunks_exact(ENTRY_BYTES).enumerate() {
            let (ts, rel) = chunk.split_at(8);
            let entry = TimeEntry {
                timestamp: i64::from_be_bytes(
                    ts.try_into().map_err(|_| IndexError::PartialEntry(i))?,
                ),
                relative_offset: u32::from_be_bytes(
                    rel.try_into().map_err(|_| IndexError::PartialEntry(i))?,
                ),
            };
            if u64::from(entry.relative_offset) >= offset_span {
                return Err(IndexError::OutOfSegment(i));
            }
            if let Some(last) = index.entries.last()
                && (entry.timestamp <= last.timestamp
                    || entry.relative_offset <= last.relative_offset)
            {
                return Err(IndexError::NotIncreasing(i));
            }
            index.entries.push(entry);
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rising_timestamps_are_indexed_and_lookup_starts_before_the_target() {
        let mut idx = TimeIndex::default();
        for (timestamp, relative_offset) in [(100, 0), (90, 3), (200, 5), (300, 9)] {
            idx.maybe_push(TimeEntry {
                timestamp,
                relative_offset,
            });
        }
        assert_eq!(idx.entries.len(), 3);
        assert_eq!(idx.lookup(50), 0);
        assert_eq!(idx.lookup(100), 0);
        assert_eq!(idx.lookup(150), 0);
        assert_eq!(idx.lookup(201), 5);
        assert_eq!(idx.lookup(1000), 9);
        assert_eq!(
            idx.last(),
            Some(TimeEntry {
                timestamp: 300,
                relative_offset: 9
            })
        );
    }

    #[test]
    fn encode_decode_round_trips_and_rejects_out_of_segment() {
        let mut idx = TimeIndex::default();
        idx.maybe_push(TimeEntry {
            timestamp: 5,
            relative_offset: 0,
        });
        idx.maybe_push(TimeEntry {
            timestamp: 9,
            relative_offset: 4,
        });
        let bytes = idx.encode();
        assert_eq!(TimeIndex::decode(&bytes, 5), Ok(idx));
        assert_eq!(
            TimeIndex::decode(&bytes, 4),
            Err(IndexError::OutOfSegment(1))
        );
        assert_eq!(
            TimeIndex::decode(&bytes[..13], 5),
            Err(IndexError::PartialEntry(13))
        );
    }
}
