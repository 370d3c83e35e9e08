//! The sans-IO fetch state machine the network client drives.

use core::fmt;
use std::collections::VecDeque;

use crate::block::{BlockError, ChkBlock};
use crate::key::{ChkKey, ContentKind, RoutingKey};
use crate::metadata::{
    DirectoryManifest, Metadata, MetadataError, SplitfileManifest, INDEX_FILE, MAX_PATH_LEN,
};
use crate::uri::ChkUri;

use super::download::Download;
use super::fec::FecError;
use super::{MAX_METADATA_DEPTH, MAX_METADATA_HOPS};

/// Which part of a fetch an error concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The content itself.
    Content,
    /// A metadata document (manifest), at this many hops from the root block.
    Metadata { hop: usize },
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Content => f.write_str("content"),
            Part::Metadata { hop } => write!(f, "metadata (level {hop})"),
        }
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncated(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Why a fetch failed. Every error is final: the fetcher wants nothing more.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("a block of the {part} is unreadable under the key its manifest gives: it was inserted corrupt or forged")]
    BadBlock { part: Part, source: BlockError },
    #[error("a block of the {part} holds {actual} bytes where its manifest says {expected}: the insert is corrupt")]
    WrongBlockLength {
        part: Part,
        expected: usize,
        actual: usize,
    },
    #[error("segment {segment} (of {segments}, counted from 0) of the {part} cannot be recovered: {missing} of its {blocks} blocks are missing ({found} found, {needed} needed, at most {available} findable): evicted from the network or never inserted")]
    SegmentUnrecoverable {
        part: Part,
        segment: usize,
        segments: usize,
        /// Blocks of the segment (data and check).
        blocks: usize,
        /// Blocks fetched so far.
        found: usize,
        /// Blocks reported not found.
        missing: usize,
        available: usize,
        needed: usize,
    },
    #[error("the {part} block was not found in the network, nor any of its copies: evicted from the network or never inserted")]
    BlockNotFound { part: Part },
    #[error("recovered blocks of segment {segment} of the {part} do not match their keys: the insert has inconsistent check blocks")]
    InconsistentSegment { part: Part, segment: usize },
    #[error("erasure decoding of segment {segment} of the {part} failed")]
    Fec {
        part: Part,
        segment: usize,
        source: FecError,
    },
    #[error("the {part} is invalid")]
    Metadata { part: Part, source: MetadataError },
    #[error("this site has no file `{path}`")]
    NotInSite { path: String },
    #[error("`{path}` is a directory of this site: add a trailing `/` for its index.html")]
    SiteDirectory { path: String },
    #[error("metadata is nested too deeply (more than {MAX_METADATA_HOPS} documents, or {MAX_METADATA_DEPTH} levels of split metadata)")]
    TooDeep,
    #[error("the site lists this file as {expected} bytes but its content is {actual} bytes")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("this fetch has already failed")]
    AlreadyFailed,
}

#[derive(Debug)]
enum Stage {
    /// One block: content (a single-block file) or a metadata document.
    Block {
        key: ChkKey,
        kind: ContentKind,
        requested: bool,
    },
    /// A splitfile of content, handed out as segments complete.
    Content(Download),
    /// A splitfile holding a metadata document, collected then parsed.
    SplitMetadata {
        download: Download,
        buffer: Vec<u8>,
    },
    Done,
    Failed,
}

/// Fetches and decodes the content behind a URI, without doing any IO.
///
/// The driver loop: ask [`wanted`](Self::wanted) for keys, fetch them, hand
/// each result to [`on_block`](Self::on_block) or
/// [`on_missing`](Self::on_missing), and drain [`take_output`](Self::take_output)
/// (content in order, a segment at a time) until [`is_done`](Self::is_done).
/// Any error is final. Memory: the splitfile manifest, the segment being
/// output and [`FETCH_HELD_BLOCKS`](super::FETCH_HELD_BLOCKS) blocks of the
/// segments after it (answers past that are handed back, see
/// [`take_parked`](Self::take_parked)), and the state of
/// [`FETCH_WINDOW_SEGMENTS`](super::FETCH_WINDOW_SEGMENTS) segments.
#[derive(Debug)]
pub struct ContentFetcher {
    stage: Stage,
    /// The site path still to resolve, if the URI named one.
    path: Option<String>,
    hops: usize,
    split_depth: usize,
    content_type: Option<String>,
    total_len: Option<u64>,
    output: VecDeque<Vec<u8>>,
    /// Whether the key named a site (the path was resolved in its manifest).
    site: bool,
    /// Rebuilt blocks taken from the download, for [`Self::take_rebuilt`].
    rebuilt: Vec<ChkBlock>,
    /// Answers handed back by the download, for [`Self::take_parked`].
    parked: Vec<ChkBlock>,
    /// Blocks of content held for segments behind the front one, at most.
    held_limit: usize,
    /// Segments asked for at once.
    lookahead: usize,
}

impl ContentFetcher {
    pub fn new(uri: &ChkUri) -> Self {
        ContentFetcher {
            stage: Stage::Block {
                key: uri.key.clone(),
                kind: uri.extra.kind,
                requested: false,
            },
            path: uri.path.clone(),
            hops: 0,
            split_depth: 0,
            content_type: None,
            total_len: None,
            output: VecDeque::new(),
            site: false,
            rebuilt: Vec::new(),
            parked: Vec::new(),
            held_limit: super::FETCH_HELD_BLOCKS,
            lookahead: super::FETCH_WINDOW_SEGMENTS,
        }
    }

    /// As [`Self::new`], holding at most `blocks` blocks of content in
    /// memory for the segments behind the one being output (default
    /// [`FETCH_HELD_BLOCKS`](super::FETCH_HELD_BLOCKS)).
    pub fn with_held_limit(uri: &ChkUri, blocks: usize) -> Self {
        ContentFetcher {
            held_limit: blocks,
            ..Self::new(uri)
        }
    }

    /// Whether the key named a site and the content is one of its files
    /// (known once [`total_len`](Self::total_len) is). A gateway uses it to
    /// send browsers from `CHK@…` to `CHK@…/`, where relative links resolve.
    pub fn is_site(&self) -> bool {
        self.site
    }

    /// The key of the single block wanted now when that block is a document's
    /// root (the URI's own, or a site entry's), which a driver may rebuild
    /// from its copies (`crate::copies`) if the network lost it.
    pub fn root_key(&self) -> Option<&ChkKey> {
        match &self.stage {
            Stage::Block { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Up to `max` routing keys to request now. Each is returned once; answer
    /// it with `on_block` or `on_missing`.
    pub fn wanted(&mut self, max: usize) -> Vec<RoutingKey> {
        match &mut self.stage {
            Stage::Block { key, requested, .. } if !*requested && max > 0 => {
                *requested = true;
                vec![key.routing]
            }
            Stage::Content(download) | Stage::SplitMetadata { download, .. } => {
                download.wanted(max)
            }
            _ => Vec::new(),
        }
    }

    fn part(&self) -> Part {
        match &self.stage {
            Stage::Block {
                kind: ContentKind::Data,
                ..
            }
            | Stage::Content(_) => Part::Content,
            _ => Part::Metadata { hop: self.hops },
        }
    }

    /// Takes a block the network returned. Blocks not asked for (or no longer
    /// needed, such as late answers for a recovered segment) are ignored.
    pub fn on_block(&mut self, block: &ChkBlock) -> Result<(), FetchError> {
        let result = self.handle_block(block);
        if result.is_err() {
            self.stage = Stage::Failed;
        }
        result
    }

    /// Records that a requested block was not found. Check blocks are asked
    /// for instead; fails once a segment can no longer be recovered.
    pub fn on_missing(&mut self, key: RoutingKey) -> Result<(), FetchError> {
        let part = self.part();
        let result = match &mut self.stage {
            Stage::Block { key: wanted, .. } if wanted.routing == key => {
                Err(FetchError::BlockNotFound { part })
            }
            Stage::Content(download) | Stage::SplitMetadata { download, .. } => {
                download.on_missing(key).map(|_| ())
            }
            Stage::Failed => Err(FetchError::AlreadyFailed),
            _ => Ok(()),
        };
        if result.is_err() {
            self.stage = Stage::Failed;
        }
        result
    }

    /// Data blocks the network reported missing that the erasure code has
    /// rebuilt since the last call (checked against the manifest): what a
    /// driver may re-insert to heal the document. Bounded per segment.
    pub fn take_rebuilt(&mut self) -> Vec<ChkBlock> {
        core::mem::take(&mut self.rebuilt)
    }

    /// Asks for the blocks of at most `segments` segments at once (1 to
    /// [`FETCH_WINDOW_SEGMENTS`](super::FETCH_WINDOW_SEGMENTS), the
    /// default). A driver on a near path sets fewer: the requests it keeps
    /// in flight fill them, and asking further ahead would only park
    /// answers.
    pub fn set_lookahead(&mut self, segments: usize) {
        self.lookahead = segments;
        if let Stage::Content(download) | Stage::SplitMetadata { download, .. } = &mut self.stage {
            download.set_lookahead(segments);
        }
    }

    /// Blocks that answered a request but were handed back because the
    /// fetch's memory was at its bound (see
    /// [`FETCH_HELD_BLOCKS`](super::FETCH_HELD_BLOCKS)): verified against
    /// nothing yet, as they came. Their keys are asked for again by
    /// [`wanted`](Self::wanted) later; a driver that kept a block answers
    /// that request with it instead of asking the network. One dropped is
    /// only fetched again.
    pub fn take_parked(&mut self) -> Vec<ChkBlock> {
        core::mem::take(&mut self.parked)
    }

    /// Blocks of content the download holds now (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn held_blocks(&self) -> usize {
        match &self.stage {
            Stage::Content(download) | Stage::SplitMetadata { download, .. } => {
                download.held_blocks()
            }
            _ => 0,
        }
    }

    /// The next piece of content, in order. Pieces are whole segments (or the
    /// single block of a small file).
    pub fn take_output(&mut self) -> Option<Vec<u8>> {
        self.output.pop_front()
    }

    /// The content type, once known (from the site entry or the file's manifest).
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The content's length in bytes, once known.
    pub fn total_len(&self) -> Option<u64> {
        self.total_len
    }

    /// All content decoded and taken.
    pub fn is_done(&self) -> bool {
        matches!(self.stage, Stage::Done) && self.output.is_empty()
    }

    pub fn has_failed(&self) -> bool {
        matches!(self.stage, Stage::Failed)
    }

    fn handle_block(&mut self, block: &ChkBlock) -> Result<(), FetchError> {
        let part = self.part();
        match &mut self.stage {
            Stage::Block { key, kind, .. } if key.routing == block.routing_key() => {
                let plain = block
                    .decode(&key.crypto)
                    .map_err(|source| FetchError::BadBlock { part, source })?;
                match kind {
                    ContentKind::Data => {
                        self.set_len(plain.len() as u64)?;
                        self.output.push_back(plain);
                        self.stage = Stage::Done;
                        Ok(())
                    }
                    ContentKind::Metadata => self.on_metadata(&plain),
                }
            }
            Stage::Content(download) => {
                download.on_block(block)?;
                self.rebuilt.extend(download.take_rebuilt());
                self.parked.extend(download.take_parked());
                while let Some(content) = download.take_decoded() {
                    self.output.push_back(content);
                }
                if download.is_complete() {
                    self.stage = Stage::Done;
                }
                Ok(())
            }
            Stage::SplitMetadata { download, buffer } => {
                download.on_block(block)?;
                self.rebuilt.extend(download.take_rebuilt());
                self.parked.extend(download.take_parked());
                while let Some(content) = download.take_decoded() {
                    buffer.extend_from_slice(&content);
                }
                if download.is_complete() {
                    let document = core::mem::take(buffer);
                    self.on_metadata(&document)
                } else {
                    Ok(())
                }
            }
            Stage::Failed => Err(FetchError::AlreadyFailed),
            _ => Ok(()),
        }
    }

    fn set_len(&mut self, actual: u64) -> Result<(), FetchError> {
        match self.total_len {
            Some(expected) if expected != actual => {
                Err(FetchError::SizeMismatch { expected, actual })
            }
            _ => {
                self.total_len = Some(actual);
                Ok(())
            }
        }
    }

    /// Parses a metadata document and moves to what it points at.
    fn on_metadata(&mut self, bytes: &[u8]) -> Result<(), FetchError> {
        let part = Part::Metadata { hop: self.hops };
        self.hops += 1;
        if self.hops > MAX_METADATA_HOPS {
            return Err(FetchError::TooDeep);
        }
        let document =
            Metadata::from_bytes(bytes).map_err(|source| FetchError::Metadata { part, source })?;
        match document {
            Metadata::Splitfile(manifest) => self.start_content(manifest),
            Metadata::Indirect(manifest) => {
                self.split_depth += 1;
                if self.split_depth > MAX_METADATA_DEPTH {
                    return Err(FetchError::TooDeep);
                }
                let mut download = Download::with_held_limit(
                    manifest,
                    Part::Metadata { hop: self.hops },
                    self.held_limit,
                );
                download.set_lookahead(self.lookahead);
                self.stage = Stage::SplitMetadata {
                    download,
                    buffer: Vec::new(),
                };
                Ok(())
            }
            Metadata::Directory(directory) => self.enter_site(&directory),
        }
    }

    fn start_content(&mut self, manifest: SplitfileManifest) -> Result<(), FetchError> {
        self.set_len(manifest.len)?;
        if self.content_type.is_none() {
            self.content_type.clone_from(&manifest.content_type);
        }
        let mut download = Download::with_held_limit(manifest, Part::Content, self.held_limit);
        download.set_lookahead(self.lookahead);
        self.stage = Stage::Content(download);
        Ok(())
    }

    /// Resolves the URI's path (or `index.html`) in a site manifest.
    fn enter_site(&mut self, directory: &DirectoryManifest) -> Result<(), FetchError> {
        let wanted = match self.path.take() {
            None => INDEX_FILE.to_owned(),
            Some(path) if path.is_empty() || path.ends_with('/') => path + INDEX_FILE,
            Some(path) => path,
        };
        let Some(entry) = directory.entry(&wanted) else {
            let index = format!("{wanted}/{INDEX_FILE}");
            if !wanted.ends_with('/') && directory.entry(&index).is_some() {
                return Err(FetchError::SiteDirectory {
                    path: truncated(wanted, MAX_PATH_LEN),
                });
            }
            return Err(FetchError::NotInSite {
                path: truncated(wanted, MAX_PATH_LEN),
            });
        };
        self.site = true;
        // The site's own content type wins over the file's; sizes must agree.
        self.content_type.clone_from(&entry.content_type);
        self.total_len = Some(entry.size);
        self.split_depth = 0;
        self.stage = Stage::Block {
            key: entry.key.clone(),
            kind: entry.extra.kind,
            requested: false,
        };
        Ok(())
    }
}
