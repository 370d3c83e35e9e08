//! The blocks a `Persistence=forever` download has fetched so far, kept in
//! the data directory so the download, started again after a restart, does
//! not fetch them from the network twice.
//!
//! `<data dir>/fcp-blocks/<request>/<routing key>`: one file per block,
//! ciphertext exactly as on the wire (never plaintext), verified against its
//! routing key when read back; a torn or corrupt file is refetched. The
//! directory name is a hash of the request's name, and the whole directory
//! goes when the request finishes or is removed.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use warren_crypto::{ChkBlock, RoutingKey, BLOCK_LEN};

use super::dda::hex;
use super::queue::{Owner, RequestKey};
use crate::client::BlockCache;

/// The directory of all kept blocks, in the data directory.
pub const BLOCKS_DIR: &str = "fcp-blocks";

/// One request's kept blocks.
#[derive(Debug, Clone)]
pub(super) struct BlockDir {
    dir: PathBuf,
}

impl BlockDir {
    pub(super) fn new(data_dir: &Path, key: &RequestKey) -> BlockDir {
        let mut hasher = Sha256::new();
        match &key.owner {
            Owner::Global => hasher.update(b"global\0"),
            Owner::Client(name) => {
                hasher.update(b"client\0");
                hasher.update(name.as_bytes());
                hasher.update(b"\0");
            }
        }
        hasher.update(key.identifier.as_bytes());
        BlockDir {
            dir: data_dir.join(BLOCKS_DIR).join(hex(&hasher.finalize())),
        }
    }

    fn path(&self, key: &RoutingKey) -> PathBuf {
        self.dir.join(hex(key.as_bytes()))
    }

    /// Forgets every kept block.
    pub(super) async fn remove(&self) {
        let _ = tokio::fs::remove_dir_all(&self.dir).await;
    }
}

impl BlockCache for BlockDir {
    fn get(&self, key: &RoutingKey) -> Option<ChkBlock> {
        let path = self.path(key);
        let len = std::fs::metadata(&path).ok()?.len();
        if len != BLOCK_LEN as u64 {
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        ChkBlock::verify(*key, bytes).ok()
    }

    fn put(&self, block: &ChkBlock) {
        let path = self.path(&block.routing_key());
        let tmp = path.with_extension("tmp");
        let written = std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(&tmp, block.as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(err) = written {
            tracing::debug!(%err, "cannot keep a fetched block; a resumed download fetches it again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_blocks_come_back_verified_and_corrupt_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let key = RequestKey {
            owner: Owner::Client("c".into()),
            identifier: "i".into(),
        };
        let blocks = BlockDir::new(dir.path(), &key);
        let (block, _) = ChkBlock::encode(b"some content").unwrap();
        let routing = block.routing_key();
        assert!(blocks.get(&routing).is_none());
        blocks.put(&block);
        assert_eq!(blocks.get(&routing).unwrap().as_bytes(), block.as_bytes());
        // Another request's directory is another one.
        let other = RequestKey {
            owner: Owner::Global,
            identifier: "i".into(),
        };
        assert!(BlockDir::new(dir.path(), &other).get(&routing).is_none());
        // A flipped byte is not handed back.
        let path = blocks.path(&routing);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(blocks.get(&routing).is_none());
    }
}
