//! `warren node` and `warren keygen`: configuration in, a running relay out.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use rand::RngCore as _;
use tokio_util::sync::CancellationToken;
use warren_crypto::{Location, NodeIdentity, NodeRef, PROTOCOL_VERSION};
use warren_node::driver::{Node, NodeConfig};

use crate::config::{
    default_data_dir, FileConfig, NodeState, DEFAULT_API_PORT, DEFAULT_CACHE_MIB, DEFAULT_FCP_PORT,
    DEFAULT_GATEWAY_PORT, DEFAULT_P2P_PORT, DEFAULT_STORE_MIB, DEFAULT_UPLOAD_LIMIT_MIB,
    MIN_BANDWIDTH_KIB,
};
use crate::runfile::RunFile;

/// File in the data directory holding the node's secret identity key.
pub const IDENTITY_FILE: &str = "identity.key";
/// Bytes per MiB.
const MIB: u64 = 1024 * 1024;
/// Worker threads for the node's runtime: a relay is IO-bound.
const RUNTIME_THREADS: usize = 2;

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Data directory [default: the platform data dir].
    #[arg(long, env = "WARREN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Peer-to-peer listen address [default: 0.0.0.0:9470].
    #[arg(long, env = "WARREN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address peers should dial, if not the listen address.
    #[arg(long, env = "WARREN_ADVERTISE")]
    pub advertise: Option<SocketAddr>,
    /// Local API address: the CLI, status and upload pages, metrics [default: 127.0.0.1:8889].
    #[arg(long, env = "WARREN_API")]
    pub api: Option<SocketAddr>,
    /// Browser gateway address [default: 127.0.0.1:8888].
    #[arg(long, env = "WARREN_GATEWAY")]
    pub gateway: Option<SocketAddr>,
    /// FCP 2.0 address for Freenet client programs [default: 127.0.0.1:9481].
    #[arg(long, env = "WARREN_FCP")]
    pub fcp: Option<SocketAddr>,
    /// A peer's noderef (repeatable); added to those in the config file.
    #[arg(long = "peer")]
    pub peers: Vec<String>,
    /// An opennet seed's noderef (repeatable): dialled to announce through
    /// while this node has too few peers. Also read from `seednodes.txt`.
    #[arg(long = "seed")]
    pub seeds: Vec<String>,
    /// Only the configured peers: no announcement, no path folding.
    #[arg(long)]
    pub friends_only: bool,
    /// Opennet peers to aim for [default: 30].
    #[arg(long, env = "WARREN_TARGET_PEERS")]
    pub target_peers: Option<usize>,
    /// Long-term store size in MiB.
    #[arg(long, env = "WARREN_STORE_MIB")]
    pub store_mib: Option<u64>,
    /// Cache size in MiB.
    #[arg(long, env = "WARREN_CACHE_MIB")]
    pub cache_mib: Option<u64>,
    /// Which block a full store or cache gives up: random or lru [default: random].
    #[arg(long, env = "WARREN_STORE_EVICTION", value_name = "lru|random")]
    pub store_eviction: Option<warren_store::Eviction>,
    /// Most KiB/s all peer links together may send [default: unlimited].
    #[arg(long, env = "WARREN_BANDWIDTH_OUT_KIB")]
    pub bandwidth_out_kib: Option<u64>,
    /// Most KiB/s all peer links together may receive [default: unlimited].
    #[arg(long, env = "WARREN_BANDWIDTH_IN_KIB")]
    pub bandwidth_in_kib: Option<u64>,
}

/// A bandwidth limit in KiB/s, refused below what links can live with.
fn bandwidth_limit(flag: &str, kib: Option<u64>) -> Result<Option<u64>> {
    match kib {
        Some(kib) if kib < MIN_BANDWIDTH_KIB => anyhow::bail!(
            "{flag} (or its config/environment setting) is {kib} KiB/s; the lowest Warren can \
             work with is {MIN_BANDWIDTH_KIB} KiB/s"
        ),
        other => Ok(other),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a terminal: a log file or journald gets plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Loads the node identity from `dir`, creating it on first use.
pub fn load_identity(dir: &Path) -> Result<NodeIdentity> {
    let path = dir.join(IDENTITY_FILE);
    warren_node::link::identity_file::load_or_create(&path, &mut rand::rngs::OsRng)
        .with_context(|| format!("cannot load the node identity {}", path.display()))
}

/// Mode of the data directory: who this node talks to (`peers.txt`), its
/// keys and its store are nobody else's business on this machine.
const DATA_DIR_MODE: u32 = 0o700;
/// File-creation mask for a node: every file and directory it (or sled)
/// creates is private to its user.
const PRIVATE_UMASK: u32 = 0o077;

/// Creates `dir` (mode 0700) or tightens an existing one to 0700, and makes
/// everything this process creates from now on private.
fn make_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    set_private_umask();
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("cannot read the data directory {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DATA_DIR_MODE))
            .with_context(|| format!("cannot make {} private (chmod 700)", dir.display()))?;
    }
    Ok(())
}

/// Makes every file and directory this process creates from now on private
/// to its user (the testnet uses it for the nodes' files it writes).
#[allow(unsafe_code)]
pub fn set_private_umask() {
    // SAFETY: umask(2) only sets this process's file-creation mask.
    unsafe {
        libc::umask(PRIVATE_UMASK as libc::mode_t);
    }
}

/// Everything `warren node` runs with, after file, environment and flags.
struct Resolved {
    data_dir: PathBuf,
    file: FileConfig,
    state: NodeState,
    listen: SocketAddr,
    /// Set by `--advertise` or the config; else the node learns it.
    advertise: Option<SocketAddr>,
    api: SocketAddr,
    gateway: SocketAddr,
    /// The FCP address, and whether it was asked for (not the default).
    fcp: (SocketAddr, bool),
    location: Location,
    peers: Vec<NodeRef>,
    seeds: Vec<NodeRef>,
}

fn resolve(args: &NodeArgs) -> Result<Resolved> {
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => default_data_dir()?,
    };
    make_private_dir(&data_dir)?;
    let file = FileConfig::load(&data_dir)?;
    let mut state = NodeState::load(&data_dir)?;
    // A location is chosen once, at random, and kept (in the node's state
    // file, never the user's config): it is where this node sits on the
    // circle, and moving it would strand what it stores.
    let location = if let Some(raw) = file.location.or(state.location) {
        Location(raw)
    } else {
        let raw = rand::rngs::OsRng.next_u64();
        state.location = Some(raw);
        state.save(&data_dir)?;
        Location(raw)
    };
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], DEFAULT_P2P_PORT)));
    let advertise = args.advertise.or(file.advertise);
    let api = args
        .api
        .or(file.api)
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], DEFAULT_API_PORT)));
    let gateway = args
        .gateway
        .or(file.gateway)
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], DEFAULT_GATEWAY_PORT)));
    let fcp = match args.fcp.or(file.fcp) {
        Some(addr) => (addr, true),
        None => (SocketAddr::from(([127, 0, 0, 1], DEFAULT_FCP_PORT)), false),
    };
    let mut peers = Vec::new();
    for text in file.peers.iter().chain(&args.peers) {
        peers.push(
            text.parse::<NodeRef>()
                .with_context(|| format!("bad peer noderef {text:?}"))?,
        );
    }
    let mut seeds = Vec::new();
    for text in file.seeds.iter().chain(&args.seeds) {
        seeds.push(
            text.parse::<NodeRef>()
                .with_context(|| format!("bad seed noderef {text:?}"))?,
        );
    }
    Ok(Resolved {
        data_dir,
        file,
        state,
        listen,
        advertise,
        api,
        gateway,
        fcp,
        location,
        peers,
        seeds,
    })
}

/// Refuses an API and a gateway on one address: content and the API must
/// never share an origin, and the second bind would fail less clearly. Old
/// configs from before the gateway had its own port say `api = "…:8888"`.
fn check_distinct(api: SocketAddr, gateway: SocketAddr) -> Result<()> {
    let overlap = api.port() == gateway.port()
        && api.port() != 0
        && (api.ip() == gateway.ip() || api.ip().is_unspecified() || gateway.ip().is_unspecified());
    if overlap {
        anyhow::bail!(
            "the API address {api} (`api` in config.toml, or --api) and the browser gateway \
             address {gateway} (`gateway`, or --gateway) use the same port; they must differ. \
             The gateway's default is 127.0.0.1:{DEFAULT_GATEWAY_PORT} and the API's \
             127.0.0.1:{DEFAULT_API_PORT}: a config written when the API served pages on \
             {DEFAULT_GATEWAY_PORT} should drop its `api` line or set another port"
        );
    }
    Ok(())
}

/// The store's sizes and eviction policy: flag or environment first, then
/// `config.toml`, then the defaults (random eviction, `docs/STORE.md`).
fn store_config(args: &NodeArgs, file: &FileConfig) -> warren_store::StoreConfig {
    let store_mib = args
        .store_mib
        .or(file.store_mib)
        .unwrap_or(DEFAULT_STORE_MIB);
    let cache_mib = args
        .cache_mib
        .or(file.cache_mib)
        .unwrap_or(DEFAULT_CACHE_MIB);
    warren_store::StoreConfig {
        store_bytes: store_mib * MIB,
        cache_bytes: cache_mib * MIB,
        eviction: args
            .store_eviction
            .or(file.store_eviction)
            .unwrap_or_default(),
        ..warren_store::StoreConfig::default()
    }
}

pub fn run(args: &NodeArgs) -> Result<()> {
    tune_heap();
    init_logging();
    crate::fec_worker::install_from_env();
    let resolved = resolve(args)?;
    check_distinct(resolved.api, resolved.gateway)?;
    let identity = load_identity(&resolved.data_dir)?;
    let mut config = NodeConfig::new(
        resolved.data_dir.clone(),
        resolved.listen,
        resolved.location,
    );
    config.advertise = resolved.advertise;
    config.peers.clone_from(&resolved.peers);
    config.seeds.clone_from(&resolved.seeds);
    let friends_only = args.friends_only || resolved.file.friends_only.unwrap_or(false);
    if !friends_only {
        let target = args
            .target_peers
            .or(resolved.file.target_peers)
            .unwrap_or(warren_node::routing::DEFAULT_TARGET_PEERS);
        if target == 0 || target > config.routing.max_peers {
            anyhow::bail!(
                "--target-peers must be between 1 and {}",
                config.routing.max_peers
            );
        }
        config.routing.opennet = Some(warren_node::routing::OpennetConfig::with_target(target));
    }
    if resolved.file.max_htl_walk.unwrap_or(false) {
        config.routing = config.routing.with_max_htl_walk();
    }
    config.store = store_config(args, &resolved.file);
    let out_kib = bandwidth_limit(
        "--bandwidth-out-kib",
        args.bandwidth_out_kib.or(resolved.file.bandwidth_out_kib),
    )?;
    let in_kib = bandwidth_limit(
        "--bandwidth-in-kib",
        args.bandwidth_in_kib.or(resolved.file.bandwidth_in_kib),
    )?;
    config.limit_bandwidth(out_kib.map(|k| k * 1024), in_kib.map(|k| k * 1024));
    if out_kib.is_some() || in_kib.is_some() {
        tracing::info!(
            out_kib_per_sec = ?out_kib,
            in_kib_per_sec = ?in_kib,
            served_requests = ?config.routing.max_served_requests,
            "bandwidth limited"
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_THREADS)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let node = start_on_kept_port(config, identity, &resolved).await?;
        let allow_remote = resolved.file.api_allow_remote;
        let listeners = warren_node::http::Listeners {
            api: warren_node::http::bind(resolved.api, allow_remote).await?,
            gateway: warren_node::http::bind(resolved.gateway, allow_remote).await?,
        };
        let (api_addr, gateway_addr) =
            (listeners.api.local_addr()?, listeners.gateway.local_addr()?);
        // A new token each start, readable by this user only: whoever can
        // read the data directory may use the API; a web page cannot.
        let token = warren_node::http::ApiToken::generate();
        let token_path = resolved.data_dir.join(warren_node::http::API_TOKEN_FILE);
        token
            .write_file(&token_path)
            .with_context(|| format!("cannot write the API token {}", token_path.display()))?;
        let http_config = warren_node::http::HttpConfig {
            upload_limit: resolved
                .file
                .upload_limit_mib
                .unwrap_or(DEFAULT_UPLOAD_LIMIT_MIB)
                .saturating_mul(MIB),
            ..warren_node::http::HttpConfig::default()
        };
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(warren_node::http::serve(
            listeners,
            node.handle(),
            token,
            http_config,
            shutdown.clone(),
        ));
        let fcp = start_fcp(
            resolved.fcp,
            resolved.file.fcp_allow_remote,
            &resolved.data_dir,
            &node,
            &shutdown,
        )
        .await?;
        let run_file = RunFile {
            pid: std::process::id(),
            p2p: node.listen_addr(),
            api: api_addr,
            gateway: gateway_addr,
            fcp: fcp.as_ref().map(|(addr, _)| *addr),
            noderef: node.handle().noderef().to_string(),
        };
        run_file.write(&resolved.data_dir)?;
        tracing::info!(
            api = %api_addr,
            gateway = %gateway_addr,
            noderef = %node.handle().noderef(),
            "node ready"
        );
        let trimmer = tokio::spawn(return_freed_memory());
        wait_for_signal().await?;
        trimmer.abort();
        tracing::info!("shutting down: closing links and flushing the store");
        shutdown.cancel();
        let _ = server.await;
        if let Some((_, fcp)) = fcp {
            let _ = fcp.await;
        }
        RunFile::remove(&resolved.data_dir);
        let _ = std::fs::remove_file(&token_path);
        node.shutdown().await.context("shutdown failed")?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Starts the FCP listener. A busy default port is only a warning (another
/// node or Freenet may have it); a port that was asked for must work.
async fn start_fcp(
    (addr, asked): (SocketAddr, bool),
    allow_remote: bool,
    data_dir: &Path,
    node: &Node,
    shutdown: &CancellationToken,
) -> Result<Option<(SocketAddr, tokio::task::JoinHandle<()>)>> {
    let listener = match warren_node::fcp::bind(addr, allow_remote).await {
        Ok(listener) => listener,
        Err(err) if !asked => {
            tracing::warn!("FCP not started: {err:#}; set --fcp or `fcp` in the config");
            return Ok(None);
        }
        Err(err) => return Err(err.into()),
    };
    let vault = warren_node::fcp::Vault::open(data_dir)
        .context("cannot open the key that seals the FCP queue")?;
    let bound = listener.local_addr()?;
    tracing::info!(fcp = %bound, "FCP 2.0 listening");
    let serving = tokio::spawn(warren_node::fcp::serve(
        listener,
        node.handle(),
        data_dir.to_path_buf(),
        vault,
        shutdown.clone(),
    ));
    Ok(Some((bound, serving)))
}

/// Starts the node. Configured with port 0, it first tries the port it got
/// last time (peers that know it dial that), and keeps whatever it gets.
async fn start_on_kept_port(
    config: NodeConfig,
    identity: NodeIdentity,
    resolved: &Resolved,
) -> Result<Node> {
    let wants_any_port = config.listen.port() == 0;
    let kept = resolved.state.listen_port.filter(|_| wants_any_port);
    let node = if let Some(port) = kept {
        let mut first = config.clone();
        first.listen.set_port(port);
        first.advertise = first.advertise.map(|mut a| {
            a.set_port(port);
            a
        });
        match Node::start(first, identity).await {
            Ok(node) => node,
            Err(err) if err.is_address_in_use() => {
                tracing::warn!(
                    port,
                    "the port this node had is taken; listening on a new one"
                );
                let identity = load_identity(&resolved.data_dir)?;
                Node::start(config, identity)
                    .await
                    .context("cannot start the node")?
            }
            Err(err) => return Err(err).context("cannot start the node"),
        }
    } else {
        Node::start(config, identity)
            .await
            .context("cannot start the node")?
    };
    let bound = node.listen_addr().port();
    if wants_any_port && resolved.state.listen_port != Some(bound) {
        let mut state = resolved.state.clone();
        state.listen_port = Some(bound);
        state.save(&resolved.data_dir)?;
    }
    Ok(node)
}

/// How often freed heap memory is handed back to the OS.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// glibc keeps memory freed after a burst (an insert's segments, a relay's
/// frames) in its heap (see [`tune_heap`]); a relay that has gone idle
/// should not hold on to its busiest moment. Measured after the network
/// bench: the inserting node's idle RSS 42 -> 29 MB, the others' ~5 MB less.
async fn return_freed_memory() {
    let mut every = tokio::time::interval(TRIM_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        trim_heap();
    }
}

/// Free memory glibc may keep at the top of a heap before giving it back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 64 << 20;

/// Allocations from this size up get their own mapping, returned to the
/// system when freed. Setting it also stops glibc raising it (up to 32 MiB)
/// each time a large chunk is freed, after which segment-sized buffers (4 MiB
/// FEC shards and decoded segments, 1 MiB insert batches) came from the heap
/// and fragmented it: on a soak node (scripts/soak.py) glibc held 21 MB of
/// heap for 15.5 MB in use. The 30-minute soak in docs/OPERATIONS.md ran
/// with this setting.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 << 10;

/// A relay allocates and frees ~33 KB buffers all the time; glibc's default
/// hands freed heap tops back at once and takes them again a moment later,
/// so a relay spent ~6% of its CPU in page faults. Keep freed memory while
/// busy; [`return_freed_memory`] hands it back every few seconds.
///
/// One arena: `malloc_trim` shrinks only the main arena's top, so memory
/// left at the top of per-thread arenas after a burst (15 MB on an inserting
/// node) stayed resident for good. With two worker threads, sharing one
/// arena cost nothing measurable.
///
/// Measured in the network bench (128 MiB cold fetch, 256 MiB insert): relay
/// CPU -15% against glibc's defaults. Idle RSS 20 s after the runs, against
/// the same without the single arena: relays 13 -> 10 MB, the inserting node
/// 29-37 -> 20-24 MB. (Raising the mmap threshold too cost a fresh relay 6 MB
/// for no further gain.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_heap() {
    // SAFETY: mallopt only sets glibc allocator parameters; this runs before
    // the process starts any other thread.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_heap() {}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim_heap() {
    // SAFETY: malloc_trim only walks glibc's own allocator state under its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

async fn wait_for_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot listen for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// `warren keygen`: creates the identity if needed and prints the noderef.
pub fn keygen(data_dir: Option<PathBuf>) -> Result<()> {
    let resolved = resolve(&NodeArgs {
        data_dir,
        listen: None,
        advertise: None,
        api: None,
        gateway: None,
        fcp: None,
        peers: Vec::new(),
        seeds: Vec::new(),
        friends_only: false,
        target_peers: None,
        store_mib: None,
        cache_mib: None,
        store_eviction: None,
        bandwidth_out_kib: None,
        bandwidth_in_kib: None,
    })?;
    let identity = load_identity(&resolved.data_dir)?;
    let address = resolved.advertise.unwrap_or(resolved.listen);
    let noderef = NodeRef {
        identity: identity.public(),
        location: resolved.location,
        address,
        version: PROTOCOL_VERSION,
    };
    println!("{noderef}");
    if address.ip().is_unspecified() || address.ip().is_loopback() {
        eprintln!(
            "note: {} is not an address others can dial; a running node learns its public address from its peers (`warren status` shows the noderef it hands out), or set --advertise HOST:PORT",
            address.ip()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use warren_store::Eviction;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
    }

    #[test]
    fn store_eviction_comes_from_the_flag_then_the_file_then_the_default() {
        let parse = |argv: &[&str]| Cli::try_parse_from(argv).map(|cli| cli.node);
        let lru_file = FileConfig {
            store_eviction: Some(Eviction::Lru),
            store_mib: Some(16),
            ..FileConfig::default()
        };
        // WARREN_STORE_EVICTION is the flag's environment variable (clap
        // reads it in place of the flag; not set here, where tests share one
        // environment).
        let none = parse(&["node"]).unwrap();
        assert_eq!(
            store_config(&none, &FileConfig::default()).eviction,
            Eviction::Random
        );
        let from_file = store_config(&none, &lru_file);
        assert_eq!(from_file.eviction, Eviction::Lru);
        assert_eq!(from_file.store_bytes, 16 * MIB);
        let flag = parse(&["node", "--store-eviction", "random"]).unwrap();
        assert_eq!(store_config(&flag, &lru_file).eviction, Eviction::Random);
        let flag = parse(&["node", "--store-eviction", "lru"]).unwrap();
        assert_eq!(
            store_config(&flag, &FileConfig::default()).eviction,
            Eviction::Lru
        );
        let err = parse(&["node", "--store-eviction", "fifo"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("fifo") && err.contains("lru"), "{err}");
    }

    #[test]
    fn an_api_on_the_gateway_port_is_refused_naming_both_settings() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let err = check_distinct(addr("127.0.0.1:8888"), addr("127.0.0.1:8888")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`api`") && text.contains("`gateway`"),
            "{text}"
        );
        assert!(check_distinct(addr("0.0.0.0:8888"), addr("127.0.0.1:8888")).is_err());
        assert!(check_distinct(addr("127.0.0.1:8889"), addr("127.0.0.1:8888")).is_ok());
        assert!(check_distinct(addr("127.0.0.1:0"), addr("127.0.0.1:0")).is_ok());
        assert!(check_distinct(addr("127.0.0.1:8888"), addr("127.0.0.2:8888")).is_ok());
    }
}
