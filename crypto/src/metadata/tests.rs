use proptest::prelude::*;

use super::*;
use crate::block::{BlockError, ChkBlock};
use crate::key::{CryptoKey, RoutingKey};

fn key(seed: u8) -> ChkKey {
    ChkKey {
        routing: RoutingKey::from_bytes([seed; 32]),
        crypto: CryptoKey::from_bytes([seed.wrapping_add(1); 32]),
    }
}

fn splitfile(len: u64, per_segment: &[usize]) -> SplitfileManifest {
    SplitfileManifest {
        len,
        content_type: Some("video/webm".into()),
        segments: per_segment
            .iter()
            .map(|&k| Segment {
                data: (0..k).map(|i| key(i as u8)).collect(),
                check: (0..k).map(|i| key(100 + i as u8)).collect(),
            })
            .collect(),
    }
}

fn entry(path: &str) -> DirectoryEntry {
    DirectoryEntry {
        path: path.into(),
        key: key(9),
        extra: Extra::DATA,
        content_type: Some("text/html".into()),
        size: 10,
    }
}

#[test]
fn every_kind_round_trips() {
    let documents = [
        Metadata::Splitfile(splitfile(3 * BLOCK_PAYLOAD as u64 + 1, &[2, 2])),
        Metadata::Indirect(SplitfileManifest {
            content_type: None,
            ..splitfile(40_000, &[2])
        }),
        Metadata::Directory(DirectoryManifest {
            entries: vec![entry("a/b.html"), entry("index.html")],
        }),
    ];
    for document in documents {
        let bytes = document.to_bytes();
        assert_eq!(bytes[0], METADATA_VERSION);
        assert_eq!(Metadata::from_bytes(&bytes).unwrap(), document);
    }
}

#[test]
fn framing_errors_are_specific() {
    let bytes = Metadata::Splitfile(splitfile(BLOCK_PAYLOAD as u64 + 1, &[2])).to_bytes();
    assert!(matches!(
        Metadata::from_bytes(&[]),
        Err(MetadataError::Empty)
    ));
    let mut newer = bytes.clone();
    newer[0] = 2;
    assert!(matches!(
        Metadata::from_bytes(&newer),
        Err(MetadataError::UnsupportedVersion(2))
    ));
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        Metadata::from_bytes(&long),
        Err(MetadataError::TrailingBytes(1))
    ));
    assert!(matches!(
        Metadata::from_bytes(&bytes[..bytes.len() - 1]),
        Err(MetadataError::Malformed(_))
    ));
    assert!(matches!(
        Metadata::from_bytes(&vec![1; MAX_METADATA_LEN + 1]),
        Err(MetadataError::TooLarge(_))
    ));
}

#[test]
fn huge_claimed_lengths_are_refused_before_allocating() {
    // Splitfile, len 1, no content type, then a segment count of 2^32 - 1.
    let claim = [METADATA_VERSION, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(matches!(
        Metadata::from_bytes(&claim),
        Err(MetadataError::Malformed(_))
    ));
    // Directory with 2^28 entries claimed.
    let claim = [METADATA_VERSION, 1, 0xff, 0xff, 0xff, 0x7f];
    assert!(matches!(
        Metadata::from_bytes(&claim),
        Err(MetadataError::Malformed(_))
    ));
    // A path longer than the limit.
    let mut long_path = Metadata::Directory(DirectoryManifest {
        entries: vec![entry(&"p".repeat(MAX_PATH_LEN + 1))],
    })
    .to_bytes();
    assert!(matches!(
        Metadata::from_bytes(&long_path),
        Err(MetadataError::Malformed(_))
    ));
    long_path.truncate(10);
    assert!(Metadata::from_bytes(&long_path).is_err());
}

#[test]
fn segments_over_the_limit_are_refused() {
    let too_big = splitfile(
        (MAX_SEGMENT_DATA_BLOCKS as u64 + 1) * BLOCK_PAYLOAD as u64,
        &[MAX_SEGMENT_DATA_BLOCKS + 1],
    );
    assert!(matches!(
        Metadata::from_bytes(&Metadata::Splitfile(too_big).to_bytes()),
        Err(MetadataError::Malformed(_))
    ));
}

#[test]
fn inconsistent_documents_are_refused() {
    let wrong_len = splitfile(5 * BLOCK_PAYLOAD as u64, &[2, 2]);
    let no_data = splitfile(0, &[0]);
    let unsorted = DirectoryManifest {
        entries: vec![entry("b"), entry("a")],
    };
    let repeated = DirectoryManifest {
        entries: vec![entry("a"), entry("a")],
    };
    let typed_indirect = splitfile(BLOCK_PAYLOAD as u64 + 1, &[2]);
    for document in [
        Metadata::Splitfile(wrong_len),
        Metadata::Splitfile(no_data),
        Metadata::Directory(unsorted),
        Metadata::Directory(repeated),
        Metadata::Indirect(typed_indirect),
    ] {
        assert!(
            matches!(
                Metadata::from_bytes(&document.to_bytes()),
                Err(MetadataError::Inconsistent(_))
            ),
            "{document:?}"
        );
    }
    let dotdot = DirectoryManifest {
        entries: vec![entry("../etc/passwd")],
    };
    assert!(matches!(
        Metadata::from_bytes(&Metadata::Directory(dotdot).to_bytes()),
        Err(MetadataError::BadPath(PathError::BadComponent))
    ));
}

#[test]
fn overlong_varints_are_not_canonical() {
    let document = Metadata::Splitfile(splitfile(BLOCK_PAYLOAD as u64 + 1, &[2]));
    let bytes = document.to_bytes();
    // bytes: version, variant 0, then `len` as a varint; re-spell it one byte longer.
    let mut longer = bytes[..2].to_vec();
    let len_end = 2 + bytes[2..].iter().position(|b| b & 0x80 == 0).unwrap();
    let mut varint = bytes[2..=len_end].to_vec();
    *varint.last_mut().unwrap() |= 0x80;
    varint.push(0);
    longer.extend(varint);
    longer.extend_from_slice(&bytes[len_end + 1..]);
    assert!(matches!(
        Metadata::from_bytes(&longer),
        Err(MetadataError::NotCanonical | MetadataError::Malformed(_))
    ));
}

#[test]
fn directory_lookup_is_exact() {
    let directory = DirectoryManifest {
        entries: vec![entry("a.html"), entry("b/c.html"), entry("index.html")],
    };
    assert_eq!(directory.entry("b/c.html").unwrap().path, "b/c.html");
    assert!(directory.entry("b").is_none());
    assert!(directory.entry("B/c.html").is_none());
}

proptest! {
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let refused = Metadata::from_bytes(&data);
        match data.first() {
            None => prop_assert!(matches!(refused, Err(MetadataError::Empty))),
            Some(&v) if v != METADATA_VERSION => prop_assert!(
                matches!(refused, Err(MetadataError::UnsupportedVersion(found)) if found == v)
            ),
            Some(_) => {}
        }
        let mut with_version = vec![METADATA_VERSION];
        with_version.extend_from_slice(&data);
        // Whatever decodes is canonical (asserted inside).
        crate::fuzzing::decode_metadata(&with_version);
    }

    #[test]
    fn any_bit_flip_in_a_manifest_block_is_detected(index in 0..crate::block::BLOCK_LEN, bit in 0u8..8) {
        let document = Metadata::Splitfile(splitfile(3 * BLOCK_PAYLOAD as u64, &[3]));
        let (block, chk) = ChkBlock::encode(&document.to_bytes()).unwrap();
        let mut bytes = block.into_bytes();
        bytes[index] ^= 1 << bit;
        let expected = if index < 2 {
            BlockError::UnknownHeader([bytes[0], bytes[1]])
        } else {
            BlockError::RoutingKeyMismatch
        };
        prop_assert_eq!(ChkBlock::verify(chk.routing, bytes), Err(expected));
    }

    #[test]
    fn flipped_document_bytes_never_panic(index: usize, bit in 0u8..8) {
        let document = Metadata::Directory(DirectoryManifest {
            entries: vec![entry("a.html"), entry("index.html")],
        });
        let mut bytes = document.to_bytes();
        let index = index % bytes.len();
        bytes[index] ^= 1 << bit;
        prop_assert_ne!(crate::fuzzing::decode_metadata(&bytes), Some(document));
    }
}
