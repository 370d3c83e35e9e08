use super::*;

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

#[test]
fn ideal_topology_routes_well() {
    let report = run(&small(Topology::Ideal, 7));
    println!("{}", serde_json::to_string(&report).unwrap());
    assert!(report.insert_success_rate > 0.99, "{report:?}");
    assert!(report.success_rate >= 0.98, "{report:?}");
    assert!(report.hops_mean <= 7.0, "{report:?}");
}

#[test]
fn random_topology_is_worse() {
    let report = run(&small(Topology::Random, 7));
    println!("{}", serde_json::to_string(&report).unwrap());
    assert!(report.success_rate < 0.9, "{report:?}");
}
