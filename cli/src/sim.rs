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
pub(crate) struct SimArgs {
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

pub(crate) fn run(args: &SimArgs) -> Result<()> {
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
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
