//! Generated test documents: pseudo-random bytes that do not deduplicate,
//! the same for the same seed, written in chunks so size costs no memory.

use std::io::Write as _;
use std::path::Path;

use rand::{RngCore as _, SeedableRng as _};

/// Bytes generated and written per step.
const CHUNK: usize = 1 << 20;

/// Writes `len` bytes derived from `seed` to `path` (replacing it).
pub fn write_random_file(path: &Path, len: u64, seed: u64) -> std::io::Result<()> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut chunk = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        rng.fill_bytes(&mut chunk[..n]);
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.into_inner()
        .map_err(std::io::IntoInnerError::into_error)?
        .sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        write_random_file(&a, 3 * CHUNK as u64 + 5, 1).unwrap();
        write_random_file(&b, 3 * CHUNK as u64 + 5, 1).unwrap();
        write_random_file(&c, 3 * CHUNK as u64 + 5, 2).unwrap();
        let (a, b, c) = (
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            std::fs::read(c).unwrap(),
        );
        assert_eq!(a.len(), 3 * CHUNK + 5);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
