//! FCP 2.0, Freenet's client protocol, on 127.0.0.1:9481: existing Freenet
//! client programs (pyfreenet3's `fcpput`/`fcpget` and Python API, jSite,
//! freesitemgr) insert and fetch through Warren unchanged.
//!
//! - [`message`]: the sans-IO line decoder and the encoder, with size limits.
//! - [`codes`]: Freenet's numeric `ProtocolError`/`GetFailed`/`PutFailed` codes.
//! - `session`: one connection: hello, dispatch by message name, a writer
//!   task fed by a bounded queue, requests in flight answered by Identifier.
//! - `put`, `get`, `dda`: `ClientPut*`, `ClientGet`, `TestDDA*`.
//!
//! Shaped like mini-redis's server: a hard cap on connections (a semaphore
//! permit per connection; past the cap a new connection is closed at once),
//! and a cancellation token that ends the accept loop and every session.
//! `docs/FCP.md` lists what is supported, accepted and ignored, and refused.

mod blocks;
pub mod codes;
mod dda;
mod get;
mod insert;
mod inserted;
pub mod message;
pub mod persist;
mod progress;
mod put;
mod queue;
mod session;
mod spool;
mod subscribe;
pub mod vault;

pub use blocks::BLOCKS_DIR;
pub use dda::MAX_DDA_DIRECTORIES;
pub use inserted::INSERTS_DIR;
pub use put::MAX_SITE_FILES;
pub use queue::MAX_PERSISTENT_REQUESTS;
pub use session::{MAX_DATA_LENGTH, MAX_REQUESTS_PER_CONNECTION};
pub use spool::UPLOADS_DIR;
pub use vault::{Vault, VaultError};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::driver::NodeHandle;

/// The port Freenet nodes serve FCP on; clients default to it.
pub const DEFAULT_FCP_PORT: u16 = 9481;
/// Connections served at once; one more is closed as soon as it is accepted.
/// Each idle connection costs a few KiB.
pub const MAX_CONNECTIONS: usize = 2048;
/// Time a new connection has to send `ClientHello` before it is closed.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a request resumed after a restart waits for the node's first
/// link before it starts anyway (a node with no peers finds nothing).
const RESUME_WAIT_FOR_PEERS: Duration = Duration::from_secs(60);
/// How often it looks.
const RESUME_POLL: Duration = Duration::from_millis(250);
/// How long shutdown waits for sessions to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the FCP listener could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FcpError {
    #[error("FCP may only listen on loopback, not {0}; set fcp_allow_remote to override")]
    NotLoopback(SocketAddr),
    #[error("cannot listen for FCP on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the FCP port. Refuses non-loopback addresses unless `allow_remote`:
/// anyone who reaches this port can insert and fetch as this node.
pub async fn bind(addr: SocketAddr, allow_remote: bool) -> Result<TcpListener, FcpError> {
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(FcpError::NotLoopback(addr));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| FcpError::Bind { addr, source })
}

/// What every session shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) node: NodeHandle,
    /// Requests that outlive their connection.
    pub(crate) queue: queue::Queue,
    /// The node's data directory (the queue file lives there).
    pub(crate) data_dir: PathBuf,
    /// Seals what the queue keeps there.
    pub(crate) vault: Arc<Vault>,
}

/// Serves FCP until `shutdown` is cancelled, then waits (briefly) for the
/// sessions to end. `vault` ([`Vault::open`] on `data_dir`) seals the
/// persistent queue's files.
pub async fn serve(
    listener: TcpListener,
    node: NodeHandle,
    data_dir: PathBuf,
    vault: Vault,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared {
        node,
        queue: queue::Queue::default(),
        data_dir,
        vault: Arc::new(vault),
    });
    let saver = restore_queue(&shared).await;
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let sessions = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                tracing::debug!(%err, "FCP accept failed; backing off");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::debug!(%peer, "FCP connection refused: {MAX_CONNECTIONS} already open");
            drop(stream);
            continue;
        };
        let shared = Arc::clone(&shared);
        let token = shutdown.child_token();
        sessions.spawn(async move {
            if let Err(err) = session::run(stream, shared, token).await {
                tracing::debug!(%peer, %err, "FCP session ended");
            }
            drop(permit);
        });
    }
    sessions.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, sessions.wait()).await;
    saver.abort();
    // The last state, whatever the saver was doing.
    save_queue(&shared).await;
}

/// Waits (a bounded while) until the node has a link.
async fn wait_for_peers(node: &NodeHandle) {
    let deadline = tokio::time::Instant::now() + RESUME_WAIT_FOR_PEERS;
    while tokio::time::Instant::now() < deadline {
        if node.status().await.is_ok_and(|s| !s.peers.is_empty()) {
            return;
        }
        tokio::time::sleep(RESUME_POLL).await;
    }
}

async fn save_queue(shared: &Arc<Shared>) {
    let records = shared.queue.records();
    let shared = Arc::clone(shared);
    let saved = tokio::task::spawn_blocking(move || {
        persist::save(&shared.data_dir, &shared.vault, &records)
    })
    .await;
    if let Ok(Err(err)) = saved {
        tracing::warn!("cannot keep the FCP queue: {err:#}");
    }
}

/// Removes the spools and insert logs no unfinished request will read: a
/// request removed, or finished while the node was stopping, or killed
/// between its outcome and the removal of its files. Without this they
/// would hold disk space for ever.
fn sweep_leftovers(
    data_dir: &std::path::Path,
    vault: &Arc<vault::Vault>,
    unfinished: &[(queue::RequestKey, persist::Resume)],
) {
    let mut live = std::collections::HashSet::new();
    for (key, resume) in unfinished {
        live.insert(inserted::InsertLog::path_of(data_dir, vault, key));
        live.insert(
            spool::Spool::new(data_dir, Arc::clone(vault), key)
                .path()
                .to_owned(),
        );
        if let persist::Resume::PutSite { files, .. } = resume {
            for index in 0..files.len() {
                let spool = spool::Spool::for_site_file(data_dir, Arc::clone(vault), key, index);
                live.insert(spool.path().to_owned());
            }
        }
    }
    let mut removed = 0usize;
    for dir in [inserted::INSERTS_DIR, spool::UPLOADS_DIR] {
        let Ok(entries) = std::fs::read_dir(data_dir.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_file())
                && !live.contains(&path)
                && std::fs::remove_file(&path).is_ok()
            {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::info!(
            removed,
            "FCP: removed spools and insert logs no request needs"
        );
    }
}

/// Loads the queue file, starts its unfinished requests again, and starts
/// the task that writes the file after each change.
async fn restore_queue(shared: &Arc<Shared>) -> tokio::task::JoinHandle<()> {
    let loading = Arc::clone(shared);
    let loaded =
        tokio::task::spawn_blocking(move || persist::load(&loading.data_dir, &loading.vault)).await;
    let (records, loaded) = match loaded {
        Ok(Ok(records)) => (records, true),
        Ok(Err(err)) => {
            tracing::warn!("FCP queue not restored: {err:#}");
            (Vec::new(), false)
        }
        Err(_) => (Vec::new(), false),
    };
    let unfinished = shared.queue.restore(records);
    // Only against a queue that was read: an unreadable one may yet be
    // fixed, and its uploads resumed.
    if loaded {
        let sweeping = Arc::clone(shared);
        let live = unfinished.clone();
        let _ = tokio::task::spawn_blocking(move || {
            sweep_leftovers(&sweeping.data_dir, &sweeping.vault, &live);
        })
        .await;
    }
    if !unfinished.is_empty() {
        tracing::info!(
            requests = unfinished.len(),
            "FCP: resuming persistent requests"
        );
    }
    for (key, resume) in unfinished {
        let reply = session::Reply {
            target: session::Target::Queue {
                shared: Arc::clone(shared),
                key: key.clone(),
                persistence: "forever".to_owned(),
            },
            identifier: key.identifier.clone(),
            global: key.owner == queue::Owner::Global,
        };
        let node = shared.node.clone();
        match resume {
            persist::Resume::Get {
                uri,
                return_type,
                filename,
                max_size,
            } => shared.queue.start(&key, async move {
                wait_for_peers(&node).await;
                get::resume_get(node, reply, &uri, &return_type, filename, max_size).await;
            }),
            other => shared.queue.start(&key, async move {
                wait_for_peers(&node).await;
                put::resume_put(node, reply, other).await;
            }),
        }
    }
    let mut changes = shared.queue.changes();
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            save_queue(&shared).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(identifier: &str) -> queue::RequestKey {
        queue::RequestKey {
            owner: queue::Owner::Global,
            identifier: identifier.into(),
        }
    }

    #[test]
    fn leftover_spools_and_insert_logs_go_and_those_of_unfinished_requests_stay() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(vault::Vault::open(dir.path()).unwrap());
        let (put, site, gone) = (key("put"), key("site"), key("gone"));
        let site_resume = persist::Resume::PutSite {
            files: vec![
                persist::SiteRecord {
                    path: "index.html".into(),
                    content_type: None,
                    source: persist::SiteSource::Spooled(0),
                },
                persist::SiteRecord {
                    path: "big.bin".into(),
                    content_type: None,
                    source: persist::SiteSource::Spooled(1),
                },
            ],
            publish_to: None,
        };
        let put_resume = persist::Resume::PutSpool {
            content_type: None,
            name: None,
            chk_only: false,
            publish_to: None,
        };
        let mut kept = vec![
            inserted::InsertLog::path_of(dir.path(), &vault, &put),
            spool::Spool::new(dir.path(), Arc::clone(&vault), &put)
                .path()
                .to_owned(),
            inserted::InsertLog::path_of(dir.path(), &vault, &site),
        ];
        for index in 0..2 {
            let spool = spool::Spool::for_site_file(dir.path(), Arc::clone(&vault), &site, index);
            kept.push(spool.path().to_owned());
        }
        let removed = [
            inserted::InsertLog::path_of(dir.path(), &vault, &gone),
            spool::Spool::new(dir.path(), Arc::clone(&vault), &gone)
                .path()
                .to_owned(),
            spool::Spool::for_site_file(dir.path(), Arc::clone(&vault), &site, 2)
                .path()
                .to_owned(),
        ];
        for path in kept.iter().chain(&removed) {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"sealed bytes").unwrap();
        }
        // Another file kind in the data directory is not touched.
        std::fs::write(dir.path().join("fcp-queue"), b"queue").unwrap();
        sweep_leftovers(
            dir.path(),
            &vault,
            &[(put, put_resume), (site, site_resume)],
        );
        for path in &kept {
            assert!(path.exists(), "{} was removed", path.display());
        }
        for path in &removed {
            assert!(!path.exists(), "{} was kept", path.display());
        }
        assert!(dir.path().join("fcp-queue").exists());
    }

    #[tokio::test]
    async fn refuses_to_listen_beyond_loopback_unless_told() {
        let everywhere: SocketAddr = "0.0.0.0:0".parse().unwrap();
        assert!(matches!(
            bind(everywhere, false).await,
            Err(FcpError::NotLoopback(_))
        ));
        assert!(bind(everywhere, true).await.is_ok());
        assert!(bind("127.0.0.1:0".parse().unwrap(), false).await.is_ok());
    }
}
