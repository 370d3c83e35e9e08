//! Tests of what only the disk store has: files, formats, locks, IO errors.

use std::path::Path;
use std::process::Command;

use warren_crypto::{ChkBlock, BLOCK_LEN};

use super::*;
use crate::suite::{blocks, config_blocks};

fn raw_sled(dir: &Path) -> sled::Db {
    open_sled(dir, &StoreConfig::default()).unwrap()
}

/// Every byte of every file under `dir`.
fn all_file_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_file_bytes(&path));
        } else {
            out.extend(fs::read(&path).unwrap());
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn only_ciphertext_reaches_the_disk() {
    const MARKER: &[u8] = b"WARREN-PLAINTEXT-MARKER-7f3a9c";
    let dir = tempfile::tempdir().unwrap();
    let mut document = Vec::new();
    while document.len() + MARKER.len() < 20_000 {
        document.extend_from_slice(MARKER);
    }
    let (block, key) = ChkBlock::encode(&document).unwrap();
    {
        let store = SledStore::open(dir.path(), StoreConfig::default()).unwrap();
        store.put(Area::Store, &block).unwrap();
        store.flush().unwrap();
    }
    let disk = all_file_bytes(dir.path());
    // The scan can see stored bytes: the ciphertext itself is there...
    assert!(find(&disk, &block.as_bytes()[1000..1064]));
    // ...but neither the plaintext nor the key that decrypts it.
    assert!(!find(&disk, MARKER));
    assert!(!find(&disk, key.crypto.as_bytes()));
}

#[test]
fn unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SledStore::open(dir.path(), StoreConfig::default()).unwrap());
    {
        let db = raw_sled(dir.path());
        let meta = db.open_tree(TREE_META).unwrap();
        meta.insert(FORMAT_KEY, &(STORE_FORMAT_VERSION + 1).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let err = SledStore::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownFormat { found, supported, .. }
            if found == STORE_FORMAT_VERSION + 1 && supported == STORE_FORMAT_VERSION),
        "{err}"
    );
    assert!(err.to_string().contains("format version 3"));
}

/// A version 1 store (blocks inside sled) is refused with a clear error and
/// left as it was.
#[test]
fn version_1_store_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = raw_sled(dir.path());
        db.open_tree(TREE_META)
            .unwrap()
            .insert(FORMAT_KEY, &1u32.to_be_bytes())
            .unwrap();
        db.open_tree("blocks")
            .unwrap()
            .insert([7u8; 32], vec![0u8; BLOCK_LEN])
            .unwrap();
        db.flush().unwrap();
    }
    let err = SledStore::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::UnknownFormat {
                found: 1,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("move the directory aside"));
    assert!(!dir.path().join(CELL_FILE).exists());
    let db = raw_sled(dir.path());
    assert_eq!(db.open_tree("blocks").unwrap().len(), 1);
}

#[test]
fn data_without_format_marker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = raw_sled(dir.path());
        db.open_tree("blocks").unwrap().insert(b"k", b"v").unwrap();
        db.flush().unwrap();
    }
    let err = SledStore::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::MissingFormat { .. }), "{err}");

    // A cell file without a marked index is not a store either.
    let other = tempfile::tempdir().unwrap();
    fs::write(other.path().join(CELL_FILE), vec![1u8; BLOCK_LEN]).unwrap();
    let err = SledStore::open(other.path(), StoreConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::MissingFormat { .. }), "{err}");
}

#[test]
fn second_open_is_locked_and_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let (block, key) = ChkBlock::encode(b"held").unwrap();
    let first = SledStore::open(dir.path(), StoreConfig::default()).unwrap();
    first.put(Area::Store, &block).unwrap();
    first.flush().unwrap();
    let err = SledStore::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("in use by another process"));
    assert!(first.get(&key.routing).unwrap().is_some());
    drop(first);
    let again = SledStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert!(again.get(&key.routing).unwrap().is_some());
}

/// `chmod 0500` does not stop root, so an unwritable directory is shown with
/// a path under a regular file (ENOTDIR) and with an injected EACCES below.
#[test]
fn path_under_a_regular_file_is_an_access_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let err = SledStore::open(&file.join("store"), StoreConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::Access { .. }), "{err}");
    assert!(err.to_string().contains("not-a-dir"));
}

#[test]
fn injected_write_and_flush_errors_are_typed_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = blocks(3);
    let store = SledStore::open(dir.path(), StoreConfig::default()).unwrap();
    store.put(Area::Store, &b[0].0).unwrap();
    store.flush().unwrap();

    store.faults().fail(FaultPoint::Write, libc::ENOSPC, 1);
    let err = store.put(Area::Store, &b[1].0).unwrap_err();
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err}");
    store.faults().fail(FaultPoint::Flush, libc::EACCES, 1);
    let err = store.flush().unwrap_err();
    assert!(matches!(err, StoreError::Access { .. }), "{err}");
    store.faults().fail(FaultPoint::Read, libc::EIO, 1);
    assert!(matches!(
        store.get(&b[0].1.routing),
        Err(StoreError::Io { .. })
    ));

    // Counts stay exact and the store works once the fault clears.
    assert_eq!(store.stats().store.blocks, 1);
    store.put(Area::Store, &b[2].0).unwrap();
    store.flush().unwrap();
    drop(store);
    let store = SledStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert!(store.get(&b[0].1.routing).unwrap().is_some());
    assert!(store.get(&b[2].1.routing).unwrap().is_some());
    assert!(!store.contains(&b[1].1.routing).unwrap());
}

#[test]
fn injected_cell_file_errors_are_typed_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = blocks(4);
    let store = SledStore::open(dir.path(), config_blocks(8, 0)).unwrap();
    store.put(Area::Store, &b[0].0).unwrap();
    store.flush().unwrap();

    // A failed cell write records nothing, and its cell is reused.
    store.faults().fail(FaultPoint::BlockWrite, libc::ENOSPC, 1);
    let err = store.put(Area::Store, &b[1].0).unwrap_err();
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err}");
    assert!(!store.contains(&b[1].1.routing).unwrap());
    store.put(Area::Store, &b[2].0).unwrap();
    assert_eq!(store.read_record(&b[2].1.routing).unwrap().unwrap().cell, 1);

    // A failed sync fails the flush; a retry acknowledges everything.
    store.faults().fail(FaultPoint::BlockSync, libc::EIO, 1);
    assert!(matches!(store.flush(), Err(StoreError::Io { .. })));
    store.flush().unwrap();

    store.faults().fail(FaultPoint::BlockRead, libc::EIO, 1);
    assert!(matches!(
        store.get(&b[0].1.routing),
        Err(StoreError::Io { .. })
    ));
    let st = store.stats();
    assert_eq!((st.store.blocks, st.store.corrupt_dropped), (2, 0));
    drop(store);
    let store = SledStore::open(dir.path(), config_blocks(8, 0)).unwrap();
    assert!(store.get(&b[0].1.routing).unwrap().is_some());
    assert!(store.get(&b[2].1.routing).unwrap().is_some());
    assert!(!store.contains(&b[1].1.routing).unwrap());
}

fn cell_of(store: &SledStore, key: &warren_crypto::RoutingKey) -> u64 {
    store.read_record(key).unwrap().unwrap().cell
}

fn cell_file_cells(dir: &Path) -> u64 {
    fs::metadata(dir.join(CELL_FILE)).unwrap().len() / BLOCK_LEN as u64
}

/// The crash rule: a cell freed by an eviction is not overwritten until the
/// index change that freed it has been flushed. After the flush it is.
#[test]
fn evicted_cells_are_reused_only_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let b = blocks(4);
    let store = SledStore::open(dir.path(), config_blocks(0, 1)).unwrap();
    store.put(Area::Cache, &b[0].0).unwrap();
    store.flush().unwrap();
    let first = cell_of(&store, &b[0].1.routing);
    store.put(Area::Cache, &b[1].0).unwrap(); // evicts 0, whose entry may still be on disk
    let second = cell_of(&store, &b[1].1.routing);
    assert_ne!(second, first);
    store.flush().unwrap();
    store.put(Area::Cache, &b[2].0).unwrap(); // evicts 1
    assert_eq!(cell_of(&store, &b[2].1.routing), first);
    assert_eq!(store.cells.read(first).unwrap().unwrap(), b[2].0.as_bytes());
    store.flush().unwrap();
    store.put(Area::Cache, &b[3].0).unwrap();
    assert_eq!(cell_of(&store, &b[3].1.routing), second);
    assert_eq!(cell_file_cells(dir.path()), 2);
    assert_eq!(store.stats().cache.evictions, 3);
}

/// A node that never flushes still reuses cells: past `MAX_PENDING_CELLS`
/// released cells a put flushes the index rather than grow the file.
#[test]
fn the_cell_file_stays_bounded_without_flushes() {
    const CAPACITY: u64 = 4;
    let dir = tempfile::tempdir().unwrap();
    let b = blocks(MAX_PENDING_CELLS * 2 + 40);
    let store = SledStore::open(dir.path(), config_blocks(0, CAPACITY)).unwrap();
    for (block, _) in &b {
        store.put(Area::Cache, block).unwrap();
    }
    let cells = cell_file_cells(dir.path());
    assert!(
        cells <= CAPACITY + MAX_PENDING_CELLS as u64 + 1,
        "{cells} cells"
    );
    for (_, key) in &b[b.len() - CAPACITY as usize..] {
        assert!(store.get(&key.routing).unwrap().is_some());
    }
    // Reopening cuts the unused cells off the end of the file.
    drop(store);
    let store = SledStore::open(dir.path(), config_blocks(0, CAPACITY)).unwrap();
    let held: Vec<u64> = b[b.len() - CAPACITY as usize..]
        .iter()
        .map(|(_, k)| cell_of(&store, &k.routing))
        .collect();
    assert_eq!(cell_file_cells(dir.path()), held.iter().max().unwrap() + 1);
}

/// Index entries that point past the end of the cell file (bytes that never
/// reached the disk) are dropped at open; one pointing at wrong bytes is
/// dropped at its first read, never served; two entries claiming one cell
/// keep the one whose bytes verify.
#[test]
fn index_entries_without_their_bytes_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let b = blocks(5);
    {
        let store = SledStore::open(dir.path(), config_blocks(8, 0)).unwrap();
        for (block, _) in &b[..3] {
            store.put(Area::Store, block).unwrap();
        }
    }
    {
        let db = raw_sled(dir.path());
        let index = db.open_tree(TREE_INDEX).unwrap();
        let lru = db.open_tree(TREE_LRU).unwrap();
        let entry = |cell, seq| IndexRecord {
            slot: Slot {
                area: Area::Store,
                seq,
            },
            cell,
        };
        // b[3] past the end; b[4] in b[0]'s cell (bytes are b[0]'s): a
        // damaged duplicate claim, resolved in b[0]'s favour.
        for (i, rec) in [(3, entry(40, 50)), (4, entry(0, 51))] {
            index
                .insert(b[i].1.routing.as_bytes(), &rec.encode()[..])
                .unwrap();
            lru.insert(rec.slot.encode(), &b[i].1.routing.as_bytes()[..])
                .unwrap();
        }
        // b[1]'s cell is overwritten with b[2]'s bytes (a torn reuse).
        let cells = CellFile::open(&dir.path().join(CELL_FILE)).unwrap();
        cells.write(1, b[2].0.as_bytes()).unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(dir.path(), config_blocks(8, 0)).unwrap();
    assert_eq!(store.stats().store.blocks, 3);
    assert!(!store.contains(&b[3].1.routing).unwrap());
    assert!(!store.contains(&b[4].1.routing).unwrap());
    assert_eq!(store.get(&b[0].1.routing).unwrap().unwrap(), b[0].0);
    assert!(store.get(&b[1].1.routing).unwrap().is_none());
    assert_eq!(store.get(&b[2].1.routing).unwrap().unwrap(), b[2].0);
    let st = store.stats();
    assert_eq!((st.store.blocks, st.store.corrupt_dropped), (2, 1));
    assert_eq!(store.lru.len(), 2);
}

/// The environment variable that lets the tests needing root (to mount a
/// tmpfs) skip, loudly, where they cannot mount; without it they fail.
const SKIP_ROOT_TESTS_VAR: &str = "WARREN_SKIP_ROOT_TESTS";

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// A tmpfs of `bytes`. A mount that fails fails the test, saying why,
    /// unless `WARREN_SKIP_ROOT_TESTS` is set: then `None`, with a message.
    fn mount(bytes: u64) -> Option<Tmpfs> {
        const NEEDS: &str = "needs root to mount a tmpfs; run as root or set \
                             WARREN_SKIP_ROOT_TESTS=1 to skip explicitly";
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output();
        let why = match out {
            Ok(out) if out.status.success() => return Some(Tmpfs(dir)),
            Ok(out) => format!(
                "mount said: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => format!("cannot run mount: {e}"),
        };
        assert!(
            std::env::var_os(SKIP_ROOT_TESTS_VAR).is_some(),
            "the real full-disk test {NEEDS} ({why})"
        );
        eprintln!("{SKIP_ROOT_TESTS_VAR} is set: the real full-disk test was skipped ({why})");
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// A real full file system (a small tmpfs). The free-space reserve turns it
/// into `DiskFull` before sled meets ENOSPC in a flush (which sled 0.34 does
/// not survive: the flush then waits forever). Reads on the full disk give a
/// block or a typed error. Once the operator frees space (the ballast), a
/// reopen finds every flushed block.
#[test]
fn real_full_disk_is_typed_and_loses_nothing_flushed() {
    const FS_BYTES: u64 = 64 << 20;
    const BALLAST_BYTES: usize = 16 << 20;
    const RESERVE_BYTES: u64 = 16 << 20;
    let Some(fs) = Tmpfs::mount(FS_BYTES) else {
        return;
    };
    let ballast = fs.0.path().join("ballast");
    fs::write(&ballast, vec![1u8; BALLAST_BYTES]).unwrap();
    let dir = fs.0.path().join("store");
    let config = StoreConfig {
        min_free_disk_bytes: RESERVE_BYTES,
        ..StoreConfig::default()
    };
    let all = blocks(FS_BYTES as usize / BLOCK_LEN);
    let mut flushed = Vec::new();
    let store = SledStore::open(&dir, config.clone()).unwrap();
    let mut error = None;
    for (block, key) in &all {
        if let Err(e) = store.put(Area::Store, block).and_then(|()| store.flush()) {
            error = Some(e);
            break;
        }
        flushed.push(key.routing);
    }
    let error = error.expect("a 64 MiB disk cannot hold 64 MiB of blocks and a ballast");
    assert!(matches!(error, StoreError::DiskFull { .. }), "{error}");
    assert!(error.to_string().contains("free space"));
    assert!(flushed.len() > 100, "only {} blocks fit", flushed.len());
    let more = store.put(Area::Store, &all[flushed.len()].0).unwrap_err();
    assert!(matches!(more, StoreError::DiskFull { .. }), "{more}");
    for key in &flushed[..10] {
        match store.get(key) {
            Ok(found) => assert!(found.is_some()),
            Err(e) => assert!(matches!(e, StoreError::DiskFull { .. }), "{e}"),
        }
    }
    drop(store);

    fs::remove_file(&ballast).unwrap();
    let store = SledStore::open(&dir, config).unwrap();
    for key in &flushed {
        assert!(store.get(key).unwrap().is_some(), "lost flushed {key:?}");
    }
}

#[test]
fn damaged_index_records_are_repaired_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let b = blocks(3);
    {
        let store = SledStore::open(dir.path(), config_blocks(4, 4)).unwrap();
        for (block, _) in &b {
            store.put(Area::Cache, block).unwrap();
        }
    }
    {
        let db = raw_sled(dir.path());
        let index = db.open_tree(TREE_INDEX).unwrap();
        let lru = db.open_tree(TREE_LRU).unwrap();
        // A torn index record, and a stale lru entry pointing at a live key.
        index
            .insert(b[0].1.routing.as_bytes(), &[9u8, 9][..])
            .unwrap();
        let stale = Slot {
            area: Area::Cache,
            seq: 999,
        };
        lru.insert(stale.encode(), &b[1].1.routing.as_bytes()[..])
            .unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(dir.path(), config_blocks(4, 4)).unwrap();
    assert_eq!(store.stats().cache.blocks, 2);
    assert!(!store.contains(&b[0].1.routing).unwrap());
    assert!(store.get(&b[1].1.routing).unwrap().is_some());
    assert_eq!(store.lru.len(), 2);
}

/// Random draws walk `index`: records damaged while the store is open are
/// passed over (never evicted blindly, never an error), the bound holds, and
/// the next open repairs the counts.
#[test]
fn random_eviction_passes_over_damaged_index_records() {
    const CACHE: u64 = 6;
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        eviction: crate::Eviction::Random,
        eviction_seed: Some(3),
        ..config_blocks(0, CACHE)
    };
    let b = blocks(40);
    let store = SledStore::open(dir.path(), config.clone()).unwrap();
    for (block, _) in &b[..CACHE as usize] {
        store.put(Area::Cache, block).unwrap();
    }
    for (_, key) in &b[..2] {
        store
            .index
            .insert(key.routing.as_bytes(), &[9u8, 9][..])
            .unwrap();
    }
    for (block, key) in &b[CACHE as usize..] {
        store.put(Area::Cache, block).unwrap();
        assert!(store.stats().cache.blocks <= CACHE);
        assert!(store.contains(&key.routing).unwrap());
    }
    // The damaged two were never drawn, so they still hold two places.
    for (_, key) in &b[..2] {
        assert!(store.contains(&key.routing).unwrap());
    }
    assert!(store.get(&b[0].1.routing).unwrap().is_none());
    drop(store);
    let store = SledStore::open(dir.path(), config).unwrap();
    assert_eq!(store.stats().cache.blocks, CACHE - 2);
    assert!(!store.contains(&b[1].1.routing).unwrap());
    assert_eq!(store.lru.len() as u64, CACHE - 2);
}

/// Blocks damaged on disk (bytes flipped inside their cells) are found at
/// their first read: never served, counted in `corrupt_dropped`, and deleted,
/// so they stay gone after a reopen; every other block is served intact.
#[test]
fn damaged_cells_are_dropped_counted_and_deleted() {
    const BLOCKS: usize = 20;
    const DAMAGED: [usize; 3] = [3, 7, 11];
    const FLIP_OFFSET: usize = BLOCK_LEN / 2;
    let dir = tempfile::tempdir().unwrap();
    let b = blocks(BLOCKS);
    let cells: Vec<u64> = {
        let store = SledStore::open(dir.path(), StoreConfig::default()).unwrap();
        for (block, _) in &b {
            store.put(Area::Store, block).unwrap();
        }
        store.flush().unwrap();
        b.iter().map(|(_, k)| cell_of(&store, &k.routing)).collect()
    };
    {
        let file = dir.path().join(CELL_FILE);
        let mut bytes = fs::read(&file).unwrap();
        for i in DAMAGED {
            bytes[cells[i] as usize * BLOCK_LEN + FLIP_OFFSET] ^= 0x55;
        }
        fs::write(&file, bytes).unwrap();
    }
    let store = SledStore::open(dir.path(), StoreConfig::default()).unwrap();
    // Opening reads no whole blocks: the damage is found by the reads.
    assert_eq!(store.stats().store.blocks, BLOCKS as u64);
    for (i, (block, key)) in b.iter().enumerate() {
        let got = store.get(&key.routing).unwrap();
        if DAMAGED.contains(&i) {
            assert_eq!(got, None, "damaged block {i} was served");
            assert!(!store.contains(&key.routing).unwrap(), "block {i} kept");
        } else {
            assert_eq!(got.as_ref(), Some(block), "intact block {i}");
        }
    }
    let st = store.stats();
    let intact = (BLOCKS - DAMAGED.len()) as u64;
    assert_eq!(
        (st.store.corrupt_dropped, st.store.blocks, st.misses),
        (DAMAGED.len() as u64, intact, DAMAGED.len() as u64)
    );
    store.flush().unwrap();
    drop(store);
    let store = SledStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(store.stats().store.blocks, intact);
    for (i, (_, key)) in b.iter().enumerate() {
        assert_eq!(store.contains(&key.routing).unwrap(), !DAMAGED.contains(&i));
    }
}

/// Puts `BLOCKS` blocks into a new store at `dir`, then flips one byte of
/// sled's log at `at` (a fraction of its length, in percent).
fn damage_sled_log(dir: &Path, blocks: &[(ChkBlock, warren_crypto::ChkKey)], at_percent: usize) {
    {
        let store = SledStore::open(dir, StoreConfig::default()).unwrap();
        for (block, _) in blocks {
            store.put(Area::Store, block).unwrap();
        }
    }
    let file = dir.join(SLED_DIR).join("db");
    let mut bytes = fs::read(&file).unwrap();
    let at = bytes.len() * at_percent / 100;
    bytes[at] ^= 0x55;
    fs::write(&file, bytes).unwrap();
}

/// sled reads its log up to the first damaged record and drops the rest as
/// a torn write. Damage near the start loses the format marker: the store
/// is refused as `MissingFormat` (never re-created empty over the blocks),
/// again at a second try, and the cell file is left byte for byte.
#[test]
fn damage_early_in_the_sled_log_refuses_the_store_untouched() {
    const EARLY_PERCENT: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    damage_sled_log(dir.path(), &blocks(20), EARLY_PERCENT);
    let cells_before = fs::read(dir.path().join(CELL_FILE)).unwrap();
    for attempt in 0..2 {
        let err = SledStore::open(dir.path(), StoreConfig::default()).unwrap_err();
        assert!(
            matches!(err, StoreError::MissingFormat { .. }),
            "attempt {attempt}: {err}"
        );
    }
    assert_eq!(fs::read(dir.path().join(CELL_FILE)).unwrap(), cells_before);
}

/// Damage near the end of the log loses the entries written last: the store
/// opens, every read succeeds, each block is served byte for byte or is
/// absent (never another block's bytes, never an error), the counts agree
/// with what is served, and some entries were lost (the damage hit them).
#[test]
fn damage_late_in_the_sled_log_loses_whole_entries_only() {
    const BLOCKS: usize = 20;
    const LATE_PERCENT: usize = 97;
    let dir = tempfile::tempdir().unwrap();
    let b = blocks(BLOCKS);
    damage_sled_log(dir.path(), &b, LATE_PERCENT);
    let store = SledStore::open(dir.path(), StoreConfig::default()).unwrap();
    let mut served = 0u64;
    for (i, (block, key)) in b.iter().enumerate() {
        match store.get(&key.routing).unwrap() {
            Some(got) => {
                assert_eq!(&got, block, "block {i}");
                served += 1;
            }
            None => assert!(!store.contains(&key.routing).unwrap(), "block {i}"),
        }
    }
    let st = store.stats();
    assert_eq!((st.store.blocks, st.store.corrupt_dropped), (served, 0));
    assert!(
        served > 0 && served < BLOCKS as u64,
        "{served} of {BLOCKS} served: the damage was expected to cost the last entries only"
    );
}
