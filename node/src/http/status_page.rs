//! The operator's status page: this node and its peers on the location
//! circle, drawn as SVG on the server, traffic over the last minutes as a
//! chart, and the figures behind them.

use std::collections::{HashMap, VecDeque};
use std::f64::consts::TAU;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::driver::NodeStatus;
use crate::routing::{Outcomes, Tally};

use super::pages::{escape, page};

/// How often traffic is sampled for the chart.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Samples kept: ten minutes at [`SAMPLE_EVERY`].
pub const HISTORY_SAMPLES: usize = 120;
const CIRCLE_SIZE: f64 = 320.0;
const CHART_WIDTH: f64 = 600.0;
const CHART_HEIGHT: f64 = 140.0;

/// Link byte totals at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub sent: u64,
    pub received: u64,
}

/// The last [`HISTORY_SAMPLES`] samples, oldest first, and when each
/// current peer was first seen linked (to within [`SAMPLE_EVERY`]).
#[derive(Debug, Clone, Default)]
pub struct History {
    samples: Arc<Mutex<VecDeque<Sample>>>,
    /// Only peers linked at the last sample: bounded by the peer table.
    first_seen: Arc<Mutex<HashMap<String, Instant>>>,
}

impl History {
    pub fn push(&self, sample: Sample) {
        if let Ok(mut samples) = self.samples.lock() {
            if samples.len() == HISTORY_SAMPLES {
                samples.pop_front();
            }
            samples.push_back(sample);
        }
    }

    /// Notes the peers linked `now`; forgets those that are gone.
    pub fn observe_peers<'a>(&self, identities: impl Iterator<Item = &'a str>, now: Instant) {
        if let Ok(mut seen) = self.first_seen.lock() {
            let current: HashMap<String, Instant> = identities
                .map(|id| (id.to_owned(), seen.get(id).copied().unwrap_or(now)))
                .collect();
            *seen = current;
        }
    }

    /// How long `identity` has been linked, as far as the samples tell.
    fn linked_for(&self, identity: &str, now: Instant) -> Option<Duration> {
        let seen = self.first_seen.lock().ok()?;
        seen.get(identity)
            .map(|t| now.saturating_duration_since(*t))
    }

    fn rates(&self) -> Vec<(f64, f64)> {
        let Ok(samples) = self.samples.lock() else {
            return Vec::new();
        };
        let secs = SAMPLE_EVERY.as_secs_f64();
        samples
            .iter()
            .zip(samples.iter().skip(1))
            .map(|(a, b)| {
                (
                    b.sent.saturating_sub(a.sent) as f64 / secs,
                    b.received.saturating_sub(a.received) as f64 / secs,
                )
            })
            .collect()
    }
}

/// A point on the circle for a location in [0, 1); 0 at the top, clockwise.
fn on_circle(location: f64, radius: f64) -> (f64, f64) {
    let angle = location * TAU;
    let centre = CIRCLE_SIZE / 2.0;
    (centre + radius * angle.sin(), centre - radius * angle.cos())
}

/// The circle with this node (filled) and its peers, a line to each.
pub fn circle_svg(status: &NodeStatus) -> String {
    let radius = CIRCLE_SIZE / 2.0 - 24.0;
    let c = CIRCLE_SIZE / 2.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{CIRCLE_SIZE}\" height=\"{CIRCLE_SIZE}\" \
         viewBox=\"0 0 {CIRCLE_SIZE} {CIRCLE_SIZE}\" role=\"img\" aria-label=\"peers on the location circle\">\
         <circle cx=\"{c}\" cy=\"{c}\" r=\"{radius}\" fill=\"none\" stroke=\"#bbb\" stroke-width=\"2\"/>"
    );
    let (nx, ny) = on_circle(status.location, radius);
    for peer in &status.peers {
        let (px, py) = on_circle(peer.location, radius);
        let _ = write!(
            svg,
            "<line x1=\"{nx:.1}\" y1=\"{ny:.1}\" x2=\"{px:.1}\" y2=\"{py:.1}\" stroke=\"#6a9fd4\" stroke-width=\"1.5\"/>\
             <circle class=\"peer\" cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"7\" fill=\"#6a9fd4\"><title>{} at {:.4}</title></circle>",
            escape(&peer.address.to_string()),
            peer.location
        );
    }
    let _ = write!(
        svg,
        "<circle class=\"self\" cx=\"{nx:.1}\" cy=\"{ny:.1}\" r=\"10\" fill=\"#d4572a\"><title>this node at {:.4}</title></circle>\
         <text x=\"{c}\" y=\"{c}\" text-anchor=\"middle\" font-size=\"14\" fill=\"#444\">{} peers</text></svg>",
        status.location,
        status.peers.len()
    );
    svg
}

/// Bytes per second sent and received, as two lines.
pub fn traffic_svg(history: &History) -> String {
    let rates = history.rates();
    let peak = rates
        .iter()
        .flat_map(|&(s, r)| [s, r])
        .fold(1.0_f64, f64::max);
    let step = CHART_WIDTH / (HISTORY_SAMPLES - 1) as f64;
    // The newest sample at the right edge; a young node's line starts part way.
    let newest = rates.len().saturating_sub(1);
    let line = |pick: fn(&(f64, f64)) -> f64| -> String {
        rates
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "{:.1},{:.1}",
                    CHART_WIDTH - (newest - i) as f64 * step,
                    CHART_HEIGHT - pick(r) / peak * (CHART_HEIGHT - 10.0)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{CHART_WIDTH}\" height=\"{CHART_HEIGHT}\" \
         viewBox=\"0 0 {CHART_WIDTH} {CHART_HEIGHT}\" role=\"img\" aria-label=\"traffic\">\
         <rect width=\"{CHART_WIDTH}\" height=\"{CHART_HEIGHT}\" fill=\"#fff\" stroke=\"#ddd\"/>\
         <polyline fill=\"none\" stroke=\"#d4572a\" stroke-width=\"2\" points=\"{}\"/>\
         <polyline fill=\"none\" stroke=\"#6a9fd4\" stroke-width=\"2\" points=\"{}\"/>\
         <text x=\"6\" y=\"14\" font-size=\"12\" fill=\"#444\">peak {}/s · sent (orange), received (blue), last {} min</text></svg>",
        line(|r| r.0),
        line(|r| r.1),
        human_bytes(peak as u64),
        HISTORY_SAMPLES as u64 * SAMPLE_EVERY.as_secs() / 60
    )
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn area_row(name: &str, area: Option<&serde_json::Value>) -> String {
    let get = |key: &str| {
        area.and_then(|a| a.get(key))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    format!(
        "<tr><td>{name}</td><td>{} blocks</td><td>{} of {}</td><td>{} hits</td><td>{} evicted</td><td>{} corrupt dropped</td></tr>",
        get("blocks"),
        human_bytes(get("bytes")),
        human_bytes(get("capacity_bytes")),
        get("hits"),
        get("evictions"),
        get("corrupt_dropped")
    )
}

/// Outcomes in one cell: found / not found / route not found / overloaded /
/// loop / timed out.
fn outcomes_cell(o: &Outcomes) -> String {
    format!(
        "<td class=\"outcomes\" title=\"found / not found / route not found / overloaded / loop / timed out\">{} / {} / {} / {} / {} / {}</td>",
        o.success, o.not_found, o.route_not_found, o.overloaded, o.rejected_loop, o.timeout
    )
}

/// A tally as `value×count` pairs, or a dash.
pub fn tally_text(tally: &Tally) -> String {
    if tally.count() == 0 {
        return "–".to_owned();
    }
    tally
        .iter()
        .map(|(v, n)| format!("{v}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The hops line: own requests by peers asked, and HTL used by those that
/// found nothing.
fn hops_html(status: &NodeStatus) -> String {
    let h = &status.hops;
    format!(
        "<p id=\"hops\">Own fetches found, by peers asked (0 = own store): {} · \
         own inserts, by peers asked: {} · own fetches not found, by HTL used: {}. \
         Replies with data carry no hop count, so the hops data travelled are not known.</p>",
        escape(&tally_text(&h.fetch_peers_asked)),
        escape(&tally_text(&h.insert_peers_asked)),
        escape(&tally_text(&h.fetch_htl_used)),
    )
}

fn links_html(status: &NodeStatus) -> String {
    let l = &status.links;
    let refused: Vec<String> = serde_json::to_value(&l.refused)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| {
            let n = v.as_u64()?;
            (n > 0).then(|| format!("{} {n}", k.replace('_', " ")))
        })
        .collect();
    let refused = if refused.is_empty() {
        "none".to_owned()
    } else {
        refused.join(", ")
    };
    format!(
        "<p id=\"links\">Links opened: {} inbound, {} outbound · refused: {} · \
         {} dials failed, {} held back by the rate limit</p>",
        l.opened_inbound,
        l.opened_outbound,
        escape(&refused),
        l.dials_failed,
        l.dials_rate_limited
    )
}

fn local_html(status: &NodeStatus) -> String {
    let list = |m: &std::collections::BTreeMap<&'static str, u64>| {
        if m.is_empty() {
            return "none".to_owned();
        }
        m.iter()
            .map(|(k, v)| format!("{} {v}", k.replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "<p id=\"local\">Own block fetches: {} · own block inserts: {}</p>",
        escape(&list(&status.local.fetch)),
        escape(&list(&status.local.insert))
    )
}

/// The whole status page.
pub fn render(status: &NodeStatus, history: &History, gateway_origin: &str) -> String {
    let mut peers = String::from(
        "<table id=\"peers\"><tr><th>peer</th><th>location</th><th>address</th>\
         <th>linked for</th><th>sent</th><th>received</th>\
         <th title=\"requests waiting on this peer / its requests this node works on\">in flight to / from</th>\
         <th>its answers</th><th>our answers</th><th>protocol breaks</th></tr>",
    );
    let now = Instant::now();
    for peer in &status.peers {
        let age = history.linked_for(&peer.identity, now).map_or_else(
            || format!("< {} s", SAMPLE_EVERY.as_secs()),
            |age| format!("{} s", age.as_secs()),
        );
        let _ = write!(
            peers,
            "<tr class=\"peer-row\"><td><code>{}</code></td><td>{:.4}</td><td>{}</td>\
             <td>{age}</td><td>{}</td><td>{}</td><td class=\"in-flight\">{} / {}</td>{}{}<td>{}</td></tr>",
            escape(peer.identity.get(..12).unwrap_or(&peer.identity)),
            peer.location,
            escape(&peer.address.to_string()),
            human_bytes(peer.bytes_sent),
            human_bytes(peer.bytes_received),
            peer.traffic.to_peer_in_flight,
            peer.traffic.from_peer_in_flight,
            outcomes_cell(&peer.traffic.to_peer),
            outcomes_cell(&peer.traffic.from_peer),
            peer.traffic.misbehaved,
        );
    }
    peers.push_str(
        "</table><p class=\"legend\">Answers: found / not found / no route / overloaded / loop / timed out, over the current link.</p>",
    );
    let mut routing = String::from("<table>");
    if let Some(fields) = status.routing.as_object() {
        for (name, value) in fields {
            let _ = write!(
                routing,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape(&name.replace('_', " ")),
                value.as_u64().unwrap_or(0)
            );
        }
    }
    routing.push_str("</table>");
    let body = format!(
        "<nav><a href=\"/\">Status</a><a href=\"/upload\">Insert</a><a href=\"{gw}/\">Gateway</a><a href=\"/metrics\">Metrics</a></nav>\
         <h1>This node</h1><p>Location {:.4} · up {} s · {} requests being routed · \
         {} sent, {} received over links</p>\
         <div class=\"box\">{}</div><h2>Traffic</h2><div class=\"box\">{}</div>\
         <h2>Peers</h2>{peers}{}{}<h2>Requests and hops</h2>{}{}\
         <h2>Store and cache</h2><table>{}{}</table>\
         <h2>Routing</h2>{routing}<h2>Noderef</h2><p class=\"key\">{}</p>",
        status.location,
        status.uptime_s,
        status.live_requests,
        human_bytes(status.links.bytes_sent),
        human_bytes(status.links.bytes_received),
        circle_svg(status),
        traffic_svg(history),
        links_html(status),
        totals_html(status),
        local_html(status),
        hops_html(status),
        area_row("store", status.store.get("store")),
        area_row("cache", status.store.get("cache")),
        escape(&status.noderef),
        gw = escape(gateway_origin),
    );
    page("Status", &body)
}

fn totals_html(status: &NodeStatus) -> String {
    format!(
        "<p id=\"peer-totals\">All peers since start: their answers {}; ours {}</p>",
        outcomes_text(&status.to_peers),
        outcomes_text(&status.from_peers)
    )
}

fn outcomes_text(o: &Outcomes) -> String {
    format!(
        "{} found, {} not found, {} no route, {} overloaded, {} loops, {} timed out",
        o.success, o.not_found, o.route_not_found, o.overloaded, o.rejected_loop, o.timeout
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_only_the_last_samples_and_rates_never_go_negative() {
        let history = History::default();
        for i in 0..(HISTORY_SAMPLES as u64 + 10) {
            history.push(Sample {
                sent: i * 1000,
                received: 0,
            });
        }
        history.push(Sample {
            sent: 0,
            received: 0,
        });
        let rates = history.rates();
        assert_eq!(rates.len(), HISTORY_SAMPLES - 1);
        assert!(rates.iter().all(|&(s, r)| s >= 0.0 && r >= 0.0));
    }

    #[test]
    fn peers_keep_their_first_sighting_and_gone_ones_are_forgotten() {
        let history = History::default();
        let start = Instant::now();
        history.observe_peers(["a", "b"].into_iter(), start);
        let later = start + Duration::from_secs(30);
        history.observe_peers(["a", "c"].into_iter(), later);
        assert_eq!(
            history.linked_for("a", later),
            Some(Duration::from_secs(30))
        );
        assert_eq!(history.linked_for("c", later), Some(Duration::ZERO));
        assert_eq!(history.linked_for("b", later), None);
    }

    #[test]
    fn locations_map_onto_the_circle() {
        let (x, y) = on_circle(0.0, 100.0);
        assert!((x - CIRCLE_SIZE / 2.0).abs() < 1e-9 && y < CIRCLE_SIZE / 2.0);
        let (x, _) = on_circle(0.25, 100.0);
        assert!(x > CIRCLE_SIZE / 2.0 + 99.0);
    }
}
