//! The traceback attack of Tian et al. (INFOCOM 2013), played in the
//! simulator: colluding nodes that receive a request probe nodes with the
//! request's id. A node where that id is live answers `RejectedLoop`, so the
//! probes map the nodes the request is still live at, and the one of those
//! farthest from the key (greedy routing heads toward it) is guessed to be
//! the originator.
//!
//! The probes here read `Node::is_request_live` directly, at every node the
//! colluders want: an upper bound on what real probes (which must reach each
//! node, and which start a request where the id is not live) can learn.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;

use core::time::Duration;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use warren_crypto::RoutingKey;

use super::net::{Intercept, Net, NetParams, NodeIx};
use super::{
    malicious, sim_block, topology, Topology, DEFAULT_CACHE_CAPACITY, DEFAULT_LATENCY_MS,
    MAX_EVENTS,
};
use crate::routing::{RoutingConfig, Time};
use crate::wire::{Message, RequestId};

/// Virtual time the simulation is stepped by while waiting for a colluder.
const STEP_MS: u64 = 50;
/// How long after seeing a request stalling colluders probe.
pub const IN_FLIGHT_PROBE_DELAY: Duration = Duration::from_secs(2);
/// How long pinning colluders keep re-sending `Accepted` before they probe.
pub const PINNED_PROBE_DELAY: Duration = Duration::from_secs(600);
/// Interval of the pinning colluders' repeated `Accepted`.
const PIN_INTERVAL: Duration = Duration::from_secs(30);

/// When the colluders probe, and what they do with the request meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Relay it honestly and probe once it has completed: ids are forgotten
    /// on completion, so nothing is left to find.
    AfterCompletion,
    /// Accept it, never answer, and probe 2 s later while the path still
    /// waits (the search timeout): not defended.
    InFlight,
    /// Accept it and re-send `Accepted` every 30 s to keep it live, probing
    /// after 10 minutes. Before the fix each `Accepted` reset the deadline
    /// (the path stayed live, as in `InFlight`); now the second one is
    /// misbehaviour and every request has a hard lifetime.
    Pinned,
}

impl core::fmt::Display for Scenario {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Scenario::AfterCompletion => "probe after completion (forgotten ids)",
            Scenario::InFlight => "stall and probe in flight (2 s)",
            Scenario::Pinned => "pin with repeated Accepted, probe at 10 min",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TracebackConfig {
    pub nodes: usize,
    pub degree: usize,
    /// Share of nodes colluding.
    pub colluders: f64,
    /// Fetches from random honest originators.
    pub trials: usize,
    pub seed: u64,
    pub scenario: Scenario,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TracebackReport {
    pub config: TracebackConfig,
    pub degree_mean: f64,
    /// Fetches some colluder received.
    pub observed: u64,
    /// Of those, how often the probes found the originator, and how often
    /// the first sender was it.
    pub found: u64,
    pub first_sender: u64,
    /// Probes that found the id live, over all observed fetches.
    pub live_found: u64,
    /// Of those, how often the probes found the originator.
    pub found_rate: f64,
    /// How often the sender to the first colluder was the originator
    /// (the guess with no probe at all).
    pub first_sender_rate: f64,
    /// 1 / mean degree: a guess among the first sender's neighbourhood.
    pub baseline: f64,
    /// Nodes the probes found the id live at, per observed fetch.
    pub live_found_mean: f64,
}

/// What the interceptor saw: the first colluder to receive the fetch.
#[derive(Debug, Clone, Copy)]
struct Sighting {
    colluder: NodeIx,
    sender: NodeIx,
    id: RequestId,
    at: Time,
}

/// Runs the experiment.
pub fn run(config: &TracebackConfig) -> TracebackReport {
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
    let mut net = Net::new(RoutingConfig::default(), &locations, adjacency, params);
    let n = config.nodes;
    let bad = malicious::pick(&mut rng, n, config.colluders);
    let target: Rc<RefCell<Option<RoutingKey>>> = Rc::default();
    let sighting: Rc<RefCell<Option<Sighting>>> = Rc::default();
    let now = Rc::new(core::cell::Cell::new(Time::ZERO));
    {
        let (bad, target, sighting, now) =
            (bad.clone(), target.clone(), sighting.clone(), now.clone());
        let stall = config.scenario != Scenario::AfterCompletion;
        net.set_interceptor(Box::new(move |from, to, msg| {
            let Message::Request { id, key, .. } = msg else {
                return Intercept::Deliver;
            };
            if !bad[to as usize] || bad[from as usize] || *target.borrow() != Some(*key) {
                return Intercept::Deliver;
            }
            let mut s = sighting.borrow_mut();
            if s.is_none() {
                *s = Some(Sighting {
                    colluder: to,
                    sender: from,
                    id: *id,
                    at: now.get(),
                });
            }
            if stall {
                Intercept::Answer(Message::Accepted { id: *id })
            } else {
                Intercept::Deliver
            }
        }));
    }
    let (mut observed, mut found, mut first_sender, mut live_total) = (0u64, 0u64, 0u64, 0u64);
    for trial in 0..config.trials {
        let block = sim_block(config.seed ^ 0x7b_ac4b, trial);
        let key = block.routing_key();
        let inserter = rng.gen_range(0..n) as NodeIx;
        let at = net.now();
        net.insert(at, inserter, block);
        net.run(MAX_EVENTS);
        let originator = loop {
            let x = rng.gen_range(0..n) as NodeIx;
            if !bad[x as usize] && x != inserter {
                break x;
            }
        };
        *target.borrow_mut() = Some(key);
        *sighting.borrow_mut() = None;
        let start = net.now();
        net.fetch(start, originator, key);
        // Step until a colluder sees it or everything has finished.
        loop {
            now.set(net.now());
            let until = Time(net.now().0 + STEP_MS);
            let ran = net.run_until(until, MAX_EVENTS);
            if sighting.borrow().is_some() || (ran == 0 && net.live_requests() == 0) {
                break;
            }
        }
        let seen = *sighting.borrow();
        let Some(seen) = seen else {
            net.run(MAX_EVENTS);
            continue;
        };
        observed += 1;
        match config.scenario {
            Scenario::AfterCompletion => {
                net.run(MAX_EVENTS);
            }
            Scenario::InFlight => {
                net.run_until(seen.at.after(IN_FLIGHT_PROBE_DELAY), MAX_EVENTS);
            }
            Scenario::Pinned => {
                let mut t = seen.at.after(PIN_INTERVAL);
                while t < seen.at.after(PINNED_PROBE_DELAY) {
                    let msg = Message::Accepted { id: seen.id };
                    net.inject(t, seen.colluder, seen.sender, msg);
                    t = t.after(PIN_INTERVAL);
                }
                net.run_until(seen.at.after(PINNED_PROBE_DELAY), MAX_EVENTS);
            }
        }
        let live = live_component(&net, &bad, seen.sender, seen.id);
        live_total += live.len() as u64;
        let d = |x: NodeIx| net.node(x).location().distance(key.location());
        let guess = live
            .iter()
            .copied()
            .max_by_key(|&x| (d(x), x))
            .unwrap_or(seen.sender);
        found += u64::from(guess == originator);
        first_sender += u64::from(seen.sender == originator);
        *target.borrow_mut() = None;
        net.run(MAX_EVENTS);
    }
    let degree_mean = links as f64 / n.max(1) as f64;
    TracebackReport {
        config: config.clone(),
        degree_mean,
        observed,
        found,
        first_sender,
        live_found: live_total,
        found_rate: super::ratio(found, observed),
        first_sender_rate: super::ratio(first_sender, observed),
        baseline: 1.0 / degree_mean.max(1.0),
        live_found_mean: super::ratio(live_total, observed),
    }
}

/// The honest nodes where `id` is live, reachable from `start` through
/// nodes where it is live (the request's path), by breadth-first probing.
fn live_component(net: &Net, bad: &[bool], start: NodeIx, id: RequestId) -> Vec<NodeIx> {
    let live = |x: NodeIx| !bad[x as usize] && net.node(x).is_request_live(id);
    if !live(start) {
        return Vec::new();
    }
    let mut seen: HashSet<NodeIx> = HashSet::from([start]);
    let mut queue = VecDeque::from([start]);
    let mut component = Vec::new();
    while let Some(x) = queue.pop_front() {
        component.push(x);
        for &y in net.neighbours(x) {
            if live(y) && seen.insert(y) {
                queue.push_back(y);
            }
        }
    }
    component
}
