//! The operator's bandwidth limit over real sockets: a limited node carries
//! what its limit allows and no more, and when it is saturated it refuses
//! requests (`Overloaded`) so its neighbours route around it.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{RngCore as _, SeedableRng as _};
use warren_crypto::splitfile::{encode_bytes, Encoded};
use warren_crypto::{Location, NodeIdentity, NodeRef};
use warren_node::client;
use warren_node::driver::{Node, NodeConfig, NodeHandle};
use warren_store::{Area, BlockStore, MemoryStore, StoreConfig};

const KIB: u64 = 1024;
const MIB: usize = 1 << 20;
/// The most a bucket lets through beyond its rate (see `link::bandwidth`):
/// its burst (a quarter second, at least 128 KiB) and one batch of frames
/// taken while it was not yet in debt (the link's 256 KiB write high water).
fn allowance(rate: u64) -> u64 {
    (rate / 4).max(128 * KIB) + 256 * KIB + 34 * KIB
}

fn document(len: usize, seed: u64) -> (Vec<u8>, Encoded) {
    let mut content = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut content);
    let encoded = encode_bytes(&content, None).unwrap();
    (content, encoded)
}

/// A node whose store already holds `blocks`, dialling `peers`.
async fn holder(
    dir: &std::path::Path,
    name: &str,
    location: Location,
    peers: &[NodeRef],
    encoded: Option<&Encoded>,
    limit_out: Option<u64>,
) -> Node {
    let store = Arc::new(MemoryStore::new(StoreConfig {
        store_bytes: 256 * MIB as u64,
        ..StoreConfig::default()
    }));
    for block in encoded.iter().flat_map(|e| &e.blocks) {
        store.put(Area::Store, block).unwrap();
    }
    let mut config = NodeConfig::new(dir.join(name), "127.0.0.1:0".parse().unwrap(), location);
    config.peers = peers.to_vec();
    config.limit_bandwidth(limit_out, None);
    let seed = u64::from(name.as_bytes()[0]);
    let identity = NodeIdentity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed));
    Node::start_with_store(config, identity, store)
        .await
        .unwrap()
}

/// The limited node of both tests: it holds the document and dials no one.
async fn limited_source(dir: &std::path::Path, encoded: &Encoded, rate: u64) -> Node {
    holder(
        dir,
        "limited",
        Location(1 << 62),
        &[],
        Some(encoded),
        Some(rate),
    )
    .await
}

async fn wait_for_peers(node: &NodeHandle, peers: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.status().await.unwrap().peers.len() < peers {
        assert!(Instant::now() < deadline, "the nodes never linked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Bytes this node's links put on the wire (not merely queued).
async fn bytes_sent(node: &NodeHandle) -> u64 {
    let status = node.status().await.unwrap();
    status.peers.iter().map(|peer| peer.bytes_sent).sum()
}

async fn read_all(mut stream: client::ContentStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(120), stream.chunks.recv())
        .await
        .expect("the fetch stalled")
    {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// A node limited to 512 KiB/s out, the only source of a 24 MiB document,
/// is read by a neighbour for 30 s: it sends within 10% of 512 KiB/s, and
/// never more than the limit plus the bucket's stated allowance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_node_carries_its_limit_and_never_more() {
    const RATE: u64 = 512 * KIB;
    const WINDOW: Duration = Duration::from_secs(30);
    let dir = tempfile::tempdir().unwrap();
    let (_, encoded) = document(24 * MIB, 1);
    let limited = limited_source(dir.path(), &encoded, RATE).await;
    let reader = holder(
        dir.path(),
        "reader",
        Location(3 << 62),
        &[limited.handle().noderef().clone()],
        None,
        None,
    )
    .await;
    wait_for_peers(&reader.handle(), 1).await;

    let stream = client::fetch(&reader.handle(), encoded.uri.clone())
        .await
        .unwrap();
    let fetch = tokio::spawn(read_all(stream));
    // Skip the first two seconds: the bucket starts full (its burst).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (start, before) = (Instant::now(), bytes_sent(&limited.handle()).await);
    let mut samples = Vec::new();
    while start.elapsed() < WINDOW {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (elapsed, sent) = (
            start.elapsed(),
            bytes_sent(&limited.handle()).await - before,
        );
        // At every sample, never more than the limit allows.
        let most = (RATE as f64 * elapsed.as_secs_f64()) as u64 + allowance(RATE);
        assert!(
            sent <= most,
            "{sent} bytes in {elapsed:?}: over the {RATE} B/s limit"
        );
        samples.push((elapsed, sent));
    }
    let (elapsed, sent) = *samples.last().unwrap();
    let rate = sent as f64 / elapsed.as_secs_f64();
    println!(
        "limited to {} KiB/s: carried {:.1} KiB/s over {:.1} s ({:.1}% of the limit)",
        RATE / KIB,
        rate / KIB as f64,
        elapsed.as_secs_f64(),
        100.0 * rate / RATE as f64
    );
    assert!(
        rate >= 0.9 * RATE as f64,
        "a saturated limited node carried only {rate:.0} B/s of {RATE}"
    );
    fetch.abort();
    reader.shutdown().await.unwrap();
    limited.shutdown().await.unwrap();
}

/// A reader with two neighbours that both hold a document, one of them
/// limited to 64 KiB/s: the limited one refuses what it cannot carry, the
/// reader routes those requests to the other, and the document arrives
/// whole, most of it from the unlimited neighbour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_node_is_routed_around() {
    const RATE: u64 = 64 * KIB;
    let dir = tempfile::tempdir().unwrap();
    let (content, encoded) = document(6 * MIB, 2);
    let limited = limited_source(dir.path(), &encoded, RATE).await;
    let open = holder(
        dir.path(),
        "open",
        Location(3 << 62),
        &[],
        Some(&encoded),
        None,
    )
    .await;
    let reader = holder(
        dir.path(),
        "reader",
        Location(2 << 62),
        &[
            limited.handle().noderef().clone(),
            open.handle().noderef().clone(),
        ],
        None,
        None,
    )
    .await;
    wait_for_peers(&reader.handle(), 2).await;

    let start = Instant::now();
    let (limited_before, open_before) = (
        bytes_sent(&limited.handle()).await,
        bytes_sent(&open.handle()).await,
    );
    let stream = client::fetch(&reader.handle(), encoded.uri.clone())
        .await
        .unwrap();
    let got = read_all(stream).await;
    let elapsed = start.elapsed();
    assert!(got == content, "the document differs");
    let limited_sent = bytes_sent(&limited.handle()).await - limited_before;
    let open_sent = bytes_sent(&open.handle()).await - open_before;
    let status = limited.handle().status().await.unwrap();
    let refused = status.routing["overloaded_sent"].as_u64().unwrap();
    println!(
        "6 MiB in {:.1} s: limited neighbour sent {} KiB (refused {refused} requests), \
         unlimited neighbour {} KiB",
        elapsed.as_secs_f64(),
        limited_sent / KIB,
        open_sent / KIB
    );
    assert!(refused > 0, "the saturated node never refused a request");
    let most = (RATE as f64 * elapsed.as_secs_f64()) as u64 + allowance(RATE);
    assert!(
        limited_sent <= most,
        "the limited node sent {limited_sent} bytes in {elapsed:?}"
    );
    assert!(
        open_sent >= content.len() as u64 / 2,
        "the unlimited neighbour carried only {open_sent} bytes"
    );
    reader.shutdown().await.unwrap();
    open.shutdown().await.unwrap();
    limited.shutdown().await.unwrap();
}
