//! Peers that send garbage, oversize, truncated or stalled frames are cut
//! off with a reason; the listener and other links carry on.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod link_support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// Blocks the real link must deliver, in order and acknowledged, while the
/// garbage senders run.
const STORM_BLOCKS: u32 = 24;
/// Garbage connections the node must cut off while the real link works
/// (each sender redials after every cut-off).
const STORM_CUT_OFFS: usize = 24;
/// Unauthenticated and authenticated garbage senders running at once.
const STORM_PEERS: usize = 3;
/// Authenticated garbage links the node must close with a reason.
const STORM_AUTH_CLOSES: usize = STORM_PEERS;
/// Deadline for all of the above, generous for a loaded 2-core machine.
const STORM_DEADLINE: Duration = Duration::from_secs(120);
/// Largest random chunk a garbage sender writes at once.
const MAX_CHUNK: usize = 70_000;

/// Write random bytes to fresh connections until `stop` is set; with `auth`,
/// first complete a real handshake. Counts every connection the node cut off
/// in `cut_offs`. A write the node neither reads nor refuses within
/// `PATIENCE` fails the test.
async fn storm(
    remote: NodeRef,
    seed: u64,
    auth: bool,
    stop: Arc<AtomicBool>,
    cut_offs: Arc<AtomicUsize>,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let me = identity(100 + seed);
    let mut chunk = vec![0u8; MAX_CHUNK];
    while !stop.load(Ordering::Relaxed) {
        let mut stream = if auth {
            RawPeer::connect(&remote, &me, &noderef(&me, "127.0.0.1:1".parse().unwrap()))
                .await
                .stream
        } else {
            TcpStream::connect(remote.address).await.unwrap()
        };
        while !stop.load(Ordering::Relaxed) {
            let len = rng.gen_range(1..MAX_CHUNK);
            rng.fill_bytes(&mut chunk[..len]);
            let written = tokio::time::timeout(PATIENCE, stream.write_all(&chunk[..len]))
                .await
                .expect("the node neither read nor cut off a garbage sender");
            if written.is_err() {
                cut_offs.fetch_add(1, Ordering::Relaxed);
                break; // cut off, as it should be: dial again
            }
            tokio::task::yield_now().await;
        }
    }
}

fn block(seq: u32) -> Bytes {
    let mut payload = vec![(seq % 251) as u8; BLOCK_LEN];
    payload[..4].copy_from_slice(&seq.to_be_bytes());
    Bytes::from(payload)
}

/// The real link delivers `STORM_BLOCKS` blocks in order, each acknowledged,
/// while garbage senders run and the node cuts them off `STORM_CUT_OFFS`
/// times and closes `STORM_AUTH_CLOSES` authenticated ones with a reason:
/// all observed, under one deadline, however slowly the machine runs.
#[tokio::test]
async fn random_bytes_peers_do_not_disturb_real_transfers() {
    let mut config = quick_config();
    // Every sender here, honest or not, comes from 127.0.0.1: the limit on
    // handshakes per address (tested in link_hostile.rs) is lifted so the
    // storm reaches the handshake code.
    config.max_handshakes_per_ip = config.max_handshakes;
    let (listener, _) = listen(1, config, Arc::new(AnyPeer)).await;
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

    let stop = Arc::new(AtomicBool::new(false));
    let cut_offs = Arc::new(AtomicUsize::new(0));
    let mut storms = Vec::new();
    for i in 0..STORM_PEERS as u64 {
        for (seed, auth) in [(i, false), (50 + i, true)] {
            storms.push(tokio::spawn(storm(
                remote.clone(),
                seed,
                auth,
                stop.clone(),
                cut_offs.clone(),
            )));
        }
    }

    // The server side checks every block from the real caller arrives, in
    // order, intact, and acknowledges it; it counts garbage links closed.
    let (ack_tx, mut acks) = mpsc::channel::<u32>(1);
    let auth_closes = Arc::new(AtomicUsize::new(0));
    let checker = {
        let auth_closes = auth_closes.clone();
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
                        auth_closes.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        })
    };

    // Blocks keep moving until every condition has been seen, so each one
    // holds while the garbage senders are running.
    let deadline = tokio::time::Instant::now() + STORM_DEADLINE;
    let mut sent = 0u32;
    let done = |sent: u32| {
        sent >= STORM_BLOCKS
            && cut_offs.load(Ordering::Relaxed) >= STORM_CUT_OFFS
            && auth_closes.load(Ordering::Relaxed) >= STORM_AUTH_CLOSES
    };
    while !done(sent) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "within {STORM_DEADLINE:?}: {sent} of {STORM_BLOCKS} blocks acknowledged, \
             {} of {STORM_CUT_OFFS} garbage connections cut off, \
             {} of {STORM_AUTH_CLOSES} authenticated garbage links closed",
            cut_offs.load(Ordering::Relaxed),
            auth_closes.load(Ordering::Relaxed),
        );
        link.send(block(sent)).await.unwrap();
        let acked = tokio::time::timeout(PATIENCE, acks.recv()).await.unwrap();
        assert_eq!(acked, Some(sent), "blocks are acknowledged in order");
        sent += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for s in storms {
        tokio::time::timeout(PATIENCE, s)
            .await
            .expect("a garbage sender did not stop")
            .unwrap();
    }
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
    let chain = warren_node::error_chain(&reason);
    assert!(chain.contains("authentication"), "{chain}");
}
