//! The store writer: block writes leave the routing event loop for a thread
//! of their own, so a slow disk (a 32 KiB `pwrite`, sled's index, a
//! `statvfs`) never stalls routing for every peer.
//!
//! The loop hands each write over with `try_send` into a bounded queue; when
//! the disk is that far behind, the write is shed (counted, logged at debug):
//! a cached block is only a copy, and the network holds other copies of a
//! stored one. Reads stay on the loop: they go through the OS page cache,
//! and see the writes still queued ([`StoreWriter::pending`]), so a block a
//! node has answered an insert for is found by the very next request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use warren_crypto::{ChkBlock, RoutingKey, SskBlock};
use warren_store::{Area, BlockStore};

/// Block writes waiting for the disk at most (~8 MiB of blocks).
pub const STORE_WRITE_QUEUE: usize = 256;

/// One queued write.
enum Write {
    Chk(Area, ChkBlock),
    Ssk(SskBlock),
}

impl Write {
    fn key(&self) -> RoutingKey {
        match self {
            Write::Chk(_, block) => block.routing_key(),
            Write::Ssk(block) => block.routing_key(),
        }
    }
}

/// Blocks queued and not yet written, by routing key (at most
/// [`STORE_WRITE_QUEUE`] of them): what the store will hold in a moment.
#[derive(Debug, Default)]
pub(super) struct Pending {
    chk: HashMap<RoutingKey, ChkBlock>,
    ssk: HashMap<RoutingKey, SskBlock>,
}

impl Pending {
    pub(super) fn get(&self, key: &RoutingKey) -> Option<ChkBlock> {
        self.chk.get(key).cloned()
    }

    pub(super) fn get_ssk(&self, key: &RoutingKey) -> Option<SskBlock> {
        self.ssk.get(key).cloned()
    }
}

/// The event loop's end of the writer thread.
#[derive(Debug)]
pub(super) struct StoreWriter {
    queue: Option<SyncSender<Write>>,
    thread: Option<JoinHandle<()>>,
    shed: Arc<AtomicU64>,
    pending: Arc<Mutex<Pending>>,
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StoreWriter {
    pub(super) fn start(store: Arc<dyn BlockStore>) -> std::io::Result<StoreWriter> {
        let (queue, writes) = sync_channel::<Write>(STORE_WRITE_QUEUE);
        let pending = Arc::new(Mutex::new(Pending::default()));
        let written = Arc::clone(&pending);
        let thread = std::thread::Builder::new()
            .name("warren-store-writer".into())
            .spawn(move || {
                for write in writes {
                    let key = write.key();
                    let result = match &write {
                        Write::Chk(area, block) => store.put(*area, block),
                        Write::Ssk(block) => store.put_ssk(block),
                    };
                    if let Err(err) = result {
                        tracing::warn!(%err, "cannot write a block to the store");
                    }
                    // In the store now (or lost): reads go there again.
                    let mut pending = lock(&written);
                    if matches!(write, Write::Chk(..)) {
                        pending.chk.remove(&key);
                    } else {
                        pending.ssk.remove(&key);
                    }
                }
            })?;
        Ok(StoreWriter {
            queue: Some(queue),
            thread: Some(thread),
            shed: Arc::default(),
            pending,
        })
    }

    /// Queues a write without waiting; sheds it if the disk is far behind.
    pub(super) fn write(&self, area: Area, block: ChkBlock) {
        self.queue(Write::Chk(area, block));
    }

    /// Queues an SSK block write, like [`StoreWriter::write`].
    pub(super) fn write_ssk(&self, block: SskBlock) {
        self.queue(Write::Ssk(block));
    }

    fn queue(&self, write: Write) {
        let Some(queue) = &self.queue else {
            return;
        };
        // Visible to reads before the thread can have written (and removed) it.
        let key = write.key();
        {
            let mut pending = lock(&self.pending);
            match &write {
                Write::Chk(_, block) => {
                    pending.chk.insert(key, block.clone());
                }
                Write::Ssk(block) => {
                    pending.ssk.entry(key).or_insert_with(|| block.clone());
                }
            }
        }
        match queue.try_send(write) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.forget(key);
                self.shed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("the store is {STORE_WRITE_QUEUE} writes behind; write shed");
            }
            Err(TrySendError::Disconnected(_)) => {
                self.forget(key);
                tracing::warn!("the store writer has stopped; write lost");
            }
        }
    }

    /// A write that was not queued after all.
    fn forget(&self, key: RoutingKey) {
        let mut pending = lock(&self.pending);
        pending.chk.remove(&key);
        pending.ssk.remove(&key);
    }

    /// The writes queued and not yet in the store, for reads.
    pub(super) fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        lock(&self.pending)
    }

    /// Writes shed because the disk was behind, since start.
    pub(super) fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    /// Lets the thread write what is queued, then waits for it (off the
    /// async runtime's worker threads): the final flush must follow the last write.
    pub(super) async fn finish(mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}
