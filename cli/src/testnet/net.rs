//! A running testnet: node processes on loopback, either joined by
//! announcement through node 0 (the default of `warren testnet`) or wired as a
//! known small world (what tests and benchmarks that need a known route use).
//!
//! Nodes bind port 0 and report what they got in their run file, so no port
//! is ever picked by one process and bound later by another. Wired, node `i`
//! is started knowing the noderefs of its neighbours started before it and
//! dials them; each link is made by exactly one side, and every node waits for
//! the ones before it. Opennet, node 0 is the seed and every other node is
//! started knowing only its noderef, one after another, as newcomers arrive.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use warren_crypto::Location;
use warren_node::routing::OpennetConfig;

use super::delay::{LinkShape, Relay};
use super::process::{self, is_our_node, send_signal, spawn_node, wait_running, POLL};
use super::state::{prepare_dir, NodeInfo, TestnetState};
use super::topology::{bfs_distances, small_world};
use crate::api_client::ApiClient;
use crate::config::FileConfig;

/// How long a node may take to start listening, and the network to link up.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node may take to stop after SIGTERM before it gets SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Store and cache sizes for testnet nodes, in MiB: small, it is a laptop.
pub const TESTNET_STORE_MIB: u64 = 512;
pub const TESTNET_CACHE_MIB: u64 = 256;
/// Log filter for node processes when `RUST_LOG` is not set.
const DEFAULT_LOG_FILTER: &str = "info";

/// Pause between two newcomers of an opennet testnet: they arrive one after
/// another, as they would in a real network, not all in the same instant.
const ARRIVAL_INTERVAL: Duration = Duration::from_millis(250);

/// How the nodes of a testnet find each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wiring {
    /// Node 0 is the seed; the others know only its noderef and join by
    /// announcement, aiming at `target_peers` peers each.
    #[default]
    Opennet,
    /// A known small world of configured friends (friends-only nodes): the
    /// routes benchmarks and tests reason about.
    Wired,
}

/// Opennet peers each testnet node aims for: a fraction of the network, so
/// the threshold (half of it) can be met in a network of a few nodes.
pub fn testnet_target_peers(nodes: usize) -> usize {
    (nodes / 2).clamp(2, warren_node::routing::DEFAULT_TARGET_PEERS)
}

/// How to start a testnet.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Number of node processes.
    pub nodes: usize,
    /// Directory for the nodes' data and the state file; cleared only if a
    /// testnet made it.
    pub dir: PathBuf,
    /// Seed for the topology.
    pub seed: u64,
    /// The `warren` executable to run the nodes with.
    pub exe: PathBuf,
    pub wiring: Wiring,
    /// `Some`: a delaying relay in this process in front of every node's P2P
    /// port, shaping every peer link (see [`super::delay`]); `None`: nodes
    /// dial each other directly.
    pub link: Option<LinkShape>,
}

/// A running testnet whose processes this one started (or adopted).
#[derive(Debug)]
pub struct Testnet {
    pub dir: PathBuf,
    pub nodes: Vec<NodeInfo>,
    exe: PathBuf,
    wiring: Wiring,
    /// Nodes that joined by announcement: 0..announced (opennet wiring; nodes
    /// added by `add_chain` after them are wired).
    announced: usize,
    /// Children by node index; `None` once killed, or handed over by `detach`.
    children: Vec<Option<Child>>,
    /// The wide-area test bed's relays, if its links are shaped.
    relays: Option<Relays>,
}

/// One relay per node and the runtime they run on. Field order is drop
/// order: the relays stop before their runtime goes.
struct Relays {
    shape: LinkShape,
    by_node: Vec<Relay>,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Relays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relays")
            .field("shape", &self.shape)
            .field("by_node", &self.by_node)
            .finish_non_exhaustive()
    }
}

impl Relays {
    fn new(shape: LinkShape) -> Result<Relays> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("testnet-relay")
            .enable_all()
            .build()
            .context("cannot start the link relays' runtime")?;
        Ok(Relays {
            shape,
            by_node: Vec::new(),
            runtime,
        })
    }

    /// A new relay for the next node; returns the address it advertises.
    fn add(&mut self) -> Result<SocketAddr> {
        let relay = self
            .runtime
            .block_on(Relay::bind(self.shape))
            .context("cannot bind a link relay")?;
        let addr = relay.addr();
        self.by_node.push(relay);
        Ok(addr)
    }
}

/// Nodes that did not link to all their planned neighbours in time.
#[derive(Debug, thiserror::Error)]
#[error("nodes {0:?} have not linked to all their neighbours yet")]
pub struct NotLinked(pub Vec<usize>);

impl Testnet {
    /// Creates the directories, identities and configs and starts every node,
    /// each once the ones it dials are listening. Does not wait for the links:
    /// see [`Testnet::wait_linked`].
    pub fn start(options: &StartOptions) -> Result<Testnet> {
        if options.nodes < 2 {
            bail!("a testnet needs at least 2 nodes");
        }
        crate::node::set_private_umask();
        prepare_dir(&options.dir)?;
        let mut net = Testnet {
            dir: options.dir.clone(),
            nodes: Vec::new(),
            exe: options.exe.clone(),
            wiring: options.wiring,
            announced: 0,
            children: Vec::new(),
            relays: options.link.map(Relays::new).transpose()?,
        };
        // Evenly spaced: a testnet is small enough that random spacing only adds noise.
        let location = |index: usize| {
            Location(((index as u128) << 64).div_euclid(options.nodes as u128) as u64)
        };
        let started = match options.wiring {
            Wiring::Wired => {
                let neighbours = small_world(options.nodes, options.seed);
                neighbours
                    .iter()
                    .enumerate()
                    .try_for_each(|(index, planned)| {
                        let dials: Vec<usize> =
                            planned.iter().copied().filter(|&j| j < index).collect();
                        let joining = Joining::Wired {
                            dials: &dials,
                            neighbours: planned.clone(),
                        };
                        net.add_node(location(index), joining).map(drop)
                    })
            }
            Wiring::Opennet => {
                let target = testnet_target_peers(options.nodes);
                (0..options.nodes).try_for_each(|index| {
                    if index > 1 {
                        std::thread::sleep(ARRIVAL_INTERVAL);
                    }
                    let seed = net.nodes.first().map(|n| n.noderef.clone());
                    let joining = Joining::Opennet { seed, target };
                    net.add_node(location(index), joining).map(drop)
                })
            }
        };
        if let Err(err) = started {
            let _ = net.stop();
            return Err(err);
        }
        if options.wiring == Wiring::Opennet {
            net.announced = net.nodes.len();
        }
        Ok(net)
    }

    /// Starts one more node; records it.
    fn add_node(&mut self, location: Location, joining: Joining<'_>) -> Result<usize> {
        let index = self.nodes.len();
        let data_dir = self.dir.join(format!("node-{index}"));
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let mut config = FileConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            api: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            gateway: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            fcp: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            store_mib: Some(TESTNET_STORE_MIB),
            cache_mib: Some(TESTNET_CACHE_MIB),
            location: Some(location.0),
            ..FileConfig::default()
        };
        if let Some(relays) = &mut self.relays {
            // Peers learn the relay's address from this node's noderef, so
            // every link to it crosses the relay; a fixed address is not
            // replaced by what peers observe.
            config.advertise = Some(relays.add()?);
        }
        let neighbours = match joining {
            Joining::Wired { dials, neighbours } => {
                config.peers = dials
                    .iter()
                    .map(|&j| self.nodes[j].noderef.clone())
                    .collect();
                // The wired small world: a known graph, no announcement or folding.
                config.friends_only = Some(true);
                neighbours
            }
            Joining::Opennet { seed, target } => {
                config.seeds = seed.into_iter().collect();
                config.target_peers = Some(target);
                config.friends_only = Some(false);
                // Learnt from the nodes once they have joined (`wait_linked`).
                Vec::new()
            }
        };
        config.save(&data_dir)?;
        let mut child = spawn_node(&self.exe, &data_dir, &log_filter())?;
        let run = match wait_running(&mut child, &data_dir, Instant::now() + STARTUP_TIMEOUT) {
            Ok(run) => run,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err.context(format!("node {index} did not start")));
            }
        };
        self.point_relay(index, run.p2p);
        self.nodes.push(NodeInfo {
            index,
            pid: run.pid,
            data_dir,
            api: run.api,
            gateway: run.gateway,
            fcp: run.fcp,
            noderef: run.noderef,
            neighbours,
        });
        self.children.push(Some(child));
        self.save_state()?;
        Ok(index)
    }

    /// Adds `len` fresh nodes in a chain hanging off `anchor` (each linked only
    /// to the one before it and after it); returns the index of the last.
    /// A fetch at the tip must cross the whole chain: a route of at least
    /// `len` hops, known by construction.
    pub fn add_chain(&mut self, anchor: usize, len: usize) -> Result<usize> {
        let mut prev = anchor;
        for _ in 0..len {
            // Beside its anchor on the circle: nothing makes the chain a shortcut.
            let location = self
                .location(prev)
                .map_or(Location(0), |l| Location(l.0 ^ 1));
            let joining = Joining::Wired {
                dials: &[prev],
                neighbours: vec![prev],
            };
            let index = self.add_node(location, joining)?;
            self.nodes[prev].neighbours.push(index);
            prev = index;
        }
        self.save_state()?;
        Ok(prev)
    }

    /// Sends node `index`'s relayed connections to where it now listens.
    fn point_relay(&self, index: usize, p2p: SocketAddr) {
        if let Some(relay) = self.relays.as_ref().and_then(|r| r.by_node.get(index)) {
            relay.set_target(p2p);
        }
    }

    /// Whether the links cross relays in this process (which must then stay
    /// running for the network to work).
    pub fn relayed(&self) -> bool {
        self.relays.is_some()
    }

    fn location(&self, index: usize) -> Option<Location> {
        self.nodes[index]
            .noderef
            .parse::<warren_crypto::NodeRef>()
            .ok()
            .map(|r| r.location)
    }

    pub fn save_state(&self) -> Result<()> {
        TestnetState {
            nodes: self.nodes.clone(),
        }
        .save(&self.dir)
    }

    /// A client for node `index`'s API (its token read from its data dir).
    pub fn api(&self, index: usize) -> ApiClient {
        ApiClient::for_data_dir(self.nodes[index].api, &self.nodes[index].data_dir)
    }

    /// How many peers node `index` has a link to right now (0 if it does not answer).
    pub fn peer_count(&self, index: usize) -> usize {
        self.api(index)
            .status()
            .ok()
            .and_then(|s| s["peers"].as_array().map(Vec::len))
            .unwrap_or(0)
    }

    /// Waits until the network is one: wired, until every node has a link to
    /// each planned neighbour; opennet, until every node but the seed has
    /// reached its announcement threshold and the links that stay (seed links
    /// close) join every node, and then records those links as the nodes'
    /// neighbours. Before that, an insert and a fetch can land in parts of
    /// the graph not yet joined, and the fetch then finds nothing.
    pub fn wait_linked(&mut self, limit: Duration) -> Result<(), NotLinked> {
        let deadline = Instant::now() + limit;
        loop {
            let waiting = match self.wiring {
                Wiring::Wired => self.wired_waiting(),
                Wiring::Opennet => self.opennet_waiting(),
            };
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(NotLinked(waiting));
            }
            std::thread::sleep(POLL);
        }
    }

    fn wired_waiting(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .filter(|n| self.peer_count(n.index) < n.neighbours.len())
            .map(|n| n.index)
            .collect()
    }

    /// Opennet nodes not yet joined (all of them while the graph is in pieces);
    /// once none is, their lasting links become `neighbours`.
    fn opennet_waiting(&mut self) -> Vec<usize> {
        let threshold =
            OpennetConfig::with_target(testnet_target_peers(self.nodes.len())).announce_threshold;
        let statuses: Vec<Option<serde_json::Value>> = (0..self.nodes.len())
            .map(|i| self.api(i).status().ok())
            .collect();
        let identities: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                n.noderef
                    .parse::<warren_crypto::NodeRef>()
                    .map(|r| r.identity.to_string())
                    .unwrap_or_default()
            })
            .collect();
        let adjacency = lasting_links(&statuses, &identities);
        let joined: Vec<bool> = adjacency
            .iter()
            .enumerate()
            .map(|(i, peers)| match i {
                0 => true,
                // Chain nodes added later are wired.
                i if i >= self.announced => peers.len() >= self.nodes[i].neighbours.len(),
                _ => peers.len() >= threshold,
            })
            .collect();
        let waiting: Vec<usize> = (0..self.nodes.len()).filter(|&i| !joined[i]).collect();
        if !waiting.is_empty() {
            return waiting;
        }
        let reached = bfs_distances(&adjacency, 0);
        let apart: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| reached[i].is_none())
            .collect();
        if apart.is_empty() {
            for (node, peers) in self.nodes.iter_mut().zip(adjacency) {
                node.neighbours = peers;
            }
            let _ = self.save_state();
        }
        apart
    }

    /// Hops between two nodes in the testnet graph.
    pub fn hops_between(&self, from: usize, to: usize) -> Option<usize> {
        bfs_distances(&self.adjacency(), from)[to]
    }

    pub fn adjacency(&self) -> Vec<Vec<usize>> {
        self.nodes.iter().map(|n| n.neighbours.clone()).collect()
    }

    /// Kills node `index` with SIGKILL, by pid, and reaps it.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.children[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        } else if is_our_node(self.nodes[index].pid, &self.nodes[index].data_dir) {
            send_signal(self.nodes[index].pid, libc::SIGKILL);
        }
    }

    /// Starts node `index` again on its data directory (after [`kill`](Self::kill)).
    pub fn restart(&mut self, index: usize) -> Result<()> {
        if self.children[index].is_some() {
            bail!("node {index} is still running");
        }
        let data_dir = self.nodes[index].data_dir.clone();
        let mut child = spawn_node(&self.exe, &data_dir, &log_filter())?;
        let run = wait_running(&mut child, &data_dir, Instant::now() + STARTUP_TIMEOUT)?;
        self.point_relay(index, run.p2p);
        self.nodes[index].pid = run.pid;
        self.nodes[index].api = run.api;
        self.nodes[index].gateway = run.gateway;
        self.nodes[index].fcp = run.fcp;
        self.nodes[index].noderef = run.noderef;
        self.children[index] = Some(child);
        self.save_state()
    }

    pub fn print_summary(&self) {
        println!(
            "{} nodes running in {}",
            self.nodes.len(),
            self.dir.display()
        );
        println!("{:>4}  {:<24} {:<10} neighbours", "node", "api", "location");
        for node in &self.nodes {
            let location = self
                .location(node.index)
                .map(|l| l.to_string())
                .unwrap_or_default();
            println!(
                "{:>4}  http://{:<17} {:<10} {:?}",
                node.index, node.api, location, node.neighbours
            );
        }
    }

    /// Hands the processes over to `warren testnet stop`.
    pub fn detach(mut self) {
        for child in &mut self.children {
            // Dropping a `Child` neither kills nor waits for it.
            drop(child.take());
        }
    }

    /// Stops every node: SIGTERM, then SIGKILL for any that outlive the
    /// deadline; removes the state file.
    pub fn stop(mut self) -> Result<()> {
        self.stop_children();
        let _ = std::fs::remove_file(self.dir.join(super::state::STATE_FILE));
        Ok(())
    }

    fn stop_children(&mut self) {
        let running: Vec<(u32, &Path)> = self
            .nodes
            .iter()
            .zip(&self.children)
            .filter(|(_, child)| child.is_some())
            .map(|(node, _)| (node.pid, node.data_dir.as_path()))
            .collect();
        process::stop_nodes(&running, STOP_TIMEOUT);
        for child in self.children.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        // A testnet dropped on an error path must not leave processes behind.
        for mut child in self.children.iter_mut().filter_map(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a new node joins: dialling configured friends, or through a seed.
enum Joining<'a> {
    Wired {
        dials: &'a [usize],
        neighbours: Vec<usize>,
    },
    Opennet {
        seed: Option<String>,
        target: usize,
    },
}

/// The links both ends report, seed links left out (they close once a node
/// has enough peers): node i's neighbours by index.
fn lasting_links(statuses: &[Option<serde_json::Value>], identities: &[String]) -> Vec<Vec<usize>> {
    let lasting = |i: usize| -> Vec<usize> {
        let Some(status) = &statuses[i] else {
            return Vec::new();
        };
        let peers = status["peers"].as_array().map_or(&[][..], Vec::as_slice);
        peers
            .iter()
            .filter(|p| p["kind"] != "seed")
            .filter_map(|p| {
                identities
                    .iter()
                    .position(|id| p["identity"] == id.as_str())
            })
            .collect()
    };
    let one_way: Vec<Vec<usize>> = (0..statuses.len()).map(lasting).collect();
    one_way
        .iter()
        .enumerate()
        .map(|(i, peers)| {
            let mut both: Vec<usize> = peers
                .iter()
                .copied()
                .filter(|&j| one_way[j].contains(&i))
                .collect();
            both.sort_unstable();
            both.dedup();
            both
        })
        .collect()
}

fn log_filter() -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_LOG_FILTER.into())
}
