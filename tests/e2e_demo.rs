//! The README's main job, small: `warren demo` starts a local network of real
//! node processes, inserts a document, fetches it several hops away, checks it
//! and stops everything.

mod support;

use support::{stderr, stdout, warren};

#[test]
fn demo_inserts_and_fetches_across_a_local_network() {
    let dir = tempfile::tempdir().unwrap();
    let out = warren(&[
        "demo",
        "--nodes",
        "8",
        "--size-mib",
        "2",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "demo failed: {}\n{text}",
        stderr(&out)
    );
    assert!(text.contains("key: CHK@"), "{text}");
    assert!(text.contains("fetched document is identical"), "{text}");
    // Every node process was stopped: the state file is gone.
    assert!(!dir.path().join("net/testnet.json").exists());
}
