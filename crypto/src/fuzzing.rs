//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the proptests,
//! so both exercise exactly the same code. Each takes arbitrary bytes, must
//! never panic, and checks that whatever decodes re-encodes to itself.

use sha2::{Digest, Sha256};

use crate::block::ChkBlock;
use crate::identity::NodeRef;
use crate::key::{CryptoKey, RoutingKey, KEY_LEN};
use crate::metadata::Metadata;
use crate::uri::ChkUri;

/// Parses bytes as a URI; a parsed URI must print and parse back to itself.
pub fn parse_uri(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(uri) = text.parse::<ChkUri>() {
        let again: Result<ChkUri, _> = uri.to_string().parse();
        assert_eq!(again.as_ref(), Ok(&uri), "URI did not round-trip");
    }
}

/// Reads a routing key, a crypto key, then a block; verifies and decodes it.
pub fn verify_and_decode_block(data: &[u8]) {
    if data.len() < 2 * KEY_LEN {
        return;
    }
    let (keys, bytes) = data.split_at(2 * KEY_LEN);
    let mut routing = [0u8; KEY_LEN];
    routing.copy_from_slice(&keys[..KEY_LEN]);
    let mut crypto = [0u8; KEY_LEN];
    crypto.copy_from_slice(&keys[KEY_LEN..]);
    // Random bytes hardly ever hash right: also try the block's own hash, so
    // the decoder behind verification is reached.
    let own = ChkBlock::verify(
        RoutingKey::from_bytes(Sha256::digest(bytes).into()),
        bytes.to_vec(),
    );
    let given = ChkBlock::verify(RoutingKey::from_bytes(routing), bytes.to_vec());
    for block in [own, given].into_iter().flatten() {
        if let Ok(plain) = block.decode(&CryptoKey::from_bytes(crypto)) {
            let again = ChkBlock::encode(&plain).map(|(again, _)| again.routing_key());
            assert_eq!(again, Ok(block.routing_key()), "block is not canonical");
        }
    }
}

/// Decodes bytes as a metadata document; one that decodes must re-encode exactly.
pub fn decode_metadata(data: &[u8]) {
    if let Ok(document) = Metadata::from_bytes(data) {
        assert_eq!(document.to_bytes(), data, "metadata is not canonical");
    }
}

/// Parses bytes as a noderef; a parsed noderef must print and parse back to itself.
pub fn parse_noderef(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(node) = text.parse::<NodeRef>() {
        let again: Result<NodeRef, _> = node.to_string().parse();
        assert_eq!(again.as_ref(), Ok(&node), "noderef did not round-trip");
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::splitfile::encode_bytes;

    proptest! {
        #[test]
        fn uri_entry_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            parse_uri(&data);
        }

        #[test]
        fn noderef_entry_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            parse_noderef(&data);
        }

        #[test]
        fn block_entry_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            verify_and_decode_block(&data);
        }

        #[test]
        fn metadata_entry_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            decode_metadata(&data);
        }
    }

    #[test]
    fn block_entry_accepts_a_real_block() {
        let (block, key) = ChkBlock::encode(b"fuzz seed").unwrap();
        let mut input = key.routing.as_bytes().to_vec();
        input.extend_from_slice(key.crypto.as_bytes());
        input.extend_from_slice(block.as_bytes());
        verify_and_decode_block(&input);
    }

    #[test]
    fn metadata_entry_accepts_a_real_manifest() {
        let encoded = encode_bytes(&vec![7u8; 100_000], None).unwrap();
        let root = encoded.blocks.last().unwrap();
        let plain = root.decode(&encoded.uri.key.crypto).unwrap();
        decode_metadata(&plain);
        assert!(Metadata::from_bytes(&plain).is_ok());
    }
}
