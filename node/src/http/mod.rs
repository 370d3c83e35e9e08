//! The node's local HTTP interface on 127.0.0.1: the JSON API the CLI uses and
//! a gateway a browser can use (`GET /CHK@…/path` streams verified content).
//!
//! Shaped like mini-redis's server: one listener, a cap on connections, and a
//! cancellation token that ends the accept loop and lets requests finish.
//!
//! | route | what |
//! |---|---|
//! | `GET /api/status` | node status as JSON |
//! | `POST /api/insert?content_type=…` | body = content; answers `{"uri": …}` |
//! | `POST /api/site` | `{"entries": [{"path", "uri", "content_type"}]}`; answers `{"uri": …}` |
//! | `GET /CHK@…[/path]` | the content, streamed, with its content type |

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warren_crypto::ChkUri;

use crate::client::{self, ClientError, SiteEntry};
use crate::driver::NodeHandle;

/// Most bytes of a failed upload read (and discarded) so the client gets the
/// error; past this the connection is simply closed.
const MAX_DRAIN_BYTES: u64 = 1 << 30;

/// Why the HTTP interface could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error(
        "the local API may only listen on loopback, not {0}; set api_allow_remote to override"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Binds the local API. Refuses non-loopback addresses unless `allow_remote`:
/// anyone who reaches this port can insert and fetch as this node.
pub async fn bind(addr: SocketAddr, allow_remote: bool) -> Result<TcpListener, HttpError> {
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(HttpError::NotLoopback(addr));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serves the API until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    node: NodeHandle,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(node))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

pub fn router(node: NodeHandle) -> Router {
    Router::new()
        .route("/api/status", get(status))
        .route("/api/insert", post(insert))
        .route("/api/site", post(insert_site))
        .fallback(get(gateway))
        .with_state(node)
}

fn error_response(err: &ClientError) -> Response {
    let status = match err {
        ClientError::BadKey(_) | ClientError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ClientError::NotFound(_) | ClientError::SiteDirectory { .. } => StatusCode::NOT_FOUND,
        ClientError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    };
    (
        status,
        Json(serde_json::json!({ "error": crate::error_chain(err) })),
    )
        .into_response()
}

async fn status(State(node): State<NodeHandle>) -> Response {
    match node.status().await {
        Ok(status) => Json(status).into_response(),
        Err(err) => error_response(&err.into()),
    }
}

#[derive(Debug, Deserialize)]
struct InsertQuery {
    content_type: Option<String>,
}

async fn insert(
    State(node): State<NodeHandle>,
    Query(query): Query<InsertQuery>,
    request: Request,
) -> Response {
    let mut chunks = request
        .into_body()
        .into_data_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other));
    match client::insert_stream(&node, &mut chunks, query.content_type).await {
        Ok(uri) => Json(serde_json::json!({ "uri": uri.to_string() })).into_response(),
        Err(err) => {
            // Read the rest of the upload before answering, so the client
            // sees this error rather than a broken pipe.
            let mut drained: u64 = 0;
            while let Some(Ok(chunk)) = chunks.next().await {
                drained += chunk.len() as u64;
                if drained > MAX_DRAIN_BYTES {
                    break;
                }
            }
            error_response(&err)
        }
    }
}

#[derive(Debug, Deserialize)]
struct SiteRequest {
    entries: Vec<SiteEntry>,
}

async fn insert_site(State(node): State<NodeHandle>, Json(site): Json<SiteRequest>) -> Response {
    match client::insert_site(&node, site.entries).await {
        Ok(uri) => Json(serde_json::json!({ "uri": uri.to_string() })).into_response(),
        Err(err) => error_response(&err),
    }
}

async fn gateway(State(node): State<NodeHandle>, request: Request) -> Response {
    let path = request.uri().path().trim_start_matches('/');
    let Some(decoded) = percent_decode(path) else {
        return error_response(&ClientError::BadRequest(
            "bad percent-encoding in the path".into(),
        ));
    };
    let uri: ChkUri = match decoded.parse() {
        Ok(uri) => uri,
        Err(err) => return error_response(&ClientError::BadKey(err)),
    };
    // A site is browsed under `CHK@…/` and its directories under `dir/`:
    // only there do a page's relative links resolve inside the site.
    // One leading `/`: `//CHK@…` would make the Location a network-path
    // reference to another host.
    let slashed = format!("/{}/", request.uri().path().trim_start_matches('/'));
    let with_slash = || Redirect::permanent(&slashed).into_response();
    // (`CHK@…/` parses to no path too: only the bare key is redirected.)
    let bare_key = uri.path.is_none() && !decoded.ends_with('/');
    match client::fetch(&node, uri).await {
        Ok(fetch) if fetch.site && bare_key => with_slash(),
        Err(ClientError::SiteDirectory { .. }) => with_slash(),
        Ok(fetch) => {
            let (length, content_type) = (fetch.length, fetch.content_type.clone());
            let mut response = Response::new(Body::from_stream(fetch.into_stream()));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            let content_type = content_type
                .as_deref()
                .unwrap_or("application/octet-stream");
            if let Ok(value) = HeaderValue::from_str(content_type) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            // Content from the network must not be sniffed into something else.
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            response
        }
        Err(err) => error_response(&err),
    }
}

/// Decodes `%XX` escapes, as browsers send for spaces and such in paths.
fn percent_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_escapes_and_rejects_garbage() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("%ff"), None);
    }

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
