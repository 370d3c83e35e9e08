//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the proptests,
//! so both exercise exactly the same code. Each takes arbitrary bytes, must
//! never panic, and checks that whatever decodes re-encodes to itself. Each
//! also returns what it decoded, so the proptests can assert that the input
//! they built reached the decoder they meant it for (the fuzz targets ignore
//! the result).

use sha2::{Digest, Sha256};

use crate::block::{BlockError, ChkBlock};
use crate::identity::NodeRef;
use crate::key::{CryptoKey, RoutingKey, KEY_LEN};
use crate::metadata::Metadata;
use crate::ssk::{AnyUri, SskBlock, SskBlockError, SskPayload};
use crate::uri::ChkUri;

/// Parses bytes as a URI; a parsed URI must print and parse back to itself.
pub fn parse_uri(data: &[u8]) -> Option<ChkUri> {
    let text = core::str::from_utf8(data).ok()?;
    let uri = text.parse::<ChkUri>().ok()?;
    let again: Result<ChkUri, _> = uri.to_string().parse();
    assert_eq!(again.as_ref(), Ok(&uri), "URI did not round-trip");
    Some(uri)
}

/// Parses bytes as any key type (`CHK@`, `SSK@`, `USK@`, `KSK@`, insert or
/// request); a parsed URI must print and parse back to itself.
pub fn parse_any_uri(data: &[u8]) -> Option<AnyUri> {
    let text = core::str::from_utf8(data).ok()?;
    let uri = text.parse::<AnyUri>().ok()?;
    let again: Result<AnyUri, _> = uri.to_string().parse();
    assert_eq!(again.as_ref(), Ok(&uri), "URI did not round-trip");
    Some(uri)
}

/// What the SSK block entry found: the block checked against the given
/// routing key, and against the routing key its own public key and name
/// give (so random bytes reach the signature check), each then decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SskOutcome {
    pub given_key: Result<SskPayload, SskBlockError>,
    pub own_key: Result<SskPayload, SskBlockError>,
}

/// A block entry's input: a routing key, a crypto key, then the block's
/// bytes; `None` when it is too short to hold the two keys.
fn split_keys(data: &[u8]) -> Option<(RoutingKey, CryptoKey, &[u8])> {
    let (routing, rest) = data.split_first_chunk::<KEY_LEN>()?;
    let (crypto, bytes) = rest.split_first_chunk::<KEY_LEN>()?;
    Some((
        RoutingKey::from_bytes(*routing),
        CryptoKey::from_bytes(*crypto),
        bytes,
    ))
}

/// Reads a routing key, a crypto key, then an SSK block; verifies and decodes it.
/// `None` when the input is too short to hold the two keys.
pub fn verify_and_decode_ssk_block(data: &[u8]) -> Option<SskOutcome> {
    let (routing, crypto, bytes) = split_keys(data)?;
    let open = |routing: RoutingKey| {
        let block = SskBlock::verify(routing, bytes.to_vec())?;
        block.decode(&crypto)
    };
    // The routing key the block's own public key and hashed name give.
    let own = match (bytes.get(2..34), bytes.get(34..66)) {
        (Some(pk), Some(name)) => {
            let mut p = [0u8; KEY_LEN];
            p.copy_from_slice(pk);
            let mut n = [0u8; KEY_LEN];
            n.copy_from_slice(name);
            crate::ssk::routing_key(
                &crate::ssk::SskPublicKey::from_bytes(p).hash(),
                &crate::ssk::HashedName::from_bytes(n),
            )
        }
        _ => RoutingKey::from_bytes([0; KEY_LEN]),
    };
    Some(SskOutcome {
        given_key: open(routing),
        own_key: open(own),
    })
}

/// What the block entry found for one input: the block checked against the
/// routing key given in the input, and against the bytes' own hash (so that
/// random bytes reach the decoder behind verification), each then decoded
/// with the given crypto key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    pub given_key: Result<Vec<u8>, BlockError>,
    pub own_hash: Result<Vec<u8>, BlockError>,
}

/// Reads a routing key, a crypto key, then a block; verifies and decodes it.
/// A block that decodes must be canonical: its content encodes to it again.
/// `None` when the input is too short to hold the two keys.
pub fn verify_and_decode_block(data: &[u8]) -> Option<BlockOutcome> {
    let (routing, crypto, bytes) = split_keys(data)?;
    let open = |routing: RoutingKey| {
        let block = ChkBlock::verify(routing, bytes.to_vec())?;
        let plain = block.decode(&crypto)?;
        let again = ChkBlock::encode(&plain).map(|(again, _)| again.routing_key());
        assert_eq!(again, Ok(block.routing_key()), "block is not canonical");
        Ok(plain)
    };
    Some(BlockOutcome {
        given_key: open(routing),
        own_hash: open(RoutingKey::from_bytes(Sha256::digest(bytes).into())),
    })
}

/// A `block_decode` input that reaches the decoder and decodes: the block
/// of `content`'s routing key, its crypto key, then the whole block. The
/// seed corpus (`fuzz/corpus/block_decode/`) is made of these, by
/// `cargo run -p warren-crypto --example fuzz_seeds`.
pub fn block_seed(content: &[u8]) -> Result<Vec<u8>, BlockError> {
    let (block, key) = ChkBlock::encode(content)?;
    let mut seed = Vec::with_capacity(2 * KEY_LEN + block.as_bytes().len());
    seed.extend_from_slice(key.routing.as_bytes());
    seed.extend_from_slice(key.crypto.as_bytes());
    seed.extend_from_slice(block.as_bytes());
    Ok(seed)
}

/// An `ssk_block` input that reaches the payload decoder: the routing key
/// and crypto key of the keyword `keyword`'s KSK, then its signed block
/// holding `content` inline. The seed corpus (`fuzz/corpus/ssk_block/`) is
/// made of these, by `cargo run -p warren-crypto --example fuzz_seeds`.
pub fn ssk_block_seed(keyword: &str, content: &[u8]) -> Result<Vec<u8>, SskBlockError> {
    let insert = crate::ssk::KskUri {
        keyword: keyword.to_owned(),
        path: None,
    }
    .insert_uri();
    let block = SskBlock::encode(
        &insert.private,
        &insert.crypto,
        &insert.hashed_name(),
        &SskPayload::Data(content.to_vec()),
    )?;
    let mut seed = Vec::with_capacity(2 * KEY_LEN + block.as_bytes().len());
    seed.extend_from_slice(insert.routing_key().as_bytes());
    seed.extend_from_slice(insert.crypto.as_bytes());
    seed.extend_from_slice(block.as_bytes());
    Ok(seed)
}

/// Decodes bytes as a metadata document; one that decodes must re-encode exactly.
pub fn decode_metadata(data: &[u8]) -> Option<Metadata> {
    let document = Metadata::from_bytes(data).ok()?;
    assert_eq!(document.to_bytes(), data, "metadata is not canonical");
    Some(document)
}

/// Parses bytes as a noderef; a parsed noderef must print and parse back to itself.
pub fn parse_noderef(data: &[u8]) -> Option<NodeRef> {
    let text = core::str::from_utf8(data).ok()?;
    let node = text.parse::<NodeRef>().ok()?;
    let again: Result<NodeRef, _> = node.to_string().parse();
    assert_eq!(again.as_ref(), Ok(&node), "noderef did not round-trip");
    Some(node)
}

#[cfg(test)]
mod tests;

/// Reads a shard index, then a root shard's payload (`crate::shards`): a
/// payload that reads has the layout its length gives, and that layout
/// includes the index.
pub fn read_root_shard(data: &[u8]) -> Option<crate::shards::ShardLayout> {
    let (&index, payload) = data.split_first()?;
    let (layout, _) = crate::shards::read_payload(payload, index).ok()?;
    assert_eq!(payload.len(), crate::shards::SHARD_PAYLOAD_LEN);
    assert!(
        usize::from(index) < layout.total(),
        "index outside its layout"
    );
    assert_eq!(
        crate::shards::ShardLayout::for_len(usize::from(layout.len)),
        Some(layout),
        "a layout no inserter writes"
    );
    Some(layout)
}
