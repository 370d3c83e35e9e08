//! The gateway in a real browser (headless Chromium), against real node
//! processes:
//!
//! - a hostile site inserted at one node and opened through another node's
//!   gateway tries every channel there is to make the browser call out to a
//!   recorder HTTP server on another loopback port; the recorder must see no
//!   connection at all (and, opened unfiltered, no request), while the site's own text,
//!   image and stylesheet still load from inside the site, and its scripts
//!   never run (so cannot read the API or insert);
//! - a foreign `Host`, a cross-site `POST` and a token-less API call are refused;
//! - the Rust book (or any multi-page site) opens, a chapter link is followed
//!   and its stylesheets load through the filter;
//! - the status page renders with the node's peers.
//!
//! Needs Chromium (`scripts/install-test-deps.sh` installs Debian's); without
//! it this test fails and says so rather than skipping.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{stderr, stdout, warren, TestNet};

/// How long one page load may take before the browser is killed.
const PAGE_DEADLINE: Duration = Duration::from_secs(60);
/// Virtual time Chromium lets pass before dumping the DOM: timers, refreshes
/// and late loads get their chance to fire.
const VIRTUAL_TIME_MS: u32 = 3000;

/// A 1x1 PNG.
const DOT_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0,
    0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// Every way we know for a page to reach a server (its scripts write their
/// markers from pieces, so the page source never contains them): `R` is the recorder's
/// `host:port`, `NODEAPI` the browsing node's API. Each request names its channel
/// in the path, so a failure says which one leaked.
const HOSTILE_HTML: &str = r#"<!doctype html>
<html manifest="http://R/manifest"><head><meta charset="utf-8"><title>hostile</title>
<base href="http://R/base/">
<link rel="stylesheet" href="css/site.css">
<link rel="stylesheet" href="http://R/link-stylesheet">
<link rel="prefetch" href="http://R/prefetch">
<link rel="preload" as="image" href="http://R/preload">
<link rel="preconnect" href="http://R/">
<link rel="dns-prefetch" href="//R/">
<link rel="prerender" href="http://R/prerender">
<link rel="icon" href="http://R/icon">
<link rel="modulepreload" href="http://R/modulepreload">
<meta http-equiv="refresh" content="1;url=http://R/meta-refresh">
<style>
@import url(http://R/style-import);
@import "//R/style-import-string";
@font-face { font-family: leak; src: url(http://R/font) }
h2 { font-family: leak; background: url("http://R/style-bg") }
h3 { background: image-set("http://R/image-set" 1x) }
h4 { background: u\72 l(//R/escaped-url) }
</style>
<script>
  fetch('http://R/script-fetch');
  fetch('http://NODEAPI/api/status').then(r => r.text()).then(t => document.body.append('API-' + 'READ ' + t));
  fetch('http://NODEAPI/upload', {method: 'POST', body: new FormData()}).then(() => document.body.append('API-' + 'POSTED'));
  document.body.append('SCRIPT-' + 'RAN');
</script>
<script src="http://R/script-src"></script>
</head>
<body background="http://R/body-background">
<h1>hostile site</h1>
<p id="own">the site's own text</p>
<img id="ownimg" src="img/dot.png" alt="own">
<img src="http://R/img-src">
<img src="//R/img-network-path">
<img src="\\R\img-backslashes">
<img src="h&#x74;tp://R/img-entity">
<img srcset="img/dot.png 1x, http://R/img-srcset 2x">
<picture><source srcset="http://R/picture-source"><img src="img/dot.png" alt=""></picture>
<img src="nope.png" onerror="fetch('http://R/onerror')">
<iframe src="http://R/iframe"></iframe>
<iframe srcdoc="<img src='http://R/srcdoc'>"></iframe>
<object data="http://R/object"></object>
<embed src="http://R/embed">
<svg width="10" height="10"><image href="http://R/svg-image" width="10" height="10"/></svg>
<video poster="http://R/video-poster" src="http://R/video-src" autoplay muted></video>
<audio src="http://R/audio" autoplay></audio>
<input type="image" src="http://R/input-image">
<form id="f" action="http://R/form" method="post"><input name="q" value="x" autofocus onfocus="this.form.submit()"></form>
<a id="out" href="http://R/link" ping="http://R/ping">a link out</a>
<div style="background-image: url(http://R/inline-style)">styled</div>
<table background="http://R/table-background"><tr><td>cell</td></tr></table>
<h2>h2</h2><h3>h3</h3><h4>h4</h4>
</body></html>
"#;
/// The site's own stylesheet: an image from inside the site, and a leak.
const SITE_CSS: &str = "#own { color: rgb(0, 128, 0); background: url(../img/from-css.png) }\n\
                        #ownimg { border: url(http://R/css-file-border) }\n";

/// What the recorder notes for a connection that sent no request.
const NO_REQUEST: &str = "(connection, no request)";

/// Accepts connections on a loopback port and remembers every request line.
struct Recorder {
    addr: String,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                            let mut head = [0u8; 512];
                            let n = stream.read(&mut head).unwrap_or(0);
                            let line = String::from_utf8_lossy(&head[..n])
                                .lines()
                                .next()
                                .unwrap_or(NO_REQUEST)
                                .to_owned();
                            seen.lock().unwrap().push(line);
                            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Recorder {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_files(root: &Path, files: &[(&str, &[u8])]) {
    for (path, bytes) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "headless Chromium is needed for the gateway test and was not found: \
             run scripts/install-test-deps.sh (Debian: apt-get install chromium)"
        )
    })
}

/// Loads `url` in headless Chromium and returns the DOM after it settled.
fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut browser = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_MS}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group, so a stuck browser and every helper process
        // it started are stopped together, by id.
        .process_group(0)
        .spawn()
        .unwrap();
    let group = browser.id();
    let reader = {
        let mut out = browser.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut dom = String::new();
            std::io::Read::read_to_string(&mut out, &mut dom).map(|_| dom)
        })
    };
    let deadline = Instant::now() + PAGE_DEADLINE;
    let status = loop {
        if let Some(status) = browser.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            kill_group(group);
            let _ = browser.wait();
            panic!("Chromium did not finish loading {url} within {PAGE_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Helpers can outlive the main process for a moment; none may linger.
    kill_group(group);
    assert!(status.success(), "Chromium failed on {url}: {status}");
    reader.join().unwrap().unwrap()
}

#[allow(unsafe_code)]
fn kill_group(group: u32) {
    if let Ok(group) = i32::try_from(group) {
        // SAFETY: kill(2) has no memory-safety preconditions; a negative pid
        // names the process group.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
}

/// Sends one raw HTTP/1.1 request and returns the status code and the body.
fn raw_request(addr: &str, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

/// `warren_http_requests_total{listener="gateway",outcome=…}` on a node.
fn gateway_count(api: &str, outcome: &str) -> u64 {
    let text = ureq::get(format!("http://{api}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let needle =
        format!("warren_http_requests_total{{listener=\"gateway\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&needle))
        .map_or(0, |n| n.trim().parse().unwrap())
}

fn insert_site(net: &TestNet, node: usize, dir: &Path) -> String {
    let out = net.insert(node, dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = stdout(&out).trim().to_owned();
    assert!(key.ends_with('/'), "a site key ends in '/': {key}");
    key
}

#[test]
fn a_hostile_site_reaches_nothing_outside_and_its_own_content_still_renders() {
    let recorder = Recorder::start();
    let net = TestNet::start(3);
    let browsing = &net.node(2);
    let site = tempfile::tempdir().unwrap();
    let html = HOSTILE_HTML
        .replace("http://R", &format!("http://{}", recorder.addr))
        .replace("//R", &format!("//{}", recorder.addr))
        .replace("\\\\R", &format!("\\\\{}", recorder.addr))
        .replace("NODEAPI", &browsing.api);
    let css = SITE_CSS.replace("http://R", &format!("http://{}", recorder.addr));
    write_files(
        site.path(),
        &[
            ("index.html", html.as_bytes()),
            ("css/site.css", css.as_bytes()),
            ("img/dot.png", DOT_PNG),
            ("img/from-css.png", DOT_PNG),
        ],
    );
    let key = insert_site(&net, 0, site.path());
    let gateway = format!("http://{}", browsing.gateway);

    let filtered_before = gateway_count(&browsing.api, "filtered");
    let dom = dump_dom(&format!("{gateway}/{key}"));
    assert!(dom.contains("the site's own text"), "{dom}");
    assert!(dom.contains("src=\"img/dot.png\""), "{dom}");
    for marker in ["SCRIPT-RAN", "API-READ", "API-POSTED"] {
        assert!(!dom.contains(marker), "a script ran: {marker}: {dom}");
    }
    // The outside link leads to the leaving page, not out.
    assert!(dom.contains("href=\"/_/leave?url=http"), "{dom}");
    // Its stylesheet came through the filter, and its images from the site.
    assert!(
        gateway_count(&browsing.api, "filtered") >= filtered_before + 2,
        "the page and its stylesheet were not both filtered and served"
    );
    assert!(
        gateway_count(&browsing.api, "served") >= 2,
        "images not served"
    );

    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        recorder.seen(),
        Vec::<String>::new(),
        "the filtered page reached the recorder"
    );

    // The same page unfiltered (an explicit choice behind a warning page):
    // the policy alone still keeps the browser in.
    let warning = dump_dom(&format!("{gateway}/{key}index.html?mode=unfiltered"));
    let confirmed = warning
        .split("href=\"")
        .map(|rest| {
            rest.split('"')
                .next()
                .unwrap_or_default()
                .replace("&amp;", "&")
        })
        .find(|href| href.contains("force="))
        .unwrap_or_else(|| panic!("no confirmation link: {warning}"));
    let dom = dump_dom(&format!("{gateway}{confirmed}"));
    assert!(dom.contains("the site's own text"), "{dom}");
    for marker in ["SCRIPT-RAN", "API-READ", "API-POSTED"] {
        assert!(
            !dom.contains(marker),
            "a script ran unfiltered: {marker}: {dom}"
        );
    }
    // A guessed confirmation is a warning again, not the page.
    let guessed = dump_dom(&format!(
        "{gateway}/{key}index.html?mode=unfiltered&force={}",
        "00".repeat(32)
    ));
    assert!(
        guessed.contains("Open this page without the filter?"),
        "{guessed}"
    );

    // Unfiltered, the policy stops every request, but Chromium opens bare
    // connections for `<link rel=preconnect>`, which no policy governs: that
    // is what the warning page says, and why the filter exists.
    std::thread::sleep(Duration::from_millis(500));
    let requests: Vec<String> = recorder
        .seen()
        .into_iter()
        .filter(|line| line != NO_REQUEST)
        .collect();
    assert_eq!(
        requests,
        Vec::<String>::new(),
        "the unfiltered page made a request"
    );
}

#[test]
fn foreign_hosts_cross_site_requests_and_token_less_calls_are_refused() {
    let net = TestNet::start(2);
    let node = &net.node(1);
    let site = tempfile::tempdir().unwrap();
    write_files(site.path(), &[("index.html", b"<p>hello</p>".as_slice())]);
    let key = insert_site(&net, 0, site.path());

    // DNS rebinding: a name that is not ours, on either origin.
    for addr in [&node.gateway, &node.api] {
        let (code, _) = raw_request(
            addr,
            "GET / HTTP/1.1\r\nHost: rebind.example:80\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(code, 421, "{addr} answered a foreign Host");
        let port = addr.rsplit(':').next().unwrap();
        let (code, _) = raw_request(
            addr,
            &format!(
                "GET / HTTP/1.1\r\nHost: 127.0.0.1.nip.example:{port}\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(code, 421, "{addr} answered a rebinding name on its port");
    }
    // A cross-site post to the upload form, and one from the gateway origin.
    let body = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.txt\"\r\n\r\nx\r\n--b--\r\n";
    for origin in [
        "https://evil.example".to_owned(),
        format!("http://{}", node.gateway),
    ] {
        let (code, text) = raw_request(
            &node.api,
            &format!(
                "POST /upload HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                node.api,
                body.len()
            ),
        );
        assert_eq!(code, 403, "upload from {origin} was not refused: {text}");
    }
    // The same post from the API's own origin goes through.
    let (code, text) = raw_request(
        &node.api,
        &format!(
            "POST /upload HTTP/1.1\r\nHost: {0}\r\nOrigin: http://{0}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {1}\r\nConnection: close\r\n\r\n{body}",
            node.api,
            body.len()
        ),
    );
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("CHK@"), "{text}");
    // A folder (as `<input webkitdirectory>` sends it) becomes a site.
    let folder = "--b\r\nContent-Disposition: form-data; name=\"folder\"; filename=\"site/index.html\"\r\nContent-Type: text/html\r\n\r\n<p>uploaded front page</p>\r\n\
                  --b\r\nContent-Disposition: form-data; name=\"folder\"; filename=\"site/sub/a.txt\"\r\nContent-Type: text/plain\r\n\r\nplain\r\n--b--\r\n";
    let (code, text) = raw_request(
        &node.api,
        &format!(
            "POST /upload HTTP/1.1\r\nHost: {0}\r\nOrigin: http://{0}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {1}\r\nConnection: close\r\n\r\n{folder}",
            node.api,
            folder.len()
        ),
    );
    assert_eq!(code, 200, "{text}");
    let site_key = text
        .split("id=\"key\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("no key on the result page: {text}"))
        .to_owned();
    assert!(site_key.ends_with('/'), "{site_key}");
    let (code, page) = raw_request(
        &node.gateway,
        &format!(
            "GET /{site_key} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            node.gateway
        ),
    );
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("uploaded front page"), "{page}");
    let (code, page) = raw_request(
        &node.gateway,
        &format!(
            "GET /{site_key}sub/a.txt HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            node.gateway
        ),
    );
    assert_eq!(code, 200, "{page}");
    assert!(page.ends_with("plain"), "{page}");
    // The API without the token, even from a plain client.
    let (code, _) = raw_request(
        &node.api,
        &format!("POST /api/insert HTTP/1.1\r\nHost: {}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx", node.api),
    );
    assert_eq!(code, 401);
    let (code, _) = raw_request(
        &node.api,
        &format!("GET /api/status HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer 00\r\nConnection: close\r\n\r\n", node.api),
    );
    assert_eq!(code, 401);
    // A page elsewhere cannot make the gateway fetch (an embedded image, say).
    let (code, _) = raw_request(
        &node.gateway,
        &format!("GET /{key} HTTP/1.1\r\nHost: {}\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\nConnection: close\r\n\r\n", node.gateway),
    );
    assert_eq!(code, 403);
    // The gateway changes nothing.
    let (code, _) = raw_request(
        &node.gateway,
        &format!(
            "POST /{key} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            node.gateway
        ),
    );
    assert_eq!(code, 405);
    // The CLI finds the token through the node's data directory, and says
    // where it looked when it was not there.
    let data_dir = node.data_dir.to_str().unwrap();
    let out = warren(&["status", "--api", &node.api, "--data-dir", data_dir]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("peers"), "{}", stdout(&out));
    let elsewhere = tempfile::tempdir().unwrap();
    let out = warren(&[
        "status",
        "--api",
        &node.api,
        "--data-dir",
        elsewhere.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("refused the API token read from"),
        "{}",
        stderr(&out)
    );
    // And content carries the policy.
    let (code, text) = raw_request(
        &node.gateway,
        &format!(
            "GET /{key} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            node.gateway
        ),
    );
    assert_eq!(code, 200, "{text}");
    let head = text.to_ascii_lowercase();
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{text}"
    );
    assert!(head.contains("sandbox"), "{text}");
    assert!(head.contains("referrer-policy: no-referrer"), "{text}");
    assert!(
        head.contains("cache-control: private, max-age=31536000, immutable"),
        "{text}"
    );
    assert!(head.contains("etag: \"w"), "{text}");
    assert!(!head.contains("set-cookie"), "{text}");
}

/// The value of the first `/metrics` line starting with `prefix ` (0 if none).
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(prefix)?.strip_prefix(' '))
        .map_or(0.0, |n| n.trim().parse().unwrap())
}

fn metrics_text(api: &str) -> String {
    ureq::get(format!("http://{api}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

#[test]
fn the_status_page_shows_the_peers_and_the_home_page_opens_keys() {
    let net = TestNet::start(3);
    let node = &net.node(1);
    // A file inserted at another node and fetched here crosses the network;
    // a caller sending garbage to the peer port is a link refused.
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("file.bin");
    support::random_file(&file, 200_000, 11);
    let out = net.insert(0, &file);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = stdout(&out).trim().to_owned();
    let back = work.path().join("back.bin");
    let out = net.fetch(1, &key, &back);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = net.status(1).unwrap();
    let noderef: warren_crypto::NodeRef = status["noderef"].as_str().unwrap().parse().unwrap();
    let mut garbage = TcpStream::connect(noderef.address).unwrap();
    garbage.write_all(&[0xff; 300]).unwrap();
    garbage.shutdown(std::net::Shutdown::Write).unwrap();
    let _ = garbage.read_to_end(&mut Vec::new());
    let deadline = Instant::now() + Duration::from_secs(20);
    let json = loop {
        let out = warren(&[
            "status",
            "--json",
            "--api",
            &net.api_arg(1),
            "--data-dir",
            &net.data_dir_arg(1),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        if json["links"]["refused"]["handshake_failed"].as_u64() >= Some(1) {
            break json;
        }
        assert!(Instant::now() < deadline, "no refused link counted: {json}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let peers = json["peers"].as_array().unwrap();
    let found: u64 = peers
        .iter()
        .map(|p| p["to_peer"]["success"].as_u64().unwrap())
        .sum();
    assert!(found >= 1, "no peer found a block: {json}");
    assert!(
        peers.iter().all(|p| p["to_peer_in_flight"].is_u64()),
        "{json}"
    );
    assert!(
        json["local"]["fetch"]["success"].as_u64() >= Some(1),
        "{json}"
    );
    let asked = json["hops"]["fetch_peers_asked"].as_object().unwrap();
    assert!(
        asked.iter().any(|(v, n)| v != "0" && n.as_u64() > Some(0)),
        "no fetch found through a peer: {json}"
    );
    let text = warren(&[
        "status",
        "--api",
        &net.api_arg(1),
        "--data-dir",
        &net.data_dir_arg(1),
    ]);
    let text = stdout(&text);
    assert!(
        text.contains("its answers") && text.contains("handshake failed"),
        "{text}"
    );
    assert!(text.contains("own blocks: fetches success"), "{text}");

    let dom = dump_dom(&format!("http://{}/", node.api));
    let peers = dom.matches("class=\"peer\"").count();
    assert_eq!(peers, node.neighbours.len(), "{dom}");
    assert!(dom.contains("<svg"), "{dom}");
    assert_eq!(
        dom.matches("class=\"in-flight\"").count(),
        node.neighbours.len(),
        "{dom}"
    );
    assert!(dom.contains("handshake failed"), "{dom}");
    let hops = dom
        .split_once("Own fetches found, by peers asked (0 = own store): ")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    assert!(hops.starts_with(|c: char| c.is_ascii_digit()), "{dom}");
    let metrics = metrics_text(&node.api);
    assert!(
        metric(
            &metrics,
            "warren_links_refused_total{reason=\"handshake_failed\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "warren_links_opened_total{direction=\"inbound\"}")
            + metric(
                &metrics,
                "warren_links_opened_total{direction=\"outbound\"}"
            )
            >= node.neighbours.len() as f64,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "warren_peer_requests_total{direction=\"to_peers\",outcome=\"success\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "warren_local_requests_total{kind=\"fetch\",outcome=\"success\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "warren_local_fetch_peers_asked_count") >= 1.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("warren_local_fetch_htl_used_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("warren_peers {}", node.neighbours.len())),
        "{metrics}"
    );
    assert!(
        metrics.contains("warren_store_blocks{area=\"store\"}"),
        "{metrics}"
    );
    let home = dump_dom(&format!("http://{}/", node.gateway));
    assert!(home.contains("name=\"key\""), "{home}");
    assert!(
        home.contains(&format!("http://{}/upload", node.api)),
        "{home}"
    );
}

/// The Rust book as rustup installs it (component `rust-docs`, which
/// `scripts/install-test-deps.sh` adds when it is missing).
fn rust_book() -> PathBuf {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc runs");
    let book = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim())
        .join("share/doc/rust/html/book");
    assert!(
        book.join("index.html").is_file(),
        "the Rust book is not at {}: run scripts/install-test-deps.sh (rustup component add rust-docs)",
        book.display()
    );
    book
}

#[test]
fn the_rust_book_opens_and_a_chapter_link_is_followed_with_its_styles() {
    let book = rust_book();
    let net = TestNet::start(3);
    let browsing = &net.node(2);
    let key = insert_site(&net, 0, &book);
    let gateway = format!("http://{}", browsing.gateway);

    let dom = dump_dom(&format!("{gateway}/{key}"));
    assert!(dom.contains("The Rust Programming Language"), "{dom}");
    let chapter = dom
        .split("href=\"")
        .filter_map(|rest| rest.split('"').next())
        .find(|href| href.starts_with("ch01-"))
        .unwrap_or_else(|| panic!("no chapter link on the front page: {dom}"))
        .to_owned();

    let filtered_before = gateway_count(&browsing.api, "filtered");
    let page = dump_dom(&format!("{gateway}/{key}{chapter}"));
    assert!(page.contains("<h1"), "{chapter}: {page}");
    let sheets = page.matches("rel=\"stylesheet\"").count();
    assert!(sheets >= 3, "the chapter lost its stylesheets: {page}");
    // The page and (all but perhaps a print-only one of) its stylesheets
    // went through the filter to the browser.
    let filtered = gateway_count(&browsing.api, "filtered") - filtered_before;
    assert!(
        filtered >= sheets as u64,
        "{filtered} filtered answers for a page with {sheets} stylesheets"
    );
}

#[test]
fn sites_open_at_their_key_with_ranges_etags_and_readable_errors() {
    let net = TestNet::start(3);
    let node = &net.node(2);
    let site = tempfile::tempdir().unwrap();
    let picture: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    write_files(
        site.path(),
        &[
            (
                "index.html",
                b"<p>front page</p><a href=\"docs/\">docs</a>".as_slice(),
            ),
            (
                "docs/index.html",
                b"<p>the docs page</p><a href=\"../\">home</a>".as_slice(),
            ),
            ("big.png", &picture),
        ],
    );
    let key = insert_site(&net, 0, site.path());
    let gateway = format!("http://{}", node.gateway);
    let agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .new_agent();

    // The key typed without its slash, with extra slashes, and a directory
    // without its slash: redirected to the slash, on this host.
    let bare = key.trim_end_matches('/');
    for (asked, location) in [
        (format!("/{bare}"), format!("/{bare}/")),
        (format!("//{bare}"), format!("/{bare}/")),
        (format!("/{key}docs"), format!("/{key}docs/")),
    ] {
        let response = agent.get(format!("{gateway}{asked}")).call().unwrap();
        assert_eq!(response.status().as_u16(), 308, "{asked}");
        assert_eq!(response.headers()["location"].to_str().unwrap(), location);
    }
    let dom = dump_dom(&format!("{gateway}/{key}docs"));
    assert!(
        dom.contains("the docs page") && dom.contains("href=\"../\""),
        "{dom}"
    );
    // The home page's form opens a pasted key.
    let response = agent
        .get(format!("{gateway}/?key={}", key.replace('@', "%40")))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("/{key}")
    );

    // A range of an image, HEAD, and a revalidation by ETag.
    let url = format!("{gateway}/{key}big.png");
    let mut response = agent
        .get(&url)
        .header("range", "bytes=1000-1999")
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 206);
    assert_eq!(
        response.headers()["content-range"].to_str().unwrap(),
        format!("bytes 1000-1999/{}", picture.len())
    );
    let part = response.body_mut().read_to_vec().unwrap();
    assert_eq!(part, picture[1000..2000]);
    let response = agent.head(&url).call().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-length"].to_str().unwrap(),
        picture.len().to_string()
    );
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let response = agent
        .get(&url)
        .header("if-none-match", &etag)
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 304);

    // Errors: a page for a browser, JSON for a program.
    let bad = format!("{gateway}/CHK@not-a-key");
    let mut response = agent
        .get(&bad)
        .header("accept", "text/html")
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let page = response.body_mut().read_to_string().unwrap();
    assert!(page.contains("<h1>Not a valid key</h1>"), "{page}");
    let mut response = agent
        .get(&bad)
        .header("accept", "application/json")
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let json: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert!(
        json["error"].as_str().unwrap().contains("not a valid key"),
        "{json}"
    );
}
