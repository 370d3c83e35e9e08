//! A short soak: `scripts/soak.py` (the soak benchmark, real node processes
//! on loopback) for one minute at twice the network's capacity, then the
//! bounds it must keep: resident memory of every node 30 s after the load,
//! no failed fetch leaving a file behind, every failure named by its cause
//! (never a timeout or an unexplained error), and young documents still
//! fetched. The 30-minute run and its figures: `docs/OPERATIONS.md`, "Soak".

use std::path::Path;
use std::process::Command;

/// Idle bound asserted here (MiB resident 30 s after the load, a node with
/// its erasure-code workers): the project's goal, 30 MB. The nodes of this
/// soak idle at 17-20 MiB since the code runs in workers that exit when
/// idle (`docs/OPERATIONS.md`, "Soak"); they once idled at 39-63 MB.
const IDLE_BOUND_MIB: &str = "28.6";

fn python() -> std::path::PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-test/bin/python");
    assert!(
        python.exists(),
        "the tests' Python is not installed at {}: run `bash scripts/install-test-deps.sh`",
        python.display()
    );
    python
}

#[test]
fn a_minute_past_capacity_keeps_memory_bounded_and_names_every_failure() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tempfile::tempdir().expect("tempdir");
    let status = Command::new(python())
        .arg(root.join("scripts/soak.py"))
        .args([
            "--minutes",
            "1",
            "--nodes",
            "4",
            "--store-mib",
            "4",
            "--cache-mib",
            "2",
        ])
        .args([
            "--max-kib",
            "1024",
            "--overfill",
            "2",
            "--idle-s",
            "30",
            "--sample-s",
            "5",
        ])
        .args(["--seed", "3", "--no-chart", "--probe-docs", "0"])
        .args(["--assert-idle-mib", IDLE_BOUND_MIB])
        .arg("--exe")
        .arg(env!("CARGO_BIN_EXE_warren"))
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("run scripts/soak.py");
    // Exit 1: a node above the idle bound, or a failed fetch left a file.
    assert!(
        status.success(),
        "the soak failed its bounds (see its output above)"
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("soak.json")).expect("soak.json"))
            .expect("soak.json is JSON");
    let report = &saved["report"];
    let over = report["inserted_over_capacity"].as_f64().unwrap_or(0.0);
    assert!(
        over >= 1.2,
        "the load did not go past capacity ({over:.2}x): the soak proves nothing"
    );
    assert_eq!(
        report["inserts"]["failed"], 0,
        "inserts failed: {}",
        report["inserts"]
    );
    let causes = report["causes"].as_object().expect("causes");
    for unclear in ["timeout", "other"] {
        assert!(
            causes.get(unclear).is_none(),
            "fetches failed with cause {unclear:?}: {causes:?}"
        );
    }
    let young = &report["by_age"][0];
    let (ok, fetches) = (
        young["ok"].as_u64().unwrap_or(0),
        young["fetches"].as_u64().unwrap_or(0),
    );
    assert!(
        fetches > 0 && ok * 10 >= fetches * 8,
        "young documents: {ok} of {fetches} fetched"
    );
}
