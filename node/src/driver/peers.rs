//! The driver's peer table: which links are up, under which `PeerId`, and
//! which peers to keep dialling.
//!
//! Two nodes that dial each other at once end up with two links. Both sides
//! keep the same one: the link initiated by the node with the smaller public
//! key. The loser is closed gracefully and kept, by its link id, until its
//! `Closed` event comes; only the `Closed` of the live link takes a peer down.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use warren_crypto::{NodePublicKey, NodeRef};

use crate::link::{LinkHandle, LinkId};
use crate::routing::PeerId;

/// Peers remembered for redialling at most (configured peers always count).
pub(super) const MAX_KNOWN_PEERS: usize = 256;
/// Replaced links kept until they report `Closed`; beyond this, old links of
/// flapping peers are dropped (aborted, without a goodbye) instead.
const MAX_RETIRING: usize = 64;

#[derive(Debug)]
pub(super) struct Slot {
    pub(super) handle: LinkHandle,
    pub(super) noderef: NodeRef,
    pub(super) outbound: bool,
}

/// What to do with a link that just finished its handshake.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admit {
    /// No link to this peer yet: spawn it and tell the core the peer is up.
    New,
    /// It replaces an existing link: spawn it; the core's view is unchanged.
    Replace,
    /// The existing link wins: drop the new one.
    Reject,
}

/// The duplicate-link rule, on its own so it can be checked for every order
/// in which two links can arrive: `existing` is whether the live link to
/// `peer`, if any, was dialled by us.
fn admit_rule(
    own: &NodePublicKey,
    peer: &NodePublicKey,
    existing: Option<bool>,
    outbound: bool,
) -> Admit {
    let Some(existing_outbound) = existing else {
        return Admit::New;
    };
    // The canonical link is the one the smaller key initiated.
    let we_are_smaller = own < peer;
    let new_is_canonical = outbound == we_are_smaller;
    let old_is_canonical = existing_outbound == we_are_smaller;
    if new_is_canonical && !old_is_canonical {
        Admit::Replace
    } else {
        Admit::Reject
    }
}

#[derive(Debug)]
pub(super) struct PeerTable {
    own_key: NodePublicKey,
    ids: HashMap<NodePublicKey, PeerId>,
    links: HashMap<PeerId, Slot>,
    /// Links closed as duplicates whose `Closed` event is still to come.
    retiring: HashMap<LinkId, LinkHandle>,
    known: HashMap<NodePublicKey, NodeRef>,
    peers_file: PathBuf,
    next_id: u64,
}

impl PeerTable {
    pub(super) fn new(own_key: NodePublicKey, data_dir: &Path) -> Self {
        PeerTable {
            own_key,
            ids: HashMap::new(),
            links: HashMap::new(),
            retiring: HashMap::new(),
            known: HashMap::new(),
            peers_file: data_dir.join(super::PEERS_FILE),
            next_id: 0,
        }
    }

    fn id_for(&mut self, key: NodePublicKey) -> PeerId {
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = PeerId(self.next_id);
        self.next_id += 1;
        self.ids.insert(key, id);
        id
    }

    /// Decides whether a new link is kept (see the module docs).
    pub(super) fn admit(&self, peer: &NodeRef, outbound: bool) -> Admit {
        let key = peer.identity;
        let existing = self.ids.get(&key).and_then(|id| self.links.get(id));
        admit_rule(
            &self.own_key,
            &key,
            existing.map(|slot| slot.outbound),
            outbound,
        )
    }

    /// Records a spawned link and returns its peer id; a link it replaces is
    /// closed and kept until its `Closed` event.
    pub(super) fn insert(&mut self, handle: LinkHandle, outbound: bool) -> PeerId {
        let noderef = handle.peer().clone();
        let key = noderef.identity;
        let id = self.id_for(key);
        // Only peers we dialled are remembered for redialling: an inbound
        // peer's claimed address is not ours to trust, and a stranger could
        // otherwise fill the list (and have us dial whatever it names).
        if outbound {
            self.remember(noderef.clone());
        }
        if let Some(old) = self.links.insert(
            id,
            Slot {
                handle,
                noderef,
                outbound,
            },
        ) {
            old.handle.close();
            if self.retiring.len() < MAX_RETIRING {
                self.retiring.insert(old.handle.id(), old.handle);
            }
        }
        id
    }

    /// Link `link` to `key` closed. Returns the peer id if that was the live
    /// link (the peer is now down), or `None` if it was a replaced duplicate.
    pub(super) fn closed(&mut self, key: &NodePublicKey, link: LinkId) -> Option<PeerId> {
        if self.retiring.remove(&link).is_some() {
            return None;
        }
        let id = *self.ids.get(key)?;
        if self
            .links
            .get(&id)
            .is_some_and(|slot| slot.handle.id() == link)
        {
            self.links.remove(&id);
            if !self.known.contains_key(key) {
                // A stranger that left: forget its id, so peers coming and
                // going cannot grow the map.
                self.ids.remove(key);
            }
            return Some(id);
        }
        None
    }

    /// Drops the retiring links (closed already) at shutdown.
    pub(super) fn close_retiring(&mut self) {
        self.retiring.clear();
    }

    pub(super) fn id_of(&self, key: &NodePublicKey) -> Option<PeerId> {
        self.ids
            .get(key)
            .copied()
            .filter(|id| self.links.contains_key(id))
    }

    pub(super) fn link(&self, id: PeerId) -> Option<&Slot> {
        self.links.get(&id)
    }

    pub(super) fn links(&self) -> impl Iterator<Item = &Slot> {
        self.links.values()
    }

    pub(super) fn is_connected(&self, key: &NodePublicKey) -> bool {
        self.id_of(key).is_some()
    }

    pub(super) fn known(&self, key: &NodePublicKey) -> Option<&NodeRef> {
        self.known.get(key)
    }

    /// Remembers a peer for redialling and saves the list.
    pub(super) fn remember(&mut self, noderef: NodeRef) {
        if noderef.identity == self.own_key {
            return;
        }
        if self.known.get(&noderef.identity) == Some(&noderef) {
            return;
        }
        if self.known.len() >= MAX_KNOWN_PEERS && !self.known.contains_key(&noderef.identity) {
            return;
        }
        self.known.insert(noderef.identity, noderef);
        self.save();
    }

    /// Stops remembering a peer (it is not redialled) and saves the list.
    pub(super) fn forget(&mut self, key: &NodePublicKey) {
        if self.known.remove(key).is_some() {
            self.save();
        }
    }

    /// Peers remembered from earlier runs.
    pub(super) fn load_saved(&self) -> Vec<NodeRef> {
        let Ok(text) = std::fs::read_to_string(&self.peers_file) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| match line.parse::<NodeRef>() {
                Ok(noderef) => Some(noderef),
                Err(err) => {
                    tracing::warn!(file = %self.peers_file.display(), %err, "skipping a bad saved peer");
                    None
                }
            })
            .take(MAX_KNOWN_PEERS)
            .collect()
    }

    /// Writes the known peers (tmp file + rename, so a crash leaves the old list).
    fn save(&self) {
        let mut lines: Vec<String> = self.known.values().map(ToString::to_string).collect();
        lines.sort();
        let tmp = self.peers_file.with_extension("tmp");
        let result = std::fs::write(&tmp, lines.join("\n") + "\n")
            .and_then(|()| std::fs::rename(&tmp, &self.peers_file));
        if let Err(err) = result {
            tracing::warn!(file = %self.peers_file.display(), %err, "cannot save the peer list");
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// One side's view: which of the two links (`0` dialled by `a`, `1`
    /// dialled by `b`) it keeps, given the order they reach it.
    fn kept(
        own: NodePublicKey,
        peer: NodePublicKey,
        own_dials: usize,
        order: [usize; 2],
    ) -> Option<usize> {
        let mut live: Option<usize> = None;
        for link in order {
            let outbound = link == own_dials;
            match admit_rule(&own, &peer, live.map(|l| l == own_dials), outbound) {
                Admit::New | Admit::Replace => live = Some(link),
                Admit::Reject => {}
            }
        }
        live
    }

    proptest! {
        #[test]
        fn both_ends_keep_the_same_link_whatever_the_order(a: [u8; 32], b: [u8; 32], a_first: bool, b_first: bool) {
            prop_assume!(a != b);
            let (a, b) = (NodePublicKey(a), NodePublicKey(b));
            let order = |first: bool| if first { [0, 1] } else { [1, 0] };
            let at_a = kept(a, b, 0, order(a_first));
            let at_b = kept(b, a, 1, order(b_first));
            prop_assert_eq!(at_a, at_b);
            // ...and it is the link the smaller key dialled.
            prop_assert_eq!(at_a, Some(usize::from(a >= b)));
        }
    }

    #[test]
    fn a_single_link_is_always_kept() {
        let (a, b) = (NodePublicKey([1; 32]), NodePublicKey([2; 32]));
        assert_eq!(admit_rule(&a, &b, None, true), Admit::New);
        assert_eq!(admit_rule(&b, &a, None, false), Admit::New);
    }
}
