//! `warren sim`: the routing simulator, driving the real routing core over
//! many virtual nodes in virtual time.

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use warren_node::sim::{self, SimConfig, Topology};

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
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &SimArgs) -> Result<()> {
    if !(0.0..1.0).contains(&args.churn) {
        bail!("--churn must be at least 0 and below 1");
    }
    if args.nodes < 2 || args.degree == 0 || args.degree >= args.nodes {
        bail!("need at least 2 nodes and a degree between 1 and nodes - 1");
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
        ..SimConfig::default()
    };
    let report = sim::run(&config);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{} nodes ({} topology, mean degree {:.1}), HTL {}, {} blocks inserted then fetched, churn {}, seed {}",
        report.nodes, report.topology, report.degree_mean, report.htl, report.requests, report.churn, report.seed
    );
    println!("success rate          {:.2} %", report.success_rate * 100.0);
    println!(
        "hops                  mean {:.2}, p50 {}, p99 {}",
        report.hops_mean, report.hops_p50, report.hops_p99
    );
    println!("messages per fetch    {:.1}", report.messages_per_request);
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
