//! Whole-file transfers in the simulator: one node inserts, another fetches,
//! the blocks of a file of a given size, keeping as many block requests in
//! flight as a window controller allows, over links with a latency and a
//! bandwidth. What it measures is the virtual time a transfer takes against
//! the links' round trip, for the controller the real client uses and for a
//! fixed window beside it.

use std::collections::HashMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use warren_crypto::RoutingKey;

use super::net::{Completion, Net, NetParams, NodeIx};
use super::{sim_block, topology, Topology, DEFAULT_CACHE_CAPACITY, MAX_EVENTS};
use crate::routing::{ClientId, RoutingConfig, Time};

/// Blocks in one mebibyte of file data (32 KiB payloads).
pub const BLOCKS_PER_MIB: usize = 32;

/// How many block requests a transfer keeps in flight.
pub trait Window {
    /// Requests that may be in flight now.
    fn limit(&self) -> usize;
    /// A request sent at `sent_ms` ended at `now_ms` (virtual), well or not.
    fn on_result(&mut self, ok: bool, sent_ms: u64, now_ms: u64);
}

/// A window that never changes: the client before it adapted (32 inserts,
/// 48 fetches in flight).
#[derive(Debug, Clone, Copy)]
pub struct FixedWindow(pub usize);

impl Window for FixedWindow {
    fn limit(&self) -> usize {
        self.0
    }
    fn on_result(&mut self, _ok: bool, _sent_ms: u64, _now_ms: u64) {}
}

/// The real client's controller ([`crate::flow::Aimd`]), one transfer alone
/// on its node.
impl Window for crate::flow::Aimd {
    fn limit(&self) -> usize {
        self.window()
    }
    fn on_result(&mut self, ok: bool, sent_ms: u64, now_ms: u64) {
        if ok {
            self.on_success(now_ms.saturating_sub(sent_ms));
        } else {
            self.on_congestion(sent_ms, now_ms);
        }
    }
}

/// What one transfer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    pub blocks: usize,
    pub failed: usize,
    pub seconds: f64,
    /// The most requests in flight at once.
    pub peak_in_flight: usize,
}

impl Transfer {
    pub fn mib_per_s(&self) -> f64 {
        let mib = self.blocks as f64 / BLOCKS_PER_MIB as f64;
        if self.seconds > 0.0 {
            mib / self.seconds
        } else {
            f64::INFINITY
        }
    }
}

/// Runs `keys.len()` operations at `x`, at most `window.limit()` at once;
/// `start` begins one (a fetch or an insert of block `i`).
fn run_windowed(
    net: &mut Net,
    blocks: usize,
    window: &mut dyn Window,
    mut start: impl FnMut(&mut Net, usize) -> ClientId,
) -> Transfer {
    let began = net.now();
    let mut in_flight: HashMap<ClientId, Time> = HashMap::new();
    let mut next = 0;
    let mut report = Transfer {
        blocks,
        ..Transfer::default()
    };
    while next < blocks || !in_flight.is_empty() {
        while next < blocks && in_flight.len() < window.limit().max(1) {
            let client = start(net, next);
            in_flight.insert(client, net.now());
            next += 1;
        }
        report.peak_in_flight = report.peak_in_flight.max(in_flight.len());
        if !net.step() {
            // Nothing left to happen: whatever is in flight never ends.
            report.failed += in_flight.len();
            break;
        }
        let mut done: Vec<(ClientId, bool, u64)> = in_flight
            .iter()
            .filter_map(|(client, at)| {
                let ok = match net.completion(*client)? {
                    Completion::Fetch(result) => result.is_ok(),
                    Completion::Insert(result) => result.is_ok(),
                    Completion::Lost => false,
                };
                Some((*client, ok, at.0))
            })
            .collect();
        // In a fixed order, so a run is the same every time.
        done.sort_unstable_by_key(|(client, _, _)| *client);
        for (client, ok, sent) in done {
            in_flight.remove(&client);
            report.failed += usize::from(!ok);
            window.on_result(ok, sent, net.now().0);
        }
    }
    report.seconds = (net.now().0 - began.0) as f64 / 1000.0;
    report
}

/// One point of the curve: a file inserted at one node and fetched at
/// another over links of one round trip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RttPoint {
    pub rtt_ms: u64,
    pub insert: Transfer,
    pub fetch: Transfer,
}

/// What to run: the network and the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransferConfig {
    pub nodes: usize,
    pub degree: usize,
    pub file_mib: usize,
    pub link_bytes_per_sec: u64,
    pub seed: u64,
}

/// Inserts and fetches one file over links of each round trip in `rtts_ms`,
/// each on a fresh network of the same shape; `insert_window` and
/// `fetch_window` make the controllers for each transfer.
pub fn by_rtt(
    config: &TransferConfig,
    rtts_ms: &[u64],
    insert_window: &dyn Fn() -> Box<dyn Window>,
    fetch_window: &dyn Fn() -> Box<dyn Window>,
) -> Vec<RttPoint> {
    rtts_ms
        .iter()
        .map(|&rtt_ms| {
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
            let (locations, adjacency) =
                topology::build(&mut rng, config.nodes, config.degree, Topology::Ideal);
            let one_way = rtt_ms / 2;
            let params = NetParams {
                seed: rng.gen(),
                latency_ms: (one_way, one_way),
                cache_capacity: DEFAULT_CACHE_CAPACITY,
                link_bytes_per_sec: Some(config.link_bytes_per_sec),
            };
            let mut net = Net::new(RoutingConfig::default(), &locations, adjacency, params);
            let n = config.nodes as NodeIx;
            let inserter = rng.gen_range(0..n);
            let fetcher = (inserter + 1 + rng.gen_range(0..n - 1)) % n;
            let blocks: Vec<_> = (0..config.file_mib * BLOCKS_PER_MIB)
                .map(|i| sim_block(config.seed, i))
                .collect();
            let keys: Vec<RoutingKey> = blocks
                .iter()
                .map(warren_crypto::ChkBlock::routing_key)
                .collect();
            let insert = run_windowed(&mut net, blocks.len(), &mut *insert_window(), |net, i| {
                net.insert(net.now(), inserter, blocks[i].clone())
            });
            net.run(MAX_EVENTS);
            let fetch = run_windowed(&mut net, keys.len(), &mut *fetch_window(), |net, i| {
                net.fetch(net.now(), fetcher, keys[i])
            });
            RttPoint {
                rtt_ms,
                insert,
                fetch,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: TransferConfig = TransferConfig {
        nodes: 300,
        degree: 12,
        file_mib: 2,
        link_bytes_per_sec: 4 << 20,
        seed: 5,
    };

    fn fixed(n: usize) -> impl Fn() -> Box<dyn Window> {
        move || Box::new(FixedWindow(n))
    }

    #[test]
    fn a_fixed_window_is_bound_by_the_round_trip() {
        let points = by_rtt(&SMALL, &[0, 80], &fixed(32), &fixed(48));
        for p in &points {
            assert_eq!(p.insert.failed, 0, "{p:?}");
            assert_eq!(p.fetch.failed, 0, "{p:?}");
            assert_eq!(p.fetch.peak_in_flight, 48);
        }
        // Virtual time, so exact: with a fixed window, a slower round trip
        // makes the same transfer take longer.
        assert!(
            points[1].fetch.seconds > 2.0 * points[0].fetch.seconds,
            "{points:?}"
        );
        assert!(
            points[1].insert.seconds > 2.0 * points[0].insert.seconds,
            "{points:?}"
        );
    }

    #[test]
    fn a_wider_window_hides_the_round_trip_until_the_links_are_full() {
        let narrow = by_rtt(&SMALL, &[80], &fixed(4), &fixed(4));
        let wide = by_rtt(&SMALL, &[80], &fixed(256), &fixed(256));
        assert!(
            wide[0].fetch.seconds * 4.0 < narrow[0].fetch.seconds,
            "{narrow:?} {wide:?}"
        );
        // Bounded below by the fetcher's links: 2 MiB at 4 MiB/s shared by
        // its peers still takes a measurable time, not zero.
        assert!(wide[0].fetch.seconds > 0.0);
    }

    #[test]
    fn the_clients_controller_keeps_a_long_path_busy() {
        use crate::flow::{Aimd, FETCH_INITIAL, INSERT_INITIAL, MAX_INSERT_WINDOW, MAX_WINDOW};
        let aimd = |initial, max| move || Box::new(Aimd::new(initial, max)) as Box<dyn Window>;
        let config = TransferConfig {
            file_mib: 8,
            ..SMALL
        };
        let adaptive = by_rtt(
            &config,
            &[80],
            &aimd(INSERT_INITIAL, MAX_INSERT_WINDOW),
            &aimd(FETCH_INITIAL, MAX_WINDOW),
        );
        let fixed = by_rtt(&config, &[80], &fixed(32), &fixed(48));
        let (a, f) = (adaptive[0], fixed[0]);
        assert_eq!(a.fetch.failed + a.insert.failed, 0, "{a:?}");
        assert!(a.fetch.peak_in_flight > 48, "{a:?}");
        assert!(a.fetch.seconds < f.fetch.seconds, "{a:?} {f:?}");
        assert!(a.insert.seconds < f.insert.seconds, "{a:?} {f:?}");
    }

    #[test]
    fn slower_links_make_a_slower_transfer() {
        let slow = TransferConfig {
            link_bytes_per_sec: 64 << 10,
            ..SMALL
        };
        let fast = by_rtt(&SMALL, &[0], &fixed(256), &fixed(256));
        let slow = by_rtt(&slow, &[0], &fixed(256), &fixed(256));
        assert_eq!(slow[0].fetch.failed, 0, "{slow:?}");
        // 64 times slower links: far slower, though more peers share it.
        assert!(
            slow[0].fetch.seconds > 8.0 * fast[0].fetch.seconds,
            "{fast:?} {slow:?}"
        );
    }
}
