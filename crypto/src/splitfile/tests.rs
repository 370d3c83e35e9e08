//! Splitfile round trips, losses, tampering and sites, through the public API.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::block::{ChkBlock, BLOCK_PAYLOAD};
use crate::key::{ChkKey, Extra, RoutingKey};
use crate::metadata::{Metadata, Segment, SplitfileManifest, INDEX_FILE};
use crate::uri::ChkUri;

pub(super) type Network = HashMap<RoutingKey, ChkBlock>;

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

fn network(blocks: &[ChkBlock]) -> Network {
    blocks
        .iter()
        .map(|b| (b.routing_key(), b.clone()))
        .collect()
}

fn encode_with(data: &[u8], segment: usize, content_type: Option<&str>) -> Encoded {
    let config = SplitfileConfig {
        segment_data_blocks: segment,
    };
    let mut encoder =
        SplitfileEncoder::with_config(content_type.map(str::to_owned), config).unwrap();
    // Push in uneven pieces: the stream must not care how it is cut.
    let mut blocks = Vec::new();
    for piece in data.chunks(BLOCK_PAYLOAD * 3 / 2 + 7) {
        blocks.extend(encoder.push(piece).unwrap());
    }
    let mut rest = encoder.finish().unwrap();
    blocks.append(&mut rest.blocks);
    Encoded {
        blocks,
        uri: rest.uri,
    }
}

/// Drives a fetcher against a map standing in for the network.
fn fetch(
    uri: &ChkUri,
    net: &Network,
    window: usize,
) -> Result<(Vec<u8>, ContentFetcher), FetchError> {
    let mut fetcher = ContentFetcher::new(uri);
    let mut out = Vec::new();
    loop {
        while let Some(piece) = fetcher.take_output() {
            out.extend_from_slice(&piece);
        }
        if fetcher.is_done() {
            return Ok((out, fetcher));
        }
        let keys = fetcher.wanted(window);
        assert!(
            !keys.is_empty(),
            "fetcher stalled without finishing or failing"
        );
        for key in keys {
            match net.get(&key) {
                Some(block) => fetcher.on_block(block)?,
                None => fetcher.on_missing(key)?,
            }
        }
    }
}

/// Index ranges of each segment's blocks in the encoder's output.
fn segment_ranges(len: usize, segment: usize) -> Vec<core::ops::Range<usize>> {
    let blocks = len.div_ceil(BLOCK_PAYLOAD);
    let mut ranges = Vec::new();
    let mut sizes = vec![segment; blocks / segment];
    match blocks % segment {
        0 => {}
        1 if !sizes.is_empty() => {
            sizes.pop();
            sizes.extend([segment - 1, 2]);
        }
        rest => sizes.push(rest),
    }
    let mut start = 0;
    for k in sizes {
        ranges.push(start..start + 2 * k);
        start += 2 * k;
    }
    ranges
}

#[test]
fn small_content_is_one_data_block() {
    for len in [0, 1, 100, BLOCK_PAYLOAD] {
        let data = random_bytes(len as u64, len);
        let encoded = encode_bytes(&data, Some("text/plain".into())).unwrap();
        assert_eq!(encoded.blocks.len(), 1);
        assert_eq!(encoded.uri.extra, Extra::DATA);
        let (back, fetcher) = fetch(&encoded.uri, &network(&encoded.blocks), 8).unwrap();
        assert_eq!(back, data);
        assert_eq!(fetcher.total_len(), Some(len as u64));
    }
}

#[test]
fn one_byte_over_a_block_becomes_a_splitfile() {
    let data = random_bytes(1, BLOCK_PAYLOAD + 1);
    let encoded = encode_bytes(&data, Some("application/pdf".into())).unwrap();
    // Two data blocks, two check blocks, one manifest block.
    assert_eq!(encoded.blocks.len(), 5);
    assert_eq!(encoded.uri.extra, Extra::METADATA);
    let (back, fetcher) = fetch(&encoded.uri, &network(&encoded.blocks), 8).unwrap();
    assert_eq!(back, data);
    assert_eq!(fetcher.content_type(), Some("application/pdf"));
    assert_eq!(fetcher.total_len(), Some(data.len() as u64));
}

#[test]
fn streaming_and_one_shot_give_the_same_uri() {
    let data = random_bytes(2, 5 * BLOCK_PAYLOAD + 17);
    let streamed = encode_with(&data, DEFAULT_SEGMENT_DATA_BLOCKS, None);
    let one_shot = encode_bytes(&data, None).unwrap();
    assert_eq!(streamed.uri, one_shot.uri);
    assert_eq!(streamed.blocks, one_shot.blocks);
}

#[test]
fn default_layout_survives_losing_half_of_every_segment() {
    // Two segments: 128 + 32 data blocks, each with as many check blocks.
    let data = random_bytes(3, 160 * BLOCK_PAYLOAD - 5);
    let encoded = encode_bytes(&data, None).unwrap();
    let mut net = network(&encoded.blocks);
    for range in segment_ranges(data.len(), DEFAULT_SEGMENT_DATA_BLOCKS) {
        // Lose every other block: exactly half of the segment remains.
        for index in range.step_by(2) {
            net.remove(&encoded.blocks[index].routing_key());
        }
    }
    let (back, _) = fetch(&encoded.uri, &net, 64).unwrap();
    assert_eq!(back, data);
}

#[test]
fn one_block_past_the_limit_names_the_segment() {
    let data = random_bytes(4, 10 * BLOCK_PAYLOAD);
    let encoded = encode_with(&data, 4, None);
    let ranges = segment_ranges(data.len(), 4);
    let mut net = network(&encoded.blocks);
    // Segment 1 has 4 data + 4 check blocks: lose 5.
    for index in ranges[1].clone().take(5) {
        net.remove(&encoded.blocks[index].routing_key());
    }
    match fetch(&encoded.uri, &net, 16) {
        Err(FetchError::SegmentUnrecoverable {
            part: Part::Content,
            segment: 1,
            segments: 3,
            blocks: 8,
            missing: 5,
            available: 3,
            needed: 4,
            ..
        }) => {}
        other => panic!("expected segment 1 to be unrecoverable, got {other:?}"),
    }
}

#[test]
fn wanted_asks_for_data_first_and_only_what_is_needed() {
    // One segment more than the fetcher works on at once.
    let segments = super::FETCH_WINDOW_SEGMENTS + 1;
    let data = random_bytes(5, 4 * segments * BLOCK_PAYLOAD);
    let encoded = encode_with(&data, 4, None);
    let net = network(&encoded.blocks);
    let mut fetcher = ContentFetcher::new(&encoded.uri);
    let root = fetcher.wanted(100);
    assert_eq!(root, vec![encoded.uri.key.routing]);
    assert!(fetcher.wanted(100).is_empty(), "the root is asked for once");
    fetcher.on_block(&net[&root[0]]).unwrap();
    // A window of segments: their data blocks, no check blocks, and nothing
    // of the segment beyond the window.
    let first = fetcher.wanted(100);
    let expected: Vec<RoutingKey> = (0..super::FETCH_WINDOW_SEGMENTS)
        .flat_map(|segment| &encoded.blocks[8 * segment..8 * segment + 4])
        .map(ChkBlock::routing_key)
        .collect();
    assert_eq!(first, expected);
    assert!(fetcher.wanted(100).is_empty());
    // One data block missing: exactly one check block replaces it.
    fetcher.on_missing(first[2]).unwrap();
    assert_eq!(fetcher.wanted(100), vec![encoded.blocks[4].routing_key()]);
    // `max` is respected.
    fetcher.on_missing(first[3]).unwrap();
    fetcher.on_missing(first[1]).unwrap();
    assert_eq!(fetcher.wanted(1).len(), 1);
    assert_eq!(fetcher.wanted(100).len(), 1);
}

#[test]
fn a_shorter_lookahead_asks_for_fewer_segments() {
    let data = random_bytes(12, 4 * super::FETCH_WINDOW_SEGMENTS * BLOCK_PAYLOAD);
    let encoded = encode_with(&data, 4, None);
    let net = network(&encoded.blocks);
    let mut fetcher = ContentFetcher::new(&encoded.uri);
    fetcher.set_lookahead(2);
    let root = fetcher.wanted(100);
    fetcher.on_block(&net[&root[0]]).unwrap();
    let first = fetcher.wanted(100);
    let expected: Vec<RoutingKey> = (0..2)
        .flat_map(|segment| &encoded.blocks[8 * segment..8 * segment + 4])
        .map(ChkBlock::routing_key)
        .collect();
    assert_eq!(first, expected);
    // Widened again: the rest of the window is asked for.
    fetcher.set_lookahead(super::FETCH_WINDOW_SEGMENTS);
    assert_eq!(
        fetcher.wanted(1000).len(),
        4 * (super::FETCH_WINDOW_SEGMENTS - 2)
    );
    let (out, _) = fetch(&encoded.uri, &net, 7).unwrap();
    assert_eq!(out, data);
}

/// A fetch whose front segment answers last, so every later answer arrives
/// while the front still waits: with a small memory bound, answers past it
/// are handed back (parked), the driver keeps them and gives them back when
/// they are asked for again, and the blocks held never pass the bound plus
/// the front segment.
#[test]
fn answers_past_the_memory_bound_are_parked_and_asked_for_again() {
    let segment = 4;
    let limit = 2 * segment;
    let data = random_bytes(11, 12 * segment * BLOCK_PAYLOAD + 5);
    let encoded = encode_with(&data, segment, None);
    let net = network(&encoded.blocks);
    let mut fetcher = ContentFetcher::with_held_limit(&encoded.uri, limit);
    let mut kept: Network = HashMap::new();
    let (mut out, mut parked_total, mut from_network) = (Vec::new(), 0, 0);
    let mut late: Vec<RoutingKey> = Vec::new();
    let mut rounds = 0;
    while !fetcher.is_done() {
        rounds += 1;
        assert!(rounds < 1000, "the fetch does not finish");
        let keys = fetcher.wanted(usize::MAX);
        // Answers from what the driver kept come at once; of the network's,
        // the first asked for (the front segment's) are held back a round.
        let (at_hand, asked): (Vec<_>, Vec<_>) =
            keys.into_iter().partition(|key| kept.contains_key(key));
        let (front, rest) = asked.split_at(asked.len().min(segment));
        let mut answers: Vec<ChkBlock> =
            at_hand.iter().filter_map(|key| kept.remove(key)).collect();
        from_network += rest.len() + late.len();
        answers.extend(rest.iter().chain(&late).map(|key| net[key].clone()));
        late = front.to_vec();
        for block in answers {
            fetcher.on_block(&block).unwrap();
            for block in fetcher.take_parked() {
                parked_total += 1;
                kept.insert(block.routing_key(), block);
            }
            assert!(
                fetcher.held_blocks() <= limit + segment,
                "{} blocks held",
                fetcher.held_blocks()
            );
            while let Some(piece) = fetcher.take_output() {
                out.extend_from_slice(&piece);
            }
        }
    }
    assert_eq!(out, data);
    assert!(parked_total > 0, "nothing was parked");
    assert!(
        kept.is_empty(),
        "{} parked blocks never asked for",
        kept.len()
    );
    // Parking saves asking the network again: each block came from it once
    // (the root, and the data blocks of 13 segments).
    let data_blocks = data.len().div_ceil(BLOCK_PAYLOAD);
    assert_eq!(from_network, 1 + data_blocks);
}

#[test]
fn output_comes_in_order_a_segment_at_a_time() {
    let data = random_bytes(6, 9 * BLOCK_PAYLOAD + 3);
    let encoded = encode_with(&data, 3, None);
    let net = network(&encoded.blocks);
    let mut fetcher = ContentFetcher::new(&encoded.uri);
    let mut pieces = Vec::new();
    while !fetcher.is_done() {
        let mut keys = fetcher.wanted(100);
        // Answer in reverse so later segments finish first.
        keys.reverse();
        for key in keys {
            fetcher.on_block(&net[&key]).unwrap();
        }
        while let Some(piece) = fetcher.take_output() {
            pieces.push(piece);
        }
    }
    // Ten blocks in segments of 3: 3, 3, 2, 2 (no lone last block).
    let lens: Vec<usize> = pieces.iter().map(Vec::len).collect();
    assert_eq!(
        lens,
        [
            3 * BLOCK_PAYLOAD,
            3 * BLOCK_PAYLOAD,
            2 * BLOCK_PAYLOAD,
            BLOCK_PAYLOAD + 3
        ]
    );
    assert_eq!(pieces.concat(), data);
}

#[test]
fn identical_blocks_are_fetched_once() {
    let data = vec![0u8; 6 * BLOCK_PAYLOAD];
    let encoded = encode_with(&data, 3, None);
    let net = network(&encoded.blocks);
    let mut fetcher = ContentFetcher::new(&encoded.uri);
    let root = fetcher.wanted(1)[0];
    fetcher.on_block(&net[&root]).unwrap();
    let keys = fetcher.wanted(100);
    assert_eq!(keys.len(), 1, "all six zero blocks share one key");
    fetcher.on_block(&net[&keys[0]]).unwrap();
    let mut out = Vec::new();
    while let Some(piece) = fetcher.take_output() {
        out.extend(piece);
    }
    assert!(fetcher.is_done());
    assert_eq!(out, data);
}

#[test]
fn late_and_unrequested_blocks_are_ignored() {
    let data = random_bytes(7, 3 * BLOCK_PAYLOAD);
    let encoded = encode_with(&data, 4, None);
    let net = network(&encoded.blocks);
    let (stranger, _) = ChkBlock::encode(b"not part of this file").unwrap();
    let mut fetcher = ContentFetcher::new(&encoded.uri);
    fetcher.on_block(&stranger).unwrap();
    let root = fetcher.wanted(1)[0];
    fetcher.on_block(&net[&root]).unwrap();
    for key in fetcher.wanted(100) {
        fetcher.on_block(&net[&key]).unwrap();
        fetcher.on_block(&net[&key]).unwrap();
    }
    assert_eq!(fetcher.take_output().unwrap(), data);
    assert!(fetcher.is_done());
}

#[test]
fn a_missing_root_is_a_clean_error() {
    let encoded = encode_bytes(b"hello", None).unwrap();
    let result = fetch(&encoded.uri, &Network::new(), 4);
    assert!(matches!(
        result,
        Err(FetchError::BlockNotFound {
            part: Part::Content
        })
    ));
    let big = encode_bytes(&random_bytes(8, 2 * BLOCK_PAYLOAD), None).unwrap();
    let result = fetch(&big.uri, &Network::new(), 4);
    assert!(matches!(
        result,
        Err(FetchError::BlockNotFound {
            part: Part::Metadata { hop: 0 }
        })
    ));
}

/// A manifest whose check blocks hold other content: recovery must notice.
#[test]
fn inconsistent_check_blocks_are_detected() {
    let data = random_bytes(9, 2 * BLOCK_PAYLOAD);
    let mut blocks = Vec::new();
    let mut segment = Segment {
        data: Vec::new(),
        check: Vec::new(),
    };
    for chunk in data.chunks(BLOCK_PAYLOAD) {
        let (block, key) = ChkBlock::encode(chunk).unwrap();
        segment.data.push(key);
        blocks.push(block);
    }
    for seed in 0..2 {
        let (block, key) = ChkBlock::encode(&random_bytes(100 + seed, BLOCK_PAYLOAD)).unwrap();
        segment.check.push(key);
        blocks.push(block);
    }
    let manifest = Metadata::Splitfile(SplitfileManifest {
        len: data.len() as u64,
        content_type: None,
        segments: vec![segment],
    });
    let (root, key) = ChkBlock::encode(&manifest.to_bytes()).unwrap();
    blocks.push(root);
    let mut net = network(&blocks);
    net.remove(&blocks[0].routing_key());
    let result = fetch(&ChkUri::new(key, Extra::METADATA), &net, 8);
    assert!(matches!(
        result,
        Err(FetchError::InconsistentSegment {
            part: Part::Content,
            segment: 0
        })
    ));
}

#[test]
fn garbage_metadata_fails_cleanly() {
    let (block, key) = ChkBlock::encode(b"\x01this is not a manifest").unwrap();
    let result = fetch(&ChkUri::new(key, Extra::METADATA), &network(&[block]), 4);
    assert!(matches!(result, Err(FetchError::Metadata { .. })));
}

fn site_with(files: &[(&str, &[u8], &str)]) -> (ChkUri, Network) {
    let mut blocks = Vec::new();
    let mut site = SiteBuilder::new();
    for (path, content, content_type) in files {
        let encoded = encode_with(content, 4, None);
        blocks.extend(encoded.blocks);
        site.add(SiteEntry {
            path: (*path).to_owned(),
            content_type: Some((*content_type).to_owned()),
            uri: encoded.uri,
            size: content.len() as u64,
        })
        .unwrap();
    }
    let encoded = site.finish().unwrap();
    blocks.extend(encoded.blocks);
    (encoded.uri, network(&blocks))
}

#[test]
fn sites_resolve_paths_and_index() {
    let big = random_bytes(10, 5 * BLOCK_PAYLOAD + 99);
    let files: [(&str, &[u8], &str); 3] = [
        (
            "index.html",
            b"<a href=\"img/big.bin\">big</a>",
            "text/html",
        ),
        ("img/big.bin", &big, "application/octet-stream"),
        ("docs/index.html", b"docs", "text/html; charset=utf-8"),
    ];
    let (uri, net) = site_with(&files);
    let (index, fetcher) = fetch(&uri, &net, 8).unwrap();
    assert_eq!(index, files[0].1);
    assert_eq!(fetcher.content_type(), Some("text/html"));
    assert!(fetcher.is_site());
    let (back, fetcher) = fetch(&uri.clone().with_path("img/big.bin"), &net, 8).unwrap();
    assert_eq!(back, big);
    assert_eq!(fetcher.content_type(), Some("application/octet-stream"));
    assert_eq!(fetcher.total_len(), Some(big.len() as u64));
    let (docs, _) = fetch(&uri.clone().with_path("docs/"), &net, 8).unwrap();
    assert_eq!(docs, b"docs");
    match fetch(&uri.clone().with_path("img/nope.png"), &net, 8) {
        Err(FetchError::NotInSite { path }) => assert_eq!(path, "img/nope.png"),
        other => panic!("expected NotInSite, got {other:?}"),
    }
    // A directory named without its slash: told apart from a missing file,
    // so a gateway can redirect to `docs/`, where relative links resolve.
    match fetch(&uri.clone().with_path("docs"), &net, 8) {
        Err(FetchError::SiteDirectory { path }) => assert_eq!(path, "docs"),
        other => panic!("expected SiteDirectory, got {other:?}"),
    }
    match fetch(&uri.with_path("img"), &net, 8) {
        Err(FetchError::NotInSite { path }) => assert_eq!(path, "img"),
        other => panic!("expected NotInSite (img has no index.html), got {other:?}"),
    }
}

#[test]
fn plain_files_are_not_sites() {
    let content = random_bytes(11, 3 * BLOCK_PAYLOAD);
    let encoded = encode_bytes(&content, None).unwrap();
    let net = network(&encoded.blocks);
    let (back, fetcher) = fetch(&encoded.uri, &net, 8).unwrap();
    assert_eq!(back, content);
    assert!(!fetcher.is_site());
}

#[test]
fn site_builder_refuses_bad_entries() {
    let file = encode_bytes(b"x", None).unwrap();
    let entry = |path: &str, size| SiteEntry {
        path: path.to_owned(),
        content_type: None,
        uri: file.uri.clone(),
        size,
    };
    let mut site = SiteBuilder::new();
    site.add(entry("a.txt", 1)).unwrap();
    assert_eq!(
        site.add(entry("a.txt", 1)),
        Err(SiteError::Duplicate("a.txt".into()))
    );
    for bad in ["", "/abs", "a/../b", "a//b", "dir/", "./a"] {
        assert!(
            matches!(site.add(entry(bad, 1)), Err(SiteError::BadPath { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        site.add(entry("big", BLOCK_PAYLOAD as u64 + 1)),
        Err(SiteError::SizeMismatch(_))
    ));
}

#[test]
fn a_site_with_a_wrong_size_is_refused_at_fetch() {
    let file = encode_bytes(b"twelve bytes", None).unwrap();
    let mut site = SiteBuilder::new();
    site.add(SiteEntry {
        path: INDEX_FILE.into(),
        content_type: None,
        uri: file.uri,
        size: 11,
    })
    .unwrap();
    let encoded = site.finish().unwrap();
    let mut blocks = file.blocks;
    blocks.extend(encoded.blocks);
    assert!(matches!(
        fetch(&encoded.uri, &network(&blocks), 4),
        Err(FetchError::SizeMismatch {
            expected: 11,
            actual: 12
        })
    ));
}

#[test]
fn large_site_manifests_are_split_and_still_resolve() {
    let file = encode_bytes(b"same small file", None).unwrap();
    let mut site = SiteBuilder::new();
    for i in 0..2000 {
        site.add(SiteEntry {
            path: format!("pages/page-{i:05}.html"),
            content_type: Some("text/html".into()),
            uri: file.uri.clone(),
            size: 15,
        })
        .unwrap();
    }
    let encoded = site.finish().unwrap();
    assert!(
        encoded.blocks.len() > 2,
        "a 2000-entry manifest does not fit one block"
    );
    let mut blocks = file.blocks;
    blocks.extend(encoded.blocks);
    let (back, fetcher) = fetch(
        &encoded.uri.with_path("pages/page-01234.html"),
        &network(&blocks),
        8,
    )
    .unwrap();
    assert_eq!(back, b"same small file");
    assert_eq!(fetcher.content_type(), Some("text/html"));
}

#[test]
fn huge_site_manifest_takes_two_levels_of_splitting() {
    let file = encode_bytes(b"f", None).unwrap();
    let mut site = SiteBuilder::new();
    let long = "d".repeat(900);
    for i in 0..10_000 {
        site.add(SiteEntry {
            path: format!("{long}/{i}"),
            content_type: None,
            uri: file.uri.clone(),
            size: 1,
        })
        .unwrap();
    }
    let encoded = site.finish().unwrap();
    let mut blocks = file.blocks;
    blocks.extend(encoded.blocks);
    let net = network(&blocks);
    let root = net[&encoded.uri.key.routing]
        .decode(&encoded.uri.key.crypto)
        .unwrap();
    let Metadata::Indirect(top) = Metadata::from_bytes(&root).unwrap() else {
        panic!("root is not split metadata");
    };
    // One level would describe the ~9 MB directory itself; two levels describe
    // the first level's manifest, tens of KiB.
    assert!(
        top.len > BLOCK_PAYLOAD as u64 && top.len < 1 << 20,
        "{}",
        top.len
    );
    let (back, _) = fetch(&encoded.uri.with_path(format!("{long}/9999")), &net, 64).unwrap();
    assert_eq!(back, b"f");
}

#[test]
fn bad_config_and_content_type_are_refused() {
    for bad in [0, 2, MAX_SEGMENT_DATA_BLOCKS_PLUS_ONE] {
        let config = SplitfileConfig {
            segment_data_blocks: bad,
        };
        assert!(matches!(
            SplitfileEncoder::with_config(None, config),
            Err(EncodeError::BadConfig(_))
        ));
    }
    let mut encoder = SplitfileEncoder::new(Some("text/\nhtml".into()));
    encoder.push(&vec![1; 40_000]).unwrap();
    assert!(matches!(encoder.finish(), Err(EncodeError::BadContentType)));
}

const MAX_SEGMENT_DATA_BLOCKS_PLUS_ONE: usize = crate::metadata::MAX_SEGMENT_DATA_BLOCKS + 1;

/// The heavy case: tens of MiB through the default layout, with losses
/// (about 0.6 s in the dev profile, so it runs by default).
#[test]
fn forty_mib_round_trip_with_losses() {
    let data = random_bytes(11, 40 * 1024 * 1024 + 12_345);
    let encoded = encode_bytes(&data, None).unwrap();
    let mut net = network(&encoded.blocks);
    for range in segment_ranges(data.len(), DEFAULT_SEGMENT_DATA_BLOCKS) {
        let k = range.len() / 2;
        for index in range.skip(k / 3).take(k) {
            net.remove(&encoded.blocks[index].routing_key());
        }
    }
    let (back, _) = fetch(&encoded.uri, &net, 256).unwrap();
    assert!(back == data, "40 MiB content differs after recovery");
}

fn lose(
    encoded: &Encoded,
    len: usize,
    segment: usize,
    seed: u64,
    extra_loss: Option<usize>,
) -> (Network, Option<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut net = network(&encoded.blocks);
    let ranges = segment_ranges(len, segment);
    let over = extra_loss
        .filter(|_| !ranges.is_empty())
        .map(|s| s % ranges.len());
    for (index, range) in ranges.into_iter().enumerate() {
        let k = range.len() / 2;
        let limit = if Some(index) == over { k + 1 } else { k };
        let lost = (rng.next_u32() as usize) % (limit + 1);
        let lost = if Some(index) == over { k + 1 } else { lost };
        let mut positions: Vec<usize> = range.collect();
        // Fisher-Yates: a random subset of `lost` blocks.
        for i in 0..lost {
            let j = i + (rng.next_u32() as usize) % (positions.len() - i);
            positions.swap(i, j);
        }
        let dropped: HashSet<usize> = positions[..lost].iter().copied().collect();
        for position in dropped {
            net.remove(&encoded.blocks[position].routing_key());
        }
    }
    (net, over)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_content_survives_any_loss_within_the_limit(
        seed: u64,
        len in 0usize..(3 * 1024 * 1024),
        segment in 3usize..=12,
        window in 1usize..64,
    ) {
        let data = random_bytes(seed, len);
        let encoded = encode_with(&data, segment, Some("application/x-test"));
        let net = if len > BLOCK_PAYLOAD {
            lose(&encoded, len, segment, seed, None).0
        } else {
            network(&encoded.blocks)
        };
        let (back, fetcher) = fetch(&encoded.uri, &net, window).unwrap();
        prop_assert!(back == data);
        prop_assert_eq!(fetcher.total_len(), Some(len as u64));
    }

    #[test]
    fn one_loss_past_the_limit_fails_cleanly(
        seed: u64,
        len in (BLOCK_PAYLOAD + 1)..(2 * 1024 * 1024),
        segment in 3usize..=8,
        which: usize,
    ) {
        let data = random_bytes(seed, len);
        let encoded = encode_with(&data, segment, None);
        let (net, over) = lose(&encoded, len, segment, seed, Some(which));
        match fetch(&encoded.uri, &net, 32) {
            Err(FetchError::SegmentUnrecoverable { segment: failed, part: Part::Content, .. }) => {
                prop_assert_eq!(Some(failed), over);
            }
            other => prop_assert!(false, "expected an unrecoverable segment, got {:?}", other.map(|r| r.0.len())),
        }
    }

    #[test]
    fn flipping_any_bit_of_any_block_is_detected(
        seed: u64,
        len in 0usize..(300 * 1024),
        pick: usize,
        offset in 0usize..crate::block::BLOCK_LEN,
        bit in 0u8..8,
    ) {
        let data = random_bytes(seed, len);
        let encoded = encode_with(&data, 3, None);
        let block = &encoded.blocks[pick % encoded.blocks.len()];
        let mut bytes = block.as_bytes().to_vec();
        bytes[offset] ^= 1 << bit;
        prop_assert!(ChkBlock::verify(block.routing_key(), bytes).is_err());
    }

    #[test]
    fn a_block_under_the_wrong_crypto_key_is_refused(seed: u64, other: [u8; 32]) {
        // A manifest naming a real block with a wrong crypto key fails cleanly.
        let data = random_bytes(seed, 2 * BLOCK_PAYLOAD);
        let (block, key) = ChkBlock::encode(&data[..BLOCK_PAYLOAD]).unwrap();
        let (block2, key2) = ChkBlock::encode(&data[BLOCK_PAYLOAD..]).unwrap();
        let forged = ChkKey { routing: key.routing, crypto: crate::key::CryptoKey::from_bytes(other) };
        let manifest = Metadata::Splitfile(SplitfileManifest {
            len: data.len() as u64,
            content_type: None,
            segments: vec![Segment { data: vec![forged, key2], check: vec![] }],
        });
        let (root, root_key) = ChkBlock::encode(&manifest.to_bytes()).unwrap();
        let net = network(&[block, block2, root]);
        let result = fetch(&ChkUri::new(root_key, Extra::METADATA), &net, 4);
        prop_assert!(matches!(result, Err(FetchError::BadBlock { part: Part::Content, .. })), "{:?}", result.map(|r| r.0.len()));
    }
}

#[test]
fn lost_data_blocks_come_back_rebuilt_for_healing() {
    let data = random_bytes(9, 10 * BLOCK_PAYLOAD);
    let encoded = encode_with(&data, 4, None);
    let ranges = segment_ranges(data.len(), 4);
    let mut net = network(&encoded.blocks);
    // Segment 1 loses two data blocks: recoverable from its check blocks.
    let lost: Vec<_> = ranges[1]
        .clone()
        .take(2)
        .map(|i| encoded.blocks[i].clone())
        .collect();
    for block in &lost {
        net.remove(&block.routing_key());
    }
    let (out, mut fetcher) = fetch(&encoded.uri, &net, 16).unwrap();
    assert_eq!(out, data);
    let mut rebuilt = fetcher.take_rebuilt();
    rebuilt.sort_by_key(ChkBlock::routing_key);
    let mut expected = lost;
    expected.sort_by_key(ChkBlock::routing_key);
    assert_eq!(rebuilt, expected, "exactly the lost blocks, byte for byte");
    assert!(fetcher.take_rebuilt().is_empty(), "each is handed out once");
}

#[test]
fn lost_check_blocks_come_back_rebuilt_for_healing() {
    let data = random_bytes(10, 10 * BLOCK_PAYLOAD);
    let encoded = encode_with(&data, 4, None);
    let ranges = segment_ranges(data.len(), 4);
    let mut net = network(&encoded.blocks);
    // Segment 1 (4 data, then 4 check blocks) loses two data blocks and its
    // first check block: the fetcher asks for that one, finds it missing,
    // and decodes from the other check blocks.
    let start = ranges[1].start;
    let lost: Vec<_> = [start, start + 1, start + 4]
        .iter()
        .map(|&i| encoded.blocks[i].clone())
        .collect();
    for block in &lost {
        net.remove(&block.routing_key());
    }
    let (out, mut fetcher) = fetch(&encoded.uri, &net, 16).unwrap();
    assert_eq!(out, data);
    let mut rebuilt = fetcher.take_rebuilt();
    rebuilt.sort_by_key(ChkBlock::routing_key);
    let mut expected = lost;
    expected.sort_by_key(ChkBlock::routing_key);
    assert_eq!(
        rebuilt, expected,
        "the lost data and check blocks, byte for byte"
    );
}
