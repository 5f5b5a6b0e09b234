//! [`PassHistory`]: when the cleaner first saw each part of a log, so a
//! tombstone is kept for `delete.retention.ms` from then (Kafka's delete
//! horizon, KIP-534), however late the cleaner came to it. A consumer that
//! began reading before the pass that removed a key's older records still
//! meets the tombstone if it reads on within that time.

/// Entries kept: when a pass would add one more, the oldest goes, and the
/// part it covered counts as seen by the next pass (later: its tombstones
/// are kept longer, never shorter).
const MAX_PASSES: usize = 16;

/// Passes as (the offset their map ended at, their time in ms), both
/// ascending. A pass saw every offset below its end that no earlier pass
/// saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassHistory {
    passes: Vec<(i64, i64)>,
}

impl PassHistory {
    /// A pass at `now_ms` mapped the log up to `end`. An end not past the
    /// last one adds nothing (that part was seen already).
    pub fn record(&mut self, end: i64, now_ms: i64) {
        if self.passes.last().is_some_and(|&(last, _)| end <= last) {
            return;
        }
        let now_ms = self.passes.last().map_or(now_ms, |&(_, t)| now_ms.max(t));
        if self.passes.len() == MAX_PASSES {
            self.passes.remove(0);
        }
        self.passes.push((end, now_ms));
    }

    /// When the cleaner first saw `offset` (`None`: not yet).
    pub fn seen_at(&self, offset: i64) -> Option<i64> {
        self.passes
            .iter()
            .find(|&&(end, _)| offset < end)
            .map(|&(_, time)| time)
    }

    /// Where the last pass's map ended.
    pub fn end(&self) -> Option<i64> {
        self.passes.last().map(|&(end, _)| end)
    }

    /// `END@TIME` per pass, space separated (`-` for none).
    pub fn encode(&self) -> String {
        if self.passes.is_empty() {
            return "-".into();
        }
        let parts: Vec<String> = self
            .passes
            .iter()
            .map(|(end, time)| format!("{end}@{time}"))
            .collect();
        parts.join(" ")
    }

    /// The inverse of [`PassHistory::encode`]; `None` for anything else,
    /// entries out of order included.
    pub fn decode(text: &str) -> Option<PassHistory> {
        let mut history = PassHistory::default();
        if text == "-" {
            return Some(history);
        }
        for part in text.split(' ') {
            let (end, time) = part.split_once('@')?;
            let entry: (i64, i64) = (end.parse().ok()?, time.parse().ok()?);
            if history
                .passes
                .last()
                .is_some_and(|&(e, t)| entry.0 <= e || entry.1 < t)
                || history.passes.len() == MAX_PASSES
            {
                return None;
            }
            history.passes.push(entry);
        }
        Some(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_offset_was_seen_by_the_first_pass_past_it() {
        let mut history = PassHistory::default();
        assert_eq!(history.seen_at(0), None);
        history.record(100, 1_000);
        history.record(100, 2_000); // nothing new seen
        history.record(250, 3_000);
        assert_eq!(history.seen_at(0), Some(1_000));
        assert_eq!(history.seen_at(99), Some(1_000));
        assert_eq!(history.seen_at(100), Some(3_000));
        assert_eq!(history.seen_at(250), None);
        assert_eq!(history.end(), Some(250));
        assert_eq!(PassHistory::decode(&history.encode()), Some(history));
        assert_eq!(PassHistory::decode("-"), Some(PassHistory::default()));
        assert_eq!(PassHistory::decode("100@5 50@6"), None, "out of order");
        assert_eq!(PassHistory::decode("100@x"), None);
    }

    #[test]
    fn the_oldest_pass_goes_and_its_part_counts_as_seen_later() {
        let mut history = PassHistory::default();
        for i in 0..=MAX_PASSES as i64 {
            history.record(10 * (i + 1), 1_000 * i);
        }
        // The first pass (below 10, at 0) is gone: the next one's time.
        assert_eq!(history.seen_at(5), Some(1_000));
        assert_eq!(history.seen_at(15), Some(1_000));
        assert_eq!(history.passes.len(), MAX_PASSES);
        assert!(PassHistory::decode(&history.encode()).is_some());
    }
}
