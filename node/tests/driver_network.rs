//! The tokio driver over real sockets: eight in-process nodes on loopback in a
//! ring, each with its own store, and a chain of fresh nodes hanging off it,
//! so a fetch at the chain's end crosses a known number of hops.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::SeedableRng as _;
use warren_crypto::{Location, NodeIdentity};
use warren_node::client;
use warren_node::driver::{Node, NodeConfig};
use warren_store::{MemoryStore, StoreConfig};

const NODES: usize = 8;
/// Longest wait for the next chunk of a fetch: a stalled fetch fails, never hangs.
const CHUNK_PATIENCE: Duration = Duration::from_secs(60);

/// Starts `NODES` nodes in a ring (each dials the previous one), evenly spaced
/// on the circle. Node 0 uses a real sled store; the rest use memory stores.
async fn ring(dir: &std::path::Path) -> Vec<Node> {
    ring_with(dir, false).await
}

/// [`ring`], with the max-HTL walk on every node if `walk`.
async fn ring_with(dir: &std::path::Path, walk: bool) -> Vec<Node> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..NODES {
        let location = Location(((i as u128) << 64).div_euclid(NODES as u128) as u64);
        let mut config = NodeConfig::new(
            dir.join(format!("node-{i}")),
            "127.0.0.1:0".parse().unwrap(),
            location,
        );
        if walk {
            config.routing = config.routing.with_max_htl_walk();
        }
        if let Some(prev) = nodes.last() {
            config.peers.push(prev.handle().noderef().clone());
        }
        if i == NODES - 1 {
            config.peers.push(nodes[0].handle().noderef().clone());
        }
        let identity = NodeIdentity::generate(&mut rng);
        let node = if i == 0 {
            Node::start(config, identity).await.unwrap()
        } else {
            let store = Arc::new(MemoryStore::new(StoreConfig::default()));
            Node::start_with_store(config, identity, store)
                .await
                .unwrap()
        };
        nodes.push(node);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for node in &nodes {
        while node.handle().status().await.unwrap().peers.len() < 2 {
            assert!(Instant::now() < deadline, "ring never connected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    nodes
}

/// Adds `len` fresh nodes in a chain off `anchor` (each dials the one before);
/// returns them, the far end last.
async fn chain(dir: &std::path::Path, anchor: &Node, len: usize) -> Vec<Node> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
    let mut chain: Vec<Node> = Vec::new();
    for i in 0..len {
        let prev = chain.last().map_or_else(|| anchor.handle(), Node::handle);
        let location = Location(prev.noderef().location.0 ^ 1);
        let mut config = NodeConfig::new(
            dir.join(format!("chain-{i}")),
            "127.0.0.1:0".parse().unwrap(),
            location,
        );
        config.peers.push(prev.noderef().clone());
        let store = Arc::new(MemoryStore::new(StoreConfig::default()));
        let node = Node::start_with_store(config, NodeIdentity::generate(&mut rng), store)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while node.handle().status().await.unwrap().peers.is_empty() {
            assert!(Instant::now() < deadline, "chain node {i} never linked");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        chain.push(node);
    }
    chain
}

async fn bytes_sent(node: &Node) -> u64 {
    node.handle().status().await.unwrap().links.bytes_sent
}

fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut data = vec![0u8; len];
    rand::RngCore::fill_bytes(&mut rng, &mut data);
    data
}

async fn fetch_all(node: &Node, uri: &warren_crypto::ChkUri) -> Vec<u8> {
    let mut stream = client::fetch(&node.handle(), uri.clone()).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = tokio::time::timeout(CHUNK_PATIENCE, stream.chunks.recv())
        .await
        .expect("the fetch stalled")
    {
        out.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(out.len() as u64, stream.length);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_at_the_end_of_a_chain_crosses_every_relay() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = ring(dir.path()).await;

    // A multi-segment splitfile and a single block, inserted at node 0 ...
    let big = content(5 * 1024 * 1024 + 77, 1);
    let small = b"one block of text".to_vec();
    let mut uris = Vec::new();
    for data in [&big, &small] {
        let chunks =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(data.clone()))]);
        uris.push(
            client::insert_stream(&nodes[0].handle(), chunks, None)
                .await
                .unwrap(),
        );
    }
    // ... and fetched at the end of a chain of three fresh nodes that joined
    // after the inserts: every block crosses the two relays of the chain and
    // the hop into the ring, whatever ring node holds it.
    let chain = chain(dir.path(), &nodes[4], 3).await;
    let fetcher = chain.last().unwrap();
    for (data, uri) in [&big, &small].into_iter().zip(&uris) {
        let before = [bytes_sent(&chain[0]).await, bytes_sent(&chain[1]).await];
        assert_eq!(&fetch_all(fetcher, uri).await, data);
        for (relay, before) in chain[..2].iter().zip(before) {
            let sent = bytes_sent(relay).await - before;
            assert!(
                sent >= data.len() as u64,
                "a chain relay sent {sent} bytes for {} bytes fetched",
                data.len()
            );
        }
    }
    for node in chain {
        node.shutdown().await.unwrap();
    }

    // A key nobody inserted fails cleanly with "not found".
    let (_, key) = warren_crypto::ChkBlock::encode(b"never inserted").unwrap();
    let uri = warren_crypto::ChkUri::new(key, warren_crypto::Extra::DATA);
    let err = client::fetch(&nodes[5].handle(), uri).await.unwrap_err();
    assert!(matches!(err, client::ClientError::NotFound(_)), "{err}");

    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_max_htl_walk_a_splitfile_and_a_missing_key_fetch_as_without() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = ring_with(dir.path(), true).await;
    let data = content(3 * 1024 * 1024 + 5, 2);
    let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(data.clone()))]);
    let uri = client::insert_stream(&nodes[0].handle(), chunks, None)
        .await
        .unwrap();
    for at in [4, 7] {
        assert_eq!(
            fetch_all(&nodes[at], &uri).await,
            data,
            "fetched at node {at}"
        );
    }
    let (_, key) = warren_crypto::ChkBlock::encode(b"never inserted, walk").unwrap();
    let missing = warren_crypto::ChkUri::new(key, warren_crypto::Extra::DATA);
    let err = client::fetch(&nodes[2].handle(), missing)
        .await
        .unwrap_err();
    assert!(matches!(err, client::ClientError::NotFound(_)), "{err}");
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_leaving_mid_network_is_routed_around() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = ring(dir.path()).await;
    let data = content(2 * 1024 * 1024, 2);
    let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(data.clone()))]);
    let uri = client::insert_stream(&nodes[0].handle(), chunks, None)
        .await
        .unwrap();
    // Node 2 leaves: node 3 can still reach node 0's side of the ring the
    // other way round, and FEC covers blocks that only node 2 held.
    nodes.remove(2).shutdown().await.unwrap();
    assert_eq!(fetch_all(&nodes[2], &uri).await, data);
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}
