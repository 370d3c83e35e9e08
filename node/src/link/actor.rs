//! A running link: one actor task per peer (iroh's relay `Client` shape).
//!
//! The actor owns the socket and the Noise session. Its `biased` select polls,
//! in order: cancellation, flushing encrypted bytes, reading the socket, the
//! outbox, then timers. Reading never waits for writing, so two peers that
//! both send heavily cannot deadlock on full TCP buffers.
//!
//! Event delivery (house rule 3): `Received` events go to the driver with
//! `try_send`. Each carries an [`EventTicket`], one of the link's
//! `max_queued_events`: with none left the actor stops reading its socket
//! until the driver has handled some (TCP then slows the peer), so one busy
//! or flooding peer holds a bounded share of the driver's queue and cannot
//! push out the others. On `Full` the payload is dropped (shed), counted in
//! [`LinkStats`] and logged at debug; the routing layer treats it as a lost
//! message. On `Closed` the link tears down.
//!
//! Outbound, every payload queued in any outbox of links spawned from one
//! [`LinkConfig`] is charged to that config's [`OutboxBudget`]; past it,
//! `try_send` reports `Full`, so all links together hold a bounded number of
//! bytes whatever their peers do. The one `Closed` event at the
//! end is awaited for at most `closed_event_timeout`: the actor is no longer
//! an event loop then, and the driver never waits on a link, so this cannot
//! deadlock.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, info};
use warren_crypto::{NodePublicKey, NodeRef};

use super::bandwidth::Direction;
use super::budget::FrameBudget;
use super::frame::{FrameCipher, FrameError, LENGTH_PREFIX_LEN};
use super::handshake::FrameReader;
use super::message::{CloseCode, LinkMessage, MAX_PAYLOAD};
use super::LinkConfig;

/// Encrypted bytes waiting for the socket before the actor stops taking
/// payloads from its outbox (and stops answering pings).
pub const WRITE_HIGH_WATER: usize = 256 * 1024;
/// Read buffer for discarding a closing peer's last bytes.
const LINGER_BUF: usize = 16 * 1024;

/// A link whose handshake is done; [`Link::spawn`] starts it.
#[derive(Debug)]
pub struct Link {
    peer: NodeRef,
    reader: FrameReader,
    writer: OwnedWriteHalf,
    cipher: FrameCipher,
    config: LinkConfig,
}

/// Tells one link from another, even two links to the same peer (which two
/// nodes dialling each other at once briefly have).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkId(u64);

impl LinkId {
    fn next() -> LinkId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        LinkId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What a link reports to the node driver.
#[derive(Debug)]
#[non_exhaustive]
pub enum LinkEvent {
    /// The peer sent an application payload.
    Received {
        peer: NodePublicKey,
        link: LinkId,
        payload: Bytes,
        /// Returned to the link when this event is dropped (handled).
        ticket: EventTicket,
    },
    /// The link is gone; sent once, last.
    Closed {
        peer: NodePublicKey,
        link: LinkId,
        reason: CloseReason,
    },
}

/// Why a link closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    #[error("closed by this node")]
    Local,
    #[error("closed by the peer ({0:?})")]
    Remote(CloseCode),
    #[error(transparent)]
    Failed(#[from] RunError),
}

/// Why a running link failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error("reading from the peer failed: {0}")]
    Read(std::io::Error),
    #[error("sending to the peer failed: {0}")]
    Write(std::io::Error),
    #[error("the peer disconnected without saying goodbye")]
    Eof,
    #[error("peer sent a bad frame")]
    Frame(#[from] FrameError),
    #[error("peer sent a second Hello after the handshake")]
    UnexpectedHello,
    #[error("heard nothing from the peer for {0:?}; presumed dead")]
    PeerSilent(Duration),
    #[error("the peer read nothing we sent for {0:?}; presumed stuck")]
    PeerNotReading(Duration),
    #[error("peer sent more than {rate} frames per second (burst {burst}); flooding")]
    Flooding { rate: u32, burst: u32 },
    #[error("the node stopped taking link events")]
    EventsClosed,
}

impl CloseReason {
    /// The goodbye to send the peer, if one makes sense.
    fn goodbye(&self) -> Option<CloseCode> {
        match self {
            CloseReason::Local | CloseReason::Failed(RunError::EventsClosed) => {
                Some(CloseCode::Shutdown)
            }
            CloseReason::Failed(RunError::Frame(_) | RunError::UnexpectedHello) => {
                Some(CloseCode::ProtocolViolation)
            }
            // An oversize length prefix; a cut-short frame at EOF needs no answer.
            CloseReason::Failed(RunError::Read(err))
                if err.kind() == std::io::ErrorKind::InvalidData =>
            {
                Some(CloseCode::ProtocolViolation)
            }
            CloseReason::Failed(RunError::PeerSilent(_) | RunError::PeerNotReading(_)) => {
                Some(CloseCode::Timeout)
            }
            CloseReason::Failed(RunError::Flooding { .. }) => Some(CloseCode::Flooding),
            _ => None,
        }
    }
}

/// Why [`LinkHandle::try_send`] did not queue a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkSendError {
    #[error("the link's outbox is full; try later or shed the message")]
    Full,
    #[error("the link is closed")]
    Closed,
    #[error("payload of {len} bytes is over the link limit of {MAX_PAYLOAD}")]
    TooLarge { len: usize },
}

/// Counters of one link, shared with its handle.
#[derive(Debug, Default)]
pub struct LinkStats {
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    rekeys_sent: AtomicU64,
    rekeys_received: AtomicU64,
    payloads_shed: AtomicU64,
    /// The address the peer says this connection comes from (the first
    /// `Observed` it sent; later ones are ignored).
    observed: std::sync::OnceLock<SocketAddr>,
}

/// A copy of [`LinkStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkStatsSnapshot {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
    pub rekeys_sent: u64,
    pub rekeys_received: u64,
    /// Received payloads dropped because the driver's queue was full.
    pub payloads_shed: u64,
}

impl LinkStats {
    pub fn snapshot(&self) -> LinkStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LinkStatsSnapshot {
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
            frames_sent: get(&self.frames_sent),
            frames_received: get(&self.frames_received),
            rekeys_sent: get(&self.rekeys_sent),
            rekeys_received: get(&self.rekeys_received),
            payloads_shed: get(&self.payloads_shed),
        }
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// One of a link's places in the driver's event queue; dropping it (once
/// the event is handled) lets the link read from its peer again.
#[derive(Debug)]
pub struct EventTicket(#[allow(dead_code)] OwnedSemaphorePermit);

/// Bytes queued in the outboxes of all links that share it, and the most
/// they may hold together.
#[derive(Debug)]
pub struct OutboxBudget {
    queued: AtomicU64,
    limit: u64,
}

impl OutboxBudget {
    pub fn new(limit: u64) -> Arc<OutboxBudget> {
        Arc::new(OutboxBudget {
            queued: AtomicU64::new(0),
            limit,
        })
    }

    /// Bytes queued now.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    fn try_charge(self: &Arc<Self>, len: u64) -> Option<Charged> {
        let mut current = self.queued.load(Ordering::Relaxed);
        loop {
            let next = current.checked_add(len).filter(|&n| n <= self.limit)?;
            match self.queued.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(Charged {
                        budget: self.clone(),
                        len,
                    })
                }
                Err(actual) => current = actual,
            }
        }
    }
}

/// A payload's charge on the budget, released when the payload leaves the
/// outbox (sealed, or dropped with the link).
struct Charged {
    budget: Arc<OutboxBudget>,
    len: u64,
}

impl Drop for Charged {
    fn drop(&mut self) {
        self.budget.queued.fetch_sub(self.len, Ordering::Relaxed);
    }
}

/// A payload waiting in an outbox with its charge.
struct Queued {
    payload: Bytes,
    _charge: Charged,
}

/// The driver's side of a running link. Dropping it aborts the actor at
/// once (no goodbye, no `Closed` event); [`close`](Self::close) or
/// [`shutdown`](Self::shutdown) end it politely.
#[derive(Debug)]
pub struct LinkHandle {
    peer: NodeRef,
    /// The TCP peer address of the connection.
    remote: Option<SocketAddr>,
    id: LinkId,
    outbox: mpsc::Sender<Queued>,
    budget: Arc<OutboxBudget>,
    cancel: CancellationToken,
    stats: Arc<LinkStats>,
    grace: Duration,
    task: AbortOnDropHandle<()>,
}

impl LinkHandle {
    pub fn peer(&self) -> &NodeRef {
        &self.peer
    }

    /// This link's id, as its events carry it.
    pub fn id(&self) -> LinkId {
        self.id
    }

    /// Queue a payload without waiting: for event loops.
    pub fn try_send(&self, payload: Bytes) -> Result<(), LinkSendError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(LinkSendError::TooLarge { len: payload.len() });
        }
        let charge = self
            .budget
            .try_charge(payload.len() as u64)
            .ok_or(LinkSendError::Full)?;
        let queued = Queued {
            payload,
            _charge: charge,
        };
        self.outbox.try_send(queued).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => LinkSendError::Full,
            mpsc::error::TrySendError::Closed(_) => LinkSendError::Closed,
        })
    }

    /// Queue a payload, waiting for room: for clients and benchmarks, never
    /// for the driver's event loop. Cancel-safe (the payload is then dropped).
    pub async fn send(&self, payload: Bytes) -> Result<(), LinkSendError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(LinkSendError::TooLarge { len: payload.len() });
        }
        // Waits for the outbox, not the budget: callers here are not event
        // loops, and the budget's purpose is to bound what those queue.
        let charge = Charged {
            budget: self.budget.clone(),
            len: payload.len() as u64,
        };
        self.budget.queued.fetch_add(charge.len, Ordering::Relaxed);
        let queued = Queued {
            payload,
            _charge: charge,
        };
        self.outbox
            .send(queued)
            .await
            .map_err(|_| LinkSendError::Closed)
    }

    /// Ask the link to say goodbye and close; it then reports `Closed`.
    pub fn close(&self) {
        self.cancel.cancel();
    }

    /// Whether the actor has stopped (or been asked to).
    pub fn is_closed(&self) -> bool {
        self.cancel.is_cancelled() || self.outbox.is_closed() || self.task.is_finished()
    }

    /// Close and wait for the actor to finish, at most twice the close grace
    /// (the goodbye and the `Closed` event); after that it is aborted.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        let _ = tokio::time::timeout(self.grace * 2, &mut self.task).await;
    }

    pub fn stats(&self) -> LinkStatsSnapshot {
        self.stats.snapshot()
    }

    /// The address the connection comes from (the peer's end of the TCP
    /// connection, whatever its noderef says).
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// The address the peer sees this link coming from, once it has said
    /// (a claim by the peer: the driver trusts only what several agree on).
    pub fn observed_address(&self) -> Option<SocketAddr> {
        self.stats.observed.get().copied()
    }
}

impl Link {
    pub(crate) fn new(
        peer: NodeRef,
        reader: FrameReader,
        writer: OwnedWriteHalf,
        cipher: FrameCipher,
        config: LinkConfig,
    ) -> Self {
        Link {
            peer,
            reader,
            writer,
            cipher,
            config,
        }
    }

    /// The peer's noderef as it sent it; its identity is authenticated.
    pub fn peer(&self) -> &NodeRef {
        &self.peer
    }

    /// Start the actor; events go to `events`.
    pub fn spawn(self, events: mpsc::Sender<LinkEvent>) -> LinkHandle {
        let (outbox_tx, outbox) = mpsc::channel(self.config.outbox_capacity.max(1));
        let cancel = CancellationToken::new();
        let stats = Arc::new(LinkStats::default());
        let now = Instant::now();
        let id = LinkId::next();
        let remote = self.writer.peer_addr().ok();
        let actor = Actor {
            peer: self.peer.identity,
            remote,
            id,
            budget: FrameBudget::new(
                self.config.max_frames_per_sec,
                self.config.frame_burst,
                now.into_std(),
            ),
            reader: self.reader,
            writer: self.writer,
            cipher: self.cipher,
            pending: BytesMut::new(),
            outbox,
            events,
            tickets: Arc::new(Semaphore::new(self.config.max_queued_events.max(1))),
            ticket: None,
            cancel: cancel.clone(),
            stats: stats.clone(),
            next_ping: 0,
            config: self.config.clone(),
        };
        LinkHandle {
            peer: self.peer,
            remote,
            id,
            outbox: outbox_tx,
            budget: self.config.outbox_budget.clone(),
            cancel,
            stats,
            grace: self.config.close_grace,
            task: AbortOnDropHandle::new(tokio::spawn(actor.run())),
        }
    }
}

struct Actor {
    peer: NodePublicKey,
    /// The TCP peer address, told to the peer first (`Observed`).
    remote: Option<SocketAddr>,
    id: LinkId,
    reader: FrameReader,
    writer: OwnedWriteHalf,
    cipher: FrameCipher,
    /// Sealed frames not yet written to the socket.
    pending: BytesMut,
    outbox: mpsc::Receiver<Queued>,
    events: mpsc::Sender<LinkEvent>,
    /// This link's places in the driver's queue, and the one held ready for
    /// the next payload: reading waits while it is `None`.
    tickets: Arc<Semaphore>,
    ticket: Option<OwnedSemaphorePermit>,
    cancel: CancellationToken,
    stats: Arc<LinkStats>,
    budget: FrameBudget,
    next_ping: u64,
    config: LinkConfig,
}

/// When each timer of the actor fires next.
struct Deadlines {
    keepalive: Instant,
    idle: Instant,
    rekey: Instant,
    /// While bytes wait for the socket: when a peer that reads nothing is
    /// declared stuck.
    stall: Option<Instant>,
    /// While the node is over a bandwidth limit: when to look again.
    throttle: Option<Instant>,
}

impl Deadlines {
    fn next(&self) -> Instant {
        let next = self.keepalive.min(self.idle).min(self.rekey);
        let next = self.stall.map_or(next, |stall| stall.min(next));
        self.throttle.map_or(next, |throttle| throttle.min(next))
    }
}

impl Actor {
    async fn run(mut self) {
        let reason = match self.run_inner().await {
            Ok(reason) => reason,
            Err(err) => CloseReason::Failed(err),
        };
        match &reason {
            CloseReason::Failed(err) => info!(peer = ?self.peer, "link closed: {err}"),
            other => debug!(peer = ?self.peer, "link closed: {other}"),
        }
        if let Some(code) = reason.goodbye() {
            self.say_goodbye(code, &reason).await;
        }
        self.cancel.cancel();
        let event = LinkEvent::Closed {
            peer: self.peer,
            link: self.id,
            reason,
        };
        if self
            .events
            .send_timeout(event, self.config.closed_event_timeout)
            .await
            .is_err()
        {
            debug!(peer = ?self.peer, "could not report the link's closing to the node");
        }
    }

    /// Within the close grace: send what is pending (on a local close also
    /// what is still queued), then a Close frame; shut our sending side and
    /// read until the peer hangs up too. Reading on ("lingering") keeps the
    /// kernel from answering the peer's in-flight bytes with a reset that
    /// would destroy the Close frame before the peer reads it.
    async fn say_goodbye(&mut self, code: CloseCode, reason: &CloseReason) {
        if matches!(reason, CloseReason::Local) {
            self.outbox.close();
            while let Ok(queued) = self.outbox.try_recv() {
                if self.seal(&LinkMessage::Data(queued.payload)).is_err() {
                    return;
                }
            }
        }
        if self.seal(&LinkMessage::Close(code)).is_err() {
            return;
        }
        let linger = async {
            self.writer.write_all(&self.pending).await?;
            self.writer.shutdown().await?;
            let mut sink = vec![0u8; LINGER_BUF];
            while self.reader.get_mut().read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        };
        let _ = tokio::time::timeout(self.config.close_grace, linger).await;
    }

    async fn run_inner(&mut self) -> Result<CloseReason, RunError> {
        let now = Instant::now();
        let mut at = Deadlines {
            keepalive: now + self.config.keepalive_interval,
            idle: now + self.config.idle_timeout,
            rekey: now + self.config.rekey_interval,
            stall: None,
            throttle: None,
        };
        let timer = tokio::time::sleep_until(at.next());
        tokio::pin!(timer);
        if let Some(remote) = self.remote {
            self.seal(&LinkMessage::Observed(remote))?;
        }
        loop {
            if timer.deadline() != at.next() {
                timer.as_mut().reset(at.next());
            }
            // Over a limit, a direction waits; the timer wakes it when the
            // node-wide bucket has paid its debt.
            let send_wait = self.config.bandwidth.wait(Direction::Out);
            let read_wait = self.config.bandwidth.wait(Direction::In);
            at.throttle = send_wait
                .into_iter()
                .chain(read_wait)
                .min()
                .map(|wait| Instant::now() + wait);
            let room = self.pending.len() < WRITE_HIGH_WATER && send_wait.is_none();
            let may_read = self.ticket.is_some() && read_wait.is_none();
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Ok(CloseReason::Local),
                written = self.writer.write_buf(&mut self.pending), if !self.pending.is_empty() => {
                    if written.map_err(RunError::Write)? == 0 {
                        return Err(RunError::Eof);
                    }
                    at.stall = None;
                }
                ticket = self.tickets.clone().acquire_owned(), if self.ticket.is_none() => {
                    // The semaphore is never closed.
                    self.ticket = ticket.ok();
                    // Reading was paused for the node, not by the peer.
                    at.idle = Instant::now() + self.config.idle_timeout;
                }
                frame = self.reader.next(), if may_read => {
                    let frame = frame.ok_or(RunError::Eof)?.map_err(RunError::Read)?;
                    at.idle = Instant::now() + self.config.idle_timeout;
                    if let Some(reason) = self.on_frame(&frame)? {
                        return Ok(reason);
                    }
                }
                payload = self.outbox.recv(), if room => {
                    // All handles gone: nobody can send or close us any more.
                    let Some(queued) = payload else { return Ok(CloseReason::Local) };
                    self.send_data(queued.payload, &mut at)?;
                    // Take what else is queued, up to the high water mark:
                    // one write then carries several frames.
                    while self.pending.len() < WRITE_HIGH_WATER
                        && self.config.bandwidth.wait(Direction::Out).is_none()
                    {
                        let Ok(queued) = self.outbox.try_recv() else { break };
                        self.send_data(queued.payload, &mut at)?;
                    }
                    at.keepalive = Instant::now() + self.config.keepalive_interval;
                }
                () = &mut timer => self.on_timer(&mut at)?,
            }
            if self.cipher.sent_since_rekey() >= self.config.rekey_after_bytes {
                self.rekey(&mut at)?;
            }
            if at.stall.is_none() && !self.pending.is_empty() {
                at.stall = Some(Instant::now() + self.config.idle_timeout);
            }
        }
    }

    fn on_timer(&mut self, at: &mut Deadlines) -> Result<(), RunError> {
        let now = Instant::now();
        if self.ticket.is_none() || self.config.bandwidth.wait(Direction::In).is_some() {
            // Not reading (the node is behind, or over its inbound limit):
            // the peer cannot be heard.
            at.idle = now + self.config.idle_timeout;
        }
        if now >= at.idle {
            return Err(RunError::PeerSilent(self.config.idle_timeout));
        }
        if at.stall.is_some_and(|stall| now >= stall) {
            return Err(RunError::PeerNotReading(self.config.idle_timeout));
        }
        if now >= at.keepalive {
            self.next_ping = self.next_ping.wrapping_add(1);
            self.seal(&LinkMessage::Ping(self.next_ping))?;
            at.keepalive = now + self.config.keepalive_interval;
        }
        if now >= at.rekey {
            self.rekey(at)?;
        }
        Ok(())
    }

    /// Seal a payload; rekey as soon as the byte limit is reached.
    fn send_data(&mut self, payload: Bytes, at: &mut Deadlines) -> Result<(), RunError> {
        self.seal(&LinkMessage::Data(payload))?;
        if self.cipher.sent_since_rekey() >= self.config.rekey_after_bytes {
            self.rekey(at)?;
        }
        Ok(())
    }

    fn rekey(&mut self, at: &mut Deadlines) -> Result<(), RunError> {
        self.seal(&LinkMessage::Rekey)?;
        bump(&self.stats.rekeys_sent, 1);
        at.rekey = Instant::now() + self.config.rekey_interval;
        Ok(())
    }

    fn seal(&mut self, message: &LinkMessage) -> Result<(), RunError> {
        let len = self.cipher.seal(message, &mut self.pending)?;
        self.config.bandwidth.charge(Direction::Out, len);
        bump(&self.stats.frames_sent, 1);
        bump(&self.stats.bytes_sent, len as u64);
        Ok(())
    }

    /// Handle one received frame; `Some` ends the link.
    fn on_frame(&mut self, frame: &[u8]) -> Result<Option<CloseReason>, RunError> {
        if !self.budget.take(std::time::Instant::now()) {
            return Err(RunError::Flooding {
                rate: self.config.max_frames_per_sec,
                burst: self.config.frame_burst,
            });
        }
        self.config
            .bandwidth
            .charge(Direction::In, frame.len() + LENGTH_PREFIX_LEN);
        let message = self.cipher.open(frame)?;
        bump(&self.stats.frames_received, 1);
        bump(
            &self.stats.bytes_received,
            (frame.len() + LENGTH_PREFIX_LEN) as u64,
        );
        match message {
            LinkMessage::Data(payload) => self.deliver(payload)?,
            // A peer that pings while not reading our replies gets no more:
            // pending bytes stay bounded. Any frame proves we are alive.
            LinkMessage::Ping(n) if self.pending.len() < WRITE_HIGH_WATER => {
                self.seal(&LinkMessage::Pong(n))?;
            }
            LinkMessage::Ping(_) | LinkMessage::Pong(_) => {}
            LinkMessage::Rekey => bump(&self.stats.rekeys_received, 1),
            LinkMessage::Close(code) => return Ok(Some(CloseReason::Remote(code))),
            LinkMessage::Hello(_) => return Err(RunError::UnexpectedHello),
            LinkMessage::Observed(addr) => {
                let _ = self.stats.observed.set(addr);
            }
        }
        Ok(None)
    }

    fn deliver(&mut self, payload: Bytes) -> Result<(), RunError> {
        // Reading is enabled only while a ticket is ready.
        let Some(ticket) = self.ticket.take() else {
            return Err(RunError::EventsClosed);
        };
        let event = LinkEvent::Received {
            peer: self.peer,
            link: self.id,
            payload,
            ticket: EventTicket(ticket),
        };
        match self.events.try_send(event) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                bump(&self.stats.payloads_shed, 1);
                debug!(peer = ?self.peer, "node's event queue full; payload shed");
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(RunError::EventsClosed),
        }
    }
}
