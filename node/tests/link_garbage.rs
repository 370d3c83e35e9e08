//! Peers that send garbage, oversize, truncated or stalled frames are cut
//! off with a reason; the listener and other links carry on.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod link_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use link_support::*;
use rand::{Rng as _, RngCore as _, SeedableRng as _};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use warren_crypto::{NodeRef, BLOCK_LEN};
use warren_node::link::{connect, AnyPeer, CloseReason, LinkEvent, RunError};

/// How long the garbage storm lasts.
const STORM: Duration = Duration::from_secs(3);
/// Unauthenticated and authenticated garbage senders running at once.
const STORM_PEERS: usize = 3;
/// Largest random chunk a garbage sender writes at once.
const MAX_CHUNK: usize = 70_000;

/// Write random bytes to fresh connections until `stop`; with `auth`, first
/// complete a real handshake. Returns how many connections it used.
async fn storm(remote: NodeRef, seed: u64, auth: bool, stop: tokio::time::Instant) -> usize {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let me = identity(100 + seed);
    let mut connections = 0;
    while tokio::time::Instant::now() < stop {
        connections += 1;
        let mut stream = if auth {
            RawPeer::connect(&remote, &me, &noderef(&me, "127.0.0.1:1".parse().unwrap()))
                .await
                .stream
        } else {
            TcpStream::connect(remote.address).await.unwrap()
        };
        let mut chunk = vec![0u8; MAX_CHUNK];
        while tokio::time::Instant::now() < stop {
            let len = rng.gen_range(1..MAX_CHUNK);
            rng.fill_bytes(&mut chunk[..len]);
            if stream.write_all(&chunk[..len]).await.is_err() {
                break; // cut off, as it should be: dial again
            }
            tokio::task::yield_now().await;
        }
    }
    connections
}

fn block(seq: u32) -> Bytes {
    let mut payload = vec![(seq % 251) as u8; BLOCK_LEN];
    payload[..4].copy_from_slice(&seq.to_be_bytes());
    Bytes::from(payload)
}

#[tokio::test]
async fn random_bytes_peers_do_not_disturb_real_transfers() {
    let (listener, _) = listen(1, quick_config(), Arc::new(AnyPeer)).await;
    let remote = listener.noderef().clone();
    let (tx, mut server_events) = mpsc::channel(EVENTS);
    let _server = serve(listener, tx);

    let caller = identity(2);
    let local = noderef(&caller, "127.0.0.1:1".parse().unwrap());
    let (caller_tx, mut caller_events) = mpsc::channel(EVENTS);
    let link = connect(caller.clone(), local, &remote, &quick_config())
        .await
        .unwrap()
        .spawn(caller_tx);

    let stop = tokio::time::Instant::now() + STORM;
    let mut storms = Vec::new();
    for i in 0..STORM_PEERS as u64 {
        storms.push(tokio::spawn(storm(remote.clone(), i, false, stop)));
        storms.push(tokio::spawn(storm(remote.clone(), 50 + i, true, stop)));
    }

    // The server side checks every block from the real caller arrives, in
    // order, intact, and acknowledges it; it counts garbage links closed.
    let (ack_tx, mut acks) = mpsc::channel::<u32>(1);
    let failures = Arc::new(AtomicUsize::new(0));
    let checker = {
        let failures = failures.clone();
        let caller_key = caller.public();
        tokio::spawn(async move {
            let mut expected = 0u32;
            while let Some(event) = server_events.recv().await {
                match event {
                    LinkEvent::Received { peer, payload, .. } => {
                        assert_eq!(peer, caller_key, "only the real caller delivers payloads");
                        assert_eq!(payload, block(expected));
                        let _ = ack_tx.send(expected).await;
                        expected += 1;
                    }
                    LinkEvent::Closed { peer, reason, .. } => {
                        assert_ne!(peer, caller_key, "the real link closed: {reason}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        })
    };

    let mut sent = 0u32;
    while tokio::time::Instant::now() < stop {
        link.send(block(sent)).await.unwrap();
        let acked = tokio::time::timeout(PATIENCE, acks.recv()).await.unwrap();
        assert_eq!(acked, Some(sent));
        sent += 1;
    }
    let mut connections = 0;
    for s in storms {
        connections += s.await.unwrap();
    }
    assert!(sent > 10, "the real link kept moving blocks");
    assert!(
        connections > 2 * STORM_PEERS,
        "garbage senders were cut off and redialled"
    );
    assert!(
        failures.load(Ordering::Relaxed) > 0,
        "authenticated garbage links closed with a reason"
    );
    assert!(
        !link.is_closed() && caller_events.try_recv().is_err(),
        "the real link is still up"
    );
    assert_eq!(link.stats().payloads_shed, 0);
    assert!(!checker.is_finished(), "the checker saw no bad event");
}

/// A peer that completed the handshake, for sending it crafted bytes.
async fn authenticated_peer() -> (
    RawPeer,
    mpsc::Receiver<LinkEvent>,
    tokio::task::JoinHandle<Vec<warren_node::link::LinkHandle>>,
) {
    let mut config = quick_config();
    config.idle_timeout = Duration::from_millis(500);
    let (listener, _) = listen(1, config, Arc::new(AnyPeer)).await;
    let remote = listener.noderef().clone();
    let (tx, events) = mpsc::channel(EVENTS);
    let server = serve(listener, tx);
    let me = identity(2);
    let peer = RawPeer::connect(&remote, &me, &noderef(&me, "127.0.0.1:1".parse().unwrap())).await;
    (peer, events, server)
}

#[tokio::test]
async fn an_oversize_frame_is_refused_before_it_is_read() {
    let (mut peer, mut events, _server) = authenticated_peer().await;
    peer.stream
        .write_all(&u16::MAX.to_be_bytes())
        .await
        .unwrap();
    let reason = closed_reason(&mut events).await;
    assert!(
        matches!(&reason, CloseReason::Failed(RunError::Read(e)) if e.kind() == std::io::ErrorKind::InvalidData),
        "{reason}"
    );
}

#[tokio::test]
async fn a_truncated_frame_is_an_error_not_a_message() {
    let (mut peer, mut events, _server) = authenticated_peer().await;
    let frame = peer.seal(&warren_node::link::LinkMessage::Ping(1));
    peer.stream
        .write_all(&frame[..frame.len() / 2])
        .await
        .unwrap();
    peer.stream.shutdown().await.unwrap();
    let reason = closed_reason(&mut events).await;
    assert!(
        matches!(reason, CloseReason::Failed(RunError::Read(_))),
        "{reason}"
    );
}

#[tokio::test]
async fn a_peer_stalling_mid_frame_is_declared_dead() {
    let (mut peer, mut events, _server) = authenticated_peer().await;
    let frame = peer.seal(&warren_node::link::LinkMessage::Ping(1));
    peer.stream
        .write_all(&frame[..frame.len() - 1])
        .await
        .unwrap();
    let reason = closed_reason(&mut events).await;
    assert!(
        matches!(reason, CloseReason::Failed(RunError::PeerSilent(_))),
        "{reason}"
    );
}

#[tokio::test]
async fn well_framed_garbage_fails_authentication() {
    let (mut peer, mut events, _server) = authenticated_peer().await;
    let mut body = vec![0u8; warren_node::link::PAD_CONTROL + 16];
    rand::rngs::StdRng::seed_from_u64(5).fill_bytes(&mut body);
    write_frame(&mut peer.stream, &body).await;
    let reason = closed_reason(&mut events).await;
    assert!(
        matches!(reason, CloseReason::Failed(RunError::Frame(_))),
        "{reason}"
    );
    assert!(reason.to_string().contains("authentication"), "{reason}");
}
