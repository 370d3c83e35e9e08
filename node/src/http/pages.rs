//! The node's own HTML pages: small, server-rendered, no scripts. Every
//! piece of text that came from outside (a key, a URL, an error) goes
//! through [`escape`].

use std::fmt::Write as _;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Policy for the node's own pages: no scripts, nothing from elsewhere,
/// forms only to the same origin, never framed.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;\
padding:0 1rem;color:#1d232a;background:#fbfaf7}h1{font-size:1.6rem}a{color:#0b5cad}\
code,.key{font-family:ui-monospace,monospace;word-break:break-all;background:#eee;padding:0 .2em}\
.warn{border-left:4px solid #c33;padding:.5rem 1rem;background:#fff3f0}\
.box{border:1px solid #ddd;border-radius:6px;padding:1rem;background:#fff;margin:1rem 0}\
table{border-collapse:collapse}td,th{padding:.2rem .8rem;text-align:left;border-bottom:1px solid #eee}\
input[type=text]{width:100%;font:inherit;padding:.4rem}button{font:inherit;padding:.3rem 1rem}\
nav a{margin-right:1rem}";

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body` (already HTML).
pub fn page(title: &str, body: &str) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{} · Warren</title>\
         <style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    );
    html
}

/// An HTML response with the page policy and no caching.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    own_page_headers(headers);
    response
}

/// Headers on every page the node itself writes.
pub fn own_page_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// Whether the client wants an HTML answer (a browser) rather than JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// An error, as a page for a browser and as `{"error": …}` for a program.
pub fn error(status: StatusCode, title: &str, message: &str, as_html: bool) -> Response {
    if !as_html {
        let mut response =
            (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
        own_page_headers(response.headers_mut());
        return response;
    }
    let body = format!(
        "<h1>{}</h1><p>{}</p><p><a href=\"/\">Home</a></p>",
        escape(title),
        escape(message)
    );
    html(status, page(title, &body))
}

/// The gateway's home page: paste a key; links to the operator's pages.
pub fn home(api_origin: &str) -> String {
    let api = escape(api_origin);
    page(
        "Home",
        &format!(
            "<h1>Warren</h1><p>Paste a key to open it. Pages are filtered so that nothing \
             in them can reach beyond this node.</p>\
             <form method=\"get\" action=\"/\"><input type=\"text\" name=\"key\" \
             placeholder=\"CHK@…\" autofocus> <button>Open</button></form>\
             <nav class=\"box\"><a href=\"{api}/\">Node status</a><a href=\"{api}/upload\">Insert a file or a folder</a></nav>"
        ),
    )
}

/// "You are leaving Warren": the outside URL as text and a plain link to it.
pub fn leave(url: &str) -> String {
    let url = escape(url);
    page(
        "Leaving Warren",
        &format!(
            "<h1>You are about to leave Warren</h1>\
             <p class=\"warn\">This link goes to the open web. Following it connects your \
             browser to that site directly: the site, and anyone watching the network, \
             will see your IP address.</p>\
             <p class=\"key\">{url}</p>\
             <p><a href=\"{url}\" rel=\"noreferrer noopener\">Go there anyway</a> · \
             <a href=\"/\">Stay on Warren</a></p>"
        ),
    )
}

/// Content with no filter, or one that failed: offered, never rendered.
pub fn offer(
    key_path: &str,
    content_type: &str,
    reason: &str,
    can_open_unfiltered: bool,
) -> String {
    let link = escape(key_path);
    let unfiltered = if can_open_unfiltered {
        format!(" · <a href=\"{link}?mode=unfiltered\">open it unfiltered…</a>")
    } else {
        String::new()
    };
    page(
        "Not shown",
        &format!(
            "<h1>This content is not shown in the browser</h1>\
             <p>{}</p><p>Type: <code>{}</code></p>\
             <p><a href=\"{link}?mode=download\">Download it</a> · \
             <a href=\"{link}?mode=text\">view it as text</a>{unfiltered}</p>",
            escape(reason),
            escape(content_type)
        ),
    )
}

/// The warning in front of an unfiltered page; `confirmed` carries the proof
/// that the reader saw it.
pub fn unfiltered_warning(key_path: &str, confirmed: &str) -> String {
    page(
        "Open unfiltered?",
        &format!(
            "<h1>Open this page without the filter?</h1>\
             <p class=\"warn\">Without the filter, the page's own markup reaches your \
             browser as its author wrote it. The gateway still forbids scripts and \
             requests elsewhere, but it no longer removes references that leave the \
             node: your browser may still open connections to servers the page names \
             (Chromium applies no policy to <code>preconnect</code> hints), which shows \
             them your IP address.</p><p class=\"key\">{}</p>\
             <p><a href=\"{}\">Open it unfiltered</a> · <a href=\"{}\">Back to the filtered page</a></p>",
            escape(key_path),
            escape(confirmed),
            escape(key_path)
        ),
    )
}

/// The upload form (API origin). Posting needs this origin: a page elsewhere
/// cannot submit it.
pub fn upload_form(limit_mib: u64) -> String {
    page(
        "Insert",
        &format!(
            "<nav><a href=\"/\">Status</a><a href=\"/upload\">Insert</a></nav>\
             <h1>Insert into Warren</h1>\
             <form class=\"box\" method=\"post\" action=\"/upload\" enctype=\"multipart/form-data\">\
             <p><label>A file: <input type=\"file\" name=\"file\"></label></p>\
             <p><button>Insert the file</button></p></form>\
             <form class=\"box\" method=\"post\" action=\"/upload\" enctype=\"multipart/form-data\">\
             <p><label>A folder (a site; its index.html is the front page): \
             <input type=\"file\" name=\"folder\" webkitdirectory multiple></label></p>\
             <p><button>Insert the folder</button></p></form>\
             <p>Largest upload: {limit_mib} MiB. The key that comes back is the only way \
             to find the content again: keep it.</p>"
        ),
    )
}

/// What an upload gave.
pub fn upload_done(key: &str, gateway_origin: &str) -> String {
    let key = escape(key);
    page(
        "Inserted",
        &format!(
            "<nav><a href=\"/\">Status</a><a href=\"/upload\">Insert</a></nav>\
             <h1>Inserted</h1><p class=\"key\" id=\"key\">{key}</p>\
             <p><a href=\"{}/{key}\">Open it through the gateway</a></p>",
            escape(gateway_origin)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_cannot_become_markup() {
        let evil = "\"><script>alert(1)</script>";
        for html in [
            leave(evil),
            offer(evil, evil, evil, true),
            unfiltered_warning(evil, evil),
            upload_done(evil, evil),
            home(evil),
        ] {
            assert!(!html.contains("<script"), "{html}");
        }
    }
}
