//! The simulator's engine: many routing cores, one event queue, virtual time.
//!
//! Like quinn's test `Pair`, for N nodes: messages are queued with a virtual
//! latency, time jumps to the next event, and each node's one timer is armed at
//! its `poll_timeout`. Messages are handed over decoded (the wire format has
//! its own tests); blocks live once in a shared table, and each node's store
//! and cache hold keys into it, so 100,000 nodes fit in memory.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use warren_crypto::{ChkBlock, Location, NodePublicKey, NodeRef, RoutingKey, PROTOCOL_VERSION};

use crate::routing::{
    Action, Area, BlockLookup, ClientId, Event, FetchError, InsertError, Misbehaviour, Node,
    PeerId, PeerKind, RoutingConfig, Time,
};
use crate::wire::{Message, RequestId};

/// Node index inside one simulation; doubles as every node's `PeerId` for it.
pub type NodeIx = u32;

/// What an interceptor does with a message about to be sent.
#[derive(Debug)]
pub enum Intercept {
    Deliver,
    Drop,
    /// Drop it and have its recipient answer its sender with this instead.
    Answer(Message),
}

/// Sees every message before it is queued: tests use it to play attackers.
pub type Interceptor = Box<dyn FnMut(NodeIx, NodeIx, &Message) -> Intercept>;

/// How a local operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    Fetch(Result<RoutingKey, FetchError>),
    Insert(Result<(), InsertError>),
    /// The originating node went offline before the operation finished.
    Lost,
}

/// Message counters, reset with [`Net::reset_counters`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub messages: u64,
    /// Requests answered from a node's long-term store.
    pub found_in_store: u64,
    /// Requests answered from a node's cache (and not its store).
    pub found_in_cache: u64,
    pub dropped: u64,
    pub misbehaved: Vec<(NodeIx, NodeIx, Misbehaviour)>,
}

/// A node's datastore as keys into the shared block table.
#[derive(Debug, Default)]
struct MemStore {
    store: HashSet<RoutingKey>,
    cache: HashSet<RoutingKey>,
    /// Cache keys oldest first: evicted first when the cache is full.
    cache_order: VecDeque<RoutingKey>,
}

struct StoreView<'a> {
    keys: &'a MemStore,
    blocks: &'a HashMap<RoutingKey, ChkBlock>,
    /// Hits in the store and in the cache.
    hits: &'a [Cell<u64>; 2],
}

impl BlockLookup for StoreView<'_> {
    fn get(&self, key: &RoutingKey) -> Option<ChkBlock> {
        let area = if self.keys.store.contains(key) {
            0
        } else if self.keys.cache.contains(key) {
            1
        } else {
            return None;
        };
        self.hits[area].set(self.hits[area].get() + 1);
        self.blocks.get(key).cloned()
    }
}

#[derive(Debug)]
enum Pending {
    Deliver {
        from: NodeIx,
        to: NodeIx,
        epochs: (u32, u32),
        msg: Message,
    },
    Timer(NodeIx),
    Local(NodeIx, Event),
    Down(NodeIx),
    Up(NodeIx),
    /// A dial asked for by `Action::Connect` reaches its target.
    Link(NodeIx, NodeIx),
}

/// Port every simulated node "listens" on.
const SIM_PORT: u16 = 9470;
/// Filler for the identity bytes after the node index.
const SIM_IDENTITY_FILL: u8 = 0x5a;

/// The noderef a simulated node hands out: its index in the identity key and
/// a private address, so `Action::Connect` finds it again.
pub fn sim_noderef(x: NodeIx, location: Location) -> NodeRef {
    let mut identity = [SIM_IDENTITY_FILL; 32];
    identity[..4].copy_from_slice(&x.to_le_bytes());
    let [_, b, c, d] = x.to_be_bytes();
    NodeRef {
        identity: NodePublicKey(identity),
        location,
        address: std::net::SocketAddr::from(([10, b, c, d], SIM_PORT)),
        version: PROTOCOL_VERSION,
    }
}

/// The simulated node a noderef names, if it is one of `n`.
fn sim_index(noderef: &NodeRef, n: usize) -> Option<NodeIx> {
    let id = &noderef.identity.0;
    if id[4..].iter().any(|&b| b != SIM_IDENTITY_FILL) {
        return None;
    }
    let x = u32::from_le_bytes([id[0], id[1], id[2], id[3]]);
    ((x as usize) < n).then_some(x)
}

/// Queue entry ordered by (time, sequence) only.
#[derive(Debug)]
struct Entry(Time, u64, Pending);

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.0, self.1) == (other.0, other.1)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (self.0, self.1).cmp(&(other.0, other.1))
    }
}

/// The simulated network.
pub struct Net {
    config: RoutingConfig,
    nodes: Vec<Node>,
    stores: Vec<MemStore>,
    blocks: HashMap<RoutingKey, ChkBlock>,
    adjacency: Vec<Vec<NodeIx>>,
    online: Vec<bool>,
    epoch: Vec<u32>,
    cut: HashSet<(NodeIx, NodeIx)>,
    armed: Vec<Option<Time>>,
    queue: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    now: Time,
    rng: ChaCha8Rng,
    latency_ms: (u64, u64),
    cache_capacity: usize,
    /// Bytes per virtual millisecond each link direction carries.
    link_bytes_per_ms: Option<f64>,
    /// When each link direction has finished sending what it was given (ms).
    link_busy_until: HashMap<(NodeIx, NodeIx), f64>,
    next_client: u64,
    completions: HashMap<ClientId, Completion>,
    /// Local operations in flight, by the node running them.
    pending: HashMap<ClientId, NodeIx>,
    /// Fetches by the request id their originator chose, to count their hops.
    fetch_ids: HashMap<RequestId, ClientId>,
    hops: HashMap<ClientId, u32>,
    interceptor: Option<Interceptor>,
    counters: Counters,
    hits: [Cell<u64>; 2],
    /// Links made and dropped by the opennet since the last counter reset.
    links_made: u64,
    links_dropped: u64,
}

impl core::fmt::Debug for Net {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Net")
            .field("nodes", &self.nodes.len())
            .field("now", &self.now)
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

/// Latency and store size of a simulated network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetParams {
    pub seed: u64,
    /// Each message takes a uniformly random latency in this range (ms, inclusive).
    pub latency_ms: (u64, u64),
    /// Blocks each node's cache holds before evicting the oldest.
    pub cache_capacity: usize,
    /// Each direction of each link carries this many bytes a second, one
    /// message after another (a block takes `BLOCK_LEN / rate` to send);
    /// `None` is infinitely fast links.
    pub link_bytes_per_sec: Option<u64>,
}

impl Net {
    /// Builds the network with every link up at time zero.
    pub fn new(
        config: RoutingConfig,
        locations: &[Location],
        adjacency: Vec<Vec<NodeIx>>,
        params: NetParams,
    ) -> Self {
        let n = locations.len();
        let mut net = Net {
            nodes: locations
                .iter()
                .map(|&l| Node::new(config.clone(), l))
                .collect(),
            config,
            stores: (0..n).map(|_| MemStore::default()).collect(),
            blocks: HashMap::new(),
            adjacency,
            online: vec![true; n],
            epoch: vec![0; n],
            cut: HashSet::new(),
            armed: vec![None; n],
            queue: BinaryHeap::new(),
            seq: 0,
            now: Time::ZERO,
            rng: ChaCha8Rng::seed_from_u64(params.seed),
            latency_ms: params.latency_ms,
            cache_capacity: params.cache_capacity,
            link_bytes_per_ms: params
                .link_bytes_per_sec
                .map(|rate| rate.max(1) as f64 / 1000.0),
            link_busy_until: HashMap::new(),
            next_client: 0,
            completions: HashMap::new(),
            pending: HashMap::new(),
            fetch_ids: HashMap::new(),
            hops: HashMap::new(),
            interceptor: None,
            counters: Counters::default(),
            hits: [Cell::new(0), Cell::new(0)],
            links_made: 0,
            links_dropped: 0,
        };
        for x in 0..n as NodeIx {
            net.set_noderef(x);
            net.connect_all(x);
        }
        net
    }

    /// Gives an opennet node its noderef (nothing for friends-only ones).
    fn set_noderef(&mut self, x: NodeIx) {
        let node = &mut self.nodes[x as usize];
        if node.config().opennet.is_some() {
            let own = sim_noderef(x, node.location());
            node.set_noderef(own);
        }
    }

    /// Links made and dropped by opennet decisions since the last reset.
    pub fn link_churn(&self) -> (u64, u64) {
        (self.links_made, self.links_dropped)
    }

    /// Links newcomer `x` to `seed` at once, a seed link at both ends.
    pub fn link_seed(&mut self, x: NodeIx, seed: NodeIx) {
        self.make_link(x, seed, PeerKind::Seed);
    }

    /// Closes the link between `x` and `seed`, if any.
    pub fn unlink_seed(&mut self, x: NodeIx, seed: NodeIx) {
        if self.unlink(x, seed) {
            self.peer_down_pair(x, seed);
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn now(&self) -> Time {
        self.now
    }

    pub fn node(&self, x: NodeIx) -> &Node {
        &self.nodes[x as usize]
    }

    pub fn is_online(&self, x: NodeIx) -> bool {
        self.online[x as usize]
    }

    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    pub fn counters(&self) -> Counters {
        let mut counters = self.counters.clone();
        counters.found_in_store = self.hits[0].get();
        counters.found_in_cache = self.hits[1].get();
        counters
    }

    pub fn reset_counters(&mut self) {
        self.links_made = 0;
        self.links_dropped = 0;
        self.counters = Counters::default();
        self.hits = [Cell::new(0), Cell::new(0)];
    }

    /// Replaces one node's routing configuration (its routing state starts afresh).
    pub fn set_node_config(&mut self, x: NodeIx, config: RoutingConfig) {
        let location = self.nodes[x as usize].location();
        self.nodes[x as usize] = Node::new(config, location);
        self.set_noderef(x);
        self.connect_all(x);
    }

    pub fn set_interceptor(&mut self, interceptor: Interceptor) {
        self.interceptor = Some(interceptor);
    }

    /// Whether `x` holds `key` in its store (`Area::Store`) or cache.
    pub fn holds(&self, x: NodeIx, key: &RoutingKey, area: Area) -> bool {
        let store = &self.stores[x as usize];
        match area {
            Area::Store => store.store.contains(key),
            Area::Cache => store.cache.contains(key),
        }
    }

    /// How many nodes hold each key in their long-term store.
    pub fn store_copies(&self) -> HashMap<RoutingKey, usize> {
        let mut copies = HashMap::new();
        for key in self.stores.iter().flat_map(|s| &s.store) {
            *copies.entry(*key).or_insert(0) += 1;
        }
        copies
    }

    pub fn completion(&self, client: ClientId) -> Option<&Completion> {
        self.completions.get(&client)
    }

    /// Links the block crossed to reach a successful fetch's originator.
    pub fn hops(&self, client: ClientId) -> u32 {
        self.hops.get(&client).copied().unwrap_or(0)
    }

    /// Starts a local insert at `x` at time `at`.
    pub fn insert(&mut self, at: Time, x: NodeIx, block: ChkBlock) -> ClientId {
        let client = self.client();
        self.schedule(at, Pending::Local(x, Event::Insert { client, block }));
        client
    }

    /// Starts a local fetch at `x` at time `at`.
    pub fn fetch(&mut self, at: Time, x: NodeIx, key: RoutingKey) -> ClientId {
        let client = self.client();
        self.schedule(at, Pending::Local(x, Event::Fetch { client, key }));
        client
    }

    /// Takes `x` off the network at `at`: its links drop, its routing state is
    /// lost, its store survives.
    pub fn take_down(&mut self, at: Time, x: NodeIx) {
        self.schedule(at, Pending::Down(x));
    }

    /// Brings `x` back at `at`, reconnecting to its online neighbours.
    pub fn bring_up(&mut self, at: Time, x: NodeIx) {
        self.schedule(at, Pending::Up(x));
    }

    /// Runs events until the queue is empty or `max_events` ran; returns how many ran.
    pub fn run(&mut self, max_events: u64) -> u64 {
        let mut ran = 0;
        while ran < max_events {
            let Some(Reverse(Entry(at, _, pending))) = self.queue.pop() else {
                break;
            };
            self.now = self.now.max(at);
            self.dispatch(pending);
            ran += 1;
        }
        ran
    }

    /// Runs every event due at the earliest time queued; `false` if none is.
    pub fn step(&mut self) -> bool {
        let Some(Reverse(Entry(at, _, _))) = self.queue.peek() else {
            return false;
        };
        let at = *at;
        self.run_until(at, super::MAX_EVENTS);
        true
    }

    /// Runs events due at or before `until`, then moves the clock to `until`.
    pub fn run_until(&mut self, until: Time, max_events: u64) -> u64 {
        let mut ran = 0;
        while ran < max_events {
            match self.queue.peek() {
                Some(Reverse(Entry(at, _, _))) if *at <= until => {}
                _ => break,
            }
            let Some(Reverse(Entry(at, _, pending))) = self.queue.pop() else {
                break;
            };
            self.now = self.now.max(at);
            self.dispatch(pending);
            ran += 1;
        }
        self.now = self.now.max(until);
        ran
    }

    fn client(&mut self) -> ClientId {
        self.next_client += 1;
        ClientId(self.next_client)
    }

    fn schedule(&mut self, at: Time, pending: Pending) {
        self.seq += 1;
        self.queue.push(Reverse(Entry(at, self.seq, pending)));
    }

    fn dispatch(&mut self, pending: Pending) {
        match pending {
            Pending::Deliver {
                from,
                to,
                epochs,
                msg,
            } => {
                let alive = self.online[to as usize]
                    && epochs == (self.epoch[from as usize], self.epoch[to as usize])
                    && !self.cut.contains(&(from, to));
                if !alive {
                    self.counters.dropped += 1;
                    return;
                }
                if let Message::DataFound { id, .. } = &msg {
                    if let Some(client) = self.fetch_ids.get(id) {
                        *self.hops.entry(*client).or_insert(0) += 1;
                    }
                }
                let from = PeerId(u64::from(from));
                self.handle(to, Event::Message { from, msg });
            }
            Pending::Timer(x) => {
                if self.armed[x as usize] == Some(self.now) {
                    self.armed[x as usize] = None;
                    self.nodes[x as usize].handle_timeout(self.now, &mut self.rng);
                    self.drain(x);
                }
            }
            Pending::Local(x, event) => self.local(x, event),
            Pending::Down(x) => self.down(x),
            Pending::Up(x) => self.up(x),
            Pending::Link(x, y) => self.make_link(x, y, PeerKind::Opennet),
        }
    }

    fn local(&mut self, x: NodeIx, event: Event) {
        if self.online[x as usize] {
            let fetch = match &event {
                Event::Fetch { client, .. } => Some(*client),
                _ => None,
            };
            if let Event::Fetch { client, .. } | Event::Insert { client, .. } = &event {
                self.pending.insert(*client, x);
            }
            self.handle_inner(x, event);
            match fetch {
                // Learn the id the originator chose from its first send.
                Some(client) => self.drain_tracking(x, client),
                None => self.drain(x),
            }
        } else {
            let done = match event {
                Event::Fetch { .. } => Completion::Fetch(Err(FetchError::RouteNotFound)),
                _ => Completion::Insert(Err(InsertError::RouteNotFound)),
            };
            if let Event::Fetch { client, .. } | Event::Insert { client, .. } = event {
                self.completions.insert(client, done);
            }
        }
    }

    fn handle(&mut self, x: NodeIx, event: Event) {
        self.handle_inner(x, event);
        self.drain(x);
    }

    fn handle_inner(&mut self, x: NodeIx, event: Event) {
        let view = StoreView {
            keys: &self.stores[x as usize],
            blocks: &self.blocks,
            hits: &self.hits,
        };
        self.nodes[x as usize].handle(self.now, &mut self.rng, &view, event);
    }

    fn drain_tracking(&mut self, x: NodeIx, client: ClientId) {
        while let Some(action) = self.nodes[x as usize].poll_action() {
            if let Action::Send {
                msg: Message::Request { id, .. },
                ..
            } = &action
            {
                self.fetch_ids.insert(*id, client);
            }
            self.act(x, action);
        }
        self.arm(x);
    }

    fn drain(&mut self, x: NodeIx) {
        while let Some(action) = self.nodes[x as usize].poll_action() {
            self.act(x, action);
        }
        self.arm(x);
    }

    fn arm(&mut self, x: NodeIx) {
        if let Some(at) = self.nodes[x as usize].poll_timeout() {
            // A deadline already past fires now.
            let at = at.max(self.now);
            let armed = &mut self.armed[x as usize];
            if armed.is_none_or(|t| at < t) {
                *armed = Some(at);
                self.schedule(at, Pending::Timer(x));
            }
        }
    }

    fn act(&mut self, x: NodeIx, action: Action) {
        match action {
            Action::Send { to, msg } => self.send(x, to.0 as NodeIx, msg),
            Action::Store { area, block } => self.store(x, area, block),
            Action::FetchDone { client, result } => {
                let result = result.map(|b| b.routing_key());
                self.pending.remove(&client);
                self.completions.insert(client, Completion::Fetch(result));
            }
            Action::InsertDone { client, result } => {
                self.pending.remove(&client);
                self.completions.insert(client, Completion::Insert(result));
            }
            // The simulator carries CHK traffic only: it issues no SSK
            // events, so these never come, and its stores keep no SSK blocks.
            Action::StoreSsk { .. }
            | Action::SskFetchDone { .. }
            | Action::SskInsertDone { .. } => {}
            Action::Misbehaved { peer, reason } => {
                let peer = peer.0 as NodeIx;
                self.counters.misbehaved.push((x, peer, reason));
                // Like the driver: disconnect the offender.
                self.cut.insert((x, peer));
                self.cut.insert((peer, x));
                self.peer_down_pair(x, peer);
            }
            Action::Connect { noderef, .. } => {
                if let Some(y) = sim_index(&noderef, self.nodes.len()) {
                    // Like a dial: it takes one message latency.
                    let (lo, hi) = self.latency_ms;
                    let at = Time(self.now.0 + self.rng.gen_range(lo..=hi.max(lo)));
                    self.schedule(at, Pending::Link(x, y));
                }
            }
            Action::Disconnect { peer } => {
                let y = peer.0 as NodeIx;
                if self.unlink(x, y) {
                    self.links_dropped += 1;
                    self.peer_down_pair(x, y);
                }
            }
        }
    }

    /// Links `x` and `y` if both are up, distinct and not linked already.
    fn make_link(&mut self, x: NodeIx, y: NodeIx, kind: PeerKind) {
        let (xi, yi) = (x as usize, y as usize);
        if x == y
            || !self.online[xi]
            || !self.online[yi]
            || self.cut.contains(&(x, y))
            || self.adjacency[xi].contains(&y)
        {
            return;
        }
        self.adjacency[xi].push(y);
        self.adjacency[yi].push(x);
        self.links_made += 1;
        for (a, b) in [(x, y), (y, x)] {
            let location = self.nodes[b as usize].location();
            let peer = PeerId(u64::from(b));
            self.handle(
                a,
                Event::PeerUp {
                    peer,
                    location,
                    kind,
                },
            );
        }
    }

    /// Removes the link between `x` and `y`; whether there was one.
    fn unlink(&mut self, x: NodeIx, y: NodeIx) -> bool {
        let before = self.adjacency[x as usize].len();
        self.adjacency[x as usize].retain(|&z| z != y);
        self.adjacency[y as usize].retain(|&z| z != x);
        before != self.adjacency[x as usize].len()
    }

    fn send(&mut self, from: NodeIx, to: NodeIx, msg: Message) {
        if !self.online[to as usize] || self.cut.contains(&(from, to)) {
            self.counters.dropped += 1;
            return;
        }
        let verdict = match self.interceptor.as_mut() {
            Some(f) => f(from, to, &msg),
            None => Intercept::Deliver,
        };
        let (from, to, msg) = match verdict {
            Intercept::Deliver => (from, to, msg),
            Intercept::Drop => return,
            Intercept::Answer(reply) => (to, from, reply),
        };
        self.counters.messages += 1;
        let (lo, hi) = self.latency_ms;
        let delay = self.rng.gen_range(lo..=hi.max(lo));
        let epochs = (self.epoch[from as usize], self.epoch[to as usize]);
        let sent = match self.link_bytes_per_ms {
            // A link sends one message after another: this one starts when
            // the one before has left, and takes its size over the rate.
            Some(rate) => {
                let busy = self.link_busy_until.entry((from, to)).or_insert(0.0);
                let done = busy.max(self.now.0 as f64) + message_len(&msg) as f64 / rate;
                *busy = done;
                done.ceil() as u64
            }
            None => self.now.0,
        };
        let at = Time(sent + delay);
        self.schedule(
            at,
            Pending::Deliver {
                from,
                to,
                epochs,
                msg,
            },
        );
    }

    fn store(&mut self, x: NodeIx, area: Area, block: ChkBlock) {
        let key = block.routing_key();
        self.blocks.entry(key).or_insert(block);
        let store = &mut self.stores[x as usize];
        match area {
            Area::Store => {
                store.store.insert(key);
            }
            Area::Cache => {
                if store.cache.insert(key) {
                    store.cache_order.push_back(key);
                    if store.cache_order.len() > self.cache_capacity {
                        if let Some(old) = store.cache_order.pop_front() {
                            store.cache.remove(&old);
                        }
                    }
                }
            }
        }
    }

    fn connect_all(&mut self, x: NodeIx) {
        for i in 0..self.adjacency[x as usize].len() {
            let y = self.adjacency[x as usize][i];
            if self.online[y as usize] && !self.cut.contains(&(x, y)) {
                let location = self.nodes[y as usize].location();
                let peer = PeerId(u64::from(y));
                let kind = PeerKind::Opennet;
                self.handle(
                    x,
                    Event::PeerUp {
                        peer,
                        location,
                        kind,
                    },
                );
            }
        }
    }

    fn peer_down_pair(&mut self, x: NodeIx, y: NodeIx) {
        self.handle(
            x,
            Event::PeerDown {
                peer: PeerId(u64::from(y)),
            },
        );
        if self.online[y as usize] {
            self.handle(
                y,
                Event::PeerDown {
                    peer: PeerId(u64::from(x)),
                },
            );
        }
    }

    fn down(&mut self, x: NodeIx) {
        if !self.online[x as usize] {
            return;
        }
        self.online[x as usize] = false;
        self.epoch[x as usize] += 1;
        let location = self.nodes[x as usize].location();
        self.nodes[x as usize] = Node::new(self.config.clone(), location);
        self.set_noderef(x);
        self.armed[x as usize] = None;
        let completions = &mut self.completions;
        self.pending.retain(|client, at| {
            let lost = *at == x;
            if lost {
                completions.insert(*client, Completion::Lost);
            }
            !lost
        });
        for i in 0..self.adjacency[x as usize].len() {
            let y = self.adjacency[x as usize][i];
            if self.online[y as usize] {
                self.handle(
                    y,
                    Event::PeerDown {
                        peer: PeerId(u64::from(x)),
                    },
                );
            }
        }
    }

    fn up(&mut self, x: NodeIx) {
        if self.online[x as usize] {
            return;
        }
        self.online[x as usize] = true;
        self.connect_all(x);
        let location = self.nodes[x as usize].location();
        for i in 0..self.adjacency[x as usize].len() {
            let y = self.adjacency[x as usize][i];
            if self.online[y as usize] && !self.cut.contains(&(y, x)) {
                let peer = PeerId(u64::from(x));
                let kind = PeerKind::Opennet;
                self.handle(
                    y,
                    Event::PeerUp {
                        peer,
                        location,
                        kind,
                    },
                );
            }
        }
    }

    /// Delivers `msg` from `from` to `to` at `at`, as if `from` had sent it
    /// (attackers that speak on their own, not only in answer).
    pub fn inject(&mut self, at: Time, from: NodeIx, to: NodeIx, msg: Message) {
        let epochs = (self.epoch[from as usize], self.epoch[to as usize]);
        self.schedule(
            at,
            Pending::Deliver {
                from,
                to,
                epochs,
                msg,
            },
        );
    }

    /// Draws every node's HTL coins afresh (see `Node::redraw_htl_coins`).
    pub fn redraw_htl_coins(&mut self) {
        for node in &mut self.nodes {
            node.redraw_htl_coins(&mut self.rng);
        }
    }

    /// Block table size, for reports.
    pub fn distinct_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The routing config nodes start with.
    pub fn config(&self) -> &RoutingConfig {
        &self.config
    }

    /// Sum of a statistic over all nodes.
    pub fn sum_stats(&self, f: impl Fn(&crate::routing::NodeStats) -> u64) -> u64 {
        self.nodes.iter().map(|n| f(n.stats())).sum()
    }

    /// Every opennet counter summed over all nodes.
    pub fn opennet_totals(&self) -> crate::routing::OpennetStats {
        let mut total = crate::routing::OpennetStats::default();
        for node in &self.nodes {
            total.add(node.opennet_stats());
        }
        total
    }

    /// Sum of an opennet statistic over all nodes.
    pub fn sum_stats_opennet(&self, f: impl Fn(&crate::routing::OpennetStats) -> u64) -> u64 {
        self.nodes.iter().map(|n| f(n.opennet_stats())).sum()
    }

    /// Requests still live anywhere (zero once everything has settled).
    pub fn live_requests(&self) -> usize {
        self.nodes.iter().map(Node::live_requests).sum()
    }

    /// Neighbours of `x` in the topology (whether up or not).
    pub fn neighbours(&self, x: NodeIx) -> &[NodeIx] {
        &self.adjacency[x as usize]
    }
}

/// Bytes a message takes on a link: a block, or a small control message
/// (the wire pads every control message to one frame size).
fn message_len(msg: &Message) -> usize {
    match msg {
        Message::DataFound { block, .. }
        | Message::InsertData { block, .. }
        | Message::SskInsert { block, .. }
        | Message::SskCollision { block, .. } => block.len() + 32,
        _ => crate::link::PAD_CONTROL,
    }
}
