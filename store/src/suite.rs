//! The test suite every `BlockStore` implementation must pass, plus a
//! model-based property test (put, get, contains, corrupt, flush, reopen)
//! against a plain in-memory model, in the manner of sled's
//! `prop_tree_matches_btreemap`.

use std::collections::HashSet;
use std::sync::Arc;

use proptest::prelude::*;
use warren_crypto::{ChkBlock, ChkKey, BLOCK_LEN};

use crate::{Area, BlockStore, Eviction, MemoryStore, SledStore, StoreConfig, StoreStats};

/// Seed of the random eviction draws in every test store: reproducible.
pub(crate) const TEST_SEED: u64 = 17;

/// How a test gets, reopens and damages stores of one implementation.
///
/// A harness opens every store with its eviction policy (whatever the
/// config passed says), so each test of the suite runs under both.
pub(crate) trait Harness {
    type Store: BlockStore;
    /// The policy stores are opened with from now on (tests may switch it).
    fn policy(&mut self) -> &mut Eviction;
    fn open(&mut self, config: StoreConfig) -> Self::Store;
    /// Closes and opens again with `config` (the memory store keeps its
    /// blocks and their order, as a disk store does).
    fn reopen(&mut self, store: Self::Store, config: StoreConfig) -> Self::Store;
    /// Flips a byte of the stored copy of `key`; whether it was held.
    fn corrupt(store: &Self::Store, key: &warren_crypto::RoutingKey) -> bool;
}

/// `config` with `policy`, and the test seed unless it names its own.
pub(crate) fn with_policy(config: &StoreConfig, policy: Eviction) -> StoreConfig {
    StoreConfig {
        eviction: policy,
        eviction_seed: config.eviction_seed.or(Some(TEST_SEED)),
        ..config.clone()
    }
}

pub(crate) struct MemoryHarness(pub(crate) Eviction);

impl Harness for MemoryHarness {
    type Store = MemoryStore;
    fn policy(&mut self) -> &mut Eviction {
        &mut self.0
    }
    fn open(&mut self, config: StoreConfig) -> MemoryStore {
        MemoryStore::new(with_policy(&config, self.0))
    }
    fn reopen(&mut self, store: MemoryStore, config: StoreConfig) -> MemoryStore {
        store.reopen(with_policy(&config, self.0))
    }
    fn corrupt(store: &MemoryStore, key: &warren_crypto::RoutingKey) -> bool {
        store.corrupt_stored_block(key).unwrap()
    }
}

pub(crate) struct SledHarness(tempfile::TempDir, Eviction);

impl SledHarness {
    pub(crate) fn new(policy: Eviction) -> Self {
        SledHarness(tempfile::tempdir().unwrap(), policy)
    }
}

impl Harness for SledHarness {
    type Store = SledStore;
    fn policy(&mut self) -> &mut Eviction {
        &mut self.1
    }
    fn open(&mut self, config: StoreConfig) -> SledStore {
        SledStore::open(self.0.path(), with_policy(&config, self.1)).unwrap()
    }
    fn reopen(&mut self, store: SledStore, config: StoreConfig) -> SledStore {
        drop(store);
        SledStore::open(self.0.path(), with_policy(&config, self.1)).unwrap()
    }
    fn corrupt(store: &SledStore, key: &warren_crypto::RoutingKey) -> bool {
        store.corrupt_stored_block(key).unwrap()
    }
}

/// Distinct blocks with their keys.
pub(crate) fn blocks(n: usize) -> Vec<(ChkBlock, ChkKey)> {
    (0..n)
        .map(|i| ChkBlock::encode(format!("block {i}").as_bytes()).unwrap())
        .collect()
}

/// A config holding `store` and `cache` whole blocks (plus a partial block
/// of slack, which must not count). LRU, so tests outside the harnesses can
/// say which block goes (the harnesses set their own policy).
pub(crate) fn config_blocks(store: u64, cache: u64) -> StoreConfig {
    let slack = BLOCK_LEN as u64 - 1;
    StoreConfig {
        store_bytes: store * BLOCK_LEN as u64 + slack,
        cache_bytes: cache * BLOCK_LEN as u64 + slack,
        sled_cache_bytes: 1 << 20,
        flush_every_ms: None,
        eviction: Eviction::Lru,
        ..StoreConfig::default()
    }
}

pub(crate) fn put_get_round_trip<H: Harness>(mut h: H) {
    let s = h.open(StoreConfig::default());
    let (block, key) = ChkBlock::encode(b"round trip").unwrap();
    assert!(!s.contains(&key.routing).unwrap());
    assert!(s.get(&key.routing).unwrap().is_none());
    s.put(Area::Cache, &block).unwrap();
    s.put(Area::Cache, &block).unwrap(); // idempotent
    s.flush().unwrap();
    assert!(s.contains(&key.routing).unwrap());
    let got = s.get(&key.routing).unwrap().unwrap();
    assert_eq!(got.decode(&key.crypto).unwrap(), b"round trip");
    let st = s.stats();
    assert_eq!((st.cache.blocks, st.cache.bytes), (1, BLOCK_LEN as u64));
    assert_eq!((st.cache.hits, st.misses, st.store.blocks), (1, 1, 0));
    assert_eq!(st.cache.capacity_bytes, StoreConfig::default().cache_bytes);
}

/// The block each policy gives up: under LRU exactly the least recently
/// used one; under random any block of the area, the most recently used
/// included (over several seeds, not always the LRU one).
pub(crate) fn evicts_by_policy<H: Harness>(mut h: H) {
    let policy = *h.policy();
    let b = blocks(4);
    let mut victims = HashSet::new();
    for seed in 0..16 {
        let config = StoreConfig {
            eviction_seed: Some(seed),
            ..config_blocks(0, 3)
        };
        let s = h.open(config.clone());
        for (block, _) in &b[..3] {
            s.put(Area::Cache, block).unwrap();
        }
        // A read is an access: block 0 becomes the most recent, block 1 the LRU.
        assert!(s.get(&b[0].1.routing).unwrap().is_some());
        s.put(Area::Cache, &b[3].0).unwrap();
        let st = s.stats();
        assert_eq!((st.cache.blocks, st.cache.evictions), (3, 1));
        assert!(st.cache.bytes <= st.cache.capacity_bytes);
        assert!(
            s.contains(&b[3].1.routing).unwrap(),
            "the new block is kept"
        );
        let gone: Vec<usize> = (0..3)
            .filter(|&i| !s.contains(&b[i].1.routing).unwrap())
            .collect();
        assert_eq!(gone.len(), 1, "{gone:?}");
        victims.insert(gone[0]);
        // Empty the store for the next seed: reopen with room for nothing.
        let s = h.reopen(s, config_blocks(0, 0));
        assert_eq!(s.stats().cache.blocks, 0);
        drop(s);
        if policy == Eviction::Lru {
            assert_eq!(gone, [1], "LRU evicts the least recently used");
            break;
        }
    }
    if policy == Eviction::Random {
        assert!(
            victims.contains(&0),
            "the MRU block was never drawn: {victims:?}"
        );
        assert!(victims.len() >= 2, "{victims:?}");
    }
}

pub(crate) fn store_wins_over_cache<H: Harness>(mut h: H) {
    let s = h.open(config_blocks(2, 2));
    let b = blocks(2);
    s.put(Area::Cache, &b[0].0).unwrap();
    s.put(Area::Store, &b[0].0).unwrap(); // moves
    s.put(Area::Store, &b[1].0).unwrap();
    s.put(Area::Cache, &b[1].0).unwrap(); // stays in the store
    let st = s.stats();
    assert_eq!((st.store.blocks, st.cache.blocks), (2, 0));
    let got = s.get(&b[0].1.routing).unwrap().unwrap();
    assert_eq!(got.routing_key(), b[0].1.routing);
    assert_eq!(s.stats().store.hits, 1);
}

pub(crate) fn zero_capacity_area_stores_nothing<H: Harness>(mut h: H) {
    let s = h.open(config_blocks(0, 0));
    let (block, key) = ChkBlock::encode(b"nowhere").unwrap();
    s.put(Area::Store, &block).unwrap();
    s.put(Area::Cache, &block).unwrap();
    assert!(!s.contains(&key.routing).unwrap());
    assert_eq!(s.stats().store.blocks + s.stats().cache.blocks, 0);
}

pub(crate) fn corrupt_block_is_dropped_not_served<H: Harness>(mut h: H) {
    let s = h.open(StoreConfig::default());
    let b = blocks(2);
    s.put(Area::Store, &b[0].0).unwrap();
    s.put(Area::Cache, &b[1].0).unwrap();
    assert!(H::corrupt(&s, &b[0].1.routing));
    assert!(s.get(&b[0].1.routing).unwrap().is_none());
    assert!(!s.contains(&b[0].1.routing).unwrap());
    assert!(s.get(&b[1].1.routing).unwrap().is_some());
    assert_eq!(s.get(&b[1].1.routing).unwrap().as_ref(), Some(&b[1].0));
    let st = s.stats();
    assert_eq!(
        (st.store.corrupt_dropped, st.store.blocks, st.misses),
        (1, 0, 1)
    );
    assert_eq!((st.cache.blocks, st.cache.corrupt_dropped), (1, 0));
    // Deleted, not only hidden: still gone after a flush and a reopen.
    s.flush().unwrap();
    let s = h.reopen(s, StoreConfig::default());
    assert!(!s.contains(&b[0].1.routing).unwrap());
    assert!(s.get(&b[0].1.routing).unwrap().is_none());
    assert_eq!(s.get(&b[1].1.routing).unwrap().as_ref(), Some(&b[1].0));
    // The good block can be stored again and is served.
    s.put(Area::Store, &b[0].0).unwrap();
    assert_eq!(s.get(&b[0].1.routing).unwrap().as_ref(), Some(&b[0].0));
}

pub(crate) fn concurrent_use_keeps_the_bound<H: Harness>(mut h: H) {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 12;
    let s = Arc::new(h.open(config_blocks(4, 8)));
    let all = Arc::new(blocks(THREADS * PER_THREAD));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (s, all) = (Arc::clone(&s), Arc::clone(&all));
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let (block, key) = &all[t * PER_THREAD + i];
                    let area = if i % 3 == 0 { Area::Store } else { Area::Cache };
                    s.put(area, block).unwrap();
                    if let Some(got) = s.get(&key.routing).unwrap() {
                        assert_eq!(got.routing_key(), key.routing);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let st = s.stats();
    assert_eq!((st.store.blocks, st.cache.blocks), (4, 8));
    let held = all
        .iter()
        .filter(|(_, k)| s.contains(&k.routing).unwrap())
        .count();
    assert_eq!(held, 12);
}

/// A smaller configuration trims the excess at the next open, by the
/// policy: under LRU the most recent blocks survive, under random some of
/// the blocks held before; in both the area ends exactly at its new bound.
pub(crate) fn a_smaller_configuration_trims_at_open<H: Harness>(mut h: H) {
    let policy = *h.policy();
    let b = blocks(8);
    let s = h.open(config_blocks(8, 2));
    for (block, _) in &b {
        s.put(Area::Store, block).unwrap();
    }
    s.flush().unwrap();
    let s = h.reopen(s, config_blocks(3, 2));
    let st = s.stats();
    assert_eq!((st.store.blocks, st.store.evictions), (3, 5));
    let kept: Vec<usize> = (0..8)
        .filter(|&i| s.contains(&b[i].1.routing).unwrap())
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    if policy == Eviction::Lru {
        assert_eq!(kept, [5, 6, 7]);
    }
    for &i in &kept {
        assert_eq!(s.get(&b[i].1.routing).unwrap().as_ref(), Some(&b[i].0));
    }
    // The new bound holds for later puts too, and survives another reopen.
    s.put(Area::Store, &b[0].0).unwrap();
    let s = h.reopen(s, config_blocks(3, 2));
    assert_eq!(s.stats().store.blocks, 3);
}

/// Damaged blocks are ordinary victims: eviction never reads a block, so it
/// gives up damaged ones like any other (counted as evictions) and the area
/// keeps its bound; the damage is found only by a read.
pub(crate) fn damaged_victims_do_not_break_eviction<H: Harness>(mut h: H) {
    const CACHE: u64 = 4;
    let b = blocks(16);
    let s = h.open(config_blocks(1, CACHE));
    for (block, key) in &b[..CACHE as usize] {
        s.put(Area::Cache, block).unwrap();
        assert!(H::corrupt(&s, &key.routing));
    }
    for (block, _) in &b[CACHE as usize..] {
        s.put(Area::Cache, block).unwrap();
        assert_eq!(s.stats().cache.blocks, CACHE);
    }
    let st = s.stats();
    assert_eq!(st.cache.evictions, b.len() as u64 - CACHE);
    let mut damaged_held = 0;
    for (i, (block, key)) in b.iter().enumerate() {
        let held = s.contains(&key.routing).unwrap();
        let got = s.get(&key.routing).unwrap();
        if i < CACHE as usize {
            assert_eq!(got, None, "damaged block {i} was served");
            damaged_held += u64::from(held);
        } else {
            assert_eq!(got.as_ref(), held.then_some(block), "block {i}");
        }
    }
    // Whatever damaged block survived eviction was dropped when read.
    let st = s.stats();
    assert_eq!(st.cache.corrupt_dropped, damaged_held);
    assert_eq!(st.cache.blocks, CACHE - damaged_held);
}

/// A store can be reopened with the other policy: both keep the same
/// records, the bound holds throughout, and the access order kept under
/// random eviction is what LRU evicts by afterwards.
pub(crate) fn the_policy_can_change_on_reopen<H: Harness>(mut h: H) {
    let first = *h.policy();
    let other = match first {
        Eviction::Lru => Eviction::Random,
        Eviction::Random => Eviction::Lru,
    };
    let config = config_blocks(2, 4);
    let b = blocks(16);
    let s = h.open(config.clone());
    for (block, _) in &b[..8] {
        s.put(Area::Cache, block).unwrap();
    }
    s.put(Area::Store, &b[8].0).unwrap();
    assert_eq!((s.stats().cache.blocks, s.stats().store.blocks), (4, 1));
    s.flush().unwrap();
    *h.policy() = other;
    let s = h.reopen(s, config.clone());
    for (block, _) in &b[9..14] {
        s.put(Area::Cache, block).unwrap();
    }
    let st = s.stats();
    assert_eq!(
        (st.cache.blocks, st.store.blocks, st.cache.evictions),
        (4, 1, 5)
    );
    assert!(
        s.contains(&b[8].1.routing).unwrap(),
        "the stored block stays"
    );
    // Read the cached blocks in a known order, then switch to LRU: the
    // first one read is the least recently used.
    let held: Vec<usize> = (0..14)
        .filter(|&i| i != 8 && s.contains(&b[i].1.routing).unwrap())
        .collect();
    assert_eq!(held.len(), 4, "{held:?}");
    for &i in &held {
        assert!(s.get(&b[i].1.routing).unwrap().is_some());
    }
    s.flush().unwrap();
    *h.policy() = Eviction::Lru;
    let s = h.reopen(s, config);
    s.put(Area::Cache, &b[14].0).unwrap();
    assert!(!s.contains(&b[held[0]].1.routing).unwrap(), "{held:?}");
    for &i in &held[1..] {
        assert!(s.contains(&b[i].1.routing).unwrap(), "block {i}");
    }
    assert_eq!(s.stats().cache.blocks, 4);
}

/// SSK block `i` of a fixed subspace, with payload `payload`.
fn ssk_block(i: usize, payload: &[u8]) -> warren_crypto::SskBlock {
    let insert = warren_crypto::SskInsertUri {
        private: warren_crypto::ssk::SskPrivateKey::from_seed(&[7; 32]),
        crypto: warren_crypto::CryptoKey::from_bytes([8; 32]),
        docname: format!("doc-{i}"),
    };
    warren_crypto::SskBlock::encode(
        &insert.private,
        &insert.crypto,
        &insert.hashed_name(),
        &warren_crypto::SskPayload::Data(payload.to_vec()),
    )
    .unwrap()
}

pub(crate) fn ssk_blocks_first_wins_bounded_and_kept<H: Harness>(mut h: H) {
    let config = config_blocks(3, 4);
    let capacity = config.ssk_capacity();
    assert!(capacity >= 2, "{capacity}");
    let s = h.open(config.clone());
    let first = ssk_block(0, b"first");
    let key = first.routing_key();
    assert!(s.get_ssk(&key).unwrap().is_none());
    s.put_ssk(&first).unwrap();
    s.put_ssk(&first).unwrap();
    // Another block under the same key changes nothing: the first stays.
    s.put_ssk(&ssk_block(0, b"second")).unwrap();
    assert_eq!(s.get_ssk(&key).unwrap(), Some(first.clone()));
    // Kept apart from CHK blocks.
    assert!(s.get(&key).unwrap().is_none());
    assert!(!s.contains(&key).unwrap());
    assert_eq!(s.stats().ssk_blocks, 1);
    let more: Vec<_> = (1..=capacity as usize)
        .map(|i| ssk_block(i, b"more"))
        .collect();
    for block in &more {
        s.put_ssk(block).unwrap();
    }
    assert_eq!(s.stats().ssk_blocks, capacity);
    let held = |s: &H::Store| -> Vec<bool> {
        std::iter::once(&first)
            .chain(&more)
            .map(|b| s.get_ssk(&b.routing_key()).unwrap().is_some())
            .collect()
    };
    let before = held(&s);
    assert_eq!(before.iter().filter(|&&h| h).count() as u64, capacity);
    if *h.policy() == Eviction::Lru {
        // The oldest went first.
        assert!(!before[0], "{before:?}");
    }
    // The newest is always kept: eviction makes room before a put.
    assert!(before[capacity as usize], "{before:?}");
    s.flush().unwrap();
    let s = h.reopen(s, config);
    assert_eq!(held(&s), before, "the same SSK blocks after a reopen");
    assert_eq!(s.stats().ssk_blocks, capacity);
}

/// Random eviction of SSK blocks takes any of them, not the oldest only,
/// and the memory and sled stores take the same ones for one seed.
#[test]
fn random_ssk_eviction_draws_any_block_alike_in_both_stores() {
    let dir = tempfile::tempdir().unwrap();
    let config = with_policy(&config_blocks(3, 4), Eviction::Random);
    let capacity = config.ssk_capacity() as usize;
    let memory = MemoryStore::new(config.clone());
    let sled = SledStore::open(dir.path(), config).unwrap();
    let blocks: Vec<_> = (0..capacity * 3).map(|i| ssk_block(i, b"x")).collect();
    for block in &blocks {
        memory.put_ssk(block).unwrap();
        sled.put_ssk(block).unwrap();
    }
    let held = |s: &dyn BlockStore| -> Vec<bool> {
        blocks
            .iter()
            .map(|b| s.get_ssk(&b.routing_key()).unwrap().is_some())
            .collect()
    };
    let kept = held(&memory);
    assert_eq!(kept, held(&sled));
    assert_eq!(kept.iter().filter(|&&h| h).count(), capacity);
    assert!(
        kept[..capacity].iter().any(|&h| h),
        "some of the oldest third survive random eviction"
    );
}

/// Instantiates each test of the shared suite for one harness constructor.
macro_rules! shared_suite {
    ($module:ident, $harness:expr) => {
        shared_suite!(
            $module,
            $harness,
            [
                put_get_round_trip,
                evicts_by_policy,
                store_wins_over_cache,
                zero_capacity_area_stores_nothing,
                corrupt_block_is_dropped_not_served,
                ssk_blocks_first_wins_bounded_and_kept,
                concurrent_use_keeps_the_bound,
                a_smaller_configuration_trims_at_open,
                damaged_victims_do_not_break_eviction,
                the_policy_can_change_on_reopen,
            ]
        );
    };
    ($module:ident, $harness:expr, [$($test:ident),* $(,)?]) => {
        mod $module {
            use super::*;
            $(
                #[test]
                fn $test() {
                    super::$test($harness);
                }
            )*
        }
    };
}

shared_suite!(memory_lru, MemoryHarness(Eviction::Lru));
shared_suite!(memory_random, MemoryHarness(Eviction::Random));
shared_suite!(sled_lru, SledHarness::new(Eviction::Lru));
shared_suite!(sled_random, SledHarness::new(Eviction::Random));

// ---- model-based test ----

const POOL: usize = 8;
const MODEL_STORE_BLOCKS: u64 = 2;
const MODEL_CACHE_BLOCKS: u64 = 3;

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Put(Area, usize),
    Get(usize),
    Contains(usize),
    Corrupt(usize),
    Flush,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let area = prop_oneof![Just(Area::Store), Just(Area::Cache)];
    prop_oneof![
        6 => (area, 0..POOL).prop_map(|(a, i)| Op::Put(a, i)),
        4 => (0..POOL).prop_map(Op::Get),
        1 => (0..POOL).prop_map(Op::Contains),
        1 => (0..POOL).prop_map(Op::Corrupt),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

/// The model: per area, block indices from least to most recently used.
#[derive(Debug, Default)]
struct Model {
    order: [Vec<usize>; 2],
    corrupt: HashSet<usize>,
    expect: StoreStats,
}

impl Model {
    fn area_of(&self, i: usize) -> Option<Area> {
        Area::ALL
            .into_iter()
            .find(|a| self.order[a.index()].contains(&i))
    }

    fn make_recent(&mut self, area: Area, i: usize) {
        let order = &mut self.order[area.index()];
        order.retain(|&x| x != i);
        order.push(i);
    }

    fn counters(&mut self, area: Area) -> &mut crate::AreaStats {
        match area {
            Area::Store => &mut self.expect.store,
            Area::Cache => &mut self.expect.cache,
        }
    }

    fn put(&mut self, area: Area, i: usize) {
        let existing = self.area_of(i);
        let target = if existing == Some(Area::Store) {
            Area::Store
        } else {
            area
        };
        if existing == Some(target) {
            return self.make_recent(target, i);
        }
        let cap = if target == Area::Store {
            MODEL_STORE_BLOCKS
        } else {
            MODEL_CACHE_BLOCKS
        };
        let order = &mut self.order[target.index()];
        let evict = (order.len() as u64 + 1).saturating_sub(cap) as usize;
        for gone in order.drain(..evict) {
            self.corrupt.remove(&gone);
        }
        self.counters(target).evictions += evict as u64;
        if let Some(from) = existing {
            self.order[from.index()].retain(|&x| x != i);
        }
        self.order[target.index()].push(i);
    }

    /// Whether a get of `i` finds a valid block.
    fn get(&mut self, i: usize) -> bool {
        let Some(area) = self.area_of(i) else {
            self.expect.misses += 1;
            return false;
        };
        if self.corrupt.remove(&i) {
            self.order[area.index()].retain(|&x| x != i);
            self.counters(area).corrupt_dropped += 1;
            self.expect.misses += 1;
            return false;
        }
        self.counters(area).hits += 1;
        self.make_recent(area, i);
        true
    }

    fn check(&self, actual: &StoreStats, baseline: &StoreStats) {
        for area in Area::ALL {
            let (a, b, m) = (
                actual.area(area),
                baseline.area(area),
                self.expect.area(area),
            );
            let held = self.order[area.index()].len() as u64;
            assert_eq!(a.blocks, held, "{area:?} blocks");
            assert_eq!(a.bytes, held * BLOCK_LEN as u64, "{area:?} bytes");
            assert_eq!(a.hits - b.hits, m.hits, "{area:?} hits");
            assert_eq!(a.evictions - b.evictions, m.evictions, "{area:?} evictions");
            assert_eq!(
                a.corrupt_dropped - b.corrupt_dropped,
                m.corrupt_dropped,
                "{area:?} corrupt"
            );
        }
        assert_eq!(
            actual.misses - baseline.misses,
            self.expect.misses,
            "misses"
        );
    }
}

pub(crate) fn run_model<H: Harness>(mut h: H, ops: &[Op]) {
    let config = config_blocks(MODEL_STORE_BLOCKS, MODEL_CACHE_BLOCKS);
    let pool = blocks(POOL);
    let mut store = h.open(config.clone());
    let mut model = Model::default();
    let mut baseline = store.stats();
    for op in ops {
        match *op {
            Op::Put(area, i) => {
                store.put(area, &pool[i].0).unwrap();
                model.put(area, i);
            }
            Op::Get(i) => {
                let got = store.get(&pool[i].1.routing).unwrap();
                assert_eq!(got.is_some(), model.get(i), "get {i}");
                if let Some(block) = got {
                    assert_eq!(block, pool[i].0);
                }
            }
            Op::Contains(i) => {
                let held = store.contains(&pool[i].1.routing).unwrap();
                assert_eq!(held, model.area_of(i).is_some(), "contains {i}");
            }
            Op::Corrupt(i) => {
                assert_eq!(
                    H::corrupt(&store, &pool[i].1.routing),
                    model.area_of(i).is_some()
                );
                if model.area_of(i).is_some() {
                    model.corrupt.insert(i);
                }
            }
            Op::Flush => store.flush().unwrap(),
            Op::Reopen => {
                store = h.reopen(store, config.clone());
                // Counters restart at open; contents and LRU order persist.
                model.expect = StoreStats::default();
                baseline = store.stats();
            }
        }
        model.check(&store.stats(), &baseline);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn memory_store_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run_model(MemoryHarness(Eviction::Lru), &ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn sled_store_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run_model(SledHarness::new(Eviction::Lru), &ops);
    }
}

// ---- random eviction: both stores side by side ----

/// Random eviction has no model to predict its victims, but both stores
/// draw them the same way (one generator, one key order), so with one seed
/// they must hold the same blocks and counts after every operation, and
/// neither may go over its bounds.
pub(crate) fn run_twins(ops: &[Op]) {
    let config = config_blocks(MODEL_STORE_BLOCKS, MODEL_CACHE_BLOCKS);
    let pool = blocks(POOL);
    let (mut mh, mut sh) = (
        MemoryHarness(Eviction::Random),
        SledHarness::new(Eviction::Random),
    );
    let (mut mem, mut disk) = (mh.open(config.clone()), sh.open(config.clone()));
    for op in ops {
        match *op {
            Op::Put(area, i) => {
                mem.put(area, &pool[i].0).unwrap();
                disk.put(area, &pool[i].0).unwrap();
            }
            Op::Get(i) => {
                let got = mem.get(&pool[i].1.routing).unwrap();
                assert_eq!(got, disk.get(&pool[i].1.routing).unwrap(), "get {i}");
                if let Some(block) = got {
                    assert_eq!(block, pool[i].0);
                }
            }
            Op::Contains(_) => {} // checked for every block below
            Op::Corrupt(i) => assert_eq!(
                MemoryHarness::corrupt(&mem, &pool[i].1.routing),
                SledHarness::corrupt(&disk, &pool[i].1.routing)
            ),
            Op::Flush => {
                mem.flush().unwrap();
                disk.flush().unwrap();
            }
            Op::Reopen => {
                mem = mh.reopen(mem, config.clone());
                disk = sh.reopen(disk, config.clone());
            }
        }
        for (j, (_, key)) in pool.iter().enumerate() {
            assert_eq!(
                mem.contains(&key.routing).unwrap(),
                disk.contains(&key.routing).unwrap(),
                "block {j} after {op:?}"
            );
        }
        let (m, d) = (mem.stats(), disk.stats());
        for area in Area::ALL {
            let (ma, da) = (m.area(area), d.area(area));
            assert_eq!(
                (ma.blocks, ma.hits, ma.evictions, ma.corrupt_dropped),
                (da.blocks, da.hits, da.evictions, da.corrupt_dropped),
                "{area:?} after {op:?}"
            );
            assert!(
                ma.blocks <= config.capacity_blocks(area),
                "{area:?} over its bound"
            );
        }
        assert_eq!(m.misses, d.misses, "misses after {op:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_eviction_is_the_same_in_both_stores(ops in proptest::collection::vec(op(), 1..60)) {
        run_twins(&ops);
    }
}
