//! Checks every request passes before a handler sees it: the `Host` it names
//! (DNS rebinding), where a browser says it came from (`Sec-Fetch-Site`,
//! `Origin`: cross-site requests and CSRF), and the API token.

use axum::http::{header, HeaderMap, Method};

use super::token::ApiToken;

/// Host names a loopback listener answers to, besides IP literals.
const LOCAL_NAMES: [&str; 1] = ["localhost"];

/// Whether `host` (a `Host` header) names this listener: an IP literal or
/// `localhost`, with this listener's port. Any other name is a page that
/// pointed its own domain at 127.0.0.1 (DNS rebinding) and is refused.
pub fn host_allowed(host: &str, port: u16) -> bool {
    let (name, port_text) = if let Some(rest) = host.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        (
            None,
            after.strip_prefix(':').or(after.is_empty().then_some("80")),
        )
    } else {
        let (name, port_text) = host.rsplit_once(':').map_or((host, "80"), |(n, p)| (n, p));
        (Some(name), Some(port_text))
    };
    let Some(port_text) = port_text else {
        return false;
    };
    if port_text.parse::<u16>() != Ok(port) {
        return false;
    }
    name.is_none_or(|name| {
        name.parse::<std::net::Ipv4Addr>().is_ok()
            || LOCAL_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
    })
}

/// What a browser says about where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// No `Sec-Fetch-Site`: not a (current) browser, or not a web request.
    Unknown,
    /// Typed in the address bar, a bookmark.
    None,
    SameOrigin,
    /// Another port of the same host (the API and the gateway are that to each other).
    SameSite,
    CrossSite,
}

pub fn fetch_site(headers: &HeaderMap) -> Site {
    match headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("none") => Site::None,
        Some("same-origin") => Site::SameOrigin,
        Some("same-site") => Site::SameSite,
        Some(_) => Site::CrossSite,
        None => Site::Unknown,
    }
}

fn is_navigation(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-mode")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"navigate"))
}

/// Whether a read-only request may be answered: never one a page on another
/// site made the browser send (so no page elsewhere makes this node fetch
/// anything, or embeds what it serves); from the node's other origin only
/// when the user followed a link.
pub fn read_allowed(headers: &HeaderMap) -> bool {
    match fetch_site(headers) {
        Site::Unknown | Site::None | Site::SameOrigin => true,
        Site::SameSite => is_navigation(headers),
        Site::CrossSite => false,
    }
}

/// Whether a state-changing browser request (a form post) comes from a page
/// of this very origin: its `Origin` is ours, or, with no `Origin`, the
/// browser says same-origin. A request with neither is refused.
pub fn same_origin(headers: &HeaderMap, own_origin: &str) -> bool {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => origin.eq_ignore_ascii_case(own_origin),
        None => fetch_site(headers) == Site::SameOrigin,
    }
}

/// Whether the request carries this run's API token.
pub fn has_token(headers: &HeaderMap, token: &ApiToken) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|offered| token.matches(offered))
}

/// Methods that change nothing.
pub fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_loopback_literals_and_localhost_on_our_port_pass() {
        for ok in [
            "127.0.0.1:8888",
            "localhost:8888",
            "LOCALHOST:8888",
            "[::1]:8888",
            "127.0.0.2:8888",
        ] {
            assert!(host_allowed(ok, 8888), "{ok}");
        }
        for bad in [
            "evil.example:8888",
            "127.0.0.1.nip.io:8888",
            "127.0.0.1:8889",
            "127.0.0.1",
            "localhost",
            "[::1]",
            "[::1:8888",
            "[evil]:8888",
            "",
            "localhost.:8888",
            "127.0.0.1:8888:8888",
        ] {
            assert!(!host_allowed(bad, 8888), "{bad}");
        }
        assert!(host_allowed("127.0.0.1", 80));
    }

    proptest::proptest! {
        #[test]
        fn no_name_but_localhost_passes(name in "[a-z][a-z0-9.-]{0,30}", port in proptest::prelude::any::<u16>()) {
            proptest::prop_assume!(name != "localhost");
            let host = format!("{name}:{port}");
            proptest::prop_assert!(!host_allowed(&host, port), "{}", host);
        }

        #[test]
        fn any_host_header_is_judged_without_panic(host in ".{0,64}", port in proptest::prelude::any::<u16>()) {
            let _ = host_allowed(&host, port);
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn cross_site_requests_are_refused_and_same_site_only_as_navigation() {
        assert!(read_allowed(&headers(&[])));
        assert!(read_allowed(&headers(&[("sec-fetch-site", "none")])));
        assert!(read_allowed(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!read_allowed(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!read_allowed(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(read_allowed(&headers(&[
            ("sec-fetch-site", "same-site"),
            ("sec-fetch-mode", "navigate")
        ])));
    }

    #[test]
    fn a_post_needs_our_origin() {
        let own = "http://127.0.0.1:8889";
        assert!(same_origin(
            &headers(&[("origin", "http://127.0.0.1:8889")]),
            own
        ));
        assert!(!same_origin(
            &headers(&[("origin", "http://127.0.0.1:8888")]),
            own
        ));
        assert!(!same_origin(&headers(&[("origin", "null")]), own));
        assert!(!same_origin(&headers(&[]), own));
        assert!(same_origin(
            &headers(&[("sec-fetch-site", "same-origin")]),
            own
        ));
        assert!(!same_origin(
            &headers(&[
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "same-origin")
            ]),
            own
        ));
    }
}
