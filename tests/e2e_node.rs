//! One `warren node` process: it answers on its API, keeps its identity and
//! location across restarts, and stops cleanly on SIGTERM and SIGINT.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{kill_pid, WARREN};
use warren_cli::runfile::RunFile;

fn start(dir: &std::path::Path) -> Child {
    Command::new(WARREN)
        .args([
            "node",
            "--data-dir",
            dir.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
            "--gateway",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node")
}

/// The node's run file once it is listening; its API answers with the same noderef.
fn running(child: &mut Child, dir: &std::path::Path) -> RunFile {
    let deadline = Instant::now() + Duration::from_secs(20);
    let run = warren_cli::testnet::process::wait_running(child, dir, deadline)
        .unwrap_or_else(|err| panic!("{err:#}"));
    let status = warren_cli::api_client::ApiClient::for_data_dir(run.api, dir)
        .status()
        .expect("status");
    assert_eq!(status["noderef"].as_str(), Some(run.noderef.as_str()));
    run
}

fn stop_with(child: &mut Child, signal: i32) -> std::process::ExitStatus {
    kill_pid(child.id(), signal);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "node did not stop on signal {signal}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn node_stops_cleanly_on_signals_and_keeps_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path());
    let first = running(&mut node, dir.path());
    assert!(stop_with(&mut node, libc::SIGTERM).success());
    assert!(
        RunFile::read(dir.path()).unwrap().is_none(),
        "a clean stop removes the run file"
    );
    let config = dir.path().join("config.toml");
    assert!(!config.exists(), "the node wrote a config file of its own");

    // Same data dir: same identity and location, and the peer port it got
    // the first time, so peers that know it can dial it back.
    let mut node = start(dir.path());
    let second = running(&mut node, dir.path());
    assert_eq!(first.noderef, second.noderef);
    assert_eq!(first.p2p, second.p2p);
    assert!(stop_with(&mut node, libc::SIGINT).success());
    // Nothing in the data directory is readable by anyone else: not the
    // store, not the state, not the list of peers.
    let mut found = 0;
    assert_private(dir.path(), &mut found);
    assert!(found >= 5, "only {found} entries checked");
    // The identity file is private.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("identity.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(
        mode & 0o077,
        0,
        "identity.key is readable by others: {mode:o}"
    );
}

/// Asserts `path` and everything below it has no group or other permission bits.
fn assert_private(path: &std::path::Path, found: &mut usize) {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::symlink_metadata(path).unwrap();
    let mode = meta.permissions().mode();
    assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", path.display());
    *found += 1;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            assert_private(&entry.unwrap().path(), found);
        }
    }
}

#[test]
fn an_existing_data_directory_is_made_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut node = start(dir.path());
    running(&mut node, dir.path());
    assert!(stop_with(&mut node, libc::SIGTERM).success());
    let mut found = 0;
    assert_private(dir.path(), &mut found);
}

#[test]
fn api_refuses_a_non_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(WARREN)
        .args([
            "node",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--api",
            "0.0.0.0:0",
            "--gateway",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
}
