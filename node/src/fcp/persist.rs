//! The queue file: `Persistence=forever` requests, kept in the data
//! directory so they survive a restart of the node.
//!
//! `<data dir>/fcp-queue.json`, JSON, written whole each time the set of
//! requests or a request's outcome changes: to a temporary file, fsynced,
//! renamed over the old one, and the directory fsynced, so a crash leaves
//! the old file or the new one, never a mix. Mode 0600: it names the keys
//! and file names of the node's own persistent requests (see `docs/FCP.md`).
//! Read back with a size check before reading and a count check after.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name in the data directory.
pub const QUEUE_FILE: &str = "fcp-queue.json";
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
    },
    /// Content that came over the connection, which is not kept: after a
    /// restart such a request can only fail.
    NotResumable,
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

/// Reads the queue file; no file is an empty queue.
pub(super) fn load(path: &Path) -> Result<Vec<Record>, PersistError> {
    let io = |source| PersistError::Io {
        path: path.into(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
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
    decode(&bytes, path)
}

/// Writes the queue file crash-safely: temporary file, fsync, rename, fsync
/// of the directory.
pub(super) fn save(path: &Path, requests: &[Record]) -> Result<(), PersistError> {
    let io = |source| PersistError::Io {
        path: path.into(),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(&encode(requests)).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
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
                    chk_only
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

    #[test]
    fn save_then_load_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(QUEUE_FILE);
        assert!(load(&path).unwrap().is_empty());
        let record = Record {
            client: None,
            identifier: "a".into(),
            kind: "PersistentGet".into(),
            fields: vec![("URI".into(), "CHK@x".into())],
            kept: vec![],
            done: false,
            succeeded: false,
            resume: Resume::NotResumable,
        };
        save(&path, std::slice::from_ref(&record)).unwrap();
        assert_eq!(load(&path).unwrap(), vec![record]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(&path, b"{\"version\": 9, \"requests\": []}").unwrap();
        assert!(matches!(
            load(&path),
            Err(PersistError::Version { found: 9, .. })
        ));
        std::fs::write(&path, b"garbage").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains(QUEUE_FILE), "{err}");
    }
}
