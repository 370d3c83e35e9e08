//! A `Persistence=forever` upload cut off by a crash resumes where it was:
//! real node processes, raw FCP, the node killed with SIGKILL mid-insert.
//! After the restart it completes with the key the content has, comes back
//! byte for byte, and the restarted node inserts fewer blocks than the
//! upload has (its own count of block inserts, `/api/status`).

mod support;

use std::time::{Duration, Instant};

use support::fcp::{Client, Reply, READ_TIMEOUT};
use support::TestNet;
use warren_cli::testnet::delay::LinkShape;

/// The links' shape: slow enough that the insert is under way for some
/// seconds (on bare loopback it is over before a crash can cut it).
const LINK: LinkShape = LinkShape {
    delay: Duration::from_millis(5),
    rate: Some(3 << 20),
};
/// Blocks confirmed before the crash: a few frames of the insert log.
const CONFIRMED_BEFORE_CRASH: u64 = 192;
/// One frame of the insert log on disk (`node/src/fcp/inserted.rs`).
const LOG_FRAME: u64 = 1 + 12 + 2 + 64 * 40 + 16;

fn fcp_port(net: &TestNet, index: usize) -> u16 {
    net.nodes[index].fcp.expect("the node serves FCP").port()
}

fn field(reply: &Reply, name: &str) -> u64 {
    reply.fields[name].parse().expect("a number")
}

/// Every block insert node `index` made since it started, whatever the outcome.
fn block_inserts(net: &TestNet, index: usize) -> u64 {
    let status = net.status(index).expect("node status");
    status["local"]["insert"]
        .as_object()
        .expect("local.insert")
        .values()
        .map(|v| v.as_u64().expect("a count"))
        .sum()
}

fn put_message(id: &str, data: &[u8], extra: &str) -> Vec<u8> {
    let mut message = format!(
        "ClientPut\nIdentifier={id}\nURI=CHK@\nUploadFrom=direct\n{extra}DataLength={}\nData\n",
        data.len()
    )
    .into_bytes();
    message.extend_from_slice(data);
    message
}

/// Size of the one insert log under `data_dir`, if there is one.
fn log_size(data_dir: &std::path::Path) -> Option<u64> {
    let entry = std::fs::read_dir(data_dir.join("fcp-inserts"))
        .ok()?
        .next()?
        .ok()?;
    Some(entry.metadata().ok()?.len())
}

#[test]
fn a_forever_upload_resumes_after_a_crash_without_inserting_its_blocks_again() {
    let mut net = TestNet::start_shaped(3, Some(LINK));
    let data: Vec<u8> = (0..16_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    // The key the content has, without inserting it.
    let mut keyer = Client::hello_as(fcp_port(&net, 0), "keyer");
    keyer.send(&put_message("key", &data, "GetCHKOnly=true\n"));
    let expected = keyer.until("key", &["PutSuccessful", "PutFailed"]);
    assert_eq!(expected.name, "PutSuccessful", "{expected:?}");
    let expected = expected.fields["URI"].clone();

    let mut c = Client::hello_as(fcp_port(&net, 1), "uploader");
    c.send(&put_message(
        "big",
        &data,
        "Persistence=forever\nVerbosity=1\n",
    ));
    // Crash the node once a good part of the blocks is confirmed and on
    // disk in the log, but not all of them.
    let data_dir = net.nodes[1].data_dir.clone();
    let confirmed = loop {
        let reply = c.until("big", &["SimpleProgress", "PutSuccessful", "PutFailed"]);
        assert_eq!(
            reply.name, "SimpleProgress",
            "the insert ended before the crash, so this test proves nothing: {reply:?}"
        );
        let succeeded = field(&reply, "Succeeded");
        if succeeded >= CONFIRMED_BEFORE_CRASH
            && log_size(&data_dir).is_some_and(|s| s >= 2 * LOG_FRAME)
        {
            break succeeded;
        }
    };
    let inserted_before_crash = block_inserts(&net, 1);
    net.kill(1);
    let logged = log_size(&data_dir).expect("the insert log");
    net.restart(1).expect("restart node 1");

    // The same client name on the new process: the put finishes there.
    let mut again = Client::hello_as(fcp_port(&net, 1), "uploader");
    let deadline = Instant::now() + READ_TIMEOUT;
    let (uri, progress) = loop {
        let listed = again.listed("big");
        assert!(!listed.is_empty(), "the put did not survive the restart");
        assert!(!listed.iter().any(|r| r.name == "PutFailed"), "{listed:?}");
        if let Some(done) = listed.iter().find(|r| r.name == "PutSuccessful") {
            let progress = listed
                .iter()
                .find(|r| r.name == "SimpleProgress")
                .expect("the resumed put's progress");
            break (
                done.fields["URI"].clone(),
                (field(progress, "Succeeded"), field(progress, "Total")),
            );
        }
        assert!(
            Instant::now() < deadline,
            "the put never finished: {listed:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // (a) the key the content has; (b) it comes back whole, at another node.
    assert_eq!(uri, expected);
    let mut reader = Client::hello_as(fcp_port(&net, 2), "reader");
    reader.send(
        format!("ClientGet\nIdentifier=check\nURI={uri}\nReturnType=direct\nEndMessage\n")
            .as_bytes(),
    );
    let found = reader.until("check", &["DataFound", "GetFailed"]);
    assert_eq!(found.name, "DataFound", "{found:?}");
    assert!(
        reader.until("check", &["AllData"]).data == data,
        "the content came back different"
    );
    // (c) The restarted node inserted only what was not confirmed before
    // (plus the root's copies), and its progress counts the rest.
    let (succeeded, total) = progress;
    let inserted_after = block_inserts(&net, 1);
    println!(
        "blocks: {total} in all; {confirmed} confirmed before the crash \
         ({inserted_before_crash} inserts, log {logged} bytes); \
         {inserted_after} inserts after the restart"
    );
    assert_eq!(succeeded, total, "the final progress counts every block");
    assert!(
        inserted_after > 0,
        "nothing was left to insert after the crash"
    );
    assert!(
        inserted_after < total,
        "the resumed upload inserted {inserted_after} blocks of {total}: it started over"
    );
    assert!(
        inserted_after + CONFIRMED_BEFORE_CRASH / 2 <= total,
        "the resumed upload inserted {inserted_after} blocks of {total}, though {confirmed} were confirmed"
    );
    // The log goes with the finished put.
    let deadline = Instant::now() + READ_TIMEOUT;
    while log_size(&data_dir).is_some() {
        assert!(Instant::now() < deadline, "the insert log stayed");
        std::thread::sleep(Duration::from_millis(50));
    }
}
