//! End-to-end: a site published in USK editions at one node and followed
//! from a node at least three hops away, with real processes and sockets.

mod support;

use std::path::Path;

use support::{stderr, stdout, warren, TestNet};

/// Fresh nodes the reader sits behind: every SSK probe crosses all of them.
const CHAIN: usize = 3;

fn write_site(dir: &Path, edition: u32) {
    std::fs::create_dir_all(dir).expect("site dir");
    std::fs::write(dir.join("index.html"), format!("<p>edition {edition}</p>"))
        .expect("index.html");
}

/// `warren insert SITE --key-file KEY --next-edition` at node `index`; the
/// request key it prints.
fn publish_next(net: &TestNet, index: usize, site: &Path, key_file: &Path) -> (String, String) {
    let out = warren(&[
        "insert",
        site.to_str().expect("utf-8"),
        "--key-file",
        key_file.to_str().expect("utf-8"),
        "--next-edition",
        "--api",
        &net.api_arg(index),
        "--data-dir",
        &net.data_dir_arg(index),
    ]);
    assert!(out.status.success(), "publish failed: {}", stderr(&out));
    (stdout(&out).trim().to_owned(), stderr(&out))
}

/// Fetches the newest edition's index.html at node `index`: (content, stderr).
fn fetch_latest(net: &TestNet, index: usize, request: &str, out: &Path) -> (String, String) {
    let run = net.fetch(index, &format!("{request}index.html"), out);
    assert!(run.status.success(), "fetch failed: {}", stderr(&run));
    (
        std::fs::read_to_string(out).expect("fetched file"),
        stderr(&run),
    )
}

#[test]
fn editions_published_at_one_node_are_followed_from_three_hops_away() {
    let mut net = TestNet::start(6);
    let work = tempfile::tempdir().unwrap();
    let key_file = work.path().join("blog.key");
    let keys = warren(&[
        "keys",
        "new",
        "blog",
        "--usk",
        "--out",
        key_file.to_str().unwrap(),
    ]);
    assert!(keys.status.success(), "{}", stderr(&keys));
    let secret = std::fs::read_to_string(&key_file).unwrap();
    let secret = secret.trim();
    assert!(
        secret.starts_with("USK@") && secret.ends_with(",AQEB/blog/0"),
        "{secret}"
    );

    let site = work.path().join("site");
    let mut request = String::new();
    for edition in 0..3 {
        write_site(&site, edition);
        let (printed, log) = publish_next(&net, 0, &site, &key_file);
        assert!(
            log.contains(&format!("published edition {edition}")),
            "{log}"
        );
        assert!(printed.ends_with(&format!("/blog/{edition}/")), "{printed}");
        assert!(
            !printed.contains(&secret[4..40]),
            "the request key holds no secret"
        );
        request = printed;
    }
    let latest = request.replace("/blog/2/", "/blog/-1/");

    // The chain joins after the publishing, so it holds none of the blocks.
    let (anchor, _) = net.farthest_from(0);
    let tip = net.add_chain(anchor, CHAIN).expect("chain");
    net.wait_linked();

    let out = work.path().join("index.html");
    let (content, log) = fetch_latest(&net, tip, &latest, &out);
    assert_eq!(content, "<p>edition 2</p>");
    assert!(log.contains("edition 2"), "{log}");

    write_site(&site, 3);
    let (printed, _) = publish_next(&net, 0, &site, &key_file);
    assert!(printed.ends_with("/blog/3/"), "{printed}");
    std::fs::remove_file(&out).unwrap();
    let (content, log) = fetch_latest(&net, tip, &latest, &out);
    assert_eq!(content, "<p>edition 3</p>");
    assert!(log.contains("edition 3"), "{log}");

    // The gateway sends `-1` to the newest edition it finds.
    let node = net.node(tip);
    let agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .new_agent();
    let response = agent
        .get(format!("http://{}/{latest}", node.gateway))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 307);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with("/blog/3/"), "{location}");
    let page = agent
        .get(format!("http://{}{location}", node.gateway))
        .header("accept", "text/html")
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(page.contains("edition 3"), "{page}");

    // A KSK: anyone can write it first, and the first block stays.
    let note = work.path().join("note.txt");
    std::fs::write(&note, b"first writer").unwrap();
    let ksk = "KSK@warren-e2e-note";
    let insert_ksk = |path: &Path| {
        warren(&[
            "insert",
            path.to_str().unwrap(),
            "--key",
            ksk,
            "--api",
            &net.api_arg(0),
            "--data-dir",
            &net.data_dir_arg(0),
        ])
    };
    let first = insert_ksk(&note);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(stdout(&first).trim(), ksk);
    let fetched = work.path().join("note-fetched.txt");
    let run = net.fetch(tip, ksk, &fetched);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(std::fs::read(&fetched).unwrap(), b"first writer");
    std::fs::write(&note, b"a squatter").unwrap();
    let second = insert_ksk(&note);
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("already stored under this key"),
        "{}",
        stderr(&second)
    );

    // No node logged the insert key (its seed part).
    for index in 0..=tip {
        let path = net
            .node(index)
            .data_dir
            .join(warren_cli::testnet::process::LOG_FILE);
        let log = std::fs::read_to_string(&path).unwrap();
        assert!(!log.is_empty(), "{} is empty", path.display());
        assert!(
            !log.contains(&secret[4..40]),
            "node {index}'s log holds the insert key"
        );
    }
}
