//! One node driven by hand: every rule checked through inputs and outputs.
//! Multi-node runs in virtual time live in `crate::sim::tests`.

use std::collections::HashMap;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use warren_crypto::{ChkBlock, Location, RoutingKey};

use super::*;
use crate::sim::sim_block;
use crate::wire::{Message, RequestId};

#[derive(Default)]
struct MapStore(HashMap<RoutingKey, ChkBlock>);

impl BlockLookup for MapStore {
    fn get(&self, key: &RoutingKey) -> Option<ChkBlock> {
        self.0.get(key).cloned()
    }
}

/// One node, its store, its RNG and a clock.
struct One {
    node: Node,
    store: MapStore,
    rng: ChaCha8Rng,
    now: Time,
}

impl One {
    fn new(config: RoutingConfig, location: Location) -> Self {
        One {
            node: Node::new(config, location),
            store: MapStore::default(),
            rng: ChaCha8Rng::seed_from_u64(9),
            now: Time::ZERO,
        }
    }

    fn handle(&mut self, event: Event) -> Vec<Action> {
        self.node
            .handle(self.now, &mut self.rng, &self.store, event);
        std::iter::from_fn(|| self.node.poll_action()).collect()
    }

    fn up(&mut self, peer: u64, location: Location) {
        let peer = PeerId(peer);
        let kind = PeerKind::Friend;
        assert!(self
            .handle(Event::PeerUp {
                peer,
                location,
                kind
            })
            .is_empty());
    }

    fn msg(&mut self, from: u64, msg: Message) -> Vec<Action> {
        self.handle(Event::Message {
            from: PeerId(from),
            msg,
        })
    }

    fn advance(&mut self, to: Time) -> Vec<Action> {
        self.now = to;
        self.node.handle_timeout(to, &mut self.rng);
        std::iter::from_fn(|| self.node.poll_action()).collect()
    }
}

fn sends(actions: &[Action]) -> Vec<(u64, &Message)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, msg } => Some((to.0, msg)),
            _ => None,
        })
        .collect()
}

fn stores(actions: &[Action]) -> Vec<Area> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Store { area, .. } => Some(*area),
            _ => None,
        })
        .collect()
}

fn near(key: &RoutingKey, offset: u64) -> Location {
    Location(key.location().0.wrapping_add(offset))
}

const CLOSE: u64 = 1 << 20;
const MID: u64 = 1 << 50;
const FAR: u64 = 1 << 62;

/// A node far from `block`'s key, with peers 1 (far), 2 (closest), 3 (second).
fn relay(block: &ChkBlock) -> One {
    relay_with(RoutingConfig::default(), block)
}

fn relay_with(config: RoutingConfig, block: &ChkBlock) -> One {
    let key = block.routing_key();
    let mut one = One::new(config, near(&key, FAR + MID));
    one.up(1, near(&key, FAR + 2 * MID));
    one.up(2, near(&key, CLOSE));
    one.up(3, near(&key, MID));
    one
}

fn request(id: u64, key: RoutingKey, htl: u8) -> Message {
    Message::Request {
        id: RequestId(id),
        key,
        htl,
    }
}

fn data_found(id: u64, block: &ChkBlock) -> Message {
    let block = block.as_bytes().to_vec();
    Message::DataFound {
        id: RequestId(id),
        block,
    }
}

#[test]
fn request_goes_to_the_closest_peer_then_backtracks() {
    let block = sim_block(1, 1);
    let key = block.routing_key();
    let mut one = relay(&block);
    let out = one.msg(1, request(7, key, 10));
    let s = sends(&out);
    assert_eq!(s[0], (1, &Message::Accepted { id: RequestId(7) }));
    assert_eq!(s[1], (2, &request(7, key, 9)));
    // Peer 2 ran out of peers with 5 hops left: try peer 3 with those 5.
    let out = one.msg(
        2,
        Message::RouteNotFound {
            id: RequestId(7),
            htl: 5,
        },
    );
    assert_eq!(sends(&out), vec![(3, &request(7, key, 5))]);
    // Peer 3 too; the sender is never tried, so route not found upstream.
    let out = one.msg(
        3,
        Message::DataNotFound {
            id: RequestId(7),
            htl: 2,
        },
    );
    assert_eq!(
        sends(&out),
        vec![(
            1,
            &Message::RouteNotFound {
                id: RequestId(7),
                htl: 2
            }
        )]
    );
    assert_eq!(one.node.live_requests(), 0);
}

fn not_found(id: u64, htl: u8) -> Message {
    Message::DataNotFound {
        id: RequestId(id),
        htl,
    }
}

#[test]
fn a_claimed_htl_0_does_not_end_a_search_with_peers_and_budget_left() {
    let block = sim_block(1, 2);
    let key = block.routing_key();
    let mut one = relay(&block);
    one.msg(1, request(7, key, 10));
    // Peer 2 (the closest) claims the search is spent. It has never returned
    // data here, so its claim is doubted: peer 3 gets half our budget (9 / 2).
    let out = one.msg(2, not_found(7, 0));
    assert_eq!(sends(&out), vec![(3, &request(7, key, 4))]);
    assert_eq!(one.node.stats().not_found_doubted, 1);
    // The doubt is spent: a second claim of 0 ends the search, so requests
    // still end (and an honest not-found search costs a bounded multiple).
    let out = one.msg(3, not_found(7, 0));
    assert_eq!(sends(&out), vec![(1, &not_found(7, 0))]);
    assert_eq!(one.node.live_requests(), 0);

    // RouteNotFound claiming 0 is doubted the same way.
    let other = sim_block(1, 20).routing_key();
    one.msg(1, request(8, other, 10));
    let first = if key_is_closer(&one, 2, 3, &other) {
        2
    } else {
        3
    };
    let second = 5 - first;
    let out = one.msg(
        first,
        Message::RouteNotFound {
            id: RequestId(8),
            htl: 0,
        },
    );
    assert_eq!(sends(&out), vec![(second, &request(8, other, 4))]);

    // A peer that returned data lately is believed: its "spent" ends the search.
    let out = one.msg(1, request(9, key, 10));
    let to = sends(&out)[1].0;
    let out = one.msg(to, data_found(9, &block));
    assert!(sends(&out).contains(&(1, &data_found(9, &block))));
    let out = one.msg(1, request(10, key, 10));
    assert_eq!(sends(&out)[1], (to, &request(10, key, 9)));
    let out = one.msg(to, not_found(10, 0));
    assert_eq!(sends(&out), vec![(1, &not_found(10, 0))]);
}

/// Whether `a` is closer than `b` to `key`, as the node sees them.
fn key_is_closer(one: &One, a: u64, b: u64, key: &RoutingKey) -> bool {
    let at = |p: u64| {
        one.node
            .peers()
            .find(|(id, _)| id.0 == p)
            .map(|(_, l)| l.distance(key.location()))
    };
    at(a) < at(b)
}

#[test]
fn without_doubts_a_claimed_htl_0_ends_the_request() {
    let block = sim_block(1, 2);
    let key = block.routing_key();
    let config = RoutingConfig {
        not_found_doubts: 0,
        ..RoutingConfig::default()
    };
    let mut one = One::new(config, near(&key, FAR + MID));
    one.up(1, near(&key, FAR + 2 * MID));
    one.up(2, near(&key, CLOSE));
    one.up(3, near(&key, MID));
    one.msg(1, request(7, key, 10));
    let out = one.msg(2, not_found(7, 0));
    assert_eq!(sends(&out), vec![(1, &not_found(7, 0))]);
}

#[test]
fn htl_coin_flips_are_per_link_not_per_request() {
    let key = RoutingKey::from_bytes([0x11; 32]);
    // Without a failure table or doubts, so every round is forwarded to the
    // same peer and ends at its "not found".
    let config = RoutingConfig {
        failure_table_keys: 0,
        not_found_doubts: 0,
        ..RoutingConfig::default()
    };
    let mut one = One::new(config, near(&key, FAR));
    one.up(1000, near(&key, CLOSE)); // where everything is forwarded
    let links = 200u64;
    for p in 0..links {
        one.up(p, near(&key, FAR + p));
    }
    let (mut kept_at_max, mut ended_at_min) = (0, 0);
    for p in 0..links {
        let mut outcomes = Vec::new();
        for round in 0..3 {
            let id = p * 100 + round;
            let out = one.msg(p, request(id, key, DEFAULT_MAX_HTL));
            let s = sends(&out);
            let Message::Request { htl, .. } = s[1].1 else {
                panic!("{s:?}")
            };
            let out = one.msg(p, request(id + 50, key, 1));
            let ended = matches!(sends(&out)[0].1, Message::DataNotFound { .. });
            outcomes.push((*htl, ended));
            // Finish both so the next round starts clean.
            one.msg(
                1000,
                Message::DataNotFound {
                    id: RequestId(id),
                    htl: 0,
                },
            );
            one.msg(
                1000,
                Message::DataNotFound {
                    id: RequestId(id + 50),
                    htl: 0,
                },
            );
        }
        assert!(
            outcomes.windows(2).all(|w| w[0] == w[1]),
            "link {p}: {outcomes:?}"
        );
        kept_at_max += usize::from(outcomes[0].0 == DEFAULT_MAX_HTL);
        ended_at_min += usize::from(outcomes[0].1);
    }
    // 1/2 and 1/4 of the links, with slack for 200 draws.
    assert!((70..=130).contains(&kept_at_max), "{kept_at_max}");
    assert!((30..=70).contains(&ended_at_min), "{ended_at_min}");
}

#[test]
fn ids_are_rejected_while_live_and_forgotten_after() {
    let block = sim_block(1, 3);
    let key = block.routing_key();
    let mut one = relay(&block);
    one.msg(1, request(7, key, 10));
    let out = one.msg(3, request(7, key, 10));
    assert_eq!(
        sends(&out),
        vec![(3, &Message::RejectedLoop { id: RequestId(7) })]
    );
    one.msg(2, data_found(7, &block));
    // Completed: the id is gone, so the same id is a new request.
    one.store.0.clear();
    let out = one.msg(3, request(7, key, 10));
    assert_eq!(sends(&out)[0], (3, &Message::Accepted { id: RequestId(7) }));
    assert_eq!(one.node.stats().loops_rejected, 1);
}

#[test]
fn identical_requests_merge_and_all_get_the_data() {
    let block = sim_block(1, 4);
    let key = block.routing_key();
    let mut one = relay(&block);
    one.msg(1, request(7, key, 10));
    let out = one.msg(3, request(8, key, 9));
    // Accepted, but not routed a second time.
    assert_eq!(
        sends(&out),
        vec![(3, &Message::Accepted { id: RequestId(8) })]
    );
    // Its id is live too: a loop of the merged request is caught.
    let out = one.msg(1, request(8, key, 9));
    assert_eq!(
        sends(&out),
        vec![(1, &Message::RejectedLoop { id: RequestId(8) })]
    );
    let out = one.msg(2, data_found(7, &block));
    let s = sends(&out);
    assert!(s.contains(&(1, &data_found(7, &block))));
    assert!(s.contains(&(3, &data_found(8, &block))));
    assert_eq!(stores(&out), vec![Area::Cache]);
    assert_eq!(one.node.stats().merged, 1);
    assert_eq!(one.node.live_requests(), 0);
}

#[test]
fn nothing_is_cached_near_the_originator() {
    let block = sim_block(1, 5);
    let key = block.routing_key();
    for (htl, cached) in [(18, false), (17, false), (16, false), (15, true), (3, true)] {
        let mut one = relay(&block);
        one.msg(1, request(7, key, htl));
        let out = one.msg(2, data_found(7, &block));
        assert_eq!(sends(&out), vec![(1, &data_found(7, &block))]);
        assert_eq!(stores(&out) == vec![Area::Cache], cached, "htl {htl}");
    }
    // A local fetch is answered but never cached.
    let mut one = relay(&block);
    let out = one.handle(Event::Fetch {
        client: ClientId(1),
        key,
    });
    let Message::Request { id, htl, .. } = sends(&out)[0].1 else {
        panic!()
    };
    assert_eq!(*htl, DEFAULT_MAX_HTL);
    let out = one.msg(2, data_found(id.0, &block));
    assert!(stores(&out).is_empty());
    assert!(matches!(&out[..], [Action::FetchDone { result: Ok(b), .. }] if *b == block));
}

#[test]
fn forged_data_is_dropped_the_sender_penalised_and_the_request_goes_on() {
    let block = sim_block(1, 6);
    let key = block.routing_key();
    let mut one = relay(&block);
    one.msg(1, request(7, key, 10));
    let mut forged = block.as_bytes().to_vec();
    forged[100] ^= 1;
    let out = one.msg(
        2,
        Message::DataFound {
            id: RequestId(7),
            block: forged,
        },
    );
    assert!(matches!(
        out[0],
        Action::Misbehaved {
            peer: PeerId(2),
            reason: Misbehaviour::ForgedBlock
        }
    ));
    assert_eq!(sends(&out), vec![(3, &request(7, key, 9))]);
    assert!(stores(&out).is_empty());
    let out = one.msg(3, data_found(7, &block));
    assert_eq!(sends(&out), vec![(1, &data_found(7, &block))]);
}

#[test]
fn replies_from_the_wrong_peer_are_misbehaviour_unknown_ids_are_ignored() {
    let block = sim_block(1, 7);
    let key = block.routing_key();
    let mut one = relay(&block);
    one.msg(1, request(7, key, 10));
    let out = one.msg(3, data_found(7, &block));
    assert!(matches!(
        out[..],
        [Action::Misbehaved {
            peer: PeerId(3),
            reason: Misbehaviour::UnexpectedReply
        }]
    ));
    assert!(one.msg(3, data_found(99, &block)).is_empty());
    assert_eq!(one.node.stats().unknown_replies, 1);
}

#[test]
fn overload_is_refused_and_overloaded_peers_are_backed_off() {
    let block = sim_block(1, 8);
    let key = block.routing_key();
    let config = RoutingConfig {
        max_requests_per_peer: 1,
        ..RoutingConfig::default()
    };
    let mut one = One::new(config, near(&key, FAR + MID));
    one.up(1, near(&key, FAR + 2 * MID));
    one.up(2, near(&key, CLOSE));
    one.up(3, near(&key, MID));
    one.msg(1, request(7, key, 10));
    let out = one.msg(1, request(8, key, 10));
    assert_eq!(
        sends(&out),
        vec![(1, &Message::Overloaded { id: RequestId(8) })]
    );
    // Peer 2 is overloaded: go to 3, and avoid 2 while backed off.
    let out = one.msg(2, Message::Overloaded { id: RequestId(7) });
    assert_eq!(sends(&out), vec![(3, &request(7, key, 9))]);
    one.msg(3, data_found(7, &block));
    one.store.0.clear();
    let out = one.msg(1, request(9, key, 10));
    assert_eq!(sends(&out)[1].0, 3, "peer 2 is backed off");
    one.msg(3, data_found(9, &block));
    one.now = one.now.after(DEFAULT_BACKOFF_INITIAL);
    let out = one.msg(1, request(10, key, 10));
    assert_eq!(sends(&out)[1].0, 2, "back-off over");
}

#[test]
fn live_request_table_is_capped() {
    let key = RoutingKey::from_bytes([3; 32]);
    let config = RoutingConfig {
        max_live_requests: 2,
        ..RoutingConfig::default()
    };
    let mut one = One::new(config, near(&key, FAR));
    for p in 1..=4 {
        one.up(p, near(&key, p * MID));
    }
    for id in 0..2 {
        let k = RoutingKey::from_bytes([id as u8; 32]);
        assert!(matches!(
            sends(&one.msg(4, request(id, k, 10)))[0].1,
            Message::Accepted { .. }
        ));
    }
    let out = one.msg(4, request(5, key, 10));
    assert_eq!(
        sends(&out),
        vec![(4, &Message::Overloaded { id: RequestId(5) })]
    );
    let out = one.handle(Event::Fetch {
        client: ClientId(1),
        key,
    });
    assert!(matches!(
        out[..],
        [Action::FetchDone {
            result: Err(FetchError::Overloaded),
            ..
        }]
    ));
}

#[test]
fn a_vanishing_peer_is_routed_around_and_a_vanished_requester_forgotten() {
    let block = sim_block(1, 9);
    let key = block.routing_key();
    let mut one = relay(&block);
    one.msg(1, request(7, key, 10));
    let out = one.handle(Event::PeerDown { peer: PeerId(2) });
    assert_eq!(sends(&out), vec![(3, &request(7, key, 9))]);
    let out = one.handle(Event::PeerDown { peer: PeerId(1) });
    assert!(out.is_empty());
    assert_eq!(one.node.live_requests(), 0);
    assert_eq!(one.node.poll_timeout(), None);
}

#[test]
fn timeouts_in_virtual_time() {
    let block = sim_block(1, 10);
    let key = block.routing_key();
    let mut one = relay(&block);
    one.handle(Event::Fetch {
        client: ClientId(4),
        key,
    });
    let accept = Time::ZERO.after(DEFAULT_ACCEPT_TIMEOUT);
    assert_eq!(one.node.poll_timeout(), Some(accept));
    assert!(one.advance(Time(accept.0 - 1)).is_empty());
    // Peer 2 never accepted: it is backed off and peer 3 tried.
    let out = one.advance(accept);
    let s = sends(&out);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, 3);
    let id = s[0].1.id();
    one.msg(3, Message::Accepted { id });
    let search = accept.after(DEFAULT_SEARCH_TIMEOUT);
    assert_eq!(one.node.poll_timeout(), Some(search));
    // Peer 3 accepted, then went quiet: it must not end the search, so
    // peer 1 gets half the hops.
    let out = one.advance(search);
    let htl = DEFAULT_MAX_HTL / 2;
    assert_eq!(sends(&out), vec![(1, &Message::Request { id, key, htl })]);
    // Peer 3 answering late is ignored, not an offence.
    assert!(one.msg(3, Message::DataNotFound { id, htl: 0 }).is_empty());
    one.msg(1, Message::Accepted { id });
    // Fewer hops left, less time: (9 + 1) / (18 + 1) of the search timeout,
    // and never past the request's lifetime.
    let again = search
        .after(DEFAULT_SEARCH_TIMEOUT * 10 / 19)
        .min(Time::ZERO.after(DEFAULT_REQUEST_LIFETIME));
    assert_eq!(one.node.poll_timeout(), Some(again));
    let out = one.advance(again);
    assert!(matches!(
        out[..],
        [Action::FetchDone {
            client: ClientId(4),
            result: Err(FetchError::Timeout)
        }]
    ));
    assert_eq!(one.node.poll_timeout(), None);
}

#[test]
fn answered_from_the_store_without_routing() {
    let block = sim_block(1, 11);
    let key = block.routing_key();
    let mut one = relay(&block);
    one.store.0.insert(key, block.clone());
    let out = one.msg(1, request(7, key, 18));
    assert_eq!(sends(&out), vec![(1, &data_found(7, &block))]);
    let out = one.handle(Event::Fetch {
        client: ClientId(1),
        key,
    });
    assert!(matches!(
        &out[..],
        [Action::FetchDone { result: Ok(_), .. }]
    ));
}

#[test]
fn a_backlogged_node_refuses_even_what_it_holds_and_serves_again_after() {
    let block = sim_block(1, 11);
    let key = block.routing_key();
    let mut one = relay(&block);
    one.store.0.insert(key, block.clone());
    one.node.set_backlogged(true);
    // Held or not, the answer is the same: the refusal reveals no store.
    let out = one.msg(1, request(7, key, 18));
    assert_eq!(
        sends(&out),
        vec![(1, &Message::Overloaded { id: RequestId(7) })]
    );
    let out = one.msg(1, request(8, sim_block(2, 11).routing_key(), 18));
    assert_eq!(
        sends(&out),
        vec![(1, &Message::Overloaded { id: RequestId(8) })]
    );
    let out = one.msg(1, insert_msg(9, &block, 18));
    assert_eq!(
        sends(&out),
        vec![(1, &Message::Overloaded { id: RequestId(9) })]
    );
    assert_eq!(one.node.stats().overloaded_sent, 3);
    one.node.set_backlogged(false);
    let out = one.msg(1, request(10, key, 18));
    assert_eq!(sends(&out), vec![(1, &data_found(10, &block))]);
}

#[test]
fn served_requests_are_capped_by_the_bandwidth_rule() {
    // 64 KiB/s carries 5 s x 64 KiB of blocks: nine whole ones.
    assert_eq!(served_requests_for_bandwidth(64 * 1024), 9);
    assert_eq!(served_requests_for_bandwidth(1), 1);
    let block = sim_block(1, 11);
    let config = RoutingConfig {
        max_served_requests: Some(2),
        ..RoutingConfig::default()
    };
    let mut one = relay_with(config, &block);
    for id in [7, 8] {
        let out = one.msg(1, request(id, sim_block(id, 11).routing_key(), 18));
        assert!(sends(&out).contains(&(1, &Message::Accepted { id: RequestId(id) })));
    }
    let out = one.msg(1, request(9, sim_block(9, 11).routing_key(), 18));
    assert_eq!(
        sends(&out),
        vec![(1, &Message::Overloaded { id: RequestId(9) })]
    );
}

fn insert_msg(id: u64, block: &ChkBlock, htl: u8) -> Message {
    let key = block.routing_key();
    Message::Insert {
        id: RequestId(id),
        key,
        htl,
    }
}

fn insert_data(id: u64, bytes: &[u8]) -> Message {
    let block = bytes.to_vec();
    Message::InsertData {
        id: RequestId(id),
        block,
    }
}

/// Peer `from` offers an insert; it is accepted and the block sent.
fn offer_insert(one: &mut One, from: u64, id: u64, block: &ChkBlock, htl: u8) -> Vec<Action> {
    let out = one.msg(from, insert_msg(id, block, htl));
    assert_eq!(
        sends(&out),
        vec![(from, &Message::Accepted { id: RequestId(id) })]
    );
    one.msg(from, insert_data(id, block.as_bytes()))
}

/// The insert (id 7, from peer 1) ended here: stored in the store area,
/// answered upstream with `InsertReply`, and nothing left live.
fn assert_stored_and_answered(node: &One, out: &[Action]) {
    assert_eq!(stores(out), vec![Area::Store]);
    assert_eq!(
        sends(out),
        vec![(1, &Message::InsertReply { id: RequestId(7) })]
    );
    assert_eq!(node.node.live_requests(), 0);
}

/// A sink for `block`: closer to the key than its peers 1 (far) and 2 (mid).
fn sink(block: &ChkBlock, config: RoutingConfig) -> One {
    let key = block.routing_key();
    let mut sink = One::new(config, near(&key, CLOSE));
    sink.up(1, near(&key, FAR));
    sink.up(2, near(&key, MID));
    sink
}

#[test]
fn a_sink_stores_an_insert_and_hands_one_copy_to_its_closest_peer() {
    let block = sim_block(1, 12);
    let mut sink = sink(&block, RoutingConfig::default());
    let out = offer_insert(&mut sink, 1, 7, &block, 10);
    // Only the offer goes on; the block follows the downstream's acceptance.
    assert_eq!(sends(&out), vec![(2, &insert_msg(7, &block, 9))]);
    let out = sink.msg(2, Message::Accepted { id: RequestId(7) });
    assert_eq!(sends(&out), vec![(2, &insert_data(7, block.as_bytes()))]);
    let out = sink.msg(2, Message::InsertReply { id: RequestId(7) });
    assert_eq!(stores(&out), vec![Area::Store]);
    assert_eq!(
        sends(&out),
        vec![(1, &Message::InsertReply { id: RequestId(7) })]
    );
    // Whatever becomes of the second copy, the sink's copy is stored and the
    // insert is not backtracked upstream.
    let mut sink = self::sink(&block, RoutingConfig::default());
    offer_insert(&mut sink, 1, 7, &block, 10);
    let out = sink.msg(2, Message::Overloaded { id: RequestId(7) });
    assert_stored_and_answered(&sink, &out);
}

#[test]
fn without_the_second_copy_an_insert_ends_at_the_sink() {
    let block = sim_block(1, 18);
    let config = RoutingConfig {
        sink_second_copy: false,
        ..RoutingConfig::default()
    };
    let mut sink = sink(&block, config);
    let out = offer_insert(&mut sink, 1, 7, &block, 10);
    assert_stored_and_answered(&sink, &out);
}

#[test]
fn an_insert_from_a_closer_peer_is_stored_and_goes_no_farther() {
    // Peer 2 (at CLOSE) is closer than this node: a sink's second copy, or an
    // originator that is itself nearest. Peer 3 would be closer still, but
    // going on would wander: the insert ends here, in the store even at the
    // maximum HTL (where nothing is cached).
    let block = sim_block(1, 19);
    let key = block.routing_key();
    let mut one = One::new(RoutingConfig::default(), near(&key, MID));
    one.up(1, near(&key, FAR));
    one.up(2, near(&key, CLOSE));
    one.up(3, near(&key, CLOSE / 2));
    let out = offer_insert(&mut one, 2, 7, &block, DEFAULT_MAX_HTL);
    assert_eq!(stores(&out), vec![Area::Store]);
    assert_eq!(
        sends(&out),
        vec![(2, &Message::InsertReply { id: RequestId(7) })]
    );
}

#[test]
fn a_relay_forwards_an_insert_and_caches_it_unless_near_the_originator() {
    let block = sim_block(1, 20);
    let key = block.routing_key();
    // Peer 2 is closer than the relay: not a sink, the insert goes on to it.
    for (htl, expect) in [(10, vec![Area::Cache]), (17, vec![])] {
        let mut one = relay(&block);
        let out = offer_insert(&mut one, 1, 7, &block, htl);
        let Message::Insert { key: k, .. } = sends(&out)[0].1 else {
            panic!("{out:?}")
        };
        assert_eq!((sends(&out)[0].0, *k), (2, key));
        assert!(stores(&out).is_empty(), "nothing stored before the reply");
        let out = one.msg(2, Message::InsertReply { id: RequestId(7) });
        assert_eq!(stores(&out), expect, "htl {htl}");
        assert_eq!(
            sends(&out),
            vec![(1, &Message::InsertReply { id: RequestId(7) })]
        );
    }
}

#[test]
fn a_looping_insert_costs_no_block() {
    let block = sim_block(1, 16);
    let mut one = relay(&block);
    offer_insert(&mut one, 1, 7, &block, 10);
    let out = one.msg(3, insert_msg(7, &block, 9));
    assert_eq!(
        sends(&out),
        vec![(3, &Message::RejectedLoop { id: RequestId(7) })]
    );
    // Upstream side: a loop reply moves on to the next peer with the offer only.
    let out = one.msg(2, Message::RejectedLoop { id: RequestId(7) });
    assert_eq!(sends(&out), vec![(3, &insert_msg(7, &block, 9))]);
}

#[test]
fn forged_or_unexpected_insert_data_is_refused() {
    let block = sim_block(1, 13);
    let mut one = relay(&block);
    let mut forged = block.as_bytes().to_vec();
    forged[5] ^= 0x80;
    one.msg(1, insert_msg(7, &block, 10));
    // From a peer that did not offer the insert.
    let out = one.msg(3, insert_data(7, block.as_bytes()));
    assert!(matches!(
        out[..],
        [Action::Misbehaved {
            peer: PeerId(3),
            reason: Misbehaviour::UnexpectedReply
        }]
    ));
    let out = one.msg(1, insert_data(7, &forged));
    assert!(matches!(
        out[..],
        [Action::Misbehaved {
            peer: PeerId(1),
            reason: Misbehaviour::ForgedBlock
        }]
    ));
    assert_eq!(one.node.live_requests(), 0);
}

#[test]
fn an_insert_whose_block_never_comes_is_dropped() {
    let block = sim_block(1, 17);
    let mut one = relay(&block);
    one.msg(1, insert_msg(7, &block, 10));
    assert_eq!(one.node.live_requests(), 1);
    let deadline = Time::ZERO.after(DEFAULT_ACCEPT_TIMEOUT);
    assert_eq!(one.node.poll_timeout(), Some(deadline));
    assert!(one.advance(deadline).is_empty());
    assert_eq!(one.node.live_requests(), 0);
    // Its id is free again.
    let out = one.msg(1, insert_msg(7, &block, 10));
    assert_eq!(
        sends(&out),
        vec![(1, &Message::Accepted { id: RequestId(7) })]
    );
}

#[test]
fn local_inserts_are_not_stored_by_their_originator_and_false_collisions_are_misbehaviour() {
    let block = sim_block(1, 14);
    let mut one = relay(&block);
    let out = one.handle(Event::Insert {
        client: ClientId(1),
        block: block.clone(),
    });
    let s = sends(&out);
    assert_eq!(s[0].0, 2);
    let id = s[0].1.id();
    one.msg(2, Message::Accepted { id });
    // Different data under a CHK's key would need a SHA-256 collision: the
    // claim is a lie, peer 2 is reported, and the insert goes on to peer 3.
    let out = one.msg(2, Message::InsertCollision { id });
    assert!(stores(&out).is_empty());
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Misbehaved {
            peer: PeerId(2),
            reason: Misbehaviour::FalseCollision
        }
    )));
    assert!(!out.iter().any(|a| matches!(a, Action::InsertDone { .. })));
    let s = sends(&out);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].0, 3);
    assert!(matches!(s[0].1, Message::Insert { .. }));
    assert_eq!(one.node.stats().false_collisions, 1);
    // Relayed: a false collision from downstream is not passed upstream.
    let mut one = relay(&block);
    offer_insert(&mut one, 1, 7, &block, 10);
    let out = one.msg(2, Message::InsertCollision { id: RequestId(7) });
    assert!(stores(&out).is_empty());
    assert!(!sends(&out)
        .iter()
        .any(|(to, m)| *to == 1 && matches!(m, Message::InsertCollision { .. })));
    // A successful local insert: done, still nothing stored locally.
    let mut one = relay(&block);
    let out = one.handle(Event::Insert {
        client: ClientId(2),
        block,
    });
    let id = sends(&out)[0].1.id();
    let out = one.msg(2, Message::InsertReply { id });
    assert!(matches!(
        out[..],
        [Action::InsertDone { result: Ok(()), .. }]
    ));
}

#[test]
fn a_second_accepted_is_misbehaviour_and_neither_pins_a_request_nor_pulls_a_block() {
    // A fetch: the second Accepted does not move the deadline.
    let block = sim_block(1, 16);
    let key = block.routing_key();
    let mut one = relay(&block);
    let out = one.handle(Event::Fetch {
        client: ClientId(1),
        key,
    });
    let id = sends(&out)[0].1.id();
    one.msg(2, Message::Accepted { id });
    let search_ends = one.node.poll_timeout().expect("a deadline");
    one.now = Time(search_ends.0 / 2);
    let out = one.msg(2, Message::Accepted { id });
    assert!(matches!(
        out[..],
        [Action::Misbehaved {
            peer: PeerId(2),
            reason: Misbehaviour::DuplicateReply
        }]
    ));
    assert_eq!(one.node.poll_timeout(), Some(search_ends));
    assert_eq!(one.node.stats().duplicate_replies, 1);

    // An insert: the block is sent once, however often the peer accepts.
    let mut one = relay(&block);
    let out = one.handle(Event::Insert {
        client: ClientId(2),
        block: block.clone(),
    });
    let id = sends(&out)[0].1.id();
    let first = one.msg(2, Message::Accepted { id });
    let data = |out: &[Action]| {
        sends(out)
            .iter()
            .filter(|(_, m)| matches!(m, Message::InsertData { .. }))
            .count()
    };
    assert_eq!(data(&first), 1);
    for _ in 0..10 {
        let again = one.msg(2, Message::Accepted { id });
        assert_eq!(data(&again), 0);
    }
}

#[test]
fn a_request_ends_at_its_lifetime_however_many_peers_are_left() {
    let block = sim_block(1, 17);
    let key = block.routing_key();
    let mut one = One::new(RoutingConfig::default(), near(&key, FAR));
    // More peers than the lifetime has accept timeouts for.
    let tries = DEFAULT_REQUEST_LIFETIME.as_millis() / DEFAULT_ACCEPT_TIMEOUT.as_millis();
    for peer in 1..=(tries as u64 * 2) {
        one.up(peer, near(&key, peer * MID));
    }
    one.handle(Event::Fetch {
        client: ClientId(1),
        key,
    });
    let end = Time::ZERO.after(DEFAULT_REQUEST_LIFETIME);
    let mut requests_sent = 1;
    let done = loop {
        let at = one.node.poll_timeout().expect("a deadline while live");
        assert!(at <= end, "a deadline past the lifetime: {at:?}");
        let out = one.advance(at);
        requests_sent += sends(&out).len();
        if let Some(result) = out.iter().find_map(|a| match a {
            Action::FetchDone { result, .. } => Some(result.as_ref().err().copied()),
            _ => None,
        }) {
            break (at, result);
        }
    };
    assert_eq!(done, (end, Some(FetchError::Timeout)));
    assert!(requests_sent as u128 <= tries + 1, "{requests_sent} tries");
    assert_eq!(one.node.poll_timeout(), None);
    assert_eq!(one.node.live_requests(), 0);
}

#[test]
fn an_insert_no_peer_takes_fails_overloaded_if_a_peer_was_busy_else_route_not_found() {
    // The only peer is overloaded: "later" (the client retries after a wait).
    let block = sim_block(1, 15);
    let mut one = One::new(RoutingConfig::default(), Location(0));
    one.up(1, Location(1));
    let out = one.handle(Event::Insert {
        client: ClientId(1),
        block: block.clone(),
    });
    let id = sends(&out)[0].1.id();
    let out = one.msg(1, Message::Overloaded { id });
    assert!(matches!(
        out[..],
        [Action::InsertDone {
            result: Err(InsertError::Overloaded),
            ..
        }]
    ));
    // While that peer is backed off, a new insert finds no peer: still busy.
    let out = one.handle(Event::Insert {
        client: ClientId(2),
        block: sim_block(2, 15),
    });
    assert!(matches!(
        out[..],
        [Action::InsertDone {
            result: Err(InsertError::Overloaded),
            ..
        }]
    ));
    // No peer at all: "no".
    let mut one = One::new(RoutingConfig::default(), Location(0));
    let out = one.handle(Event::Insert {
        client: ClientId(3),
        block,
    });
    assert!(matches!(
        out[..],
        [Action::InsertDone {
            result: Err(InsertError::RouteNotFound),
            ..
        }]
    ));
}

#[test]
fn a_fetch_whose_only_peer_is_busy_is_told_to_come_back_later() {
    let block = sim_block(1, 16);
    let mut one = One::new(RoutingConfig::default(), Location(0));
    one.up(1, Location(1));
    let out = one.handle(Event::Fetch {
        client: ClientId(1),
        key: block.routing_key(),
    });
    let id = sends(&out)[0].1.id();
    let out = one.msg(1, Message::Overloaded { id });
    assert!(matches!(
        out[..],
        [Action::FetchDone {
            result: Err(FetchError::Overloaded),
            ..
        }]
    ));
}

#[test]
fn a_peer_that_said_not_found_is_tried_last_for_that_key_until_the_entry_expires() {
    let block = sim_block(1, 18);
    let key = block.routing_key();
    let mut one = relay(&block);
    // Peer 2 (the closest) answers "not found" for the key.
    let out = one.msg(1, request(7, key, 10));
    assert_eq!(sends(&out)[1].0, 2);
    one.msg(
        2,
        Message::DataNotFound {
            id: RequestId(7),
            htl: 0,
        },
    );
    // The next request for the key goes to peer 3 first...
    let out = one.msg(1, request(8, key, 10));
    assert_eq!(sends(&out)[1].0, 3);
    // ...and peer 2 is still tried when 3 has nothing either.
    let out = one.msg(
        3,
        Message::RouteNotFound {
            id: RequestId(8),
            htl: 5,
        },
    );
    assert_eq!(sends(&out)[0].0, 2);
    // Another key is not affected.
    let other = sim_block(1, 19).routing_key();
    let out = one.msg(1, request(9, other, 10));
    let first = sends(&out)[1].0;
    assert!(first == 2 || first == 3);
    // Once the entry is old, peer 2 is first again for the key.
    one.now = one.now.after(DEFAULT_FAILURE_TTL);
    one.node.handle_timeout(one.now, &mut one.rng);
    while one.node.poll_action().is_some() {}
    let out = one.msg(1, request(10, key, 10));
    assert_eq!(sends(&out)[1].0, 2);
}

fn traffic(one: &One, peer: u64) -> PeerTraffic {
    one.node
        .peer_traffic()
        .find(|(id, _)| id.0 == peer)
        .map(|(_, t)| t)
        .unwrap()
}

#[test]
fn each_peer_has_its_requests_in_flight_and_their_outcomes_counted() {
    let block = sim_block(1, 21);
    let key = block.routing_key();
    let mut one = relay(&block);
    // Peer 1 asks; peer 2 (closest) has the request now.
    one.msg(1, request(7, key, 10));
    assert_eq!(traffic(&one, 1).from_peer_in_flight, 1);
    assert_eq!(traffic(&one, 2).to_peer_in_flight, 1);
    // Peer 2 says route not found, peer 3 is overloaded, and peer 2 is
    // tried no more: the request ends with route not found for peer 1.
    one.msg(
        2,
        Message::RouteNotFound {
            id: RequestId(7),
            htl: 5,
        },
    );
    assert_eq!(traffic(&one, 2).to_peer_in_flight, 0);
    assert_eq!(traffic(&one, 3).to_peer_in_flight, 1);
    let out = one.msg(3, Message::Overloaded { id: RequestId(7) });
    assert_eq!(
        sends(&out),
        vec![(
            1,
            &Message::RouteNotFound {
                id: RequestId(7),
                htl: 5
            }
        )]
    );
    let (p1, p2, p3) = (traffic(&one, 1), traffic(&one, 2), traffic(&one, 3));
    assert_eq!(p1.from_peer.route_not_found, 1);
    assert_eq!(p1.from_peer_in_flight, 0);
    assert_eq!(p2.to_peer.route_not_found, 1);
    assert_eq!(p3.to_peer.overloaded, 1);
    // Peer 1 asks again; peer 2 finds it; a second request for the same id
    // while it is live is a loop; a forged answer is misbehaviour.
    one.msg(1, request(8, key, 10));
    one.msg(3, request(8, key, 10));
    one.msg(2, data_found(8, &block));
    assert_eq!(traffic(&one, 2).to_peer.success, 1);
    assert_eq!(traffic(&one, 1).from_peer.success, 1);
    assert_eq!(traffic(&one, 3).from_peer.rejected_loop, 1);
    // Peer 3's back-off is over by the next request.
    one.now = one.now.after(DEFAULT_BACKOFF_INITIAL);
    one.msg(1, request(9, key, 10));
    let mut forged = block.as_bytes().to_vec();
    forged[7] ^= 1;
    one.msg(
        2,
        Message::DataFound {
            id: RequestId(9),
            block: forged,
        },
    );
    assert_eq!(traffic(&one, 2).misbehaved, 1);
    // Peer 3 has it now and never answers: a timeout for peer 3.
    assert_eq!(traffic(&one, 3).to_peer_in_flight, 1);
    one.advance(one.now.after(DEFAULT_ACCEPT_TIMEOUT));
    assert_eq!(traffic(&one, 3).to_peer.timeout, 1);
    // The node-wide sums agree.
    let stats = one.node.stats();
    assert_eq!(stats.to_peers.success, 1);
    assert_eq!(stats.to_peers.route_not_found, 1);
    assert_eq!(stats.to_peers.overloaded, 1);
    assert_eq!(stats.to_peers.timeout, 1);
    assert_eq!(stats.from_peers.success, 1);
    assert_eq!(stats.from_peers.rejected_loop, 1);
}

#[test]
fn own_requests_count_peers_asked_and_htl_used() {
    let block = sim_block(1, 22);
    let key = block.routing_key();
    // A claimed HTL 0 is believed here, so the last search ends at its
    // first answer (the doubt of such claims has its own tests).
    let config = RoutingConfig {
        not_found_doubts: 0,
        ..RoutingConfig::default()
    };
    let mut one = relay_with(config, &block);
    // Found at the second peer asked.
    let out = one.handle(Event::Fetch {
        client: ClientId(1),
        key,
    });
    let Message::Request { id, .. } = sends(&out)[0].1 else {
        panic!()
    };
    let id = id.0;
    one.msg(
        2,
        Message::DataNotFound {
            id: RequestId(id),
            htl: 4,
        },
    );
    let out = one.msg(3, data_found(id, &block));
    assert!(matches!(
        &out[..],
        [Action::FetchDone { result: Ok(_), .. }]
    ));
    // Found in the node's own store: no peer asked.
    one.store.0.insert(key, block.clone());
    one.handle(Event::Fetch {
        client: ClientId(2),
        key,
    });
    one.store.0.clear();
    let asked: Vec<(u32, u64)> = one.node.stats().local.fetch_peers_asked.iter().collect();
    assert_eq!(asked, vec![(0, 1), (2, 1)]);
    // Not found anywhere: the HTL the last answer left says how far it went.
    let other = sim_block(1, 23).routing_key();
    let out = one.handle(Event::Fetch {
        client: ClientId(3),
        key: other,
    });
    let Message::Request { id, .. } = sends(&out)[0].1 else {
        panic!()
    };
    let out = one.msg(sends(&out)[0].0, Message::DataNotFound { id: *id, htl: 0 });
    assert!(matches!(
        &out[..],
        [Action::FetchDone {
            result: Err(FetchError::DataNotFound),
            ..
        }]
    ));
    let used: Vec<(u32, u64)> = one.node.stats().local.fetch_htl_used.iter().collect();
    assert_eq!(used, vec![(u32::from(DEFAULT_MAX_HTL), 1)]);
    assert_eq!(one.node.stats().local.fetch_htl_used.sum(), 18);
}

#[test]
fn a_tally_is_bounded_however_large_the_values() {
    let mut tally = Tally::default();
    for v in 0..10_000 {
        tally.record(v);
    }
    assert_eq!(tally.count(), 10_000);
    assert!(tally.iter().count() <= TALLY_MAX as usize + 1);
}

/// Where node `one` sends each of `keys` first when peer `from` asks for it
/// at `htl` (`from` 0: the node's own fetch).
fn first_hops(one: &mut One, from: u64, keys: &[RoutingKey], htl: u8, id0: u64) -> Vec<u64> {
    keys.iter()
        .enumerate()
        .map(|(i, &key)| {
            let id = id0 + i as u64;
            let out = if from == 0 {
                one.handle(Event::Fetch {
                    client: ClientId(id),
                    key,
                })
            } else {
                one.msg(from, request(id, key, htl))
            };
            let forwarded = sends(&out)
                .into_iter()
                .find(|(_, m)| matches!(m, Message::Request { .. }))
                .map(|(to, _)| to);
            forwarded.unwrap_or_else(|| panic!("{key:?} not forwarded: {out:?}"))
        })
        .collect()
}

fn walking_node(config: RoutingConfig) -> One {
    let mut one = One::new(config, Location(0));
    for peer in 1..=8u64 {
        one.up(peer, Location(peer.wrapping_mul(u64::MAX / 8)));
    }
    one
}

#[test]
fn fetches_at_the_maximum_walk_to_one_successor_per_upstream_link_whatever_the_key() {
    // Fresh keys per round, so no request merges with a live one.
    let keys = |round: usize| -> Vec<RoutingKey> {
        (0..24)
            .map(|i| sim_block(4, round * 100 + i).routing_key())
            .collect()
    };
    // Never decrement at the maximum, so every request here stays on the walk.
    let walk = RoutingConfig {
        decrement_at_max_probability: 0.0,
        ..RoutingConfig::default().with_max_htl_walk()
    };
    let mut one = walking_node(walk.clone());
    let max = walk.max_htl;
    for (from, id0) in [(0u64, 1_000), (1, 2_000), (2, 3_000)] {
        let hops = first_hops(&mut one, from, &keys(from as usize), max, id0);
        assert!(hops.iter().all(|&h| h == hops[0]), "from {from}: {hops:?}");
        assert_ne!(hops[0], from);
    }
    // Below the maximum the same node routes toward each key.
    let hops = first_hops(&mut one, 1, &keys(4), 10, 4_000);
    let distinct: std::collections::HashSet<_> = hops.iter().collect();
    assert!(distinct.len() >= 4, "{hops:?}");
    // The control: without the walk, keys at the maximum spread too.
    let greedy = RoutingConfig {
        decrement_at_max_probability: 0.0,
        ..RoutingConfig::default()
    };
    let mut one = walking_node(greedy);
    let hops = first_hops(&mut one, 1, &keys(5), max, 5_000);
    let distinct: std::collections::HashSet<_> = hops.iter().collect();
    assert!(distinct.len() >= 4, "{hops:?}");
}

#[test]
fn a_walk_refused_as_a_loop_goes_on_to_the_next_successor_still_at_the_maximum() {
    let walk = RoutingConfig {
        decrement_at_max_probability: 0.0,
        ..RoutingConfig::default().with_max_htl_walk()
    };
    let max = walk.max_htl;
    let mut one = walking_node(walk);
    let key = sim_block(4, 100).routing_key();
    let first = first_hops(&mut one, 1, &[key], max, 7)[0];
    let out = one.msg(first, Message::RejectedLoop { id: RequestId(7) });
    let next: Vec<_> = sends(&out)
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::Request { .. }))
        .collect();
    assert_eq!(next.len(), 1, "{out:?}");
    let (second, msg) = next[0];
    assert!(second != first && second != 1, "{second}");
    assert_eq!(msg, &request(7, key, max));
    // Every other key from the same link takes the same second choice once
    // the first refuses it: the order, not the key, decides.
    let key2 = sim_block(4, 101).routing_key();
    assert_eq!(first_hops(&mut one, 1, &[key2], max, 8)[0], first);
    let out = one.msg(first, Message::RejectedLoop { id: RequestId(8) });
    assert!(
        sends(&out).contains(&(second, &request(8, key2, max))),
        "{out:?}"
    );
}
