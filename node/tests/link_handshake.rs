//! Handshakes over real sockets: success, wrong keys, refusals, lying
//! callers, silent callers, and redialling.

mod link_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use link_support::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warren_crypto::NodeRef;
use warren_node::link::{
    connect, connect_with_backoff, AnyPeer, Backoff, CloseCode, LinkError, LinkEvent, LinkMessage,
    Listener,
};

#[tokio::test]
async fn both_sides_learn_each_others_noderef_and_talk() {
    let (mut listener, server_id) = listen(1, quick_config(), Arc::new(AnyPeer)).await;
    let client_id = identity(2);
    let client_ref = noderef(&client_id, "127.0.0.1:4242".parse().unwrap());
    let server_ref = listener.noderef().clone();
    assert_eq!(server_ref.identity, server_id.public());
    assert_ne!(server_ref.address.port(), 0);

    let config = quick_config();
    let (dialled, accepted) = tokio::join!(
        connect(client_id, client_ref.clone(), &server_ref, &config),
        listener.accept()
    );
    let (dialled, accepted) = (dialled.unwrap(), accepted.unwrap());
    assert_eq!(dialled.peer(), &server_ref);
    assert_eq!(accepted.peer(), &client_ref);

    let (a_tx, mut a_rx) = mpsc::channel(8);
    let (b_tx, mut b_rx) = mpsc::channel(8);
    let a = dialled.spawn(a_tx);
    let b = accepted.spawn(b_tx);
    a.try_send(Bytes::from_static(b"hello from the caller"))
        .unwrap();
    b.try_send(Bytes::from_static(b"hello from the callee"))
        .unwrap();
    let LinkEvent::Received { peer, payload, .. } = next_event(&mut b_rx).await else {
        panic!()
    };
    assert_eq!(
        (peer, &payload[..]),
        (client_ref.identity, &b"hello from the caller"[..])
    );
    let LinkEvent::Received { peer, payload, .. } = next_event(&mut a_rx).await else {
        panic!()
    };
    assert_eq!(
        (peer, &payload[..]),
        (server_ref.identity, &b"hello from the callee"[..])
    );
}

#[tokio::test]
async fn a_wrong_key_fails_clearly_and_the_listener_carries_on() {
    let (mut listener, _) = listen(1, quick_config(), Arc::new(AnyPeer)).await;
    let client = identity(2);
    let local = noderef(&client, "127.0.0.1:1".parse().unwrap());
    let mut wrong = listener.noderef().clone();
    wrong.identity = identity(3).public();
    let err = connect(client.clone(), local.clone(), &wrong, &quick_config())
        .await
        .unwrap_err();
    assert!(matches!(err, LinkError::PeerClosed), "{err}");
    assert!(err.to_string().contains("key in its noderef"));

    let right = listener.noderef().clone();
    let config = quick_config();
    let (dialled, accepted) =
        tokio::join!(connect(client, local, &right, &config), listener.accept());
    assert_eq!(dialled.unwrap().peer().identity, right.identity);
    assert!(accepted.is_some());
}

#[tokio::test]
async fn a_policy_refusal_reaches_the_caller() {
    let friend = identity(5).public();
    let policy = move |peer: &NodeRef| peer.identity == friend;
    let (listener, _) = listen(1, quick_config(), Arc::new(policy)).await;
    let stranger = identity(2);
    let local = noderef(&stranger, "127.0.0.1:1".parse().unwrap());
    let err = connect(stranger, local, listener.noderef(), &quick_config())
        .await
        .unwrap_err();
    assert!(
        matches!(err, LinkError::Refused(CloseCode::NotAccepted)),
        "{err}"
    );
}

#[tokio::test]
async fn a_caller_claiming_another_identity_is_refused() {
    let (listener, _) = listen(1, quick_config(), Arc::new(AnyPeer)).await;
    let liar = identity(2);
    let mut claimed = noderef(&liar, "127.0.0.1:1".parse().unwrap());
    claimed.identity = identity(9).public();
    let peer = RawPeer::connect(listener.noderef(), &liar, &claimed).await;
    assert_eq!(
        peer.answer,
        LinkMessage::Close(CloseCode::ProtocolViolation)
    );

    // Told the truth, the same raw implementation gets the responder's Hello.
    let honest = noderef(&liar, "127.0.0.1:1".parse().unwrap());
    let peer = RawPeer::connect(listener.noderef(), &liar, &honest).await;
    assert_eq!(peer.answer, LinkMessage::Hello(listener.noderef().clone()));
}

#[tokio::test]
async fn silent_callers_cannot_block_the_listener() {
    let mut config = quick_config();
    config.max_handshakes = 2;
    config.handshake_timeout = Duration::from_millis(300);
    let (mut listener, _) = listen(1, config, Arc::new(AnyPeer)).await;
    // More silent callers than handshake slots; they hold them until timeout.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(
            tokio::net::TcpStream::connect(listener.local_addr())
                .await
                .unwrap(),
        );
    }
    let client = identity(2);
    let local = noderef(&client, "127.0.0.1:1".parse().unwrap());
    let mut patient = quick_config();
    patient.handshake_timeout = PATIENCE;
    let remote = listener.noderef().clone();
    let (dialled, accepted) =
        tokio::join!(connect(client, local, &remote, &patient), listener.accept());
    assert!(dialled.is_ok() && accepted.is_some());
    // The silent callers were hung up on.
    for mut stream in silent {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(
            PATIENCE,
            tokio::io::AsyncReadExt::read(&mut stream, &mut byte),
        )
        .await
        .expect("a silent caller was never hung up on")
        .unwrap_or(0);
        assert_eq!(n, 0);
    }
}

#[tokio::test]
async fn a_handshake_that_stalls_times_out_on_the_caller_side() {
    // A "server" that accepts and never answers.
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = identity(1);
    let remote = noderef(&server, mute.local_addr().unwrap());
    let client = identity(2);
    let local = noderef(&client, "127.0.0.1:1".parse().unwrap());
    let mut config = quick_config();
    config.handshake_timeout = Duration::from_millis(200);
    let _keep = tokio::spawn(async move { mute.accept().await });
    let err = connect(client, local, &remote, &config).await.unwrap_err();
    assert!(matches!(err, LinkError::Timeout(_)), "{err}");
}

/// Failed dials the stand-in must see before the real peer comes up: the
/// dialler has failed and come back at least once.
const FAILED_DIALS_BEFORE_UP: usize = 2;

#[tokio::test]
async fn redialling_succeeds_once_the_peer_comes_back() {
    // A stand-in holds the port and hangs up on every caller, so each dial
    // fails; it counts them.
    let stand_in = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = stand_in.local_addr().unwrap();
    let (dialled_tx, mut dialled) = mpsc::channel::<()>(FAILED_DIALS_BEFORE_UP);
    let stand_in = tokio::spawn(async move {
        let mut seen = 0;
        while seen < FAILED_DIALS_BEFORE_UP {
            let (socket, _) = stand_in.accept().await.unwrap();
            drop(socket);
            seen += 1;
            dialled_tx.send(()).await.unwrap();
        }
        stand_in // returned, so the port stays held until the test lets go
    });
    let server = identity(1);
    let server_ref = noderef(&server, address);
    let client = identity(2);
    let local = noderef(&client, "127.0.0.1:1".parse().unwrap());
    let backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    };
    let cancel = CancellationToken::new();
    let config = quick_config();
    let dialler = {
        let (server_ref, cancel) = (server_ref.clone(), cancel.clone());
        tokio::spawn(async move {
            connect_with_backoff(client, local, &server_ref, &config, backoff, 1000, &cancel).await
        })
    };
    for _ in 0..FAILED_DIALS_BEFORE_UP {
        tokio::time::timeout(PATIENCE, dialled.recv())
            .await
            .expect("the dialler did not redial after a failed dial")
            .unwrap();
    }
    assert!(
        !dialler.is_finished(),
        "a failed dial is retried, not returned"
    );
    // The peer comes back on the same address (SO_REUSEADDR, as tokio binds).
    drop(stand_in.await.unwrap());
    let mut listener = Listener::bind(
        server_ref.address,
        server,
        server_ref.clone(),
        quick_config(),
        Arc::new(AnyPeer),
    )
    .await
    .unwrap();
    let accepted = tokio::time::timeout(PATIENCE, listener.accept())
        .await
        .expect("the redialled peer never arrived")
        .unwrap();
    let link = tokio::time::timeout(PATIENCE, dialler)
        .await
        .expect("the dialler never finished")
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(link.peer().identity, server_ref.identity);
    assert_eq!(accepted.peer().address.port(), 1);

    // Cancelling stops an endless redial.
    let cancel = CancellationToken::new();
    cancel.cancel();
    let nobody = noderef(&identity(3), "127.0.0.1:9".parse().unwrap());
    let outcome = connect_with_backoff(
        identity(4),
        nobody.clone(),
        &nobody,
        &quick_config(),
        backoff,
        1000,
        &cancel,
    )
    .await;
    assert!(outcome.is_none());
}
