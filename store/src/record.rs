//! The small records `SledStore` keeps beside the blocks, and their decoders.
//!
//! ```text
//! index tree: routing key (32) -> IndexRecord: Slot (9) ‖ cell (u64 BE)
//! lru   tree: Slot (9)          -> routing key (32)
//! meta  tree: FORMAT_KEY        -> format version (u32 BE)
//! Slot: area (1) ‖ access sequence (u64 BE)
//! ```
//!
//! The block bytes live outside sled, in the cell file (`blocks.dat`): cell
//! `n` holds one block at byte offset `n × BLOCK_LEN`, verified on every read.
//!
//! A `Slot` sorts by area then sequence, so the first `lru` entry of an area is
//! its least recently used block. These bytes come from disk and may be damaged:
//! every decoder checks the length first and never allocates or panics.
//! [`decode_any`] is the fuzz entry point.

use warren_crypto::RoutingKey;

use crate::Area;

/// Bytes of an encoded [`Slot`].
pub const SLOT_LEN: usize = 9;
/// Bytes of an encoded [`IndexRecord`].
pub const INDEX_LEN: usize = SLOT_LEN + 8;
/// Bytes of a routing key record.
pub const KEY_LEN: usize = 32;
/// Bytes of the format version record.
pub const FORMAT_LEN: usize = 4;
/// Key of the format version in the `meta` tree.
pub const FORMAT_KEY: &[u8] = b"warren-store-format";

const AREA_STORE: u8 = 0;
const AREA_CACHE: u8 = 1;

/// Why an on-disk record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("record is {found} bytes, expected {expected}")]
    WrongLength { found: usize, expected: usize },
    #[error("unknown area tag {0}")]
    UnknownArea(u8),
}

/// Where a block sits in its area's access order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    pub area: Area,
    /// Larger is more recent.
    pub seq: u64,
}

impl Slot {
    pub fn encode(self) -> [u8; SLOT_LEN] {
        let mut out = [0u8; SLOT_LEN];
        out[0] = area_tag(self.area);
        out[1..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Slot, RecordError> {
        let bytes: &[u8; SLOT_LEN] = bytes.try_into().map_err(|_| RecordError::WrongLength {
            found: bytes.len(),
            expected: SLOT_LEN,
        })?;
        let area = match bytes[0] {
            AREA_STORE => Area::Store,
            AREA_CACHE => Area::Cache,
            other => return Err(RecordError::UnknownArea(other)),
        };
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[1..]);
        Ok(Slot {
            area,
            seq: u64::from_be_bytes(seq),
        })
    }
}

/// A block's `index` entry: its place in the access order and the cell of
/// the cell file that holds its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRecord {
    pub slot: Slot,
    pub cell: u64,
}

impl IndexRecord {
    pub fn encode(self) -> [u8; INDEX_LEN] {
        let mut out = [0u8; INDEX_LEN];
        out[..SLOT_LEN].copy_from_slice(&self.slot.encode());
        out[SLOT_LEN..].copy_from_slice(&self.cell.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<IndexRecord, RecordError> {
        if bytes.len() != INDEX_LEN {
            return Err(RecordError::WrongLength {
                found: bytes.len(),
                expected: INDEX_LEN,
            });
        }
        let slot = Slot::decode(&bytes[..SLOT_LEN])?;
        let mut cell = [0u8; 8];
        cell.copy_from_slice(&bytes[SLOT_LEN..]);
        Ok(IndexRecord {
            slot,
            cell: u64::from_be_bytes(cell),
        })
    }
}

/// The `lru` key prefix that selects one area.
pub fn area_prefix(area: Area) -> [u8; 1] {
    [area_tag(area)]
}

fn area_tag(area: Area) -> u8 {
    match area {
        Area::Store => AREA_STORE,
        Area::Cache => AREA_CACHE,
    }
}

/// Decodes a routing key stored as an `lru` value.
pub fn decode_key(bytes: &[u8]) -> Result<RoutingKey, RecordError> {
    let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| RecordError::WrongLength {
        found: bytes.len(),
        expected: KEY_LEN,
    })?;
    Ok(RoutingKey::from_bytes(bytes))
}

/// Decodes the format version record.
pub fn decode_format(bytes: &[u8]) -> Result<u32, RecordError> {
    let bytes: [u8; FORMAT_LEN] = bytes.try_into().map_err(|_| RecordError::WrongLength {
        found: bytes.len(),
        expected: FORMAT_LEN,
    })?;
    Ok(u32::from_be_bytes(bytes))
}

/// Runs every decoder on `bytes` and re-encodes what decodes: the body of the
/// `store_records` fuzz target. Panics only if a round trip is not exact.
pub fn decode_any(bytes: &[u8]) {
    if let Ok(slot) = Slot::decode(bytes) {
        assert_eq!(slot.encode().as_slice(), bytes, "slot round trip");
    }
    if let Ok(record) = IndexRecord::decode(bytes) {
        assert_eq!(record.encode().as_slice(), bytes, "index round trip");
    }
    if let Ok(key) = decode_key(bytes) {
        assert_eq!(key.as_bytes().as_slice(), bytes, "key round trip");
    }
    if let Ok(version) = decode_format(bytes) {
        assert_eq!(version.to_be_bytes().as_slice(), bytes, "format round trip");
    }
}

/// Test hook: `bytes` with one bit flipped if they are still a valid block
/// under `key`, unchanged if already damaged (so damaging twice never heals).
#[cfg(any(test, feature = "fault-injection"))]
pub(crate) fn damage(key: RoutingKey, mut bytes: Vec<u8>) -> Vec<u8> {
    if warren_crypto::ChkBlock::verify(key, bytes.clone()).is_ok() {
        if let Some(last) = bytes.last_mut() {
            *last ^= 1;
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn slots_sort_by_area_then_sequence() {
        let a = Slot {
            area: Area::Store,
            seq: u64::MAX,
        }
        .encode();
        let b = Slot {
            area: Area::Cache,
            seq: 0,
        }
        .encode();
        let c = Slot {
            area: Area::Cache,
            seq: 256,
        }
        .encode();
        assert!(a < b && b < c);
        assert_eq!(a[..1], area_prefix(Area::Store));
    }

    #[test]
    fn damaged_records_are_refused() {
        assert_eq!(
            Slot::decode(&[0; 8]),
            Err(RecordError::WrongLength {
                found: 8,
                expected: SLOT_LEN
            })
        );
        assert_eq!(
            Slot::decode(&[7; SLOT_LEN]),
            Err(RecordError::UnknownArea(7))
        );
        assert!(decode_key(&[0; 31]).is_err());
        assert!(IndexRecord::decode(&[0; SLOT_LEN]).is_err());
        let mut bad_area = [0u8; INDEX_LEN];
        bad_area[0] = 9;
        assert_eq!(
            IndexRecord::decode(&bad_area),
            Err(RecordError::UnknownArea(9))
        );
        assert!(decode_format(&[0; 5]).is_err());
    }

    proptest! {
        #[test]
        fn slot_round_trip(store in any::<bool>(), seq in any::<u64>()) {
            let area = if store { Area::Store } else { Area::Cache };
            let slot = Slot { area, seq };
            prop_assert_eq!(Slot::decode(&slot.encode()), Ok(slot));
        }

        #[test]
        fn index_record_round_trip(store in any::<bool>(), seq in any::<u64>(), cell in any::<u64>()) {
            let area = if store { Area::Store } else { Area::Cache };
            let record = IndexRecord { slot: Slot { area, seq }, cell };
            prop_assert_eq!(IndexRecord::decode(&record.encode()), Ok(record));
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            decode_any(&bytes);
        }
    }
}
