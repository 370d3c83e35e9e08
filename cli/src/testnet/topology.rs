//! The testnet's graph: a ring with sparse Kleinberg long links (drawn by the
//! simulator's own [`kleinberg_partner`]), and hop distances over it.

use std::collections::VecDeque;

use rand::SeedableRng as _;
use warren_node::sim::topology::kleinberg_partner;

/// Every this many nodes, one gets a long-range link. Sparse on purpose: a
/// testnet of ten should still have nodes several hops apart, so routing is
/// exercised.
pub const LONG_LINK_EVERY: usize = 3;
/// Draws before giving up on finding a long link that is not a ring link.
const LONG_LINK_DRAWS: usize = 16;

/// Symmetric adjacency lists of a navigable small world over `count` nodes in
/// ring order; the same `seed` gives the same graph.
pub fn small_world(count: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut links: Vec<Vec<usize>> = vec![Vec::new(); count];
    let connect = |links: &mut Vec<Vec<usize>>, a: usize, b: usize| {
        let new = a != b && !links[a].contains(&b);
        if new {
            links[a].push(b);
            links[b].push(a);
        }
        new
    };
    if count < 2 {
        return links;
    }
    for node in 0..count {
        connect(&mut links, node, (node + 1) % count);
    }
    for node in (0..count).step_by(LONG_LINK_EVERY) {
        for _ in 0..LONG_LINK_DRAWS {
            if connect(&mut links, node, kleinberg_partner(&mut rng, node, count)) {
                break;
            }
        }
    }
    for list in &mut links {
        list.sort_unstable();
    }
    links
}

/// Hops from `from` to every node (`None`: unreachable).
pub fn bfs_distances(adjacency: &[Vec<usize>], from: usize) -> Vec<Option<usize>> {
    let mut dist = vec![None; adjacency.len()];
    dist[from] = Some(0);
    let mut queue = VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        let next = dist[node].map_or(0, |d| d + 1);
        for &peer in &adjacency[node] {
            if dist[peer].is_none() {
                dist[peer] = Some(next);
                queue.push_back(peer);
            }
        }
    }
    dist
}

/// The node farthest from `from` in hops, and its distance.
pub fn farthest_from(adjacency: &[Vec<usize>], from: usize) -> Option<(usize, usize)> {
    bfs_distances(adjacency, from)
        .into_iter()
        .enumerate()
        .filter_map(|(node, d)| d.map(|d| (node, d)))
        .max_by_key(|&(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_world_is_connected_symmetric_and_deterministic() {
        let graph = small_world(10, 1);
        assert_eq!(graph, small_world(10, 1));
        for (a, peers) in graph.iter().enumerate() {
            assert!(peers.len() >= 2);
            assert!(!peers.contains(&a));
            for &b in peers {
                assert!(graph[b].contains(&a));
            }
        }
        assert!(bfs_distances(&graph, 0).iter().all(Option::is_some));
    }

    #[test]
    fn long_links_are_added_beyond_the_ring() {
        let graph = small_world(30, 3);
        let links: usize = graph.iter().map(Vec::len).sum::<usize>() / 2;
        assert!(links > 30, "only the ring's {links} links");
    }

    #[test]
    fn ten_node_testnet_has_a_node_three_hops_out() {
        let graph = small_world(10, 1);
        let (_, far) = farthest_from(&graph, 0).unwrap();
        assert!(far >= 3, "farthest node is only {far} hops away");
    }
}
