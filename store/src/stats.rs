//! Counters for the status page and metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use warren_crypto::BLOCK_LEN;

use crate::{Area, Eviction, StoreConfig};

/// One area's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AreaStats {
    /// Block bytes held (blocks × `BLOCK_LEN`).
    pub bytes: u64,
    /// Blocks held.
    pub blocks: u64,
    /// Configured byte bound.
    pub capacity_bytes: u64,
    /// Verified reads served from this area since open.
    pub hits: u64,
    /// Blocks evicted from this area to make room since open.
    pub evictions: u64,
    /// Blocks found corrupt in this area, deleted and not served, since open.
    pub corrupt_dropped: u64,
}

/// Both areas' figures plus misses (a miss belongs to no area).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub store: AreaStats,
    pub cache: AreaStats,
    /// Reads that found no valid block since open (corrupt ones included).
    pub misses: u64,
    /// SSK blocks held (their own keyspace, see `StoreConfig::ssk_capacity`).
    pub ssk_blocks: u64,
    /// The eviction policy the store runs with.
    pub eviction: Eviction,
}

impl StoreStats {
    /// The figures of `area`.
    pub fn area(&self, area: Area) -> &AreaStats {
        match area {
            Area::Store => &self.store,
            Area::Cache => &self.cache,
        }
    }
}

/// Event counters shared by both implementations; block counts live with
/// each implementation's write state.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: [AtomicU64; 2],
    evictions: [AtomicU64; 2],
    corrupt: [AtomicU64; 2],
    misses: AtomicU64,
}

impl Counters {
    pub(crate) fn hit(&self, area: Area) {
        self.hits[area.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn evicted(&self, area: Area, n: u64) {
        self.evictions[area.index()].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn corrupt(&self, area: Area) {
        self.corrupt[area.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot, given the current block count of each area.
    pub(crate) fn snapshot(&self, config: &StoreConfig, blocks: [u64; 2]) -> StoreStats {
        let area = |a: Area| {
            let i = a.index();
            AreaStats {
                bytes: blocks[i] * BLOCK_LEN as u64,
                blocks: blocks[i],
                capacity_bytes: config.capacity_bytes(a),
                hits: self.hits[i].load(Ordering::Relaxed),
                evictions: self.evictions[i].load(Ordering::Relaxed),
                corrupt_dropped: self.corrupt[i].load(Ordering::Relaxed),
            }
        };
        StoreStats {
            store: area(Area::Store),
            cache: area(Area::Cache),
            misses: self.misses.load(Ordering::Relaxed),
            ssk_blocks: 0,
            eviction: config.eviction,
        }
    }
}
