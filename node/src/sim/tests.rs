//! Multi-node runs of the routing core in virtual time.

use rand_chacha::ChaCha8Rng;
use warren_crypto::BLOCK_LEN;

use super::*;
use crate::routing::{Area, Misbehaviour, RoutingConfig};
use crate::wire::Message;

fn small(topology: Topology, seed: u64) -> SimConfig {
    SimConfig {
        nodes: 2_000,
        degree: 20,
        requests: 200,
        topology,
        seed,
        ..SimConfig::default()
    }
}

/// A network of `n` ideal-topology nodes with default routing.
fn ideal_net(n: usize, seed: u64) -> Net {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (locations, adjacency) = topology::build(&mut rng, n, 20, Topology::Ideal);
    let params = NetParams {
        seed,
        latency_ms: DEFAULT_LATENCY_MS,
        cache_capacity: DEFAULT_CACHE_CAPACITY,
        link_bytes_per_sec: None,
    };
    Net::new(RoutingConfig::default(), &locations, adjacency, params)
}

/// Inserts `count` blocks from random nodes and runs until they are done.
fn insert_blocks(net: &mut Net, count: usize) -> Vec<RoutingKey> {
    let mut keys = Vec::new();
    for i in 0..count {
        let block = sim_block(99, i);
        keys.push(block.routing_key());
        let n = net.len();
        let x = net.rng().gen_range(0..n) as NodeIx;
        let at = net.now();
        let client = net.insert(at, x, block);
        net.run(MAX_EVENTS);
        assert_eq!(net.completion(client), Some(&Completion::Insert(Ok(()))));
    }
    keys
}

/// A fixed originator for the `i`th fetch.
fn originator(net: &Net, i: usize) -> NodeIx {
    ((i * 37 + 11) % net.len()) as NodeIx
}

/// The peer `x` sends a request for `key` to first.
fn first_hop(net: &Net, x: NodeIx, key: &RoutingKey) -> NodeIx {
    net.neighbours(x)
        .iter()
        .copied()
        .filter(|&y| net.is_online(y))
        .min_by_key(|&y| (net.node(y).location().distance(key.location()), y))
        .unwrap()
}

/// Fetches the `i`th key from `originator(i)`, all at once; returns the successes.
fn fetch_all(net: &mut Net, keys: &[RoutingKey]) -> usize {
    let at = net.now();
    let clients: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| net.fetch(at, originator(net, i), *key))
        .collect();
    net.run(MAX_EVENTS);
    clients
        .iter()
        .zip(keys)
        .filter(|(c, k)| {
            let done = net.completion(**c);
            assert!(done.is_some(), "every fetch completes");
            done == Some(&Completion::Fetch(Ok(**k)))
        })
        .count()
}

/// The first hops of every fetch `fetch_all` will make.
fn first_hops(net: &Net, keys: &[RoutingKey]) -> Vec<NodeIx> {
    let mut hops: Vec<NodeIx> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| first_hop(net, originator(net, i), key))
        .collect();
    hops.sort_unstable();
    hops.dedup();
    hops
}

#[test]
fn ideal_topology_routes_well() {
    let report = run(&small(Topology::Ideal, 7));
    assert!(report.insert_success_rate >= 1.0, "{report:?}");
    assert!(report.success_rate >= 0.99, "{report:?}");
    assert!(report.hops_mean <= 7.0, "{report:?}");
    assert!(report.hops_p50 <= report.hops_p99);
    assert!(report.messages_per_request > report.hops_mean);
}

#[test]
fn random_topology_is_the_worse_control() {
    let ideal = run(&small(Topology::Ideal, 7));
    let random = run(&small(Topology::Random, 7));
    assert!(random.success_rate < 0.9, "{random:?}");
    assert!(random.success_rate < ideal.success_rate);
    assert!(random.hops_mean > ideal.hops_mean);
}

#[test]
fn the_same_seed_gives_the_same_figures() {
    let config = SimConfig {
        nodes: 1_000,
        requests: 100,
        churn: 0.05,
        ..SimConfig::default()
    };
    let a = run(&config).without_timings();
    let b = run(&config).without_timings();
    assert_eq!(a, b);
    let c = run(&SimConfig { seed: 2, ..config }).without_timings();
    assert_ne!(a, c);
}

#[test]
fn many_nodes_finish_every_request_and_forget_every_id() {
    let mut net = ideal_net(1_000, 3);
    let keys = insert_blocks(&mut net, 40);
    let insert_messages = net.counters().messages;
    let copies = net.store_copies();
    for key in &keys {
        // The sink and the closest peer it hands the second copy to.
        assert_eq!(copies.get(key), Some(&2), "store copies of {key:?}");
        let sink = (0..net.len() as NodeIx)
            .filter(|&x| net.holds(x, key, Area::Store))
            .min_by_key(|&x| net.node(x).location().distance(key.location()))
            .unwrap();
        let d = |x: NodeIx| net.node(x).location().distance(key.location());
        assert!(net.neighbours(sink).iter().all(|&y| d(sink) < d(y)));
    }
    // Inserts end at the sink: about a dozen hops of four messages each, not
    // the hundred-odd messages of an insert that runs until its HTL is spent.
    let per_insert = insert_messages / keys.len() as u64;
    assert!(per_insert <= 40, "{per_insert} messages per insert");
    assert_eq!(net.sum_stats(|s| s.loops_rejected), 0, "no insert looped");
    assert_eq!(fetch_all(&mut net, &keys), keys.len());
    assert_eq!(net.live_requests(), 0);
}

#[test]
fn routing_survives_churn() {
    let config = SimConfig {
        churn: 0.1,
        ..small(Topology::Ideal, 11)
    };
    let report = run(&config);
    assert_eq!(
        report.failures.other, 0,
        "every fetch completed: {report:?}"
    );
    assert!(report.success_rate >= 0.9, "{report:?}");
}

#[test]
fn a_node_returning_forged_data_is_routed_around_and_reported() {
    let mut net = ideal_net(500, 5);
    let keys = insert_blocks(&mut net, 30);
    // Every first hop of the fetches that stores none of the blocks lies: it
    // answers every request it gets with a forged block. (A liar holding a
    // block's copies would make that block unreachable, not routed around.)
    let mut liars = first_hops(&net, &keys);
    liars.retain(|&x| !keys.iter().any(|k| net.holds(x, k, Area::Store)));
    assert!(liars.len() > keys.len() / 2, "{liars:?}");
    let is_liar = {
        let liars = liars.clone();
        move |x: NodeIx| liars.binary_search(&x).is_ok()
    };
    net.set_interceptor(Box::new(move |_from, to, msg| match msg {
        Message::Request { id, .. } if is_liar(to) => Intercept::Answer(Message::DataFound {
            id: *id,
            block: vec![0x5A; BLOCK_LEN],
        }),
        _ => Intercept::Deliver,
    }));
    assert_eq!(fetch_all(&mut net, &keys), keys.len());
    let reports = &net.counters().misbehaved;
    assert!(!reports.is_empty());
    assert!(reports
        .iter()
        .all(|&(_, peer, why)| liars.contains(&peer) && why == Misbehaviour::ForgedBlock));
    assert_eq!(net.live_requests(), 0);
}

#[test]
fn requests_that_loop_are_rejected_and_still_finish() {
    // A dense little clique: a missing key makes the request visit everyone,
    // running into nodes it has already been through.
    let mut net = ideal_net(12, 8);
    let missing = sim_block(1234, 0).routing_key();
    let client = net.fetch(Time::ZERO, 0, missing);
    net.run(MAX_EVENTS);
    assert!(matches!(
        net.completion(client),
        Some(Completion::Fetch(Err(_)))
    ));
    assert!(net.sum_stats(|s| s.loops_rejected) > 0);
    assert_eq!(net.live_requests(), 0);
}

#[test]
fn an_overloaded_node_is_routed_around() {
    let mut net = ideal_net(400, 6);
    let keys = insert_blocks(&mut net, 30);
    let busy = first_hops(&net, &keys);
    let config = RoutingConfig {
        max_requests_per_peer: 0,
        ..RoutingConfig::default()
    };
    for &x in &busy {
        net.set_node_config(x, config.clone());
    }
    assert_eq!(fetch_all(&mut net, &keys), keys.len());
    let refused: u64 = busy
        .iter()
        .map(|&x| net.node(x).stats().overloaded_sent)
        .sum();
    assert!(refused > 0);
    assert_eq!(net.live_requests(), 0);
}

#[test]
fn a_peer_vanishing_mid_request_is_routed_around() {
    let mut net = ideal_net(400, 9);
    let keys = insert_blocks(&mut net, 10);
    for (i, key) in keys.iter().enumerate() {
        let held =
            |net: &Net, x: NodeIx| net.holds(x, key, Area::Store) || net.holds(x, key, Area::Cache);
        // An originator that must route (it holds nothing) and whose first hop
        // is not the only holder: the fetch has a way around it to a copy.
        let x = (0..net.len())
            .map(|j| ((i * 37 + j) % net.len()) as NodeIx)
            .find(|&x| {
                let hop = first_hop(&net, x, key);
                !held(&net, x) && (0..net.len() as NodeIx).any(|y| y != hop && held(&net, y))
            })
            .unwrap();
        let first_hop = first_hop(&net, x, key);
        let at = net.now();
        let client = net.fetch(at, x, *key);
        // Gone after the request left and before it arrived.
        net.take_down(Time(at.0 + 1), first_hop);
        net.run(MAX_EVENTS);
        assert_eq!(net.completion(client), Some(&Completion::Fetch(Ok(*key))));
        net.bring_up(net.now(), first_hop);
        net.run(MAX_EVENTS);
    }
    assert_eq!(net.live_requests(), 0);
}

#[test]
fn a_block_outlives_its_sink_going_offline() {
    let mut net = ideal_net(400, 12);
    let keys = insert_blocks(&mut net, 10);
    let d =
        |net: &Net, x: NodeIx, key: &RoutingKey| net.node(x).location().distance(key.location());
    let mut sinks = Vec::new();
    for key in &keys {
        let sink = (0..net.len() as NodeIx)
            .filter(|&x| net.holds(x, key, Area::Store))
            .min_by_key(|&x| d(&net, x, key))
            .unwrap();
        net.take_down(net.now(), sink);
        sinks.push(sink);
    }
    net.run(MAX_EVENTS);
    let online_originators = keys
        .iter()
        .enumerate()
        .all(|(i, _)| net.is_online(originator(&net, i)));
    assert!(online_originators);
    // The second copy, at the sink's closest peer, answers instead.
    assert_eq!(fetch_all(&mut net, &keys), keys.len());
    assert_eq!(net.live_requests(), 0);
}

#[test]
fn the_random_control_collapses_as_the_network_grows() {
    // Without doubting "not found" claims: its second searches would blur
    // what the graph alone gives (hostile_tests measure the defence).
    let at = |nodes| {
        run(&SimConfig {
            nodes,
            requests: 150,
            topology: Topology::Random,
            not_found_doubts: 0,
            ..SimConfig::default()
        })
        .success_rate
    };
    let (small, large) = (at(500), at(6_000));
    assert!(
        large < small / 2.0,
        "500 nodes: {small}, 6000 nodes: {large}"
    );
}

#[test]
fn path_folding_reshapes_a_random_start_into_a_better_graph() {
    let config = SimConfig {
        nodes: 1_000,
        requests: 500,
        topology: Topology::Folded,
        fold_rounds: 12,
        seed: 3,
        // As in the random control test: the graph alone, without doubts.
        not_found_doubts: 0,
        ..SimConfig::default()
    };
    let report = run(&config);
    let first = &report.curve[0];
    let last = report.curve.last().unwrap();
    assert_eq!(report.curve.len(), 13);
    assert!(report.opennet.folds_taken > 0, "{:?}", report.opennet);
    assert!(report.opennet.announcements_started > 0);
    assert!(last.success_rate > first.success_rate, "{:?}", report.curve);
    assert!(last.hops_mean < first.hops_mean, "{:?}", report.curve);
    // Fewer long links than the random start: folding makes short ones.
    assert!(
        last.long_link_share < first.long_link_share,
        "{:?}",
        report.curve
    );
    let random = run(&SimConfig {
        topology: Topology::Random,
        ..config
    });
    assert!(report.success_rate > random.success_rate, "{random:?}");
}

#[test]
fn newcomers_joining_through_one_seed_reach_their_threshold() {
    let config = SimConfig {
        nodes: 300,
        requests: 100,
        topology: Topology::Join,
        fold_rounds: 1,
        seed: 4,
        ..SimConfig::default()
    };
    let report = run(&config);
    let join = report.join.clone().unwrap();
    assert_eq!(join.newcomers, 299);
    assert!(
        join.joined as f64 >= 0.9 * join.newcomers as f64,
        "{join:?}"
    );
    assert!(join.announcements_per_join >= 1.0, "{join:?}");
    // Seed links are gone at the end: the seed is not everyone's peer.
    assert!(report.degree_mean > 5.0, "{report:?}");
    assert!(report.success_rate > 0.0, "{report:?}");
}
