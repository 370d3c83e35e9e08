//! Accepting links: the mini-redis server shape.
//!
//! Each accepted connection needs a handshake slot: a semaphore permit held
//! until its handshake ends, so at most `max_handshakes` run at once. One
//! source address may hold at most `max_handshakes_per_ip` of them (a further
//! caller from it is hung up on at once), so one host cannot take them all;
//! when every slot is busy the accept loop waits and callers queue in the TCP
//! backlog. A caller must send its first message within
//! `first_message_timeout`, and finish within `handshake_timeout`. A failed
//! handshake is logged and forgotten; nothing a caller sends ends the accept
//! loop. Finished links wait in a bounded queue for [`Listener::accept`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, info, warn};
use warren_crypto::{NodeIdentity, NodeRef};

use super::actor::Link;
use super::handshake::{respond, LinkError};
use super::LinkConfig;

/// First pause after a failed `accept` (e.g. out of file descriptors)...
const ACCEPT_BACKOFF_INITIAL: Duration = Duration::from_millis(50);
/// ...doubling up to this.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Which authenticated peers a listener accepts. Darknet: known keys only;
/// opennet: [`AnyPeer`]. Closures `Fn(&NodeRef) -> bool` qualify.
pub trait PeerPolicy: Send + Sync + 'static {
    /// `peer.identity` is authenticated by the handshake; the rest is claimed.
    fn accept_peer(&self, peer: &NodeRef) -> bool;
}

impl<F: Fn(&NodeRef) -> bool + Send + Sync + 'static> PeerPolicy for F {
    fn accept_peer(&self, peer: &NodeRef) -> bool {
        self(peer)
    }
}

/// Opennet policy: every authenticated peer is welcome.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyPeer;

impl PeerPolicy for AnyPeer {
    fn accept_peer(&self, _peer: &NodeRef) -> bool {
        true
    }
}

/// Inbound connections since the listener started, by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ListenerCounts {
    /// Handshakes completed (then handed to the node, or counted in `node_busy`).
    pub accepted: u64,
    /// Hung up at once: the address already had its share of handshakes.
    pub handshakes_per_address: u64,
    /// The caller did not finish its handshake in time.
    pub handshake_timeout: u64,
    /// The handshake failed (bad bytes, wrong key, wrong version...).
    pub handshake_failed: u64,
    /// Authenticated, but the listener's policy refused the peer.
    pub not_accepted: u64,
    /// The node did not take the finished link in time.
    pub node_busy: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    handshakes_per_address: AtomicU64,
    handshake_timeout: AtomicU64,
    handshake_failed: AtomicU64,
    not_accepted: AtomicU64,
    node_busy: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ListenerCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ListenerCounts {
            accepted: get(&self.accepted),
            handshakes_per_address: get(&self.handshakes_per_address),
            handshake_timeout: get(&self.handshake_timeout),
            handshake_failed: get(&self.handshake_failed),
            not_accepted: get(&self.not_accepted),
            node_busy: get(&self.node_busy),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A bound listener running its accept loop. Dropping it stops the loop and
/// every handshake in progress.
#[derive(Debug)]
pub struct Listener {
    local: NodeRef,
    /// What the accept loop hands to callers (shared with it).
    handed_out: Arc<std::sync::RwLock<NodeRef>>,
    bound: SocketAddr,
    incoming: mpsc::Receiver<Link>,
    cancel: CancellationToken,
    counters: Arc<Counters>,
    _task: AbortOnDropHandle<()>,
}

struct Shared {
    identity: Arc<NodeIdentity>,
    /// Handed to callers; changes when the node learns its address.
    local: Arc<std::sync::RwLock<NodeRef>>,
    config: LinkConfig,
    policy: Arc<dyn PeerPolicy>,
    links: mpsc::Sender<Link>,
    counters: Arc<Counters>,
}

impl Listener {
    /// Bind `addr` and start accepting. If `local.address` has port 0 it is
    /// replaced by the bound address, so tests can bind `127.0.0.1:0`.
    pub async fn bind(
        addr: SocketAddr,
        identity: Arc<NodeIdentity>,
        mut local: NodeRef,
        config: LinkConfig,
        policy: Arc<dyn PeerPolicy>,
    ) -> std::io::Result<Listener> {
        let socket = TcpListener::bind(addr).await?;
        let bound = socket.local_addr()?;
        if local.address.port() == 0 {
            local.address = bound;
        }
        let (links, incoming) = mpsc::channel(config.accept_queue.max(1));
        let cancel = CancellationToken::new();
        let permits = Arc::new(Semaphore::new(config.max_handshakes.max(1)));
        let counters = Arc::new(Counters::default());
        let handed_out = Arc::new(std::sync::RwLock::new(local.clone()));
        let shared = Arc::new(Shared {
            identity,
            local: Arc::clone(&handed_out),
            config,
            policy,
            links,
            counters: counters.clone(),
        });
        let task = tokio::spawn(accept_loop(socket, shared, permits, cancel.clone()));
        Ok(Listener {
            local,
            handed_out,
            bound,
            incoming,
            cancel,
            counters,
            _task: AbortOnDropHandle::new(task),
        })
    }

    /// The noderef this listener hands to callers.
    pub fn noderef(&self) -> &NodeRef {
        &self.local
    }

    /// Hands `local` to callers from now on (the node learnt its address).
    pub fn set_noderef(&mut self, local: NodeRef) {
        *self
            .handed_out
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = local.clone();
        self.local = local;
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local.address
    }

    /// The address the socket is bound to (a configured port 0 resolved).
    pub fn bound_addr(&self) -> SocketAddr {
        self.bound
    }

    /// The next inbound link with its handshake done; `None` once closed.
    /// Cancel-safe.
    pub async fn accept(&mut self) -> Option<Link> {
        self.incoming.recv().await
    }

    /// How inbound connections have ended so far.
    pub fn counts(&self) -> ListenerCounts {
        self.counters.snapshot()
    }

    /// Stop accepting; links already handed out are unaffected.
    pub fn close(&self) {
        self.cancel.cancel();
    }
}

/// Handshakes in progress per source address; entries exist only while one
/// is (so at most `max_handshakes` of them).
type PerAddress = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One handshake's claim on its source address's share; released on drop.
struct AddressShare {
    ip: IpAddr,
    table: PerAddress,
}

impl AddressShare {
    /// Claims a share for `ip`, or `None` if it already has `limit`.
    fn claim(table: &PerAddress, ip: IpAddr, limit: usize) -> Option<AddressShare> {
        let mut counts = table.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(AddressShare {
            ip,
            table: table.clone(),
        })
    }
}

impl Drop for AddressShare {
    fn drop(&mut self) {
        let mut counts = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// 127.0.0.1 or ::1: a caller on this machine. (Other loopback addresses,
/// 127.0.0.2 and up, count as hosts of their own, which lets tests play one.)
fn is_this_host(ip: IpAddr) -> bool {
    ip == IpAddr::from([127, 0, 0, 1]) || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
}

async fn accept_loop(
    socket: TcpListener,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
) {
    let mut handshakes = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_INITIAL;
    let per_address = PerAddress::default();
    let per_ip_limit = shared.config.max_handshakes_per_ip.max(1);
    loop {
        while handshakes.try_join_next().is_some() {}
        let (stream, from) = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            accepted = socket.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    warn!("accepting a connection failed: {err}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            },
        };
        backoff = ACCEPT_BACKOFF_INITIAL;
        // This machine itself (a local testnet, local tools) is not one host
        // among strangers: it shares only the global cap.
        let limit = if is_this_host(from.ip()) {
            usize::MAX
        } else {
            per_ip_limit
        };
        let Some(share) = AddressShare::claim(&per_address, from.ip(), limit) else {
            bump(&shared.counters.handshakes_per_address);
            debug!(%from, "hung up: {per_ip_limit} handshakes from this address in progress");
            continue;
        };
        let permit: OwnedSemaphorePermit = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let shared = shared.clone();
        handshakes.spawn(async move {
            let _slot = (permit, share);
            handshake_one(stream, from, &shared).await;
        });
    }
}

async fn handshake_one(stream: TcpStream, from: SocketAddr, shared: &Shared) {
    let deadline = shared.config.handshake_timeout;
    let local = shared
        .local
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let attempt = respond(
        stream,
        from,
        &shared.identity,
        &local,
        &shared.config,
        shared.policy.as_ref(),
    );
    let link = match tokio::time::timeout(deadline, attempt).await {
        Ok(Ok(link)) => link,
        Ok(Err(err @ LinkError::NotAccepted(_))) => {
            bump(&shared.counters.not_accepted);
            info!(%from, "refused inbound link: {err}");
            return;
        }
        Ok(Err(err)) => {
            bump(&shared.counters.handshake_failed);
            info!(%from, "inbound handshake failed: {err}");
            return;
        }
        Err(_) => {
            bump(&shared.counters.handshake_timeout);
            info!(%from, "inbound handshake failed: {}", LinkError::Timeout(deadline));
            return;
        }
    };
    // This task is not an event loop: waiting here (bounded) only holds a
    // handshake permit, which slows new callers while the node is busy.
    let peer = link.peer().identity;
    bump(&shared.counters.accepted);
    if shared.links.send_timeout(link, deadline).await.is_err() {
        bump(&shared.counters.node_busy);
        info!(%from, ?peer, "dropped inbound link: the node did not accept it in time");
    }
}
