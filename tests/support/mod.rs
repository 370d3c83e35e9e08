//! Shared harness for the end-to-end tests: real `warren` node processes on
//! loopback, started through the same typed code `warren testnet` runs
//! (`warren_cli::testnet`), and always stopped by process id, even when a
//! test fails. Clients (`warren insert`, `warren fetch`) run as real
//! processes too.

#![allow(dead_code, unreachable_pub)]

pub mod fcp;

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use warren_cli::testnet::delay::LinkShape;
use warren_cli::testnet::{StartOptions, Testnet, Wiring};

pub const WARREN: &str = env!("CARGO_BIN_EXE_warren");
/// How long a test network may take to link up on a loaded 2-core machine.
pub const LINK_TIMEOUT: Duration = Duration::from_secs(60);

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

/// A testnet of real node processes in a temporary directory; dropping it
/// stops them all.
pub struct TestNet {
    net: Option<Testnet>,
    dir: tempfile::TempDir,
}

impl TestNet {
    /// Starts `nodes` processes wired as a small world and waits until every
    /// planned link is up.
    pub fn start(nodes: usize) -> TestNet {
        TestNet::start_shaped(nodes, None)
    }

    /// [`TestNet::start`] with every peer link crossing a relay of this
    /// shape (the wide-area test bed), or direct for `None`.
    pub fn start_shaped(nodes: usize, link: Option<LinkShape>) -> TestNet {
        let dir = tempfile::Builder::new()
            .prefix("warren-e2e-")
            .tempdir()
            .expect("tempdir");
        let net = Testnet::start(&StartOptions {
            nodes,
            dir: dir.path().join("net"),
            seed: 1,
            wiring: Wiring::Wired,
            exe: PathBuf::from(WARREN),
            link,
        })
        .unwrap_or_else(|err| panic!("testnet failed to start: {err:#}"));
        let mut net = TestNet {
            net: Some(net),
            dir,
        };
        net.wait_linked();
        net
    }

    /// Waits until every node has a link to each planned neighbour.
    pub fn wait_linked(&mut self) {
        let net = self.net.as_mut().expect("testnet running");
        if let Err(err) = net.wait_linked(LINK_TIMEOUT) {
            panic!("{err}");
        }
    }

    fn net(&self) -> &Testnet {
        self.net.as_ref().expect("testnet running")
    }

    pub fn net_dir(&self) -> PathBuf {
        self.dir.path().join("net")
    }

    /// A scratch directory that goes away with the testnet.
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `/api/status` of node `index`, or `None` if it does not answer.
    pub fn status(&self, index: usize) -> Option<serde_json::Value> {
        self.api(index).status().ok()
    }

    /// The `--api` argument for node `index`.
    pub fn api_arg(&self, index: usize) -> String {
        self.nodes[index].api.to_string()
    }

    /// The node farthest (in hops of the planned graph) from `from`.
    pub fn farthest_from(&self, from: usize) -> (usize, usize) {
        warren_cli::testnet::topology::farthest_from(&self.adjacency(), from).expect("nodes")
    }

    /// The `--data-dir` argument for node `index` (where its API token is).
    pub fn data_dir_arg(&self, index: usize) -> String {
        self.nodes[index]
            .data_dir
            .to_str()
            .expect("utf-8")
            .to_owned()
    }

    /// `warren insert PATH` at node `index`.
    pub fn insert(&self, index: usize, path: &Path) -> Output {
        warren(&[
            "insert",
            path.to_str().expect("utf-8"),
            "--api",
            &self.api_arg(index),
            "--data-dir",
            &self.data_dir_arg(index),
        ])
    }

    /// `warren fetch KEY -o OUT` at node `index`.
    pub fn fetch(&self, index: usize, key: &str, out: &Path) -> Output {
        warren(&[
            "fetch",
            key,
            "-o",
            out.to_str().expect("utf-8"),
            "--api",
            &self.api_arg(index),
            "--data-dir",
            &self.data_dir_arg(index),
        ])
    }

    /// Node `index`'s addresses as text, for tests that speak HTTP themselves.
    pub fn node(&self, index: usize) -> TestNode {
        let node = &self.nodes[index];
        TestNode {
            index,
            pid: node.pid,
            api: node.api.to_string(),
            gateway: node.gateway.to_string(),
            data_dir: node.data_dir.clone(),
            neighbours: node.neighbours.clone(),
        }
    }

    /// Runs `warren testnet stop` on this testnet's directory, as a user would.
    pub fn stop_with_cli(&mut self) -> Output {
        warren(&[
            "testnet",
            "stop",
            "--dir",
            self.net_dir().to_str().expect("utf-8"),
        ])
    }
}

impl Deref for TestNet {
    type Target = Testnet;

    fn deref(&self) -> &Testnet {
        self.net()
    }
}

impl DerefMut for TestNet {
    fn deref_mut(&mut self) -> &mut Testnet {
        self.net.as_mut().expect("testnet running")
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if let Some(net) = self.net.take() {
            let _ = net.stop();
        }
    }
}

/// One node of a running testnet, its addresses as text.
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

impl TestNode {
    /// `Bearer <token>` for this node's API (the token it wrote at start).
    pub fn authorization(&self) -> String {
        let token = std::fs::read_to_string(self.data_dir.join("api.token")).unwrap_or_default();
        format!("Bearer {}", token.trim())
    }
}

/// True while `pid` runs (a zombie, which has no command line, does not).
pub fn is_running(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

pub fn kill_pid(pid: u32, signal: i32) {
    warren_cli::testnet::process::send_signal(pid, signal);
}

/// Writes `len` pseudo-random bytes (distinct per `seed`) to `path`.
pub fn random_file(path: &Path, len: usize, seed: u64) {
    warren_cli::testfile::write_random_file(path, len as u64, seed).expect("write test file");
}
