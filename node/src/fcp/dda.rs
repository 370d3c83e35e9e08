//! Direct disk access: `TestDDARequest`/`TestDDAResponse`, and the checks
//! that a disk upload or download may touch a path.
//!
//! A client proves it can read a directory by reading back a file the node
//! wrote there, and that it can write one by writing what the node asks;
//! only then does the node read (upload) or write (download) files there for
//! it. A disk upload may instead carry `FileHash`: base64 of
//! SHA-256(`ConnectionIdentifier` `-` `Identifier` `-` file content), which
//! only someone who can read the file can compute.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::io::AsyncReadExt as _;

use super::codes::Protocol;
use super::message::Message;
use super::session::{Flow, Outgoing, Session};

/// Directories one connection may have tested (or be testing) at once.
pub const MAX_DDA_DIRECTORIES: usize = 64;
/// Random bytes in a read-test file and in the content to write (hex).
const CHALLENGE_BYTES: usize = 16;
/// Bytes of a written test file read back; the expected content is shorter.
const MAX_WRITTEN_CHECK: u64 = 1024;
/// Bytes read at a time when hashing a file.
const HASH_CHUNK: usize = 64 * 1024;

#[derive(Debug, Default, Clone, Copy)]
struct Allowed {
    read: bool,
    write: bool,
}

#[derive(Debug)]
struct Pending {
    read_file: Option<(PathBuf, String)>,
    write_file: Option<(PathBuf, String)>,
}

/// One connection's DDA state.
#[derive(Debug, Default)]
pub(super) struct Dda {
    allowed: HashMap<PathBuf, Allowed>,
    pending: HashMap<PathBuf, Pending>,
}

impl Dda {
    /// Whether `path` lies in a directory this connection proved it can
    /// read (`write` false) or write (`write` true).
    pub(super) fn allows(&self, path: &Path, write: bool) -> bool {
        let Some(dir) = path.parent().and_then(|d| std::fs::canonicalize(d).ok()) else {
            return false;
        };
        self.allowed.iter().any(|(root, allowed)| {
            dir.starts_with(root) && if write { allowed.write } else { allowed.read }
        })
    }
}

fn challenge() -> String {
    let mut bytes = [0u8; CHALLENGE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// Lower-case hex.
pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Base64 SHA-256 of `connection-identifier-content`, as pyfreenet sends it.
pub(super) async fn file_hash(
    connection: &str,
    identifier: &str,
    path: &Path,
) -> std::io::Result<String> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    hasher.update(connection.as_bytes());
    hasher.update(b"-");
    hasher.update(identifier.as_bytes());
    hasher.update(b"-");
    let mut buf = vec![0u8; HASH_CHUNK];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(hasher.finalize()))
}

/// Whether the `FileHash` a client sent matches the file.
pub(super) async fn file_hash_matches(
    connection: &str,
    identifier: &str,
    path: &Path,
    claimed: &str,
) -> bool {
    match file_hash(connection, identifier, path).await {
        Ok(actual) => same(&actual, claimed.trim()),
        Err(_) => false,
    }
}

impl Session {
    pub(super) async fn test_dda_request(&mut self, message: &Message) -> Flow {
        let Some(dir) = message.get("Directory") else {
            self.refuse(message, Protocol::MissingField, "Directory")
                .await;
            return Flow::Continue;
        };
        let Ok(dir) = std::fs::canonicalize(dir) else {
            self.refuse(message, Protocol::FileNotFound, "no such directory")
                .await;
            return Flow::Continue;
        };
        if !dir.is_dir() {
            self.refuse(message, Protocol::FileNotFound, "not a directory")
                .await;
            return Flow::Continue;
        }
        if self.dda.pending.len() + self.dda.allowed.len() >= MAX_DDA_DIRECTORIES
            && !self.dda.allowed.contains_key(&dir)
        {
            let extra = format!("at most {MAX_DDA_DIRECTORIES} directories per connection");
            self.refuse(message, Protocol::AccessDenied, &extra).await;
            return Flow::Continue;
        }
        let want_read = message.get_bool("WantReadDirectory") == Some(Ok(true));
        let want_write = message.get_bool("WantWriteDirectory") == Some(Ok(true));
        let mut reply = Message::new("TestDDAReply").with("Directory", dir.display());
        let mut pending = Pending {
            read_file: None,
            write_file: None,
        };
        if want_read {
            let path = dir.join(format!("DDACheck-{}.tmp", challenge()));
            let content = challenge();
            if tokio::fs::write(&path, &content).await.is_err() {
                self.refuse(message, Protocol::CouldNotCreateFile, "read test file")
                    .await;
                return Flow::Continue;
            }
            reply.set("ReadFilename", path.display());
            pending.read_file = Some((path, content));
        }
        if want_write {
            let path = dir.join(format!("DDACheck-{}.tmp", challenge()));
            let content = challenge();
            reply.set("WriteFilename", path.display());
            reply.set("ContentToWrite", &content);
            pending.write_file = Some((path, content));
        }
        if let Some(old) = self.dda.pending.insert(dir, pending) {
            remove_test_file(old.read_file.as_ref()).await;
        }
        let _ = self.out.send(Outgoing::Message(reply)).await;
        Flow::Continue
    }

    pub(super) async fn test_dda_response(&mut self, message: &Message) -> Flow {
        let dir = message
            .get("Directory")
            .and_then(|d| std::fs::canonicalize(d).ok());
        let Some((dir, pending)) = dir.and_then(|d| self.dda.pending.remove_entry(&d)) else {
            self.refuse(
                message,
                Protocol::InvalidMessage,
                "no TestDDARequest for this Directory",
            )
            .await;
            return Flow::Continue;
        };
        let read = match &pending.read_file {
            Some((_, expected)) => message
                .get("ReadContent")
                .is_some_and(|got| same(got.trim(), expected)),
            None => false,
        };
        remove_test_file(pending.read_file.as_ref()).await;
        let write = match &pending.write_file {
            Some((path, expected)) => written_matches(path, expected).await,
            None => false,
        };
        let allowed = self.dda.allowed.entry(dir.clone()).or_default();
        allowed.read |= read;
        allowed.write |= write;
        let complete = Message::new("TestDDAComplete")
            .with("Directory", dir.display())
            .with("ReadDirectoryAllowed", read)
            .with("WriteDirectoryAllowed", write);
        let _ = self.out.send(Outgoing::Message(complete)).await;
        Flow::Continue
    }
}

async fn written_matches(path: &Path, expected: &str) -> bool {
    let Ok(file) = tokio::fs::File::open(path).await else {
        return false;
    };
    let mut text = String::new();
    let ok = file
        .take(MAX_WRITTEN_CHECK)
        .read_to_string(&mut text)
        .await
        .is_ok();
    ok && same(text.trim(), expected)
}

async fn remove_test_file(file: Option<&(PathBuf, String)>) {
    if let Some((path, _)) = file {
        let _ = tokio::fs::remove_file(path).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_hash_is_what_pyfreenet_computes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"test").unwrap();
        let expected =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"1-2-test"));
        assert_eq!(file_hash("1", "2", &path).await.unwrap(), expected);
        assert!(file_hash_matches("1", "2", &path, &expected).await);
        assert!(!file_hash_matches("1", "3", &path, &expected).await);
    }

    #[test]
    fn only_tested_directories_and_below_are_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        let mut dda = Dda::default();
        dda.allowed.insert(
            root.clone(),
            Allowed {
                read: true,
                write: false,
            },
        );
        assert!(dda.allows(&root.join("sub/x"), false));
        assert!(!dda.allows(&root.join("x"), true));
        assert!(!dda.allows(Path::new("/etc/passwd"), false));
    }
}
