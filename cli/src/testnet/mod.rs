//! `warren testnet`: real node processes on loopback, wired as a small world,
//! and the typed harness behind it that the end-to-end tests and the network
//! benchmark drive too.
//!
//! - [`delay`]: the delaying relay of the wide-area test bed (`--link-delay-ms`);
//! - [`net`]: starting, linking, extending (chains), killing, restarting and
//!   stopping a testnet's processes;
//! - [`state`]: `testnet.json` and the directory marker;
//! - [`process`]: spawning a node, waiting for its run file, signals by pid;
//! - [`topology`]: the small-world graph and hop distances;
//! - [`signals`]: Ctrl-C and SIGTERM for a foreground testnet.

pub mod delay;
pub mod net;
pub mod process;
pub mod signals;
pub mod state;
pub mod topology;

use std::path::{Path, PathBuf};

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use self::delay::LinkShape;
pub use self::net::{
    testnet_target_peers, NotLinked, StartOptions, Testnet, Wiring, STARTUP_TIMEOUT, STOP_TIMEOUT,
};
use self::signals::StopSignals;
pub use self::state::{NodeInfo, TestnetState, STATE_FILE};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TestnetArgs {
    #[command(subcommand)]
    action: Option<TestnetAction>,
    #[command(flatten)]
    start: StartArgs,
}

#[derive(Debug, Subcommand)]
enum TestnetAction {
    /// Start the network (the default action).
    Start(StartArgs),
    /// Stop a network started with --detach.
    Stop {
        /// The testnet directory.
        #[arg(long, default_value_os_t = default_dir())]
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    /// Number of node processes.
    #[arg(long, default_value_t = 10)]
    pub nodes: usize,
    /// Directory for the nodes' data and the testnet state file. Cleared
    /// first only if an earlier testnet made it; any other non-empty
    /// directory is refused.
    #[arg(long, default_value_os_t = default_dir())]
    pub dir: PathBuf,
    /// Seed for the topology.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Leave the nodes running and return; stop them with `warren testnet stop`.
    #[arg(long)]
    pub detach: bool,
    /// Wire the nodes as a known small world of configured friends instead
    /// of letting them join through node 0 by announcement (for runs that
    /// need known routes).
    #[arg(long)]
    pub wired: bool,
    /// Wide-area test bed: delay every peer link by this many milliseconds
    /// in each direction (a link's round trip is twice this), through a relay
    /// in this process in front of each node's P2P port. Needs a foreground
    /// testnet (not --detach): the relays live in this process.
    #[arg(long, value_name = "MS")]
    pub link_delay_ms: Option<u64>,
    /// Wide-area test bed: carry at most this many KiB/s in each direction
    /// of every peer link (through the same relays as --link-delay-ms).
    #[arg(long, value_name = "KIB_PER_S")]
    pub link_rate_kib: Option<u64>,
}

impl StartArgs {
    /// The harness options for these arguments, running this executable.
    pub fn options(&self) -> Result<StartOptions> {
        Ok(StartOptions {
            nodes: self.nodes,
            dir: self.dir.clone(),
            seed: self.seed,
            exe: std::env::current_exe().context("cannot find the warren executable")?,
            wiring: if self.wired {
                Wiring::Wired
            } else {
                Wiring::Opennet
            },
            link: self.link_shape(),
        })
    }

    /// The shape of every link, if the links are relayed.
    pub fn link_shape(&self) -> Option<LinkShape> {
        if self.link_delay_ms.is_none() && self.link_rate_kib.is_none() {
            return None;
        }
        Some(LinkShape {
            delay: Duration::from_millis(self.link_delay_ms.unwrap_or(0)),
            rate: self.link_rate_kib.map(|kib| kib.saturating_mul(1024)),
        })
    }
}

fn default_dir() -> PathBuf {
    std::env::temp_dir().join("warren-testnet")
}

pub fn run(args: TestnetArgs) -> Result<()> {
    match args.action {
        Some(TestnetAction::Stop { dir }) => stop_dir(&dir),
        Some(TestnetAction::Start(start)) => start_and_wait(&start),
        None => start_and_wait(&args.start),
    }
}

/// Starts a testnet and waits until every planned link is up; a node that is
/// late is named, not fatal (it keeps dialling and the rest works meanwhile).
pub fn start_linked(args: &StartArgs) -> Result<Testnet> {
    let mut net = Testnet::start(&args.options()?)?;
    if let Err(late) = net.wait_linked(STARTUP_TIMEOUT) {
        eprintln!("warning: {late}; they keep trying");
    }
    Ok(net)
}

fn start_and_wait(args: &StartArgs) -> Result<()> {
    // Listen for Ctrl-C and SIGTERM before the first node starts: a signal
    // during start-up must stop the nodes, not kill this process and orphan them.
    if args.detach && args.link_shape().is_some() {
        bail!("--link-delay-ms and --link-rate-kib need a foreground testnet: the relays run in this process, and --detach would leave the nodes unreachable");
    }
    let mut signals = StopSignals::listen()?;
    let net = start_linked(args)?;
    if signals.arrived() {
        println!("interrupted: stopping every node");
        return net.stop();
    }
    net.print_summary();
    if args.detach {
        net.detach();
        println!(
            "stop with: warren testnet stop --dir {}",
            args.dir.display()
        );
        return Ok(());
    }
    println!("Ctrl-C stops every node.");
    signals.wait();
    net.stop()
}

/// `warren testnet stop`: stops the nodes listed in the state file, by pid.
pub fn stop_dir(dir: &Path) -> Result<()> {
    let state = TestnetState::load(dir)?;
    let nodes: Vec<(u32, &Path)> = state
        .nodes
        .iter()
        .map(|n| (n.pid, n.data_dir.as_path()))
        .collect();
    let stopped = process::stop_nodes(&nodes, STOP_TIMEOUT);
    let path = dir.join(STATE_FILE);
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    println!("stopped {stopped} node(s)");
    Ok(())
}
