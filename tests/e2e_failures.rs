//! Fetches that fail after they started: one node (in this process, on real
//! loopback sockets) whose store holds a document with most of its only
//! segment gone, fetched by the real `warren fetch` process and through the
//! gateway. The failure must be one line naming the segment and how many of
//! its blocks were found, never a transport message, and no file (not even a
//! partial one) may be left behind.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use warren_crypto::{encode_bytes, Location, NodeIdentity, BLOCK_PAYLOAD};
use warren_node::driver::{Node, NodeConfig};
use warren_node::http::{self, ApiToken, HttpConfig, Listeners, API_TOKEN_FILE};
use warren_store::{Area, BlockStore, MemoryStore, StoreConfig};

/// A node serving its API and gateway, alive until dropped.
struct LoneNode {
    runtime: tokio::runtime::Runtime,
    node: Option<Node>,
    shutdown: CancellationToken,
    api: String,
    gateway: String,
    dir: tempfile::TempDir,
}

impl LoneNode {
    fn start(store: Arc<MemoryStore>) -> LoneNode {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let shutdown = CancellationToken::new();
        let (node, api, gateway) = runtime.block_on(async {
            let config = NodeConfig::new(
                dir.path().join("node"),
                "127.0.0.1:0".parse().unwrap(),
                Location(1 << 63),
            );
            let identity = NodeIdentity::generate(&mut rand::rngs::OsRng);
            let node = Node::start_with_store(config, identity, store)
                .await
                .unwrap();
            let listeners = Listeners {
                api: http::bind("127.0.0.1:0".parse().unwrap(), false)
                    .await
                    .unwrap(),
                gateway: http::bind("127.0.0.1:0".parse().unwrap(), false)
                    .await
                    .unwrap(),
            };
            let api = listeners.api.local_addr().unwrap().to_string();
            let gateway = listeners.gateway.local_addr().unwrap().to_string();
            let token = ApiToken::generate();
            token.write_file(&dir.path().join(API_TOKEN_FILE)).unwrap();
            tokio::spawn(http::serve(
                listeners,
                node.handle(),
                token,
                HttpConfig::default(),
                shutdown.clone(),
            ));
            (node, api, gateway)
        });
        LoneNode {
            runtime,
            node: Some(node),
            shutdown,
            api,
            gateway,
            dir,
        }
    }
}

impl Drop for LoneNode {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(node) = self.node.take() {
            let _ = self.runtime.block_on(node.shutdown());
        }
    }
}

/// A 7-block file (one segment of 7 data + 7 check blocks) of which the store
/// keeps the root and 3 data blocks: 4 are needed past those.
fn damaged_document() -> (Arc<MemoryStore>, String) {
    let data: Vec<u8> = (0..7 * BLOCK_PAYLOAD - 100)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let encoded = encode_bytes(&data, Some("text/plain".into())).unwrap();
    let store = Arc::new(MemoryStore::new(StoreConfig::default()));
    let (root, rest) = encoded.blocks.split_last().unwrap();
    assert_eq!(rest.len(), 14, "7 data and 7 check blocks");
    store.put(Area::Store, root).unwrap();
    for block in &rest[..3] {
        store.put(Area::Store, block).unwrap();
    }
    (store, encoded.uri.to_string())
}

#[test]
fn a_fetch_that_fails_part_way_says_which_segment_and_leaves_nothing() {
    let (store, key) = damaged_document();
    let node = LoneNode::start(store);
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("file.txt");
    let output = support::warren(&[
        "fetch",
        &key,
        "-o",
        out.to_str().unwrap(),
        "--api",
        &node.api,
        "--data-dir",
        node.dir.path().to_str().unwrap(),
    ]);
    let stderr = support::stderr(&output);
    assert!(!output.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    let line = lines[0];
    for part in [
        "segment 0 (of 1",
        "of its 14 blocks are missing (3 found, 7 needed",
        "evicted from the network or never inserted",
    ] {
        assert!(line.contains(part), "{part:?} not in {line}");
    }
    assert!(!line.to_lowercase().contains("disconnect"), "{line}");
    assert_eq!(
        std::fs::read_dir(out_dir.path()).unwrap().count(),
        0,
        "no file, not even a partial one, is left"
    );

    // The gateway: an HTML page saying the same.
    let mut stream = TcpStream::connect(&node.gateway).unwrap();
    write!(
        stream,
        "GET /{key} HTTP/1.1\r\nHost: {}\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
        node.gateway
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(answer.contains("text/html"), "{answer}");
    assert!(
        answer.contains("evicted from the network or never inserted"),
        "{answer}"
    );
    assert!(answer.contains("segment 0 (of 1"), "{answer}");
}

#[test]
fn a_lost_root_says_so_in_one_line() {
    let (store, key) = damaged_document();
    // Another document's key: this store has nothing of it.
    drop(store);
    let node = LoneNode::start(Arc::new(MemoryStore::new(StoreConfig::default())));
    let out_dir = tempfile::tempdir().unwrap();
    let output = support::warren(&[
        "fetch",
        &key,
        "-o",
        out_dir.path().join("f").to_str().unwrap(),
        "--api",
        &node.api,
        "--data-dir",
        node.dir.path().to_str().unwrap(),
    ]);
    let stderr = support::stderr(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("nor any of its copies: evicted from the network or never inserted"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 0);
}
