//! The opennet rules on one node driven by hand, in virtual time.

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::*;
use crate::routing::{Event, NoStore, RoutingConfig};
use crate::sim::{sim_block, sim_noderef};

/// One opennet node at `location` (sim noderef `ix`), its RNG and clock.
struct One {
    node: Node,
    rng: ChaCha8Rng,
    now: Time,
}

impl One {
    fn new(ix: u32, location: Location, opennet: OpennetConfig) -> Self {
        let config = RoutingConfig {
            opennet: Some(opennet),
            ..RoutingConfig::default()
        };
        let mut node = Node::new(config, location);
        node.set_noderef(sim_noderef(ix, location));
        One {
            node,
            rng: ChaCha8Rng::seed_from_u64(5),
            now: Time::ZERO,
        }
    }

    fn handle(&mut self, event: Event) -> Vec<Action> {
        self.node.handle(self.now, &mut self.rng, &NoStore, event);
        std::iter::from_fn(|| self.node.poll_action()).collect()
    }

    fn up(&mut self, peer: u64, location: Location, kind: PeerKind) -> Vec<Action> {
        let peer = PeerId(peer);
        self.handle(Event::PeerUp {
            peer,
            location,
            kind,
        })
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

fn connects(actions: &[Action]) -> Vec<&NodeRef> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Connect { noderef, .. } => Some(noderef),
            _ => None,
        })
        .collect()
}

fn disconnects(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Disconnect { peer } => Some(peer.0),
            _ => None,
        })
        .collect()
}

const ME: Location = Location(1 << 62);

fn loc(fraction: f64) -> Location {
    Location::from_fraction(fraction)
}

fn announce(id: u64, htl: u8, ix: u32, at: Location) -> Message {
    Message::Announce {
        id: RequestId(id),
        htl,
        noderef: sim_noderef(ix, at),
    }
}

#[test]
fn a_relay_still_joining_dials_the_announcer_as_well() {
    let mut one = One::new(0, ME, OpennetConfig::with_target(4));
    one.up(1, loc(0.9), PeerKind::Opennet);
    let out = one.msg(1, announce(7, 10, 50, loc(0.5)));
    assert!(
        matches!(sends(&out)[0], (1, Message::AnnounceReply { .. })),
        "{out:?}"
    );
    assert_eq!(
        connects(&out).len(),
        1,
        "below its threshold the relay dials too"
    );
}

#[test]
fn the_first_hop_offers_itself_and_the_announcer_keeps_its_seed_link() {
    // The announcer: its only link is to the seed.
    let mut newcomer = One::new(0, ME, OpennetConfig::with_target(4));
    newcomer.up(1, loc(0.9), PeerKind::Seed);
    let out = newcomer.advance(Time::from_millis(1));
    let sent = sends(&out);
    let [(1, Message::Announce { id, noderef, .. })] = sent[..] else {
        panic!("no announcement to the seed: {out:?}");
    };
    let (id, own) = (*id, noderef.clone());
    // The seed, with room, answers its direct announcer with its own noderef.
    let mut seed = One::new(1, loc(0.9), OpennetConfig::with_target(4));
    seed.up(0, ME, PeerKind::Opennet);
    let out = seed.msg(
        0,
        Message::Announce {
            id,
            htl: 10,
            noderef: own,
        },
    );
    let reply = match sends(&out).first() {
        Some((0, m @ Message::AnnounceReply { .. })) => (*m).clone(),
        _ => panic!("the seed did not offer itself: {out:?}"),
    };
    assert!(connects(&out).is_empty(), "linked already: {out:?}");
    // The newcomer turns the seed link into a real peer, without a dial.
    let out = newcomer.msg(1, reply);
    assert!(connects(&out).is_empty(), "{out:?}");
    assert!(newcomer
        .node
        .peer_kinds()
        .all(|(_, k)| k == PeerKind::Opennet));
}

#[test]
fn a_relay_that_wants_peers_answers_an_announcement_and_routes_it_toward_the_announcer() {
    let mut one = One::new(0, ME, OpennetConfig::with_target(4));
    one.up(1, loc(0.9), PeerKind::Opennet);
    one.up(2, loc(0.51), PeerKind::Opennet);
    one.up(3, loc(0.7), PeerKind::Opennet);
    // Node 50 at 0.5 announces through peer 1.
    let out = one.msg(1, announce(7, 10, 50, loc(0.5)));
    let sent = sends(&out);
    assert!(
        matches!(sent[0], (1, Message::AnnounceReply { noderef, .. }) if noderef.location == ME),
        "{out:?}"
    );
    // It goes on to the peer closest to the announcer's location.
    assert!(
        matches!(sent[1], (2, Message::Announce { htl: 9, .. })),
        "{out:?}"
    );
    assert!(
        connects(&out).is_empty(),
        "a relay past its own threshold leaves the dialling to the announcer: {out:?}"
    );
    // Replies from downstream go back upstream; the end goes back too.
    let other = sim_noderef(60, loc(0.52));
    let out = one.msg(
        2,
        Message::AnnounceReply {
            id: RequestId(7),
            noderef: other.clone(),
        },
    );
    assert!(
        matches!(sends(&out)[..], [(1, Message::AnnounceReply { noderef, .. })] if *noderef == other)
    );
    let out = one.msg(
        2,
        Message::AnnounceEnd {
            id: RequestId(7),
            htl: 0,
        },
    );
    assert!(matches!(
        sends(&out)[..],
        [(1, Message::AnnounceEnd { htl: 0, .. })]
    ));
    assert!(!one.node.is_announce(RequestId(7)));
}

#[test]
fn announcements_are_one_at_a_time_per_peer_and_bounded_in_all() {
    let cfg = OpennetConfig {
        max_announces: 3,
        ..OpennetConfig::with_target(4)
    };
    let mut one = One::new(0, ME, cfg);
    for p in 1..=6 {
        one.up(p, loc(0.1 * p as f64), PeerKind::Opennet);
    }
    let first = one.msg(1, announce(1, 10, 50, loc(0.55)));
    assert!(sends(&first)
        .iter()
        .any(|(_, m)| matches!(m, Message::Announce { .. })));
    // A second one from the same peer while the first is live: refused.
    let again = one.msg(1, announce(2, 10, 51, loc(0.56)));
    assert!(
        matches!(sends(&again)[..], [(1, Message::Overloaded { .. })]),
        "{again:?}"
    );
    // A flood from many peers: three in flight, the rest refused.
    for p in 2..=6 {
        one.msg(p, announce(10 + p, 10, 60 + p as u32, loc(0.57)));
    }
    assert_eq!(one.node.opennet.announces.len(), 3);
    assert_eq!(one.node.opennet_stats().announcements_refused, 4);
    // Timeouts clear them, and the node answers the senders.
    let out = one.advance(Time::ZERO.after(DEFAULT_ANNOUNCE_TIMEOUT));
    assert_eq!(one.node.opennet.announces.len(), 0);
    assert_eq!(sends(&out).len(), 3);
}

#[test]
fn a_node_below_its_threshold_announces_itself_and_dials_the_replies() {
    let mut one = One::new(0, ME, OpennetConfig::with_target(4));
    one.up(9, loc(0.9), PeerKind::Seed);
    assert!(!one.node.has_enough_peers());
    let out = one.advance(Time::from_millis(1));
    let sent = sends(&out);
    let [(9, Message::Announce { id, htl, noderef })] = sent[..] else {
        panic!("{out:?}");
    };
    assert_eq!((*htl, noderef.location), (DEFAULT_MAX_HTL_FOR_TESTS, ME));
    let id = *id;
    // Replies: it dials up to its target (4), not more...
    let mut dialled = 0;
    for i in 0..5u32 {
        let noderef = sim_noderef(100 + i, loc(0.3 + 0.01 * f64::from(i)));
        let out = one.msg(9, Message::AnnounceReply { id, noderef });
        dialled += connects(&out).len();
    }
    assert_eq!(dialled, 4);
    // ...except a reply nearer on its side of the circle than every peer and
    // every reply dialled so far: a nearest neighbour, taken beyond the
    // target. One nearer than that on the other side is taken too.
    for (i, at, taken) in [(105, 0.26, true), (106, 0.27, false), (107, 0.24, true)] {
        let noderef = sim_noderef(i, loc(at));
        let out = one.msg(9, Message::AnnounceReply { id, noderef });
        assert_eq!(connects(&out).len(), usize::from(taken), "{at}: {out:?}");
    }
    // A reply naming this node itself or an unusable address is refused.
    let mut own = sim_noderef(0, ME);
    own.location = loc(0.2);
    let out = one.msg(9, Message::AnnounceReply { id, noderef: own });
    assert!(connects(&out).is_empty());
    one.msg(9, Message::AnnounceEnd { id, htl: 0 });
    // Two peers came up: the threshold is reached, no more announcements.
    one.up(100, loc(0.3), PeerKind::Opennet);
    one.up(101, loc(0.31), PeerKind::Opennet);
    assert!(one.node.has_enough_peers());
    let out = one.advance(Time::from_millis(1).after(DEFAULT_ANNOUNCE_INTERVAL * 2));
    assert!(sends(&out).is_empty(), "{out:?}");
    // Losing them sends it announcing again, by itself.
    one.handle(Event::PeerDown { peer: PeerId(100) });
    let later = one.now.after(DEFAULT_ANNOUNCE_INTERVAL);
    let out = one.advance(later);
    assert!(
        sends(&out)
            .iter()
            .any(|(_, m)| matches!(m, Message::Announce { .. })),
        "{out:?}"
    );
}

const DEFAULT_MAX_HTL_FOR_TESTS: u8 = crate::routing::DEFAULT_MAX_HTL;

#[test]
fn a_friends_only_node_neither_announces_nor_answers_nor_folds() {
    let mut node = Node::new(RoutingConfig::default(), ME);
    node.set_noderef(sim_noderef(0, ME));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let kind = PeerKind::Friend;
    node.handle(
        Time::ZERO,
        &mut rng,
        &NoStore,
        Event::PeerUp {
            peer: PeerId(1),
            location: loc(0.2),
            kind,
        },
    );
    assert_eq!(node.poll_action().map(|_| ()), None);
    assert_eq!(node.poll_timeout(), None, "no announcement timer");
    let msg = announce(3, 10, 50, loc(0.5));
    node.handle(
        Time::ZERO,
        &mut rng,
        &NoStore,
        Event::Message {
            from: PeerId(1),
            msg,
        },
    );
    let out: Vec<Action> = std::iter::from_fn(|| node.poll_action()).collect();
    assert!(
        matches!(sends(&out)[..], [(1, Message::AnnounceEnd { htl: 0, .. })]),
        "{out:?}"
    );
    let msg = Message::FoldOffer {
        id: RequestId(4),
        noderef: sim_noderef(50, loc(0.5)),
    };
    node.handle(
        Time::ZERO,
        &mut rng,
        &NoStore,
        Event::Message {
            from: PeerId(1),
            msg,
        },
    );
    assert!(node.poll_action().is_none());
}

/// A relay for a fetch: request from peer 1 (upstream) at `htl`, routed to
/// peer 2, which answers with the block. Returns the request id.
fn relay_a_fetch(one: &mut One, htl: u8) -> RequestId {
    let block = sim_block(3, 1);
    let key = block.routing_key();
    let id = RequestId(77);
    one.msg(1, Message::Request { id, key, htl });
    let out = one.msg(
        2,
        Message::DataFound {
            id,
            block: block.as_bytes().to_vec(),
        },
    );
    assert!(sends(&out)
        .iter()
        .any(|(to, m)| *to == 1 && matches!(m, Message::DataFound { .. })));
    id
}

fn fold_relay() -> One {
    let block = sim_block(3, 1);
    let key_loc = block.routing_key().location();
    let cfg = OpennetConfig {
        fold_take_probability: 1.0,
        ..OpennetConfig::with_target(4)
    };
    let mut one = One::new(0, ME, cfg);
    one.up(1, loc(0.95), PeerKind::Opennet);
    one.up(2, key_loc, PeerKind::Opennet);
    one
}

#[test]
fn a_hop_that_wants_a_peer_passes_an_offer_on_when_its_coin_says_so() {
    let mut one = fold_relay();
    if let Some(cfg) = one.node.config.opennet.as_mut() {
        cfg.fold_take_probability = 0.0;
    }
    let id = relay_a_fetch(&mut one, 10);
    let out = one.msg(
        2,
        Message::FoldOffer {
            id,
            noderef: sim_noderef(40, loc(0.8)),
        },
    );
    assert!(connects(&out).is_empty(), "{out:?}");
    assert!(
        matches!(sends(&out)[..], [(1, Message::FoldOffer { .. })]),
        "{out:?}"
    );
}

#[test]
fn a_hop_that_wants_a_peer_takes_a_fold_offer_and_answers_with_its_own_noderef() {
    let mut one = fold_relay();
    let id = relay_a_fetch(&mut one, 10);
    let source = sim_noderef(40, loc(0.4));
    let out = one.msg(
        2,
        Message::FoldOffer {
            id,
            noderef: source.clone(),
        },
    );
    assert_eq!(connects(&out), vec![&source]);
    assert!(
        matches!(sends(&out)[..], [(2, Message::FoldReply { noderef, .. })] if noderef.location == ME)
    );
    // The route is used once: a second offer is unknown.
    let out = one.msg(
        2,
        Message::FoldOffer {
            id,
            noderef: source,
        },
    );
    assert!(out.is_empty());
}

#[test]
fn no_folding_near_the_originator_nor_at_it() {
    // Within two of the maximum HTL: the hop remembers no route.
    let mut one = fold_relay();
    let id = relay_a_fetch(&mut one, crate::routing::DEFAULT_MAX_HTL - 1);
    let out = one.msg(
        2,
        Message::FoldOffer {
            id,
            noderef: sim_noderef(40, loc(0.4)),
        },
    );
    assert!(out.is_empty(), "{out:?}");
    // The originator of a fetch takes no offer either.
    let mut one = fold_relay();
    let block = sim_block(3, 1);
    let out = one.handle(Event::Fetch {
        client: crate::routing::ClientId(1),
        key: block.routing_key(),
    });
    let Some((_, Message::Request { id, .. })) = sends(&out).first().copied() else {
        panic!("{out:?}");
    };
    let id = *id;
    one.msg(
        2,
        Message::DataFound {
            id,
            block: block.as_bytes().to_vec(),
        },
    );
    let out = one.msg(
        2,
        Message::FoldOffer {
            id,
            noderef: sim_noderef(40, loc(0.4)),
        },
    );
    assert!(out.is_empty(), "{out:?}");
}

/// [`fold_relay`] with a friend and two more opennet peers: four opennet
/// peers (1, 2, 4, 5) = its target, all in their grace period.
fn fold_relay_at_target() -> One {
    let mut one = fold_relay();
    one.up(3, loc(0.6), PeerKind::Friend);
    one.up(4, loc(0.61), PeerKind::Opennet);
    one.up(5, loc(0.62), PeerKind::Opennet);
    one
}

#[test]
fn a_hop_at_its_target_passes_the_offer_on_and_relays_the_reply_back() {
    let mut one = fold_relay_at_target();
    let id = relay_a_fetch(&mut one, 10);
    // (Not nearer than peer 1 at 0.95: a nearest neighbour would be taken.)
    let source = sim_noderef(40, loc(0.8));
    let out = one.msg(
        2,
        Message::FoldOffer {
            id,
            noderef: source,
        },
    );
    assert!(connects(&out).is_empty());
    assert!(
        matches!(sends(&out)[..], [(1, Message::FoldOffer { .. })]),
        "{out:?}"
    );
    let taker = sim_noderef(41, loc(0.8));
    let out = one.msg(
        1,
        Message::FoldReply {
            id,
            noderef: taker.clone(),
        },
    );
    assert!(
        matches!(sends(&out)[..], [(2, Message::FoldReply { noderef, .. })] if *noderef == taker)
    );
}

#[test]
fn a_hop_at_its_target_takes_a_fold_offer_from_a_new_nearest_neighbour() {
    let mut one = fold_relay_at_target();
    let id = relay_a_fetch(&mut one, 10);
    let next_door = sim_noderef(40, Location(ME.0 + 1));
    let out = one.msg(
        2,
        Message::FoldOffer {
            id,
            noderef: next_door.clone(),
        },
    );
    assert_eq!(connects(&out), [&next_door], "{out:?}");
    assert!(
        matches!(sends(&out)[..], [(2, Message::FoldReply { .. })]),
        "{out:?}"
    );
}

#[test]
fn over_the_target_the_least_recently_successful_peer_goes_after_its_grace_and_friends_never() {
    let cfg = OpennetConfig::with_target(3);
    let grace = cfg.peer_grace;
    let mut one = One::new(0, ME, cfg);
    // The friend is the nearest peer on its side of the circle (the nearest
    // on each side is never dropped to make room).
    one.up(1, loc(0.2505), PeerKind::Friend);
    one.up(2, loc(0.251), PeerKind::Opennet);
    one.up(3, loc(0.252), PeerKind::Opennet);
    one.up(4, loc(0.7), PeerKind::Opennet);
    // Peer 3 returns data once: it is the most recently successful.
    one.now = Time::ZERO.after(grace);
    let block = sim_block(3, 9);
    let key = block.routing_key();
    let out = one.handle(Event::Fetch {
        client: crate::routing::ClientId(1),
        key,
    });
    let (to, id) = match sends(&out)[..] {
        [(to, Message::Request { id, .. })] => (to, *id),
        _ => panic!("{out:?}"),
    };
    if to != 3 {
        one.msg(to, Message::RouteNotFound { id, htl: 10 });
    }
    one.msg(
        3,
        Message::DataFound {
            id,
            block: block.as_bytes().to_vec(),
        },
    );
    // A new one arrives while in its grace period nobody else is: one goes.
    let out = one.up(5, loc(0.253), PeerKind::Opennet);
    let dropped = disconnects(&out);
    // Peer 4 is the one long link, kept for the long-link share.
    assert_eq!(dropped, [2], "{out:?}");
    // At most one drop per interval, whatever arrives.
    let out = one.up(6, loc(0.254), PeerKind::Opennet);
    assert!(disconnects(&out).is_empty(), "{out:?}");
    assert!(one
        .node
        .peer_kinds()
        .any(|(p, k)| p == PeerId(1) && k == PeerKind::Friend));
}

#[test]
fn a_peer_that_only_ever_answers_not_found_loses_its_place() {
    let cfg = OpennetConfig {
        not_found_limit: 5,
        ..OpennetConfig::with_target(4)
    };
    let mut one = One::new(0, ME, cfg);
    one.up(1, loc(0.5), PeerKind::Opennet);
    one.now = Time::ZERO.after(DEFAULT_PEER_GRACE);
    let mut dropped = Vec::new();
    for i in 0..5 {
        let key = sim_block(8, i).routing_key();
        let out = one.handle(Event::Fetch {
            client: crate::routing::ClientId(i as u64),
            key,
        });
        let [(1, Message::Request { id, .. })] = sends(&out)[..] else {
            panic!("{out:?}");
        };
        let id = *id;
        dropped.extend(disconnects(
            &one.msg(1, Message::DataNotFound { id, htl: 0 }),
        ));
    }
    assert_eq!(dropped, vec![1]);
}

#[test]
fn offered_noderefs_that_cannot_be_dialled_are_refused() {
    let mut one = fold_relay();
    let id = relay_a_fetch(&mut one, 10);
    for bad in [
        "0.0.0.0:9470",
        "10.0.0.1:0",
        "224.0.0.1:9470",
        "255.255.255.255:9470",
    ] {
        let mut noderef = sim_noderef(40, loc(0.4));
        noderef.address = bad.parse().unwrap();
        assert!(!one.node.plausible(&noderef), "{bad}");
    }
    // An offer naming the node's own identity is refused too.
    let mut me = sim_noderef(0, loc(0.4));
    me.address = "10.9.9.9:1".parse().unwrap();
    let out = one.msg(2, Message::FoldOffer { id, noderef: me });
    assert!(connects(&out).is_empty(), "{out:?}");
    assert!(one.node.opennet_stats().bad_noderefs >= 5);
}
