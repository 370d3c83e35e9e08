//! Node processes: started with their own log and process group, found
//! through the run file they write, and signalled only by process id after
//! checking that the id still belongs to our node.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::runfile::RunFile;

/// Name of a testnet node's log file inside its data directory.
pub const LOG_FILE: &str = "node.log";
/// How often a waiting loop looks again.
pub const POLL: Duration = Duration::from_millis(50);
/// Lines of a node's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 20;

/// Starts `warren node --data-dir DIR`, logging to `DIR/node.log`.
pub fn spawn_node(exe: &Path, data_dir: &Path, log_filter: &str) -> Result<Child> {
    let log_path = data_dir.join(LOG_FILE);
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    Command::new(exe)
        .arg("node")
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", log_filter)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Own process group: a Ctrl-C meant for a later command in this
        // terminal must not reach a detached network.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))
}

/// Waits until `child` has written its run file (every listener bound),
/// naming the node and showing its log if it exits or the deadline passes.
pub fn wait_running(child: &mut Child, data_dir: &Path, deadline: Instant) -> Result<RunFile> {
    loop {
        // A SIGKILLed node leaves its run file behind: only ours counts.
        if let Some(run) = RunFile::read(data_dir)?.filter(|r| r.pid == child.id()) {
            return Ok(run);
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the node in {} exited during start-up ({status}); its log:\n{}",
                data_dir.display(),
                log_tail(data_dir)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the node in {} did not start listening in time; its log:\n{}",
                data_dir.display(),
                log_tail(data_dir)
            );
        }
        std::thread::sleep(POLL);
    }
}

pub fn log_tail(data_dir: &Path) -> String {
    let text = std::fs::read_to_string(data_dir.join(LOG_FILE)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// True if `pid` is alive and is a warren node for `data_dir`: a pid may have
/// been reused since the state file was written, and we never signal strangers.
pub fn is_our_node(pid: u32, data_dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let dir = data_dir.as_os_str().as_encoded_bytes();
    args.contains(&b"node".as_slice()) && args.contains(&dir)
}

/// Sends `signal` to `pid` (nothing happens for an id that does not fit).
#[allow(unsafe_code)]
pub fn send_signal(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// SIGTERM to each of our nodes, then SIGKILL to any still running at the
/// deadline; returns how many were ours.
pub fn stop_nodes(nodes: &[(u32, &Path)], limit: Duration) -> usize {
    let ours: Vec<&(u32, &Path)> = nodes
        .iter()
        .filter(|(pid, dir)| is_our_node(*pid, dir))
        .collect();
    for (pid, _) in &ours {
        send_signal(*pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + limit;
    for (pid, dir) in &ours {
        while is_our_node(*pid, dir) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        if is_our_node(*pid, dir) {
            send_signal(*pid, libc::SIGKILL);
        }
    }
    ours.len()
}
