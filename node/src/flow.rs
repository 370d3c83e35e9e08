//! Flow control for client transfers: how many block requests (a fetch) or
//! block inserts (an insert) one transfer keeps in flight.
//!
//! A fixed window caps a transfer at window / path round trip: fine on
//! loopback, a tenth of the link on a wide-area path. Each transfer instead
//! runs an AIMD controller ([`Aimd`], plain data: events in, window out), as
//! TCP and Fred's originator do: slow start from the old fixed window,
//! additive increase of one block per window of successes once past the
//! first congestion, and a multiplicative decrease (halving) when a block
//! meets an overloaded node, a busy request queue or a timeout. The increase
//! is clocked by completions, so a window grows once per path round trip
//! whatever that round trip is; one decrease is taken per round of blocks
//! (blocks sent before the last decrease cannot cause another), as TCP's
//! recovery does.
//!
//! Bounds: one fetch never has more than [`NEAR_WINDOW`] block requests in
//! flight while its path is near, nor more than [`MAX_WINDOW`] once it is
//! far (see [`FAR_RTT_MS`]), one insert never more than [`MAX_INSERT_WINDOW`] blocks, and a
//! node's transfers share those budgets equally among the transfers running
//! ([`Transfers`]): two fetches on one node get half of [`MAX_WINDOW`]
//! each. Memory: a request in flight holds nothing (a fetch's answers are
//! held by the codec, `FETCH_HELD_BLOCKS`, and answers past that are kept
//! on disk, see `spill`), while an insert's block in flight is held until
//! it is stored: inserts share [`MAX_INSERT_WINDOW`], so a node's inserts
//! hold at most 512 x 32 KiB = 16 MiB of blocks in flight, whatever their
//! number. A fetch's bound equals the routing core's per-peer limit
//! (`DEFAULT_MAX_REQUESTS_PER_PEER`), so a node with a single peer, and each
//! relay of a chain behind it, is not refused for its own fetch: a
//! wide-area path needs about 1,000 blocks in flight to fill.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Block requests one fetch keeps in flight at most (the bound on any
/// window), and those of all a node's transfers together.
pub const MAX_WINDOW: usize = 1024;
/// Blocks one insert keeps in flight at most, and those of all a node's
/// transfers together when they are inserts: each is held in memory until
/// it is stored.
pub const MAX_INSERT_WINDOW: usize = 512;
/// Blocks a fetch keeps in flight at most while its path is near (see
/// [`FAR_RTT_MS`]): on a loopback or LAN path 512 blocks are past what a
/// node's CPU moves, and more in flight there only queue in the nodes and
/// their memory.
pub const NEAR_WINDOW: usize = 512;
/// The base block round trip, in ms, from which a fetch's window may grow
/// past [`NEAR_WINDOW`] to [`MAX_WINDOW`]. The base round trip is the 90th
/// percentile of the first [`BASE_SAMPLES`] blocks that came from the
/// network (took at least [`LOCAL_RTT_MS`]): taken in slow start, before a
/// large window's queue inflates every round trip of a busy near path, and
/// a high percentile because many blocks come back at once from nearby
/// nodes (an insert stores at every hop) whatever the path to the rest.
pub const FAR_RTT_MS: u64 = 150;
/// Round trips the base round trip is taken from.
pub const BASE_SAMPLES: usize = 64;
/// Round trips shorter than this, in ms, are blocks the node had itself.
pub const LOCAL_RTT_MS: u64 = 2;
/// The window never shrinks below this: a transfer always makes progress.
pub const MIN_WINDOW: usize = 4;
/// Where a fetch's window starts: an eighth of the bound, so a wide-area
/// fetch reaches the bound in three round trips of slow start (on loopback
/// a window grows in microseconds, so the start matters little there).
pub const FETCH_INITIAL: usize = 128;
/// Where an insert's window starts (as a fetch's).
pub const INSERT_INITIAL: usize = 128;

/// An AIMD window over blocks in flight. Times are milliseconds on any
/// monotonic clock the caller keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Aimd {
    window: f64,
    /// Below it, slow start (one more block per success); above, one block
    /// per window of successes.
    threshold: f64,
    max: f64,
    /// Blocks sent before this moment cannot cause another decrease.
    last_decrease: Option<u64>,
    /// Decreases taken so far (for the log).
    decreases: u32,
    /// Smoothed round trip of a block (for status and tuning), in ms.
    srtt_ms: Option<f64>,
    /// The first round trips, in ms, until there are [`BASE_SAMPLES`].
    first_rtts: Vec<u64>,
    /// Their 90th percentile, once known.
    base_rtt_ms: Option<u64>,
}

impl Aimd {
    /// A window starting at `initial` that may grow to `max` (both clamped
    /// to [`MIN_WINDOW`]..=[`MAX_WINDOW`]).
    pub fn new(initial: usize, max: usize) -> Aimd {
        let max = max.clamp(MIN_WINDOW, MAX_WINDOW) as f64;
        Aimd {
            window: (initial as f64).clamp(MIN_WINDOW as f64, max),
            threshold: max,
            max,
            last_decrease: None,
            decreases: 0,
            srtt_ms: None,
            first_rtts: Vec::new(),
            base_rtt_ms: None,
        }
    }

    /// The bound now: `max`, or at most [`NEAR_WINDOW`] until the path has
    /// shown itself far.
    fn cap(&self) -> f64 {
        if self.is_far() {
            self.max
        } else {
            self.max.min(NEAR_WINDOW as f64)
        }
    }

    /// Whether the base round trip is known and at least [`FAR_RTT_MS`].
    pub fn is_far(&self) -> bool {
        self.base_rtt_ms.is_some_and(|rtt| rtt >= FAR_RTT_MS)
    }

    /// Blocks that may be in flight now.
    pub fn window(&self) -> usize {
        // Bounded by `max`, itself at most MAX_WINDOW: the cast cannot truncate.
        self.window.min(self.cap()).floor() as usize
    }

    /// The smoothed round trip of a block, once one has completed.
    pub fn srtt_ms(&self) -> Option<f64> {
        self.srtt_ms
    }

    /// A block completed `rtt_ms` after it was sent.
    pub fn on_success(&mut self, rtt_ms: u64) {
        let rtt = rtt_ms as f64;
        self.srtt_ms = Some(self.srtt_ms.map_or(rtt, |s| 0.875 * s + 0.125 * rtt));
        if self.base_rtt_ms.is_none() && rtt_ms >= LOCAL_RTT_MS {
            self.first_rtts.push(rtt_ms);
            if self.first_rtts.len() == BASE_SAMPLES {
                self.first_rtts.sort_unstable();
                self.base_rtt_ms = Some(self.first_rtts[BASE_SAMPLES * 9 / 10]);
                self.first_rtts = Vec::new();
            }
        }
        let step = if self.window < self.threshold {
            1.0
        } else {
            1.0 / self.window
        };
        self.window = (self.window + step).min(self.cap());
    }

    /// A block sent at `sent_ms` met overload or a timeout, seen at `now_ms`.
    /// Halves the window, once per round: a block sent before the last
    /// decrease was sent under the old window and says nothing new.
    pub fn on_congestion(&mut self, sent_ms: u64, now_ms: u64) {
        if self.last_decrease.is_some_and(|at| sent_ms < at) {
            return;
        }
        self.window = (self.window.min(self.cap()) / 2.0).max(MIN_WINDOW as f64);
        self.threshold = self.window;
        self.last_decrease = Some(now_ms);
        self.decreases += 1;
    }
}

/// The transfers running on one node, for sharing the window budgets.
#[derive(Debug, Default)]
pub struct Transfers {
    active: AtomicUsize,
}

impl Transfers {
    /// How many blocks each transfer whose bound is `budget` may have in
    /// flight now.
    pub fn share(&self, budget: usize) -> usize {
        let active = self.active.load(Ordering::Relaxed).max(1);
        (budget / active).max(MIN_WINDOW)
    }

    fn join(self: &Arc<Self>) -> Member {
        self.active.fetch_add(1, Ordering::Relaxed);
        Member(Arc::clone(self))
    }
}

/// One running transfer, counted until dropped.
#[derive(Debug)]
struct Member(Arc<Transfers>);

impl Drop for Member {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One transfer's window as a gate its block tasks pass: a semaphore whose
/// permits follow the controller's window (capped by the node's share).
#[derive(Debug)]
pub struct Window {
    semaphore: Arc<Semaphore>,
    state: Mutex<WindowState>,
    started: Instant,
    member: Member,
    /// The transfer's bound, and the budget it shares with the node's others.
    budget: usize,
}

#[derive(Debug)]
struct WindowState {
    aimd: Aimd,
    /// Permits that exist (held or free), less those owed back.
    granted: usize,
    /// Permits to forget as they come back, after the window shrank.
    owed: usize,
}

impl Window {
    /// A window for a new fetch on the node whose transfers are `transfers`.
    pub fn new(transfers: &Arc<Transfers>, initial: usize) -> Arc<Window> {
        Window::bounded(transfers, initial, MAX_WINDOW)
    }

    /// A window for a new insert (bound [`MAX_INSERT_WINDOW`]).
    pub fn for_insert(transfers: &Arc<Transfers>, initial: usize) -> Arc<Window> {
        Window::bounded(transfers, initial, MAX_INSERT_WINDOW)
    }

    fn bounded(transfers: &Arc<Transfers>, initial: usize, budget: usize) -> Arc<Window> {
        let member = transfers.join();
        let aimd = Aimd::new(initial, budget);
        let granted = aimd.window().min(transfers.share(budget));
        Arc::new(Window {
            semaphore: Arc::new(Semaphore::new(granted)),
            state: Mutex::new(WindowState {
                aimd,
                granted,
                owed: 0,
            }),
            started: Instant::now(),
            member,
            budget,
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Waits for room in the window; the slot is held until the permit is
    /// dropped or reports how its block went.
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        // The semaphore is never closed: `Err` cannot happen, but a slot
        // without a permit would still be a correct (if unbounded) slot.
        let permit = Arc::clone(&self.semaphore).acquire_owned().await.ok();
        Slot {
            window: Arc::clone(self),
            permit,
            sent_ms: self.now_ms(),
        }
    }

    /// A slot if the window has room now.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        let permit = Arc::clone(&self.semaphore).try_acquire_owned().ok()?;
        Some(Slot {
            window: Arc::clone(self),
            permit: Some(permit),
            sent_ms: self.now_ms(),
        })
    }

    /// Free slots now.
    pub fn room(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// Whether the path has shown itself far (see [`Aimd::is_far`]), so the
    /// window may grow past [`NEAR_WINDOW`].
    pub fn is_far(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.aimd.is_far())
    }

    /// Blocks that may be in flight now.
    pub fn current(&self) -> usize {
        self.state.lock().map_or(MIN_WINDOW, |s| s.granted)
    }

    /// Applies `event` to the controller and resizes the semaphore.
    fn update(&self, event: impl FnOnce(&mut Aimd)) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        event(&mut state.aimd);
        let target = state.aimd.window().min(self.member.0.share(self.budget));
        if target > state.granted {
            let mut grow = target - state.granted;
            // Owed permits are cancelled first, then new ones added.
            let cancel = grow.min(state.owed);
            state.owed -= cancel;
            grow -= cancel;
            self.semaphore.add_permits(grow);
        } else {
            state.owed += state.granted - target;
        }
        state.granted = target;
    }

    /// A returned permit: forgotten if the window shrank since, else freed.
    fn give_back(&self, permit: OwnedSemaphorePermit) {
        let forget = self.state.lock().is_ok_and(|mut s| {
            let owe = s.owed > 0;
            if owe {
                s.owed -= 1;
            }
            owe
        });
        if forget {
            permit.forget();
        }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        if let Ok(state) = self.state.lock() {
            tracing::debug!(
                window = state.aimd.window(),
                srtt_ms = state.aimd.srtt_ms(),
                decreases = state.aimd.decreases,
                secs = self.started.elapsed().as_secs_f64(),
                "transfer window at the end"
            );
        }
    }
}

/// Room for one block in a transfer's window.
#[derive(Debug)]
pub struct Slot {
    window: Arc<Window>,
    permit: Option<OwnedSemaphorePermit>,
    sent_ms: u64,
}

impl Slot {
    /// The block met overload or a timeout (it may be tried again, in this slot).
    pub fn congested(&mut self) {
        let now = self.window.now_ms();
        let sent = self.sent_ms;
        self.window.update(|aimd| aimd.on_congestion(sent, now));
        self.sent_ms = now;
    }

    /// The block is done; frees the slot.
    pub fn succeeded(self) {
        let rtt = self.window.now_ms().saturating_sub(self.sent_ms);
        self.window.update(|aimd| aimd.on_success(rtt));
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.window.give_back(permit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_doubles_the_window_each_round_up_to_the_bound() {
        let mut aimd = Aimd::new(8, MAX_WINDOW);
        for _ in 0..8 {
            aimd.on_success(FAR_RTT_MS);
        }
        assert_eq!(aimd.window(), 16);
        for _ in 0..MAX_WINDOW {
            aimd.on_success(FAR_RTT_MS);
        }
        assert_eq!(aimd.window(), MAX_WINDOW);
    }

    #[test]
    fn congestion_halves_once_per_round_and_then_growth_is_additive() {
        let mut aimd = Aimd::new(128, MAX_WINDOW);
        aimd.on_congestion(0, 100);
        assert_eq!(aimd.window(), 64);
        // Blocks sent before the decrease and failing after it: no new cut.
        aimd.on_congestion(50, 120);
        aimd.on_congestion(99, 130);
        assert_eq!(aimd.window(), 64);
        // A block sent after it is a new round.
        aimd.on_congestion(101, 200);
        assert_eq!(aimd.window(), 32);
        // Past the threshold: a whole window of successes adds one block.
        for _ in 0..34 {
            aimd.on_success(80);
        }
        assert_eq!(aimd.window(), 33);
    }

    #[test]
    fn the_window_never_leaves_its_bounds() {
        let mut aimd = Aimd::new(1, 10_000);
        assert_eq!(aimd.window(), MIN_WINDOW);
        for round in 0..20u64 {
            aimd.on_congestion(round * 10, round * 10 + 5);
        }
        assert_eq!(aimd.window(), MIN_WINDOW);
        // Additive from 4 to 1024 (on a far path): about 1024^2 / 2 successes.
        for _ in 0..600_000 {
            aimd.on_success(FAR_RTT_MS);
        }
        assert_eq!(aimd.window(), MAX_WINDOW);
    }

    #[test]
    fn a_window_grows_past_the_near_bound_only_on_a_far_path() {
        // Most of the first blocks came back fast: the path is near, however
        // long the queue makes the later round trips.
        let mut near = Aimd::new(NEAR_WINDOW, MAX_WINDOW);
        for i in 0..BASE_SAMPLES as u64 {
            near.on_success(if i % 16 == 0 { FAR_RTT_MS * 4 } else { 5 });
        }
        for _ in 0..2 * MAX_WINDOW {
            near.on_success(FAR_RTT_MS * 4);
        }
        assert!(!near.is_far());
        assert_eq!(near.window(), NEAR_WINDOW);
        // Most came back slowly, some at once (held by the node itself):
        // the path is far.
        let mut far = Aimd::new(NEAR_WINDOW, MAX_WINDOW);
        for i in 0..2 * MAX_WINDOW as u64 {
            far.on_success(if i % 3 == 0 { 0 } else { FAR_RTT_MS * 2 });
        }
        assert!(far.is_far());
        assert_eq!(far.window(), MAX_WINDOW);
        // An insert's bound is below the near bound: no difference.
        let mut insert = Aimd::new(MAX_INSERT_WINDOW, MAX_INSERT_WINDOW);
        for _ in 0..2 * MAX_WINDOW {
            insert.on_success(FAR_RTT_MS * 4);
        }
        assert_eq!(insert.window(), MAX_INSERT_WINDOW);
    }

    #[test]
    fn the_round_trip_is_smoothed() {
        let mut aimd = Aimd::new(8, 64);
        assert_eq!(aimd.srtt_ms(), None);
        aimd.on_success(80);
        assert_eq!(aimd.srtt_ms(), Some(80.0));
        aimd.on_success(160);
        assert_eq!(aimd.srtt_ms(), Some(90.0));
    }

    #[test]
    fn transfers_on_one_node_share_its_budget() {
        let transfers = Arc::new(Transfers::default());
        let one = transfers.join();
        assert_eq!(transfers.share(MAX_WINDOW), MAX_WINDOW);
        let two = transfers.join();
        assert_eq!(transfers.share(MAX_WINDOW), MAX_WINDOW / 2);
        assert_eq!(transfers.share(MAX_INSERT_WINDOW), MAX_INSERT_WINDOW / 2);
        drop(one);
        assert_eq!(transfers.share(MAX_WINDOW), MAX_WINDOW);
        drop(two);
        assert_eq!(transfers.share(MAX_WINDOW), MAX_WINDOW);
    }

    #[tokio::test]
    async fn a_window_admits_what_its_controller_says_and_shrinks_under_congestion() {
        let transfers = Arc::new(Transfers::default());
        let window = Window::new(&transfers, 8);
        let mut slots = Vec::new();
        for _ in 0..8 {
            slots.push(window.acquire().await);
        }
        // Full: a ninth waits.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), window.acquire())
                .await
                .is_err()
        );
        // One congestion: the window halves to 4; the 8 held slots come back
        // and only 4 are free again.
        slots[0].congested();
        assert_eq!(window.current(), 4);
        slots.clear();
        assert_eq!(window.semaphore.available_permits(), 4);
        // A second transfer on the node caps each at half the budget.
        let other = Window::new(&transfers, MAX_WINDOW);
        assert_eq!(other.current(), MAX_WINDOW / 2);
        // An insert's bound is its own, shared the same way.
        let insert = Window::for_insert(&transfers, MAX_WINDOW);
        assert_eq!(insert.current(), MAX_INSERT_WINDOW / 3);
    }

    #[tokio::test]
    async fn successes_open_the_window() {
        let transfers = Arc::new(Transfers::default());
        let window = Window::new(&transfers, 4);
        for _ in 0..4 {
            window.acquire().await.succeeded();
        }
        assert_eq!(window.current(), 8);
        assert_eq!(window.semaphore.available_permits(), 8);
    }
}
