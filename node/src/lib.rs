//! The Warren network node: links, wire format, the sans-IO routing core, the
//! tokio driver that runs it, the client layer for whole files, the local HTTP
//! API, and the simulator.
//!
//! - [`link`]: authenticated, encrypted, padded links between two nodes (Noise
//!   XK over TCP, length-delimited padded frames, keepalive, rekeying, flood and
//!   garbage protection) and the node's identity file.
//! - [`wire`]: the routing messages and their postcard encoding.
//! - [`routing`]: the routing core. Plain data and functions: events in,
//!   actions out, time and randomness passed in.
//! - [`driver`]: the tokio event loop feeding the core from links, timers and
//!   local clients, and carrying out its actions on links and the store.
//! - [`client`]: whole files: splitfile inserts and windowed parallel fetches.
//! - [`http`]: the local API and browser gateway on 127.0.0.1.
//! - [`fcp`]: FCP 2.0, Freenet's client protocol, for existing Freenet clients.
//! - [`sim`]: the simulator, driving the same core over many virtual nodes.
//!
//! See `docs/ARCHITECTURE.md` for how the parts fit together.

pub mod client;
pub mod driver;
pub mod fcp;
pub mod flow;
pub mod http;
pub mod link;
mod roots;
pub mod routing;
pub mod signed;
pub mod sim;
mod spill;
pub mod wire;

/// An error and all its causes in one line, outermost first (`a: b: c`), for
/// answers that leave the process as text (the HTTP API's JSON, a fetch that
/// fails part way). Each error's own message names only its own cause, so
/// every cause appears exactly once.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chain_names_each_cause_once() {
        let err = Outer(std::io::Error::other("inner"));
        assert_eq!(super::error_chain(&err), "outer: inner");
    }
}
