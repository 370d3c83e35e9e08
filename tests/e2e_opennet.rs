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

/// A loopback port nothing listens on (for an address nobody can dial).
fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Proc {
    child: Child,
    dir: std::path::PathBuf,
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

/// Starts a node on port 0 everywhere and waits for its run file.
fn start_with(dir: &std::path::Path, seed: Option<&str>, extra: &[&str]) -> Proc {
    let mut args = vec![
        "node".to_owned(),
        "--data-dir".into(),
        dir.to_str().expect("utf-8").into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--api".into(),
        "127.0.0.1:0".into(),
        "--gateway".into(),
        "127.0.0.1:0".into(),
        "--fcp".into(),
        "127.0.0.1:0".into(),
        "--target-peers".into(),
        TARGET.into(),
    ];
    if let Some(seed) = seed {
        args.extend(["--seed".to_owned(), seed.to_owned()]);
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    std::fs::create_dir_all(dir).expect("data dir");
    let log = std::fs::File::create(dir.with_extension("log")).expect("log");
    let mut child = Command::new(WARREN)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start node");
    let deadline = Instant::now() + Duration::from_secs(30);
    let run = warren_cli::testnet::process::wait_running(&mut child, dir, deadline)
        .unwrap_or_else(|err| panic!("{err:#}"));
    Proc {
        child,
        dir: dir.to_path_buf(),
        api: run.api.to_string(),
    }
}

impl Proc {
    fn status(&self) -> Option<serde_json::Value> {
        let api = self.api.parse().ok()?;
        warren_cli::api_client::ApiClient::for_data_dir(api, &self.dir)
            .status()
            .ok()
    }

    fn peers(&self) -> usize {
        self.status()
            .and_then(|s| s["peers"].as_array().map(Vec::len))
            .unwrap_or(0)
    }

    fn noderef(&self) -> String {
        self.status().expect("status")["noderef"]
            .as_str()
            .expect("noderef")
            .to_owned()
    }

    fn insert(&self, path: &std::path::Path) -> std::process::Output {
        warren(&[
            "insert",
            path.to_str().expect("utf-8"),
            "--api",
            &self.api,
            "--data-dir",
            self.dir.to_str().expect("utf-8"),
        ])
    }

    fn fetch(&self, key: &str, out: &std::path::Path) -> std::process::Output {
        warren(&[
            "fetch",
            key,
            "-o",
            out.to_str().expect("utf-8"),
            "--api",
            &self.api,
            "--data-dir",
            self.dir.to_str().expect("utf-8"),
        ])
    }
}

fn wait_peers(node: &Proc, at_least: usize, what: &str) {
    let deadline = Instant::now() + JOIN_DEADLINE;
    while node.peers() < at_least {
        assert!(
            Instant::now() < deadline,
            "{what}: fewer than {at_least} peers"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether every node is reachable from every other over links that stay
/// (seed links are closed once a node has enough peers, so they do not count).
fn connected_without_seed_links(statuses: &[serde_json::Value]) -> bool {
    let identity = |s: &serde_json::Value| {
        s["noderef"]
            .as_str()
            .and_then(|r| r.split(':').nth(2))
            .unwrap_or_default()
            .to_owned()
    };
    let ids: Vec<String> = statuses.iter().map(identity).collect();
    let mut reached = vec![false; statuses.len()];
    let mut stack = vec![0];
    reached[0] = true;
    while let Some(i) = stack.pop() {
        let peers = statuses[i]["peers"].as_array().cloned().unwrap_or_default();
        for p in peers.iter().filter(|p| p["kind"] != "seed") {
            let Some(j) = ids.iter().position(|id| p["identity"] == id.as_str()) else {
                continue;
            };
            // Only a link both ends count as a real one.
            let back = statuses[j]["peers"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|q| q["identity"] == ids[i].as_str() && q["kind"] != "seed")
            });
            if back && !reached[j] {
                reached[j] = true;
                stack.push(j);
            }
        }
    }
    reached.iter().all(|&r| r)
}

#[test]
fn nodes_knowing_one_seed_join_and_a_document_crosses_the_network() {
    let work = tempfile::tempdir().unwrap();
    let seed = start(&work.path().join("seed"), None);
    let seed_ref = seed.noderef();
    // They arrive one after another, as newcomers to a network do: each is
    // started knowing only the seed's noderef.
    let started = Instant::now();
    let nodes: Vec<Proc> = (0..NEWCOMERS)
        .map(|i| {
            let node = start(&work.path().join(format!("n{i}")), Some(&seed_ref));
            std::thread::sleep(Duration::from_millis(300));
            node
        })
        .collect();
    let all = || std::iter::once(&seed).chain(nodes.iter());
    loop {
        let statuses: Vec<serde_json::Value> = all().filter_map(Proc::status).collect();
        let counts: Vec<usize> = statuses
            .iter()
            .map(|s| {
                s["peers"]
                    .as_array()
                    .map_or(0, |ps| ps.iter().filter(|p| p["kind"] != "seed").count())
            })
            .collect();
        if statuses.len() == NEWCOMERS + 1
            && counts[1..].iter().all(|&c| c >= THRESHOLD)
            && connected_without_seed_links(&statuses)
        {
            let announcements: u64 = statuses
                .iter()
                .map(|s| s["opennet"]["announcements_started"].as_u64().unwrap_or(0))
                .sum();
            let relayed: u64 = statuses
                .iter()
                .map(|s| s["opennet"]["announcements_relayed"].as_u64().unwrap_or(0))
                .sum();
            eprintln!(
                "every node at its threshold and the network connected without seed links \
                 {:?} after the first start; peers {counts:?}; {announcements} announcements \
                 started, {relayed} hops relayed",
                started.elapsed()
            );
            break;
        }
        if started.elapsed() >= JOIN_DEADLINE {
            for s in &statuses {
                let peers: Vec<String> = s["peers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|p| {
                        format!(
                            "{}:{}",
                            &p["identity"].as_str().unwrap_or("?")[..6],
                            p["kind"]
                        )
                    })
                    .collect();
                eprintln!(
                    "{} -> {peers:?}",
                    &s["noderef"].as_str().unwrap_or("?")[18..24]
                );
            }
            panic!("not every node reached {THRESHOLD} peers in one connected network: {counts:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let file = work.path().join("doc.bin");
    random_file(&file, 100_000, 5);
    let out = nodes[0].insert(&file);
    assert!(out.status.success(), "insert: {}", stderr(&out));
    let key = stdout(&out).trim().to_owned();
    let back = work.path().join("back.bin");
    let out = nodes[NEWCOMERS - 1].fetch(&key, &back);
    assert!(out.status.success(), "fetch: {}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(&back).unwrap());
}

#[test]
fn a_node_nobody_can_dial_still_joins_fetches_and_rejoins_after_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let seed = start(&work.path().join("seed"), None);
    let seed_ref = seed.noderef();
    let others: Vec<Proc> = (0..3)
        .map(|i| start(&work.path().join(format!("n{i}")), Some(&seed_ref)))
        .collect();
    for (i, node) in others.iter().enumerate() {
        wait_peers(node, THRESHOLD, &format!("node {i}"));
    }
    let file = work.path().join("doc.bin");
    random_file(&file, 50_000, 6);
    let out = others[0].insert(&file);
    assert!(out.status.success(), "insert: {}", stderr(&out));
    let key = stdout(&out).trim().to_owned();

    // It advertises a port nothing listens on: every link is one it dials.
    let dead = format!("127.0.0.1:{}", unused_port());
    let dir = work.path().join("hidden");
    let extra = ["--advertise", dead.as_str()];
    let hidden = start_with(&dir, Some(&seed_ref), &extra);
    wait_peers(&hidden, THRESHOLD, "the unreachable node");
    let back = work.path().join("back.bin");
    let out = hidden.fetch(&key, &back);
    assert!(out.status.success(), "fetch: {}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(&back).unwrap());

    // Stopped and started again on its data directory, it rejoins by itself.
    drop(hidden);
    let again = start_with(&dir, Some(&seed_ref), &extra);
    wait_peers(&again, THRESHOLD, "the restarted node");
}
