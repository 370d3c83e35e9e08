//! One request's life at one node: accept, route, backtrack, finish.

use warren_crypto::{ChkBlock, Location, RoutingKey, SskBlock};

use super::node::{lookup, Node};
use super::traffic::Ended;
use super::{
    Action, Area, BlockLookup, FetchError, InsertError, Misbehaviour, PeerId, SskInsertError, Time,
};
use crate::routing::ClientId;
use crate::wire::{Message, RequestId};

/// What a request is after.
#[derive(Debug)]
pub(super) enum Kind {
    Fetch,
    /// An insert carries its verified block until it is stored or cached here.
    Insert(ChkBlock),
    /// A fetch of an SSK block (never merged with other fetches).
    SskFetch,
    /// An SSK insert, with its verified block.
    SskInsert(SskBlock),
}

/// Who is waiting for a request's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waiter {
    /// A peer, answered under its own request id.
    Peer { peer: PeerId, id: RequestId },
    /// A local client of this node.
    Client(ClientId),
}

impl Waiter {
    pub(super) fn peer(self) -> Option<PeerId> {
        match self {
            Waiter::Peer { peer, .. } => Some(peer),
            Waiter::Client(_) => None,
        }
    }
}

/// How a request ended here.
#[derive(Debug)]
pub(super) enum Outcome {
    Found(ChkBlock),
    FoundSsk(SskBlock),
    /// An SSK insert met another block under its key: that block.
    Collision(SskBlock),
    NotFound {
        htl: u8,
    },
    RouteNotFound {
        htl: u8,
    },
    Inserted,
    Timeout,
}

/// The block an insert carries, by key type.
#[derive(Debug)]
enum Stored {
    Chk(ChkBlock),
    Ssk(SskBlock),
}

/// What a node does with an insert whose block has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InsertStep {
    /// Not a sink: route it on toward the key.
    Forward,
    /// Closer to the key than every peer but the sender: store it here.
    Sink,
    /// It came from a peer closer to the key: store it here, go no farther.
    StepAway,
}

/// An insert accepted here whose block has not arrived yet.
#[derive(Debug)]
pub(super) struct PendingInsert {
    pub(super) from: PeerId,
    key: RoutingKey,
    htl_in: u8,
    htl: u8,
    source_location: Location,
    pub(super) deadline: Time,
}

/// A request this node is working on.
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // independent facts about one request, not a state machine
pub(super) struct Request {
    pub(super) kind: Kind,
    pub(super) key: RoutingKey,
    /// HTL as it arrived (the maximum for local requests): decides caching.
    pub(super) htl_in: u8,
    /// Hops left to hand on to the next peer.
    pub(super) htl: u8,
    /// Who gets the answer; the first is the request that created this one.
    pub(super) waiters: Vec<Waiter>,
    /// Location of the peer the request came from, for the sink rule.
    pub(super) source_location: Option<Location>,
    /// Peers routed to so far, with their locations at the time.
    pub(super) tried: Vec<(PeerId, Location)>,
    /// The peer currently working on it.
    pub(super) downstream: Option<PeerId>,
    /// Whether `downstream` has accepted it.
    pub(super) accepted: bool,
    /// Whether any peer has taken it on (an insert that did is not lost).
    pub(super) reached: bool,
    /// An insert whose route ends here by the sink rule: it goes to the store.
    pub(super) sink: bool,
    /// "Not found, no hops left" claims doubted so far (see
    /// `RoutingConfig::not_found_doubts`).
    pub(super) doubts: u8,
    /// A peer refused it as overloaded, or was passed over while backed off:
    /// a route that then runs out is busy, not missing.
    pub(super) met_overload: bool,
    /// The walk order this fetch follows while at the maximum HTL
    /// (`RoutingConfig::max_htl_walk`); `None` routes toward the key.
    pub(super) walk: Option<u64>,
    pub(super) deadline: Time,
    /// The hard end of this request's life here, whatever its peers say:
    /// no reply can keep it (and its id) alive past this.
    pub(super) expires: Time,
}

impl Request {
    pub(super) fn new(
        kind: Kind,
        key: RoutingKey,
        htl_in: u8,
        htl: u8,
        first: Waiter,
        now: Time,
        lifetime: core::time::Duration,
    ) -> Self {
        Request {
            kind,
            key,
            htl_in,
            htl,
            waiters: vec![first],
            source_location: None,
            tried: Vec::new(),
            downstream: None,
            accepted: false,
            reached: false,
            sink: false,
            doubts: 0,
            met_overload: false,
            walk: None,
            deadline: now,
            expires: now.after(lifetime),
        }
    }

    /// Sets the next deadline, never past the request's hard end.
    pub(super) fn set_deadline(&mut self, at: Time) {
        self.deadline = at.min(self.expires);
    }

    pub(super) fn has_peer_waiter(&self, peer: PeerId) -> bool {
        self.waiters.iter().any(|w| w.peer() == Some(peer))
    }

    fn was_tried(&self, peer: PeerId) -> bool {
        self.tried.iter().any(|(p, _)| *p == peer)
    }

    fn is_insert(&self) -> bool {
        matches!(self.kind, Kind::Insert(_) | Kind::SskInsert(_))
    }
}

impl Node {
    /// Whether this node takes on another request from `peers[idx]`.
    pub(super) fn has_capacity(&self, idx: usize) -> bool {
        !self.backlogged
            && self.peers[idx].serving < self.config.max_requests_per_peer
            && self.live_requests() < self.config.max_live_requests
            && self
                .config
                .max_served_requests
                .is_none_or(|max| self.served_requests() < max)
    }

    /// Requests from peers this node is working on.
    fn served_requests(&self) -> usize {
        self.peers.iter().map(|p| p.serving as usize).sum()
    }

    /// Answers `RejectedLoop` if `id` is live here: the request came round again.
    pub(super) fn reject_if_loop(&mut self, from: PeerId, id: RequestId) -> bool {
        if !self.is_live(id) {
            return false;
        }
        self.stats.loops_rejected += 1;
        self.note_from_peer(from, Ended::RejectedLoop);
        self.send(from, Message::RejectedLoop { id });
        true
    }

    pub(super) fn refuse_overloaded(&mut self, to: PeerId, id: RequestId) {
        self.stats.overloaded_sent += 1;
        self.note_from_peer(to, Ended::Overloaded);
        self.send(to, Message::Overloaded { id });
    }

    pub(super) fn on_request<S: BlockLookup + ?Sized>(
        &mut self,
        now: Time,
        store: &S,
        idx: usize,
        id: RequestId,
        key: RoutingKey,
        htl: u8,
    ) {
        let from = self.peers[idx].id;
        if self.reject_if_loop(from, id) {
            return;
        }
        // A block from the store costs outbound bandwidth too; asked before
        // the store is, so a refusal says nothing about what it holds.
        if self.backlogged {
            self.refuse_overloaded(from, id);
            return;
        }
        if let Some(block) = lookup(store, &key) {
            self.stats.answered_from_store += 1;
            self.note_from_peer(from, Ended::Success);
            let block = block.into_bytes();
            self.send(from, Message::DataFound { id, block });
            self.offer_fold(now, from, id, htl.min(self.config.max_htl));
            return;
        }
        if !self.has_capacity(idx) {
            self.refuse_overloaded(from, id);
            return;
        }
        let htl_in = htl.min(self.config.max_htl);
        let htl = self.decrement(idx, htl_in);
        if htl == 0 {
            self.note_from_peer(from, Ended::NotFound);
            self.send(from, Message::DataNotFound { id, htl: 0 });
            return;
        }
        if self.try_merge(idx, id, key, htl) {
            return;
        }
        self.peers[idx].serving += 1;
        self.stats.requests_accepted += 1;
        self.send(from, Message::Accepted { id });
        let mut req = Request::new(
            Kind::Fetch,
            key,
            htl_in,
            htl,
            Waiter::Peer { peer: from, id },
            now,
            self.config.request_lifetime,
        );
        req.source_location = Some(self.peers[idx].location);
        req.walk = self.walk_order(Some(idx), htl_in, htl);
        self.requests.insert(id, req);
        self.fetch_by_key.entry(key).or_insert(id);
        self.route_next(now, id);
    }

    /// Joins an identical fetch already in flight here, if it searches at least
    /// as deep and is not waiting on the asking peer itself.
    fn try_merge(&mut self, idx: usize, id: RequestId, key: RoutingKey, htl: u8) -> bool {
        let Some(&live) = self.fetch_by_key.get(&key) else {
            return false;
        };
        let from = self.peers[idx].id;
        let max_waiters = self.config.max_waiters;
        let Some(req) = self.requests.get_mut(&live) else {
            return false;
        };
        if req.htl < htl || req.waiters.len() >= max_waiters || req.was_tried(from) {
            return false;
        }
        req.waiters.push(Waiter::Peer { peer: from, id });
        self.aliases.insert(id, live);
        self.peers[idx].serving += 1;
        self.stats.merged += 1;
        self.send(from, Message::Accepted { id });
        true
    }

    /// An insert offered by `peers[idx]`: accept it and wait for its block.
    pub(super) fn on_insert(
        &mut self,
        now: Time,
        idx: usize,
        id: RequestId,
        key: RoutingKey,
        htl: u8,
    ) {
        let from = self.peers[idx].id;
        if self.reject_if_loop(from, id) {
            return;
        }
        if !self.has_capacity(idx) {
            self.refuse_overloaded(from, id);
            return;
        }
        let htl_in = htl.min(self.config.max_htl);
        let pending = PendingInsert {
            from,
            key,
            htl_in,
            htl: self.decrement(idx, htl_in),
            source_location: self.peers[idx].location,
            deadline: now.after(self.config.accept_timeout),
        };
        self.peers[idx].serving += 1;
        self.awaiting_data.insert(id, pending);
        self.send(from, Message::Accepted { id });
    }

    /// The block of an insert accepted from `from`: verify it, then route it.
    pub(super) fn on_insert_data<S: BlockLookup + ?Sized>(
        &mut self,
        now: Time,
        store: &S,
        from: PeerId,
        id: RequestId,
        bytes: Vec<u8>,
    ) {
        match self.awaiting_data.get(&id) {
            Some(p) if p.from == from => {}
            Some(_) => return self.misbehaved(from, Misbehaviour::UnexpectedReply),
            None => {
                self.stats.unknown_replies += 1;
                return;
            }
        }
        let Some(p) = self.awaiting_data.remove(&id) else {
            return;
        };
        let Ok(block) = ChkBlock::verify(p.key, bytes) else {
            self.release(from);
            return self.misbehaved(from, Misbehaviour::ForgedBlock);
        };
        if lookup(store, &p.key).is_some_and(|old| old.as_bytes() != block.as_bytes()) {
            self.release(from);
            return self.send(from, Message::InsertCollision { id });
        }
        self.stats.inserts_accepted += 1;
        let step = self.insert_step(&p.key, from, p.source_location);
        let first = Waiter::Peer { peer: from, id };
        let lifetime = self.config.request_lifetime;
        let mut req = Request::new(
            Kind::Insert(block),
            p.key,
            p.htl_in,
            p.htl,
            first,
            now,
            lifetime,
        );
        req.source_location = Some(p.source_location);
        req.sink = step != InsertStep::Forward;
        self.requests.insert(id, req);
        let second_copy = step == InsertStep::Sink && self.config.sink_second_copy;
        if p.htl == 0 || (step != InsertStep::Forward && !second_copy) {
            self.finish(id, Outcome::Inserted);
        } else {
            // Forward toward the key; a sink hands one more copy to its
            // closest peer, which ends it there (a step away from the key).
            self.route_next(now, id);
        }
    }

    /// Drops inserts whose block did not come in time.
    pub(super) fn expire_awaiting_data(&mut self, now: Time) {
        let mut expired: Vec<(RequestId, PeerId)> = self
            .awaiting_data
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, p)| (*id, p.from))
            .collect();
        expired.sort_unstable();
        for (id, from) in expired {
            self.stats.timeouts += 1;
            self.awaiting_data.remove(&id);
            self.note_from_peer(from, Ended::Timeout);
            self.release(from);
        }
    }

    /// One fewer request served for `peer`.
    pub(super) fn release(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.id == peer) {
            p.serving = p.serving.saturating_sub(1);
        }
    }

    pub(super) fn on_reply(&mut self, now: Time, from: PeerId, msg: Message) {
        let id = msg.id();
        let search_timeout = self.config.search_timeout;
        let Some(req) = self.requests.get_mut(&id) else {
            // Normal after a timeout or PeerDown: ids are forgotten on completion.
            self.stats.unknown_replies += 1;
            return;
        };
        if req.downstream != Some(from) {
            if req.was_tried(from) {
                // A peer given up on (too slow to accept, or stalled) that
                // answers late: nothing to do with it, and no offence.
                self.stats.unknown_replies += 1;
            } else {
                self.misbehaved(from, Misbehaviour::UnexpectedReply);
            }
            return;
        }
        let insert = req.is_insert();
        match msg {
            Message::Accepted { .. } if req.accepted => {
                // A second Accepted would reset the deadline (pinning the
                // request and its id for ever) and, for an insert, pull the
                // block again: a protocol break, not a keepalive.
                self.misbehaved(from, Misbehaviour::DuplicateReply);
            }
            Message::Accepted { .. } => {
                req.accepted = true;
                req.reached = true;
                // Fewer hops left, less time: the node next to a peer that
                // accepts and then stalls gives up before those upstream,
                // and can still try another peer in their time.
                let max = u32::from(self.config.max_htl) + 1;
                let share = (u32::from(req.htl) + 1).min(max);
                req.set_deadline(now.after(search_timeout * share / max));
                if let Kind::Insert(block) = &req.kind {
                    let block = block.as_bytes().to_vec();
                    self.send(from, Message::InsertData { id, block });
                }
                self.reset_backoff(from);
            }
            Message::RejectedLoop { .. } => {
                self.note_to_peer(from, Ended::RejectedLoop);
                self.route_next(now, id);
            }
            Message::Overloaded { .. } => {
                req.met_overload = true;
                self.note_to_peer(from, Ended::Overloaded);
                self.back_off(now, from);
                self.route_next(now, id);
            }
            Message::DataNotFound { htl, .. } | Message::RouteNotFound { htl, .. } => {
                let not_found = matches!(msg, Message::DataNotFound { .. }) && !insert;
                let key = req.key;
                let ended = if matches!(msg, Message::DataNotFound { .. }) {
                    Ended::NotFound
                } else {
                    Ended::RouteNotFound
                };
                self.note_to_peer(from, ended);
                self.failures.record(now, key, from);
                let Some(req) = self.requests.get(&id) else {
                    return;
                };
                let doubt = htl == 0
                    && req.htl > 1
                    && req.doubts < self.config.not_found_doubts
                    && !self.is_trusted(now, from)
                    && self.next_peer(now, id).is_some();
                let Some(req) = self.requests.get_mut(&id) else {
                    return;
                };
                req.reached = true;
                if doubt {
                    // One peer near the key answering "not found, no hops
                    // left" would otherwise censor it. Its claim cannot be
                    // checked, so spend half of our own budget on the next
                    // peer; bounded (a few doubts, halved HTL) so an honest
                    // not-found search costs a small multiple, not a blow-up.
                    req.doubts += 1;
                    req.htl /= 2;
                    self.stats.not_found_doubted += 1;
                } else {
                    req.htl = req.htl.min(htl);
                }
                if req.htl > 0 {
                    self.route_next(now, id);
                } else if insert {
                    self.finish(id, Outcome::Inserted);
                } else {
                    self.finish(id, Outcome::NotFound { htl: 0 });
                }
                if not_found {
                    self.note_not_found(now, from);
                }
            }
            Message::DataFound { block, .. } if matches!(req.kind, Kind::SskFetch) => {
                if let Ok(block) = SskBlock::verify(req.key, block) {
                    self.found(now, id, from, Outcome::FoundSsk(block));
                } else {
                    self.misbehaved(from, Misbehaviour::ForgedBlock);
                    self.route_next(now, id);
                }
            }
            Message::SskCollision { block, .. } if matches!(req.kind, Kind::SskInsert(_)) => {
                if let Ok(theirs) = SskBlock::verify(req.key, block) {
                    let same = matches!(&req.kind, Kind::SskInsert(ours) if *ours == theirs);
                    // Our own block back is no collision: it is there already.
                    let outcome = if same {
                        Outcome::Inserted
                    } else {
                        Outcome::Collision(theirs)
                    };
                    self.finish(id, outcome);
                } else {
                    self.misbehaved(from, Misbehaviour::ForgedBlock);
                    self.route_next(now, id);
                }
            }
            Message::DataFound { block, .. } if !insert => {
                if let Ok(block) = ChkBlock::verify(req.key, block) {
                    let upstream = match req.waiters.first() {
                        Some(&Waiter::Peer { peer, id: up }) => Some(((peer, up), req.htl_in)),
                        _ => None,
                    };
                    self.note_success(now, from);
                    self.note_to_peer(from, Ended::Success);
                    // Data proves the peer is serving again (a block from its
                    // store comes with no `Accepted` that would say so).
                    self.reset_backoff(from);
                    if let Some((upstream, htl_in)) = upstream {
                        self.note_fold_route(now, id, upstream, Some(from), htl_in);
                    }
                    self.finish(id, Outcome::Found(block));
                } else {
                    // Penalise the forger; the request goes on elsewhere.
                    self.misbehaved(from, Misbehaviour::ForgedBlock);
                    self.route_next(now, id);
                }
            }
            Message::InsertReply { .. } if insert => {
                self.note_to_peer(from, Ended::Success);
                self.finish(id, Outcome::Inserted);
            }
            Message::InsertCollision { .. } if matches!(req.kind, Kind::Insert(_)) => {
                // A CHK's key is the hash of its block: different data under
                // the same key needs a SHA-256 collision. The peer is lying;
                // the insert goes on elsewhere.
                self.misbehaved(from, Misbehaviour::FalseCollision);
                self.route_next(now, id);
            }
            _ => {
                self.misbehaved(from, Misbehaviour::UnexpectedReply);
                self.route_next(now, id);
            }
        }
    }

    /// The best peer request `id` has not been routed to yet: peers that said
    /// "not found" for its key lately come last.
    pub(super) fn next_peer(&self, now: Time, id: RequestId) -> Option<(PeerId, Location)> {
        let req = self.requests.get(&id)?;
        // Walk only while the budget is untouched: a "not found" that left
        // fewer hops, or a doubt that halved them, routes toward the key.
        if let Some(walk) = req.walk.filter(|_| req.htl >= self.config.max_htl) {
            return self.walk_peer(now, walk, |p| req.was_tried(p) || req.has_peer_waiter(p));
        }
        let failures = &self.failures;
        self.best_peer(now, &req.key, |p| {
            req.was_tried(p) || req.has_peer_waiter(p) || failures.failed(now, &req.key, p)
        })
        .or_else(|| {
            self.best_peer(now, &req.key, |p| {
                req.was_tried(p) || req.has_peer_waiter(p)
            })
        })
    }

    /// Sends the request to the best untried peer, or ends it with `RouteNotFound`.
    pub(super) fn route_next(&mut self, now: Time, id: RequestId) {
        let next = self.next_peer(now, id);
        let accept_timeout = self.config.accept_timeout;
        let backed_off = next.is_none()
            && self.requests.get(&id).is_some_and(|req| {
                self.peers.iter().any(|p| {
                    p.backoff_until > now && !req.was_tried(p.id) && !req.has_peer_waiter(p.id)
                })
            });
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        let Some((peer, location)) = next else {
            let htl = req.htl;
            req.met_overload |= backed_off;
            self.finish(id, Outcome::RouteNotFound { htl });
            return;
        };
        req.tried.push((peer, location));
        req.downstream = Some(peer);
        req.accepted = false;
        req.set_deadline(now.after(accept_timeout));
        let (key, htl) = (req.key, req.htl);
        let msg = match &req.kind {
            Kind::Fetch => Message::Request { id, key, htl },
            // The block follows once the peer accepts.
            Kind::Insert(_) => Message::Insert { id, key, htl },
            Kind::SskFetch => Message::SskRequest { id, key, htl },
            // Small enough to travel with the insert.
            Kind::SskInsert(block) => Message::SskInsert {
                id,
                key,
                htl,
                block: block.as_bytes().to_vec(),
            },
        };
        self.send(peer, msg);
    }

    /// Drops a request from every table and returns it.
    pub(super) fn forget(&mut self, id: RequestId) -> Option<Request> {
        let req = self.requests.remove(&id)?;
        if self.fetch_by_key.get(&req.key) == Some(&id) {
            self.fetch_by_key.remove(&req.key);
        }
        for w in &req.waiters {
            if let Waiter::Peer { id: alias, .. } = w {
                self.aliases.remove(alias);
            }
        }
        Some(req)
    }

    /// Ends a request: answers everyone waiting and writes to the store if the rules allow.
    pub(super) fn finish(&mut self, id: RequestId, outcome: Outcome) {
        let Some(mut req) = self.forget(id) else {
            return;
        };

        for w in &req.waiters {
            if let Some(p) = w
                .peer()
                .and_then(|peer| self.peers.iter_mut().find(|p| p.id == peer))
            {
                p.serving = p.serving.saturating_sub(1);
            }
        }
        match std::mem::replace(&mut req.kind, Kind::Fetch) {
            Kind::Fetch => self.finish_fetch(&req, outcome, false),
            Kind::SskFetch => self.finish_fetch(&req, outcome, true),
            Kind::Insert(block) => self.finish_insert(&req, Stored::Chk(block), outcome),
            Kind::SskInsert(block) => self.finish_insert(&req, Stored::Ssk(block), outcome),
        }
    }

    fn finish_fetch(&mut self, req: &Request, outcome: Outcome, ssk: bool) {
        let relayed = matches!(req.waiters.first(), Some(Waiter::Peer { .. }));
        if let Outcome::FoundSsk(block) = outcome {
            if relayed && self.config.may_cache(req.htl_in) {
                let block = block.clone();
                self.actions.push_back(Action::StoreSsk { block });
            }
            for w in &req.waiters {
                match *w {
                    Waiter::Peer { peer, id } => {
                        let block = block.as_bytes().to_vec();
                        self.send(peer, Message::DataFound { id, block });
                    }
                    Waiter::Client(client) => {
                        let result = Ok(block.clone());
                        self.actions
                            .push_back(Action::SskFetchDone { client, result });
                    }
                }
            }
            return;
        }
        if let Outcome::Found(block) = outcome {
            // A node's own requests never enter its cache (that would show what it
            // asked for); relayed ones do, except near the originator.
            if relayed && self.config.may_cache(req.htl_in) {
                let block = block.clone();
                self.actions.push_back(Action::Store {
                    area: Area::Cache,
                    block,
                });
            }
            let asked = peers_asked(req);
            for w in &req.waiters {
                match *w {
                    Waiter::Peer { peer, id } => {
                        self.note_from_peer(peer, Ended::Success);
                        let block = block.as_bytes().to_vec();
                        self.send(peer, Message::DataFound { id, block });
                    }
                    Waiter::Client(client) => {
                        self.stats.local.fetch_peers_asked.record(asked);
                        let result = Ok(block.clone());
                        self.actions.push_back(Action::FetchDone { client, result });
                    }
                }
            }
            return;
        }
        let (route, htl, error) = match outcome {
            // The local client may try again later; peers upstream hear
            // "route not found" as before and route elsewhere.
            Outcome::RouteNotFound { htl } if req.met_overload => {
                (true, htl, FetchError::Overloaded)
            }
            Outcome::RouteNotFound { htl } => (true, htl, FetchError::RouteNotFound),
            Outcome::NotFound { htl } => (false, htl, FetchError::DataNotFound),
            Outcome::Timeout => (false, 0, FetchError::Timeout),
            _ => (false, 0, FetchError::DataNotFound),
        };
        let ended = match error {
            FetchError::RouteNotFound | FetchError::Overloaded => Ended::RouteNotFound,
            FetchError::Timeout => Ended::Timeout,
            _ => Ended::NotFound,
        };
        let used = self.config.max_htl.saturating_sub(htl);
        for w in &req.waiters {
            match *w {
                Waiter::Peer { peer, id } if route => {
                    self.note_from_peer(peer, ended);
                    self.send(peer, Message::RouteNotFound { id, htl });
                }
                Waiter::Peer { peer, id } => {
                    self.note_from_peer(peer, ended);
                    self.send(peer, Message::DataNotFound { id, htl });
                }
                Waiter::Client(client) if ssk => {
                    let result = Err(error);
                    self.actions
                        .push_back(Action::SskFetchDone { client, result });
                }
                Waiter::Client(client) => {
                    if ended != Ended::Timeout {
                        self.stats.local.fetch_htl_used.record(u32::from(used));
                    }
                    let result = Err(error);
                    self.actions.push_back(Action::FetchDone { client, result });
                }
            }
        }
    }

    fn finish_insert(&mut self, req: &Request, block: Stored, outcome: Outcome) {
        let Some(&first) = req.waiters.first() else {
            return;
        };
        match first {
            Waiter::Peer { peer, id } => {
                let collision = matches!(outcome, Outcome::Collision(_));
                // A collision stores nothing: the first block under a key stays.
                match (self.insert_area(req), block) {
                    (Some(_), _) if collision => {}
                    (Some(area), Stored::Chk(block)) => {
                        self.actions.push_back(Action::Store { area, block });
                    }
                    (Some(_), Stored::Ssk(block)) => {
                        self.actions.push_back(Action::StoreSsk { block });
                    }
                    (None, _) => {}
                }
                let (msg, ended) = match outcome {
                    Outcome::Collision(existing) => (
                        Message::SskCollision {
                            id,
                            block: existing.into_bytes(),
                        },
                        Ended::Success,
                    ),
                    // A sink stored the block whatever became of its second copy.
                    _ if req.sink => (Message::InsertReply { id }, Ended::Success),
                    Outcome::RouteNotFound { htl } => {
                        (Message::RouteNotFound { id, htl }, Ended::RouteNotFound)
                    }
                    Outcome::Timeout => (Message::RouteNotFound { id, htl: 0 }, Ended::Timeout),
                    _ => (Message::InsertReply { id }, Ended::Success),
                };
                self.note_from_peer(peer, ended);
                self.send(peer, msg);
            }
            Waiter::Client(client) => {
                let not_found_htl = match &outcome {
                    Outcome::RouteNotFound { htl } => Some(*htl),
                    _ => None,
                };
                let result = match outcome {
                    Outcome::Timeout => Err(InsertError::Timeout),
                    Outcome::Inserted => Ok(()),
                    Outcome::Collision(existing) => {
                        let result = Err(SskInsertError::Collision(existing));
                        self.actions
                            .push_back(Action::SskInsertDone { client, result });
                        return;
                    }
                    _ if req.reached => Ok(()),
                    _ if req.met_overload => Err(InsertError::Overloaded),
                    _ => Err(InsertError::RouteNotFound),
                };
                if result.is_ok() {
                    self.stats.local.insert_peers_asked.record(peers_asked(req));
                }
                if let Some(htl) = not_found_htl {
                    let used = self.config.max_htl.saturating_sub(htl);
                    self.stats.local.insert_htl_used.record(u32::from(used));
                }
                match block {
                    Stored::Chk(_) => self
                        .actions
                        .push_back(Action::InsertDone { client, result }),
                    Stored::Ssk(_) => {
                        let result = result.map_err(SskInsertError::Insert);
                        self.actions
                            .push_back(Action::SskInsertDone { client, result });
                    }
                }
            }
        }
    }

    /// Whether an insert for `key` that came from `from` (at `source`) ends
    /// here. Past a sink every hop leads away from the key: it would only
    /// spread cache copies at the cost of a block transfer per hop.
    pub(super) fn insert_step(
        &self,
        key: &RoutingKey,
        from: PeerId,
        source: Location,
    ) -> InsertStep {
        let target = key.location();
        let mine = self.location.distance(target);
        if source.distance(target) < mine {
            // Only an originator that is itself nearest, a sink passing on its
            // second copy, or a backtrack sends an insert away from the key:
            // going on would wander away from it.
            return InsertStep::StepAway;
        }
        let others = self.peers.iter().filter(|p| p.id != from);
        if others
            .map(|p| p.location.distance(target))
            .all(|d| mine < d)
        {
            InsertStep::Sink
        } else {
            InsertStep::Forward
        }
    }

    /// Where a relayed insert goes: the store at a sink (closer to the key than
    /// the peer it came from and every peer it was routed to), else the cache
    /// unless near the originator.
    fn insert_area(&self, req: &Request) -> Option<Area> {
        if req.sink {
            return Some(Area::Store);
        }
        let target = req.key.location();
        let mine = self.location.distance(target);
        let closer = |loc: &Location| mine < loc.distance(target);
        let sink = req.source_location.as_ref().is_none_or(closer)
            && req.tried.iter().all(|(_, loc)| closer(loc));
        if sink {
            Some(Area::Store)
        } else if self.config.may_cache(req.htl_in) {
            Some(Area::Cache)
        } else {
            None
        }
    }
}

/// Peers a request was routed to here.
fn peers_asked(req: &Request) -> u32 {
    u32::try_from(req.tried.len()).unwrap_or(u32::MAX)
}
