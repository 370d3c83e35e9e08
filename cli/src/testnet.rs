//! `warren testnet`: real node processes on loopback, wired as a small world.
//!
//! Each node gets its own data directory under the testnet directory, its own
//! identity and ports, and the noderefs of its neighbours in its config file.
//! `testnet.json` records the process ids so `warren testnet stop` can stop
//! exactly those processes, by id, after checking each still is our node.

use std::collections::VecDeque;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use warren_crypto::{Location, NodeRef, PROTOCOL_VERSION};

use crate::api_client::ApiClient;
use crate::config::FileConfig;

/// File in the testnet directory listing the running nodes.
pub(crate) const STATE_FILE: &str = "testnet.json";
/// How long a node may take to answer its API after starting.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node may take to stop after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Store and cache sizes for testnet nodes, in MiB: small, it is a laptop.
const TESTNET_STORE_MIB: u64 = 512;
const TESTNET_CACHE_MIB: u64 = 256;
/// Every this many nodes, one gets a long-range link (chosen with probability
/// proportional to 1/distance). Sparse on purpose: a testnet of ten should
/// still have nodes several hops apart, so routing is exercised.
const LONG_LINK_EVERY: usize = 3;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct TestnetArgs {
    #[command(subcommand)]
    action: Option<TestnetAction>,
    #[command(flatten)]
    start: StartArgs,
}

#[derive(Debug, Subcommand)]
enum TestnetAction {
    /// Start the network (the default action).
    Start(StartArgs),
    /// Stop a network started with --detach.
    Stop {
        /// The testnet directory.
        #[arg(long, default_value_os_t = default_dir())]
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Args)]
pub(crate) struct StartArgs {
    /// Number of node processes.
    #[arg(long, default_value_t = 10)]
    pub(crate) nodes: usize,
    /// Directory for the nodes' data and the testnet state file.
    #[arg(long, default_value_os_t = default_dir())]
    pub(crate) dir: PathBuf,
    /// Seed for the topology.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Leave the nodes running and return; stop them with `warren testnet stop`.
    #[arg(long)]
    pub(crate) detach: bool,
}

fn default_dir() -> PathBuf {
    std::env::temp_dir().join("warren-testnet")
}

/// One node as recorded in `testnet.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NodeInfo {
    pub(crate) index: usize,
    pub(crate) pid: u32,
    pub(crate) data_dir: PathBuf,
    pub(crate) api: SocketAddr,
    pub(crate) noderef: String,
    pub(crate) neighbours: Vec<usize>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TestnetState {
    pub(crate) nodes: Vec<NodeInfo>,
}

pub(crate) fn run(args: TestnetArgs) -> Result<()> {
    match args.action {
        Some(TestnetAction::Stop { dir }) => stop_dir(&dir),
        Some(TestnetAction::Start(start)) => start_and_wait(&start),
        None => start_and_wait(&args.start),
    }
}

fn start_and_wait(args: &StartArgs) -> Result<()> {
    // Listen for Ctrl-C and SIGTERM before the first node starts: a signal
    // during start-up must stop the nodes, not kill this process and orphan them.
    let mut signals = StopSignals::listen()?;
    let net = Testnet::start(args)?;
    if signals.arrived() {
        println!("interrupted: stopping every node");
        return net.stop();
    }
    net.print_summary();
    if args.detach {
        net.detach();
        println!(
            "stop with: warren testnet stop --dir {}",
            args.dir.display()
        );
        return Ok(());
    }
    println!("Ctrl-C stops every node.");
    signals.wait();
    net.stop()
}

/// Ctrl-C (SIGINT) and SIGTERM, caught from the moment this is made.
struct StopSignals {
    runtime: tokio::runtime::Runtime,
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> Result<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the signal handler")?;
        // `signal` installs the handler when called (it needs the runtime).
        let (interrupt, terminate) = runtime.block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            ))
        })?;
        Ok(StopSignals {
            runtime,
            interrupt,
            terminate,
        })
    }

    /// Whether either signal has arrived already.
    fn arrived(&mut self) -> bool {
        let StopSignals {
            runtime,
            interrupt,
            terminate,
        } = self;
        // A zero timeout still polls the future once: a pending signal counts.
        let now = |signal: &mut tokio::signal::unix::Signal| {
            runtime.block_on(async {
                tokio::time::timeout(Duration::ZERO, signal.recv())
                    .await
                    .is_ok()
            })
        };
        now(interrupt) || now(terminate)
    }

    /// Blocks until either signal arrives.
    fn wait(mut self) {
        let StopSignals {
            runtime,
            interrupt,
            terminate,
        } = &mut self;
        runtime.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        });
    }
}

/// A running testnet whose processes this one started.
#[derive(Debug)]
pub(crate) struct Testnet {
    pub(crate) dir: PathBuf,
    pub(crate) nodes: Vec<NodeInfo>,
    children: Vec<Child>,
}

impl Testnet {
    /// Creates the directories, identities and configs, starts every node and
    /// waits until each answers on its API.
    pub(crate) fn start(args: &StartArgs) -> Result<Testnet> {
        if args.nodes < 2 {
            bail!("a testnet needs at least 2 nodes");
        }
        refuse_if_running(&args.dir)?;
        if args.dir.exists() {
            std::fs::remove_dir_all(&args.dir)
                .with_context(|| format!("cannot clear {}", args.dir.display()))?;
        }
        std::fs::create_dir_all(&args.dir)
            .with_context(|| format!("cannot create {}", args.dir.display()))?;
        let neighbours = small_world(args.nodes, args.seed);
        let plans = plan_nodes(&args.dir, args.nodes)?;
        let mut net = Testnet {
            dir: args.dir.clone(),
            nodes: Vec::new(),
            children: Vec::new(),
        };
        for (index, plan) in plans.iter().enumerate() {
            let peers = neighbours[index]
                .iter()
                .map(|&j| plans[j].noderef.to_string())
                .collect();
            let config = FileConfig {
                listen: Some(plan.noderef.address),
                api: Some(plan.api),
                peers,
                store_mib: Some(TESTNET_STORE_MIB),
                cache_mib: Some(TESTNET_CACHE_MIB),
                location: Some(plan.noderef.location.0),
                friends_only: Some(true),
                ..FileConfig::default()
            };
            config.save(&plan.data_dir)?;
            let child = spawn_node(&plan.data_dir)?;
            net.nodes.push(NodeInfo {
                index,
                pid: child.id(),
                data_dir: plan.data_dir.clone(),
                api: plan.api,
                noderef: plan.noderef.to_string(),
                neighbours: neighbours[index].clone(),
            });
            net.children.push(child);
        }
        net.save_state()?;
        if let Err(err) = net.wait_ready() {
            let _ = net.stop();
            return Err(err);
        }
        Ok(net)
    }

    fn save_state(&self) -> Result<()> {
        let state = TestnetState {
            nodes: self.nodes.clone(),
        };
        let path = self.dir.join(STATE_FILE);
        std::fs::write(&path, serde_json::to_vec_pretty(&state)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        for (node, child) in self.nodes.iter().zip(self.children.iter_mut()) {
            let client = ApiClient::new(node.api);
            loop {
                if client.status().is_ok() {
                    break;
                }
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "node {} exited during start-up ({status}); its log:\n{}",
                        node.index,
                        log_tail(&node.data_dir)
                    );
                }
                if Instant::now() > deadline {
                    bail!(
                        "node {} did not answer on {} within {STARTUP_TIMEOUT:?}",
                        node.index,
                        node.api
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.wait_linked(deadline);
        Ok(())
    }

    /// Waits until every node has a link to each planned neighbour: before
    /// that, an insert and a fetch right after start-up can land in parts of
    /// the graph not yet joined, and a fetch then finds nothing. Nodes that
    /// are slow to link by the deadline are named, not fatal: they keep
    /// dialling, and the network works meanwhile with what is up.
    fn wait_linked(&self, deadline: Instant) {
        let linked = |node: &NodeInfo| {
            ApiClient::new(node.api)
                .status()
                .ok()
                .and_then(|s| s["peers"].as_array().map(Vec::len))
                .is_some_and(|peers| peers >= node.neighbours.len())
        };
        loop {
            let waiting: Vec<usize> = self
                .nodes
                .iter()
                .filter(|n| !linked(n))
                .map(|n| n.index)
                .collect();
            if waiting.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                eprintln!(
                    "warning: nodes {waiting:?} have not linked to all their neighbours yet; they keep trying"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn print_summary(&self) {
        println!(
            "{} nodes running in {}",
            self.nodes.len(),
            self.dir.display()
        );
        println!("{:>4}  {:<24} {:<10} neighbours", "node", "api", "location");
        for node in &self.nodes {
            let location = node
                .noderef
                .parse::<NodeRef>()
                .map(|r| r.location.to_string())
                .unwrap_or_default();
            println!(
                "{:>4}  http://{:<17} {:<10} {:?}",
                node.index, node.api, location, node.neighbours
            );
        }
    }

    /// Hands the processes over to `warren testnet stop`.
    pub(crate) fn detach(mut self) {
        self.children.clear();
    }

    /// Stops every node: SIGTERM, then SIGKILL for any that outlive the deadline.
    pub(crate) fn stop(mut self) -> Result<()> {
        for child in &self.children {
            terminate(child.id());
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        for child in &mut self.children {
            loop {
                if child.try_wait()?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_file(self.dir.join(STATE_FILE));
        self.children.clear();
        Ok(())
    }

    /// Hops between two nodes in the testnet graph.
    pub(crate) fn hops_between(&self, from: usize, to: usize) -> Option<usize> {
        let adjacency: Vec<Vec<usize>> = self.nodes.iter().map(|n| n.neighbours.clone()).collect();
        bfs_distances(&adjacency, from)[to]
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        // A testnet dropped on an error path must not leave processes behind.
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct NodePlan {
    data_dir: PathBuf,
    api: SocketAddr,
    noderef: NodeRef,
}

/// Identity, ports and location for each node. Ports come from the kernel
/// (bind to port 0), all held at once so no two nodes get the same one.
fn plan_nodes(dir: &Path, count: usize) -> Result<Vec<NodePlan>> {
    let mut held = Vec::new();
    let mut plans = Vec::new();
    for index in 0..count {
        let data_dir = dir.join(format!("node-{index}"));
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let identity = crate::node::load_identity(&data_dir)?;
        let p2p = TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
        let api = TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
        // Evenly spaced: a testnet is small enough that random spacing only adds noise.
        let location = Location(((index as u128) << 64).div_euclid(count as u128) as u64);
        let noderef = NodeRef {
            identity: identity.public(),
            location,
            address: p2p.local_addr()?,
            version: PROTOCOL_VERSION,
        };
        plans.push(NodePlan {
            data_dir,
            api: api.local_addr()?,
            noderef,
        });
        held.push((p2p, api));
    }
    Ok(plans)
}

/// A ring (each node linked to the next) plus long links chosen with
/// probability proportional to 1/distance: Kleinberg's navigable small world.
pub(crate) fn small_world(count: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut links: Vec<Vec<usize>> = vec![Vec::new(); count];
    let connect = |links: &mut Vec<Vec<usize>>, a: usize, b: usize| {
        if a != b && !links[a].contains(&b) {
            links[a].push(b);
            links[b].push(a);
        }
    };
    for node in 0..count {
        connect(&mut links, node, (node + 1) % count);
    }
    for node in (0..count).step_by(LONG_LINK_EVERY) {
        let weights: Vec<f64> = (0..count)
            .map(|other| {
                let d = node.abs_diff(other).min(count - node.abs_diff(other));
                if d <= 1 {
                    0.0
                } else {
                    1.0 / d as f64
                }
            })
            .collect();
        let total: f64 = weights.iter().sum();
        if total == 0.0 {
            continue;
        }
        let mut pick = rng.gen::<f64>() * total;
        let target = weights
            .iter()
            .position(|w| {
                pick -= w;
                pick <= 0.0
            })
            .unwrap_or(count - 1);
        connect(&mut links, node, target);
    }
    for list in &mut links {
        list.sort_unstable();
    }
    links
}

pub(crate) fn bfs_distances(adjacency: &[Vec<usize>], from: usize) -> Vec<Option<usize>> {
    let mut dist = vec![None; adjacency.len()];
    dist[from] = Some(0);
    let mut queue = VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        let next = dist[node].map_or(0, |d| d + 1);
        for &peer in &adjacency[node] {
            if dist[peer].is_none() {
                dist[peer] = Some(next);
                queue.push_back(peer);
            }
        }
    }
    dist
}

fn spawn_node(data_dir: &Path) -> Result<Child> {
    let exe = std::env::current_exe().context("cannot find the warren executable")?;
    let log_path = data_dir.join("node.log");
    let log =
        File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    Command::new(exe)
        .arg("node")
        .arg("--data-dir")
        .arg(data_dir)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Own process group: a Ctrl-C meant for a later command in this
        // terminal must not reach a detached network.
        .process_group(0)
        .spawn()
        .context("cannot start a node process")
}

fn log_tail(data_dir: &Path) -> String {
    let text = std::fs::read_to_string(data_dir.join("node.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn refuse_if_running(dir: &Path) -> Result<()> {
    let Ok(text) = std::fs::read(dir.join(STATE_FILE)) else {
        return Ok(());
    };
    let Ok(state) = serde_json::from_slice::<TestnetState>(&text) else {
        return Ok(());
    };
    if state.nodes.iter().any(|n| is_our_node(n.pid, &n.data_dir)) {
        bail!(
            "a testnet is already running in {}; stop it with `warren testnet stop --dir {}`",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// True if `pid` is alive and is a warren node for `data_dir`: a pid may have
/// been reused since the state file was written, and we never signal strangers.
fn is_our_node(pid: u32, data_dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let dir = data_dir.as_os_str().as_encoded_bytes();
    args.contains(&b"node".as_slice()) && args.contains(&dir)
}

fn terminate(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        send_signal(pid, libc::SIGTERM);
    }
}

#[allow(unsafe_code)]
fn send_signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// `warren testnet stop`: stops the nodes listed in the state file, by pid.
pub(crate) fn stop_dir(dir: &Path) -> Result<()> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "no testnet state in {} (is a testnet running?)",
            dir.display()
        )
    })?;
    let state: TestnetState = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a testnet state file", path.display()))?;
    let ours: Vec<&NodeInfo> = state
        .nodes
        .iter()
        .filter(|n| is_our_node(n.pid, &n.data_dir))
        .collect();
    for node in &ours {
        terminate(node.pid);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for node in &ours {
        while is_our_node(node.pid, &node.data_dir) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if is_our_node(node.pid, &node.data_dir) {
            if let Ok(pid) = i32::try_from(node.pid) {
                send_signal(pid, libc::SIGKILL);
            }
        }
    }
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    println!("stopped {} node(s)", ours.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_world_is_connected_symmetric_and_deterministic() {
        let graph = small_world(10, 1);
        assert_eq!(graph, small_world(10, 1));
        for (a, peers) in graph.iter().enumerate() {
            assert!(peers.len() >= 2);
            for &b in peers {
                assert!(graph[b].contains(&a));
            }
        }
        let dist = bfs_distances(&graph, 0);
        assert!(dist.iter().all(Option::is_some));
    }

    #[test]
    fn ten_node_testnet_has_a_node_three_hops_out() {
        let graph = small_world(10, 1);
        let far = bfs_distances(&graph, 0)
            .into_iter()
            .flatten()
            .max()
            .unwrap();
        assert!(far >= 3, "farthest node is only {far} hops away");
    }
}
