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
