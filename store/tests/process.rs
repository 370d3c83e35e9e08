//! Tests that need real processes, run by re-executing this binary with
//! `WARREN_STORE_CHILD` set (as sled's `test_crash_recovery` does):
//!
//! - crash recovery: a child writer is killed with SIGKILL at random moments;
//!   every block it acknowledged (printed after `flush()` returned) must be
//!   present and valid on reopen, and nothing invalid is ever served.
//!   A few trials by default, `WARREN_SLOW_TESTS=1` runs at least 50. The
//!   seed of the kill delays is printed at the start and again on failure;
//!   `WARREN_CRASH_SEED=<seed>` runs with that seed instead of a random one
//!   (same kill delays and writer choices; where in the writer's work each
//!   kill lands still depends on the machine's speed). Every
//!   other store directory has a small cache, so evictions free cells and
//!   puts reuse them while the writer is being killed.
//! - a second process opening a store in use gets `StoreError::Locked`.
//! - an opened store with data stays well under 50 MB resident, idle and
//!   after every block has been read once.

// A test binary without the libtest harness: clippy cannot see it is a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use warren_crypto::{ChkBlock, ChkKey, BLOCK_LEN};
use warren_store::{Area, BlockStore, SledStore, StoreConfig, StoreError};

const CHILD_ENV: &str = "WARREN_STORE_CHILD";
const DIR_ENV: &str = "WARREN_STORE_DIR";
const TRIAL_ENV: &str = "WARREN_STORE_TRIAL";
const EVICT_ENV: &str = "WARREN_STORE_EVICT";
const SLOW_ENV: &str = "WARREN_SLOW_TESTS";
/// The crash test's seed, to replay a failing run.
const SEED_ENV: &str = "WARREN_CRASH_SEED";

const DEFAULT_TRIALS: u32 = 6;
const SLOW_TRIALS: u32 = 60;
/// Trials sharing one store directory, so recovery also runs on stores that
/// already survived crashes.
const TRIALS_PER_DIR: u32 = 3;
/// Cache size (in blocks) of the evicting directories: small enough that most
/// cache puts evict and reuse cells, large enough to hold a flush batch.
const EVICTING_CACHE_BLOCKS: u64 = 24;
/// Random kill delay range after spawn (covers open, puts, flushes).
const KILL_AFTER_MS: std::ops::Range<u64> = 30..400;
/// A child that is never killed stops after this many puts.
const MAX_PUTS_PER_TRIAL: u32 = 3000;
/// Puts between two flushes, drawn per batch in this range.
const FLUSH_BATCH: std::ops::RangeInclusive<u32> = 1..=8;

/// Blocks written before the idle-RSS measurement (96 MiB of blocks).
const RSS_BLOCKS: u32 = 3072;
const RSS_LIMIT_BYTES: u64 = 50 * 1000 * 1000;
const IDLE_SETTLE: Duration = Duration::from_millis(300);
/// Longest wait for the holder child to open its store and say so.
const HOLDER_PATIENCE: Duration = Duration::from_secs(60);

fn main() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("writer") => child_writer(),
        Ok("holder") => child_holder(),
        Ok("idle") => child_idle(),
        Ok("churn") => child_churn(),
        _ => {
            crash_recovery();
            second_process_is_locked_out();
            idle_store_stays_small();
            churned_store_stays_small();
        }
    }
}

/// The block a writer puts as number `i` of trial `trial`.
fn block(trial: u32, i: u32) -> (ChkBlock, ChkKey) {
    let content = format!("crash trial {trial} block {i} ").repeat(1 + (i % 97) as usize);
    ChkBlock::encode(content.as_bytes()).unwrap()
}

fn test_config() -> StoreConfig {
    StoreConfig {
        flush_every_ms: None,
        ..StoreConfig::default()
    }
}

/// The configuration of a crash-test directory: every other one evicts.
fn crash_config(evicting: bool) -> StoreConfig {
    if evicting {
        StoreConfig {
            cache_bytes: EVICTING_CACHE_BLOCKS * BLOCK_LEN as u64,
            ..test_config()
        }
    } else {
        test_config()
    }
}

fn env_path() -> PathBuf {
    PathBuf::from(std::env::var(DIR_ENV).expect("child needs a directory"))
}

fn spawn(mode: &str, dir: &Path, trial: u32, evicting: bool) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, mode)
        .env(DIR_ENV, dir)
        .env(TRIAL_ENV, trial.to_string())
        .env(EVICT_ENV, if evicting { "1" } else { "0" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

// ---- crash recovery ----

/// Writes blocks in flushed batches; prints `ack <i> <s|c>` (area) for each
/// block once the flush that covers it has returned. Mixes in reads (LRU
/// touches) and moves.
fn child_writer() {
    let trial: u32 = std::env::var(TRIAL_ENV).unwrap().parse().unwrap();
    let evicting = std::env::var(EVICT_ENV).is_ok_and(|v| v == "1");
    let store = SledStore::open(&env_path(), crash_config(evicting)).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(trial));
    let mut out = std::io::stdout().lock();
    let mut pending = Vec::new();
    let mut batch = rng.gen_range(FLUSH_BATCH);
    for i in 0..MAX_PUTS_PER_TRIAL {
        let (b, _) = block(trial, i);
        let area = if rng.gen_bool(0.5) {
            Area::Store
        } else {
            Area::Cache
        };
        store.put(area, &b).unwrap();
        if i > 0 && rng.gen_bool(0.3) {
            let (old, key) = block(trial, rng.gen_range(0..i));
            store.get(&key.routing).unwrap();
            store.put(Area::Store, &old).unwrap();
        }
        pending.push((i, area));
        if pending.len() as u32 >= batch {
            store.flush().unwrap();
            for (i, area) in pending.drain(..) {
                let tag = if area == Area::Store { 's' } else { 'c' };
                writeln!(out, "ack {i} {tag}").unwrap();
            }
            out.flush().unwrap();
            batch = rng.gen_range(FLUSH_BATCH);
        }
    }
}

/// Acknowledged blocks: number and whether it went to the store area.
fn read_acks(stdout: ChildStdout) -> Vec<(u32, bool)> {
    BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| {
            let (i, tag) = line.strip_prefix("ack ")?.split_once(' ')?;
            Some((i.parse().ok()?, tag == "s"))
        })
        .collect()
}

/// Reopens after a crash and checks every acknowledged block that cannot
/// have been evicted (all of them, or in an evicting directory those put to
/// the store area), plus that whatever else is there is served only if valid
/// and that nothing was found corrupt.
fn check_after_crash(
    dir: &Path,
    acked: &[(u32, u32, bool)],
    trials: std::ops::Range<u32>,
    evicting: bool,
) -> usize {
    let store = SledStore::open(dir, crash_config(evicting))
        .unwrap_or_else(|e| panic!("reopen after SIGKILL failed: {e}"));
    let mut checked = 0;
    for &(trial, i, _) in acked.iter().filter(|a| a.2 || !evicting) {
        checked += 1;
        let (expected, key) = block(trial, i);
        let found = store
            .get(&key.routing)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged block {trial}/{i} lost"));
        assert_eq!(found, expected);
        found.decode(&key.crypto).unwrap();
    }
    // Unacknowledged blocks may or may not be there; if there, they are valid.
    let mut present = 0u64;
    for trial in trials {
        for i in 0..MAX_PUTS_PER_TRIAL {
            let (expected, key) = block(trial, i);
            if !store.contains(&key.routing).unwrap() {
                continue;
            }
            present += 1;
            if let Some(found) = store.get(&key.routing).unwrap() {
                assert_eq!(found, expected);
            }
        }
    }
    let stats = store.stats();
    assert_eq!(
        stats.store.blocks + stats.cache.blocks,
        present,
        "counts match contents"
    );
    assert_eq!(stats.store.corrupt_dropped + stats.cache.corrupt_dropped, 0);
    checked
}

/// Prints the seed again if the test panics, beside the failure.
struct SeedOnFailure(u64);

impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "crash_recovery failed with seed {seed}; replay with {SEED_ENV}={seed}",
                seed = self.0
            );
        }
    }
}

fn crash_recovery() {
    let slow = std::env::var(SLOW_ENV).is_ok_and(|v| v == "1");
    let trials = if slow { SLOW_TRIALS } else { DEFAULT_TRIALS };
    let seed: u64 = match std::env::var(SEED_ENV) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{SEED_ENV}={text:?} is not a u64 seed: {e}")),
        Err(_) => rand::random(),
    };
    println!("crash_recovery: {trials} trials, seed {seed} (replay: {SEED_ENV}={seed})");
    let _report = SeedOnFailure(seed);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<(u32, u32, bool)> = Vec::new();
    let mut first_in_dir = 0;
    let mut total_acked = 0;
    let mut checked = 0;
    for trial in 0..trials {
        if trial > 0 && trial % TRIALS_PER_DIR == 0 {
            dir = tempfile::tempdir().unwrap();
            acked.clear();
            first_in_dir = trial;
        }
        let evicting = (trial / TRIALS_PER_DIR) % 2 == 1;
        let mut child = spawn("writer", dir.path(), trial, evicting);
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || read_acks(stdout));
        std::thread::sleep(Duration::from_millis(rng.gen_range(KILL_AFTER_MS)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        total_acked += acks.len();
        acked.extend(acks.into_iter().map(|(i, stored)| (trial, i, stored)));
        checked += check_after_crash(dir.path(), &acked, first_in_dir..trial + 1, evicting);
    }
    assert!(
        total_acked > 0,
        "no trial acknowledged anything: kill delays too short"
    );
    println!(
        "test crash_recovery ... ok ({trials} kills, {total_acked} blocks acknowledged, \
         {checked} checks of acknowledged blocks that cannot have been evicted)"
    );
}

// ---- second process ----

/// Opens the store, stores one block, says "ready", holds it until stdin closes.
fn child_holder() {
    let store = SledStore::open(&env_path(), test_config()).unwrap();
    store.put(Area::Store, &block(0, 0).0).unwrap();
    store.flush().unwrap();
    println!("ready");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

fn second_process_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn("holder", dir.path(), 0, false);
    let stdout = child.stdout.take().unwrap();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let first = BufReader::new(stdout).lines().next();
        let _ = ready_tx.send(first.and_then(Result::ok));
    });
    let first = ready
        .recv_timeout(HOLDER_PATIENCE)
        .expect("the holder did not open the store in time");
    assert_eq!(first.as_deref(), Some("ready"));

    let err = SledStore::open(dir.path(), test_config()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );

    drop(child.stdin.take()); // lets the holder exit
    assert!(child.wait().unwrap().success());
    let store = SledStore::open(dir.path(), test_config()).unwrap();
    assert!(store.get(&block(0, 0).1.routing).unwrap().is_some());
    println!("test second_process_is_locked_out ... ok");
}

// ---- idle memory ----

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Opens a store holding data with default settings, idles, prints its
/// resident set size; then reads every block once and prints it again.
fn child_idle() {
    let store = SledStore::open(&env_path(), StoreConfig::default()).unwrap();
    std::thread::sleep(IDLE_SETTLE);
    println!("idle {}", resident_bytes());
    for i in 0..RSS_BLOCKS {
        assert!(store.get(&block(0, i).1.routing).unwrap().is_some());
    }
    std::thread::sleep(IDLE_SETTLE);
    println!("after-reads {}", resident_bytes());
}

fn idle_store_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path(), StoreConfig::default()).unwrap();
        for i in 0..RSS_BLOCKS {
            store.put(Area::Cache, &block(0, i).0).unwrap();
        }
        store.flush().unwrap();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, "idle")
        .env(DIR_ENV, dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let figure = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..].trim().parse().unwrap()
    };
    let (idle, after_reads) = (figure("idle "), figure("after-reads "));
    assert!(
        idle < RSS_LIMIT_BYTES,
        "idle store uses {idle} bytes resident"
    );
    assert!(
        after_reads < RSS_LIMIT_BYTES,
        "store uses {after_reads} bytes resident after reading every block once"
    );
    println!(
        "test idle_store_stays_small ... ok ({:.1} MB resident idle with {} MiB of blocks; \
         {:.1} MB after reading every block once)",
        idle as f64 / 1e6,
        RSS_BLOCKS / 32,
        after_reads as f64 / 1e6,
    );
}

/// Puts in the churn measurement: each evicts one, as on a relay whose store
/// has been full for a while (about 40x its capacity passes through).
const CHURN_PUTS: u32 = 10_240;
/// Blocks the churned store holds (8 MiB, as the soak's relays).
const CHURN_CAPACITY_BLOCKS: u64 = 256;
/// Resident bound after churning: what an idle relay may use in all.
const CHURN_LIMIT_BYTES: u64 = 30 * 1024 * 1024;

/// Churns a small store (every put past the first 256 evicts one), printing
/// the resident set size as it goes.
fn child_churn() {
    let config = StoreConfig {
        store_bytes: CHURN_CAPACITY_BLOCKS * warren_crypto::BLOCK_LEN as u64,
        cache_bytes: CHURN_CAPACITY_BLOCKS * warren_crypto::BLOCK_LEN as u64,
        ..StoreConfig::default()
    };
    let store = SledStore::open(&env_path(), config).unwrap();
    println!("start {}", resident_bytes());
    for i in 0..CHURN_PUTS {
        let area = if i % 2 == 0 { Area::Store } else { Area::Cache };
        store.put(area, &block(1, i).0).unwrap();
        // Some reads, as fetches do (each is an LRU touch: an lru delete and insert).
        if i % 4 == 0 && i > 8 {
            let _ = store.get(&block(1, i - 8).1.routing).unwrap();
        }
        if i % 2048 == 0 {
            store.flush().unwrap();
            println!("after-{i} {}", resident_bytes());
        }
    }
    store.flush().unwrap();
    std::thread::sleep(IDLE_SETTLE);
    println!("end {}", resident_bytes());
}

fn churned_store_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, "churn")
        .env(DIR_ENV, dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let end: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("end "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    println!("{text}");
    assert!(
        end < CHURN_LIMIT_BYTES,
        "a churned store uses {end} bytes resident:\n{text}"
    );
    println!(
        "test churned_store_stays_small ... ok ({:.1} MB resident after {CHURN_PUTS} puts into {CHURN_CAPACITY_BLOCKS}-block areas)",
        end as f64 / 1e6
    );
}
