//! Fred's failure table: which peers answered "not found" for a key
//! recently. The next request for that key here tries other peers first, so
//! one peer that answers `DataNotFound` to everything near a key (a censor,
//! or a node that lost the data) is routed around on the retry, not asked
//! again and again. Bounded: at most `max_keys` keys, a few peers each, and
//! entries expire.

use std::collections::{HashMap, VecDeque};

use warren_crypto::RoutingKey;

use super::{PeerId, Time};

/// Peers remembered per key at most (the closest few are what matter).
pub(super) const FAILURES_PER_KEY: usize = 8;

#[derive(Debug)]
pub(super) struct FailureTable {
    /// When each peer last failed each key.
    entries: HashMap<RoutingKey, Vec<(PeerId, Time)>>,
    /// Keys in the order they were first recorded, for eviction.
    order: VecDeque<RoutingKey>,
    max_keys: usize,
    ttl: core::time::Duration,
}

impl FailureTable {
    pub(super) fn new(max_keys: usize, ttl: core::time::Duration) -> Self {
        FailureTable {
            entries: HashMap::new(),
            order: VecDeque::new(),
            max_keys,
            ttl,
        }
    }

    /// `peer` answered "not found" for `key` at `now`.
    pub(super) fn record(&mut self, now: Time, key: RoutingKey, peer: PeerId) {
        if self.max_keys == 0 {
            return;
        }
        let failures = self.entries.entry(key).or_insert_with(|| {
            self.order.push_back(key);
            Vec::new()
        });
        failures.retain(|(p, _)| *p != peer);
        if failures.len() >= FAILURES_PER_KEY {
            failures.remove(0);
        }
        failures.push((peer, now));
        self.drop_expired_oldest(now);
        while self.entries.len() > self.max_keys {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    /// Whether `peer` failed `key` within the last `ttl`.
    pub(super) fn failed(&self, now: Time, key: &RoutingKey, peer: PeerId) -> bool {
        self.entries.get(key).is_some_and(|failures| {
            failures
                .iter()
                .any(|(p, at)| *p == peer && now < at.after(self.ttl))
        })
    }

    /// Keys held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops the oldest keys while every failure they hold has expired
    /// (amortised: each key is pushed and popped once).
    fn drop_expired_oldest(&mut self, now: Time) {
        while let Some(oldest) = self.order.front() {
            let live = self
                .entries
                .get(oldest)
                .is_some_and(|failures| failures.iter().any(|(_, at)| now < at.after(self.ttl)));
            if live {
                break;
            }
            self.entries.remove(oldest);
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> RoutingKey {
        RoutingKey::from_bytes([n; 32])
    }

    #[test]
    fn failures_expire_and_the_table_stays_bounded() {
        let ttl = core::time::Duration::from_secs(60);
        let mut table = FailureTable::new(3, ttl);
        table.record(Time(0), key(1), PeerId(7));
        assert!(table.failed(Time(59_999), &key(1), PeerId(7)));
        assert!(!table.failed(Time(60_000), &key(1), PeerId(7)));
        assert!(!table.failed(Time(0), &key(1), PeerId(8)));
        for n in 2..=10 {
            table.record(Time(1), key(n), PeerId(1));
            assert!(table.len() <= 3);
        }
        // The oldest keys went first.
        assert!(!table.failed(Time(2), &key(1), PeerId(7)));
        assert!(table.failed(Time(2), &key(10), PeerId(1)));
        for p in 0..20 {
            table.record(Time(3), key(10), PeerId(p));
        }
        assert!(table.entries[&key(10)].len() <= FAILURES_PER_KEY);
        assert!(table.failed(Time(3), &key(10), PeerId(19)));
        // Expired keys go as new ones come.
        table.record(Time(1_000_000), key(11), PeerId(1));
        assert_eq!(table.len(), 1);
        assert_eq!(table.order.len(), 1);
    }
}
