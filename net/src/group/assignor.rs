//! The server-side assignors of KIP-848's consumer groups, as Kafka names
//! them (`group.consumer.assignors`, the first the default):
//!
//! - `uniform`: every partition of the subscribed topics to one of its
//!   subscribers, balanced (member counts differ by at most one among
//!   members with the same subscription) and sticky: a partition stays with
//!   the member the last target gave it to while that member is subscribed
//!   and under its share.
//! - `range`: per topic, its subscribers in member id order take
//!   contiguous ranges of partitions, the first ones one more when the
//!   count does not divide.
//!
//! Both are deterministic: the same members, subscriptions, topics and last
//! target give the same assignment.

use std::collections::{BTreeMap, BTreeSet};

use super::consumer::{Assignment, TopicsView};

/// The assignors served, the default first.
pub const ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// A member as an assignor sees it.
#[derive(Debug, Clone, Copy)]
pub struct Subscriber<'a> {
    pub member_id: &'a str,
    /// Topic names, sorted.
    pub topics: &'a [String],
    /// Its last target assignment.
    pub current: Option<&'a Assignment>,
}

/// The target assignment of every member (members with nothing get an
/// empty one).
pub fn assign(
    assignor: &str,
    members: &[Subscriber<'_>],
    topics: &TopicsView,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.to_string(), Assignment::new()))
        .collect();
    if assignor == "range" {
        range(members, topics, &mut out);
    } else {
        uniform(members, topics, &mut out);
    }
    out
}

/// The members subscribed to each existing topic, in member id order.
fn subscribers_by_topic<'a>(
    members: &[Subscriber<'a>],
    topics: &TopicsView,
) -> BTreeMap<String, Vec<&'a str>> {
    let mut by_topic: BTreeMap<String, Vec<&'a str>> = BTreeMap::new();
    for member in members {
        for name in member.topics {
            if topics.contains_key(name) {
                by_topic
                    .entry(name.clone())
                    .or_default()
                    .push(member.member_id);
            }
        }
    }
    for list in by_topic.values_mut() {
        list.sort_unstable();
        list.dedup();
    }
    by_topic
}

fn range(members: &[Subscriber<'_>], topics: &TopicsView, out: &mut BTreeMap<String, Assignment>) {
    for (name, subscribers) in subscribers_by_topic(members, topics) {
        let Some(&(id, count)) = topics.get(&name) else {
            continue;
        };
        let count = usize::try_from(count).unwrap_or(0);
        let per = count / subscribers.len();
        let extra = count % subscribers.len();
        let mut next = 0usize;
        for (i, member) in subscribers.iter().enumerate() {
            let take = per + usize::from(i < extra);
            let partitions: BTreeSet<i32> = (next..next + take)
                .filter_map(|p| i32::try_from(p).ok())
                .collect();
            next += take;
            if !partitions.is_empty()
                && let Some(assignment) = out.get_mut(*member)
            {
                assignment.insert(id, partitions);
            }
        }
    }
}

fn uniform(
    members: &[Subscriber<'_>],
    topics: &TopicsView,
    out: &mut BTreeMap<String, Assignment>,
) {
    let by_topic = subscribers_by_topic(members, topics);
    // Every partition with its eligible members, topics in name order.
    let mut partitions: Vec<([u8; 16], i32, &Vec<&str>)> = Vec::new();
    for (name, subscribers) in &by_topic {
        if let Some(&(id, count)) = topics.get(name) {
            partitions.extend((0..count.max(0)).map(|p| (id, p, subscribers)));
        }
    }
    // Shares as Kafka's uniform assignor counts them: each member at
    // least `total / members`, `total % members` of them one more.
    let total = partitions.len();
    let min_quota = total / members.len().max(1);
    let mut extra = total % members.len().max(1);
    let mut load: BTreeMap<&str, usize> = BTreeMap::new();
    let owner_of = |topic: &[u8; 16], partition: i32| {
        members
            .iter()
            .find(|m| {
                m.current
                    .and_then(|a| a.get(topic))
                    .is_some_and(|ps| ps.contains(&partition))
            })
            .map(|m| m.member_id)
    };
    // Sticky: a partition stays with its last owner while that owner is
    // still subscribed and within its share; the first owners over the
    // minimum take the extra slots.
    let mut over = Vec::new();
    let mut unassigned = Vec::new();
    for &(topic, partition, subscribers) in &partitions {
        let owner = owner_of(&topic, partition).filter(|o| subscribers.contains(o));
        match owner {
            Some(owner) if load.get(owner).copied().unwrap_or(0) < min_quota => {
                *load.entry(owner).or_default() += 1;
                if let Some(a) = out.get_mut(owner) {
                    a.entry(topic).or_default().insert(partition);
                }
            }
            Some(owner) => over.push((topic, partition, subscribers, owner)),
            None => unassigned.push((topic, partition, subscribers)),
        }
    }
    for (topic, partition, subscribers, owner) in over {
        if extra > 0 && load.get(owner).copied().unwrap_or(0) == min_quota {
            extra -= 1;
            *load.entry(owner).or_default() += 1;
            if let Some(a) = out.get_mut(owner) {
                a.entry(topic).or_default().insert(partition);
            }
        } else {
            unassigned.push((topic, partition, subscribers));
        }
    }
    // The rest to the least loaded eligible member (ties: member id).
    for (topic, partition, subscribers) in unassigned {
        let Some(owner) = subscribers
            .iter()
            .min_by_key(|m| (load.get(**m).copied().unwrap_or(0), **m))
        else {
            continue;
        };
        *load.entry(owner).or_default() += 1;
        if let Some(a) = out.get_mut(*owner) {
            a.entry(topic).or_default().insert(partition);
        }
    }
}
