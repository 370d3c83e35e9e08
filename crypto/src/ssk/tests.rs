use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::block::SSK_SIGNED_LEN;
use super::*;
use crate::uri::UriError;
use crate::{ChkBlock, ChkUri, Extra};

fn hex(bytes: &[u8]) -> String {
    use core::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The vector key pair of `docs/PROTOCOL.md`: seed 00..1f, crypto key 20..3f.
fn vector_insert(docname: &str) -> SskInsertUri {
    let seed: [u8; 32] = core::array::from_fn(|i| i as u8);
    let crypto: [u8; 32] = core::array::from_fn(|i| 0x20 + i as u8);
    SskInsertUri {
        private: SskPrivateKey::from_seed(&seed),
        crypto: CryptoKey::from_bytes(crypto),
        docname: docname.to_owned(),
    }
}

fn encode(insert: &SskInsertUri, payload: &SskPayload) -> SskBlock {
    SskBlock::encode(
        &insert.private,
        &insert.crypto,
        &insert.hashed_name(),
        payload,
    )
    .unwrap()
}

/// Pinned in docs/PROTOCOL.md ("SSK vectors") and recomputed by scripts/check_vectors.py.
#[test]
fn known_answer_vectors() {
    let insert = vector_insert("site");
    let public = insert.private.public_key();
    let request = insert.request_uri();
    let block = encode(&insert, &SskPayload::Data(b"Hello, SSK!".to_vec()));
    let bytes = block.as_bytes();
    let got = [
        ("public key", hex(public.as_bytes())),
        ("pk hash", hex(public.hash().as_bytes())),
        ("hashed name", hex(insert.hashed_name().as_bytes())),
        ("routing key", hex(request.routing_key().as_bytes())),
        ("request uri", request.to_string()),
        ("insert uri", insert.to_string()),
        ("nonce", hex(&bytes[66..78])),
        ("signature", hex(&bytes[SSK_SIGNED_LEN..])),
        ("block sha256", hex(&Sha256::digest(bytes))),
    ];
    let usk: UskUri = format!(
        "USK@{}/blog/7",
        &request.to_string()[4..].split('/').next().unwrap()
    )
    .parse()
    .unwrap();
    let ksk: KskUri = "KSK@warren-readme".parse().unwrap();
    let got_more = [
        ("usk edition 7 uri", usk.edition_uri(7).to_string()),
        (
            "usk edition 7 routing key",
            hex(usk.edition_uri(7).routing_key().as_bytes()),
        ),
        ("ksk request uri", ksk.request_uri().to_string()),
        (
            "ksk routing key",
            hex(ksk.request_uri().routing_key().as_bytes()),
        ),
    ];
    for (name, value) in got.iter().chain(got_more.iter()) {
        println!("{name}: {value}");
    }
    let expected = VECTORS;
    for ((name, value), (ename, evalue)) in got.iter().chain(got_more.iter()).zip(expected) {
        assert_eq!(name, ename);
        assert_eq!(value, evalue, "{name}");
    }
    assert_eq!(got.len() + got_more.len(), expected.len());
    assert_eq!(
        SskBlock::verify(request.routing_key(), bytes.to_vec()).unwrap(),
        block
    );
    assert_eq!(
        block.decode(&request.crypto).unwrap(),
        SskPayload::Data(b"Hello, SSK!".to_vec())
    );
}

const VECTORS: &[(&str, &str)] = &[
    ("public key", "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"),
    ("pk hash", "56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c"),
    ("hashed name", "72c9947031c3cf0cf05289bab587f07d274f500337d6975f4443a000c197171a"),
    ("routing key", "c30c8b4dd1245b250c4a3a4a52de33c6772d6e8545d0852e708d79c97eb53a6c"),
    ("request uri", "SSK@Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw,ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8,AQEA/site"),
    ("insert uri", "SSK@AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8,ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8,AQEB/site"),
    ("nonce", "0862565fb778d5d4828c81b9"),
    ("signature", "72ac93906448125726944957ac47515dc72e26d3f30b86ac6c91f298dabe58132c8d77bd66adeac0b02cd4bdbc27577b461a8a48a55e5b5adc36931e6319fd07"),
    ("block sha256", "3b8a7df84d42b0c0bd3e2030d47cd52a6174d5815f3945720103d7a40a8b5fcc"),
    ("usk edition 7 uri", "SSK@Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw,ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8,AQEA/blog-7"),
    ("usk edition 7 routing key", "5a2dbf8e5e48626a8432ee71c2cc8c5ced2ccf78e7b93668c0bcb08ab28f784c"),
    ("ksk request uri", "SSK@VV6UR7o_UsyeK7I9RS4I3imwsNyls7k90NSyLVk4Yi4,2vSDPknUIOsHHzqsxuZV36dML369_Zvo8HkRr5YdV4s,AQEA/warren-readme"),
    ("ksk routing key", "a3108393c3b855eb1d9b74e16d67fbff98356125d9c058c2fd880b96bb847dcb"),
];

#[test]
fn a_chk_pointer_round_trips_and_encoding_is_deterministic() {
    let insert = vector_insert("pointer");
    let (_, key) = ChkBlock::encode(b"the real content").unwrap();
    let payload = SskPayload::Chk(ChkUri::new(key, Extra::METADATA));
    let a = encode(&insert, &payload);
    let b = encode(&insert, &payload);
    assert_eq!(a, b);
    assert_eq!(a.as_bytes().len(), SSK_BLOCK_LEN);
    let checked = SskBlock::verify(insert.routing_key(), a.into_bytes()).unwrap();
    assert_eq!(checked.decode(&insert.crypto).unwrap(), payload);
    let other = CryptoKey::from_bytes([9; 32]);
    assert_eq!(checked.decode(&other), Err(SskBlockError::DecryptionFailed));
}

#[test]
fn too_large_content_is_refused() {
    let insert = vector_insert("big");
    let payload = SskPayload::Data(vec![0; SSK_PAYLOAD + 1]);
    assert_eq!(
        SskBlock::encode(
            &insert.private,
            &insert.crypto,
            &insert.hashed_name(),
            &payload
        ),
        Err(SskBlockError::TooLarge(SSK_PAYLOAD + 1))
    );
    let full = SskPayload::Data(vec![7; SSK_PAYLOAD]);
    assert_eq!(encode(&insert, &full).decode(&insert.crypto).unwrap(), full);
}

#[test]
fn uris_round_trip_and_insert_uris_give_their_request_uris() {
    let insert = vector_insert("site");
    let text = insert.to_string();
    assert_eq!(text.parse::<SskInsertUri>().unwrap(), insert);
    let request = insert.request_uri().with_path(Some("a/b.html".into()));
    assert_eq!(request.to_string().parse::<SskUri>().unwrap(), request);
    assert_eq!(
        request.to_string().parse::<SskInsertUri>(),
        Err(UriError::WrongKeyType("an SSK@ insert key"))
    );
    let usk_text = text.replacen("SSK@", "USK@", 1).replace("/site", "/blog/3");
    let usk: UskInsertUri = usk_text.parse().unwrap();
    assert_eq!(usk.to_string(), usk_text);
    assert_eq!(usk.edition_insert_uri().docname, "blog-3");
    let reader = usk.request_uri();
    assert_eq!(reader.edition, Edition::AtLeast(3));
    assert_eq!(
        reader.edition_uri(3).routing_key(),
        usk.edition_insert_uri().routing_key()
    );
    let latest = reader.clone().with_edition(Edition::Latest);
    assert!(latest.to_string().ends_with("/blog/-1"));
    let spelled = latest.to_string().replace("/-1", "/latest");
    assert_eq!(spelled.parse::<UskUri>().unwrap(), latest);
    for any in [
        AnyUri::Ssk(request),
        AnyUri::SskInsert(insert),
        AnyUri::Usk(latest),
        AnyUri::UskInsert(usk),
        AnyUri::Ksk("KSK@hello/index.html".parse().unwrap()),
    ] {
        assert_eq!(any.to_string().parse::<AnyUri>().unwrap(), any);
    }
}

#[test]
fn uri_errors_say_what_is_wrong_without_echoing_keys() {
    let insert = vector_insert("site");
    let text = insert.to_string();
    let keys = text.split('/').next().unwrap();
    assert_eq!(keys.parse::<AnyUri>(), Err(UriError::MissingDocName));
    assert_eq!(
        format!("{keys}/").parse::<AnyUri>(),
        Err(UriError::BadDocName)
    );
    let usk = keys.replacen("SSK@", "USK@", 1);
    assert_eq!(
        format!("{usk}/blog").parse::<AnyUri>(),
        Err(UriError::BadEdition)
    );
    assert_eq!(
        format!("{usk}/blog/-2").parse::<AnyUri>(),
        Err(UriError::BadEdition)
    );
    assert_eq!(
        format!("{usk}/blog/-1").parse::<AnyUri>(),
        Err(UriError::BadEdition),
        "an insert needs a definite edition"
    );
    let bad_settings = text.replacen(",AQEB/", ",AQIB/", 1);
    assert_eq!(
        bad_settings.parse::<AnyUri>(),
        Err(UriError::UnknownSettings)
    );
    assert_eq!("KSK@".parse::<AnyUri>(), Err(UriError::BadDocName));
    assert_eq!(
        format!("{text}/a/b").parse::<AnyUri>(),
        Err(UriError::InsertKeyPath)
    );
    assert_eq!(
        "XYZ@abc".parse::<AnyUri>(),
        Err(UriError::UnsupportedScheme("XYZ".into()))
    );
    // No error, and no Debug, prints the private key.
    let seed = URL_SAFE_NO_PAD.encode(insert.private.seed().as_ref());
    let mangled = format!("{text}/extra\u{7}");
    let err = mangled.parse::<AnyUri>().unwrap_err();
    assert!(!err.to_string().contains(&seed), "{err}");
    assert!(!format!("{err:?}").contains(&seed));
    assert!(!format!("{insert:?}").contains(&seed));
    assert!(!format!("{:?}", insert.private).contains(&seed));
    let parsed = text.parse::<AnyUri>().unwrap();
    assert!(parsed.is_insert());
    assert!(!format!("{parsed:?}").contains(&seed));
    let crypto = URL_SAFE_NO_PAD.encode(insert.crypto.as_bytes());
    assert!(!format!("{:?}", insert.request_uri()).contains(&crypto));
}

#[test]
fn ksk_keys_are_derived_from_the_keyword_alone() {
    let a: KskUri = "KSK@warren-readme".parse().unwrap();
    let b: KskUri = "KSK@warren-readme/other/path".parse().unwrap();
    assert_eq!(a.request_uri().routing_key(), b.request_uri().routing_key());
    let c: KskUri = "KSK@warren-readme2".parse().unwrap();
    assert_ne!(a.request_uri().routing_key(), c.request_uri().routing_key());
    assert_eq!(a.insert_uri(), b.insert_uri());
}

fn block_strategy() -> impl Strategy<Value = (SskInsertUri, SskBlock)> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        "[a-z]{1,12}",
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(seed, crypto, name, data)| {
            let insert = SskInsertUri {
                private: SskPrivateKey::from_seed(&seed),
                crypto: CryptoKey::from_bytes(crypto),
                docname: name,
            };
            let block = encode(&insert, &SskPayload::Data(data));
            (insert, block)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_tampered_block_is_rejected((insert, block) in block_strategy(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let mut bytes = block.into_bytes();
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        prop_assert!(SskBlock::verify(insert.routing_key(), bytes).is_err());
    }

    #[test]
    fn a_block_signed_by_another_key_is_rejected((insert, block) in block_strategy(), other in any::<[u8; 32]>()) {
        let other = SskPrivateKey::from_seed(&other);
        prop_assume!(other != insert.private);
        // Signed by another key under the same name: it lives at another routing key.
        let forged = SskBlock::encode(&other, &insert.crypto, &insert.hashed_name(), &SskPayload::Data(vec![1])).unwrap();
        prop_assert_eq!(
            SskBlock::verify(insert.routing_key(), forged.clone().into_bytes()),
            Err(SskBlockError::RoutingKeyMismatch)
        );
        // The right public key with another key's signature.
        let mut bytes = block.into_bytes();
        bytes[SSK_SIGNED_LEN..].copy_from_slice(&forged.as_bytes()[SSK_SIGNED_LEN..]);
        prop_assert_eq!(
            SskBlock::verify(insert.routing_key(), bytes),
            Err(SskBlockError::BadSignature)
        );
    }

    #[test]
    fn a_block_replayed_under_another_name_is_rejected((insert, block) in block_strategy(), other in "[a-z]{1,12}") {
        prop_assume!(other != insert.docname);
        let mut elsewhere = insert.clone();
        elsewhere.docname = other;
        prop_assert_eq!(
            SskBlock::verify(elsewhere.routing_key(), block.into_bytes()),
            Err(SskBlockError::RoutingKeyMismatch)
        );
    }

    #[test]
    fn parse_never_panics(text in ".{0,200}") {
        let _ = text.parse::<AnyUri>();
    }

    #[test]
    fn any_ssk_uri_round_trips(h: [u8; 32], k: [u8; 32], name in "[a-zA-Z0-9._-]{1,40}", path in proptest::option::of("[a-zA-Z0-9._/-]{1,40}"), edition in proptest::option::of(any::<u64>())) {
        let uri = match edition {
            None => AnyUri::Ssk(SskUri { pk_hash: PubKeyHash::from_bytes(h), crypto: CryptoKey::from_bytes(k), docname: name, path }),
            Some(e) => AnyUri::Usk(UskUri { pk_hash: PubKeyHash::from_bytes(h), crypto: CryptoKey::from_bytes(k), name, edition: Edition::AtLeast(e), path }),
        };
        prop_assert_eq!(uri.to_string().parse::<AnyUri>().unwrap(), uri);
    }
}
