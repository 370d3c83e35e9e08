//! Routing messages between nodes and their postcard encoding.
//!
//! Every message on a link is `WIRE_VERSION ‖ postcard(Message)`. The size is
//! checked against [`MAX_MESSAGE_LEN`] before anything is decoded, the version
//! byte before the body, and trailing bytes are refused, so one message has one
//! encoding. Block bytes travel as one length-prefixed byte string (not a
//! sequence of integers), and are only *carried* here: the routing core checks
//! them against the routing key it asked for.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};
use warren_crypto::{Location, NodePublicKey, NodeRef, RoutingKey, BLOCK_LEN, PROTOCOL_VERSION};

/// Version of the message encoding; the first byte of every message.
pub const WIRE_VERSION: u8 = 1;

/// Headroom over one block for the largest message's other fields
/// (tag, id, key, hops-to-live and length prefixes need under 64 bytes).
const MESSAGE_OVERHEAD: usize = 256;

/// Largest encoded message accepted or produced. A `DataFound` or
/// `InsertData` carrying a full block fits; the link layer's payload cap
/// (`link::MAX_PAYLOAD`, checked at compile time) is at least this.
pub const MAX_MESSAGE_LEN: usize = BLOCK_LEN + MESSAGE_OVERHEAD;

/// A random 64-bit request id, chosen by the originator and kept along the path.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct RequestId(pub u64);

/// One routing message. See `docs/PROTOCOL.md` (Part III) for the rules.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Find the block named `key`, with `htl` hops left.
    Request {
        id: RequestId,
        key: RoutingKey,
        htl: u8,
    },
    /// Store the block named `key` along the route toward `key`. The block
    /// follows in `InsertData` once the receiver has accepted, so a loop or an
    /// overloaded peer costs a few bytes, not a block.
    Insert {
        id: RequestId,
        key: RoutingKey,
        htl: u8,
    },
    /// The receiver took the request on and is working on it.
    Accepted { id: RequestId },
    /// The block of an accepted `Insert`.
    InsertData {
        id: RequestId,
        #[serde(with = "block_bytes")]
        block: Vec<u8>,
    },
    /// The block for a `Request`, travelling back along the path.
    DataFound {
        id: RequestId,
        #[serde(with = "block_bytes")]
        block: Vec<u8>,
    },
    /// The hops ran out without finding the block; `htl` hops are left over.
    DataNotFound { id: RequestId, htl: u8 },
    /// No untried peer was left to route to; `htl` hops are left over.
    RouteNotFound { id: RequestId, htl: u8 },
    /// The receiver has this request id in flight already: a loop.
    RejectedLoop { id: RequestId },
    /// The receiver will not take this request on now; back off from it.
    Overloaded { id: RequestId },
    /// An insert finished its route.
    InsertReply { id: RequestId },
    /// An insert met different data already stored under its key.
    InsertCollision { id: RequestId },
    /// A node looking for peers near its own location: routed greedily toward
    /// `noderef.location` with `htl` hops left. Every node on the path that
    /// wants a peer answers with an `AnnounceReply` and connects to `noderef`.
    Announce {
        id: RequestId,
        htl: u8,
        #[serde(with = "noderef_bytes")]
        noderef: NodeRef,
    },
    /// A node on an announcement's path offers itself as a peer; relayed back
    /// to the announcing node.
    AnnounceReply {
        id: RequestId,
        #[serde(with = "noderef_bytes")]
        noderef: NodeRef,
    },
    /// An announcement's route ended; `htl` hops are left over.
    AnnounceEnd { id: RequestId, htl: u8 },
    /// Path folding: after a `DataFound`, the data source (or a hop that put
    /// itself in its place) offers its noderef back along the request's path.
    FoldOffer {
        id: RequestId,
        #[serde(with = "noderef_bytes")]
        noderef: NodeRef,
    },
    /// The hop that took a `FoldOffer` answers with its own noderef, relayed
    /// back to the node that made the offer, so either side can dial.
    FoldReply {
        id: RequestId,
        #[serde(with = "noderef_bytes")]
        noderef: NodeRef,
    },
    /// Find the SSK block named `key`, with `htl` hops left. Answered like a
    /// `Request` (`Accepted`, then `DataFound` carrying the SSK block, or
    /// `DataNotFound`/`RouteNotFound`); kept apart so a block is always
    /// checked by the rules of the key type that was asked for.
    SskRequest {
        id: RequestId,
        key: RoutingKey,
        htl: u8,
    },
    /// Store the SSK block named `key` along the route toward `key`. The
    /// block is small, so it travels with the insert (no `InsertData`).
    /// Answered like an `Insert` (`Accepted`, then `InsertReply`, or
    /// `SskCollision`).
    SskInsert {
        id: RequestId,
        key: RoutingKey,
        htl: u8,
        #[serde(with = "block_bytes")]
        block: Vec<u8>,
    },
    /// The receiver (or a node past it) holds a different SSK block under the
    /// insert's key: that block, so the writer learns what is there.
    SskCollision {
        id: RequestId,
        #[serde(with = "block_bytes")]
        block: Vec<u8>,
    },
}

impl Message {
    /// The request this message belongs to.
    pub fn id(&self) -> RequestId {
        match self {
            Message::Request { id, .. }
            | Message::Insert { id, .. }
            | Message::Accepted { id }
            | Message::InsertData { id, .. }
            | Message::DataFound { id, .. }
            | Message::DataNotFound { id, .. }
            | Message::RouteNotFound { id, .. }
            | Message::RejectedLoop { id }
            | Message::Overloaded { id }
            | Message::InsertReply { id }
            | Message::InsertCollision { id }
            | Message::Announce { id, .. }
            | Message::AnnounceReply { id, .. }
            | Message::AnnounceEnd { id, .. }
            | Message::FoldOffer { id, .. }
            | Message::FoldReply { id, .. }
            | Message::SskRequest { id, .. }
            | Message::SskInsert { id, .. }
            | Message::SskCollision { id, .. } => *id,
        }
    }

    /// A short name for logs and statistics.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Request { .. } => "Request",
            Message::Insert { .. } => "Insert",
            Message::Accepted { .. } => "Accepted",
            Message::InsertData { .. } => "InsertData",
            Message::DataFound { .. } => "DataFound",
            Message::DataNotFound { .. } => "DataNotFound",
            Message::RouteNotFound { .. } => "RouteNotFound",
            Message::RejectedLoop { .. } => "RejectedLoop",
            Message::Overloaded { .. } => "Overloaded",
            Message::InsertReply { .. } => "InsertReply",
            Message::InsertCollision { .. } => "InsertCollision",
            Message::Announce { .. } => "Announce",
            Message::AnnounceReply { .. } => "AnnounceReply",
            Message::AnnounceEnd { .. } => "AnnounceEnd",
            Message::FoldOffer { .. } => "FoldOffer",
            Message::FoldReply { .. } => "FoldReply",
            Message::SskRequest { .. } => "SskRequest",
            Message::SskInsert { .. } => "SskInsert",
            Message::SskCollision { .. } => "SskCollision",
        }
    }
}

impl core::fmt::Debug for Message {
    // Block bytes are 32 KiB of noise: print their length, never their content.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Message::SskInsert {
                id,
                key,
                htl,
                block,
            } => f
                .debug_struct(self.kind())
                .field("id", id)
                .field("key", key)
                .field("htl", htl)
                .field("block_len", &block.len())
                .finish(),
            Message::Request { id, key, htl }
            | Message::Insert { id, key, htl }
            | Message::SskRequest { id, key, htl } => f
                .debug_struct(self.kind())
                .field("id", id)
                .field("key", key)
                .field("htl", htl)
                .finish(),
            Message::DataFound { id, block }
            | Message::InsertData { id, block }
            | Message::SskCollision { id, block } => f
                .debug_struct(self.kind())
                .field("id", id)
                .field("block_len", &block.len())
                .finish(),
            Message::Announce { id, htl, noderef } => f
                .debug_struct(self.kind())
                .field("id", id)
                .field("htl", htl)
                .field("noderef", noderef)
                .finish(),
            Message::AnnounceReply { id, noderef }
            | Message::FoldOffer { id, noderef }
            | Message::FoldReply { id, noderef } => f
                .debug_struct(self.kind())
                .field("id", id)
                .field("noderef", noderef)
                .finish(),
            Message::DataNotFound { id, htl }
            | Message::RouteNotFound { id, htl }
            | Message::AnnounceEnd { id, htl } => f
                .debug_struct(self.kind())
                .field("id", id)
                .field("htl", htl)
                .finish(),
            Message::Accepted { id }
            | Message::RejectedLoop { id }
            | Message::Overloaded { id }
            | Message::InsertReply { id }
            | Message::InsertCollision { id } => {
                f.debug_struct(self.kind()).field("id", id).finish()
            }
        }
    }
}

/// Why bytes from a peer are not a message. Any of these disconnects the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("message of {0} bytes exceeds the limit of {MAX_MESSAGE_LEN}")]
    TooLarge(usize),
    #[error("empty message")]
    Empty,
    #[error("message version {0} is not supported (this node speaks {WIRE_VERSION})")]
    UnknownVersion(u8),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("{0} bytes left over after the message")]
    TrailingBytes(usize),
}

/// Encodes a message: version byte, then postcard.
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(match msg {
        Message::InsertData { block, .. }
        | Message::DataFound { block, .. }
        | Message::SskInsert { block, .. }
        | Message::SskCollision { block, .. } => block.len() + MESSAGE_OVERHEAD,
        _ => MESSAGE_OVERHEAD,
    });
    out.push(WIRE_VERSION);
    // Serialising these plain types into a Vec cannot fail; should it ever,
    // the empty message is refused by the peer rather than half-sent.
    postcard::to_extend(msg, out).unwrap_or_default()
}

/// Decodes one message, checking size and version before parsing.
pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(WireError::TooLarge(bytes.len()));
    }
    let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::UnknownVersion(version));
    }
    let (msg, rest) = postcard::take_from_bytes::<Message>(body)
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    Ok(msg)
}

/// Bytes of a noderef inside a message: every noderef on the wire has this
/// one size, whatever its address family.
pub const NODEREF_WIRE_LEN: usize = 64;
/// Address family bytes in a packed noderef.
const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;
/// Offsets of the packed noderef's fields: version (u16 BE), identity (32
/// bytes), location (u64 BE), family, IP (16 bytes, IPv4 in the first 4),
/// port (u16 BE), then zero padding.
const AT_IDENTITY: usize = 2;
const AT_LOCATION: usize = AT_IDENTITY + 32;
const AT_FAMILY: usize = AT_LOCATION + 8;
const AT_IP: usize = AT_FAMILY + 1;
const AT_PORT: usize = AT_IP + 16;
const PACKED_END: usize = AT_PORT + 2;
const _: () = assert!(PACKED_END <= NODEREF_WIRE_LEN);

/// Why bytes are not a packed noderef.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackedNodeRefError {
    #[error("a packed noderef is {NODEREF_WIRE_LEN} bytes, not {0}")]
    Length(usize),
    #[error("noderef version {0} is not one this node speaks")]
    Version(u16),
    #[error("unknown address family {0}")]
    Family(u8),
    #[error("bytes after the fields are not zero (an IPv4 address with IPv6 bytes, or padding)")]
    NonZeroPadding,
}

/// A noderef as its fixed-size wire form.
pub fn pack_noderef(noderef: &NodeRef) -> [u8; NODEREF_WIRE_LEN] {
    let mut out = [0u8; NODEREF_WIRE_LEN];
    out[..AT_IDENTITY].copy_from_slice(&noderef.version.to_be_bytes());
    out[AT_IDENTITY..AT_LOCATION].copy_from_slice(&noderef.identity.0);
    out[AT_LOCATION..AT_FAMILY].copy_from_slice(&noderef.location.0.to_be_bytes());
    match noderef.address.ip() {
        IpAddr::V4(ip) => {
            out[AT_FAMILY] = FAMILY_V4;
            out[AT_IP..AT_IP + 4].copy_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out[AT_FAMILY] = FAMILY_V6;
            out[AT_IP..AT_PORT].copy_from_slice(&ip.octets());
        }
    }
    out[AT_PORT..PACKED_END].copy_from_slice(&noderef.address.port().to_be_bytes());
    out
}

/// Parses a packed noderef; one noderef has exactly one packed form.
pub fn unpack_noderef(bytes: &[u8]) -> Result<NodeRef, PackedNodeRefError> {
    let bytes: &[u8; NODEREF_WIRE_LEN] = bytes
        .try_into()
        .map_err(|_| PackedNodeRefError::Length(bytes.len()))?;
    let version = u16::from_be_bytes([bytes[0], bytes[1]]);
    if version == 0 || version > PROTOCOL_VERSION {
        return Err(PackedNodeRefError::Version(version));
    }
    let mut identity = [0u8; 32];
    identity.copy_from_slice(&bytes[AT_IDENTITY..AT_LOCATION]);
    let mut location = [0u8; 8];
    location.copy_from_slice(&bytes[AT_LOCATION..AT_FAMILY]);
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&bytes[AT_IP..AT_PORT]);
    let ip = match bytes[AT_FAMILY] {
        FAMILY_V4 => {
            if ip[4..].iter().any(|&b| b != 0) {
                return Err(PackedNodeRefError::NonZeroPadding);
            }
            IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]))
        }
        FAMILY_V6 => IpAddr::V6(Ipv6Addr::from(ip)),
        other => return Err(PackedNodeRefError::Family(other)),
    };
    if bytes[PACKED_END..].iter().any(|&b| b != 0) {
        return Err(PackedNodeRefError::NonZeroPadding);
    }
    let port = u16::from_be_bytes([bytes[AT_PORT], bytes[AT_PORT + 1]]);
    Ok(NodeRef {
        identity: NodePublicKey(identity),
        location: Location(u64::from_be_bytes(location)),
        address: SocketAddr::new(ip, port),
        version,
    })
}

/// The packed-noderef fuzz target's body: never panics, and whatever parses
/// packs back to the same bytes.
pub fn fuzz_unpack_noderef(bytes: &[u8]) {
    if let Ok(noderef) = unpack_noderef(bytes) {
        assert_eq!(
            &pack_noderef(&noderef)[..],
            bytes,
            "one noderef, one packing"
        );
    }
}

/// The fuzz target's body: decoding arbitrary bytes never panics, and whatever
/// decodes survives a re-encode unchanged. (postcard accepts over-long varints,
/// so the bytes themselves need not match.)
pub fn fuzz_decode(bytes: &[u8]) {
    if let Ok(msg) = decode(bytes) {
        let again = encode(&msg);
        assert!(
            again.len() <= MAX_MESSAGE_LEN,
            "re-encoding grew past the limit"
        );
        assert_eq!(
            decode(&again).ok(),
            Some(msg),
            "re-encoding changed the message"
        );
    }
}

/// Serde helper: a noderef as its fixed-size packed bytes.
mod noderef_bytes {
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};
    use warren_crypto::NodeRef;

    pub(super) fn serialize<S: Serializer>(noderef: &NodeRef, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&super::pack_noderef(noderef))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NodeRef, D::Error> {
        d.deserialize_bytes(PackedVisitor)
    }

    struct PackedVisitor;

    impl Visitor<'_> for PackedVisitor {
        type Value = NodeRef;

        fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("a packed noderef")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<NodeRef, E> {
            super::unpack_noderef(v).map_err(E::custom)
        }
    }
}

/// Serde helper: block bytes as one byte string, borrowed from the input while decoding.
mod block_bytes {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    #[allow(clippy::ptr_arg)] // serde's `with` passes the field's own type.
    pub(super) fn serialize<S: Serializer>(bytes: &Vec<u8>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_bytes(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("block bytes")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            if v.len() > super::MAX_MESSAGE_LEN {
                return Err(E::custom("block bytes exceed the message limit"));
            }
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            self.visit_bytes(&v)
        }

        // Self-describing formats (JSON) hand bytes over as a sequence.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(byte) = seq.next_element::<u8>()? {
                if out.len() == super::MAX_MESSAGE_LEN {
                    return Err(A::Error::custom("block bytes exceed the message limit"));
                }
                out.push(byte);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key_strategy() -> impl Strategy<Value = RoutingKey> {
        any::<[u8; 32]>().prop_map(RoutingKey::from_bytes)
    }

    fn block_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            Just(vec![0xA5; BLOCK_LEN]),
        ]
    }

    fn message_strategy() -> impl Strategy<Value = Message> {
        let id = any::<u64>().prop_map(RequestId);
        prop_oneof![
            (id.clone(), key_strategy(), any::<u8>()).prop_map(|(id, key, htl)| Message::Request {
                id,
                key,
                htl
            }),
            (id.clone(), key_strategy(), any::<u8>()).prop_map(|(id, key, htl)| Message::Insert {
                id,
                key,
                htl
            }),
            id.clone().prop_map(|id| Message::Accepted { id }),
            (id.clone(), block_strategy())
                .prop_map(|(id, block)| Message::InsertData { id, block }),
            (id.clone(), block_strategy()).prop_map(|(id, block)| Message::DataFound { id, block }),
            (id.clone(), any::<u8>()).prop_map(|(id, htl)| Message::DataNotFound { id, htl }),
            (id.clone(), any::<u8>()).prop_map(|(id, htl)| Message::RouteNotFound { id, htl }),
            id.clone().prop_map(|id| Message::RejectedLoop { id }),
            id.clone().prop_map(|id| Message::Overloaded { id }),
            id.clone().prop_map(|id| Message::InsertReply { id }),
            id.clone().prop_map(|id| Message::InsertCollision { id }),
            (id.clone(), any::<u8>(), noderef_strategy())
                .prop_map(|(id, htl, noderef)| Message::Announce { id, htl, noderef }),
            (id.clone(), noderef_strategy())
                .prop_map(|(id, noderef)| Message::AnnounceReply { id, noderef }),
            (id.clone(), any::<u8>()).prop_map(|(id, htl)| Message::AnnounceEnd { id, htl }),
            (id.clone(), noderef_strategy())
                .prop_map(|(id, noderef)| Message::FoldOffer { id, noderef }),
            (id.clone(), noderef_strategy())
                .prop_map(|(id, noderef)| Message::FoldReply { id, noderef }),
            (id.clone(), key_strategy(), any::<u8>())
                .prop_map(|(id, key, htl)| Message::SskRequest { id, key, htl }),
            (id.clone(), key_strategy(), any::<u8>(), block_strategy()).prop_map(
                |(id, key, htl, block)| Message::SskInsert {
                    id,
                    key,
                    htl,
                    block
                }
            ),
            (id, block_strategy()).prop_map(|(id, block)| Message::SskCollision { id, block }),
        ]
    }

    fn noderef_strategy() -> impl Strategy<Value = NodeRef> {
        let ip = prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ];
        (any::<[u8; 32]>(), any::<u64>(), ip, any::<u16>()).prop_map(|(key, loc, ip, port)| {
            NodeRef {
                identity: NodePublicKey(key),
                location: Location(loc),
                address: SocketAddr::new(ip, port),
                version: PROTOCOL_VERSION,
            }
        })
    }

    fn sample_noderef() -> NodeRef {
        NodeRef {
            identity: NodePublicKey([0x11; 32]),
            location: Location(0x0123_4567_89ab_cdef),
            address: "192.0.2.7:9470".parse().unwrap(),
            version: PROTOCOL_VERSION,
        }
    }

    /// The id, key and block every pinned vector uses.
    const VECTOR_ID: RequestId = RequestId(0x0123_4567_89ab_cdef);
    const VECTOR_BLOCK: &[u8] = b"abc";

    fn vector_key() -> RoutingKey {
        RoutingKey::from_bytes(core::array::from_fn(|i| i as u8))
    }

    /// One example of every message and its exact encoding: the version byte,
    /// the variant index, then the fields in order (`RequestId` a varint, a
    /// key 32 raw bytes, `htl` one byte, a block a varint length then its
    /// bytes). Spaces separate fields. The same vectors are in
    /// `docs/PROTOCOL.md` (Part III, Encoding). Reordering the enum, or
    /// changing a field's type or order, changes these bytes.
    fn pinned_vectors() -> Vec<(Message, &'static str)> {
        let (id, key) = (VECTOR_ID, vector_key());
        let block = VECTOR_BLOCK.to_vec();
        vec![
            (
                Message::Request { id, key, htl: 18 },
                "01 00 ef9bafcdf8acd19101 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 12",
            ),
            (
                Message::Insert { id, key, htl: 16 },
                "01 01 ef9bafcdf8acd19101 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 10",
            ),
            (Message::Accepted { id }, "01 02 ef9bafcdf8acd19101"),
            (
                Message::InsertData {
                    id,
                    block: block.clone(),
                },
                "01 03 ef9bafcdf8acd19101 03 616263",
            ),
            (
                Message::DataFound { id, block },
                "01 04 ef9bafcdf8acd19101 03 616263",
            ),
            (
                Message::DataNotFound { id, htl: 0 },
                "01 05 ef9bafcdf8acd19101 00",
            ),
            (
                Message::RouteNotFound { id, htl: 5 },
                "01 06 ef9bafcdf8acd19101 05",
            ),
            (Message::RejectedLoop { id }, "01 07 ef9bafcdf8acd19101"),
            (Message::Overloaded { id }, "01 08 ef9bafcdf8acd19101"),
            (Message::InsertReply { id }, "01 09 ef9bafcdf8acd19101"),
            (Message::InsertCollision { id }, "01 0a ef9bafcdf8acd19101"),
            (
                Message::Announce {
                    id,
                    htl: 18,
                    noderef: sample_noderef(),
                },
                "01 0b ef9bafcdf8acd19101 12 40 000111111111111111111111111111111111111111111111111111111111111111110123456789abcdef04c000020700000000000000000000000024fe000000",
            ),
            (
                Message::AnnounceReply {
                    id,
                    noderef: sample_noderef(),
                },
                "01 0c ef9bafcdf8acd19101 40 000111111111111111111111111111111111111111111111111111111111111111110123456789abcdef04c000020700000000000000000000000024fe000000",
            ),
            (
                Message::AnnounceEnd { id, htl: 3 },
                "01 0d ef9bafcdf8acd19101 03",
            ),
            (
                Message::FoldOffer {
                    id,
                    noderef: sample_noderef(),
                },
                "01 0e ef9bafcdf8acd19101 40 000111111111111111111111111111111111111111111111111111111111111111110123456789abcdef04c000020700000000000000000000000024fe000000",
            ),
            (
                Message::FoldReply {
                    id,
                    noderef: sample_noderef(),
                },
                "01 0f ef9bafcdf8acd19101 40 000111111111111111111111111111111111111111111111111111111111111111110123456789abcdef04c000020700000000000000000000000024fe000000",
            ),
            (
                Message::SskRequest { id, key, htl: 18 },
                "01 10 ef9bafcdf8acd19101 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 12",
            ),
            (
                Message::SskInsert {
                    id,
                    key,
                    htl: 17,
                    block: VECTOR_BLOCK.to_vec(),
                },
                "01 11 ef9bafcdf8acd19101 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 11 03 616263",
            ),
            (
                Message::SskCollision {
                    id,
                    block: VECTOR_BLOCK.to_vec(),
                },
                "01 12 ef9bafcdf8acd19101 03 616263",
            ),
        ]
    }

    /// The postcard variant index of each message. Exhaustive, so a new
    /// variant does not compile here until it is given its index (and then
    /// `every_variant_has_a_pinned_vector` wants its vector).
    fn variant_index(msg: &Message) -> u8 {
        match msg {
            Message::Request { .. } => 0,
            Message::Insert { .. } => 1,
            Message::Accepted { .. } => 2,
            Message::InsertData { .. } => 3,
            Message::DataFound { .. } => 4,
            Message::DataNotFound { .. } => 5,
            Message::RouteNotFound { .. } => 6,
            Message::RejectedLoop { .. } => 7,
            Message::Overloaded { .. } => 8,
            Message::InsertReply { .. } => 9,
            Message::InsertCollision { .. } => 10,
            Message::Announce { .. } => 11,
            Message::AnnounceReply { .. } => 12,
            Message::AnnounceEnd { .. } => 13,
            Message::FoldOffer { .. } => 14,
            Message::FoldReply { .. } => 15,
            Message::SskRequest { .. } => 16,
            Message::SskInsert { .. } => 17,
            Message::SskCollision { .. } => 18,
        }
    }

    fn from_hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
        assert_eq!(digits.len() % 2, 0, "odd number of hex digits in {text}");
        digits
            .chunks(2)
            .map(|pair| {
                let pair = core::str::from_utf8(pair).unwrap();
                u8::from_str_radix(pair, 16).unwrap()
            })
            .collect()
    }

    fn to_hex(bytes: &[u8]) -> String {
        use core::fmt::Write;
        bytes.iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    #[test]
    fn every_message_encodes_to_its_pinned_bytes() {
        for (msg, hex) in pinned_vectors() {
            let expected = from_hex(hex);
            assert_eq!(to_hex(&encode(&msg)), to_hex(&expected), "{msg:?}");
            assert_eq!(decode(&expected).unwrap(), msg, "{hex}");
        }
    }

    #[test]
    fn packed_noderefs_have_one_size_and_pinned_bytes() {
        let v4 = sample_noderef();
        let packed = pack_noderef(&v4);
        let mut expected = vec![0x00, 0x01];
        expected.extend([0x11; 32]);
        expected.extend([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        expected.push(4);
        expected.extend([192, 0, 2, 7]);
        expected.extend([0; 12]);
        expected.extend(9470u16.to_be_bytes());
        expected.resize(NODEREF_WIRE_LEN, 0);
        assert_eq!(packed.to_vec(), expected);
        let v6 = NodeRef {
            address: "[2001:db8::1]:1".parse().unwrap(),
            ..v4.clone()
        };
        // Same size whatever the family: the size says nothing about the address.
        let a = encode(&Message::AnnounceReply {
            id: RequestId(1),
            noderef: v4,
        });
        let b = encode(&Message::AnnounceReply {
            id: RequestId(1),
            noderef: v6,
        });
        assert_eq!(a.len(), b.len());
        // Pinned: version, tag 12, id, length 64, packed noderef.
        assert_eq!(&a[..4], &[WIRE_VERSION, 12, 1, 64]);
    }

    #[test]
    fn self_contradictory_packed_noderefs_are_refused() {
        let good = pack_noderef(&sample_noderef());
        assert_eq!(
            unpack_noderef(&good[..63]),
            Err(PackedNodeRefError::Length(63))
        );
        let mut v4_with_v6_bytes = good;
        v4_with_v6_bytes[AT_IP + 8] = 1;
        assert_eq!(
            unpack_noderef(&v4_with_v6_bytes),
            Err(PackedNodeRefError::NonZeroPadding)
        );
        let mut padded = good;
        padded[NODEREF_WIRE_LEN - 1] = 1;
        assert_eq!(
            unpack_noderef(&padded),
            Err(PackedNodeRefError::NonZeroPadding)
        );
        let mut family = good;
        family[AT_FAMILY] = 5;
        assert_eq!(unpack_noderef(&family), Err(PackedNodeRefError::Family(5)));
        let mut version = good;
        version[1] = 0;
        assert_eq!(
            unpack_noderef(&version),
            Err(PackedNodeRefError::Version(0))
        );
        version[1] = 9;
        assert_eq!(
            unpack_noderef(&version),
            Err(PackedNodeRefError::Version(9))
        );
        // Inside a message, a bad noderef makes the message malformed.
        let mut msg = encode(&Message::FoldOffer {
            id: RequestId(1),
            noderef: sample_noderef(),
        });
        let at = msg.len() - NODEREF_WIRE_LEN + AT_FAMILY;
        msg[at] = 7;
        assert!(matches!(decode(&msg), Err(WireError::Malformed(_))));
    }

    #[test]
    fn every_variant_has_a_pinned_vector() {
        let indexes: Vec<u8> = pinned_vectors()
            .iter()
            .map(|(msg, _)| variant_index(msg))
            .collect();
        let expected: Vec<u8> = (0..).take(indexes.len()).collect();
        assert_eq!(indexes, expected, "one vector per variant, in enum order");
        for (msg, hex) in pinned_vectors() {
            let bytes = from_hex(hex);
            assert_eq!(bytes[0], WIRE_VERSION, "{hex}");
            assert_eq!(bytes[1], variant_index(&msg), "{hex}");
        }
    }

    /// `htl` is one raw byte: a value of 128 or more shows it is not a varint
    /// (the vectors' small values would read the same either way).
    #[test]
    fn htl_is_one_raw_byte() {
        let msg = Message::RouteNotFound {
            id: VECTOR_ID,
            htl: u8::MAX,
        };
        let bytes = from_hex("01 06 ef9bafcdf8acd19101 ff");
        assert_eq!(to_hex(&encode(&msg)), to_hex(&bytes));
        assert_eq!(decode(&bytes).unwrap(), msg);
    }

    /// The version byte and the largest block prefix: a full 32,790-byte
    /// block is the varint `96 80 02` then its bytes.
    #[test]
    fn full_block_prefix_and_version_are_pinned() {
        assert_eq!(WIRE_VERSION, 1);
        let msg = Message::DataFound {
            id: VECTOR_ID,
            block: vec![0x5a; BLOCK_LEN],
        };
        let bytes = encode(&msg);
        let header = from_hex("01 04 ef9bafcdf8acd19101 968002");
        assert_eq!(to_hex(&bytes[..header.len()]), to_hex(&header));
        assert_eq!(bytes.len(), header.len() + BLOCK_LEN);
        assert!(bytes[header.len()..].iter().all(|&b| b == 0x5a));
    }

    #[test]
    fn largest_message_fits_the_limit() {
        let msg = Message::InsertData {
            id: RequestId(u64::MAX),
            block: vec![0; BLOCK_LEN],
        };
        let bytes = encode(&msg);
        assert!(bytes.len() <= MAX_MESSAGE_LEN, "{} bytes", bytes.len());
        // Block bytes are one byte string, not one varint per byte.
        assert!(bytes.len() < BLOCK_LEN + 64);
        assert_eq!(decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn oversize_input_is_refused_before_parsing() {
        let bytes = vec![WIRE_VERSION; MAX_MESSAGE_LEN + 1];
        assert_eq!(
            decode(&bytes),
            Err(WireError::TooLarge(MAX_MESSAGE_LEN + 1))
        );
    }

    #[test]
    fn version_and_trailing_bytes_are_checked() {
        let mut bytes = encode(&Message::Accepted { id: RequestId(7) });
        assert_eq!(decode(&[]), Err(WireError::Empty));
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(WireError::TrailingBytes(1)));
        bytes.pop();
        bytes[0] = WIRE_VERSION + 1;
        assert_eq!(
            decode(&bytes),
            Err(WireError::UnknownVersion(WIRE_VERSION + 1))
        );
    }

    #[test]
    fn debug_hides_block_bytes() {
        let msg = Message::DataFound {
            id: RequestId(1),
            block: vec![0x42; 8],
        };
        let text = format!("{msg:?}");
        assert!(text.contains("block_len: 8"), "{text}");
        assert!(!text.contains("66"), "{text}");
    }

    proptest! {
        #[test]
        fn round_trip(msg in message_strategy()) {
            let bytes = encode(&msg);
            prop_assert!(bytes.len() <= MAX_MESSAGE_LEN);
            prop_assert_eq!(bytes[1], variant_index(&msg));
            prop_assert!(
                pinned_vectors().iter().any(|(v, _)| variant_index(v) == variant_index(&msg)),
                "{} has no pinned vector", msg.kind()
            );
            prop_assert_eq!(decode(&bytes).unwrap(), msg);
            fuzz_decode(&bytes);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            fuzz_decode(&bytes);
            let mut versioned = bytes;
            versioned.insert(0, WIRE_VERSION);
            fuzz_decode(&versioned);
        }

        #[test]
        fn packed_noderefs_round_trip(noderef in noderef_strategy()) {
            let packed = pack_noderef(&noderef);
            prop_assert_eq!(unpack_noderef(&packed), Ok(noderef));
            fuzz_unpack_noderef(&packed);
        }

        #[test]
        fn random_packed_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            fuzz_unpack_noderef(&bytes);
        }

        #[test]
        fn truncations_never_panic(msg in message_strategy(), cut in any::<prop::sample::Index>()) {
            let bytes = encode(&msg);
            let cut = cut.index(bytes.len());
            prop_assert!(decode(&bytes[..cut]).is_err());
        }
    }
}
