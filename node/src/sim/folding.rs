//! Self-organisation in the simulator: a network that starts from a few random
//! links per node (`Topology::Folded`) or from nodes arriving one at a time
//! through one seed (`Topology::Join`), and reshapes itself by announcement and
//! path folding while requests flow. The same routing core as the real node.

use core::time::Duration;

use serde::{Deserialize, Serialize};

use super::net::{Net, NodeIx};
use super::{ratio, SimConfig, MAX_EVENTS};
use crate::routing::{OpennetConfig, Time};

/// Default rounds of insert-then-fetch while the graph folds.
pub const DEFAULT_FOLD_ROUNDS: usize = 30;
/// Virtual time between two newcomers in a join run.
pub const JOIN_INTERVAL: Duration = Duration::from_secs(2);
/// How long a newcomer keeps its seed link after reaching its threshold.
pub const SEED_DROP_DELAY: Duration = Duration::from_secs(10);

/// The simulator compresses a network's request traffic into seconds of
/// virtual time, so the opennet's real-time rules are scaled down with it.
pub fn sim_opennet(target: usize) -> OpennetConfig {
    OpennetConfig {
        peer_grace: Duration::from_secs(5),
        min_drop_interval: Duration::from_secs(1),
        announce_interval: Duration::from_secs(5),
        ..OpennetConfig::with_target(target)
    }
}

/// One point of the folding curve: figures of one round of requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Fetches served before and during this round.
    pub requests_served: u64,
    pub success_rate: f64,
    pub hops_mean: f64,
    pub degree_mean: f64,
    /// Share of links longer than 0.01 of the circle.
    pub long_link_share: f64,
    /// Fold offers made and taken during the round.
    pub fold_offers: u64,
    pub folds: u64,
    /// Links made and dropped by opennet decisions during the round's fetches.
    pub links_made: u64,
    pub links_dropped: u64,
}

/// What a join run measured: newcomers arriving through one seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinReport {
    /// Newcomers that reached their announcement threshold.
    pub joined: usize,
    pub newcomers: usize,
    /// Announcements started and announcement messages sent per newcomer.
    pub announcements_per_join: f64,
    pub messages_per_join: f64,
    /// Virtual seconds from arrival to threshold, mean and worst.
    pub join_s_mean: f64,
    pub join_s_max: f64,
}

/// Mean degree and long-link share of the online graph.
pub fn graph_shape(net: &Net) -> (f64, f64) {
    let mut links = 0usize;
    let mut long = 0usize;
    for x in 0..net.len() as NodeIx {
        let here = net.node(x).location();
        for &y in net.neighbours(x) {
            links += 1;
            let d = here.distance(net.node(y).location());
            long += usize::from(d > crate::routing::DEFAULT_LONG_LINK_DISTANCE);
        }
    }
    (
        ratio(links as u64, net.len() as u64),
        ratio(long as u64, links as u64),
    )
}

/// Newcomers `1..n` arrive one at a time, each linked only to node 0 (the
/// seed); each announces, and drops its seed link a while after reaching its
/// threshold. Returns what the joins cost.
pub fn join(net: &mut Net, config: &SimConfig) -> JoinReport {
    let n = net.len();
    let seed: NodeIx = 0;
    let mut arrived: Vec<(NodeIx, Time)> = Vec::with_capacity(n);
    let mut joined_at: Vec<Option<Time>> = vec![None; n];
    let mut seeded: Vec<NodeIx> = Vec::new();
    let before = net.counters().messages;
    let announcements_before = net.sum_stats_opennet(|s| s.announcements_started);
    for x in 1..n as NodeIx {
        let at = net.now().after(JOIN_INTERVAL);
        net.run_until(at, MAX_EVENTS);
        net.link_seed(x, seed);
        seeded.push(x);
        arrived.push((x, at));
        note_joins(net, &arrived, &mut joined_at);
        drop_seeds(net, &mut seeded, &joined_at, seed);
    }
    let end = net.now().after(config_settle(config));
    net.run_until(end, MAX_EVENTS);
    note_joins(net, &arrived, &mut joined_at);
    for x in std::mem::take(&mut seeded) {
        net.unlink_seed(x, seed);
    }
    net.run(MAX_EVENTS);
    let times: Vec<f64> = arrived
        .iter()
        .filter_map(|&(x, at)| joined_at[x as usize].map(|t| (t.0 - at.0) as f64 / 1000.0))
        .collect();
    let newcomers = arrived.len();
    JoinReport {
        joined: times.len(),
        newcomers,
        announcements_per_join: ratio(
            net.sum_stats_opennet(|s| s.announcements_started) - announcements_before,
            newcomers as u64,
        ),
        messages_per_join: ratio(net.counters().messages - before, newcomers as u64),
        join_s_mean: times.iter().sum::<f64>() / times.len().max(1) as f64,
        join_s_max: times.iter().copied().fold(0.0, f64::max),
    }
}

fn config_settle(config: &SimConfig) -> Duration {
    Duration::from_millis(config.latency_ms.1.max(1) * 1000)
}

fn note_joins(net: &Net, arrived: &[(NodeIx, Time)], joined_at: &mut [Option<Time>]) {
    for &(x, _) in arrived {
        let slot = &mut joined_at[x as usize];
        if slot.is_none() && net.node(x).has_enough_peers() {
            *slot = Some(net.now());
        }
    }
}

fn drop_seeds(net: &mut Net, seeded: &mut Vec<NodeIx>, joined_at: &[Option<Time>], seed: NodeIx) {
    let now = net.now();
    seeded.retain(|&x| {
        let done = joined_at[x as usize].is_some_and(|t| now >= t.after(SEED_DROP_DELAY));
        if done {
            net.unlink_seed(x, seed);
        }
        !done
    });
}
