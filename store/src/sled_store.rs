//! `SledStore`: blocks on disk in sled 0.34.
//!
//! Four trees (layout in [`crate::record`]): `blocks` holds the ciphertext,
//! `index` maps a key to its area and access sequence, `lru` orders each
//! area's keys by access sequence, `meta` holds the format version. Every
//! change that spans trees is one sled transaction, so a crash leaves all
//! three in step. Writers are serialised by one mutex (which keeps the block
//! counts exact and transactions free of conflicts); reads of block bytes and
//! their verification run outside it.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use fs2::FileExt;
use sled::transaction::{ConflictableTransactionResult, TransactionError};
use sled::{Transactional, Tree};
use tracing::{debug, warn};
use warren_crypto::{ChkBlock, RoutingKey};

#[cfg(any(test, feature = "fault-injection"))]
use crate::fault::FaultInjector;
use crate::fault::FaultPoint;
use crate::plan::{excess, plan_put, PutPlan};
use crate::record::{self, Slot, FORMAT_KEY};
use crate::stats::Counters;
use crate::{Area, BlockStore, StoreConfig, StoreError, StoreStats};

/// Version of the on-disk layout; a store of another version is refused.
pub const STORE_FORMAT_VERSION: u32 = 1;
/// File in the store directory locked while a process has the store open.
pub const LOCK_FILE: &str = "warren-store.lock";
/// Subdirectory holding sled's files.
pub const SLED_DIR: &str = "sled";

/// How often, and how far apart, to retry sled's lock (see `open_sled`).
const SLED_LOCK_RETRIES: u32 = 40;
const SLED_LOCK_RETRY_DELAY: Duration = Duration::from_millis(25);

const TREE_BLOCKS: &str = "blocks";
const TREE_INDEX: &str = "index";
const TREE_LRU: &str = "lru";
const TREE_META: &str = "meta";

/// A [`BlockStore`] on disk. See the crate docs and `docs/STORE.md`.
pub struct SledStore {
    dir: PathBuf,
    config: StoreConfig,
    db: sled::Db,
    blocks: Tree,
    index: Tree,
    lru: Tree,
    state: Mutex<WriteState>,
    counters: Counters,
    #[cfg(any(test, feature = "fault-injection"))]
    faults: FaultInjector,
    /// Held (locked) for the store's lifetime; dropped last.
    _lock: File,
}

/// What writers change together, under the mutex.
#[derive(Debug)]
struct WriteState {
    next_seq: u64,
    blocks: [u64; 2],
}

/// A least recently used entry chosen for eviction.
struct Victim {
    lru_key: [u8; record::SLOT_LEN],
    /// `None` if the `lru` value was damaged: the entry is removed, not counted.
    key: Option<RoutingKey>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // sled's own Debug would print every entry.
        f.debug_struct("SledStore")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`.
    ///
    /// Fails with [`StoreError::Locked`] if another process has it open,
    /// [`StoreError::UnknownFormat`] for a store of another version, and
    /// [`StoreError::Access`] if `dir` cannot be created or written.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::from_io(dir, e))?;
        let lock = lock_dir(dir)?;
        let sled_err = |e| StoreError::from_sled(dir, e);
        let db = open_sled(dir, &config).map_err(sled_err)?;
        let tree = |name: &str| db.open_tree(name).map_err(sled_err);
        let (blocks, index, lru, meta) = (
            tree(TREE_BLOCKS)?,
            tree(TREE_INDEX)?,
            tree(TREE_LRU)?,
            tree(TREE_META)?,
        );
        check_format(dir, &db, &meta, &[&blocks, &index, &lru])?;
        let store = SledStore {
            dir: dir.to_path_buf(),
            config,
            db,
            blocks,
            index,
            lru,
            state: Mutex::new(WriteState {
                next_seq: 0,
                blocks: [0; 2],
            }),
            counters: Counters::default(),
            #[cfg(any(test, feature = "fault-injection"))]
            faults: FaultInjector::default(),
            _lock: lock,
        };
        store.recover()?;
        Ok(store)
    }

    /// The directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fault hooks for tests.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn faults(&self) -> &FaultInjector {
        &self.faults
    }

    /// Test hook: flips one byte of the stored copy of `key` through the
    /// engine, bypassing verification, as bit rot would (idempotent). Returns
    /// whether the block was held.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn corrupt_stored_block(&self, key: &RoutingKey) -> Result<bool, StoreError> {
        let _state = self.state();
        let Some(bytes) = self.blocks.get(key.as_bytes()).map_err(|e| self.err(e))? else {
            return Ok(false);
        };
        let bytes = record::damage(*key, bytes.to_vec());
        self.blocks
            .insert(key.as_bytes(), bytes)
            .map_err(|e| self.err(e))?;
        Ok(true)
    }

    fn err(&self, error: sled::Error) -> StoreError {
        StoreError::from_sled(&self.dir, error)
    }

    fn tx_err(&self, error: TransactionError<()>) -> StoreError {
        match error {
            TransactionError::Storage(e) => self.err(e),
            TransactionError::Abort(()) => StoreError::Engine {
                path: self.dir.clone(),
                detail: "transaction aborted".into(),
            },
        }
    }

    fn state(&self) -> MutexGuard<'_, WriteState> {
        // Counts are updated only after a successful commit, never mid-panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_slot(&self, key: &RoutingKey) -> Result<Option<Slot>, StoreError> {
        let raw = self.index.get(key.as_bytes()).map_err(|e| self.err(e))?;
        Ok(raw.and_then(|raw| Slot::decode(&raw).ok()))
    }

    /// Rebuilds counts and the next sequence from `index`, drops damaged
    /// index/lru records, restores missing lru entries, and trims areas that
    /// a smaller configuration now overfills.
    fn recover(&self) -> Result<(), StoreError> {
        let mut state = self.state();
        let mut damaged = 0u64;
        for item in &self.index {
            let (key, raw) = item.map_err(|e| self.err(e))?;
            let (Ok(rk), Ok(slot)) = (record::decode_key(&key), Slot::decode(&raw)) else {
                self.index.remove(&key).map_err(|e| self.err(e))?;
                damaged += 1;
                continue;
            };
            state.blocks[slot.area.index()] += 1;
            state.next_seq = state.next_seq.max(slot.seq + 1);
            let lru_key = slot.encode();
            if self.lru.get(lru_key).map_err(|e| self.err(e))?.as_deref()
                != Some(&rk.as_bytes()[..])
            {
                self.lru
                    .insert(lru_key, &rk.as_bytes()[..])
                    .map_err(|e| self.err(e))?;
                damaged += 1;
            }
        }
        for item in &self.lru {
            let (lru_key, raw) = item.map_err(|e| self.err(e))?;
            let live = match record::decode_key(&raw) {
                Ok(rk) => self
                    .read_slot(&rk)?
                    .is_some_and(|slot| slot.encode()[..] == lru_key[..]),
                Err(_) => false,
            };
            if !live {
                self.lru.remove(&lru_key).map_err(|e| self.err(e))?;
                damaged += 1;
            }
        }
        if damaged > 0 {
            warn!(dir = %self.dir.display(), damaged, "repaired store index records");
        }
        for area in Area::ALL {
            let n = excess(area, state.blocks, &self.config);
            if n > 0 {
                let victims = self.victims(area, n)?;
                self.commit(&mut state, area, &victims, None)?;
            }
        }
        debug!(dir = %self.dir.display(), blocks = ?state.blocks, "store opened");
        Ok(())
    }

    /// The `n` least recently used entries of `area`.
    fn victims(&self, area: Area, n: u64) -> Result<Vec<Victim>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .lru
            .scan_prefix(record::area_prefix(area))
            .take(n as usize)
        {
            let (lru_key, raw) = item.map_err(|e| self.err(e))?;
            let Ok(lru_key) = <[u8; record::SLOT_LEN]>::try_from(&lru_key[..]) else {
                continue;
            };
            // Only an entry that `index` agrees with names a block to evict;
            // any other is a leftover of an interrupted touch.
            let key = match record::decode_key(&raw) {
                Ok(key) => self
                    .read_slot(&key)?
                    .filter(|slot| slot.encode() == lru_key)
                    .map(|_| key),
                Err(_) => None,
            };
            out.push(Victim { lru_key, key });
        }
        Ok(out)
    }

    /// One transaction: evict `victims` from `area`, then place `placement`
    /// (key, new slot, old slot if moving, bytes if new). Updates counts after.
    fn commit(
        &self,
        state: &mut WriteState,
        area: Area,
        victims: &[Victim],
        placement: Option<(RoutingKey, Slot, Option<Slot>, &[u8])>,
    ) -> Result<(), StoreError> {
        (&self.blocks, &self.index, &self.lru)
            .transaction(
                |(blocks, index, lru)| -> ConflictableTransactionResult<(), ()> {
                    for victim in victims {
                        lru.remove(&victim.lru_key[..])?;
                        if let Some(key) = victim.key {
                            blocks.remove(&key.as_bytes()[..])?;
                            index.remove(&key.as_bytes()[..])?;
                        }
                    }
                    if let Some((key, slot, from, bytes)) = placement {
                        match from {
                            Some(old) => {
                                lru.remove(&old.encode()[..])?;
                            }
                            None => {
                                blocks.insert(&key.as_bytes()[..], bytes)?;
                            }
                        }
                        index.insert(&key.as_bytes()[..], &slot.encode()[..])?;
                        lru.insert(&slot.encode()[..], &key.as_bytes()[..])?;
                    }
                    Ok(())
                },
            )
            .map_err(|e| self.tx_err(e))?;
        let evicted = victims.iter().filter(|v| v.key.is_some()).count() as u64;
        state.blocks[area.index()] -= evicted;
        self.counters.evicted(area, evicted);
        if let Some((_, slot, from, _)) = placement {
            state.next_seq = state.next_seq.max(slot.seq + 1);
            state.blocks[slot.area.index()] += 1;
            if let Some(old) = from {
                state.blocks[old.area.index()] -= 1;
            }
        }
        Ok(())
    }

    /// Moves `key` from `old` to the most recent position of its area.
    ///
    /// Not a transaction (this runs on every read): the three writes are
    /// ordered so a crash between them leaves only an `lru` entry that does
    /// not match `index`, which `recover` removes and `victims` skips.
    fn touch(&self, state: &mut WriteState, key: &RoutingKey, old: Slot) -> Result<(), StoreError> {
        let new = Slot {
            area: old.area,
            seq: state.next_seq,
        };
        state.next_seq += 1;
        self.lru
            .insert(new.encode(), &key.as_bytes()[..])
            .map_err(|e| self.err(e))?;
        self.index
            .insert(key.as_bytes(), &new.encode()[..])
            .map_err(|e| self.err(e))?;
        self.lru.remove(old.encode()).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Deletes a block found damaged, if it is still the entry that was read
    /// at `seen` (a concurrent writer may have replaced it). Counts it.
    fn drop_damaged(
        &self,
        key: &RoutingKey,
        seen: Option<Slot>,
        why: &str,
    ) -> Result<Option<ChkBlock>, StoreError> {
        warn!(?key, area = ?seen.map(|s| s.area), why, "dropping corrupt block");
        self.counters.miss();
        let mut state = self.state();
        let current = self.read_slot(key)?;
        if current != seen {
            return Ok(None);
        }
        (&self.blocks, &self.index, &self.lru)
            .transaction(
                |(blocks, index, lru)| -> ConflictableTransactionResult<(), ()> {
                    blocks.remove(&key.as_bytes()[..])?;
                    index.remove(&key.as_bytes()[..])?;
                    if let Some(slot) = seen {
                        lru.remove(&slot.encode()[..])?;
                    }
                    Ok(())
                },
            )
            .map_err(|e| self.tx_err(e))?;
        if let Some(slot) = seen {
            state.blocks[slot.area.index()] -= 1;
            self.counters.corrupt(slot.area);
        }
        Ok(None)
    }

    /// Refuses a new block while the file system is below its free-space
    /// reserve (see `StoreConfig::min_free_disk_bytes`).
    fn check_free_space(&self) -> Result<(), StoreError> {
        let free =
            fs2::available_space(&self.dir).map_err(|e| StoreError::from_io(&self.dir, e))?;
        if free < self.config.min_free_disk_bytes {
            return Err(StoreError::DiskFull {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    #[cfg(any(test, feature = "fault-injection"))]
    fn check_fault(&self, point: FaultPoint) -> Result<(), StoreError> {
        self.faults
            .check(point)
            .map_err(|e| StoreError::from_io(&self.dir, e))
    }

    #[cfg(not(any(test, feature = "fault-injection")))]
    #[allow(clippy::unnecessary_wraps, clippy::unused_self)]
    #[inline]
    fn check_fault(&self, _point: FaultPoint) -> Result<(), StoreError> {
        Ok(())
    }
}

impl BlockStore for SledStore {
    fn get(&self, key: &RoutingKey) -> Result<Option<ChkBlock>, StoreError> {
        self.check_fault(FaultPoint::Read)?;
        let Some(raw) = self.index.get(key.as_bytes()).map_err(|e| self.err(e))? else {
            self.counters.miss();
            return Ok(None);
        };
        let Ok(slot) = Slot::decode(&raw) else {
            return self.drop_damaged(key, None, "damaged index record");
        };
        let bytes = match self.blocks.get(key.as_bytes()) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return self.drop_damaged(key, Some(slot), "block missing"),
            Err(sled::Error::Corruption { .. }) => {
                return self.drop_damaged(key, Some(slot), "engine checksum mismatch")
            }
            Err(e) => return Err(self.err(e)),
        };
        match ChkBlock::verify(*key, bytes.to_vec()) {
            Ok(block) => {
                self.counters.hit(slot.area);
                let mut state = self.state();
                // Re-read under the lock: a writer may have moved or evicted it.
                if let Some(current) = self.read_slot(key)? {
                    self.touch(&mut state, key, current)?;
                }
                Ok(Some(block))
            }
            Err(error) => self.drop_damaged(key, Some(slot), &error.to_string()),
        }
    }

    fn contains(&self, key: &RoutingKey) -> Result<bool, StoreError> {
        self.index
            .contains_key(key.as_bytes())
            .map_err(|e| self.err(e))
    }

    fn put(&self, area: Area, block: &ChkBlock) -> Result<(), StoreError> {
        self.check_fault(FaultPoint::Write)?;
        let key = block.routing_key();
        let mut state = self.state();
        let existing = self.read_slot(&key)?;
        match plan_put(existing, area, state.blocks, &self.config) {
            PutPlan::Skip => Ok(()),
            PutPlan::Touch(slot) => self.touch(&mut state, &key, slot),
            PutPlan::Place {
                target,
                from,
                evict,
            } => {
                if from.is_none() {
                    self.check_free_space()?;
                }
                let victims = self.victims(target, evict)?;
                let slot = Slot {
                    area: target,
                    seq: state.next_seq,
                };
                let placement = (key, slot, from, block.as_bytes());
                self.commit(&mut state, target, &victims, Some(placement))
            }
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.check_fault(FaultPoint::Flush)?;
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        let blocks = self.state().blocks;
        self.counters.snapshot(&self.config, blocks)
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // Best effort: a clean shutdown loses nothing even without `flush()`.
        if let Err(error) = self.db.flush() {
            warn!(dir = %self.dir.display(), %error, "flush on close failed");
        }
    }
}

/// Opens sled, waiting out a previous instance in this process that is still
/// shutting down: sled's background threads can hold its file lock for a
/// moment after the last handle drops. Holding our own lock already proves no
/// other process has the store, so a lock failure here can only be that.
fn open_sled(dir: &Path, config: &StoreConfig) -> sled::Result<sled::Db> {
    let mut attempts = 0;
    loop {
        let result = sled::Config::new()
            .path(dir.join(SLED_DIR))
            .cache_capacity(config.sled_cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(config.flush_every_ms)
            .open();
        match result {
            // sled 0.34 reports its lock only through this message.
            Err(sled::Error::Io(e))
                if attempts < SLED_LOCK_RETRIES
                    && e.to_string().contains("could not acquire lock") =>
            {
                attempts += 1;
                std::thread::sleep(SLED_LOCK_RETRY_DELAY);
            }
            other => return other,
        }
    }
}

/// Takes the directory lock, so a second process gets a clear error before
/// sled is touched.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::from_io(dir, e))?;
    match file.try_lock_exclusive() {
        Ok(()) => Ok(file),
        Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => {
            Err(StoreError::Locked {
                path: dir.to_path_buf(),
            })
        }
        Err(e) => Err(StoreError::from_io(dir, e)),
    }
}

/// Checks the format marker, writing it into a brand-new store.
fn check_format(dir: &Path, db: &sled::Db, meta: &Tree, data: &[&Tree]) -> Result<(), StoreError> {
    let sled_err = |e| StoreError::from_sled(dir, e);
    if let Some(raw) = meta.get(FORMAT_KEY).map_err(sled_err)? {
        let found = record::decode_format(&raw).map_err(|e| StoreError::Corrupt {
            path: dir.to_path_buf(),
            detail: format!("format record: {e}"),
        })?;
        if found != STORE_FORMAT_VERSION {
            return Err(StoreError::UnknownFormat {
                path: dir.to_path_buf(),
                found,
                supported: STORE_FORMAT_VERSION,
            });
        }
        return Ok(());
    }
    if !meta.is_empty() || data.iter().any(|t| !t.is_empty()) {
        return Err(StoreError::MissingFormat {
            path: dir.to_path_buf(),
        });
    }
    meta.insert(FORMAT_KEY, &STORE_FORMAT_VERSION.to_be_bytes())
        .map_err(sled_err)?;
    db.flush().map_err(sled_err)?;
    Ok(())
}

#[cfg(test)]
#[path = "sled_store_tests.rs"]
mod tests;
