//! Root copies and shards on the network: inserting them beside a document's
//! root block, and falling back to them when the root is not found (format
//! in `docs/PROTOCOL.md` section 6.6, codecs in `warren_crypto::copies` and
//! `warren_crypto::shards`); and healing: re-inserting, later and bounded,
//! blocks a fetch had to rebuild.
//!
//! Kept apart from `client` so the transfer windows there stay the only
//! concern of that module.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::Rng as _;
use tokio::task::JoinSet;
use warren_crypto::copies::{copies_for, copy_locators, root_copies, CopyLocator};
use warren_crypto::shards::{root_shards, ShardCollector};
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

/// Shard inserts or fetches in flight at once for one root (a root has up to
/// 140 shards; they are small, but a burst of them should not crowd out the
/// document's own blocks).
const SHARDS_IN_FLIGHT: usize = 16;

/// Inserts what keeps `root` (whose block is `block`) findable when the
/// block itself is lost: its shards when it names a tree of blocks
/// (`warren_crypto::shards`), else its [`warren_crypto::copies::copies_for`]
/// copies and their pointers.
///
/// One that cannot be inserted does not fail the insert: the root itself is
/// in, and these only add to its chances. An SSK that meets a different
/// block under its key (someone who knew the content squatted it) is left as
/// it is; fetchers skip it. Returns how many went in whole (a copy counts
/// once it and its pointer are in).
pub(crate) async fn insert_copies(
    node: &NodeHandle,
    block: &ChkBlock,
    root: &ChkKey,
    names_a_tree: bool,
) -> Result<usize, ClientError> {
    let content = block
        .decode(&root.crypto)
        .map_err(|e| ClientError::Input(format!("the root block does not decode: {e}")))?;
    if names_a_tree {
        return insert_shards(node, content, root).await;
    }
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

/// Inserts the shards of the tree root whose plaintext is `content`.
async fn insert_shards(
    node: &NodeHandle,
    content: Vec<u8>,
    root: &ChkKey,
) -> Result<usize, ClientError> {
    let shards = tokio::task::spawn_blocking({
        let root = root.clone();
        move || root_shards(&content, &root)
    })
    .await
    .map_err(|_| ClientError::Stopped)?
    .map_err(|e| ClientError::Input(e.to_string()))?;
    let mut shards = shards.into_iter();
    let mut inflight = JoinSet::new();
    let mut whole = 0;
    loop {
        while inflight.len() < SHARDS_IN_FLIGHT {
            let Some(shard) = shards.next() else { break };
            let node = node.clone();
            inflight.spawn(async move { node.insert_ssk_block(shard).await });
        }
        let Some(joined) = inflight.join_next().await else {
            return Ok(whole);
        };
        match joined.map_err(|_| ClientError::Stopped)? {
            Ok(()) => whole += 1,
            Err(RequestError::Stopped) => return Err(ClientError::Stopped),
            Err(err) => tracing::debug!(%err, "a root shard was not inserted"),
        }
    }
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
    match fetch_from_shards(node, root).await {
        Some(Ok(block)) => {
            tracing::debug!("root block rebuilt from its shards");
            heal_later(node.clone(), block.clone());
            Ok(block)
        }
        Some(Err(RequestError::Stopped)) => Err(RequestError::Stopped),
        Some(Err(_)) | None => Err(err),
    }
}

/// The root block rebuilt from its shards, if enough of them are found and
/// they rebuild it; `None` when they are not found or do not check out (a
/// squatted shard), an error only when the node stops.
async fn fetch_from_shards(
    node: &NodeHandle,
    root: &ChkKey,
) -> Option<Result<ChkBlock, RequestError>> {
    let mut collector = ShardCollector::new(root);
    let mut inflight = JoinSet::new();
    loop {
        while inflight.len() < SHARDS_IN_FLIGHT {
            let Some(locator) = collector.next_wanted() else {
                break;
            };
            let node = node.clone();
            inflight.spawn(async move {
                let mut tries = 0;
                loop {
                    match node.fetch_ssk_block(locator.key).await {
                        Err(err) if err.is_transient() && tries < POINTER_RETRIES => tries += 1,
                        other => break (locator, other),
                    }
                }
            });
        }
        match inflight.join_next().await? {
            Ok((locator, Ok(shard))) => collector.offer(&locator, &shard),
            Ok((_, Err(RequestError::Stopped))) | Err(_) => {
                return Some(Err(RequestError::Stopped))
            }
            Ok((_, Err(_))) => {}
        }
        if collector.is_ready() {
            // The code may run in a worker process: off the runtime's threads.
            let rebuilt = tokio::task::spawn_blocking(move || collector.restore()).await;
            return match rebuilt {
                Ok(Some(Ok(block))) => Some(Ok(block)),
                Ok(Some(Err(err))) => {
                    tracing::debug!(%err, "root shards did not rebuild the root");
                    None
                }
                Ok(None) => None,
                Err(_) => Some(Err(RequestError::Stopped)),
            };
        }
    }
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

    use warren_crypto::copies::{root_copies, ROOT_COPIES};
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

    /// A node with no peers, over a memory store the test fills by hand.
    async fn lone_node(dir: &tempfile::TempDir) -> (Node, Arc<MemoryStore>) {
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
        (node, store)
    }

    /// One node alone: the root is missing from its store while one copy is
    /// there, and the fetch gets the very root block back from that copy.
    #[tokio::test]
    async fn a_lost_root_is_rebuilt_from_its_copy() {
        let dir = tempfile::tempdir().unwrap();
        let (node, store) = lone_node(&dir).await;
        let handle = node.handle();
        let content = b"a small document";
        let (root_block, root) = ChkBlock::encode(content).unwrap();
        assert!(
            fetch_root(&handle, &root).await.is_err(),
            "nothing stored yet"
        );
        let copies = root_copies(content, &root, ROOT_COPIES).unwrap();
        // Only the last copy: the first pointer is missing, so the fetcher
        // must pass it by.
        let last = &copies[usize::from(ROOT_COPIES) - 1];
        store.put(Area::Store, &last.block).unwrap();
        store.put_ssk(&last.pointer).unwrap();
        assert_eq!(fetch_root(&handle, &root).await.unwrap(), root_block);
        // A pointer to a block that is not a copy of this root is refused.
        let (_, other) = ChkBlock::encode(b"another document").unwrap();
        assert!(fetch_root(&handle, &other).await.is_err());
        node.shutdown().await.unwrap();
    }

    /// One node alone: a tree root (5,000 bytes: 6 pieces and 18 checks) is
    /// missing, and so are three quarters of its shards; the fetch rebuilds
    /// the very root block from the quarter left.
    #[tokio::test]
    async fn a_lost_tree_root_is_rebuilt_from_a_quarter_of_its_shards() {
        let dir = tempfile::tempdir().unwrap();
        let (node, store) = lone_node(&dir).await;
        let handle = node.handle();
        let content: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let (root_block, root) = ChkBlock::encode(&content).unwrap();
        let shards = warren_crypto::shards::root_shards(&content, &root).unwrap();
        assert_eq!(shards.len(), 24);
        for shard in shards.iter().skip(7).step_by(4) {
            store.put_ssk(shard).unwrap();
        }
        assert!(
            fetch_root(&handle, &root).await.is_err(),
            "6 pieces need 6 shards; 5 are there"
        );
        store.put_ssk(&shards[0]).unwrap();
        assert_eq!(fetch_root(&handle, &root).await.unwrap(), root_block);
        node.shutdown().await.unwrap();
    }
}
