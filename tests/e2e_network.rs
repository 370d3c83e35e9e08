//! End-to-end: real `warren` node processes on loopback, real sockets, real
//! sled stores, faults injected by killing processes.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{random_file, stderr, stdout, TestNet, WARREN};

/// One testnet at a time: each is ten processes on a two-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

const MIB: usize = 1024 * 1024;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn insert_ok(net: &TestNet, index: usize, path: &Path) -> String {
    let out = net.insert(index, path);
    assert!(out.status.success(), "insert failed: {}", stderr(&out));
    stdout(&out).trim().to_owned()
}

/// Fetches `key` at node `index` into `out`; the fetch must succeed with
/// exactly `expected` (`what` says which fetch failed).
fn fetch_exactly(net: &TestNet, index: usize, key: &str, out: &Path, expected: &[u8], what: &str) {
    let run = net.fetch(index, key, out);
    assert!(run.status.success(), "{what} failed: {}", stderr(&run));
    assert!(
        std::fs::read(out).expect("read the fetched file") == expected,
        "{what}: content differs"
    );
}

#[test]
fn insert_and_fetch_three_hops_away() {
    let _serial = serial();
    let net = TestNet::start(10);
    let (fetcher, hops) = net.farthest_from(0);
    assert!(
        hops >= 3,
        "farthest node is only {hops} hops from the inserter"
    );

    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("document.bin");
    random_file(&big, 3 * MIB + 12_345, 1);
    let small = work.path().join("note.txt");
    std::fs::write(&small, b"a small note, one block").unwrap();

    for source in [&big, &small] {
        let key = insert_ok(&net, 0, source);
        assert!(key.starts_with("CHK@"), "{key}");
        fetch_exactly(
            &net,
            fetcher,
            &key,
            &work.path().join("fetched"),
            &std::fs::read(source).unwrap(),
            &format!("fetch at node {fetcher} ({hops} hops)"),
        );
    }
}

#[test]
fn fetch_survives_a_relay_killed_mid_fetch() {
    let _serial = serial();
    let net = TestNet::start(10);
    let (fetcher, _) = net.farthest_from(0);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("document.bin");
    random_file(&source, 12 * MIB, 2);
    let key = insert_ok(&net, 0, &source);

    // Kill a neighbour of the fetcher that is not the inserter: requests in
    // flight through it must be routed elsewhere, and the blocks it stored
    // must be recovered from the rest of each segment.
    let victim = *net.nodes[fetcher]
        .neighbours
        .iter()
        .find(|&&n| n != 0)
        .expect("a relay neighbour");
    let fetched = work.path().join("fetched.bin");
    let mut child = Command::new(WARREN)
        .args([
            "fetch",
            &key,
            "-o",
            fetched.to_str().unwrap(),
            "--api",
            &net.nodes[fetcher].api,
            "--data-dir",
            net.nodes[fetcher].data_dir.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    net.kill(victim);
    let out = wait_with_deadline(&mut child, Duration::from_secs(240));
    assert!(
        out.status.success(),
        "fetch did not survive losing node {victim}: {}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(&fetched).unwrap(),
        std::fs::read(&source).unwrap()
    );
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> std::process::Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("poll child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("child did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stderr = Vec::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read as _;
        let _ = pipe.read_to_end(&mut stderr);
    }
    std::process::Output {
        status: child.wait().expect("wait for child"),
        stdout: Vec::new(),
        stderr,
    }
}

/// Blocks in a node's store and cache, from its status.
fn stored_blocks(status: &serde_json::Value) -> u64 {
    let area = |name: &str| status["store"][name]["blocks"].as_u64().unwrap_or(0);
    area("store") + area("cache")
}

#[test]
fn node_killed_during_an_insert_restarts_with_its_store_intact() {
    let _serial = serial();
    let net = TestNet::start(8);
    let inserter = 0;
    let work = tempfile::tempdir().unwrap();
    let first = work.path().join("first.bin");
    random_file(&first, 2 * MIB, 3);
    let first_key = insert_ok(&net, inserter, &first);
    // The store is flushed in the background every second; wait past that so
    // what the nodes hold now is durable.
    std::thread::sleep(Duration::from_millis(2500));
    // The victim: the node holding the most blocks (an inserter keeps none of
    // its own), so the check below has something to lose.
    let (victim, before) = (0..net.nodes.len())
        .filter(|&i| i != inserter)
        .map(|i| (i, stored_blocks(&net.status(i).expect("status"))))
        .max_by_key(|&(_, blocks)| blocks)
        .unwrap();
    assert!(before > 0, "no node stored any block of the first insert");

    let second = work.path().join("second.bin");
    random_file(&second, 48 * MIB, 4);
    let mut insert = Command::new(WARREN)
        .args([
            "insert",
            second.to_str().unwrap(),
            "--api",
            &net.nodes[inserter].api,
            "--data-dir",
            net.nodes[inserter].data_dir.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill it while it is taking blocks of the second insert into its store.
    let deadline = Instant::now() + Duration::from_secs(30);
    while net
        .status(victim)
        .is_some_and(|s| stored_blocks(&s) <= before)
    {
        assert!(
            Instant::now() < deadline,
            "node {victim} stored nothing of the second insert"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    net.kill(victim);
    // The client must end (with an error, or success if it routed around the
    // dead node), not hang.
    let _ = wait_with_deadline(&mut insert, Duration::from_secs(60));

    // Restart it on the same data directory (config, identity, store).
    let log = std::fs::File::create(work.path().join("restarted.log")).unwrap();
    let restarted = Command::new(WARREN)
        .args([
            "node",
            "--data-dir",
            net.nodes[victim].data_dir.to_str().unwrap(),
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(restarted);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = net.status(victim) {
            if status["peers"].as_array().is_some_and(|p| !p.is_empty()) {
                break status;
            }
        }
        assert!(
            Instant::now() < deadline,
            "restarted node never came back with peers"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let after = stored_blocks(&status);
    assert!(
        after >= before,
        "store lost blocks across SIGKILL: {before} before, {after} after"
    );
    fetch_exactly(
        &net,
        victim,
        &first_key,
        &work.path().join("first.fetched"),
        &std::fs::read(&first).unwrap(),
        "fetch after restart",
    );
    // Reading its own blocks back found none damaged by the kill.
    let status = net.status(victim).expect("status");
    for area in ["store", "cache"] {
        assert_eq!(
            status["store"][area]["corrupt_dropped"].as_u64(),
            Some(0),
            "{status}"
        );
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sites_data_not_found_and_a_full_disk_fail_or_succeed_cleanly() {
    let _serial = serial();
    let net = TestNet::start(6);
    let work = tempfile::tempdir().unwrap();

    // A directory becomes a browsable site: index.html and relative paths.
    let site = work.path().join("site");
    std::fs::create_dir_all(site.join("css")).unwrap();
    std::fs::write(
        site.join("index.html"),
        b"<a href=\"css/style.css\">style</a>",
    )
    .unwrap();
    std::fs::write(site.join("css/style.css"), b"body { color: green }").unwrap();
    let site_key = insert_ok(&net, 0, &site);
    assert!(site_key.ends_with('/'), "{site_key}");
    let page = work.path().join("page.html");
    let style = format!("{site_key}css/style.css");
    fetch_exactly(
        &net,
        3,
        &style,
        &page,
        b"body { color: green }",
        "css/style.css",
    );
    let index = b"<a href=\"css/style.css\">style</a>";
    fetch_exactly(&net, 3, &site_key, &page, index, "the site's index");

    // A well-formed key nobody inserted: one clear line, no output file.
    let (_, key) = warren_crypto::ChkBlock::encode(b"never inserted anywhere").unwrap();
    let missing = warren_crypto::ChkUri::new(key, warren_crypto::Extra::DATA).to_string();
    let target = work.path().join("missing.bin");
    let out = net.fetch(2, &missing, &target);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("not found"), "{err}");
    assert!(!target.exists());

    // A full disk: the fetch fails with one line and leaves no partial file.
    let source = work.path().join("doc.bin");
    random_file(&source, 3 * MIB, 5);
    let key = insert_ok(&net, 0, &source);
    let Some(small) = TinyDisk::mount(work.path(), 1) else {
        return;
    };
    let target = small.path.join("doc.bin");
    let out = net.fetch(4, &key, &target);
    assert!(
        !out.status.success(),
        "a 3 MiB fetch into a 1 MiB disk cannot succeed"
    );
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot write") && err.contains("No space left"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&small.path).unwrap().count(),
        0,
        "partial output left behind"
    );
}

/// A tmpfs of a few MiB, unmounted on drop. Mounting needs root: CI runs as
/// root and must run this part; elsewhere it is skipped with a message.
struct TinyDisk {
    path: std::path::PathBuf,
}

impl TinyDisk {
    fn mount(parent: &std::path::Path, mib: usize) -> Option<TinyDisk> {
        let path = parent.join("tiny-disk");
        std::fs::create_dir_all(&path).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(TinyDisk { path });
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the full-disk test: mounting a tmpfs failed"
        );
        eprintln!("skipping the full-disk check: mounting a tmpfs needs root");
        None
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
