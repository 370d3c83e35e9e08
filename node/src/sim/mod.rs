//! `warren sim`: thousands to 100,000 virtual nodes running the real routing core.
//!
//! [`run`] builds a topology, inserts `requests` blocks from random nodes, lets
//! every insert finish, then fetches each block from another random node and
//! reports what happened. Everything runs on virtual time from one seeded RNG,
//! so the same [`SimConfig`] gives the same [`SimReport`] (apart from `wall_s`
//! and `peak_rss_mb`, which measure the machine).

pub mod folding;
pub mod levine;
pub mod malicious;
pub mod net;
pub mod topology;
pub mod traceback;
pub mod transfer;

use std::time::Instant;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use warren_crypto::{ChkBlock, RoutingKey};

pub use self::folding::{CurvePoint, JoinReport, DEFAULT_FOLD_ROUNDS};
pub use self::malicious::{MaliciousKind, MaliciousKindError, MaliciousReport};
pub use self::net::{sim_noderef, Completion, Intercept, Interceptor, Net, NetParams, NodeIx};
pub use self::topology::{Topology, TopologyError};
use crate::routing::{
    ClientId, FetchError, OpennetStats, RoutingConfig, Time, DEFAULT_MAX_HTL,
    DEFAULT_NOT_FOUND_DOUBTS, DEFAULT_SINK_SECOND_COPY,
};

/// Default number of simulated nodes.
pub const DEFAULT_NODES: usize = 10_000;
/// Default mean number of peers per node.
pub const DEFAULT_DEGREE: usize = 20;
/// Default number of blocks inserted and then fetched.
pub const DEFAULT_REQUESTS: usize = 1_000;
/// Virtual milliseconds between the starts of consecutive inserts (and fetches).
pub const DEFAULT_REQUEST_INTERVAL_MS: u64 = 10;
/// Message latency range in virtual milliseconds.
pub const DEFAULT_LATENCY_MS: (u64, u64) = (20, 100);
/// Blocks each simulated cache holds.
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;
/// Safety net on events per phase: far above what any configuration needs.
pub(crate) const MAX_EVENTS: u64 = 1 << 40;
/// Bytes in a mebibyte, for memory figures.
const MIB: f64 = 1024.0 * 1024.0;

/// What to simulate. Public fields map one to one onto `warren sim` flags
/// (all but `sink_second_copy`, `request_interval_ms`, `latency_ms` and
/// `cache_capacity`, which only the bench and tests set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    pub nodes: usize,
    pub degree: usize,
    pub htl: u8,
    pub requests: usize,
    pub topology: Topology,
    /// Fraction of nodes offline at any moment of the fetch phase; while it is
    /// above zero, one node leaves and one returns with every fetch started.
    pub churn: f64,
    pub seed: u64,
    pub request_interval_ms: u64,
    pub latency_ms: (u64, u64),
    pub cache_capacity: usize,
    /// Whether sinks pass each insert on for a second stored copy
    /// (`RoutingConfig::sink_second_copy`).
    #[serde(default = "default_sink_second_copy")]
    pub sink_second_copy: bool,
    /// Opennet topologies: rounds of `requests` inserts and fetches while
    /// the graph folds, before the measured round.
    #[serde(default = "default_fold_rounds")]
    pub fold_rounds: usize,
    /// Share of nodes that attack every fetch routed to them (0 to 1).
    #[serde(default)]
    pub malicious_fraction: f64,
    /// How they attack.
    #[serde(default)]
    pub malicious_kind: MaliciousKind,
    /// `RoutingConfig::not_found_doubts` of every node: 0 is the routing
    /// before the claimed-HTL-0 defence.
    #[serde(default = "default_not_found_doubts")]
    pub not_found_doubts: u8,
    /// `RoutingConfig::max_htl_walk` of every node (with its decrement
    /// probability, `routing::WALK_DECREMENT_AT_MAX`).
    #[serde(default = "default_max_htl_walk")]
    pub max_htl_walk: bool,
    /// Overrides `RoutingConfig::decrement_at_max_probability`.
    #[serde(default)]
    pub decrement_at_max: Option<f64>,
}

fn default_max_htl_walk() -> bool {
    crate::routing::DEFAULT_MAX_HTL_WALK
}

fn default_not_found_doubts() -> u8 {
    DEFAULT_NOT_FOUND_DOUBTS
}

fn default_fold_rounds() -> usize {
    DEFAULT_FOLD_ROUNDS
}

fn default_sink_second_copy() -> bool {
    DEFAULT_SINK_SECOND_COPY
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: DEFAULT_NODES,
            degree: DEFAULT_DEGREE,
            htl: DEFAULT_MAX_HTL,
            requests: DEFAULT_REQUESTS,
            topology: Topology::Ideal,
            churn: 0.0,
            seed: 1,
            request_interval_ms: DEFAULT_REQUEST_INTERVAL_MS,
            latency_ms: DEFAULT_LATENCY_MS,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            sink_second_copy: DEFAULT_SINK_SECOND_COPY,
            fold_rounds: DEFAULT_FOLD_ROUNDS,
            malicious_fraction: 0.0,
            malicious_kind: MaliciousKind::Dnf,
            not_found_doubts: DEFAULT_NOT_FOUND_DOUBTS,
            max_htl_walk: crate::routing::DEFAULT_MAX_HTL_WALK,
            decrement_at_max: None,
        }
    }
}

/// Why fetches failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Failures {
    pub data_not_found: u64,
    pub route_not_found: u64,
    pub timeout: u64,
    /// The originator itself went offline (churn) before its fetch finished.
    pub originator_left: u64,
    pub other: u64,
    /// Completed with a block other than the one asked for: a forged block
    /// accepted. The core verifies every block, so this must stay 0.
    #[serde(default)]
    pub wrong_block: u64,
}

/// What a simulation measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    pub nodes: usize,
    pub degree_mean: f64,
    pub htl: u8,
    pub requests: usize,
    pub topology: Topology,
    pub churn: f64,
    pub seed: u64,
    /// Fetches that returned the right block.
    pub success_rate: f64,
    /// Links the block crossed back to the originator, over successful fetches.
    pub hops_mean: f64,
    pub hops_p50: u32,
    pub hops_p99: u32,
    /// Messages sent during the fetch phase per fetch (requests, replies, acks).
    pub messages_per_request: f64,
    pub insert_success_rate: f64,
    pub insert_messages_per_request: f64,
    /// Long-term store copies per inserted block once every insert finished.
    pub store_copies_mean: f64,
    /// Inserted blocks that no node holds in its long-term store.
    pub blocks_without_store: u64,
    pub failures: Failures,
    /// Fetch-phase requests answered from a long-term store (sinks).
    pub found_in_store: u64,
    /// Fetch-phase requests answered from a cache.
    pub found_in_cache: u64,
    pub loops_rejected: u64,
    pub overloaded_sent: u64,
    pub merged: u64,
    pub timeouts: u64,
    /// Virtual time the whole run took.
    pub virtual_s: f64,
    pub wall_s: f64,
    pub peak_rss_mb: f64,
    /// Opennet topologies: one point per round while the graph folded (the
    /// measured round is the last).
    #[serde(default)]
    pub curve: Vec<CurvePoint>,
    /// Share of links longer than 0.01 of the circle at the end.
    #[serde(default)]
    pub long_link_share: f64,
    /// `join` topology: what the newcomers' joins cost.
    #[serde(default)]
    pub join: Option<JoinReport>,
    /// Opennet counters summed over all nodes, for the whole run.
    #[serde(default)]
    pub opennet: OpennetStats,
    /// Runs with malicious nodes: what they did.
    #[serde(default)]
    pub malicious: Option<MaliciousReport>,
}

impl SimReport {
    /// The report with the machine-dependent figures zeroed, for comparisons.
    #[must_use]
    pub fn without_timings(mut self) -> Self {
        self.wall_s = 0.0;
        self.peak_rss_mb = 0.0;
        self
    }
}

/// Runs one simulation.
pub fn run(config: &SimConfig) -> SimReport {
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let (locations, adjacency) =
        topology::build(&mut rng, config.nodes, config.degree, config.topology);
    let links: usize = adjacency.iter().map(Vec::len).sum();
    let routing = RoutingConfig {
        max_htl: config.htl,
        sink_second_copy: config.sink_second_copy,
        not_found_doubts: config.not_found_doubts,
        opennet: config
            .topology
            .is_opennet()
            .then(|| folding::sim_opennet(config.degree)),
        ..RoutingConfig::default()
    };
    let mut routing = if config.max_htl_walk {
        routing.with_max_htl_walk()
    } else {
        routing
    };
    if let Some(p) = config.decrement_at_max {
        routing.decrement_at_max_probability = p;
    }
    let params = NetParams {
        seed: rng.gen(),
        latency_ms: config.latency_ms,
        cache_capacity: config.cache_capacity,
        link_bytes_per_sec: None,
    };
    let mut net = Net::new(routing, &locations, adjacency, params);
    let attacked = std::rc::Rc::new(std::cell::Cell::new(0));
    // Drawn only when asked for, so runs without attackers keep their figures.
    let bad = (config.malicious_fraction > 0.0)
        .then(|| malicious::pick(&mut rng, config.nodes, config.malicious_fraction));
    if let Some(bad) = &bad {
        let kind = config.malicious_kind;
        net.set_interceptor(malicious::interceptor(bad.clone(), kind, attacked.clone()));
    }
    let mut report = SimReport {
        nodes: config.nodes,
        degree_mean: links as f64 / config.nodes.max(1) as f64,
        htl: config.htl,
        requests: config.requests,
        topology: config.topology,
        churn: config.churn,
        seed: config.seed,
        ..SimReport::default()
    };
    if config.nodes >= 2 && config.topology == Topology::Join {
        report.join = Some(folding::join(&mut net, config));
    }
    let rounds = if config.topology.is_opennet() {
        config.fold_rounds
    } else {
        0
    };
    let mut served = 0u64;
    if config.nodes >= 2 {
        for round in 0..=rounds {
            // Every round but the measured last one starts from fresh figures.
            let mut round_report = report.clone();
            net.reset_counters();
            let before = net.opennet_totals();
            let first = round * config.requests;
            let (keys, inserters) =
                insert_phase(&mut net, &mut rng, config, first, &mut round_report);
            fetch_phase(
                &mut net,
                &mut rng,
                config,
                &keys,
                &inserters,
                &mut round_report,
            );
            served += keys.len() as u64;
            if config.topology.is_opennet() {
                let (degree_mean, long_link_share) = folding::graph_shape(&net);
                let (links_made, links_dropped) = net.link_churn();
                let after = net.opennet_totals();
                round_report.curve.push(CurvePoint {
                    folds: after.folds_taken - before.folds_taken,
                    fold_offers: after.fold_offers_made - before.fold_offers_made,
                    requests_served: served,
                    success_rate: round_report.success_rate,
                    hops_mean: round_report.hops_mean,
                    degree_mean,
                    long_link_share,
                    links_made,
                    links_dropped,
                });
            }
            if round == rounds {
                report = round_report;
            } else {
                report.curve = round_report.curve;
            }
        }
    }
    let (degree_mean, long_link_share) = folding::graph_shape(&net);
    report.degree_mean = degree_mean;
    report.long_link_share = long_link_share;
    report.opennet = net.opennet_totals();
    report.loops_rejected = net.sum_stats(|s| s.loops_rejected);
    report.overloaded_sent = net.sum_stats(|s| s.overloaded_sent);
    report.merged = net.sum_stats(|s| s.merged);
    report.timeouts = net.sum_stats(|s| s.timeouts);
    if let Some(bad) = &bad {
        report.malicious = Some(MaliciousReport {
            kind: config.malicious_kind,
            nodes: bad.iter().filter(|&&b| b).count(),
            requests_attacked: attacked.get(),
            forged_refused: net.sum_stats(|s| s.forged_blocks),
            wrong_blocks_accepted: report.failures.wrong_block,
            not_found_doubted: net.sum_stats(|s| s.not_found_doubted),
        });
    }
    report.virtual_s = net.now().as_millis() as f64 / 1000.0;
    report.wall_s = started.elapsed().as_secs_f64();
    report.peak_rss_mb = peak_rss_mb();
    report
}

/// The block the simulation inserts as its `i`th: distinct per seed and index.
pub fn sim_block(seed: u64, i: usize) -> ChkBlock {
    let mut data = [0u8; 16];
    data[..8].copy_from_slice(&seed.to_le_bytes());
    data[8..].copy_from_slice(&(i as u64).to_le_bytes());
    // Sixteen bytes always fit in a block.
    match ChkBlock::encode(&data) {
        Ok((block, _)) => block,
        Err(e) => unreachable!("16 bytes fit in a block: {e}"),
    }
}

/// Inserts blocks `first..first + requests` from random nodes.
fn insert_phase(
    net: &mut Net,
    rng: &mut ChaCha8Rng,
    config: &SimConfig,
    first: usize,
    report: &mut SimReport,
) -> (Vec<RoutingKey>, Vec<NodeIx>) {
    let n = net.len();
    let mut keys = Vec::with_capacity(config.requests);
    let mut inserters = Vec::with_capacity(config.requests);
    let mut clients = Vec::with_capacity(config.requests);
    let start = net.now();
    for i in 0..config.requests {
        let at = Time(start.0 + i as u64 * config.request_interval_ms);
        // Run up to each start so only the inserts in flight hold blocks.
        net.run_until(at, MAX_EVENTS);
        let block = sim_block(config.seed, first + i);
        let x = rng.gen_range(0..n) as NodeIx;
        keys.push(block.routing_key());
        inserters.push(x);
        clients.push(net.insert(at, x, block));
    }
    net.run(MAX_EVENTS);
    let ok = clients
        .iter()
        .filter(|c| matches!(net.completion(**c), Some(Completion::Insert(Ok(())))))
        .count();
    report.insert_success_rate = ratio(ok as u64, config.requests as u64);
    report.insert_messages_per_request = ratio(net.counters().messages, config.requests as u64);
    let copies = net.store_copies();
    let held: Vec<usize> = keys
        .iter()
        .map(|k| copies.get(k).copied().unwrap_or(0))
        .collect();
    report.store_copies_mean = ratio(held.iter().sum::<usize>() as u64, keys.len() as u64);
    report.blocks_without_store = held.iter().filter(|&&c| c == 0).count() as u64;
    (keys, inserters)
}

fn fetch_phase(
    net: &mut Net,
    rng: &mut ChaCha8Rng,
    config: &SimConfig,
    keys: &[RoutingKey],
    inserters: &[NodeIx],
    report: &mut SimReport,
) {
    let n = net.len();
    net.reset_counters();
    let start = net.now();
    let offline_target = ((config.churn.clamp(0.0, 1.0) * n as f64) as usize).min(n - 2);
    let mut offline: Vec<NodeIx> = Vec::with_capacity(offline_target);
    while offline.len() < offline_target {
        let x = random_online(net, rng, None);
        net.take_down(start, x);
        net.run_until(start, MAX_EVENTS);
        offline.push(x);
    }
    let mut clients: Vec<ClientId> = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let at = Time(start.0 + i as u64 * config.request_interval_ms);
        net.run_until(at, MAX_EVENTS);
        if !offline.is_empty() {
            churn_step(net, rng, &mut offline, at);
        }
        let x = random_online(net, rng, Some(inserters[i]));
        clients.push(net.fetch(at, x, *key));
    }
    net.run(MAX_EVENTS);
    let mut hops = Vec::with_capacity(clients.len());
    for (client, key) in clients.iter().zip(keys) {
        match net.completion(*client) {
            Some(Completion::Fetch(Ok(got))) if got == key => hops.push(net.hops(*client)),
            Some(Completion::Fetch(Ok(_))) => report.failures.wrong_block += 1,
            Some(Completion::Fetch(Err(FetchError::DataNotFound))) => {
                report.failures.data_not_found += 1;
            }
            Some(Completion::Fetch(Err(FetchError::RouteNotFound))) => {
                report.failures.route_not_found += 1;
            }
            Some(Completion::Fetch(Err(FetchError::Timeout))) => report.failures.timeout += 1,
            Some(Completion::Lost) => report.failures.originator_left += 1,
            _ => report.failures.other += 1,
        }
    }
    let counters = net.counters();
    report.success_rate = ratio(hops.len() as u64, keys.len() as u64);
    report.messages_per_request = ratio(counters.messages, keys.len() as u64);
    report.found_in_store = counters.found_in_store;
    report.found_in_cache = counters.found_in_cache;
    hops.sort_unstable();
    report.hops_mean = ratio(hops.iter().map(|&h| u64::from(h)).sum(), hops.len() as u64);
    report.hops_p50 = percentile(&hops, 50);
    report.hops_p99 = percentile(&hops, 99);
}

/// One node returns and another leaves, keeping the offline fraction steady.
fn churn_step(net: &mut Net, rng: &mut ChaCha8Rng, offline: &mut Vec<NodeIx>, at: Time) {
    let back = offline.swap_remove(rng.gen_range(0..offline.len()));
    let gone = random_online(net, rng, Some(back));
    net.bring_up(at, back);
    net.take_down(at, gone);
    net.run_until(at, MAX_EVENTS);
    offline.push(gone);
}

fn random_online(net: &Net, rng: &mut ChaCha8Rng, not: Option<NodeIx>) -> NodeIx {
    loop {
        let x = rng.gen_range(0..net.len()) as NodeIx;
        if net.is_online(x) && Some(x) != not {
            return x;
        }
    }
}

pub(crate) fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// The `p`th percentile of sorted values (nearest rank), 0 if empty.
fn percentile(sorted: &[u32], p: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Peak resident memory of this process (VmHWM), 0 where /proc is missing.
pub fn peak_rss_mb() -> f64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0.0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib * 1024.0 / MIB)
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
