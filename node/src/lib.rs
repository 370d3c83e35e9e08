//! The Warren network node.
//!
//! - [`link`]: authenticated, encrypted, padded links between two nodes
//!   (Noise XK handshake, length-delimited transport frames, keepalive,
//!   rekeying, flood and garbage protection) and the node's identity file.
//!
//! The routing core, wire messages, tokio driver and simulator live beside it;
//! see `docs/ARCHITECTURE.md` for how the parts fit together.

pub mod link;
