//! Where a reference in filtered content points, decided the way a browser
//! would parse it: inside the node (a relative path or another Warren key),
//! out of it (any absolute or network-path URL), or nowhere it may go at all
//! (`javascript:`, `data:` other than images).

use std::fmt::Write as _;

/// Key types a Warren link can name; a link to one becomes a gateway link.
const KEY_PREFIXES: [&str; 4] = ["CHK@", "SSK@", "USK@", "KSK@"];
/// Schemes under which a key may be written (`warren:CHK@…`, Fred's `freenet:`).
const KEY_SCHEMES: [&str; 3] = ["warren", "freenet", "hypha"];
/// Schemes that are code, or content made up on the spot: never followed.
const BLOCKED_SCHEMES: [&str; 6] = [
    "javascript",
    "vbscript",
    "livescript",
    "data",
    "blob",
    "filesystem",
];
/// Host names under which a local gateway link may have been written.
const LOOPBACK_HOSTS: [&str; 3] = ["127.0.0.1", "localhost", "[::1]"];
/// Path of the gateway's "you are leaving Warren" page.
pub const LEAVE_PATH: &str = "/_/leave";

/// What a reference is, once parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Stays on the gateway: a path relative to the page, or an absolute path.
    Local(String),
    /// Another Warren key; the value is its gateway path (`/CHK@…`).
    Key(String),
    /// A URL that leaves the node (`https://…`, `//host/…`, `mailto:…`).
    Outside(String),
    /// `data:` with an image type: inline bytes, no request.
    DataImage(String),
    /// Code or a made-up document (`javascript:`, `data:text/html`): dropped.
    Blocked,
}

/// How the reference is used: a link the reader follows, or something the
/// browser loads by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// `a href`, `area href`: an outside link becomes the leaving page.
    Navigate,
    /// `img src`, stylesheets, CSS `url()`: anything not local is dropped.
    Load,
    /// Form targets: anything not local is dropped (the form then posts to
    /// the page itself, on the node).
    Submit,
}

/// Parses `raw` as a browser would resolve it against a gateway page.
pub fn classify(raw: &str) -> Target {
    // Browsers drop tabs and newlines anywhere and C0 controls and spaces at
    // both ends before parsing; so do we, so `java\tscript:` is `javascript:`.
    let cleaned: String = raw
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    if let Some(key) = key_path(&cleaned) {
        return Target::Key(key);
    }
    let mut chars = cleaned.chars();
    let (first, second) = (chars.next(), chars.next());
    let slash = |c: Option<char>| matches!(c, Some('/' | '\\'));
    if slash(first) && slash(second) {
        // `//host/x`, `\\host`, `/\host`: another host, same scheme.
        return Target::Outside(cleaned);
    }
    match scheme(&cleaned) {
        None => Target::Local(cleaned),
        Some(scheme) if scheme == "data" && is_image_data(&cleaned) => Target::DataImage(cleaned),
        Some(scheme) if BLOCKED_SCHEMES.contains(&scheme.as_str()) => Target::Blocked,
        Some(scheme) if scheme == "http" || scheme == "https" => {
            match loopback_key_path(&cleaned) {
                Some(key) => Target::Key(key),
                None => Target::Outside(cleaned),
            }
        }
        Some(_) => Target::Outside(cleaned),
    }
}

/// The value to write in place of `raw` used as `usage`, or `None` to drop it.
pub fn rewrite(raw: &str, usage: Use, allow_data_image: bool) -> Option<String> {
    match classify(raw) {
        Target::Local(path) | Target::Key(path) => Some(path),
        Target::DataImage(data) if allow_data_image && usage == Use::Load => Some(data),
        Target::Outside(url) if usage == Use::Navigate => Some(leave_link(&url)),
        Target::DataImage(_) | Target::Outside(_) | Target::Blocked => None,
    }
}

/// The gateway path of the page that shows `url` and asks before leaving.
pub fn leave_link(url: &str) -> String {
    let mut link = format!("{LEAVE_PATH}?url=");
    let _ = write!(
        link,
        "{}",
        percent_encoding::utf8_percent_encode(url, percent_encoding::NON_ALPHANUMERIC)
    );
    link
}

/// The scheme of an absolute URL, lowercased; `None` for relative references.
fn scheme(url: &str) -> Option<String> {
    let end = url.find([':', '/', '?', '#'])?;
    if !url[end..].starts_with(':') {
        return None;
    }
    let name = &url[..end];
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| name.to_ascii_lowercase())
}

/// `CHK@…`, `/CHK@…`, `warren:CHK@…`: the key's gateway path.
fn key_path(url: &str) -> Option<String> {
    let mut rest = url;
    if let Some(scheme) = scheme(url) {
        if !KEY_SCHEMES.contains(&scheme.as_str()) {
            return None;
        }
        rest = &url[scheme.len() + 1..];
    }
    let rest = rest.trim_start_matches('/');
    let is_key = KEY_PREFIXES.iter().any(|prefix| {
        rest.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    });
    // A bare `/x` is a local path, handled by the caller; only keys here.
    is_key.then(|| format!("/{rest}"))
}

/// `http://127.0.0.1:8888/CHK@…` (a link written for a local gateway).
fn loopback_key_path(url: &str) -> Option<String> {
    let after_scheme = url.split_once("://")?.1;
    let (host_port, path) = after_scheme.split_at(after_scheme.find('/')?);
    let host = match host_port.rfind(':') {
        Some(colon) if !host_port.ends_with(']') => &host_port[..colon],
        _ => host_port,
    };
    if !LOOPBACK_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return None;
    }
    let path = path.trim_start_matches('/');
    KEY_PREFIXES
        .iter()
        .any(|prefix| path.starts_with(prefix))
        .then(|| format!("/{path}"))
}

/// `data:image/png;base64,…` and the like, but not SVG documents served as
/// data (an image element would not run them, but nothing else needs them).
fn is_image_data(url: &str) -> bool {
    let media = url["data:".len()..]
        .split([';', ','])
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media.starts_with("image/") && !media.contains("svg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_sorted_as_a_browser_would_resolve_them() {
        let local = |s: &str| Target::Local(s.to_owned());
        let outside = |s: &str| Target::Outside(s.to_owned());
        let key = |s: &str| Target::Key(s.to_owned());
        let table = [
            ("css/style.css", local("css/style.css")),
            ("../up.html", local("../up.html")),
            ("/abs/path", local("/abs/path")),
            ("#frag", local("#frag")),
            ("?q=1", local("?q=1")),
            ("a:b/c", outside("a:b/c")),
            ("x/y:z", local("x/y:z")),
            (
                "https://tracker.example/x",
                outside("https://tracker.example/x"),
            ),
            (
                "HTTP://tracker.example/x",
                outside("HTTP://tracker.example/x"),
            ),
            ("//tracker.example/x", outside("//tracker.example/x")),
            ("\\\\tracker.example", outside("\\\\tracker.example")),
            ("/\\tracker.example", outside("/\\tracker.example")),
            (" \t//tracker.example", outside("//tracker.example")),
            (
                "ht\ntp://tracker.example",
                outside("http://tracker.example"),
            ),
            (
                "mailto:someone@example.org",
                outside("mailto:someone@example.org"),
            ),
            ("javascript:alert(1)", Target::Blocked),
            ("JaVa\tScRiPt:alert(1)", Target::Blocked),
            ("\u{1}javascript:alert(1)", Target::Blocked),
            ("data:text/html,<script>", Target::Blocked),
            ("data:image/svg+xml,<svg>", Target::Blocked),
            (
                "data:image/png;base64,AAAA",
                Target::DataImage("data:image/png;base64,AAAA".into()),
            ),
            ("CHK@abc,def,AAE/x.html", key("/CHK@abc,def,AAE/x.html")),
            ("/CHK@abc,def,AAE/", key("/CHK@abc,def,AAE/")),
            ("warren:CHK@abc,def,AAE", key("/CHK@abc,def,AAE")),
            ("freenet:USK@abc/site/3/", key("/USK@abc/site/3/")),
            (
                "http://127.0.0.1:8888/CHK@abc,def,AAE/",
                key("/CHK@abc,def,AAE/"),
            ),
            (
                "http://evil.example/CHK@abc,def,AAE/",
                outside("http://evil.example/CHK@abc,def,AAE/"),
            ),
        ];
        for (raw, want) in table {
            assert_eq!(classify(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn outside_links_go_through_the_leaving_page_and_loads_are_dropped() {
        assert_eq!(
            rewrite("https://a.example/?x=1&y", Use::Navigate, false).as_deref(),
            Some("/_/leave?url=https%3A%2F%2Fa%2Eexample%2F%3Fx%3D1%26y")
        );
        assert_eq!(rewrite("https://a.example/x.png", Use::Load, true), None);
        assert_eq!(rewrite("https://a.example/", Use::Submit, false), None);
        assert_eq!(rewrite("javascript:x", Use::Navigate, false), None);
        assert_eq!(rewrite("data:image/gif;base64,R0", Use::Load, false), None);
        assert!(rewrite("data:image/gif;base64,R0", Use::Load, true).is_some());
        assert_eq!(
            rewrite("img/a.png", Use::Load, false).as_deref(),
            Some("img/a.png")
        );
    }
}
