//! Links: how two Warren nodes talk.
//!
//! A link is one TCP connection carrying a Noise `XK` session
//! ([`NOISE_PARAMS`]). The caller knows the callee's static key from its
//! noderef; both sides get forward secrecy. Inside the handshake each side
//! sends its own [`NodeRef`](warren_crypto::NodeRef), so once a link is up
//! both know who and where the other is. After the handshake every frame is a
//! Noise transport message whose plaintext is a versioned postcard envelope
//! ([`message`]) padded to one of a few fixed sizes, so a block transfer and
//! a keepalive differ on the wire only in their size class.
//!
//! Shape, for the node driver:
//! - [`connect`] dials a peer; [`Listener`] accepts them (handshakes in progress
//!   capped, each with a deadline; a bad one is logged and skipped).
//! - Either gives a [`Link`]; [`Link::spawn`] turns it into an actor and returns
//!   a [`LinkHandle`] (bounded outbox + cancellation + abort-on-drop).
//! - The actor reports [`LinkEvent`]s: received payloads (shed when the
//!   driver's queue is full) and one `Closed` with the reason.
//! - [`Backoff`] and [`connect_with_backoff`] redial a peer that went away.
//!
//! The precise byte layout is in `docs/PROTOCOL.md` (link part).

use std::time::Duration;

mod actor;
pub mod backoff;
pub mod bandwidth;
mod budget;
pub mod frame;
mod handshake;
pub mod identity_file;
mod listener;
pub mod message;

pub use actor::{
    CloseReason, EventTicket, Link, LinkEvent, LinkHandle, LinkId, LinkSendError, LinkStats,
    LinkStatsSnapshot, OutboxBudget, RunError, WRITE_HIGH_WATER,
};
pub use backoff::{connect_with_backoff, Backoff};
pub use frame::{MAX_FRAME_LEN, PAD_BLOCK, PAD_CONTROL, PAD_MEDIUM, PAD_SIZES};
pub use handshake::{
    connect, LinkError, MAX_HANDSHAKE_FRAME, MIN_PROTOCOL_VERSION, MSG1_LEN, MSG2_LEN, MSG3_LEN,
    NOISE_PARAMS, PROLOGUE,
};
pub use listener::{AnyPeer, Listener, ListenerCounts, PeerPolicy};
pub use message::{CloseCode, LinkMessage, MessageError, LINK_VERSION, MAX_PAYLOAD};

/// Whole handshake, TCP connect included, must finish within this.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Send a ping after this long without sending anything.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// A peer we have heard nothing from for this long is dead. Must exceed the
/// keepalive interval plus a round trip: we ping, the peer must pong.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Rekey a direction after this many ciphertext bytes...
pub const DEFAULT_REKEY_AFTER_BYTES: u64 = 1 << 30;
/// ...or after this long, whichever comes first.
pub const DEFAULT_REKEY_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Payloads queued for one link before `try_send` reports `Full`. With
/// [`MAX_PAYLOAD`] this bounds a link's queued bytes at about 1.1 MiB.
pub const DEFAULT_OUTBOX_CAPACITY: usize = 32;
/// Events one link may have waiting in the node's queue; with that many
/// waiting it stops reading its socket until the node handles some.
pub const DEFAULT_MAX_QUEUED_EVENTS: usize = 128;
/// Bytes all links spawned from one config may hold in their outboxes
/// together: about 3,000 block frames.
pub const DEFAULT_OUTBOX_BUDGET_BYTES: u64 = 96 * 1024 * 1024;
/// Handshakes a listener runs at once; more callers wait in the TCP backlog.
pub const DEFAULT_MAX_HANDSHAKES: usize = 32;
/// Handshakes one source address may have in progress at once: one host
/// cannot hold every slot. A further caller from it is hung up on at once.
/// Callers on this machine (127.0.0.1, ::1) share only the global cap.
pub const DEFAULT_MAX_HANDSHAKES_PER_IP: usize = 4;
/// An inbound caller must send its first handshake message within this, or
/// it is hung up on: an idle connection cannot hold a slot for the whole
/// handshake deadline.
pub const DEFAULT_FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(3);
/// Finished inbound links waiting for [`Listener::accept`].
pub const DEFAULT_ACCEPT_QUEUE: usize = 16;
/// Sustained frames per second a peer may send before it counts as flooding.
/// A block frame is 32.5 KiB, so this is ~330 MB/s of blocks: far above what a
/// link needs, far below what a flood of tiny frames costs us.
pub const DEFAULT_MAX_FRAMES_PER_SEC: u32 = 10_000;
/// Frames a peer may send in a burst above the sustained rate.
pub const DEFAULT_FRAME_BURST: u32 = 2_000;
/// Time given to flush a goodbye frame when a link closes.
pub const DEFAULT_CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long a closing link waits for room in the driver's queue to report
/// `Closed` (the only event that is never shed).
pub const DEFAULT_CLOSED_EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Link tunables. `Default` is what a node should use; tests shrink timeouts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LinkConfig {
    pub handshake_timeout: Duration,
    pub keepalive_interval: Duration,
    pub idle_timeout: Duration,
    pub rekey_after_bytes: u64,
    pub rekey_interval: Duration,
    pub outbox_capacity: usize,
    /// Shared by every link spawned from this config (and its clones).
    pub outbox_budget: std::sync::Arc<OutboxBudget>,
    /// The operator's limits, shared by every link spawned from this config.
    pub bandwidth: std::sync::Arc<bandwidth::Bandwidth>,
    pub max_queued_events: usize,
    pub max_handshakes: usize,
    pub max_handshakes_per_ip: usize,
    pub first_message_timeout: Duration,
    pub accept_queue: usize,
    pub max_frames_per_sec: u32,
    pub frame_burst: u32,
    pub close_grace: Duration,
    pub closed_event_timeout: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            rekey_after_bytes: DEFAULT_REKEY_AFTER_BYTES,
            rekey_interval: DEFAULT_REKEY_INTERVAL,
            outbox_capacity: DEFAULT_OUTBOX_CAPACITY,
            outbox_budget: OutboxBudget::new(DEFAULT_OUTBOX_BUDGET_BYTES),
            bandwidth: bandwidth::Bandwidth::unlimited(),
            max_queued_events: DEFAULT_MAX_QUEUED_EVENTS,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            max_handshakes_per_ip: DEFAULT_MAX_HANDSHAKES_PER_IP,
            first_message_timeout: DEFAULT_FIRST_MESSAGE_TIMEOUT,
            accept_queue: DEFAULT_ACCEPT_QUEUE,
            max_frames_per_sec: DEFAULT_MAX_FRAMES_PER_SEC,
            frame_burst: DEFAULT_FRAME_BURST,
            close_grace: DEFAULT_CLOSE_GRACE,
            closed_event_timeout: DEFAULT_CLOSED_EVENT_TIMEOUT,
        }
    }
}
