//! The store writer: block writes leave the routing event loop for a thread
//! of their own, so a slow disk (a 32 KiB `pwrite`, sled's index, a
//! `statvfs`) never stalls routing for every peer.
//!
//! The loop hands each write over with `try_send` into a bounded queue; when
//! the disk is that far behind, the write is shed (counted, logged at debug):
//! a cached block is only a copy, and the network holds other copies of a
//! stored one. Reads stay on the loop: they go through the OS page cache.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use warren_crypto::{ChkBlock, SskBlock};
use warren_store::{Area, BlockStore};

/// Block writes waiting for the disk at most (~8 MiB of blocks).
pub const STORE_WRITE_QUEUE: usize = 256;

/// One queued write.
enum Write {
    Chk(Area, ChkBlock),
    Ssk(SskBlock),
}

/// The event loop's end of the writer thread.
#[derive(Debug)]
pub(super) struct StoreWriter {
    queue: Option<SyncSender<Write>>,
    thread: Option<JoinHandle<()>>,
    shed: Arc<AtomicU64>,
}

impl StoreWriter {
    pub(super) fn start(store: Arc<dyn BlockStore>) -> std::io::Result<StoreWriter> {
        let (queue, writes) = sync_channel::<Write>(STORE_WRITE_QUEUE);
        let thread = std::thread::Builder::new()
            .name("warren-store-writer".into())
            .spawn(move || {
                for write in writes {
                    let result = match write {
                        Write::Chk(area, block) => store.put(area, &block),
                        Write::Ssk(block) => store.put_ssk(&block),
                    };
                    if let Err(err) = result {
                        tracing::warn!(%err, "cannot write a block to the store");
                    }
                }
            })?;
        Ok(StoreWriter {
            queue: Some(queue),
            thread: Some(thread),
            shed: Arc::default(),
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
        match queue.try_send(write) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.shed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("the store is {STORE_WRITE_QUEUE} writes behind; write shed");
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::warn!("the store writer has stopped; write lost");
            }
        }
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
