//! The node: peers, event dispatch, timers and the action queue.

use std::collections::{HashMap, VecDeque};

use core::time::Duration;
use rand_core::RngCore;
use warren_crypto::{ChkBlock, Location, RoutingKey};

use super::failure_table::FailureTable;
use super::opennet::{Opennet, OpennetStats};
use super::request::{Kind, Outcome, PendingInsert, Request, Waiter};
use super::traffic::{Ended, LocalRoutes, Outcomes, PeerTraffic};
use super::{
    Action, BlockLookup, ClientId, Event, FetchError, InsertError, Misbehaviour, PeerId, PeerKind,
    RoutingConfig, Time,
};
use crate::wire::{Message, RequestId};

/// Fresh ids drawn before giving up on avoiding a live one (2^-64 odds each).
const ID_DRAWS: usize = 4;

/// One connected peer, as routing sees it.
#[derive(Debug, Clone)]
pub(super) struct Peer {
    pub(super) id: PeerId,
    pub(super) location: Location,
    /// Coin flips made once per link at `PeerUp`: whether requests arriving
    /// over this link at the maximum HTL are decremented, and whether those
    /// at HTL 1 end here.
    decrement_at_max: bool,
    decrement_at_min: bool,
    /// Drawn once per link: orders this node's peers for the max-HTL walk of
    /// fetches arriving over this link, and ranks this peer as a successor.
    pub(super) walk_tag: u64,
    pub(super) backoff_until: Time,
    backoff: Duration,
    /// Requests from this peer this node is working on.
    pub(super) serving: u32,
    pub(super) kind: PeerKind,
    pub(super) connected_at: Time,
    /// When it last returned data for a request routed to it.
    pub(super) last_success: Option<Time>,
    /// `DataNotFound` answers in a row.
    pub(super) not_found_streak: u32,
    /// Outcomes over this link (the in-flight counts are filled in when read).
    pub(super) traffic: PeerTraffic,
}

/// Counters for status pages and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    pub requests_accepted: u64,
    pub inserts_accepted: u64,
    pub answered_from_store: u64,
    pub merged: u64,
    pub loops_rejected: u64,
    pub overloaded_sent: u64,
    pub forged_blocks: u64,
    pub unexpected_replies: u64,
    pub duplicate_replies: u64,
    pub false_collisions: u64,
    pub unknown_replies: u64,
    pub peers_refused: u64,
    pub timeouts: u64,
    /// How peers answered requests routed to them, all peers since start.
    pub to_peers: Outcomes,
    /// How this node answered requests from peers, since start.
    pub from_peers: Outcomes,
    /// This node's own requests: peers asked and HTL used.
    pub local: LocalRoutes,
    /// "Not found" answers claiming HTL 0 that did not end a search.
    pub not_found_doubted: u64,
}

/// The routing state of one node. See the module docs for how to drive it.
#[derive(Debug)]
pub struct Node {
    pub(super) config: RoutingConfig,
    pub(super) location: Location,
    pub(super) peers: Vec<Peer>,
    pub(super) requests: HashMap<RequestId, Request>,
    /// Live fetches by key, for merging identical requests.
    pub(super) fetch_by_key: HashMap<RoutingKey, RequestId>,
    /// Ids of merged requests -> the live request answering them (for loop checks).
    pub(super) aliases: HashMap<RequestId, RequestId>,
    /// Inserts accepted whose block has not arrived yet.
    pub(super) awaiting_data: HashMap<RequestId, PendingInsert>,
    pub(super) actions: VecDeque<Action>,
    pub(super) stats: NodeStats,
    pub(super) opennet: Opennet,
    pub(super) opennet_stats: OpennetStats,
    /// Peers that recently answered "not found" per key.
    pub(super) failures: FailureTable,
    /// The driver says more is queued for sending than the bandwidth limit
    /// carries in [`super::BANDWIDTH_LIABILITY`]: take on no new requests.
    pub(super) backlogged: bool,
    /// The walk order of this node's own fetches (like a link's `walk_tag`;
    /// drawn at the first local fetch, 0 until then).
    pub(super) local_walk_tag: u64,
}

impl Node {
    pub fn new(config: RoutingConfig, location: Location) -> Self {
        Node {
            failures: FailureTable::new(config.failure_table_keys, config.failure_ttl),
            config,
            location,
            peers: Vec::new(),
            requests: HashMap::new(),
            fetch_by_key: HashMap::new(),
            aliases: HashMap::new(),
            awaiting_data: HashMap::new(),
            actions: VecDeque::new(),
            stats: NodeStats::default(),
            opennet: Opennet::default(),
            opennet_stats: OpennetStats::default(),
            backlogged: false,
            local_walk_tag: 0,
        }
    }

    /// Whether the node's send queue is beyond what its bandwidth limit can
    /// carry soon: while it is, requests from peers are refused `Overloaded`
    /// (an input from the driver, which sees the queues; the core sees none).
    pub fn set_backlogged(&mut self, backlogged: bool) {
        self.backlogged = backlogged;
    }

    pub fn location(&self) -> Location {
        self.location
    }

    pub fn config(&self) -> &RoutingConfig {
        &self.config
    }

    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    pub fn opennet_stats(&self) -> &OpennetStats {
        &self.opennet_stats
    }

    /// Connected peers with how they were met.
    pub fn peer_kinds(&self) -> impl Iterator<Item = (PeerId, PeerKind)> + '_ {
        self.peers.iter().map(|p| (p.id, p.kind))
    }

    /// Connected peers and their locations.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, Location)> + '_ {
        self.peers.iter().map(|p| (p.id, p.location))
    }

    /// Whether id `id` is live here: what a probe with that id learns (a
    /// `RejectedLoop`). The simulator's traceback attack reads it.
    pub fn is_request_live(&self, id: RequestId) -> bool {
        self.is_live(id)
    }

    /// Draws every link's HTL coin flips afresh. Only the simulator calls
    /// this, before each request, to play the per-request coins that the
    /// per-link flips replace (the control of the Levine et al. test).
    pub fn redraw_htl_coins<R: RngCore + ?Sized>(&mut self, rng: &mut R) {
        let (at_max, at_min) = (
            self.config.decrement_at_max_probability,
            self.config.decrement_at_min_probability,
        );
        for p in &mut self.peers {
            p.decrement_at_max = coin(rng, at_max);
            p.decrement_at_min = coin(rng, at_min);
            p.walk_tag = rng.next_u64();
        }
        self.local_walk_tag = rng.next_u64();
    }

    /// Requests this node is working on (its own and relayed).
    pub fn live_requests(&self) -> usize {
        self.requests.len() + self.awaiting_data.len()
    }

    /// Feeds one event in. Drain [`Node::poll_action`] afterwards.
    pub fn handle<R, S>(&mut self, now: Time, rng: &mut R, store: &S, event: Event)
    where
        R: RngCore + ?Sized,
        S: BlockLookup + ?Sized,
    {
        match event {
            Event::PeerUp {
                peer,
                location,
                kind,
            } => self.peer_up(now, rng, peer, location, kind),
            Event::PeerDown { peer } => self.peer_down(now, peer),
            Event::Message { from, msg } => self.on_message(now, rng, store, from, msg),
            Event::Fetch { client, key } => self.local_fetch(now, rng, store, client, key),
            Event::Insert { client, block } => self.local_insert(now, rng, store, client, block),
            Event::FetchSsk { client, key } => self.local_fetch_ssk(now, rng, store, client, key),
            Event::InsertSsk { client, block } => {
                self.local_insert_ssk(now, rng, store, client, block);
            }
        }
    }

    /// The next action to carry out, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Node::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        let requests = self.requests.values().map(|r| r.deadline);
        requests
            .chain(self.awaiting_data.values().map(|p| p.deadline))
            .chain(self.opennet_timeout())
            .min()
    }

    /// Fires every deadline at or before `now`.
    pub fn handle_timeout<R: RngCore + ?Sized>(&mut self, now: Time, rng: &mut R) {
        self.opennet_on_timeout(now, rng);
        self.expire_awaiting_data(now);
        let mut due: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        // HashMap order is arbitrary; fire in a fixed order for determinism.
        due.sort_unstable();
        for id in due {
            self.stats.timeouts += 1;
            // The peer it waited on did not answer in time.
            if let Some(peer) = self.requests.get(&id).and_then(|r| r.downstream) {
                self.note_to_peer(peer, Ended::Timeout);
            }
            let Some(req) = self.requests.get_mut(&id) else {
                continue;
            };
            match req.downstream {
                _ if req.expires <= now => self.finish(id, Outcome::Timeout),
                Some(peer) if !req.accepted => {
                    // The peer never took it on: back off from it and try another.
                    self.back_off(now, peer);
                    self.route_next(now, id);
                }
                Some(peer) if req.doubts < self.config.not_found_doubts && req.htl > 1 => {
                    // It accepted, then went quiet: doubted like a "not
                    // found" claim (one such peer must not end the search),
                    // with half the hops left for the next peer.
                    req.doubts += 1;
                    req.htl /= 2;
                    if self.next_peer(now, id).is_some() {
                        self.stats.not_found_doubted += 1;
                        self.back_off(now, peer);
                        self.route_next(now, id);
                    } else {
                        self.finish(id, Outcome::Timeout);
                    }
                }
                _ => self.finish(id, Outcome::Timeout),
            }
        }
    }

    fn peer_up<R: RngCore + ?Sized>(
        &mut self,
        now: Time,
        rng: &mut R,
        peer: PeerId,
        location: Location,
        kind: PeerKind,
    ) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.id == peer) {
            p.location = location;
            p.kind = kind;
            return;
        }
        if self.peers.len() >= self.config.max_peers {
            self.stats.peers_refused += 1;
            return;
        }
        let decrement_at_max = coin(rng, self.config.decrement_at_max_probability);
        let decrement_at_min = coin(rng, self.config.decrement_at_min_probability);
        let walk_tag = rng.next_u64();
        self.peers.push(Peer {
            id: peer,
            location,
            decrement_at_max,
            decrement_at_min,
            walk_tag,
            backoff_until: Time::ZERO,
            backoff: Duration::ZERO,
            serving: 0,
            kind,
            connected_at: now,
            last_success: None,
            not_found_streak: 0,
            traffic: PeerTraffic::default(),
        });
        if kind == PeerKind::Opennet {
            self.trim_peers(now);
        }
    }

    fn peer_down(&mut self, now: Time, peer: PeerId) {
        self.peers.retain(|p| p.id != peer);
        self.lost_peer();
        self.awaiting_data.retain(|_, p| p.from != peer);
        let mut affected: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, r)| r.downstream == Some(peer) || r.has_peer_waiter(peer))
            .map(|(id, _)| *id)
            .collect();
        affected.sort_unstable();
        for id in affected {
            let Some(req) = self.requests.get_mut(&id) else {
                continue;
            };
            for w in req.waiters.iter().filter(|w| w.peer() == Some(peer)) {
                if let Waiter::Peer { id: alias, .. } = w {
                    self.aliases.remove(alias);
                }
            }
            req.waiters.retain(|w| w.peer() != Some(peer));
            if req.waiters.is_empty() {
                // Nobody is left to answer: drop the request quietly.
                self.forget(id);
            } else if req.downstream == Some(peer) {
                self.route_next(now, id);
            }
        }
    }

    fn on_message<R, S>(&mut self, now: Time, rng: &mut R, store: &S, from: PeerId, msg: Message)
    where
        R: RngCore + ?Sized,
        S: BlockLookup + ?Sized,
    {
        let Some(from_idx) = self.peer_index(from) else {
            // Not (or no longer) a peer: the driver raced a PeerDown. Ignore.
            return;
        };
        match msg {
            Message::Request { id, key, htl } => {
                self.on_request(now, store, from_idx, id, key, htl);
            }
            Message::Insert { id, key, htl } => self.on_insert(now, from_idx, id, key, htl),
            Message::InsertData { id, block } => self.on_insert_data(now, store, from, id, block),
            Message::SskRequest { id, key, htl } => {
                self.on_ssk_request(now, store, from_idx, id, key, htl);
            }
            Message::SskInsert {
                id,
                key,
                htl,
                block,
            } => self.on_ssk_insert(now, store, from_idx, id, key, htl, block),
            Message::Announce { id, htl, noderef } => {
                self.on_announce(now, from_idx, id, htl, noderef);
            }
            Message::FoldOffer { id, noderef } => self.on_fold_offer(now, rng, from, id, noderef),
            Message::FoldReply { id, noderef } => self.on_fold_reply(now, from, id, noderef),
            reply @ (Message::AnnounceReply { .. } | Message::AnnounceEnd { .. }) => {
                self.on_announce_reply(now, from, reply);
            }
            reply @ (Message::RejectedLoop { .. } | Message::Overloaded { .. })
                if self.is_announce(reply.id()) =>
            {
                self.on_announce_reply(now, from, reply);
            }
            reply => self.on_reply(now, from, reply),
        }
    }

    pub(super) fn peer_index(&self, peer: PeerId) -> Option<usize> {
        self.peers.iter().position(|p| p.id == peer)
    }

    /// HTL after arriving over the link from `peers[idx]`, with that link's coin flips.
    pub(super) fn decrement(&self, idx: usize, htl: u8) -> u8 {
        let max = self.config.max_htl;
        let htl = htl.min(max);
        let peer = &self.peers[idx];
        if htl == 0 {
            0
        } else if htl == max {
            htl - u8::from(peer.decrement_at_max)
        } else if htl == 1 {
            htl - u8::from(peer.decrement_at_min)
        } else {
            htl - 1
        }
    }

    pub(super) fn back_off(&mut self, now: Time, peer: PeerId) {
        let (initial, max) = (self.config.backoff_initial, self.config.backoff_max);
        if let Some(p) = self.peers.iter_mut().find(|p| p.id == peer) {
            p.backoff = if p.backoff.is_zero() {
                initial
            } else {
                (p.backoff * 2).min(max)
            };
            p.backoff_until = now.after(p.backoff);
        }
    }

    /// Whether `peer` returned data for a request routed to it within the
    /// failure table's memory: its claim that a search is spent is believed.
    pub(super) fn is_trusted(&self, now: Time, peer: PeerId) -> bool {
        let ttl = self.config.failure_ttl;
        self.peers
            .iter()
            .find(|p| p.id == peer)
            .and_then(|p| p.last_success)
            .is_some_and(|at| now < at.after(ttl))
    }

    pub(super) fn reset_backoff(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.id == peer) {
            p.backoff = Duration::ZERO;
        }
    }

    /// The closest peer to `key` that is not excluded and not backed off.
    pub(super) fn best_peer(
        &self,
        now: Time,
        key: &RoutingKey,
        excluded: impl Fn(PeerId) -> bool,
    ) -> Option<(PeerId, Location)> {
        let target = key.location();
        self.peers
            .iter()
            .filter(|p| p.backoff_until <= now && !excluded(p.id))
            .min_by_key(|p| (p.location.distance(target), p.id))
            .map(|p| (p.id, p.location))
    }

    /// The first peer in the walk order `walk` names (see
    /// [`RoutingConfig::max_htl_walk`]) that is not excluded or backed off:
    /// the same successor for every fetch with that order while it is there.
    pub(super) fn walk_peer(
        &self,
        now: Time,
        walk: u64,
        excluded: impl Fn(PeerId) -> bool,
    ) -> Option<(PeerId, Location)> {
        self.peers
            .iter()
            .filter(|p| p.backoff_until <= now && !excluded(p.id))
            .min_by_key(|p| (walk_rank(walk, p.walk_tag), p.id))
            .map(|p| (p.id, p.location))
    }

    /// The walk order for a fetch that arrived over `peers[from]` (or is
    /// this node's own, `None`) at `htl_in` and goes on at `htl`: `Some`
    /// while it stays at the maximum and walks are on.
    pub(super) fn walk_order(&self, from: Option<usize>, htl_in: u8, htl: u8) -> Option<u64> {
        let max = self.config.max_htl;
        if !self.config.max_htl_walk || htl_in < max || htl < max {
            return None;
        }
        Some(match from {
            Some(idx) => self.peers[idx].walk_tag,
            None => self.local_walk_tag,
        })
    }

    /// Draws this node's own walk order once.
    pub(super) fn draw_local_walk<R: RngCore + ?Sized>(&mut self, rng: &mut R) {
        if self.local_walk_tag == 0 {
            self.local_walk_tag = rng.next_u64() | 1;
        }
    }

    pub(super) fn send(&mut self, to: PeerId, msg: Message) {
        self.actions.push_back(Action::Send { to, msg });
    }

    pub(super) fn misbehaved(&mut self, peer: PeerId, reason: Misbehaviour) {
        match reason {
            Misbehaviour::ForgedBlock => self.stats.forged_blocks += 1,
            Misbehaviour::UnexpectedReply => self.stats.unexpected_replies += 1,
            Misbehaviour::DuplicateReply => self.stats.duplicate_replies += 1,
            Misbehaviour::FalseCollision => self.stats.false_collisions += 1,
        }
        if let Some(p) = self.peers.iter_mut().find(|p| p.id == peer) {
            p.traffic.misbehaved += 1;
        }
        self.actions.push_back(Action::Misbehaved { peer, reason });
    }

    /// A random id not live here.
    pub(super) fn fresh_id<R: RngCore + ?Sized>(&self, rng: &mut R) -> RequestId {
        let mut id = RequestId(rng.next_u64());
        for _ in 0..ID_DRAWS {
            if !self.is_live(id) {
                break;
            }
            id = RequestId(rng.next_u64());
        }
        id
    }

    pub(super) fn is_live(&self, id: RequestId) -> bool {
        self.requests.contains_key(&id)
            || self.aliases.contains_key(&id)
            || self.awaiting_data.contains_key(&id)
            || self.is_announce(id)
    }

    fn local_fetch<R, S>(
        &mut self,
        now: Time,
        rng: &mut R,
        store: &S,
        client: ClientId,
        key: RoutingKey,
    ) where
        R: RngCore + ?Sized,
        S: BlockLookup + ?Sized,
    {
        if let Some(block) = lookup(store, &key) {
            self.stats.local.fetch_peers_asked.record(0);
            let result = Ok(block);
            self.actions.push_back(Action::FetchDone { client, result });
            return;
        }
        if let Some(&live) = self.fetch_by_key.get(&key) {
            if let Some(req) = self.requests.get_mut(&live) {
                if req.waiters.len() < self.config.max_waiters {
                    req.waiters.push(Waiter::Client(client));
                    self.stats.merged += 1;
                    return;
                }
            }
        }
        if self.live_requests() >= self.config.max_live_requests {
            let result = Err(FetchError::Overloaded);
            self.actions.push_back(Action::FetchDone { client, result });
            return;
        }
        let id = self.fresh_id(rng);
        let htl = self.config.max_htl;
        let lifetime = self.config.request_lifetime;
        self.draw_local_walk(rng);
        let mut req = Request::new(
            Kind::Fetch,
            key,
            htl,
            htl,
            Waiter::Client(client),
            now,
            lifetime,
        );
        req.walk = self.walk_order(None, htl, htl);
        self.requests.insert(id, req);
        self.fetch_by_key.insert(key, id);
        self.route_next(now, id);
    }

    fn local_insert<R, S>(
        &mut self,
        now: Time,
        rng: &mut R,
        store: &S,
        client: ClientId,
        block: ChkBlock,
    ) where
        R: RngCore + ?Sized,
        S: BlockLookup + ?Sized,
    {
        let key = block.routing_key();
        if lookup(store, &key).is_some_and(|old| old.as_bytes() != block.as_bytes()) {
            let result = Err(InsertError::Collision);
            self.actions
                .push_back(Action::InsertDone { client, result });
            return;
        }
        if self.live_requests() >= self.config.max_live_requests {
            let result = Err(InsertError::Overloaded);
            self.actions
                .push_back(Action::InsertDone { client, result });
            return;
        }
        // The originator neither stores nor caches its own insert: that would
        // show which content it inserted. Its peers store or cache it.
        let id = self.fresh_id(rng);
        let htl = self.config.max_htl;
        let req = Request::new(
            Kind::Insert(block),
            key,
            htl,
            htl,
            Waiter::Client(client),
            now,
            self.config.request_lifetime,
        );
        self.requests.insert(id, req);
        self.route_next(now, id);
    }
}

/// A block from the local store, if it really is the block named `key`.
pub(super) fn lookup<S: BlockLookup + ?Sized>(store: &S, key: &RoutingKey) -> Option<ChkBlock> {
    store.get(key).filter(|b| b.routing_key() == *key)
}

/// A peer's place in walk order `walk`: a fixed pseudo-random permutation of
/// the peers per order (splitmix64's finaliser; both inputs are secret random
/// draws, so no outsider can aim for a place).
fn walk_rank(walk: u64, tag: u64) -> u64 {
    let mut z = walk ^ tag;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 2^32, the number of values `next_u32` can take.
const U32_RANGE: f64 = 4_294_967_296.0;

/// A biased coin from the RNG: true with probability `p` (0 never, 1 always).
pub(super) fn coin<R: RngCore + ?Sized>(rng: &mut R, p: f64) -> bool {
    f64::from(rng.next_u32()) < p * U32_RANGE
}
