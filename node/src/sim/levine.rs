//! The test of Levine et al. (CCS 2020, "A Forensically Sound Method of
//! Detecting Contraband Downloaders on Freenet"), played in the simulator.
//!
//! Every node watches its neighbours. For one known file of `file_blocks`
//! blocks, a node counts the requests for the file's blocks each neighbour
//! sends it and at which HTL. The test calls a neighbour "downloader" when
//! every such request came at the maximum HTL (an originator always sends
//! the maximum) and at least a threshold share of the file's blocks came
//! through it (an originator with `d` peers sends about `1/d` of them to
//! each; a relayer passes on only a share of someone else's share).
//!
//! Warren's routing core flips the HTL coins once per link (see
//! `routing::Node::decrement`), so a relayer whose link from the downloader
//! does not decrement passes every request on at the maximum, like the
//! downloader; and a fetch at the maximum walks to a fixed successor per
//! upstream link, so such a relayer passes on *all* it got, as the
//! downloader sends all of its own to its successor. Played three ways:
//! that ([`HtlPolicy::Walk`]), the per-link coins with greedy routing from
//! the first hop (before the walk), and the control, which redraws every
//! coin before each request: the per-request policy the attack was designed
//! against, where a relayer shows a mix of maximum and maximum-minus-one.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use warren_crypto::{ChkBlock, RoutingKey};

use super::net::{Intercept, Net, NetParams, NodeIx};
use super::{
    sim_block, topology, Topology, DEFAULT_CACHE_CAPACITY, DEFAULT_LATENCY_MS, MAX_EVENTS,
};
use crate::routing::RoutingConfig;
use crate::wire::Message;

/// How hops-to-live coins are flipped and where a fetch at the maximum goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HtlPolicy {
    /// Warren with `max_htl_walk`: coins once per link, and fetches at the
    /// maximum walk to a fixed successor per upstream link, p = 1/10.
    Walk,
    /// Warren's default: coins once per link (p = 1/2), routed toward the
    /// key from the first hop.
    PerLink,
    /// The control: coins afresh for every request (p = 1/2), routed toward
    /// the key.
    PerRequest,
}

impl HtlPolicy {
    /// The routing rules each policy runs.
    pub fn routing(self) -> RoutingConfig {
        match self {
            HtlPolicy::Walk => RoutingConfig::default().with_max_htl_walk(),
            HtlPolicy::PerLink | HtlPolicy::PerRequest => RoutingConfig {
                max_htl_walk: false,
                decrement_at_max_probability: crate::routing::DEFAULT_DECREMENT_AT_MAX,
                ..RoutingConfig::default()
            },
        }
    }
}

impl core::fmt::Display for HtlPolicy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            HtlPolicy::Walk => "max-HTL walk, per-link coins (Warren, max_htl_walk = true)",
            HtlPolicy::PerLink => "per-link coins, greedy (Warren's default)",
            HtlPolicy::PerRequest => "per-request coin, greedy (control)",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevineConfig {
    pub nodes: usize,
    pub degree: usize,
    /// Blocks of the one known file each downloader fetches.
    pub file_blocks: usize,
    /// Downloaders, one after another, each with its own file.
    pub trials: usize,
    pub seed: u64,
    pub policy: HtlPolicy,
    /// Overrides the policy's probability that a link decrements a request
    /// at the maximum HTL (the walk's length is 1/p links on average).
    #[serde(default)]
    pub decrement_at_max: Option<f64>,
}

/// What one watcher saw from one neighbour during one trial.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Seen {
    at_max: u32,
    below_max: u32,
}

/// The test at one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevineRow {
    /// Share of the file's blocks a neighbour must have sent, all at max HTL.
    pub threshold: f64,
    /// Downloaders flagged (true positives) and relayers flagged (false).
    pub true_positives: u64,
    pub false_positives: u64,
    pub true_positive_rate: f64,
    pub false_positive_rate: f64,
    /// Of the neighbours flagged, the share that really were downloaders.
    pub precision: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevineReport {
    pub config: LevineConfig,
    pub degree_mean: f64,
    /// (watcher, neighbour) pairs where the neighbour was the downloader,
    /// and where it only relayed (it sent the watcher at least one request).
    pub downloader_pairs: u64,
    pub relayer_pairs: u64,
    pub rows: Vec<LevineRow>,
    /// The highest precision at any threshold that flags a downloader: the
    /// figure the goal (at most 1/6) is about.
    pub worst_precision: f64,
}

/// Runs the experiment.
pub fn run(config: &LevineConfig) -> LevineReport {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let (locations, adjacency) =
        topology::build(&mut rng, config.nodes, config.degree, Topology::Ideal);
    let links: usize = adjacency.iter().map(Vec::len).sum();
    let params = NetParams {
        seed: rng.gen(),
        latency_ms: DEFAULT_LATENCY_MS,
        cache_capacity: DEFAULT_CACHE_CAPACITY,
        link_bytes_per_sec: None,
    };
    let mut routing = config.policy.routing();
    if let Some(p) = config.decrement_at_max {
        routing.decrement_at_max_probability = p;
    }
    let mut net = Net::new(routing, &locations, adjacency, params);
    let file: Rc<RefCell<HashSet<RoutingKey>>> = Rc::default();
    let seen: Rc<RefCell<HashMap<(NodeIx, NodeIx), Seen>>> = Rc::default();
    let max_htl = net.config().max_htl;
    {
        let (file, seen) = (file.clone(), seen.clone());
        net.set_interceptor(Box::new(move |from, to, msg| {
            if let Message::Request { key, htl, .. } = msg {
                if file.borrow().contains(key) {
                    let mut seen = seen.borrow_mut();
                    let s = seen.entry((to, from)).or_default();
                    if *htl >= max_htl {
                        s.at_max += 1;
                    } else {
                        s.below_max += 1;
                    }
                }
            }
            Intercept::Deliver
        }));
    }
    let n = config.nodes;
    // (blocks sent at max, whether it was the downloader) per eligible pair,
    // and the pair counts.
    let mut candidates: Vec<(u32, bool)> = Vec::new();
    let (mut downloader_pairs, mut relayer_pairs) = (0u64, 0u64);
    for trial in 0..config.trials {
        let downloader = rng.gen_range(0..n) as NodeIx;
        let blocks: Vec<_> = (0..config.file_blocks)
            .map(|i| sim_block(config.seed ^ 0x1e71_7e00, trial * config.file_blocks + i))
            .collect();
        for block in &blocks {
            let mut x = rng.gen_range(0..n) as NodeIx;
            if x == downloader {
                x = (x + 1) % n as NodeIx;
            }
            let at = net.now();
            net.insert(at, x, block.clone());
        }
        net.run(MAX_EVENTS);
        *file.borrow_mut() = blocks.iter().map(ChkBlock::routing_key).collect();
        seen.borrow_mut().clear();
        for block in &blocks {
            if config.policy == HtlPolicy::PerRequest {
                net.redraw_htl_coins();
            }
            let at = net.now();
            net.fetch(at, downloader, block.routing_key());
            net.run(MAX_EVENTS);
        }
        for (&(_watcher, sender), s) in seen.borrow().iter() {
            let is_downloader = sender == downloader;
            if is_downloader {
                downloader_pairs += 1;
            } else {
                relayer_pairs += 1;
            }
            if s.below_max == 0 {
                candidates.push((s.at_max, is_downloader));
            }
        }
    }
    let blocks = config.file_blocks.max(1) as f64;
    let top = candidates.iter().map(|c| c.0).max().unwrap_or(0);
    let mut rows = Vec::new();
    for k in 1..=top {
        let tp = candidates.iter().filter(|c| c.0 >= k && c.1).count() as u64;
        let fp = candidates.iter().filter(|c| c.0 >= k && !c.1).count() as u64;
        rows.push(LevineRow {
            threshold: f64::from(k) / blocks,
            true_positives: tp,
            false_positives: fp,
            true_positive_rate: super::ratio(tp, downloader_pairs),
            false_positive_rate: super::ratio(fp, relayer_pairs),
            precision: super::ratio(tp, tp + fp),
        });
    }
    let worst_precision = rows
        .iter()
        .filter(|r| r.true_positives > 0)
        .map(|r| r.precision)
        .fold(0.0, f64::max);
    LevineReport {
        config: config.clone(),
        degree_mean: links as f64 / n.max(1) as f64,
        downloader_pairs,
        relayer_pairs,
        rows,
        worst_precision,
    }
}
