//! Building a site manifest from files already encoded.

use std::collections::BTreeMap;

use crate::block::BLOCK_PAYLOAD;
use crate::key::ContentKind;
use crate::metadata::{
    valid_content_type, validate_path, DirectoryEntry, DirectoryManifest, Metadata, PathError,
    MAX_SITE_ENTRIES,
};
use crate::uri::ChkUri;

use super::encoder::{encode_metadata, EncodeError, Encoded};
use super::SplitfileConfig;

/// One file of a site, already encoded.
#[derive(Clone, Debug)]
pub struct SiteEntry {
    /// Path inside the site, such as `index.html` or `css/style.css`.
    pub path: String,
    pub content_type: Option<String>,
    /// The file's URI (its path, if any, is ignored).
    pub uri: ChkUri,
    /// The file's length in bytes; fetchers check it.
    pub size: u64,
}

/// Why an entry could not be added to a site.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    #[error("invalid site path `{path}`: {reason}")]
    BadPath { path: String, reason: PathError },
    #[error("the site already has a file at `{0}`")]
    Duplicate(String),
    #[error("a site holds at most {MAX_SITE_ENTRIES} files")]
    TooManyEntries,
    #[error("content type of `{0}` is empty, too long, or not printable ASCII")]
    BadContentType(String),
    #[error("`{0}` is a single-block key but its size is more than one block")]
    SizeMismatch(String),
}

/// Collects encoded files into a site manifest (a directory a browser can walk).
///
/// Entries are kept sorted by path, so the same files always give the same
/// manifest and the same site URI.
#[derive(Debug, Default)]
pub struct SiteBuilder {
    entries: BTreeMap<String, DirectoryEntry>,
    config: SplitfileConfig,
}

impl SiteBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder that splits a large manifest with a non-default segment size.
    pub fn with_config(config: SplitfileConfig) -> Result<Self, EncodeError> {
        config.validate()?;
        Ok(SiteBuilder {
            entries: BTreeMap::new(),
            config,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn add(&mut self, entry: SiteEntry) -> Result<(), SiteError> {
        validate_path(&entry.path).map_err(|reason| SiteError::BadPath {
            path: entry.path.clone(),
            reason,
        })?;
        if entry
            .content_type
            .as_deref()
            .is_some_and(|ct| !valid_content_type(ct))
        {
            return Err(SiteError::BadContentType(entry.path));
        }
        if entry.uri.extra.kind == ContentKind::Data && entry.size > BLOCK_PAYLOAD as u64 {
            return Err(SiteError::SizeMismatch(entry.path));
        }
        if self.entries.contains_key(&entry.path) {
            return Err(SiteError::Duplicate(entry.path));
        }
        if self.entries.len() == MAX_SITE_ENTRIES {
            return Err(SiteError::TooManyEntries);
        }
        self.entries.insert(
            entry.path.clone(),
            DirectoryEntry {
                path: entry.path,
                key: entry.uri.key,
                extra: entry.uri.extra,
                content_type: entry.content_type,
                size: entry.size,
            },
        );
        Ok(())
    }

    /// Encodes the manifest: its blocks (root last) and the site's URI.
    pub fn finish(self) -> Result<Encoded, EncodeError> {
        let manifest = DirectoryManifest {
            entries: self.entries.into_values().collect(),
        };
        let mut blocks = Vec::new();
        let uri = encode_metadata(&Metadata::Directory(manifest), self.config, &mut blocks)?;
        Ok(Encoded { blocks, uri })
    }
}
