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
    }
    let _ = writeln!(
        out,
        "links: {:.1} MiB sent, {:.1} MiB received, {} messages shed, {} bad",
        mib(num(status, &["links", "bytes_sent"])),
        mib(num(status, &["links", "bytes_received"])),
        num(status, &["links", "messages_shed"]),
        num(status, &["links", "bad_messages"])
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
            "peers": [{"location": 0.5, "address": "127.0.0.1:4000", "identity": "abcdefghijklmnop", "bytes_sent": 1_048_576}],
            "links": {"bytes_sent": 2_097_152, "bytes_received": 0, "messages_shed": 0, "bad_messages": 0},
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
    }
}
