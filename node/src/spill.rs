//! Blocks a fetch has received but may not hold in memory yet.
//!
//! A wide-area fetch keeps more block requests in flight than the codec
//! holds answers for (`FETCH_WINDOW_SEGMENTS` against `FETCH_HELD_BLOCKS`):
//! an answer for a later segment that arrives while the front one still
//! waits is handed back by the codec ("parked") and kept here, on disk,
//! until the codec asks for that key again. Dropping one only means it is
//! fetched from the network again, so every failure here (no temp file, a
//! full disk, a record that does not open) falls back to that.
//!
//! The file is an unnamed temporary file in the node's data directory (it
//! has no name to find and disappears with the process), and each record
//! is sealed with ChaCha20-Poly1305 under a key made for this one fetch and
//! held only in memory: the blocks are ciphertext already, but which
//! blocks a node fetched is its reader's secret, and the data directory
//! must not keep it (`docs/THREAT_MODEL.md`, "Someone with access to a
//! node's disk").

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::PathBuf;

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore as _;
use warren_crypto::{ChkBlock, RoutingKey, BLOCK_LEN};
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Bytes of one record: its nonce, the sealed block and the tag.
const RECORD_LEN: usize = NONCE_LEN + BLOCK_LEN + TAG_LEN;
/// Records kept at most (128 MiB of disk); past it an answer is dropped
/// and fetched again. A fetch parks at most the blocks of the segments it
/// asks for (8 x 256, 64 MiB), so this is reached only if segments decode
/// with answers of theirs still parked.
pub(crate) const MAX_RECORDS: usize = 4096;

/// One fetch's spilled blocks.
pub(crate) struct BlockSpill {
    dir: PathBuf,
    /// Opened at the first block; `None` again (for good) after an error.
    file: Option<File>,
    failed: bool,
    key: Zeroizing<[u8; 32]>,
    /// Records written so far: each nonce is this counter, never reused
    /// under the fetch's key.
    sealed: u64,
    slots: HashMap<RoutingKey, u64>,
    free: Vec<u64>,
    next_slot: u64,
}

impl std::fmt::Debug for BlockSpill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockSpill")
            .field("records", &self.slots.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Drop for BlockSpill {
    fn drop(&mut self) {
        if self.sealed > 0 {
            tracing::debug!(
                written = self.sealed,
                left = self.slots.len(),
                "blocks this fetch kept on disk past its memory bound"
            );
        }
    }
}

impl BlockSpill {
    /// A spill whose file, when one is needed, goes in `dir`.
    pub(crate) fn new(dir: PathBuf) -> BlockSpill {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut key[..]);
        BlockSpill {
            dir,
            file: None,
            failed: false,
            key,
            sealed: 0,
            slots: HashMap::new(),
            free: Vec::new(),
            next_slot: 0,
        }
    }

    /// Blocks kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no block is kept.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn aad(slot: u64, key: &RoutingKey) -> [u8; 40] {
        let mut aad = [0u8; 40];
        aad[..8].copy_from_slice(&slot.to_le_bytes());
        aad[8..].copy_from_slice(key.as_bytes());
        aad
    }

    fn fail(&mut self, what: &str, err: &dyn std::fmt::Display) {
        if !self.failed {
            tracing::warn!(
                dir = %self.dir.display(),
                "cannot {what} the fetch's spill file ({err}); answers past the \
                 memory bound are fetched again instead"
            );
        }
        self.failed = true;
        self.file = None;
        self.slots.clear();
        self.free.clear();
    }

    /// Keeps `block` until [`Self::take`] asks for it. Best effort: a block
    /// not kept is fetched again.
    pub(crate) fn put(&mut self, block: &ChkBlock) {
        let key = block.routing_key();
        if self.failed || self.slots.contains_key(&key) || self.slots.len() >= MAX_RECORDS {
            return;
        }
        if self.file.is_none() {
            match tempfile::tempfile_in(&self.dir) {
                Ok(file) => self.file = Some(file),
                Err(err) => return self.fail("create", &err),
            }
        }
        let slot = self.free.pop().unwrap_or_else(|| {
            self.next_slot += 1;
            self.next_slot - 1
        });
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&self.sealed.to_le_bytes());
        self.sealed += 1;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key[..]));
        let aad = Self::aad(slot, &key);
        let Ok(sealed) = cipher.encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: block.as_bytes(),
                aad: &aad,
            },
        ) else {
            self.free.push(slot);
            return;
        };
        let mut record = Vec::with_capacity(RECORD_LEN);
        record.extend_from_slice(&nonce);
        record.extend_from_slice(&sealed);
        record.resize(RECORD_LEN, 0);
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let written = file
            .seek(SeekFrom::Start(slot * RECORD_LEN as u64))
            .and_then(|_| file.write_all(&record));
        match written {
            Ok(()) => {
                self.slots.insert(key, slot);
            }
            Err(err) => self.fail("write", &err),
        }
    }

    /// The block kept for `key`, if any (checked against `key`: a record
    /// changed on disk is not returned).
    pub(crate) fn take(&mut self, key: &RoutingKey) -> Option<ChkBlock> {
        let slot = self.slots.remove(key)?;
        let file = self.file.as_mut()?;
        let mut record = vec![0u8; RECORD_LEN];
        let read = file
            .seek(SeekFrom::Start(slot * RECORD_LEN as u64))
            .and_then(|_| file.read_exact(&mut record));
        if let Err(err) = read {
            self.fail("read", &err);
            return None;
        }
        self.free.push(slot);
        let (nonce, sealed) = record.split_at(NONCE_LEN);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key[..]));
        let aad = Self::aad(slot, key);
        let bytes = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: &sealed[..BLOCK_LEN + TAG_LEN],
                    aad: &aad,
                },
            )
            .ok()?;
        ChkBlock::verify(*key, bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_crypto::BLOCK_PAYLOAD;

    fn block(seed: u8) -> ChkBlock {
        let content = vec![seed; BLOCK_PAYLOAD / 2];
        ChkBlock::encode(&content).expect("fits a block").0
    }

    #[test]
    fn blocks_come_back_as_they_went_and_slots_are_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut spill = BlockSpill::new(dir.path().to_path_buf());
        let (a, b) = (block(1), block(2));
        spill.put(&a);
        spill.put(&b);
        assert_eq!(spill.len(), 2);
        assert_eq!(spill.take(&a.routing_key()).as_ref(), Some(&a));
        assert_eq!(spill.take(&a.routing_key()), None);
        let c = block(3);
        spill.put(&c);
        // `c` took `a`'s slot: the file did not grow.
        assert_eq!(spill.next_slot, 2);
        assert_eq!(spill.take(&c.routing_key()).as_ref(), Some(&c));
        assert_eq!(spill.take(&b.routing_key()).as_ref(), Some(&b));
        assert!(spill.is_empty());
        // The file is unnamed: nothing is left in the data directory.
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    #[test]
    fn the_file_holds_no_block_in_the_clear_and_a_changed_record_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut spill = BlockSpill::new(dir.path().to_path_buf());
        let a = block(7);
        spill.put(&a);
        let file = spill.file.as_mut().expect("opened");
        let mut on_disk = Vec::new();
        file.seek(SeekFrom::Start(0)).expect("seek");
        file.read_to_end(&mut on_disk).expect("read");
        assert_eq!(on_disk.len(), RECORD_LEN);
        let needle = &a.as_bytes()[..64];
        assert!(!on_disk.windows(needle.len()).any(|w| w == needle));
        assert!(!on_disk
            .windows(32)
            .any(|w| w == a.routing_key().as_bytes().as_slice()));
        // One bit flipped in the sealed block: not handed back.
        on_disk[NONCE_LEN + 100] ^= 1;
        file.seek(SeekFrom::Start(0)).expect("seek");
        file.write_all(&on_disk).expect("write");
        assert_eq!(spill.take(&a.routing_key()), None);
    }

    #[test]
    fn a_directory_that_cannot_hold_a_file_only_means_fetching_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut spill = BlockSpill::new(dir.path().join("not-there"));
        let a = block(9);
        spill.put(&a);
        assert!(spill.is_empty());
        assert_eq!(spill.take(&a.routing_key()), None);
    }
}
