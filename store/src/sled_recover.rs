//! What `SledStore::open` does after the format check: rebuild the counts,
//! the access sequence and the cell allocator from `index`, and repair
//! whatever a crash or damage left behind. Nothing here reads whole blocks
//! except to settle two index entries that claim the same cell.

use std::collections::{BTreeSet, HashMap};

use tracing::{debug, warn};
use warren_crypto::{ChkBlock, RoutingKey};

use super::{SledStore, WriteState};
use crate::cells::CellAllocator;
use crate::plan::excess;
use crate::record::{self, IndexRecord};
use crate::{Area, StoreError};

impl SledStore {
    /// Rebuilds counts, the next sequence and the free cells from `index`;
    /// drops damaged records and entries whose cell the file does not hold
    /// (a put whose bytes never reached the disk); restores missing lru
    /// entries and removes stale ones; trims areas that a smaller
    /// configuration now overfills; cuts unused cells off the file's end.
    /// Ends with a flush, so every repair is durable before any cell is reused.
    pub(super) fn recover(&self) -> Result<(), StoreError> {
        let mut state = self.state();
        let file_cells = self.cells.cells().map_err(|e| self.io_err(e))?;
        let (owners, mut damaged) = self.scan_index(file_cells)?;
        for (key, rec) in owners.values() {
            state.blocks[rec.slot.area.index()] += 1;
            state.next_seq = state.next_seq.max(rec.slot.seq + 1);
            let lru_key = rec.slot.encode();
            if self.lru.get(lru_key).map_err(|e| self.err(e))?.as_deref()
                != Some(&key.as_bytes()[..])
            {
                self.lru
                    .insert(lru_key, &key.as_bytes()[..])
                    .map_err(|e| self.err(e))?;
                damaged += 1;
            }
        }
        damaged += self.remove_stale_lru()?;
        if damaged > 0 {
            warn!(dir = %self.dir.display(), damaged, "repaired store index records");
        }
        let used: BTreeSet<u64> = owners.keys().copied().collect();
        let end = used.last().map_or(0, |last| last + 1);
        self.cells.cut_to(end).map_err(|e| self.io_err(e))?;
        state.cells = CellAllocator::new(end, &used);
        self.trim(&mut state)?;
        let released = state.cells.take_pending();
        self.sync_all()?;
        state.cells.settle(released, true);
        debug!(dir = %self.dir.display(), blocks = ?state.blocks, "store opened");
        Ok(())
    }

    /// Valid index entries by cell, and how many entries were removed.
    #[allow(clippy::type_complexity)]
    fn scan_index(
        &self,
        file_cells: u64,
    ) -> Result<(HashMap<u64, (RoutingKey, IndexRecord)>, u64), StoreError> {
        let mut owners: HashMap<u64, (RoutingKey, IndexRecord)> = HashMap::new();
        let mut damaged = 0u64;
        for item in &self.index {
            let (key, raw) = item.map_err(|e| self.err(e))?;
            let loser = match (record::decode_key(&key), IndexRecord::decode(&raw)) {
                (Ok(rk), Ok(rec)) if rec.cell < file_cells => match owners.get(&rec.cell) {
                    None => {
                        owners.insert(rec.cell, (rk, rec));
                        continue;
                    }
                    // Two entries claim one cell (only a damaged index does
                    // that): keep the one the bytes verify against.
                    Some(&(other, _)) => {
                        let bytes = self.cells.read(rec.cell).map_err(|e| self.io_err(e))?;
                        if bytes.is_some_and(|b| ChkBlock::verify(rk, b).is_ok()) {
                            owners.insert(rec.cell, (rk, rec));
                            other.as_bytes().to_vec()
                        } else {
                            key.to_vec()
                        }
                    }
                },
                _ => key.to_vec(),
            };
            self.index.remove(loser).map_err(|e| self.err(e))?;
            damaged += 1;
        }
        Ok((owners, damaged))
    }

    /// Removes `lru` entries that `index` does not agree with; how many.
    fn remove_stale_lru(&self) -> Result<u64, StoreError> {
        let mut removed = 0;
        for item in &self.lru {
            let (lru_key, raw) = item.map_err(|e| self.err(e))?;
            let live = match record::decode_key(&raw) {
                Ok(rk) => self
                    .read_record(&rk)?
                    .is_some_and(|rec| rec.slot.encode()[..] == lru_key[..]),
                Err(_) => false,
            };
            if !live {
                self.lru.remove(&lru_key).map_err(|e| self.err(e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Evicts what a smaller configuration no longer has room for.
    fn trim(&self, state: &mut WriteState) -> Result<(), StoreError> {
        for area in Area::ALL {
            let n = excess(area, state.blocks, &self.config);
            if n > 0 {
                let victims = self.victims(state, area, n)?;
                self.commit(state, area, &victims, None)?;
            }
        }
        Ok(())
    }
}
