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
        let Some(existing) = self.ids.get(&key).and_then(|id| self.links.get(id)) else {
            return Admit::New;
        };
        // The canonical link is the one the smaller key initiated.
        let we_are_smaller = self.own_key < key;
        let new_is_canonical = outbound == we_are_smaller;
        let old_is_canonical = existing.outbound == we_are_smaller;
        if new_is_canonical && !old_is_canonical {
            Admit::Replace
        } else {
            Admit::Reject
        }
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

    pub(super) fn link_count(&self) -> usize {
        self.links.len()
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
