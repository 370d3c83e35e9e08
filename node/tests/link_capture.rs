//! What an observer of the socket sees during a block transfer: no
//! plaintext, no routing key, no filename, and frames of a few fixed sizes.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod link_support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use link_support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use warren_crypto::{ChkBlock, BLOCK_LEN};
use warren_node::link::{
    connect, AnyPeer, LinkEvent, MAX_FRAME_LEN, MSG1_LEN, MSG2_LEN, MSG3_LEN, PAD_SIZES,
};

/// Shortest run of secret bytes we insist never shows on the wire.
const WINDOW: usize = 12;
const SECRET_TEXT: &[u8] = b"Meet at the old mill at dawn; bring the ledgers. ";
const FILENAME: &[u8] = b"whistleblower-evidence-2026.pdf";
const BLOCKS: usize = 3;

/// Copy one direction, recording every byte.
async fn tap(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    log: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        log.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Every `WINDOW`-byte run of a capture, for fast lookups.
fn windows(capture: &[u8]) -> HashSet<&[u8]> {
    capture.windows(WINDOW).collect()
}

/// Whether any `WINDOW`-byte run of `secret` appears in the capture.
fn leaks(capture: &HashSet<&[u8]>, secret: &[u8]) -> bool {
    secret.windows(WINDOW).any(|w| capture.contains(w))
}

/// Split a recorded direction into frame lengths.
fn frame_lengths(mut stream: &[u8]) -> Vec<usize> {
    let mut lengths = Vec::new();
    while stream.len() >= 2 {
        let len = u16::from_be_bytes([stream[0], stream[1]]) as usize;
        assert!(stream.len() >= 2 + len, "capture ends mid-frame");
        lengths.push(len);
        stream = &stream[2 + len..];
    }
    assert!(stream.is_empty());
    lengths
}

#[tokio::test]
async fn the_wire_shows_no_content_keys_or_names() {
    let (mut listener, _) = listen(1, quick_config(), Arc::new(AnyPeer)).await;
    let server_ref = listener.noderef().clone();
    // An observer in the middle.
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut via_proxy = server_ref.clone();
    via_proxy.address = proxy.local_addr().unwrap();
    let (up, down) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    let relay = {
        let (up, down) = (up.clone(), down.clone());
        tokio::spawn(async move {
            let (client, _) = proxy.accept().await.unwrap();
            let server = TcpStream::connect(server_ref.address).await.unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::join!(tap(cr, sw, up), tap(sr, cw, down));
        })
    };

    let caller = identity(2);
    let local = noderef(&caller, "127.0.0.1:1".parse().unwrap());
    let config = quick_config();
    let (dialled, accepted) = tokio::join!(
        connect(caller, local, &via_proxy, &config),
        listener.accept()
    );
    let (a_tx, _a_rx) = mpsc::channel(EVENTS);
    let (b_tx, mut b_rx) = mpsc::channel(EVENTS);
    let a = dialled.unwrap().spawn(a_tx);
    let _b = accepted.unwrap().spawn(b_tx);

    // What a routing message carrying a block might hold: the routing key,
    // the block, and (carelessly) a filename.
    let plaintext = SECRET_TEXT.repeat(BLOCK_LEN / SECRET_TEXT.len() / 2);
    let mut secrets = vec![plaintext.clone(), FILENAME.to_vec()];
    let mut last_message = Vec::new();
    for i in 0..BLOCKS {
        let mut content = plaintext.clone();
        content.push(i as u8);
        let (block, key) = ChkBlock::encode(&content).unwrap();
        let mut message = key.routing.as_bytes().to_vec();
        message.extend_from_slice(FILENAME);
        message.extend_from_slice(block.as_bytes());
        secrets.push(key.routing.as_bytes().to_vec());
        secrets.push(block.as_bytes()[..4096].to_vec());
        a.send(Bytes::from(message.clone())).await.unwrap();
        let LinkEvent::Received { payload, .. } = next_event(&mut b_rx).await else {
            panic!()
        };
        assert_eq!(payload, message, "the block arrived intact");
        last_message = message;
    }
    a.send(Bytes::from_static(b"short control-sized message"))
        .await
        .unwrap();
    let _ = next_event(&mut b_rx).await;
    a.shutdown().await;
    tokio::time::timeout(PATIENCE, relay)
        .await
        .expect("the link did not close both directions in time")
        .unwrap();

    let (up, down) = (up.lock().unwrap().clone(), down.lock().unwrap().clone());
    assert!(
        up.len() > BLOCKS * BLOCK_LEN,
        "the capture holds the transfer"
    );
    let (up_w, down_w) = (windows(&up), windows(&down));
    for secret in &secrets {
        assert!(!leaks(&up_w, secret), "secret bytes visible caller->callee");
        assert!(
            !leaks(&down_w, secret),
            "secret bytes visible callee->caller"
        );
    }
    // The detector does find a secret where there is one.
    assert!(leaks(&windows(&last_message), FILENAME));
    // Handshake sizes are fixed; after it every frame is a padded size.
    let up_frames = frame_lengths(&up);
    let down_frames = frame_lengths(&down);
    assert_eq!(&up_frames[..2], &[MSG1_LEN, MSG3_LEN]);
    assert_eq!(down_frames[0], MSG2_LEN);
    for &len in up_frames[2..].iter().chain(&down_frames[1..]) {
        assert!(
            PAD_SIZES.iter().any(|p| p + 16 == len) && len <= MAX_FRAME_LEN,
            "frame of {len}"
        );
    }
    // The blocks and the short message differ only in size class.
    assert_eq!(
        up_frames.iter().filter(|&&l| l == MAX_FRAME_LEN).count(),
        BLOCKS
    );
}
