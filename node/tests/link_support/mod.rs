//! Fixtures for the link tests, and a second implementation of the link
//! handshake written from docs/PROTOCOL.md with `snow` directly, used to
//! play peers that misbehave after (or while) authenticating.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // test fixtures

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::SeedableRng;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use warren_crypto::{Location, NodeIdentity, NodeRef, PROTOCOL_VERSION};
use warren_node::link::{
    AnyPeer, LinkConfig, LinkEvent, LinkHandle, LinkMessage, Listener, PeerPolicy, NOISE_PARAMS,
    PROLOGUE,
};

/// Events queued per test node; large enough that tests never shed.
pub const EVENTS: usize = 1024;
/// How long a test waits for something that should happen at once.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn identity(seed: u64) -> Arc<NodeIdentity> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    Arc::new(NodeIdentity::generate(&mut rng))
}

pub fn noderef(id: &NodeIdentity, address: SocketAddr) -> NodeRef {
    NodeRef {
        identity: id.public(),
        location: Location(id.public().0[0] as u64 * 0x0101_0101_0101_0101),
        address,
        version: PROTOCOL_VERSION,
    }
}

/// A config with short timeouts so tests about them finish quickly.
pub fn quick_config() -> LinkConfig {
    let mut config = LinkConfig::default();
    config.handshake_timeout = Duration::from_secs(5);
    config
}

pub async fn listen(
    seed: u64,
    config: LinkConfig,
    policy: Arc<dyn PeerPolicy>,
) -> (Listener, Arc<NodeIdentity>) {
    let id = identity(seed);
    let local = noderef(&id, "127.0.0.1:0".parse().unwrap());
    let listener = Listener::bind(local.address, id.clone(), local, config, policy)
        .await
        .unwrap();
    (listener, id)
}

pub struct Node {
    pub handle: LinkHandle,
    pub events: mpsc::Receiver<LinkEvent>,
}

/// Two nodes joined by a link, each with its own event queue.
pub async fn linked_pair(dial: LinkConfig, accept: LinkConfig) -> (Node, Node) {
    let (mut listener, _) = listen(1, accept, Arc::new(AnyPeer)).await;
    let caller = identity(2);
    let local = noderef(&caller, "127.0.0.1:1".parse().unwrap());
    let remote = listener.noderef().clone();
    let (dialled, accepted) = tokio::join!(
        warren_node::link::connect(caller, local, &remote, &dial),
        listener.accept()
    );
    let (a_tx, a_rx) = mpsc::channel(EVENTS);
    let (b_tx, b_rx) = mpsc::channel(EVENTS);
    (
        Node {
            handle: dialled.unwrap().spawn(a_tx),
            events: a_rx,
        },
        Node {
            handle: accepted.unwrap().spawn(b_tx),
            events: b_rx,
        },
    )
}

pub async fn next_event(events: &mut mpsc::Receiver<LinkEvent>) -> LinkEvent {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("no link event in time")
        .expect("event queue closed")
}

/// Skip received payloads until the link reports its closing, within
/// `PATIENCE` in all (a peer that keeps sending cannot hold the test).
pub async fn closed_reason(
    events: &mut mpsc::Receiver<LinkEvent>,
) -> warren_node::link::CloseReason {
    let wait = async {
        loop {
            if let LinkEvent::Closed { reason, .. } = next_event(events).await {
                return reason;
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .expect("the link did not close in time")
}

/// A peer speaking the protocol by hand.
pub struct RawPeer {
    pub stream: TcpStream,
    pub noise: snow::TransportState,
    /// The responder's message 4, decoded.
    pub answer: LinkMessage,
}

pub async fn write_frame(stream: &mut TcpStream, body: &[u8]) {
    let mut out = (body.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    stream.write_all(&out).await.unwrap();
}

pub async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u16().await? as usize;
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

impl RawPeer {
    /// Run the XK handshake as initiator, sending `hello` as our noderef.
    pub async fn connect(remote: &NodeRef, me: &NodeIdentity, hello: &NodeRef) -> RawPeer {
        let mut stream = TcpStream::connect(remote.address).await.unwrap();
        let mut hs = snow::Builder::new(NOISE_PARAMS.parse().unwrap())
            .local_private_key(&me.secret_bytes()[..])
            .unwrap()
            .remote_public_key(&remote.identity.0)
            .unwrap()
            .prologue(PROLOGUE)
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut buf = vec![0; 65_535];
        let mut scratch = vec![0; 65_535];
        let n = hs.write_message(&[], &mut buf).unwrap();
        write_frame(&mut stream, &buf[..n]).await;
        let msg2 = read_frame(&mut stream).await.unwrap();
        hs.read_message(&msg2, &mut scratch).unwrap();
        let hello = LinkMessage::Hello(hello.clone()).encode().unwrap();
        let n = hs.write_message(&hello, &mut buf).unwrap();
        write_frame(&mut stream, &buf[..n]).await;
        let mut noise = hs.into_transport_mode().unwrap();
        let msg4 = read_frame(&mut stream).await.unwrap();
        let n = noise.read_message(&msg4, &mut scratch).unwrap();
        let answer = LinkMessage::decode(&Bytes::copy_from_slice(&scratch[..n])).unwrap();
        RawPeer {
            stream,
            noise,
            answer,
        }
    }

    /// Seal one message as a frame, the way the protocol says.
    pub fn seal(&mut self, message: &LinkMessage) -> Vec<u8> {
        let plain = message.encode().unwrap();
        let mut body = vec![0; plain.len() + 16];
        let n = self.noise.write_message(&plain, &mut body).unwrap();
        let mut frame = (n as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(&body[..n]);
        frame
    }

    pub async fn send(&mut self, message: &LinkMessage) {
        let frame = self.seal(message);
        self.stream.write_all(&frame).await.unwrap();
    }

    /// Read and open the next frame; `None` at end of stream.
    pub async fn recv(&mut self) -> Option<LinkMessage> {
        let frame = read_frame(&mut self.stream).await.ok()?;
        let mut plain = BytesMut::zeroed(frame.len());
        let n = self.noise.read_message(&frame, &mut plain).unwrap();
        plain.truncate(n);
        Some(LinkMessage::decode(&plain.freeze()).unwrap())
    }
}

/// Accept links forever, spawning each with a shared event queue; the
/// handles are kept alive in the returned task.
pub fn serve(
    mut listener: Listener,
    events: mpsc::Sender<LinkEvent>,
) -> tokio::task::JoinHandle<Vec<LinkHandle>> {
    tokio::spawn(async move {
        let mut handles = Vec::new();
        while let Some(link) = listener.accept().await {
            handles.push(link.spawn(events.clone()));
        }
        handles
    })
}
