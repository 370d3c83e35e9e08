//! A token bucket counting the frames a peer sends: the flood limit.

use std::time::Instant;

/// Frames a peer may still send now; refills at a steady rate up to a burst.
#[derive(Debug, Clone)]
pub(crate) struct FrameBudget {
    tokens: f64,
    rate_per_sec: f64,
    burst: f64,
    last: Instant,
}

impl FrameBudget {
    pub(crate) fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        FrameBudget {
            tokens: burst,
            rate_per_sec: f64::from(rate_per_sec),
            burst,
            last: now,
        }
    }

    /// Spend one frame; `false` means the peer is over its budget.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate_per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let start = Instant::now();
        let mut budget = FrameBudget::new(100, 10, start);
        assert!((0..10).all(|_| budget.take(start)));
        assert!(!budget.take(start));
        // 100 frames/s: one more every 10 ms, never more than the burst.
        assert!(budget.take(start + Duration::from_millis(10)));
        assert!(!budget.take(start + Duration::from_millis(10)));
        let later = start + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| budget.take(later)).count(), 10);
    }
}
