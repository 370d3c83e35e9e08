//! A delaying TCP relay for the wide-area test bed (`warren testnet
//! --link-delay-ms`): it listens in front of one node's P2P port and forwards
//! every connection to it, holding each chunk of bytes, in each direction,
//! until `delay` after it arrived (optionally also pacing each direction to a
//! byte rate). The node advertises the relay's address, so every peer link
//! that ends at that node crosses exactly one relay; a link's round trip is
//! then twice the delay.
//!
//! The kernel here has no `netem`, so the delay is made in process. Chunks
//! are released in arrival order (each is due at its arrival plus the same
//! delay, so due times never go backwards), and what one direction holds is
//! bounded by [`QUEUE_BYTES`]: when it is full the relay stops reading, and
//! TCP's own flow control pushes back on the sender, as a full router queue
//! would. Loss is not emulated: on a TCP link a lost segment shows up only as
//! a retransmission delay, which the delay already models well enough here.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Bytes one direction of one relayed connection holds at most: enough for
/// the bandwidth-delay product of 200 MB/s at 40 ms one way, so the relay is
/// not what limits a loopback testnet's throughput.
pub const QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// Largest chunk read at once.
const CHUNK: usize = 64 * 1024;

/// What every link of a testnet looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkShape {
    /// Added to each direction: a link's round trip is twice this.
    pub delay: Duration,
    /// Bytes per second each direction carries at most (`None`: unlimited).
    pub rate: Option<u64>,
}

/// One relay: listens on loopback, forwards to whatever the target is when a
/// connection arrives. Dropping it stops it and every connection through it.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Binds a loopback port. Connections that arrive before a target is set
    /// are closed (the node behind it is not listening yet).
    pub async fn bind(shape: LinkShape) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let target = Arc::new(Mutex::new(None));
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&target), shape));
        Ok(Relay { addr, target, task })
    }

    /// The address peers dial (what the node behind it advertises).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where new connections go (a restarted node listens on a new port).
    pub fn set_target(&self, target: SocketAddr) {
        if let Ok(mut slot) = self.target.lock() {
            *slot = Some(target);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The accept loop owns every connection's task: aborting it ends them all.
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: Arc<Mutex<Option<SocketAddr>>>,
    shape: LinkShape,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else { continue };
                let to = target.lock().ok().and_then(|t| *t);
                if let Some(to) = to {
                    connections.spawn(relay_connection(inbound, to, shape));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn relay_connection(inbound: TcpStream, to: SocketAddr, shape: LinkShape) {
    let Ok(outbound) = TcpStream::connect(to).await else {
        return;
    };
    // The delay is the relay's; Nagle must not add its own.
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    // Each direction ends on its own (a half-close passes through, as on a
    // real link); a reset or a dead node ends both, each on its next read.
    tokio::join!(
        pipe(in_read, out_write, shape),
        pipe(out_read, in_write, shape)
    );
}

/// One direction: a reader that stamps each chunk with its due time and a
/// writer that sends it then, both bounded by a byte budget.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, shape: LinkShape) {
    let budget = Arc::new(Semaphore::new(QUEUE_BYTES));
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>, OwnedSemaphorePermit)>();
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let Ok(n) = from.read(&mut buf).await else {
                return;
            };
            if n == 0 {
                return;
            }
            let due = Instant::now() + shape.delay;
            // n <= CHUNK, far below u32::MAX.
            let Ok(permit) = Arc::clone(&budget).acquire_many_owned(n as u32).await else {
                return;
            };
            if tx.send((due, buf[..n].to_vec(), permit)).is_err() {
                return;
            }
        }
    };
    let writer = async move {
        // When the paced link is next free to start sending.
        let mut free_at = Instant::now();
        while let Some((due, chunk, permit)) = rx.recv().await {
            let start = due.max(free_at);
            tokio::time::sleep_until(start).await;
            if let Some(rate) = shape.rate.filter(|&r| r > 0) {
                let busy = Duration::from_secs_f64(chunk.len() as f64 / rate as f64);
                free_at = start.max(Instant::now()) + busy;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
            drop(permit);
        }
        let _ = to.shutdown().await;
    };
    // The writer drains what the reader queued before a clean end (EOF).
    let writer = tokio::spawn(writer);
    reader.await;
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback: returns its address.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.into_split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_round_trip_through_the_relay_takes_at_least_twice_the_delay() {
        let delay = Duration::from_millis(30);
        let relay = Relay::bind(LinkShape { delay, rate: None }).await.unwrap();
        relay.set_target(echo_server().await);
        let mut stream = TcpStream::connect(relay.addr()).await.unwrap();
        stream.set_nodelay(true).unwrap();
        for round in 0..3u8 {
            let started = std::time::Instant::now();
            stream.write_all(&[round; 100]).await.unwrap();
            let mut back = [0u8; 100];
            stream.read_exact(&mut back).await.unwrap();
            // A lower bound, not a speed: both directions cross the relay.
            assert!(started.elapsed() >= 2 * delay, "round {round}");
            assert_eq!(back, [round; 100]);
        }
    }

    #[tokio::test]
    async fn bytes_arrive_whole_and_in_order_beyond_the_queue_bound() {
        let relay = Relay::bind(LinkShape {
            delay: Duration::from_millis(5),
            rate: None,
        })
        .await
        .unwrap();
        relay.set_target(echo_server().await);
        let stream = TcpStream::connect(relay.addr()).await.unwrap();
        let (mut r, mut w) = stream.into_split();
        // More than two queues' worth, so the bound is exercised both ways.
        let sent: Vec<u8> = (0..3 * QUEUE_BYTES).map(|i| (i % 251) as u8).collect();
        let expected = sent.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&sent).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes reordered or changed");
    }

    #[tokio::test]
    async fn a_paced_link_takes_at_least_its_bytes_over_its_rate() {
        let rate = 1024 * 1024;
        let relay = Relay::bind(LinkShape {
            delay: Duration::ZERO,
            rate: Some(rate),
        })
        .await
        .unwrap();
        relay.set_target(echo_server().await);
        let stream = TcpStream::connect(relay.addr()).await.unwrap();
        let (mut r, mut w) = stream.into_split();
        let len = 256 * 1024;
        let started = std::time::Instant::now();
        let writer = tokio::spawn(async move {
            w.write_all(&vec![1u8; len]).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got.len(), len);
        // Each direction is paced separately; the first chunk goes out at once.
        let floor = Duration::from_secs_f64((len - CHUNK) as f64 / rate as f64);
        assert!(started.elapsed() >= floor);
    }

    #[tokio::test]
    async fn a_connection_before_the_target_is_known_is_closed() {
        let relay = Relay::bind(LinkShape::default()).await.unwrap();
        let mut stream = TcpStream::connect(relay.addr()).await.unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(stream.read(&mut buf).await.unwrap_or(0), 0);
    }
}
