//! What became of requests, per peer and for this node's own: plain counts
//! the core keeps where it decides each outcome, for status pages and metrics.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::node::Node;
use super::PeerId;

/// Largest value a [`Tally`] keeps apart; larger ones count as this.
pub const TALLY_MAX: u32 = 64;

/// How requests ended, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    /// Data found, or the insert went through.
    pub success: u64,
    pub not_found: u64,
    pub route_not_found: u64,
    /// Refused because the answering node had too many requests.
    pub overloaded: u64,
    pub rejected_loop: u64,
    pub timeout: u64,
}

/// One way a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    Success,
    NotFound,
    RouteNotFound,
    Overloaded,
    RejectedLoop,
    Timeout,
}

impl Outcomes {
    pub(super) fn add(&mut self, ended: Ended) {
        let slot = match ended {
            Ended::Success => &mut self.success,
            Ended::NotFound => &mut self.not_found,
            Ended::RouteNotFound => &mut self.route_not_found,
            Ended::Overloaded => &mut self.overloaded,
            Ended::RejectedLoop => &mut self.rejected_loop,
            Ended::Timeout => &mut self.timeout,
        };
        *slot += 1;
    }
}

/// One peer's figures over its current link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PeerTraffic {
    /// Requests routed to the peer that wait for its answer now.
    pub to_peer_in_flight: u32,
    /// Requests from the peer this node works on now.
    pub from_peer_in_flight: u32,
    /// How the peer answered requests routed to it.
    pub to_peer: Outcomes,
    /// How this node answered the peer's requests.
    pub from_peer: Outcomes,
    /// Protocol breaks: forged blocks, unexpected or duplicate replies, false collisions.
    pub misbehaved: u64,
}

/// Counts of small whole numbers (hops, peers asked), at most
/// [`TALLY_MAX`] + 1 entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally(BTreeMap<u32, u64>);

impl Tally {
    pub(crate) fn record(&mut self, value: u32) {
        *self.0.entry(value.min(TALLY_MAX)).or_insert(0) += 1;
    }

    /// `(value, how many times)`, smallest value first.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.0.iter().map(|(&v, &n)| (v, n))
    }

    pub fn count(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn sum(&self) -> u64 {
        self.0.iter().map(|(&v, &n)| u64::from(v) * n).sum()
    }
}

/// How this node's own requests went. A `DataFound` or `InsertReply`
/// carries no hops-to-live (it would tell every node on the path how far
/// away the data's holder is), so the hops the data travelled are not
/// known; what is known is how many peers this node asked, and how much HTL
/// a request used up when its last answer was a "not found" that says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LocalRoutes {
    /// Successful own fetches by peers asked (0: found in this node's store).
    pub fetch_peers_asked: Tally,
    /// Successful own inserts by peers asked.
    pub insert_peers_asked: Tally,
    /// Own fetches that found nothing, by HTL used up (start − HTL left in the last answer).
    pub fetch_htl_used: Tally,
    /// Own inserts that ended at "route not found", by HTL used up.
    pub insert_htl_used: Tally,
}

impl Node {
    /// A peer answered a request routed to it.
    pub(super) fn note_to_peer(&mut self, peer: PeerId, ended: Ended) {
        self.stats.to_peers.add(ended);
        if let Some(p) = self.peers.iter_mut().find(|p| p.id == peer) {
            p.traffic.to_peer.add(ended);
        }
    }

    /// This node answered a request from a peer.
    pub(super) fn note_from_peer(&mut self, peer: PeerId, ended: Ended) {
        self.stats.from_peers.add(ended);
        if let Some(p) = self.peers.iter_mut().find(|p| p.id == peer) {
            p.traffic.from_peer.add(ended);
        }
    }

    /// Each connected peer's figures, with the requests in flight counted now.
    pub fn peer_traffic(&self) -> impl Iterator<Item = (PeerId, PeerTraffic)> + '_ {
        let mut waiting: HashMap<PeerId, u32> = HashMap::new();
        for peer in self.requests.values().filter_map(|r| r.downstream) {
            *waiting.entry(peer).or_insert(0) += 1;
        }
        self.peers.iter().map(move |p| {
            let traffic = PeerTraffic {
                to_peer_in_flight: waiting.get(&p.id).copied().unwrap_or(0),
                from_peer_in_flight: p.serving,
                ..p.traffic
            };
            (p.id, traffic)
        })
    }
}
