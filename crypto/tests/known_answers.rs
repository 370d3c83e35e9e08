//! Known-answer vectors: fixed inputs give exactly these keys and URIs.
//! The same vectors are written in docs/PROTOCOL.md (Part I); a second
//! implementation must reproduce them.

use std::fmt::Write as _;

use warren_crypto::{
    encode_bytes, ChkBlock, ChkUri, Extra, Location, NodeIdentity, NodeRef, SiteBuilder, SiteEntry,
    PROTOCOL_VERSION,
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Bytes `i mod 251` for `i` in `0..len`: a pattern with no period of a power of two.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

struct BlockVector {
    content: Vec<u8>,
    routing: &'static str,
    crypto: &'static str,
    uri: &'static str,
}

fn block_vectors() -> Vec<BlockVector> {
    vec![
        BlockVector {
            content: b"Hello, Warren!".to_vec(),
            routing: "63fd7efa77f1955d4388ff3c5c5703a3c460600a391e9158f577a34970e4edc3",
            crypto: "a33a1b2964eb04d56e851f87a031990c670a560136c381e7d01878c7f34f882c",
            uri: "CHK@Y_1--nfxlV1DiP88XFcDo8RgYAo5HpFY9XejSXDk7cM,ozobKWTrBNVuhR-HoDGZDGcKVgE2w4Hn0Bh4x_NPiCw,AQAA",
        },
        BlockVector {
            content: Vec::new(),
            routing: "e90e8f65250f0da854f03ab5ee18db12566c3c9bd7d5f10017fcb1b919c2490e",
            crypto: "9f8b34eddcde2b303a153d07a8e9fe6ebe1dd360b7218d2b94f551b80140b504",
            uri: "CHK@6Q6PZSUPDahU8Dq17hjbElZsPJvX1fEAF_yxuRnCSQ4,n4s07dzeKzA6FT0HqOn-br4d02C3IY0rlPVRuAFAtQQ,AQAA",
        },
        BlockVector {
            content: pattern(32_768),
            routing: "18c39adb1f7f493e7ce3700f96490a28670f4a5545c0ad970f8ffd356440ea6a",
            crypto: "87b626b540644bc14cee1da1ffb1439ef2f7a3df7fcf9e0785d9770ce896b62f",
            uri: "CHK@GMOa2x9_ST5843APlkkKKGcPSlVFwK2XD4_9NWRA6mo,h7YmtUBkS8FM7h2h_7FDnvL3o99_z54Hhdl3DOiWti8,AQAA",
        },
    ]
}

#[test]
fn block_and_uri_vectors() {
    for vector in block_vectors() {
        let (_, key) = ChkBlock::encode(&vector.content).unwrap();
        let uri = ChkUri::new(key, Extra::DATA);
        println!(
            "len {}: routing {} crypto {} uri {}",
            vector.content.len(),
            hex(uri.key.routing.as_bytes()),
            hex(uri.key.crypto.as_bytes()),
            uri
        );
    }
    for vector in block_vectors() {
        let (block, key) = ChkBlock::encode(&vector.content).unwrap();
        let uri = ChkUri::new(key, Extra::DATA);
        assert_eq!(hex(uri.key.routing.as_bytes()), vector.routing);
        assert_eq!(hex(uri.key.crypto.as_bytes()), vector.crypto);
        assert_eq!(uri.to_string(), vector.uri);
        assert_eq!(vector.uri.parse::<ChkUri>().unwrap(), uri);
        assert_eq!(hex(block.routing_key().as_bytes()), vector.routing);
    }
}

#[test]
fn block_bytes_vector() {
    // The whole 32,790-byte block of "Hello, Warren!", by its first bytes and its hash.
    let (block, _) = ChkBlock::encode(b"Hello, Warren!").unwrap();
    let bytes = block.as_bytes();
    println!(
        "head {} tail {}",
        hex(&bytes[..18]),
        hex(&bytes[bytes.len() - 16..])
    );
    assert_eq!(hex(&bytes[..18]), "0101c6ba8072f67895d5ccf4264437153b59");
    assert_eq!(
        hex(&bytes[bytes.len() - 16..]),
        "94c50e4dd182f467f0d5d1a996b64646"
    );
}

#[test]
fn location_vector() {
    let (_, key) = ChkBlock::encode(b"Hello, Warren!").unwrap();
    let location = Location::of_key(&key.routing);
    println!("location {:016x}", location.0);
    assert_eq!(format!("{:016x}", location.0), "63fd7efa77f1955d");
}

#[test]
fn splitfile_and_site_vectors() {
    let file = encode_bytes(&pattern(100_000), Some("text/plain".into())).unwrap();
    println!("splitfile blocks {} uri {}", file.blocks.len(), file.uri);

    let page = encode_bytes(b"<h1>Warren</h1>", None).unwrap();
    let mut site = SiteBuilder::new();
    for (path, content_type, uri, size) in [
        ("index.html", "text/html", page.uri.clone(), 15),
        ("data/pattern.txt", "text/plain", file.uri.clone(), 100_000),
    ] {
        site.add(SiteEntry {
            path: path.into(),
            content_type: Some(content_type.into()),
            uri,
            size,
        })
        .unwrap();
    }
    let site = site.finish().unwrap();
    println!("site uri {}", site.uri);
    assert_eq!(file.blocks.len(), 9);
    assert_eq!(
        file.uri.to_string(),
        "CHK@Ttu2IYJinLW2gWfgkiLVrwGRSCa_UX3fZ55PLD-03fg,0a2mk7fY5nG5dAm2TKZiNLJetbEcqaTENYoyLy1dsE0,AQAB"
    );
    assert_eq!(
        site.uri.to_string(),
        "CHK@K5suOf43jHn82rFIP5onVfji_AlgP29rfnOK4f3bo_E,yAu2xUSRQ-pF2kPTblH3Zjg8CBnEDZozggmsh72kgls,AQAB"
    );
}

#[test]
fn noderef_vector() {
    let identity = NodeIdentity::from_secret_bytes([7; 32]);
    let node = NodeRef {
        identity: identity.public(),
        location: Location(0x0123_4567_89ab_cdef),
        address: "192.0.2.1:5000".parse().unwrap(),
        version: PROTOCOL_VERSION,
    };
    println!("noderef {node}");
    assert_eq!(
        node.to_string(),
        "warren-noderef:v1:E75P6uryBMf9M1j8nAByGIHRdCeBKCJ-xnTzf3_pe20:0123456789abcdef:192.0.2.1:5000"
    );
    assert_eq!(node.to_string().parse::<NodeRef>().unwrap(), node);
}

#[test]
fn manifest_bytes_vector() {
    use warren_crypto::metadata::{DirectoryEntry, DirectoryManifest, Metadata};
    let (_, key) = ChkBlock::encode(b"Hello, Warren!").unwrap();
    let document = Metadata::Directory(DirectoryManifest {
        entries: vec![DirectoryEntry {
            path: "a".into(),
            key,
            extra: Extra::DATA,
            content_type: Some("text/plain".into()),
            size: 300,
        }],
    });
    let bytes = document.to_bytes();
    println!("manifest {}", hex(&bytes));
    let expected = concat!(
        "01",                                                               // format version
        "01",                                                               // variant 1: Directory
        "01",                                                               // one entry
        "0161",                                                             // path "a"
        "63fd7efa77f1955d4388ff3c5c5703a3c460600a391e9158f577a34970e4edc3", // routing key
        "a33a1b2964eb04d56e851f87a031990c670a560136c381e7d01878c7f34f882c", // crypto key
        "00",                                                               // kind: Data
        "010a746578742f706c61696e",                                         // Some("text/plain")
        "ac02",                                                             // size 300 as a varint
    );
    assert_eq!(hex(&bytes), expected);
    assert_eq!(Metadata::from_bytes(&bytes).unwrap(), document);
}
