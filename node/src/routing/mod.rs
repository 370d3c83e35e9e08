//! The sans-IO routing core: plain data and functions, no sockets, clocks or tasks.
//!
//! One [`Node`] per Warren node. Its driver (the tokio node, or the simulator)
//! feeds it [`Event`]s with [`Node::handle`], passing the current [`Time`], an
//! RNG and read access to the local store ([`BlockLookup`]); then drains
//! [`Node::poll_action`] until `None`, and arms one timer at
//! [`Node::poll_timeout`], calling [`Node::handle_timeout`] when it fires.
//! Store writes, sends and client completions are all [`Action`]s: the core
//! never blocks and never owns a resource it cannot drop.
//!
//! Routing rules (greedy toward the key, backtracking, hops-to-live with per-link
//! coin flips, loop rejection, merging, caching, sinks, back-off) are described
//! in `docs/PROTOCOL.md` (Part III).

mod failure_table;
mod node;
mod opennet;
mod request;
mod ssk;
mod traffic;

use core::time::Duration;

use serde::{Deserialize, Serialize};
use warren_crypto::{ChkBlock, Location, NodeRef, RoutingKey, SskBlock};

pub use self::node::{Node, NodeStats};
pub use self::opennet::{
    newcomer_limit, OpennetConfig, OpennetStats, DEFAULT_ANNOUNCE_INTERVAL,
    DEFAULT_ANNOUNCE_TIMEOUT, DEFAULT_FOLD_REPLACE_PROBABILITY, DEFAULT_FOLD_ROUTE_TTL,
    DEFAULT_FOLD_TAKE_PROBABILITY, DEFAULT_LONG_LINK_DISTANCE, DEFAULT_LONG_LINK_SHARE,
    DEFAULT_MAX_ANNOUNCES, DEFAULT_MAX_ANNOUNCE_FAILURES, DEFAULT_MIN_DROP_INTERVAL,
    DEFAULT_NOT_FOUND_LIMIT, DEFAULT_PEER_GRACE, DEFAULT_TARGET_PEERS, MAX_ANNOUNCE_REPLIES,
    MAX_ANNOUNCE_THRESHOLD, MAX_FOLD_ROUTES, MIN_NEWCOMER_SLACK, NEWCOMER_SLACK_SHARE,
};
pub use self::traffic::{LocalRoutes, Outcomes, PeerTraffic, Tally, TALLY_MAX};
use crate::wire::Message;

/// Virtual or real time in milliseconds since an epoch the driver chooses.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Time(pub u64);

impl Time {
    pub const ZERO: Time = Time(0);

    pub const fn from_millis(ms: u64) -> Self {
        Time(ms)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the end of time.
    #[must_use]
    pub fn after(self, d: Duration) -> Time {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(ms))
    }
}

/// An opaque handle for a connected peer, assigned by the driver.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct PeerId(pub u64);

/// An opaque handle for a local client operation, assigned by the driver.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct ClientId(pub u64);

/// Which part of the datastore a block goes to (mirrors `warren_store::Area`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum Area {
    /// Long-term: inserts that ended here because this node is a sink for the key.
    Store,
    /// Everything else that passed through, evicted first.
    Cache,
}

/// Synchronous read access to the local datastore.
pub trait BlockLookup {
    /// The block stored under `key`, verified, if any.
    fn get(&self, key: &RoutingKey) -> Option<ChkBlock>;

    /// The SSK block stored under `key`, verified, if any. A store that keeps
    /// no SSK blocks (the simulator's, which carries CHK traffic only) keeps
    /// this default.
    fn get_ssk(&self, _key: &RoutingKey) -> Option<SskBlock> {
        None
    }
}

/// Looks nothing up: a node with an empty store.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStore;

impl BlockLookup for NoStore {
    fn get(&self, _key: &RoutingKey) -> Option<ChkBlock> {
        None
    }
}

/// How this node came to know a peer, which decides whether it may be dropped.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
pub enum PeerKind {
    /// Configured by hand (darknet): never dropped by the opennet policy.
    Friend,
    /// Met through the opennet (announced, folded, or a stranger dialling in):
    /// counts toward the target and may be replaced by a more useful one.
    #[default]
    Opennet,
    /// A seed link used to announce: not counted, closed by the driver once
    /// the node has enough peers.
    Seed,
}

/// Why the core asks the driver to connect to a noderef.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ConnectReason {
    /// A node on an announcement's path (ours, or one we relayed).
    Announced,
    /// Path folding after a successful fetch.
    Folded,
}

/// An input to the core.
#[derive(Debug)]
pub enum Event {
    /// A link to `peer` is up; `location` is its place on the circle.
    PeerUp {
        peer: PeerId,
        location: Location,
        kind: PeerKind,
    },
    /// The link to `peer` is gone.
    PeerDown { peer: PeerId },
    /// A message from `from`, already decoded.
    Message { from: PeerId, msg: Message },
    /// A local client asks for the block named `key`.
    Fetch { client: ClientId, key: RoutingKey },
    /// A local client inserts `block`.
    Insert { client: ClientId, block: ChkBlock },
    /// A local client asks for the SSK block named `key`.
    FetchSsk { client: ClientId, key: RoutingKey },
    /// A local client inserts an SSK block (already signed).
    InsertSsk { client: ClientId, block: SskBlock },
}

/// An output of the core, drained with [`Node::poll_action`].
#[derive(Debug)]
pub enum Action {
    /// Send `msg` to `to` (drop it if the link is gone: the core gets `PeerDown`).
    Send { to: PeerId, msg: Message },
    /// Write a verified block to the local datastore.
    Store { area: Area, block: ChkBlock },
    /// A local fetch finished.
    FetchDone {
        client: ClientId,
        result: Result<ChkBlock, FetchError>,
    },
    /// A local insert finished.
    InsertDone {
        client: ClientId,
        result: Result<(), InsertError>,
    },
    /// Write a verified SSK block to the local datastore (SSK blocks have one
    /// area of their own; the core emits this under the same rules as `Store`).
    StoreSsk { block: SskBlock },
    /// A local SSK fetch finished.
    SskFetchDone {
        client: ClientId,
        result: Result<SskBlock, FetchError>,
    },
    /// A local SSK insert finished.
    SskInsertDone {
        client: ClientId,
        result: Result<(), SskInsertError>,
    },
    /// `peer` broke the protocol; the driver should disconnect it.
    Misbehaved { peer: PeerId, reason: Misbehaviour },
    /// Opennet: dial this node and, once linked, report it with `PeerUp`.
    /// The driver applies its own admission limits (per address, per subnet,
    /// dial rate) before dialling; the noderef comes from the network.
    Connect {
        noderef: NodeRef,
        reason: ConnectReason,
    },
    /// Opennet: close the link to `peer` to make room (the core gets `PeerDown`).
    Disconnect { peer: PeerId },
}

/// Why a local fetch failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("data not found: the request ran out of hops; it may not have been inserted, or has dropped out of the network")]
    DataNotFound,
    #[error("route not found: no more peers to try; connect to more peers and retry")]
    RouteNotFound,
    #[error("the request timed out; the network is slow or a peer stopped answering, retry later")]
    Timeout,
    #[error("this node has too many requests in flight; retry later")]
    Overloaded,
}

/// Why a local insert failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InsertError {
    #[error("route not found: no peer took the insert; connect to more peers and retry")]
    RouteNotFound,
    #[error("different data is already stored under this key")]
    Collision,
    #[error("the insert timed out; the network is slow or a peer stopped answering, retry later")]
    Timeout,
    #[error("this node has too many requests in flight; retry later")]
    Overloaded,
}

/// Why a local SSK insert failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SskInsertError {
    #[error(transparent)]
    Insert(#[from] InsertError),
    /// A node on the route holds another block under this key: here it is.
    #[error("a different block is already stored under this key and document name (the first one inserted stays); insert under another name, or a newer USK edition")]
    Collision(SskBlock),
}

/// How a peer broke the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Misbehaviour {
    /// It sent a block that does not hash to the key it was asked for (or an
    /// SSK block whose key or signature does not verify).
    ForgedBlock,
    /// It answered a request that was not routed to it, or with the wrong kind of reply.
    UnexpectedReply,
    /// It answered the same request twice (a second `Accepted`).
    DuplicateReply,
    /// It claimed a CHK insert collides with different data, which would
    /// need a SHA-256 collision.
    FalseCollision,
}

/// Hops-to-live a request starts with.
pub const DEFAULT_MAX_HTL: u8 = 18;
/// Probability that a link decrements a request arriving at the maximum HTL.
pub const DEFAULT_DECREMENT_AT_MAX: f64 = 0.5;
/// The same with the max-HTL walk on ([`RoutingConfig::with_max_htl_walk`]):
/// it sets the walk's length, 1/p links on average (10), each carrying what
/// its upstream sent it, so a neighbour that sees a whole file's requests at
/// the maximum from one peer is looking at the downloader about 1 time in 10.
pub const WALK_DECREMENT_AT_MAX: f64 = 0.1;
/// Probability that a link ends a request arriving at HTL 1.
pub const DEFAULT_DECREMENT_AT_MIN: f64 = 0.25;
/// No caching while HTL is within this many hops of the maximum.
pub const DEFAULT_NO_CACHE_HTL_MARGIN: u8 = 2;
/// Whether a sink also hands an insert to its closest peer for a second stored copy.
pub const DEFAULT_SINK_SECOND_COPY: bool = true;
/// Peers one node routes among at most; further `PeerUp`s are ignored.
pub const DEFAULT_MAX_PEERS: usize = 256;
/// Requests (fetches and inserts) one node works on at once.
pub const DEFAULT_MAX_LIVE_REQUESTS: usize = 2048;
/// Requests one node works on at once for one peer; beyond, `Overloaded`.
/// As large as a node's fetch budget (`flow::MAX_WINDOW`), so a node with
/// one peer, and every relay of a chain behind it, is not refused for a
/// fetch's requests: a wide-area path needs about 1,000 blocks in flight to
/// fill its links. (At 512 against a window of 1,024, a fetch through a
/// chain lost blocks: refusals and shed replies past the link outbox ran
/// out its retries.) Half of `max_live_requests`, so one peer never has all
/// of a node's work; memory stays bounded by `max_live_requests`.
pub const DEFAULT_MAX_REQUESTS_PER_PEER: u32 = 1024;
/// Identical requests merged into one in flight at most.
pub const DEFAULT_MAX_WAITERS: usize = 16;
/// How long to wait for a peer to accept a request before trying the next.
pub const DEFAULT_ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an accepted request may take before this node gives up on it.
pub const DEFAULT_SEARCH_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest any request lives at one node, whatever its peers answer:
/// longer than one search, shorter than a few.
pub const DEFAULT_REQUEST_LIFETIME: Duration = Duration::from_secs(180);
/// Keys the failure table remembers at most (a few hundred KiB).
pub const DEFAULT_FAILURE_TABLE_KEYS: usize = 4096;
/// How long a peer's "not found" for a key steers requests for it elsewhere.
pub const DEFAULT_FAILURE_TTL: Duration = Duration::from_secs(10 * 60);
/// First back-off from a peer that was overloaded or did not answer.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Longest back-off; each further failure doubles it up to this.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(180);
/// Whether fetches at the maximum HTL walk (see [`RoutingConfig::max_htl_walk`]).
/// Why: a neighbour that knows a file's blocks sees the downloader send it
/// every request it routes its way at the maximum HTL; greedy routing spreads
/// a relayer's share over its peers, so the biggest share of a file is the
/// downloader's own link (the test of Levine et al., CCS 2020). On the walk
/// every link at the maximum carries everything its upstream sent it, so
/// the downloader's link is one of several identical ones (Crowds: Reiter
/// and Rubin, 1998). The cost is the walk's hops before greedy routing
/// (about 2.5x the hops and messages per fetch in the simulator), which is
/// why it is the operator's choice for now (`max_htl_walk` in the config).
pub const DEFAULT_MAX_HTL_WALK: bool = false;
/// Times per request, at each node, a "not found" that claims no hops are
/// left is doubted (the search goes on to the next peer with half the HTL)
/// when it comes from a peer that has not returned data here lately.
pub const DEFAULT_NOT_FOUND_DOUBTS: u8 = 1;

/// Every routing limit and timeout, with the design's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingConfig {
    pub max_htl: u8,
    pub decrement_at_max_probability: f64,
    pub decrement_at_min_probability: f64,
    pub no_cache_htl_margin: u8,
    pub sink_second_copy: bool,
    pub max_peers: usize,
    pub max_live_requests: usize,
    pub max_requests_per_peer: u32,
    pub max_waiters: usize,
    pub accept_timeout: Duration,
    pub search_timeout: Duration,
    pub request_lifetime: Duration,
    pub failure_table_keys: usize,
    pub failure_ttl: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// See [`DEFAULT_NOT_FOUND_DOUBTS`]; 0 believes every claim.
    #[serde(default = "default_not_found_doubts")]
    pub not_found_doubts: u8,
    /// Requests from peers this node carries at once at most, whatever their
    /// kind; beyond, `Overloaded`, so the upstream routes around this node.
    /// The driver derives it from the operator's bandwidth limit (see
    /// [`served_requests_for_bandwidth`]); `None` is no limit beyond the
    /// per-peer and table limits.
    #[serde(default)]
    pub max_served_requests: Option<usize>,
    /// Opennet rules; `None` is a friends-only node (no announcement, no folding).
    #[serde(default)]
    pub opennet: Option<OpennetConfig>,
    /// Fetches still at the maximum HTL follow a fixed random successor per
    /// upstream link instead of the peer closest to the key (a Crowds-style
    /// walk; see [`DEFAULT_MAX_HTL_WALK`]). `false` routes greedily from the
    /// first hop.
    #[serde(default = "default_max_htl_walk")]
    pub max_htl_walk: bool,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            max_htl: DEFAULT_MAX_HTL,
            decrement_at_max_probability: DEFAULT_DECREMENT_AT_MAX,
            decrement_at_min_probability: DEFAULT_DECREMENT_AT_MIN,
            no_cache_htl_margin: DEFAULT_NO_CACHE_HTL_MARGIN,
            sink_second_copy: DEFAULT_SINK_SECOND_COPY,
            max_peers: DEFAULT_MAX_PEERS,
            max_live_requests: DEFAULT_MAX_LIVE_REQUESTS,
            max_requests_per_peer: DEFAULT_MAX_REQUESTS_PER_PEER,
            max_waiters: DEFAULT_MAX_WAITERS,
            accept_timeout: DEFAULT_ACCEPT_TIMEOUT,
            search_timeout: DEFAULT_SEARCH_TIMEOUT,
            request_lifetime: DEFAULT_REQUEST_LIFETIME,
            failure_table_keys: DEFAULT_FAILURE_TABLE_KEYS,
            failure_ttl: DEFAULT_FAILURE_TTL,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            not_found_doubts: DEFAULT_NOT_FOUND_DOUBTS,
            max_served_requests: None,
            opennet: None,
            max_htl_walk: DEFAULT_MAX_HTL_WALK,
        }
    }
}

/// Seconds of traffic at the bandwidth limit the requests a node has accepted
/// may promise (Fred's "bandwidth liability" rule): each accepted request
/// may move about one block each way. Half the accept timeout, because a
/// link's outbox is one queue: an `Accepted` waits behind the blocks already
/// promised, and must still reach the upstream before it gives up.
pub const BANDWIDTH_LIABILITY: Duration = Duration::from_secs(5);

/// The [`RoutingConfig::max_served_requests`] that the slower direction of a
/// bandwidth limit (bytes per second) can carry: at least one.
pub fn served_requests_for_bandwidth(bytes_per_sec: u64) -> usize {
    let liability = bytes_per_sec.saturating_mul(BANDWIDTH_LIABILITY.as_secs());
    let per_request = warren_crypto::BLOCK_LEN as u64;
    usize::try_from(liability / per_request)
        .unwrap_or(usize::MAX)
        .max(1)
}

fn default_max_htl_walk() -> bool {
    DEFAULT_MAX_HTL_WALK
}

fn default_not_found_doubts() -> u8 {
    DEFAULT_NOT_FOUND_DOUBTS
}

impl RoutingConfig {
    /// These rules with the max-HTL walk on and its decrement probability
    /// ([`WALK_DECREMENT_AT_MAX`]).
    pub fn with_max_htl_walk(self) -> Self {
        RoutingConfig {
            max_htl_walk: true,
            decrement_at_max_probability: WALK_DECREMENT_AT_MAX,
            ..self
        }
    }

    /// Whether a node that received a request at `htl` may write it to its cache.
    pub fn may_cache(&self, htl: u8) -> bool {
        htl < self.max_htl.saturating_sub(self.no_cache_htl_margin)
    }
}

#[cfg(test)]
mod ssk_tests;
#[cfg(test)]
mod tests;
