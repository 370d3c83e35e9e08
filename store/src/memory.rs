//! `MemoryStore`: the in-memory twin of `SledStore`, for fast tests.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing::warn;
use warren_crypto::{ChkBlock, RoutingKey, SskBlock};

use crate::plan::{excess, pick_random, plan_put, random_start, PutPlan};
use crate::record::Slot;
use crate::stats::Counters;
use crate::{Area, BlockStore, Eviction, StoreConfig, StoreError, StoreStats};

/// A [`BlockStore`] in memory, with the same placement, eviction and
/// verification rules as [`crate::SledStore`]. `flush` has nothing to do.
#[derive(Debug)]
pub struct MemoryStore {
    config: StoreConfig,
    state: Mutex<State>,
    counters: Counters,
}

#[derive(Debug)]
struct State {
    /// By routing key, in the key order of `SledStore`'s `index` tree, which
    /// random eviction walks the same way.
    entries: BTreeMap<RoutingKey, Entry>,
    /// Access order per area: the first entry of an area is its LRU block.
    lru: BTreeMap<Slot, RoutingKey>,
    next_seq: u64,
    blocks: [u64; 2],
    /// SSK blocks by key (in `SledStore`'s key order, for random eviction),
    /// with their insertion sequence (for oldest-first eviction).
    ssk: BTreeMap<RoutingKey, (u64, Vec<u8>)>,
    ssk_order: BTreeMap<u64, RoutingKey>,
    /// Random eviction draws.
    rng: rand::rngs::StdRng,
}

#[derive(Debug)]
struct Entry {
    slot: Slot,
    bytes: Vec<u8>,
}

impl MemoryStore {
    pub fn new(config: StoreConfig) -> Self {
        let state = State {
            entries: BTreeMap::new(),
            lru: BTreeMap::new(),
            next_seq: 0,
            blocks: [0; 2],
            ssk: BTreeMap::new(),
            ssk_order: BTreeMap::new(),
            rng: config.eviction_rng(),
        };
        MemoryStore {
            config,
            state: Mutex::new(state),
            counters: Counters::default(),
        }
    }

    /// What closing a [`crate::SledStore`] and opening it again with `config`
    /// does, in memory: the blocks and their access order are kept, the
    /// counters start again, the random draws restart from the new seed, and
    /// an area the new configuration no longer has room for is trimmed by its
    /// policy (counted as evictions).
    pub fn reopen(self, config: StoreConfig) -> MemoryStore {
        let mut state = self
            .state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        state.rng = config.eviction_rng();
        let store = MemoryStore {
            config,
            state: Mutex::new(state),
            counters: Counters::default(),
        };
        {
            let mut state = store.state();
            for area in Area::ALL {
                let n = excess(area, state.blocks, &store.config);
                let evicted = state.evict(store.config.eviction, area, n);
                store.counters.evicted(area, evicted);
            }
        }
        store
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, so the state is never half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Test hook: flips one byte of the stored copy of `key`, bypassing
    /// verification, as bit rot would (idempotent: a damaged block stays
    /// damaged). Returns whether the block was held.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn corrupt_stored_block(&self, key: &RoutingKey) -> Result<bool, StoreError> {
        let mut state = self.state();
        Ok(state.entries.get_mut(key).is_some_and(|entry| {
            entry.bytes = crate::record::damage(*key, std::mem::take(&mut entry.bytes));
            true
        }))
    }
}

impl State {
    fn touch(&mut self, key: RoutingKey, old: Slot) {
        let slot = Slot {
            area: old.area,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.lru.remove(&old);
        self.lru.insert(slot, key);
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.slot = slot;
        }
    }

    fn remove(&mut self, key: &RoutingKey) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.lru.remove(&entry.slot);
        self.blocks[entry.slot.area.index()] -= 1;
        Some(entry)
    }

    /// Evicts up to `n` blocks of `area` chosen by `policy`; returns how many.
    fn evict(&mut self, policy: Eviction, area: Area, n: u64) -> u64 {
        let victims: Vec<RoutingKey> = match policy {
            Eviction::Lru => self
                .lru
                .range(area_range(area))
                .take(n as usize)
                .map(|(_, key)| *key)
                .collect(),
            Eviction::Random => {
                let mut chosen = HashSet::new();
                for _ in 0..n {
                    // A draw that found nothing near its start takes the LRU block.
                    let Some(key) = self
                        .draw(area, &chosen)
                        .or_else(|| self.least_recent(area, &chosen))
                    else {
                        break;
                    };
                    chosen.insert(key);
                }
                chosen.into_iter().collect()
            }
        };
        for key in &victims {
            self.remove(key);
        }
        victims.len() as u64
    }

    /// A random block of `area` not in `chosen` (see `plan::pick_random`).
    fn draw(&mut self, area: Area, chosen: &HashSet<RoutingKey>) -> Option<RoutingKey> {
        let start = random_start(&mut self.rng);
        let entries = self
            .entries
            .range(start..)
            .chain(self.entries.range(..start))
            .map(|(key, entry)| {
                Ok::<_, std::convert::Infallible>(Some((*key, entry.slot.area, ())))
            });
        match pick_random(entries, area, chosen) {
            Ok(found) => found.map(|(key, ())| key),
            Err(never) => match never {},
        }
    }

    /// The least recently used block of `area` not in `chosen`.
    fn least_recent(&self, area: Area, chosen: &HashSet<RoutingKey>) -> Option<RoutingKey> {
        self.lru
            .range(area_range(area))
            .map(|(_, key)| *key)
            .find(|key| !chosen.contains(key))
    }
}

/// Every access-order position of `area`.
fn area_range(area: Area) -> std::ops::RangeInclusive<Slot> {
    Slot { area, seq: 0 }..=Slot {
        area,
        seq: u64::MAX,
    }
}

impl BlockStore for MemoryStore {
    fn get(&self, key: &RoutingKey) -> Result<Option<ChkBlock>, StoreError> {
        let mut state = self.state();
        let Some(entry) = state.entries.get(key) else {
            self.counters.miss();
            return Ok(None);
        };
        let slot = entry.slot;
        match ChkBlock::verify(*key, entry.bytes.clone()) {
            Ok(block) => {
                state.touch(*key, slot);
                self.counters.hit(slot.area);
                Ok(Some(block))
            }
            Err(error) => {
                warn!(?key, area = ?slot.area, %error, "dropping corrupt block");
                state.remove(key);
                self.counters.corrupt(slot.area);
                self.counters.miss();
                Ok(None)
            }
        }
    }

    fn contains(&self, key: &RoutingKey) -> Result<bool, StoreError> {
        Ok(self.state().entries.contains_key(key))
    }

    fn put(&self, area: Area, block: &ChkBlock) -> Result<(), StoreError> {
        let key = block.routing_key();
        let mut state = self.state();
        let existing = state.entries.get(&key).map(|e| e.slot);
        match plan_put(existing, area, state.blocks, &self.config) {
            PutPlan::Skip => {}
            PutPlan::Touch(slot) => state.touch(key, slot),
            PutPlan::Place {
                target,
                from,
                evict,
            } => {
                let evicted = state.evict(self.config.eviction, target, evict);
                self.counters.evicted(target, evicted);
                let bytes = match from {
                    Some(_) => state.remove(&key).map(|e| e.bytes),
                    None => None,
                }
                .unwrap_or_else(|| block.as_bytes().to_vec());
                let slot = Slot {
                    area: target,
                    seq: state.next_seq,
                };
                state.next_seq += 1;
                state.lru.insert(slot, key);
                state.entries.insert(key, Entry { slot, bytes });
                state.blocks[target.index()] += 1;
            }
        }
        Ok(())
    }

    fn get_ssk(&self, key: &RoutingKey) -> Result<Option<SskBlock>, StoreError> {
        let mut state = self.state();
        let Some((seq, bytes)) = state.ssk.get(key) else {
            return Ok(None);
        };
        let seq = *seq;
        match SskBlock::verify(*key, bytes.clone()) {
            Ok(block) => Ok(Some(block)),
            Err(error) => {
                warn!(?key, %error, "dropping corrupt SSK block");
                state.ssk.remove(key);
                state.ssk_order.remove(&seq);
                Ok(None)
            }
        }
    }

    fn put_ssk(&self, block: &SskBlock) -> Result<(), StoreError> {
        let key = block.routing_key();
        let capacity = self.config.ssk_capacity();
        let mut state = self.state();
        if capacity == 0 || state.ssk.contains_key(&key) {
            return Ok(());
        }
        while state.ssk.len() as u64 >= capacity {
            let victim = match self.config.eviction {
                Eviction::Lru => state.ssk_order.first_key_value().map(|(_, key)| *key),
                Eviction::Random => {
                    let start = random_start(&mut state.rng);
                    state
                        .ssk
                        .range(start..)
                        .next()
                        .or_else(|| state.ssk.first_key_value())
                        .map(|(key, _)| *key)
                }
            };
            let Some(victim) = victim else { break };
            if let Some((seq, _)) = state.ssk.remove(&victim) {
                state.ssk_order.remove(&seq);
            }
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.ssk.insert(key, (seq, block.as_bytes().to_vec()));
        state.ssk_order.insert(seq, key);
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        let state = self.state();
        let mut stats = self.counters.snapshot(&self.config, state.blocks);
        stats.ssk_blocks = state.ssk.len() as u64;
        stats
    }
}
