//! `ClientGet`: fetch a key and return it in the reply (`ReturnType=direct`),
//! write it to a file (`disk`, after TestDDA), or only check it (`none`).

use std::path::PathBuf;

use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use warren_crypto::{AnyUri, ChkUri, BLOCK_PAYLOAD};

use super::blocks::BlockDir;
use super::codes::{get_failed, Fetch, Protocol};
use super::message::Message;
use super::persist::Resume;
use super::progress;
use super::queue::Description;
use super::session::{Chunk, Flow, Outgoing, Reply, Session, Target};
use crate::client::{self, ClientError};
use crate::driver::NodeHandle;
use crate::signed::{self, Content, Resolved};

/// Where fetched content goes.
#[derive(Debug)]
enum ReturnType {
    Direct,
    Disk(PathBuf),
    None,
}

/// Signed-key prefixes: part of FCP, not (yet) of Warren.
const SIGNED_KEY_PREFIXES: &[&str] = &["SSK@", "USK@", "KSK@", "SVK@"];

/// A URI as FCP clients send it: `freenet:` prefixes dropped. `Err` with
/// the words for the client when it is a key type Warren has not got.
pub(super) fn strip_uri(raw: &str) -> Result<&str, String> {
    let uri = strip_freenet(raw);
    if is_signed(uri) {
        return Err("FCP inserts under signed keys (SSK@, USK@, KSK@) are not offered; publish with `warren insert --key`".into());
    }
    Ok(uri)
}

/// `raw` without surrounding space and any `freenet:` prefixes.
pub(super) fn strip_freenet(raw: &str) -> &str {
    let mut uri = raw.trim();
    while let Some(rest) = uri
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("freenet:"))
        .map(|_| &uri[8..])
    {
        uri = rest;
    }
    uri
}

fn is_signed(uri: &str) -> bool {
    SIGNED_KEY_PREFIXES
        .iter()
        .any(|p| uri.get(..4).is_some_and(|u| u.eq_ignore_ascii_case(p)))
}

/// The `GetFailed` code for a client-layer error.
fn fetch_code(err: &ClientError) -> Fetch {
    match err {
        ClientError::BadKey(_) | ClientError::BadRequest(_) => Fetch::InvalidUri,
        ClientError::NotFound(_) => Fetch::DataNotFound,
        ClientError::SiteDirectory { .. } => Fetch::NotEnoughPathComponents,
        ClientError::Overloaded => Fetch::RejectedOverload,
        ClientError::Stopped => Fetch::Cancelled,
        _ => Fetch::InternalError,
    }
}

impl Session {
    pub(super) async fn client_get(&mut self, message: &Message) -> Flow {
        let Some(reply) = self.claim(message).await else {
            return Flow::Continue;
        };
        let Some(raw) = message.get("URI") else {
            self.refuse(message, Protocol::MissingField, "URI").await;
            return Flow::Continue;
        };
        let text = strip_freenet(raw);
        let uri = match text.parse::<AnyUri>() {
            Ok(AnyUri::Chk(uri)) => uri,
            // Warren's signed keys are resolved to the CHK they point to now
            // (a USK to its newest edition); the request then runs as a CHK get.
            Ok(any) => match signed::resolve(&self.shared.node, &any).await {
                Ok(Resolved {
                    content: Content::Chk(uri),
                    ..
                }) => uri,
                Ok(_) => {
                    let why =
                        "this signed key holds its content inline; fetch it with `warren fetch`";
                    let failed =
                        get_failed(&reply.identifier, reply.global, Fetch::InternalError, why);
                    reply.send(failed).await;
                    return Flow::Continue;
                }
                Err(err) => {
                    let failed = get_failed(
                        &reply.identifier,
                        reply.global,
                        fetch_code(&err),
                        &err.to_string(),
                    );
                    reply.send(failed).await;
                    return Flow::Continue;
                }
            },
            // Freenet's own signed keys are not Warren's: an invalid URI.
            Err(err) if is_signed(text) => {
                let failed = get_failed(
                    &reply.identifier,
                    reply.global,
                    Fetch::InvalidUri,
                    &err.to_string(),
                );
                reply.send(failed).await;
                return Flow::Continue;
            }
            Err(err) => {
                self.refuse(message, Protocol::UriParseError, &err.to_string())
                    .await;
                return Flow::Continue;
            }
        };
        let max_size = match message.get("MaxSize").map(|v| v.trim().parse::<u64>()) {
            None => None,
            Some(Ok(max)) => Some(max),
            Some(Err(_)) => {
                self.refuse(message, Protocol::ErrorParsingNumber, "MaxSize")
                    .await;
                return Flow::Continue;
            }
        };
        let Some(return_type) = self.return_type(message).await else {
            return Flow::Continue;
        };
        let description = describe(&uri, max_size, &return_type);
        let node = self.shared.node.clone();
        let task_reply = reply.clone();
        let verbose = super::progress::verbose(message);
        self.start(&reply, description, async move {
            run_get(node, task_reply, uri, max_size, return_type, verbose).await;
        })
        .await;
        Flow::Continue
    }

    /// The request's `ReturnType`, checked; `None` after answering.
    async fn return_type(&mut self, message: &Message) -> Option<ReturnType> {
        match message.get("ReturnType").unwrap_or("direct") {
            t if t.eq_ignore_ascii_case("direct") => Some(ReturnType::Direct),
            t if t.eq_ignore_ascii_case("none") => Some(ReturnType::None),
            t if t.eq_ignore_ascii_case("disk") => {
                let Some(name) = message.get("Filename") else {
                    self.refuse(message, Protocol::MissingField, "Filename")
                        .await;
                    return None;
                };
                let path = PathBuf::from(name);
                if !path.is_absolute() || !self.dda.allows(&path, true) {
                    self.refuse(message, Protocol::DirectDiskAccessDenied, "")
                        .await;
                    return None;
                }
                if path.exists() {
                    self.refuse(message, Protocol::DiskTargetExists, name).await;
                    return None;
                }
                Some(ReturnType::Disk(path))
            }
            _ => {
                self.refuse(message, Protocol::InvalidField, "ReturnType")
                    .await;
                None
            }
        }
    }
}

/// How a persistent get is listed.
fn describe(uri: &ChkUri, max_size: Option<u64>, return_type: &ReturnType) -> Description {
    let mut fields = vec![("URI".to_owned(), uri.to_string())];
    let (kind, direct_uri) = match return_type {
        ReturnType::Direct => ("direct", Some(uri.clone())),
        ReturnType::None => ("none", None),
        ReturnType::Disk(path) => {
            fields.push(("Filename".to_owned(), path.display().to_string()));
            ("disk", None)
        }
    };
    fields.push(("ReturnType".to_owned(), kind.to_owned()));
    if let Some(max) = max_size {
        fields.push(("MaxSize".to_owned(), max.to_string()));
    }
    let resume = Resume::Get {
        uri: uri.to_string(),
        return_type: kind.to_owned(),
        filename: match return_type {
            ReturnType::Disk(path) => Some(path.display().to_string()),
            _ => None,
        },
        max_size,
    };
    Description {
        kind: "PersistentGet",
        fields,
        direct_uri,
        resume,
    }
}

/// Starts a persistent get again after a restart. A disk download's
/// partial file was the node's own (downloads never overwrite): it is
/// written afresh.
pub(super) async fn resume_get(
    node: NodeHandle,
    reply: Reply,
    uri: &str,
    return_type: &str,
    filename: Option<String>,
    max_size: Option<u64>,
) {
    let Ok(uri) = uri.parse::<ChkUri>() else {
        let failed = get_failed(&reply.identifier, reply.global, Fetch::InvalidUri, uri);
        reply.send(failed).await;
        return;
    };
    let return_type = match (return_type, filename) {
        ("disk", Some(path)) => {
            let path = PathBuf::from(path);
            let _ = tokio::fs::remove_file(&path).await;
            ReturnType::Disk(path)
        }
        ("none", _) => ReturnType::None,
        _ => ReturnType::Direct,
    };
    run_get(node, reply, uri, max_size, return_type, false).await;
}

/// For `GetRequestStatus` on a finished persistent direct get: fetches the
/// content again and sends `DataFound` and `AllData` on this connection.
pub(super) async fn send_all_data(node: NodeHandle, reply: Reply, uri: ChkUri) {
    run_get(node, reply, uri, None, ReturnType::Direct, false).await;
}

/// For a `Persistence=forever` get: where its fetched blocks are kept.
fn block_dir(reply: &Reply) -> Option<BlockDir> {
    match &reply.target {
        Target::Queue {
            shared,
            key,
            persistence,
        } if persistence == "forever" => Some(BlockDir::new(
            &shared.data_dir,
            std::sync::Arc::clone(&shared.vault),
            key,
        )),
        _ => None,
    }
}

async fn run_get(
    node: NodeHandle,
    reply: Reply,
    uri: ChkUri,
    max_size: Option<u64>,
    return_type: ReturnType,
    verbose: bool,
) {
    let blocks = block_dir(&reply);
    let node_stopping = node.clone();
    let answer = Answer {
        max_size,
        return_type,
        verbose,
    };
    fetch_and_answer(node, &reply, uri, answer, blocks.clone()).await;
    // Finished, one way or the other: the kept blocks have done their job,
    // unless the node is stopping (then the request starts again later).
    if let Some(blocks) = blocks {
        if node_stopping.status().await.is_ok() {
            blocks.remove().await;
        }
    }
}

/// What a get asked for besides its key.
#[derive(Debug)]
struct Answer {
    max_size: Option<u64>,
    return_type: ReturnType,
    /// `Verbosity` asked for `SimpleProgress`.
    verbose: bool,
}

async fn fetch_and_answer(
    node: NodeHandle,
    reply: &Reply,
    uri: ChkUri,
    answer: Answer,
    blocks: Option<BlockDir>,
) {
    let Answer {
        max_size,
        return_type,
        verbose,
    } = answer;
    let fail = |code: Fetch, extra: &str| get_failed(&reply.identifier, reply.global, code, extra);
    let cache = blocks.map(|b| std::sync::Arc::new(b) as std::sync::Arc<dyn client::BlockCache>);
    let progress = std::sync::Arc::new(client::Progress::default());
    let counted = std::sync::Arc::clone(&progress);
    let fetch = match client::fetch_counted(&node, uri, cache, counted).await {
        Ok(fetch) => fetch,
        Err(err) => {
            reply.send(fail(fetch_code(&err), &err.to_string())).await;
            return;
        }
    };
    if let Some(max) = max_size {
        if fetch.length > max {
            let extra = format!("{} bytes, more than MaxSize {max}", fetch.length);
            let mut failed = fail(Fetch::TooBig, &extra);
            failed.set("ExpectedDataLength", fetch.length);
            reply.send(failed).await;
            return;
        }
    }
    // The data blocks the content needs; the fetch may also get metadata
    // and check blocks, which `Succeeded` does not count past this.
    progress.set_total(fetch.length.div_ceil(BLOCK_PAYLOAD as u64));
    let content_type = fetch
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let found = reply
        .message("DataFound")
        .with("DataLength", fetch.length)
        .with("Metadata.ContentType", &content_type);
    match return_type {
        ReturnType::Direct if reply.connection().is_some() => {
            if !reply.send(found).await {
                return;
            }
            let mut header = reply
                .message("AllData")
                .with("Metadata.ContentType", &content_type);
            header.data_length = Some(fetch.length);
            let Some(out) = reply.connection() else {
                return;
            };
            let _ = out
                .send(Outgoing::Data {
                    header,
                    chunks: fetch.chunks,
                })
                .await;
        }
        // A persistent direct get keeps no data: it checks the content is
        // all there; `GetRequestStatus` fetches it again to send it.
        // Progress is reported until the content is all here (then
        // `DataFound`); a direct get on the connection sends `DataFound` at
        // once and streams, so it has none.
        ReturnType::None | ReturnType::Direct => {
            match progress::reporting(reply, &*progress, verbose, drain(fetch.chunks, None)).await {
                Ok(()) => {
                    reply.send(found).await;
                }
                Err(err) => {
                    reply
                        .send(fail(Fetch::DataNotFound, &err.to_string()))
                        .await;
                }
            }
        }
        ReturnType::Disk(path) => {
            match progress::reporting(reply, &*progress, verbose, write_file(&path, fetch.chunks))
                .await
            {
                Ok(()) => {
                    reply.send(found).await;
                }
                Err((code, err)) => {
                    let _ = tokio::fs::remove_file(&path).await;
                    reply.send(fail(code, &err.to_string())).await;
                }
            }
        }
    }
}

async fn drain(
    mut chunks: mpsc::Receiver<Chunk>,
    mut file: Option<&mut tokio::fs::File>,
) -> std::io::Result<()> {
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk?;
        if let Some(file) = file.as_mut() {
            file.write_all(&chunk).await?;
        }
    }
    Ok(())
}

async fn write_file(
    path: &PathBuf,
    chunks: mpsc::Receiver<Chunk>,
) -> Result<(), (Fetch, std::io::Error)> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(|e| (Fetch::BucketError, e))?;
    drain(chunks, Some(&mut file))
        .await
        .map_err(|e| (Fetch::DataNotFound, e))?;
    file.sync_all().await.map_err(|e| (Fetch::BucketError, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_lose_freenet_prefixes_and_signed_key_inserts_are_named() {
        assert_eq!(strip_uri("freenet:CHK@abc"), Ok("CHK@abc"));
        assert_eq!(strip_uri("FREENET:freenet:CHK@x/y"), Ok("CHK@x/y"));
        assert!(strip_uri("SSK@abc/site")
            .unwrap_err()
            .contains("signed keys"));
        assert!(strip_uri("freenet:usk@abc/site/1").is_err());
        assert_eq!(strip_freenet(" freenet:USK@a/b/1"), "USK@a/b/1");
        assert!(is_signed("KSK@x") && is_signed("ssk@x") && !is_signed("CHK@x"));
    }
}
