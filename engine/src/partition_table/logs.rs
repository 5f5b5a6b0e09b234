//! The open logs of a shard by topic, then by partition number: a lookup
//! hashes and compares the topic's name once, and a request that names
//! many partitions of one topic (a consumer of thousands fetches them all
//! in every request) looks the topic up once and indexes the rest.

use std::collections::HashMap;

use super::TopicPartition;

/// `L`: a log (`L`; anything, in the tests).
#[derive(Debug)]
pub(super) struct Logs<L> {
    /// A topic's logs at their partition numbers; `None` where a partition
    /// is another shard's or not open. A topic without any goes.
    topics: HashMap<String, Vec<Option<L>>>,
}

impl<L> Default for Logs<L> {
    fn default() -> Self {
        Logs {
            topics: HashMap::new(),
        }
    }
}

impl<L> Logs<L> {
    pub(super) fn get(&self, topic: &str, partition: i32) -> Option<&L> {
        self.topic(topic)?
            .get(usize::try_from(partition).ok()?)?
            .as_ref()
    }

    /// The logs of `topic` at their partition numbers.
    pub(super) fn topic(&self, topic: &str) -> Option<&[Option<L>]> {
        self.topics.get(topic).map(Vec::as_slice)
    }

    pub(super) fn contains(&self, tp: &TopicPartition) -> bool {
        self.get(&tp.topic, tp.partition).is_some()
    }

    /// Puts `log` at `tp`; the log that was there, if any. Partitions are
    /// numbered from 0 (directory names and creates give no other): a
    /// negative one is not kept, and is logged.
    pub(super) fn insert(&mut self, tp: TopicPartition, log: L) -> Option<L> {
        let Ok(at) = usize::try_from(tp.partition) else {
            tracing::error!(partition = %tp, "a negative partition number is not kept");
            return None;
        };
        let logs = self.topics.entry(tp.topic).or_default();
        if logs.len() <= at {
            logs.resize_with(at + 1, || None);
        }
        logs.get_mut(at).and_then(|slot| slot.replace(log))
    }

    pub(super) fn remove(&mut self, tp: &TopicPartition) -> Option<L> {
        let logs = self.topics.get_mut(tp.topic.as_str())?;
        let removed = logs
            .get_mut(usize::try_from(tp.partition).ok()?)
            .and_then(Option::take);
        while logs.last().is_some_and(Option::is_none) {
            logs.pop();
        }
        if logs.is_empty() {
            self.topics.remove(tp.topic.as_str());
        }
        removed
    }

    /// Every log with its topic and partition, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, i32, &L)> {
        self.topics.iter().flat_map(|(topic, logs)| {
            logs.iter().enumerate().filter_map(move |(at, log)| {
                let partition = i32::try_from(at).ok()?;
                Some((topic.as_str(), partition, log.as_ref()?))
            })
        })
    }

    /// Takes every log out, leaving none.
    pub(super) fn take_all(&mut self) -> Vec<(TopicPartition, L)> {
        std::mem::take(&mut self.topics)
            .into_iter()
            .flat_map(|(topic, logs)| {
                logs.into_iter().enumerate().filter_map(move |(at, log)| {
                    let partition = i32::try_from(at).ok()?;
                    Some((TopicPartition::new(topic.clone(), partition), log?))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a map by (topic, partition): every insert, replace and
    /// remove, in a seeded order, leaves the same contents, and no empty
    /// topic or trailing slot stays behind.
    #[test]
    fn logs_by_topic_agree_with_a_map_by_name_and_number() {
        let seed = 0x5eed_1095_u64;
        println!("seed {seed}");
        // xorshift64: enough for an order of operations.
        let mut state = seed;
        let mut below = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let topics = ["a", "b", "orders", "orders-1", "x.y_z"];
        let mut logs: Logs<u64> = Logs::default();
        let mut model: std::collections::BTreeMap<(String, i32), u64> = Default::default();
        for step in 0..20_000u64 {
            let topic = topics[below(topics.len() as u64) as usize];
            let partition = below(40) as i32;
            let tp = TopicPartition::new(topic, partition);
            let key = (topic.to_string(), partition);
            if below(3) == 0 {
                assert_eq!(logs.remove(&tp), model.remove(&key), "step {step}");
            } else {
                assert_eq!(
                    logs.insert(tp.clone(), step),
                    model.insert(key, step),
                    "step {step}"
                );
            }
            assert_eq!(
                logs.get(topic, partition),
                model.get(&(topic.to_string(), partition))
            );
        }
        assert_eq!(logs.insert(TopicPartition::new("a", -1), 1), None);
        assert_eq!(logs.get("a", -1), None);
        assert_eq!(logs.get("absent", 0), None);
        let mut all: Vec<((String, i32), u64)> = logs
            .iter()
            .map(|(t, p, &l)| ((t.to_string(), p), l))
            .collect();
        all.sort();
        assert_eq!(all, model.clone().into_iter().collect::<Vec<_>>());
        for (topic, slots) in &logs.topics {
            assert!(
                slots.last().is_some_and(Option::is_some),
                "{topic} ends in a log"
            );
        }
        let mut taken: Vec<((String, i32), u64)> = logs
            .take_all()
            .into_iter()
            .map(|(tp, l)| ((tp.topic, tp.partition), l))
            .collect();
        taken.sort();
        assert_eq!(taken, model.into_iter().collect::<Vec<_>>());
        assert_eq!(logs.iter().count(), 0);
    }
}
