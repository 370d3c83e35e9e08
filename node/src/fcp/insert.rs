//! The insert of a `Persistence=forever` upload: the client layer's
//! splitfile insert (encode a batch while the one before goes out, an
//! adaptive window of block inserts, the root block last, then its
//! copies), with each confirmed block noted in the request's
//! [`InsertLog`], and the blocks it already lists skipped, so an upload
//! started again after a restart resumes where it was.
//!
//! Skipping is by (file, block index, routing key): CHK encoding is
//! deterministic, so the same content yields the same blocks in the same
//! order, and a block is skipped only if the very block (same key) was
//! confirmed. A listed block that now encodes to another key means the
//! content changed since: the insert fails, before the root (the only
//! block that names the whole) is inserted, so no mix is ever published.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use tokio::task::JoinSet;
use warren_crypto::splitfile::SplitfileEncoder;
use warren_crypto::{ChkBlock, ChkUri};

use super::inserted::{InsertLog, Place, Seen};
use crate::client::{
    insert_with_retry, joined_encode, spawn_encode, ClientError, ProgressSnapshot, ENCODE_BATCH,
};
use crate::driver::{NodeHandle, RequestError};
use crate::flow::{Window, INSERT_INITIAL};

/// The blocks of one logged insert, counted for `SimpleProgress`; blocks
/// skipped because they were confirmed before count as succeeded.
#[derive(Debug, Default)]
pub(super) struct Counts {
    succeeded: AtomicU64,
    total: AtomicU64,
    finalized: AtomicBool,
    /// Blocks skipped (confirmed before a restart).
    skipped: AtomicU64,
}

impl Counts {
    pub(super) fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: 0,
            total: self.total.load(Ordering::Relaxed),
            finalized: self.finalized.load(Ordering::Relaxed),
        }
    }

    /// Blocks this insert did not send because they were in already.
    pub(super) fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

/// What a block insert task hands back: where the block was, its key, how
/// it went.
type Done = (Place, [u8; 32], Result<(), RequestError>);

/// Block inserts in flight, noted in the log as they are confirmed.
struct LoggedWindow<'a> {
    node: NodeHandle,
    window: Arc<Window>,
    inflight: JoinSet<Done>,
    counts: &'a Counts,
    log: &'a mut InsertLog,
    file: u32,
    /// The next block's index in this file's encoding.
    next: u32,
}

impl LoggedWindow<'_> {
    /// Inserts `blocks` (those not in already); `count` adds them to the
    /// total (the root's batch is counted by its caller).
    async fn insert_all(&mut self, blocks: Vec<ChkBlock>, count: bool) -> Result<(), ClientError> {
        if count {
            self.counts
                .total
                .fetch_add(blocks.len() as u64, Ordering::Relaxed);
        }
        for block in blocks {
            let place = (self.file, self.next);
            self.next = self.next.saturating_add(1);
            let key = *block.routing_key().as_bytes();
            match self.log.seen(place, &key) {
                Seen::Inserted => {
                    self.counts.succeeded.fetch_add(1, Ordering::Relaxed);
                    self.counts.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Seen::Changed => {
                    return Err(ClientError::Input(format!(
                        "the content changed since this insert started (block {} of file {} \
                         encodes differently now); nothing was published: insert it again",
                        place.1, place.0
                    )));
                }
                Seen::New => {}
            }
            let slot = self.window.acquire().await;
            while let Some(joined) = self.inflight.try_join_next() {
                self.joined(joined)?;
            }
            let node = self.node.clone();
            self.inflight.spawn(async move {
                let result = insert_with_retry(&node, block, slot).await;
                (place, key, result)
            });
        }
        Ok(())
    }

    fn joined(&mut self, joined: Result<Done, tokio::task::JoinError>) -> Result<(), ClientError> {
        let (place, key, result) = joined.map_err(|_| ClientError::Stopped)?;
        result?;
        self.counts.succeeded.fetch_add(1, Ordering::Relaxed);
        self.log.confirmed(place, key);
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), ClientError> {
        while let Some(joined) = self.inflight.join_next().await {
            self.joined(joined)?;
        }
        self.log.flush();
        Ok(())
    }
}

/// Encodes `chunks` and inserts its blocks, skipping those `log` lists as
/// confirmed for file number `file` of the request, noting the others
/// there as they are confirmed. Returns the content's key.
pub(super) async fn insert_logged<S, E>(
    node: &NodeHandle,
    chunks: S,
    content_type: Option<String>,
    counts: &Counts,
    log: &mut InsertLog,
    file: u32,
) -> Result<ChkUri, ClientError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let mut chunks = std::pin::pin!(chunks);
    let mut encoder = Some(SplitfileEncoder::new(content_type));
    let mut window = LoggedWindow {
        window: Window::for_insert(node.transfers(), INSERT_INITIAL),
        node: node.clone(),
        inflight: JoinSet::new(),
        counts,
        log,
        file,
        next: 0,
    };
    let mut batch = Vec::with_capacity(ENCODE_BATCH);
    // One batch encodes on a blocking thread while the blocks of the batch
    // before it go out.
    let mut encoding = None;
    let mut input_done = false;
    while !input_done {
        match chunks.next().await {
            Some(chunk) => {
                batch.extend_from_slice(&chunk.map_err(|e| ClientError::Input(e.to_string()))?);
            }
            None => input_done = true,
        }
        if batch.len() < ENCODE_BATCH && !input_done {
            continue;
        }
        let previous = match encoding.take() {
            Some(handle) => {
                let (back, blocks) = joined_encode(handle).await?;
                encoder = Some(back);
                blocks
            }
            None => Vec::new(),
        };
        let next = encoder.take().ok_or(ClientError::Stopped)?;
        encoding = Some(spawn_encode(next, std::mem::take(&mut batch)));
        window.insert_all(previous, true).await?;
    }
    if let Some(handle) = encoding.take() {
        let (back, blocks) = joined_encode(handle).await?;
        encoder = Some(back);
        window.insert_all(blocks, true).await?;
    }
    let encoder = encoder.ok_or(ClientError::Stopped)?;
    let encoded = tokio::task::spawn_blocking(move || encoder.finish())
        .await
        .map_err(|_| ClientError::Stopped)??;
    counts
        .total
        .fetch_add(encoded.blocks.len() as u64, Ordering::Relaxed);
    counts.finalized.store(true, Ordering::Relaxed);
    // Everything under the root is confirmed before the root goes (the
    // codec puts it last), so a root in the network, or in the log, always
    // names a whole tree; then its copies.
    let mut blocks = encoded.blocks;
    let root = blocks.pop();
    let names_a_tree = !blocks.is_empty();
    window.insert_all(blocks, false).await?;
    window.finish().await?;
    if let Some(root) = root {
        window.insert_all(vec![root.clone()], false).await?;
        window.finish().await?;
        crate::roots::insert_copies(node, &root, &encoded.uri.key, names_a_tree).await?;
    }
    Ok(encoded.uri)
}
