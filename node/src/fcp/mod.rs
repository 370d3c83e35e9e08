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

pub mod codes;
mod dda;
mod get;
pub mod message;
mod put;
mod queue;
mod session;

pub use dda::MAX_DDA_DIRECTORIES;
pub use put::MAX_SITE_FILES;
pub use queue::MAX_PERSISTENT_REQUESTS;
pub use session::{MAX_DATA_LENGTH, MAX_REQUESTS_PER_CONNECTION};

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
    /// The node's data directory.
    #[allow(dead_code)]
    pub(crate) data_dir: PathBuf,
}

/// Serves FCP until `shutdown` is cancelled, then waits (briefly) for the
/// sessions to end.
pub async fn serve(
    listener: TcpListener,
    node: NodeHandle,
    data_dir: PathBuf,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared {
        node,
        queue: queue::Queue::default(),
        data_dir,
    });
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
