//! The node's identity on disk: load it, or create it once.
//!
//! File format: the 8-byte magic [`IDENTITY_MAGIC`] then the 32-byte X25519
//! secret, 40 bytes in all, mode 0600. It is written to a temporary file in
//! the same directory, fsynced, renamed over the target and the directory
//! fsynced, so a crash leaves either no identity or a whole one.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use rand_core::CryptoRngCore;
use tracing::info;
use warren_crypto::NodeIdentity;
use zeroize::Zeroizing;

/// First bytes of an identity file: format name and version.
pub const IDENTITY_MAGIC: [u8; 8] = *b"WRNID\x00\x00\x01";
/// Length of the secret key that follows the magic.
const SECRET_LEN: usize = 32;
/// Exact size of an identity file.
pub const IDENTITY_FILE_LEN: usize = IDENTITY_MAGIC.len() + SECRET_LEN;
/// Permission bits allowed on an identity file: owner read/write only.
#[cfg(unix)]
const OWNER_ONLY: u32 = 0o600;
/// Permission bits that must not be set (group and others).
#[cfg(unix)]
const GROUP_OTHER_BITS: u32 = 0o077;

/// Why the identity file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityFileError {
    #[error("cannot {action} identity file {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "identity file {path} is {len} bytes; expected {IDENTITY_FILE_LEN}. Is it the right file?"
    )]
    BadLength { path: PathBuf, len: u64 },
    #[error("{path} is not a Warren identity file (wrong magic bytes)")]
    BadMagic { path: PathBuf },
    #[error(
        "identity file {path} is readable by other users (mode {mode:o}); \
         run `chmod 600 {path}` if it is still secret, or delete it to get a new identity"
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> IdentityFileError + 'a {
    move |source| IdentityFileError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Load the identity at `path`, or create and save a new one if there is no
/// file there.
pub fn load_or_create(
    path: &Path,
    rng: &mut impl CryptoRngCore,
) -> Result<NodeIdentity, IdentityFileError> {
    match load(path) {
        Err(IdentityFileError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            let identity = NodeIdentity::generate(rng);
            save(path, &identity)?;
            info!(path = %path.display(), public = %identity.public(), "created a new node identity");
            Ok(identity)
        }
        other => other,
    }
}

/// Load an existing identity file, refusing one others can read.
pub fn load(path: &Path) -> Result<NodeIdentity, IdentityFileError> {
    let mut file = File::open(path).map_err(io_err("open", path))?;
    let meta = file.metadata().map_err(io_err("inspect", path))?;
    // Size first: never read an arbitrary file into memory.
    if meta.len() != IDENTITY_FILE_LEN as u64 {
        return Err(IdentityFileError::BadLength {
            path: path.to_path_buf(),
            len: meta.len(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & GROUP_OTHER_BITS != 0 {
            return Err(IdentityFileError::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let mut bytes = Zeroizing::new([0u8; IDENTITY_FILE_LEN]);
    file.read_exact(&mut bytes[..])
        .map_err(io_err("read", path))?;
    if bytes[..IDENTITY_MAGIC.len()] != IDENTITY_MAGIC {
        return Err(IdentityFileError::BadMagic {
            path: path.to_path_buf(),
        });
    }
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    secret.copy_from_slice(&bytes[IDENTITY_MAGIC.len()..]);
    Ok(NodeIdentity::from_secret_bytes(*secret))
}

/// Write `identity` to `path` atomically with mode 0600, replacing any file.
pub fn save(path: &Path, identity: &NodeIdentity) -> Result<(), IdentityFileError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    // A leftover from a crash: ours to replace. `create_new` below then
    // refuses to follow anything planted in its place.
    let _ = fs::remove_file(&tmp);

    let mut contents = Zeroizing::new([0u8; IDENTITY_FILE_LEN]);
    contents[..IDENTITY_MAGIC.len()].copy_from_slice(&IDENTITY_MAGIC);
    contents[IDENTITY_MAGIC.len()..].copy_from_slice(&identity.secret_bytes()[..]);

    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(OWNER_ONLY);
    }
    let written = (|| {
        let mut file = options.open(&tmp).map_err(io_err("create", &tmp))?;
        file.write_all(&contents[..])
            .map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("rename into place", path))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    // Make the rename itself durable.
    #[cfg(unix)]
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory of", path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn rng() -> rand_chacha::ChaCha20Rng {
        rand_chacha::ChaCha20Rng::seed_from_u64(11)
    }

    #[test]
    fn creates_once_then_loads_the_same_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        let first = load_or_create(&path, &mut rng()).unwrap();
        let again =
            load_or_create(&path, &mut rand_chacha::ChaCha20Rng::seed_from_u64(99)).unwrap();
        assert_eq!(first.public(), again.public());
        assert_eq!(fs::metadata(&path).unwrap().len(), IDENTITY_FILE_LEN as u64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // No temporary file left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_file_others_can_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        load_or_create(&path, &mut rng()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(&path, &mut rng()),
            Err(IdentityFileError::InsecurePermissions { mode: 0o644, .. })
        ));
    }

    #[test]
    fn refuses_wrong_size_and_wrong_magic_without_replacing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        fs::write(&path, b"not an identity").unwrap();
        assert!(matches!(
            load_or_create(&path, &mut rng()),
            Err(IdentityFileError::BadLength { len: 15, .. })
        ));
        let id = NodeIdentity::generate(&mut rng());
        save(&path, &id).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes[0] = b'X';
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            load(&path),
            Err(IdentityFileError::BadMagic { .. })
        ));
        // The broken file is still there for the user to look at.
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }
}
