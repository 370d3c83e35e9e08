//! The placement rules both implementations share, as plain functions.

use crate::record::Slot;
use crate::{Area, StoreConfig};

/// What a `put` must do, decided from where the block is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PutPlan {
    /// Already where it belongs: refresh its access sequence.
    Touch(Slot),
    /// The target area holds no blocks at all (capacity below one block).
    Skip,
    /// Write it into `target` (moving it from `from` if set) after evicting
    /// `evict` least recently used blocks of `target`.
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
    use warren_crypto::BLOCK_LEN;

    use super::*;

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
