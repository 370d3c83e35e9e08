//! Root copies on the network: inserting them beside a document's root block,
//! and falling back to them when the root is not found (format in
//! `docs/PROTOCOL.md` section 6.6, codec in `warren_crypto::copies`); and
//! healing: re-inserting, later and bounded, blocks a fetch had to rebuild.
//!
//! Kept apart from `client` so the transfer windows there stay the only
//! concern of that module.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::Rng as _;
use tokio::task::JoinSet;
use warren_crypto::copies::{copies_for, copy_locators, root_copies, CopyLocator};
use warren_crypto::{ChkBlock, ChkKey};

use crate::client::ClientError;
use crate::driver::{NodeHandle, RequestError};

/// Heals (re-inserts of a block the network had lost: a root rebuilt from a
/// copy, or a data or check block rebuilt by the erasure code) waiting at once in this
/// process; past it a rebuilt block is not re-inserted. Bounds the insert
/// traffic a burst of damaged fetches can cause, and the memory the waiting
/// blocks hold (64 x 32 KiB).
const MAX_PENDING_HEALS: usize = 64;
/// A heal waits a random time in this range (seconds) after the fetch, so
/// its insert does not follow the fetch that needed it closely enough to
/// tie the two together (Fred delays and randomises healing inserts too).
const HEAL_DELAY_S: std::ops::Range<u64> = 30..300;

static PENDING_HEALS: AtomicUsize = AtomicUsize::new(0);

/// Takes one of the [`MAX_PENDING_HEALS`] slots, if one is free.
fn reserve_heal(pending: &AtomicUsize) -> bool {
    pending
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_PENDING_HEALS).then_some(n + 1)
        })
        .is_ok()
}

/// Re-inserts `block` (one the network had lost, rebuilt from a root copy or
/// from check blocks) after a random delay, within the heal bound.
pub(crate) fn heal_later(node: NodeHandle, block: ChkBlock) {
    if !reserve_heal(&PENDING_HEALS) {
        tracing::debug!("root heal skipped: too many pending");
        return;
    }
    let delay = Duration::from_secs(rand::thread_rng().gen_range(HEAL_DELAY_S));
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let result = node.insert_block(block).await;
        PENDING_HEALS.fetch_sub(1, Ordering::AcqRel);
        tracing::debug!(?result, "root healed");
    });
}

/// Extra tries for a copy's pointer whose request timed out or met an
/// overloaded peer (as `client::BLOCK_RETRIES` for blocks).
const POINTER_RETRIES: u32 = 1;

/// Inserts the copies of `root` (whose block is `block`) and their pointers:
/// [`warren_crypto::copies::copies_for`] the document, more when the root
/// names a tree of blocks.
///
/// A copy that cannot be inserted does not fail the insert: the root itself
/// is in, and the copies only add to its chances. A pointer that meets a
/// different block under its key (someone who knew the content squatted it)
/// is left as it is; fetchers skip it. Returns how many of the copies went in
/// whole (block and pointer).
pub(crate) async fn insert_copies(
    node: &NodeHandle,
    block: &ChkBlock,
    root: &ChkKey,
    names_a_tree: bool,
) -> Result<usize, ClientError> {
    let content = block
        .decode(&root.crypto)
        .map_err(|e| ClientError::Input(format!("the root block does not decode: {e}")))?;
    let copies = tokio::task::spawn_blocking({
        let root = root.clone();
        move || root_copies(&content, &root, copies_for(names_a_tree))
    })
    .await
    .map_err(|_| ClientError::Stopped)?
    .map_err(|e| ClientError::Input(e.to_string()))?;
    let mut inflight = JoinSet::new();
    for copy in copies {
        let node = node.clone();
        inflight.spawn(async move {
            let chk = node.insert_block(copy.block).await;
            let ssk = node.insert_ssk_block(copy.pointer).await;
            (chk, ssk)
        });
    }
    let mut whole = 0;
    while let Some(joined) = inflight.join_next().await {
        let (chk, ssk) = joined.map_err(|_| ClientError::Stopped)?;
        match (chk, ssk) {
            (Err(RequestError::Stopped), _) | (_, Err(RequestError::Stopped)) => {
                return Err(ClientError::Stopped)
            }
            (Ok(()), Ok(())) => whole += 1,
            (chk, ssk) => {
                tracing::debug!(?chk, ?ssk, "a root copy was not inserted whole");
            }
        }
    }
    Ok(whole)
}

/// The root block named by `root`: from the network, or rebuilt from one of
/// its copies when the network has lost it (and then re-inserted later, see
/// [`heal_later`]). The error is the root's own.
pub(crate) async fn fetch_root(node: &NodeHandle, root: &ChkKey) -> Result<ChkBlock, RequestError> {
    let err = match crate::client::fetch_with_retry(node, root.routing, None).await {
        Ok(block) => return Ok(block),
        Err(RequestError::Stopped) => return Err(RequestError::Stopped),
        Err(err) => err,
    };
    for locator in copy_locators(root) {
        match fetch_copy(node, &locator, root).await {
            Ok(block) => {
                tracing::debug!(copy = locator.index, "root block rebuilt from a copy");
                heal_later(node.clone(), block.clone());
                return Ok(block);
            }
            Err(RequestError::Stopped) => return Err(RequestError::Stopped),
            Err(_) => {}
        }
    }
    Err(err)
}

/// Copy `locator` of `root`: its pointer, then its block, checked.
async fn fetch_copy(
    node: &NodeHandle,
    locator: &CopyLocator,
    root: &ChkKey,
) -> Result<ChkBlock, RequestError> {
    let mut tries = 0;
    let pointer = loop {
        match node.fetch_ssk_block(locator.pointer_key).await {
            Err(err) if err.is_transient() && tries < POINTER_RETRIES => tries += 1,
            other => break other?,
        }
    };
    // A pointer or copy that does not check out counts as not found: the
    // caller reports the root's own error, never this one's.
    let not_found = || RequestError::Fetch(crate::routing::FetchError::DataNotFound);
    let at = locator.read_pointer(&pointer).map_err(|_| not_found())?;
    let copy = crate::client::fetch_with_retry(node, at, None).await?;
    locator.restore(&copy, root).map_err(|_| not_found())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use warren_crypto::copies::{root_copies, TREE_ROOT_COPIES};
    use warren_crypto::ChkBlock;
    use warren_store::{Area, BlockStore, MemoryStore, StoreConfig};

    use super::*;
    use crate::driver::{Node, NodeConfig};

    #[test]
    fn heals_are_bounded() {
        let pending = AtomicUsize::new(0);
        for _ in 0..MAX_PENDING_HEALS {
            assert!(reserve_heal(&pending));
        }
        assert!(!reserve_heal(&pending), "one past the bound");
        pending.fetch_sub(1, Ordering::AcqRel);
        assert!(reserve_heal(&pending), "a finished heal frees its slot");
    }

    /// One node alone: the root is missing from its store while one copy is
    /// there, and the fetch gets the very root block back from that copy.
    #[tokio::test]
    async fn a_lost_root_is_rebuilt_from_its_copy() {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig::new(
            dir.path().to_path_buf(),
            "127.0.0.1:0".parse().unwrap(),
            warren_crypto::Location(1 << 62),
        );
        let identity = warren_crypto::NodeIdentity::generate(&mut rand::rngs::OsRng);
        let store = Arc::new(MemoryStore::new(StoreConfig::default()));
        let node = Node::start_with_store(config, identity, store.clone())
            .await
            .unwrap();
        let handle = node.handle();
        let content = b"a small document";
        let (root_block, root) = ChkBlock::encode(content).unwrap();
        assert!(
            fetch_root(&handle, &root).await.is_err(),
            "nothing stored yet"
        );
        let copies = root_copies(content, &root, TREE_ROOT_COPIES).unwrap();
        // Only the last copy: the first five pointers are missing, so the
        // fetcher must pass them by.
        let last = &copies[usize::from(TREE_ROOT_COPIES) - 1];
        store.put(Area::Store, &last.block).unwrap();
        store.put_ssk(&last.pointer).unwrap();
        assert_eq!(fetch_root(&handle, &root).await.unwrap(), root_block);
        // A pointer to a block that is not a copy of this root is refused.
        let (_, other) = ChkBlock::encode(b"another document").unwrap();
        assert!(fetch_root(&handle, &other).await.is_err());
        node.shutdown().await.unwrap();
    }
}
