//! Reed-Solomon erasure coding of one segment, shard = one block's payload.
//!
//! The code is reed-solomon-simd 3 (Leopard-style Reed-Solomon over GF(2^16)
//! with FFT, the "default rate" selection). With `k` data shards and `m` check
//! shards, any `k` of the `k + m` shards recover the data shards.
//!
//! The code runs in this process unless the program installs a
//! [`FecBackend`] (the `warren` binary's node runs it in a worker process so
//! the codec's 8.5 MiB of global tables do not stay in a relay's memory).

use std::borrow::Cow;
use std::sync::OnceLock;

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use crate::block::BLOCK_PAYLOAD;

/// Bytes of every shard: one full block payload; shorter data is zero-padded.
pub const SHARD_LEN: usize = BLOCK_PAYLOAD;

/// Why erasure coding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FecError {
    #[error("erasure code cannot handle {data} data and {check} check shards")]
    UnsupportedCounts { data: usize, check: usize },
    #[error("{have} shards are not enough to recover {data} data shards")]
    NotEnoughShards { have: usize, data: usize },
    #[error("erasure code failed: {0}")]
    Codec(String),
}

fn codec_error(err: reed_solomon_simd::Error) -> FecError {
    match err {
        reed_solomon_simd::Error::UnsupportedShardCount {
            original_count,
            recovery_count,
        } => FecError::UnsupportedCounts {
            data: original_count,
            check: recovery_count,
        },
        other => FecError::Codec(other.to_string()),
    }
}

/// Somewhere else to run the erasure code: given full shards, it must give
/// exactly what [`FecEncoder::encode_here`] and [`recover_here`] give.
pub trait FecBackend: Send + Sync {
    /// The `check_count` check shards of `data` (each exactly [`SHARD_LEN`]).
    fn encode(&self, data: &[&[u8]], check_count: usize) -> Result<Vec<Vec<u8>>, FecError>;
    /// As [`recover_here`], called only when some data shard is missing and
    /// enough shards are at hand.
    fn recover(
        &self,
        data_count: usize,
        check_count: usize,
        data: &[(usize, &[u8])],
        check: &[(usize, &[u8])],
    ) -> Result<Vec<(usize, Vec<u8>)>, FecError>;
}

static BACKEND: OnceLock<&'static dyn FecBackend> = OnceLock::new();

/// Sends every later encode and recover of this process to `backend`.
/// Returns false (and changes nothing) if one was installed already.
pub fn install_backend(backend: &'static dyn FecBackend) -> bool {
    BACKEND.set(backend).is_ok()
}

/// Pads `data` with zeros to a full shard, reusing `scratch`.
fn padded<'a>(data: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    if data.len() == SHARD_LEN {
        return data;
    }
    scratch.clear();
    scratch.extend_from_slice(data);
    scratch.resize(SHARD_LEN, 0);
    scratch
}

/// A reusable segment encoder: keeps its working memory between segments.
#[derive(Default)]
pub struct FecEncoder {
    inner: Option<ReedSolomonEncoder>,
    scratch: Vec<u8>,
}

impl core::fmt::Debug for FecEncoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FecEncoder").finish_non_exhaustive()
    }
}

impl FecEncoder {
    /// Computes `check_count` check shards over `data` shards (each at most
    /// [`SHARD_LEN`] bytes, zero-padded), calling `sink` with each in order;
    /// in the installed [`FecBackend`] if there is one.
    pub fn encode<'d>(
        &mut self,
        data: impl ExactSizeIterator<Item = &'d [u8]>,
        check_count: usize,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), FecError> {
        let Some(backend) = BACKEND.get() else {
            return self.encode_here(data, check_count, sink);
        };
        if check_count == 0 {
            return Ok(());
        }
        let full: Vec<Cow<'d, [u8]>> = data
            .map(|shard| {
                if shard.len() == SHARD_LEN {
                    Cow::Borrowed(shard)
                } else {
                    let mut owned = shard.to_vec();
                    owned.resize(SHARD_LEN, 0);
                    Cow::Owned(owned)
                }
            })
            .collect();
        let shards: Vec<&[u8]> = full.iter().map(|shard| &shard[..]).collect();
        for check in backend.encode(&shards, check_count)? {
            sink(&check);
        }
        Ok(())
    }

    /// [`FecEncoder::encode`] in this process, whatever backend is installed.
    pub fn encode_here<'d>(
        &mut self,
        data: impl ExactSizeIterator<Item = &'d [u8]>,
        check_count: usize,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), FecError> {
        let data_count = data.len();
        if check_count == 0 {
            return Ok(());
        }
        let encoder = match &mut self.inner {
            Some(encoder) => {
                encoder
                    .reset(data_count, check_count, SHARD_LEN)
                    .map_err(codec_error)?;
                encoder
            }
            slot @ None => slot.insert(
                ReedSolomonEncoder::new(data_count, check_count, SHARD_LEN).map_err(codec_error)?,
            ),
        };
        for shard in data {
            encoder
                .add_original_shard(padded(shard, &mut self.scratch))
                .map_err(codec_error)?;
        }
        let result = encoder.encode().map_err(codec_error)?;
        for check in result.recovery_iter() {
            sink(check);
        }
        Ok(())
    }
}

/// Recovers the missing data shards of a segment from any `data_count` shards,
/// in the installed [`FecBackend`] if there is one.
///
/// `data` and `check` give `(index, shard)` pairs of the shards at hand (full
/// [`SHARD_LEN`] bytes each). Returns the missing data shards as `(index, shard)`.
pub fn recover(
    data_count: usize,
    check_count: usize,
    data: &[(usize, &[u8])],
    check: &[(usize, &[u8])],
) -> Result<Vec<(usize, Vec<u8>)>, FecError> {
    if let Some(early) = nothing_to_recover(data_count, check_count, data, check) {
        return early;
    }
    match BACKEND.get() {
        Some(backend) => backend.recover(data_count, check_count, data, check),
        None => recover_here(data_count, check_count, data, check),
    }
}

/// Recovered data shards, `(index, shard)`.
pub type Restored = Vec<(usize, Vec<u8>)>;

/// The answers [`recover`] gives without running the code.
fn nothing_to_recover(
    data_count: usize,
    check_count: usize,
    data: &[(usize, &[u8])],
    check: &[(usize, &[u8])],
) -> Option<Result<Restored, FecError>> {
    if data.len() == data_count {
        return Some(Ok(Vec::new()));
    }
    if data.len() + check.len() < data_count || check_count == 0 {
        return Some(Err(FecError::NotEnoughShards {
            have: data.len() + check.len(),
            data: data_count,
        }));
    }
    None
}

/// [`recover`] in this process, whatever backend is installed.
pub fn recover_here(
    data_count: usize,
    check_count: usize,
    data: &[(usize, &[u8])],
    check: &[(usize, &[u8])],
) -> Result<Vec<(usize, Vec<u8>)>, FecError> {
    if let Some(early) = nothing_to_recover(data_count, check_count, data, check) {
        return early;
    }
    let mut decoder =
        ReedSolomonDecoder::new(data_count, check_count, SHARD_LEN).map_err(codec_error)?;
    for &(index, shard) in data {
        decoder
            .add_original_shard(index, shard)
            .map_err(codec_error)?;
    }
    // More shards than needed only cost time: stop at exactly `data_count`.
    for &(index, shard) in check.iter().take(data_count - data.len()) {
        decoder
            .add_recovery_shard(index, shard)
            .map_err(codec_error)?;
    }
    let result = decoder.decode().map_err(codec_error)?;
    Ok(result
        .restored_original_iter()
        .map(|(index, shard)| (index, shard.to_vec()))
        .collect())
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn shards(count: usize, seed: u8) -> Vec<Vec<u8>> {
        (0..count)
            .map(|i| {
                (0..SHARD_LEN)
                    .map(|j| (i as u8).wrapping_mul(31) ^ (j as u8) ^ seed)
                    .collect()
            })
            .collect()
    }

    fn checks(data: &[Vec<u8>], count: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        FecEncoder::default()
            .encode(data.iter().map(Vec::as_slice), count, |c| {
                out.push(c.to_vec());
            })
            .unwrap();
        out
    }

    #[test]
    fn any_half_recovers_the_data() {
        let data = shards(8, 3);
        let check = checks(&data, 8);
        // Keep data 0, 2, 5 and checks 1, 3, 4, 6, 7: five lost data shards.
        let kept_data: Vec<_> = [0usize, 2, 5]
            .iter()
            .map(|&i| (i, data[i].as_slice()))
            .collect();
        let kept_check: Vec<_> = [1usize, 3, 4, 6, 7]
            .iter()
            .map(|&i| (i, check[i].as_slice()))
            .collect();
        let restored = recover(8, 8, &kept_data, &kept_check).unwrap();
        assert_eq!(restored.len(), 5);
        for (index, shard) in restored {
            assert_eq!(shard, data[index]);
        }
        let too_few = recover(8, 8, &kept_data, &kept_check[..4]);
        assert_eq!(too_few, Err(FecError::NotEnoughShards { have: 7, data: 8 }));
    }

    #[test]
    fn one_plus_one_and_short_shards_work() {
        let mut encoder = FecEncoder::default();
        let mut check = Vec::new();
        encoder
            .encode([&b"short"[..]].into_iter(), 1, |c| check.push(c.to_vec()))
            .unwrap();
        let restored = recover(1, 1, &[], &[(0, &check[0])]).unwrap();
        let mut expected = b"short".to_vec();
        expected.resize(SHARD_LEN, 0);
        assert_eq!(restored, vec![(0, expected)]);
    }

    /// Pins the code itself: a second implementation must produce these check shards.
    #[test]
    fn known_answer_check_shards() {
        let data = shards(3, 0);
        let check = checks(&data, 3);
        let digest: Vec<String> = check.iter().map(|c| hex(&Sha256::digest(c))).collect();
        assert_eq!(digest, KNOWN_CHECK_DIGESTS);
    }

    fn hex(bytes: &[u8]) -> String {
        use core::fmt::Write as _;
        bytes.iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    const KNOWN_CHECK_DIGESTS: [&str; 3] = [
        "f95ffbcce52c0a1faf85f0c034f248198aa896187b0d415d2655ea4f5dd525ef",
        "eda7c3efcf3d814d107a78fe857d4b0652b44067aae98e82f975eb6f8fbddec6",
        "d83816c9aafce8a145b818bf4a3297d98f5e18ae1bd90eebdc0e54da28d25873",
    ];
}
