//! `ClientPut` (`UploadFrom=direct` and `disk`, `GetCHKOnly`),
//! `ClientPutDiskDir` and `ClientPutComplexDir` (sites).

use std::path::{Path, PathBuf};
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;
use warren_crypto::splitfile::SplitfileEncoder;
use warren_crypto::{AnyUri, ChkUri};

use super::codes::{put_failed, Insert, Protocol};
use super::dda;
use super::get::{strip_freenet, strip_uri};
use super::insert;
use super::inserted::InsertLog;
use super::message::Message;
use super::persist::{Resume, SiteRecord, SiteSource};
use super::progress;
use super::queue::Description;
use super::session::{Chunk, Flow, Reply, Session, Target, MAX_DATA_LENGTH, UPLOAD_QUEUE};
use super::spool::Spool;
use crate::client::{self, ClientError, SiteEntry};
use crate::driver::NodeHandle;
use crate::signed;

/// Files in one site insert.
pub const MAX_SITE_FILES: usize = 10_000;
/// Directory levels walked in a `ClientPutDiskDir`.
const MAX_SITE_DEPTH: usize = 32;
/// Bytes read from a file at a time.
const FILE_CHUNK: usize = 256 * 1024;
/// Bytes gathered before running the encoder for `GetCHKOnly`.
const ENCODE_BATCH: usize = 1024 * 1024;

type ChunkStream = Pin<Box<dyn Stream<Item = Chunk> + Send>>;

/// What one file's content comes from.
#[derive(Debug)]
enum Source {
    Stream(mpsc::Receiver<Chunk>),
    File(PathBuf),
    /// Spooled in the data directory (a `Persistence=forever` direct put).
    Spool(Spool),
    /// Already in the network under this key (a site's `redirect` entry).
    Key(ChkUri),
}

/// One file of a site.
#[derive(Debug)]
struct SiteFile {
    path: String,
    source: Source,
    content_type: Option<String>,
    /// For content sent over the connection: its `DataLength`.
    length: u64,
}

/// The `PutFailed` code for a client-layer error.
fn insert_code(err: &ClientError) -> Insert {
    match err {
        ClientError::BadKey(_) => Insert::InvalidUri,
        ClientError::Overloaded => Insert::RejectedOverload,
        ClientError::Insert(_) => Insert::RouteNotFound,
        ClientError::Input(_) => Insert::BucketError,
        ClientError::Stopped => Insert::Cancelled,
        _ => Insert::InternalError,
    }
}

/// The file name a put asks for: `TargetFilename`, else the path in the URI.
fn target_name(message: &Message, uri: &str) -> Result<Option<String>, &'static str> {
    let after = uri.get(4..).unwrap_or("").trim_end_matches('/');
    let from_uri = match after.rsplit_once('/') {
        Some((_, name)) => name,
        None if after.contains(',') => "",
        None => after,
    };
    let name = message.get("TargetFilename").unwrap_or(from_uri);
    if name.contains('/') {
        return Err("TargetFilename may not contain '/'");
    }
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

fn receiver_stream(rx: mpsc::Receiver<Chunk>) -> ChunkStream {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

async fn file_stream(path: &Path) -> std::io::Result<ChunkStream> {
    let file = tokio::fs::File::open(path).await?;
    Ok(Box::pin(futures_util::stream::unfold(
        Some(file),
        |file| async move {
            let mut file = file?;
            let mut buf = vec![0u8; FILE_CHUNK];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(file)))
                }
                Err(err) => Some((Err(err), None)),
            }
        },
    )))
}

async fn open(source: Source) -> Result<ChunkStream, ClientError> {
    match source {
        Source::Stream(rx) => Ok(receiver_stream(rx)),
        Source::Spool(spool) => Ok(receiver_stream(spool.read())),
        Source::File(path) => file_stream(&path)
            .await
            .map_err(|e| ClientError::Input(format!("cannot read {}: {e}", path.display()))),
        Source::Key(_) => Err(ClientError::BadRequest(
            "a key has no content to read".into(),
        )),
    }
}

/// Encodes content without inserting it: the key it would have.
async fn key_only(
    mut content: ChunkStream,
    content_type: Option<String>,
) -> Result<ChkUri, ClientError> {
    let mut encoder = SplitfileEncoder::new(content_type);
    let mut batch = Vec::with_capacity(ENCODE_BATCH);
    loop {
        let next = content.next().await;
        let last = next.is_none();
        if let Some(chunk) = next {
            batch.extend_from_slice(&chunk.map_err(|e| ClientError::Input(e.to_string()))?);
        }
        if batch.len() >= ENCODE_BATCH || last {
            let data = std::mem::take(&mut batch);
            encoder = tokio::task::spawn_blocking(move || encoder.push(&data).map(|_| encoder))
                .await
                .map_err(|_| ClientError::Stopped)??;
        }
        if last {
            break;
        }
    }
    let encoded = tokio::task::spawn_blocking(move || encoder.finish())
        .await
        .map_err(|_| ClientError::Stopped)??;
    Ok(encoded.uri)
}

/// How one file is put.
#[derive(Debug, Clone)]
struct PutSettings {
    content_type: Option<String>,
    /// The file name added to the key (`TargetFilename`).
    name: Option<String>,
    chk_only: bool,
    /// `Verbosity` asked for `SimpleProgress`.
    verbose: bool,
    /// A signed insert key (`SSK@`, `USK@`, `KSK@`): the content goes in as
    /// a CHK, then a signed pointer to it under this key.
    publish_to: Option<String>,
}

/// Answers the put with `PutFailed`.
async fn fail(reply: &Reply, code: Insert, why: &str) {
    let failed = put_failed(&reply.identifier, reply.global, code, why);
    reply.send(failed).await;
}

/// The signed insert key a put's URI names, if it is not a `CHK@`.
fn signed_target(uri: &str) -> Option<String> {
    (!uri.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("CHK@"))).then(|| uri.to_owned())
}

/// Publishes `chk` under the signed insert key `target`; the request URI.
/// A USK goes to the edition after the newest the network holds, unless
/// that one already points to `chk` (as Fred's USK inserter does).
async fn publish(node: &NodeHandle, target: &str, chk: ChkUri) -> Result<String, ClientError> {
    let target: AnyUri = target.parse()?;
    Ok(signed::publish(node, &target, chk, true).await?.uri)
}

/// Inserts (or only encodes) one file and answers the request. A
/// `Persistence=forever` insert notes its confirmed blocks as it goes and
/// skips those noted before a restart (see `fcp::insert`).
async fn run_put(node: NodeHandle, reply: Reply, source: Source, settings: PutSettings) {
    let PutSettings {
        content_type,
        name,
        chk_only,
        verbose,
        publish_to,
    } = settings;
    let log = if chk_only {
        None
    } else {
        insert_log_of(&reply)
    };
    let node_stopping = node.clone();
    let (result, log) = if let Some(mut log) = log {
        let counts = insert::Counts::default();
        let work = async {
            let content = open(source).await?;
            insert::insert_logged(&node, content, content_type, &counts, &mut log, 0).await
        };
        let result = progress::reporting(&reply, &counts, verbose, work).await;
        if counts.skipped() > 0 {
            tracing::info!(
                recorded = log.inserted_before(),
                skipped = counts.skipped(),
                total = counts.snapshot().total,
                "a resumed upload did not insert again the blocks confirmed before the restart"
            );
        }
        (result, Some(log))
    } else {
        let progress = std::sync::Arc::new(client::Progress::default());
        let counted = std::sync::Arc::clone(&progress);
        let work = async {
            let content = open(source).await?;
            if chk_only {
                key_only(content, content_type).await
            } else {
                client::insert_stream_counted(&node, content, content_type, counted).await
            }
        };
        let result = progress::reporting(&reply, &*progress, verbose, work).await;
        (result, None)
    };
    let mut result = result.map(|uri| match name {
        Some(name) => uri.with_path(name).to_string(),
        None => uri.to_string(),
    });
    if let (Ok(chk), Some(target)) = (&result, &publish_to) {
        result = match chk.parse::<ChkUri>() {
            // Only the key: the request URI of the insert key (pyfreenet's
            // `invertprivate` asks this way), nothing published.
            Ok(_) if chk_only => target
                .parse::<AnyUri>()
                .map_err(ClientError::from)
                .and_then(|target| signed::request_uri_of(&target)),
            Ok(chk) => publish(&node, target, chk).await,
            Err(err) => Err(err.into()),
        };
    }
    match result {
        Ok(uri) => succeed(&reply, &uri, !chk_only).await,
        Err(err) => {
            let failed = put_failed(
                &reply.identifier,
                reply.global,
                insert_code(&err),
                &err.to_string(),
            );
            reply.send(failed).await;
        }
    }
    // The outcome is sent (and kept), unless the node is stopping: then
    // the log stays for the put to resume from.
    if let Some(log) = log {
        if node_stopping.status().await.is_ok() {
            log.remove().await;
        }
    }
}

/// The insert log of a `Persistence=forever` request; `None` for any other.
fn insert_log_of(reply: &Reply) -> Option<InsertLog> {
    match &reply.target {
        Target::Queue {
            shared,
            key,
            persistence,
        } if persistence == "forever" => Some(InsertLog::open(
            &shared.data_dir,
            std::sync::Arc::clone(&shared.vault),
            key,
        )),
        _ => None,
    }
}

/// Starts a persistent put again after a restart: from its file or its
/// spool, or, for content that was not kept, a `PutFailed`.
pub(super) async fn resume_put(node: NodeHandle, reply: Reply, resume: Resume) {
    match resume {
        Resume::PutFile {
            filename,
            content_type,
            name,
            chk_only,
            publish_to,
        } => {
            let source = Source::File(PathBuf::from(filename));
            let settings = PutSettings {
                content_type,
                name,
                chk_only,
                verbose: false,
                publish_to,
            };
            run_put(node, reply, source, settings).await;
        }
        Resume::PutSpool {
            content_type,
            name,
            chk_only,
            publish_to,
        } => {
            let Some(spool) = spool_of(&reply) else {
                return;
            };
            let settings = PutSettings {
                content_type,
                name,
                chk_only,
                verbose: false,
                publish_to,
            };
            put_spooled(node, reply, spool, settings).await;
        }
        Resume::PutSite { files, publish_to } => {
            resume_site(node, reply, files, publish_to).await;
        }
        Resume::Get { .. } | Resume::NotResumable => {
            let why =
                "the node restarted before this insert's content had all arrived; insert it again";
            fail(&reply, Insert::Cancelled, why).await;
        }
    }
}

/// Where a `Persistence=forever` request's upload is spooled; `None` for
/// any other.
fn spool_of(reply: &Reply) -> Option<Spool> {
    match &reply.target {
        Target::Queue {
            shared,
            key,
            persistence,
        } if persistence == "forever" => Some(Spool::new(
            &shared.data_dir,
            std::sync::Arc::clone(&shared.vault),
            key,
        )),
        _ => None,
    }
}

/// For a `Persistence=forever` site of `files` files: a spool for each
/// (direct files take them in order); `None` for any other site.
fn site_spools(reply: &Reply, files: usize) -> Option<Vec<Spool>> {
    match &reply.target {
        Target::Queue {
            shared,
            key,
            persistence,
        } if persistence == "forever" => Some(
            (0..files)
                .map(|i| {
                    Spool::for_site_file(
                        &shared.data_dir,
                        std::sync::Arc::clone(&shared.vault),
                        key,
                        i,
                    )
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Starts a `forever` site again from its records.
async fn resume_site(
    node: NodeHandle,
    reply: Reply,
    records: Vec<SiteRecord>,
    publish_to: Option<String>,
) {
    let spools = site_spools(&reply, records.len()).unwrap_or_default();
    let mut files = Vec::with_capacity(records.len());
    for record in records {
        let source = match record.source {
            SiteSource::Disk(path) => Source::File(PathBuf::from(path)),
            SiteSource::Key(uri) => match uri.parse::<ChkUri>() {
                Ok(uri) => Source::Key(uri),
                Err(err) => return fail(&reply, Insert::InvalidUri, &err.to_string()).await,
            },
            SiteSource::Spooled(n) => {
                let Some(spool) = spools.get(n) else {
                    let why = "the site's kept files do not match its record; insert it again";
                    return fail(&reply, Insert::Cancelled, why).await;
                };
                Source::Spool(spool.clone())
            }
        };
        files.push(SiteFile {
            path: record.path,
            source,
            content_type: record.content_type,
            length: 0,
        });
    }
    run_site(node, reply, files, publish_to).await;
}

/// A `Persistence=forever` direct put: the content is spooled whole, then
/// inserted from the spool, which goes once the put has an outcome. The
/// queue file says from the start that it resumes from the spool: only a
/// complete spool opens, so one cut short by a crash fails the put then.
async fn spool_then_put(
    node: NodeHandle,
    reply: Reply,
    upload: (mpsc::Receiver<Chunk>, u64),
    spool: Spool,
    settings: PutSettings,
) {
    let (chunks, length) = upload;
    if let Err(err) = spool.receive(chunks, length).await {
        let failed = put_failed(
            &reply.identifier,
            reply.global,
            Insert::BucketError,
            &format!("the content could not be kept: {err}"),
        );
        reply.send(failed).await;
        return;
    }
    put_spooled(node, reply, spool, settings).await;
}

async fn put_spooled(node: NodeHandle, reply: Reply, spool: Spool, settings: PutSettings) {
    let node_stopping = node.clone();
    let source = Source::Spool(spool.clone());
    run_put(node, reply, source, settings).await;
    // An outcome was sent, unless the node is stopping (then the put
    // starts again from the spool later).
    if node_stopping.status().await.is_ok() {
        spool.remove().await;
    }
}

/// `URIGenerated`, `PutFetchable` (when inserted), `PutSuccessful`.
async fn succeed(reply: &Reply, uri: &str, inserted: bool) {
    let generated = reply.message("URIGenerated").with("URI", uri);
    if !reply.send(generated).await {
        return;
    }
    if inserted {
        reply
            .send(reply.message("PutFetchable").with("URI", uri))
            .await;
    }
    reply
        .send(reply.message("PutSuccessful").with("URI", uri))
        .await;
}

impl Session {
    /// Checks a put's `URI`; `None` after answering.
    /// Runs a site insert (a disk dir or a complex dir) as a request.
    async fn start_site(
        &mut self,
        reply: &Reply,
        files: Vec<SiteFile>,
        publish_to: Option<String>,
    ) {
        let node = self.shared.node.clone();
        let task_reply = reply.clone();
        // A `forever` site can start again after a restart: its records say
        // where each file is (direct ones are spooled first, see `run_site`).
        let resume = if spool_of(reply).is_some() {
            let mut spooled = 0;
            let files = files
                .iter()
                .map(|file| SiteRecord {
                    path: file.path.clone(),
                    content_type: file.content_type.clone(),
                    source: match &file.source {
                        Source::File(path) => SiteSource::Disk(path.display().to_string()),
                        Source::Key(uri) => SiteSource::Key(uri.to_string()),
                        Source::Stream(_) | Source::Spool(_) => {
                            spooled += 1;
                            SiteSource::Spooled(spooled - 1)
                        }
                    },
                })
                .collect();
            Resume::PutSite {
                files,
                publish_to: publish_to.clone(),
            }
        } else {
            Resume::NotResumable
        };
        let description = Description {
            kind: "PersistentPutDir",
            fields: vec![("Files".to_owned(), files.len().to_string())],
            direct_uri: None,
            resume,
        };
        self.start(reply, description, async move {
            run_site(node, task_reply, files, publish_to).await;
        })
        .await;
    }

    /// A put's `URI`: `CHK@`, or one of Warren's signed insert keys
    /// (`SSK@`/`USK@` with the private key, `KSK@`); `None` after answering.
    async fn put_uri(&self, message: &Message, reply: &Reply) -> Option<String> {
        let Some(raw) = message.get("URI") else {
            self.refuse(message, Protocol::MissingField, "URI").await;
            return None;
        };
        let uri = strip_freenet(raw);
        if uri.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("CHK@")) {
            return Some(uri.to_owned());
        }
        let why = match uri.parse::<AnyUri>() {
            Ok(AnyUri::SskInsert(_) | AnyUri::UskInsert(_) | AnyUri::Ksk(_)) => {
                return Some(uri.to_owned())
            }
            Ok(_) => "this is a request key: insert under its insert URI (GenerateSSK, or `warren keys new`)".to_owned(),
            // Said without the key: it may hold a private key.
            Err(err) => match strip_uri(uri) {
                Err(why) => why,
                Ok(_) => err.to_string(),
            },
        };
        let failed = put_failed(&reply.identifier, reply.global, Insert::InvalidUri, &why);
        reply.send(failed).await;
        None
    }

    /// Whether this connection may have the node read `path`: it proved it
    /// can read the directory (TestDDA) or sent a matching `FileHash`.
    async fn may_read(&self, path: &Path, message: &Message, identifier: &str) -> bool {
        if !path.is_absolute() {
            return false;
        }
        if self.dda.allows(path, false) {
            return true;
        }
        match message.get("FileHash") {
            Some(claimed) => {
                dda::file_hash_matches(&self.connection_id, identifier, path, claimed).await
            }
            None => false,
        }
    }

    pub(super) async fn client_put(&mut self, message: &Message) -> std::io::Result<Flow> {
        let sink = self.start_put(message).await;
        if let Some(len) = message.data_length {
            self.pump(len, sink.as_ref()).await?;
        }
        Ok(Flow::Continue)
    }

    /// Starts a `ClientPut`; for `UploadFrom=direct` returns where the
    /// payload goes.
    async fn start_put(&mut self, message: &Message) -> Option<mpsc::Sender<Chunk>> {
        let reply = self.claim(message).await?;
        let uri = self.put_uri(message, &reply).await?;
        let publish_to = signed_target(&uri);
        let signed = publish_to.is_some();
        // Under a signed key the URI's path is its document name, not a
        // file name: only `TargetFilename` names the file.
        let named = if signed { "CHK@" } else { uri.as_str() };
        let name = match target_name(message, named) {
            Ok(name) => name,
            Err(why) => {
                self.refuse(message, Protocol::InvalidField, why).await;
                return None;
            }
        };
        let chk_only = match message.get_bool("GetCHKOnly") {
            None => false,
            Some(Ok(only)) => only,
            Some(Err(_)) => {
                self.refuse(message, Protocol::InvalidField, "GetCHKOnly")
                    .await;
                return None;
            }
        };
        let content_type = message.get("Metadata.ContentType").map(str::to_owned);
        let upload_from = message
            .get("UploadFrom")
            .unwrap_or("direct")
            .to_ascii_lowercase();
        let (source, sink) = match upload_from.as_str() {
            "direct" => {
                if message.data_length.is_none() {
                    self.refuse(message, Protocol::MissingField, "DataLength (and Data)")
                        .await;
                    return None;
                }
                let (tx, rx) = mpsc::channel(UPLOAD_QUEUE);
                (Source::Stream(rx), Some(tx))
            }
            "disk" => {
                let Some(filename) = message.get("Filename") else {
                    self.refuse(message, Protocol::MissingField, "Filename")
                        .await;
                    return None;
                };
                let path = PathBuf::from(filename);
                if !path.is_file() {
                    self.refuse(message, Protocol::FileNotFound, filename).await;
                    return None;
                }
                if !self.may_read(&path, message, &reply.identifier).await {
                    self.refuse(message, Protocol::DirectDiskAccessDenied, "")
                        .await;
                    return None;
                }
                (Source::File(path), None)
            }
            _ => {
                self.refuse(
                    message,
                    Protocol::NotSupported,
                    "UploadFrom must be direct or disk",
                )
                .await;
                return None;
            }
        };
        let mut fields = vec![
            ("URI".to_owned(), uri.clone()),
            ("UploadFrom".to_owned(), upload_from.clone()),
        ];
        let spool = spool_of(&reply);
        let mut resume = Resume::NotResumable;
        if spool.is_some() && matches!(source, Source::Stream(_)) {
            resume = Resume::PutSpool {
                content_type: content_type.clone(),
                name: name.clone(),
                chk_only,
                publish_to: publish_to.clone(),
            };
        }
        if let Source::File(path) = &source {
            fields.push(("Filename".to_owned(), path.display().to_string()));
            resume = Resume::PutFile {
                filename: path.display().to_string(),
                content_type: content_type.clone(),
                name: name.clone(),
                chk_only,
                publish_to: publish_to.clone(),
            };
        }
        if let Some(name) = &name {
            fields.push(("TargetFilename".to_owned(), name.clone()));
        }
        if let Some(content_type) = &content_type {
            fields.push(("Metadata.ContentType".to_owned(), content_type.clone()));
        }
        let description = Description {
            kind: "PersistentPut",
            fields,
            direct_uri: None,
            resume,
        };
        let node = self.shared.node.clone();
        let task_reply = reply.clone();
        let length = message.data_length.unwrap_or(0);
        let settings = PutSettings {
            content_type,
            name,
            chk_only,
            verbose: progress::verbose(message),
            publish_to,
        };
        self.start(&reply, description, async move {
            match (source, spool) {
                (Source::Stream(upload), Some(spool)) => {
                    spool_then_put(node, task_reply, (upload, length), spool, settings).await;
                }
                (source, _) => run_put(node, task_reply, source, settings).await,
            }
        })
        .await;
        sink
    }

    pub(super) async fn client_put_disk_dir(&mut self, message: &Message) -> Flow {
        let Some(reply) = self.claim(message).await else {
            return Flow::Continue;
        };
        let Some(uri) = self.put_uri(message, &reply).await else {
            return Flow::Continue;
        };
        let Some(dir) = message.get("Filename") else {
            self.refuse(message, Protocol::MissingField, "Filename")
                .await;
            return Flow::Continue;
        };
        let dir = PathBuf::from(dir);
        if !dir.is_absolute() || !self.dda.allows(&dir.join("any-file"), false) {
            self.refuse(message, Protocol::DirectDiskAccessDenied, "")
                .await;
            return Flow::Continue;
        }
        let files = match tokio::task::spawn_blocking(move || walk(&dir)).await {
            Ok(Ok(files)) => files,
            Ok(Err(why)) => {
                self.refuse(message, Protocol::CouldNotReadFile, &why).await;
                return Flow::Continue;
            }
            Err(_) => {
                self.refuse(message, Protocol::InternalError, "").await;
                return Flow::Continue;
            }
        };
        self.start_site(&reply, files, signed_target(&uri)).await;
        Flow::Continue
    }

    pub(super) async fn client_put_complex_dir(
        &mut self,
        message: &Message,
    ) -> std::io::Result<Flow> {
        // The direct files' bytes follow the message, in the order of the files.
        let mut attached: Vec<u64> = Vec::new();
        let mut index = 0;
        while let Some(name) = message.get(&format!("Files.{index}.Name")) {
            let _ = name;
            let from = message
                .get(&format!("Files.{index}.UploadFrom"))
                .unwrap_or("direct");
            if from.eq_ignore_ascii_case("direct") {
                let len = message
                    .get(&format!("Files.{index}.DataLength"))
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let Some(len) = len else {
                    self.refuse(
                        message,
                        Protocol::ErrorParsingNumber,
                        &format!("Files.{index}.DataLength"),
                    )
                    .await;
                    return Ok(Flow::Close);
                };
                attached.push(len);
            }
            index += 1;
        }
        let total = attached.iter().try_fold(0u64, |a, &b| a.checked_add(b));
        if total.is_none_or(|t| t > MAX_DATA_LENGTH) {
            self.refuse(
                message,
                Protocol::InvalidField,
                "the files' DataLength add up to too much",
            )
            .await;
            return Ok(Flow::Close);
        }
        let sinks = self.start_complex_dir(message, index).await;
        match sinks {
            Some(sinks) => {
                for (len, tx) in attached.iter().zip(sinks) {
                    self.pump(*len, Some(&tx)).await?;
                }
            }
            None => {
                for len in attached {
                    self.pump(len, None).await?;
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// Starts a `ClientPutComplexDir` of `count` files; returns the sinks of
    /// its direct files, in order, or `None` after refusing it.
    async fn start_complex_dir(
        &mut self,
        message: &Message,
        count: usize,
    ) -> Option<Vec<mpsc::Sender<Chunk>>> {
        let reply = self.claim(message).await?;
        let uri = self.put_uri(message, &reply).await?;
        if count == 0 {
            self.refuse(message, Protocol::MissingField, "Files.0.Name")
                .await;
            return None;
        }
        if count > MAX_SITE_FILES {
            self.refuse(message, Protocol::TooManyFilesInInsert, "")
                .await;
            return None;
        }
        let mut files = Vec::with_capacity(count);
        let mut sinks = Vec::new();
        for index in 0..count {
            let field = |f: &str| message.get(&format!("Files.{index}.{f}"));
            let path = field("Name")
                .unwrap_or_default()
                .trim_matches('/')
                .to_owned();
            let content_type = field("Metadata.ContentType")
                .map(str::to_owned)
                .or_else(|| guess_type(&path));
            let from = field("UploadFrom").unwrap_or("direct").to_ascii_lowercase();
            let source = match from.as_str() {
                "direct" => {
                    let (tx, rx) = mpsc::channel(UPLOAD_QUEUE);
                    sinks.push(tx);
                    Source::Stream(rx)
                }
                "disk" => {
                    let disk = PathBuf::from(field("Filename").unwrap_or_default());
                    if !disk.is_file() || !self.may_read(&disk, message, &reply.identifier).await {
                        self.refuse(
                            message,
                            Protocol::DirectDiskAccessDenied,
                            &format!("Files.{index}.Filename"),
                        )
                        .await;
                        return None;
                    }
                    Source::File(disk)
                }
                "redirect" => {
                    let target = field("TargetURI")
                        .and_then(|t| strip_uri(t).ok())
                        .and_then(|t| t.parse().ok());
                    let Some(target) = target else {
                        self.refuse(
                            message,
                            Protocol::UriParseError,
                            &format!("Files.{index}.TargetURI"),
                        )
                        .await;
                        return None;
                    };
                    Source::Key(target)
                }
                _ => {
                    self.refuse(
                        message,
                        Protocol::InvalidField,
                        &format!("Files.{index}.UploadFrom"),
                    )
                    .await;
                    return None;
                }
            };
            let length = field("DataLength")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            files.push(SiteFile {
                path,
                source,
                content_type,
                length,
            });
        }
        self.start_site(&reply, files, signed_target(&uri)).await;
        Some(sinks)
    }
}

/// A content type from a file name's extension.
fn guess_type(path: &str) -> Option<String> {
    mime_guess::from_path(path)
        .first()
        .map(|m| m.essence_str().to_owned())
}

/// Every regular file under `dir` (symbolic links are not followed), with
/// its path relative to `dir` in `/` form.
fn walk(dir: &Path) -> Result<Vec<SiteFile>, String> {
    let mut files = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new(), 0usize)];
    while let Some((at, prefix, depth)) = stack.pop() {
        if depth > MAX_SITE_DEPTH {
            return Err(format!("more than {MAX_SITE_DEPTH} directory levels"));
        }
        let entries = std::fs::read_dir(&at).map_err(|e| format!("{}: {e}", at.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| e.to_string())?;
            let kind = entry.file_type().map_err(|e| e.to_string())?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                return Err("a file name is not UTF-8".into());
            };
            let rel = format!("{prefix}{name}");
            if kind.is_dir() {
                stack.push((entry.path(), format!("{rel}/"), depth + 1));
            } else if kind.is_file() {
                if files.len() >= MAX_SITE_FILES {
                    return Err(format!("more than {MAX_SITE_FILES} files"));
                }
                files.push(SiteFile {
                    content_type: guess_type(&rel),
                    path: rel,
                    source: Source::File(entry.path()),
                    length: 0,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Inserts a site's files one by one, then its manifest; reports progress
/// per file with `SimpleProgress`.
async fn run_site(
    node: NodeHandle,
    reply: Reply,
    files: Vec<SiteFile>,
    publish_to: Option<String>,
) {
    let total = files.len();
    let mut entries = Vec::with_capacity(total);
    let spools = site_spools(&reply, files.len());
    let mut log = insert_log_of(&reply);
    let node_stopping = node.clone();
    let result: Result<String, ClientError> = async {
        // A `forever` site's direct files are spooled, in the order they
        // arrive, before anything is inserted: a restart resumes from there.
        let mut files = files;
        if let Some(spools) = &spools {
            let mut next = spools.iter();
            for file in &mut files {
                if let Source::Stream(_) = file.source {
                    let Some(spool) = next.next() else {
                        return Err(ClientError::Input("more files than spools".into()));
                    };
                    let Source::Stream(upload) =
                        std::mem::replace(&mut file.source, Source::Spool(spool.clone()))
                    else {
                        continue;
                    };
                    spool.receive(upload, file.length).await.map_err(|e| {
                        ClientError::Input(format!("the content could not be kept: {e}"))
                    })?;
                }
            }
        }
        for (done, file) in files.into_iter().enumerate() {
            let (uri, size) = match file.source {
                Source::Key(uri) => {
                    let fetch = client::fetch(&node, uri.clone()).await?;
                    (uri, fetch.length)
                }
                source => {
                    let counted = Counted::default();
                    let content = open(source).await?;
                    let seen = counted.clone();
                    let content = content.inspect(move |c| {
                        if let Ok(c) = c {
                            seen.add(c.len() as u64);
                        }
                    });
                    let content_type = file.content_type.clone();
                    let uri = match &mut log {
                        // A `forever` site's files resume block by block.
                        Some(log) => {
                            let number = u32::try_from(done).unwrap_or(u32::MAX);
                            let counts = insert::Counts::default();
                            insert::insert_logged(
                                &node,
                                content,
                                content_type,
                                &counts,
                                log,
                                number,
                            )
                            .await?
                        }
                        None => client::insert_stream(&node, content, content_type).await?,
                    };
                    (uri, counted.get())
                }
            };
            entries.push(SiteEntry {
                path: file.path,
                uri: uri.to_string(),
                content_type: file.content_type,
                size,
            });
            let progress = reply
                .message("SimpleProgress")
                .with("Total", total + 1)
                .with("Required", total + 1)
                .with("Failed", 0)
                .with("FatallyFailed", 0)
                .with("Succeeded", done + 1)
                .with("FinalizedTotal", true);
            reply.send(progress).await;
        }
        let manifest = client::insert_site(&node, entries).await?;
        match &publish_to {
            // Readers open the signed key as the site: `…/name/` or `…/N/`.
            Some(target) => publish(&node, target, manifest).await,
            None => Ok(manifest.to_string()),
        }
    }
    .await;
    // An outcome is sent now, unless the node is stopping (then the site
    // starts again from its spools later).
    if node_stopping.status().await.is_ok() {
        for spool in spools.into_iter().flatten() {
            spool.remove().await;
        }
        if let Some(log) = log {
            log.remove().await;
        }
    }
    // A CHK site's URI ends in `/` (a reader appends a file's path); a
    // signed key's ends in its edition or name, as Fred answers:
    // freesitemgr reads the edition as the URI's last `/` part.
    let signed = publish_to.is_some();
    match result {
        Ok(uri) if signed => succeed(&reply, &uri, true).await,
        Ok(uri) => succeed(&reply, &format!("{uri}/"), true).await,
        Err(err) => {
            let failed = put_failed(
                &reply.identifier,
                reply.global,
                insert_code(&err),
                &err.to_string(),
            );
            reply.send(failed).await;
        }
    }
}

/// A byte counter shared with a stream adapter.
#[derive(Debug, Default, Clone)]
struct Counted(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Counted {
    fn add(&self, n: u64) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_come_from_the_field_or_the_uri() {
        let plain = Message::new("ClientPut");
        assert_eq!(target_name(&plain, "CHK@"), Ok(None));
        assert_eq!(target_name(&plain, "CHK@/a.txt"), Ok(Some("a.txt".into())));
        assert_eq!(target_name(&plain, "CHK@site/"), Ok(Some("site".into())));
        assert_eq!(
            target_name(&plain, "CHK@r,k,AA/x.png"),
            Ok(Some("x.png".into()))
        );
        let named = Message::new("ClientPut").with("TargetFilename", "b.html");
        assert_eq!(target_name(&named, "CHK@/a.txt"), Ok(Some("b.html".into())));
        let bad = Message::new("ClientPut").with("TargetFilename", "a/b");
        assert!(target_name(&bad, "CHK@").is_err());
    }

    #[test]
    fn walking_a_directory_lists_files_in_order_with_slash_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("css")).unwrap();
        std::fs::write(dir.path().join("index.html"), b"<p>").unwrap();
        std::fs::write(dir.path().join("css/a.css"), b"p{}").unwrap();
        let files = walk(dir.path()).unwrap();
        let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["css/a.css", "index.html"]);
        assert_eq!(files[1].content_type.as_deref(), Some("text/html"));
    }
}
