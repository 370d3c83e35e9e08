//! The queue file: `Persistence=forever` requests, kept in the data
//! directory so they survive a restart of the node.
//!
//! `<data dir>/fcp-queue.sealed`: the requests as JSON, sealed by the
//! queue's [`Vault`] (it names the keys and file names of the node's own
//! requests, so it is never written in the clear). Written whole each time
//! the set of requests or a request's outcome changes: to a temporary file,
//! fsynced, renamed over the old one, and the directory fsynced, so a crash
//! leaves the old file or the new one, never a mix. Mode 0600. Read back
//! with a size check before reading and a count check after. A plaintext
//! `fcp-queue.json` left by an older Warren is read once, sealed, and
//! removed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::vault::{self, Vault, VaultError};

/// The file's name in the data directory.
pub const QUEUE_FILE: &str = "fcp-queue.sealed";
/// Where Warren before the vault kept the queue, in the clear.
pub const LEGACY_QUEUE_FILE: &str = "fcp-queue.json";
/// What the sealed queue is bound to (so no other sealed file opens as it).
const SEALED_CONTEXT: &[u8] = b"warren-fcp-queue-v1";
/// Format version written and accepted.
const VERSION: u32 = 1;
/// Largest queue file read (1,000 requests of a few KiB each fit easily).
pub const MAX_QUEUE_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// What it takes to start a request again after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Resume {
    /// A `ClientGet`; `return_type` is `direct`, `disk` or `none`.
    Get {
        uri: String,
        return_type: String,
        filename: Option<String>,
        max_size: Option<u64>,
    },
    /// A `ClientPut` from a file.
    PutFile {
        filename: String,
        content_type: Option<String>,
        name: Option<String>,
        chk_only: bool,
        /// The signed insert key to publish the CHK under, if any.
        #[serde(default)]
        publish_to: Option<String>,
    },
    /// A `ClientPut` of content that came over the connection, spooled
    /// whole (sealed) in the data directory (see `fcp::spool`).
    PutSpool {
        content_type: Option<String>,
        name: Option<String>,
        chk_only: bool,
        #[serde(default)]
        publish_to: Option<String>,
    },
    /// A site (`ClientPutDiskDir`, `ClientPutComplexDir`): its files from
    /// disk, by key, or spooled (those sent over the connection).
    PutSite {
        files: Vec<SiteRecord>,
        #[serde(default)]
        publish_to: Option<String>,
    },
    /// Content that is not kept (a connection-persistence upload, or a
    /// spool not yet complete): after a restart it can only fail.
    NotResumable,
}

/// One file of a site to resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SiteRecord {
    pub(super) path: String,
    pub(super) content_type: Option<String>,
    pub(super) source: SiteSource,
}

/// Where a site file's content is, for a resumed insert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum SiteSource {
    /// A file the client let the node read.
    Disk(String),
    /// Already in the network under this `CHK@`.
    Key(String),
    /// Sent over the connection, spooled as the request's file number N.
    Spooled(usize),
}

/// One persistent request as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Record {
    /// The client's name; `None` for the global queue.
    pub(super) client: Option<String>,
    pub(super) identifier: String,
    pub(super) kind: String,
    pub(super) fields: Vec<(String, String)>,
    /// The messages that told its state so far (name, fields).
    pub(super) kept: Vec<(String, Vec<(String, String)>)>,
    pub(super) done: bool,
    pub(super) succeeded: bool,
    pub(super) resume: Resume,
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    version: u32,
    requests: Vec<Record>,
}

/// Why the queue file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    #[error("cannot read or write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_QUEUE_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path} cannot be opened")]
    Sealed {
        path: PathBuf,
        #[source]
        source: VaultError,
    },
    #[error("{path} is not a Warren FCP queue")]
    Format {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} has format version {found}, not {VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("{path} holds more than {max} requests")]
    TooMany { path: PathBuf, max: usize },
}

/// Decodes a queue file's bytes (`path` only names it in errors).
pub(super) fn decode(bytes: &[u8], path: &Path) -> Result<Vec<Record>, PersistError> {
    if bytes.len() as u64 > MAX_QUEUE_FILE_BYTES {
        return Err(PersistError::TooLarge { path: path.into() });
    }
    let file: File = serde_json::from_slice(bytes).map_err(|source| PersistError::Format {
        path: path.into(),
        source,
    })?;
    if file.version != VERSION {
        return Err(PersistError::Version {
            path: path.into(),
            found: file.version,
        });
    }
    let max = super::queue::MAX_PERSISTENT_REQUESTS;
    if file.requests.len() > max {
        return Err(PersistError::TooMany {
            path: path.into(),
            max,
        });
    }
    Ok(file.requests)
}

pub(super) fn encode(requests: &[Record]) -> Vec<u8> {
    #[derive(Serialize)]
    struct FileRef<'a> {
        version: u32,
        requests: &'a [Record],
    }
    serde_json::to_vec(&FileRef {
        version: VERSION,
        requests,
    })
    .unwrap_or_default()
}

/// Reads `path` whole, at most [`MAX_QUEUE_FILE_BYTES`]; `None` if absent.
fn read_limited(path: &Path) -> Result<Option<Vec<u8>>, PersistError> {
    let io = |source| PersistError::Io {
        path: path.into(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io(err)),
    };
    if file.metadata().map_err(io)?.len() > MAX_QUEUE_FILE_BYTES {
        return Err(PersistError::TooLarge { path: path.into() });
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_QUEUE_FILE_BYTES + 1),
        &mut bytes,
    )
    .map_err(io)?;
    Ok(Some(bytes))
}

/// Reads the queue from `data_dir`; no file is an empty queue. A legacy
/// plaintext queue is sealed and removed.
pub(super) fn load(data_dir: &Path, vault: &Vault) -> Result<Vec<Record>, PersistError> {
    let path = data_dir.join(QUEUE_FILE);
    if let Some(sealed) = read_limited(&path)? {
        let plain = vault
            .open_sealed(SEALED_CONTEXT, &sealed)
            .map_err(|source| PersistError::Sealed {
                path: path.clone(),
                source,
            })?;
        return decode(&plain, &path);
    }
    let legacy = data_dir.join(LEGACY_QUEUE_FILE);
    let Some(plain) = read_limited(&legacy)? else {
        return Ok(Vec::new());
    };
    let records = decode(&plain, &legacy)?;
    save(data_dir, vault, &records)?;
    std::fs::remove_file(&legacy).map_err(|source| PersistError::Io {
        path: legacy,
        source,
    })?;
    Ok(records)
}

/// Seals and writes the queue crash-safely.
pub(super) fn save(
    data_dir: &Path,
    vault: &Vault,
    requests: &[Record],
) -> Result<(), PersistError> {
    let path = data_dir.join(QUEUE_FILE);
    let plain = zeroize::Zeroizing::new(encode(requests));
    vault::replace_private(&path, &vault.seal(SEALED_CONTEXT, &plain))
        .map_err(|source| PersistError::Io { path, source })
}

/// The fuzz target's body (`fuzz/fuzz_targets/fcp_queue_decode.rs`), also
/// run by the property tests: decoding never panics, and what decodes
/// re-encodes to the same records.
pub fn fuzz_decode(bytes: &[u8]) {
    if let Ok(records) = decode(bytes, Path::new("fuzz")) {
        let again = decode(&encode(&records), Path::new("fuzz")).expect("re-encoded queue decodes");
        assert_eq!(again, records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_resume() -> impl Strategy<Value = Resume> {
        prop_oneof![
            (
                ".{0,20}",
                "direct|disk|none",
                proptest::option::of(".{0,20}"),
                proptest::option::of(any::<u64>())
            )
                .prop_map(|(uri, return_type, filename, max_size)| Resume::Get {
                    uri,
                    return_type,
                    filename,
                    max_size
                }),
            (
                ".{0,20}",
                proptest::option::of(".{0,9}"),
                proptest::option::of(".{0,9}"),
                any::<bool>()
            )
                .prop_map(|(filename, content_type, name, chk_only)| Resume::PutFile {
                    filename,
                    content_type,
                    name,
                    chk_only,
                    publish_to: None,
                }),
            (
                proptest::option::of(".{0,9}"),
                proptest::option::of(".{0,9}"),
                any::<bool>()
            )
                .prop_map(|(content_type, name, chk_only)| Resume::PutSpool {
                    content_type,
                    name,
                    chk_only,
                    publish_to: Some("KSK@x".into()),
                }),
            (
                ".{0,9}",
                proptest::option::of(".{0,5}"),
                0usize..3,
                proptest::option::of(".{0,9}")
            )
                .prop_map(|(path, content_type, n, publish_to)| Resume::PutSite {
                    files: vec![
                        SiteRecord {
                            path: path.clone(),
                            content_type: content_type.clone(),
                            source: SiteSource::Spooled(n)
                        },
                        SiteRecord {
                            path: path.clone(),
                            content_type: None,
                            source: SiteSource::Disk(path.clone())
                        },
                        SiteRecord {
                            path,
                            content_type,
                            source: SiteSource::Key("CHK@k".into())
                        },
                    ],
                    publish_to,
                }),
            Just(Resume::NotResumable),
        ]
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        let pairs = || proptest::collection::vec((".{0,8}", ".{0,16}"), 0..4);
        (
            proptest::option::of(".{0,10}"),
            ".{0,10}",
            "Persistent(Get|Put|PutDir)",
            pairs(),
            proptest::collection::vec(("[A-Za-z]{1,12}", pairs()), 0..3),
            any::<bool>(),
            any::<bool>(),
            arb_resume(),
        )
            .prop_map(
                |(client, identifier, kind, fields, kept, done, succeeded, resume)| Record {
                    client,
                    identifier,
                    kind,
                    fields,
                    kept,
                    done,
                    succeeded,
                    resume,
                },
            )
    }

    proptest! {
        #[test]
        fn records_round_trip(records in proptest::collection::vec(arb_record(), 0..6)) {
            let bytes = encode(&records);
            prop_assert_eq!(decode(&bytes, Path::new("t")).unwrap(), records);
            fuzz_decode(&bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            fuzz_decode(&bytes);
        }
    }

    fn record(identifier: &str) -> Record {
        Record {
            client: Some("frost".into()),
            identifier: identifier.into(),
            kind: "PersistentGet".into(),
            fields: vec![("URI".into(), "CHK@secretkey/diary.txt".into())],
            kept: vec![],
            done: false,
            succeeded: false,
            resume: Resume::Get {
                uri: "CHK@secretkey/diary.txt".into(),
                return_type: "disk".into(),
                filename: Some("/home/me/diary.txt".into()),
                max_size: None,
            },
        }
    }

    #[test]
    fn the_queue_is_sealed_private_and_names_its_file_when_bad() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(dir.path()).unwrap();
        assert!(load(dir.path(), &vault).unwrap().is_empty());
        let records = vec![record("my-download")];
        save(dir.path(), &vault, &records).unwrap();
        assert_eq!(load(dir.path(), &vault).unwrap(), records);
        let path = dir.path().join(QUEUE_FILE);
        let on_disk = std::fs::read(&path).unwrap();
        for secret in [
            &b"secretkey"[..],
            b"diary",
            b"my-download",
            b"frost",
            b"/home",
        ] {
            assert!(!on_disk.windows(secret.len()).any(|w| w == secret));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // Another node's key cannot read it; a damaged file is named.
        let other = tempfile::tempdir().unwrap();
        let stranger = Vault::open(other.path()).unwrap();
        assert!(matches!(
            load(dir.path(), &stranger),
            Err(PersistError::Sealed { .. })
        ));
        std::fs::write(&path, b"garbage").unwrap();
        let err = load(dir.path(), &vault).unwrap_err().to_string();
        assert!(err.contains(QUEUE_FILE), "{err}");
    }

    #[test]
    fn a_legacy_plaintext_queue_is_sealed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(dir.path()).unwrap();
        let records = vec![record("old")];
        let legacy = dir.path().join(LEGACY_QUEUE_FILE);
        std::fs::write(&legacy, encode(&records)).unwrap();
        assert_eq!(load(dir.path(), &vault).unwrap(), records);
        assert!(!legacy.exists());
        assert_eq!(load(dir.path(), &vault).unwrap(), records);
        std::fs::write(&legacy, b"{\"version\": 9, \"requests\": []}").unwrap();
        std::fs::remove_file(dir.path().join(QUEUE_FILE)).unwrap();
        assert!(matches!(
            load(dir.path(), &vault),
            Err(PersistError::Version { found: 9, .. })
        ));
    }
}
