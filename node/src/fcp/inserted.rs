//! The blocks a `Persistence=forever` upload has inserted so far, kept in
//! the data directory so the upload, started again after a restart, does
//! not insert them twice.
//!
//! `<data dir>/fcp-inserts/<keyed hash of the request's name>`: an
//! append-only log of fixed-size frames, each sealed by the queue's
//! [`Vault`] and bound to its request and its place in the log (a frame
//! moved, swapped or taken from another log does not open). A frame lists
//! up to [`FRAME_ENTRIES`] confirmed blocks as (file, block index, routing
//! key): the file's number in the request (0 for a single file), the
//! block's place in the encoder's output, and its key. CHK encoding is
//! deterministic, so the same content encodes to the same blocks in the
//! same order; a resumed upload skips each block whose (file, index) is
//! listed with the same key, and fails if the key differs (the content
//! changed since).
//!
//! A frame is written once its block insert was confirmed, so a lost frame
//! only means blocks inserted again. Reading it back: a partial frame at
//! the end (a crash mid-write) is dropped; any frame that does not open or
//! does not parse, or a log larger than [`MAX_FRAMES`] frames, means the
//! whole log is ignored and everything is inserted again.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use warren_crypto::metadata::MAX_SPLITFILE_KEYS;

use super::blocks::request_name;
use super::queue::RequestKey;
use super::vault::Vault;

/// The directory of insert logs, in the data directory.
pub const INSERTS_DIR: &str = "fcp-inserts";
/// What a frame is bound to, besides its request and place.
const SEALED_CONTEXT: &[u8] = b"warren-fcp-inserted-v1";
/// Confirmed blocks per frame.
pub(super) const FRAME_ENTRIES: usize = 64;
/// File number, block index, routing key.
const ENTRY_LEN: usize = 4 + 4 + 32;
/// A frame's plaintext: the number of entries used, then the entries.
const PLAIN_LEN: usize = 2 + FRAME_ENTRIES * ENTRY_LEN;
/// A frame on disk: the vault's format byte, nonce and tag around it.
pub(super) const FRAME_LEN: usize = 1 + 12 + PLAIN_LEN + 16;
/// Frames kept at most: one largest splitfile's blocks (past that, blocks
/// are inserted but not recorded, so a resume inserts them again).
pub(super) const MAX_FRAMES: usize = MAX_SPLITFILE_KEYS / FRAME_ENTRIES;
/// A partly filled frame is written after this long, so a slow insert
/// still records its progress.
const FLUSH_AFTER: Duration = Duration::from_secs(1);

/// One confirmed block: which file of the request, where in its encoding.
pub(super) type Place = (u32, u32);

/// What a resumed upload knows of a block at one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// Not confirmed before: insert it.
    New,
    /// Confirmed with this very key: skip it.
    Inserted,
    /// Confirmed with another key: the content changed.
    Changed,
}

/// One request's insert log: what it held when opened, and a writer.
#[derive(Debug)]
pub(super) struct InsertLog {
    path: PathBuf,
    name: Vec<u8>,
    vault: Arc<Vault>,
    /// What was confirmed before this run (read once when opened).
    before: HashMap<Place, [u8; 32]>,
    /// Confirmed in this run, not yet written.
    pending: Vec<(Place, [u8; 32])>,
    /// Frames in the file.
    frames: u64,
    file: Option<std::fs::File>,
    last_flush: Instant,
}

impl InsertLog {
    /// Opens the log of `key`'s request, reading what it holds (nothing if
    /// there is none, or if it is damaged: then it is started over).
    pub(super) fn open(data_dir: &Path, vault: Arc<Vault>, key: &RequestKey) -> InsertLog {
        let name = request_name(key);
        let path = data_dir
            .join(INSERTS_DIR)
            .join(vault.name("inserted", &name));
        let mut log = InsertLog {
            path,
            name,
            vault,
            before: HashMap::new(),
            pending: Vec::new(),
            frames: 0,
            file: None,
            last_flush: Instant::now(),
        };
        match log.read() {
            Ok(Some((before, frames))) => {
                log.before = before;
                log.frames = frames;
            }
            Ok(None) => {}
            Err(why) => {
                tracing::warn!(%why, "an upload's record of inserted blocks is damaged; its blocks are inserted again");
            }
        }
        log
    }

    /// Where the log of `key`'s request is (to remove it).
    pub(super) fn path_of(data_dir: &Path, vault: &Vault, key: &RequestKey) -> PathBuf {
        data_dir
            .join(INSERTS_DIR)
            .join(vault.name("inserted", &request_name(key)))
    }

    fn context(&self, frame: u64) -> Vec<u8> {
        [SEALED_CONTEXT, &frame.to_be_bytes(), &self.name].concat()
    }

    /// The entries and whole frames on disk; `None` if there is no log.
    #[allow(clippy::type_complexity)]
    fn read(&self) -> Result<Option<(HashMap<Place, [u8; 32]>, u64)>, String> {
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.to_string()),
        };
        let max = (MAX_FRAMES * FRAME_LEN) as u64;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        if len > max {
            return Err(format!("{len} bytes, more than {max}"));
        }
        let mut bytes = Vec::new();
        file.take(max)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        let mut entries = HashMap::new();
        // A partial last frame is a write cut short: left out.
        let frames = bytes.chunks_exact(FRAME_LEN);
        let count = frames.len() as u64;
        for (n, sealed) in frames.enumerate() {
            let plain = self
                .vault
                .open_sealed(&self.context(n as u64), sealed)
                .map_err(|_| format!("frame {n} does not open"))?;
            for (place, key) in parse_frame(&plain).ok_or(format!("frame {n} is malformed"))? {
                if entries.insert(place, key).is_some_and(|old| old != key) {
                    return Err(format!("frame {n} contradicts an earlier one"));
                }
            }
        }
        Ok(Some((entries, count)))
    }

    /// What was confirmed at `place` before this run.
    pub(super) fn seen(&self, place: Place, key: &[u8; 32]) -> Seen {
        match self.before.get(&place) {
            None => Seen::New,
            Some(k) if k == key => Seen::Inserted,
            Some(_) => Seen::Changed,
        }
    }

    /// Blocks confirmed before this run.
    pub(super) fn inserted_before(&self) -> usize {
        self.before.len()
    }

    /// Notes a confirmed insert; writes a frame when one is full or the
    /// last was written a while ago.
    pub(super) fn confirmed(&mut self, place: Place, key: [u8; 32]) {
        self.pending.push((place, key));
        if self.pending.len() >= FRAME_ENTRIES || self.last_flush.elapsed() >= FLUSH_AFTER {
            self.flush();
        }
    }

    /// Writes what is pending (a frame at a time). A failure to write stops
    /// the recording: the blocks not recorded are inserted again on resume.
    pub(super) fn flush(&mut self) {
        self.last_flush = Instant::now();
        while !self.pending.is_empty() {
            if self.frames >= MAX_FRAMES as u64 {
                self.pending.clear();
                return;
            }
            let take = self.pending.len().min(FRAME_ENTRIES);
            let entries: Vec<_> = self.pending.drain(..take).collect();
            let sealed = self
                .vault
                .seal(&self.context(self.frames), &frame_plain(&entries));
            if let Err(err) = self.append(&sealed) {
                tracing::debug!(%err, "cannot record inserted blocks; a resumed upload inserts them again");
                self.pending.clear();
                self.frames = MAX_FRAMES as u64;
                return;
            }
            self.frames += 1;
        }
    }

    fn append(&mut self, frame: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(&self.path)?;
            // Cut off a partial frame (or, for a damaged log, everything:
            // then `frames` is 0) so new frames land on frame boundaries.
            file.set_len(self.frames * FRAME_LEN as u64)?;
            self.file = Some(file);
        }
        let Some(file) = self.file.as_mut() else {
            return Err(std::io::Error::other("no log file"));
        };
        std::io::Seek::seek(
            file,
            std::io::SeekFrom::Start(self.frames * FRAME_LEN as u64),
        )?;
        file.write_all(frame)
    }

    /// Forgets the log (the upload has its outcome). What is pending is
    /// dropped, not written (the file, once made, stays open until then, so
    /// a late write never makes it again).
    pub(super) async fn remove(mut self) {
        self.pending.clear();
        self.file = None;
        Self::remove_at(&self.path).await;
    }

    /// Removes the log at `path` (a request removed while not running).
    pub(super) async fn remove_at(path: &Path) {
        let _ = tokio::fs::remove_file(path).await;
    }

    #[cfg(test)]
    fn path(&self) -> &Path {
        &self.path
    }
}

fn frame_plain(entries: &[(Place, [u8; 32])]) -> zeroize::Zeroizing<Vec<u8>> {
    let mut plain = zeroize::Zeroizing::new(Vec::with_capacity(PLAIN_LEN));
    plain.extend_from_slice(&(entries.len() as u16).to_be_bytes());
    for ((file, index), key) in entries {
        plain.extend_from_slice(&file.to_be_bytes());
        plain.extend_from_slice(&index.to_be_bytes());
        plain.extend_from_slice(key);
    }
    // Fixed-size frames: a frame boundary is always a multiple of FRAME_LEN.
    plain.resize(PLAIN_LEN, 0);
    plain
}

fn parse_frame(plain: &[u8]) -> Option<Vec<(Place, [u8; 32])>> {
    if plain.len() != PLAIN_LEN {
        return None;
    }
    let count = usize::from(u16::from_be_bytes([plain[0], plain[1]]));
    if count == 0 || count > FRAME_ENTRIES {
        return None;
    }
    plain[2..]
        .chunks_exact(ENTRY_LEN)
        .take(count)
        .map(|entry| {
            let file = u32::from_be_bytes(entry[0..4].try_into().ok()?);
            let index = u32::from_be_bytes(entry[4..8].try_into().ok()?);
            let key: [u8; 32] = entry[8..40].try_into().ok()?;
            Some(((file, index), key))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::queue::Owner;
    use super::*;

    fn request(identifier: &str) -> RequestKey {
        RequestKey {
            owner: Owner::Client("uploader".into()),
            identifier: identifier.into(),
        }
    }

    fn key(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn confirmed_blocks_come_back_and_a_changed_key_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(Vault::ephemeral());
        let mut log = InsertLog::open(dir.path(), Arc::clone(&vault), &request("up"));
        assert_eq!(log.inserted_before(), 0);
        for i in 0..100u32 {
            log.confirmed((0, i), key(i as u8));
        }
        log.flush();
        drop(log);
        let log = InsertLog::open(dir.path(), Arc::clone(&vault), &request("up"));
        assert_eq!(log.inserted_before(), 100);
        assert_eq!(log.seen((0, 5), &key(5)), Seen::Inserted);
        assert_eq!(log.seen((0, 5), &key(6)), Seen::Changed);
        assert_eq!(log.seen((1, 5), &key(5)), Seen::New);
        assert_eq!(log.seen((0, 100), &key(100)), Seen::New);
        // Neither the keys nor the request's name are on disk in the clear.
        let on_disk = std::fs::read(log.path()).unwrap();
        assert_eq!(on_disk.len(), 2 * FRAME_LEN);
        assert!(!on_disk.windows(8).any(|w| w == [7u8; 8]));
        assert!(!log.path().display().to_string().contains("up"));
        // Another request's log is another one.
        let other = InsertLog::open(dir.path(), vault, &request("other"));
        assert_eq!(other.inserted_before(), 0);
    }

    #[test]
    fn a_cut_frame_is_dropped_and_appending_goes_on_after_the_whole_ones() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(Vault::ephemeral());
        let mut log = InsertLog::open(dir.path(), Arc::clone(&vault), &request("up"));
        for i in 0..(FRAME_ENTRIES as u32 + 3) {
            log.confirmed((0, i), key(1));
        }
        log.flush();
        let path = log.path().to_path_buf();
        drop(log);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let mut log = InsertLog::open(dir.path(), Arc::clone(&vault), &request("up"));
        assert_eq!(log.inserted_before(), FRAME_ENTRIES);
        log.confirmed((2, 0), key(2));
        log.flush();
        drop(log);
        let log = InsertLog::open(dir.path(), vault, &request("up"));
        assert_eq!(log.inserted_before(), FRAME_ENTRIES + 1);
        assert_eq!(log.seen((2, 0), &key(2)), Seen::Inserted);
    }

    #[test]
    fn a_damaged_swapped_or_oversized_log_means_everything_again() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(Vault::ephemeral());
        let write = |entries: u32| {
            let mut log = InsertLog::open(dir.path(), Arc::clone(&vault), &request("up"));
            for i in 0..entries {
                log.confirmed((0, i), key(3));
            }
            log.flush();
            log.path().to_path_buf()
        };
        let path = write(FRAME_ENTRIES as u32 * 2);
        // A flipped byte anywhere.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[FRAME_LEN / 2] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let log = InsertLog::open(dir.path(), Arc::clone(&vault), &request("up"));
        assert_eq!(log.inserted_before(), 0);
        drop(log);
        // Frames swapped.
        std::fs::remove_file(&path).unwrap();
        let path = write(FRAME_ENTRIES as u32 * 2);
        let bytes = std::fs::read(&path).unwrap();
        let swapped = [&bytes[FRAME_LEN..], &bytes[..FRAME_LEN]].concat();
        std::fs::write(&path, swapped).unwrap();
        let log = InsertLog::open(dir.path(), Arc::clone(&vault), &request("up"));
        assert_eq!(log.inserted_before(), 0);
        drop(log);
        // Another request's log under this one's name.
        std::fs::remove_file(&path).unwrap();
        let mut other = InsertLog::open(dir.path(), Arc::clone(&vault), &request("other"));
        other.confirmed((0, 0), key(4));
        other.flush();
        let other_path = other.path().to_path_buf();
        drop(other);
        std::fs::copy(&other_path, &path).unwrap();
        assert_eq!(
            InsertLog::open(dir.path(), Arc::clone(&vault), &request("up")).inserted_before(),
            0
        );
        // Too large to be one.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len((MAX_FRAMES * FRAME_LEN + 1) as u64).unwrap();
        assert_eq!(
            InsertLog::open(dir.path(), Arc::clone(&vault), &request("up")).inserted_before(),
            0
        );
        // Garbage of whole frames.
        std::fs::write(&path, vec![0u8; FRAME_LEN * 3]).unwrap();
        assert_eq!(
            InsertLog::open(dir.path(), vault, &request("up")).inserted_before(),
            0
        );
    }

    #[test]
    fn frames_parse_only_when_well_formed() {
        let entries = vec![((1, 2), key(9))];
        let plain = frame_plain(&entries);
        assert_eq!(parse_frame(&plain), Some(entries));
        let mut empty = plain.clone();
        empty[0] = 0;
        empty[1] = 0;
        assert_eq!(parse_frame(&empty), None);
        let mut too_many = plain.clone();
        too_many[0] = 0xff;
        assert_eq!(parse_frame(&too_many), None);
        assert_eq!(parse_frame(&plain[1..]), None);
    }
}
