//! Encodes a file of any size into CHK blocks through the splitfile encoder,
//! loses a quarter of the blocks in a pretend network, and fetches it back
//! through `ContentFetcher`, which recovers the losses with the check blocks.
//!
//! `cargo run -p warren-crypto --example roundtrip -- FILE [CONTENT-TYPE]`

use std::collections::HashMap;
use std::io::Read;
use std::process::ExitCode;
use std::time::Instant;

use warren_crypto::{ChkBlock, ContentFetcher, RoutingKey, SplitfileEncoder};

/// Bytes read from the file per push: the encoder's memory stays about one segment.
const READ_CHUNK: usize = 1024 * 1024;
/// One block in this many is "lost" (never the root); at most half of any
/// segment, so the check blocks can always stand in.
const LOSE_ONE_IN: usize = 4;
/// Keys the fetcher may have in flight at once, as a network client would.
const FETCH_WINDOW: usize = 64;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: roundtrip FILE [CONTENT-TYPE]");
        return ExitCode::FAILURE;
    };
    match run(&path, args.next()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{path}: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &str, content_type: Option<String>) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut file = std::fs::File::open(path)?;
    let mut encoder = SplitfileEncoder::new(content_type);
    let mut network: HashMap<RoutingKey, ChkBlock> = HashMap::new();
    let mut buffer = vec![0u8; READ_CHUNK];
    let mut blocks = Vec::new();
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        blocks.extend(encoder.push(&buffer[..read])?);
    }
    let len = encoder.len();
    let encoded = encoder.finish()?;
    blocks.extend(encoded.blocks);
    let encode_time = started.elapsed();
    println!("{}", encoded.uri);

    // The pretend network: every block but a quarter of the non-root ones.
    let total_blocks = blocks.len();
    let root = encoded.uri.key.routing;
    let mut lost = 0;
    for (index, block) in blocks.into_iter().enumerate() {
        if index % LOSE_ONE_IN == LOSE_ONE_IN - 1 && block.routing_key() != root {
            lost += 1;
        } else {
            network.insert(block.routing_key(), block);
        }
    }

    let started = Instant::now();
    let mut fetcher = ContentFetcher::new(&encoded.uri);
    let mut content = Vec::new();
    let (mut requests, mut misses) = (0, 0);
    while !fetcher.is_done() {
        let wanted = fetcher.wanted(FETCH_WINDOW);
        if wanted.is_empty() && fetcher.has_failed() {
            return Err("fetch stopped".into());
        }
        for key in wanted {
            requests += 1;
            // A real client checks every block from a peer with `ChkBlock::verify`.
            if let Some(block) = network.get(&key) {
                fetcher.on_block(block)?;
            } else {
                misses += 1;
                fetcher.on_missing(key)?;
            }
        }
        while let Some(piece) = fetcher.take_output() {
            content.extend_from_slice(&piece);
        }
    }
    let fetch_time = started.elapsed();

    let mut original = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut original)?;
    if content != original {
        return Err("decoded content differs from the file".into());
    }
    let mb = len as f64 / 1e6;
    eprintln!(
        "{len} bytes -> {total_blocks} blocks ({lost} lost in transit); content type {:?}",
        fetcher.content_type()
    );
    eprintln!(
        "encoded in {:.3} s ({:.0} MB/s); fetched with {requests} requests ({misses} missing) \
         and decoded intact in {:.3} s ({:.0} MB/s)",
        encode_time.as_secs_f64(),
        mb / encode_time.as_secs_f64(),
        fetch_time.as_secs_f64(),
        mb / fetch_time.as_secs_f64(),
    );
    Ok(())
}
