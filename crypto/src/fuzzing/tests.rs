//! Each entry point is driven with inputs built to reach its decoder (valid
//! encodings, and valid encodings with one change), and with noise; each
//! test asserts the outcome the input must have.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use proptest::prelude::*;

use super::*;
use crate::block::{BLOCK_LEN, BLOCK_PAYLOAD};
use crate::identity::{NodeIdentity, PROTOCOL_VERSION};
use crate::key::{ChkKey, ContentKind, Extra};
use crate::location::Location;
use crate::metadata::{
    DirectoryEntry, DirectoryManifest, Segment, SplitfileManifest, METADATA_VERSION,
};
use crate::splitfile::encode_bytes;

/// Text without this cannot be a URI.
const URI_SCHEME: &[u8] = b"CHK@";
/// Text without this cannot be a noderef.
const NODEREF_MARK: &[u8] = b"warren-noderef:";
/// The most segments, and data or check blocks per segment, the generated
/// manifests have: enough for every shape, small enough to run quickly.
const MAX_TEST_SEGMENTS: usize = 3;
const MAX_TEST_SEGMENT_BLOCKS: usize = 4;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn chk_key() -> impl Strategy<Value = ChkKey> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(r, k)| ChkKey {
        routing: RoutingKey::from_bytes(r),
        crypto: CryptoKey::from_bytes(k),
    })
}

fn uri() -> impl Strategy<Value = ChkUri> {
    (
        chk_key(),
        any::<bool>(),
        proptest::option::of("[a-zA-Z0-9._/-]{1,40}"),
    )
        .prop_map(|(key, meta, path)| ChkUri {
            key,
            extra: if meta { Extra::METADATA } else { Extra::DATA },
            path,
        })
}

fn noderef() -> impl Strategy<Value = NodeRef> {
    (
        any::<[u8; 32]>(),
        any::<u64>(),
        // What a noderef's text can hold: no IPv6 flow label or scope.
        (any::<IpAddr>(), any::<u16>()),
        0..=PROTOCOL_VERSION,
    )
        .prop_map(|(secret, location, (ip, port), version)| NodeRef {
            identity: NodeIdentity::from_secret_bytes(secret).public(),
            location: Location(location),
            address: SocketAddr::new(ip, port),
            version,
        })
}

/// A content type as the format allows: 1..=128 bytes of printable ASCII.
fn content_type() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[ -~]{1,128}")
}

/// A splitfile manifest whose data blocks exactly cover its length.
fn splitfile(
    content_type: impl Strategy<Value = Option<String>>,
) -> impl Strategy<Value = SplitfileManifest> {
    let segment = (
        proptest::collection::vec(chk_key(), 1..=MAX_TEST_SEGMENT_BLOCKS),
        proptest::collection::vec(chk_key(), 0..=MAX_TEST_SEGMENT_BLOCKS),
    )
        .prop_map(|(data, check)| Segment { data, check });
    (
        proptest::collection::vec(segment, 1..=MAX_TEST_SEGMENTS),
        content_type,
        1..=BLOCK_PAYLOAD as u64,
    )
        .prop_map(|(segments, content_type, last_block)| {
            let blocks: usize = segments.iter().map(|s| s.data.len()).sum();
            SplitfileManifest {
                len: (blocks as u64 - 1) * BLOCK_PAYLOAD as u64 + last_block,
                content_type,
                segments,
            }
        })
}

fn directory() -> impl Strategy<Value = DirectoryManifest> {
    let entry = (chk_key(), any::<bool>(), content_type(), any::<u64>());
    proptest::collection::btree_map("[a-z]{1,6}(/[a-z]{1,6}){0,2}", entry, 0..6).prop_map(
        |entries: BTreeMap<String, _>| DirectoryManifest {
            entries: entries
                .into_iter()
                .map(|(path, (key, meta, content_type, size))| {
                    let (extra, size) = if meta {
                        (Extra::METADATA, size)
                    } else {
                        (Extra::DATA, size % (BLOCK_PAYLOAD as u64 + 1))
                    };
                    DirectoryEntry {
                        path,
                        key,
                        extra,
                        content_type,
                        size,
                    }
                })
                .collect(),
        },
    )
}

fn metadata() -> impl Strategy<Value = Metadata> {
    prop_oneof![
        splitfile(content_type()).prop_map(Metadata::Splitfile),
        splitfile(Just(None)).prop_map(Metadata::Indirect),
        directory().prop_map(Metadata::Directory),
    ]
}

fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        proptest::collection::vec(any::<u8>(), BLOCK_PAYLOAD - 512..=BLOCK_PAYLOAD),
    ]
}

/// The block entry's input: routing key, crypto key, block bytes.
fn block_input(routing: &RoutingKey, crypto: &CryptoKey, bytes: &[u8]) -> Vec<u8> {
    let mut input = routing.as_bytes().to_vec();
    input.extend_from_slice(crypto.as_bytes());
    input.extend_from_slice(bytes);
    input
}

/// `bytes` with byte `at` replaced by a different value.
fn changed(mut bytes: Vec<u8>, at: prop::sample::Index, delta: u8) -> Vec<u8> {
    let i = at.index(bytes.len());
    bytes[i] ^= delta;
    bytes
}

proptest! {
    #[test]
    fn valid_uris_parse_to_themselves(uri in uri(), prefix in prop::sample::select(&["", "warren:", "/", " "][..])) {
        let text = format!("{prefix}{uri}");
        prop_assert_eq!(parse_uri(text.as_bytes()), Some(uri));
    }

    /// One changed byte never parses to the same URI: it is refused or names
    /// other keys, another extra or another path.
    #[test]
    fn a_changed_uri_byte_never_gives_the_same_uri(uri in uri(), at: prop::sample::Index, delta in 1u8..) {
        let text = changed(uri.to_string().into_bytes(), at, delta);
        prop_assert_ne!(parse_uri(&text), Some(uri));
    }

    #[test]
    fn text_without_the_scheme_is_no_uri(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assume!(!contains(&data, URI_SCHEME));
        prop_assert_eq!(parse_uri(&data), None);
    }

    #[test]
    fn valid_noderefs_parse_to_themselves(node in noderef()) {
        let text = node.to_string();
        prop_assert_eq!(parse_noderef(text.as_bytes()), Some(node));
    }

    /// Changed noderefs reach every field's parser; a changed byte may still
    /// parse (hex digits are read in either case), and then round-trips.
    #[test]
    fn a_changed_noderef_byte_parses_only_to_a_round_tripping_noderef(node in noderef(), at: prop::sample::Index, delta in 1u8..) {
        let text = changed(node.to_string().into_bytes(), at, delta);
        if let Some(other) = parse_noderef(&text) {
            prop_assert_eq!(parse_noderef(other.to_string().as_bytes()), Some(other));
        }
    }

    #[test]
    fn text_without_the_prefix_is_no_noderef(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assume!(!contains(&data, NODEREF_MARK));
        prop_assert_eq!(parse_noderef(&data), None);
    }

    #[test]
    fn a_real_block_with_its_keys_decodes_both_ways(data in content()) {
        let (block, key) = ChkBlock::encode(&data).unwrap();
        let input = block_input(&key.routing, &key.crypto, block.as_bytes());
        let expected = BlockOutcome { given_key: Ok(data.clone()), own_hash: Ok(data) };
        prop_assert_eq!(verify_and_decode_block(&input), Some(expected));
    }

    /// A flipped header bit is refused by both paths at the header; any
    /// other flip fails the given routing key, and under its own hash
    /// reaches the tag check.
    #[test]
    fn a_flipped_block_bit_is_refused_at_the_right_check(data in content(), index in 0..BLOCK_LEN, bit in 0u8..8) {
        let (block, key) = ChkBlock::encode(&data).unwrap();
        let mut bytes = block.into_bytes();
        bytes[index] ^= 1 << bit;
        let outcome = verify_and_decode_block(&block_input(&key.routing, &key.crypto, &bytes)).unwrap();
        if index < 2 {
            let header = Err(BlockError::UnknownHeader([bytes[0], bytes[1]]));
            prop_assert_eq!(outcome, BlockOutcome { given_key: header.clone(), own_hash: header });
        } else {
            prop_assert_eq!(outcome, BlockOutcome {
                given_key: Err(BlockError::RoutingKeyMismatch),
                own_hash: Err(BlockError::DecryptionFailed),
            });
        }
    }

    #[test]
    fn a_wrong_crypto_key_fails_the_tag_both_ways(data in content(), wrong: [u8; 32]) {
        let (block, key) = ChkBlock::encode(&data).unwrap();
        prop_assume!(wrong != *key.crypto.as_bytes());
        let input = block_input(&key.routing, &CryptoKey::from_bytes(wrong), block.as_bytes());
        let failed = Err(BlockError::DecryptionFailed);
        prop_assert_eq!(
            verify_and_decode_block(&input),
            Some(BlockOutcome { given_key: failed.clone(), own_hash: failed })
        );
    }

    /// Whole-size noise behind the known header: the given key does not
    /// match, and under its own hash the tag check refuses it.
    #[test]
    fn full_size_noise_reaches_the_tag_check(keys in proptest::collection::vec(any::<u8>(), 2 * KEY_LEN),
                                             mut bytes in proptest::collection::vec(any::<u8>(), BLOCK_LEN)) {
        bytes[..2].copy_from_slice(&[1, 1]);
        let mut input = keys;
        input.extend_from_slice(&bytes);
        prop_assert_eq!(verify_and_decode_block(&input), Some(BlockOutcome {
            given_key: Err(BlockError::RoutingKeyMismatch),
            own_hash: Err(BlockError::DecryptionFailed),
        }));
    }

    #[test]
    fn inputs_of_other_sizes_are_refused_by_length(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let outcome = verify_and_decode_block(&data);
        if data.len() < 2 * KEY_LEN {
            prop_assert_eq!(outcome, None);
        } else {
            let wrong = Err(BlockError::WrongLength(data.len() - 2 * KEY_LEN));
            prop_assert_eq!(outcome, Some(BlockOutcome { given_key: wrong.clone(), own_hash: wrong }));
        }
    }

    #[test]
    fn valid_documents_decode_to_themselves(document in metadata()) {
        prop_assert_eq!(decode_metadata(&document.to_bytes()), Some(document));
    }

    /// Documents are canonical: one changed byte is refused, or decodes to
    /// another document, never to the same one.
    #[test]
    fn a_changed_document_byte_never_gives_the_same_document(document in metadata(), at: prop::sample::Index, delta in 1u8..) {
        let bytes = changed(document.to_bytes(), at, delta);
        prop_assert_ne!(decode_metadata(&bytes), Some(document));
    }

    #[test]
    fn bytes_without_the_version_are_no_document(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assume!(data.first() != Some(&METADATA_VERSION));
        prop_assert_eq!(decode_metadata(&data), None);
    }
}

#[test]
fn block_entry_decodes_a_real_block() {
    let (block, key) = ChkBlock::encode(b"fuzz seed").unwrap();
    let outcome =
        verify_and_decode_block(&block_input(&key.routing, &key.crypto, block.as_bytes()));
    let plain = Ok(b"fuzz seed".to_vec());
    assert_eq!(
        outcome,
        Some(BlockOutcome {
            given_key: plain.clone(),
            own_hash: plain
        })
    );
}

#[test]
fn metadata_entry_decodes_a_real_manifest() {
    let encoded = encode_bytes(&vec![7u8; 100_000], None).unwrap();
    let root = encoded.blocks.last().unwrap();
    let plain = root.decode(&encoded.uri.key.crypto).unwrap();
    let Some(Metadata::Splitfile(manifest)) = decode_metadata(&plain) else {
        panic!("the root of a 100,000-byte file is a splitfile manifest");
    };
    assert_eq!(manifest.len, 100_000);
    assert_eq!(
        manifest
            .segments
            .iter()
            .map(|s| s.data.len())
            .sum::<usize>(),
        4
    );
    assert!(manifest
        .segments
        .iter()
        .flat_map(|s| &s.data)
        .all(|key| key.routing != encoded.uri.key.routing));
    assert_eq!(ContentKind::Metadata, encoded.uri.extra.kind);
}

fn ssk_input() -> impl Strategy<Value = (Vec<u8>, crate::ssk::SskInsertUri, Vec<u8>)> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        "[a-z]{1,8}",
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(seed, crypto, docname, data)| {
            let insert = crate::ssk::SskInsertUri {
                private: crate::ssk::SskPrivateKey::from_seed(&seed),
                crypto: CryptoKey::from_bytes(crypto),
                docname,
            };
            let block = SskBlock::encode(
                &insert.private,
                &insert.crypto,
                &insert.hashed_name(),
                &SskPayload::Data(data.clone()),
            )
            .unwrap();
            let input = block_input(&insert.routing_key(), &insert.crypto, block.as_bytes());
            (input, insert, data)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_real_ssk_block_decodes_both_ways((input, _, data) in ssk_input()) {
        let outcome = verify_and_decode_ssk_block(&input).unwrap();
        prop_assert_eq!(outcome.given_key, Ok(SskPayload::Data(data.clone())));
        prop_assert_eq!(outcome.own_key, Ok(SskPayload::Data(data)));
    }

    #[test]
    fn a_changed_ssk_block_byte_is_refused((mut input, _, _) in ssk_input(), at: prop::sample::Index, delta in 1u8..) {
        let i = 2 * KEY_LEN + at.index(input.len() - 2 * KEY_LEN);
        input[i] ^= delta;
        let outcome = verify_and_decode_ssk_block(&input).unwrap();
        prop_assert!(outcome.given_key.is_err());
        prop_assert!(outcome.own_key.is_err());
    }

    #[test]
    fn noise_is_no_ssk_block(data in proptest::collection::vec(any::<u8>(), 0..1400)) {
        if let Some(outcome) = verify_and_decode_ssk_block(&data) {
            prop_assert!(outcome.given_key.is_err());
            prop_assert!(outcome.own_key.is_err());
        }
    }

    #[test]
    fn valid_ssk_uris_parse_to_themselves((_, insert, _) in ssk_input(), path in proptest::option::of("[a-z0-9/]{1,20}")) {
        let request = insert.request_uri().with_path(path);
        let text = request.to_string();
        prop_assert_eq!(parse_any_uri(text.as_bytes()), Some(AnyUri::Ssk(request)));
        let text = insert.to_string();
        prop_assert_eq!(parse_any_uri(text.as_bytes()), Some(AnyUri::SskInsert(insert)));
    }

    #[test]
    fn any_uri_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_any_uri(&data);
    }
}

/// Every `seed-*` file of `fuzz/corpus/<target>`, which must hold at least
/// `at_least` of them.
fn seeds(target: &str, at_least: usize) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the seed corpus is committed") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        if name.starts_with("seed-") {
            seeds.push((name, std::fs::read(&path).expect("seed")));
        }
    }
    assert!(
        seeds.len() >= at_least,
        "only {} seeds in {}",
        seeds.len(),
        dir.display()
    );
    seeds
}

/// The committed seed corpus of `block_decode` reaches the decoder: every
/// seed is a whole block that verifies and decodes under its own keys.
#[test]
fn the_block_decode_seed_corpus_reaches_the_decoder() {
    for (name, bytes) in seeds("block_decode", 6) {
        assert_eq!(bytes.len(), 2 * KEY_LEN + BLOCK_LEN, "{name}");
        let outcome = verify_and_decode_block(&bytes).expect("long enough");
        assert!(outcome.given_key.is_ok(), "{name}: {:?}", outcome.given_key);
    }
}

/// Likewise for `ssk_block`: signed blocks that verify and decode.
#[test]
fn the_ssk_block_seed_corpus_reaches_the_decoder() {
    for (name, bytes) in seeds("ssk_block", 3) {
        let outcome = verify_and_decode_ssk_block(&bytes).expect("long enough");
        assert!(outcome.given_key.is_ok(), "{name}: {:?}", outcome.given_key);
        assert!(outcome.own_key.is_ok(), "{name}: {:?}", outcome.own_key);
    }
}

#[test]
fn seeds_decode_to_their_content() {
    let seed = block_seed(b"content").unwrap();
    let outcome = verify_and_decode_block(&seed).unwrap();
    assert_eq!(outcome.given_key.unwrap(), b"content");
    let seed = ssk_block_seed("k", b"note").unwrap();
    let outcome = verify_and_decode_ssk_block(&seed).unwrap();
    assert_eq!(
        outcome.given_key.unwrap(),
        SskPayload::Data(b"note".to_vec())
    );
}

/// Found by `uri_parse` (10-minute run): a keyword ending in a no-break
/// space printed and parsed back as another keyword (the parser trims).
/// Names and paths with whitespace at their ends are now refused.
#[test]
fn names_with_whitespace_at_their_ends_are_refused_not_mangled() {
    let crash = b"KSK@oooooo@\xc2\xa0\xf3\x88\x91\xbf\xf3\x81\x91\xbf\xc2\xa0/";
    assert!(parse_any_uri(crash).is_none());
    for text in ["KSK@note\u{a0}/", "KSK@ note", "KSK@note\u{a0}/x"] {
        assert!(text.parse::<AnyUri>().is_err(), "{text:?}");
        assert!(parse_any_uri(text.as_bytes()).is_none());
    }
    // Whitespace around the whole URI is what pasting adds: trimmed.
    for text in ["KSK@a note", "KSK@note/a path", "KSK@note ", " KSK@note\n"] {
        assert!(parse_any_uri(text.as_bytes()).is_some(), "{text:?}");
    }
}
