//! [`OffsetMap`]: each key's latest offset over a log's dirty part (Kafka's
//! `OffsetMap`), within a byte budget (`log.cleaner.dedupe.buffer.size`).
//!
//! Keys are kept whole, not hashed: Kafka's map holds MD5 digests, and two
//! keys with one digest would lose the older key's latest record; here a
//! collision cannot happen, at the cost of long keys filling the budget
//! sooner (the pass then covers less of the log, and the next one goes on).

use std::collections::HashMap;

/// What one key costs beyond its bytes: the map's entry (boxed slice and
/// offset) and its share of the table.
const ENTRY_OVERHEAD_BYTES: usize = 48;

/// The latest offset of each key seen, in offset order, until the budget
/// is spent.
#[derive(Debug, Clone, Default)]
pub struct OffsetMap {
    latest: HashMap<Box<[u8]>, i64>,
    bytes: usize,
    budget: usize,
    /// The offset after the last record put: the map covers the dirty
    /// part up to here.
    end: Option<i64>,
}

impl OffsetMap {
    /// An empty map that takes keys worth `budget` bytes.
    pub fn new(budget: usize) -> OffsetMap {
        OffsetMap {
            budget,
            ..OffsetMap::default()
        }
    }

    /// Records that `key` is at `offset` (offsets increase from call to
    /// call). False, and nothing recorded, when a new key does not fit: the
    /// pass covers the log up to this record, which the next pass starts
    /// from.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        if let Some(latest) = self.latest.get_mut(key) {
            *latest = offset;
        } else {
            let cost = key.len() + ENTRY_OVERHEAD_BYTES;
            if self.bytes + cost > self.budget {
                return false;
            }
            self.bytes += cost;
            self.latest.insert(key.into(), offset);
        }
        self.end = Some(offset + 1);
        true
    }

    /// The latest offset of `key` in the part the map covers.
    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    /// The offset after the last record the map covers (`None`: nothing).
    pub fn end(&self) -> Option<i64> {
        self.end
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Whether a cleaning pass keeps the record with `key` at `offset`:
    /// every record past the map's end (the pass did not look at it), and
    /// below it the latest of its key; never a record without a key (a
    /// compacted topic refuses them; one from before is dropped, as Kafka's
    /// cleaner does).
    pub fn keeps(&self, key: Option<&[u8]>, offset: i64) -> bool {
        if self.end.is_none_or(|end| offset >= end) {
            return true;
        }
        let Some(key) = key else {
            return false;
        };
        self.latest(key).is_none_or(|latest| latest <= offset)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_full_map_stops_the_pass_at_the_first_new_key_it_cannot_take() {
        let mut map = OffsetMap::new(2 * (1 + ENTRY_OVERHEAD_BYTES));
        assert!(map.put(b"a", 10));
        assert!(map.put(b"b", 11));
        assert!(map.put(b"a", 12), "a known key costs nothing");
        assert!(!map.put(b"c", 13), "a third key does not fit");
        assert_eq!(map.end(), Some(13));
        assert_eq!((map.latest(b"a"), map.latest(b"b")), (Some(12), Some(11)));
        assert!(!map.keeps(Some(b"a"), 10), "an older a");
        assert!(map.keeps(Some(b"a"), 12));
        assert!(map.keeps(Some(b"b"), 11));
        assert!(map.keeps(Some(b"c"), 13), "past the pass");
        assert!(!map.keeps(None, 11), "no key below the end");
        assert!(map.keeps(None, 13), "past the end, untouched");
        assert!(
            OffsetMap::new(0).keeps(Some(b"a"), 0),
            "an empty map keeps all"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(1414),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Against a model: after passes over the log (each as far as its
        /// budget goes, the next from there), each key's latest record is
        /// kept and no other record with a key below the last pass's end.
        #[test]
        fn passes_keep_exactly_the_latest_record_of_each_key(
            keys in proptest::collection::vec(0u8..30, 1..300),
            budget_keys in 1usize..40,
        ) {
            let log: Vec<(i64, Vec<u8>)> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (i64::try_from(i).unwrap(), vec![b'k', *k]))
                .collect();
            let mut latest: BTreeMap<&[u8], i64> = BTreeMap::new();
            for (offset, key) in &log {
                latest.insert(key, *offset);
            }
            let budget = budget_keys * (2 + ENTRY_OVERHEAD_BYTES);
            // Clean pass after pass; each pass's map is built over what is
            // left from its start on, then filters everything.
            let mut left = log.clone();
            let mut start = 0i64;
            while start < i64::try_from(log.len()).unwrap() {
                let mut map = OffsetMap::new(budget);
                for (offset, key) in left.iter().filter(|(o, _)| *o >= start) {
                    if !map.put(key, *offset) {
                        break;
                    }
                }
                let end = map.end().unwrap();
                prop_assert!(end > start, "every pass moves on");
                left.retain(|(offset, key)| map.keeps(Some(key), *offset));
                start = end;
            }
            let expected: Vec<(i64, Vec<u8>)> = log
                .iter()
                .filter(|(offset, key)| latest[key.as_slice()] == *offset)
                .cloned()
                .collect();
            prop_assert_eq!(left, expected);
        }
    }
}
