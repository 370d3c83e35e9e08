//! The cell file: block bytes outside sled, one fixed-size cell per block.
//!
//! Every CHK block is exactly [`BLOCK_LEN`] bytes, so `blocks.dat` is an
//! array of cells: cell `n` starts at byte `n × BLOCK_LEN`. A put writes the
//! block into a free cell with one `pwrite` and then records the cell in
//! sled's `index`; a read is one `pread` (served by the OS page cache, not by
//! the process) and a verification against the routing key. Evicted cells are
//! reused, so the file never needs compaction.
//!
//! Crash rule (see [`CellAllocator`]): a freed cell is reused only after the
//! index change that freed it is durable. So after any crash an index entry
//! can only point at its own block or, for a put that was never acknowledged,
//! at bytes that fail verification (and are then dropped, never served).

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use warren_crypto::BLOCK_LEN;

/// Bytes of one cell.
const CELL_BYTES: u64 = BLOCK_LEN as u64;

/// The open cell file.
#[derive(Debug)]
pub(crate) struct CellFile {
    file: File,
}

impl CellFile {
    /// Opens or creates the cell file at `path`. A new file's directory
    /// entry is made durable at once, so later data syncs cannot lose it.
    pub(crate) fn open(path: &Path) -> io::Result<CellFile> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if !existed {
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        Ok(CellFile { file })
    }

    /// Whole cells in the file (a torn partial cell at the end does not count).
    pub(crate) fn cells(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len() / CELL_BYTES)
    }

    /// The bytes of `cell`; `None` if the file ends before the cell does.
    pub(crate) fn read(&self, cell: u64) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; BLOCK_LEN];
        match self.file.read_exact_at(&mut buf, offset(cell)?) {
            Ok(()) => Ok(Some(buf)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes one block into `cell` (not durable until [`CellFile::sync`]).
    pub(crate) fn write(&self, cell: u64, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() != BLOCK_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a cell holds {BLOCK_LEN} bytes, not {}", bytes.len()),
            ));
        }
        self.file.write_all_at(bytes, offset(cell)?)
    }

    /// Makes every earlier write durable (data and file length).
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Cuts the file to `cells` cells if it is longer (drops unused cells
    /// and any torn partial cell at the end).
    pub(crate) fn cut_to(&self, cells: u64) -> io::Result<()> {
        let len = offset(cells)?;
        if self.file.metadata()?.len() > len {
            self.file.set_len(len)?;
            self.file.sync_all()?;
        }
        Ok(())
    }
}

fn offset(cell: u64) -> io::Result<u64> {
    cell.checked_mul(CELL_BYTES).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cell {cell} is beyond any file"),
        )
    })
}

/// Which cells may be written. Lives under the store's writer mutex.
///
/// - `free`: cells no durable index entry points at: safe to overwrite now.
/// - `pending`: cells freed (evicted, moved away, dropped) since the last
///   flush of the index. A crash could still bring back the entry that
///   pointed at them, so they become `free` only after such a flush.
/// - `end`: cells at or beyond it are unused file space (or beyond the file).
#[derive(Debug, Default)]
pub(crate) struct CellAllocator {
    free: BTreeSet<u64>,
    pending: Vec<u64>,
    end: u64,
}

impl CellAllocator {
    /// An allocator for a file of `end` cells of which `used` are live.
    pub(crate) fn new(end: u64, used: &BTreeSet<u64>) -> CellAllocator {
        CellAllocator {
            free: (0..end).filter(|c| !used.contains(c)).collect(),
            pending: Vec::new(),
            end,
        }
    }

    /// A cell to write a new block into: the lowest free one (keeping the
    /// file compact), else a new one at the end.
    pub(crate) fn take(&mut self) -> u64 {
        if let Some(cell) = self.free.pop_first() {
            return cell;
        }
        self.end += 1;
        self.end - 1
    }

    /// Returns a cell taken by [`CellAllocator::take`] that was never
    /// recorded in the index (its write or commit failed before the index
    /// could name it).
    pub(crate) fn untake(&mut self, cell: u64) {
        self.free.insert(cell);
    }

    /// A cell whose index entry was just removed or repointed.
    pub(crate) fn release(&mut self, cell: u64) {
        self.pending.push(cell);
    }

    /// How many released cells wait for an index flush.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether a new block would have to grow the file.
    pub(crate) fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Takes the released cells a flush starting now will make reusable.
    pub(crate) fn take_pending(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.pending)
    }

    /// After a successful index flush: `cells` (from `take_pending` before
    /// it) are free. After a failed one they go back to pending.
    pub(crate) fn settle(&mut self, cells: Vec<u64>, flushed: bool) {
        if flushed {
            self.free.extend(cells);
        } else {
            self.pending.extend(cells);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_cells_wait_for_a_flush() {
        let used: BTreeSet<u64> = [0, 2].into();
        let mut cells = CellAllocator::new(3, &used);
        assert_eq!(cells.take(), 1);
        assert_eq!(cells.take(), 3);
        cells.release(0);
        // Not reusable before the index flush that made the release durable.
        assert_eq!(cells.take(), 4);
        let flushing = cells.take_pending();
        cells.release(2); // released during the flush: still pending after it
        cells.settle(flushing, true);
        assert_eq!(cells.take(), 0);
        assert_eq!(cells.pending_len(), 1);
        assert!(cells.is_full());
        let failed = cells.take_pending();
        cells.settle(failed, false);
        assert_eq!((cells.pending_len(), cells.take()), (1, 5));
        cells.untake(5);
        assert_eq!(cells.take(), 5);
    }

    #[test]
    fn file_reads_whole_cells_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = CellFile::open(&dir.path().join("cells")).unwrap();
        let block = vec![7u8; BLOCK_LEN];
        file.write(1, &block).unwrap();
        assert_eq!(file.cells().unwrap(), 2);
        assert_eq!(file.read(1).unwrap().unwrap(), block);
        assert_eq!(file.read(0).unwrap().unwrap(), vec![0u8; BLOCK_LEN]);
        assert!(file.read(2).unwrap().is_none());
        assert!(file.read(u64::MAX).is_err());
        assert!(file.write(0, &block[1..]).is_err());
        // A torn last cell is not a cell.
        file.file.set_len(CELL_BYTES + 100).unwrap();
        assert_eq!(file.cells().unwrap(), 1);
        assert!(file.read(1).unwrap().is_none());
        file.cut_to(3).unwrap(); // never grows
        assert_eq!(file.file.metadata().unwrap().len(), CELL_BYTES + 100);
        file.cut_to(0).unwrap();
        assert_eq!(file.cells().unwrap(), 0);
    }
}
