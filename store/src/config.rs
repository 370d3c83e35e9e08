//! Store configuration and its defaults.

use warren_crypto::{BLOCK_LEN, SSK_BLOCK_LEN};

use crate::Area;

/// Default byte bound of the long-term store area.
pub const DEFAULT_STORE_BYTES: u64 = 1 << 30;
/// Default byte bound of the cache area.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;
/// Default size of sled's page cache. Small, so an idle node stays well under
/// 50 MB resident; reads of cold blocks go to the OS page cache instead.
pub const DEFAULT_SLED_CACHE_BYTES: u64 = 8 << 20;
/// Default period of sled's background flush. Bounds how much unflushed work a
/// crash can lose even if the node forgets to call `flush`.
pub const DEFAULT_FLUSH_EVERY_MS: Option<u64> = Some(1000);

/// Default free space the disk store leaves on its file system: writes that
/// would go below it fail with `StoreError::DiskFull` instead of reaching the
/// engine. sled 0.34 does not recover from a real ENOSPC (its flush waits
/// forever), so the store must stop short of one. Covers sled's write
/// amplification and buffered segments with a wide margin.
pub const DEFAULT_MIN_FREE_DISK_BYTES: u64 = 64 << 20;

/// How big each area may grow and how the disk store behaves.
///
/// Byte bounds count block bytes (every block is [`BLOCK_LEN`] bytes); the
/// engine's own overhead on disk comes on top (see `docs/STORE.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Byte bound of the long-term store area.
    pub store_bytes: u64,
    /// Byte bound of the cache area.
    pub cache_bytes: u64,
    /// sled's page cache size in bytes (ignored by `MemoryStore`).
    pub sled_cache_bytes: u64,
    /// sled's background flush period; `None` flushes only on `flush()` and
    /// drop (ignored by `MemoryStore`).
    pub flush_every_ms: Option<u64>,
    /// New blocks are refused with `StoreError::DiskFull` while the file
    /// system has less free space than this (ignored by `MemoryStore`).
    pub min_free_disk_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            store_bytes: DEFAULT_STORE_BYTES,
            cache_bytes: DEFAULT_CACHE_BYTES,
            sled_cache_bytes: DEFAULT_SLED_CACHE_BYTES,
            flush_every_ms: DEFAULT_FLUSH_EVERY_MS,
            min_free_disk_bytes: DEFAULT_MIN_FREE_DISK_BYTES,
        }
    }
}

impl StoreConfig {
    /// The configured byte bound of `area`.
    pub fn capacity_bytes(&self, area: Area) -> u64 {
        match area {
            Area::Store => self.store_bytes,
            Area::Cache => self.cache_bytes,
        }
    }

    /// How many SSK blocks the store keeps: a sixty-fourth of both areas'
    /// bytes (SSK blocks are small pointers; 28,000 of them by default).
    pub fn ssk_capacity(&self) -> u64 {
        self.store_bytes.saturating_add(self.cache_bytes) / 64 / SSK_BLOCK_LEN as u64
    }

    /// How many whole blocks fit in `area`.
    pub fn capacity_blocks(&self, area: Area) -> u64 {
        self.capacity_bytes(area) / BLOCK_LEN as u64
    }
}
