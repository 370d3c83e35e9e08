//! A hostile host at the listener: idle connections from one address cannot
//! hold every handshake slot, and an idle caller is hung up on long before
//! the whole-handshake deadline.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod link_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use link_support::*;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpSocket, TcpStream};
use warren_node::link::{connect, AnyPeer};

/// The hostile host: another loopback address, so it is another source.
const ATTACKER: &str = "127.0.0.2:0";

async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(source.parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Whether the listener hangs up on `stream` (reads EOF or a reset) within `limit`.
async fn hung_up_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(limit, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn one_host_cannot_hold_every_handshake_slot() {
    let mut config = quick_config();
    // Idle callers would hold a slot for the whole (long) handshake deadline
    // but for the per-address share; the first-message deadline is long too,
    // so only the share can be what lets the honest caller in.
    config.handshake_timeout = Duration::from_secs(120);
    config.first_message_timeout = Duration::from_secs(120);
    config.max_handshakes = 8;
    config.max_handshakes_per_ip = 2;
    let (mut listener, _) = listen(1, config, Arc::new(AnyPeer)).await;
    let addr = listener.local_addr();
    // Far more idle connections than slots, all from one host.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(connect_from(ATTACKER, addr).await);
    }
    let caller = identity(2);
    let local = noderef(&caller, "127.0.0.1:1".parse().unwrap());
    let mut honest = quick_config();
    honest.handshake_timeout = PATIENCE;
    let remote = listener.noderef().clone();
    let (dialled, accepted) =
        tokio::join!(connect(caller, local, &remote, &honest), listener.accept());
    assert!(dialled.is_ok(), "{:?}", dialled.err());
    assert!(accepted.is_some());
    // Beyond its share, the hostile host was hung up on at once.
    let mut hung_up = 0;
    for stream in &mut idle {
        if hung_up_within(stream, Duration::from_millis(100)).await {
            hung_up += 1;
        }
    }
    assert!(
        hung_up >= 40 - 2,
        "only {hung_up} of 40 excess connections closed"
    );
}

#[tokio::test]
async fn an_idle_caller_is_hung_up_on_at_the_first_message_deadline() {
    let mut config = quick_config();
    config.handshake_timeout = Duration::from_secs(600);
    config.first_message_timeout = Duration::from_millis(200);
    let (listener, _) = listen(1, config, Arc::new(AnyPeer)).await;
    let mut idle = connect_from(ATTACKER, listener.local_addr()).await;
    // Long before the whole-handshake deadline (ten minutes).
    assert!(hung_up_within(&mut idle, Duration::from_secs(60)).await);
}

/// A link accepted by `listener` from a fresh caller, both ends spawned;
/// the accepted end reports into `events`.
async fn accepted_link(
    listener: &mut warren_node::link::Listener,
    seed: u64,
    events: &tokio::sync::mpsc::Sender<warren_node::link::LinkEvent>,
) -> (warren_node::link::LinkHandle, warren_node::link::LinkHandle) {
    let caller = identity(seed);
    let local = noderef(&caller, "127.0.0.1:1".parse().unwrap());
    let remote = listener.noderef().clone();
    let config = quick_config();
    let (dialled, accepted) =
        tokio::join!(connect(caller, local, &remote, &config), listener.accept());
    // Nothing is sent to the caller: its event queue is not looked at.
    let (ignored, _) = tokio::sync::mpsc::channel(1);
    let caller_end = dialled.unwrap().spawn(ignored);
    (caller_end, accepted.unwrap().spawn(events.clone()))
}

#[tokio::test]
async fn a_flooding_peer_cannot_push_other_peers_out_of_the_event_queue() {
    use bytes::Bytes;
    use warren_node::link::LinkEvent;
    let mut config = quick_config();
    config.max_queued_events = 4;
    let (mut listener, _) = listen(1, config, Arc::new(AnyPeer)).await;
    // The node's one event queue, with room for both links' shares only.
    let (events_tx, mut events) = tokio::sync::mpsc::channel(8);
    let (flooder, flooder_at_node) = accepted_link(&mut listener, 2, &events_tx).await;
    let (honest, honest_at_node) = accepted_link(&mut listener, 3, &events_tx).await;
    // The flooder sends far more than the queue holds, before the node reads
    // anything; then the honest peer sends its messages.
    let flood = tokio::spawn(async move {
        for i in 0..2_000u32 {
            if flooder
                .send(Bytes::from(i.to_be_bytes().to_vec()))
                .await
                .is_err()
            {
                break;
            }
        }
        flooder
    });
    for i in 0..20u8 {
        honest.send(Bytes::from(vec![i; 3])).await.unwrap();
    }
    // Now the node drains its queue: every honest message arrives, in order.
    let honest_id = honest_at_node.id();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while seen.len() < 20 {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("the honest messages arrive in time")
            .expect("queue open");
        if let LinkEvent::Received { link, payload, .. } = event {
            if link == honest_id {
                seen.push(payload[0]);
            }
        }
    }
    assert_eq!(seen, (0..20).collect::<Vec<u8>>());
    assert_eq!(honest_at_node.stats().payloads_shed, 0);
    assert_eq!(
        flooder_at_node.stats().payloads_shed,
        0,
        "backpressure, not shedding"
    );
    drop(flood.await.unwrap());
}

#[tokio::test]
async fn all_links_together_queue_at_most_the_outbox_budget() {
    use bytes::Bytes;
    use warren_node::link::{LinkSendError, OutboxBudget, MAX_PAYLOAD};
    let budget_bytes = 8 * MAX_PAYLOAD as u64;
    let mut dial = quick_config();
    dial.outbox_budget = OutboxBudget::new(budget_bytes);
    dial.outbox_capacity = 1_000;
    // Peers that never read: their sockets fill, then our outboxes.
    let mut stalled = quick_config();
    stalled.max_queued_events = 1;
    let (a, _a_peer) = linked_pair(dial.clone(), stalled.clone()).await;
    let (b, _b_peer) = linked_pair(dial.clone(), stalled).await;
    let block = Bytes::from(vec![7u8; MAX_PAYLOAD]);
    let mut sent = 0u64;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match a.handle.try_send(block.clone()) {
            Ok(()) => sent += 1,
            Err(LinkSendError::Full) => break,
            Err(other) => panic!("{other}"),
        }
        assert!(dial.outbox_budget.queued() <= budget_bytes);
        assert!(tokio::time::Instant::now() < deadline, "never full");
        // Let the actor move what it can into the socket.
        tokio::task::yield_now().await;
    }
    assert!(sent > 0);
    // The budget is shared: the other link, idle until now, is full too.
    assert!(matches!(
        b.handle.try_send(block.clone()),
        Err(LinkSendError::Full)
    ));
    // Closing the stuck link hands its bytes back.
    a.handle.shutdown().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while dial.outbox_budget.queued() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "budget never returned"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(b.handle.try_send(block).is_ok());
}

#[tokio::test]
async fn a_dialled_peer_is_remembered_at_the_address_dialled_not_the_one_it_claims() {
    let id = identity(1);
    // It claims to be somewhere else (a documentation address).
    let claimed = noderef(&id, "192.0.2.1:9".parse().unwrap());
    let mut listener = warren_node::link::Listener::bind(
        "127.0.0.1:0".parse().unwrap(),
        id,
        claimed.clone(),
        quick_config(),
        Arc::new(AnyPeer),
    )
    .await
    .unwrap();
    assert_eq!(listener.noderef().address, claimed.address);
    let mut target = claimed.clone();
    target.address = listener.bound_addr();
    let caller = identity(2);
    let local = noderef(&caller, "127.0.0.1:1".parse().unwrap());
    let config = quick_config();
    let (dialled, accepted) =
        tokio::join!(connect(caller, local, &target, &config), listener.accept());
    assert!(accepted.is_some());
    let link = dialled.unwrap();
    assert_eq!(link.peer().address, listener.bound_addr());
    assert_eq!(link.peer().identity, claimed.identity);
}
