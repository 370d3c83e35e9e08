//! Codec throughput against raw primitives measured in the same run.
//!
//! `cargo bench -p warren-crypto --bench codec` (add `-- quick` for a short run).

use std::hint::black_box;
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use sha2::{Digest, Sha256};
use warren_crypto::block::SEALED_LEN;
use warren_crypto::splitfile::fec::{self, FecEncoder};
use warren_crypto::{ChkBlock, SplitfileEncoder, BLOCK_PAYLOAD};

/// Bytes per MB in the printed figures (decimal, as throughput is usually quoted).
const MB: f64 = 1_000_000.0;
/// Data blocks per segment for the FEC figures (the default layout).
const SEGMENT: usize = 128;
/// Size of the file encoded for the whole-splitfile figure, and its push chunk.
const FILE_LEN: usize = 64 * 1024 * 1024;
const PUSH_CHUNK: usize = 1024 * 1024;

/// Runs `op` at least `min_iters` times and for at least `min_time`; returns time per op.
fn time_per_op(min_iters: u32, min_time: Duration, mut op: impl FnMut()) -> Duration {
    op(); // warm up caches and lazy CPU-feature detection
    let start = Instant::now();
    let mut iters = 0u32;
    while iters < min_iters || start.elapsed() < min_time {
        op();
        iters += 1;
    }
    start.elapsed() / iters
}

fn mbps(bytes: usize, per_op: Duration) -> f64 {
    bytes as f64 / MB / per_op.as_secs_f64()
}

fn pseudo_random(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            // xorshift64: content only has to defeat trivial compression.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Time per 32 KiB operation of the raw primitives: (AEAD seal, SHA-256).
fn baselines(min_time: Duration, block_data: &[u8]) -> (Duration, Duration) {
    let key = [7u8; 32];
    let cipher = ChaCha20Poly1305::new((&key).into());
    let mut sealed = vec![0u8; SEALED_LEN];
    sealed[..BLOCK_PAYLOAD].copy_from_slice(block_data);
    let aead = time_per_op(200, min_time, || {
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&[0; 12]), b"", black_box(&mut sealed))
            .expect("benchmark inputs are valid");
        black_box(tag);
    });
    let sha = time_per_op(200, min_time, || {
        black_box(Sha256::digest(black_box(block_data)));
    });
    (aead, sha)
}

/// Time per block: (encode, verify + decode, the 32 KiB copy `verify` is handed).
fn block_codec(min_time: Duration, block_data: &[u8]) -> (Duration, Duration, Duration) {
    let encode = time_per_op(200, min_time, || {
        black_box(ChkBlock::encode(black_box(block_data)).expect("benchmark inputs are valid"));
    });
    let (block, chk) = ChkBlock::encode(block_data).expect("benchmark inputs are valid");
    let bytes = block.as_bytes().to_vec();
    let mut plain = Vec::with_capacity(SEALED_LEN);
    let decode = time_per_op(200, min_time, || {
        let checked = ChkBlock::verify(chk.routing, black_box(bytes.clone()))
            .expect("benchmark inputs are valid");
        checked
            .decode_into(&chk.crypto, &mut plain)
            .expect("benchmark inputs are valid");
        black_box(&plain);
    });
    // The copy `verify` needs (it takes ownership) is not codec work: measure it.
    let copy = time_per_op(200, min_time, || {
        black_box(black_box(&bytes).clone());
    });
    (encode, decode, copy)
}

/// Time per default segment: (FEC encode, FEC decode from half the shards).
fn fec_codec(min_time: Duration) -> (Duration, Duration) {
    let segment: Vec<Vec<u8>> = (0..SEGMENT)
        .map(|i| pseudo_random(BLOCK_PAYLOAD, i as u64 + 2))
        .collect();
    let mut fec_encoder = FecEncoder::default();
    let mut checks: Vec<Vec<u8>> = Vec::new();
    let encode = time_per_op(5, min_time, || {
        checks.clear();
        fec_encoder
            .encode(segment.iter().map(Vec::as_slice), SEGMENT, |c| {
                checks.push(c.to_vec());
            })
            .expect("benchmark inputs are valid");
    });
    // Half lost: the odd data shards and the even check shards.
    let kept_data: Vec<(usize, &[u8])> = (0..SEGMENT)
        .step_by(2)
        .map(|i| (i, segment[i].as_slice()))
        .collect();
    let kept_check: Vec<(usize, &[u8])> = (1..SEGMENT)
        .step_by(2)
        .map(|i| (i, checks[i].as_slice()))
        .collect();
    let decode = time_per_op(5, min_time, || {
        black_box(
            fec::recover(SEGMENT, SEGMENT, &kept_data, &kept_check)
                .expect("benchmark inputs are valid"),
        );
    });
    (encode, decode)
}

/// Time to encode a whole large file: blocks, FEC and manifest.
fn splitfile_insert() -> Duration {
    let file = pseudo_random(FILE_LEN, 99);
    time_per_op(1, Duration::ZERO, || {
        let mut encoder = SplitfileEncoder::new(None);
        let mut count = 0;
        for chunk in file.chunks(PUSH_CHUNK) {
            count += encoder
                .push(chunk)
                .expect("benchmark inputs are valid")
                .len();
        }
        count += encoder
            .finish()
            .expect("benchmark inputs are valid")
            .blocks
            .len();
        black_box(count);
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let min_time = Duration::from_millis(if quick { 100 } else { 700 });
    let block_data = pseudo_random(BLOCK_PAYLOAD, 1);
    let (aead, sha) = baselines(min_time, &block_data);
    let (encode, decode, copy) = block_codec(min_time, &block_data);
    let (fec_encode, fec_decode) = fec_codec(min_time);
    let splitfile = splitfile_insert();

    let segment_bytes = SEGMENT * BLOCK_PAYLOAD;
    println!("one core, {} KiB blocks", BLOCK_PAYLOAD / 1024);
    println!(
        "baseline ChaCha20-Poly1305 seal 32 KiB: {:8.0} MB/s",
        mbps(BLOCK_PAYLOAD, aead)
    );
    println!(
        "baseline SHA-256 32 KiB:                {:8.0} MB/s",
        mbps(BLOCK_PAYLOAD, sha)
    );
    println!(
        "block encode:                           {:8.0} MB/s",
        mbps(BLOCK_PAYLOAD, encode)
    );
    println!(
        "block verify + decode:                  {:8.0} MB/s",
        mbps(BLOCK_PAYLOAD, decode)
    );
    println!(
        "  (of which the test's 32 KiB copy:     {:8.0} MB/s)",
        mbps(BLOCK_PAYLOAD, copy)
    );
    println!(
        "FEC encode 128+128:                     {:8.0} MB/s of data",
        mbps(segment_bytes, fec_encode)
    );
    println!(
        "FEC decode from half (64+64):           {:8.0} MB/s of data",
        mbps(segment_bytes, fec_decode)
    );
    println!(
        "splitfile insert encoding ({} MiB):     {:8.0} MB/s of file",
        FILE_LEN >> 20,
        mbps(FILE_LEN, splitfile)
    );

    let raw = 2 * (aead + sha);
    let codec = (encode + decode).saturating_sub(copy);
    println!();
    println!(
        "ratio (encode + decode) / 2 x (AEAD + SHA-256): {:.2}  (goal <= 1.5)",
        codec.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "ratio (encode + decode) / (2 x AEAD + 3 x SHA-256, the design's minimum): {:.2}",
        codec.as_secs_f64() / (2 * aead + 3 * sha).as_secs_f64()
    );
    // Per file byte an insert encodes one data and one check block and runs FEC.
    let floor = 2 * encode + fec_encode / SEGMENT as u32;
    println!(
        "splitfile: {:.0} MB/s (goal >= 500); floor from the parts above: {:.0} MB/s",
        mbps(FILE_LEN, splitfile),
        mbps(BLOCK_PAYLOAD, floor)
    );
}
