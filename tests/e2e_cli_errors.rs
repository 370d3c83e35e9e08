//! The CLI fails with one clear line and a non-zero exit on bad input, and
//! leaves no half-written output behind.

mod support;

use support::{stderr, warren};

/// A loopback address where (almost certainly) no node listens.
fn dead_api() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    addr
}

#[test]
fn malformed_key_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.bin");
    let out = warren(&[
        "fetch",
        "CHK@not-a-key",
        "-o",
        out_path.to_str().unwrap(),
        "--api",
        &dead_api(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("not a valid key"), "{err}");
    assert!(!out_path.exists());
}

#[test]
fn missing_file_is_one_clear_line() {
    let out = warren(&[
        "insert",
        "/nonexistent/warren-test-file",
        "--api",
        &dead_api(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot read /nonexistent/warren-test-file"),
        "{err}"
    );
}

#[test]
fn no_running_node_says_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("doc.txt");
    std::fs::write(&file, b"hello").unwrap();
    let out = warren(&["insert", file.to_str().unwrap(), "--api", &dead_api()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("warren node"), "{err}");
}

#[test]
fn fetch_without_a_name_asks_for_an_output_path() {
    let (_, key) = warren_crypto::ChkBlock::encode(b"x").unwrap();
    let uri = warren_crypto::ChkUri::new(key, warren_crypto::Extra::DATA).to_string();
    let out = warren(&["fetch", &uri, "--api", &dead_api()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pass -o"), "{}", stderr(&out));
}

#[test]
fn a_node_that_cannot_start_names_each_cause_once() {
    // Its peer port is taken by this test: the error chain runs from the
    // command down to the OS, and each link of it is said exactly once.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = warren(&[
        "node",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        &listen,
        "--api",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let last = err.trim().lines().last().unwrap_or_default();
    for part in [
        "cannot start the node",
        &format!("cannot listen for peers on {listen}"),
        "in use",
    ] {
        assert_eq!(last.matches(part).count(), 1, "{part:?} in {last}");
    }
}

#[test]
fn a_bandwidth_limit_too_low_to_work_is_refused_before_the_node_starts() {
    let dir = tempfile::tempdir().unwrap();
    let out = warren(&[
        "node",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--api",
        "127.0.0.1:0",
        "--bandwidth-out-kib",
        "8",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let last = err.trim().lines().last().unwrap_or_default();
    assert!(
        last.contains("--bandwidth-out-kib")
            && last.contains("8 KiB/s")
            && last.contains("16 KiB/s"),
        "{last}"
    );
}
