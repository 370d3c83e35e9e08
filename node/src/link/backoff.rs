//! Redialling a peer that went away: capped exponential backoff with jitter.

use std::sync::Arc;
use std::time::Duration;

use rand::{RngCore, SeedableRng as _};
use tokio_util::sync::CancellationToken;
use tracing::debug;
use warren_crypto::{NodeIdentity, NodeRef};

use super::actor::Link;
use super::handshake::{connect, LinkError};
use super::LinkConfig;

/// Default first retry delay.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Default longest delay between attempts.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);

/// Delay before the next attempt after `failures` failed ones: the base
/// doubles from `initial` to `max`; the delay is drawn from `[base/2, base]`
/// so that nodes which lost each other at once do not all redial at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: DEFAULT_BACKOFF_INITIAL,
            max: DEFAULT_BACKOFF_MAX,
        }
    }
}

impl Backoff {
    /// The base delay after `failures` failures (zero after none).
    pub fn base(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The jittered delay after `failures` failures.
    pub fn delay(&self, failures: u32, rng: &mut impl RngCore) -> Duration {
        let base = self.base(failures);
        let half = base / 2;
        let spread = base
            .saturating_sub(half)
            .as_nanos()
            .min(u128::from(u64::MAX)) as u64;
        let jitter = if spread == 0 {
            0
        } else {
            rng.next_u64() % (spread + 1)
        };
        half + Duration::from_nanos(jitter)
    }
}

/// Dial `remote` until a handshake succeeds, `max_attempts` have failed
/// (the last error is returned), or `cancel` fires (`None`). Every error is
/// retried: a refusal may be a peer restarting with a new policy.
pub async fn connect_with_backoff(
    identity: Arc<NodeIdentity>,
    local: NodeRef,
    remote: &NodeRef,
    config: &LinkConfig,
    backoff: Backoff,
    max_attempts: u32,
    cancel: &CancellationToken,
) -> Option<Result<Link, LinkError>> {
    // Jitter only spreads redials out; it needs no secrecy.
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut failures = 0;
    loop {
        let attempt = connect(identity.clone(), local.clone(), remote, config);
        let err = tokio::select! {
            biased;
            () = cancel.cancelled() => return None,
            result = attempt => match result {
                Ok(link) => return Some(Ok(link)),
                Err(err) => err,
            },
        };
        failures += 1;
        if failures >= max_attempts {
            return Some(Err(err));
        }
        let delay = backoff.delay(failures, &mut rng);
        debug!(peer = ?remote.identity, "dial failed ({err}); retry {failures} in {delay:?}");
        tokio::select! {
            biased;
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn base_doubles_then_caps() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let bases: Vec<_> = (0..7).map(|n| b.base(n).as_millis()).collect();
        assert_eq!(bases, [0, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.base(u32::MAX), Duration::from_secs(1));
    }

    proptest! {
        #[test]
        fn delay_is_within_half_and_full_base(failures in 0u32..100, seed: u64, init_ms in 1u64..10_000) {
            let b = Backoff { initial: Duration::from_millis(init_ms), max: Duration::from_secs(600) };
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
            let d = b.delay(failures, &mut rng);
            prop_assert!(d <= b.base(failures));
            prop_assert!(d >= b.base(failures) / 2);
        }
    }
}
