//! One `warren node` process: it answers on its API, keeps its identity and
//! location across restarts, and stops cleanly on SIGTERM and SIGINT.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{kill_pid, WARREN};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn start(dir: &std::path::Path, api: &str) -> Child {
    Command::new(WARREN)
        .args([
            "node",
            "--data-dir",
            dir.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
            "--api",
            api,
            "--gateway",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node")
}

fn noderef(dir: &std::path::Path, api: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let token = std::fs::read_to_string(dir.join("api.token")).unwrap_or_default();
        if let Ok(mut response) = ureq::get(format!("http://{api}/api/status"))
            .header("authorization", format!("Bearer {}", token.trim()))
            .call()
        {
            let text = response.body_mut().read_to_string().expect("body");
            let status: serde_json::Value = serde_json::from_str(&text).expect("json");
            return status["noderef"].as_str().expect("noderef").to_owned();
        }
        assert!(Instant::now() < deadline, "node never answered on {api}");
        std::thread::sleep(Duration::from_millis(50));
    }
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
    let api = format!("127.0.0.1:{}", free_port());
    let mut node = start(dir.path(), &api);
    let first = noderef(dir.path(), &api);
    assert!(stop_with(&mut node, libc::SIGTERM).success());

    // Same data dir: same identity and location (the port is new each time).
    let mut node = start(dir.path(), &api);
    let second = noderef(dir.path(), &api);
    let identity_and_location = |r: &str| r.rsplitn(3, ':').nth(2).map(str::to_owned);
    assert_eq!(
        identity_and_location(&first),
        identity_and_location(&second)
    );
    assert!(stop_with(&mut node, libc::SIGINT).success());
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
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
}
