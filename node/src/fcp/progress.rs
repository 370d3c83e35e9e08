//! `SimpleProgress` for single-file puts and gets, from the client layer's
//! real block counts.
//!
//! As in Fred, a request is sent progress only if bit 0 of its `Verbosity`
//! is set; a queued (persistent) request keeps its latest progress either
//! way, for `ListPersistentRequests` and `GetRequestStatus`. Progress is
//! reported every half second while the counts move, and once more with
//! the final counts just before the request's outcome, never after it.

use std::future::Future;
use std::time::Duration;

use super::message::Message;
use super::session::Reply;
use crate::client::{Progress, ProgressSnapshot};

/// Block counts that can be looked at while a request runs: the client
/// layer's, or a logged insert's (`super::insert`).
pub(super) trait Counting {
    fn now(&self) -> ProgressSnapshot;
}

impl Counting for Progress {
    fn now(&self) -> ProgressSnapshot {
        self.snapshot()
    }
}

impl Counting for super::insert::Counts {
    fn now(&self) -> ProgressSnapshot {
        self.snapshot()
    }
}

/// How often the counts are looked at; a report goes out only if they moved.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// Whether the request asked for progress (`Verbosity` bit 0).
pub(super) fn verbose(message: &Message) -> bool {
    message
        .get("Verbosity")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|v| v & 1 == 1)
}

/// The `SimpleProgress` for `now`. `Succeeded` never passes `Required`
/// (a fetch also counts metadata and check blocks it got).
pub(super) fn message(reply: &Reply, now: ProgressSnapshot) -> Message {
    reply
        .message("SimpleProgress")
        .with("Total", now.total)
        .with("Required", now.total)
        .with("Failed", now.failed)
        .with("FatallyFailed", 0)
        .with("Succeeded", now.succeeded.min(now.total))
        .with("FinalizedTotal", now.finalized)
}

/// Runs `work`, reporting `progress` every [`PROGRESS_INTERVAL`] while the
/// counts move; returns what `work` returns. `work` must not send the
/// request's outcome itself (a report could then follow it).
pub(super) async fn reporting<F: Future, C: Counting + ?Sized>(
    reply: &Reply,
    progress: &C,
    verbose: bool,
    work: F,
) -> F::Output {
    let mut work = std::pin::pin!(work);
    let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last = ProgressSnapshot::default();
    let mut report = |now: ProgressSnapshot| {
        let moved = now != last && now.total > 0;
        last = now;
        moved.then(|| message(reply, now))
    };
    loop {
        tokio::select! {
            out = &mut work => {
                // The last counts, so a report always precedes the outcome.
                if let Some(m) = report(progress.now()) {
                    reply.progress(m, verbose).await;
                }
                return out;
            }
            _ = tick.tick() => {
                if let Some(m) = report(progress.now()) {
                    reply.progress(m, verbose).await;
                }
            }
        }
    }
}
