//! The link handshake: Noise `XK` plus one confirming frame.
//!
//! ```text
//! 1  I -> R  e, es        empty payload                      48 bytes
//! 2  R -> I  e, ee        empty payload                      48 bytes
//! 3  I -> R  s, se        Hello(initiator noderef), padded   576 bytes
//! 4  R -> I  transport    Hello(responder noderef) | Close   528 bytes
//! ```
//! The responder learns who calls only at message 3, checks that the claimed
//! identity is the Noise static key, asks its policy, and only then reveals
//! its own noderef (its location) in message 4.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::StreamExt as _;
use snow::{Builder, HandshakeState};
use tokio::io::AsyncWriteExt as _;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
use tracing::debug;
use warren_crypto::{NodeIdentity, NodePublicKey, NodeRef, PROTOCOL_VERSION};

use super::actor::Link;
use super::frame::{
    codec, put_frame, FrameCipher, FrameError, MAX_FRAME_LEN, PAD_CONTROL, TAG_LEN,
};
use super::listener::PeerPolicy;
use super::message::{CloseCode, LinkMessage, MessageError};
use super::LinkConfig;

/// The Noise protocol every link speaks.
pub const NOISE_PARAMS: &str = "Noise_XK_25519_ChaChaPoly_SHA256";
/// Mixed into the handshake hash: binds the session to this protocol.
pub const PROLOGUE: &[u8] = b"warren-link/1";
/// Oldest peer protocol version we talk to.
pub const MIN_PROTOCOL_VERSION: u16 = 1;
/// An X25519 public key on the wire.
const DH_LEN: usize = 32;
/// Messages 1 and 2: an ephemeral key and the tag of an empty payload.
pub const MSG1_LEN: usize = DH_LEN + TAG_LEN;
pub const MSG2_LEN: usize = DH_LEN + TAG_LEN;
/// Message 3: the encrypted static key, then the padded Hello and its tag.
pub const MSG3_LEN: usize = DH_LEN + TAG_LEN + PAD_CONTROL + TAG_LEN;
/// Largest frame accepted before the handshake is done: unauthenticated
/// peers never make us buffer more than this.
pub const MAX_HANDSHAKE_FRAME: usize = MSG3_LEN;
/// Initial read buffer of a link.
const READ_BUFFER: usize = 2 * (MAX_FRAME_LEN + 2);

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    #[error("network error")]
    Io(#[from] std::io::Error),
    #[error("the handshake did not finish within {0:?}")]
    Timeout(std::time::Duration),
    #[error(
        "the peer closed the connection during the handshake; if we called it, \
         the key in its noderef is probably wrong or outdated"
    )]
    PeerClosed,
    #[error(
        "the caller's first handshake message did not decrypt: it used a wrong or \
         outdated key for this node, or it is not a Warren node"
    )]
    CallerUsedWrongKey,
    #[error("handshake message {step} is {len} bytes; expected {expected}")]
    BadLength {
        step: u8,
        len: usize,
        expected: usize,
    },
    #[error("handshake message {step} failed")]
    Noise { step: u8, source: snow::Error },
    #[error("peer sent a bad handshake payload")]
    Message(#[from] MessageError),
    #[error("peer sent a bad frame during the handshake")]
    Frame(#[from] FrameError),
    #[error("expected the peer's Hello, got {0}")]
    UnexpectedMessage(&'static str),
    #[error("peer claims to be {claimed} but authenticated as {actual}")]
    IdentityMismatch {
        claimed: NodePublicKey,
        actual: NodePublicKey,
    },
    #[error("peer speaks protocol version {0}; this node supports {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION}")]
    UnsupportedVersion(u16),
    #[error("the peer refused the link ({0:?})")]
    Refused(CloseCode),
    #[error("our peer policy does not accept {0}")]
    NotAccepted(NodePublicKey),
}

/// Reader and writer of a link's socket, split so that reading never waits
/// for writing.
pub(crate) type FrameReader = FramedRead<OwnedReadHalf, LengthDelimitedCodec>;

fn noise_builder<'a>() -> Result<Builder<'a>, snow::Error> {
    Ok(Builder::new(NOISE_PARAMS.parse()?))
}

async fn read_frame(
    reader: &mut FrameReader,
    step: u8,
    expected: usize,
) -> Result<BytesMut, LinkError> {
    let frame = match reader.next().await {
        Some(frame) => frame?,
        None => return Err(LinkError::PeerClosed),
    };
    if frame.len() != expected {
        return Err(LinkError::BadLength {
            step,
            len: frame.len(),
            expected,
        });
    }
    Ok(frame)
}

async fn write_handshake(
    writer: &mut OwnedWriteHalf,
    hs: &mut HandshakeState,
    step: u8,
    payload: &[u8],
) -> Result<(), LinkError> {
    let mut message = vec![0; MAX_HANDSHAKE_FRAME];
    let len = hs
        .write_message(payload, &mut message)
        .map_err(|source| LinkError::Noise { step, source })?;
    let mut out = BytesMut::new();
    put_frame(&mut out, &message[..len]);
    writer.write_all(&out).await?;
    Ok(())
}

async fn write_transport(
    writer: &mut OwnedWriteHalf,
    cipher: &mut FrameCipher,
    message: &LinkMessage,
) -> Result<(), LinkError> {
    let mut out = BytesMut::new();
    cipher.seal(message, &mut out)?;
    writer.write_all(&out).await?;
    Ok(())
}

fn split(stream: TcpStream) -> Result<(FrameReader, OwnedWriteHalf), LinkError> {
    // Frames are small and latency matters more than coalescing.
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    // Room for two whole frames, so a block frame arrives in one or two reads.
    let reader = FramedRead::with_capacity(read, codec(MAX_HANDSHAKE_FRAME), READ_BUFFER);
    Ok((reader, write))
}

fn check_version(node: &NodeRef) -> Result<(), LinkError> {
    if (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&node.version) {
        Ok(())
    } else {
        Err(LinkError::UnsupportedVersion(node.version))
    }
}

/// Dial `remote` and run the handshake as initiator. Fails with
/// [`LinkError::Timeout`] if it takes longer than `config.handshake_timeout`.
pub async fn connect(
    identity: Arc<NodeIdentity>,
    local: NodeRef,
    remote: &NodeRef,
    config: &LinkConfig,
) -> Result<Link, LinkError> {
    let attempt = async {
        let stream = TcpStream::connect(remote.address).await?;
        initiate(stream, &identity, &local, remote, config).await
    };
    tokio::time::timeout(config.handshake_timeout, attempt)
        .await
        .map_err(|_| LinkError::Timeout(config.handshake_timeout))?
}

async fn initiate(
    stream: TcpStream,
    identity: &NodeIdentity,
    local: &NodeRef,
    remote: &NodeRef,
    config: &LinkConfig,
) -> Result<Link, LinkError> {
    let (mut reader, mut writer) = split(stream)?;
    let secret = identity.secret_bytes();
    let mut hs = noise_builder()
        .and_then(|b| b.local_private_key(&secret[..]))
        .and_then(|b| b.remote_public_key(&remote.identity.0))
        .and_then(|b| b.prologue(PROLOGUE))
        .and_then(Builder::build_initiator)
        .map_err(|source| LinkError::Noise { step: 1, source })?;
    drop(secret);

    write_handshake(&mut writer, &mut hs, 1, &[]).await?;
    let msg2 = read_frame(&mut reader, 2, MSG2_LEN).await?;
    let mut payload = [0u8; MSG2_LEN];
    let n = hs
        .read_message(&msg2, &mut payload)
        .map_err(|source| LinkError::Noise { step: 2, source })?;
    if n != 0 {
        return Err(LinkError::BadLength {
            step: 2,
            len: msg2.len(),
            expected: MSG2_LEN,
        });
    }
    let hello = LinkMessage::Hello(local.clone()).encode()?;
    write_handshake(&mut writer, &mut hs, 3, &hello).await?;
    let mut cipher = FrameCipher::new(
        hs.into_transport_mode()
            .map_err(|source| LinkError::Noise { step: 3, source })?,
    );

    let msg4 = read_frame(&mut reader, 4, PAD_CONTROL + TAG_LEN).await?;
    let peer = match cipher.open(&msg4)? {
        LinkMessage::Hello(peer) => peer,
        LinkMessage::Close(code) => return Err(LinkError::Refused(code)),
        _ => return Err(LinkError::UnexpectedMessage("another message")),
    };
    if peer.identity != remote.identity {
        return Err(LinkError::IdentityMismatch {
            claimed: peer.identity,
            actual: remote.identity,
        });
    }
    check_version(&peer)?;
    reader.decoder_mut().set_max_frame_length(MAX_FRAME_LEN);
    // The address is the one we dialled and reached, not the one the peer
    // claims: a claim would let it point our redials (and peers.txt) at any
    // host it likes.
    let mut peer = peer;
    peer.address = remote.address;
    debug!(peer = ?peer.identity, addr = %remote.address, "link up (outbound)");
    Ok(Link::new(peer, reader, writer, cipher, config.clone()))
}

fn remote_static(hs: &HandshakeState) -> Result<NodePublicKey, LinkError> {
    hs.get_remote_static()
        .and_then(|key| key.try_into().ok())
        .map(NodePublicKey)
        .ok_or(LinkError::UnexpectedMessage("no static key"))
}

/// What the responder checks once it knows who calls; an error carries the
/// code to send back.
fn responder_checks(
    peer: &NodeRef,
    actual: NodePublicKey,
    policy: &dyn PeerPolicy,
) -> Result<(), (CloseCode, LinkError)> {
    if peer.identity != actual {
        let err = LinkError::IdentityMismatch {
            claimed: peer.identity,
            actual,
        };
        return Err((CloseCode::ProtocolViolation, err));
    }
    check_version(peer).map_err(|err| (CloseCode::UnsupportedVersion, err))?;
    if !policy.accept_peer(peer) {
        return Err((CloseCode::NotAccepted, LinkError::NotAccepted(actual)));
    }
    Ok(())
}

/// Run the handshake as responder on an accepted connection. The caller
/// applies the deadline.
pub(crate) async fn respond(
    stream: TcpStream,
    from: SocketAddr,
    identity: &NodeIdentity,
    local: &NodeRef,
    config: &LinkConfig,
    policy: &dyn PeerPolicy,
) -> Result<Link, LinkError> {
    let (mut reader, mut writer) = split(stream)?;
    let secret = identity.secret_bytes();
    let mut hs = noise_builder()
        .and_then(|b| b.local_private_key(&secret[..]))
        .and_then(|b| b.prologue(PROLOGUE))
        .and_then(Builder::build_responder)
        .map_err(|source| LinkError::Noise { step: 1, source })?;
    drop(secret);

    let msg1 = tokio::time::timeout(
        config.first_message_timeout,
        read_frame(&mut reader, 1, MSG1_LEN),
    )
    .await
    .map_err(|_| LinkError::Timeout(config.first_message_timeout))??;
    let mut payload = [0u8; MSG1_LEN];
    let n = hs
        .read_message(&msg1, &mut payload)
        .map_err(|_| LinkError::CallerUsedWrongKey)?;
    if n != 0 {
        return Err(LinkError::BadLength {
            step: 1,
            len: msg1.len(),
            expected: MSG1_LEN,
        });
    }
    write_handshake(&mut writer, &mut hs, 2, &[]).await?;
    let msg3 = read_frame(&mut reader, 3, MSG3_LEN).await?;
    let mut payload = vec![0u8; MSG3_LEN];
    let n = hs
        .read_message(&msg3, &mut payload)
        .map_err(|source| LinkError::Noise { step: 3, source })?;
    payload.truncate(n);
    let LinkMessage::Hello(peer) = LinkMessage::decode(&payload.into())? else {
        return Err(LinkError::UnexpectedMessage("another message in message 3"));
    };
    let actual = remote_static(&hs)?;
    let mut cipher = FrameCipher::new(
        hs.into_transport_mode()
            .map_err(|source| LinkError::Noise { step: 3, source })?,
    );
    let refusal = responder_checks(&peer, actual, policy);
    if let Err((code, err)) = refusal {
        // Best effort: tell the caller why, then hang up.
        let _ = write_transport(&mut writer, &mut cipher, &LinkMessage::Close(code)).await;
        let _ = writer.shutdown().await;
        return Err(err);
    }
    write_transport(&mut writer, &mut cipher, &LinkMessage::Hello(local.clone())).await?;
    reader.decoder_mut().set_max_frame_length(MAX_FRAME_LEN);
    debug!(peer = ?peer.identity, %from, "link up (inbound)");
    Ok(Link::new(peer, reader, writer, cipher, config.clone()))
}

#[cfg(test)]
pub(crate) mod tests {
    use rand::SeedableRng;

    use super::*;

    /// Two transport sessions joined by an in-memory XK handshake.
    pub(crate) fn transport_pair() -> (FrameCipher, FrameCipher) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let a = NodeIdentity::generate(&mut rng);
        let b = NodeIdentity::generate(&mut rng);
        let mut init = noise_builder()
            .unwrap()
            .local_private_key(&a.secret_bytes()[..])
            .unwrap()
            .remote_public_key(&b.public().0)
            .unwrap()
            .prologue(PROLOGUE)
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut resp = noise_builder()
            .unwrap()
            .local_private_key(&b.secret_bytes()[..])
            .unwrap()
            .prologue(PROLOGUE)
            .unwrap()
            .build_responder()
            .unwrap();
        let (mut buf, mut out) = (vec![0; 1024], vec![0; 1024]);
        let n = init.write_message(&[], &mut buf).unwrap();
        assert_eq!(n, MSG1_LEN);
        resp.read_message(&buf[..n], &mut out).unwrap();
        let n = resp.write_message(&[], &mut buf).unwrap();
        assert_eq!(n, MSG2_LEN);
        init.read_message(&buf[..n], &mut out).unwrap();
        let n = init.write_message(&[0; PAD_CONTROL], &mut buf).unwrap();
        assert_eq!(n, MSG3_LEN);
        resp.read_message(&buf[..n], &mut out).unwrap();
        assert_eq!(resp.get_remote_static(), Some(&a.public().0[..]));
        (
            FrameCipher::new(init.into_transport_mode().unwrap()),
            FrameCipher::new(resp.into_transport_mode().unwrap()),
        )
    }
}
