//! What producers and consumers count while a run goes, whatever drives
//! them: each client thread owns a tally (a mutex it alone takes, but for
//! the once-a-second progress line), merged at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::histogram::Latency;
use crate::message::Header;

/// Messages and bytes in one second of the run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Second {
    pub produced: u64,
    pub produced_bytes: u64,
    pub consumed: u64,
    pub consumed_bytes: u64,
}

fn second_at(seconds: &mut Vec<Second>, at: usize) -> &mut Second {
    if seconds.len() <= at {
        seconds.resize(at + 1, Second::default());
    }
    &mut seconds[at]
}

/// A set of sequence numbers (a bitmap).
#[derive(Debug, Default, Clone)]
pub struct SeqSet {
    words: Vec<u64>,
}

impl SeqSet {
    /// Adds `seq`; false if it was there already.
    pub fn insert(&mut self, seq: u64) -> bool {
        let word = usize::try_from(seq / 64).unwrap_or(usize::MAX);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let bit = 1u64 << (seq % 64);
        let new = self.words[word] & bit == 0;
        self.words[word] |= bit;
        new
    }

    pub fn len(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Members of `self` not in `other`.
    pub fn minus(&self, other: &SeqSet) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| u64::from((w & !other.words.get(i).copied().unwrap_or(0)).count_ones()))
            .sum()
    }

    /// Members of both.
    pub fn overlap(&self, other: &SeqSet) -> u64 {
        self.words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| u64::from((a & b).count_ones()))
            .sum()
    }

    pub fn union_with(&mut self, other: &SeqSet) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }
}

/// The run's clock: due times are nanoseconds from `start`; messages due
/// in the window (after the warm-up) are measured.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub start: Instant,
    pub window_ns: (u64, u64),
}

impl Clock {
    pub fn new(start: Instant, warmup: Duration, duration: Duration) -> Clock {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Clock {
            start,
            window_ns: (ns(warmup), ns(warmup + duration)),
        }
    }

    pub fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn measured(&self, due_ns: u64) -> bool {
        (self.window_ns.0..self.window_ns.1).contains(&due_ns)
    }

    fn second(&self, at: Instant) -> usize {
        usize::try_from(at.saturating_duration_since(self.start).as_secs()).unwrap_or(usize::MAX)
    }
}

/// One producer's counts.
#[derive(Debug, Default, Clone)]
pub struct ProducerTally {
    pub publish: Latency,
    pub seconds: Vec<Second>,
    pub acked: SeqSet,
    pub sent: u64,
    pub errors: u64,
    pub retries: u64,
    pub acked_in_window: u64,
    pub bytes_in_window: u64,
}

/// One consumer's counts.
#[derive(Debug, Default, Clone)]
pub struct ConsumerTally {
    pub e2e: Latency,
    pub seconds: Vec<Second>,
    /// Sequence numbers seen, per producer.
    pub seen: BTreeMap<u32, SeqSet>,
    pub messages: u64,
    /// Read twice by this consumer.
    pub duplicates: u64,
    /// Messages without our header (not written by this run).
    pub foreign: u64,
    pub errors: u64,
    pub consumed_in_window: u64,
}

/// Everything a run's clients share.
#[derive(Debug)]
pub struct Run {
    /// Set when the producers start.
    clock: OnceLock<Clock>,
    producers: Vec<Arc<Mutex<ProducerTally>>>,
    consumers: Vec<Arc<Mutex<ConsumerTally>>>,
    /// Acknowledged and consumed messages so far (all clients).
    pub acked: AtomicU64,
    pub consumed: AtomicU64,
    /// Set when consumers should stop.
    pub stop: AtomicBool,
    /// Partitions each consumer owns now.
    owned: Vec<AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Run {
    pub fn new(producers: u32, consumers: u32) -> Run {
        Run {
            clock: OnceLock::new(),
            producers: (0..producers).map(|_| Arc::default()).collect(),
            consumers: (0..consumers).map(|_| Arc::default()).collect(),
            acked: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            owned: (0..consumers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// How many partitions each consumer owns now.
    pub fn owned(&self) -> Vec<u64> {
        self.owned
            .iter()
            .map(|o| o.load(Ordering::Relaxed))
            .collect()
    }

    pub fn producer(self: &Arc<Self>, index: u32) -> ProducerHandle {
        ProducerHandle {
            run: Arc::clone(self),
            index: index as usize,
        }
    }

    pub fn consumer(self: &Arc<Self>, index: u32) -> ConsumerHandle {
        ConsumerHandle {
            run: Arc::clone(self),
            index: index as usize,
        }
    }

    /// Starts the clock (once: later calls change nothing).
    pub fn begin(&self, clock: Clock) -> Clock {
        *self.clock.get_or_init(|| clock)
    }

    pub fn clock(&self) -> Option<Clock> {
        self.clock.get().copied()
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Publish latency over every producer so far.
    pub fn publish_so_far(&self) -> Latency {
        let mut all = Latency::new();
        for p in &self.producers {
            all.add(&lock(p).publish);
        }
        all
    }

    pub fn producer_tallies(&self) -> Vec<ProducerTally> {
        self.producers.iter().map(|p| lock(p).clone()).collect()
    }

    pub fn consumer_tallies(&self) -> Vec<ConsumerTally> {
        self.consumers.iter().map(|c| lock(c).clone()).collect()
    }
}

/// A producer thread's view of the run.
#[derive(Debug, Clone)]
pub struct ProducerHandle {
    run: Arc<Run>,
    index: usize,
}

impl ProducerHandle {
    fn tally(&self) -> MutexGuard<'_, ProducerTally> {
        lock(&self.run.producers[self.index])
    }

    /// The run's clock (set before any producer starts).
    pub fn clock(&self) -> Clock {
        self.run.clock().unwrap_or_else(|| {
            self.run
                .begin(Clock::new(Instant::now(), Duration::ZERO, Duration::ZERO))
        })
    }

    pub fn sent(&self) {
        self.tally().sent += 1;
    }

    pub fn set_retries(&self, retries: u64) {
        self.tally().retries = retries;
    }

    /// The broker acknowledged message `sequence` (due `due_ns`, `bytes`
    /// long) at `now`; or refused it (`ok` false).
    pub fn acked(&self, sequence: u64, due_ns: u64, bytes: usize, ok: bool, now: Instant) {
        let clock = self.clock();
        let mut tally = self.tally();
        if !ok {
            tally.errors += 1;
            return;
        }
        tally.acked.insert(sequence);
        let second = second_at(&mut tally.seconds, clock.second(now));
        second.produced += 1;
        second.produced_bytes += bytes as u64;
        if clock.measured(due_ns) {
            tally.acked_in_window += 1;
            tally.bytes_in_window += bytes as u64;
            let due = clock.start + Duration::from_nanos(due_ns);
            tally.publish.record(now.saturating_duration_since(due));
        }
        drop(tally);
        self.run.acked.fetch_add(1, Ordering::Relaxed);
    }
}

/// A consumer thread's view of the run.
#[derive(Debug, Clone)]
pub struct ConsumerHandle {
    run: Arc<Run>,
    index: usize,
}

impl ConsumerHandle {
    fn tally(&self) -> MutexGuard<'_, ConsumerTally> {
        lock(&self.run.consumers[self.index])
    }

    pub fn stopped(&self) -> bool {
        self.run.stopped()
    }

    /// A message's payload arrived at `now`.
    pub fn consumed(&self, payload: &[u8], now: Instant) {
        let mut tally = self.tally();
        tally.messages += 1;
        // Before the producers start, only strangers' messages can come.
        let Some(clock) = self.run.clock() else {
            tally.foreign += 1;
            return;
        };
        let Some(header) = Header::read(payload) else {
            tally.foreign += 1;
            return;
        };
        if !tally
            .seen
            .entry(header.producer)
            .or_default()
            .insert(header.sequence)
        {
            tally.duplicates += 1;
        }
        let second = second_at(&mut tally.seconds, clock.second(now));
        second.consumed += 1;
        second.consumed_bytes += payload.len() as u64;
        if clock.measured(header.due_ns) {
            tally.consumed_in_window += 1;
            let due = clock.start + Duration::from_nanos(header.due_ns);
            tally.e2e.record(now.saturating_duration_since(due));
        }
        drop(tally);
        self.run.consumed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self) {
        self.tally().errors += 1;
    }

    /// The consumer owns `partitions` partitions from now on.
    pub fn owns(&self, partitions: u64) {
        if let Some(owned) = self.run.owned.get(self.index) {
            owned.store(partitions, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Header;

    #[test]
    fn seq_sets_count_differences_and_overlaps() {
        let mut a = SeqSet::default();
        let mut b = SeqSet::default();
        for s in 0..200 {
            assert!(a.insert(s));
        }
        assert!(!a.insert(5));
        for s in 150..300 {
            b.insert(s);
        }
        assert_eq!(a.len(), 200);
        assert_eq!(a.minus(&b), 150);
        assert_eq!(b.minus(&a), 100);
        assert_eq!(a.overlap(&b), 50);
        a.union_with(&b);
        assert_eq!(a.len(), 300);
    }

    #[test]
    fn acks_and_reads_are_counted_per_second_and_in_the_window() {
        let start = Instant::now();
        let clock = Clock::new(start, Duration::from_secs(1), Duration::from_secs(2));
        let run = Arc::new(Run::new(1, 1));
        run.begin(clock);
        let producer = run.producer(0);
        let consumer = run.consumer(0);
        let mut payload = vec![0; 100];
        for (sequence, due_s) in [(0, 0), (1, 1), (2, 2), (3, 3)] {
            let due_ns = due_s * 1_000_000_000;
            let at = start + Duration::from_nanos(due_ns) + Duration::from_millis(2);
            producer.acked(sequence, due_ns, 100, true, at);
            Header {
                producer: 0,
                sequence,
                due_ns,
            }
            .write(&mut payload);
            consumer.consumed(&payload, at + Duration::from_millis(3));
        }
        consumer.consumed(&payload, start);
        producer.acked(4, 0, 100, false, start);
        let p = &run.producer_tallies()[0];
        assert_eq!((p.acked.len(), p.errors, p.acked_in_window), (4, 1, 2));
        assert_eq!(p.publish.count(), 2);
        assert_eq!(p.publish.max_us(), 2_000);
        assert_eq!(p.seconds.len(), 4);
        assert!(p.seconds.iter().all(|s| s.produced == 1));
        let c = &run.consumer_tallies()[0];
        assert_eq!((c.messages, c.duplicates, c.consumed_in_window), (5, 1, 2));
        assert_eq!(c.e2e.count(), 2);
        // 3 significant digits: 5 ms reads back as 5.003 ms.
        assert!((4_995..=5_005).contains(&c.e2e.percentile_us(50.0)));
        assert_eq!(run.acked.load(Ordering::Relaxed), 4);
        assert_eq!(run.consumed.load(Ordering::Relaxed), 5);
    }
}
