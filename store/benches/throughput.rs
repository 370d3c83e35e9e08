//! Puts and gets per second of 32 KiB blocks in `SledStore`, beside raw file
//! writes and reads of the same bytes measured in the same run, plus the cost
//! of the flush policy (flush after every put, every 64 puts, once).
//!
//! `cargo bench -p warren-store --bench throughput`
//! (`WARREN_BENCH_BLOCKS=n` changes the block count; default 2048 = 64 MiB).

// A benchmark binary, not library code: a failed setup step should just stop it.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use warren_crypto::{ChkBlock, ChkKey, BLOCK_LEN};
use warren_store::{Area, BlockStore, MemoryStore, SledStore, StoreConfig};

const DEFAULT_BLOCKS: usize = 2048;
/// Puts between flushes in the batched-flush measurement.
const FLUSH_BATCH: usize = 64;
/// The every-put-flushed measurement uses this fraction of the blocks.
const SYNC_FRACTION: usize = 4;

fn mbps(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e6
}

fn config() -> StoreConfig {
    StoreConfig {
        flush_every_ms: None,
        ..StoreConfig::default()
    }
}

fn raw_write(path: &Path, blocks: &[(ChkBlock, ChkKey)]) -> Duration {
    let start = Instant::now();
    let mut file = File::create(path).unwrap();
    for (block, _) in blocks {
        file.write_all(block.as_bytes()).unwrap();
    }
    file.sync_all().unwrap();
    start.elapsed()
}

fn raw_read(path: &Path, n: usize) -> Duration {
    let start = Instant::now();
    let mut file = File::open(path).unwrap();
    let mut buf = vec![0u8; BLOCK_LEN];
    for _ in 0..n {
        file.read_exact(&mut buf).unwrap();
        std::hint::black_box(&buf);
    }
    start.elapsed()
}

/// Time of all puts with their flushes, and of the final flush alone.
fn puts_timed(
    store: &dyn BlockStore,
    blocks: &[(ChkBlock, ChkKey)],
    flush_every: usize,
) -> (Duration, Duration) {
    let start = Instant::now();
    for (i, (block, _)) in blocks.iter().enumerate() {
        store.put(Area::Cache, block).unwrap();
        if (i + 1) % flush_every == 0 {
            store.flush().unwrap();
        }
    }
    let last = Instant::now();
    store.flush().unwrap();
    (start.elapsed(), last.elapsed())
}

fn puts(store: &dyn BlockStore, blocks: &[(ChkBlock, ChkKey)], flush_every: usize) -> Duration {
    puts_timed(store, blocks, flush_every).0
}

fn gets(store: &dyn BlockStore, blocks: &[(ChkBlock, ChkKey)]) -> Duration {
    let mut order: Vec<usize> = (0..blocks.len()).collect();
    order.shuffle(&mut rand::thread_rng());
    let start = Instant::now();
    for i in order {
        let found = store.get(&blocks[i].1.routing).unwrap();
        assert!(found.is_some());
        std::hint::black_box(found);
    }
    start.elapsed()
}

fn main() {
    let n = std::env::var("WARREN_BENCH_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_BLOCKS);
    let bytes = n * BLOCK_LEN;
    let blocks: Vec<_> = (0..n)
        .map(|i| ChkBlock::encode(format!("bench block {i}").as_bytes()).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    println!(
        "{n} blocks of {BLOCK_LEN} bytes ({:.1} MB)",
        bytes as f64 / 1e6
    );

    let raw_w = raw_write(&dir.path().join("raw"), &blocks);
    let raw_r = raw_read(&dir.path().join("raw"), n);
    println!(
        "raw file:   write+fsync {:8.0} MB/s   read {:8.0} MB/s   (baseline)",
        mbps(bytes, raw_w),
        mbps(bytes, raw_r)
    );

    let store = SledStore::open(&dir.path().join("sled"), config()).unwrap();
    let (put_t, flush_t) = puts_timed(&store, &blocks, usize::MAX);
    let get_t = gets(&store, &blocks);
    println!(
        "SledStore:  put+flush   {:8.0} MB/s ({:6.0}/s, {:.2}x raw time, flush {:.0} ms)   get {:8.0} MB/s ({:6.0}/s, {:.2}x raw time)",
        mbps(bytes, put_t),
        n as f64 / put_t.as_secs_f64(),
        put_t.as_secs_f64() / raw_w.as_secs_f64(),
        flush_t.as_secs_f64() * 1e3,
        mbps(bytes, get_t),
        n as f64 / get_t.as_secs_f64(),
        get_t.as_secs_f64() / raw_r.as_secs_f64(),
    );
    drop(store);

    // The flush policy's cost: the same puts acknowledged in batches, and one by one.
    let batch_store = SledStore::open(&dir.path().join("batch"), config()).unwrap();
    let batch_t = puts(&batch_store, &blocks, FLUSH_BATCH);
    drop(batch_store);
    let sync_blocks = &blocks[..n / SYNC_FRACTION];
    let sync_store = SledStore::open(&dir.path().join("sync"), config()).unwrap();
    let sync_t = puts(&sync_store, sync_blocks, 1);
    drop(sync_store);
    let per_put = |t: Duration, k: usize| t.as_secs_f64() * 1e6 / k as f64;
    println!(
        "flush cost: once {:.0} us/put   every {FLUSH_BATCH} puts {:.0} us/put ({:.2}x)   every put {:.0} us/put ({:.2}x)",
        per_put(put_t, n),
        per_put(batch_t, n),
        batch_t.as_secs_f64() / put_t.as_secs_f64(),
        per_put(sync_t, sync_blocks.len()),
        per_put(sync_t, sync_blocks.len()) / per_put(put_t, n),
    );

    let memory = MemoryStore::new(config());
    let mem_put = puts(&memory, &blocks, usize::MAX);
    let mem_get = gets(&memory, &blocks);
    println!(
        "MemoryStore: put        {:8.0} MB/s   get {:8.0} MB/s   (verification-bound reference)",
        mbps(bytes, mem_put),
        mbps(bytes, mem_get)
    );
}
