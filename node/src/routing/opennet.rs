//! Opennet: how a node finds its place. Announcements (a newcomer routes its
//! noderef toward its own location; nodes on the path that want a peer answer),
//! path folding (after a successful fetch the data source offers itself back
//! along the path) and the peer-acceptance policy (target count, least
//! recently successful peer dropped, grace period, rate-limited drops, a
//! share of long links, and the nearest peer on each side of the circle
//! kept). Rules and messages: `docs/PROTOCOL.md` (Part IV).

use std::collections::{HashMap, VecDeque};

use core::time::Duration;
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use warren_crypto::{Location, NodeRef, PROTOCOL_VERSION};

use super::node::{coin, Node};
use super::{Action, ConnectReason, PeerId, PeerKind, Time};
use crate::wire::{Message, RequestId};

/// Peers an opennet node aims for (Fred derives 14-40 from bandwidth).
pub const DEFAULT_TARGET_PEERS: usize = 30;
/// A node takes announced newcomers up to its target plus this share of it
/// (at least [`MIN_NEWCOMER_SLACK`]); the surplus is trimmed back to the target
/// once the protected newcomers' grace runs out. Without it, nodes that joined
/// together fill each other up and a later arrival finds nobody willing: it
/// could join only a group of its own, cut off once the seed links close.
pub const NEWCOMER_SLACK_SHARE: f64 = 0.2;
/// See [`NEWCOMER_SLACK_SHARE`].
pub const MIN_NEWCOMER_SLACK: usize = 2;
/// Announcement threshold is min(this, target / 2), as in Fred.
pub const MAX_ANNOUNCE_THRESHOLD: usize = 10;
/// A new peer cannot be dropped for this long.
pub const DEFAULT_PEER_GRACE: Duration = Duration::from_secs(5 * 60);
/// At most one peer dropped to make room per this interval.
pub const DEFAULT_MIN_DROP_INTERVAL: Duration = Duration::from_secs(2 * 60);
/// Chance that a hop passing a fold offer on puts its own noderef in its place.
pub const DEFAULT_FOLD_REPLACE_PROBABILITY: f64 = 0.05;
/// Chance that a hop wanting a peer takes a fold offer rather than passing it
/// on. Below 1 the offer travels further up the path before it is taken, so
/// folds make links of many lengths, not only between the nodes next to the
/// key (10,000 simulated nodes after 200,000 requests: 92.9 % success at 8.54
/// hops with 0.5, 89.9 % at 9.77 with 1).
pub const DEFAULT_FOLD_TAKE_PROBABILITY: f64 = 0.5;
/// Share of opennet peers kept beyond [`DEFAULT_LONG_LINK_DISTANCE`].
pub const DEFAULT_LONG_LINK_SHARE: f64 = 0.3;
/// 0.01 of the circle: links longer than this are "long" (Fred's figure).
pub const DEFAULT_LONG_LINK_DISTANCE: u64 = u64::MAX / 100;
/// Wait between announcements while below the threshold.
pub const DEFAULT_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(30);
/// An announcement hop gives up after this long.
pub const DEFAULT_ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(60);
/// Announcements one node relays at once; more are refused with `Overloaded`.
pub const DEFAULT_MAX_ANNOUNCES: usize = 16;
/// Announcements in a row that brought no peer before the node waits for a
/// change (a peer coming or going, a seed list reload) to try again.
pub const DEFAULT_MAX_ANNOUNCE_FAILURES: u32 = 5;
/// Replies relayed back per announcement at most (HTL bounds them anyway).
pub const MAX_ANNOUNCE_REPLIES: u32 = 32;
/// Fold routes (request id -> neighbours on its path) remembered at most.
pub const MAX_FOLD_ROUTES: usize = 1024;
/// A fold route is forgotten after this long.
pub const DEFAULT_FOLD_ROUTE_TTL: Duration = Duration::from_secs(60);
/// `DataNotFound` answers in a row after which an opennet peer loses its place.
pub const DEFAULT_NOT_FOUND_LIMIT: u32 = 200;

/// The opennet rules and limits. Without one (`RoutingConfig::opennet` is
/// `None`) a node is friends-only: no announcement, no folding, no drops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpennetConfig {
    pub target_peers: usize,
    pub announce_threshold: usize,
    pub peer_grace: Duration,
    pub min_drop_interval: Duration,
    pub fold_replace_probability: f64,
    #[serde(default = "default_fold_take_probability")]
    pub fold_take_probability: f64,
    pub long_link_share: f64,
    pub long_link_distance: u64,
    pub announce_interval: Duration,
    pub announce_timeout: Duration,
    pub max_announces: usize,
    pub max_announce_failures: u32,
    pub fold_route_ttl: Duration,
    pub not_found_limit: u32,
}

fn default_fold_take_probability() -> f64 {
    DEFAULT_FOLD_TAKE_PROBABILITY
}

impl Default for OpennetConfig {
    fn default() -> Self {
        Self::with_target(DEFAULT_TARGET_PEERS)
    }
}

impl OpennetConfig {
    /// The defaults for a node aiming at `target` peers.
    pub fn with_target(target: usize) -> Self {
        OpennetConfig {
            target_peers: target,
            announce_threshold: (target / 2).clamp(1, MAX_ANNOUNCE_THRESHOLD),
            peer_grace: DEFAULT_PEER_GRACE,
            min_drop_interval: DEFAULT_MIN_DROP_INTERVAL,
            fold_replace_probability: DEFAULT_FOLD_REPLACE_PROBABILITY,
            fold_take_probability: DEFAULT_FOLD_TAKE_PROBABILITY,
            long_link_share: DEFAULT_LONG_LINK_SHARE,
            long_link_distance: DEFAULT_LONG_LINK_DISTANCE,
            announce_interval: DEFAULT_ANNOUNCE_INTERVAL,
            announce_timeout: DEFAULT_ANNOUNCE_TIMEOUT,
            max_announces: DEFAULT_MAX_ANNOUNCES,
            max_announce_failures: DEFAULT_MAX_ANNOUNCE_FAILURES,
            fold_route_ttl: DEFAULT_FOLD_ROUTE_TTL,
            not_found_limit: DEFAULT_NOT_FOUND_LIMIT,
        }
    }
}

/// One announcement this node is relaying (or its own, `upstream: None`).
#[derive(Debug)]
pub(super) struct Announce {
    upstream: Option<PeerId>,
    noderef: NodeRef,
    htl: u8,
    tried: Vec<PeerId>,
    downstream: Option<PeerId>,
    replies: u32,
    pub(super) deadline: Time,
}

/// Neighbours on a successful fetch's path, kept briefly for a fold offer.
#[derive(Debug, Clone, Copy)]
struct FoldRoute {
    /// The peer the data went back to, and its id for the request.
    upstream: (PeerId, RequestId),
    /// The peer the data came from (`None` at the data source).
    downstream: Option<PeerId>,
    /// Whether the offer travelling upstream is this node's own noderef.
    ours: bool,
    expires: Time,
}

/// Opennet state of one node.
#[derive(Debug, Default)]
pub(super) struct Opennet {
    /// This node's noderef, as others should dial it (set by the driver).
    pub(super) own: Option<NodeRef>,
    pub(super) announces: HashMap<RequestId, Announce>,
    own_announce: Option<RequestId>,
    /// Peers gained by the current own announcement.
    own_gained: u32,
    /// Locations the current own announcement's replies were dialled at
    /// (bounded by [`MAX_ANNOUNCE_REPLIES`]): a reply counts as a new nearest
    /// neighbour only if nearer than these too, as they are not up yet.
    own_dialled: Vec<Location>,
    failures: u32,
    next_announce: Time,
    folds: HashMap<RequestId, FoldRoute>,
    fold_order: VecDeque<RequestId>,
    last_drop: Option<Time>,
}

/// Opennet counters, part of [`super::NodeStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OpennetStats {
    pub announcements_started: u64,
    pub announcements_relayed: u64,
    pub announcements_refused: u64,
    pub announce_replies_sent: u64,
    pub announce_offers_received: u64,
    pub fold_offers_made: u64,
    pub folds_taken: u64,
    pub fold_offers_replaced: u64,
    pub connects: u64,
    pub peers_dropped: u64,
    pub not_found_drops: u64,
    pub bad_noderefs: u64,
}

impl OpennetStats {
    /// Adds `other` to these counters.
    pub fn add(&mut self, other: &OpennetStats) {
        self.announcements_started += other.announcements_started;
        self.announcements_relayed += other.announcements_relayed;
        self.announcements_refused += other.announcements_refused;
        self.announce_replies_sent += other.announce_replies_sent;
        self.announce_offers_received += other.announce_offers_received;
        self.fold_offers_made += other.fold_offers_made;
        self.folds_taken += other.folds_taken;
        self.fold_offers_replaced += other.fold_offers_replaced;
        self.connects += other.connects;
        self.peers_dropped += other.peers_dropped;
        self.not_found_drops += other.not_found_drops;
        self.bad_noderefs += other.bad_noderefs;
    }
}

/// Whether `other` lies on the same side of `here` on the circle as `than`,
/// and nearer.
fn nearer_on_same_side(here: Location, other: Location, than: Location) -> bool {
    let side_and_distance = |l: Location| {
        let clockwise = l.0.wrapping_sub(here.0);
        if clockwise <= u64::MAX / 2 {
            (true, clockwise)
        } else {
            (false, clockwise.wrapping_neg())
        }
    };
    let (side, distance) = side_and_distance(than);
    let (their_side, theirs) = side_and_distance(other);
    other != than && their_side == side && theirs < distance
}

/// How many opennet peers a node at `target` holds at most while taking
/// announced newcomers (see [`NEWCOMER_SLACK_SHARE`]).
pub fn newcomer_limit(target: usize) -> usize {
    let slack = (target as f64 * NEWCOMER_SLACK_SHARE).ceil() as usize;
    target + slack.max(MIN_NEWCOMER_SLACK)
}

impl Node {
    fn opennet_enabled(&self) -> bool {
        self.config.opennet.is_some() && self.opennet.own.is_some()
    }

    /// Sets the noderef this node hands out in announcements and fold offers.
    pub fn set_noderef(&mut self, noderef: NodeRef) {
        self.opennet.own = Some(noderef);
    }

    /// Lets a node that gave up announcing (see
    /// [`OpennetConfig::max_announce_failures`]) try again at once.
    pub fn retry_announce(&mut self, now: Time) {
        self.opennet.failures = 0;
        self.opennet.next_announce = self.opennet.next_announce.min(now);
    }

    /// A peer went away: a node that gave up announcing tries again if it
    /// is now below its threshold.
    pub(super) fn lost_peer(&mut self) {
        if !self.has_enough_peers() {
            self.opennet.failures = 0;
        }
    }

    /// Peers counted toward the threshold and target: all but seed links.
    pub fn routing_peers(&self) -> usize {
        self.peers
            .iter()
            .filter(|p| p.kind != PeerKind::Seed)
            .count()
    }

    /// Whether the node has reached its announcement threshold (always true
    /// for a friends-only node).
    pub fn has_enough_peers(&self) -> bool {
        self.config
            .opennet
            .as_ref()
            .is_none_or(|c| self.routing_peers() >= c.announce_threshold)
    }

    fn opennet_count(&self) -> usize {
        self.peers
            .iter()
            .filter(|p| p.kind == PeerKind::Opennet)
            .count()
    }

    /// Whether this node would take a new opennet peer at `location` now.
    pub(super) fn wants_peer(&self, now: Time, location: Option<Location>) -> bool {
        let Some(cfg) = self.config.opennet.as_ref() else {
            return false;
        };
        if self.opennet.own.is_none() || self.peers.len() >= self.config.max_peers {
            return false;
        }
        self.opennet_count() < cfg.target_peers || self.drop_candidate(now, location).is_some()
    }

    /// Whether this node takes the announcer of an announcement passing
    /// through it: below its target plus the newcomer slack, able to drop a
    /// peer for it, or the announcer would be its nearest on a side.
    fn takes_newcomer(&self, now: Time, location: Location) -> bool {
        let Some(cfg) = self.config.opennet.as_ref() else {
            return false;
        };
        if self.opennet.own.is_none() || self.peers.len() >= self.config.max_peers {
            return false;
        }
        self.opennet_count() < newcomer_limit(cfg.target_peers)
            || self.drop_candidate(now, Some(location)).is_some()
            || self.is_ring_neighbour(location, None)
    }

    /// Whether a peer at `location` is, or would be, this node's nearest on
    /// its side of the circle (`except` not counted). Greedy routing ends
    /// where no peer is closer to the key: only links to the nearest nodes on
    /// either side make that end the node nearest the key, so such a peer is
    /// taken whenever one offers itself and never dropped to make room.
    pub(super) fn is_ring_neighbour(&self, location: Location, except: Option<PeerId>) -> bool {
        let here = self.location;
        !self
            .peers
            .iter()
            .filter(|p| p.kind != PeerKind::Seed && Some(p.id) != except)
            .any(|p| nearer_on_same_side(here, p.location, location))
    }

    /// Whether a peer at `location` would be a new nearest neighbour on the
    /// circle and there is a link slot for it.
    fn takes_ring_neighbour(&self, location: Location) -> bool {
        self.opennet.own.is_some()
            && self.config.opennet.is_some()
            && self.peers.len() < self.config.max_peers
            && !self.is_peer_at(location)
            && self.is_ring_neighbour(location, None)
    }

    /// The opennet peer to drop to make room for one at `incoming`: out of its
    /// grace period, least recently successful, not the nearest on either
    /// side of the circle, and not one of the long links the node keeps its
    /// share of. `None` while drops are rate-limited.
    fn drop_candidate(&self, now: Time, incoming: Option<Location>) -> Option<PeerId> {
        let cfg = self.config.opennet.as_ref()?;
        if self
            .opennet
            .last_drop
            .is_some_and(|t| now < t.after(cfg.min_drop_interval))
        {
            return None;
        }
        let is_long = |loc: Location| self.location.distance(loc) > cfg.long_link_distance;
        let opennet = || self.peers.iter().filter(|p| p.kind == PeerKind::Opennet);
        let total = opennet().count();
        let long = opennet().filter(|p| is_long(p.location)).count()
            + usize::from(incoming.is_some_and(is_long));
        let spare_long = (long.saturating_sub(1)) as f64 >= cfg.long_link_share * total as f64;
        opennet()
            .filter(|p| now >= p.connected_at.after(cfg.peer_grace))
            .filter(|p| !self.is_ring_neighbour(p.location, Some(p.id)))
            .filter(|p| spare_long || !is_long(p.location))
            .min_by_key(|p| (p.last_success.unwrap_or(Time::ZERO), p.connected_at, p.id))
            .map(|p| p.id)
    }

    /// After an opennet peer came up: drop one if over the target.
    pub(super) fn trim_peers(&mut self, now: Time) {
        let Some(target) = self.config.opennet.as_ref().map(|c| c.target_peers) else {
            return;
        };
        if self.opennet_count() <= target {
            return;
        }
        if let Some(victim) = self.drop_candidate(now, None) {
            self.opennet.last_drop = Some(now);
            self.opennet_stats.peers_dropped += 1;
            self.actions.push_back(Action::Disconnect { peer: victim });
        }
    }

    /// A peer returned data for a request routed to it.
    pub(super) fn note_success(&mut self, now: Time, peer: PeerId) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.id == peer) {
            p.last_success = Some(now);
            p.not_found_streak = 0;
        }
    }

    /// A peer answered `DataNotFound`: one that never finds anything goes.
    pub(super) fn note_not_found(&mut self, now: Time, peer: PeerId) {
        let Some(cfg) = self.config.opennet.as_ref() else {
            return;
        };
        let (limit, grace) = (cfg.not_found_limit, cfg.peer_grace);
        let Some(p) = self.peers.iter_mut().find(|p| p.id == peer) else {
            return;
        };
        p.not_found_streak = p.not_found_streak.saturating_add(1);
        if p.kind == PeerKind::Opennet
            && p.not_found_streak == limit
            && now >= p.connected_at.after(grace)
        {
            self.opennet_stats.not_found_drops += 1;
            self.actions.push_back(Action::Disconnect { peer });
        }
    }

    /// Whether a peer at `location` is connected already. The core knows
    /// peers by location; 64-bit random locations do not collide by chance,
    /// and a noderef that claims a peer's location is not worth a dial.
    fn is_peer_at(&self, location: Location) -> bool {
        self.peers.iter().any(|p| p.location == location)
    }

    /// Whether an offered noderef is one worth dialling at all.
    fn plausible(&mut self, noderef: &NodeRef) -> bool {
        let addr = noderef.address;
        let ip = addr.ip();
        let own = self.opennet.own.as_ref();
        let ok = addr.port() != 0
            && !ip.is_unspecified()
            && !ip.is_multicast()
            && !matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast())
            && noderef.version >= 1
            && noderef.version <= PROTOCOL_VERSION
            && own.is_none_or(|own| own.identity != noderef.identity && own.address != addr);
        if !ok {
            self.opennet_stats.bad_noderefs += 1;
        }
        ok
    }

    fn connect(&mut self, noderef: NodeRef, reason: ConnectReason) {
        self.opennet_stats.connects += 1;
        self.actions.push_back(Action::Connect { noderef, reason });
    }

    /// The next opennet deadline (announcement retry, announcement hops).
    pub(super) fn opennet_timeout(&self) -> Option<Time> {
        let hops = self.opennet.announces.values().map(|a| a.deadline).min();
        let next = self.needs_announce().then_some(self.opennet.next_announce);
        hops.into_iter().chain(next).min()
    }

    fn needs_announce(&self) -> bool {
        let Some(cfg) = self.config.opennet.as_ref() else {
            return false;
        };
        self.opennet.own.is_some()
            && self.opennet.own_announce.is_none()
            && self.opennet.failures < cfg.max_announce_failures
            && !self.peers.is_empty()
            && self.routing_peers() < cfg.announce_threshold
    }

    /// Fires opennet deadlines at or before `now`.
    pub(super) fn opennet_on_timeout<R: RngCore + ?Sized>(&mut self, now: Time, rng: &mut R) {
        let mut due: Vec<RequestId> = self
            .opennet
            .announces
            .iter()
            .filter(|(_, a)| a.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        due.sort_unstable();
        for id in due {
            self.finish_announce(now, id, 0);
        }
        if self.needs_announce() && self.opennet.next_announce <= now {
            self.start_announce(now, rng);
        }
    }

    fn start_announce<R: RngCore + ?Sized>(&mut self, now: Time, rng: &mut R) {
        let (Some(own), Some(cfg)) = (self.opennet.own.clone(), self.config.opennet.as_ref())
        else {
            return;
        };
        self.opennet.next_announce = now.after(cfg.announce_interval);
        let id = self.fresh_id(rng);
        let announce = Announce {
            upstream: None,
            noderef: own,
            htl: self.config.max_htl,
            tried: Vec::new(),
            downstream: None,
            replies: 0,
            deadline: now.after(cfg.announce_timeout),
        };
        self.opennet.announces.insert(id, announce);
        self.opennet.own_announce = Some(id);
        self.opennet.own_gained = 0;
        self.opennet.own_dialled.clear();
        self.opennet_stats.announcements_started += 1;
        self.route_announce(now, id);
    }

    /// An announcement from `peers[idx]`.
    pub(super) fn on_announce(
        &mut self,
        now: Time,
        idx: usize,
        id: RequestId,
        htl: u8,
        noderef: NodeRef,
    ) {
        let from = self.peers[idx].id;
        let Some(cfg) = self.config.opennet.as_ref() else {
            // Friends-only: announcements end here.
            return self.send(from, Message::AnnounceEnd { id, htl: 0 });
        };
        if self.is_live(id) {
            self.stats.loops_rejected += 1;
            return self.send(from, Message::RejectedLoop { id });
        }
        let (max, timeout) = (cfg.max_announces, cfg.announce_timeout);
        let busy_peer = self
            .opennet
            .announces
            .values()
            .any(|a| a.upstream == Some(from));
        if busy_peer || self.opennet.announces.len() >= max {
            // One at a time per peer, a bounded number in all: a flood is refused.
            self.opennet_stats.announcements_refused += 1;
            return self.send(from, Message::Overloaded { id });
        }
        if !self.plausible(&noderef) {
            return self.send(from, Message::AnnounceEnd { id, htl: 0 });
        }
        let htl = self.decrement(idx, htl.min(self.config.max_htl));
        // The first hop (a seed, usually) is linked to the announcer already:
        // its offer keeps that link as a real one. Without that a seed never
        // gains peers of its own and is cut off from the network it seeded.
        let first_hop = self.peers[idx].location == noderef.location;
        if (first_hop || !self.is_peer_at(noderef.location))
            && self.takes_newcomer(now, noderef.location)
        {
            if let Some(own) = self.opennet.own.clone() {
                self.opennet_stats.announce_replies_sent += 1;
                self.send(from, Message::AnnounceReply { id, noderef: own });
                // The announcer dials the replies it accepts (so one that
                // cannot accept links still joins); a relay that is still
                // joining itself dials too, whichever side is reachable wins.
                // (One that dialled every announcer while it had room would
                // fill up with newcomers alone: nodes arriving together would
                // form a clique cut off from the rest.) The driver's
                // per-address dial limit stops an announcement naming a third
                // party from making nodes dial it over and over.
                if !first_hop && !self.has_enough_peers() {
                    self.connect(noderef.clone(), ConnectReason::Announced);
                }
            }
        }
        if htl == 0 {
            return self.send(from, Message::AnnounceEnd { id, htl: 0 });
        }
        self.opennet_stats.announcements_relayed += 1;
        let announce = Announce {
            upstream: Some(from),
            noderef,
            htl,
            tried: Vec::new(),
            downstream: None,
            replies: 0,
            deadline: now.after(timeout),
        };
        self.opennet.announces.insert(id, announce);
        self.route_announce(now, id);
    }

    /// Sends an announcement to the closest untried peer to its target.
    fn route_announce(&mut self, now: Time, id: RequestId) {
        let Some(a) = self.opennet.announces.get(&id) else {
            return;
        };
        let target = a.noderef.location;
        let candidates = || {
            self.peers
                .iter()
                .filter(|p| p.backoff_until <= now)
                .filter(|p| Some(p.id) != a.upstream && !a.tried.contains(&p.id))
                // Never back to the announcer itself.
                .filter(|p| p.location != target)
        };
        // A seed hands announcements to its real peers; to other newcomers'
        // seed links only while it has no other peer to try.
        let own = a.upstream.is_none();
        let next = candidates()
            .filter(|p| own || p.kind != PeerKind::Seed)
            .min_by_key(|p| (p.location.distance(target), p.id))
            .or_else(|| candidates().min_by_key(|p| (p.location.distance(target), p.id)))
            .map(|p| p.id);
        let Some(a) = self.opennet.announces.get_mut(&id) else {
            return;
        };
        let Some(peer) = next else {
            let htl = a.htl;
            return self.finish_announce(now, id, htl);
        };
        a.tried.push(peer);
        a.downstream = Some(peer);
        let msg = Message::Announce {
            id,
            htl: a.htl,
            noderef: a.noderef.clone(),
        };
        self.send(peer, msg);
    }

    /// Ends an announcement here, telling whoever sent it.
    fn finish_announce(&mut self, now: Time, id: RequestId, htl: u8) {
        let Some(a) = self.opennet.announces.remove(&id) else {
            return;
        };
        if let Some(up) = a.upstream {
            return self.send(up, Message::AnnounceEnd { id, htl });
        }
        self.opennet.own_announce = None;
        if self.opennet.own_gained == 0 {
            self.opennet.failures = self.opennet.failures.saturating_add(1);
        }
        if let Some(cfg) = self.config.opennet.as_ref() {
            self.opennet.next_announce = now.after(cfg.announce_interval);
        }
    }

    /// Whether `id` is an announcement this node works on.
    pub(super) fn is_announce(&self, id: RequestId) -> bool {
        self.opennet.announces.contains_key(&id)
    }

    /// A reply to an announcement this node routed to `from`.
    pub(super) fn on_announce_reply(&mut self, now: Time, from: PeerId, msg: Message) {
        let id = msg.id();
        let Some(a) = self.opennet.announces.get_mut(&id) else {
            self.stats.unknown_replies += 1;
            return;
        };
        if a.downstream != Some(from) {
            // A peer tried before and given up on (timed out, backed off):
            // its late answers are dropped, not held against it.
            if !a.tried.contains(&from) {
                self.misbehaved(from, super::Misbehaviour::UnexpectedReply);
            }
            return;
        }
        match msg {
            Message::AnnounceReply { noderef, .. } => {
                if a.replies >= MAX_ANNOUNCE_REPLIES {
                    return;
                }
                a.replies += 1;
                match a.upstream {
                    Some(up) => self.send(up, Message::AnnounceReply { id, noderef }),
                    None => self.announce_offer(now, noderef),
                }
            }
            Message::AnnounceEnd { htl, .. } => {
                a.htl = a.htl.min(htl);
                if a.htl > 0 {
                    self.route_announce(now, id);
                } else {
                    self.finish_announce(now, id, 0);
                }
            }
            Message::Overloaded { .. } => {
                self.back_off(now, from);
                self.route_announce(now, id);
            }
            Message::RejectedLoop { .. } => self.route_announce(now, id),
            _ => self.misbehaved(from, super::Misbehaviour::UnexpectedReply),
        }
    }

    /// A node on our own announcement's path offers itself.
    fn announce_offer(&mut self, now: Time, noderef: NodeRef) {
        self.opennet_stats.announce_offers_received += 1;
        // The threshold decides when to announce; the replies fill the node up
        // to its target. They come from along a greedy path toward its own
        // location, whose hops lie at roughly halving distances: links of the
        // kind greedy routing needs. Folding reshapes them afterwards.
        let target = self.config.opennet.as_ref().map_or(0, |c| c.target_peers);
        let room = self.routing_peers() + (self.opennet.own_gained as usize) < target;
        if room {
            // The first hop offering itself: keep its seed link as a real one.
            if let Some(p) = self
                .peers
                .iter_mut()
                .find(|p| p.location == noderef.location && p.kind == PeerKind::Seed)
            {
                p.kind = PeerKind::Opennet;
                p.connected_at = now;
                self.opennet.own_gained += 1;
                return;
            }
        }
        let here = self.location;
        let nearest_offered = !self
            .opennet
            .own_dialled
            .iter()
            .any(|&d| d == noderef.location || nearer_on_same_side(here, d, noderef.location));
        let wanted = (room && self.wants_peer(now, Some(noderef.location)))
            || (nearest_offered && self.takes_ring_neighbour(noderef.location));
        if wanted && self.plausible(&noderef) && !self.is_peer_at(noderef.location) {
            self.opennet.own_gained += 1;
            self.opennet.own_dialled.push(noderef.location);
            self.connect(noderef, ConnectReason::Announced);
        }
    }

    /// The data source answered `from`'s request `id` (which arrived with
    /// `htl_in`) from its store: offer itself back along the path.
    pub(super) fn offer_fold(&mut self, now: Time, from: PeerId, id: RequestId, htl_in: u8) {
        if !self.opennet_enabled() || !self.config.may_cache(htl_in) || !self.wants_peer(now, None)
        {
            return;
        }
        let Some(own) = self.opennet.own.clone() else {
            return;
        };
        self.opennet_stats.fold_offers_made += 1;
        self.remember_fold(now, id, (from, id), None, true);
        self.send(from, Message::FoldOffer { id, noderef: own });
    }

    /// A relayed fetch succeeded: remember its neighbours for a fold offer,
    /// unless this hop is too near the originator (or is it).
    pub(super) fn note_fold_route(
        &mut self,
        now: Time,
        id: RequestId,
        upstream: (PeerId, RequestId),
        downstream: Option<PeerId>,
        htl_in: u8,
    ) {
        if self.opennet_enabled() && self.config.may_cache(htl_in) && downstream.is_some() {
            self.remember_fold(now, id, upstream, downstream, false);
        }
    }

    fn remember_fold(
        &mut self,
        now: Time,
        id: RequestId,
        upstream: (PeerId, RequestId),
        downstream: Option<PeerId>,
        ours: bool,
    ) {
        let ttl = self
            .config
            .opennet
            .as_ref()
            .map_or(Duration::ZERO, |c| c.fold_route_ttl);
        // Oldest first: expired routes and, when full, the oldest live one go.
        while let Some(old) = self.opennet.fold_order.front().copied() {
            let expired = self
                .opennet
                .folds
                .get(&old)
                .is_none_or(|r| r.expires <= now);
            let full = self.opennet.folds.len() >= MAX_FOLD_ROUTES
                || self.opennet.fold_order.len() >= 2 * MAX_FOLD_ROUTES;
            if !expired && !full {
                break;
            }
            self.opennet.fold_order.pop_front();
            self.opennet.folds.remove(&old);
        }
        let route = FoldRoute {
            upstream,
            downstream,
            ours,
            expires: now.after(ttl),
        };
        if self.opennet.folds.insert(id, route).is_none() {
            self.opennet.fold_order.push_back(id);
        }
    }

    fn take_fold(&mut self, now: Time, id: RequestId) -> Option<FoldRoute> {
        let route = self.opennet.folds.remove(&id)?;
        (route.expires > now).then_some(route)
    }

    /// A fold offer came back from `from` along request `id`'s path.
    pub(super) fn on_fold_offer<R: RngCore + ?Sized>(
        &mut self,
        now: Time,
        rng: &mut R,
        from: PeerId,
        id: RequestId,
        noderef: NodeRef,
    ) {
        let route = match self.opennet.folds.get(&id) {
            Some(r) if r.downstream == Some(from) => self.take_fold(now, id),
            _ => None,
        };
        let Some(route) = route else {
            // Unknown, expired, near the originator, or the originator itself.
            self.stats.unknown_replies += 1;
            return;
        };
        if !self.plausible(&noderef) {
            return;
        }
        let take = self
            .config
            .opennet
            .as_ref()
            .map_or(0.0, |c| c.fold_take_probability);
        // A new nearest neighbour is always taken; any other offer by chance.
        let wanted = self.takes_ring_neighbour(noderef.location)
            || (self.wants_peer(now, Some(noderef.location)) && coin(rng, take));
        if !self.is_peer_at(noderef.location) && wanted {
            if let Some(own) = self.opennet.own.clone() {
                self.opennet_stats.folds_taken += 1;
                self.send(from, Message::FoldReply { id, noderef: own });
                self.connect(noderef, ConnectReason::Folded);
            }
            return;
        }
        let p = self
            .config
            .opennet
            .as_ref()
            .map_or(0.0, |c| c.fold_replace_probability);
        let replace = coin(rng, p);
        let offered = match (replace, self.opennet.own.clone()) {
            (true, Some(own)) => {
                self.opennet_stats.fold_offers_replaced += 1;
                own
            }
            _ => noderef,
        };
        let (up, up_id) = route.upstream;
        self.remember_fold(now, id, route.upstream, route.downstream, replace);
        self.send(
            up,
            Message::FoldOffer {
                id: up_id,
                noderef: offered,
            },
        );
    }

    /// The hop that took a fold offer answered; `from` is upstream of us.
    pub(super) fn on_fold_reply(
        &mut self,
        now: Time,
        from: PeerId,
        id: RequestId,
        noderef: NodeRef,
    ) {
        let route = match self.opennet.folds.get(&id) {
            Some(r) if r.upstream.0 == from => self.take_fold(now, id),
            _ => None,
        };
        let Some(route) = route else {
            self.stats.unknown_replies += 1;
            return;
        };
        if route.ours {
            if self.plausible(&noderef) && !self.is_peer_at(noderef.location) {
                self.connect(noderef, ConnectReason::Folded);
            }
        } else if let Some(down) = route.downstream {
            self.send(down, Message::FoldReply { id, noderef });
        }
    }
}

#[cfg(test)]
#[path = "opennet_tests.rs"]
mod tests;
