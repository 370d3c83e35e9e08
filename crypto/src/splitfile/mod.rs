//! Splitfiles: content of any size as segments of CHK data blocks, each
//! segment with as many Reed-Solomon check blocks as data blocks, so any half
//! of a segment's blocks recovers it; plus the manifests that list them.
//!
//! - [`SplitfileEncoder`] / [`encode_bytes`]: content in, blocks and a URI out.
//! - [`SiteBuilder`]: encoded files in, a site manifest and its URI out.
//! - [`ContentFetcher`]: a URI in; it says which blocks to fetch, takes them
//!   (or news that they are missing) and hands back the content in order.
//!
//! All of it is sans-IO: no files, sockets, clocks or threads.

mod download;
mod encoder;
pub mod fec;
mod fetcher;
mod site;

pub use encoder::{encode_bytes, EncodeError, Encoded, SplitfileEncoder};
pub use fetcher::{ContentFetcher, FetchError, Part};
pub use site::{SiteBuilder, SiteEntry, SiteError};

use crate::metadata::MAX_SEGMENT_DATA_BLOCKS;

/// Data blocks per segment by default (each segment also gets as many check blocks).
pub const DEFAULT_SEGMENT_DATA_BLOCKS: usize = MAX_SEGMENT_DATA_BLOCKS;
/// Most levels of split metadata (a manifest too large for one block is split,
/// and so on). Two levels already reach the largest manifest allowed.
pub const MAX_METADATA_DEPTH: usize = 4;
/// Most metadata documents one fetch reads before its content (split levels,
/// site manifests, nested sites), so a hostile chain cannot run on forever.
pub const MAX_METADATA_HOPS: usize = 8;
/// Fewest data blocks per full segment: smaller segments could end in a
/// one-block segment, whose single check block is a copy of its data block.
pub const MIN_SEGMENT_DATA_BLOCKS: usize = 3;
/// Segments a fetch asks for blocks of at once: the one being output and
/// seven ahead. Their data blocks (8 x 128 at most) are what a wide-area
/// fetch can keep in flight: a path of a few 80 ms links has a block round
/// trip of ~360 ms, and 512 blocks in flight (four segments) capped such a
/// fetch at about a third of its loopback speed.
pub const FETCH_WINDOW_SEGMENTS: usize = 8;
/// Blocks of content a fetch holds in memory for the segments behind its
/// front one (which is always taken in): three segments' worth, so a fetch
/// holds at most 4 x 128 x 32 KiB = 16 MiB however many segments it asks
/// for. Past it, an answer for a later segment is handed back to the driver
/// as it came (ciphertext, [`ContentFetcher::take_parked`]) to keep out of
/// memory and give back when it is asked for again.
pub const FETCH_HELD_BLOCKS: usize = 3 * MAX_SEGMENT_DATA_BLOCKS;

/// How content is cut into segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitfileConfig {
    /// Data blocks per full segment ([`MIN_SEGMENT_DATA_BLOCKS`]..=[`MAX_SEGMENT_DATA_BLOCKS`]);
    /// the last segment holds the rest (see `SplitfileEncoder` for the exact layout). Each segment gets as many check blocks.
    pub segment_data_blocks: usize,
}

impl Default for SplitfileConfig {
    fn default() -> Self {
        SplitfileConfig {
            segment_data_blocks: DEFAULT_SEGMENT_DATA_BLOCKS,
        }
    }
}

impl SplitfileConfig {
    pub fn validate(self) -> Result<(), EncodeError> {
        if (MIN_SEGMENT_DATA_BLOCKS..=MAX_SEGMENT_DATA_BLOCKS).contains(&self.segment_data_blocks) {
            Ok(())
        } else {
            Err(EncodeError::BadConfig(self.segment_data_blocks))
        }
    }
}

#[cfg(test)]
mod tests;
