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
        },
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
    println!("wall time             {:.2} s", report.wall_s);
    println!("peak resident memory  {:.0} MB", report.peak_rss_mb);
    println!("(--json prints every figure)");
    Ok(())
}
