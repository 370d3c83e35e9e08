//! Metadata documents: splitfile manifests, site manifests and the indirection
//! that lets a large manifest be split like any other content.
//!
//! A document is one version byte followed by a postcard encoding of
//! [`Metadata`]. Decoding checks the total size first, then every sequence and
//! string length against a named limit before allocating for it, then the
//! document's consistency, and finally that it is in canonical form (one
//! document, one encoding), so the same manifest always gives the same block.

mod bounded;

use serde::{Deserialize, Serialize};

use crate::block::BLOCK_PAYLOAD;
use crate::key::{ChkKey, ContentKind, Extra};

/// Version of the metadata format, the first byte of every document.
pub const METADATA_VERSION: u8 = 1;
/// Largest metadata document accepted, in bytes (root or reassembled from a split).
pub const MAX_METADATA_LEN: usize = 40 * 1024 * 1024;
/// Most data blocks in one segment; also the default segment size.
pub const MAX_SEGMENT_DATA_BLOCKS: usize = 128;
/// Most check blocks in one segment.
pub const MAX_SEGMENT_CHECK_BLOCKS: usize = 128;
/// Most keys (data plus check) one splitfile manifest lists: 32 MiB of keys,
/// an 8 GiB file at the default layout.
pub const MAX_SPLITFILE_KEYS: usize = 1 << 19;
/// Most segments in one splitfile (every segment holds at least two keys).
pub const MAX_SEGMENTS: usize = MAX_SPLITFILE_KEYS / 2;
/// Most entries in one site manifest.
pub const MAX_SITE_ENTRIES: usize = 16 * 1024;
/// Longest path of a site entry, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Longest content type, in bytes.
pub const MAX_CONTENT_TYPE_LEN: usize = 128;
/// The entry a site URI without a path (or with a path ending in `/`) shows.
pub const INDEX_FILE: &str = "index.html";

/// Why a metadata document was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    #[error("metadata of {0} bytes exceeds the limit of {MAX_METADATA_LEN}")]
    TooLarge(usize),
    #[error("metadata document is empty")]
    Empty,
    #[error("metadata format version {0} is not supported (this version reads {METADATA_VERSION}); a newer Warren may read it")]
    UnsupportedVersion(u8),
    #[error("metadata is malformed or exceeds a format limit")]
    Malformed(#[from] postcard::Error),
    #[error("metadata has {0} bytes after the end of the document")]
    TrailingBytes(usize),
    #[error("metadata is not in canonical form")]
    NotCanonical,
    #[error("metadata is inconsistent: {0}")]
    Inconsistent(&'static str),
    #[error("site manifest has an invalid path")]
    BadPath(#[from] PathError),
}

/// Why a site path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("the path is {0} bytes long; the limit is {MAX_PATH_LEN}")]
    TooLong(usize),
    #[error("the path has an empty, `.` or `..` component, or starts or ends with `/`")]
    BadComponent,
    #[error("the path contains a control character")]
    ControlCharacter,
}

/// Checks a site path: relative, `/`-separated, no empty, `.` or `..` components.
pub fn validate_path(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong(path.len()));
    }
    if path.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(PathError::BadComponent);
    }
    Ok(())
}

/// Checks a content type: bounded, printable ASCII (it ends up in HTTP headers).
pub fn valid_content_type(content_type: &str) -> bool {
    !content_type.is_empty()
        && content_type.len() <= MAX_CONTENT_TYPE_LEN
        && content_type.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// One segment of a splitfile: its data blocks in order, then its check blocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    #[serde(deserialize_with = "bounded::vec::<_, _, MAX_SEGMENT_DATA_BLOCKS>")]
    pub data: Vec<ChkKey>,
    #[serde(deserialize_with = "bounded::vec::<_, _, MAX_SEGMENT_CHECK_BLOCKS>")]
    pub check: Vec<ChkKey>,
}

/// A file split into segments of data blocks with Reed-Solomon check blocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitfileManifest {
    /// Length of the content in bytes.
    pub len: u64,
    #[serde(deserialize_with = "bounded::opt_string::<_, MAX_CONTENT_TYPE_LEN>")]
    pub content_type: Option<String>,
    #[serde(deserialize_with = "bounded::vec::<_, _, MAX_SEGMENTS>")]
    pub segments: Vec<Segment>,
}

/// One file of a site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    /// Relative path inside the site, such as `css/style.css`.
    #[serde(deserialize_with = "bounded::string::<_, MAX_PATH_LEN>")]
    pub path: String,
    pub key: ChkKey,
    pub extra: Extra,
    #[serde(deserialize_with = "bounded::opt_string::<_, MAX_CONTENT_TYPE_LEN>")]
    pub content_type: Option<String>,
    /// Length of the file's content in bytes.
    pub size: u64,
}

/// A site: entries sorted by path (byte order), each path once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryManifest {
    #[serde(deserialize_with = "bounded::vec::<_, _, MAX_SITE_ENTRIES>")]
    pub entries: Vec<DirectoryEntry>,
}

impl DirectoryManifest {
    /// The entry for `path`, by binary search (entries are sorted).
    pub fn entry(&self, path: &str) -> Option<&DirectoryEntry> {
        self.entries
            .binary_search_by(|entry| entry.path.as_str().cmp(path))
            .ok()
            .map(|index| &self.entries[index])
    }
}

/// What a metadata block (or reassembled split metadata) holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metadata {
    /// The content is this splitfile.
    Splitfile(SplitfileManifest),
    /// The content is a site.
    Directory(DirectoryManifest),
    /// The real document was too large for one block: it is the content of this
    /// splitfile, and is itself a metadata document.
    Indirect(SplitfileManifest),
}

impl Metadata {
    /// Encodes the document: the version byte, then postcard.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![METADATA_VERSION];
        // Serializing into a Vec cannot fail for these types (no maps, no unsized data).
        out.extend(postcard::to_stdvec(self).unwrap_or_default());
        out
    }

    /// Decodes and checks a document from outside: sizes first, then structure,
    /// then consistency, then canonical form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Metadata, MetadataError> {
        if bytes.len() > MAX_METADATA_LEN {
            return Err(MetadataError::TooLarge(bytes.len()));
        }
        let (&version, body) = bytes.split_first().ok_or(MetadataError::Empty)?;
        if version != METADATA_VERSION {
            return Err(MetadataError::UnsupportedVersion(version));
        }
        let (metadata, rest): (Metadata, _) = postcard::take_from_bytes(body)?;
        if !rest.is_empty() {
            return Err(MetadataError::TrailingBytes(rest.len()));
        }
        metadata.validate()?;
        if metadata.to_bytes() != bytes {
            return Err(MetadataError::NotCanonical);
        }
        Ok(metadata)
    }

    /// Checks the rules the types cannot express.
    pub fn validate(&self) -> Result<(), MetadataError> {
        match self {
            Metadata::Splitfile(manifest) => manifest.validate(),
            Metadata::Indirect(manifest) => {
                manifest.validate()?;
                if manifest.content_type.is_some() {
                    return Err(MetadataError::Inconsistent(
                        "split metadata carries a content type",
                    ));
                }
                if manifest.len > MAX_METADATA_LEN as u64 {
                    return Err(MetadataError::TooLarge(
                        usize::try_from(manifest.len).unwrap_or(usize::MAX),
                    ));
                }
                Ok(())
            }
            Metadata::Directory(directory) => directory.validate(),
        }
    }
}

impl SplitfileManifest {
    /// Checks segment sizes, the key budget, and that the data blocks exactly
    /// cover `len` bytes.
    pub fn validate(&self) -> Result<(), MetadataError> {
        if let Some(content_type) = &self.content_type {
            if !valid_content_type(content_type) {
                return Err(MetadataError::Inconsistent(
                    "content type is empty or not printable ASCII",
                ));
            }
        }
        if self.segments.is_empty() {
            return Err(MetadataError::Inconsistent("splitfile has no segments"));
        }
        let mut data_blocks: u64 = 0;
        let mut keys: usize = 0;
        for segment in &self.segments {
            if segment.data.is_empty() {
                return Err(MetadataError::Inconsistent("a segment has no data blocks"));
            }
            data_blocks += segment.data.len() as u64;
            keys += segment.data.len() + segment.check.len();
        }
        if keys > MAX_SPLITFILE_KEYS {
            return Err(MetadataError::Inconsistent(
                "splitfile lists more keys than the format allows",
            ));
        }
        if self.len == 0 || data_blocks != self.len.div_ceil(BLOCK_PAYLOAD as u64) {
            return Err(MetadataError::Inconsistent(
                "the data blocks do not match the file length",
            ));
        }
        Ok(())
    }
}

impl DirectoryManifest {
    /// Checks paths, content types, ordering, and sizes of single-block entries.
    pub fn validate(&self) -> Result<(), MetadataError> {
        let mut previous: Option<&str> = None;
        for entry in &self.entries {
            validate_path(&entry.path)?;
            if previous.is_some_and(|prev| prev >= entry.path.as_str()) {
                return Err(MetadataError::Inconsistent(
                    "site entries are not sorted by path, or a path repeats",
                ));
            }
            previous = Some(&entry.path);
            if entry
                .content_type
                .as_deref()
                .is_some_and(|ct| !valid_content_type(ct))
            {
                return Err(MetadataError::Inconsistent(
                    "a site entry's content type is empty or not printable ASCII",
                ));
            }
            if entry.extra.kind == ContentKind::Data && entry.size > BLOCK_PAYLOAD as u64 {
                return Err(MetadataError::Inconsistent(
                    "a single-block site entry claims more than one block of content",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
