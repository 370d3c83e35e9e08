//! The link envelope: what one Noise transport frame carries.
//!
//! Plaintext layout: a postcard-encoded `Envelope` (a version byte and a
//! body), then zero bytes up to one of the padded sizes in
//! [`super::frame::PAD_SIZES`]. The decoder insists on a padded
//! size, a known version and all-zero padding, so there is exactly one
//! encoding of every message. It borrows from the plaintext: a received
//! payload is a zero-copy slice of the decrypted frame.

use std::net::SocketAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize, Serializer};
use warren_crypto::NodeRef;

use super::frame::{pad_size_for, PAD_BLOCK, PAD_CONTROL, PAD_SIZES};

/// Version of the envelope format; first byte of every plaintext.
pub const LINK_VERSION: u8 = 1;
/// Envelope bytes around a data payload: version (1), variant (1) and the
/// payload's varint length (3 for anything under 2 MiB), rounded up.
pub const ENVELOPE_OVERHEAD: usize = 8;
/// Largest application payload one frame carries: the largest routing
/// message (a full 32,790-byte block plus header room) with a little to spare.
pub const MAX_PAYLOAD: usize = PAD_BLOCK - ENVELOPE_OVERHEAD;

const _: () = assert!(MAX_PAYLOAD >= crate::wire::MAX_MESSAGE_LEN);

/// One decoded link message. `Data` borrows nothing: it is a slice of the
/// decrypted frame's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkMessage {
    /// An opaque application payload (an encoded routing message).
    Data(Bytes),
    /// The sender's noderef: in handshake message 3 (initiator) and the first
    /// transport frame (responder).
    Hello(NodeRef),
    /// Keepalive; the receiver answers `Pong` with the same number.
    Ping(u64),
    Pong(u64),
    /// The sender switched its sending key (Noise `REKEY`) after this frame.
    Rekey,
    /// The sender is closing the link and says why.
    Close(CloseCode),
    /// The address the sender sees this connection coming from (its TCP
    /// peer address): how a node learns its own public address. Sent once,
    /// first, by each side of a link.
    Observed(SocketAddr),
}

/// Why a peer closed a link, as sent on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CloseCode {
    /// Orderly shutdown.
    Shutdown,
    /// The responder's policy does not accept this peer.
    NotAccepted,
    /// The peer's protocol version is not supported.
    UnsupportedVersion,
    /// The peer sent something malformed.
    ProtocolViolation,
    /// The peer sent frames faster than allowed.
    Flooding,
    /// The peer was silent for too long.
    Timeout,
}

/// Why a plaintext was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    #[error("plaintext is {0} bytes; a link message is padded to one of {PAD_SIZES:?}")]
    BadPaddedSize(usize),
    #[error("envelope version {0} is not supported (this node speaks {LINK_VERSION})")]
    UnsupportedVersion(u8),
    #[error("malformed envelope: {0}")]
    Malformed(postcard::Error),
    #[error("padding after the envelope is not all zero bytes")]
    BadPadding,
    #[error("payload of {len} bytes is over the limit of {MAX_PAYLOAD}")]
    PayloadTooLarge { len: usize },
    #[error("message is not in its one canonical encoding (overlong varint)")]
    NotCanonical,
    #[error("message padded to {actual} bytes where {expected} would do")]
    NotMinimalPadding { actual: usize, expected: usize },
}

/// The wire form; see `docs/PROTOCOL.md`. Variant order is the wire tag.
#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    version: u8,
    #[serde(borrow)]
    body: Body<'a>,
}

#[derive(Serialize, Deserialize)]
enum Body<'a> {
    Data(#[serde(serialize_with = "as_bytes")] &'a [u8]),
    Hello(NodeRef),
    Ping(u64),
    Pong(u64),
    Rekey,
    Close(CloseCode),
    Observed(SocketAddr),
}

// serde serialises `&[u8]` as a sequence, one call per byte; postcard writes
// `bytes` identically (varint length, raw bytes) in one copy.
fn as_bytes<S: Serializer>(bytes: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

impl LinkMessage {
    /// Upper bound of the encoded envelope, to pick a padded size.
    fn encoded_bound(&self) -> usize {
        match self {
            LinkMessage::Data(payload) => payload.len() + ENVELOPE_OVERHEAD,
            // A noderef is at most ~75 bytes; every other control body less.
            _ => PAD_CONTROL,
        }
    }

    /// The padded plaintext size this message travels in, or an error if it
    /// is too large for any.
    pub fn padded_len(&self) -> Result<usize, MessageError> {
        if let LinkMessage::Data(payload) = self {
            if payload.len() > MAX_PAYLOAD {
                return Err(MessageError::PayloadTooLarge { len: payload.len() });
            }
        }
        pad_size_for(self.encoded_bound()).ok_or(MessageError::PayloadTooLarge {
            len: self.encoded_bound(),
        })
    }

    /// Encode into `out` (overwritten) as a padded plaintext.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), MessageError> {
        let padded = self.padded_len()?;
        // `resize` zeroes only growth; a reused buffer of the right size is
        // not rewritten, only the padding after the envelope below.
        out.resize(padded, 0);
        let body = match self {
            LinkMessage::Data(payload) => Body::Data(payload),
            LinkMessage::Hello(node) => Body::Hello(node.clone()),
            LinkMessage::Ping(n) => Body::Ping(*n),
            LinkMessage::Pong(n) => Body::Pong(*n),
            LinkMessage::Rekey => Body::Rekey,
            LinkMessage::Close(code) => Body::Close(*code),
            LinkMessage::Observed(addr) => Body::Observed(*addr),
        };
        let envelope = Envelope {
            version: LINK_VERSION,
            body,
        };
        let used = postcard::to_slice(&envelope, out)
            .map_err(MessageError::Malformed)?
            .len();
        out[used..].fill(0);
        Ok(())
    }

    /// Encode as a fresh padded plaintext.
    pub fn encode(&self) -> Result<Vec<u8>, MessageError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Decode a padded plaintext. Never allocates more than a noderef.
    pub fn decode(plaintext: &Bytes) -> Result<LinkMessage, MessageError> {
        let len = plaintext.len();
        if !PAD_SIZES.contains(&len) {
            return Err(MessageError::BadPaddedSize(len));
        }
        // The version byte first, so a future format fails with a clear error.
        match plaintext.first() {
            Some(&LINK_VERSION) => {}
            Some(&other) => return Err(MessageError::UnsupportedVersion(other)),
            None => return Err(MessageError::BadPaddedSize(0)),
        }
        let (envelope, rest): (Envelope<'_>, _) =
            postcard::take_from_bytes(plaintext).map_err(MessageError::Malformed)?;
        if !rest.iter().all(|&b| b == 0) {
            return Err(MessageError::BadPadding);
        }
        let used = len - rest.len();
        let message = match envelope.body {
            Body::Data(payload) => {
                if payload.len() > MAX_PAYLOAD {
                    return Err(MessageError::PayloadTooLarge { len: payload.len() });
                }
                LinkMessage::Data(plaintext.slice_ref(payload))
            }
            Body::Hello(node) => LinkMessage::Hello(node),
            Body::Ping(n) => LinkMessage::Ping(n),
            Body::Pong(n) => LinkMessage::Pong(n),
            Body::Rekey => LinkMessage::Rekey,
            Body::Close(code) => LinkMessage::Close(code),
            Body::Observed(addr) => LinkMessage::Observed(addr),
        };
        // One encoding per message: a padded size larger than needed, or an
        // overlong varint (postcard accepts those), would let a sender mark
        // frames (a covert channel) for no benefit.
        let expected = message.padded_len()?;
        if expected != len {
            return Err(MessageError::NotMinimalPadding {
                actual: len,
                expected,
            });
        }
        let canonical = match &message {
            LinkMessage::Data(payload) => used == 2 + varint_len(payload.len()) + payload.len(),
            // Control messages are small: re-encode and compare.
            other => other.encode()?[..] == plaintext[..],
        };
        if !canonical {
            return Err(MessageError::NotCanonical);
        }
        Ok(message)
    }
}

/// Bytes of the postcard varint encoding of `n`.
fn varint_len(n: usize) -> usize {
    let bits = usize::BITS - n.leading_zeros();
    (bits.max(1) as usize).div_ceil(7)
}

/// Fuzz and proptest entry point: decode arbitrary bytes as a plaintext and,
/// when that succeeds, check the message re-encodes to the same bytes.
pub fn fuzz_decode(data: &[u8]) {
    let plaintext = Bytes::copy_from_slice(data);
    if let Ok(message) = LinkMessage::decode(&plaintext) {
        let again = message.encode().ok();
        assert_eq!(again.as_deref(), Some(data), "decode/encode not canonical");
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use proptest::prelude::*;
    use warren_crypto::{Location, NodePublicKey, PROTOCOL_VERSION};

    use super::*;
    use crate::link::frame::PAD_MEDIUM;

    fn node(key: [u8; 32], loc: u64, addr: SocketAddr) -> NodeRef {
        NodeRef {
            identity: NodePublicKey(key),
            location: Location(loc),
            address: addr,
            version: PROTOCOL_VERSION,
        }
    }

    fn round_trip(message: &LinkMessage) -> LinkMessage {
        let bytes = Bytes::from(message.encode().unwrap());
        LinkMessage::decode(&bytes).unwrap()
    }

    #[test]
    fn pinned_encodings_match_the_protocol_document() {
        let ping = LinkMessage::Ping(300).encode().unwrap();
        assert_eq!(ping.len(), PAD_CONTROL);
        // version 1, variant 2 (Ping), varint 300 = ac 02, then zeros.
        assert_eq!(&ping[..5], &[1, 2, 0xac, 0x02, 0]);
        let close = LinkMessage::Close(CloseCode::NotAccepted).encode().unwrap();
        assert_eq!(&close[..4], &[1, 5, 1, 0]);
        let data = LinkMessage::Data(Bytes::from_static(b"abc"))
            .encode()
            .unwrap();
        assert_eq!(&data[..6], &[1, 0, 3, b'a', b'b', b'c']);
        let hello = LinkMessage::Hello(node([7; 32], 1, "10.0.0.1:258".parse().unwrap()));
        let hello = hello.encode().unwrap();
        let mut expected = vec![1, 1];
        expected.extend_from_slice(&[7; 32]);
        expected.extend_from_slice(&[1, 0, 10, 0, 0, 1, 0x82, 0x02, 1]);
        assert_eq!(&hello[..expected.len()], &expected[..]);
        assert!(hello[expected.len()..].iter().all(|&b| b == 0));
        // version 1, variant 6 (Observed), V4 (0), 203.0.113.7, port 9470
        // (varint fe 49), then zeros.
        let observed = LinkMessage::Observed("203.0.113.7:9470".parse().unwrap())
            .encode()
            .unwrap();
        assert_eq!(observed.len(), PAD_CONTROL);
        assert_eq!(&observed[..10], &[1, 6, 0, 203, 0, 113, 7, 0xfe, 0x49, 0]);
        assert!(observed[9..].iter().all(|&b| b == 0));
    }

    #[test]
    fn sizes_pick_the_smallest_pad() {
        let small = LinkMessage::Data(Bytes::from(vec![9; 100]))
            .encode()
            .unwrap();
        assert_eq!(small.len(), PAD_CONTROL);
        let medium = LinkMessage::Data(Bytes::from(vec![9; 1000]))
            .encode()
            .unwrap();
        assert_eq!(medium.len(), PAD_MEDIUM);
        let block = LinkMessage::Data(Bytes::from(vec![9; warren_crypto::BLOCK_LEN]));
        assert_eq!(block.encode().unwrap().len(), PAD_BLOCK);
        let max = LinkMessage::Data(Bytes::from(vec![9; MAX_PAYLOAD]));
        assert_eq!(round_trip(&max), max);
        let over = LinkMessage::Data(Bytes::from(vec![9; MAX_PAYLOAD + 1]));
        assert!(matches!(
            over.encode(),
            Err(MessageError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn decoder_refuses_non_canonical_input() {
        let mut ping = LinkMessage::Ping(1).encode().unwrap();
        ping[PAD_CONTROL - 1] = 1;
        assert_eq!(
            LinkMessage::decode(&Bytes::from(ping.clone())),
            Err(MessageError::BadPadding)
        );
        ping[PAD_CONTROL - 1] = 0;
        ping[0] = 2;
        assert_eq!(
            LinkMessage::decode(&Bytes::from(ping)),
            Err(MessageError::UnsupportedVersion(2))
        );
        let mut big_ping = vec![0; PAD_MEDIUM];
        big_ping[..3].copy_from_slice(&[1, 2, 1]);
        assert_eq!(
            LinkMessage::decode(&Bytes::from(big_ping)),
            Err(MessageError::NotMinimalPadding {
                actual: PAD_MEDIUM,
                expected: PAD_CONTROL
            })
        );
        assert_eq!(
            LinkMessage::decode(&Bytes::from(vec![1; 100])),
            Err(MessageError::BadPaddedSize(100))
        );
        // A data length that runs past the end of the plaintext.
        let mut lying = vec![0; PAD_CONTROL];
        lying[..5].copy_from_slice(&[1, 0, 0xff, 0xff, 0x03]);
        assert!(matches!(
            LinkMessage::decode(&Bytes::from(lying)),
            Err(MessageError::Malformed(_))
        ));
    }

    #[test]
    fn overlong_varints_are_refused() {
        // Found by the link_frames fuzz target: Ping(116) as `f4 00`.
        let mut ping = vec![0; PAD_CONTROL];
        ping[..4].copy_from_slice(&[1, 2, 0xf4, 0x00]);
        assert_eq!(
            LinkMessage::decode(&Bytes::from(ping)),
            Err(MessageError::NotCanonical)
        );
        let mut data = vec![0; PAD_CONTROL];
        data[..5].copy_from_slice(&[1, 0, 0x81, 0x00, 7]);
        assert_eq!(
            LinkMessage::decode(&Bytes::from(data)),
            Err(MessageError::NotCanonical)
        );
        assert_eq!(
            [0, 127, 128, 16_383, 16_384, MAX_PAYLOAD].map(varint_len),
            [1, 1, 2, 2, 3, 3]
        );
    }

    #[test]
    fn data_is_a_slice_of_the_plaintext() {
        let bytes = Bytes::from(
            LinkMessage::Data(Bytes::from(vec![5; 2000]))
                .encode()
                .unwrap(),
        );
        let LinkMessage::Data(payload) = LinkMessage::decode(&bytes).unwrap() else {
            panic!("not data");
        };
        // version, variant, two-byte varint length 2000, then the payload.
        assert_eq!(payload.as_ptr(), bytes[4..].as_ptr());
    }

    fn any_message() -> impl Strategy<Value = LinkMessage> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..MAX_PAYLOAD)
                .prop_map(|v| LinkMessage::Data(Bytes::from(v))),
            (
                any::<[u8; 32]>(),
                any::<u64>(),
                any::<[u8; 16]>(),
                any::<u16>()
            )
                .prop_map(|(k, l, ip, port)| LinkMessage::Hello(node(
                    k,
                    l,
                    SocketAddr::from((ip, port))
                ))),
            any::<u64>().prop_map(LinkMessage::Ping),
            any::<u64>().prop_map(LinkMessage::Pong),
            Just(LinkMessage::Rekey),
            Just(LinkMessage::Close(CloseCode::Flooding)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, port)| LinkMessage::Observed(SocketAddr::from((ip, port)))),
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, port)| LinkMessage::Observed(SocketAddr::from((ip, port)))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_message_round_trips(message in any_message()) {
            let bytes = message.encode().unwrap();
            prop_assert!(PAD_SIZES.contains(&bytes.len()));
            prop_assert_eq!(LinkMessage::decode(&Bytes::from(bytes)).unwrap(), message);
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            fuzz_decode(&data);
            let mut padded = data.clone();
            padded.resize(PAD_CONTROL, 0);
            fuzz_decode(&padded);
        }
    }
}
