//! The persistent request queue: requests with `Persistence=reboot` or
//! `forever`, owned by the node rather than by a connection. They go on
//! when their client disconnects, and any connection of the same client
//! (its `ClientHello` `Name`), or any connection watching the global queue
//! for `Global=true` requests, is told of their progress and can list,
//! query or remove them.
//!
//! Each request keeps the messages that describe its state (`URIGenerated`,
//! the latest `SimpleProgress`, and the final `DataFound`/`GetFailed`/
//! `PutSuccessful`/`PutFailed`), so a client that connects later is told
//! everything it missed.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use super::message::Message;
use super::persist::{Record, Resume};
use super::session::Outgoing;

/// Persistent requests kept at once (running and finished, until removed).
pub const MAX_PERSISTENT_REQUESTS: usize = 1000;
/// Connections subscribed to queue events at once (one per session).
const MAX_SUBSCRIBERS: usize = super::MAX_CONNECTIONS;
/// How long an event waits for a subscriber whose writer queue is full;
/// past that this subscriber misses it (it can list the queue later).
const SUBSCRIBER_WAIT: Duration = Duration::from_secs(10);
/// Messages kept per request besides its progress.
const MAX_KEPT_MESSAGES: usize = 8;

/// Whose namespace an Identifier lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Owner {
    Global,
    Client(String),
}

/// A persistent request's name in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct RequestKey {
    pub(super) owner: Owner,
    pub(super) identifier: String,
}

/// What a request is, for `PersistentGet`/`PersistentPut` listings.
#[derive(Debug, Clone)]
pub(super) struct Description {
    /// `PersistentGet` or `PersistentPut`.
    pub(super) kind: &'static str,
    /// The fields describing it (URI, ReturnType, Filename, ...).
    pub(super) fields: Vec<(String, String)>,
    /// For a get with `ReturnType=direct`: where to fetch again on
    /// `GetRequestStatus` (the data is not kept).
    pub(super) direct_uri: Option<warren_crypto::ChkUri>,
    /// How to start it again after a restart (`Persistence=forever`).
    pub(super) resume: Resume,
}

#[derive(Debug)]
struct Entry {
    description: Description,
    persistence: String,
    origin: u64,
    kept: Vec<Message>,
    progress: Option<Message>,
    done: bool,
    succeeded: bool,
    abort: Option<AbortHandle>,
}

#[derive(Debug)]
struct Subscriber {
    connection: u64,
    client: String,
    watch_global: bool,
    out: mpsc::Sender<Outgoing>,
}

#[derive(Debug, Default)]
struct Inner {
    requests: HashMap<RequestKey, Entry>,
    subscribers: Vec<Subscriber>,
    next_connection: u64,
}

/// Why a request could not join the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AddError {
    Collision,
    Full,
}

/// The queue, shared by every session.
#[derive(Debug)]
pub(crate) struct Queue {
    inner: Mutex<Inner>,
    /// Bumped whenever what the queue file holds changes; the saver task
    /// writes the latest state (one slot: saves coalesce, nothing queues up).
    changed: watch::Sender<u64>,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            inner: Mutex::default(),
            changed: watch::channel(0).0,
        }
    }
}

/// A request as listed: its state messages in order.
#[derive(Debug)]
pub(super) struct Listed {
    pub(super) messages: Vec<Message>,
    pub(super) direct_uri: Option<warren_crypto::ChkUri>,
    pub(super) succeeded: bool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn touch(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Wakes whenever the queue file should be written again.
    pub(super) fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The `Persistence=forever` requests, as the queue file keeps them.
    pub(super) fn records(&self) -> Vec<Record> {
        let inner = self.lock();
        inner
            .requests
            .iter()
            .filter(|(_, e)| e.persistence == "forever")
            .map(|(key, e)| Record {
                client: match &key.owner {
                    Owner::Global => None,
                    Owner::Client(name) => Some(name.clone()),
                },
                identifier: key.identifier.clone(),
                kind: e.description.kind.to_owned(),
                fields: e.description.fields.clone(),
                kept: e
                    .kept
                    .iter()
                    .map(|m| (m.name.clone(), m.fields.clone()))
                    .collect(),
                done: e.done,
                succeeded: e.succeeded,
                resume: e.description.resume.clone(),
            })
            .collect()
    }

    /// Puts back what the queue file held; returns the unfinished requests
    /// to start again.
    pub(super) fn restore(&self, records: Vec<Record>) -> Vec<(RequestKey, Resume)> {
        let mut inner = self.lock();
        let mut unfinished = Vec::new();
        for record in records {
            let key = RequestKey {
                owner: record.client.map_or(Owner::Global, Owner::Client),
                identifier: record.identifier,
            };
            let kind = match record.kind.as_str() {
                "PersistentGet" => "PersistentGet",
                "PersistentPutDir" => "PersistentPutDir",
                _ => "PersistentPut",
            };
            let direct_uri = match &record.resume {
                Resume::Get {
                    uri, return_type, ..
                } if return_type == "direct" => uri.parse().ok(),
                _ => None,
            };
            if !record.done {
                unfinished.push((key.clone(), record.resume.clone()));
            }
            let kept = record
                .kept
                .into_iter()
                .take(MAX_KEPT_MESSAGES)
                .map(|(name, fields)| Message {
                    name,
                    fields,
                    data_length: None,
                })
                .collect();
            if inner.requests.len() < MAX_PERSISTENT_REQUESTS {
                inner.requests.insert(
                    key,
                    Entry {
                        description: Description {
                            kind,
                            fields: record.fields,
                            direct_uri,
                            resume: record.resume,
                        },
                        persistence: "forever".to_owned(),
                        origin: 0,
                        kept,
                        progress: None,
                        done: record.done,
                        succeeded: record.succeeded,
                        abort: None,
                    },
                );
            }
        }
        unfinished
    }

    /// Registers a connection for events; returns its number, or `None`
    /// past [`MAX_SUBSCRIBERS`].
    pub(super) fn subscribe(&self, client: &str, out: mpsc::Sender<Outgoing>) -> Option<u64> {
        let mut inner = self.lock();
        if inner.subscribers.len() >= MAX_SUBSCRIBERS {
            return None;
        }
        inner.next_connection += 1;
        let connection = inner.next_connection;
        inner.subscribers.push(Subscriber {
            connection,
            client: client.to_owned(),
            watch_global: false,
            out,
        });
        Some(connection)
    }

    pub(super) fn unsubscribe(&self, connection: u64) {
        self.lock()
            .subscribers
            .retain(|s| s.connection != connection);
    }

    pub(super) fn watch_global(&self, connection: u64, enabled: bool) {
        if let Some(s) = self
            .lock()
            .subscribers
            .iter_mut()
            .find(|s| s.connection == connection)
        {
            s.watch_global = enabled;
        }
    }

    pub(super) fn contains(&self, key: &RequestKey) -> bool {
        self.lock().requests.contains_key(key)
    }

    /// Adds a request started by `origin`.
    pub(super) fn add(
        &self,
        key: RequestKey,
        description: Description,
        persistence: &str,
        origin: u64,
    ) -> Result<(), AddError> {
        let mut inner = self.lock();
        if inner.requests.contains_key(&key) {
            return Err(AddError::Collision);
        }
        if inner.requests.len() >= MAX_PERSISTENT_REQUESTS {
            return Err(AddError::Full);
        }
        let forever = persistence == "forever";
        inner.requests.insert(
            key,
            Entry {
                description,
                persistence: persistence.to_owned(),
                origin,
                kept: Vec::new(),
                progress: None,
                done: false,
                succeeded: false,
                abort: None,
            },
        );
        drop(inner);
        if forever {
            self.touch();
        }
        Ok(())
    }

    /// How a request would start again (what it keeps on disk).
    pub(super) fn resume_of(&self, key: &RequestKey) -> Option<Resume> {
        self.lock()
            .requests
            .get(key)
            .map(|e| e.description.resume.clone())
    }

    /// Runs a request's task, detached from any connection.
    pub(super) fn start(
        &self,
        key: &RequestKey,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let handle = tokio::spawn(task);
        match self.lock().requests.get_mut(key) {
            Some(entry) => entry.abort = Some(handle.abort_handle()),
            None => handle.abort(),
        }
    }

    /// Records a request's message and sends it to every connection that
    /// should see it.
    pub(super) async fn publish(&self, key: &RequestKey, message: Message) {
        let targets: Vec<_> = {
            let mut inner = self.lock();
            let Some(entry) = inner.requests.get_mut(key) else {
                return;
            };
            let origin = entry.origin;
            if entry.record(&message) && entry.persistence == "forever" {
                self.touch();
            }
            inner
                .subscribers
                .iter()
                .filter(|s| s.sees(key) || s.connection == origin)
                .map(|s| s.out.clone())
                .collect()
        };
        for out in targets {
            let send = out.send(Outgoing::Message(message.clone()));
            if tokio::time::timeout(SUBSCRIBER_WAIT, send).await.is_err() {
                tracing::debug!(
                    "an FCP client missed a queue event: its connection is not reading"
                );
            }
        }
    }

    /// Keeps a request's latest progress without telling anyone (it asked
    /// for none); listings show it.
    pub(super) fn note_progress(&self, key: &RequestKey, message: &Message) {
        if let Some(entry) = self.lock().requests.get_mut(key) {
            entry.record(message);
        }
    }

    /// The requests `connection` may see, each as its listing.
    pub(super) fn list(&self, connection: u64) -> Vec<Listed> {
        let inner = self.lock();
        let Some(me) = inner
            .subscribers
            .iter()
            .find(|s| s.connection == connection)
        else {
            return Vec::new();
        };
        inner
            .requests
            .iter()
            .filter(|(key, _)| me.sees(key))
            .map(|(key, entry)| entry.listing(key))
            .collect()
    }

    /// One request's listing, if `connection` may see it.
    pub(super) fn status(&self, connection: u64, key: &RequestKey) -> Option<Listed> {
        let inner = self.lock();
        let me = inner
            .subscribers
            .iter()
            .find(|s| s.connection == connection)?;
        let entry = inner.requests.get(key)?;
        (me.sees(key) || entry.origin == connection).then(|| entry.listing(key))
    }

    /// Cancels and forgets a request; `false` if there is none.
    pub(super) fn remove(&self, key: &RequestKey) -> bool {
        let removed = self.lock().requests.remove(key);
        match removed {
            Some(entry) => {
                if let Some(abort) = entry.abort {
                    abort.abort();
                }
                if entry.persistence == "forever" {
                    self.touch();
                }
                true
            }
            None => false,
        }
    }
}

impl Subscriber {
    fn sees(&self, key: &RequestKey) -> bool {
        match &key.owner {
            Owner::Global => self.watch_global,
            Owner::Client(name) => *name == self.client,
        }
    }
}

impl Entry {
    /// Keeps what a message says; `true` if the queue file should change.
    fn record(&mut self, message: &Message) -> bool {
        match message.name.as_str() {
            "SimpleProgress" => {
                self.progress = Some(message.clone());
                false
            }
            name => {
                if matches!(
                    name,
                    "DataFound" | "GetFailed" | "PutSuccessful" | "PutFailed"
                ) {
                    self.done = true;
                    self.succeeded = matches!(name, "DataFound" | "PutSuccessful");
                }
                if self.kept.len() < MAX_KEPT_MESSAGES {
                    self.kept.push(message.clone());
                }
                true
            }
        }
    }

    fn listing(&self, key: &RequestKey) -> Listed {
        let mut header = Message::new(self.description.kind)
            .with("Identifier", &key.identifier)
            .with("Global", key.owner == Owner::Global)
            .with("PersistenceType", &self.persistence)
            .with("Started", true);
        if let Owner::Client(name) = &key.owner {
            header.set("ClientName", name);
        }
        for (k, v) in &self.description.fields {
            header.set(k, v);
        }
        let mut messages = vec![header];
        messages.extend(self.progress.iter().cloned());
        messages.extend(self.kept.iter().cloned());
        Listed {
            messages,
            direct_uri: if self.done {
                self.description.direct_uri.clone()
            } else {
                None
            },
            succeeded: self.succeeded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(owner: Owner, id: &str) -> RequestKey {
        RequestKey {
            owner,
            identifier: id.into(),
        }
    }

    fn description() -> Description {
        Description {
            kind: "PersistentGet",
            fields: vec![("URI".into(), "CHK@x".into())],
            direct_uri: None,
            resume: Resume::NotResumable,
        }
    }

    #[tokio::test]
    async fn clients_see_their_own_and_watchers_see_global_requests() {
        let queue = Queue::default();
        let (a_out, mut a_rx) = mpsc::channel(8);
        let (b_out, mut b_rx) = mpsc::channel(8);
        let a = queue.subscribe("alice", a_out).unwrap();
        let b = queue.subscribe("bob", b_out).unwrap();
        let mine = key(Owner::Client("alice".into()), "1");
        let global = key(Owner::Global, "2");
        queue.add(mine.clone(), description(), "reboot", a).unwrap();
        assert_eq!(
            queue.add(mine.clone(), description(), "reboot", a),
            Err(AddError::Collision)
        );
        queue
            .add(global.clone(), description(), "forever", a)
            .unwrap();
        assert_eq!(queue.list(a).len(), 1);
        assert_eq!(queue.list(b).len(), 0);
        queue.watch_global(b, true);
        assert_eq!(queue.list(b).len(), 1);
        queue
            .publish(&global, Message::new("DataFound").with("Identifier", "2"))
            .await;
        // Bob watches the global queue; Alice started the request.
        assert!(matches!(b_rx.try_recv(), Ok(Outgoing::Message(m)) if m.name == "DataFound"));
        assert!(matches!(a_rx.try_recv(), Ok(Outgoing::Message(m)) if m.name == "DataFound"));
        let listed = queue.status(b, &global).unwrap();
        assert!(listed.succeeded);
        assert_eq!(listed.messages.last().unwrap().name, "DataFound");
        assert!(queue.remove(&global));
        assert!(!queue.remove(&global));
        queue.unsubscribe(b);
        assert!(queue.list(b).is_empty());
    }

    #[test]
    fn the_queue_is_bounded() {
        let queue = Queue::default();
        for i in 0..MAX_PERSISTENT_REQUESTS {
            queue
                .add(
                    key(Owner::Global, &i.to_string()),
                    description(),
                    "reboot",
                    0,
                )
                .unwrap();
        }
        assert_eq!(
            queue.add(key(Owner::Global, "x"), description(), "reboot", 0),
            Err(AddError::Full)
        );
    }
}
