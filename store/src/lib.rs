//! Warren's datastore: where a node keeps CHK and SSK blocks, and nothing else.
//!
//! A [`BlockStore`] holds encrypted blocks in two size-bounded areas: the
//! long-term **store** (inserts that ended at this node) and the **cache**
//! (everything that passed through). Each area evicts a block to stay within
//! its byte bound: its least recently used one, or one drawn at random
//! ([`Eviction`]). Every read checks the block against
//! its routing key: a corrupt block is deleted and counted, never returned.
//! [`SledStore`] keeps blocks on disk (bytes in a cell file, index in sled);
//! [`MemoryStore`] is its in-memory twin for fast tests. Both pass one test
//! suite. The store knows nothing of the network, and sees only ciphertext:
//! no decryption key ever reaches it.
//!
//! A `put` is *acknowledged* (durable across a crash) once a later
//! [`BlockStore::flush`] has returned; see `docs/STORE.md`.
//!
//! ```
//! use warren_crypto::ChkBlock;
//! use warren_store::{Area, BlockStore, SledStore, StoreConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let store = SledStore::open(dir.path(), StoreConfig::default())?;
//!
//! let (block, key) = ChkBlock::encode(b"Hello, Warren!")?;
//! store.put(Area::Cache, &block)?;
//! store.flush()?; // from here on the block survives a crash
//!
//! let found = store.get(&key.routing)?.expect("just stored");
//! assert_eq!(found.decode(&key.crypto)?, b"Hello, Warren!");
//! assert_eq!(store.stats().cache.blocks, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cells;
mod config;
mod error;
mod fault;
mod memory;
mod plan;
pub mod record;
mod sled_store;
mod stats;
#[cfg(test)]
mod suite;

pub use config::{
    Eviction, StoreConfig, UnknownEviction, DEFAULT_CACHE_BYTES, DEFAULT_FLUSH_EVERY_MS,
    DEFAULT_MIN_FREE_DISK_BYTES, DEFAULT_SLED_CACHE_BYTES, DEFAULT_STORE_BYTES,
};
pub use error::StoreError;
#[cfg(any(test, feature = "fault-injection"))]
pub use fault::FaultInjector;
pub use fault::FaultPoint;
pub use memory::MemoryStore;
pub use sled_store::{SledStore, CELL_FILE, LOCK_FILE, SLED_DIR, STORE_FORMAT_VERSION};
pub use stats::{AreaStats, StoreStats};
use warren_crypto::{ChkBlock, RoutingKey, SskBlock};

/// Which of the two bounded areas a block lives in.
///
/// A block lives in at most one area. The store wins: a `put` to [`Area::Store`]
/// of a cached block moves it into the store, and a `put` to [`Area::Cache`] of
/// a block already in the store leaves it there (and counts as an access).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Area {
    /// Long-term: inserts for which this node was the sink.
    Store,
    /// Short-term: everything that passed through this node.
    Cache,
}

impl Area {
    /// Both areas, in index order.
    pub const ALL: [Area; 2] = [Area::Store, Area::Cache];

    /// Position in per-area arrays.
    pub(crate) const fn index(self) -> usize {
        match self {
            Area::Store => 0,
            Area::Cache => 1,
        }
    }
}

/// A size-bounded, verified block store with a long-term area and a cache.
///
/// Implementations are safe to share between threads. Every method that can
/// touch the disk returns a typed [`StoreError`]; none panics on bad data.
pub trait BlockStore: Send + Sync + 'static {
    /// Verified read from either area. A hit counts as an access for LRU.
    ///
    /// A block that no longer hashes to `key` is deleted, counted in
    /// `corrupt_dropped`, and reported as absent (`Ok(None)`): never returned.
    fn get(&self, key: &RoutingKey) -> Result<Option<ChkBlock>, StoreError>;

    /// Whether either area holds a block under `key`. Cheap: does not read or
    /// verify the block, so a later `get` may still find it corrupt.
    fn contains(&self, key: &RoutingKey) -> Result<bool, StoreError>;

    /// Stores `block` in `area`, evicting blocks of that area (chosen by the
    /// configured [`Eviction`] policy) to stay within its byte bound.
    /// Idempotent for the same block (a repeat counts as an access). An area
    /// whose capacity is below one block stores nothing. Not durable until [`BlockStore::flush`] returns.
    fn put(&self, area: Area, block: &ChkBlock) -> Result<(), StoreError>;

    /// Verified read of an SSK block (kept apart from CHK blocks, in their own
    /// small keyspace). A block whose signature or routing key no longer
    /// checks is deleted and reported as absent.
    fn get_ssk(&self, key: &RoutingKey) -> Result<Option<SskBlock>, StoreError>;

    /// Stores an SSK block. The first block under a key stays: a `put_ssk` of
    /// another block under a held key changes nothing (the node answers that
    /// insert with a collision). Bounded by [`StoreConfig::ssk_capacity`],
    /// evicting the oldest SSK block first. Durable like `put`.
    fn put_ssk(&self, block: &SskBlock) -> Result<(), StoreError>;

    /// Makes every earlier `put` durable: the "acknowledged" point.
    fn flush(&self) -> Result<(), StoreError>;

    /// Sizes, counts and counters for the status page and metrics.
    fn stats(&self) -> StoreStats;
}
