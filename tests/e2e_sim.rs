//! `warren sim` prints the figures the routing claims rest on, and the same
//! seed gives the same figures.

mod support;

use support::{stderr, stdout, warren};

/// Figures that depend only on the seed.
const SEEDED: [&str; 5] = [
    "success_rate",
    "hops_mean",
    "hops_p50",
    "hops_p99",
    "messages_per_request",
];
/// Figures of this run's machine, not of the seed.
const TIMINGS: [&str; 2] = ["wall_s", "peak_rss_mb"];

fn sim(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["sim", "--nodes", "1500", "--requests", "300", "--json"];
    all.extend_from_slice(args);
    let out = warren(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(stdout(&out).trim()).expect("one JSON object")
}

#[test]
fn sim_json_has_the_figures_and_is_deterministic() {
    let a = sim(&["--seed", "3"]);
    let b = sim(&["--seed", "3"]);
    for field in SEEDED.iter().chain(&TIMINGS) {
        assert!(a[field].is_number(), "missing {field}: {a}");
    }
    for field in SEEDED {
        assert_eq!(a[field], b[field], "{field} differs for one seed");
    }
    assert!(a["success_rate"].as_f64().unwrap() > 0.95, "{a}");
    let random = sim(&["--seed", "3", "--topology", "random"]);
    assert!(random["success_rate"].as_f64().unwrap() < a["success_rate"].as_f64().unwrap());
}

#[test]
fn sim_rejects_bad_options_with_a_clear_line() {
    let out = warren(&["sim", "--churn", "1.5"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--churn"), "{}", stderr(&out));
}

#[test]
fn sim_plays_malicious_nodes_and_the_anonymity_attacks() {
    let forged = sim(&["--malicious-fraction", "0.1", "--malicious-kind", "forge"]);
    let m = &forged["malicious"];
    assert_eq!(m["nodes"], 150, "{forged}");
    assert!(m["forged_refused"].as_u64().unwrap() > 0, "{forged}");
    assert_eq!(m["wrong_blocks_accepted"], 0, "{forged}");
    let out = warren(&["sim", "--malicious-fraction", "1.5"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--malicious-fraction"),
        "{}",
        stderr(&out)
    );
    let levine = warren(&[
        "sim",
        "--levine",
        "--nodes",
        "500",
        "--degree",
        "10",
        "--file-blocks",
        "40",
        "--trials",
        "2",
    ]);
    let text = stdout(&levine);
    assert!(levine.status.success(), "{}", stderr(&levine));
    assert!(
        text.contains("max-HTL walk")
            && text.contains("per-link coins, greedy")
            && text.contains("control"),
        "{text}"
    );
    let traceback = warren(&["sim", "--traceback", "--nodes", "500", "--trials", "20"]);
    let text = stdout(&traceback);
    assert!(traceback.status.success(), "{}", stderr(&traceback));
    assert_eq!(text.matches("originator found").count(), 3, "{text}");
}
