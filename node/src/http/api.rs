//! The API origin: the CLI's JSON API (token), the operator's pages (status,
//! upload) and Prometheus metrics.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt as _;
use serde::Deserialize;
use tower_http::limit::RequestBodyLimitLayer;
use warren_crypto::{AnyUri, ChkUri};

use super::{check_host, framed, guard, metrics, pages, status_page, Door, Shared};
use crate::client::{self, ClientError, SiteEntry};
use crate::signed::{self, Content, EDITION_HEADER};

/// Most bytes of a failed upload read (and discarded) so the client gets the
/// error; past this the connection is simply closed.
const MAX_DRAIN_BYTES: u64 = 1 << 30;
/// Most files one browser upload may hold.
const MAX_UPLOAD_FILES: usize = 10_000;

pub(super) fn router(shared: Shared, port: u16) -> Router {
    let door = Door {
        shared: shared.clone(),
        port,
        name: "api",
    };
    let limit = usize::try_from(shared.config.upload_limit).unwrap_or(usize::MAX);
    let api = Router::new()
        .route("/api/status", get(status))
        .route("/api/insert", post(insert))
        .route("/api/site", post(insert_site))
        .route("/api/reinsert", post(reinsert))
        .route("/api/publish", post(publish))
        .route("/api/fetch/{*key}", get(fetch))
        .route_layer(from_fn_with_state(door.clone(), require_token));
    let pages = Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
        .route("/upload", get(upload_form).post(upload))
        .route_layer(from_fn_with_state(door.clone(), check_browser));
    Router::new()
        .merge(api)
        .merge(pages)
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(from_fn_with_state(door, check_host))
        .with_state(shared)
}

/// `/api/*`: the token, whatever else the request says.
async fn require_token(State(door): State<Door>, request: Request, next: Next) -> Response {
    if !guard::has_token(request.headers(), &door.shared.token) {
        door.shared.metrics.count(door.name, "refused_token");
        return pages::error(
            StatusCode::UNAUTHORIZED,
            "Token needed",
            "the API needs this node's token (Authorization: Bearer …, from api.token in the node's data directory)",
            false,
        );
    }
    next.run(request).await
}

/// The pages: reads from anywhere but another site; posts from this origin only.
async fn check_browser(State(door): State<Door>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let allowed = if guard::is_read(request.method()) {
        guard::read_allowed(headers)
    } else {
        guard::same_origin(headers, &door.shared.api_origin)
    };
    if !allowed {
        door.shared.metrics.count(door.name, "refused_site");
        return pages::error(
            StatusCode::FORBIDDEN,
            "Refused",
            "This request came from a page that is not this node's own; it was not carried out.",
            pages::wants_html(headers),
        );
    }
    next.run(request).await
}

fn error_response(err: &ClientError) -> Response {
    let status = match err {
        ClientError::BadKey(_) | ClientError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ClientError::NotFound(_) | ClientError::SiteDirectory { .. } => StatusCode::NOT_FOUND,
        ClientError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    };
    pages::error(status, "Failed", &crate::error_chain(err), false)
}

async fn status(State(shared): State<Shared>) -> Response {
    match shared.node.status().await {
        Ok(status) => Json(status).into_response(),
        Err(err) => error_response(&err.into()),
    }
}

async fn status_page(State(shared): State<Shared>) -> Response {
    match shared.node.status().await {
        Ok(status) => pages::html(
            StatusCode::OK,
            status_page::render(&status, &shared.history, &shared.gateway_origin),
        ),
        Err(err) => pages::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Stopping",
            &ClientError::from(err).to_string(),
            true,
        ),
    }
}

async fn metrics(State(shared): State<Shared>) -> Response {
    match shared.node.status().await {
        Ok(status) => {
            let mut response = metrics::render(&status, &shared.metrics).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        Err(err) => error_response(&err.into()),
    }
}

#[derive(Debug, Deserialize)]
struct InsertQuery {
    content_type: Option<String>,
}

async fn insert(
    State(shared): State<Shared>,
    Query(query): Query<InsertQuery>,
    request: Request,
) -> Response {
    let mut chunks = request
        .into_body()
        .into_data_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other));
    match client::insert_stream(&shared.node, &mut chunks, query.content_type).await {
        Ok(uri) => {
            shared.metrics.count("api", "inserted");
            Json(serde_json::json!({ "uri": uri.to_string() })).into_response()
        }
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
            shared.metrics.count("api", "insert_failed");
            error_response(&err)
        }
    }
}

#[derive(Debug, Deserialize)]
struct ReinsertRequest {
    key: String,
}

/// `warren reinsert`: fetches what a key names and inserts it again (for a
/// signed key, the CHK content it points to; the key travels in the body).
async fn reinsert(State(shared): State<Shared>, Json(request): Json<ReinsertRequest>) -> Response {
    let any: AnyUri = match request.key.parse() {
        Ok(uri) => uri,
        Err(err) => return error_response(&ClientError::BadKey(err)),
    };
    if any.is_insert() {
        return error_response(&ClientError::BadRequest(
            "that is an insert key; reinsert takes the request key".into(),
        ));
    }
    let resolved = match signed::resolve(&shared.node, &any).await {
        Ok(resolved) => resolved,
        Err(err) => return error_response(&err),
    };
    let Content::Chk(uri) = resolved.content else {
        return error_response(&ClientError::BadRequest(
            "this signed key holds its content in its own block, not in CHKs; \
             only its author can insert it again"
                .into(),
        ));
    };
    // A reinsert takes as long as a fetch and an insert: the answer streams
    // one JSON line a second with the blocks inserted so far (so neither
    // side's read timeout fires and the user sees progress), then one line
    // with the outcome.
    let progress = Arc::new(client::Progress::default());
    let job = tokio::spawn({
        let (node, progress) = (shared.node.clone(), Arc::clone(&progress));
        async move { client::reinsert(&node, uri, progress).await }
    });
    let metrics = shared.metrics.clone();
    let lines = futures_util::stream::unfold(Some(AbortOnDrop(job)), move |job| {
        let (progress, metrics) = (Arc::clone(&progress), metrics.clone());
        async move {
            let mut job = job?;
            let line = tokio::select! {
                joined = &mut job.0 => {
                    let outcome = match joined {
                        Ok(Ok(done)) => {
                            metrics.count("api", "reinserted");
                            serde_json::json!({
                                "uri": done.uri.to_string(),
                                "refreshed": done.refreshed,
                                "blocks": done.blocks,
                            })
                        }
                        Ok(Err(err)) => serde_json::json!({ "error": crate::error_chain(&err) }),
                        Err(_) => serde_json::json!({ "error": ClientError::Stopped.to_string() }),
                    };
                    return Some((Ok::<_, std::io::Error>(json_line(&outcome)), None));
                }
                () = tokio::time::sleep(REINSERT_PROGRESS_EVERY) => {
                    let snapshot = progress.snapshot();
                    json_line(&serde_json::json!({
                        "progress": snapshot.succeeded,
                        "total": snapshot.total,
                    }))
                }
            };
            Some((Ok(line), Some(job)))
        }
    });
    let mut response = Response::new(Body::from_stream(lines));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// Stops a reinsert whose client went away (the answer stream was dropped).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often a reinsert's answer reports its progress.
const REINSERT_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

fn json_line(value: &serde_json::Value) -> bytes::Bytes {
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    bytes::Bytes::from(line)
}

#[derive(Debug, Deserialize)]
struct SiteRequest {
    entries: Vec<SiteEntry>,
}

async fn insert_site(State(shared): State<Shared>, Json(site): Json<SiteRequest>) -> Response {
    match client::insert_site(&shared.node, site.entries).await {
        Ok(uri) => Json(serde_json::json!({ "uri": uri.to_string() })).into_response(),
        Err(err) => error_response(&err),
    }
}

/// `{"key": insert key, "uri": CHK already inserted, "next_edition": bool}`:
/// signs a pointer to the CHK under the key. The insert key is a secret: it
/// is used here and never logged or echoed.
#[derive(Deserialize)]
struct PublishRequest {
    key: String,
    uri: String,
    #[serde(default)]
    next_edition: bool,
}

impl std::fmt::Debug for PublishRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishRequest").finish_non_exhaustive()
    }
}

async fn publish(State(shared): State<Shared>, Json(body): Json<PublishRequest>) -> Response {
    let target: AnyUri = match body.key.parse() {
        Ok(key) => key,
        Err(err) => return error_response(&ClientError::BadKey(err)),
    };
    let content: ChkUri = match body.uri.parse() {
        Ok(uri) => uri,
        Err(err) => return error_response(&ClientError::BadKey(err)),
    };
    match signed::publish(&shared.node, &target, content, body.next_edition).await {
        Ok(published) => {
            shared.metrics.count("api", "published");
            Json(serde_json::json!({ "uri": published.uri, "edition": published.edition }))
                .into_response()
        }
        Err(err) => error_response(&err),
    }
}

/// The content as it is, for `warren fetch` (which verifies and writes it).
/// Any request key; for a USK the edition found is in [`EDITION_HEADER`].
async fn fetch(
    State(shared): State<Shared>,
    Path(key): Path<String>,
    request_headers: axum::http::HeaderMap,
) -> Response {
    let framed = request_headers
        .get(framed::FRAMED_HEADER)
        .is_some_and(|v| v.as_bytes() == b"1");
    let any: AnyUri = match key.parse() {
        Ok(uri) => uri,
        Err(err) => return error_response(&ClientError::BadKey(err)),
    };
    let resolved = match signed::resolve(&shared.node, &any).await {
        Ok(resolved) => resolved,
        Err(err) => return error_response(&err),
    };
    let mut response = match resolved.content {
        Content::Inline(data) => {
            let length = data.len() as u64;
            let chunks = futures_util::stream::iter([Ok(bytes::Bytes::from(data))]);
            content_body(chunks, length, framed)
        }
        Content::Chk(uri) => match client::fetch(&shared.node, uri).await {
            Ok(fetch) => {
                let length = fetch.length;
                content_body(fetch.into_stream(), length, framed)
            }
            Err(err) => return error_response(&err),
        },
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(edition) = resolved.edition {
        headers.insert(EDITION_HEADER, HeaderValue::from(edition));
    }
    response
}

/// The content as a plain body of `length` bytes, or framed (a body that
/// ends by saying whether the fetch completed, and why not).
fn content_body<S>(chunks: S, length: u64, framed: bool) -> Response
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
{
    if !framed {
        let mut response = Response::new(Body::from_stream(chunks));
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        return response;
    }
    let mut response = Response::new(Body::from_stream(framed::encode(chunks)));
    let headers = response.headers_mut();
    headers.insert(framed::FRAMED_HEADER, HeaderValue::from_static("1"));
    headers.insert(framed::LENGTH_HEADER, HeaderValue::from(length));
    response
}

async fn upload_form(State(shared): State<Shared>) -> Response {
    pages::html(
        StatusCode::OK,
        pages::upload_form(shared.config.upload_limit >> 20),
    )
}

/// One file of a browser upload, inserted.
struct Uploaded {
    path: String,
    uri: ChkUri,
    content_type: Option<String>,
    size: u64,
}

async fn upload(State(shared): State<Shared>, mut form: Multipart) -> Response {
    let mut files: Vec<Uploaded> = Vec::new();
    let mut folder = false;
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(err) => return upload_error(&err.body_text()),
        };
        let Some(name) = field
            .file_name()
            .map(str::to_owned)
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        folder |= field.name() == Some("folder");
        if files.len() == MAX_UPLOAD_FILES {
            return upload_error(&format!("more than {MAX_UPLOAD_FILES} files"));
        }
        let content_type = field.content_type().map(str::to_owned);
        let size = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = size.clone();
        let chunks = field.map(move |chunk| {
            if let Ok(bytes) = &chunk {
                counted.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            chunk
        });
        match client::insert_stream(&shared.node, chunks, content_type.clone()).await {
            Ok(uri) => files.push(Uploaded {
                path: name,
                uri,
                content_type,
                size: size.load(std::sync::atomic::Ordering::Relaxed),
            }),
            Err(err) => return upload_error(&err.to_string()),
        }
    }
    let key = match (folder, files.as_slice()) {
        (_, []) => return upload_error("the form held no file"),
        (false, [one]) => format!("{}/{}", one.uri, last_segment(&one.path)),
        _ => match insert_folder(&shared, files).await {
            Ok(key) => key,
            Err(err) => return upload_error(&err.to_string()),
        },
    };
    shared.metrics.count("api", "uploaded");
    pages::html(
        StatusCode::OK,
        pages::upload_done(&key, &shared.gateway_origin),
    )
}

/// A folder from `<input webkitdirectory>`: names are `folder/sub/file`; the
/// site holds them without the top folder.
async fn insert_folder(shared: &Shared, files: Vec<Uploaded>) -> Result<String, ClientError> {
    let entries = files
        .into_iter()
        .map(|file| SiteEntry {
            path: file
                .path
                .split_once('/')
                .map_or(file.path.clone(), |(_, rest)| rest.to_owned()),
            uri: file.uri.to_string(),
            content_type: file.content_type,
            size: file.size,
        })
        .collect();
    let uri = client::insert_site(&shared.node, entries).await?;
    Ok(format!("{uri}/"))
}

fn last_segment(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn upload_error(message: &str) -> Response {
    pages::error(StatusCode::BAD_REQUEST, "Upload failed", message, true)
}
