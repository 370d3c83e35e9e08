//! The blocks a `Persistence=forever` download has fetched so far, kept in
//! the data directory so the download, started again after a restart, does
//! not fetch them from the network twice.
//!
//! `<data dir>/fcp-blocks/<request>/<block>`: one file per block, the
//! block sealed by the queue's [`Vault`] and bound to its routing key, and
//! verified against that key when read back; a torn, corrupt or foreign
//! file is refetched. Both names are keyed hashes (the block ciphertext
//! and its routing key would otherwise tell anyone holding a copy of a
//! file which file this node's user downloaded). The whole directory goes
//! when the request finishes or is removed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use warren_crypto::{ChkBlock, RoutingKey, BLOCK_LEN};

use super::queue::{Owner, RequestKey};
use super::vault::Vault;
use crate::client::BlockCache;

/// What a kept block is bound to, besides its routing key.
const SEALED_CONTEXT: &[u8] = b"warren-fcp-block-v1";

/// The directory of all kept blocks, in the data directory.
pub const BLOCKS_DIR: &str = "fcp-blocks";

/// One request's kept blocks.
#[derive(Debug, Clone)]
pub(super) struct BlockDir {
    dir: PathBuf,
    vault: Arc<Vault>,
}

/// A request's name as bytes: owner, then identifier, unambiguously.
pub(super) fn request_name(key: &RequestKey) -> Vec<u8> {
    let mut name = Vec::new();
    match &key.owner {
        Owner::Global => name.extend_from_slice(b"global\0"),
        Owner::Client(client) => {
            name.extend_from_slice(b"client\0");
            name.extend_from_slice(&(client.len() as u64).to_be_bytes());
            name.extend_from_slice(client.as_bytes());
        }
    }
    name.extend_from_slice(key.identifier.as_bytes());
    name
}

impl BlockDir {
    pub(super) fn new(data_dir: &Path, vault: Arc<Vault>, key: &RequestKey) -> BlockDir {
        let dir = data_dir
            .join(BLOCKS_DIR)
            .join(vault.name("request", &request_name(key)));
        BlockDir { dir, vault }
    }

    fn path(&self, key: &RoutingKey) -> PathBuf {
        self.dir.join(self.vault.name("block", key.as_bytes()))
    }

    fn context(key: &RoutingKey) -> Vec<u8> {
        [SEALED_CONTEXT, key.as_bytes()].concat()
    }

    /// Forgets every kept block.
    pub(super) async fn remove(&self) {
        let _ = tokio::fs::remove_dir_all(&self.dir).await;
    }
}

impl BlockCache for BlockDir {
    fn get(&self, key: &RoutingKey) -> Option<ChkBlock> {
        let path = self.path(key);
        // A sealed block is the block plus the vault's fixed overhead.
        if std::fs::metadata(&path).ok()?.len() > BLOCK_LEN as u64 + 64 {
            return None;
        }
        let sealed = std::fs::read(&path).ok()?;
        let plain = self.vault.open_sealed(&Self::context(key), &sealed).ok()?;
        ChkBlock::verify(*key, plain.to_vec()).ok()
    }

    fn put(&self, block: &ChkBlock) {
        let path = self.path(&block.routing_key());
        let tmp = path.with_extension("tmp");
        let written = std::fs::create_dir_all(&self.dir)
            .and_then(|()| {
                let sealed = self
                    .vault
                    .seal(&Self::context(&block.routing_key()), block.as_bytes());
                std::fs::write(&tmp, sealed)
            })
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
        let vault = Arc::new(Vault::ephemeral());
        let blocks = BlockDir::new(dir.path(), Arc::clone(&vault), &key);
        let (block, _) = ChkBlock::encode(b"some content").unwrap();
        let routing = block.routing_key();
        assert!(blocks.get(&routing).is_none());
        blocks.put(&block);
        assert_eq!(blocks.get(&routing).unwrap().as_bytes(), block.as_bytes());
        // Neither the routing key nor the block's bytes are on disk.
        let path = blocks.path(&routing);
        let on_disk = std::fs::read(&path).unwrap();
        assert!(!on_disk
            .windows(32)
            .any(|w| w == &block.as_bytes()[100..132]));
        let routing_hex = super::super::dda::hex(routing.as_bytes());
        assert!(!path.display().to_string().contains(&routing_hex));
        // Sealed for one routing key, it does not open as another's.
        let (other_block, _) = ChkBlock::encode(b"other content").unwrap();
        std::fs::copy(&path, blocks.path(&other_block.routing_key())).unwrap();
        assert!(blocks.get(&other_block.routing_key()).is_none());
        // Another request's directory is another one.
        let other = RequestKey {
            owner: Owner::Global,
            identifier: "i".into(),
        };
        assert!(BlockDir::new(dir.path(), Arc::clone(&vault), &other)
            .get(&routing)
            .is_none());
        // A flipped byte is not handed back.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(blocks.get(&routing).is_none());
    }
}
