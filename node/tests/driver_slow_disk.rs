//! A disk that does not answer cannot stall routing: block writes run on the
//! store writer's thread, and the event loop keeps serving while one hangs,
//! blocks still queued for the disk included.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::SeedableRng as _;
use warren_crypto::{ChkBlock, Location, NodeIdentity, RoutingKey, SskBlock};
use warren_node::client;
use warren_node::driver::{Node, NodeConfig};
use warren_store::{Area, BlockStore, MemoryStore, StoreConfig, StoreError, StoreStats};

const PATIENCE: Duration = Duration::from_secs(30);

/// A store whose writes wait until the test opens the gate.
struct GatedStore {
    inner: MemoryStore,
    open: Mutex<bool>,
    opened: Condvar,
    puts_started: AtomicU64,
}

impl GatedStore {
    fn open_gate(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl BlockStore for GatedStore {
    fn get(&self, key: &RoutingKey) -> Result<Option<ChkBlock>, StoreError> {
        self.inner.get(key)
    }
    fn contains(&self, key: &RoutingKey) -> Result<bool, StoreError> {
        self.inner.contains(key)
    }
    fn put(&self, area: Area, block: &ChkBlock) -> Result<(), StoreError> {
        self.puts_started.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        drop(open);
        self.inner.put(area, block)
    }
    fn get_ssk(&self, key: &RoutingKey) -> Result<Option<SskBlock>, StoreError> {
        self.inner.get_ssk(key)
    }
    fn put_ssk(&self, block: &SskBlock) -> Result<(), StoreError> {
        self.inner.put_ssk(block)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_disk_write_does_not_stall_the_event_loop() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let gated = Arc::new(GatedStore {
        inner: MemoryStore::new(StoreConfig::default()),
        open: Mutex::new(false),
        opened: Condvar::new(),
        puts_started: AtomicU64::new(0),
    });
    let config = NodeConfig::new(
        dir.path().join("slow"),
        "127.0.0.1:0".parse().unwrap(),
        Location(1),
    );
    let slow = Node::start_with_store(config, NodeIdentity::generate(&mut rng), gated.clone())
        .await
        .unwrap();
    let mut config = NodeConfig::new(
        dir.path().join("fast"),
        "127.0.0.1:0".parse().unwrap(),
        Location(u64::MAX / 2),
    );
    config.peers.push(slow.handle().noderef().clone());
    let fast_store = Arc::new(MemoryStore::new(StoreConfig::default()));
    let fast = Node::start_with_store(config, NodeIdentity::generate(&mut rng), fast_store)
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while slow.handle().status().await.unwrap().peers.is_empty() {
        assert!(Instant::now() < deadline, "never linked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The insert ends at the slow node (its only peer), whose write hangs.
    let data = Bytes::from_static(b"a block for a slow disk");
    let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(data)]);
    let uri = tokio::time::timeout(
        PATIENCE,
        client::insert_stream(&fast.handle(), chunks, None),
    )
    .await
    .expect("the insert is answered while the disk hangs")
    .unwrap();
    while gated.puts_started.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the slow node never wrote");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // With a write hanging, the slow node still answers (its event loop
    // runs), and still routes: a fetch through it gets an answer.
    let status = tokio::time::timeout(PATIENCE, slow.handle().status())
        .await
        .expect("the event loop answers while the disk hangs")
        .unwrap();
    assert_eq!(status.peers.len(), 1);
    let (_, missing) = ChkBlock::encode(b"never inserted").unwrap();
    let answer = tokio::time::timeout(PATIENCE, fast.handle().fetch_block(missing.routing))
        .await
        .expect("a request through the slow node is answered");
    assert!(answer.is_err());

    // What the slow node is still writing it already serves: the insert was
    // answered, so the next request must find the block.
    let key = uri.key.routing;
    let found = tokio::time::timeout(PATIENCE, fast.handle().fetch_block(key))
        .await
        .expect("a request for the queued block is answered");
    assert!(
        found.is_ok(),
        "a block queued for the disk is not served: {found:?}"
    );
    assert!(!gated.inner.contains(&key).unwrap(), "the gate leaked");

    // Once the disk answers, the block is written.
    gated.open_gate();
    while !gated.inner.contains(&key).unwrap() {
        assert!(Instant::now() < deadline, "the write never completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fast.shutdown().await.unwrap();
    slow.shutdown().await.unwrap();
}
