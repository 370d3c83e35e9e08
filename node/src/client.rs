//! Whole files over the network: splitfile inserts and windowed parallel fetches.
//!
//! The content codecs are sans-IO (`warren_crypto::splitfile`); this module
//! drives them against a running node. Inserts encode a segment at a time and
//! keep a window of block inserts in flight; fetches keep a window of block
//! requests in flight so throughput is not one block per round trip, and hand
//! content out in order, a segment at a time, so memory stays bounded by a few
//! segments whatever the file size. Both windows adapt to the path's round
//! trip and to overload, within node-wide bounds ([`crate::flow`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use warren_crypto::metadata::{Segment, SplitfileManifest, INDEX_FILE, MAX_PATH_LEN};
use warren_crypto::splitfile::{
    ContentFetcher, EncodeError, FetchError as ContentError, Part, SiteBuilder,
    SiteEntry as CodecSiteEntry, SiteError, SplitfileEncoder, FETCH_WINDOW_SEGMENTS,
    MAX_METADATA_DEPTH, MAX_METADATA_HOPS,
};
use warren_crypto::{
    ChkBlock, ChkKey, ChkUri, ContentKind, Extra, Metadata, RoutingKey, UriError, BLOCK_PAYLOAD,
};

use crate::driver::{NodeHandle, RequestError};
use crate::flow::{Slot, Window, FETCH_INITIAL, INSERT_INITIAL};
use crate::spill::BlockSpill;

/// Bytes gathered from the client before handing them to the encoder, so the
/// (CPU-heavy) encoder runs on big batches off the async threads.
pub(crate) const ENCODE_BATCH: usize = 1024 * 1024;
/// Extra tries for a block whose request timed out.
const TIMEOUT_RETRIES: u32 = 1;
/// Extra tries for a block whose request met only overloaded or backed-off
/// peers: the network said "later", not "no". Each waits [`retry_delay`]
/// first, about 12 s in all, so a saturated neighbourhood is given time to
/// drain instead of a fetch failing in a second.
const BUSY_RETRIES: u32 = 6;

/// Whether a block request that failed with `err` after `tries` extra tries
/// is tried again, and after how long: 250 ms doubling to 4 s when the
/// network was busy, at once after a timeout (which took its own time).
fn retry_after(err: &RequestError, tries: u32) -> Option<std::time::Duration> {
    if !err.is_transient() {
        return None;
    }
    if err.is_busy() {
        (tries < BUSY_RETRIES).then(|| std::time::Duration::from_millis(250u64 << tries.min(4)))
    } else {
        (tries < TIMEOUT_RETRIES).then_some(std::time::Duration::ZERO)
    }
}
/// Segments a fetch asks for at once on a near path (see `flow::NEAR_WINDOW`):
/// as many as its window's requests fill, which the codec holds in memory
/// without parking any.
const NEAR_SEGMENTS: usize = 4;
/// Decoded segments queued between the fetch task and the reader.
const OUTPUT_QUEUE: usize = 2;

/// Why a client operation failed, worded for the person who asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("not a valid key")]
    BadKey(#[from] UriError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// A site's directory named without its trailing `/`.
    #[error(
        "not found: `{path}` is a directory of this site; add a trailing `/` for its index.html"
    )]
    SiteDirectory { path: String },
    #[error("the node is overloaded; retry later")]
    Overloaded,
    #[error("{0}")]
    Content(ContentError),
    #[error("cannot encode the content")]
    Encode(#[from] EncodeError),
    #[error("cannot build the site")]
    Site(#[from] SiteError),
    #[error("inserting a block failed: {0}")]
    Insert(RequestError),
    #[error("reading the content to insert failed: {0}")]
    Input(String),
    #[error("the node is shutting down")]
    Stopped,
}

impl From<RequestError> for ClientError {
    fn from(err: RequestError) -> Self {
        match err {
            RequestError::Stopped => ClientError::Stopped,
            RequestError::Busy => ClientError::Overloaded,
            other => ClientError::Insert(other),
        }
    }
}

impl From<ContentError> for ClientError {
    fn from(err: ContentError) -> Self {
        match err {
            ContentError::BlockNotFound { .. }
            | ContentError::SegmentUnrecoverable { .. }
            | ContentError::NotInSite { .. } => ClientError::NotFound(err.to_string()),
            ContentError::SiteDirectory { path } => ClientError::SiteDirectory { path },
            other => ClientError::Content(other),
        }
    }
}

/// The blocks of one insert or fetch, counted as they go (for progress
/// reports such as FCP's `SimpleProgress`).
#[derive(Debug, Default)]
pub struct Progress {
    succeeded: AtomicU64,
    failed: AtomicU64,
    total: AtomicU64,
    finalized: AtomicBool,
}

/// What a [`Progress`] says at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgressSnapshot {
    /// Blocks inserted, or fetched (metadata and check blocks included).
    pub succeeded: u64,
    /// Blocks a fetch could not find (it may do without some).
    pub failed: u64,
    /// Blocks known to be part of it so far: for an insert, those encoded;
    /// for a fetch, what its driver sets with [`Progress::set_total`].
    pub total: u64,
    /// Whether `total` is final.
    pub finalized: bool,
}

impl Progress {
    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            finalized: self.finalized.load(Ordering::Relaxed),
        }
    }

    /// Fixes the total (a fetch knows it once the content's length is).
    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.finalized.store(true, Ordering::Relaxed);
    }

    fn add_total(&self, n: usize) {
        self.total.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn succeeded_one(&self) {
        self.succeeded.fetch_add(1, Ordering::Relaxed);
    }

    fn failed_one(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Encodes a stream of bytes into blocks and inserts them; returns the URI.
pub async fn insert_stream<S, E>(
    node: &NodeHandle,
    chunks: S,
    content_type: Option<String>,
) -> Result<ChkUri, ClientError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    insert_stream_counted(node, chunks, content_type, Arc::default()).await
}

/// [`insert_stream`], counting its blocks in `progress`.
pub async fn insert_stream_counted<S, E>(
    node: &NodeHandle,
    chunks: S,
    content_type: Option<String>,
    progress: Arc<Progress>,
) -> Result<ChkUri, ClientError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let mut chunks = std::pin::pin!(chunks);
    let mut encoder = Some(SplitfileEncoder::new(content_type));
    let mut window = InsertWindow::new(node.clone());
    window.progress = Arc::clone(&progress);
    let mut batch = Vec::with_capacity(ENCODE_BATCH);
    // One batch encodes on a blocking thread while the blocks of the batch
    // before it go out, so encoding and inserting overlap (on two cores)
    // instead of taking turns.
    let mut encoding = None;
    let mut input_done = false;
    // Blocks sent before the codec's last ones (which end with the root).
    let mut streamed = 0usize;
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
        streamed += previous.len();
        window.insert_all(previous).await?;
    }
    if let Some(handle) = encoding.take() {
        let (back, blocks) = joined_encode(handle).await?;
        encoder = Some(back);
        streamed += blocks.len();
        window.insert_all(blocks).await?;
    }
    let encoder = encoder.ok_or(ClientError::Stopped)?;
    let encoded = tokio::task::spawn_blocking(move || encoder.finish())
        .await
        .map_err(|_| ClientError::Stopped)??;
    // The root block goes last (the codec orders it so): once it is in, the
    // whole tree under it is.
    let last = encoded.blocks.len();
    progress.set_total(progress.snapshot().total + last as u64);
    let root = encoded.blocks.last().cloned();
    // Only a one-block document's root is its whole content.
    let names_a_tree = streamed > 0 || last > 1;
    window.insert_all_counted(encoded.blocks, false).await?;
    window.finish().await?;
    if let Some(root) = root {
        crate::roots::insert_copies(node, &root, &encoded.uri.key, names_a_tree).await?;
    }
    Ok(encoded.uri)
}

pub(crate) type Encoding =
    tokio::task::JoinHandle<(SplitfileEncoder, Result<Vec<ChkBlock>, EncodeError>)>;

/// Starts encoding `batch` on a blocking thread (the encoder is CPU-heavy).
pub(crate) fn spawn_encode(mut encoder: SplitfileEncoder, batch: Vec<u8>) -> Encoding {
    tokio::task::spawn_blocking(move || {
        let blocks = encoder.push(&batch);
        (encoder, blocks)
    })
}

pub(crate) async fn joined_encode(
    handle: Encoding,
) -> Result<(SplitfileEncoder, Vec<ChkBlock>), ClientError> {
    let (encoder, blocks) = handle.await.map_err(|_| ClientError::Stopped)?;
    Ok((encoder, blocks?))
}

/// An adaptive window of block inserts in flight: the next block starts as
/// soon as the window has room, not when an earlier one comes back.
struct InsertWindow {
    node: NodeHandle,
    window: Arc<Window>,
    inflight: JoinSet<Result<(), RequestError>>,
    progress: Arc<Progress>,
}

impl InsertWindow {
    fn new(node: NodeHandle) -> Self {
        InsertWindow {
            window: Window::for_insert(node.transfers(), INSERT_INITIAL),
            node,
            inflight: JoinSet::new(),
            progress: Arc::default(),
        }
    }

    async fn insert_all(&mut self, blocks: Vec<ChkBlock>) -> Result<(), ClientError> {
        self.insert_all_counted(blocks, true).await
    }

    /// Inserts `blocks`; `count` adds them to the progress total.
    async fn insert_all_counted(
        &mut self,
        blocks: Vec<ChkBlock>,
        count: bool,
    ) -> Result<(), ClientError> {
        if count {
            self.progress.add_total(blocks.len());
        }
        for block in blocks {
            let slot = self.window.acquire().await;
            // Finished inserts are reaped as slots come free: a failure
            // stops the insert at once, and results do not pile up.
            while let Some(joined) = self.inflight.try_join_next() {
                self.joined(joined)?;
            }
            let node = self.node.clone();
            self.inflight
                .spawn(async move { insert_with_retry(&node, block, slot).await });
        }
        Ok(())
    }

    fn joined(
        &self,
        joined: Result<Result<(), RequestError>, tokio::task::JoinError>,
    ) -> Result<(), ClientError> {
        match joined {
            Ok(result) => {
                if result.is_ok() {
                    self.progress.succeeded_one();
                }
                result.map_err(ClientError::from)
            }
            Err(_) => Err(ClientError::Stopped),
        }
    }

    async fn join_one(&mut self) -> Result<(), ClientError> {
        match self.inflight.join_next().await {
            Some(joined) => self.joined(joined),
            None => Ok(()),
        }
    }

    async fn finish(mut self) -> Result<(), ClientError> {
        while !self.inflight.is_empty() {
            self.join_one().await?;
        }
        Ok(())
    }
}

/// Inserts one block in its window slot: overload or a timeout shrinks the
/// window (and the block is tried once more), success opens it.
pub(crate) async fn insert_with_retry(
    node: &NodeHandle,
    block: ChkBlock,
    mut slot: Slot,
) -> Result<(), RequestError> {
    let mut tries = 0;
    loop {
        match node.insert_block(block.clone()).await {
            Ok(()) => {
                slot.succeeded();
                return Ok(());
            }
            Err(err) if err.is_transient() => {
                slot.congested();
                let Some(delay) = retry_after(&err, tries) else {
                    return Err(err);
                };
                tokio::time::sleep(delay).await;
                tries += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

/// One file of a site, as the API receives it.
#[derive(Debug, Clone, Deserialize)]
pub struct SiteEntry {
    pub path: String,
    pub uri: String,
    pub content_type: Option<String>,
    pub size: u64,
}

/// Builds and inserts a site manifest over files already inserted.
pub async fn insert_site(
    node: &NodeHandle,
    entries: Vec<SiteEntry>,
) -> Result<ChkUri, ClientError> {
    let mut builder = SiteBuilder::new();
    for entry in entries {
        let uri: ChkUri = entry.uri.parse()?;
        builder.add(CodecSiteEntry {
            path: entry.path,
            content_type: entry.content_type,
            uri,
            size: entry.size,
        })?;
    }
    let encoded = builder.finish()?;
    let root = encoded.blocks.last().cloned();
    let names_a_tree = encoded.blocks.len() > 1;
    let mut window = InsertWindow::new(node.clone());
    window.insert_all(encoded.blocks).await?;
    window.finish().await?;
    if let Some(root) = root {
        crate::roots::insert_copies(node, &root, &encoded.uri.key, names_a_tree).await?;
    }
    Ok(encoded.uri)
}

/// Content being fetched: what it is, and its bytes as they arrive, in order.
pub struct ContentStream {
    pub length: u64,
    pub content_type: Option<String>,
    /// Whether the key named a site (this is one of its files).
    pub site: bool,
    /// Ends early with an error if the fetch fails part way.
    pub chunks: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl std::fmt::Debug for ContentStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentStream")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

impl ContentStream {
    /// The chunks as a `Stream`, for HTTP bodies.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        futures_util::stream::unfold(self.chunks, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
    }
}

/// Where a fetch keeps the blocks it got, so that the same fetch started
/// again (after a restart) does not ask the network for them twice. Blocks
/// are ciphertext; an implementation verifies what it hands back against
/// the routing key. Called from blocking threads.
pub trait BlockCache: Send + Sync + 'static {
    fn get(&self, key: &RoutingKey) -> Option<ChkBlock>;
    fn put(&self, block: &ChkBlock);
}

/// Starts fetching `uri`: resolves its manifests until the content's length
/// and type are known, then streams the content from a background task.
pub async fn fetch(node: &NodeHandle, uri: ChkUri) -> Result<ContentStream, ClientError> {
    fetch_with_cache(node, uri, None).await
}

/// [`fetch`], taking blocks from `cache` first and keeping there those
/// fetched from the network.
pub async fn fetch_with_cache(
    node: &NodeHandle,
    uri: ChkUri,
    cache: Option<Arc<dyn BlockCache>>,
) -> Result<ContentStream, ClientError> {
    fetch_counted(node, uri, cache, Arc::default()).await
}

/// [`fetch_with_cache`], counting its blocks in `progress`.
pub async fn fetch_counted(
    node: &NodeHandle,
    uri: ChkUri,
    cache: Option<Arc<dyn BlockCache>>,
    progress: Arc<Progress>,
) -> Result<ContentStream, ClientError> {
    let mut run = FetchRun::new(node.clone(), &uri);
    run.cache = cache;
    run.progress = progress;
    let length = loop {
        if let Some(length) = run.fetcher.total_len() {
            break length;
        }
        run.step().await?;
    };
    let content_type = run
        .fetcher
        .content_type()
        .map(str::to_owned)
        .or_else(|| guess_type(&uri));
    let site = run.fetcher.is_site();
    let (tx, chunks) = mpsc::channel(OUTPUT_QUEUE);
    tokio::spawn(async move {
        if let Err(err) = run.stream_to(&tx).await {
            tracing::debug!(%err, "fetch failed part way");
            let _ = tx
                .send(Err(std::io::Error::other(crate::error_chain(&err))))
                .await;
        }
    });
    Ok(ContentStream {
        length,
        content_type,
        site,
        chunks,
    })
}

/// What [`reinsert`] did.
#[derive(Debug, Clone)]
pub struct Reinserted {
    /// The key the content encodes to now.
    pub uri: ChkUri,
    /// Whether that is the key asked for: CHKs are deterministic (the same
    /// content and type give the same key), so the document was refreshed.
    pub refreshed: bool,
    /// Blocks inserted: data, check, manifests and the root.
    pub blocks: u64,
}

/// Fetches the single file `uri` names and inserts it again, with the
/// content type its metadata records, so every block of its tree (check
/// blocks and root copies included) goes back into the network under the
/// same keys: a way to keep content alive that only its key needs. A file
/// of a site is refused: its key is the site's, which one file cannot
/// rebuild. The blocks inserted are counted in `progress` as they go.
pub async fn reinsert(
    node: &NodeHandle,
    uri: ChkUri,
    progress: Arc<Progress>,
) -> Result<Reinserted, ClientError> {
    let mut run = FetchRun::new(node.clone(), &uri);
    let length = loop {
        if let Some(length) = run.fetcher.total_len() {
            break length;
        }
        run.step().await?;
    };
    if run.fetcher.is_site() {
        return Err(ClientError::BadRequest(
            "this key names a site; reinsert inserts single files (insert the site's \
             directory again, which gives the same key)"
                .into(),
        ));
    }
    // The type the metadata records, not a guess from the name: the guess
    // would change the manifest and so the key.
    let content_type = run.fetcher.content_type().map(str::to_owned);
    let (tx, chunks) = mpsc::channel(OUTPUT_QUEUE);
    tokio::spawn(async move {
        if let Err(err) = run.stream_to(&tx).await {
            let _ = tx
                .send(Err(std::io::Error::other(crate::error_chain(&err))))
                .await;
        }
    });
    let content = ContentStream {
        length,
        content_type: content_type.clone(),
        site: false,
        chunks,
    };
    let inserted = insert_stream_counted(
        node,
        content.into_stream(),
        content_type,
        Arc::clone(&progress),
    )
    .await
    .map_err(|err| match err {
        // The fetch half failed: say so as a fetch failure.
        ClientError::Input(why) => ClientError::NotFound(why),
        other => other,
    })?;
    Ok(Reinserted {
        refreshed: inserted.key.routing == uri.key.routing,
        uri: ChkUri {
            path: uri.path.clone(),
            ..inserted
        },
        blocks: progress.snapshot().succeeded,
    })
}

/// A content type from the file name in the URI, for single-block files whose
/// manifest-less form carries none.
fn guess_type(uri: &ChkUri) -> Option<String> {
    content_type_for_name(uri.path.as_deref()?)
}

/// The content type a file name suggests (by its extension), or `None` when
/// unknown. The one guesser: `warren insert` records what this says, and the
/// gateway falls back to it for content that carries no type.
pub fn content_type_for_name(name: &str) -> Option<String> {
    mime_guess::from_path(name)
        .first()
        .map(|mime| mime.essence_str().to_owned())
}

/// The state of one fetch: the sans-IO fetcher and the block requests in flight.
struct FetchRun {
    node: NodeHandle,
    fetcher: ContentFetcher,
    window: Arc<Window>,
    /// Each request with its window slot (`None`: a block at hand, which
    /// takes no room and says nothing about the path).
    inflight: JoinSet<(RoutingKey, Result<ChkBlock, RequestError>, Option<Slot>)>,
    tries: HashMap<RoutingKey, u32>,
    cache: Option<Arc<dyn BlockCache>>,
    /// Blocks at hand already (made here, or fetched before): not asked for.
    local: HashMap<RoutingKey, ChkBlock>,
    /// Answers the fetcher handed back while its memory was full, until it
    /// asks for them again.
    spill: BlockSpill,
    progress: Arc<Progress>,
}

impl FetchRun {
    fn new(node: NodeHandle, uri: &ChkUri) -> Self {
        FetchRun {
            window: Window::new(node.transfers(), FETCH_INITIAL),
            spill: BlockSpill::new(node.data_dir().to_path_buf()),
            node,
            fetcher: ContentFetcher::new(uri),
            inflight: JoinSet::new(),
            tries: HashMap::new(),
            cache: None,
            local: HashMap::new(),
            progress: Arc::default(),
        }
    }

    /// Requests `key` in `slot` (a block at hand needs none), after `delay`.
    fn request(&mut self, key: RoutingKey, slot: Option<Slot>, delay: std::time::Duration) {
        if let Some(block) = self.local.remove(&key).or_else(|| self.spill.take(&key)) {
            self.inflight.spawn(async move { (key, Ok(block), None) });
            return;
        }
        let node = self.node.clone();
        // A document's root may be rebuilt from its copies; any other block
        // is protected by its segment's check blocks instead.
        let root = self
            .fetcher
            .root_key()
            .filter(|root| root.routing == key)
            .cloned();
        let fetch = move |node: NodeHandle| async move {
            match root {
                Some(root) => crate::roots::fetch_root(&node, &root).await,
                None => node.fetch_block(key).await,
            }
        };
        let Some(cache) = self.cache.clone() else {
            self.inflight.spawn(async move {
                tokio::time::sleep(delay).await;
                (key, fetch(node).await, slot)
            });
            return;
        };
        self.inflight.spawn(async move {
            tokio::time::sleep(delay).await;
            let lookup = Arc::clone(&cache);
            if let Ok(Some(block)) = tokio::task::spawn_blocking(move || lookup.get(&key)).await {
                // Found here: the network was not asked.
                return (key, Ok(block), None);
            }
            let result = fetch(node).await;
            if let Ok(block) = &result {
                let block = block.clone();
                let _ = tokio::task::spawn_blocking(move || cache.put(&block)).await;
            }
            (key, result, slot)
        });
    }

    /// Tops up the window, then handles one finished block request.
    async fn step(&mut self) -> Result<(), ClientError> {
        // On a near path the window's 512 requests fill four segments; on a
        // far one it grows to 1,024, and the fetch asks that far ahead.
        self.fetcher.set_lookahead(if self.window.is_far() {
            FETCH_WINDOW_SEGMENTS
        } else {
            NEAR_SEGMENTS
        });
        let room = self.window.room();
        for key in self.fetcher.wanted(room) {
            let slot = self.window.try_acquire();
            self.request(key, slot, std::time::Duration::ZERO);
        }
        let Some(joined) = self.inflight.join_next().await else {
            // Nothing in flight and nothing wanted: the fetcher is stuck.
            return Err(ClientError::NotFound("no more blocks to try".into()));
        };
        let (key, result, mut slot) = joined.map_err(|_| ClientError::Stopped)?;
        if let (Some(slot), Err(err)) = (&mut slot, &result) {
            if err.is_transient() {
                slot.congested();
            }
        }
        match result {
            Ok(block) => {
                if let Some(slot) = slot {
                    slot.succeeded();
                }
                self.fetcher.on_block(&block)?;
                let parked = self.fetcher.take_parked();
                if parked.is_empty() {
                    self.progress.succeeded_one();
                }
                // A block record is 32 KiB written to the page cache; done
                // here, in the fetch's own task, as the codec's work is.
                for block in parked {
                    self.spill.put(&block);
                }
                // Blocks the network lost and the check blocks rebuilt go
                // back in, later and bounded (see `roots::heal_later`).
                for rebuilt in self.fetcher.take_rebuilt() {
                    crate::roots::heal_later(self.node.clone(), rebuilt);
                }
            }
            Err(err) if retry_after(&err, self.tries.get(&key).copied().unwrap_or(0)).is_some() => {
                let tries = self.tries.entry(key).or_default();
                let delay = retry_after(&err, *tries).unwrap_or_default();
                *tries += 1;
                self.request(key, slot, delay);
            }
            Err(RequestError::Stopped) => return Err(ClientError::Stopped),
            Err(_) => {
                self.progress.failed_one();
                self.fetcher.on_missing(key)?;
            }
        }
        Ok(())
    }

    async fn stream_to(
        mut self,
        tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    ) -> Result<(), ClientError> {
        loop {
            while let Some(chunk) = self.fetcher.take_output() {
                if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                    // The reader went away: stop fetching (in-flight requests are aborted on drop).
                    return Ok(());
                }
            }
            if self.fetcher.is_done() {
                return Ok(());
            }
            self.step().await?;
        }
    }
}

/// Content whose manifests are resolved but whose bytes are not fetched yet:
/// its length and type are known, and any byte range of it can be read,
/// fetching only the blocks that hold that range.
pub struct Located {
    pub length: u64,
    pub content_type: Option<String>,
    /// Whether the key named a site (this is one of its files).
    pub site: bool,
    node: NodeHandle,
    body: Body,
}

impl std::fmt::Debug for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Located")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

enum Body {
    /// A single-block file, already here.
    Single(Bytes),
    Split(Arc<SplitfileManifest>),
}

/// Follows `uri`'s metadata (site manifests, split metadata) to the content,
/// by the rules and limits of the codec's `ContentFetcher`, without fetching
/// any content block of a splitfile.
pub async fn locate(node: &NodeHandle, uri: ChkUri) -> Result<Located, ClientError> {
    let mut key = uri.key.clone();
    let mut kind = uri.extra.kind;
    let mut path = uri.path.clone();
    let (mut hops, mut split_depth) = (0, 0);
    let mut content_type = None;
    let mut site_size: Option<u64> = None;
    let mut site = false;
    let check_len = |site_size: Option<u64>, actual: u64| match site_size {
        Some(expected) if expected != actual => {
            Err(ClientError::from(ContentError::SizeMismatch {
                expected,
                actual,
            }))
        }
        _ => Ok(actual),
    };
    loop {
        let part = if kind == ContentKind::Data {
            Part::Content
        } else {
            Part::Metadata { hop: hops }
        };
        let mut plain = fetch_plain(node, &key, part).await?;
        if kind == ContentKind::Data {
            let length = check_len(site_size, plain.len() as u64)?;
            return Ok(Located {
                length,
                content_type: content_type.or_else(|| guess_type(&uri)),
                site,
                node: node.clone(),
                body: Body::Single(Bytes::from(plain)),
            });
        }
        // Metadata documents until one names content or another block.
        loop {
            let part = Part::Metadata { hop: hops };
            hops += 1;
            if hops > MAX_METADATA_HOPS {
                return Err(ContentError::TooDeep.into());
            }
            let document = Metadata::from_bytes(&plain)
                .map_err(|source| ContentError::Metadata { part, source })?;
            match document {
                Metadata::Splitfile(manifest) => {
                    let length = check_len(site_size, manifest.len)?;
                    if content_type.is_none() {
                        content_type.clone_from(&manifest.content_type);
                    }
                    return Ok(Located {
                        length,
                        content_type: content_type.or_else(|| guess_type(&uri)),
                        site,
                        node: node.clone(),
                        body: Body::Split(Arc::new(manifest)),
                    });
                }
                Metadata::Indirect(manifest) => {
                    split_depth += 1;
                    if split_depth > MAX_METADATA_DEPTH {
                        return Err(ContentError::TooDeep.into());
                    }
                    // Bounded: validation caps split metadata at MAX_METADATA_LEN.
                    let len = manifest.len;
                    plain = read_all(node, Arc::new(manifest), len).await?;
                }
                Metadata::Directory(directory) => {
                    let wanted = match path.take() {
                        None => INDEX_FILE.to_owned(),
                        Some(p) if p.is_empty() || p.ends_with('/') => p + INDEX_FILE,
                        Some(p) => p,
                    };
                    let Some(entry) = directory.entry(&wanted) else {
                        let index = format!("{wanted}/{INDEX_FILE}");
                        let mut shown = wanted.clone();
                        truncate_on_char(&mut shown, MAX_PATH_LEN);
                        if !wanted.ends_with('/') && directory.entry(&index).is_some() {
                            return Err(ClientError::SiteDirectory { path: shown });
                        }
                        return Err(ContentError::NotInSite { path: shown }.into());
                    };
                    site = true;
                    content_type.clone_from(&entry.content_type);
                    site_size = Some(entry.size);
                    split_depth = 0;
                    key = entry.key.clone();
                    kind = entry.extra.kind;
                    break;
                }
            }
        }
    }
}

fn truncate_on_char(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// One root block (the URI's, or a site entry's), fetched (with a retry when
/// the network was busy, and from its copies when it is lost) and decrypted.
async fn fetch_plain(node: &NodeHandle, key: &ChkKey, part: Part) -> Result<Vec<u8>, ClientError> {
    let block = crate::roots::fetch_root(node, key)
        .await
        .map_err(|err| match err {
            RequestError::Stopped => ClientError::Stopped,
            _ => ContentError::BlockNotFound { part }.into(),
        })?;
    block
        .decode(&key.crypto)
        .map_err(|source| ContentError::BadBlock { part, source }.into())
}

/// Fetches one block, again after overload or a timeout (see
/// [`retry_after`]); in a window `slot`, those shrink the window.
pub(crate) async fn fetch_with_retry(
    node: &NodeHandle,
    key: RoutingKey,
    mut slot: Option<&mut Slot>,
) -> Result<ChkBlock, RequestError> {
    let mut tries = 0;
    loop {
        match node.fetch_block(key).await {
            Err(err) if err.is_transient() => {
                if let Some(slot) = slot.as_deref_mut() {
                    slot.congested();
                }
                let Some(delay) = retry_after(&err, tries) else {
                    return Err(err);
                };
                tokio::time::sleep(delay).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// The whole of a splitfile's content, gathered (for split metadata).
async fn read_all(
    node: &NodeHandle,
    manifest: Arc<SplitfileManifest>,
    len: u64,
) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    let (tx, mut rx) = mpsc::channel(OUTPUT_QUEUE);
    let producer = read_split(node.clone(), manifest, 0, len, tx);
    let consumer = async {
        while let Some(chunk) = rx.recv().await {
            out.extend_from_slice(&chunk?);
        }
        Ok::<_, ClientError>(())
    };
    let (produced, consumed) = tokio::join!(producer, consumer);
    produced?;
    consumed?;
    Ok(out)
}

impl Located {
    /// Reads `len` bytes from `start` (clamped to the content) in the
    /// background; chunks arrive in order.
    pub fn read(self, start: u64, len: u64) -> ContentStream {
        let start = start.min(self.length);
        let len = len.min(self.length - start);
        let (tx, chunks) = mpsc::channel(OUTPUT_QUEUE);
        let (length, content_type, site) = (self.length, self.content_type.clone(), self.site);
        tokio::spawn(async move {
            let result = match self.body {
                Body::Single(bytes) => {
                    let from = usize::try_from(start)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    let to = usize::try_from(start + len)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    let _ = tx.send(Ok(bytes.slice(from..to))).await;
                    Ok(())
                }
                Body::Split(manifest) => {
                    let (inner_tx, mut inner_rx) = mpsc::channel(OUTPUT_QUEUE);
                    let producer = read_split(self.node, manifest, start, len, inner_tx);
                    let forward = async {
                        while let Some(chunk) = inner_rx.recv().await {
                            let item = chunk
                                .map_err(|err| std::io::Error::other(crate::error_chain(&err)));
                            if tx.send(item).await.is_err() {
                                return;
                            }
                        }
                    };
                    tokio::join!(producer, forward).0
                }
            };
            if let Err(err) = result {
                tracing::debug!(%err, "fetch failed part way");
                let _ = tx
                    .send(Err(std::io::Error::other(crate::error_chain(&err))))
                    .await;
            }
        });
        ContentStream {
            length,
            content_type,
            site,
            chunks,
        }
    }

    /// [`Located::read`] as a stream that starts fetching only when first
    /// polled (so a `HEAD` answered without a body fetches nothing).
    pub fn stream(
        self,
        start: u64,
        len: u64,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        enum State {
            Idle(Box<Located>, u64, u64),
            Running(mpsc::Receiver<Result<Bytes, std::io::Error>>),
        }
        futures_util::stream::unfold(
            State::Idle(Box::new(self), start, len),
            |state| async move {
                let mut rx = match state {
                    State::Idle(located, start, len) => located.read(start, len).chunks,
                    State::Running(rx) => rx,
                };
                rx.recv().await.map(|item| (item, State::Running(rx)))
            },
        )
    }
}

/// Segments read at once by one range read: the one being output and the next.
const RANGE_SEGMENTS: usize = 2;

/// Sends the content bytes `[start, start + len)` of a splitfile to `tx` in
/// order. Only the data blocks holding the range are fetched; a segment
/// where one of them is missing is recovered from its check blocks instead.
/// The block requests in flight follow one adaptive window ([`crate::flow`]).
async fn read_split(
    node: NodeHandle,
    manifest: Arc<SplitfileManifest>,
    start: u64,
    len: u64,
    tx: mpsc::Sender<Result<Bytes, ClientError>>,
) -> Result<(), ClientError> {
    if len == 0 {
        return Ok(());
    }
    let payload = BLOCK_PAYLOAD as u64;
    let end = start + len;
    let (first, last) = (start / payload, (end - 1) / payload);
    let window = Window::new(node.transfers(), FETCH_INITIAL);
    let mut jobs = std::collections::VecDeque::new();
    let mut segment_start = 0u64;
    let mut pending = Vec::new();
    for (index, segment) in manifest.segments.iter().enumerate() {
        let count = segment.data.len() as u64;
        let (lo, hi) = (segment_start, segment_start + count - 1);
        segment_start += count;
        if hi < first || lo > last {
            continue;
        }
        pending.push((index, lo, first.max(lo) - lo, last.min(hi) - lo));
    }
    let mut pending = pending.into_iter();
    loop {
        while jobs.len() < RANGE_SEGMENTS {
            let Some((index, lo, from, to)) = pending.next() else {
                break;
            };
            let job = SegmentJob {
                node: node.clone(),
                manifest: manifest.clone(),
                index,
                first_block: lo,
                from: from as usize,
                to: to as usize,
                window: window.clone(),
            };
            jobs.push_back((lo, AbortOnDrop(tokio::spawn(job.run()))));
        }
        let Some((lo, mut job)) = jobs.pop_front() else {
            return Ok(());
        };
        let bytes = (&mut job.0).await.map_err(|_| ClientError::Stopped)??;
        // The bytes cover whole blocks from `first.max(lo)`: cut to the range.
        let covered_from = first.max(lo) * payload;
        let skip = usize::try_from(start.saturating_sub(covered_from)).unwrap_or(usize::MAX);
        let keep = usize::try_from(end.saturating_sub(covered_from)).unwrap_or(usize::MAX);
        let bytes = Bytes::from(bytes);
        let piece = bytes.slice(skip.min(bytes.len())..keep.min(bytes.len()));
        if tx.send(Ok(piece)).await.is_err() {
            return Ok(());
        }
    }
}

/// Aborts a spawned task when dropped (a reader that went away stops the fetch).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Data blocks `from..=to` of one segment, decoded and joined.
struct SegmentJob {
    node: NodeHandle,
    manifest: Arc<SplitfileManifest>,
    index: usize,
    /// Global index of the segment's first data block.
    first_block: u64,
    from: usize,
    to: usize,
    window: Arc<Window>,
}

impl SegmentJob {
    fn segment(&self) -> &Segment {
        &self.manifest.segments[self.index]
    }

    /// Plaintext bytes data block `i` of this segment must hold.
    fn expected_len(&self, i: usize) -> usize {
        let start = (self.first_block + i as u64) * BLOCK_PAYLOAD as u64;
        self.manifest
            .len
            .saturating_sub(start)
            .min(BLOCK_PAYLOAD as u64) as usize
    }

    async fn run(self) -> Result<Vec<u8>, ClientError> {
        let mut fetches = JoinSet::new();
        for i in self.from..=self.to {
            let (node, window) = (self.node.clone(), self.window.clone());
            let routing = self.segment().data[i].routing;
            fetches.spawn(async move {
                let mut slot = window.acquire().await;
                let result = fetch_with_retry(&node, routing, Some(&mut slot)).await;
                if result.is_ok() {
                    slot.succeeded();
                }
                (i, result)
            });
        }
        let mut blocks: Vec<Option<ChkBlock>> = vec![None; self.to - self.from + 1];
        let mut missing = false;
        while let Some(joined) = fetches.join_next().await {
            let (i, result) = joined.map_err(|_| ClientError::Stopped)?;
            match result {
                Ok(block) => blocks[i - self.from] = Some(block),
                Err(RequestError::Stopped) => return Err(ClientError::Stopped),
                Err(_) => missing = true,
            }
        }
        if missing {
            return self.recover(blocks).await;
        }
        let mut out = Vec::new();
        for (offset, block) in blocks.into_iter().enumerate() {
            let i = self.from + offset;
            let key = &self.segment().data[i];
            let block = block.ok_or(ClientError::Stopped)?;
            let plain = block
                .decode(&key.crypto)
                .map_err(|source| ContentError::BadBlock {
                    part: Part::Content,
                    source,
                })?;
            let expected = self.expected_len(i);
            if plain.len() != expected {
                return Err(ContentError::WrongBlockLength {
                    part: Part::Content,
                    expected,
                    actual: plain.len(),
                }
                .into());
            }
            out.extend_from_slice(&plain);
        }
        Ok(out)
    }

    /// A data block is missing: decodes the whole segment from any half of
    /// its blocks with the codec's fetcher, fed a one-segment manifest made
    /// here (so only this segment is fetched), and the blocks already in.
    async fn recover(self, have: Vec<Option<ChkBlock>>) -> Result<Vec<u8>, ClientError> {
        let segment = self.segment().clone();
        let count = segment.data.len();
        let len = (0..count).map(|i| self.expected_len(i) as u64).sum::<u64>();
        let sub = Metadata::Splitfile(SplitfileManifest {
            len,
            content_type: None,
            segments: vec![segment],
        });
        // One segment's keys (at most 256 of 64 bytes) fit one block.
        let (root, key) =
            ChkBlock::encode(&sub.to_bytes()).map_err(|source| ContentError::BadBlock {
                part: Part::Metadata { hop: 0 },
                source,
            })?;
        let uri = ChkUri {
            key,
            extra: Extra {
                kind: ContentKind::Metadata,
            },
            path: None,
        };
        let mut run = FetchRun::new(self.node.clone(), &uri);
        run.local.insert(root.routing_key(), root);
        for block in have.into_iter().flatten() {
            run.local.insert(block.routing_key(), block);
        }
        let mut content = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        loop {
            while let Some(chunk) = run.fetcher.take_output() {
                content.extend_from_slice(&chunk);
            }
            if run.fetcher.is_done() {
                break;
            }
            run.step().await?;
        }
        let payload = BLOCK_PAYLOAD;
        let from = (self.from * payload).min(content.len());
        let to = ((self.to + 1) * payload).min(content.len());
        Ok(content[from..to].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::content_type_for_name;

    #[test]
    fn names_give_their_types_and_unknown_ones_none() {
        let cases = [
            ("index.html", Some("text/html")),
            ("site/css/style.CSS", Some("text/css")),
            ("photo.jpeg", Some("image/jpeg")),
            ("report.pdf", Some("application/pdf")),
            ("movie.webm", Some("video/webm")),
            ("no-extension", None),
            ("weird.zzzunknown", None),
        ];
        for (name, expected) in cases {
            assert_eq!(content_type_for_name(name).as_deref(), expected, "{name}");
        }
    }
}
