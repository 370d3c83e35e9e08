//! `warren sim`: the routing simulator, driving the real routing core over
//! many virtual nodes in virtual time.

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use warren_node::flow::{self, Aimd};
use warren_node::sim::levine::{self, HtlPolicy, LevineConfig};
use warren_node::sim::traceback::{self, Scenario, TracebackConfig};
use warren_node::sim::transfer::{self, FixedWindow, TransferConfig, Window};
use warren_node::sim::{self, MaliciousKind, SimConfig, Topology};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TopologyArg {
    /// Small world: ring plus long links with probability proportional to 1/distance.
    Ideal,
    /// Random graph of the same degree: the control.
    Random,
    /// Opennet: a few random links per node, reshaped by announcement and
    /// path folding while requests flow (`--rounds` rounds of requests).
    Folded,
    /// Opennet: nodes arrive one at a time through one seed, then fold.
    Join,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Number of virtual nodes.
    #[arg(long, default_value_t = sim::DEFAULT_NODES)]
    nodes: usize,
    /// Mean number of peers per node.
    #[arg(long, default_value_t = sim::DEFAULT_DEGREE)]
    degree: usize,
    /// Hops-to-live of each request.
    #[arg(long, default_value_t = warren_node::routing::DEFAULT_MAX_HTL)]
    htl: u8,
    /// Blocks inserted, then fetched from other random nodes.
    #[arg(long, default_value_t = sim::DEFAULT_REQUESTS)]
    requests: usize,
    /// Graph to route over.
    #[arg(long, value_enum, default_value_t = TopologyArg::Ideal)]
    topology: TopologyArg,
    /// Fraction of nodes offline at any moment of the fetch phase (0 to <1).
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    /// Opennet topologies: rounds of `--requests` inserts and fetches while
    /// the graph folds, before the measured round.
    #[arg(long, default_value_t = sim::DEFAULT_FOLD_ROUNDS)]
    rounds: usize,
    /// Seed: the same seed gives the same figures.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of nodes that attack every fetch routed to them (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    malicious_fraction: f64,
    /// How the malicious nodes attack: answer DataNotFound to everything,
    /// drop requests, return forged blocks, or accept then stall.
    #[arg(long, value_enum, default_value_t = KindArg::Dnf)]
    malicious_kind: KindArg,
    /// Times per request each node doubts a "not found, HTL 0" from a peer
    /// that has not returned data lately (0: the routing before the defence).
    #[arg(long, default_value_t = warren_node::routing::DEFAULT_NOT_FOUND_DOUBTS)]
    not_found_doubts: u8,
    /// Probability that a link decrements a request at the maximum HTL
    /// (default: the routing core's); with the walk, its mean length is 1/p.
    #[arg(long)]
    decrement_at_max: Option<f64>,
    /// Route fetches at the maximum HTL by the walk (`on`: the node's
    /// `max_htl_walk = true`, p = 1/10 unless `--decrement-at-max` says
    /// otherwise) or toward the key from the first hop (`off`, the default).
    #[arg(long, value_enum, default_value_t = OnOff::Off)]
    max_htl_walk: OnOff,
    /// Instead: the Levine et al. (CCS 2020) downloader test against Warren's
    /// walk, the per-link coins without it, and the per-request control;
    /// prints the three tables (`--decrement-at-max` sets the walk's).
    #[arg(long)]
    levine: bool,
    /// Levine: blocks of the known file.
    #[arg(long, default_value_t = 200)]
    file_blocks: usize,
    /// Levine: downloaders (one file each); traceback: fetches.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// Instead: the traceback attack of Tian et al. (INFOCOM 2013) in its
    /// three scenarios.
    #[arg(long)]
    traceback: bool,
    /// Traceback: share of nodes colluding.
    #[arg(long, default_value_t = 0.05)]
    colluders: f64,
    /// Instead: insert and fetch one file of this many MiB over links of
    /// each `--rtts-ms` round trip (a fresh network each), and print how long
    /// each took in virtual time, as a ratio to the first round trip's.
    #[arg(long)]
    transfer_mib: Option<usize>,
    /// Transfer: link round trips to compare, in ms.
    #[arg(long, value_delimiter = ',', default_value = "0,20,80,150")]
    rtts_ms: Vec<u64>,
    /// Transfer: what each direction of each link carries, KiB/s.
    #[arg(long, default_value_t = 2048)]
    link_kib: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Dnf,
    Drop,
    Forge,
    Stall,
}

fn print_levine(args: &SimArgs) -> Result<()> {
    for policy in [HtlPolicy::Walk, HtlPolicy::PerLink, HtlPolicy::PerRequest] {
        let report = levine::run(&LevineConfig {
            nodes: args.nodes,
            degree: args.degree,
            file_blocks: args.file_blocks,
            trials: args.trials,
            seed: args.seed,
            policy,
            decrement_at_max: (policy == HtlPolicy::Walk)
                .then_some(args.decrement_at_max)
                .flatten(),
        });
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
            continue;
        }
        println!(
            "Levine test, {policy}: {} nodes, mean degree {:.1}, {} downloaders of {} blocks each, seed {}",
            args.nodes, report.degree_mean, args.trials, args.file_blocks, args.seed
        );
        println!(
            "  pairs watched: {} downloader, {} relayer; highest precision flagging a downloader: {:.3}",
            report.downloader_pairs, report.relayer_pairs, report.worst_precision
        );
        println!("  threshold (share of blocks, all at max HTL) | TP | FP | TPR | FPR | precision");
        let mut last = None;
        for row in &report.rows {
            // One line per change in what is flagged.
            let key = (row.true_positives, row.false_positives);
            if last == Some(key) {
                continue;
            }
            last = Some(key);
            println!(
                "  {:>6.3} | {:>5} | {:>6} | {:.3} | {:.5} | {:.3}",
                row.threshold,
                row.true_positives,
                row.false_positives,
                row.true_positive_rate,
                row.false_positive_rate,
                row.precision
            );
        }
    }
    Ok(())
}

fn print_traceback(args: &SimArgs) -> Result<()> {
    for scenario in [
        Scenario::AfterCompletion,
        Scenario::InFlight,
        Scenario::Pinned,
    ] {
        let report = traceback::run(&TracebackConfig {
            nodes: args.nodes,
            degree: args.degree,
            colluders: args.colluders,
            trials: args.trials,
            seed: args.seed,
            scenario,
        });
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
            continue;
        }
        println!(
            "traceback, {scenario}: {} of {} fetches seen by colluders ({:.0} % of {} nodes); originator found {:.1} %, first sender was it {:.1} %, 1/degree {:.1} %, live nodes found {:.1}",
            report.observed,
            args.trials,
            args.colluders * 100.0,
            args.nodes,
            report.found_rate * 100.0,
            report.first_sender_rate * 100.0,
            report.baseline * 100.0,
            report.live_found_mean
        );
    }
    Ok(())
}

fn print_transfer(args: &SimArgs, file_mib: usize) -> Result<()> {
    if file_mib == 0 || args.rtts_ms.is_empty() || args.link_kib == 0 {
        bail!("--transfer-mib, --rtts-ms and --link-kib must be above 0");
    }
    let config = TransferConfig {
        nodes: args.nodes,
        degree: args.degree,
        file_mib,
        link_bytes_per_sec: args.link_kib * 1024,
        seed: args.seed,
    };
    let windows: [(&str, WindowMaker<'_>); 2] = [
        (
            "the client's adaptive windows (AIMD, at most 512 inserts or 1,024 requests in flight)",
            &|| {
                (
                    Box::new(Aimd::new(flow::INSERT_INITIAL, flow::MAX_INSERT_WINDOW)),
                    Box::new(Aimd::new(flow::FETCH_INITIAL, flow::MAX_WINDOW)),
                )
            },
        ),
        (
            "the fixed windows before them (32 inserts, 48 fetches in flight)",
            &|| (Box::new(FixedWindow(32)), Box::new(FixedWindow(48))),
        ),
    ];
    for (name, make) in windows {
        let points = transfer::by_rtt(&config, &args.rtts_ms, &|| make().0, &|| make().1);
        if args.json {
            println!("{}", serde_json::to_string(&points)?);
            continue;
        }
        println!(
            "{file_mib} MiB over {} nodes (ideal small world, degree {}), links {} KiB/s each way, {name}, seed {}",
            args.nodes, args.degree, args.link_kib, args.seed
        );
        println!("  RTT ms | insert s | MiB/s | vs first | fetch s | MiB/s | vs first | failed");
        let first = points[0];
        for p in &points {
            println!(
                "  {:>6} | {:>8.1} | {:>5.2} | {:>7.0} % | {:>7.1} | {:>5.2} | {:>7.0} % | {}",
                p.rtt_ms,
                p.insert.seconds,
                p.insert.mib_per_s(),
                100.0 * p.insert.mib_per_s() / first.insert.mib_per_s(),
                p.fetch.seconds,
                p.fetch.mib_per_s(),
                100.0 * p.fetch.mib_per_s() / first.fetch.mib_per_s(),
                p.insert.failed + p.fetch.failed
            );
        }
    }
    Ok(())
}

/// Makes the insert and fetch window controllers of one transfer.
type WindowMaker<'a> = &'a dyn Fn() -> (Box<dyn Window>, Box<dyn Window>);

pub fn run(args: &SimArgs) -> Result<()> {
    if !(0.0..1.0).contains(&args.churn) {
        bail!("--churn must be at least 0 and below 1");
    }
    if args.nodes < 2 || args.degree == 0 || args.degree >= args.nodes {
        bail!("need at least 2 nodes and a degree between 1 and nodes - 1");
    }
    if !(0.0..=1.0).contains(&args.malicious_fraction) || !(0.0..=1.0).contains(&args.colluders) {
        bail!("--malicious-fraction and --colluders must be between 0 and 1");
    }
    if args.levine {
        return print_levine(args);
    }
    if args.traceback {
        return print_traceback(args);
    }
    if let Some(file_mib) = args.transfer_mib {
        return print_transfer(args, file_mib);
    }
    let config = SimConfig {
        nodes: args.nodes,
        degree: args.degree,
        htl: args.htl,
        requests: args.requests,
        topology: match args.topology {
            TopologyArg::Ideal => Topology::Ideal,
            TopologyArg::Random => Topology::Random,
            TopologyArg::Folded => Topology::Folded,
            TopologyArg::Join => Topology::Join,
        },
        fold_rounds: args.rounds,
        churn: args.churn,
        seed: args.seed,
        malicious_fraction: args.malicious_fraction,
        malicious_kind: match args.malicious_kind {
            KindArg::Dnf => MaliciousKind::Dnf,
            KindArg::Drop => MaliciousKind::Drop,
            KindArg::Forge => MaliciousKind::Forge,
            KindArg::Stall => MaliciousKind::Stall,
        },
        not_found_doubts: args.not_found_doubts,
        max_htl_walk: args.max_htl_walk == OnOff::On,
        decrement_at_max: args.decrement_at_max,
        ..SimConfig::default()
    };
    let report = sim::run(&config);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{} nodes ({} topology, mean degree {:.1}), HTL {}, {} blocks inserted then fetched, churn {}, seed {}, not-found doubts {}",
        report.nodes, report.topology, report.degree_mean, report.htl, report.requests, report.churn, report.seed, args.not_found_doubts
    );
    println!("success rate          {:.2} %", report.success_rate * 100.0);
    println!(
        "hops                  mean {:.2}, p50 {}, p99 {}",
        report.hops_mean, report.hops_p50, report.hops_p99
    );
    println!("messages per fetch    {:.1}", report.messages_per_request);
    if let Some(m) = &report.malicious {
        println!(
            "malicious             {} nodes ({}), {} requests attacked; {} forged blocks refused, {} accepted; {} not-found claims doubted",
            m.nodes, m.kind, m.requests_attacked, m.forged_refused, m.wrong_blocks_accepted, m.not_found_doubted
        );
        println!(
            "fetch failures        {} not found, {} route not found, {} timed out",
            report.failures.data_not_found,
            report.failures.route_not_found,
            report.failures.timeout
        );
    }
    println!(
        "messages per insert   {:.1}",
        report.insert_messages_per_request
    );
    if let Some(join) = &report.join {
        println!(
            "join                  {} of {} newcomers reached their threshold; {:.1} announcements and {:.0} messages per join; {:.1} s mean, {:.1} s worst (virtual)",
            join.joined, join.newcomers, join.announcements_per_join, join.messages_per_join, join.join_s_mean, join.join_s_max
        );
    }
    if !report.curve.is_empty() {
        println!(
            "long links (> 0.01)   {:.1} %",
            report.long_link_share * 100.0
        );
        println!("curve: requests served | success % | mean hops | mean degree | long links % | links made | dropped");
        for p in &report.curve {
            println!(
                "  {:>8} | {:>6.2} | {:>5.2} | {:>5.1} | {:>5.1} | {:>7} | {:>7}",
                p.requests_served,
                p.success_rate * 100.0,
                p.hops_mean,
                p.degree_mean,
                p.long_link_share * 100.0,
                p.links_made,
                p.links_dropped
            );
        }
    }
    println!("wall time             {:.2} s", report.wall_s);
    println!("peak resident memory  {:.0} MB", report.peak_rss_mb);
    println!("(--json prints every figure)");
    Ok(())
}
