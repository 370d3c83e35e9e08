//! `MemoryStore`: the in-memory twin of `SledStore`, for fast tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing::warn;
use warren_crypto::{ChkBlock, RoutingKey, SskBlock};

use crate::plan::{plan_put, PutPlan};
use crate::record::Slot;
use crate::stats::Counters;
use crate::{Area, BlockStore, StoreConfig, StoreError, StoreStats};

/// A [`BlockStore`] in memory, with the same placement, eviction and
/// verification rules as [`crate::SledStore`]. `flush` has nothing to do.
#[derive(Debug)]
pub struct MemoryStore {
    config: StoreConfig,
    state: Mutex<State>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<RoutingKey, Entry>,
    /// Access order per area: the first entry of an area is its LRU block.
    lru: BTreeMap<Slot, RoutingKey>,
    next_seq: u64,
    blocks: [u64; 2],
    /// SSK blocks by key, with their insertion sequence; oldest evicted first.
    ssk: HashMap<RoutingKey, (u64, Vec<u8>)>,
    ssk_order: BTreeMap<u64, RoutingKey>,
}

#[derive(Debug)]
struct Entry {
    slot: Slot,
    bytes: Vec<u8>,
}

impl MemoryStore {
    pub fn new(config: StoreConfig) -> Self {
        MemoryStore {
            config,
            state: Mutex::new(State::default()),
            counters: Counters::default(),
        }
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

    /// Evicts up to `n` least recently used blocks of `area`; returns how many.
    fn evict(&mut self, area: Area, n: u64) -> u64 {
        let lo = Slot { area, seq: 0 };
        let hi = Slot {
            area,
            seq: u64::MAX,
        };
        let victims: Vec<RoutingKey> = self
            .lru
            .range(lo..=hi)
            .take(n as usize)
            .map(|(_, key)| *key)
            .collect();
        for key in &victims {
            self.remove(key);
        }
        victims.len() as u64
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
                let evicted = state.evict(target, evict);
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
            let Some((_, oldest)) = state.ssk_order.pop_first() else {
                break;
            };
            state.ssk.remove(&oldest);
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
