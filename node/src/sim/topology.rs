//! Graphs to simulate: Kleinberg's navigable small world and its random control.

use core::fmt;
use core::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};
use warren_crypto::Location;

use super::net::NodeIx;

/// Draws per wanted link before giving up on finding a new neighbour.
const LINK_DRAWS: usize = 8;
/// Ring neighbours each node has in the ideal topology (one each side).
const RING_LINKS: usize = 2;

/// How the simulated nodes are linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Kleinberg's small world: each node links to its ring neighbours plus long
    /// links whose length `d` is drawn with probability proportional to `1/d`.
    /// Greedy routing finds short paths here.
    #[default]
    Ideal,
    /// Links to uniformly random nodes: the control, where greedy routing
    /// should fail.
    Random,
    /// Opennet: each node starts with a few random links
    /// ([`FOLDED_INITIAL_DEGREE`]) and announcement and path folding reshape
    /// the graph while requests flow.
    Folded,
    /// Opennet: nodes arrive one at a time knowing only node 0 (the seed) and
    /// join by announcement; then path folding, as in `Folded`.
    Join,
}

/// Mean degree the folded topology starts from.
pub const FOLDED_INITIAL_DEGREE: usize = 4;

impl Topology {
    /// Whether nodes run the opennet (announcement, folding) in this topology.
    pub fn is_opennet(self) -> bool {
        matches!(self, Topology::Folded | Topology::Join)
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Topology::Ideal => "ideal",
            Topology::Random => "random",
            Topology::Folded => "folded",
            Topology::Join => "join",
        })
    }
}

/// A topology name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown topology {0:?}: expected \"ideal\", \"random\", \"folded\" or \"join\"")]
pub struct TopologyError(String);

impl FromStr for Topology {
    type Err = TopologyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ideal" => Ok(Topology::Ideal),
            "random" => Ok(Topology::Random),
            "folded" => Ok(Topology::Folded),
            "join" => Ok(Topology::Join),
            other => Err(TopologyError(other.to_owned())),
        }
    }
}

/// Random node locations, sorted so that index order is ring order, and an
/// undirected adjacency list whose mean degree is about `degree`.
pub fn build<R: Rng + ?Sized>(
    rng: &mut R,
    n: usize,
    degree: usize,
    topology: Topology,
) -> (Vec<Location>, Vec<Vec<NodeIx>>) {
    let mut locations: Vec<Location> = (0..n).map(|_| Location(rng.gen())).collect();
    locations.sort_unstable();
    let mut adjacency: Vec<Vec<NodeIx>> = vec![Vec::new(); n];
    if n < 2 {
        return (locations, adjacency);
    }
    match topology {
        Topology::Ideal => ideal(rng, &mut adjacency, degree),
        Topology::Random => random(rng, &mut adjacency, degree),
        Topology::Folded => random(rng, &mut adjacency, FOLDED_INITIAL_DEGREE),
        Topology::Join => {}
    }
    for list in &mut adjacency {
        list.sort_unstable();
        list.dedup();
        list.shrink_to_fit();
    }
    (locations, adjacency)
}

fn link(adjacency: &mut [Vec<NodeIx>], a: usize, b: usize) -> bool {
    if a == b || adjacency[a].contains(&(b as NodeIx)) {
        return false;
    }
    adjacency[a].push(b as NodeIx);
    adjacency[b].push(a as NodeIx);
    true
}

fn ideal<R: Rng + ?Sized>(rng: &mut R, adjacency: &mut [Vec<NodeIx>], degree: usize) {
    let n = adjacency.len();
    for i in 0..n {
        link(adjacency, i, (i + 1) % n);
    }
    // Each node starts half its long links; it receives about as many.
    let long = degree.saturating_sub(RING_LINKS) / 2;
    for i in 0..n {
        for _ in 0..long {
            for _ in 0..LINK_DRAWS {
                if link(adjacency, i, kleinberg_partner(rng, i, n)) {
                    break;
                }
            }
        }
    }
}

/// A long-link partner for node `i` of `n` nodes in ring order: ring distance
/// `d` drawn with probability proportional to `1/d` (Kleinberg), either way
/// round. The testnet draws its long links with this too.
pub fn kleinberg_partner<R: Rng + ?Sized>(rng: &mut R, i: usize, n: usize) -> usize {
    let half = (n / 2).max(1) as f64;
    // Inverse CDF of P(d) ∝ 1/d on [1, n/2]: d = (n/2)^u.
    let d = (half.powf(rng.gen::<f64>()) as usize).clamp(1, n.saturating_sub(1).max(1));
    if rng.gen::<bool>() {
        (i + d) % n
    } else {
        (i + n - d % n) % n
    }
}

fn random<R: Rng + ?Sized>(rng: &mut R, adjacency: &mut [Vec<NodeIx>], degree: usize) {
    let n = adjacency.len();
    let out = (degree / 2).max(1);
    for i in 0..n {
        for _ in 0..out {
            for _ in 0..LINK_DRAWS {
                if link(adjacency, i, rng.gen_range(0..n)) {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn mean_degree_is_near_the_target_and_links_are_symmetric() {
        for topology in [Topology::Ideal, Topology::Random] {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let (locations, adjacency) = build(&mut rng, 2000, 20, topology);
            assert!(locations.windows(2).all(|w| w[0] <= w[1]));
            let total: usize = adjacency.iter().map(Vec::len).sum();
            let mean = total as f64 / 2000.0;
            assert!(
                (18.0..=22.0).contains(&mean),
                "{topology}: mean degree {mean}"
            );
            for (a, list) in adjacency.iter().enumerate() {
                for &b in list {
                    assert!(adjacency[b as usize].contains(&(a as NodeIx)));
                    assert_ne!(b as usize, a);
                }
            }
        }
    }

    #[test]
    fn ideal_links_are_mostly_short_random_ones_are_not() {
        let short = |topology| {
            let mut rng = ChaCha8Rng::seed_from_u64(4);
            let (_, adjacency) = build(&mut rng, 4000, 20, topology);
            let mut count = 0usize;
            let mut total = 0usize;
            for (a, list) in adjacency.iter().enumerate() {
                for &b in list {
                    let d = a.abs_diff(b as usize);
                    count += usize::from(d.min(4000 - d) <= 40);
                    total += 1;
                }
            }
            count as f64 / total as f64
        };
        // 1/d weighting puts about half the links within 1% of the ring.
        assert!(short(Topology::Ideal) > 0.4);
        assert!(short(Topology::Random) < 0.05);
    }

    #[test]
    fn names_parse() {
        assert_eq!("ideal".parse::<Topology>(), Ok(Topology::Ideal));
        assert_eq!("random".parse::<Topology>(), Ok(Topology::Random));
        assert!("kleinberg".parse::<Topology>().is_err());
    }
}
