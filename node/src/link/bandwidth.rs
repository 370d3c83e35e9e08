//! The operator's bandwidth limits: one token bucket per direction, shared by
//! every link of a node, counting the bytes of whole frames on the wire.
//!
//! A link takes a frame only while its direction's bucket is not in debt, and
//! charges the frame's bytes once it has it: a frame larger than what is left
//! drives the bucket briefly negative instead of waiting for room that a
//! small burst could never hold. Over any interval `t` a direction therefore
//! carries at most `rate * t + burst + one frame batch`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bucket holds at most this many seconds of traffic: short bursts pass
/// at full speed, a sustained transfer is held to the rate within a few
/// percent over half a minute.
const BURST_SECONDS: f64 = 0.25;
/// ... but never less than this, so one full-size frame batch fits.
const MIN_BURST_BYTES: f64 = 128.0 * 1024.0;

/// A token bucket that may go into debt by one charge.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` bytes per second, starting full.
    pub fn new(rate_bytes_per_sec: u64, now: Instant) -> Self {
        let rate = rate_bytes_per_sec.max(1) as f64;
        let burst = (rate * BURST_SECONDS).max(MIN_BURST_BYTES);
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }

    /// `None` when a frame may go now; otherwise how long until it may.
    pub fn wait(&mut self, now: Instant) -> Option<Duration> {
        self.refill(now);
        // Less than a byte of debt is none: the float sum of a refill may
        // stop a hair short of zero, and a wait of 0 ns would never end it.
        if self.tokens > -1.0 {
            None
        } else {
            Some(Duration::from_secs_f64(-self.tokens / self.rate).max(Duration::from_micros(1)))
        }
    }

    /// Count `bytes` that went (or are about to go) over the wire.
    pub fn charge(&mut self, bytes: usize, now: Instant) {
        self.refill(now);
        self.tokens -= bytes as f64;
    }

    pub fn rate(&self) -> u64 {
        self.rate as u64
    }
}

/// A node's limits, in bytes per second; `None` is unlimited.
#[derive(Debug, Default)]
pub struct Bandwidth {
    out: Option<Mutex<TokenBucket>>,
    inbound: Option<Mutex<TokenBucket>>,
}

/// One direction of [`Bandwidth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Out,
    In,
}

impl Bandwidth {
    pub fn new(out_bytes_per_sec: Option<u64>, in_bytes_per_sec: Option<u64>) -> Arc<Self> {
        let now = Instant::now();
        let bucket = |rate: u64| Mutex::new(TokenBucket::new(rate, now));
        Arc::new(Bandwidth {
            out: out_bytes_per_sec.map(bucket),
            inbound: in_bytes_per_sec.map(bucket),
        })
    }

    pub fn unlimited() -> Arc<Self> {
        Arc::new(Bandwidth::default())
    }

    fn bucket(&self, direction: Direction) -> Option<&Mutex<TokenBucket>> {
        match direction {
            Direction::Out => self.out.as_ref(),
            Direction::In => self.inbound.as_ref(),
        }
    }

    /// The limit of one direction, bytes per second.
    pub fn rate(&self, direction: Direction) -> Option<u64> {
        self.bucket(direction).map(|bucket| lock(bucket).rate())
    }

    /// When a link may next move a frame in `direction`; `None` is now.
    pub fn wait(&self, direction: Direction) -> Option<Duration> {
        self.bucket(direction)
            .and_then(|bucket| lock(bucket).wait(Instant::now()))
    }

    pub fn charge(&self, direction: Direction, bytes: usize) {
        if let Some(bucket) = self.bucket(direction) {
            lock(bucket).charge(bytes, Instant::now());
        }
    }
}

fn lock(bucket: &Mutex<TokenBucket>) -> std::sync::MutexGuard<'_, TokenBucket> {
    // The bucket is plain numbers: a panic elsewhere cannot leave it torn.
    bucket
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 33 * 1024;

    /// Drive a bucket as a link would: take a frame whenever it may, for
    /// `secs` of simulated time; the bytes it let through.
    fn carried(rate: u64, secs: u64) -> u64 {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(rate, start);
        let mut now = start;
        let end = start + Duration::from_secs(secs);
        let mut sent = 0u64;
        while now < end {
            match bucket.wait(now) {
                None => {
                    bucket.charge(FRAME, now);
                    sent += FRAME as u64;
                }
                Some(wait) => now += wait,
            }
        }
        sent
    }

    #[test]
    fn a_sustained_transfer_is_held_to_the_rate() {
        for rate in [16 * 1024, 100 * 1024, 1024 * 1024, 50 * 1024 * 1024] {
            let secs = 30;
            let sent = carried(rate, secs) as f64;
            let limit = (rate * secs) as f64;
            let burst = (rate as f64 * BURST_SECONDS).max(MIN_BURST_BYTES);
            assert!(
                sent <= limit + burst + FRAME as f64,
                "rate {rate}: {sent} bytes in {secs} s"
            );
            assert!(
                sent >= limit * 0.97,
                "rate {rate}: only {sent} bytes in {secs} s"
            );
        }
    }

    #[test]
    fn debt_is_paid_before_the_next_frame() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1024, start);
        // The burst is the floor, 128 KiB; four frames spend it and more.
        for _ in 0..4 {
            assert_eq!(bucket.wait(start), None);
            bucket.charge(FRAME, start);
        }
        let wait = bucket.wait(start).unwrap_or_default();
        let debt = 4 * FRAME - 128 * 1024;
        assert_eq!(wait.as_millis(), (debt as u128 * 1000) / 1024);
        assert_eq!(bucket.wait(start + wait), None);
    }

    #[test]
    fn idle_time_refills_no_more_than_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1024 * 1024, start);
        let later = start + Duration::from_secs(3600);
        let mut frames = 0;
        while bucket.wait(later).is_none() {
            bucket.charge(FRAME, later);
            frames += 1;
        }
        // 256 KiB of burst: eight 33 KiB frames, the eighth into debt.
        assert_eq!(frames, 8);
    }

    #[test]
    fn unlimited_directions_never_wait() {
        let bandwidth = Bandwidth::new(Some(1024), None);
        bandwidth.charge(Direction::In, 1 << 30);
        assert_eq!(bandwidth.wait(Direction::In), None);
        bandwidth.charge(Direction::Out, 1 << 20);
        assert!(bandwidth.wait(Direction::Out).is_some());
        assert_eq!(bandwidth.rate(Direction::Out), Some(1024));
        assert_eq!(bandwidth.rate(Direction::In), None);
    }
}
