//! A least-recently-used map from ids to values, weighed against a limit:
//! a shard's cache of sealed segments' indexes (weighed in bytes) and open
//! sealed files, and its bound on open segment descriptors (one each).

use std::collections::{BTreeMap, HashMap};

#[derive(Debug)]
pub(crate) struct Lru<V> {
    /// The most the entries may weigh together.
    pub(crate) limit: usize,
    weight: fn(&V) -> usize,
    /// The weights of the entries, summed.
    held: usize,
    entries: HashMap<u64, (V, u64)>,
    /// Use order (tick -> id), oldest first.
    order: BTreeMap<u64, u64>,
    tick: u64,
}

impl<V: Clone> Lru<V> {
    pub(crate) fn new(limit: usize, weight: fn(&V) -> usize) -> Lru<V> {
        Lru {
            limit,
            weight,
            held: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
        }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The entry of `id`, now the most recently used.
    pub(crate) fn get(&mut self, id: u64) -> Option<V> {
        let tick = self.next_tick();
        let (value, used) = self.entries.get_mut(&id)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, id);
        Some(value.clone())
    }

    /// Keeps `value` under `id` (or, if `id` is there already, uses that
    /// one: a concurrent load kept it first), then evicts the least
    /// recently used past the limit (the new one too, if it alone passes
    /// it: its user still holds it). Returns the value kept and the ones
    /// evicted.
    pub(crate) fn insert(&mut self, id: u64, value: V) -> (V, Vec<V>) {
        if let Some(kept) = self.get(id) {
            return (kept, Vec::new());
        }
        let tick = self.next_tick();
        self.held += (self.weight)(&value);
        self.entries.insert(id, (value.clone(), tick));
        self.order.insert(tick, id);
        let mut evicted = Vec::new();
        while self.held > self.limit {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((gone, _)) = self.entries.remove(&oldest) {
                self.held -= (self.weight)(&gone);
                evicted.push(gone);
            }
        }
        (value, evicted)
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<V> {
        let (gone, used) = self.entries.remove(&id)?;
        self.order.remove(&used);
        self.held -= (self.weight)(&gone);
        Some(gone)
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.held = 0;
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// What the entries weigh together.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.entries.contains_key(&id)
    }
}
