//! Whole-network benchmark: a 64 MiB document over a 10-node loopback network
//! of real `warren` processes, beside a plain TCP copy on loopback measured in
//! the same run; insert throughput; memory of a 256 MiB fetch; idle relay RSS.
//!
//! The network is seven nodes that take the insert, then a chain of three that
//! join after it: fetcher - relay - relay - network. The chain holds nothing,
//! so every block of a cold fetch comes from at least three hops away.
//!
//! Then the wide-area test bed: for each link round trip (0, 20 and 80 ms), a
//! fresh 10-node network whose every peer link crosses a delaying relay
//! (`warren testnet --link-delay-ms`, half the round trip each way; the 0 ms
//! row crosses the same relays without delay), a 64 MiB insert at node 0 and
//! a fetch at the node farthest from it, each shown as a ratio to the same
//! run's 0 ms figure.
//!
//! `cargo bench -p warren --bench network`
//! Sizes: WARREN_BENCH_MIB (64), WARREN_BENCH_BIG_MIB (256), WARREN_BENCH_IDLE_S (60).
//! Wide area: WARREN_BENCH_RTTS (`0,20,80`, ms; the first is the baseline),
//! WARREN_BENCH_WAN_MIB (64). WARREN_BENCH_SECTIONS (`loopback,wan`) picks
//! the parts to run: `WARREN_BENCH_SECTIONS=wan` runs only the wide-area table.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use warren_cli::testnet::delay::LinkShape;
use warren_cli::testnet::topology::farthest_from;
use warren_cli::testnet::{StartOptions, Testnet, Wiring, STARTUP_TIMEOUT};

const WARREN: &str = env!("CARGO_BIN_EXE_warren");
/// Empty nodes between the fetcher and the network.
const CHAIN: usize = 3;
const MIB: usize = 1024 * 1024;
/// Nodes that take the insert; the chain of three joins after it.
const CORE_NODES: usize = 7;
/// Nodes of each wide-area network (as in the measurements).
const WAN_NODES: usize = 10;
/// How often memory is sampled while a process runs.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let sections = std::env::var("WARREN_BENCH_SECTIONS").unwrap_or_else(|_| "loopback,wan".into());
    let sections: Vec<&str> = sections.split(',').map(str::trim).collect();
    if sections.contains(&"loopback") {
        loopback();
    }
    if sections.contains(&"wan") {
        wide_area();
    }
}

/// Insert and fetch over networks whose links have each round trip asked
/// for, as ratios to the first (the 0 ms baseline, through the same relays).
fn wide_area() {
    let mib = env_usize("WARREN_BENCH_WAN_MIB", 64);
    let rtts: Vec<u64> = std::env::var("WARREN_BENCH_RTTS")
        .unwrap_or_else(|_| "0,20,80".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let work = tempfile::Builder::new()
        .prefix("warren-bench-wan-")
        .tempdir()
        .expect("tempdir");
    let doc = work.path().join("doc.bin");
    random_file(&doc, mib * MIB, 3);
    sync_disks();
    let mut rows = Vec::new();
    // WARREN_BENCH_KEEP=1 leaves the nodes' logs behind, for looking into a figure.
    let work_dir = if std::env::var_os("WARREN_BENCH_KEEP").is_some() {
        let kept = work.keep();
        println!("keeping {}", kept.display());
        kept
    } else {
        work.path().to_path_buf()
    };
    for &rtt in &rtts {
        let shape = LinkShape {
            delay: Duration::from_millis(rtt) / 2,
            rate: None,
        };
        let net = Net::start_shaped(&work_dir.join(format!("rtt-{rtt}")), WAN_NODES, Some(shape));
        let (key, insert_s) = net.insert(0, &doc);
        let (far, hops) = net.farthest_from(0);
        let out = work_dir.join(format!("rtt-{rtt}.out"));
        let run = net.fetch(far, &key, &out);
        assert_eq!(
            std::fs::metadata(&out).expect("fetched").len(),
            (mib * MIB) as u64
        );
        std::fs::remove_file(&out).ok();
        drop(net);
        let (insert, fetch) = (mib as f64 / insert_s, mib as f64 / run.secs);
        println!(
            "wide area, link RTT {rtt} ms: insert {mib} MiB at node 0 {insert:.2} MiB/s; fetch at node {far} ({hops} hops) {fetch:.2} MiB/s"
        );
        rows.push((rtt, insert, fetch));
    }
    let Some(&(_, base_insert, base_fetch)) = rows.first() else {
        return;
    };
    println!("wide area, {WAN_NODES} nodes, every link through a delaying relay, {mib} MiB:");
    println!("| link RTT | insert MiB/s | fetch MiB/s | insert / 0 ms | fetch / 0 ms |");
    println!("|---|---|---|---|---|");
    for (rtt, insert, fetch) in rows {
        println!(
            "| {rtt} ms | {insert:.2} | {fetch:.2} | {:.0}% | {:.0}% |",
            100.0 * insert / base_insert,
            100.0 * fetch / base_fetch
        );
    }
}

fn loopback() {
    let mib = env_usize("WARREN_BENCH_MIB", 64);
    let big_mib = env_usize("WARREN_BENCH_BIG_MIB", 256);
    let idle_s = env_usize("WARREN_BENCH_IDLE_S", 60);
    let work = tempfile::Builder::new()
        .prefix("warren-bench-")
        .tempdir()
        .expect("tempdir");

    // WARREN_BENCH_KEEP=1 leaves the nodes' logs behind.
    let work = if std::env::var_os("WARREN_BENCH_KEEP").is_some() {
        let kept = work.keep();
        println!("keeping {}", kept.display());
        Workdir::Kept(kept)
    } else {
        Workdir::Temp(work)
    };
    let tcp = tcp_copy_mb_s(mib * MIB);
    println!("baseline: plain TCP copy on loopback, {mib} MiB: {tcp:.0} MB/s");

    let mut net = Net::start(work.path());
    let doc = work.path().join("doc.bin");
    random_file(&doc, mib * MIB, 1);
    let big = work.path().join("big.bin");
    random_file(&big, big_mib * MIB, 2);
    // Everything dirty on disk before anything is measured: a fetch's fsync
    // must not pay for writing out this benchmark's input files, nor the
    // build `cargo bench` has just written (on ext4 one file's fsync can
    // commit other files' data too).
    sync_disks();
    let (key, secs) = net.insert(0, &doc);
    println!(
        "insert {mib} MiB at node 0: {:.2} s, {:.1} MB/s",
        secs,
        mb(mib) / secs
    );
    let (big_key, big_secs) = net.insert(0, &big);
    println!(
        "insert {big_mib} MiB at node 0: {:.2} s, {:.1} MB/s",
        big_secs,
        mb(big_mib) / big_secs
    );

    let (far, _) = net.farthest_from(0);
    let fetcher = net.add_chain(far);
    let held: u64 = (CORE_NODES..net.len()).map(|i| net.blocks_held(i)).sum();
    println!(
        "network: {} node processes; fetcher node {fetcher} joined after the inserts, {} hops from node {far}; the chain holds {held} blocks",
        net.len(),
        net.len() - CORE_NODES
    );
    let pids = net.pids();
    println!("  process ids, node 0 first: {pids:?}");
    // The inserts' writes are the inserts' cost: on disk before fetching.
    sync_disks();
    for label in ["cold", "warm"] {
        let out = work.path().join(format!("{label}.bin"));
        let cpu_before: Vec<f64> = pids.iter().map(|&pid| cpu_secs(pid)).collect();
        let client_before = children_cpu_secs();
        let idle_before = machine_idle_secs();
        let run = net.fetch(fetcher, &key, &out);
        let idle = machine_idle_secs() - idle_before;
        let client_cpu = children_cpu_secs() - client_before;
        let cpu: Vec<String> = pids
            .iter()
            .zip(&cpu_before)
            .enumerate()
            .map(|(i, (&pid, before))| format!("{i}:{:.2}", cpu_secs(pid) - before))
            .collect();
        assert_eq!(
            std::fs::metadata(&out).expect("fetched").len(),
            (mib * MIB) as u64
        );
        let rate = mb(mib) / run.secs;
        println!(
            "fetch {label} {mib} MiB at node {fetcher}: {:.2} s, {rate:.1} MB/s = {:.2}x the TCP copy",
            run.secs,
            rate / tcp
        );
        println!(
            "  CPU seconds during it: client {client_cpu:.2}; nodes {}; machine idle {:.0}%",
            cpu.join(" "),
            100.0 * idle / (run.secs * cores())
        );
    }
    let node_pid = pids[fetcher];
    let node_before = rss_mb(node_pid, "VmRSS");
    let out = work.path().join("big.out");
    let sampler = Sampler::start(node_pid);
    let run = net.fetch(fetcher, &big_key, &out);
    let node_peak = sampler.stop();
    std::fs::remove_file(&out).ok();
    println!(
        "fetch {big_mib} MiB: {:.2} s, {:.1} MB/s; client peak RSS {:.1} MB; fetching node RSS {:.1} MB before, peak {:.1} MB during",
        run.secs,
        mb(big_mib) / run.secs,
        run.peak_rss_mb,
        node_before,
        node_peak
    );

    println!("idle: waiting {idle_s} s with every node idle…");
    std::thread::sleep(Duration::from_secs(idle_s as u64));
    let mut idle: Vec<f64> = pids.iter().map(|&pid| rss_mb(pid, "VmRSS")).collect();
    let each: Vec<String> = idle
        .iter()
        .enumerate()
        .map(|(i, mb)| format!("{i}:{mb:.1}"))
        .collect();
    idle.sort_by(f64::total_cmp);
    println!(
        "idle relay RSS after {idle_s} s (after the runs above): min {:.1} MB, median {:.1} MB, max {:.1} MB",
        idle[0],
        idle[idle.len() / 2],
        idle[idle.len() - 1]
    );
    println!("  each node, MB: {}", each.join(" "));
    net.stop();
    let fresh = fresh_idle_node(work.path(), idle_s);
    println!("idle relay RSS, a fresh node with 2 peers after {idle_s} s: {fresh:.1} MB");
}

/// The bench's scratch directory: removed at the end unless kept.
enum Workdir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Workdir {
    fn path(&self) -> &Path {
        match self {
            Workdir::Temp(dir) => dir.path(),
            Workdir::Kept(path) => path,
        }
    }
}

/// sync(1): every dirty page on disk.
fn sync_disks() {
    let synced = Command::new("sync").status().is_ok_and(|s| s.success());
    assert!(synced, "sync(1) failed");
}

fn mb(mib: usize) -> f64 {
    (mib * MIB) as f64 / 1e6
}

/// MB/s of copying `len` bytes through one loopback TCP connection.
fn tcp_copy_mb_s(len: usize) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let reader = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0;
        while got < len {
            let n = stream.read(&mut buf).expect("read");
            assert!(n > 0, "early EOF");
            got += n;
        }
    });
    let data = vec![7u8; 256 * 1024];
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut sent = 0;
    while sent < len {
        let n = (len - sent).min(data.len());
        stream.write_all(&data[..n]).expect("write");
        sent += n;
    }
    reader.join().expect("reader");
    len as f64 / 1e6 / started.elapsed().as_secs_f64()
}

fn random_file(path: &Path, len: usize, seed: u64) {
    warren_cli::testfile::write_random_file(path, len as u64, seed).expect("write input file");
}

/// User + system CPU seconds a process has used so far (0 if gone).
fn cpu_secs(pid: u32) -> f64 {
    stat_ticks(&format!("/proc/{pid}/stat"), 13)
}

/// User + system CPU seconds of this process's waited-for children.
fn children_cpu_secs() -> f64 {
    stat_ticks("/proc/self/stat", 15)
}

/// Sums two clock-tick fields of a /proc stat file from `first` (0-based,
/// counted after the command name), in seconds (Linux reports USER_HZ = 100).
fn stat_ticks(path: &str, first: usize) -> f64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // The command name may contain spaces; fields resume after its ')'.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let tick = |i: usize| {
        fields
            .get(i - 2)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(first) + tick(first + 1)) / 100.0
}

/// Seconds all CPUs have spent idle since boot (the `cpu` line of /proc/stat).
fn machine_idle_secs() -> f64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    text.lines()
        .next()
        .and_then(|cpu| cpu.split_whitespace().nth(4))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |ticks| ticks / 100.0)
}

fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

/// A `VmRSS`/`VmHWM`-style field of /proc/PID/status, in MB (0 if gone).
fn rss_mb(pid: u32, field: &str) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb * 1024.0 / 1e6)
}

/// Samples a process's resident memory on a thread until stopped.
struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak: f64 = 0.0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_mb(pid, "VmRSS"));
                std::thread::sleep(SAMPLE_EVERY);
            }
            peak
        });
        Sampler { stop, thread }
    }

    fn stop(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("sampler")
    }
}

struct FetchRun {
    secs: f64,
    peak_rss_mb: f64,
}

/// The bench's network: the testnet harness `warren testnet` runs, plus the
/// chain it adds after the inserts; every node stopped on drop.
struct Net {
    net: Option<Testnet>,
}

impl Net {
    fn start(work: &Path) -> Net {
        Net::start_shaped(&work.join("net"), CORE_NODES, None)
    }

    /// A wired network of `nodes` in `dir`, its links shaped by `link`.
    fn start_shaped(dir: &Path, nodes: usize, link: Option<LinkShape>) -> Net {
        let mut net = Testnet::start(&StartOptions {
            nodes,
            dir: dir.to_path_buf(),
            seed: 1,
            wiring: Wiring::Wired,
            exe: PathBuf::from(WARREN),
            link,
        })
        .expect("start the testnet");
        net.wait_linked(STARTUP_TIMEOUT).expect("testnet links");
        Net { net: Some(net) }
    }

    fn net(&self) -> &Testnet {
        self.net.as_ref().expect("running")
    }

    fn len(&self) -> usize {
        self.net().nodes.len()
    }

    fn pids(&self) -> Vec<u32> {
        self.net().nodes.iter().map(|n| n.pid).collect()
    }

    /// Starts three empty nodes in a chain hanging off `anchor`; returns the last.
    fn add_chain(&mut self, anchor: usize) -> usize {
        let net = self.net.as_mut().expect("running");
        let tip = net.add_chain(anchor, CHAIN).expect("chain");
        net.wait_linked(STARTUP_TIMEOUT).expect("chain links");
        tip
    }

    fn status(&self, node: usize) -> Option<serde_json::Value> {
        self.net().api(node).status().ok()
    }

    fn api(&self, node: usize) -> String {
        self.net().nodes[node].api.to_string()
    }

    fn stop(&mut self) {
        if let Some(net) = self.net.take() {
            let _ = net.stop();
        }
    }

    fn farthest_from(&self, from: usize) -> (usize, usize) {
        farthest_from(&self.net().adjacency(), from).expect("nodes")
    }

    fn insert(&self, node: usize, path: &Path) -> (String, f64) {
        let started = Instant::now();
        let out = Command::new(WARREN)
            .args([
                "insert",
                path.to_str().expect("utf-8"),
                "--api",
                &self.api(node),
                "--data-dir",
                self.net().nodes[node].data_dir.to_str().expect("utf-8"),
            ])
            .output()
            .expect("run insert");
        assert!(
            out.status.success(),
            "insert: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (key, started.elapsed().as_secs_f64())
    }

    fn fetch(&self, node: usize, key: &str, out: &Path) -> FetchRun {
        let started = Instant::now();
        let mut child: Child = Command::new(WARREN)
            .args([
                "fetch",
                key,
                "-o",
                out.to_str().expect("utf-8"),
                "--api",
                &self.api(node),
                "--data-dir",
                self.net().nodes[node].data_dir.to_str().expect("utf-8"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run fetch");
        let mut peak: f64 = 0.0;
        while child.try_wait().expect("wait").is_none() {
            peak = peak.max(rss_mb(child.id(), "VmHWM"));
            std::thread::sleep(SAMPLE_EVERY);
        }
        let secs = started.elapsed().as_secs_f64();
        let status = child.wait().expect("wait");
        let mut err = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut err);
        }
        assert!(status.success(), "fetch: {err}");
        FetchRun {
            secs,
            peak_rss_mb: peak,
        }
    }

    fn blocks_held(&self, node: usize) -> u64 {
        let status = self.status(node).unwrap_or_default();
        let area = |name: &str| status["store"][name]["blocks"].as_u64().unwrap_or(0);
        area("store") + area("cache")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.stop();
    }
}

/// RSS of a fresh node with two peers, idle for `idle_s` seconds.
fn fresh_idle_node(work: &Path, idle_s: usize) -> f64 {
    let mut net = Testnet::start(&StartOptions {
        nodes: 3,
        dir: work.join("idle"),
        seed: 1,
        wiring: Wiring::Wired,
        exe: PathBuf::from(WARREN),
        link: None,
    })
    .expect("start the idle testnet");
    net.wait_linked(STARTUP_TIMEOUT)
        .expect("idle testnet links");
    std::thread::sleep(Duration::from_secs(idle_s as u64));
    let rss = rss_mb(net.nodes[0].pid, "VmRSS");
    let _ = net.stop();
    rss
}
