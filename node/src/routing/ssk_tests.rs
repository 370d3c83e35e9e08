//! SSK routing at one node driven by hand: verification at every hop,
//! collisions, and the same routing rules as CHK.

use std::collections::HashMap;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use warren_crypto::ssk::SskPrivateKey;
use warren_crypto::{
    ChkBlock, CryptoKey, Location, RoutingKey, SskBlock, SskInsertUri, SskPayload,
};

use super::*;
use crate::wire::{Message, RequestId};

#[derive(Default)]
struct SskStore(HashMap<RoutingKey, SskBlock>);

impl BlockLookup for SskStore {
    fn get(&self, _key: &RoutingKey) -> Option<ChkBlock> {
        None
    }

    fn get_ssk(&self, key: &RoutingKey) -> Option<SskBlock> {
        self.0.get(key).cloned()
    }
}

struct One {
    node: Node,
    store: SskStore,
    rng: ChaCha8Rng,
}

impl One {
    /// A node far from `key`, with peers 1 (far), 2 (closest), 3 (second).
    fn relay(key: &RoutingKey) -> One {
        let near = |offset: u64| Location(key.location().0.wrapping_add(offset));
        let mut one = One {
            node: Node::new(RoutingConfig::default(), near(FAR + MID)),
            store: SskStore::default(),
            rng: ChaCha8Rng::seed_from_u64(5),
        };
        for (peer, location) in [(1, near(FAR + 2 * MID)), (2, near(1 << 20)), (3, near(MID))] {
            let kind = PeerKind::Friend;
            let peer = PeerId(peer);
            one.handle(Event::PeerUp {
                peer,
                location,
                kind,
            });
        }
        one
    }

    fn handle(&mut self, event: Event) -> Vec<Action> {
        self.node
            .handle(Time::ZERO, &mut self.rng, &self.store, event);
        std::iter::from_fn(|| self.node.poll_action()).collect()
    }

    fn msg(&mut self, from: u64, msg: Message) -> Vec<Action> {
        self.handle(Event::Message {
            from: PeerId(from),
            msg,
        })
    }
}

const MID: u64 = 1 << 50;
const FAR: u64 = 1 << 62;

fn insert_uri(seed: u8) -> SskInsertUri {
    SskInsertUri {
        private: SskPrivateKey::from_seed(&[seed; 32]),
        crypto: CryptoKey::from_bytes([0x42; 32]),
        docname: "site-3".into(),
    }
}

fn block(uri: &SskInsertUri, content: &[u8]) -> SskBlock {
    let payload = SskPayload::Data(content.to_vec());
    SskBlock::encode(&uri.private, &uri.crypto, &uri.hashed_name(), &payload).unwrap()
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

fn ssk_stores(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::StoreSsk { .. }))
        .count()
}

fn misbehaved(actions: &[Action]) -> Vec<(u64, Misbehaviour)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Misbehaved { peer, reason } => Some((peer.0, *reason)),
            _ => None,
        })
        .collect()
}

fn found(id: u64, block: &[u8]) -> Message {
    Message::DataFound {
        id: RequestId(id),
        block: block.to_vec(),
    }
}

#[test]
fn an_ssk_request_is_routed_like_a_chk_one_and_a_verified_answer_relayed_and_cached() {
    let uri = insert_uri(1);
    let good = block(&uri, b"edition three");
    let key = good.routing_key();
    let mut one = One::relay(&key);
    let id = RequestId(7);
    let out = one.msg(1, Message::SskRequest { id, key, htl: 10 });
    assert!(matches!(
        sends(&out)[..],
        [
            (1, Message::Accepted { .. }),
            (2, Message::SskRequest { htl: 9, .. })
        ]
    ));
    let out = one.msg(2, found(7, good.as_bytes()));
    assert!(
        matches!(sends(&out)[..], [(1, Message::DataFound { block, .. })] if block == good.as_bytes())
    );
    assert_eq!(ssk_stores(&out), 1, "cached at HTL 10");
}

#[test]
fn a_forged_or_misplaced_ssk_answer_is_misbehaviour_and_the_request_goes_on() {
    let uri = insert_uri(1);
    let good = block(&uri, b"edition three");
    let key = good.routing_key();
    // Signed by another key: it lives under another routing key.
    let other = block(&insert_uri(2), b"squatter");
    let mut tampered = good.as_bytes().to_vec();
    tampered[100] ^= 1;
    let chk = ChkBlock::encode(b"a CHK block is no SSK block").unwrap().0;
    for (i, bad) in [other.as_bytes().to_vec(), tampered, chk.into_bytes()]
        .into_iter()
        .enumerate()
    {
        let mut one = One::relay(&key);
        let id = RequestId(7);
        one.msg(1, Message::SskRequest { id, key, htl: 10 });
        let out = one.msg(2, found(7, &bad));
        assert_eq!(
            misbehaved(&out),
            [(2, Misbehaviour::ForgedBlock)],
            "case {i}"
        );
        assert_eq!(ssk_stores(&out), 0);
        assert!(
            matches!(sends(&out)[..], [(3, Message::SskRequest { .. })]),
            "case {i}"
        );
    }
}

#[test]
fn an_ssk_insert_is_verified_before_it_is_accepted_forwarded_or_stored() {
    let uri = insert_uri(1);
    let good = block(&uri, b"edition three");
    let key = good.routing_key();
    let mut one = One::relay(&key);
    let bad = block(&insert_uri(2), b"squatter").into_bytes();
    let out = one.msg(
        1,
        Message::SskInsert {
            id: RequestId(1),
            key,
            htl: 10,
            block: bad,
        },
    );
    assert_eq!(misbehaved(&out), [(1, Misbehaviour::ForgedBlock)]);
    assert!(sends(&out).is_empty());

    let mut one = One::relay(&key);
    let id = RequestId(2);
    let bytes = good.as_bytes().to_vec();
    let out = one.msg(
        1,
        Message::SskInsert {
            id,
            key,
            htl: 10,
            block: bytes,
        },
    );
    let s = sends(&out);
    assert!(matches!(s[0], (1, Message::Accepted { .. })));
    assert!(
        matches!(s[1], (2, Message::SskInsert { block, htl: 9, .. }) if block == good.as_bytes())
    );
    let out = one.msg(2, Message::Accepted { id });
    assert!(
        sends(&out).is_empty(),
        "the block went with the insert: no InsertData"
    );
    let out = one.msg(2, Message::InsertReply { id });
    assert!(matches!(
        sends(&out)[..],
        [(1, Message::InsertReply { .. })]
    ));
    assert_eq!(ssk_stores(&out), 1);
}

#[test]
fn a_different_block_under_a_held_key_collides_and_the_same_block_does_not() {
    let uri = insert_uri(1);
    let first = block(&uri, b"first");
    let second = block(&uri, b"second");
    let key = first.routing_key();
    assert_eq!(key, second.routing_key());
    let mut one = One::relay(&key);
    one.store.0.insert(key, first.clone());
    let id = RequestId(3);
    let out = one.msg(
        1,
        Message::SskInsert {
            id,
            key,
            htl: 10,
            block: second.as_bytes().to_vec(),
        },
    );
    assert!(
        matches!(sends(&out)[..], [(1, Message::SskCollision { block, .. })] if block == first.as_bytes())
    );
    assert_eq!(ssk_stores(&out), 0);
    let out = one.msg(
        1,
        Message::SskInsert {
            id: RequestId(4),
            key,
            htl: 10,
            block: first.as_bytes().to_vec(),
        },
    );
    assert!(
        matches!(sends(&out)[0], (1, Message::Accepted { .. })),
        "the same block again is no collision"
    );

    // A local insert learns the block a node on the route holds.
    let mut one = One::relay(&key);
    let out = one.handle(Event::InsertSsk {
        client: ClientId(1),
        block: second.clone(),
    });
    let Some((2, Message::SskInsert { id, .. })) = sends(&out).first().copied() else {
        panic!("not routed: {out:?}");
    };
    let id = *id;
    one.msg(2, Message::Accepted { id });
    // A forged collision is misbehaviour and the insert goes on.
    let forged = block(&insert_uri(2), b"x").into_bytes();
    let out = one.msg(2, Message::SskCollision { id, block: forged });
    assert_eq!(misbehaved(&out), [(2, Misbehaviour::ForgedBlock)]);
    assert!(matches!(sends(&out)[..], [(3, Message::SskInsert { .. })]));
    one.msg(3, Message::Accepted { id });
    let out = one.msg(
        3,
        Message::SskCollision {
            id,
            block: first.as_bytes().to_vec(),
        },
    );
    assert!(
        matches!(&out[..], [Action::SskInsertDone { result: Err(SskInsertError::Collision(b)), .. }] if *b == first)
    );
    // Locally held: refused at once, with the held block.
    let mut one = One::relay(&key);
    one.store.0.insert(key, first.clone());
    let out = one.handle(Event::InsertSsk {
        client: ClientId(2),
        block: second,
    });
    assert!(
        matches!(&out[..], [Action::SskInsertDone { result: Err(SskInsertError::Collision(b)), .. }] if *b == first)
    );
}

#[test]
fn local_ssk_fetches_come_from_the_store_or_the_network_and_are_never_cached_by_their_originator() {
    let uri = insert_uri(1);
    let good = block(&uri, b"edition three");
    let key = good.routing_key();
    let mut one = One::relay(&key);
    let out = one.handle(Event::FetchSsk {
        client: ClientId(1),
        key,
    });
    let Some((2, Message::SskRequest { id, htl: 18, .. })) = sends(&out).first().copied() else {
        panic!("not routed: {out:?}");
    };
    let id = *id;
    // A CHK request for the same key is not merged into it.
    let out = one.msg(
        1,
        Message::Request {
            id: RequestId(99),
            key,
            htl: 10,
        },
    );
    assert!(sends(&out)
        .iter()
        .any(|(_, m)| matches!(m, Message::Request { .. })));
    one.msg(2, Message::Accepted { id });
    let out = one.msg(2, found(id.0, good.as_bytes()));
    assert!(matches!(&out[..], [Action::SskFetchDone { result: Ok(b), .. }] if *b == good));

    let mut one = One::relay(&key);
    one.store.0.insert(key, good.clone());
    let out = one.handle(Event::FetchSsk {
        client: ClientId(2),
        key,
    });
    assert!(matches!(&out[..], [Action::SskFetchDone { result: Ok(b), .. }] if *b == good));
    let out = one.msg(
        1,
        Message::SskRequest {
            id: RequestId(5),
            key,
            htl: 10,
        },
    );
    assert!(
        matches!(sends(&out)[0], (1, Message::DataFound { block, .. }) if block == good.as_bytes())
    );
}
