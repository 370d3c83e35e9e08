//! `warren`: the one binary. A long-lived relay node, the `insert` and `fetch`
//! clients that talk to it, a local test network, and the routing simulator.
//!
//! The binary is thin: argument parsing, config files, progress bars and exit
//! codes live here; everything else is in `warren-node`, `warren-store` and
//! `warren-crypto`.

use warren_cli::{demo, fec_worker, fetch, insert, keys, node, reinsert, sim, status, testnet};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "warren",
    version,
    about = "An anonymous, censorship-resistant data store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a long-lived relay node.
    Node(node::NodeArgs),
    /// Insert a file or a directory through a running node; prints the key.
    Insert(insert::InsertArgs),
    /// Fetch a key through a running node, verify it, and write it out.
    Fetch(fetch::FetchArgs),
    /// Fetch a key through a running node and insert it again (keeps it alive).
    Reinsert(reinsert::ReinsertArgs),
    /// Show a running node's peers, traffic, store and routing figures.
    Status(status::StatusArgs),
    /// Signed keys for publishing (`keys new`); not the node identity (`keygen`).
    Keys(keys::KeysArgs),
    /// Create the node identity in a data directory and print its noderef.
    Keygen {
        /// Data directory [default: the platform data dir].
        #[arg(long, env = "WARREN_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Start or stop a local network of real node processes on loopback.
    Testnet(testnet::TestnetArgs),
    /// Start a local network, insert a document, fetch it from far away, stop.
    Demo(demo::DemoArgs),
    /// Run the routing simulator over many virtual nodes.
    Sim(sim::SimArgs),
    /// Erasure-code segments for a parent node on stdin/stdout (internal).
    #[command(hide = true)]
    FecWorker,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Node(args) => node::run(&args),
        Command::Insert(args) => insert::run(&args),
        Command::Fetch(args) => fetch::run(&args),
        Command::Reinsert(args) => reinsert::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Keys(args) => keys::run(&args),
        Command::Keygen { data_dir } => node::keygen(data_dir),
        Command::Testnet(args) => testnet::run(args),
        Command::Demo(args) => demo::run(&args),
        Command::Sim(args) => sim::run(&args),
        Command::FecWorker => fec_worker::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One clear line: the outermost context, then its causes.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
