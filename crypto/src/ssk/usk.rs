//! Finding a USK's newest edition in O(log E) requests, sans-IO.
//!
//! From the start edition `s`, probe `s`, `s+1`, `s+2`, `s+4`, … while found
//! (galloping); after the first miss probe [`HOLE_TOLERANCE`] editions past it
//! (an edition may be missing in the middle), then bisect between the last
//! hit and the miss. When bisection ends at `L` (with `L+1` missing), the
//! editions `L+2 ..= L+1+HOLE_TOLERANCE` are probed too; any hit there starts
//! a new gallop from it. So a hole of up to `HOLE_TOLERANCE` editions anywhere
//! never hides later editions. Each edition is probed at most once.
//!
//! ```
//! use warren_crypto::ssk::{EditionSearch, SearchStep};
//!
//! let published = 0..10u64;
//! let mut search = EditionSearch::new(0);
//! let newest = loop {
//!     match search.next_step() {
//!         SearchStep::Probe(e) => search.record(e, published.contains(&e)),
//!         SearchStep::Done(newest) => break newest,
//!     }
//! };
//! assert_eq!(newest, Some(9));
//! ```

use std::collections::BTreeMap;

/// Consecutive missing editions a search looks past.
pub const HOLE_TOLERANCE: u64 = 2;

/// What the search wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchStep {
    /// Fetch this edition and [`EditionSearch::record`] whether it was found.
    Probe(u64),
    /// The newest edition found (`None`: none at or after the start).
    Done(Option<u64>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Probing `origin + step` for step = 1, 2, 4, …; `found` is the last hit.
    Gallop { origin: u64, step: u64, found: u64 },
    /// Newest is in `[lo, hi)`: `lo` found, `hi` missed.
    Bisect { lo: u64, hi: u64 },
    /// Looking at editions `first ..= first + HOLE_TOLERANCE - 1 + extra` for
    /// one that exists; if none does, `then` decides.
    Beyond { first: u64, extra: u64, then: Then },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    Bisect { lo: u64, hi: u64 },
    Done(Option<u64>),
}

/// The state of one newest-edition search.
#[derive(Clone, Debug)]
pub struct EditionSearch {
    known: BTreeMap<u64, bool>,
    phase: Phase,
    probes: u32,
}

impl EditionSearch {
    /// A search for the newest edition at or after `start`.
    pub fn new(start: u64) -> Self {
        EditionSearch {
            known: BTreeMap::new(),
            // The start itself, and past it as past any miss.
            phase: Phase::Beyond {
                first: start,
                extra: 1,
                then: Then::Done(None),
            },
            probes: 0,
        }
    }

    /// Editions probed so far: the requests this search cost.
    pub fn probes(&self) -> u32 {
        self.probes
    }

    /// Records a probe's answer.
    pub fn record(&mut self, edition: u64, found: bool) {
        if self.known.insert(edition, found).is_none() {
            self.probes += 1;
        }
    }

    /// The next probe, or the answer.
    pub fn next_step(&mut self) -> SearchStep {
        loop {
            match self.phase {
                Phase::Gallop {
                    origin,
                    step,
                    found,
                } => {
                    let Some(e) = origin.checked_add(step) else {
                        return SearchStep::Done(Some(found));
                    };
                    match self.known.get(&e) {
                        None => return SearchStep::Probe(e),
                        Some(true) => {
                            self.phase = Phase::Gallop {
                                origin,
                                step: step.saturating_mul(2),
                                found: e,
                            };
                        }
                        Some(false) => {
                            self.phase = Phase::Beyond {
                                first: e.saturating_add(1),
                                extra: 0,
                                then: Then::Bisect { lo: found, hi: e },
                            };
                        }
                    }
                }
                Phase::Bisect { lo, hi } => {
                    if hi - lo <= 1 {
                        self.phase = Phase::Beyond {
                            first: hi.saturating_add(1),
                            extra: 0,
                            then: Then::Done(Some(lo)),
                        };
                        continue;
                    }
                    let m = lo + (hi - lo) / 2;
                    match self.known.get(&m) {
                        None => return SearchStep::Probe(m),
                        Some(true) => self.phase = Phase::Bisect { lo: m, hi },
                        Some(false) => self.phase = Phase::Bisect { lo, hi: m },
                    }
                }
                Phase::Beyond { first, extra, then } => {
                    let mut pending = None;
                    let mut hit = None;
                    for i in 0..HOLE_TOLERANCE + extra {
                        let Some(e) = first.checked_add(i) else { break };
                        match self.known.get(&e) {
                            Some(true) => {
                                hit = Some(e);
                                break;
                            }
                            Some(false) => {}
                            None => {
                                pending = Some(e);
                                break;
                            }
                        }
                    }
                    if let Some(e) = hit {
                        // Later editions exist past a hole: gallop on from there.
                        self.phase = Phase::Gallop {
                            origin: e,
                            step: 1,
                            found: e,
                        };
                        continue;
                    }
                    if let Some(e) = pending {
                        return SearchStep::Probe(e);
                    }
                    match then {
                        Then::Bisect { lo, hi } => self.phase = Phase::Bisect { lo, hi },
                        Then::Done(answer) => return SearchStep::Done(answer),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn run(start: u64, published: &BTreeSet<u64>) -> (Option<u64>, u32) {
        let mut search = EditionSearch::new(start);
        loop {
            match search.next_step() {
                SearchStep::Probe(e) => search.record(e, published.contains(&e)),
                SearchStep::Done(newest) => return (newest, search.probes()),
            }
        }
    }

    /// Requests per lookup of the newest of E editions `0..E`, from 0.
    #[test]
    fn requests_per_lookup_grow_logarithmically() {
        let mut last = 0;
        for e in [1u64, 10, 100, 1000, 10_000] {
            let published: BTreeSet<u64> = (0..e).collect();
            let (newest, probes) = run(0, &published);
            println!("E = {e:>5}: {probes} requests");
            assert_eq!(newest, Some(e - 1));
            // 2·log2(E) plus the hole checks: far below one per edition.
            let bound = 2 * (64 - e.leading_zeros()) + 2 * HOLE_TOLERANCE as u32 + 2;
            assert!(probes <= bound, "E = {e}: {probes} > {bound}");
            assert!(probes >= last);
            last = probes;
        }
    }

    #[test]
    fn nothing_published_is_none_and_a_start_hint_is_honoured() {
        assert_eq!(run(0, &BTreeSet::new()).0, None);
        let published: BTreeSet<u64> = (0..50).collect();
        assert_eq!(run(40, &published).0, Some(49));
        assert_eq!(run(60, &published).0, None);
    }

    #[test]
    fn a_missing_edition_does_not_hide_later_ones() {
        for hole in 0..39 {
            let published: BTreeSet<u64> = (0..40).filter(|&e| e != hole).collect();
            assert_eq!(run(0, &published).0, Some(39), "hole at {hole}");
        }
        let published: BTreeSet<u64> = (0..40).filter(|e| !(20..22).contains(e)).collect();
        assert_eq!(run(0, &published).0, Some(39));
    }

    proptest! {
        #[test]
        fn finds_the_newest_past_small_holes(n in 1u64..3000, holes in proptest::collection::vec(any::<prop::sample::Index>(), 0..4)) {
            let mut published: BTreeSet<u64> = (0..n).collect();
            for h in &holes {
                // Isolated single holes, never the newest edition itself.
                let e = h.index(n as usize) as u64;
                if e + 1 < n && !published.contains(&e.saturating_sub(1)) { continue; }
                if e + 1 < n { published.remove(&e); }
            }
            let (newest, probes) = run(0, &published);
            prop_assert_eq!(newest, Some(n - 1));
            prop_assert!(probes < 64);
        }
    }
}
