//! The gateway in a real browser: a site inserted with `warren insert DIR` at
//! one node opens in headless Chromium through another node's gateway, and
//! its relative links (a stylesheet, a script, a page in a subdirectory that
//! links back up) resolve inside the site, whether or not the trailing `/` of
//! the key was typed.
//!
//! Needs Chromium (`scripts/install-test-deps.sh` installs Debian's); without
//! it this test fails and says so rather than skipping.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{stderr, stdout, TestNet};

/// How long one page load may take before the browser is killed.
const PAGE_DEADLINE: Duration = Duration::from_secs(60);

const INDEX_HTML: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>warren site</title>
<link rel="stylesheet" href="css/style.css"></head>
<body><p id="hello">hello from warren</p><a href="docs/">docs</a>
<script src="js/app.js"></script></body></html>
"#;
const STYLE_CSS: &str = "#hello { color: rgb(0, 128, 0); }\n";
/// Reports from inside the page that it ran and that the stylesheet applied.
const APP_JS: &str = r"var report = document.createElement('p');
report.id = 'report';
report.textContent = 'app.js ran; hello is ' +
    getComputedStyle(document.getElementById('hello')).color;
document.body.appendChild(report);
";
const DOCS_HTML: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>docs</title></head>
<body><p>the docs page</p><a href="../">home</a>
<script src="../js/docs.js"></script></body></html>
"#;
const DOCS_JS: &str = r"var report = document.createElement('p');
report.textContent = 'docs.js ran from ' + location.pathname.split('/').slice(-2).join('/');
document.body.appendChild(report);
";

fn write_site(root: &Path) {
    let files = [
        ("index.html", INDEX_HTML),
        ("css/style.css", STYLE_CSS),
        ("js/app.js", APP_JS),
        ("js/docs.js", DOCS_JS),
        ("docs/index.html", DOCS_HTML),
    ];
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
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

/// Loads `url` in headless Chromium and returns the DOM after its scripts ran.
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

#[test]
fn a_site_opens_in_a_browser_and_its_relative_links_resolve() {
    let net = TestNet::start(3);
    let site = tempfile::tempdir().unwrap();
    write_site(site.path());
    let out = net.insert(0, site.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let key = stdout(&out).trim().to_owned();
    assert!(key.ends_with('/'), "a site key ends in '/': {key}");
    // Browse from another node, so every file comes over the network.
    let gateway = format!("http://{}", net.nodes[2].api);

    let expected = "app.js ran; hello is rgb(0, 128, 0)";
    let dom = dump_dom(&format!("{gateway}/{key}"));
    assert!(dom.contains("hello from warren"), "{dom}");
    assert!(
        dom.contains(expected),
        "script or stylesheet missing: {dom}"
    );

    // The key typed without its slash: redirected to it, links still work.
    let bare = key.trim_end_matches('/');
    let dom = dump_dom(&format!("{gateway}/{bare}"));
    assert!(dom.contains(expected), "without the slash: {dom}");
    let agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .new_agent();
    let response = agent.get(format!("{gateway}/{bare}")).call().unwrap();
    assert_eq!(response.status().as_u16(), 308);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("/{bare}/")
    );
    // However many slashes lead the path, the redirect stays on this host.
    let response = agent.get(format!("{gateway}//{bare}")).call().unwrap();
    assert_eq!(response.status().as_u16(), 308);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("/{bare}/")
    );

    // A directory, with and without its slash; its page links back up (`../`).
    for docs in [format!("{key}docs/"), format!("{key}docs")] {
        let dom = dump_dom(&format!("{gateway}/{docs}"));
        assert!(dom.contains("the docs page"), "{docs}: {dom}");
        assert!(dom.contains("docs.js ran from docs/"), "{docs}: {dom}");
    }
}
