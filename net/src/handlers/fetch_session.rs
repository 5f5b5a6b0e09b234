//! Fetch sessions (KIP-227): a client that fetches many partitions sends
//! them all once, and from then on only those whose fetch position or
//! size changed, and the broker answers only the partitions that have
//! records, or whose high watermark or log start moved, or that failed.
//! The Java client (and the clients built like it) opens one whenever the
//! broker offers it.
//!
//! Each shard keeps the sessions of the requests it serves (a connection
//! stays on its shard), at most [`SLOTS`], the least recently used going
//! first past that. A session's id says which shard holds it, so an id
//! that reaches another shard (the client connected again) is not found
//! there, never taken for another client's: the client gets
//! FETCH_SESSION_ID_NOT_FOUND and starts a new session with a full
//! request, as it does after an eviction.
//!
//! As Kafka's FetchManager: epoch 0 is a full request that opens a session
//! (and closes the one it names), epoch -1 a full request without one;
//! any other epoch is an incremental request on the session it names,
//! which must expect that epoch; a session emptied by its forgotten
//! partitions closes. A client of v13+ names topics by id, below by name,
//! and a session keeps to the way it began.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::FetchRequest;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
use kafka_protocol::protocol::StrBytes;

use crate::protocol::schema::generate::Rng;

/// Sessions a shard keeps (Kafka's max.incremental.fetch.session.cache.slots
/// is 1,000 per broker).
pub const SLOTS: usize = 1000;
/// Partitions the sessions of a shard hold together (about 200 bytes
/// each): a request for more opens no session, and a session that grows
/// past it closes (the client starts again with a full request).
const PARTITIONS_MAX: usize = 100_000;
/// The epoch of a full request that opens a session.
const INITIAL_EPOCH: i32 = 0;
/// The epoch of a full request that opens none.
const FINAL_EPOCH: i32 = -1;
/// The first version with sessions.
const SESSION_VERSION: i16 = 7;
/// The first version that names topics by id (KIP-516).
const TOPIC_ID_VERSION: i16 = 13;

const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;

/// One shard's sessions.
#[derive(Debug)]
pub struct FetchSessions {
    shard: u32,
    shards: u32,
    sessions: HashMap<i32, Session>,
    /// Sessions opened since the shard started.
    opened: u64,
    /// Use order, for eviction.
    tick: u64,
    /// For new session ids.
    rng: Rng,
}

#[derive(Debug)]
struct Session {
    /// The epoch the next incremental request must carry.
    epoch: i32,
    uses_ids: bool,
    used: u64,
    /// Each partition's place in `slots`.
    index: HashMap<PartitionKey, usize>,
    /// The partitions; `None` where a forgotten one was (reused first).
    slots: Vec<Option<Cached>>,
    free: Vec<usize>,
    /// A number for each topic, so that the partitions of one topic are
    /// told apart from another's without comparing names.
    topic_numbers: HashMap<TopicKey, u32>,
    /// The order they are read in (place to slot): a partition answered
    /// goes to the end, so a response's size limit does not starve the
    /// ones after it.
    order: BTreeMap<u64, usize>,
    next: u64,
    /// The slots [`topics`](Session::topics) last handed out, in its
    /// order: the order the response to an incremental request answers
    /// them in, so it is matched without a lookup.
    read: Vec<usize>,
}

/// A partition of a session: what the client last asked of it, what it
/// was last told, and its place in the order.
#[derive(Debug)]
struct Cached {
    topic: TopicName,
    topic_id: uuid::Uuid,
    topic_number: u32,
    fetch: FetchPartition,
    high_watermark: i64,
    log_start_offset: i64,
    place: u64,
}

type PartitionKey = (TopicKey, i32);

/// What a Fetch request is, for the sessions.
#[derive(Debug)]
pub enum Context {
    /// Read the partitions the request names; answer with session id 0.
    Sessionless,
    /// Read the partitions the request names, then open a session of them.
    Full,
    /// Read every partition of session `id` (the request's topics are now
    /// those), and answer those that changed ([`FetchSessions::answered`]).
    Incremental(i32),
    /// Answer this error and nothing else.
    Error(i16),
}

impl FetchSessions {
    pub fn new(shard: u32, shards: u32) -> FetchSessions {
        FetchSessions {
            shard,
            shards: shards.max(1),
            sessions: HashMap::new(),
            opened: 0,
            tick: 0,
            rng: Rng::new(u64::from(std::process::id()) << 32 ^ u64::from(shard)),
        }
    }

    /// What `body` (at `version`) asks. An incremental request updates its
    /// session here, and its topics become the session's, every partition
    /// of it: what the handler reads.
    pub fn begin(&mut self, body: &mut FetchRequest, version: i16) -> Context {
        let (id, epoch) = (body.session_id, body.session_epoch);
        if version < SESSION_VERSION {
            return Context::Sessionless;
        }
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            // A full request closes the session it names.
            self.sessions.remove(&id);
            return if epoch == FINAL_EPOCH {
                Context::Sessionless
            } else {
                Context::Full
            };
        }
        self.tick += 1;
        let Some(session) = self.sessions.get_mut(&id) else {
            return Context::Error(FETCH_SESSION_ID_NOT_FOUND);
        };
        if session.epoch != epoch {
            return Context::Error(INVALID_FETCH_SESSION_EPOCH);
        }
        let uses_ids = version >= TOPIC_ID_VERSION;
        if session.uses_ids != uses_ids {
            return Context::Error(FETCH_SESSION_TOPIC_ID_ERROR);
        }
        session.update(body);
        if session.index.is_empty() {
            self.sessions.remove(&id);
            return Context::Sessionless;
        }
        if self.held() > PARTITIONS_MAX {
            self.sessions.remove(&id);
            return Context::Error(FETCH_SESSION_ID_NOT_FOUND);
        }
        let Some(session) = self.sessions.get_mut(&id) else {
            return Context::Error(FETCH_SESSION_ID_NOT_FOUND);
        };
        session.epoch = next_epoch(epoch);
        session.used = self.tick;
        body.topics = session.topics();
        Context::Incremental(id)
    }

    /// Opens a session of the partitions `body` named and `topics`
    /// answered; returns its id, or 0 (none) if they alone are more than
    /// the shard's sessions may hold. The least recently used sessions go
    /// to make room ([`SLOTS`], [`PARTITIONS_MAX`]).
    pub fn open(
        &mut self,
        body: &FetchRequest,
        version: i16,
        topics: &[FetchableTopicResponse],
    ) -> i32 {
        let wanted: usize = body.topics.iter().map(|t| t.partitions.len()).sum();
        if wanted > PARTITIONS_MAX {
            return 0;
        }
        while self.sessions.len() >= SLOTS || self.held() + wanted > PARTITIONS_MAX {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(&id, _)| id);
            match oldest {
                Some(oldest) => self.sessions.remove(&oldest),
                None => break,
            };
        }
        self.tick += 1;
        let mut session = Session {
            epoch: next_epoch(INITIAL_EPOCH),
            uses_ids: version >= TOPIC_ID_VERSION,
            used: self.tick,
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            topic_numbers: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
            read: Vec::new(),
        };
        session.update(body);
        session.answered(topics);
        let id = self.new_id();
        self.sessions.insert(id, session);
        self.opened += 1;
        id
    }

    /// Keeps, of an incremental response's `topics`, the partitions the
    /// client must hear about, and notes what it was told.
    pub fn answered(&mut self, id: i32, topics: &mut Vec<FetchableTopicResponse>) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let mut told = session.answered(topics).into_iter();
        for topic in topics.iter_mut() {
            // In order: `told` has a flag for each partition of `topics`.
            topic.partitions.retain(|_| told.next().unwrap_or(true));
        }
        topics.retain(|t| !t.partitions.is_empty());
    }

    /// Partitions the sessions hold together.
    fn held(&self) -> usize {
        self.sessions.values().map(|s| s.index.len()).sum()
    }

    /// Sessions held now, and opened since the shard started.
    pub fn count(&self) -> (usize, u64) {
        (self.sessions.len(), self.opened)
    }

    /// A positive id no session here has, that names this shard.
    fn new_id(&mut self) -> i32 {
        let per_shard = i32::MAX as u64 / u64::from(self.shards);
        loop {
            let n = self.rng.below(per_shard);
            let id = i32::try_from(n * u64::from(self.shards) + u64::from(self.shard)).unwrap_or(0);
            if id > 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }
}

/// How a session names a topic: by id (v13+) or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TopicKey {
    Id(uuid::Uuid),
    Name(TopicName),
}

fn topic_key(uses_ids: bool, name: &TopicName, id: uuid::Uuid) -> TopicKey {
    if uses_ids {
        TopicKey::Id(id)
    } else {
        TopicKey::Name(name.clone())
    }
}

impl Session {
    /// A place at the end of the order.
    fn last_place(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Takes the request's partitions (new ones at the end) and drops the
    /// ones it forgets.
    fn update(&mut self, body: &FetchRequest) {
        for topic in &body.topics {
            let key = topic_key(self.uses_ids, &topic.topic, topic.topic_id);
            for fetch in &topic.partitions {
                let partition = (key.clone(), fetch.partition);
                if let Some(cached) = self.cached_mut(&partition) {
                    cached.fetch = fetch.clone();
                    cached.fetch.unknown_tagged_fields.clear();
                    continue;
                }
                // Copies, not slices of the request's frame, which they
                // would keep in memory.
                let name = TopicName(StrBytes::from_string(topic.topic.0.to_string()));
                let key = topic_key(self.uses_ids, &name, topic.topic_id);
                let numbers = self.topic_numbers.len();
                let topic_number = *self
                    .topic_numbers
                    .entry(key.clone())
                    .or_insert(u32::try_from(numbers).unwrap_or(u32::MAX));
                let mut fetch = fetch.clone();
                fetch.unknown_tagged_fields.clear();
                let place = self.last_place();
                let cached = Cached {
                    topic: name,
                    topic_id: topic.topic_id,
                    topic_number,
                    fetch,
                    high_watermark: -1,
                    log_start_offset: -1,
                    place,
                };
                let slot = match self.free.pop() {
                    Some(slot) => {
                        if let Some(free) = self.slots.get_mut(slot) {
                            *free = Some(cached);
                        }
                        slot
                    }
                    None => {
                        self.slots.push(Some(cached));
                        self.slots.len() - 1
                    }
                };
                self.order.insert(place, slot);
                self.index.insert((key, partition.1), slot);
            }
        }
        for forgotten in &body.forgotten_topics_data {
            let key = topic_key(self.uses_ids, &forgotten.topic, forgotten.topic_id);
            for &partition in &forgotten.partitions {
                let Some(slot) = self.index.remove(&(key.clone(), partition)) else {
                    continue;
                };
                if let Some(gone) = self.slots.get_mut(slot).and_then(Option::take) {
                    self.order.remove(&gone.place);
                    self.free.push(slot);
                }
            }
        }
    }

    fn cached_mut(&mut self, partition: &PartitionKey) -> Option<&mut Cached> {
        let slot = *self.index.get(partition)?;
        self.slots.get_mut(slot)?.as_mut()
    }

    /// Every partition, as the request a handler reads: consecutive
    /// partitions of one topic under one entry. Notes their slots in that
    /// order ([`read`](Session::read)).
    fn topics(&mut self) -> Vec<FetchTopic> {
        let mut topics: Vec<(u32, FetchTopic)> = Vec::new();
        self.read.clear();
        for &slot in self.order.values() {
            let Some(Some(cached)) = self.slots.get(slot) else {
                continue;
            };
            self.read.push(slot);
            match topics.last_mut() {
                Some((last, topic)) if *last == cached.topic_number => {
                    topic.partitions.push(cached.fetch.clone());
                }
                _ => topics.push((
                    cached.topic_number,
                    FetchTopic::default()
                        .with_topic(cached.topic.clone())
                        .with_topic_id(cached.topic_id)
                        .with_partitions(vec![cached.fetch.clone()]),
                )),
            }
        }
        topics.into_iter().map(|(_, topic)| topic).collect()
    }

    /// The slot of `data`, the `at`th partition of a response to `topic`:
    /// the `at`th that [`topics`](Session::topics) handed out when it is
    /// that partition (an incremental request's response answers them in
    /// that order), else looked up.
    fn slot_of(
        &self,
        at: usize,
        topic: Option<u32>,
        key: &TopicKey,
        partition: i32,
    ) -> Option<usize> {
        let in_order = self.read.get(at).copied().filter(|&slot| {
            self.slots
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|c| Some(c.topic_number) == topic && c.fetch.partition == partition)
        });
        in_order.or_else(|| self.index.get(&(key.clone(), partition)).copied())
    }

    /// Notes what `topics` tell the client, and returns, for each of their
    /// partitions in order, whether the client must be told of it (Kafka's
    /// `maybeUpdateResponseData`): records, a moved high watermark or log
    /// start, an error (which also forgets the high watermark, so the
    /// partition is sent again once it recovers). Those go to the end of
    /// the session's order.
    fn answered(&mut self, topics: &[FetchableTopicResponse]) -> Vec<bool> {
        let mut told = Vec::new();
        for topic in topics {
            let key = topic_key(self.uses_ids, &topic.topic, topic.topic_id);
            let number = self.topic_numbers.get(&key).copied();
            for data in &topic.partitions {
                let slot = self.slot_of(told.len(), number, &key, data.partition_index);
                let place = self.last_place();
                let Some(cached) = slot.and_then(|s| self.slots.get_mut(s)?.as_mut()) else {
                    told.push(false);
                    continue;
                };
                let records = data.records.as_ref().is_some_and(|r| !r.is_empty());
                let mut tell = records || data.error_code != 0;
                if cached.high_watermark != data.high_watermark {
                    cached.high_watermark = data.high_watermark;
                    tell = true;
                }
                if cached.log_start_offset != data.log_start_offset {
                    cached.log_start_offset = data.log_start_offset;
                    tell = true;
                }
                if data.error_code != 0 {
                    cached.high_watermark = -1;
                }
                if tell && let Some(slot) = slot {
                    self.order.remove(&cached.place);
                    cached.place = place;
                    self.order.insert(place, slot);
                }
                told.push(tell);
            }
        }
        told
    }
}

/// The epoch after `epoch` (1 after the largest).
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX { 1 } else { epoch + 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(partitions: i32) -> FetchRequest {
        let fetches = (0..partitions)
            .map(|p| FetchPartition::default().with_partition(p))
            .collect();
        FetchRequest::default()
            .with_session_id(0)
            .with_session_epoch(INITIAL_EPOCH)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(fetches),
            ])
    }

    fn incremental(id: i32, epoch: i32) -> FetchRequest {
        FetchRequest::default()
            .with_session_id(id)
            .with_session_epoch(epoch)
    }

    /// Ids are positive and name their shard; past the slots the session
    /// used least recently goes, and one kept in use stays.
    #[test]
    fn ids_name_their_shard_and_the_least_recently_used_go_first() {
        let mut sessions = FetchSessions::new(2, 3);
        let kept = sessions.open(&full(2), 12, &[]);
        let mut opened = Vec::new();
        for epoch in 1..=(SLOTS + 10) as i32 {
            let mut request = incremental(kept, epoch);
            match sessions.begin(&mut request, 12) {
                Context::Incremental(id) => assert_eq!(id, kept),
                other => panic!("{other:?}"),
            }
            assert_eq!(request.topics[0].partitions.len(), 2);
            let id = sessions.open(&full(1), 12, &[]);
            assert!(id > 0 && id % 3 == 2, "{id}");
            opened.push(id);
        }
        assert_eq!(sessions.count(), (SLOTS, SLOTS as u64 + 11));
        let mut first = incremental(opened[0], 1);
        assert!(matches!(
            sessions.begin(&mut first, 12),
            Context::Error(FETCH_SESSION_ID_NOT_FOUND)
        ));
        let mut last = incremental(*opened.last().unwrap(), 1);
        assert!(matches!(
            sessions.begin(&mut last, 12),
            Context::Incremental(_)
        ));
        // Below v7 there are no sessions; epoch -1 reads without one.
        assert!(matches!(
            sessions.begin(&mut full(1), 6),
            Context::Sessionless
        ));
        let mut closing = incremental(kept, FINAL_EPOCH);
        assert!(matches!(
            sessions.begin(&mut closing, 12),
            Context::Sessionless
        ));
        assert_eq!(sessions.count().0, SLOTS - 1);
    }

    fn names(topics: &[FetchTopic]) -> Vec<(String, Vec<i32>)> {
        topics
            .iter()
            .map(|t| {
                let partitions = t.partitions.iter().map(|p| p.partition).collect();
                (t.topic.0.to_string(), partitions)
            })
            .collect()
    }

    /// A response to `topics` in which the partitions in `moved` have a
    /// new high watermark and the others the one they had.
    fn response(
        topics: &[FetchTopic],
        moved: &[(&str, i32)],
        hw: i64,
    ) -> Vec<FetchableTopicResponse> {
        use kafka_protocol::messages::fetch_response::PartitionData;
        topics
            .iter()
            .map(|t| {
                let partitions = t.partitions.iter().map(|p| {
                    let named = (t.topic.0.as_str(), p.partition);
                    let high_watermark = if moved.contains(&named) { hw } else { 0 };
                    PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_high_watermark(high_watermark)
                });
                FetchableTopicResponse::default()
                    .with_topic(t.topic.clone())
                    .with_partitions(partitions.collect())
            })
            .collect()
    }

    fn topic(name: &'static str, partitions: &[i32]) -> FetchTopic {
        FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(name)))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| FetchPartition::default().with_partition(p))
                    .collect(),
            )
    }

    /// An incremental response keeps exactly the partitions with news,
    /// which go to the end of the order; forgotten partitions leave and
    /// their slots take new ones.
    #[test]
    fn answered_partitions_go_last_and_forgotten_slots_are_reused() {
        let mut sessions = FetchSessions::new(0, 1);
        let open = FetchRequest::default()
            .with_session_epoch(INITIAL_EPOCH)
            .with_topics(vec![topic("t", &[0, 1, 2, 3]), topic("u", &[0, 1])]);
        let id = sessions.open(&open, 12, &response(&open.topics, &[], 0));
        let mut request = incremental(id, 1);
        assert!(matches!(
            sessions.begin(&mut request, 12),
            Context::Incremental(_)
        ));
        let expect = |list: &[(&str, &[i32])]| -> Vec<(String, Vec<i32>)> {
            list.iter()
                .map(|(t, p)| (t.to_string(), p.to_vec()))
                .collect()
        };
        assert_eq!(
            names(&request.topics),
            expect(&[("t", &[0, 1, 2, 3]), ("u", &[0, 1])])
        );
        let mut answer = response(&request.topics, &[("t", 1), ("u", 0)], 5);
        sessions.answered(id, &mut answer);
        let told: Vec<(String, Vec<i32>)> = answer
            .iter()
            .map(|t| {
                let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
                (t.topic.0.to_string(), partitions)
            })
            .collect();
        assert_eq!(told, expect(&[("t", &[1]), ("u", &[0])]));

        // t2 forgotten, then u5 added: it takes t2's slot, at the end.
        let mut request = incremental(id, 2).with_forgotten_topics_data(vec![
            kafka_protocol::messages::fetch_request::ForgottenTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![2]),
        ]);
        assert!(matches!(
            sessions.begin(&mut request, 12),
            Context::Incremental(_)
        ));
        let mut request = incremental(id, 3).with_topics(vec![topic("u", &[5])]);
        assert!(matches!(
            sessions.begin(&mut request, 12),
            Context::Incremental(_)
        ));
        let session = sessions.sessions.get(&id).unwrap();
        assert_eq!(session.slots.len(), 6, "the forgotten slot was reused");
        assert_eq!(
            names(&request.topics),
            expect(&[("t", &[0, 3]), ("u", &[1]), ("t", &[1]), ("u", &[0, 5])])
        );
        // Nothing moved: nothing is told but the new partition's first
        // high watermark.
        let mut answer = response(&request.topics, &[("t", 1), ("u", 0)], 5);
        sessions.answered(id, &mut answer);
        assert_eq!(answer.len(), 1);
        assert_eq!(answer[0].partitions.len(), 1);
        assert_eq!(answer[0].partitions[0].partition_index, 5);
    }

    /// The sessions of a shard hold at most PARTITIONS_MAX partitions: a
    /// request for more opens none, and a new session makes room by
    /// evicting the least recently used.
    #[test]
    fn the_partitions_held_are_bounded() {
        let mut sessions = FetchSessions::new(0, 1);
        assert_eq!(sessions.open(&full(PARTITIONS_MAX as i32 + 1), 12, &[]), 0);
        let half = PARTITIONS_MAX as i32 / 2 + 1;
        let first = sessions.open(&full(half), 12, &[]);
        let second = sessions.open(&full(half), 12, &[]);
        assert!(first > 0 && second > 0);
        assert_eq!(sessions.count(), (1, 2));
        assert!(matches!(
            sessions.begin(&mut incremental(first, 1), 12),
            Context::Error(FETCH_SESSION_ID_NOT_FOUND)
        ));
        assert!(matches!(
            sessions.begin(&mut incremental(second, 1), 12),
            Context::Incremental(_)
        ));
    }
}
