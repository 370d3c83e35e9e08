//! The gateway origin: content from the network for a browser, filtered.
//!
//! Every content response carries a strict `Content-Security-Policy` (no
//! scripts, nothing from elsewhere, no connections, sandboxed), no referrer,
//! `nosniff` and `Cross-Origin-Resource-Policy: same-origin`, whatever the
//! filter did: the policy is the second wall if the filter misses something.

use std::fmt::Write as _;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::Deserialize;
use tower::ServiceBuilder;
use warren_crypto::{AnyUri, ChkUri, Edition};

use super::filter::{self, Treatment};
use super::{check_host, guard, pages, Door, Shared};
use crate::client::{self, ClientError, ContentStream, Located};
use crate::signed::{self, Content};

/// The policy on every piece of content: its own images, styles, fonts and
/// media only; no scripts, no connections, no frames, no plugins; forms only
/// to the node; never framed by another origin; sandboxed (no scripts even if
/// one got through, no plugins, no top navigation without a click).
pub const CONTENT_CSP: &str = "default-src 'none'; img-src 'self' data:; \
    style-src 'self' 'unsafe-inline'; font-src 'self'; media-src 'self'; \
    form-action 'self'; base-uri 'none'; frame-ancestors 'self'; \
    sandbox allow-same-origin allow-forms allow-popups allow-downloads \
    allow-top-navigation-by-user-activation";
/// An unfiltered page also loses its origin: it cannot read any other page.
pub const UNFILTERED_CSP: &str = "default-src 'none'; img-src 'self' data:; \
    style-src 'self' 'unsafe-inline'; font-src 'self'; media-src 'self'; \
    form-action 'none'; base-uri 'none'; frame-ancestors 'none'; \
    sandbox allow-popups allow-downloads";
/// Content-hash keys never change: browsers may keep what they got.
const IMMUTABLE: &str = "private, max-age=31536000, immutable";

pub(super) fn router(shared: Shared, port: u16) -> Router {
    let door = Door {
        shared: shared.clone(),
        port,
        name: "gateway",
    };
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            pages::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                "This node's gateway is answering as many requests as it takes; try again in a moment.",
                true,
            )
        }))
        .layer(tower::load_shed::LoadShedLayer::new())
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            shared.config.max_gateway_fetches,
        ));
    Router::new()
        .route("/", get(home))
        .route("/_/leave", get(leave))
        .fallback(content)
        .layer(limits)
        .layer(from_fn_with_state(door.clone(), check_request))
        .layer(from_fn_with_state(door, check_host))
        .with_state(shared)
}

/// Reads only, and none that a page elsewhere made the browser send.
async fn check_request(State(door): State<Door>, request: Request, next: Next) -> Response {
    let as_html = pages::wants_html(request.headers());
    if !guard::is_read(request.method()) {
        door.shared.metrics.count(door.name, "refused_method");
        let mut response = pages::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Not here",
            "The gateway only shows content; it changes nothing.",
            as_html,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if !guard::read_allowed(request.headers()) {
        door.shared.metrics.count(door.name, "refused_site");
        return pages::error(
            StatusCode::FORBIDDEN,
            "Refused",
            "A page on another site asked your browser to load this from your Warren node. \
             To open a key, paste it on the gateway's home page.",
            as_html,
        );
    }
    next.run(request).await
}

#[derive(Debug, Deserialize)]
struct HomeQuery {
    key: Option<String>,
}

async fn home(State(shared): State<Shared>, Query(query): Query<HomeQuery>) -> Response {
    let Some(key) = query.key.filter(|k| !k.trim().is_empty()) else {
        return pages::html(StatusCode::OK, pages::home(&shared.api_origin));
    };
    match filter::url::classify(&key) {
        filter::url::Target::Key(path) => Redirect::to(&path).into_response(),
        _ => pages::error(
            StatusCode::BAD_REQUEST,
            "Not a key",
            "That is not a Warren key; keys start with CHK@.",
            true,
        ),
    }
}

#[derive(Debug, Deserialize)]
struct LeaveQuery {
    #[serde(default)]
    url: String,
}

async fn leave(Query(query): Query<LeaveQuery>) -> Response {
    pages::html(StatusCode::OK, pages::leave(&query.url))
}

/// `?mode=…` on a content path.
#[derive(Debug, Default, Deserialize)]
struct ContentQuery {
    mode: Option<String>,
    force: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Filtered,
    Download,
    Text,
    Unfiltered,
}

fn error_page(err: &ClientError, as_html: bool) -> Response {
    let (status, title) = match err {
        ClientError::BadKey(_) | ClientError::BadRequest(_) => {
            (StatusCode::BAD_REQUEST, "Not a valid key")
        }
        ClientError::NotFound(_) | ClientError::SiteDirectory { .. } => {
            (StatusCode::NOT_FOUND, "Not found")
        }
        ClientError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "Busy"),
        _ => (StatusCode::BAD_GATEWAY, "Fetch failed"),
    };
    pages::error(status, title, &crate::error_chain(err), as_html)
}

async fn content(
    State(shared): State<Shared>,
    query: Result<Query<ContentQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Response {
    // A site's own query strings are not ours to reject.
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let headers = request.headers().clone();
    let head = request.method() == axum::http::Method::HEAD;
    let as_html = pages::wants_html(&headers) || !headers.contains_key(header::ACCEPT);
    let raw_path = request.uri().path().to_owned();
    let Some(decoded) = percent_decode(raw_path.trim_start_matches('/')) else {
        return error_page(
            &ClientError::BadRequest("bad percent-encoding in the path".into()),
            as_html,
        );
    };
    let uri: ChkUri = match resolve_signed(&shared, &decoded, as_html).await {
        Ok(uri) => uri,
        Err(response) => return response,
    };
    let mode = match query.mode.as_deref() {
        Some("download") => Mode::Download,
        Some("text") => Mode::Text,
        Some("unfiltered") => Mode::Unfiltered,
        _ => Mode::Filtered,
    };
    // One leading `/`: `//CHK@…` would make the Location a network-path
    // reference to another host.
    let key_path = format!("/{}", raw_path.trim_start_matches('/'));
    if mode == Mode::Unfiltered && !unfiltered_confirmed(&shared, &key_path, query.force.as_deref())
    {
        let confirmed = format!(
            "{key_path}?mode=unfiltered&force={}",
            sign(&shared, &key_path)
        );
        return pages::html(
            StatusCode::OK,
            pages::unfiltered_warning(&key_path, &confirmed),
        );
    }
    let etag = etag(&decoded, mode);
    if not_modified(&headers, &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        cache_headers(response.headers_mut(), &etag);
        return response;
    }
    let bare_key = uri.path.is_none() && !decoded.ends_with('/');
    let fetch = match find(&shared, uri, bare_key, &key_path, as_html).await {
        Ok(fetch) => fetch,
        Err(response) => return response,
    };
    let served = Served {
        shared: &shared,
        headers: &headers,
        head,
        as_html,
        key_path: &key_path,
        etag: &etag,
    };
    served.respond(fetch, mode, &decoded).await
}

/// Any request key to the CHK it names: `CHK@` as it is; `SSK@`/`KSK@`
/// through their signed block; `USK@…/name/N/…` redirects (302: it changes)
/// to the newest edition found when that is not `N` (`-1` means the newest).
async fn resolve_signed(shared: &Shared, decoded: &str, as_html: bool) -> Result<ChkUri, Response> {
    let any: AnyUri = decoded
        .parse()
        .map_err(|err| error_page(&ClientError::BadKey(err), as_html))?;
    if let AnyUri::Chk(uri) = any {
        return Ok(uri);
    }
    let resolved = tokio::time::timeout(
        shared.config.fetch_timeout,
        signed::resolve(&shared.node, &any),
    )
    .await
    .map_err(|_| {
        pages::error(
            StatusCode::GATEWAY_TIMEOUT,
            "Timed out",
            "The network did not find this signed key in time. It may come back later; try again.",
            as_html,
        )
    })?
    .map_err(|err| error_page(&err, as_html))?;
    if let (AnyUri::Usk(usk), Some(found)) = (&any, resolved.edition) {
        if usk.edition != Edition::AtLeast(found) {
            let newest = usk.clone().with_edition(Edition::AtLeast(found));
            let slash = if decoded.ends_with('/') && usk.path.is_none() {
                "/"
            } else {
                ""
            };
            return Err(Redirect::temporary(&format!("/{newest}{slash}")).into_response());
        }
    }
    match resolved.content {
        Content::Chk(uri) => Ok(uri),
        Content::Inline(_) => Err(error_page(
            &ClientError::BadRequest(
                "this signed key holds its content inline; fetch it with `warren fetch`".into(),
            ),
            as_html,
        )),
    }
}

/// Finds the content (its manifests, up to its first bytes) within the
/// configured time; or the answer to give instead: a redirect to a site's
/// slash, a timeout or an error page.
async fn find(
    shared: &Shared,
    uri: ChkUri,
    bare_key: bool,
    key_path: &str,
    as_html: bool,
) -> Result<Located, Response> {
    // Only the manifests: content blocks are fetched for the bytes served.
    let fetched = tokio::time::timeout(
        shared.config.fetch_timeout,
        client::locate(&shared.node, uri),
    )
    .await;
    // A site is browsed under `CHK@…/` and its directories under `dir/`:
    // only there do a page's relative links resolve inside the site.
    let with_slash = || Redirect::permanent(&format!("{key_path}/")).into_response();
    match fetched {
        Err(_) => {
            shared.metrics.count("gateway", "timeout");
            Err(pages::error(
                StatusCode::GATEWAY_TIMEOUT,
                "Timed out",
                "The network did not find this content in time. It may come back later; try again.",
                as_html,
            ))
        }
        Ok(Ok(fetch)) if fetch.site && bare_key => Err(with_slash()),
        Ok(Err(ClientError::SiteDirectory { .. })) => Err(with_slash()),
        Ok(Err(err)) => {
            shared.metrics.count("gateway", "not_found");
            Err(error_page(&err, as_html))
        }
        Ok(Ok(fetch)) => Ok(fetch),
    }
}

/// One content answer being put together.
struct Served<'a> {
    shared: &'a Shared,
    headers: &'a HeaderMap,
    /// A `HEAD`: answered without fetching any content block.
    head: bool,
    as_html: bool,
    key_path: &'a str,
    etag: &'a str,
}

impl Served<'_> {
    async fn respond(&self, fetch: Located, mode: Mode, decoded: &str) -> Response {
        let content_type = fetch
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        match mode {
            Mode::Download => {
                let disposition = attachment(decoded);
                let mut response = self
                    .stream(fetch, "application/octet-stream", CONTENT_CSP)
                    .await;
                if let Ok(value) = HeaderValue::from_str(&disposition) {
                    response
                        .headers_mut()
                        .insert(header::CONTENT_DISPOSITION, value);
                }
                response
            }
            Mode::Text => {
                self.stream(fetch, "text/plain; charset=utf-8", CONTENT_CSP)
                    .await
            }
            Mode::Unfiltered => self.stream(fetch, &content_type, UNFILTERED_CSP).await,
            Mode::Filtered => match filter::treatment(&content_type) {
                Treatment::Inert => self.stream(fetch, &content_type, CONTENT_CSP).await,
                Treatment::Html => {
                    self.filtered(fetch, &content_type, "text/html; charset=utf-8")
                        .await
                }
                Treatment::Css => {
                    self.filtered(fetch, &content_type, "text/css; charset=utf-8")
                        .await
                }
                Treatment::Unfiltered => {
                    self.shared.metrics.count("gateway", "offered");
                    self.offer(
                        &content_type,
                        "Warren has no filter for this type, so it is not opened in the browser.",
                    )
                }
            },
        }
    }

    fn offer(&self, content_type: &str, reason: &str) -> Response {
        let mut response = pages::html(
            StatusCode::OK,
            pages::offer(self.key_path, content_type, reason, true),
        );
        response.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }

    /// Reads the whole content, filters it off the async threads, serves it.
    async fn filtered(&self, fetch: Located, original: &str, served_as: &str) -> Response {
        let is_html = served_as.starts_with("text/html");
        let limit = if is_html {
            filter::MAX_FILTERED_HTML
        } else {
            filter::MAX_FILTERED_CSS
        };
        if fetch.length > limit {
            return self.offer(
                original,
                &format!("It is larger than the filter takes ({limit} bytes)."),
            );
        }
        let length = fetch.length;
        let bytes = match collect(fetch.read(0, length)).await {
            Ok(bytes) => bytes,
            Err(err) => return self.failed_part_way(&err),
        };
        let result = tokio::task::spawn_blocking(move || {
            if is_html {
                filter::filter_html(&bytes)
            } else {
                filter::filter_css(&bytes)
            }
        })
        .await;
        match result {
            Ok(Ok(clean)) => {
                self.shared.metrics.count("gateway", "filtered");
                let mut response = Response::new(Body::from(clean));
                self.content_headers(response.headers_mut(), served_as, CONTENT_CSP);
                response
            }
            Ok(Err(err)) => self.offer(original, &err.to_string()),
            Err(_) => pages::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Filter failed",
                "The filter stopped unexpectedly.",
                true,
            ),
        }
    }

    /// Streams content as it is (it needs no filter, or the reader asked),
    /// honouring a single `Range`.
    /// The page for content that stopped arriving: the fetch's own reason.
    fn failed_part_way(&self, err: &std::io::Error) -> Response {
        self.shared.metrics.count("gateway", "error");
        let message = err.to_string();
        let status = if message.starts_with("not found") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_GATEWAY
        };
        pages::error(status, "Fetch failed", &message, self.as_html)
    }

    async fn stream(&self, fetch: Located, content_type: &str, csp: &'static str) -> Response {
        let length = fetch.length;
        let range = self
            .headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(|text| parse_range(text, length));
        let (status, start, len) = match range {
            Some(Some((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
            Some(None) => {
                let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{length}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                return response;
            }
            None => (StatusCode::OK, 0, length),
        };
        let body = if self.head || len == 0 {
            // Only the blocks holding the range are fetched, once the body is read.
            Body::from_stream(fetch.stream(start, len))
        } else {
            // The first piece (the first segment of the range) arrives before
            // the status line goes out, so a fetch that fails there (all of a
            // file up to one segment, 4 MiB) gets a page saying why; past it
            // the connection is cut and the browser marks the download failed.
            let mut read = fetch.read(start, len);
            let first = match read.chunks.recv().await {
                Some(Ok(first)) => first,
                Some(Err(err)) => return self.failed_part_way(&err),
                None => Bytes::new(),
            };
            let rest = futures_util::stream::unfold(read.chunks, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            Body::from_stream(futures_util::stream::iter([Ok(first)]).chain(rest))
        };
        self.shared.metrics.count("gateway", "served");
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        self.content_headers(headers, content_type, csp);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        if status == StatusCode::PARTIAL_CONTENT {
            let range = format!("bytes {start}-{}/{length}", start + len - 1);
            if let Ok(value) = HeaderValue::from_str(&range) {
                headers.insert(header::CONTENT_RANGE, value);
            }
        }
        response
    }

    fn content_headers(&self, headers: &mut HeaderMap, content_type: &str, csp: &'static str) {
        if let Ok(value) = HeaderValue::from_str(content_type) {
            headers.insert(header::CONTENT_TYPE, value);
        }
        content_policy(headers, csp);
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        cache_headers(headers, self.etag);
    }
}

/// The defence-in-depth headers on every content response.
pub fn content_policy(headers: &mut HeaderMap, csp: &'static str) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_DNS_PREFETCH_CONTROL,
        HeaderValue::from_static("off"),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
}

fn cache_headers(headers: &mut HeaderMap, etag: &str) {
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
}

/// The entity tag: the key and path (hashed: it is a secret), how the
/// content was served and the filter's version.
fn etag(decoded_path: &str, mode: Mode) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, decoded_path.as_bytes());
    let mut tag = format!("\"w{}-{mode:?}-", filter::FILTER_VERSION);
    for byte in &digest.as_ref()[..16] {
        let _ = write!(tag, "{byte:02x}");
    }
    tag.push('"');
    tag
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn sign(shared: &Shared, key_path: &str) -> String {
    let tag = ring::hmac::sign(&shared.unfiltered_key, key_path.as_bytes());
    tag.as_ref().iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// Whether `force` is the signature the warning page put on this path
/// (checked in constant time by ring).
fn unfiltered_confirmed(shared: &Shared, key_path: &str, force: Option<&str>) -> bool {
    let Some(bytes) = force.and_then(decode_hex) else {
        return false;
    };
    ring::hmac::verify(&shared.unfiltered_key, key_path.as_bytes(), &bytes).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `Content-Disposition` for a download: the path's last segment, in plain
/// ASCII (anything else becomes `_`).
fn attachment(decoded_path: &str) -> String {
    let name: String = decoded_path
        .rsplit('/')
        .find(|s| !s.is_empty() && !s.contains('@'))
        .unwrap_or("download")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("attachment; filename=\"{name}\"")
}

/// One `bytes=a-b` range (or `a-`, or `-n`) within `length`, inclusive;
/// `None` if it cannot be satisfied. Several ranges are not supported: the
/// first is served.
pub fn parse_range(text: &str, length: u64) -> Option<(u64, u64)> {
    let spec = text
        .trim()
        .strip_prefix("bytes=")?
        .split(',')
        .next()?
        .trim();
    let (start, end) = spec.split_once('-')?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            if n == 0 {
                return None;
            }
            (length.saturating_sub(n), length.checked_sub(1)?)
        }
        (start, "") => (start.parse().ok()?, length.checked_sub(1)?),
        (start, end) => {
            let end: u64 = end.parse().ok()?;
            (start.parse().ok()?, end.min(length.checked_sub(1)?))
        }
    };
    (start <= end && start < length).then_some((start, end))
}

async fn collect(mut fetch: ContentStream) -> Result<Vec<u8>, std::io::Error> {
    let mut bytes = Vec::with_capacity(fetch.length as usize);
    while let Some(chunk) = fetch.chunks.recv().await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(bytes)
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

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some((990, 999)));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("bytes=5-1", 1000), None);
        assert_eq!(parse_range("bytes=-0", 1000), None);
        assert_eq!(parse_range("bytes=0-0", 0), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Some((0, 1)));
    }

    #[test]
    fn download_names_are_plain_and_never_a_path() {
        assert_eq!(
            attachment("CHK@a,b,AAE/dir/ré port\".pdf"),
            "attachment; filename=\"r__port_.pdf\""
        );
        assert_eq!(
            attachment("CHK@a,b,AAE"),
            "attachment; filename=\"download\""
        );
    }

    #[test]
    fn etags_differ_by_mode_and_path_and_hide_the_key() {
        let a = etag("CHK@secret,key,AAE/a", Mode::Filtered);
        assert_ne!(a, etag("CHK@secret,key,AAE/a", Mode::Text));
        assert_ne!(a, etag("CHK@secret,key,AAE/b", Mode::Filtered));
        assert!(!a.contains("secret"));
    }
}
