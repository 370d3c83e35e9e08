//! Locations on the unit circle, in fixed point.
//!
//! Keys and nodes share one circle of circumference 2^64: a location is a `u64`
//! read as the fraction `value / 2^64`. Fixed point keeps routing decisions
//! exact and identical on every platform, which floats would not.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::key::RoutingKey;

/// A point on the circle: `value / 2^64` of the way round.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Location(pub u64);

impl Location {
    /// The location of a key: the first 8 bytes of its routing key, big-endian.
    pub fn of_key(key: &RoutingKey) -> Self {
        let mut first = [0u8; 8];
        first.copy_from_slice(&key.as_bytes()[..8]);
        Location(u64::from_be_bytes(first))
    }

    /// Circular distance: the shorter way round, at most `2^63`.
    pub fn distance(self, other: Location) -> u64 {
        let forward = self.0.wrapping_sub(other.0);
        forward.min(forward.wrapping_neg())
    }

    /// The location as a fraction in `[0, 1)`, for people and logs only.
    pub fn as_fraction(self) -> f64 {
        self.0 as f64 / 18_446_744_073_709_551_616.0
    }

    /// The location nearest to a fraction in `[0, 1)`; values outside wrap round.
    pub fn from_fraction(fraction: f64) -> Self {
        let wrapped = fraction.rem_euclid(1.0);
        // 2^64 * wrapped may round up to 2^64 itself; saturate to the last point.
        Location((wrapped * 18_446_744_073_709_551_616.0) as u64)
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({:.6})", self.as_fraction())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}", self.as_fraction())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn distance_wraps_round_the_circle() {
        let near_top = Location(u64::MAX - 9);
        let near_zero = Location(10);
        assert_eq!(near_top.distance(near_zero), 20);
        assert_eq!(Location(0).distance(Location(1 << 63)), 1 << 63);
        assert_eq!(Location(5).distance(Location(5)), 0);
    }

    #[test]
    fn key_location_is_first_eight_bytes_big_endian() {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 1]);
        let loc = Location::of_key(&RoutingKey::from_bytes(bytes));
        assert_eq!(loc, Location(0x8000_0000_0000_0001));
        assert!((loc.as_fraction() - 0.5).abs() < 1e-12);
    }

    proptest! {
        #[test]
        fn distance_is_a_symmetric_bounded_metric(a: u64, b: u64, c: u64) {
            let (a, b, c) = (Location(a), Location(b), Location(c));
            prop_assert_eq!(a.distance(b), b.distance(a));
            prop_assert!(a.distance(b) <= 1 << 63);
            prop_assert_eq!(a.distance(a), 0);
            // Triangle inequality, in u128 so the sum cannot overflow.
            prop_assert!(u128::from(a.distance(c)) <= u128::from(a.distance(b)) + u128::from(b.distance(c)));
        }

        #[test]
        fn fraction_round_trip_is_close(a: u64) {
            let back = Location::from_fraction(Location(a).as_fraction());
            prop_assert!(Location(a).distance(back) < 1 << 12);
        }
    }
}
