//! FCP 2.0 on raw sockets against real node processes: bad input is refused
//! (a `ProtocolError`, a closed connection) while the node stays up and
//! other clients are unaffected; sites through `ClientPutComplexDir` and
//! `ClientPutDiskDir`; Warren's signed keys (GenerateSSK, ClientGet of
//! SSK/USK/KSK), and Freenet's refused as invalid URIs.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::fcp::{Client, Reply, READ_TIMEOUT};
use support::TestNet;

/// Connections held open at once in the flood check.
const HELD_CONNECTIONS: usize = 1000;

fn fcp_ports(net: &TestNet) -> Vec<u16> {
    net.nodes
        .iter()
        .map(|n| n.fcp.expect("every testnet node serves FCP").port())
        .collect()
}

fn put(client: &mut Client, id: &str, data: &[u8]) -> String {
    let mut message = format!(
        "ClientPut\nIdentifier={id}\nURI=CHK@\nUploadFrom=direct\nDataLength={}\nData\n",
        data.len()
    )
    .into_bytes();
    message.extend_from_slice(data);
    client.send(&message);
    let done = client.until(id, &["PutSuccessful", "PutFailed", "ProtocolError"]);
    assert_eq!(done.name, "PutSuccessful", "{done:?}");
    done.fields["URI"].clone()
}

fn get(client: &mut Client, id: &str, uri: &str) -> Vec<u8> {
    client.send(
        format!("ClientGet\nIdentifier={id}\nURI={uri}\nReturnType=direct\nEndMessage\n")
            .as_bytes(),
    );
    let found = client.until(id, &["DataFound", "GetFailed", "ProtocolError"]);
    assert_eq!(found.name, "DataFound", "{found:?}");
    client.until(id, &["AllData"]).data
}

/// A healthy client on `port` inserts and fetches a small file.
fn still_works(port: u16, tag: &str) {
    let mut client = Client::hello_as(port, "raw");
    let data = format!("still works after {tag}").into_bytes();
    let uri = put(&mut client, &format!("{tag}-put"), &data);
    assert_eq!(get(&mut client, &format!("{tag}-get"), &uri), data);
}

fn protocol_error(reply: Option<Reply>) -> Reply {
    let reply = reply.expect("a ProtocolError before the connection closed");
    assert_eq!(reply.name, "ProtocolError", "{reply:?}");
    reply
}

#[test]
fn bad_input_is_refused_and_the_node_stays_up() {
    let net = TestNet::start(2);
    let port = fcp_ports(&net)[0];

    // A message before ClientHello: code 1, then closed.
    let mut c = Client::connect(port);
    c.send(b"ClientGet\nIdentifier=x\nURI=CHK@\nEndMessage\n");
    assert_eq!(protocol_error(c.read()).fields["Code"], "1");
    assert!(c.closed());

    // An unknown message: code 7, and the connection stays usable.
    let mut c = Client::hello_as(port, "raw");
    c.send(b"FrobnicateKeys\nIdentifier=u1\nEndMessage\n");
    let e = protocol_error(c.read());
    assert_eq!(
        (e.fields["Code"].as_str(), e.fields["Identifier"].as_str()),
        ("7", "u1")
    );
    c.send(b"ListPersistentRequests\nEndMessage\n");
    assert_eq!(c.read().expect("reply").name, "EndListPersistentRequests");
    // Warren's signed keys: a fresh pair, both ending in `/` as Fred's do;
    // a USK subscription is not offered; Freenet's own signed keys are not
    // Warren's (an invalid URI).
    c.send(b"GenerateSSK\nIdentifier=g1\nEndMessage\n");
    let pair = c.until("g1", &["SSKKeypair"]);
    assert!(pair.fields["InsertURI"].starts_with("freenet:SSK@"));
    assert!(pair.fields["InsertURI"].ends_with(",AQEB/"));
    assert!(pair.fields["RequestURI"].ends_with(",AQEA/"));
    c.send(b"SubscribeUSK\nIdentifier=u1\nURI=USK@a/b/1\nEndMessage\n");
    let e = protocol_error(c.read());
    assert_eq!(
        (e.fields["Code"].as_str(), e.fields["Identifier"].as_str()),
        ("8", "u1")
    );
    c.send(b"ClientGet\nIdentifier=s1\nURI=USK@abc,def,AQACAAE/site/3\nEndMessage\n");
    let failed = c.until("s1", &["GetFailed"]);
    assert_eq!(failed.fields["Code"], "20");
    // A late ClientHello (2), an unknown request to remove (15), a bad URI (4).
    c.send(b"ClientHello\nName=again\nExpectedVersion=2.0\nEndMessage\n");
    assert_eq!(protocol_error(c.read()).fields["Code"], "2");
    c.send(b"RemoveRequest\nIdentifier=nope\nEndMessage\n");
    assert_eq!(protocol_error(c.read()).fields["Code"], "15");
    c.send(b"ClientGet\nIdentifier=b1\nURI=CHK@not-a-key\nEndMessage\n");
    let e = protocol_error(c.read());
    assert_eq!(
        (e.fields["Code"].as_str(), e.fields["Identifier"].as_str()),
        ("4", "b1")
    );

    // A malformed line, a 10 MB field, a huge and a negative DataLength:
    // a ProtocolError, then the connection is closed.
    let mut ten_mb = b"ClientPut\nIdentifier=big\nURI=".to_vec();
    ten_mb.extend(std::iter::repeat_n(b'x', 10_000_000));
    ten_mb.extend_from_slice(b"\nEndMessage\n");
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "malformed",
            b"ClientPut\nthis line has no equals sign\nEndMessage\n".to_vec(),
        ),
        ("10 MB field", ten_mb),
        (
            "huge DataLength",
            b"ClientPut\nIdentifier=h\nURI=CHK@\nDataLength=99999999999999999\nData\n".to_vec(),
        ),
        (
            "negative DataLength",
            b"ClientPut\nIdentifier=n\nURI=CHK@\nDataLength=-5\nData\n".to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        let mut c = Client::hello_as(port, "raw");
        // The node may close before taking all of a 10 MB line.
        let _ = c.try_send(&bytes);
        protocol_error(c.read());
        assert!(c.closed(), "{what}");
    }

    // A client that disconnects half way through an upload.
    let mut c = Client::hello_as(port, "raw");
    c.send(b"ClientPut\nIdentifier=cut\nURI=CHK@\nUploadFrom=direct\nDataLength=1000000\nData\n");
    c.send(&vec![7u8; 300_000]);
    drop(c);

    // A thousand connections held open, half of them past the hello.
    let mut held = Vec::with_capacity(HELD_CONNECTIONS);
    for i in 0..HELD_CONNECTIONS {
        held.push(if i % 2 == 0 {
            Client::connect(port)
        } else {
            Client::hello_as(port, "raw")
        });
    }
    still_works(port, "abuse");
    drop(held);
    assert!(net.status(0).is_some(), "node 0 stopped answering its API");
}

#[test]
fn sites_through_complex_dir_and_disk_dir() {
    let net = TestNet::start(3);
    let ports = fcp_ports(&net);
    let mut c = Client::hello_as(ports[0], "raw");
    // ClientPutComplexDir: one file direct (bytes after the message), one by key.
    let css = b"p { color: red }";
    let css_uri = put(&mut c, "css", css);
    let index = b"<html><a href='css/s.css'>s</a></html>";
    let mut message = format!(
        "ClientPutComplexDir\nIdentifier=site1\nURI=CHK@site/\nDefaultName=index.html\n\
         Files.0.Name=index.html\nFiles.0.UploadFrom=direct\nFiles.0.DataLength={}\n\
         Files.1.Name=css/s.css\nFiles.1.UploadFrom=redirect\nFiles.1.TargetURI={css_uri}\n\
         Files.1.Metadata.ContentType=text/css\nEndMessage\n",
        index.len()
    )
    .into_bytes();
    message.extend_from_slice(index);
    c.send(&message);
    let done = c.until("site1", &["PutSuccessful", "PutFailed", "ProtocolError"]);
    assert_eq!(done.name, "PutSuccessful", "{done:?}");
    let site = done.fields["URI"].clone();
    let mut f = Client::hello_as(ports[2], "raw");
    assert_eq!(get(&mut f, "g1", &format!("{site}index.html")), index);
    assert_eq!(get(&mut f, "g2", &format!("{site}css/s.css")), css);

    // ClientPutDiskDir: refused without TestDDA, accepted after it.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("css")).expect("mkdir");
    std::fs::write(dir.path().join("index.html"), index).expect("write");
    std::fs::write(dir.path().join("css/s.css"), css).expect("write");
    let dir_path = std::fs::canonicalize(dir.path()).expect("canonical");
    let dir_name = dir_path.display().to_string();
    let put_dir =
        format!("ClientPutDiskDir\nIdentifier=site2\nURI=CHK@\nFilename={dir_name}\nEndMessage\n");
    c.send(put_dir.as_bytes());
    let e = c.until("site2", &["ProtocolError"]);
    assert_eq!(e.fields["Code"], "25");
    c.send(
        format!("TestDDARequest\nDirectory={dir_name}\nWantReadDirectory=true\nEndMessage\n")
            .as_bytes(),
    );
    let dda = c.read().expect("TestDDAReply");
    assert_eq!(dda.name, "TestDDAReply");
    let content = std::fs::read_to_string(&dda.fields["ReadFilename"]).expect("read test file");
    c.send(
        format!("TestDDAResponse\nDirectory={dir_name}\nReadContent={content}\nEndMessage\n")
            .as_bytes(),
    );
    let complete = c.read().expect("TestDDAComplete");
    assert_eq!(complete.fields["ReadDirectoryAllowed"], "true");
    c.send(put_dir.replace("site2", "site3").as_bytes());
    let done = c.until("site3", &["PutSuccessful", "PutFailed", "ProtocolError"]);
    assert_eq!(done.name, "PutSuccessful", "{done:?}");
    let site = done.fields["URI"].clone();
    assert_eq!(get(&mut f, "g3", &format!("{site}css/s.css")), css);
    assert_eq!(get(&mut f, "g4", &format!("{site}index.html")), index);
}

/// Lists `client`'s persistent requests: each Identifier with the names of
/// the messages that described it.
fn list(client: &mut Client) -> HashMap<String, Vec<String>> {
    client.send(b"ListPersistentRequests\nEndMessage\n");
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    loop {
        let reply = client.read().expect("listing");
        if reply.name == "EndListPersistentRequests" {
            return seen;
        }
        if let Some(id) = reply.fields.get("Identifier") {
            seen.entry(id.clone()).or_default().push(reply.name);
        }
    }
}

#[test]
fn persistent_requests_outlive_their_connection() {
    let net = TestNet::start(2);
    let ports = fcp_ports(&net);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    // Alice starts an insert and goes away before it finishes.
    let mut alice = Client::connect(ports[0]);
    alice.send(b"ClientHello\nName=alice\nExpectedVersion=2.0\nEndMessage\n");
    assert_eq!(alice.read().expect("hello").name, "NodeHello");
    let mut put = format!(
        "ClientPut\nIdentifier=p1\nURI=CHK@\nPersistence=reboot\nUploadFrom=direct\nDataLength={}\nData\n",
        data.len()
    )
    .into_bytes();
    put.extend_from_slice(&data);
    alice.send(&put);
    drop(alice);
    // Alice again, on a new connection: the insert is listed, and finishes.
    let mut again = Client::connect(ports[0]);
    again.send(b"ClientHello\nName=alice\nExpectedVersion=2.0\nEndMessage\n");
    assert_eq!(again.read().expect("hello").name, "NodeHello");
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    let states = loop {
        let listed = list(&mut again);
        let states = listed
            .get("p1")
            .cloned()
            .expect("p1 is listed to its client");
        // (Events for p1 may arrive amid the listing: this is Alice too.)
        assert!(states.contains(&"PersistentPut".to_owned()), "{states:?}");
        if states
            .iter()
            .any(|s| s == "PutSuccessful" || s == "PutFailed")
        {
            break states;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "p1 never finished: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(states.contains(&"PutSuccessful".to_owned()), "{states:?}");
    again.send(b"GetRequestStatus\nIdentifier=p1\nEndMessage\n");
    let done = again.until("p1", &["PutSuccessful"]);
    let uri = done.fields["URI"].clone();
    // Another client does not see Alice's requests.
    let mut bob = Client::hello_as(ports[0], "raw");
    assert!(!list(&mut bob).contains_key("p1"));
    // A global persistent get, started on node 1 by Carol, who leaves.
    let mut carol = Client::hello_as(ports[1], "raw");
    carol.send(format!("ClientGet\nIdentifier=g1\nURI={uri}\nGlobal=true\nPersistence=forever\nReturnType=direct\nEndMessage\n").as_bytes());
    drop(carol);
    // The global queue is the node's: a watcher on node 1 sees g1.
    let mut watcher = Client::hello_as(ports[1], "raw");
    watcher.send(b"WatchGlobal\nEnabled=true\nEndMessage\n");
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    loop {
        let listed = list(&mut watcher);
        let states = listed.get("g1").cloned().unwrap_or_default();
        if states.iter().any(|s| s == "DataFound") {
            break;
        }
        assert!(!states.iter().any(|s| s == "GetFailed"), "{states:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "g1 never finished: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Its data, on request (fetched again), then removal.
    watcher.send(b"GetRequestStatus\nIdentifier=g1\nGlobal=true\nEndMessage\n");
    assert_eq!(watcher.until("g1", &["AllData"]).data, data);
    watcher.send(b"RemoveRequest\nIdentifier=g1\nGlobal=true\nEndMessage\n");
    watcher.until("g1", &["PersistentRequestRemoved"]);
    assert!(!list(&mut watcher).contains_key("g1"));
}

#[test]
fn forever_downloads_survive_a_node_crash_and_restart() {
    let mut net = TestNet::start(3);
    let ports = fcp_ports(&net);
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let uri = put(&mut Client::hello_as(ports[0], "raw"), "src", &data);

    // At node 2: a Persistence=forever download to disk, after TestDDA.
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out_dir_name = std::fs::canonicalize(out_dir.path())
        .expect("dir")
        .display()
        .to_string();
    let target = format!("{out_dir_name}/out.bin");
    let mut c = Client::connect(ports[2]);
    c.say_hello("downloader");
    c.send(
        format!("TestDDARequest\nDirectory={out_dir_name}\nWantWriteDirectory=true\nEndMessage\n")
            .as_bytes(),
    );
    let reply = c.read().expect("TestDDAReply");
    std::fs::write(
        &reply.fields["WriteFilename"],
        &reply.fields["ContentToWrite"],
    )
    .expect("write");
    c.send(format!("TestDDAResponse\nDirectory={out_dir_name}\nEndMessage\n").as_bytes());
    assert_eq!(
        c.read().expect("complete").fields["WriteDirectoryAllowed"],
        "true"
    );
    c.send(
        format!(
            "ClientGet\nIdentifier=d1\nURI={uri}\nPersistence=forever\nReturnType=disk\nFilename={target}\nEndMessage\n"
        )
        .as_bytes(),
    );
    // Once the (sealed) queue file is written, with d1 its only request,
    // crash the node.
    let node = net.nodes[2].clone();
    let queue_file = node.data_dir.join("fcp-queue.sealed");
    wait_for("d1 to reach the queue file", || queue_file.exists());
    net.kill(2);
    net.restart(2).expect("restart node 2");
    // The same client name on the new process: d1 is there and finishes.
    let mut again = Client::connect(fcp_ports(&net)[2]);
    again.say_hello("downloader");
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    loop {
        let states = list(&mut again).get("d1").cloned();
        let states = states.expect("d1 survived the restart");
        assert!(!states.iter().any(|s| s == "GetFailed"), "{states:?}");
        if states.iter().any(|s| s == "DataFound") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "d1 never finished: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        std::fs::read(&target).expect("downloaded file") == data,
        "the download differs"
    );
    // What the queue kept named the key and the file: none of it is on disk
    // in the clear, and the kept blocks went with the finished download.
    let routing_part = uri
        .trim_start_matches("CHK@")
        .split(',')
        .next()
        .expect("key");
    assert_no_plaintext(
        &node.data_dir,
        &[routing_part, "out.bin", &out_dir_name, "downloader"],
    );
    wait_for("the kept blocks to go", || {
        std::fs::read_dir(node.data_dir.join("fcp-blocks")).map_or(true, |mut d| d.next().is_none())
    });
}

/// Asks for `id`'s state until it has succeeded; its `URI`. A failure, or
/// no such request, fails the test.
fn finished_put(client: &mut Client, id: &str) -> String {
    loop {
        client.send(format!("GetRequestStatus\nIdentifier={id}\nEndMessage\n").as_bytes());
        let reply = client.until(
            id,
            &[
                "PutSuccessful",
                "PutFailed",
                "ProtocolError",
                "PersistentPut",
                "PersistentPutDir",
            ],
        );
        assert!(
            !["PutFailed", "ProtocolError"].contains(&reply.name.as_str()),
            "{reply:?}"
        );
        if reply.name == "PutSuccessful" {
            return reply.fields["URI"].clone();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Polls `done` until it holds, for at most [`READ_TIMEOUT`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited too long for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every file under `dir` (the datastore's blocks aside, which are relayed
/// ciphertext by design) is free of each of `secrets`.
fn assert_no_plaintext(dir: &std::path::Path, secrets: &[&str]) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                stack.push(entry.expect("entry").path());
            }
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_default();
        for secret in secrets {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{} holds {secret:?} in the clear", path.display());
            assert!(
                !path.display().to_string().contains(secret),
                "the name {} holds {secret:?}",
                path.display()
            );
        }
    }
}

/// The size of a complete spool of `len` bytes: format byte, nonce prefix,
/// and every 64 KiB segment (the last possibly short or empty) with its tag.
fn sealed_spool_len(len: u64) -> u64 {
    let segment = 64 * 1024;
    let segments = len / segment + 1;
    1 + 7 + len + 16 * segments
}

#[test]
fn forever_direct_uploads_survive_a_node_crash_and_restart() {
    let mut net = TestNet::start(3);
    let data: Vec<u8> = (0..16_000_000u32)
        .map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8)
        .collect();
    let mut c = Client::connect(fcp_ports(&net)[1]);
    c.say_hello("uploader");
    let mut message = format!(
        "ClientPut\nIdentifier=diary-upload\nURI=CHK@\nPersistence=forever\nUploadFrom=direct\nTargetFilename=secret-diary.txt\nDataLength={}\nData\n",
        data.len()
    )
    .into_bytes();
    message.extend_from_slice(&data);
    c.send(&message);
    // Once the whole upload is spooled, crash the node: the insert from the
    // spool is then under way, not finished (the spool goes only after).
    let node = net.nodes[1].clone();
    let uploads = node.data_dir.join("fcp-uploads");
    let complete = sealed_spool_len(data.len() as u64);
    let spool_size = || -> Option<u64> {
        let entry = std::fs::read_dir(&uploads).ok()?.next()?.ok()?;
        Some(entry.metadata().ok()?.len())
    };
    wait_for("the upload to be spooled", || {
        spool_size() == Some(complete)
    });
    // This node's first persistent request: the queue file holds it once
    // it exists.
    let queue_file = node.data_dir.join("fcp-queue.sealed");
    wait_for("the put to reach the queue file", || queue_file.exists());
    net.kill(1);
    assert_eq!(
        spool_size(),
        Some(complete),
        "the insert finished before the crash, so this test proves nothing: use a larger file"
    );
    assert_no_plaintext(
        &node.data_dir,
        &["diary-upload", "secret-diary", "uploader"],
    );
    // Leftovers of a request the queue no longer holds (a crash between a
    // put's outcome and the removal of its files) go at the restart.
    let strays = [
        uploads.join("upload-leftover"),
        node.data_dir.join("fcp-inserts").join("insert-leftover"),
    ];
    for stray in &strays {
        std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
        std::fs::write(stray, b"sealed bytes of a finished request").unwrap();
    }
    net.restart(1).expect("restart node 1");
    let mut again = Client::connect(fcp_ports(&net)[1]);
    again.say_hello("uploader");
    for stray in &strays {
        assert!(!stray.exists(), "{} was left behind", stray.display());
    }
    let uri = finished_put(&mut again, "diary-upload");
    assert!(uri.ends_with("/secret-diary.txt"), "{uri}");
    wait_for("the spool to go", || spool_size().is_none());
    // Fetched at another node, byte for byte.
    let mut reader = Client::hello_as(fcp_ports(&net)[2], "raw");
    assert!(
        get(&mut reader, "check", &uri) == data,
        "the inserted content differs"
    );
}

#[test]
fn verbose_requests_get_simple_progress_before_their_outcome() {
    let net = TestNet::start(2);
    let ports = fcp_ports(&net);
    let data: Vec<u8> = (0..6_000_000u32)
        .map(|i| (i.wrapping_mul(40_503) >> 7) as u8)
        .collect();
    let mut c = Client::hello_as(ports[0], "raw");
    let mut message = format!(
        "ClientPut\nIdentifier=p\nURI=CHK@\nVerbosity=1\nUploadFrom=direct\nDataLength={}\nData\n",
        data.len()
    )
    .into_bytes();
    message.extend_from_slice(&data);
    c.send(&message);
    let mut progress = Vec::new();
    let uri = loop {
        let reply = c.read().expect("put replies");
        match reply.name.as_str() {
            "SimpleProgress" => progress.push(reply.fields),
            "PutSuccessful" => break reply.fields["URI"].clone(),
            "PutFailed" | "ProtocolError" => panic!("{reply:?}"),
            _ => {}
        }
    };
    check_progress(&progress, "put");
    // A get to disk at the other node (progress comes before DataFound).
    let out_dir = tempfile::tempdir().expect("tempdir");
    let dir = std::fs::canonicalize(out_dir.path())
        .expect("dir")
        .display()
        .to_string();
    let mut g = Client::hello_as(ports[1], "raw");
    g.send(
        format!("TestDDARequest\nDirectory={dir}\nWantWriteDirectory=true\nEndMessage\n")
            .as_bytes(),
    );
    let reply = g.read().expect("TestDDAReply");
    std::fs::write(
        &reply.fields["WriteFilename"],
        &reply.fields["ContentToWrite"],
    )
    .expect("write");
    g.send(format!("TestDDAResponse\nDirectory={dir}\nEndMessage\n").as_bytes());
    g.read().expect("TestDDAComplete");
    g.send(
        format!("ClientGet\nIdentifier=g\nURI={uri}\nVerbosity=1\nReturnType=disk\nFilename={dir}/out\nEndMessage\n")
            .as_bytes(),
    );
    let mut progress = Vec::new();
    loop {
        let reply = g.read().expect("get replies");
        match reply.name.as_str() {
            "SimpleProgress" => progress.push(reply.fields),
            "DataFound" => break,
            "GetFailed" | "ProtocolError" => panic!("{reply:?}"),
            _ => {}
        }
    }
    check_progress(&progress, "get");
    assert!(std::fs::read(format!("{dir}/out")).expect("out") == data);
    // Without Verbosity: no progress at all.
    g.send(
        format!("ClientGet\nIdentifier=quiet\nURI={uri}\nReturnType=none\nEndMessage\n").as_bytes(),
    );
    loop {
        let reply = g.read().expect("get replies");
        assert_ne!(reply.name, "SimpleProgress", "progress without Verbosity");
        if reply.name == "DataFound" {
            break;
        }
    }
}

/// At least one report; counts never go down; `Succeeded` within `Total`.
fn check_progress(reports: &[HashMap<String, String>], what: &str) {
    assert!(!reports.is_empty(), "no SimpleProgress for the {what}");
    let mut last = 0u64;
    for report in reports {
        let n = |k: &str| -> u64 { report[k].parse().expect(k) };
        assert!(n("Succeeded") >= last, "{what}: {reports:?}");
        assert!(n("Succeeded") <= n("Total"), "{what}: {reports:?}");
        assert_eq!(n("Total"), n("Required"));
        last = n("Succeeded");
    }
    assert!(last > 0, "{what}: nothing succeeded in {reports:?}");
}

/// `warren insert PATH --key KEY` at node `index`: the request key printed.
fn publish(net: &TestNet, index: usize, path: &std::path::Path, key: &str) -> String {
    let out = support::warren(&[
        "insert",
        path.to_str().expect("utf-8"),
        "--key",
        key,
        "--api",
        &net.api_arg(index),
        "--data-dir",
        &net.data_dir_arg(index),
    ]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    support::stdout(&out).trim().to_owned()
}

#[test]
fn warren_signed_keys_from_generate_ssk_are_fetched_over_fcp() {
    let net = TestNet::start(4);
    let ports = fcp_ports(&net);
    let mut c = Client::hello_as(ports[0], "raw");
    c.send(b"GenerateSSK\nIdentifier=k\nEndMessage\n");
    let pair = c.until("k", &["SSKKeypair"]);
    // The client names the document: a USK's name and edition after the `/`.
    let insert = pair.fields["InsertURI"]
        .trim_start_matches("freenet:")
        .replacen("SSK@", "USK@", 1);
    let request = pair.fields["RequestURI"].replacen("SSK@", "USK@", 1);
    let file = net.work_dir().join("notes.txt");
    std::fs::write(&file, b"notes, edition 0").unwrap();
    let printed = publish(&net, 0, &file, &format!("{insert}notes/0"));
    assert!(printed.ends_with("/notes/0"), "{printed}");
    std::fs::write(&file, b"a keyword note").unwrap();
    assert_eq!(publish(&net, 0, &file, "KSK@fcp-note"), "KSK@fcp-note");

    let mut far = Client::hello_as(ports[3], "raw");
    assert_eq!(
        get(&mut far, "usk", &format!("{request}notes/-1")),
        b"notes, edition 0"
    );
    assert_eq!(
        get(&mut far, "ksk", "freenet:KSK@fcp-note"),
        b"a keyword note"
    );
    far.send(b"ClientGet\nIdentifier=none\nURI=KSK@never-inserted\nEndMessage\n");
    let failed = far.until("none", &["GetFailed"]);
    assert_eq!(failed.fields["Code"], "13", "{failed:?}");
}

#[test]
fn client_puts_under_warren_signed_keys_are_fetched_far_away() {
    let net = TestNet::start(4);
    let ports = fcp_ports(&net);
    let mut c = Client::hello_as(ports[0], "raw");
    c.send(b"GenerateSSK\nIdentifier=k\nEndMessage\n");
    let pair = c.until("k", &["SSKKeypair"]);
    let insert = pair.fields["InsertURI"].replacen("SSK@", "USK@", 1);
    let request = pair.fields["RequestURI"].replacen("SSK@", "USK@", 1);
    // Three hops away, a client subscribes before anything is published.
    let mut far = Client::hello_as(ports[3], "raw");
    far.send(
        format!("SubscribeUSK\nIdentifier=sub\nURI={request}diary/0\nEndMessage\n").as_bytes(),
    );
    assert_eq!(far.until("sub", &["SubscribedUSK"]).name, "SubscribedUSK");
    // Edition 0 of a file over ClientPut, then edition 1: the newest is seen.
    for (edition, text) in [(0, "diary, edition 0"), (1, "diary, edition 1")] {
        let message = format!(
            "ClientPut\nIdentifier=p{edition}\nURI={insert}diary/{edition}\nUploadFrom=direct\nDataLength={}\nData\n{text}",
            text.len()
        );
        c.send(message.as_bytes());
        let done = c.until(
            &format!("p{edition}"),
            &["PutSuccessful", "PutFailed", "ProtocolError"],
        );
        assert_eq!(done.name, "PutSuccessful", "{done:?}");
        let uri = &done.fields["URI"];
        assert!(
            uri.starts_with("USK@") && uri.ends_with(&format!("/diary/{edition}")),
            "{uri}"
        );
        // The request URI, never the private key.
        assert!(!uri.contains(",AQEB"), "{uri}");
    }
    // The subscriber is told, at the latest, of edition 1.
    loop {
        let update = far.until("sub", &["SubscribedUSKUpdate"]);
        assert!(update.fields["URI"].starts_with("USK@"), "{update:?}");
        if update.fields["Edition"] == "1" {
            assert!(update.fields["URI"].ends_with("/diary/1"), "{update:?}");
            break;
        }
        assert_eq!(update.fields["Edition"], "0", "{update:?}");
    }
    far.send(b"UnsubscribeUSK\nIdentifier=sub\nEndMessage\n");
    assert_eq!(
        get(&mut far, "newest", &format!("{request}diary/-1")),
        b"diary, edition 1"
    );
    // A site under an SSK through ClientPutComplexDir, read at a page.
    let site_key = format!("{}blog", pair.fields["InsertURI"]);
    let page = b"<p>hello from a signed site</p>";
    let mut message = format!(
        "ClientPutComplexDir\nIdentifier=site\nURI={site_key}\nFiles.0.Name=index.html\nFiles.0.UploadFrom=direct\nFiles.0.DataLength={}\nFiles.0.Metadata.ContentType=text/html\nEndMessage\n",
        page.len()
    )
    .into_bytes();
    message.extend_from_slice(page);
    c.send(&message);
    let done = c.until("site", &["PutSuccessful", "PutFailed", "ProtocolError"]);
    assert_eq!(done.name, "PutSuccessful", "{done:?}");
    let site = done.fields["URI"].clone();
    // As Fred answers: no trailing `/` after a signed key's name.
    assert!(
        site.starts_with("SSK@") && site.ends_with("/blog"),
        "{site}"
    );
    assert_eq!(get(&mut far, "page", &format!("{site}/index.html")), page);
    // GetCHKOnly under an insert key answers its request URI and inserts
    // nothing (pyfreenet's `invertprivate`, which freesitemgr runs).
    c.send(
        format!(
            "ClientPut\nIdentifier=invert\nURI={}foo\nGetCHKOnly=true\nUploadFrom=direct\nDataLength=3\nData\nbar",
            pair.fields["InsertURI"]
        )
        .as_bytes(),
    );
    let inverted = c.until("invert", &["PutSuccessful", "PutFailed", "ProtocolError"]);
    assert_eq!(inverted.name, "PutSuccessful", "{inverted:?}");
    assert_eq!(
        inverted.fields["URI"],
        format!(
            "{}foo",
            pair.fields["RequestURI"].trim_start_matches("freenet:")
        )
    );
    far.send(
        format!(
            "ClientGet\nIdentifier=nothing\nURI={}foo\nEndMessage\n",
            pair.fields["RequestURI"]
        )
        .as_bytes(),
    );
    let failed = far.until("nothing", &["GetFailed", "DataFound"]);
    assert_eq!(failed.name, "GetFailed", "GetCHKOnly published: {failed:?}");
    // A request key cannot be inserted under.
    c.send(
        format!(
            "ClientPut\nIdentifier=bad\nURI={request}x/0\nUploadFrom=direct\nDataLength=1\nData\nx"
        )
        .as_bytes(),
    );
    let failed = c.until("bad", &["PutFailed"]);
    assert_eq!(failed.fields["Code"], "1", "{failed:?}");
    // As Fred's USK inserter: a different file put at a taken edition
    // goes to the next free one; the same file again is that edition.
    let put = |c: &mut Client, id: &str, uri: &str, text: &str| {
        c.send(
            format!(
                "ClientPut\nIdentifier={id}\nURI={uri}\nUploadFrom=direct\nDataLength={}\nData\n{text}",
                text.len()
            )
            .as_bytes(),
        );
        c.until(id, &["PutFailed", "PutSuccessful"])
    };
    let moved = put(
        &mut c,
        "again",
        &format!("{insert}diary/1"),
        "not the diary",
    );
    assert_eq!(moved.name, "PutSuccessful", "{moved:?}");
    assert!(moved.fields["URI"].ends_with("/diary/2"), "{moved:?}");
    let same = put(&mut c, "same", &format!("{insert}diary/0"), "not the diary");
    assert!(same.fields["URI"].ends_with("/diary/2"), "{same:?}");
    // An SSK's one document cannot be changed: a different file collides.
    let ssk = pair.fields["InsertURI"].trim_start_matches("freenet:");
    let first = put(&mut c, "ssk1", &format!("{ssk}fixed"), "first");
    assert_eq!(first.name, "PutSuccessful", "{first:?}");
    let failed = put(&mut c, "ssk2", &format!("{ssk}fixed"), "second");
    assert_eq!(failed.name, "PutFailed", "{failed:?}");
}

#[test]
fn forever_sites_survive_a_node_crash_and_restart() {
    let mut net = TestNet::start(3);
    let big: Vec<u8> = (0..16_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    let page = b"<p>a site that outlives its node</p>".to_vec();
    let mut c = Client::connect(fcp_ports(&net)[1]);
    c.say_hello("sitemaker");
    let mut message = format!(
        "ClientPutComplexDir\nIdentifier=site\nURI=CHK@\nPersistence=forever\n\
         Files.0.Name=index.html\nFiles.0.UploadFrom=direct\nFiles.0.DataLength={}\n\
         Files.0.Metadata.ContentType=text/html\n\
         Files.1.Name=video.bin\nFiles.1.UploadFrom=direct\nFiles.1.DataLength={}\nEndMessage\n",
        page.len(),
        big.len()
    )
    .into_bytes();
    message.extend_from_slice(&page);
    message.extend_from_slice(&big);
    c.send(&message);
    // Both files spooled: the inserts are then under way; crash the node.
    let node = net.nodes[1].clone();
    let uploads = node.data_dir.join("fcp-uploads");
    let sizes = || -> Vec<u64> {
        let mut sizes: Vec<u64> = std::fs::read_dir(&uploads)
            .map(|d| {
                d.filter_map(|e| e.ok()?.metadata().ok().map(|m| m.len()))
                    .collect()
            })
            .unwrap_or_default();
        sizes.sort_unstable();
        sizes
    };
    let complete = vec![
        sealed_spool_len(page.len() as u64),
        sealed_spool_len(big.len() as u64),
    ];
    wait_for("the site to be spooled", || sizes() == complete);
    net.kill(1);
    assert_eq!(
        sizes(),
        complete,
        "the site finished before the crash, so this test proves nothing: use a larger file"
    );
    net.restart(1).expect("restart node 1");
    let mut again = Client::connect(fcp_ports(&net)[1]);
    again.say_hello("sitemaker");
    let uri = finished_put(&mut again, "site");
    wait_for("the spools to go", || sizes().is_empty());
    let mut reader = Client::hello_as(fcp_ports(&net)[2], "raw");
    assert_eq!(get(&mut reader, "page", &format!("{uri}index.html")), page);
    assert!(
        get(&mut reader, "video", &format!("{uri}video.bin")) == big,
        "the big file differs"
    );
}
