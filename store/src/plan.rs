//! The placement rules both implementations share, as plain functions.

use std::collections::HashSet;

use rand::Rng as _;
use warren_crypto::RoutingKey;

use crate::record::Slot;
use crate::{Area, StoreConfig};

/// Most entries one random eviction draw looks at (entries of the other
/// area, damaged ones, victims already chosen) before it gives up and the
/// store takes the area's least recently used block instead. The draw walks
/// one keyspace that holds both areas, so it looks at about
/// `all blocks / area's blocks` entries: 1.25–6 for the configurations in
/// `docs/STORE.md`; a cache 1/50 of the store still gives up on only 0.6% of
/// draws.
pub(crate) const RANDOM_SCAN_LIMIT: usize = 256;

/// Where a random eviction draw starts: a uniformly random routing key.
pub(crate) fn random_start(rng: &mut rand::rngs::StdRng) -> RoutingKey {
    RoutingKey::from_bytes(rng.gen())
}

/// The random victim of `area`: the first entry of `entries` (every block in
/// key order from the draw's start, wrapping) that is in `area` and not yet
/// `chosen`. `None` for a damaged entry; `Ok(None)` if no entry qualifies
/// within [`RANDOM_SCAN_LIMIT`] (the caller falls back to LRU). Both stores
/// walk the same key order with the same generator, so with one seed they
/// choose the same victims.
pub(crate) fn pick_random<T, E>(
    entries: impl Iterator<Item = Result<Option<(RoutingKey, Area, T)>, E>>,
    area: Area,
    chosen: &HashSet<RoutingKey>,
) -> Result<Option<(RoutingKey, T)>, E> {
    for entry in entries.take(RANDOM_SCAN_LIMIT) {
        match entry? {
            Some((key, found, payload)) if found == area && !chosen.contains(&key) => {
                return Ok(Some((key, payload)));
            }
            _ => {}
        }
    }
    Ok(None)
}

/// What a `put` must do, decided from where the block is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PutPlan {
    /// Already where it belongs: refresh its access sequence.
    Touch(Slot),
    /// The target area holds no blocks at all (capacity below one block).
    Skip,
    /// Write it into `target` (moving it from `from` if set) after evicting
    /// `evict` blocks of `target` (chosen by the eviction policy).
    Place {
        target: Area,
        from: Option<Slot>,
        evict: u64,
    },
}

/// Decides a `put` to `area` of a block now at `existing`, given each area's
/// block count. The store wins: a stored block stays stored; a cached block
/// put to the store moves there.
pub(crate) fn plan_put(
    existing: Option<Slot>,
    area: Area,
    blocks: [u64; 2],
    config: &StoreConfig,
) -> PutPlan {
    let target = match existing {
        Some(slot) if slot.area == Area::Store => Area::Store,
        _ => area,
    };
    if let Some(slot) = existing {
        if slot.area == target {
            return PutPlan::Touch(slot);
        }
    }
    let capacity = config.capacity_blocks(target);
    if capacity == 0 {
        // A cached block put to a store of size zero stays cached.
        return existing.map_or(PutPlan::Skip, PutPlan::Touch);
    }
    PutPlan::Place {
        target,
        from: existing,
        evict: (blocks[target.index()] + 1).saturating_sub(capacity),
    }
}

/// How many blocks `area` holds beyond its bound (after a config shrink).
pub(crate) fn excess(area: Area, blocks: [u64; 2], config: &StoreConfig) -> u64 {
    blocks[area.index()].saturating_sub(config.capacity_blocks(area))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use warren_crypto::BLOCK_LEN;

    use super::*;

    /// The first 8 bytes of a key as a fraction of the keyspace.
    fn position(key: &RoutingKey) -> f64 {
        let mut top = [0u8; 8];
        top.copy_from_slice(&key.as_bytes()[..8]);
        u64::from_be_bytes(top) as f64 / 2f64.powi(64)
    }

    /// The nearest-key rule, measured: a block is drawn as often as the
    /// stretch of keyspace between it and the previous block of its area
    /// (wrapping) is long; blocks of the other area do not shield it. So
    /// every block is drawn, none is safe, and shares vary with the gaps.
    #[test]
    fn random_draws_follow_the_gaps_before_each_block() {
        const BLOCKS: usize = 40;
        const DRAWS: usize = 40_000;
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut keys: Vec<(RoutingKey, Area)> = (0..BLOCKS)
            .map(|i| {
                let area = if i % 4 == 0 { Area::Store } else { Area::Cache };
                (random_start(&mut rng), area)
            })
            .collect();
        keys.sort();
        let cache: Vec<f64> = keys
            .iter()
            .filter(|(_, a)| *a == Area::Cache)
            .map(|(k, _)| position(k))
            .collect();
        let mut counts = std::collections::HashMap::<RoutingKey, usize>::new();
        let none = HashSet::new();
        for _ in 0..DRAWS {
            let start = random_start(&mut rng);
            let from = keys.partition_point(|(k, _)| *k < start);
            let entries = keys[from..]
                .iter()
                .chain(&keys[..from])
                .map(|&(k, a)| Ok::<_, ()>(Some((k, a, ()))));
            let (key, ()) = pick_random(entries, Area::Cache, &none).unwrap().unwrap();
            *counts.entry(key).or_default() += 1;
        }
        let cached = keys.iter().filter(|(_, a)| *a == Area::Cache);
        for (i, (key, _)) in cached.enumerate() {
            let prev = if i == 0 {
                cache[cache.len() - 1] - 1.0
            } else {
                cache[i - 1]
            };
            let expected = (cache[i] - prev) * DRAWS as f64;
            let got = counts.get(key).copied().unwrap_or(0) as f64;
            assert!(got > 0.0, "block {i} never drawn");
            // Binomial noise: within 5 standard deviations (plus rounding).
            let sd = expected.sqrt().max(1.0);
            assert!(
                (got - expected).abs() < 5.0 * sd + 2.0,
                "block {i}: {got} vs {expected:.0}"
            );
        }
        assert!(counts
            .keys()
            .all(|k| keys.iter().any(|(x, a)| x == k && *a == Area::Cache)));
    }

    #[test]
    fn random_draw_skips_chosen_and_gives_up_past_the_limit() {
        let key = |b: u8| RoutingKey::from_bytes([b; 32]);
        let entries = |v: Vec<Option<(RoutingKey, Area, ())>>| v.into_iter().map(Ok::<_, ()>);
        let chosen: HashSet<RoutingKey> = [key(1)].into_iter().collect();
        let found = pick_random(
            entries(vec![
                Some((key(1), Area::Cache, ())),
                None,
                Some((key(2), Area::Store, ())),
                Some((key(3), Area::Cache, ())),
            ]),
            Area::Cache,
            &chosen,
        );
        assert_eq!(found, Ok(Some((key(3), ()))));
        let far = (0..RANDOM_SCAN_LIMIT)
            .map(|_| Some((key(2), Area::Store, ())))
            .chain([Some((key(3), Area::Cache, ()))]);
        assert_eq!(
            pick_random(entries(far.collect()), Area::Cache, &chosen),
            Ok(None)
        );
    }

    fn config(store: u64, cache: u64) -> StoreConfig {
        StoreConfig {
            store_bytes: store * BLOCK_LEN as u64,
            cache_bytes: cache * BLOCK_LEN as u64,
            ..StoreConfig::default()
        }
    }

    #[test]
    fn store_wins_over_cache() {
        let cfg = config(2, 2);
        let stored = Slot {
            area: Area::Store,
            seq: 1,
        };
        let cached = Slot {
            area: Area::Cache,
            seq: 1,
        };
        assert_eq!(
            plan_put(Some(stored), Area::Cache, [1, 0], &cfg),
            PutPlan::Touch(stored)
        );
        assert_eq!(
            plan_put(Some(cached), Area::Store, [2, 1], &cfg),
            PutPlan::Place {
                target: Area::Store,
                from: Some(cached),
                evict: 1
            }
        );
        assert_eq!(
            plan_put(Some(cached), Area::Cache, [0, 1], &cfg),
            PutPlan::Touch(cached)
        );
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let cfg = config(0, 1);
        assert_eq!(plan_put(None, Area::Store, [0, 0], &cfg), PutPlan::Skip);
        let cached = Slot {
            area: Area::Cache,
            seq: 3,
        };
        assert_eq!(
            plan_put(Some(cached), Area::Store, [0, 1], &cfg),
            PutPlan::Touch(cached)
        );
        assert_eq!(excess(Area::Cache, [0, 3], &cfg), 2);
    }
}
