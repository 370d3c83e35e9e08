//! `warren testnet`: both ways of stopping it (`warren testnet stop`, and
//! Ctrl-C on a testnet in the foreground) end every node process.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{is_running, kill_pid, stdout, TestNet, WARREN};

const NODES: usize = 3;

fn wait_gone(pids: &[u32], limit: Duration) {
    let deadline = Instant::now() + limit;
    while pids.iter().any(|&pid| is_running(pid)) {
        assert!(
            Instant::now() < deadline,
            "nodes still running: {:?}",
            pids.iter()
                .filter(|&&pid| is_running(pid))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn testnet_stop_ends_every_node() {
    let mut net = TestNet::start(NODES);
    let pids: Vec<u32> = net.nodes.iter().map(|n| n.pid).collect();
    assert!(pids.iter().all(|&pid| is_running(pid)));
    let out = net.stop_with_cli();
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(
        stdout(&out).contains(&format!("stopped {NODES} node(s)")),
        "{}",
        stdout(&out)
    );
    // `stop` returns once the nodes are gone, not merely signalled.
    wait_gone(&pids, Duration::ZERO);
    assert!(!net.net_dir().join("testnet.json").exists());
    // A second stop has nothing to stop and says so.
    let again = net.stop_with_cli();
    assert!(!again.status.success());
    assert!(support::stderr(&again).contains("no testnet state"));
}

/// Kills the listed pids if the test fails before the testnet stops them.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if is_running(pid) {
                kill_pid(pid, libc::SIGKILL);
            }
        }
    }
}

#[test]
fn ctrl_c_on_a_foreground_testnet_ends_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let net_dir = dir.path().join("net");
    let mut launcher = Command::new(WARREN)
        .args(["testnet", "--nodes", &NODES.to_string(), "--dir"])
        .arg(&net_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(vec![launcher.id()]);
    // It says how to stop it once every node is up.
    let lines = BufReader::new(launcher.stdout.take().unwrap()).lines();
    let mut said = Vec::new();
    for line in lines {
        let line = line.unwrap();
        let ready = line.contains("Ctrl-C stops every node");
        said.push(line);
        if ready {
            break;
        }
    }
    assert!(
        said.iter().any(|l| l.contains("Ctrl-C")),
        "the testnet never came up: {said:?}"
    );
    let state = warren_cli::testnet::TestnetState::load(&net_dir).unwrap();
    let pids: Vec<u32> = state.nodes.iter().map(|n| n.pid).collect();
    assert_eq!(pids.len(), NODES);
    guard.0.extend(&pids);
    assert!(pids.iter().all(|&pid| is_running(pid)));

    kill_pid(launcher.id(), libc::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = launcher.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the testnet did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    wait_gone(&pids, Duration::ZERO);
    assert!(!net_dir.join("testnet.json").exists());
}

#[test]
fn testnet_refuses_to_clear_a_directory_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("thesis.tex");
    std::fs::write(&precious, b"years of work").unwrap();
    let out = support::warren(&[
        "testnet",
        "--nodes",
        "2",
        "--detach",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = support::stderr(&out);
    assert!(err.contains("not made by `warren testnet`"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(std::fs::read(&precious).unwrap(), b"years of work");
}
