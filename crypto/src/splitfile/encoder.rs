//! The streaming splitfile encoder: bytes in, blocks out, one segment at a time.

use crate::block::{BlockError, ChkBlock, BLOCK_PAYLOAD};
use crate::key::{ChkKey, Extra};
use crate::metadata::{
    valid_content_type, Metadata, Segment, SplitfileManifest, MAX_METADATA_LEN, MAX_SPLITFILE_KEYS,
};
use crate::uri::ChkUri;

use super::fec::{FecEncoder, FecError};
use super::{SplitfileConfig, MAX_METADATA_DEPTH};

/// Why content could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("segment size {0} is outside {min}..={max} data blocks", min = super::MIN_SEGMENT_DATA_BLOCKS, max = crate::metadata::MAX_SEGMENT_DATA_BLOCKS)]
    BadConfig(usize),
    #[error("content type is empty, longer than {max} bytes, or not printable ASCII", max = crate::metadata::MAX_CONTENT_TYPE_LEN)]
    BadContentType,
    #[error("content is too large: a splitfile lists at most {MAX_SPLITFILE_KEYS} blocks")]
    TooLarge,
    #[error("metadata of {0} bytes is too large to split (limit {MAX_METADATA_LEN})")]
    MetadataTooLarge(usize),
    #[error("metadata would need more than {MAX_METADATA_DEPTH} levels of splitting")]
    MetadataTooDeep,
    #[error("block encoding failed")]
    Block(#[from] BlockError),
    #[error("erasure coding failed")]
    Fec(#[from] FecError),
}

/// The blocks of one piece of content and the URI that reads it.
#[derive(Debug)]
pub struct Encoded {
    /// Every block still to be inserted (the root block is last).
    pub blocks: Vec<ChkBlock>,
    pub uri: ChkUri,
}

/// Turns a byte stream of any size into CHK blocks.
///
/// Push bytes in; each call returns the blocks of every segment it completed,
/// so memory stays at about one segment however large the content.
///
/// Layout of `n` data blocks with segment size `s`: full segments of `s`
/// blocks, then the rest as one segment; except that when the rest would be a
/// single block, the last two segments are `s - 1` and `2` blocks. `finish`
/// emits the last segment, the manifest blocks and the root URI. Content of at
/// most one block becomes a single data block and carries no content type.
#[derive(Debug)]
pub struct SplitfileEncoder {
    config: SplitfileConfig,
    content_type: Option<String>,
    /// Bytes of the segment being filled; at most one segment's worth.
    buffer: Vec<u8>,
    len: u64,
    segments: Vec<Segment>,
    keys: usize,
    fec: FecEncoder,
}

impl SplitfileEncoder {
    pub fn new(content_type: Option<String>) -> Self {
        Self::build(content_type, SplitfileConfig::default())
    }

    /// An encoder with a non-default segment size (smaller segments: less
    /// memory per segment, more manifest per byte).
    pub fn with_config(
        content_type: Option<String>,
        config: SplitfileConfig,
    ) -> Result<Self, EncodeError> {
        config.validate()?;
        Ok(Self::build(content_type, config))
    }

    fn build(content_type: Option<String>, config: SplitfileConfig) -> Self {
        SplitfileEncoder {
            config,
            content_type,
            buffer: Vec::new(),
            len: 0,
            segments: Vec::new(),
            keys: 0,
            fec: FecEncoder::default(),
        }
    }

    /// Bytes pushed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn segment_bytes(&self) -> usize {
        self.config.segment_data_blocks * BLOCK_PAYLOAD
    }

    /// Adds content; returns the blocks of each segment this completed.
    pub fn push(&mut self, mut data: &[u8]) -> Result<Vec<ChkBlock>, EncodeError> {
        let mut out = Vec::new();
        // The buffer holds one segment plus one block of lookahead: a segment is
        // emitted only once more bytes follow that lookahead, so `finish` never
        // faces a lone one-block remainder (see `finish_manifest`).
        let capacity = self.segment_bytes() + BLOCK_PAYLOAD;
        while !data.is_empty() {
            if self.buffer.len() == capacity {
                self.emit_segment(self.config.segment_data_blocks, &mut out)?;
            }
            let room = capacity - self.buffer.len();
            let (now, later) = data.split_at(room.min(data.len()));
            if self.buffer.capacity() == 0 {
                self.buffer.reserve_exact(capacity);
            }
            self.buffer.extend_from_slice(now);
            self.len += now.len() as u64;
            data = later;
        }
        Ok(out)
    }

    /// Encodes the first `blocks` blocks of the buffer as a segment: data
    /// blocks, then as many check blocks.
    fn emit_segment(&mut self, blocks: usize, out: &mut Vec<ChkBlock>) -> Result<(), EncodeError> {
        let end = (blocks * BLOCK_PAYLOAD).min(self.buffer.len());
        let chunks = self.buffer[..end].chunks(BLOCK_PAYLOAD);
        let count = chunks.len();
        self.keys += 2 * count;
        if self.keys > MAX_SPLITFILE_KEYS {
            return Err(EncodeError::TooLarge);
        }
        out.reserve(2 * count);
        let mut segment = Segment {
            data: Vec::with_capacity(count),
            check: Vec::with_capacity(count),
        };
        for chunk in chunks.clone() {
            let (block, key) = ChkBlock::encode(chunk)?;
            segment.data.push(key);
            out.push(block);
        }
        let mut failure = None;
        self.fec
            .encode(chunks, count, |shard| match ChkBlock::encode(shard) {
                Ok((block, key)) => {
                    segment.check.push(key);
                    out.push(block);
                }
                Err(err) => failure = Some(err),
            })?;
        if let Some(err) = failure {
            return Err(err.into());
        }
        self.segments.push(segment);
        self.buffer.drain(..end);
        Ok(())
    }

    /// Emits the last segment and returns the manifest, or the single data
    /// block's key when the content fits in one block.
    fn finish_manifest(
        mut self,
        out: &mut Vec<ChkBlock>,
    ) -> Result<Result<SplitfileManifest, ChkKey>, EncodeError> {
        if self.segments.is_empty() && self.buffer.len() <= BLOCK_PAYLOAD {
            let (block, key) = ChkBlock::encode(&self.buffer)?;
            out.push(block);
            return Ok(Err(key));
        }
        let full = self.config.segment_data_blocks;
        if self.buffer.len() > self.segment_bytes() {
            // One segment and a bit more: a one-block last segment would get a
            // check block identical to its data block (no redundancy at all),
            // so cut it as `full - 1` blocks and then 2.
            self.emit_segment(full - 1, out)?;
        }
        if !self.buffer.is_empty() {
            self.emit_segment(full, out)?;
        }
        Ok(Ok(SplitfileManifest {
            len: self.len,
            content_type: self.content_type,
            segments: self.segments,
        }))
    }

    /// Emits the last segment, the manifest blocks and the root URI.
    pub fn finish(self) -> Result<Encoded, EncodeError> {
        if self
            .content_type
            .as_deref()
            .is_some_and(|ct| !valid_content_type(ct))
        {
            return Err(EncodeError::BadContentType);
        }
        let config = self.config;
        let mut blocks = Vec::new();
        let uri = match self.finish_manifest(&mut blocks)? {
            Err(key) => ChkUri::new(key, Extra::DATA),
            Ok(manifest) => encode_metadata(&Metadata::Splitfile(manifest), config, &mut blocks)?,
        };
        Ok(Encoded { blocks, uri })
    }
}

/// Encodes a metadata document as a root block, splitting it (and the manifest
/// of the split, and so on) while it does not fit in one block.
pub(crate) fn encode_metadata(
    document: &Metadata,
    config: SplitfileConfig,
    out: &mut Vec<ChkBlock>,
) -> Result<ChkUri, EncodeError> {
    let mut bytes = document.to_bytes();
    for _ in 0..MAX_METADATA_DEPTH {
        if bytes.len() <= BLOCK_PAYLOAD {
            break;
        }
        if bytes.len() > MAX_METADATA_LEN {
            return Err(EncodeError::MetadataTooLarge(bytes.len()));
        }
        let mut split = SplitfileEncoder::build(None, config);
        out.extend(split.push(&bytes)?);
        let Ok(manifest) = split.finish_manifest(out)? else {
            unreachable!("more than one block of metadata always makes a manifest");
        };
        bytes = Metadata::Indirect(manifest).to_bytes();
    }
    if bytes.len() > BLOCK_PAYLOAD {
        return Err(EncodeError::MetadataTooDeep);
    }
    let (block, key) = ChkBlock::encode(&bytes)?;
    out.push(block);
    Ok(ChkUri::new(key, Extra::METADATA))
}

/// Encodes content held in memory: the one-shot form of [`SplitfileEncoder`].
pub fn encode_bytes(data: &[u8], content_type: Option<String>) -> Result<Encoded, EncodeError> {
    let mut encoder = SplitfileEncoder::new(content_type);
    let mut blocks = encoder.push(data)?;
    let mut rest = encoder.finish()?;
    blocks.append(&mut rest.blocks);
    Ok(Encoded {
        blocks,
        uri: rest.uri,
    })
}
