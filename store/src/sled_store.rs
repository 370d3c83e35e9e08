//! `SledStore`: block bytes in a cell file, their index in sled 0.34.
//!
//! Block bytes live in `blocks.dat` ([`crate::cells`]), one fixed-size cell
//! per block, read through the OS page cache. sled holds only small records
//! (layout in [`crate::record`]): `index` maps a key to its area, access
//! sequence and cell; `lru` orders each area's keys by access sequence; `meta`
//! holds the format version. A put writes the cell first, then the `index`
//! entry, then the `lru` entry, so an index entry never exists before its
//! bytes were written.
//!
//! No sled transactions or batches: in sled 0.34 each one costs about 100 µs
//! at the next flush (measured: 2,048 two-key transactions took 160–240 ms to
//! flush, the same writes as plain inserts under 1 ms). Instead every change
//! is a sequence of single-key writes ordered so that a crash between any two
//! of them leaves only states `open` repairs: an `lru` entry `index` does not
//! agree with (removed), an `index` entry without its `lru` entry (restored),
//! or an area over its bound (trimmed). Writers are serialised by one mutex
//! (which keeps the block counts and the cell allocator exact); reads of
//! block bytes and their verification run outside it.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use fs2::FileExt;
use sled::Tree;
use tracing::warn;
use warren_crypto::{ChkBlock, RoutingKey, SskBlock};

use crate::cells::{CellAllocator, CellFile};
#[cfg(any(test, feature = "fault-injection"))]
use crate::fault::FaultInjector;
use crate::fault::FaultPoint;
use crate::plan::{pick_random, plan_put, random_start, PutPlan};
use crate::record::{self, IndexRecord, Slot, FORMAT_KEY};
use crate::stats::Counters;
use crate::{Area, BlockStore, Eviction, StoreConfig, StoreError, StoreStats};

/// Version of the on-disk layout; a store of another version is refused.
/// Version 1 kept block bytes in a sled tree; version 2 keeps them in
/// [`CELL_FILE`].
pub const STORE_FORMAT_VERSION: u32 = 2;
/// File in the store directory locked while a process has the store open.
pub const LOCK_FILE: &str = "warren-store.lock";
/// Subdirectory holding sled's files.
pub const SLED_DIR: &str = "sled";
/// File in the store directory holding the block bytes, one cell per block.
pub const CELL_FILE: &str = "blocks.dat";

/// How often, and how far apart, to retry sled's lock (see `open_sled`).
const SLED_LOCK_RETRIES: u32 = 40;
const SLED_LOCK_RETRY_DELAY: Duration = Duration::from_millis(25);
/// Freed cells (8 MiB of them) after which a put that would grow the cell
/// file flushes the index instead, so the freed cells can be reused. Bounds
/// the file at capacity plus this many cells for a node that never flushes.
const MAX_PENDING_CELLS: usize = 256;

const TREE_INDEX: &str = "index";
const TREE_LRU: &str = "lru";
const TREE_META: &str = "meta";
/// SSK blocks: key -> insertion sequence (u64 BE) ‖ block bytes. Small
/// (1,185 bytes), so they live in sled itself rather than in cells.
const TREE_SSK: &str = "ssk";
/// SSK insertion order: sequence (u64 BE) -> key, oldest first; rebuilt from
/// `ssk` at open, so a crash between the two writes leaves nothing to repair.
const TREE_SSK_ORDER: &str = "ssk_order";
const SEQ_LEN: usize = 8;

/// A [`BlockStore`] on disk. See the crate docs and `docs/STORE.md`.
pub struct SledStore {
    dir: PathBuf,
    config: StoreConfig,
    db: sled::Db,
    index: Tree,
    lru: Tree,
    ssk: Tree,
    ssk_order: Tree,
    cells: CellFile,
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
    cells: CellAllocator,
    ssk_blocks: u64,
    ssk_next_seq: u64,
    /// Random eviction draws.
    rng: rand::rngs::StdRng,
}

/// An entry chosen for eviction.
struct Victim {
    lru_key: [u8; record::SLOT_LEN],
    /// The block and its cell; `None` if the `lru` entry names no live block
    /// (damaged, or left by an interrupted touch): it is removed, not counted.
    block: Option<(RoutingKey, u64)>,
}

/// A block to place: its key, new index record, and old slot if it moves.
struct Placement {
    key: RoutingKey,
    record: IndexRecord,
    from: Option<Slot>,
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
        let (index, lru, meta) = (tree(TREE_INDEX)?, tree(TREE_LRU)?, tree(TREE_META)?);
        let (ssk, ssk_order) = (tree(TREE_SSK)?, tree(TREE_SSK_ORDER)?);
        let cell_path = dir.join(CELL_FILE);
        let has_cells = fs::metadata(&cell_path).is_ok_and(|m| m.len() > 0);
        check_format(dir, &db, &meta, has_cells)?;
        let cells = CellFile::open(&cell_path).map_err(|e| StoreError::from_io(dir, e))?;
        let rng = config.eviction_rng();
        let store = SledStore {
            dir: dir.to_path_buf(),
            config,
            db,
            index,
            lru,
            ssk,
            ssk_order,
            cells,
            state: Mutex::new(WriteState {
                next_seq: 0,
                blocks: [0; 2],
                cells: CellAllocator::default(),
                ssk_blocks: 0,
                ssk_next_seq: 0,
                rng,
            }),
            counters: Counters::default(),
            #[cfg(any(test, feature = "fault-injection"))]
            faults: FaultInjector::default(),
            _lock: lock,
        };
        store.recover()?;
        store.recover_ssk()?;
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

    /// Test hook: flips one byte of the stored copy of `key` in its cell,
    /// bypassing verification, as bit rot would (idempotent). Returns
    /// whether the block was held.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn corrupt_stored_block(&self, key: &RoutingKey) -> Result<bool, StoreError> {
        let _state = self.state();
        let Some(record) = self.read_record(key)? else {
            return Ok(false);
        };
        let io_err = |e| StoreError::from_io(&self.dir, e);
        let Some(bytes) = self.cells.read(record.cell).map_err(io_err)? else {
            return Ok(false);
        };
        let bytes = record::damage(*key, bytes);
        self.cells.write(record.cell, &bytes).map_err(io_err)?;
        Ok(true)
    }

    /// Rebuilds the SSK order from the SSK tree and trims it to capacity.
    fn recover_ssk(&self) -> Result<(), StoreError> {
        let mut state = self.state();
        self.ssk_order.clear().map_err(|e| self.err(e))?;
        let mut count = 0u64;
        let mut next = 0u64;
        for entry in &self.ssk {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            let seq = value
                .get(..SEQ_LEN)
                .and_then(|s| <[u8; SEQ_LEN]>::try_from(s).ok())
                .map(u64::from_be_bytes);
            let Some(seq) = seq else {
                // Too short to be ours: drop it; `get_ssk` would refuse it anyway.
                self.ssk.remove(&key).map_err(|e| self.err(e))?;
                continue;
            };
            self.ssk_order
                .insert(seq.to_be_bytes(), &*key)
                .map_err(|e| self.err(e))?;
            count += 1;
            next = next.max(seq + 1);
        }
        state.ssk_blocks = count;
        state.ssk_next_seq = next;
        self.trim_ssk(&mut state, self.config.ssk_capacity())
    }

    /// Evicts SSK blocks until at most `keep` remain: the oldest first under
    /// [`Eviction::Lru`], each the first at or after a random key under
    /// [`Eviction::Random`] (as `MemoryStore` does, key for key).
    fn trim_ssk(&self, state: &mut WriteState, keep: u64) -> Result<(), StoreError> {
        while state.ssk_blocks > keep {
            let victim = match self.config.eviction {
                Eviction::Lru => self
                    .ssk_order
                    .pop_min()
                    .map_err(|e| self.err(e))?
                    .map(|(_, key)| key),
                Eviction::Random => {
                    let start = random_start(&mut state.rng);
                    let found = match self
                        .ssk
                        .range::<&[u8], _>(start.as_bytes().as_slice()..)
                        .next()
                    {
                        Some(entry) => Some(entry),
                        None => self.ssk.first().transpose(),
                    };
                    let Some((key, value)) = found.transpose().map_err(|e| self.err(e))? else {
                        break;
                    };
                    if let Some(seq) = value.get(..SEQ_LEN) {
                        self.ssk_order.remove(seq).map_err(|e| self.err(e))?;
                    }
                    Some(key)
                }
            };
            let Some(key) = victim else { break };
            if self.ssk.remove(&key).map_err(|e| self.err(e))?.is_some() {
                state.ssk_blocks -= 1;
            }
        }
        Ok(())
    }

    fn err(&self, error: sled::Error) -> StoreError {
        StoreError::from_sled(&self.dir, error)
    }

    fn io_err(&self, error: std::io::Error) -> StoreError {
        StoreError::from_io(&self.dir, error)
    }

    fn state(&self) -> MutexGuard<'_, WriteState> {
        // Counts are updated only after a successful commit, never mid-panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_record(&self, key: &RoutingKey) -> Result<Option<IndexRecord>, StoreError> {
        let raw = self.index.get(key.as_bytes()).map_err(|e| self.err(e))?;
        Ok(raw.and_then(|raw| IndexRecord::decode(&raw).ok()))
    }

    /// `n` entries of `area` to evict, chosen by the configured policy.
    fn victims(
        &self,
        state: &mut WriteState,
        area: Area,
        n: u64,
    ) -> Result<Vec<Victim>, StoreError> {
        match self.config.eviction {
            Eviction::Lru => self.lru_victims(area, n, &HashSet::new()),
            Eviction::Random => self.random_victims(state, area, n),
        }
    }

    /// The `n` least recently used live entries of `area` that are not in
    /// `chosen`, with the stale `lru` entries before them (which name no
    /// live block and do not count toward `n`).
    fn lru_victims(
        &self,
        area: Area,
        n: u64,
        chosen: &HashSet<RoutingKey>,
    ) -> Result<Vec<Victim>, StoreError> {
        let mut out = Vec::new();
        let mut live = 0;
        if n == 0 {
            return Ok(out);
        }
        for item in self.lru.scan_prefix(record::area_prefix(area)) {
            let (lru_key, raw) = item.map_err(|e| self.err(e))?;
            let Ok(lru_key) = <[u8; record::SLOT_LEN]>::try_from(&lru_key[..]) else {
                continue;
            };
            // Only an entry that `index` agrees with names a block to evict;
            // any other is a leftover of an interrupted touch.
            let block = match record::decode_key(&raw) {
                Ok(key) if chosen.contains(&key) => continue,
                Ok(key) => self
                    .read_record(&key)?
                    .filter(|rec| rec.slot.encode() == lru_key)
                    .map(|rec| (key, rec.cell)),
                Err(_) => None,
            };
            live += u64::from(block.is_some());
            out.push(Victim { lru_key, block });
            if live == n {
                break;
            }
        }
        Ok(out)
    }

    /// `n` distinct entries of `area` drawn at random: each the first block
    /// of the area at or after a random routing key in `index`, wrapping
    /// (see `plan::pick_random`); a draw that finds none near its start takes
    /// the least recently used block instead.
    fn random_victims(
        &self,
        state: &mut WriteState,
        area: Area,
        n: u64,
    ) -> Result<Vec<Victim>, StoreError> {
        let mut out = Vec::new();
        let mut chosen = HashSet::new();
        for _ in 0..n {
            let start = random_start(&mut state.rng);
            let start: &[u8] = start.as_bytes();
            let entries = self
                .index
                .range::<&[u8], _>(start..)
                .chain(self.index.range::<&[u8], _>(..start))
                .map(|item| {
                    item.map(|(key, raw)| {
                        // A damaged record is passed over: `get` drops it.
                        let key = record::decode_key(&key).ok()?;
                        let rec = IndexRecord::decode(&raw).ok()?;
                        Some((key, rec.slot.area, rec))
                    })
                });
            if let Some((key, rec)) =
                pick_random(entries, area, &chosen).map_err(|e| self.err(e))?
            {
                chosen.insert(key);
                out.push(Victim {
                    lru_key: rec.slot.encode(),
                    block: Some((key, rec.cell)),
                });
                continue;
            }
            let fallback = self.lru_victims(area, 1, &chosen)?;
            let found = fallback.iter().find_map(|v| v.block.map(|(key, _)| key));
            out.extend(fallback);
            let Some(key) = found else { break };
            chosen.insert(key);
        }
        Ok(out)
    }

    /// Evicts `victims` from `area`, then records `placement`, as ordered
    /// single-key writes (see the module docs for why not a transaction).
    /// Counts follow `index` write by write, so they stay exact even if a
    /// write fails part-way; a victim's cell is released once its entry is gone.
    fn commit(
        &self,
        state: &mut WriteState,
        area: Area,
        victims: &[Victim],
        placement: Option<&Placement>,
    ) -> Result<(), StoreError> {
        for victim in victims {
            self.lru
                .remove(&victim.lru_key[..])
                .map_err(|e| self.err(e))?;
            if let Some((key, cell)) = victim.block {
                self.index.remove(key.as_bytes()).map_err(|e| self.err(e))?;
                state.blocks[area.index()] -= 1;
                state.cells.release(cell);
                self.counters.evicted(area, 1);
            }
        }
        if let Some(place) = placement {
            let key = &place.key.as_bytes()[..];
            let slot = place.record.slot;
            self.index
                .insert(key, &place.record.encode()[..])
                .map_err(|e| self.err(e))?;
            state.next_seq = state.next_seq.max(slot.seq + 1);
            state.blocks[slot.area.index()] += 1;
            if let Some(old) = place.from {
                state.blocks[old.area.index()] -= 1;
            }
            self.lru
                .insert(&slot.encode()[..], key)
                .map_err(|e| self.err(e))?;
            if let Some(old) = place.from {
                self.lru
                    .remove(&old.encode()[..])
                    .map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }

    /// Moves `key` from `old` to the most recent position of its area.
    ///
    /// Not a transaction (this runs on every read): the three writes are
    /// ordered so a crash between them leaves only an `lru` entry that does
    /// not match `index`, which `recover` removes and `victims` skips.
    fn touch(
        &self,
        state: &mut WriteState,
        key: &RoutingKey,
        old: IndexRecord,
    ) -> Result<(), StoreError> {
        let new = IndexRecord {
            slot: Slot {
                area: old.slot.area,
                seq: state.next_seq,
            },
            cell: old.cell,
        };
        state.next_seq += 1;
        self.lru
            .insert(new.slot.encode(), &key.as_bytes()[..])
            .map_err(|e| self.err(e))?;
        self.index
            .insert(key.as_bytes(), &new.encode()[..])
            .map_err(|e| self.err(e))?;
        self.lru
            .remove(old.slot.encode())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Deletes a block found damaged or missing, if it is still the entry
    /// that was read as `seen` (a concurrent writer may have replaced it).
    /// Counts it.
    fn drop_damaged(
        &self,
        key: &RoutingKey,
        seen: Option<IndexRecord>,
        why: &str,
    ) -> Result<Option<ChkBlock>, StoreError> {
        self.counters.miss();
        let mut state = self.state();
        let current = self.read_record(key)?;
        if current != seen {
            return Ok(None);
        }
        warn!(?key, area = ?seen.map(|s| s.slot.area), why, "dropping corrupt block");
        self.index.remove(key.as_bytes()).map_err(|e| self.err(e))?;
        if let Some(rec) = seen {
            state.blocks[rec.slot.area.index()] -= 1;
            state.cells.release(rec.cell);
            self.counters.corrupt(rec.slot.area);
            self.lru
                .remove(rec.slot.encode())
                .map_err(|e| self.err(e))?;
        }
        Ok(None)
    }

    /// A cell for a new block. Prefers reusing freed cells over growing the
    /// file: if only unflushed releases are left, flushes the index first.
    fn new_cell(&self, state: &mut WriteState) -> Result<u64, StoreError> {
        if state.cells.is_full() && state.cells.pending_len() >= MAX_PENDING_CELLS {
            let released = state.cells.take_pending();
            let flushed = self.db.flush();
            state.cells.settle(released, flushed.is_ok());
            flushed.map_err(|e| self.err(e))?;
        }
        Ok(state.cells.take())
    }

    /// Writes a new block into a fresh cell and records it, evicting first.
    fn place_new(
        &self,
        state: &mut WriteState,
        block: &ChkBlock,
        target: Area,
        victims: &[Victim],
    ) -> Result<(), StoreError> {
        self.check_free_space()?;
        let cell = self.new_cell(state)?;
        let written = self.check_fault(FaultPoint::BlockWrite).and_then(|()| {
            self.cells
                .write(cell, block.as_bytes())
                .map_err(|e| self.io_err(e))
        });
        if let Err(error) = written {
            // Nothing names the cell: it can be reused at once.
            state.cells.untake(cell);
            return Err(error);
        }
        let place = Placement {
            key: block.routing_key(),
            record: IndexRecord {
                slot: Slot {
                    area: target,
                    seq: state.next_seq,
                },
                cell,
            },
            from: None,
        };
        // If the commit fails, the cell is left unused until the next open
        // rebuilds the allocator: safer than guessing whether sled kept it.
        self.commit(state, target, victims, Some(&place))
    }

    /// Reads `key`'s cell, verifies it, and counts the access.
    fn read_verified(
        &self,
        key: &RoutingKey,
        record: IndexRecord,
    ) -> Result<Option<ChkBlock>, StoreError> {
        self.check_fault(FaultPoint::BlockRead)?;
        let Some(bytes) = self.cells.read(record.cell).map_err(|e| self.io_err(e))? else {
            return self.drop_damaged(key, Some(record), "block bytes missing");
        };
        match ChkBlock::verify(*key, bytes) {
            Ok(block) => {
                self.counters.hit(record.slot.area);
                let mut state = self.state();
                // Re-read under the lock: a writer may have moved or evicted it.
                if let Some(current) = self.read_record(key)? {
                    self.touch(&mut state, key, current)?;
                }
                Ok(Some(block))
            }
            Err(error) => self.drop_damaged(key, Some(record), &error.to_string()),
        }
    }

    /// Makes the cell file and then the index durable.
    fn sync_all(&self) -> Result<(), StoreError> {
        self.check_fault(FaultPoint::BlockSync)?;
        self.cells.sync().map_err(|e| self.io_err(e))?;
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Refuses a new block while the file system is below its free-space
    /// reserve (see `StoreConfig::min_free_disk_bytes`).
    fn check_free_space(&self) -> Result<(), StoreError> {
        let free = fs2::available_space(&self.dir).map_err(|e| self.io_err(e))?;
        if free < self.config.min_free_disk_bytes {
            return Err(StoreError::DiskFull {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    #[cfg(any(test, feature = "fault-injection"))]
    fn check_fault(&self, point: FaultPoint) -> Result<(), StoreError> {
        self.faults.check(point).map_err(|e| self.io_err(e))
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
        match IndexRecord::decode(&raw) {
            Ok(record) => self.read_verified(key, record),
            Err(_) => self.drop_damaged(key, None, "damaged index record"),
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
        let existing = self.read_record(&key)?;
        let plan = plan_put(existing.map(|r| r.slot), area, state.blocks, &self.config);
        match (plan, existing) {
            (PutPlan::Touch(_), Some(record)) => self.touch(&mut state, &key, record),
            // plan_put touches only existing blocks.
            (PutPlan::Skip | PutPlan::Touch(_), _) => Ok(()),
            (
                PutPlan::Place {
                    target,
                    from,
                    evict,
                },
                existing,
            ) => {
                let victims = self.victims(&mut state, target, evict)?;
                match existing {
                    None => self.place_new(&mut state, block, target, &victims),
                    // A move between areas keeps its cell.
                    Some(record) => {
                        let place = Placement {
                            key,
                            record: IndexRecord {
                                slot: Slot {
                                    area: target,
                                    seq: state.next_seq,
                                },
                                cell: record.cell,
                            },
                            from,
                        };
                        self.commit(&mut state, target, &victims, Some(&place))
                    }
                }
            }
        }
    }

    fn get_ssk(&self, key: &RoutingKey) -> Result<Option<SskBlock>, StoreError> {
        self.check_fault(FaultPoint::Read)?;
        let Some(raw) = self.ssk.get(key.as_bytes()).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let bytes = raw.get(SEQ_LEN..).map(<[u8]>::to_vec).unwrap_or_default();
        match SskBlock::verify(*key, bytes) {
            Ok(block) => Ok(Some(block)),
            Err(error) => {
                warn!(?key, %error, "dropping corrupt SSK block");
                let mut state = self.state();
                if self
                    .ssk
                    .remove(key.as_bytes())
                    .map_err(|e| self.err(e))?
                    .is_some()
                {
                    state.ssk_blocks = state.ssk_blocks.saturating_sub(1);
                }
                if let Some(seq) = raw.get(..SEQ_LEN) {
                    self.ssk_order.remove(seq).map_err(|e| self.err(e))?;
                }
                Ok(None)
            }
        }
    }

    fn put_ssk(&self, block: &SskBlock) -> Result<(), StoreError> {
        self.check_fault(FaultPoint::Write)?;
        let key = block.routing_key();
        let capacity = self.config.ssk_capacity();
        let mut state = self.state();
        if capacity == 0
            || self
                .ssk
                .contains_key(key.as_bytes())
                .map_err(|e| self.err(e))?
        {
            return Ok(());
        }
        self.check_free_space()?;
        self.trim_ssk(&mut state, capacity - 1)?;
        let seq = state.ssk_next_seq;
        let mut value = Vec::with_capacity(SEQ_LEN + block.as_bytes().len());
        value.extend_from_slice(&seq.to_be_bytes());
        value.extend_from_slice(block.as_bytes());
        // The block first, then its order entry (rebuilt at open anyway).
        self.ssk
            .insert(key.as_bytes(), value)
            .map_err(|e| self.err(e))?;
        self.ssk_order
            .insert(seq.to_be_bytes(), &key.as_bytes()[..])
            .map_err(|e| self.err(e))?;
        state.ssk_next_seq += 1;
        state.ssk_blocks += 1;
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.check_fault(FaultPoint::Flush)?;
        // Cells released before this flush become reusable once it succeeds.
        let released = self.state().cells.take_pending();
        let result = self.sync_all();
        self.state().cells.settle(released, result.is_ok());
        result
    }

    fn stats(&self) -> StoreStats {
        let state = self.state();
        let mut stats = self.counters.snapshot(&self.config, state.blocks);
        stats.ssk_blocks = state.ssk_blocks;
        stats
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // Best effort: a clean shutdown loses nothing even without `flush()`.
        if let Err(error) = self.cells.sync() {
            warn!(dir = %self.dir.display(), %error, "syncing blocks on close failed");
        }
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

/// Checks the format marker, writing it into a brand-new store. "Data" is
/// any non-empty sled tree (version 1 kept blocks in one) or cell file.
fn check_format(dir: &Path, db: &sled::Db, meta: &Tree, has_cells: bool) -> Result<(), StoreError> {
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
    let mut has_data = has_cells;
    for name in db.tree_names() {
        has_data |= !db.open_tree(name).map_err(sled_err)?.is_empty();
    }
    if has_data {
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

#[path = "sled_recover.rs"]
mod recover;
