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

/// How a full area chooses the block to give up for a new one.
///
/// Both policies keep the same records (the `lru` access order is maintained
/// under either), so a store can be reopened with the other policy at any
/// time. See `docs/STORE.md` "Areas and eviction" for the measurements that
/// chose the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Eviction {
    /// The least recently used block of the area (a verified `get` and a
    /// repeated `put` count as uses).
    Lru,
    /// A block of the area drawn at random, as Fred's datastore replaces: the
    /// first block at or after a random routing key (wrapping), which is
    /// close to uniform but not exactly (see `docs/STORE.md`). The default:
    /// in the soak it kept more of the older documents fetchable than LRU
    /// did, for the same capacity.
    #[default]
    Random,
}

impl Eviction {
    /// Both policies, in the order their names are listed.
    pub const ALL: [Eviction; 2] = [Eviction::Lru, Eviction::Random];

    /// The policy's name in configuration files and flags.
    pub const fn name(self) -> &'static str {
        match self {
            Eviction::Lru => "lru",
            Eviction::Random => "random",
        }
    }
}

impl std::fmt::Display for Eviction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A policy name that is neither `lru` nor `random`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown eviction policy {0:?}: expected \"lru\" or \"random\"")]
pub struct UnknownEviction(pub String);

impl std::str::FromStr for Eviction {
    type Err = UnknownEviction;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Eviction::ALL
            .into_iter()
            .find(|policy| policy.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownEviction(text.to_string()))
    }
}

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
    /// Which block a full area gives up for a new one.
    pub eviction: Eviction,
    /// Seed of the random eviction draws; `None` seeds from the operating
    /// system. Tests set it so random eviction is reproducible; a node leaves
    /// it unset (a predictable victim would let an attacker aim its inserts).
    pub eviction_seed: Option<u64>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            store_bytes: DEFAULT_STORE_BYTES,
            cache_bytes: DEFAULT_CACHE_BYTES,
            sled_cache_bytes: DEFAULT_SLED_CACHE_BYTES,
            flush_every_ms: DEFAULT_FLUSH_EVERY_MS,
            min_free_disk_bytes: DEFAULT_MIN_FREE_DISK_BYTES,
            eviction: Eviction::default(),
            eviction_seed: None,
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

    /// How many SSK blocks the store keeps: a sixteenth of both areas' bytes
    /// (113,000 by default). Every document stores up to 6 root-copy
    /// pointers beside its blocks (`warren_crypto::copies`), 2 % of the bytes
    /// of a small splitfile; a sixty-fourth let them fill it and go before
    /// the blocks they point to, oldest first and a document's together,
    /// taking the copies of its root with them.
    pub fn ssk_capacity(&self) -> u64 {
        self.store_bytes.saturating_add(self.cache_bytes) / 16 / SSK_BLOCK_LEN as u64
    }

    /// The generator of random eviction draws this configuration asks for.
    pub(crate) fn eviction_rng(&self) -> rand::rngs::StdRng {
        use rand::SeedableRng as _;
        match self.eviction_seed {
            Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
            None => rand::rngs::StdRng::from_entropy(),
        }
    }

    /// How many whole blocks fit in `area`.
    pub fn capacity_blocks(&self, area: Area) -> u64 {
        self.capacity_bytes(area) / BLOCK_LEN as u64
    }
}
