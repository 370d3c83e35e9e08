//! FCP 2.0 with the real Freenet clients: pyfreenet3's Python API and its
//! `fcpput`/`fcpget` insert and fetch through real Warren node processes,
//! byte for byte; sites through raw FCP (`ClientPutComplexDir`,
//! `ClientPutDiskDir`). pyfreenet3 comes from `scripts/install-test-deps.sh`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{random_file, TestNet};

/// File sizes tried: one block, a few blocks, a multi-segment splitfile.
const SIZES: [(usize, &str); 3] = [
    (1024, "1k.bin"),
    (100 * 1024, "100k.bin"),
    (5 << 20, "5m.bin"),
];

/// The virtualenv the install script fills.
fn venv() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-test/bin");
    assert!(
        venv.join("python").exists() && venv.join("fcpput").exists(),
        "pyfreenet3 is not installed in {}: run `bash scripts/install-test-deps.sh`",
        venv.display()
    );
    venv
}

/// Each node's FCP address, from the testnet's state file.
fn fcp_ports(net: &TestNet) -> Vec<u16> {
    net.nodes
        .iter()
        .map(|n| n.fcp.expect("every testnet node serves FCP").port())
        .collect()
}

fn test_files(dir: &Path) -> Vec<PathBuf> {
    SIZES
        .iter()
        .enumerate()
        .map(|(seed, (len, name))| {
            let path = dir.join(name);
            random_file(&path, *len, 7 + seed as u64);
            path
        })
        .collect()
}

#[test]
fn pyfreenet_api_puts_and_gets_direct_and_from_disk() {
    let venv = venv();
    let net = TestNet::start(4);
    let ports = fcp_ports(&net);
    // Fetched at another node than the one that inserted.
    let (far, hops) = net.farthest_from(0);
    assert!(hops >= 1);
    let work = tempfile::tempdir().expect("tempdir");
    let files = test_files(work.path());
    let out = Command::new(venv.join("python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fcp/api_roundtrip.py"))
        .arg(ports[0].to_string())
        .arg(ports[far].to_string())
        .arg(work.path())
        .args(&files)
        .output()
        .expect("run python");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pyfreenet API run failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Six checks per file plus a content-type check for multi-block files.
    let oks = report.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(oks, SIZES.len() * 6 - 1, "{report}");
}

#[test]
fn fcpput_and_fcpget_round_trip_byte_for_byte() {
    let venv = venv();
    let net = TestNet::start(4);
    let ports = fcp_ports(&net);
    let (far, _) = net.farthest_from(0);
    let work = tempfile::tempdir().expect("tempdir");
    for file in test_files(work.path()) {
        let put = Command::new(venv.join("fcpput"))
            .args(["-P", &ports[0].to_string(), "CHK@"])
            .arg(&file)
            .output()
            .expect("run fcpput");
        let key = String::from_utf8_lossy(&put.stdout).trim().to_owned();
        assert!(
            put.status.success() && key.starts_with("CHK@"),
            "fcpput {}: {key} {}",
            file.display(),
            String::from_utf8_lossy(&put.stderr)
        );
        let back = work.path().join("back");
        let get = Command::new(venv.join("fcpget"))
            .args(["-P", &ports[far].to_string(), &key])
            .arg(&back)
            .output()
            .expect("run fcpget");
        assert!(
            get.status.success(),
            "fcpget {key}: {}",
            String::from_utf8_lossy(&get.stderr)
        );
        assert!(
            std::fs::read(&back).expect("fetched file") == std::fs::read(&file).expect("file"),
            "{} came back different",
            file.display()
        );
        std::fs::remove_file(&back).expect("remove");
    }
}

#[test]
fn pyfreenet_genkey_and_fcpgenkey_publish_signed_keys() {
    let venv = venv();
    let net = TestNet::start(4);
    let ports = fcp_ports(&net);
    let (far, _) = net.farthest_from(0);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fcp/signed_keys.py");
    let out = Command::new(venv.join("python"))
        .arg(&script)
        .args([ports[0].to_string(), ports[far].to_string()])
        .output()
        .expect("run signed_keys.py");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok ")).count(),
        6,
        "{report}"
    );

    // The command-line tools: fcpgenkey prints the request then the insert
    // URI; fcpput under the insert URI, fcpget of the request URI elsewhere.
    let keys = Command::new(venv.join("fcpgenkey"))
        .args(["-P", &ports[0].to_string()])
        .output()
        .expect("run fcpgenkey");
    let text = String::from_utf8_lossy(&keys.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        keys.status.success() && lines.len() == 2,
        "fcpgenkey: {text}"
    );
    let (request, insert) = (lines[0].trim(), lines[1].trim());
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("page.txt");
    std::fs::write(&file, b"published with fcpput").expect("write");
    let put = Command::new(venv.join("fcpput"))
        .args(["-P", &ports[0].to_string(), &format!("{insert}page")])
        .arg(&file)
        .output()
        .expect("run fcpput");
    let uri = String::from_utf8_lossy(&put.stdout).trim().to_owned();
    assert!(
        put.status.success() && uri.contains("SSK@") && uri.ends_with("/page"),
        "fcpput: {uri} {}",
        String::from_utf8_lossy(&put.stderr)
    );
    let back = work.path().join("back");
    let get = Command::new(venv.join("fcpget"))
        .args(["-P", &ports[far].to_string(), &format!("{request}page")])
        .arg(&back)
        .output()
        .expect("run fcpget");
    assert!(
        get.status.success(),
        "fcpget: {}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_eq!(
        std::fs::read(&back).expect("fetched"),
        b"published with fcpput"
    );
}

/// A site through pyfreenet3 on Python 3: `FCPNode.put` per file, the
/// manifest as a `ClientPutComplexDir` of redirects sent through the node
/// API (its own `putdir` cannot send on Python 3, see `docs/FCP.md`); both
/// files fetched back elsewhere byte for byte.
#[test]
fn pyfreenet_inserts_a_site_that_comes_back_byte_for_byte() {
    let venv = venv();
    let net = TestNet::start(4);
    let ports = fcp_ports(&net);
    let (far, _) = net.farthest_from(0);
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        site.path().join("index.html"),
        b"<html><body><a href=\"data.bin\">data</a></body></html>\n",
    )
    .expect("write");
    random_file(&site.path().join("data.bin"), 200 * 1024, 11);
    let out = Command::new(venv.join("python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fcp/site_put.py"))
        .args([ports[0].to_string(), ports[far].to_string()])
        .arg(site.path())
        .args(["index.html", "data.bin"])
        .output()
        .expect("run site_put.py");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two puts, the site, two gets.
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok ")).count(),
        5,
        "{report}"
    );
}

/// pyfreenet3's site tools unchanged: `fcpputdir` (which runs
/// `freesitemgr add`: `GenerateSSK`, a forever `ClientPut` per large file,
/// the manifest as a forever `ClientPutComplexDir` to a USK, all on the
/// global queue) inserts a directory; after a page changes, `freesitemgr
/// update` publishes edition 1. Both come back elsewhere byte for byte.
/// freesitemgr's one setting, the FCP port, is in its config file.
#[test]
fn fcpputdir_and_freesitemgr_insert_and_update_a_site() {
    let venv = venv();
    let net = TestNet::start(4);
    let ports = fcp_ports(&net);
    let (far, _) = net.farthest_from(0);
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join(".freesitemgr");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(
        config.join(".config"),
        format!("fcpHost = \"127.0.0.1\"\nfcpPort = {}\n", ports[0]),
    )
    .expect("write config");
    let site = home.path().join("mysite");
    std::fs::create_dir_all(&site).expect("mkdir");
    std::fs::write(
        site.join("index.html"),
        b"<html><body><a href=\"data.bin\">data</a></body></html>\n",
    )
    .expect("write");
    random_file(&site.join("data.bin"), 300 * 1024, 12);
    let path = format!(
        "{}:{}",
        venv.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let tool = |name: &str| {
        let mut command = Command::new(venv.join(name));
        command.env("HOME", home.path()).env("PATH", &path);
        command
    };
    let out = tool("fcpputdir")
        .arg(&site)
        .output()
        .expect("run fcpputdir");
    let printed = String::from_utf8_lossy(&out.stdout);
    let uri = printed.lines().last().unwrap_or_default().trim().to_owned();
    assert!(
        out.status.success() && uri.starts_with("USK@") && uri.ends_with("/mysite/0"),
        "fcpputdir: {printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // freesitemgr says "No update required" once the node reports the
    // last insert finished and nothing changed since.
    let settle = || {
        for _ in 0..60 {
            let out = tool("freesitemgr")
                .args(["update", "mysite"])
                .output()
                .expect("run freesitemgr");
            let said = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(!said.contains("Traceback"), "freesitemgr update: {said}");
            if said.contains("No update required") {
                return;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        panic!("freesitemgr never saw its insert finish");
    };
    settle();
    let fetch = |key: &str, name: &str| {
        let back = home.path().join(format!("back-{name}"));
        let get = tool("fcpget")
            .args(["-P", &ports[far].to_string(), &format!("{key}/{name}")])
            .arg(&back)
            .output()
            .expect("run fcpget");
        assert!(
            get.status.success(),
            "fcpget {key}/{name}: {}",
            String::from_utf8_lossy(&get.stderr)
        );
        std::fs::read(&back).expect("fetched file")
    };
    for name in ["index.html", "data.bin"] {
        assert!(
            fetch(&uri, name) == std::fs::read(site.join(name)).expect("file"),
            "{name} came back different"
        );
    }
    let page = b"<html><body>edition one</body></html>\n";
    std::fs::write(site.join("index.html"), page).expect("write");
    settle();
    let listed = tool("freesitemgr")
        .args(["list", "mysite"])
        .output()
        .expect("run freesitemgr");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("/mysite/1/"), "{listed}");
    let newest = format!("{}/-1", uri.trim_end_matches("/0"));
    assert_eq!(fetch(&newest, "index.html"), page);
    assert!(fetch(&newest, "data.bin") == std::fs::read(site.join("data.bin")).expect("file"));
}
