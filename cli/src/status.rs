//! `warren status`: what the status page shows, in a terminal.

use std::fmt::Write as _;

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use crate::api_client::ApiArgs;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Print the node's status as JSON instead.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &StatusArgs) -> Result<()> {
    let status = args.api.client()?.status()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", summary(&status));
    }
    Ok(())
}

fn num(value: &Value, path: &[&str]) -> u64 {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// `found/not found/no route/overloaded/loop/timed out` of an outcomes object.
fn outcomes(value: &Value) -> String {
    [
        "success",
        "not_found",
        "route_not_found",
        "overloaded",
        "rejected_loop",
        "timeout",
    ]
    .iter()
    .map(|k| num(value, &[k]).to_string())
    .collect::<Vec<_>>()
    .join("/")
}

/// `key n, key n` of an object of counts (a tally's keys are values).
fn counts(value: &Value, sep: &str) -> String {
    let Some(map) = value.as_object().filter(|m| !m.is_empty()) else {
        return "none".to_owned();
    };
    map.iter()
        .map(|(k, v)| format!("{}{sep}{}", k.replace('_', " "), v.as_u64().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An object of counts without its zeros.
fn nonzero(value: &Value) -> Value {
    let map = value.as_object().cloned().unwrap_or_default();
    Value::Object(
        map.into_iter()
            .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
            .collect(),
    )
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

/// The summary, one fact per line.
pub fn summary(status: &Value) -> String {
    let mut out = String::new();
    let location = status["location"].as_f64().unwrap_or(0.0);
    let peers = status["peers"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "node at location {location:.4}, up {} s, {} peers, {} requests being routed",
        num(status, &["uptime_s"]),
        peers.len(),
        num(status, &["live_requests"])
    );
    for peer in &peers {
        let _ = writeln!(
            out,
            "  peer {:.4}  {}  {}  {:.1} MiB sent, {:.1} MiB received",
            peer["location"].as_f64().unwrap_or(0.0),
            peer["address"].as_str().unwrap_or("?"),
            peer["identity"]
                .as_str()
                .and_then(|i| i.get(..12))
                .unwrap_or("?"),
            mib(num(peer, &["bytes_sent"])),
            mib(num(peer, &["bytes_received"]))
        );
        let _ = writeln!(
            out,
            "    in flight {} to, {} from; its answers {}, ours {} (found/not found/no route/overloaded/loop/timed out); {} protocol breaks",
            num(peer, &["to_peer_in_flight"]),
            num(peer, &["from_peer_in_flight"]),
            outcomes(&peer["to_peer"]),
            outcomes(&peer["from_peer"]),
            num(peer, &["misbehaved"])
        );
    }
    let _ = writeln!(
        out,
        "links: {:.1} MiB sent, {:.1} MiB received, {} messages shed, {} bad",
        mib(num(status, &["links", "bytes_sent"])),
        mib(num(status, &["links", "bytes_received"])),
        num(status, &["links", "messages_shed"]),
        num(status, &["links", "bad_messages"])
    );
    let _ = writeln!(
        out,
        "links opened: {} inbound, {} outbound; refused: {}",
        num(status, &["links", "opened_inbound"]),
        num(status, &["links", "opened_outbound"]),
        counts(&nonzero(&status["links"]["refused"]), " ")
    );
    let _ = writeln!(
        out,
        "own blocks: fetches {}; inserts {}",
        counts(&status["local"]["fetch"], " "),
        counts(&status["local"]["insert"], " ")
    );
    let _ = writeln!(
        out,
        "hops: own fetches found by peers asked {}; not found by HTL used {}",
        counts(&status["hops"]["fetch_peers_asked"], ": "),
        counts(&status["hops"]["fetch_htl_used"], ": ")
    );
    let _ = writeln!(
        out,
        "all peers: their answers {}, ours {}",
        outcomes(&status["to_peers"]),
        outcomes(&status["from_peers"])
    );
    for area in ["store", "cache"] {
        let _ = writeln!(
            out,
            "{area}: {} blocks, {:.1} of {:.1} MiB, {} hits, {} evicted, {} corrupt dropped",
            num(status, &["store", area, "blocks"]),
            mib(num(status, &["store", area, "bytes"])),
            mib(num(status, &["store", area, "capacity_bytes"])),
            num(status, &["store", area, "hits"]),
            num(status, &["store", area, "evictions"]),
            num(status, &["store", area, "corrupt_dropped"])
        );
    }
    let _ = writeln!(
        out,
        "routing: {} requests and {} inserts accepted, {} answered from the store, {} timeouts, {} overloaded",
        num(status, &["routing", "requests_accepted"]),
        num(status, &["routing", "inserts_accepted"]),
        num(status, &["routing", "answered_from_store"]),
        num(status, &["routing", "timeouts"]),
        num(status, &["routing", "overloaded_sent"])
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_peers_and_store_figures() {
        let status = serde_json::json!({
            "location": 0.25, "uptime_s": 7, "live_requests": 1,
            "peers": [{"location": 0.5, "address": "127.0.0.1:4000", "identity": "abcdefghijklmnop", "bytes_sent": 1_048_576,
                       "to_peer_in_flight": 2, "from_peer_in_flight": 1,
                       "to_peer": {"success": 4, "not_found": 1, "route_not_found": 0, "overloaded": 0, "rejected_loop": 0, "timeout": 3},
                       "from_peer": {"success": 0}, "misbehaved": 1}],
            "links": {"bytes_sent": 2_097_152, "bytes_received": 0, "messages_shed": 0, "bad_messages": 0,
                      "opened_inbound": 1, "opened_outbound": 2, "refused": {"handshake_failed": 5, "per_ip": 0}},
            "local": {"fetch": {"success": 9}, "insert": {}},
            "hops": {"fetch_peers_asked": {"1": 8, "2": 1}, "fetch_htl_used": {}},
            "store": {"store": {"blocks": 3, "bytes": 98_304, "capacity_bytes": 1_048_576}, "cache": {}},
            "routing": {"requests_accepted": 5},
        });
        let text = summary(&status);
        assert!(text.contains("location 0.2500, up 7 s, 1 peers"), "{text}");
        assert!(
            text.contains("peer 0.5000  127.0.0.1:4000  abcdefghijkl"),
            "{text}"
        );
        assert!(text.contains("2.0 MiB sent"), "{text}");
        assert!(text.contains("store: 3 blocks"), "{text}");
        assert!(text.contains("5 requests"), "{text}");
        assert!(
            text.contains("in flight 2 to, 1 from; its answers 4/1/0/0/0/3, ours 0/0/0/0/0/0"),
            "{text}"
        );
        assert!(text.contains("1 protocol breaks"), "{text}");
        assert!(
            text.contains("1 inbound, 2 outbound; refused: handshake failed 5\n"),
            "{text}"
        );
        assert!(text.contains("fetches success 9; inserts none"), "{text}");
        assert!(
            text.contains("peers asked 1: 8, 2: 1; not found by HTL used none"),
            "{text}"
        );
    }
}
