//! `testnet.json`: which processes a testnet started, so `warren testnet
//! stop` (or a test's cleanup) can stop exactly those, by process id; and the
//! marker that says a directory is a testnet's, so only such a directory is
//! ever cleared.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::process::is_our_node;

/// File in the testnet directory listing the running nodes.
pub const STATE_FILE: &str = "testnet.json";
/// File that marks a directory as made by `warren testnet`.
pub const MARKER_FILE: &str = ".warren-testnet";

/// One node as recorded in `testnet.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    pub index: usize,
    pub pid: u32,
    pub data_dir: PathBuf,
    pub api: SocketAddr,
    /// The node's browser gateway.
    pub gateway: SocketAddr,
    /// The node's FCP 2.0 address.
    #[serde(default)]
    pub fcp: Option<SocketAddr>,
    pub noderef: String,
    /// The nodes this one was wired to (both directions).
    pub neighbours: Vec<usize>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TestnetState {
    pub nodes: Vec<NodeInfo>,
}

impl TestnetState {
    pub fn load(dir: &Path) -> Result<TestnetState> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read(&path).with_context(|| {
            format!(
                "no testnet state in {} (is a testnet running?)",
                dir.display()
            )
        })?;
        serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a testnet state file", path.display()))
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Makes `dir` ready for a new testnet: refuses while one runs there, clears
/// it only if a testnet made it, refuses any other non-empty directory.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    refuse_if_running(dir)?;
    if dir.join(MARKER_FILE).exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    } else if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            bail!(
                "{} exists and was not made by `warren testnet`; choose another --dir (nothing was deleted)",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER_FILE),
        b"made by warren testnet; safe to delete\n",
    )
    .with_context(|| format!("cannot write in {}", dir.display()))
}

fn refuse_if_running(dir: &Path) -> Result<()> {
    let Ok(state) = TestnetState::load(dir) else {
        return Ok(());
    };
    if state.nodes.iter().any(|n| is_our_node(n.pid, &n.data_dir)) {
        bail!(
            "a testnet is already running in {}; stop it with `warren testnet stop --dir {}`",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_testnets_own_directory_is_cleared() {
        let parent = tempfile::tempdir().unwrap();
        let mine = parent.path().join("net");
        prepare_dir(&mine).unwrap();
        std::fs::write(mine.join("leftover"), b"x").unwrap();
        prepare_dir(&mine).unwrap();
        assert!(
            !mine.join("leftover").exists(),
            "a testnet's own dir is cleared"
        );

        let theirs = parent.path().join("precious");
        std::fs::create_dir_all(&theirs).unwrap();
        std::fs::write(theirs.join("thesis.tex"), b"years of work").unwrap();
        let err = format!("{:#}", prepare_dir(&theirs).unwrap_err());
        assert!(err.contains("not made by `warren testnet`"), "{err}");
        assert_eq!(
            std::fs::read(theirs.join("thesis.tex")).unwrap(),
            b"years of work"
        );

        let empty = parent.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        prepare_dir(&empty).unwrap();
        assert!(empty.join(MARKER_FILE).exists());
    }
}
