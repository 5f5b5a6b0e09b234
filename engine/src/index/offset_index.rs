use super::IndexError;

/// Maps the base offset of some batches (relative to the segment) to their
/// byte position in the segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

const ENTRY_BYTES: usize = 8;

/// The sparse offset index of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    /// Adds an entry; entries must strictly increase in both fields.
    pub fn push(&mut self, entry: OffsetEntry) {
        if let Some(last) = self.entries.last() {
            assert!(entry.relative_offset > last.relative_offset && entry.position > last.position);
        }
        self.entries.push(entry);
    }

    /// The position of the last indexed batch whose base offset is at or
    /// before `relative_offset` (0 if none): scanning from there finds it.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let after = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        after
            .checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .map_or(0, |e| e.position)
    }

    /// Removes entries at or past `position` (used when the tail is truncated).
    pub fn truncate_to_position(&mut self, position: u32) {
        let keep = self.entries.partition_point(|e| e.position < position);
        self.entries.truncate(keep);
    }

    pub fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Decodes and checks an index file of a segment of `segment_bytes`
    /// bytes holding relative offsets below `offset_span`.
    pub fn decode(bytes: &[u8], segment_bytes: u64, offset_span: u64) -> Result<Self, IndexError> {
        if !bytes.len().is_multiple_of(ENTRY_BYTES) {
            return Err(IndexError::PartialEntry(bytes.len()));
        }
        let mut index = OffsetIndex::default();
        for (i, chunk) in bytes.chunks_exact(ENTRY_BYTES).enumerate() {
            let (rel, pos) = chunk.split_at(4);
            let entry = OffsetEntry {
                relative_offset: u32::from_be_bytes(
                    rel.try_into().map_err(|_| IndexError::PartialEntry(i))?,
                ),
                position: u32::from_be_bytes(
                    pos.try_into().map_err(|_| IndexError::PartialEntry(i))?,
                ),
            };
            if u64::from(entry.position) >= segment_bytes
                || u64::from(entry.relative_offset) >= offset_span
            {
                return Err(IndexError::OutOfSegment(i));
            }
            if let Some(last) = index.entries.last()
                && (entry.relative_offset <= last.relative_offset
                    || entry.position <= last.position)
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

    fn index(entries: &[(u32, u32)]) -> OffsetIndex {
        let mut index = OffsetIndex::default();
        for &(relative_offset, position) in entries {
            index.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        index
    }

    #[test]
    fn lookup_finds_the_last_entry_at_or_before() {
        let idx = index(&[(0, 0), (10, 4096), (25, 9000)]);
        assert_eq!(idx.lookup(0), 0);
        assert_eq!(idx.lookup(9), 0);
        assert_eq!(idx.lookup(10), 4096);
        assert_eq!(idx.lookup(24), 4096);
        assert_eq!(idx.lookup(1000), 9000);
        assert_eq!(OffsetIndex::default().lookup(5), 0);
    }

    #[test]
    fn encode_decode_round_trips_and_rejects_bad_files() {
        let idx = index(&[(0, 0), (10, 4096), (25, 9000)]);
        let bytes = idx.encode();
        assert_eq!(OffsetIndex::decode(&bytes, 10_000, 30), Ok(idx));
        assert_eq!(
            OffsetIndex::decode(&bytes[..7], 10_000, 30),
            Err(IndexError::PartialEntry(7))
        );
        assert_eq!(
            OffsetIndex::decode(&bytes, 9_000, 30),
            Err(IndexError::OutOfSegment(2))
        );
        let mut swapped = bytes.clone();
        swapped[8..16].copy_from_slice(&bytes[16..24]);
        swapped[16..24].copy_from_slice(&bytes[8..16]);
        assert_eq!(
            OffsetIndex::decode(&swapped, 10_000, 30),
            Err(IndexError::NotIncreasing(2))
        );
    }

    #[test]
    fn truncation_drops_entries_at_or_past_the_position() {
        let mut idx = index(&[(0, 0), (10, 4096), (25, 9000)]);
        idx.truncate_to_position(9000);
        assert_eq!(idx, index(&[(0, 0), (10, 4096)]));
    }
}
