//! Running links: block transfers across rekeys, keepalive, dead peers,
//! orderly close and flooding.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod link_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use link_support::*;
use tokio::sync::mpsc;
use warren_crypto::{ChkBlock, BLOCK_LEN};
use warren_node::link::{
    AnyPeer, CloseCode, CloseReason, LinkEvent, LinkHandle, LinkMessage, LinkSendError, RunError,
    MAX_PAYLOAD,
};

async fn send_blocks(handle: &LinkHandle, count: u32) {
    for seq in 0..count {
        handle.send(block_payload(seq)).await.unwrap();
    }
}

async fn receive_blocks(events: &mut mpsc::Receiver<LinkEvent>, count: u32) {
    for seq in 0..count {
        let LinkEvent::Received { payload, .. } = next_event(events).await else {
            panic!("link closed")
        };
        assert_eq!(payload, block_payload(seq));
    }
}

/// A block-sized payload whose bytes depend on `seq`.
fn block_payload(seq: u32) -> Bytes {
    let (block, _) = ChkBlock::encode(&seq.to_be_bytes().repeat(1000)).unwrap();
    let mut payload = seq.to_be_bytes().to_vec();
    payload.extend_from_slice(block.as_bytes());
    Bytes::from(payload)
}

#[tokio::test]
async fn blocks_flow_both_ways_across_many_rekeys() {
    const BLOCKS: u32 = 40;
    let mut config = quick_config();
    config.rekey_after_bytes = 100 * 1024;
    let (mut a, mut b) = linked_pair(config.clone(), config).await;
    tokio::join!(
        send_blocks(&a.handle, BLOCKS),
        send_blocks(&b.handle, BLOCKS),
        receive_blocks(&mut a.events, BLOCKS),
        receive_blocks(&mut b.events, BLOCKS)
    );
    let (sa, sb) = (a.handle.stats(), b.handle.stats());
    // 40 frames of 32.5 KiB over a 100 KiB rekey limit.
    assert!(
        sa.rekeys_sent >= 10 && sb.rekeys_sent >= 10,
        "{sa:?} {sb:?}"
    );
    assert_eq!(sa.rekeys_sent, sb.rekeys_received);
    assert_eq!(sb.rekeys_sent, sa.rekeys_received);
    assert_eq!(sa.payloads_shed + sb.payloads_shed, 0);
    assert!(sa.bytes_sent > u64::from(BLOCKS) * BLOCK_LEN as u64);
}

#[tokio::test]
async fn oversize_payloads_are_refused_locally() {
    let (a, _b) = linked_pair(quick_config(), quick_config()).await;
    let err = a
        .handle
        .try_send(Bytes::from(vec![0; MAX_PAYLOAD + 1]))
        .unwrap_err();
    assert_eq!(
        err,
        LinkSendError::TooLarge {
            len: MAX_PAYLOAD + 1
        }
    );
    a.handle
        .try_send(Bytes::from(vec![0; MAX_PAYLOAD]))
        .unwrap();
}

/// Idle timeouts an idle link must outlive, kept open only by keepalives.
const IDLE_TIMEOUTS_SURVIVED: u32 = 3;

#[tokio::test]
async fn keepalive_holds_an_idle_link_open() {
    const KEEPALIVE: Duration = Duration::from_millis(50);
    const IDLE_TIMEOUT: Duration = Duration::from_millis(600);
    const POLL: Duration = Duration::from_millis(20);
    let mut config = quick_config();
    config.keepalive_interval = KEEPALIVE;
    config.idle_timeout = IDLE_TIMEOUT;
    let (mut a, mut b) = linked_pair(config.clone(), config).await;
    // The link stays up, with no application traffic, until it has both
    // outlived several idle timeouts and received frames (the keepalives'
    // answers) covering them; a close before that fails at once.
    let start = tokio::time::Instant::now();
    let deadline = start + PATIENCE;
    let idle_span = IDLE_TIMEOUT * IDLE_TIMEOUTS_SURVIVED;
    let frames_needed = u64::from(IDLE_TIMEOUTS_SURVIVED);
    loop {
        for (side, events) in [("dialling", &mut a.events), ("accepting", &mut b.events)] {
            if let Ok(event) = events.try_recv() {
                panic!("the idle {side} side saw {event:?}");
            }
        }
        let frames = a
            .handle
            .stats()
            .frames_received
            .min(b.handle.stats().frames_received);
        if start.elapsed() >= idle_span && frames >= frames_needed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after {:?}: {frames} frames received by each side",
            start.elapsed()
        );
        tokio::time::sleep(POLL).await;
    }
    a.handle
        .try_send(Bytes::from_static(b"still there?"))
        .unwrap();
    let LinkEvent::Received { payload, .. } = next_event(&mut b.events).await else {
        panic!("link died while idle")
    };
    assert_eq!(&payload[..], b"still there?");
    assert!(
        a.events.try_recv().is_err(),
        "no Closed event on the idle side"
    );
}

#[tokio::test]
async fn a_silent_peer_is_declared_dead() {
    let mut config = quick_config();
    config.idle_timeout = Duration::from_millis(300);
    let (listener, _) = listen(1, config, Arc::new(AnyPeer)).await;
    let remote = listener.noderef().clone();
    let (tx, mut events) = tokio::sync::mpsc::channel(EVENTS);
    let _server = serve(listener, tx);
    let me = identity(2);
    // Completes the handshake, then never sends again (nor answers pings).
    let _mute = RawPeer::connect(&remote, &me, &noderef(&me, "127.0.0.1:1".parse().unwrap())).await;
    let reason = closed_reason(&mut events).await;
    assert!(
        matches!(reason, CloseReason::Failed(RunError::PeerSilent(_))),
        "{reason}"
    );
}

#[tokio::test]
async fn close_says_goodbye_to_the_peer() {
    let (mut a, mut b) = linked_pair(quick_config(), quick_config()).await;
    a.handle
        .try_send(Bytes::from_static(b"last words"))
        .unwrap();
    a.handle.close();
    assert!(matches!(
        closed_reason(&mut a.events).await,
        CloseReason::Local
    ));
    // The payload queued before closing still arrives, then the goodbye.
    let LinkEvent::Received { payload, .. } = next_event(&mut b.events).await else {
        panic!()
    };
    assert_eq!(&payload[..], b"last words");
    let reason = closed_reason(&mut b.events).await;
    assert!(
        matches!(reason, CloseReason::Remote(CloseCode::Shutdown)),
        "{reason}"
    );
    assert_eq!(a.handle.try_send(Bytes::new()), Err(LinkSendError::Closed));
}

#[tokio::test]
async fn a_flooding_peer_is_cut_off() {
    let mut strict = quick_config();
    strict.max_frames_per_sec = 100;
    strict.frame_burst = 50;
    let (a, mut b) = linked_pair(quick_config(), strict).await;
    let mut a = a;
    let flood = async {
        for _ in 0..2000 {
            if a.handle.send(Bytes::from_static(b"spam")).await.is_err() {
                break;
            }
        }
    };
    tokio::time::timeout(PATIENCE, flood)
        .await
        .expect("the flood was neither sent nor refused in time");
    let reason = closed_reason(&mut b.events).await;
    assert!(
        matches!(reason, CloseReason::Failed(RunError::Flooding { .. })),
        "{reason}"
    );
    let reason = closed_reason(&mut a.events).await;
    assert!(
        matches!(reason, CloseReason::Remote(CloseCode::Flooding)),
        "{reason}"
    );
}

#[tokio::test]
async fn a_second_hello_is_a_protocol_violation() {
    let (listener, _) = listen(1, quick_config(), Arc::new(AnyPeer)).await;
    let remote = listener.noderef().clone();
    let (tx, mut events) = tokio::sync::mpsc::channel(EVENTS);
    let _server = serve(listener, tx);
    let me = identity(2);
    let hello = noderef(&me, "127.0.0.1:1".parse().unwrap());
    let mut peer = RawPeer::connect(&remote, &me, &hello).await;
    // The node first says where it sees the connection coming from.
    let from = peer.stream.local_addr().unwrap();
    assert_eq!(peer.recv().await, Some(LinkMessage::Observed(from)));
    peer.send(&LinkMessage::Hello(hello)).await;
    let reason = closed_reason(&mut events).await;
    assert!(
        matches!(reason, CloseReason::Failed(RunError::UnexpectedHello)),
        "{reason}"
    );
    assert_eq!(
        peer.recv().await,
        Some(LinkMessage::Close(CloseCode::ProtocolViolation))
    );
}

#[tokio::test]
async fn each_side_learns_the_address_the_other_sees() {
    let (a, b) = linked_pair(quick_config(), quick_config()).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while a.handle.observed_address().is_none() || b.handle.observed_address().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Observed in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // a dialled b's listener: b is told the address a dialled, a is told
    // the (ephemeral) source address b saw.
    let told_b = b.handle.observed_address().unwrap();
    let told_a = a.handle.observed_address().unwrap();
    assert_eq!(told_b, a.handle.peer().address);
    assert_eq!(told_a.ip(), told_b.ip());
    assert_ne!(told_a.port(), told_b.port());
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_declared_stuck() {
    let mut config = quick_config();
    config.idle_timeout = Duration::from_millis(500);
    let (mut listener, _) = listen(1, config, Arc::new(AnyPeer)).await;
    let remote = listener.noderef().clone();
    let me = identity(2);
    let hello = noderef(&me, "127.0.0.1:1".parse().unwrap());
    let (peer, accepted) = tokio::join!(RawPeer::connect(&remote, &me, &hello), listener.accept());
    let (tx, mut events) = mpsc::channel(EVENTS);
    let handle = accepted.unwrap().spawn(tx);
    // The peer pings (so it is not silent) but never reads a byte.
    let RawPeer {
        mut stream,
        noise: mut peer,
        ..
    } = peer;
    let pinger = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        for n in 0.. {
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            let plain = LinkMessage::Ping(n).encode().unwrap();
            let mut body = vec![0; plain.len() + 16];
            let len = peer.write_message(&plain, &mut body).unwrap();
            let mut frame = (len as u16).to_be_bytes().to_vec();
            frame.extend_from_slice(&body[..len]);
            if tokio::io::AsyncWriteExt::write_all(&mut stream, &frame)
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let reason = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a peer that stops reading was not declared stuck in time"
        );
        // Keep the link's queue full until the kernel buffers are too.
        let _ = handle.try_send(block_payload(0));
        match tokio::time::timeout(Duration::from_millis(5), events.recv()).await {
            Ok(Some(LinkEvent::Closed { reason, .. })) => break reason,
            Ok(other) => assert!(other.is_some()),
            Err(_) => {}
        }
    };
    assert!(
        matches!(reason, CloseReason::Failed(RunError::PeerNotReading(_))),
        "{reason}"
    );
    pinger.abort();
}
