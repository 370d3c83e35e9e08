//! Root shards: the root block of a document that names a tree of blocks (a
//! splitfile's or a site's manifest), erasure-coded into small signed blocks
//! at places found from the URI alone.
//!
//! A tree's segments survive while any half of each does. Copies of its root
//! ([`crate::copies`]) are lost independently of the data, so however many
//! there are, some documents whose every segment was still recoverable were
//! lost by their root alone (a 2 + 2 segment outlives seven copies of its
//! root a fair share of the time when few blocks survive). Shards fix both
//! sides of that: they are coded at a quarter rate, so any quarter of them
//! rebuilds the root, and they are SSK blocks, which a store keeps in their
//! own keyspace beside, not among, the data blocks (`docs/STORE.md`).
//!
//! ```text
//! root content  C     what the root block decodes to (1 ... 32768 bytes)
//! pieces        k     = max(1, ceil(|C| / 960))
//! checks        m     = max(6, 3 k)
//! piece j < k         C[960 j ..] zero-padded to 960 bytes
//! piece j >= k        k = 1: piece 0 again; else check shard j - k of the
//!                     pieces under the segment code (section 6.2), computed
//!                     over 960-byte shards
//! shard seed    s_j   = SHA-256("warren-root-shard-seed-v1" ‖ K ‖ j)   j one byte
//! shard key     P_j   = SHA-256("warren-root-shard-ssk-v1" ‖ K ‖ j)
//! shard               the SSK document "root-shard" of seed s_j and crypto
//!                     key P_j, kind 0, holding k ‖ m ‖ |C| (u16 BE) ‖ piece j
//! ```
//!
//! A fetcher that found neither the root nor its copies asks for shards
//! `0, 1, ...`; the first it reads fixes `k` and `m`, and once it holds any
//! `k` shards that agree on them it rebuilds `C` and accepts it only if
//! re-encoding gives the root again, as for a copy: whoever knew `K` before
//! the insert can squat shards and deny the root, never substitute it.

use zeroize::Zeroizing;

use crate::block::{ChkBlock, BLOCK_PAYLOAD};
use crate::copies::CopyError;
use crate::key::{ChkKey, CryptoKey, RoutingKey};
use crate::splitfile::fec::{self, FecEncoder, SHARD_LEN};
use crate::ssk::{HashedName, SskBlock, SskPayload, SskPrivateKey};

/// Bytes of the root each shard carries (a multiple of the codec's 64-byte
/// unit, so the segment code over 960-byte shards is the same code over
/// full shards cut short).
pub const PIECE_LEN: usize = 960;
/// Bytes of a shard's payload: the 4-byte layout, then the piece.
pub const SHARD_PAYLOAD_LEN: usize = 4 + PIECE_LEN;
/// Fewest check shards (as many places as a one-piece root's copies had).
pub const MIN_CHECKS: u8 = 6;
/// Shards a fetcher asks for before one has told it the layout; past them
/// the root is taken as lost (at a quarter surviving, all 32 are missing
/// with odds 0.75^32, 1 in 10,000).
pub const BLIND_SHARDS: u8 = 32;
/// Domain of a shard's signing seed.
pub const SHARD_SEED_DOMAIN: &[u8] = b"warren-root-shard-seed-v1";
/// Domain of a shard's crypto key.
pub const SHARD_CRYPTO_DOMAIN: &[u8] = b"warren-root-shard-ssk-v1";
/// A shard's SSK document name.
pub const SHARD_NAME: &str = "root-shard";

/// How a root is cut: `pieces` (k) data shards, `checks` (m) check shards,
/// `len` bytes of root content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLayout {
    pub pieces: u8,
    pub checks: u8,
    pub len: u16,
}

impl ShardLayout {
    /// The layout of a root of `len` bytes; `None` past one block's payload.
    pub fn for_len(len: usize) -> Option<ShardLayout> {
        if len == 0 || len > BLOCK_PAYLOAD {
            return None;
        }
        let pieces = u8::try_from(len.div_ceil(PIECE_LEN)).ok()?;
        let checks = pieces.checked_mul(3)?.max(MIN_CHECKS);
        Some(ShardLayout {
            pieces,
            checks,
            len: u16::try_from(len).ok()?,
        })
    }

    /// All shards of this layout.
    pub fn total(self) -> usize {
        usize::from(self.pieces) + usize::from(self.checks)
    }

    /// Whether this is the layout [`ShardLayout::for_len`] gives its length
    /// (the only one an honest inserter writes).
    fn is_canonical(self) -> bool {
        ShardLayout::for_len(usize::from(self.len)) == Some(self)
    }
}

fn shard_keys(root: &CryptoKey, index: u8) -> (SskPrivateKey, CryptoKey, HashedName) {
    crate::copies::derived_ssk(
        (SHARD_SEED_DOMAIN, SHARD_CRYPTO_DOMAIN, SHARD_NAME),
        root,
        index,
    )
}

/// The shards of the root whose plaintext is `content`, `root` being the key
/// `ChkBlock::encode(content)` gives; shard `j` is element `j`.
pub fn root_shards(content: &[u8], root: &ChkKey) -> Result<Vec<SskBlock>, CopyError> {
    let layout = ShardLayout::for_len(content.len()).ok_or(CopyError::BadShard)?;
    let mut pieces: Vec<[u8; PIECE_LEN]> = content
        .chunks(PIECE_LEN)
        .map(|chunk| {
            let mut piece = [0u8; PIECE_LEN];
            piece[..chunk.len()].copy_from_slice(chunk);
            piece
        })
        .collect();
    let checks = usize::from(layout.checks);
    if layout.pieces == 1 {
        let only = pieces[0];
        pieces.extend(std::iter::repeat_n(only, checks));
    } else {
        let mut out = Vec::with_capacity(checks);
        FecEncoder::default()
            .encode(pieces.iter().map(|p| &p[..]), checks, |check| {
                let mut piece = [0u8; PIECE_LEN];
                piece.copy_from_slice(&check[..PIECE_LEN]);
                out.push(piece);
            })
            .map_err(|e| CopyError::Code(e.to_string()))?;
        pieces.extend(out);
    }
    pieces
        .iter()
        .enumerate()
        .map(|(index, piece)| {
            let index = u8::try_from(index).map_err(|_| CopyError::BadShard)?;
            let (private, crypto, name) = shard_keys(&root.crypto, index);
            let mut payload = Vec::with_capacity(SHARD_PAYLOAD_LEN);
            payload.extend_from_slice(&[layout.pieces, layout.checks]);
            payload.extend_from_slice(&layout.len.to_be_bytes());
            payload.extend_from_slice(piece);
            Ok(SskBlock::encode(
                &private,
                &crypto,
                &name,
                &SskPayload::Data(payload),
            )?)
        })
        .collect()
}

/// Where shard `index` of a root lives, and how to read it.
#[derive(Debug, Clone)]
pub struct ShardLocator {
    pub index: u8,
    /// Routing key of the shard (an SSK key).
    pub key: RoutingKey,
    crypto: CryptoKey,
}

impl ShardLocator {
    /// Shard `index` of `root`.
    pub fn new(root: &ChkKey, index: u8) -> ShardLocator {
        let (private, crypto, name) = shard_keys(&root.crypto, index);
        let pk_hash = private.public_key().hash();
        ShardLocator {
            index,
            key: crate::ssk::routing_key(&pk_hash, &name),
            crypto,
        }
    }

    /// The layout and piece a shard holds (the block already verified
    /// against [`ShardLocator::key`] by whoever fetched it).
    pub fn read(&self, shard: &SskBlock) -> Result<(ShardLayout, Box<[u8; PIECE_LEN]>), CopyError> {
        let SskPayload::Data(bytes) = shard.decode(&self.crypto)? else {
            return Err(CopyError::BadShard);
        };
        read_payload(&bytes, self.index)
    }
}

/// A shard's payload: its layout, which must be the one its length gives
/// and include `index`, and its piece.
pub fn read_payload(
    bytes: &[u8],
    index: u8,
) -> Result<(ShardLayout, Box<[u8; PIECE_LEN]>), CopyError> {
    let (head, piece) = bytes.split_first_chunk::<4>().ok_or(CopyError::BadShard)?;
    let layout = ShardLayout {
        pieces: head[0],
        checks: head[1],
        len: u16::from_be_bytes([head[2], head[3]]),
    };
    if !layout.is_canonical() || usize::from(index) >= layout.total() {
        return Err(CopyError::BadShard);
    }
    let piece: [u8; PIECE_LEN] = piece.try_into().map_err(|_| CopyError::BadShard)?;
    Ok((layout, Box::new(piece)))
}

/// Gathers shards of one root until it can rebuild it: plain data, fed by
/// whoever fetches (the node, a test).
#[derive(Debug)]
pub struct ShardCollector {
    root: ChkKey,
    layout: Option<ShardLayout>,
    pieces: Vec<(u8, Box<[u8; PIECE_LEN]>)>,
    next: u8,
}

impl ShardCollector {
    pub fn new(root: &ChkKey) -> ShardCollector {
        ShardCollector {
            root: root.clone(),
            layout: None,
            pieces: Vec::new(),
            next: 0,
        }
    }

    /// The next shard to ask for, if one could still help: indices in turn,
    /// up to the layout's last once one is known ([`BLIND_SHARDS`] before),
    /// none once enough are at hand.
    pub fn next_wanted(&mut self) -> Option<ShardLocator> {
        let limit = self
            .layout
            .map_or(usize::from(BLIND_SHARDS), ShardLayout::total);
        if self.has_enough() || usize::from(self.next) >= limit {
            return None;
        }
        let index = self.next;
        self.next = self.next.checked_add(1)?;
        Some(ShardLocator::new(&self.root, index))
    }

    /// Whether enough shards are in for [`ShardCollector::restore`].
    pub fn is_ready(&self) -> bool {
        self.has_enough()
    }

    fn has_enough(&self) -> bool {
        self.layout
            .is_some_and(|l| self.pieces.len() >= usize::from(l.pieces))
    }

    /// Takes shard `locator` as fetched. A shard that does not read, or
    /// disagrees with the layout of the first one read, is passed over.
    pub fn offer(&mut self, locator: &ShardLocator, shard: &SskBlock) {
        let Ok((layout, piece)) = locator.read(shard) else {
            return;
        };
        if *self.layout.get_or_insert(layout) != layout
            || self.has_enough()
            || self.pieces.iter().any(|(i, _)| *i == locator.index)
        {
            return;
        }
        self.pieces.push((locator.index, piece));
    }

    /// The root block, once enough shards are in: rebuilt, re-encoded and
    /// checked against the root key. `None` while more are needed.
    pub fn restore(&self) -> Option<Result<ChkBlock, CopyError>> {
        let layout = self.layout?;
        if !self.has_enough() {
            return None;
        }
        Some(self.rebuild(layout))
    }

    fn rebuild(&self, layout: ShardLayout) -> Result<ChkBlock, CopyError> {
        let k = usize::from(layout.pieces);
        let mut content = Zeroizing::new(vec![0u8; k * PIECE_LEN]);
        if k == 1 {
            content.copy_from_slice(&self.pieces[0].1[..]);
        } else {
            let full = |piece: &[u8; PIECE_LEN]| {
                let mut shard = vec![0u8; SHARD_LEN];
                shard[..PIECE_LEN].copy_from_slice(piece);
                shard
            };
            let (mut data, mut check) = (Vec::new(), Vec::new());
            for (index, piece) in &self.pieces {
                let index = usize::from(*index);
                if index < k {
                    content[index * PIECE_LEN..(index + 1) * PIECE_LEN].copy_from_slice(&piece[..]);
                    data.push((index, full(piece)));
                } else {
                    check.push((index - k, full(piece)));
                }
            }
            let data: Vec<(usize, &[u8])> = data.iter().map(|(i, s)| (*i, &s[..])).collect();
            let check: Vec<(usize, &[u8])> = check.iter().map(|(i, s)| (*i, &s[..])).collect();
            let restored = fec::recover(k, usize::from(layout.checks), &data, &check)
                .map_err(|e| CopyError::Code(e.to_string()))?;
            for (index, shard) in restored {
                let at = content
                    .get_mut(index * PIECE_LEN..(index + 1) * PIECE_LEN)
                    .ok_or(CopyError::BadShard)?;
                at.copy_from_slice(shard.get(..PIECE_LEN).ok_or(CopyError::BadShard)?);
            }
        }
        let (block, key) = ChkBlock::encode(&content[..usize::from(layout.len)])?;
        if key != self.root {
            return Err(CopyError::NotTheRoot);
        }
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    use super::*;

    fn collect(root: &ChkKey, shards: &[SskBlock], keep: impl Fn(usize) -> bool) -> ShardCollector {
        let mut collector = ShardCollector::new(root);
        while let Some(locator) = collector.next_wanted() {
            let i = usize::from(locator.index);
            if i < shards.len() && keep(i) {
                collector.offer(&locator, &shards[i]);
            }
        }
        collector
    }

    #[test]
    fn layouts_code_at_a_quarter_rate() {
        let one = ShardLayout::for_len(14).unwrap();
        assert_eq!((one.pieces, one.checks, one.total()), (1, 6, 7));
        let two = ShardLayout::for_len(961).unwrap();
        assert_eq!((two.pieces, two.checks), (2, 6));
        let big = ShardLayout::for_len(BLOCK_PAYLOAD).unwrap();
        assert_eq!((big.pieces, big.checks, big.total()), (35, 105, 140));
        assert!(ShardLayout::for_len(0).is_none());
        assert!(ShardLayout::for_len(BLOCK_PAYLOAD + 1).is_none());
    }

    #[test]
    fn any_quarter_of_the_shards_rebuilds_the_root() {
        for len in [14, 960, 961, 5000, BLOCK_PAYLOAD] {
            let content: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let (root_block, root) = ChkBlock::encode(&content).unwrap();
            let shards = root_shards(&content, &root).unwrap();
            let layout = ShardLayout::for_len(len).unwrap();
            assert_eq!(shards.len(), layout.total());
            let k = usize::from(layout.pieces);
            // The first shard (which gives the layout) and the last k - 1:
            // check shards, for one piece its copies.
            let from = shards.len() - k;
            let collector = collect(&root, &shards, |i| i == 0 || i > from);
            assert_eq!(collector.restore().unwrap().unwrap(), root_block, "{len}");
            // Every other shard, from the start.
            let collector = collect(&root, &shards, |i| i % 2 == 1);
            assert_eq!(collector.restore().unwrap().unwrap(), root_block, "{len}");
            // One short of k: nothing to rebuild from.
            let collector = collect(&root, &shards, |i| i > from);
            assert!(collector.restore().is_none(), "{len}");
        }
    }

    #[test]
    fn shards_of_another_root_are_refused() {
        let (_, root) = ChkBlock::encode(b"the real root").unwrap();
        let (_, other) = ChkBlock::encode(b"an impostor").unwrap();
        let forged = root_shards(b"an impostor", &other).unwrap();
        // Read under the real root's keys they do not even decrypt.
        let collector = collect(&root, &forged, |_| true);
        assert!(collector.restore().is_none());
        // Signed under the real root's shard keys (someone who knew `K`
        // before the insert) they decode, and the rebuilt content is refused.
        let mut squatted = Vec::new();
        for index in 0..7u8 {
            let (private, crypto, name) = shard_keys(&root.crypto, index);
            let mut payload = vec![1, 6, 0, 11];
            payload.extend_from_slice(&[0u8; PIECE_LEN]);
            payload[4..15].copy_from_slice(b"an impostor");
            squatted.push(
                SskBlock::encode(&private, &crypto, &name, &SskPayload::Data(payload)).unwrap(),
            );
        }
        let collector = collect(&root, &squatted, |_| true);
        assert!(matches!(
            collector.restore(),
            Some(Err(CopyError::NotTheRoot))
        ));
    }

    #[test]
    fn shards_are_deterministic_and_apart_from_copies() {
        let (_, root) = ChkBlock::encode(b"same").unwrap();
        let a = root_shards(b"same", &root).unwrap();
        let b = root_shards(b"same", &root).unwrap();
        assert_eq!(a, b);
        let copies = crate::copies::copy_locators(&root);
        for (i, shard) in a.iter().enumerate() {
            assert_eq!(shard.routing_key(), ShardLocator::new(&root, i as u8).key);
            assert!(copies.iter().all(|c| c.pointer_key != shard.routing_key()));
        }
    }

    #[test]
    fn known_answer_vector() {
        // Pinned in docs/PROTOCOL.md section 6.6 and recomputed there by
        // scripts/check_vectors.py.
        let content = b"Hello, Warren!";
        let (_, root) = ChkBlock::encode(content).unwrap();
        let shards = root_shards(content, &root).unwrap();
        let locator = ShardLocator::new(&root, 0);
        assert_eq!(
            hex(locator.key.as_bytes()),
            "164c0d1432b3011e002b76938e3347894311d93a8c1f0f0274758e459318e39a"
        );
        assert_eq!(
            hex(&Sha256::digest(shards[0].as_bytes())),
            "3205c3d81af6a1a3d474875ce2455880c4c32ee69527e3d3cbd1de2e149d01c0"
        );
    }

    fn hex(bytes: &[u8]) -> String {
        use core::fmt::Write as _;
        bytes.iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    proptest! {
        /// Any payload bytes: a layout and piece, or a refusal; never a panic
        /// (the body is the `root_shard` fuzz target's).
        #[test]
        fn any_payload_reads_or_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..1100), index: u8) {
            let mut input = vec![index];
            input.extend_from_slice(&bytes);
            crate::fuzzing::read_root_shard(&input);
        }

        /// A well-formed payload with any layout bytes: read exactly when the
        /// layout is the canonical one for its length and holds the index.
        #[test]
        fn a_full_payload_reads_exactly_when_its_layout_is_canonical(k: u8, m: u8, len: u16, index: u8) {
            let mut input = vec![index, k, m];
            input.extend_from_slice(&len.to_be_bytes());
            input.extend_from_slice(&[0u8; PIECE_LEN]);
            let layout = ShardLayout { pieces: k, checks: m, len };
            let canonical = ShardLayout::for_len(usize::from(len)) == Some(layout)
                && usize::from(index) < layout.total();
            prop_assert_eq!(crate::fuzzing::read_root_shard(&input), canonical.then_some(layout));
        }
    }
}
