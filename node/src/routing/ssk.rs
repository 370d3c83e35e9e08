//! SSK requests and inserts: routed like CHK ones (same HTL, backtracking,
//! loop and overload rules, same request state machine), with the block
//! checked by the SSK rules (routing key from public key and hashed name,
//! Ed25519 signature) at every node before it is stored, cached or relayed.
//!
//! The differences from CHK: an `SskInsert` carries its small block at once
//! (no `InsertData` step); a node holding a *different* block under the key
//! answers `SskCollision` with that block (the first block stays); SSK
//! fetches are not merged with others.

use rand_core::RngCore;
use warren_crypto::{RoutingKey, SskBlock};

use super::node::Node;
use super::request::{InsertStep, Kind, Outcome, Request, Waiter};
use super::{
    Action, BlockLookup, ClientId, FetchError, InsertError, Misbehaviour, SskInsertError, Time,
};
use crate::wire::{Message, RequestId};

/// An SSK block from the local store, if it really is the block named `key`.
pub(super) fn lookup_ssk<S: BlockLookup + ?Sized>(store: &S, key: &RoutingKey) -> Option<SskBlock> {
    store.get_ssk(key).filter(|b| b.routing_key() == *key)
}

impl Node {
    pub(super) fn on_ssk_request<S: BlockLookup + ?Sized>(
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
        if let Some(block) = lookup_ssk(store, &key) {
            self.stats.answered_from_store += 1;
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
            self.send(from, Message::DataNotFound { id, htl: 0 });
            return;
        }
        self.peers[idx].serving += 1;
        self.stats.requests_accepted += 1;
        self.send(from, Message::Accepted { id });
        let mut req = Request::new(
            Kind::SskFetch,
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
        self.route_next(now, id);
    }

    /// An SSK insert from `peers[idx]`, block included: verify, check for a
    /// collision, then route it like a CHK insert whose block has arrived.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_ssk_insert<S: BlockLookup + ?Sized>(
        &mut self,
        now: Time,
        store: &S,
        idx: usize,
        id: RequestId,
        key: RoutingKey,
        htl: u8,
        bytes: Vec<u8>,
    ) {
        let from = self.peers[idx].id;
        if self.reject_if_loop(from, id) {
            return;
        }
        let Ok(block) = SskBlock::verify(key, bytes) else {
            return self.misbehaved(from, Misbehaviour::ForgedBlock);
        };
        if let Some(existing) = lookup_ssk(store, &key) {
            if existing != block {
                let block = existing.into_bytes();
                return self.send(from, Message::SskCollision { id, block });
            }
        }
        if !self.has_capacity(idx) {
            self.refuse_overloaded(from, id);
            return;
        }
        let htl_in = htl.min(self.config.max_htl);
        let htl = self.decrement(idx, htl_in);
        let source_location = self.peers[idx].location;
        self.peers[idx].serving += 1;
        self.stats.inserts_accepted += 1;
        self.send(from, Message::Accepted { id });
        let step = self.insert_step(&key, from, source_location);
        let mut req = Request::new(
            Kind::SskInsert(block),
            key,
            htl_in,
            htl,
            Waiter::Peer { peer: from, id },
            now,
            self.config.request_lifetime,
        );
        req.source_location = Some(source_location);
        req.sink = step != InsertStep::Forward;
        self.requests.insert(id, req);
        let second_copy = step == InsertStep::Sink && self.config.sink_second_copy;
        if htl == 0 || (step != InsertStep::Forward && !second_copy) {
            self.finish(id, Outcome::Inserted);
        } else {
            self.route_next(now, id);
        }
    }

    /// A verified answer to fetch `id` came from `from`: credit it, note the
    /// fold route, and answer everyone waiting.
    pub(super) fn found(
        &mut self,
        now: Time,
        id: RequestId,
        from: super::PeerId,
        outcome: Outcome,
    ) {
        let upstream = self
            .requests
            .get(&id)
            .and_then(|req| match req.waiters.first() {
                Some(&Waiter::Peer { peer, id: up }) => Some(((peer, up), req.htl_in)),
                _ => None,
            });
        self.note_success(now, from);
        if let Some((upstream, htl_in)) = upstream {
            self.note_fold_route(now, id, upstream, Some(from), htl_in);
        }
        self.finish(id, outcome);
    }

    pub(super) fn local_fetch_ssk<R, S>(
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
        if let Some(block) = lookup_ssk(store, &key) {
            let result = Ok(block);
            self.actions
                .push_back(Action::SskFetchDone { client, result });
            return;
        }
        if self.live_requests() >= self.config.max_live_requests {
            let result = Err(FetchError::Overloaded);
            self.actions
                .push_back(Action::SskFetchDone { client, result });
            return;
        }
        let id = self.fresh_id(rng);
        let htl = self.config.max_htl;
        self.draw_local_walk(rng);
        let mut req = Request::new(
            Kind::SskFetch,
            key,
            htl,
            htl,
            Waiter::Client(client),
            now,
            self.config.request_lifetime,
        );
        req.walk = self.walk_order(None, htl, htl);
        self.requests.insert(id, req);
        self.route_next(now, id);
    }

    pub(super) fn local_insert_ssk<R, S>(
        &mut self,
        now: Time,
        rng: &mut R,
        store: &S,
        client: ClientId,
        block: SskBlock,
    ) where
        R: RngCore + ?Sized,
        S: BlockLookup + ?Sized,
    {
        let key = block.routing_key();
        if let Some(existing) = lookup_ssk(store, &key) {
            if existing != block {
                let result = Err(SskInsertError::Collision(existing));
                self.actions
                    .push_back(Action::SskInsertDone { client, result });
                return;
            }
        }
        if self.live_requests() >= self.config.max_live_requests {
            let result = Err(SskInsertError::Insert(InsertError::Overloaded));
            self.actions
                .push_back(Action::SskInsertDone { client, result });
            return;
        }
        // As for CHKs, the originator neither stores nor caches its own insert.
        let id = self.fresh_id(rng);
        let htl = self.config.max_htl;
        let req = Request::new(
            Kind::SskInsert(block),
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
