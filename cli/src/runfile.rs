//! What a running `warren node` tells local tools about itself: its process
//! id and the addresses it actually bound (a configured port 0 becomes a real
//! one), in `running.json` in its data directory. Written once every listener
//! is up, removed on a clean stop; a file whose pid is not running is stale.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Name of the file inside the data directory.
pub const RUN_FILE: &str = "running.json";
/// Largest run file read: it is a few hundred bytes.
const MAX_RUN_FILE_BYTES: u64 = 64 * 1024;

/// The addresses a running node listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFile {
    pub pid: u32,
    /// The peer-to-peer listener, as bound.
    pub p2p: SocketAddr,
    /// The local API (HTTP) listener, as bound.
    pub api: SocketAddr,
    /// The browser gateway, as bound.
    pub gateway: SocketAddr,
    /// The FCP 2.0 listener, as bound (none if FCP did not start).
    #[serde(default)]
    pub fcp: Option<SocketAddr>,
    /// This node's noderef, as it hands it to peers.
    pub noderef: String,
}

impl RunFile {
    fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(RUN_FILE)
    }

    /// Writes the file atomically (temporary file, then rename).
    pub fn write(&self, data_dir: &Path) -> Result<()> {
        let path = Self::path(data_dir);
        let tmp = data_dir.join(format!("{RUN_FILE}.tmp"));
        let text = serde_json::to_vec_pretty(self).context("cannot encode the run file")?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Reads the file; `Ok(None)` when there is none.
    pub fn read(data_dir: &Path) -> Result<Option<RunFile>> {
        use std::io::Read as _;
        let path = Self::path(data_dir);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut text = Vec::new();
        file.take(MAX_RUN_FILE_BYTES)
            .read_to_end(&mut text)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&text)
            .map(Some)
            .with_context(|| format!("{} is not a Warren run file", path.display()))
    }

    /// Removes the file (on a clean stop); a missing file is fine.
    pub fn remove(data_dir: &Path) {
        let _ = std::fs::remove_file(Self::path(data_dir));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RunFile::read(dir.path()).unwrap(), None);
        let run = RunFile {
            pid: 42,
            p2p: "127.0.0.1:4000".parse().unwrap(),
            api: "127.0.0.1:4001".parse().unwrap(),
            gateway: "127.0.0.1:4002".parse().unwrap(),
            fcp: Some("127.0.0.1:4002".parse().unwrap()),
            noderef: "warren-noderef:v1:x".into(),
        };
        run.write(dir.path()).unwrap();
        assert_eq!(RunFile::read(dir.path()).unwrap(), Some(run));
        RunFile::remove(dir.path());
        assert_eq!(RunFile::read(dir.path()).unwrap(), None);
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RUN_FILE), b"{not json").unwrap();
        let err = format!("{:#}", RunFile::read(dir.path()).unwrap_err());
        assert!(err.contains(RUN_FILE), "{err}");
    }
}
