//! Prometheus metrics at `/metrics` on the API origin (prometheus-client).
//! Node figures come from one status snapshot per scrape, so the driver
//! needs no metrics code of its own; the HTTP layer's own counters live in
//! a family the handlers increment.

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::driver::NodeStatus;
use crate::routing::{Outcomes, Tally};

/// Upper bounds of the peers-asked histograms.
const PEERS_ASKED_BUCKETS: [u32; 8] = [0, 1, 2, 3, 4, 6, 8, 16];
/// Upper bounds of the HTL-used histograms (the default maximum HTL is 18).
const HTL_BUCKETS: [u32; 10] = [1, 2, 4, 6, 8, 10, 12, 14, 16, 18];

/// Labels of the HTTP layer's request counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `gateway` or `api`.
    pub listener: String,
    /// What happened: `served`, `filtered`, `offered`, `refused_host`,
    /// `refused_site`, `refused_token`, `not_found`, `timeout`, `error`…
    pub outcome: String,
}

/// Counters the HTTP handlers increment.
#[derive(Debug, Clone, Default)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
}

impl HttpMetrics {
    pub fn count(&self, listener: &str, outcome: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                listener: listener.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Direction {
    direction: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AreaLabel {
    area: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindOutcome {
    kind: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionOutcome {
    direction: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

/// A histogram made from a [`Tally`] of exact counts: the core keeps the
/// counts, this only encodes them (prometheus-client's `Histogram` can
/// only be fed one observation at a time).
#[derive(Debug)]
struct TallyHistogram {
    sum: f64,
    count: u64,
    /// `(upper bound, observations in this bucket alone)`, the last `+Inf`.
    buckets: Vec<(f64, u64)>,
}

impl TallyHistogram {
    fn new(tally: &Tally, bounds: &[u32]) -> Self {
        let mut buckets: Vec<(f64, u64)> = bounds
            .iter()
            .map(|&b| (f64::from(b), 0))
            .chain(std::iter::once((f64::MAX, 0)))
            .collect();
        for (value, n) in tally.iter() {
            let i = bounds
                .iter()
                .position(|&b| value <= b)
                .unwrap_or(bounds.len());
            buckets[i].1 += n;
        }
        TallyHistogram {
            sum: tally.sum() as f64,
            count: tally.count(),
            buckets,
        }
    }
}

impl EncodeMetric for TallyHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The fields of a serialised struct of counts, as `(name, value)`.
fn fields<T: serde::Serialize>(value: &T) -> Vec<(String, u64)> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .filter_map(|(k, v)| v.as_u64().map(|v| (k, v)))
            .collect(),
        _ => Vec::new(),
    }
}

fn counter(value: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(value);
    counter
}

fn gauge(value: u64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge
}

fn json_u64(value: &serde_json::Value, key: &str) -> u64 {
    value
        .get(key)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

/// The metrics text for one scrape.
pub fn render(status: &NodeStatus, http: &HttpMetrics) -> String {
    let mut registry = Registry::with_prefix("warren");
    registry.register(
        "peers",
        "Peers linked now",
        gauge(status.peers.len() as u64),
    );
    registry.register(
        "live_requests",
        "Requests this node is routing now",
        gauge(status.live_requests as u64),
    );
    registry.register(
        "uptime_seconds",
        "Seconds since start",
        gauge(status.uptime_s),
    );
    let bytes: Family<Direction, Counter> = Family::default();
    for (direction, value) in [
        ("sent", status.links.bytes_sent),
        ("received", status.links.bytes_received),
    ] {
        bytes
            .get_or_create(&Direction {
                direction: direction.into(),
            })
            .inc_by(value);
    }
    registry.register("link_bytes", "Bytes over all links", bytes);
    registry.register(
        "link_messages_shed",
        "Messages dropped because a link's queue was full",
        counter(status.links.messages_shed),
    );
    registry.register(
        "link_bad_messages",
        "Messages from peers that did not decode",
        counter(status.links.bad_messages),
    );
    if let Some(routing) = status.routing.as_object() {
        for (name, value) in routing {
            registry.register(
                format!("routing_{name}"),
                format!("Routing core: {}", name.replace('_', " ")),
                counter(value.as_u64().unwrap_or(0)),
            );
        }
    }
    register_store(&mut registry, &status.store);
    register_requests(&mut registry, status);
    register_links(&mut registry, status);
    registry.register(
        "http_requests",
        "Local HTTP requests by outcome",
        http.requests.clone(),
    );
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

fn register_store(registry: &mut Registry, store: &serde_json::Value) {
    let gauges = ["blocks", "bytes", "capacity_bytes"];
    let counters = ["hits", "evictions", "corrupt_dropped"];
    for name in gauges {
        let family: Family<AreaLabel, Gauge> = Family::default();
        for area in ["store", "cache"] {
            let value = store.get(area).map_or(0, |a| json_u64(a, name));
            family
                .get_or_create(&AreaLabel { area: area.into() })
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
        registry.register(format!("store_{name}"), format!("Datastore {name}"), family);
    }
    for name in counters {
        let family: Family<AreaLabel, Counter> = Family::default();
        for area in ["store", "cache"] {
            let value = store.get(area).map_or(0, |a| json_u64(a, name));
            family
                .get_or_create(&AreaLabel { area: area.into() })
                .inc_by(value);
        }
        registry.register(format!("store_{name}"), format!("Datastore {name}"), family);
    }
    registry.register(
        "store_misses",
        "Datastore reads that found no valid block",
        counter(json_u64(store, "misses")),
    );
}

fn register_requests(registry: &mut Registry, status: &NodeStatus) {
    let local: Family<KindOutcome, Counter> = Family::default();
    for (kind, outcomes) in [
        ("fetch", &status.local.fetch),
        ("insert", &status.local.insert),
    ] {
        for (outcome, &n) in outcomes {
            local
                .get_or_create(&KindOutcome {
                    kind: kind.into(),
                    outcome: (*outcome).into(),
                })
                .inc_by(n);
        }
    }
    registry.register(
        "local_requests",
        "This node's own block fetches and inserts, by outcome",
        local,
    );
    let peers: Family<DirectionOutcome, Counter> = Family::default();
    let sides: [(&str, &Outcomes); 2] = [
        ("to_peers", &status.to_peers),
        ("from_peers", &status.from_peers),
    ];
    for (direction, outcomes) in sides {
        for (outcome, n) in fields(outcomes) {
            peers
                .get_or_create(&DirectionOutcome {
                    direction: direction.into(),
                    outcome,
                })
                .inc_by(n);
        }
    }
    registry.register(
        "peer_requests",
        "Requests routed to peers (how they answered) and from peers (how this node answered), by outcome",
        peers,
    );
    let in_flight: Family<Direction, Gauge> = Family::default();
    for (direction, n) in [
        (
            "to_peers",
            status
                .peers
                .iter()
                .map(|p| u64::from(p.traffic.to_peer_in_flight))
                .sum::<u64>(),
        ),
        (
            "from_peers",
            status
                .peers
                .iter()
                .map(|p| u64::from(p.traffic.from_peer_in_flight))
                .sum(),
        ),
    ] {
        in_flight
            .get_or_create(&Direction {
                direction: direction.into(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    registry.register(
        "peer_requests_in_flight",
        "Requests waiting on a peer's answer, and peers' requests being worked on",
        in_flight,
    );
    registry.register(
        "peer_misbehaviour",
        "Protocol breaks by linked peers (forged blocks, unexpected replies...)",
        counter(
            status
                .peers
                .iter()
                .map(|p| p.traffic.misbehaved)
                .sum::<u64>(),
        ),
    );
    let hops = &status.hops;
    for (name, tally, help, bounds) in [
        (
            "local_fetch_peers_asked",
            &hops.fetch_peers_asked,
            "Own fetches that found data, by peers asked (0: in this node's store)",
            &PEERS_ASKED_BUCKETS[..],
        ),
        (
            "local_insert_peers_asked",
            &hops.insert_peers_asked,
            "Own inserts that went through, by peers asked",
            &PEERS_ASKED_BUCKETS[..],
        ),
        (
            "local_fetch_htl_used",
            &hops.fetch_htl_used,
            "Own fetches that found nothing, by hops-to-live used up (data found carries no HTL)",
            &HTL_BUCKETS[..],
        ),
        (
            "local_insert_htl_used",
            &hops.insert_htl_used,
            "Own inserts that ended at route not found, by hops-to-live used up",
            &HTL_BUCKETS[..],
        ),
    ] {
        registry.register(name, help, TallyHistogram::new(tally, bounds));
    }
}

fn register_links(registry: &mut Registry, status: &NodeStatus) {
    let links = &status.links;
    let opened: Family<Direction, Counter> = Family::default();
    for (direction, n) in [
        ("inbound", links.opened_inbound),
        ("outbound", links.opened_outbound),
    ] {
        opened
            .get_or_create(&Direction {
                direction: direction.into(),
            })
            .inc_by(n);
    }
    registry.register("links_opened", "Links that came up", opened);
    let refused: Family<Reason, Counter> = Family::default();
    for (reason, n) in fields(&links.refused) {
        refused.get_or_create(&Reason { reason }).inc_by(n);
    }
    registry.register(
        "links_refused",
        "Connections and links refused, by reason",
        refused,
    );
    registry.register(
        "dials_failed",
        "Dials to noderefs from the network that failed",
        counter(links.dials_failed),
    );
    registry.register(
        "dials_rate_limited",
        "Dials to noderefs from the network held back by the rate limit",
        counter(links.dials_rate_limited),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_becomes_a_cumulative_histogram() {
        let mut tally = Tally::default();
        for v in [0, 1, 1, 5, 40] {
            tally.record(v);
        }
        let mut registry = Registry::default();
        registry.register(
            "asked",
            "peers asked",
            TallyHistogram::new(&tally, &PEERS_ASKED_BUCKETS),
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("# TYPE asked histogram"), "{text}");
        assert!(text.contains("asked_sum 47.0"), "{text}");
        assert!(text.contains("asked_count 5"), "{text}");
        assert!(text.contains("asked_bucket{le=\"0.0\"} 1"), "{text}");
        assert!(text.contains("asked_bucket{le=\"1.0\"} 3"), "{text}");
        assert!(text.contains("asked_bucket{le=\"6.0\"} 4"), "{text}");
        assert!(text.contains("asked_bucket{le=\"16.0\"} 4"), "{text}");
        assert!(text.contains("asked_bucket{le=\"+Inf\"} 5"), "{text}");
    }
}
