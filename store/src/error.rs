//! What can go wrong in a store, in terms a node operator can act on.

use std::io;
use std::path::{Path, PathBuf};

/// Why a store operation failed. Nothing already flushed is lost by any of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(
        "store directory {path} is in use by another process: only one node may open a store; \
         stop the other node or give this one its own directory"
    )]
    Locked { path: PathBuf },

    #[error(
        "disk full writing the store at {path}: free space or lower the store and cache sizes; \
         blocks flushed before this are kept"
    )]
    DiskFull { path: PathBuf },

    #[error(
        "cannot use {path} as a store directory (check that it is a directory \
         this user may write to)"
    )]
    Access {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "store at {path} has format version {found}, this build reads version {supported}: \
         use a matching Warren release, or move the directory aside to start an empty store"
    )]
    UnknownFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error(
        "{path} holds data but no Warren store format marker: not a Warren store, or damaged; \
         move it aside to start an empty store"
    )]
    MissingFormat { path: PathBuf },

    #[error("store at {path} is damaged ({detail}); move it aside to start an empty store")]
    Corrupt { path: PathBuf, detail: String },

    #[error("I/O error in the store at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("storage engine error in the store at {path}: {detail}")]
    Engine { path: PathBuf, detail: String },
}

impl StoreError {
    /// Classifies an IO error met while using the store at `path`.
    pub(crate) fn from_io(path: &Path, source: io::Error) -> StoreError {
        let path = path.to_path_buf();
        if is_disk_full(&source) {
            return StoreError::DiskFull { path };
        }
        let access = matches!(
            source.kind(),
            io::ErrorKind::PermissionDenied
                | io::ErrorKind::ReadOnlyFilesystem
                | io::ErrorKind::NotADirectory
                | io::ErrorKind::NotFound
        ) || source.raw_os_error() == Some(libc::EROFS);
        if access {
            StoreError::Access { path, source }
        } else {
            StoreError::Io { path, source }
        }
    }

    /// Classifies an error from sled for the store at `path`.
    pub(crate) fn from_sled(path: &Path, error: sled::Error) -> StoreError {
        match error {
            sled::Error::Io(source) => StoreError::from_io(path, source),
            sled::Error::Corruption { at, .. } => StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("engine checksum mismatch at {at:?}"),
            },
            other => StoreError::Engine {
                path: path.to_path_buf(),
                detail: other.to_string(),
            },
        }
    }
}

/// ENOSPC and quota errors, also after sled has re-wrapped them (it keeps the
/// kind but drops the OS code when it replays a remembered error).
fn is_disk_full(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_and_quota_are_disk_full() {
        let path = Path::new("/x");
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            let e = StoreError::from_io(path, io::Error::from_raw_os_error(errno));
            assert!(matches!(e, StoreError::DiskFull { .. }), "{e:?}");
        }
        // sled re-creates remembered errors from their kind alone.
        let kind_only = io::Error::new(io::ErrorKind::StorageFull, "no space left");
        let e = StoreError::from_sled(path, sled::Error::Io(kind_only));
        assert!(matches!(e, StoreError::DiskFull { .. }));
    }

    #[test]
    fn permission_and_not_a_directory_are_access() {
        let path = Path::new("/x");
        for errno in [libc::EACCES, libc::EROFS, libc::ENOTDIR] {
            let e = StoreError::from_io(path, io::Error::from_raw_os_error(errno));
            assert!(matches!(e, StoreError::Access { .. }), "{errno}: {e:?}");
        }
        let e = StoreError::from_io(path, io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(e, StoreError::Io { .. }));
    }

    #[test]
    fn messages_name_the_path_and_a_remedy() {
        let e = StoreError::DiskFull {
            path: PathBuf::from("/var/warren"),
        };
        let text = e.to_string();
        assert!(text.contains("/var/warren") && text.contains("free space"));
    }
}
