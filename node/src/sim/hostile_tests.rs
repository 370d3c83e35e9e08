//! Hostile nodes in virtual time: malicious fractions, the Levine et al.
//! downloader test and the Tian et al. traceback, at small scale (the
//! 10,000-node figures come from `warren sim`, see docs/THREAT_MODEL.md).

use rand_chacha::ChaCha8Rng;

use super::levine::{self, HtlPolicy, LevineConfig};
use super::traceback::{self, Scenario, TracebackConfig};
use super::*;

fn attacked(kind: MaliciousKind, fraction: f64, not_found_doubts: u8) -> SimReport {
    run(&SimConfig {
        nodes: 1_000,
        requests: 200,
        seed: 21,
        malicious_fraction: fraction,
        malicious_kind: kind,
        not_found_doubts,
        ..SimConfig::default()
    })
}

#[test]
fn forged_blocks_are_never_accepted() {
    let report = attacked(MaliciousKind::Forge, 0.2, DEFAULT_NOT_FOUND_DOUBTS);
    let m = report.malicious.clone().unwrap();
    assert_eq!(m.nodes, 200);
    assert!(m.forged_refused > 0, "{report:?}");
    assert_eq!(m.wrong_blocks_accepted, 0, "{report:?}");
    assert_eq!(report.failures.wrong_block, 0);
    assert_eq!(
        report.failures.other, 0,
        "every fetch completed: {report:?}"
    );
}

#[test]
fn doubting_claimed_htl_0_beats_nodes_that_answer_not_found_to_everything() {
    let before = attacked(MaliciousKind::Dnf, 0.1, 0);
    let after = attacked(MaliciousKind::Dnf, 0.1, DEFAULT_NOT_FOUND_DOUBTS);
    let m = after.malicious.clone().unwrap();
    assert!(m.requests_attacked > 0 && m.not_found_doubted > 0, "{m:?}");
    assert!(
        after.success_rate > before.success_rate,
        "before {before:?}\nafter {after:?}"
    );
    assert!(after.success_rate >= 0.95, "{after:?}");
    // Without attackers the defence costs an honest network nothing.
    let honest = run(&SimConfig {
        nodes: 1_000,
        requests: 200,
        seed: 21,
        ..SimConfig::default()
    });
    assert!(honest.malicious.is_none());
    assert!(honest.success_rate >= after.success_rate);
}

#[test]
fn nodes_that_accept_then_stall_or_drop_do_not_end_searches() {
    let before = attacked(MaliciousKind::Stall, 0.1, 0);
    let after = attacked(MaliciousKind::Stall, 0.1, DEFAULT_NOT_FOUND_DOUBTS);
    assert!(
        after.success_rate > before.success_rate,
        "before {before:?}\nafter {after:?}"
    );
    assert!(after.success_rate >= 0.9, "{after:?}");
    assert!(after.failures.timeout < before.failures.timeout);
    // A dropped request is never accepted: the accept timeout moves on.
    let dropped = attacked(MaliciousKind::Drop, 0.1, DEFAULT_NOT_FOUND_DOUBTS);
    assert!(dropped.success_rate >= 0.95, "{dropped:?}");
}

/// Messages and failed fetches for 50 keys nobody inserted, in an honest
/// 1,000-node network whose nodes doubt `doubts` times.
fn missing_keys(doubts: u8) -> (u64, usize, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let n = 1_000;
    let (locations, adjacency) = topology::build(&mut rng, n, 20, Topology::Ideal);
    let params = NetParams {
        seed: 4,
        latency_ms: DEFAULT_LATENCY_MS,
        cache_capacity: DEFAULT_CACHE_CAPACITY,
        link_bytes_per_sec: None,
    };
    let config = RoutingConfig {
        not_found_doubts: doubts,
        ..RoutingConfig::default()
    };
    let mut net = Net::new(config, &locations, adjacency, params);
    let clients: Vec<_> = (0..50)
        .map(|i| {
            let key = sim_block(777, i).routing_key();
            net.fetch(Time::ZERO, (i * 19 % n) as NodeIx, key)
        })
        .collect();
    net.run(MAX_EVENTS);
    let failed = clients
        .iter()
        .filter(|c| matches!(net.completion(**c), Some(Completion::Fetch(Err(_)))))
        .count();
    (net.counters().messages, failed, net.live_requests())
}

#[test]
fn doubts_cost_honest_not_found_searches_a_bounded_multiple() {
    let (believing, failed, live) = missing_keys(0);
    assert_eq!((failed, live), (50, 0));
    let (doubting, failed, live) = missing_keys(DEFAULT_NOT_FOUND_DOUBTS);
    // Every search still ends, at a bounded extra cost.
    assert_eq!((failed, live), (50, 0));
    assert!(doubting > believing, "{doubting} vs {believing}");
    assert!(doubting < 20 * believing, "{doubting} vs {believing}");
    println!("messages for 50 missing keys: {believing} believing, {doubting} doubting");
}

fn levine_at(policy: HtlPolicy) -> levine::LevineReport {
    levine::run(&LevineConfig {
        nodes: 1_000,
        degree: 10,
        file_blocks: 60,
        trials: 6,
        seed: 5,
        policy,
        decrement_at_max: None,
    })
}

#[test]
fn the_levine_test_works_against_per_request_coins_less_against_per_link_and_not_against_the_walk()
{
    let control = levine_at(HtlPolicy::PerRequest);
    let warren = levine_at(HtlPolicy::PerLink);
    let walk = levine_at(HtlPolicy::Walk);
    for r in [&control, &warren, &walk] {
        assert!(
            r.downloader_pairs > 0 && r.relayer_pairs > r.downloader_pairs,
            "{r:?}"
        );
        assert!(r.rows.iter().all(|row| row.precision <= 1.0));
    }
    // The control: some threshold flags downloaders with high precision.
    assert!(control.worst_precision >= 0.5, "{control:?}");
    // Per-link coins let relayers look like downloaders at low thresholds...
    let fp = |r: &levine::LevineReport| r.rows.first().map_or(0, |row| row.false_positives);
    assert!(fp(&warren) > fp(&control), "{warren:?}\n{control:?}");
    // ...but the largest share is still the downloader's own link.
    assert!(warren.worst_precision >= 0.5, "{warren:?}");
    // On the walk every downloader is flagged, at every threshold, among
    // several relayers carrying the same whole file.
    assert!(
        walk.rows.iter().all(|row| row.true_positives > 0),
        "{walk:?}"
    );
    assert!(walk.worst_precision <= 0.4, "{walk:?}");
    println!(
        "highest precision: control {:.3}, per-link {:.3}, walk {:.3}",
        control.worst_precision, warren.worst_precision, walk.worst_precision
    );
}

fn traceback_at(scenario: Scenario) -> traceback::TracebackReport {
    traceback::run(&TracebackConfig {
        nodes: 1_000,
        degree: 20,
        colluders: 0.1,
        trials: 60,
        seed: 8,
        scenario,
    })
}

#[test]
fn traceback_finds_nothing_once_ids_are_forgotten_or_pinning_fails() {
    let after = traceback_at(Scenario::AfterCompletion);
    assert!(after.observed > 10, "{after:?}");
    assert_eq!(after.live_found, 0, "{after:?}");
    assert_eq!(after.found, after.first_sender);
    let pinned = traceback_at(Scenario::Pinned);
    assert_eq!(pinned.live_found, 0, "{pinned:?}");
    assert_eq!(pinned.found, pinned.first_sender);
    // While a request is in flight its path is live, and probes find it:
    // the residual the hard lifetime only bounds.
    let in_flight = traceback_at(Scenario::InFlight);
    assert!(in_flight.live_found_mean > 1.0, "{in_flight:?}");
    assert!(in_flight.found > in_flight.first_sender, "{in_flight:?}");
}

/// The doubt in a warm network, where most peers have returned data lately
/// and are believed (`--nocapture` prints the figures).
#[test]
fn doubts_in_a_warm_network_cost_less_and_still_help() {
    let mut figures = Vec::new();
    for doubts in [0, DEFAULT_NOT_FOUND_DOUBTS] {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let n = 1_000;
        let (locations, adjacency) = topology::build(&mut rng, n, 20, Topology::Ideal);
        let params = NetParams {
            seed: 6,
            latency_ms: DEFAULT_LATENCY_MS,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            link_bytes_per_sec: None,
        };
        let config = RoutingConfig {
            not_found_doubts: doubts,
            ..RoutingConfig::default()
        };
        let mut net = Net::new(config, &locations, adjacency, params);
        let warm = 4_000;
        let blocks: Vec<_> = (0..warm).map(|i| sim_block(55, i)).collect();
        for (i, b) in blocks.iter().enumerate() {
            net.insert(Time(i as u64 * 5), (i * 7 % n) as NodeIx, b.clone());
        }
        net.run(MAX_EVENTS);
        let start = net.now();
        for (i, b) in blocks.iter().enumerate() {
            net.fetch(
                Time(start.0 + i as u64 * 5),
                (i * 13 % n) as NodeIx,
                b.routing_key(),
            );
        }
        net.run(MAX_EVENTS);
        net.reset_counters();
        let at = net.now();
        for i in 0..50 {
            let key = sim_block(777, i).routing_key();
            net.fetch(at, (i * 19 % n) as NodeIx, key);
        }
        net.run(MAX_EVENTS);
        let missing = net.counters().messages;
        // Now 10 % of nodes answer "not found" to everything.
        let bad = malicious::pick(&mut rng, n, 0.1);
        let attacked = std::rc::Rc::new(std::cell::Cell::new(0));
        net.set_interceptor(malicious::interceptor(bad, MaliciousKind::Dnf, attacked));
        let at = net.now();
        let clients: Vec<_> = (0..500)
            .map(|i| net.fetch(at, (i * 31 % n) as NodeIx, blocks[i * 3].routing_key()))
            .collect();
        net.run(MAX_EVENTS);
        let ok = clients
            .iter()
            .zip(0..)
            .filter(|(c, i)| {
                net.completion(**c) == Some(&Completion::Fetch(Ok(blocks[i * 3].routing_key())))
            })
            .count();
        println!("warm, doubts {doubts}: 50 missing keys {missing} messages; 10 % dnf: {ok} of 500 found");
        assert_eq!(net.live_requests(), 0);
        figures.push((missing, ok));
    }
    let [(believing, found_believing), (doubting, found_doubting)] = figures[..] else {
        unreachable!("two runs");
    };
    assert!(found_doubting > found_believing);
    assert!(doubting < 20 * believing);
}
