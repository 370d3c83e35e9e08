//! What the FCP queue keeps on disk, encrypted: the queue file, the blocks
//! of resumable downloads and the spooled content of resumable uploads.
//!
//! They name the keys, file names and content of the node's *own* requests
//! (unlike the datastore, which holds relayed ciphertext anyone could have
//! sent), so none of it is written in the clear. One random 256-bit key,
//! `<data dir>/fcp-queue.key` (mode 0600), seals everything with
//! ChaCha20-Poly1305: single records with a random 96-bit nonce, uploads as
//! a STREAM (`aead::stream`, 64 KiB segments, 32-bit counter, last-segment
//! flag) so truncation and reordering are detected. File names inside the
//! vault's directories are HMAC-SHA256 under a key derived from it, so they
//! do not reveal which blocks were fetched.
//!
//! What this protects against: the queue's files copied or backed up
//! without the key file, and recovery after `fcp-queue.key` is deleted (a
//! 32-byte file to destroy instead of a directory to scrub). It does not
//! protect against someone who reads the whole data directory while the
//! key is there; `docs/THREAT_MODEL.md` says so.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore as _;
use zeroize::Zeroizing;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "fcp-queue.key";
/// Bytes of the key.
const KEY_LEN: usize = 32;
/// First byte of every sealed record and spool file: the format.
const FORMAT: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Nonce prefix of a STREAM: 12 bytes less the 4-byte counter and the
/// 1-byte last-segment flag.
const STREAM_PREFIX_LEN: usize = 7;
/// Plaintext bytes per STREAM segment.
pub(super) const SEGMENT_LEN: usize = 64 * 1024;

/// Why the vault could not be opened, or a sealed file not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    #[error("cannot read or write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a {KEY_LEN}-byte key; move it away to start a new, empty FCP queue")]
    BadKey { path: PathBuf },
    #[error("cannot be opened with this node's FCP key (corrupt, or sealed under another key)")]
    Unreadable,
}

/// The key that seals the queue's files.
pub struct Vault {
    key: Zeroizing<[u8; KEY_LEN]>,
    /// HMAC key for names, derived from `key` (so one secret is kept).
    names: ring::hmac::Key,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

impl Vault {
    /// Reads `<data dir>/fcp-queue.key`, creating it (mode 0600) the first
    /// time.
    pub fn open(data_dir: &Path) -> Result<Vault, VaultError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| VaultError::Io {
            path: path.clone(),
            source,
        };
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        match std::fs::File::open(&path) {
            Ok(file) => {
                let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
                file.take(KEY_LEN as u64 + 1)
                    .read_to_end(&mut bytes)
                    .map_err(io)?;
                if bytes.len() != KEY_LEN {
                    return Err(VaultError::BadKey { path });
                }
                key.copy_from_slice(&bytes);
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                rand::rngs::OsRng.fill_bytes(key.as_mut());
                write_private(&path, key.as_ref()).map_err(io)?;
            }
            Err(err) => return Err(io(err)),
        }
        Ok(Vault::from_key(key))
    }

    fn from_key(key: Zeroizing<[u8; KEY_LEN]>) -> Vault {
        let names = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_ref());
        let tag = ring::hmac::sign(&names, b"warren-fcp-vault-names-v1");
        Vault {
            names: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, tag.as_ref()),
            key,
        }
    }

    /// A vault with a fresh random key, for tests.
    #[cfg(test)]
    pub(super) fn ephemeral() -> Vault {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Vault::from_key(key)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(self.key.as_ref()))
    }

    /// A file name for `what` (hex HMAC), stable for this key.
    pub(super) fn name(&self, purpose: &str, what: &[u8]) -> String {
        let mut context = ring::hmac::Context::with_key(&self.names);
        context.update(purpose.as_bytes());
        context.update(&[0]);
        context.update(what);
        super::dda::hex(context.sign().as_ref())
    }

    /// Seals one record; `context` (authenticated, not stored) binds it to
    /// its place, so a sealed file moved under another name fails to open.
    pub(super) fn seal(&self, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: context,
        };
        // Encryption fails only past the cipher's length limit (256 GiB).
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`seal`](Self::seal) made under the same `context`.
    pub(super) fn open_sealed(
        &self,
        context: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != FORMAT {
            return Err(VaultError::Unreadable);
        }
        let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
        let payload = Payload {
            msg: body,
            aad: context,
        };
        self.cipher()
            .decrypt(Nonce::from_slice(nonce), payload)
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Unreadable)
    }

    /// Starts writing a sealed stream to `path` (created new, mode 0600).
    pub(super) fn spool_writer(&self, path: &Path, context: &[u8]) -> std::io::Result<SpoolWriter> {
        let mut prefix = [0u8; STREAM_PREFIX_LEN];
        rand::rngs::OsRng.fill_bytes(&mut prefix);
        let mut file = create_private(path)?;
        file.write_all(&[FORMAT])?;
        file.write_all(&prefix)?;
        Ok(SpoolWriter {
            encryptor: Some(EncryptorBE32::from_aead(self.cipher(), (&prefix).into())),
            file: std::io::BufWriter::new(file),
            pending: Zeroizing::new(Vec::with_capacity(SEGMENT_LEN)),
            context: context.to_vec(),
            length: 0,
        })
    }

    /// Opens a sealed stream written by [`spool_writer`](Self::spool_writer)
    /// under the same `context`.
    pub(super) fn spool_reader(
        &self,
        path: &Path,
        context: &[u8],
    ) -> Result<SpoolReader, VaultError> {
        let io = |source| VaultError::Io {
            path: path.into(),
            source,
        };
        let mut file = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
        let mut head = [0u8; 1 + STREAM_PREFIX_LEN];
        file.read_exact(&mut head)
            .map_err(|_| VaultError::Unreadable)?;
        if head[0] != FORMAT {
            return Err(VaultError::Unreadable);
        }
        let prefix: [u8; STREAM_PREFIX_LEN] =
            head[1..].try_into().map_err(|_| VaultError::Unreadable)?;
        Ok(SpoolReader {
            decryptor: Some(DecryptorBE32::from_aead(self.cipher(), (&prefix).into())),
            file,
            context: context.to_vec(),
        })
    }
}

/// Writes a sealed stream: whole 64 KiB segments as data comes, the last
/// (possibly short or empty) one on [`finish`](Self::finish). A stream
/// never finished (the node died mid-upload) cannot be opened as complete.
pub(super) struct SpoolWriter {
    encryptor: Option<EncryptorBE32<ChaCha20Poly1305>>,
    file: std::io::BufWriter<std::fs::File>,
    pending: Zeroizing<Vec<u8>>,
    context: Vec<u8>,
    length: u64,
}

impl std::fmt::Debug for SpoolWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolWriter")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

fn sealing_failed() -> std::io::Error {
    std::io::Error::other("sealing the upload failed")
}

impl SpoolWriter {
    pub(super) fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        self.length += data.len() as u64;
        while !data.is_empty() {
            let room = SEGMENT_LEN - self.pending.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.pending.extend_from_slice(now);
            data = rest;
            // A full segment is sealed only once more data follows, so the
            // last segment is always sealed as the last.
            if self.pending.len() == SEGMENT_LEN && !data.is_empty() {
                self.seal_pending()?;
            }
        }
        Ok(())
    }

    fn seal_pending(&mut self) -> std::io::Result<()> {
        let encryptor = self.encryptor.as_mut().ok_or_else(sealing_failed)?;
        let payload = Payload {
            msg: &self.pending,
            aad: &self.context,
        };
        let sealed = encryptor
            .encrypt_next(payload)
            .map_err(|_| sealing_failed())?;
        self.file.write_all(&sealed)?;
        self.pending.clear();
        Ok(())
    }

    /// Seals the last segment and syncs the file; returns the plaintext
    /// length.
    pub(super) fn finish(mut self) -> std::io::Result<u64> {
        let encryptor = self.encryptor.take().ok_or_else(sealing_failed)?;
        let payload = Payload {
            msg: &self.pending,
            aad: &self.context,
        };
        let sealed = encryptor
            .encrypt_last(payload)
            .map_err(|_| sealing_failed())?;
        self.file.write_all(&sealed)?;
        let file = self
            .file
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        file.sync_all()?;
        Ok(self.length)
    }
}

/// Reads a sealed stream back a segment at a time.
pub(super) struct SpoolReader {
    decryptor: Option<DecryptorBE32<ChaCha20Poly1305>>,
    file: std::io::BufReader<std::fs::File>,
    context: Vec<u8>,
}

impl std::fmt::Debug for SpoolReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpoolReader(..)")
    }
}

impl SpoolReader {
    /// The next segment's plaintext; `None` after the last one. An error if
    /// the file was cut short, altered, or sealed under another key.
    pub(super) fn next_segment(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, VaultError> {
        if self.decryptor.is_none() {
            return Ok(None);
        }
        let mut sealed = Vec::with_capacity(SEGMENT_LEN + TAG_LEN);
        (&mut self.file)
            .take((SEGMENT_LEN + TAG_LEN) as u64)
            .read_to_end(&mut sealed)
            .map_err(|_| VaultError::Unreadable)?;
        let full = sealed.len() == SEGMENT_LEN + TAG_LEN;
        // A full-size segment is the last one only if nothing follows it.
        let last = !full
            || std::io::BufRead::fill_buf(&mut self.file)
                .map_err(|_| VaultError::Unreadable)?
                .is_empty();
        let payload = Payload {
            msg: &sealed,
            aad: &self.context,
        };
        let plain = if last {
            let decryptor = self.decryptor.take().ok_or(VaultError::Unreadable)?;
            decryptor.decrypt_last(payload)
        } else {
            let decryptor = self.decryptor.as_mut().ok_or(VaultError::Unreadable)?;
            decryptor.decrypt_next(payload)
        };
        plain.map(|p| Some(Zeroizing::new(p))).map_err(|_| {
            self.decryptor = None;
            VaultError::Unreadable
        })
    }
}

fn private_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Creates `path` (which must not exist), mode 0600.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    private_options().create_new(true).open(path)
}

/// Writes `bytes` to a new file at `path`, mode 0600, synced.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = create_private(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes `bytes` to `path` crash-safely (temporary file, fsync, rename,
/// fsync of the directory), mode 0600.
pub(super) fn replace_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = private_options().create(true).truncate(true).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The fuzz target's body (`fuzz/fuzz_targets/fcp_sealed.rs`), also run by
/// the property tests: `bytes` as a sealed record and as a spool file never
/// panic and never open (a fixed key sealed nothing here, and forging a
/// tag is the AEAD's to prevent).
pub fn fuzz_open(bytes: &[u8]) {
    let vault = Vault::from_key(Zeroizing::new([7u8; KEY_LEN]));
    assert!(vault.open_sealed(b"fuzz", bytes).is_err());
    let Ok(dir) = tempfile_dir() else {
        return;
    };
    let path = dir.join("spool");
    if std::fs::write(&path, bytes).is_ok() {
        if let Ok(mut reader) = vault.spool_reader(&path, b"fuzz") {
            while let Ok(Some(_)) = reader.next_segment() {}
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> std::io::Result<PathBuf> {
    let mut name = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut name);
    let dir = std::env::temp_dir().join(format!("warren-fuzz-{}", super::dda::hex(&name)));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spool(vault: &Vault, path: &Path, data: &[u8], writes: usize) -> u64 {
        let mut writer = vault.spool_writer(path, b"ctx").unwrap();
        let step = (data.len() / writes.max(1)).max(1);
        for piece in data.chunks(step) {
            writer.write(piece).unwrap();
        }
        writer.finish().unwrap()
    }

    fn read_all(vault: &Vault, path: &Path, context: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut reader = vault.spool_reader(path, context)?;
        let mut out = Vec::new();
        while let Some(segment) = reader.next_segment()? {
            out.extend_from_slice(&segment);
        }
        Ok(out)
    }

    #[test]
    fn the_key_file_is_made_once_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Vault::open(dir.path()).unwrap();
        let sealed = first.seal(b"c", b"secret words");
        let again = Vault::open(dir.path()).unwrap();
        assert_eq!(&*again.open_sealed(b"c", &sealed).unwrap(), b"secret words");
        assert_eq!(first.name("x", b"y"), again.name("x", b"y"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        let err = Vault::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains(KEY_FILE), "{err}");
    }

    #[test]
    fn sealed_records_hide_their_text_and_refuse_tampering_and_other_places() {
        let vault = Vault::ephemeral();
        let sealed = vault.seal(b"queue", b"CHK@secret-key/holiday.jpg");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            &*vault.open_sealed(b"queue", &sealed).unwrap(),
            b"CHK@secret-key/holiday.jpg"
        );
        assert!(vault.open_sealed(b"block", &sealed).is_err());
        assert!(Vault::ephemeral().open_sealed(b"queue", &sealed).is_err());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x40;
            assert!(vault.open_sealed(b"queue", &bad).is_err(), "byte {i}");
        }
        assert!(vault.open_sealed(b"queue", &sealed[..20]).is_err());
        // Names are keyed: another vault names the same thing differently.
        assert_ne!(
            vault.name("block", b"k"),
            Vault::ephemeral().name("block", b"k")
        );
    }

    #[test]
    fn spools_round_trip_at_segment_edges() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::ephemeral();
        for len in [
            0,
            1,
            SEGMENT_LEN - 1,
            SEGMENT_LEN,
            SEGMENT_LEN + 1,
            3 * SEGMENT_LEN,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let path = dir.path().join(format!("s{len}"));
            assert_eq!(spool(&vault, &path, &data, 5), len as u64);
            assert_eq!(read_all(&vault, &path, b"ctx").unwrap(), data, "{len}");
        }
    }

    #[test]
    fn a_cut_short_altered_or_unfinished_spool_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::ephemeral();
        let data = vec![9u8; 3 * SEGMENT_LEN + 100];
        let path = dir.path().join("s");
        spool(&vault, &path, &data, 3);
        let whole = std::fs::read(&path).unwrap();
        assert!(!whole.windows(64).any(|w| w == &data[..64]));
        // Cut at a segment boundary: the last segment is missing.
        let cut = dir.path().join("cut");
        std::fs::write(
            &cut,
            &whole[..1 + STREAM_PREFIX_LEN + 2 * (SEGMENT_LEN + TAG_LEN)],
        )
        .unwrap();
        assert!(read_all(&vault, &cut, b"ctx").is_err());
        // One flipped byte anywhere.
        for at in [0, 3, 100, SEGMENT_LEN + 40, whole.len() - 1] {
            let mut bad = whole.clone();
            bad[at] ^= 1;
            std::fs::write(&cut, &bad).unwrap();
            assert!(read_all(&vault, &cut, b"ctx").is_err(), "byte {at}");
        }
        // Another context (another request's spool) or another key.
        assert!(read_all(&vault, &path, b"other").is_err());
        assert!(read_all(&Vault::ephemeral(), &path, b"ctx").is_err());
        // A writer dropped without finish: never a complete stream.
        let unfinished = dir.path().join("unfinished");
        let mut writer = vault.spool_writer(&unfinished, b"ctx").unwrap();
        writer.write(&data).unwrap();
        drop(writer);
        assert!(read_all(&vault, &unfinished, b"ctx").is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_as_a_sealed_record_or_spool_fail_cleanly(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            fuzz_open(&bytes);
            let vault = Vault::ephemeral();
            prop_assert!(vault.open_sealed(b"c", &bytes).is_err());
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s");
            std::fs::write(&path, &bytes).unwrap();
            prop_assert!(read_all(&vault, &path, b"ctx").is_err());
        }
    }
}
