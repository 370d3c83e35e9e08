//! Malicious nodes: a share of the simulated nodes that attack every fetch
//! routed to them, to measure what the routing core's defences are worth.
//!
//! The attackers store and relay inserts honestly (a censor wants to hold
//! the data it refuses), and answer each `Request` sent to them in one of
//! four ways ([`MaliciousKind`]). They are played by an [`Interceptor`], so
//! the honest nodes run the real core unchanged.

use core::fmt;
use core::str::FromStr;

use rand::seq::index::sample;
use rand::Rng;
use serde::{Deserialize, Serialize};
use warren_crypto::BLOCK_LEN;

use super::net::{Intercept, Interceptor, NodeIx};
use crate::wire::Message;

/// Filler of the forged blocks: the right length, the wrong hash.
const FORGED_FILL: u8 = 0x5a;

/// What a malicious node does with a fetch routed to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MaliciousKind {
    /// Answers `DataNotFound` with HTL 0: "searched everywhere, nothing".
    #[default]
    Dnf,
    /// Swallows it: no answer at all.
    Drop,
    /// Answers `DataFound` with a block that does not hash to the key.
    Forge,
    /// Answers `Accepted`, then nothing.
    Stall,
}

impl MaliciousKind {
    pub const ALL: [MaliciousKind; 4] = [
        MaliciousKind::Dnf,
        MaliciousKind::Drop,
        MaliciousKind::Forge,
        MaliciousKind::Stall,
    ];
}

impl fmt::Display for MaliciousKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MaliciousKind::Dnf => "dnf",
            MaliciousKind::Drop => "drop",
            MaliciousKind::Forge => "forge",
            MaliciousKind::Stall => "stall",
        })
    }
}

/// A malicious kind name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown malicious kind {0:?}: expected \"dnf\", \"drop\", \"forge\" or \"stall\"")]
pub struct MaliciousKindError(String);

impl FromStr for MaliciousKind {
    type Err = MaliciousKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MaliciousKind::ALL
            .into_iter()
            .find(|k| k.to_string() == s)
            .ok_or_else(|| MaliciousKindError(s.to_owned()))
    }
}

/// What the attackers did and what the honest nodes made of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MaliciousReport {
    pub kind: MaliciousKind,
    /// Malicious nodes in the network.
    pub nodes: usize,
    /// Fetches the attackers answered (or swallowed).
    pub requests_attacked: u64,
    /// Forged blocks the honest nodes detected and refused.
    pub forged_refused: u64,
    /// Fetches that completed with a block other than the one asked for
    /// (a forged block accepted): must stay 0.
    pub wrong_blocks_accepted: u64,
    /// "Not found, HTL 0" claims that did not end a search.
    pub not_found_doubted: u64,
}

/// A random `fraction` of `n` nodes, as a membership mask.
pub fn pick<R: Rng + ?Sized>(rng: &mut R, n: usize, fraction: f64) -> Vec<bool> {
    let count = ((fraction.clamp(0.0, 1.0) * n as f64).round() as usize).min(n);
    let mut bad = vec![false; n];
    for x in sample(rng, n, count).iter() {
        bad[x] = true;
    }
    bad
}

/// Plays the nodes in `bad` as attackers of `kind`; `attacked` counts the
/// requests they answered.
pub fn interceptor(
    bad: Vec<bool>,
    kind: MaliciousKind,
    attacked: std::rc::Rc<core::cell::Cell<u64>>,
) -> Interceptor {
    Box::new(move |_from, to: NodeIx, msg| match msg {
        Message::Request { id, .. } if bad.get(to as usize).copied().unwrap_or(false) => {
            attacked.set(attacked.get() + 1);
            let id = *id;
            match kind {
                MaliciousKind::Dnf => Intercept::Answer(Message::DataNotFound { id, htl: 0 }),
                MaliciousKind::Drop => Intercept::Drop,
                MaliciousKind::Forge => Intercept::Answer(Message::DataFound {
                    id,
                    block: vec![FORGED_FILL; BLOCK_LEN],
                }),
                MaliciousKind::Stall => Intercept::Answer(Message::Accepted { id }),
            }
        }
        _ => Intercept::Deliver,
    })
}
