//! The node's event loop: one task owning the routing core.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng as _;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use warren_crypto::{ChkBlock, NodeIdentity, NodePublicKey, NodeRef, RoutingKey, SskBlock};
use warren_store::BlockStore;

use super::admission::{AdmissionConfig, DialLimiter, LinkCounts, Origin, Refusal};
use super::peers::{Admit, PeerTable};
use super::store_writer::StoreWriter;
use super::{
    Command, LinkTotals, LocalRequests, NodeConfig, NodeStatus, PeerStatus, RequestError,
    FLUSH_INTERVAL, LINK_EVENT_QUEUE, MAX_SEEDS, NEW_LINK_QUEUE, SEEDS_FILE, SEED_CHECK_INTERVAL,
};
use crate::link::bandwidth::Direction;
use crate::link::{self, Backoff, Link, LinkConfig, LinkEvent, LinkSendError, Listener};
use crate::routing::{
    self, Action, Area, BlockLookup, ClientId, ConnectReason, Event, PeerId, PeerKind, Time,
};
use crate::wire;

/// How long closing the links may take at shutdown.
const LINK_CLOSE_DEADLINE: Duration = Duration::from_secs(3);
/// A link that lived at least this long was stable: redial its peer at once.
/// One that died sooner counts as a flap, and redials back off.
const STABLE_LINK: Duration = Duration::from_secs(30);

/// What `Driver::new` needs.
pub(super) struct Parts {
    pub(super) config: NodeConfig,
    pub(super) identity: Arc<NodeIdentity>,
    pub(super) noderef: NodeRef,
    pub(super) shared_noderef: super::SharedNodeRef,
    pub(super) listener: Listener,
    pub(super) store: Arc<dyn BlockStore>,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) cancel: CancellationToken,
    pub(super) writer: StoreWriter,
}

/// A link whose handshake is done, from a dialer or the listener.
struct NewLink {
    link: Link,
    outbound: bool,
}

/// The core reads the store through this: the writes still queued for the
/// disk first, then the store.
struct StoreLookup<'a>(&'a dyn BlockStore, &'a StoreWriter);

impl BlockLookup for StoreLookup<'_> {
    fn get(&self, key: &RoutingKey) -> Option<ChkBlock> {
        if let Some(block) = self.1.pending().get(key) {
            return Some(block);
        }
        match self.0.get(key) {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(%err, "store read failed; treating the block as absent");
                None
            }
        }
    }

    fn get_ssk(&self, key: &RoutingKey) -> Option<SskBlock> {
        if let Some(block) = self.1.pending().get_ssk(key) {
            return Some(block);
        }
        match self.0.get_ssk(key) {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(%err, "store read failed; treating the SSK block as absent");
                None
            }
        }
    }
}

pub(super) struct Driver {
    core: routing::Node,
    rng: StdRng,
    epoch: Instant,
    store: Arc<dyn BlockStore>,
    listener: Listener,
    commands: mpsc::Receiver<Command>,
    link_events_tx: mpsc::Sender<LinkEvent>,
    link_events: mpsc::Receiver<LinkEvent>,
    new_links_tx: mpsc::Sender<NewLink>,
    new_links: mpsc::Receiver<NewLink>,
    peers: PeerTable,
    dialers: HashMap<NodePublicKey, AbortOnDropHandle<()>>,
    /// Per peer: when its current link came up, and how many links in a row died young.
    flaps: HashMap<NodePublicKey, (Instant, u32)>,
    fetches: HashMap<ClientId, oneshot::Sender<Result<ChkBlock, RequestError>>>,
    inserts: HashMap<ClientId, oneshot::Sender<Result<(), RequestError>>>,
    ssk_fetches: HashMap<ClientId, oneshot::Sender<Result<SskBlock, RequestError>>>,
    next_client: u64,
    identity: Arc<NodeIdentity>,
    noderef: NodeRef,
    /// The node handle's copy, kept in step with `noderef`.
    shared_noderef: super::SharedNodeRef,
    /// `--advertise` was given: the address is not learnt.
    advertise_fixed: bool,
    link_config: LinkConfig,
    /// Bytes queued for sending beyond which the node takes on no new
    /// requests: what the outbound limit carries in the bandwidth liability.
    send_backlog_limit: Option<u64>,
    initial_peers: Vec<NodeRef>,
    /// Configured peers: reserved slots, never dropped by the opennet.
    friends: HashSet<NodePublicKey>,
    admission: AdmissionConfig,
    counts: LinkCounts,
    /// Per live link: the address and origin it was admitted with.
    origins: HashMap<PeerId, (IpAddr, Origin)>,
    dial_limiter: DialLimiter,
    opennet_dialers: HashMap<NodePublicKey, AbortOnDropHandle<()>>,
    /// Seeds from the config and `seednodes.txt`; their links are `PeerKind::Seed`.
    seeds: Vec<NodeRef>,
    flag_seeds: Vec<NodeRef>,
    seeds_file: std::path::PathBuf,
    /// When the node last had enough peers with seed links still up.
    enough_since: Option<Instant>,
    cancel: CancellationToken,
    totals: LinkTotals,
    /// Opennet dials that failed (counted by the dialling tasks).
    dials_failed: Arc<std::sync::atomic::AtomicU64>,
    local: LocalRequests,
    /// Store flushes completed (shared with the flushing thread).
    flushes: Arc<std::sync::atomic::AtomicU64>,
    /// Block writes, off the loop.
    writer: StoreWriter,
}

impl Driver {
    pub(super) fn new(parts: Parts) -> Self {
        let (link_events_tx, link_events) = mpsc::channel(LINK_EVENT_QUEUE);
        let (new_links_tx, new_links) = mpsc::channel(NEW_LINK_QUEUE);
        let peers = PeerTable::new(parts.noderef.identity, &parts.config.data_dir);
        let mut initial_peers = parts.config.peers.clone();
        initial_peers.extend(peers.load_saved());
        let friends = parts.config.peers.iter().map(|p| p.identity).collect();
        let mut core = routing::Node::new(parts.config.routing.clone(), parts.config.location);
        if parts.config.routing.opennet.is_some() {
            core.set_noderef(parts.noderef.clone());
        }
        Driver {
            core,
            rng: StdRng::from_entropy(),
            epoch: Instant::now(),
            store: parts.store,
            listener: parts.listener,
            commands: parts.commands,
            link_events_tx,
            link_events,
            new_links_tx,
            new_links,
            peers,
            dialers: HashMap::new(),
            flaps: HashMap::new(),
            fetches: HashMap::new(),
            inserts: HashMap::new(),
            ssk_fetches: HashMap::new(),
            next_client: 0,
            identity: parts.identity,
            noderef: parts.noderef,
            shared_noderef: parts.shared_noderef,
            advertise_fixed: parts.config.advertise.is_some(),
            send_backlog_limit: parts
                .config
                .link
                .bandwidth
                .rate(Direction::Out)
                .map(|rate| rate.saturating_mul(routing::BANDWIDTH_LIABILITY.as_secs())),
            link_config: parts.config.link,
            initial_peers,
            friends,
            admission: AdmissionConfig::new(parts.config.routing.max_peers),
            counts: LinkCounts::default(),
            origins: HashMap::new(),
            dial_limiter: DialLimiter::default(),
            opennet_dialers: HashMap::new(),
            seeds: Vec::new(),
            flag_seeds: parts.config.seeds.clone(),
            seeds_file: parts.config.data_dir.join(SEEDS_FILE),
            enough_since: None,
            cancel: parts.cancel,
            totals: LinkTotals::default(),
            dials_failed: Arc::default(),
            local: LocalRequests::default(),
            flushes: Arc::default(),
            writer: parts.writer,
        }
    }

    fn now(&self) -> Time {
        Time(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Runs until cancelled, then closes every link.
    pub(super) async fn run(mut self) {
        for peer in std::mem::take(&mut self.initial_peers) {
            self.peers.remember(peer.clone());
            self.dial(peer);
        }
        let mut seed_tick = tokio::time::interval(SEED_CHECK_INTERVAL);
        seed_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut flush_tick = tokio::time::interval(FLUSH_INTERVAL);
        flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut flushing: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let deadline = self
                .core
                .poll_timeout()
                .map(|t| self.epoch + Duration::from_millis(t.0));
            // Biased: cancellation first, then local work (timers, clients),
            // then remote work, so a busy network cannot starve our own users.
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                () = sleep_until(deadline) => {
                    let now = self.now();
                    self.core.handle_timeout(now, &mut self.rng);
                }
                Some(command) = self.commands.recv() => self.on_command(command),
                Some(event) = self.link_events.recv() => self.on_link_event(event),
                Some(new) = self.new_links.recv() => self.on_new_link(new),
                Some(link) = self.listener.accept() => self.on_new_link(NewLink { link, outbound: false }),
                _ = flush_tick.tick() => self.flush_in_background(&mut flushing),
                _ = seed_tick.tick() => {
                    self.check_seeds();
                    self.learn_address();
                }
            }
            self.drain_actions();
        }
        self.close_all().await;
        self.writer.finish().await;
    }

    /// Makes every write so far durable (the store's "acknowledged" point),
    /// on a blocking thread so fsync never stalls routing; one at a time.
    fn flush_in_background(&self, flushing: &mut Option<tokio::task::JoinHandle<()>>) {
        if flushing.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let store = self.store.clone();
        let flushes = self.flushes.clone();
        *flushing = Some(tokio::task::spawn_blocking(move || match store.flush() {
            Ok(()) => {
                flushes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(err) => tracing::warn!(%err, "flushing the store failed; will retry"),
        }));
    }

    fn feed(&mut self, event: Event) {
        let now = self.now();
        let lookup = StoreLookup(self.store.as_ref(), &self.writer);
        self.core.handle(now, &mut self.rng, &lookup, event);
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Fetch { key, reply } => {
                let client = self.next_client_id();
                self.fetches.insert(client, reply);
                self.feed(Event::Fetch { client, key });
            }
            Command::Insert { block, reply } => {
                let client = self.next_client_id();
                self.inserts.insert(client, reply);
                self.feed(Event::Insert { client, block });
            }
            Command::FetchSsk { key, reply } => {
                let client = self.next_client_id();
                self.ssk_fetches.insert(client, reply);
                self.feed(Event::FetchSsk { client, key });
            }
            Command::InsertSsk { block, reply } => {
                let client = self.next_client_id();
                self.inserts.insert(client, reply);
                self.feed(Event::InsertSsk { client, block });
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
        }
    }

    fn next_client_id(&mut self) -> ClientId {
        self.next_client += 1;
        ClientId(self.next_client)
    }

    fn on_link_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Received { peer, payload, .. } => {
                let Some(from) = self.peers.id_of(&peer) else {
                    return;
                };
                self.totals.bytes_received += payload.len() as u64;
                if let Some(limit) = self.send_backlog_limit {
                    let queued = self.link_config.outbox_budget.queued();
                    self.core.set_backlogged(queued > limit);
                }
                match wire::decode(&payload) {
                    Ok(msg) => self.feed(Event::Message { from, msg }),
                    Err(err) => {
                        // Authenticated garbage: the peer is broken or hostile.
                        tracing::info!(peer = ?peer, %err, "peer sent an undecodable message; disconnecting");
                        self.totals.bad_messages += 1;
                        self.disconnect(from);
                    }
                }
            }
            LinkEvent::Closed { peer, link, reason } => {
                if let Some(id) = self.peers.closed(&peer, link) {
                    tracing::info!(peer = ?peer, %reason, "link closed");
                    if let Some((ip, origin)) = self.origins.remove(&id) {
                        self.counts.remove(ip, origin);
                    }
                    self.feed(Event::PeerDown { peer: id });
                    let flaps = match self.flaps.get(&peer) {
                        Some(&(up, count)) if up.elapsed() < STABLE_LINK => count + 1,
                        _ => 0,
                    };
                    if let Some(noderef) = self.peers.known(&peer).cloned() {
                        self.flaps.insert(peer, (Instant::now(), flaps));
                        self.dial_after(noderef, flaps);
                    } else {
                        self.flaps.remove(&peer);
                    }
                }
            }
        }
    }

    fn on_new_link(&mut self, new: NewLink) {
        let peer = new.link.peer().clone();
        if peer.identity == self.noderef.identity {
            return;
        }
        let admit = self.peers.admit(&peer, new.outbound);
        let origin = if self.friends.contains(&peer.identity) {
            Origin::Friend
        } else if new.outbound {
            Origin::Chosen
        } else {
            Origin::Stranger
        };
        let ip = peer.address.ip();
        if admit == Admit::New {
            // Direction-aware: strangers dialling in get a bounded share, so
            // they can never block links to friends or peers we chose.
            if let Err(why) = self.counts.check(&self.admission, ip, origin) {
                tracing::info!(peer = ?peer.identity, %ip, ?origin, %why, "link refused");
                let refused = &mut self.totals.refused;
                *match why {
                    Refusal::StrangersFull => &mut refused.stranger_slots_full,
                    Refusal::PerIp => &mut refused.per_ip,
                    Refusal::PerSubnet => &mut refused.per_subnet,
                    _ => &mut refused.slots_full,
                } += 1;
                return;
            }
        }
        if admit == Admit::Reject {
            tracing::debug!(peer = ?peer.identity, "duplicate link dropped");
            self.totals.refused.duplicate += 1;
            return;
        }
        self.dialers.remove(&peer.identity);
        let handle = new.link.spawn(self.link_events_tx.clone());
        let id = self.peers.insert(handle, new.outbound);
        if admit == Admit::New {
            self.counts.add(ip, origin);
            self.origins.insert(id, (ip, origin));
        }
        let flaps = self
            .flaps
            .get(&peer.identity)
            .map_or(0, |&(_, count)| count);
        self.flaps.insert(peer.identity, (Instant::now(), flaps));
        if admit == Admit::New {
            if new.outbound {
                self.totals.opened_outbound += 1;
            } else {
                self.totals.opened_inbound += 1;
            }
            tracing::info!(peer = ?peer.identity, location = %peer.location, address = %peer.address, "link up");
            let kind = if self.friends.contains(&peer.identity) {
                PeerKind::Friend
            } else if self.seeds.iter().any(|s| s.identity == peer.identity) {
                PeerKind::Seed
            } else {
                PeerKind::Opennet
            };
            self.feed(Event::PeerUp {
                peer: id,
                location: peer.location,
                kind,
            });
        }
    }

    /// Keeps dialling `peer` with backoff until a link to it is up.
    fn dial(&mut self, peer: NodeRef) {
        self.dial_after(peer, 0);
    }

    /// Like `dial`, first waiting out the backoff for `flaps` links in a row
    /// that died young, so a peer that keeps dropping us is not hammered.
    fn dial_after(&mut self, peer: NodeRef, flaps: u32) {
        if peer.identity == self.noderef.identity
            || self.peers.is_connected(&peer.identity)
            || self.dialers.contains_key(&peer.identity)
        {
            return;
        }
        let (identity, local, config) = (
            self.identity.clone(),
            self.noderef.clone(),
            self.link_config.clone(),
        );
        let (links, cancel) = (self.new_links_tx.clone(), self.cancel.child_token());
        let key = peer.identity;
        let wait = Backoff::default().delay(flaps, &mut self.rng);
        let task = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let attempt = link::connect_with_backoff(
                identity,
                local,
                &peer,
                &config,
                Backoff::default(),
                u32::MAX,
                &cancel,
            );
            match attempt.await {
                Some(Ok(link)) => {
                    let _ = links
                        .send(NewLink {
                            link,
                            outbound: true,
                        })
                        .await;
                }
                Some(Err(err)) => {
                    tracing::warn!(peer = ?peer.identity, %err, "giving up dialling peer");
                }
                None => {}
            }
        });
        self.dialers.insert(key, AbortOnDropHandle::new(task));
    }

    /// Dials a noderef the routing core learnt from the network (one attempt,
    /// rate-limited per address, a bounded number at once).
    /// `limited`: the noderef came from the network, so the per-address rate
    /// limit applies; seeds the user configured are retried every seed check.
    fn opennet_dial(&mut self, peer: NodeRef, reason: ConnectReason, limited: bool) {
        if peer.identity == self.noderef.identity
            || self.peers.is_connected(&peer.identity)
            || self.dialers.contains_key(&peer.identity)
            || self.opennet_dialers.contains_key(&peer.identity)
        {
            return;
        }
        self.opennet_dialers.retain(|_, task| !task.is_finished());
        let in_flight = self.opennet_dialers.len();
        if limited
            && !self
                .dial_limiter
                .allow(peer.address, Instant::now(), in_flight)
        {
            tracing::debug!(peer = ?peer.identity, address = %peer.address, ?reason, "opennet dial refused by the rate limit");
            return;
        }
        let (identity, local, config) = (
            self.identity.clone(),
            self.noderef.clone(),
            self.link_config.clone(),
        );
        let links = self.new_links_tx.clone();
        let cancel = self.cancel.child_token();
        let key = peer.identity;
        let failed = self.dials_failed.clone();
        let task = tokio::spawn(async move {
            let attempt = link::connect(identity, local, &peer, &config);
            let result = tokio::select! {
                () = cancel.cancelled() => return,
                result = attempt => result,
            };
            match result {
                Ok(link) => {
                    let _ = links
                        .send(NewLink {
                            link,
                            outbound: true,
                        })
                        .await;
                }
                Err(err) => {
                    failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(peer = ?peer.identity, address = %peer.address, %err, "opennet dial failed");
                }
            }
        });
        self.opennet_dialers
            .insert(key, AbortOnDropHandle::new(task));
    }

    /// Opennet upkeep: rereads the seed list; below the threshold, dials the
    /// seeds and lets the core announce again; above it, closes seed links a
    /// while after the threshold was reached.
    fn check_seeds(&mut self) {
        if self.core.config().opennet.is_none() {
            return;
        }
        let mut seeds = self.flag_seeds.clone();
        seeds.extend(read_seeds(&self.seeds_file));
        seeds.retain(|s| s.identity != self.noderef.identity);
        seeds.truncate(MAX_SEEDS);
        self.seeds = seeds;
        let seed_links: Vec<PeerId> = self
            .core
            .peer_kinds()
            .filter(|(_, kind)| *kind == PeerKind::Seed)
            .map(|(id, _)| id)
            .collect();
        if self.core.has_enough_peers() {
            let since = *self.enough_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= super::SEED_CHECK_INTERVAL * 3 {
                for id in seed_links {
                    tracing::info!(peer = ?id, "enough peers: closing the seed link");
                    self.forget_and_disconnect(id);
                }
            }
            return;
        }
        self.enough_since = None;
        let now = self.now();
        self.core.retry_announce(now);
        if seed_links.is_empty() {
            for seed in self.seeds.clone() {
                self.opennet_dial(seed, ConnectReason::Announced, false);
            }
        }
    }

    /// Closes the link to a peer the opennet dropped, and stops redialling it.
    /// Takes the address the peers agree they see this node at, unless the
    /// operator fixed it (`--advertise`), and advertises it from now on: in
    /// handshakes, announcements and the status.
    fn learn_address(&mut self) {
        if self.advertise_fixed {
            return;
        }
        let reports = self.peers.links().filter_map(|slot| {
            let remote = slot.handle.remote_addr()?;
            let observed = slot.handle.observed_address()?;
            Some((slot.noderef.identity, remote.ip(), observed.ip()))
        });
        let Some(ip) = super::address::consensus(reports) else {
            return;
        };
        if ip == self.noderef.address.ip() {
            return;
        }
        tracing::info!(old = %self.noderef.address, new = %ip, "peers agree on this node's address; advertising it");
        self.noderef.address.set_ip(ip);
        self.core.set_noderef(self.noderef.clone());
        self.listener.set_noderef(self.noderef.clone());
        self.shared_noderef.set(self.noderef.clone());
    }

    fn forget_and_disconnect(&mut self, peer: PeerId) {
        if let Some(slot) = self.peers.link(peer) {
            let key = slot.noderef.identity;
            if !self.friends.contains(&key) {
                self.peers.forget(&key);
            }
        }
        self.disconnect(peer);
    }

    fn disconnect(&mut self, peer: PeerId) {
        if let Some(slot) = self.peers.link(peer) {
            slot.handle.close();
        }
    }

    fn drain_actions(&mut self) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Send { to, msg } => self.send(to, &msg),
                Action::Store { area, block } => {
                    let area = match area {
                        Area::Store => warren_store::Area::Store,
                        Area::Cache => warren_store::Area::Cache,
                    };
                    self.writer.write(area, block);
                }
                Action::StoreSsk { block } => self.writer.write_ssk(block),
                Action::SskFetchDone { client, result } => {
                    if let Some(reply) = self.ssk_fetches.remove(&client) {
                        let _ = reply.send(result.map_err(RequestError::from));
                    }
                }
                Action::SskInsertDone { client, result } => {
                    if let Some(reply) = self.inserts.remove(&client) {
                        let result = result.map_err(|e| match e {
                            routing::SskInsertError::Collision(existing) => {
                                RequestError::SskCollision(existing)
                            }
                            routing::SskInsertError::Insert(e) => RequestError::Insert(e),
                        });
                        let _ = reply.send(result);
                    }
                }
                Action::FetchDone { client, result } => {
                    self.local.count_fetch(result.as_ref().map(|_| ()));
                    if let Some(reply) = self.fetches.remove(&client) {
                        let _ = reply.send(result.map_err(RequestError::from));
                    }
                }
                Action::InsertDone { client, result } => {
                    self.local.count_insert(result.as_ref().copied());
                    if let Some(reply) = self.inserts.remove(&client) {
                        let _ = reply.send(result.map_err(RequestError::from));
                    }
                }
                Action::Misbehaved { peer, reason } => {
                    tracing::info!(?peer, ?reason, "peer broke the protocol; disconnecting");
                    self.disconnect(peer);
                }
                Action::Connect { noderef, reason } => self.opennet_dial(noderef, reason, true),
                Action::Disconnect { peer } => {
                    tracing::info!(?peer, "dropping the least useful peer to make room");
                    self.forget_and_disconnect(peer);
                }
            }
        }
    }

    /// Encodes and queues a message; sheds it if the link's outbox is full
    /// (the core times the request out and routes elsewhere).
    fn send(&mut self, to: PeerId, msg: &wire::Message) {
        let Some(slot) = self.peers.link(to) else {
            return;
        };
        let payload = Bytes::from(wire::encode(msg));
        let len = payload.len() as u64;
        match slot.handle.try_send(payload) {
            Ok(()) => self.totals.bytes_sent += len,
            Err(LinkSendError::Full) => {
                self.totals.messages_shed += 1;
                tracing::debug!(peer = ?to, kind = msg.kind(), "link outbox full; message shed");
            }
            Err(err) => tracing::debug!(peer = ?to, %err, "message not sent"),
        }
    }

    fn status(&self) -> NodeStatus {
        let kinds: std::collections::HashMap<PeerId, PeerKind> = self.core.peer_kinds().collect();
        let traffic: std::collections::HashMap<PeerId, crate::routing::PeerTraffic> =
            self.core.peer_traffic().collect();
        let peers = self
            .peers
            .links()
            .map(|slot| {
                let link = slot.handle.stats();
                let id = self.peers.id_of(&slot.noderef.identity);
                let kind = id.and_then(|id| kinds.get(&id).copied());
                PeerStatus {
                    kind: match kind {
                        Some(PeerKind::Friend) => "friend",
                        Some(PeerKind::Seed) => "seed",
                        Some(PeerKind::Opennet) => "opennet",
                        // Up at the link layer, not yet announced to the core.
                        None => "starting",
                    },
                    identity: slot.noderef.identity.to_string(),
                    location: slot.noderef.location.as_fraction(),
                    address: slot.noderef.address,
                    bytes_sent: link.bytes_sent,
                    bytes_received: link.bytes_received,
                    traffic: id
                        .and_then(|id| traffic.get(&id).copied())
                        .unwrap_or_default(),
                }
            })
            .collect();
        let stats = self.core.stats();
        NodeStatus {
            noderef: self.noderef.to_string(),
            location: self.noderef.location.as_fraction(),
            uptime_s: self.epoch.elapsed().as_secs(),
            peers,
            live_requests: self.core.live_requests(),
            routing: routing_json(stats),
            opennet: serde_json::to_value(self.core.opennet_stats()).unwrap_or_default(),
            store: store_json(&self.store.stats()),
            store_flushes: self.flushes.load(std::sync::atomic::Ordering::Relaxed),
            store_writes_shed: self.writer.shed(),
            links: LinkTotals {
                refused: self
                    .totals
                    .refused
                    .clone()
                    .with_listener(self.listener.counts()),
                dials_failed: self.dials_failed.load(std::sync::atomic::Ordering::Relaxed),
                dials_rate_limited: self.dial_limiter.refused,
                ..self.totals.clone()
            },
            local: self.local.clone(),
            to_peers: stats.to_peers,
            from_peers: stats.from_peers,
            hops: stats.local.clone(),
        }
    }

    async fn close_all(&mut self) {
        self.listener.close();
        self.dialers.clear();
        self.peers.close_retiring();
        for slot in self.peers.links() {
            slot.handle.close();
        }
        // Give the links a moment to say goodbye; they are aborted on drop after that.
        let deadline = Instant::now() + LINK_CLOSE_DEADLINE;
        while self.peers.links().any(|slot| !slot.handle.is_closed()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (_, reply) in self.fetches.drain() {
            let _ = reply.send(Err(RequestError::Stopped));
        }
        for (_, reply) in self.inserts.drain() {
            let _ = reply.send(Err(RequestError::Stopped));
        }
    }
}

fn routing_json(stats: &routing::NodeStats) -> serde_json::Value {
    serde_json::json!({
        "requests_accepted": stats.requests_accepted,
        "inserts_accepted": stats.inserts_accepted,
        "answered_from_store": stats.answered_from_store,
        "merged": stats.merged,
        "loops_rejected": stats.loops_rejected,
        "overloaded_sent": stats.overloaded_sent,
        "forged_blocks": stats.forged_blocks,
        "unexpected_replies": stats.unexpected_replies,
        "duplicate_replies": stats.duplicate_replies,
        "false_collisions": stats.false_collisions,
        "unknown_replies": stats.unknown_replies,
        "peers_refused": stats.peers_refused,
        "timeouts": stats.timeouts,
    })
}

fn store_json(stats: &warren_store::StoreStats) -> serde_json::Value {
    let area = |a: &warren_store::AreaStats| {
        serde_json::json!({
            "bytes": a.bytes,
            "blocks": a.blocks,
            "capacity_bytes": a.capacity_bytes,
            "hits": a.hits,
            "evictions": a.evictions,
            "corrupt_dropped": a.corrupt_dropped,
        })
    };
    serde_json::json!({
        "store": area(&stats.store),
        "cache": area(&stats.cache),
        "misses": stats.misses,
        "eviction": stats.eviction.name(),
    })
}

/// Noderefs in the seed file; bad lines are logged and skipped.
fn read_seeds(path: &std::path::Path) -> Vec<NodeRef> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| match line.parse::<NodeRef>() {
            Ok(noderef) => Some(noderef),
            Err(err) => {
                tracing::warn!(file = %path.display(), %err, "skipping a bad seed");
                None
            }
        })
        .take(MAX_SEEDS)
        .collect()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
