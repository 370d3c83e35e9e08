//! Shared harness for the end-to-end tests: real `warren` processes on
//! loopback, started through `warren testnet --detach` and always stopped by
//! process id, even when a test fails.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const WARREN: &str = env!("CARGO_BIN_EXE_warren");

/// Runs `warren` with `args` and returns its output.
pub fn warren(args: &[&str]) -> Output {
    Command::new(WARREN)
        .args(args)
        .output()
        .expect("cannot run the warren binary")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One node of a running testnet.
#[derive(Debug, Clone)]
pub struct TestNode {
    pub index: usize,
    pub pid: u32,
    pub api: String,
    /// The node's browser gateway (a separate origin from `api`).
    pub gateway: String,
    pub data_dir: PathBuf,
    pub neighbours: Vec<usize>,
}

/// A testnet of real node processes; dropping it kills them all.
pub struct TestNet {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<TestNode>,
    /// Set once `warren testnet stop` succeeded: the pids may belong to
    /// other processes by now and must not be signalled again.
    stopped: bool,
}

impl TestNet {
    pub fn start(nodes: usize) -> TestNet {
        let dir = tempfile::Builder::new()
            .prefix("warren-e2e-")
            .tempdir()
            .expect("tempdir");
        let net_dir = dir.path().join("net");
        let out = warren(&[
            "testnet",
            "--nodes",
            &nodes.to_string(),
            "--dir",
            net_dir.to_str().expect("utf-8 path"),
            "--detach",
        ]);
        assert!(
            out.status.success(),
            "testnet failed to start: {}",
            stderr(&out)
        );
        let state: serde_json::Value = serde_json::from_slice(
            &std::fs::read(net_dir.join("testnet.json")).expect("state file"),
        )
        .expect("state json");
        let nodes = state["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| TestNode {
                index: n["index"].as_u64().expect("index") as usize,
                pid: n["pid"].as_u64().expect("pid") as u32,
                api: n["api"].as_str().expect("api").to_owned(),
                gateway: n["gateway"].as_str().expect("gateway").to_owned(),
                data_dir: PathBuf::from(n["data_dir"].as_str().expect("data_dir")),
                neighbours: n["neighbours"]
                    .as_array()
                    .expect("neighbours")
                    .iter()
                    .map(|v| v.as_u64().expect("neighbour") as usize)
                    .collect(),
            })
            .collect();
        let net = TestNet {
            dir,
            nodes,
            stopped: false,
        };
        net.wait_connected(Duration::from_secs(30));
        net
    }

    pub fn net_dir(&self) -> PathBuf {
        self.dir.path().join("net")
    }

    /// Waits until every node has a link to each of its planned neighbours
    /// (`warren testnet` waits for that too, but only warns when it times out).
    pub fn wait_connected(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for node in &self.nodes {
            loop {
                let peers = self
                    .status(node.index)
                    .map(|s| s["peers"].as_array().map_or(0, Vec::len));
                if peers.unwrap_or(0) >= node.neighbours.len() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} never linked to all of {:?}",
                    node.index,
                    node.neighbours
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    pub fn status(&self, index: usize) -> Option<serde_json::Value> {
        let text = ureq::get(format!("http://{}/api/status", self.nodes[index].api))
            .header("authorization", self.nodes[index].authorization())
            .call()
            .ok()?
            .body_mut()
            .read_to_string()
            .ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Hops between two nodes in the testnet graph (breadth-first).
    pub fn hops(&self, from: usize, to: usize) -> usize {
        let mut dist = vec![usize::MAX; self.nodes.len()];
        dist[from] = 0;
        let mut queue = std::collections::VecDeque::from([from]);
        while let Some(n) = queue.pop_front() {
            for &m in &self.nodes[n].neighbours {
                if dist[m] == usize::MAX {
                    dist[m] = dist[n] + 1;
                    queue.push_back(m);
                }
            }
        }
        dist[to]
    }

    /// The node farthest (in hops) from `from`, and the distance.
    pub fn farthest_from(&self, from: usize) -> (usize, usize) {
        (0..self.nodes.len())
            .map(|i| (i, self.hops(from, i)))
            .max_by_key(|&(_, h)| h)
            .expect("nodes")
    }

    pub fn insert(&self, index: usize, path: &Path) -> Output {
        warren(&[
            "insert",
            path.to_str().expect("utf-8"),
            "--api",
            &self.nodes[index].api,
            "--data-dir",
            self.nodes[index].data_dir.to_str().expect("utf-8"),
        ])
    }

    pub fn fetch(&self, index: usize, key: &str, out: &Path) -> Output {
        warren(&[
            "fetch",
            key,
            "-o",
            out.to_str().expect("utf-8"),
            "--api",
            &self.nodes[index].api,
            "--data-dir",
            self.nodes[index].data_dir.to_str().expect("utf-8"),
        ])
    }

    /// Kills one node with SIGKILL, by pid.
    pub fn kill(&self, index: usize) {
        kill_pid(self.nodes[index].pid, libc::SIGKILL);
    }
}

impl TestNode {
    /// `Bearer <token>` for this node's API (the token it wrote at start).
    pub fn authorization(&self) -> String {
        let token = std::fs::read_to_string(self.data_dir.join("api.token")).unwrap_or_default();
        format!("Bearer {}", token.trim())
    }
}

impl TestNet {
    /// Runs `warren testnet stop` and returns its output.
    pub fn stop(&mut self) -> Output {
        let out = warren(&[
            "testnet",
            "stop",
            "--dir",
            self.net_dir().to_str().unwrap_or_default(),
        ]);
        self.stopped |= out.status.success();
        out
    }
}

/// True while `pid` runs (a zombie, which has no command line, does not).
pub fn is_running(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        if !self.stop().status.success() {
            // Whatever `stop` could not do, do by pid.
            for node in &self.nodes {
                kill_pid(node.pid, libc::SIGKILL);
            }
        }
    }
}

#[allow(unsafe_code)]
pub fn kill_pid(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Writes `len` pseudo-random bytes (distinct per `seed`) to `path`.
pub fn random_file(path: &Path, len: usize, seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        // xorshift64*: enough to make content that does not deduplicate.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        data.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, data).expect("write test file");
}
