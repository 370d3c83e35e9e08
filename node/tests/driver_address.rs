//! A node learns its own address from what its peers see, over real
//! sockets: listening on 0.0.0.0 it first hands out 127.0.0.1; two peers
//! that reach it at 127.0.0.5 say so, and it hands out 127.0.0.5 from then
//! on (status and handle). A node told `--advertise` keeps what it was told.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng as _;
use warren_crypto::{Location, NodeIdentity, NodeRef};
use warren_node::driver::{Node, NodeConfig};
use warren_store::{MemoryStore, StoreConfig};

/// Learning runs with the seed check, every 10 s: well within this.
const PATIENCE: Duration = Duration::from_secs(60);

async fn start(
    dir: &std::path::Path,
    name: &str,
    config: impl FnOnce(&mut NodeConfig),
    seed: u64,
) -> Node {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let mut node_config = NodeConfig::new(
        dir.join(name),
        "127.0.0.1:0".parse().unwrap(),
        Location(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
    );
    config(&mut node_config);
    let store = Arc::new(MemoryStore::new(StoreConfig::default()));
    Node::start_with_store(node_config, NodeIdentity::generate(&mut rng), store)
        .await
        .unwrap()
}

/// `node`'s noderef as a peer that reaches it at `ip` would have it.
fn reached_at(node: &Node, ip: &str) -> NodeRef {
    let mut noderef = node.handle().noderef();
    noderef.address.set_ip(ip.parse().unwrap());
    noderef
}

async fn wait_linked(node: &Node, peers: usize) {
    let deadline = Instant::now() + PATIENCE;
    while node.handle().status().await.unwrap().peers.len() < peers {
        assert!(Instant::now() < deadline, "never linked to {peers} peers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_advertises_the_address_two_peers_see_it_at() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(
        dir.path(),
        "a",
        |c| c.listen = "0.0.0.0:0".parse().unwrap(),
        1,
    )
    .await;
    let port = a.listen_addr().port();
    let first: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(a.handle().noderef().address, first);
    let via = reached_at(&a, "127.0.0.5");
    let b = start(dir.path(), "b", |c| c.peers.push(via.clone()), 2).await;
    wait_linked(&a, 1).await;
    // One peer's word is not enough, however long it is given.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(a.handle().noderef().address, first);
    let c = start(dir.path(), "c", |c| c.peers.push(via.clone()), 3).await;
    wait_linked(&a, 2).await;
    let learnt: SocketAddr = format!("127.0.0.5:{port}").parse().unwrap();
    let deadline = Instant::now() + PATIENCE;
    while a.handle().noderef().address != learnt {
        assert!(Instant::now() < deadline, "the address was never learnt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = a.handle().status().await.unwrap();
    assert!(status.noderef.contains("127.0.0.5"), "{}", status.noderef);
    drop((b, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advertised_address_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let told: SocketAddr = "127.0.0.9:1".parse().unwrap();
    let a = start(
        dir.path(),
        "a",
        |c| {
            c.listen = "0.0.0.0:0".parse().unwrap();
            c.advertise = Some(told);
        },
        4,
    )
    .await;
    let port = a.listen_addr().port();
    let mut via = a.handle().noderef();
    via.address = format!("127.0.0.5:{port}").parse().unwrap();
    let b = start(dir.path(), "b", |c| c.peers.push(via.clone()), 5).await;
    let c = start(dir.path(), "c", |c| c.peers.push(via.clone()), 6).await;
    wait_linked(&a, 2).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(a.handle().noderef().address, told);
    drop((b, c));
}
