//! Link throughput of 32 KiB blocks between two nodes on loopback, beside
//! raw ChaCha20-Poly1305 and a plain TCP copy measured in the same run.
//!
//! The baseline is the AEAD implementation the link runs on: ring's, through
//! snow's ring resolver. RustCrypto's `chacha20poly1305` (which seals CHK
//! blocks) is measured beside it for comparison.
//!
//! `cargo bench -p warren-node --bench link`; `WARREN_BENCH_BLOCKS=n` sets
//! the blocks per measurement (default 4096, i.e. 128 MiB).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark, not node code

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chacha20poly1305::aead::{AeadInPlace as _, KeyInit as _};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use warren_crypto::{Location, NodeIdentity, NodeRef, PROTOCOL_VERSION};
use warren_node::link::{connect, AnyPeer, LinkConfig, LinkEvent, Listener};

const BLOCK: usize = 32 * 1024;
const DEFAULT_BLOCKS: usize = 4096;
/// Rounds of measurements; figures are medians.
const RUNS: usize = 5;
/// Events buffered at the receiver: enough that the bench never sheds.
const EVENT_QUEUE: usize = 8192;

fn blocks() -> usize {
    std::env::var("WARREN_BENCH_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_BLOCKS)
}

fn rate(blocks: usize, took: Duration) -> f64 {
    (blocks * BLOCK) as f64 / took.as_secs_f64() / 1e6
}

/// Times sealing `blocks` blocks in place, one nonce per block.
fn time_seals(blocks: usize, mut seal: impl FnMut([u8; 12], &mut [u8])) -> Duration {
    let mut buf = vec![0x5a; BLOCK];
    let start = Instant::now();
    for i in 0..blocks as u64 {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&i.to_le_bytes());
        seal(nonce, &mut buf);
    }
    start.elapsed()
}

/// Raw ChaCha20-Poly1305 as the link runs it (ring).
fn aead(blocks: usize) -> Duration {
    let key = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &[7; 32]).unwrap();
    let cipher = ring::aead::LessSafeKey::new(key);
    time_seals(blocks, |nonce, buf| {
        let nonce = ring::aead::Nonce::assume_unique_for_key(nonce);
        let tag = cipher
            .seal_in_place_separate_tag(nonce, ring::aead::Aad::empty(), buf)
            .unwrap();
        let _ = std::hint::black_box(tag);
    })
}

/// Raw ChaCha20-Poly1305 from RustCrypto, for comparison.
fn aead_rustcrypto(blocks: usize) -> Duration {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&[7; 32]));
    time_seals(blocks, |nonce, buf| {
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &[], buf)
            .unwrap();
        std::hint::black_box(tag);
    })
}

async fn tcp(blocks: usize) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; BLOCK];
        let mut left = blocks * BLOCK;
        while left > 0 {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0);
            left -= n;
        }
    });
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let block = vec![0x5a; BLOCK];
    let start = Instant::now();
    for _ in 0..blocks {
        stream.write_all(&block).await.unwrap();
    }
    reader.await.unwrap();
    start.elapsed()
}

fn node(seed: u8, address: &str) -> (Arc<NodeIdentity>, NodeRef) {
    let id = Arc::new(NodeIdentity::from_secret_bytes([seed; 32]));
    let node = NodeRef {
        identity: id.public(),
        location: Location(u64::from(seed)),
        address: address.parse().unwrap(),
        version: PROTOCOL_VERSION,
    };
    (id, node)
}

async fn link(blocks: usize) -> Duration {
    let mut config = LinkConfig::default();
    config.max_frames_per_sec = u32::MAX;
    config.frame_burst = u32::MAX;
    let (server_id, server_ref) = node(1, "127.0.0.1:0");
    let mut listener = Listener::bind(
        server_ref.address,
        server_id,
        server_ref,
        config.clone(),
        Arc::new(AnyPeer),
    )
    .await
    .unwrap();
    let (client_id, client_ref) = node(2, "127.0.0.1:1");
    let remote = listener.noderef().clone();
    let (dialled, accepted) = tokio::join!(
        connect(client_id, client_ref, &remote, &config),
        listener.accept()
    );
    let (a_tx, _a_rx) = mpsc::channel(EVENT_QUEUE);
    let (b_tx, mut b_rx) = mpsc::channel(EVENT_QUEUE);
    let sender = dialled.unwrap().spawn(a_tx);
    let receiver = accepted.unwrap().spawn(b_tx);
    let block = Bytes::from(vec![0x5a; BLOCK]);
    let start = Instant::now();
    let send = async {
        for _ in 0..blocks {
            sender.send(block.clone()).await.unwrap();
        }
    };
    let receive = async {
        let mut got = 0;
        while got < blocks {
            match b_rx.recv().await {
                Some(LinkEvent::Received { .. }) => got += 1,
                other => panic!("link ended early: {other:?}"),
            }
        }
    };
    tokio::join!(send, receive);
    let took = start.elapsed();
    assert_eq!(receiver.stats().payloads_shed, 0);
    took
}

/// CPU time used by all threads of this process so far (Linux
/// schedstat, nanoseconds), or `None` where that is not available.
fn cpu_time() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// Wall time and process CPU time of `run`.
fn measure(run: impl FnOnce()) -> (Duration, Option<Duration>) {
    let (wall, cpu) = (Instant::now(), cpu_time());
    run();
    let spent = cpu.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
    (wall.elapsed(), spent)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let blocks = blocks();
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Each round measures everything back to back, so ratios compare figures
    // taken under the same load. Rates per CPU-second do not depend on what
    // else the (shared) machine runs; wall-clock rates do.
    let names = [
        "raw ChaCha20-Poly1305 seal (ring)",
        "raw ChaCha20-Poly1305 (RustCrypto)",
        "plain TCP copy, loopback",
        "link, 2 worker threads",
        "link, 1 thread running both ends",
    ];
    let mut wall: [Vec<f64>; 5] = Default::default();
    let mut cpu: [Vec<f64>; 5] = Default::default();
    for _ in 0..RUNS {
        let round = [
            measure(|| {
                aead(blocks);
            }),
            measure(|| {
                aead_rustcrypto(blocks);
            }),
            measure(|| {
                multi.block_on(tcp(blocks));
            }),
            measure(|| {
                multi.block_on(link(blocks));
            }),
            measure(|| {
                single.block_on(link(blocks));
            }),
        ];
        for (i, (w, c)) in round.iter().enumerate() {
            wall[i].push(rate(blocks, *w) / rate(blocks, round[0].0));
            if let (Some(c), Some(base)) = (c, round[0].1) {
                cpu[i].push(rate(blocks, *c) / rate(blocks, base));
            }
        }
        if round[0].1.is_none() {
            cpu = Default::default();
        }
        wall[0].push(rate(blocks, round[0].0));
    }
    let aead_rate = median(wall[0].split_off(RUNS));
    println!("link bench: {blocks} blocks of {BLOCK} bytes; medians of {RUNS} rounds");
    println!("  raw AEAD on one core: {aead_rate:.0} MB/s (wall clock)");
    println!("  {:<34} {:>10} {:>16}", "", "wall clock", "per CPU-second");
    for (i, name) in names.iter().enumerate() {
        let w = median(wall[i].clone());
        let c = if cpu[i].is_empty() {
            "n/a".to_string()
        } else {
            format!("{:.2}x AEAD", median(cpu[i].clone()))
        };
        println!("  {name:<34} {w:>5.2}x AEAD {c:>16}");
    }
    if !cpu[4].is_empty() {
        // Both ends share the CPU figure; one end does half the crypto and
        // half the kernel's loopback work.
        println!(
            "  link, one end (sender or receiver), per CPU-second: {:.2}x AEAD \
             (twice the both-ends figure on 1 thread)",
            2.0 * median(cpu[4].clone())
        );
    }
}
