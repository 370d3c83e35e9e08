//! One FCP connection: the hello, dispatch by message name, requests in
//! flight answered by Identifier, and a writer task fed by a bounded queue.
//!
//! The reader decodes messages and starts one task per request; every task
//! sends its replies through the same bounded queue to the writer. A client
//! that stops reading fills the queue: its own requests then wait, and its
//! reader stops reading from it (TCP pushes back), but nothing else does.
//! When the connection ends, its `Persistence=connection` requests end too.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rand::RngCore as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::codes::{Protocol, ProtocolError};
use super::dda::Dda;
use super::message::{Decoder, Message};
use super::queue::{AddError, Description, Owner, RequestKey};
use super::{Shared, HELLO_TIMEOUT};

/// Messages queued for the writer. Small: each request task waits its turn.
pub(super) const OUTGOING_QUEUE: usize = 32;
/// Requests in flight at once on one connection.
pub const MAX_REQUESTS_PER_CONNECTION: usize = 64;
/// Largest payload accepted after `Data` (one `ClientPut` file).
pub const MAX_DATA_LENGTH: u64 = 16 * 1024 * 1024 * 1024;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Chunks of an upload queued between the reader and the insert.
pub(super) const UPLOAD_QUEUE: usize = 4;
/// The FCP version spoken.
const FCP_VERSION: &str = "2.0";
/// The Fred build whose FCP 2.0 behaviour this follows; clients compare it
/// against the oldest build they work with.
const COMPATIBLE_BUILD: u32 = 1497;
/// Random bytes in a connection identifier (hex in `NodeHello`).
const CONNECTION_ID_BYTES: usize = 16;

/// A chunk of content, or why the content ended early.
pub(super) type Chunk = Result<Bytes, std::io::Error>;

/// What the writer sends.
#[derive(Debug)]
pub(super) enum Outgoing {
    Message(Message),
    /// A message ending in `Data` (`data_length` set), then that many bytes
    /// taken from `chunks`. If they end early the connection is closed: the
    /// client cannot be told otherwise in the middle of a payload.
    Data {
        header: Message,
        chunks: mpsc::Receiver<Chunk>,
    },
    /// Flush and close (after a fatal `ProtocolError` or `Disconnect`).
    Close,
}

/// Where a request task sends its replies.
#[derive(Debug, Clone)]
pub(super) struct Reply {
    pub(super) target: Target,
    pub(super) identifier: String,
    pub(super) global: bool,
}

/// A request's replies go to its connection, or through the queue to every
/// connection that should see them.
#[derive(Debug, Clone)]
pub(super) enum Target {
    Connection(mpsc::Sender<Outgoing>),
    Queue {
        shared: Arc<Shared>,
        key: RequestKey,
        persistence: String,
    },
}

impl Reply {
    /// Sends a message; `false` if nobody can hear it any more.
    pub(super) async fn send(&self, message: Message) -> bool {
        match &self.target {
            Target::Connection(out) => out.send(Outgoing::Message(message)).await.is_ok(),
            Target::Queue { shared, key, .. } => {
                shared.queue.publish(key, message).await;
                true
            }
        }
    }

    /// Sends a `SimpleProgress` if the request asked for progress; a queued
    /// request keeps it either way (for listings).
    pub(super) async fn progress(&self, message: Message, verbose: bool) {
        match &self.target {
            Target::Queue { shared, key, .. } if !verbose => {
                shared.queue.note_progress(key, &message);
            }
            _ if verbose => {
                self.send(message).await;
            }
            _ => {}
        }
    }

    /// The connection, for a request that lives and dies with it.
    pub(super) fn connection(&self) -> Option<&mpsc::Sender<Outgoing>> {
        match &self.target {
            Target::Connection(out) => Some(out),
            Target::Queue { .. } => None,
        }
    }

    /// A message naming this request.
    pub(super) fn message(&self, name: &str) -> Message {
        Message::new(name)
            .with("Identifier", &self.identifier)
            .with("Global", self.global)
    }
}

/// What to do after a message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    Close,
}

/// The reader's state for one connection.
pub(super) struct Session {
    pub(super) shared: Arc<Shared>,
    pub(super) out: mpsc::Sender<Outgoing>,
    pub(super) connection_id: String,
    pub(super) dda: Dda,
    reader: OwnedReadHalf,
    buf: BytesMut,
    hello: bool,
    /// The client's `Name`: its namespace in the persistent queue.
    client_name: String,
    /// This connection's number in the queue's subscriber list.
    subscription: Option<u64>,
    requests: HashMap<String, AbortHandle>,
    tasks: JoinSet<()>,
    task_ids: HashMap<tokio::task::Id, String>,
}

/// Serves one connection until it closes, breaks the protocol or `cancel` fires.
pub(super) async fn run(
    stream: TcpStream,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let (reader, writer) = stream.into_split();
    let (out, rx) = mpsc::channel(OUTGOING_QUEUE);
    let writer_done = cancel.child_token();
    let writer_task = tokio::spawn(write_loop(writer, rx, writer_done.clone()));
    let mut id = [0u8; CONNECTION_ID_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let mut session = Session {
        shared,
        out,
        connection_id: super::dda::hex(&id),
        dda: Dda::default(),
        reader,
        buf: BytesMut::with_capacity(READ_CHUNK),
        hello: false,
        client_name: String::new(),
        subscription: None,
        requests: HashMap::new(),
        tasks: JoinSet::new(),
        task_ids: HashMap::new(),
    };
    let result = session.read_loop(&writer_done).await;
    if let Some(subscription) = session.subscription {
        session.shared.queue.unsubscribe(subscription);
    }
    // Connection-lifetime requests end with the connection.
    session.tasks.shutdown().await;
    drop(session);
    let _ = writer_task.await;
    result
}

impl Session {
    async fn read_loop(&mut self, writer_done: &CancellationToken) -> std::io::Result<()> {
        let mut decoder = Decoder::new();
        let hello_deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
        loop {
            match decoder.decode(&mut self.buf) {
                Err(err) => {
                    let error = ProtocolError::new(Protocol::MessageParseError, err.to_string());
                    self.fail(error.fatal()).await;
                    return Ok(());
                }
                Ok(Some(message)) => {
                    if self.handle(message).await? == Flow::Close {
                        let _ = self.out.send(Outgoing::Close).await;
                        return Ok(());
                    }
                    continue;
                }
                Ok(None) => {}
            }
            self.buf.reserve(READ_CHUNK);
            tokio::select! {
                biased;
                () = writer_done.cancelled() => return Ok(()),
                Some(done) = self.tasks.join_next_with_id() => self.finished(done),
                () = tokio::time::sleep_until(hello_deadline), if !self.hello => return Ok(()),
                read = self.reader.read_buf(&mut self.buf) => {
                    if read? == 0 {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let id = match done {
            Ok((id, ())) => id,
            Err(err) => err.id(),
        };
        if let Some(identifier) = self.task_ids.remove(&id) {
            self.requests.remove(&identifier);
        }
    }

    /// Sends a `ProtocolError`; a fatal one also closes the connection.
    pub(super) async fn fail(&self, error: ProtocolError) {
        let fatal = error.fatal;
        let _ = self.out.send(Outgoing::Message(error.to_message())).await;
        if fatal {
            let _ = self.out.send(Outgoing::Close).await;
        }
    }

    async fn handle(&mut self, message: Message) -> std::io::Result<Flow> {
        if let Some(len) = message.data_length {
            if len > MAX_DATA_LENGTH {
                let error = ProtocolError::new(
                    Protocol::InvalidField,
                    format!("DataLength {len} is more than the {MAX_DATA_LENGTH} accepted"),
                )
                .for_request(message.get("Identifier"), false);
                self.fail(error.fatal()).await;
                return Ok(Flow::Close);
            }
        }
        if !self.hello {
            return Ok(self.first_message(&message).await);
        }
        let flow = match message.name.as_str() {
            "ClientHello" => {
                self.refuse(&message, Protocol::NoLateClientHellos, "")
                    .await;
                Flow::Continue
            }
            "ClientPut" => self.client_put(&message).await?,
            "ClientPutDiskDir" => self.client_put_disk_dir(&message).await,
            "ClientPutComplexDir" => self.client_put_complex_dir(&message).await?,
            "ClientGet" => self.client_get(&message).await,
            "TestDDARequest" => self.test_dda_request(&message).await,
            "TestDDAResponse" => self.test_dda_response(&message).await,
            "WatchGlobal" => self.watch_global(&message),
            "ListPersistentRequests" => self.list_persistent().await,
            "RemoveRequest" | "RemovePersistentRequest" => self.remove_request(&message).await,
            "GetRequestStatus" => self.request_status(&message).await,
            "Disconnect" => Flow::Close,
            "GenerateSSK" => {
                // As Fred answers: both keys end in `/`, the client appends
                // the document name. The insert key goes to this local
                // client only, and is never logged.
                let insert = warren_crypto::SskInsertUri::generate(&mut rand::rngs::OsRng, "");
                let mut reply = Message::new("SSKKeypair")
                    .with("InsertURI", format!("freenet:{insert}"))
                    .with("RequestURI", format!("freenet:{}", insert.request_uri()));
                if let Some(id) = message.get("Identifier") {
                    reply.set("Identifier", id);
                }
                let _ = self.out.send(Outgoing::Message(reply)).await;
                Flow::Continue
            }
            "SubscribeUSK" => self.subscribe_usk(&message).await,
            "UnsubscribeUSK" => self.unsubscribe_usk(&message),
            name if KNOWN_UNSUPPORTED.contains(&name) => {
                self.refuse(&message, Protocol::NotSupported, "not offered by Warren")
                    .await;
                Flow::Continue
            }
            name => {
                let extra = format!("unknown message {name}");
                self.refuse(&message, Protocol::InvalidMessage, &extra)
                    .await;
                Flow::Continue
            }
        };
        // A payload nobody took (a refused request) is read and dropped, so
        // the next message starts where the client thinks it does.
        if let Some(len) = message.data_length {
            if !PAYLOAD_TAKERS.contains(&message.name.as_str()) {
                self.pump(len, None).await?;
            }
        }
        Ok(flow)
    }

    /// Before `ClientHello` nothing else is accepted.
    async fn first_message(&mut self, message: &Message) -> Flow {
        if message.name != "ClientHello" {
            let error = ProtocolError::new(Protocol::ClientHelloMustBeFirst, "").fatal();
            self.fail(error).await;
            return Flow::Close;
        }
        if message.get("ExpectedVersion").is_none() {
            self.refuse(message, Protocol::MissingField, "ExpectedVersion")
                .await;
            return Flow::Continue;
        }
        self.hello = true;
        self.client_name = message.get("Name").unwrap_or_default().to_owned();
        self.subscription = self
            .shared
            .queue
            .subscribe(&self.client_name, self.out.clone());
        let hello = Message::new("NodeHello")
            .with("FCPVersion", FCP_VERSION)
            .with(
                "Version",
                format!(
                    "Warren,{},{FCP_VERSION},{COMPATIBLE_BUILD}",
                    env!("CARGO_PKG_VERSION")
                ),
            )
            .with("Node", "Warren")
            .with("Build", COMPATIBLE_BUILD)
            .with("Revision", env!("CARGO_PKG_VERSION"))
            .with("Testnet", false)
            .with("NodeLanguage", "ENGLISH")
            .with("ConnectionIdentifier", &self.connection_id);
        let _ = self.out.send(Outgoing::Message(hello)).await;
        Flow::Continue
    }

    /// A non-fatal `ProtocolError` naming the message's request, if any.
    pub(super) async fn refuse(&self, message: &Message, code: Protocol, extra: &str) {
        let global = message
            .get_bool("Global")
            .and_then(Result::ok)
            .unwrap_or(false);
        let error = ProtocolError::new(code, extra).for_request(message.get("Identifier"), global);
        self.fail(error).await;
    }

    /// Takes a new request's Identifier: `None` (after answering) when it is
    /// missing, already in use, or this connection has too many requests.
    pub(super) async fn claim(&mut self, message: &Message) -> Option<Reply> {
        let global = match message.get_bool("Global") {
            None => false,
            Some(Ok(global)) => global,
            Some(Err(_)) => {
                self.refuse(message, Protocol::InvalidField, "Global is not a boolean")
                    .await;
                return None;
            }
        };
        let Some(identifier) = message.get("Identifier") else {
            self.refuse(message, Protocol::MissingField, "Identifier")
                .await;
            return None;
        };
        if self.requests.contains_key(identifier)
            && message.get("Persistence").is_none_or(|p| p == "connection")
        {
            let collision = Message::new("IdentifierCollision")
                .with("Identifier", identifier)
                .with("Global", global);
            let _ = self.out.send(Outgoing::Message(collision)).await;
            return None;
        }
        if self.requests.len() >= MAX_REQUESTS_PER_CONNECTION {
            let extra = format!(
                "at most {MAX_REQUESTS_PER_CONNECTION} requests in flight on one connection"
            );
            self.refuse(message, Protocol::InternalError, &extra).await;
            return None;
        }
        let persistence = message.get("Persistence").unwrap_or("connection");
        let target = match persistence {
            "connection" if global => {
                self.refuse(
                    message,
                    Protocol::InvalidField,
                    "Global=true needs Persistence=reboot or forever",
                )
                .await;
                return None;
            }
            "connection" => Target::Connection(self.out.clone()),
            "reboot" | "forever" => {
                let key = self.key(identifier, global);
                if self.shared.queue.contains(&key) {
                    let collision = Message::new("IdentifierCollision")
                        .with("Identifier", identifier)
                        .with("Global", global);
                    let _ = self.out.send(Outgoing::Message(collision)).await;
                    return None;
                }
                Target::Queue {
                    shared: Arc::clone(&self.shared),
                    key,
                    persistence: persistence.to_owned(),
                }
            }
            _ => {
                self.refuse(message, Protocol::InvalidField, "Persistence")
                    .await;
                return None;
            }
        };
        Some(Reply {
            target,
            identifier: identifier.to_owned(),
            global,
        })
    }

    /// A persistent request's key: the global queue's, or this client's.
    pub(super) fn key(&self, identifier: &str, global: bool) -> RequestKey {
        RequestKey {
            owner: if global {
                Owner::Global
            } else {
                Owner::Client(self.client_name.clone())
            },
            identifier: identifier.to_owned(),
        }
    }

    /// Runs a request's task: tracked under its Identifier on this
    /// connection, or handed to the persistent queue.
    pub(super) async fn start(
        &mut self,
        reply: &Reply,
        description: Description,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        match &reply.target {
            Target::Connection(_) => {
                let handle = self.tasks.spawn(task);
                self.task_ids.insert(handle.id(), reply.identifier.clone());
                self.requests.insert(reply.identifier.clone(), handle);
            }
            Target::Queue {
                key, persistence, ..
            } => {
                let origin = self.subscription.unwrap_or_default();
                let queue = &self.shared.queue;
                match queue.add(key.clone(), description, persistence, origin) {
                    Ok(()) => queue.start(key, task),
                    Err(AddError::Collision) => {
                        let collision = Message::new("IdentifierCollision")
                            .with("Identifier", &reply.identifier)
                            .with("Global", reply.global);
                        let _ = self.out.send(Outgoing::Message(collision)).await;
                    }
                    Err(AddError::Full) => {
                        let extra = format!(
                            "the persistent queue holds {} requests; remove some",
                            super::queue::MAX_PERSISTENT_REQUESTS
                        );
                        let error = ProtocolError::new(Protocol::InternalError, extra)
                            .for_request(Some(&reply.identifier), reply.global);
                        self.fail(error).await;
                    }
                }
            }
        }
    }

    fn watch_global(&mut self, message: &Message) -> Flow {
        let enabled = message
            .get_bool("Enabled")
            .and_then(Result::ok)
            .unwrap_or(true);
        if let Some(subscription) = self.subscription {
            self.shared.queue.watch_global(subscription, enabled);
        }
        Flow::Continue
    }

    async fn list_persistent(&mut self) -> Flow {
        let listed = self
            .subscription
            .map(|s| self.shared.queue.list(s))
            .unwrap_or_default();
        for request in listed {
            for message in request.messages {
                let _ = self.out.send(Outgoing::Message(message)).await;
            }
        }
        let end = Message::new("EndListPersistentRequests");
        let _ = self.out.send(Outgoing::Message(end)).await;
        Flow::Continue
    }

    /// The `Identifier` and `Global` a request-management message names;
    /// `None` (after a `ProtocolError`) without an Identifier.
    async fn request_named(&mut self, message: &Message) -> Option<(String, bool)> {
        let Some(identifier) = message.get("Identifier") else {
            self.refuse(message, Protocol::MissingField, "Identifier")
                .await;
            return None;
        };
        let global = message
            .get_bool("Global")
            .and_then(Result::ok)
            .unwrap_or(false);
        Some((identifier.to_owned(), global))
    }

    /// `GetRequestStatus`: a persistent request's state again; for a
    /// finished direct get, its data (fetched again: it is not kept).
    async fn request_status(&mut self, message: &Message) -> Flow {
        let Some((identifier, global)) = self.request_named(message).await else {
            return Flow::Continue;
        };
        let identifier = identifier.as_str();
        let key = self.key(identifier, global);
        let listed = self
            .subscription
            .and_then(|s| self.shared.queue.status(s, &key));
        let Some(listed) = listed else {
            if !self.requests.contains_key(identifier) {
                self.refuse(message, Protocol::NoSuchIdentifier, "").await;
            }
            return Flow::Continue;
        };
        for message in listed.messages {
            let _ = self.out.send(Outgoing::Message(message)).await;
        }
        if let (true, Some(uri)) = (listed.succeeded, listed.direct_uri) {
            let reply = Reply {
                target: Target::Connection(self.out.clone()),
                identifier: identifier.to_owned(),
                global,
            };
            let node = self.shared.node.clone();
            let handle = self
                .tasks
                .spawn(super::get::send_all_data(node, reply, uri));
            drop(handle);
        }
        Flow::Continue
    }

    /// Ends a request of this connection; `false` if there is none so named.
    pub(super) fn end_request(&mut self, identifier: &str) -> bool {
        let Some(handle) = self.requests.remove(identifier) else {
            return false;
        };
        handle.abort();
        self.task_ids.retain(|_, id| id != identifier);
        true
    }

    async fn remove_request(&mut self, message: &Message) -> Flow {
        let Some((identifier, global)) = self.request_named(message).await else {
            return Flow::Continue;
        };
        let identifier = identifier.as_str();
        let key = self.key(identifier, global);
        let resume = self.shared.queue.resume_of(&key);
        if self.shared.queue.remove(&key) {
            let vault = &self.shared.vault;
            if let Some(super::persist::Resume::PutSite { files, .. }) = resume {
                for i in 0..files.len() {
                    let data_dir = &self.shared.data_dir;
                    super::spool::Spool::for_site_file(data_dir, Arc::clone(vault), &key, i)
                        .remove()
                        .await;
                }
            }
            super::blocks::BlockDir::new(&self.shared.data_dir, Arc::clone(vault), &key)
                .remove()
                .await;
            let log = super::inserted::InsertLog::path_of(&self.shared.data_dir, vault, &key);
            super::inserted::InsertLog::remove_at(&log).await;
            super::spool::Spool::new(&self.shared.data_dir, Arc::clone(vault), &key)
                .remove()
                .await;
        } else if !self.end_request(identifier) {
            self.refuse(message, Protocol::NoSuchIdentifier, "").await;
            return Flow::Continue;
        }
        let removed = Message::new("PersistentRequestRemoved")
            .with("Identifier", identifier)
            .with("Global", global);
        let _ = self.out.send(Outgoing::Message(removed)).await;
        Flow::Continue
    }

    /// Moves the next `len` payload bytes from the client into `sink` (or
    /// drops them). When the sink's reader has gone (the request failed),
    /// the rest is dropped, so the stream stays in step. A client that
    /// disconnects part way gets its sink an error.
    pub(super) async fn pump(
        &mut self,
        len: u64,
        sink: Option<&mpsc::Sender<Chunk>>,
    ) -> std::io::Result<()> {
        let mut left = len;
        let mut sink = sink;
        while left > 0 {
            if self.buf.is_empty() {
                self.buf.reserve(READ_CHUNK);
                // The content ends early: say so to the insert, which would
                // otherwise take what it got for the whole.
                let broken = match self.reader.read_buf(&mut self.buf).await {
                    Ok(0) => Some(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
                    Ok(_) => None,
                    Err(err) => Some(err),
                };
                if let Some(err) = broken {
                    if let Some(tx) = sink {
                        let _ = tx
                            .send(Err(std::io::Error::new(err.kind(), "upload cut short")))
                            .await;
                    }
                    return Err(err);
                }
            }
            let take = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            let chunk = self.buf.split_to(take).freeze();
            left -= take as u64;
            if let Some(tx) = sink {
                if tx.send(Ok(chunk)).await.is_err() {
                    sink = None;
                }
            }
        }
        Ok(())
    }
}

/// Messages that read their own payload.
const PAYLOAD_TAKERS: &[&str] = &["ClientPut", "ClientPutComplexDir"];

/// Fred's messages that Warren knows and does not offer.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "ListPeers",
    "ListPeer",
    "ListPeerNotes",
    "AddPeer",
    "ModifyPeer",
    "ModifyPeerNote",
    "RemovePeer",
    "GetNode",
    "GetConfig",
    "ModifyConfig",
    "GetPluginInfo",
    "LoadPlugin",
    "ReloadPlugin",
    "RemovePlugin",
    "FCPPluginMessage",
    "ModifyPersistentRequest",
    "Shutdown",
    "Void",
    "ProbeRequest",
    "FilterMessage",
    "SubscribeUSKMessage",
];

/// Writes queued messages until the queue closes or `Close` comes; flushes
/// whenever the queue is empty. Cancels `done` on the way out, so the
/// reader stops too.
async fn write_loop(
    writer: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    done: CancellationToken,
) -> std::io::Result<()> {
    let _guard = done.drop_guard();
    let mut writer = BufWriter::new(writer);
    while let Some(item) = rx.recv().await {
        match item {
            Outgoing::Message(message) => writer.write_all(&message.encode()).await?,
            Outgoing::Data { header, mut chunks } => {
                writer.write_all(&header.encode()).await?;
                let mut left = header.data_length.unwrap_or(0);
                while left > 0 {
                    match chunks.recv().await {
                        Some(Ok(chunk)) if chunk.len() as u64 <= left => {
                            left -= chunk.len() as u64;
                            writer.write_all(&chunk).await?;
                        }
                        Some(Ok(_)) => {
                            return Err(std::io::Error::other("content longer than said"))
                        }
                        Some(Err(err)) => return Err(err),
                        None => return Err(std::io::Error::other("content ended early")),
                    }
                }
            }
            Outgoing::Close => {
                writer.flush().await?;
                return writer.get_mut().shutdown().await;
            }
        }
        if rx.is_empty() {
            writer.flush().await?;
        }
    }
    writer.flush().await
}
