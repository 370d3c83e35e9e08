//! Opennet on real processes: nodes that know only one seed join by
//! announcement, and a document inserted at one is fetched at another.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{kill_pid, random_file, stderr, stdout, warren, WARREN};

/// Newcomers besides the seed (20 processes in all).
const NEWCOMERS: usize = 19;
/// Opennet target of every node: threshold min(10, 4 / 2) = 2.
const TARGET: &str = "4";
const THRESHOLD: usize = 2;
/// Joining must finish within this (announce interval 30 s, seed check 10 s).
const JOIN_DEADLINE: Duration = Duration::from_secs(120);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Proc {
    child: Child,
    api: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        kill_pid(self.child.id(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path, seed: Option<&str>) -> Proc {
    start_with(dir, seed, &[])
}

fn start_with(dir: &std::path::Path, seed: Option<&str>, extra: &[&str]) -> Proc {
    let api = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "node".to_owned(),
        "--data-dir".into(),
        dir.to_str().expect("utf-8").into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--api".into(),
        api.clone(),
        "--target-peers".into(),
        TARGET.into(),
    ];
    if let Some(seed) = seed {
        args.extend(["--seed".to_owned(), seed.to_owned()]);
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let log = std::fs::File::create(dir.with_extension("log")).expect("log");
    let child = Command::new(WARREN)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start node");
    Proc { child, api }
}

fn status(api: &str) -> Option<serde_json::Value> {
    let text = ureq::get(format!("http://{api}/api/status"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    serde_json::from_str(&text).ok()
}

fn wait_status(api: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = status(api) {
            return s;
        }
        assert!(Instant::now() < deadline, "node never answered on {api}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_peers(api: &str, at_least: usize, what: &str) {
    let deadline = Instant::now() + JOIN_DEADLINE;
    while peers(api) < at_least {
        assert!(
            Instant::now() < deadline,
            "{what}: fewer than {at_least} peers"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn peers(api: &str) -> usize {
    status(api)
        .and_then(|s| s["peers"].as_array().map(Vec::len))
        .unwrap_or(0)
}

#[test]
fn nodes_knowing_one_seed_join_and_a_document_crosses_the_network() {
    let work = tempfile::tempdir().unwrap();
    let seed = start(&work.path().join("seed"), None);
    let seed_ref = wait_status(&seed.api)["noderef"]
        .as_str()
        .expect("noderef")
        .to_owned();
    let nodes: Vec<Proc> = (0..NEWCOMERS)
        .map(|i| start(&work.path().join(format!("n{i}")), Some(&seed_ref)))
        .collect();
    let started = Instant::now();
    loop {
        let counts: Vec<usize> = nodes.iter().map(|n| peers(&n.api)).collect();
        if counts.iter().all(|&c| c >= THRESHOLD) {
            eprintln!(
                "threshold reached after {:?}: {counts:?}",
                started.elapsed()
            );
            break;
        }
        assert!(
            started.elapsed() < JOIN_DEADLINE,
            "not every node reached {THRESHOLD} peers: {counts:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let file = work.path().join("doc.bin");
    random_file(&file, 100_000, 5);
    let out = warren(&["insert", file.to_str().unwrap(), "--api", &nodes[0].api]);
    assert!(out.status.success(), "insert: {}", stderr(&out));
    let key = stdout(&out).trim().to_owned();
    let back = work.path().join("back.bin");
    let api = &nodes[NEWCOMERS - 1].api;
    let out = warren(&["fetch", &key, "-o", back.to_str().unwrap(), "--api", api]);
    assert!(out.status.success(), "fetch: {}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(&back).unwrap());
}

#[test]
fn a_node_nobody_can_dial_still_joins_fetches_and_rejoins_after_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let seed = start(&work.path().join("seed"), None);
    let seed_ref = wait_status(&seed.api)["noderef"]
        .as_str()
        .expect("noderef")
        .to_owned();
    let others: Vec<Proc> = (0..3)
        .map(|i| start(&work.path().join(format!("n{i}")), Some(&seed_ref)))
        .collect();
    for (i, node) in others.iter().enumerate() {
        wait_peers(&node.api, THRESHOLD, &format!("node {i}"));
    }
    let file = work.path().join("doc.bin");
    random_file(&file, 50_000, 6);
    let out = warren(&["insert", file.to_str().unwrap(), "--api", &others[0].api]);
    assert!(out.status.success(), "insert: {}", stderr(&out));
    let key = stdout(&out).trim().to_owned();

    // It advertises a port nothing listens on: every link is one it dials.
    let dead = format!("127.0.0.1:{}", free_port());
    let dir = work.path().join("hidden");
    let extra = ["--advertise", dead.as_str()];
    let hidden = start_with(&dir, Some(&seed_ref), &extra);
    wait_peers(&hidden.api, THRESHOLD, "the unreachable node");
    let back = work.path().join("back.bin");
    let out = warren(&[
        "fetch",
        &key,
        "-o",
        back.to_str().unwrap(),
        "--api",
        &hidden.api,
    ]);
    assert!(out.status.success(), "fetch: {}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(&back).unwrap());

    // Stopped and started again on its data directory, it rejoins by itself.
    drop(hidden);
    let again = start_with(&dir, Some(&seed_ref), &extra);
    wait_peers(&again.api, THRESHOLD, "the restarted node");
}
