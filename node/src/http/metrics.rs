//! Prometheus metrics at `/metrics` on the API origin (prometheus-client).
//! Node figures come from one status snapshot per scrape, so the driver
//! needs no metrics code of its own; the HTTP layer's own counters live in
//! a family the handlers increment.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::driver::NodeStatus;

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
