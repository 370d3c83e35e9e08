//! The node's local HTTP interfaces, on two origins that never share
//! anything:
//!
//! - the **gateway** (default 127.0.0.1:8888) serves content from the network
//!   to a browser, filtered ([`filter`]) and under a strict
//!   `Content-Security-Policy`; it holds no secret and can change nothing;
//! - the **API** (default 127.0.0.1:8889) is what the CLI, the operator's
//!   pages (status, upload) and Prometheus use. `/api/*` needs the per-start
//!   token ([`token`]); the upload form needs a same-origin `Origin`.
//!
//! Both refuse a `Host` that is not their own loopback address (DNS
//! rebinding) and requests a page on another site made ([`guard`]); both cap
//! their connections ([`listener`]). Shaped like mini-redis's server: the
//! listeners stop on a cancellation token and let requests finish.
//!
//! | origin | route | what |
//! |---|---|---|
//! | gateway | `GET /` | home page: paste a key |
//! | gateway | `GET /CHK@…[/path]` | content, filtered; `?mode=download`, `?mode=text`, `?mode=unfiltered` |
//! | gateway | `GET /_/leave?url=…` | "you are leaving Warren" |
//! | API | `GET /` | status page |
//! | API | `GET /upload`, `POST /upload` | insert a file or folder from a browser |
//! | API | `GET /metrics` | Prometheus text format |
//! | API | `GET /api/status` | node status as JSON (token) |
//! | API | `POST /api/insert?content_type=…` | body = content; answers `{"uri": …}` (token) |
//! | API | `POST /api/site` | `{"entries": [{"path", "uri", "content_type", "size"}]}` (token) |
//! | API | `GET /api/fetch/CHK@…[/path]` | the content, unfiltered, streamed (token); with `x-warren-framed: 1`, in frames ending with how the fetch ended ([`framed`]) |

pub mod filter;
pub mod framed;
pub mod guard;
pub mod listener;
pub mod metrics;
pub mod pages;
pub mod status_page;
pub mod token;

mod api;
pub mod gateway;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::driver::NodeHandle;

pub use token::{ApiToken, API_TOKEN_FILE};

/// Default cap on open connections per listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default cap on gateway requests being answered at once; past it the
/// gateway answers 503 at once rather than queueing.
pub const DEFAULT_MAX_GATEWAY_FETCHES: usize = 32;
/// Default time a gateway request may take to find its content.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// Default largest upload (browser or CLI), in bytes.
pub const DEFAULT_UPLOAD_LIMIT: u64 = 4 << 30;

/// Why the HTTP interface could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error(
        "the local API and gateway may only listen on loopback, not {0}; set api_allow_remote to override"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Limits of both listeners.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub max_connections: usize,
    pub max_gateway_fetches: usize,
    pub fetch_timeout: Duration,
    pub upload_limit: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_gateway_fetches: DEFAULT_MAX_GATEWAY_FETCHES,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            upload_limit: DEFAULT_UPLOAD_LIMIT,
        }
    }
}

/// Binds one listener. Refuses non-loopback addresses unless `allow_remote`:
/// anyone who reaches the API can insert and fetch as this node.
pub async fn bind(addr: SocketAddr, allow_remote: bool) -> Result<TcpListener, HttpError> {
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(HttpError::NotLoopback(addr));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// What both routers share.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    node: NodeHandle,
    token: ApiToken,
    config: Arc<HttpConfig>,
    api_origin: Arc<str>,
    gateway_origin: Arc<str>,
    /// Signs "open unfiltered" links, so only the warning page makes them.
    unfiltered_key: Arc<ring::hmac::Key>,
    metrics: metrics::HttpMetrics,
    history: status_page::History,
}

/// The two bound listeners.
#[derive(Debug)]
pub struct Listeners {
    pub api: TcpListener,
    pub gateway: TcpListener,
}

fn origin_of(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Serves the API and the gateway until `shutdown` is cancelled.
pub async fn serve(
    listeners: Listeners,
    node: NodeHandle,
    token: ApiToken,
    config: HttpConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let api_addr = listeners.api.local_addr()?;
    let gateway_addr = listeners.gateway.local_addr()?;
    let rng = ring::rand::SystemRandom::new();
    let unfiltered_key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
        .map_err(|_| std::io::Error::other("no randomness for the gateway's link key"))?;
    let shared = Shared {
        node,
        token,
        api_origin: origin_of(api_addr).into(),
        gateway_origin: origin_of(gateway_addr).into(),
        config: Arc::new(config),
        unfiltered_key: Arc::new(unfiltered_key),
        metrics: metrics::HttpMetrics::default(),
        history: status_page::History::default(),
    };
    let sampler = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(sample_traffic(
        shared.node.clone(),
        shared.history.clone(),
    )));
    let cap = shared.config.max_connections;
    let api = axum::serve(
        listener::CappedListener::new(listeners.api, cap),
        api::router(shared.clone(), api_addr.port()),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let gateway = axum::serve(
        listener::CappedListener::new(listeners.gateway, cap),
        gateway::router(shared, gateway_addr.port()),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned());
    let result = tokio::try_join!(async { api.await }, async { gateway.await }).map(|_| ());
    drop(sampler);
    result
}

/// Samples link traffic for the status page's chart.
async fn sample_traffic(node: NodeHandle, history: status_page::History) {
    let mut every = tokio::time::interval(status_page::SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match node.status().await {
            Ok(status) => {
                history.push(status_page::Sample {
                    sent: status.links.bytes_sent,
                    received: status.links.bytes_received,
                });
                history.observe_peers(
                    status.peers.iter().map(|p| p.identity.as_str()),
                    std::time::Instant::now(),
                );
            }
            Err(_) => return,
        }
    }
}

/// The listener's port and name, for the checks every request passes.
#[derive(Debug, Clone)]
struct Door {
    shared: Shared,
    port: u16,
    name: &'static str,
}

/// Refuses a foreign `Host` (DNS rebinding) before anything else runs.
async fn check_host(State(door): State<Door>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !guard::host_allowed(host, door.port) {
        door.shared.metrics.count(door.name, "refused_host");
        return pages::error(
            StatusCode::MISDIRECTED_REQUEST,
            "Wrong address",
            "This Warren node answers only to its own loopback address; the name in this request points elsewhere.",
            pages::wants_html(request.headers()),
        );
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_to_listen_beyond_loopback_unless_told() {
        let everywhere: SocketAddr = "0.0.0.0:0".parse().unwrap();
        assert!(matches!(
            bind(everywhere, false).await,
            Err(HttpError::NotLoopback(_))
        ));
        assert!(bind(everywhere, true).await.is_ok());
        assert!(bind("127.0.0.1:0".parse().unwrap(), false).await.is_ok());
        assert!(bind("[::1]:0".parse().unwrap(), false).await.is_ok() || !ipv6_available());
    }

    fn ipv6_available() -> bool {
        std::net::TcpListener::bind("[::1]:0").is_ok()
    }
}
