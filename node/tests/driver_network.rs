//! The tokio driver over real sockets: eight in-process nodes on loopback in a
//! ring, each with its own store, fetching content inserted several hops away.

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
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..NODES {
        let location = Location(((i as u128) << 64).div_euclid(NODES as u128) as u64);
        let mut config = NodeConfig::new(
            dir.join(format!("node-{i}")),
            "127.0.0.1:0".parse().unwrap(),
            location,
        );
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
async fn eight_nodes_fetch_across_several_hops() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = ring(dir.path()).await;

    // A multi-segment splitfile and a single block, inserted at node 0 and
    // fetched at node 4, four hops round the ring either way.
    let big = content(5 * 1024 * 1024 + 77, 1);
    let small = b"one block of text".to_vec();
    for data in [big, small] {
        let chunks =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(data.clone()))]);
        let uri = client::insert_stream(&nodes[0].handle(), chunks, None)
            .await
            .unwrap();
        assert_eq!(fetch_all(&nodes[4], &uri).await, data);
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
