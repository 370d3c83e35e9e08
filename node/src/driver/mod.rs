//! The tokio node: drives the sans-IO routing core over real links and the
//! real store.
//!
//! One event-loop task owns the routing core, the peer table and the link
//! handles. Links, the listener, timers and local clients feed it events; it
//! hands each to the core, then carries out the actions the core returns:
//! encode and `try_send` to a link, write to the store, answer a client. The
//! store is shared (`Arc<dyn BlockStore>`): the core reads it synchronously
//! through [`BlockLookup`](crate::routing::BlockLookup).
//!
//! ```no_run
//! # async fn demo(identity: warren_crypto::NodeIdentity) -> Result<(), Box<dyn std::error::Error>> {
//! use warren_node::driver::{Node, NodeConfig};
//! let config = NodeConfig::new("/tmp/warren-a".into(), "127.0.0.1:0".parse()?, warren_crypto::Location(42));
//! let node = Node::start(config, identity).await?;
//! let (block, key) = warren_crypto::ChkBlock::encode(b"hello")?;
//! node.handle().insert_block(block).await?;
//! let back = node.handle().fetch_block(key.routing).await?;
//! assert_eq!(back.decode(&key.crypto)?, b"hello");
//! node.shutdown().await?;
//! # Ok(()) }
//! ```

mod address;
pub mod admission;
mod event_loop;
mod peers;
mod store_writer;

pub use self::store_writer::STORE_WRITE_QUEUE;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use warren_crypto::{
    ChkBlock, Location, NodeIdentity, NodeRef, RoutingKey, SskBlock, PROTOCOL_VERSION,
};
use warren_store::{BlockStore, SledStore, StoreConfig, StoreError};

use crate::link::bandwidth::Bandwidth;
use crate::link::{LinkConfig, Listener, ListenerCounts};
use crate::routing::{
    served_requests_for_bandwidth, FetchError, InsertError, LocalRoutes, Outcomes, PeerTraffic,
    RoutingConfig,
};

/// Local client commands queued for the event loop at most.
pub const COMMAND_QUEUE: usize = 1024;
/// Link events (received payloads, closes) queued for the event loop at most.
pub const LINK_EVENT_QUEUE: usize = 4096;
/// New links (dialled or accepted) queued for the event loop at most.
pub const NEW_LINK_QUEUE: usize = 64;
/// Frames queued per link: room for a reply to every request the peer may
/// have accepted here and every request it may have accepted from us (the
/// routing core's per-peer limit, each way) plus control messages, so replies
/// to accepted requests are not shed in normal operation (a shed reply costs
/// its request a whole search timeout). Memory stays bounded by the node's
/// live requests, each of which has at most one block in an outbox.
pub const LINK_OUTBOX: usize = 2 * crate::routing::DEFAULT_MAX_REQUESTS_PER_PEER as usize + 128;
/// How often the store is flushed to disk while running.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How long shutdown waits for the event loop to finish.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);
/// Name of the datastore directory inside the data directory.
pub const STORE_DIR: &str = "store";
/// Name of the known-peers file inside the data directory.
pub const PEERS_FILE: &str = "peers.txt";
/// Name of the seed list inside the data directory: one noderef a line,
/// reread every [`SEED_CHECK_INTERVAL`] so it can change without a restart.
pub const SEEDS_FILE: &str = "seednodes.txt";
/// How often an opennet node checks its seeds and its peer threshold.
pub const SEED_CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// Seeds read from the file and flags at most.
pub const MAX_SEEDS: usize = 64;

/// Everything a node runs with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    /// Address to listen on for peers (port 0 picks one).
    pub listen: SocketAddr,
    /// Address peers should dial, if not the listen address.
    pub advertise: Option<SocketAddr>,
    pub location: Location,
    /// Peers to connect to (and reconnect to, for as long as the node runs):
    /// friends, with reserved slots.
    pub peers: Vec<NodeRef>,
    /// Opennet seeds (besides `seednodes.txt`): dialled while the node is
    /// below its peer threshold, to announce through; dropped once it is not.
    pub seeds: Vec<NodeRef>,
    pub store: StoreConfig,
    pub routing: RoutingConfig,
    pub link: LinkConfig,
}

impl NodeConfig {
    pub fn new(data_dir: PathBuf, listen: SocketAddr, location: Location) -> Self {
        let link = LinkConfig {
            outbox_capacity: LINK_OUTBOX,
            ..LinkConfig::default()
        };
        NodeConfig {
            data_dir,
            listen,
            advertise: None,
            location,
            peers: Vec::new(),
            seeds: Vec::new(),
            store: StoreConfig::default(),
            routing: RoutingConfig::default(),
            link,
        }
    }

    /// Hold the node to the operator's limits (bytes per second; `None` is
    /// unlimited): every link's frames pass one token bucket per direction,
    /// and the node accepts no more requests from peers than the slower
    /// direction can carry (see [`served_requests_for_bandwidth`]).
    pub fn limit_bandwidth(
        &mut self,
        out_bytes_per_sec: Option<u64>,
        in_bytes_per_sec: Option<u64>,
    ) {
        self.link.bandwidth = Bandwidth::new(out_bytes_per_sec, in_bytes_per_sec);
        self.routing.max_served_requests = out_bytes_per_sec
            .into_iter()
            .chain(in_bytes_per_sec)
            .min()
            .map(served_requests_for_bandwidth);
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("cannot open the datastore")]
    Store(#[from] StoreError),
    #[error("cannot listen for peers on {addr}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the data directory {path}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the store writer thread")]
    StoreWriter(#[source] std::io::Error),
}

impl StartError {
    /// The listen port is taken by another process.
    pub fn is_address_in_use(&self) -> bool {
        matches!(self, StartError::Listen { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse)
    }
}

/// Why a block request or insert failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Insert(#[from] InsertError),
    /// An SSK insert met another block under its key, which stays: that block.
    #[error("a different block is already stored under this key and document name (the first one inserted stays); insert under another name, or a newer USK edition")]
    SskCollision(SskBlock),
    #[error("the node's request queue is full; retry later")]
    Busy,
    #[error("the node is shutting down")]
    Stopped,
}

impl RequestError {
    /// The network, or this node, was too busy to take the request: worth
    /// trying again after a while.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            RequestError::Fetch(FetchError::Overloaded)
                | RequestError::Insert(InsertError::Overloaded)
                | RequestError::Busy
        )
    }

    /// Worth one more try: the network was busy or slow, not empty.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RequestError::Fetch(FetchError::Timeout | FetchError::Overloaded)
                | RequestError::Insert(InsertError::Timeout | InsertError::Overloaded)
                | RequestError::Busy
        )
    }
}

/// A snapshot for the status page, the JSON API and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub noderef: String,
    pub location: f64,
    pub uptime_s: u64,
    pub peers: Vec<PeerStatus>,
    pub live_requests: usize,
    pub routing: serde_json::Value,
    /// Announcements, folds and peer drops since start (`OpennetStats`).
    pub opennet: serde_json::Value,
    pub store: serde_json::Value,
    /// Store flushes completed since start: every block stored before a
    /// flush began is durable once this count has passed it.
    pub store_flushes: u64,
    /// Block writes dropped because the disk was [`STORE_WRITE_QUEUE`] behind.
    pub store_writes_shed: u64,
    pub links: LinkTotals,
    /// This node's own block fetches and inserts, by how they ended.
    pub local: LocalRequests,
    /// Requests routed to peers and from peers, all links since start.
    pub to_peers: Outcomes,
    pub from_peers: Outcomes,
    /// Own requests: peers asked and HTL used (see `routing::LocalRoutes`).
    pub hops: LocalRoutes,
}

/// Own block requests by outcome: `success`, `not_found`,
/// `route_not_found`, `timeout`, `overloaded`, `collision` (inserts).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LocalRequests {
    pub fetch: std::collections::BTreeMap<&'static str, u64>,
    pub insert: std::collections::BTreeMap<&'static str, u64>,
}

impl LocalRequests {
    pub(super) fn count_fetch(&mut self, result: Result<(), &FetchError>) {
        let outcome = match result {
            Ok(()) => "success",
            Err(FetchError::DataNotFound) => "not_found",
            Err(FetchError::RouteNotFound) => "route_not_found",
            Err(FetchError::Timeout) => "timeout",
            Err(FetchError::Overloaded) => "overloaded",
        };
        *self.fetch.entry(outcome).or_insert(0) += 1;
    }

    pub(super) fn count_insert(&mut self, result: Result<(), &InsertError>) {
        let outcome = match result {
            Ok(()) => "success",
            Err(InsertError::RouteNotFound) => "route_not_found",
            Err(InsertError::Collision) => "collision",
            Err(InsertError::Timeout) => "timeout",
            Err(InsertError::Overloaded) => "overloaded",
        };
        *self.insert.entry(outcome).or_insert(0) += 1;
    }

    /// Block fetches this node has asked for (from its store or the network).
    pub fn fetches(&self) -> u64 {
        self.fetch.values().sum()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    /// How the peer was met: "friend" (configured), "opennet" (announced,
    /// folded, or dialled in), "seed" (a link used only to announce).
    pub kind: &'static str,
    pub identity: String,
    pub location: f64,
    pub address: SocketAddr,
    /// Bytes over this link (the current one, if it was re-established).
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Requests in flight to and from the peer, and how they ended.
    #[serde(flatten)]
    pub traffic: PeerTraffic,
}

/// Bytes and frames over all links since start, and what was shed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkTotals {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub messages_shed: u64,
    pub bad_messages: u64,
    /// Links that came up, by who dialled.
    pub opened_inbound: u64,
    pub opened_outbound: u64,
    /// Connections and links refused, by reason.
    pub refused: LinkRefusals,
    /// Dials to noderefs from the network that failed, or that the rate
    /// limit held back.
    pub dials_failed: u64,
    pub dials_rate_limited: u64,
}

/// Why connections and links were refused: the listener's reasons (before
/// or during the handshake) and the node's (admission, after it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkRefusals {
    pub handshake_failed: u64,
    pub handshake_timeout: u64,
    pub handshakes_per_address: u64,
    pub not_accepted: u64,
    pub node_busy: u64,
    /// Every link slot was taken.
    pub slots_full: u64,
    pub stranger_slots_full: u64,
    pub per_ip: u64,
    pub per_subnet: u64,
    /// A second link to a peer already linked.
    pub duplicate: u64,
}

impl LinkRefusals {
    pub(super) fn with_listener(mut self, counts: ListenerCounts) -> Self {
        self.handshake_failed = counts.handshake_failed;
        self.handshake_timeout = counts.handshake_timeout;
        self.handshakes_per_address = counts.handshakes_per_address;
        self.not_accepted = counts.not_accepted;
        self.node_busy = counts.node_busy;
        self
    }
}

enum Command {
    Fetch {
        key: RoutingKey,
        reply: oneshot::Sender<Result<ChkBlock, RequestError>>,
    },
    Insert {
        block: ChkBlock,
        reply: oneshot::Sender<Result<(), RequestError>>,
    },
    FetchSsk {
        key: RoutingKey,
        reply: oneshot::Sender<Result<SskBlock, RequestError>>,
    },
    InsertSsk {
        block: SskBlock,
        reply: oneshot::Sender<Result<(), RequestError>>,
    },
    Status {
        reply: oneshot::Sender<NodeStatus>,
    },
}

/// A cheap, cloneable handle to a running node.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    noderef: SharedNodeRef,
    /// This node's client transfers, sharing its flow-control budget.
    transfers: Arc<crate::flow::Transfers>,
    /// The data directory, where a fetch keeps what it may not hold in memory.
    data_dir: Arc<std::path::Path>,
}

/// This node's noderef as it is handed out now: it changes when the node
/// learns its public address from its peers.
#[derive(Debug, Clone)]
pub(crate) struct SharedNodeRef(Arc<std::sync::RwLock<NodeRef>>);

impl SharedNodeRef {
    fn new(noderef: NodeRef) -> Self {
        SharedNodeRef(Arc::new(std::sync::RwLock::new(noderef)))
    }

    fn get(&self) -> NodeRef {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set(&self, noderef: NodeRef) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = noderef;
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Fetch { .. } => "Fetch",
            Command::Insert { .. } => "Insert",
            Command::FetchSsk { .. } => "FetchSsk",
            Command::InsertSsk { .. } => "InsertSsk",
            Command::Status { .. } => "Status",
        })
    }
}

impl NodeHandle {
    /// The transfers running on this node (they share its window budget).
    pub fn transfers(&self) -> &Arc<crate::flow::Transfers> {
        &self.transfers
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// This node's noderef, to hand to peers (with the address its peers
    /// agree they see it at, unless one was set).
    pub fn noderef(&self) -> NodeRef {
        self.noderef.get()
    }

    /// Fetches one block from the local store or the network, verified.
    pub async fn fetch_block(&self, key: RoutingKey) -> Result<ChkBlock, RequestError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Fetch { key, reply })
            .await
            .map_err(|_| RequestError::Stopped)?;
        answer.await.map_err(|_| RequestError::Stopped)?
    }

    /// Inserts one block into the network.
    pub async fn insert_block(&self, block: ChkBlock) -> Result<(), RequestError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Insert { block, reply })
            .await
            .map_err(|_| RequestError::Stopped)?;
        answer.await.map_err(|_| RequestError::Stopped)?
    }

    /// Fetches one SSK block from the local store or the network, verified
    /// (routing key and signature).
    pub async fn fetch_ssk_block(&self, key: RoutingKey) -> Result<SskBlock, RequestError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::FetchSsk { key, reply })
            .await
            .map_err(|_| RequestError::Stopped)?;
        answer.await.map_err(|_| RequestError::Stopped)?
    }

    /// Inserts one signed SSK block; `RequestError::SskCollision` carries the
    /// different block a node already holds under its key.
    pub async fn insert_ssk_block(&self, block: SskBlock) -> Result<(), RequestError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::InsertSsk { block, reply })
            .await
            .map_err(|_| RequestError::Stopped)?;
        answer.await.map_err(|_| RequestError::Stopped)?
    }

    pub async fn status(&self) -> Result<NodeStatus, RequestError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Status { reply })
            .await
            .map_err(|_| RequestError::Stopped)?;
        answer.await.map_err(|_| RequestError::Stopped)
    }
}

/// A running node. Dropping it aborts the node; [`Node::shutdown`] stops it cleanly.
pub struct Node {
    handle: NodeHandle,
    listen_addr: SocketAddr,
    cancel: CancellationToken,
    task: AbortOnDropHandle<()>,
    store: Arc<dyn BlockStore>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("noderef", &self.handle.noderef)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Opens the store, binds the listener, and starts the event loop and the
    /// dialers for the configured peers.
    pub async fn start(config: NodeConfig, identity: NodeIdentity) -> Result<Node, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let store: Arc<dyn BlockStore> = Arc::new(SledStore::open(
            &config.data_dir.join(STORE_DIR),
            config.store.clone(),
        )?);
        Self::start_with_store(config, identity, store).await
    }

    /// Like [`Node::start`] with a store the caller opened (tests use `MemoryStore`).
    pub async fn start_with_store(
        config: NodeConfig,
        identity: NodeIdentity,
        store: Arc<dyn BlockStore>,
    ) -> Result<Node, StartError> {
        let identity = Arc::new(identity);
        let local = NodeRef {
            identity: identity.public(),
            location: config.location,
            address: config.advertise.unwrap_or(config.listen),
            version: PROTOCOL_VERSION,
        };
        let listener = Listener::bind(
            config.listen,
            identity.clone(),
            local,
            config.link.clone(),
            Arc::new(crate::link::AnyPeer),
        )
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        let listen_addr = listener.bound_addr();
        let mut noderef = listener.noderef().clone();
        if config.advertise.is_none() && noderef.address.ip().is_unspecified() {
            // Listening on 0.0.0.0: advertise loopback rather than an address no one can dial.
            noderef.address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let cancel = CancellationToken::new();
        let handle = NodeHandle {
            commands,
            noderef: SharedNodeRef::new(noderef.clone()),
            transfers: Arc::default(),
            data_dir: Arc::from(config.data_dir.as_path()),
        };
        let writer =
            store_writer::StoreWriter::start(store.clone()).map_err(StartError::StoreWriter)?;
        let driver = event_loop::Driver::new(event_loop::Parts {
            config,
            identity,
            shared_noderef: handle.noderef.clone(),
            noderef,
            listener,
            store: store.clone(),
            commands: command_rx,
            cancel: cancel.clone(),
            writer,
        });
        let task = AbortOnDropHandle::new(tokio::spawn(driver.run()));
        Ok(Node {
            handle,
            listen_addr,
            cancel,
            task,
            store,
        })
    }

    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// The address the peer listener is bound to.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// Closes every link, stops the event loop and flushes the store.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        self.cancel.cancel();
        if tokio::time::timeout(SHUTDOWN_DEADLINE, self.task)
            .await
            .is_err()
        {
            tracing::warn!("event loop did not stop within {SHUTDOWN_DEADLINE:?}; aborted");
        }
        self.store.flush()
    }
}
