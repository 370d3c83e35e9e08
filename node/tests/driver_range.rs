//! Byte ranges of a large file fetch only the blocks that hold them: one
//! node whose store has the file's blocks, read through `client::locate`,
//! counting the block fetches the node served.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use rand::{RngCore as _, SeedableRng as _};
use warren_crypto::splitfile::encode_bytes;
use warren_crypto::{Location, NodeIdentity, BLOCK_PAYLOAD};
use warren_node::client;
use warren_node::driver::{Node, NodeConfig, NodeHandle};
use warren_store::{Area, BlockStore, MemoryStore, StoreConfig};

const MIB: usize = 1 << 20;
const FILE_LEN: usize = 40 * MIB;

async fn fetches(node: &NodeHandle) -> u64 {
    node.status().await.unwrap().local.fetches()
}

async fn read(node: &NodeHandle, uri: &warren_crypto::ChkUri, start: u64, len: u64) -> Vec<u8> {
    let located = client::locate(node, uri.clone()).await.unwrap();
    assert_eq!(located.length, FILE_LEN as u64);
    let mut stream = located.read(start, len);
    let mut out = Vec::new();
    while let Some(chunk) = stream.chunks.recv().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_mebibyte_of_a_large_file_fetches_only_its_blocks() {
    let mut content = vec![0u8; FILE_LEN];
    rand_chacha::ChaCha8Rng::seed_from_u64(3).fill_bytes(&mut content);
    let encoded = encode_bytes(&content, Some("video/webm".into())).unwrap();
    let total_blocks = encoded.blocks.len();
    let store = Arc::new(MemoryStore::new(StoreConfig {
        store_bytes: 4 * FILE_LEN as u64,
        ..StoreConfig::default()
    }));
    // One data block 3 MiB before the end is lost: a range over it is
    // recovered from its segment's check blocks.
    let lost_at = FILE_LEN - 3 * MIB;
    let (lost_block, _) =
        warren_crypto::ChkBlock::encode(&content[lost_at..lost_at + BLOCK_PAYLOAD]).unwrap();
    for block in &encoded.blocks {
        if block.routing_key() != lost_block.routing_key() {
            store.put(Area::Store, block).unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig::new(
        dir.path().join("node"),
        "127.0.0.1:0".parse().unwrap(),
        Location(1),
    );
    let identity = NodeIdentity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(4));
    let node = Node::start_with_store(config, identity, store)
        .await
        .unwrap();
    let handle = node.handle();

    let before = fetches(&handle).await;
    let start = (FILE_LEN - MIB) as u64;
    let tail = read(&handle, &encoded.uri, start, MIB as u64).await;
    assert!(tail == content[FILE_LEN - MIB..], "the last MiB differs");
    let asked = fetches(&handle).await - before;
    let data_blocks = (MIB / BLOCK_PAYLOAD) as u64;
    // The root, the blocks of the split manifest (its data half) and the
    // range's 32 data blocks; the whole file is over 2 500 blocks.
    println!("range of the last MiB: {asked} block fetches of {total_blocks} blocks in the file");
    assert!(
        asked >= data_blocks && asked <= data_blocks + 16,
        "{asked} block fetches for a 1 MiB range"
    );
    assert!(total_blocks > 2_500);

    // A range over the lost block: its segment is decoded from the rest.
    let before = fetches(&handle).await;
    let piece = read(&handle, &encoded.uri, lost_at as u64 + 10, 100).await;
    assert!(
        piece == content[lost_at + 10..lost_at + 110],
        "recovered bytes differ"
    );
    let asked = fetches(&handle).await - before;
    println!("range over a lost block: {asked} block fetches");
    assert!(asked > 128, "a lost block needs a segment's worth: {asked}");
    node.shutdown().await.unwrap();
}
