//! CHK blocks: convergent encryption of one fixed-size block.
//!
//! ```text
//! sealed   S = data ‖ zero padding to 32768 bytes ‖ len(data) as u32 LE   (32772 bytes)
//! crypto   K = SHA-256(S)
//! header   H = [FORMAT_VERSION, CIPHER_CHACHA20POLY1305_SHA256]            (2 bytes)
//! cipher   C = ChaCha20-Poly1305(key K, nonce 0^96, aad H).seal(S)       (32788 bytes)
//! block    B = H ‖ C                                                       (32790 bytes)
//! routing  R = SHA-256(B)
//! ```
//!
//! Every block is the same size whatever it holds, the length travels inside
//! the encryption, and the fixed nonce is safe because `K` is unique to `S`.
//! Anyone can check `B` against `R`; only a holder of `K` can read it.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::key::{ChkKey, CryptoKey, RoutingKey, CIPHER_CHACHA20POLY1305_SHA256};

/// Bytes of content one block carries at most.
pub const BLOCK_PAYLOAD: usize = 32 * 1024;
/// Bytes of the length trailer sealed after the padded payload.
const LENGTH_TRAILER: usize = 4;
/// Bytes sealed by the AEAD: padded payload plus length trailer.
pub const SEALED_LEN: usize = BLOCK_PAYLOAD + LENGTH_TRAILER;
/// Bytes of the Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Bytes of the plain block header.
pub const HEADER_LEN: usize = 2;
/// Version of the block format in the header's first byte.
pub const FORMAT_VERSION: u8 = 1;
/// Size of every encoded CHK block, on the wire and on disk.
pub const BLOCK_LEN: usize = HEADER_LEN + SEALED_LEN + TAG_LEN;

const HEADER: [u8; HEADER_LEN] = [FORMAT_VERSION, CIPHER_CHACHA20POLY1305_SHA256];
/// The nonce is fixed: each key encrypts exactly one plaintext.
const NONCE: [u8; 12] = [0; 12];

/// Why a block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    #[error("content of {0} bytes does not fit in one block (at most {BLOCK_PAYLOAD})")]
    TooLarge(usize),
    #[error("a block is {BLOCK_LEN} bytes, this one is {0}")]
    WrongLength(usize),
    #[error("block header {0:02x?} is not a known format (expected {HEADER:02x?})")]
    UnknownHeader([u8; HEADER_LEN]),
    #[error("block does not hash to its routing key: corrupt or forged")]
    RoutingKeyMismatch,
    #[error("block does not decrypt under this key: wrong key, or a forged block")]
    DecryptionFailed,
    #[error("decrypted block is malformed: {0}")]
    Malformed(&'static str),
}

/// An encoded CHK block: ciphertext the network stores and relays.
///
/// A `ChkBlock` has always been checked against its routing key, so holding one
/// means holding a block that is what its key says.
#[derive(Clone, PartialEq, Eq)]
pub struct ChkBlock {
    routing_key: RoutingKey,
    bytes: Vec<u8>,
}

impl core::fmt::Debug for ChkBlock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChkBlock")
            .field("routing_key", &self.routing_key)
            .finish_non_exhaustive()
    }
}

impl ChkBlock {
    /// Encrypts up to [`BLOCK_PAYLOAD`] bytes into a block and the key that reads it.
    pub fn encode(data: &[u8]) -> Result<(ChkBlock, ChkKey), BlockError> {
        Self::encode_with(data, |sealed| {
            CryptoKey::from_bytes(Sha256::digest(sealed).into())
        })
    }

    /// Encrypts `data` like [`ChkBlock::encode`], but under the key `derive`
    /// makes from the sealed plaintext's own key `K = SHA-256(S)` (root copies,
    /// `crate::copies`, use `K_i = f(K, i)`). The result is an ordinary block:
    /// nothing in it tells it from one made by `encode`.
    pub(crate) fn encode_under(
        data: &[u8],
        derive: impl FnOnce(&CryptoKey) -> CryptoKey,
    ) -> Result<(ChkBlock, ChkKey), BlockError> {
        Self::encode_with(data, |sealed| {
            derive(&CryptoKey::from_bytes(Sha256::digest(sealed).into()))
        })
    }

    fn encode_with(
        data: &[u8],
        key_of: impl FnOnce(&[u8]) -> CryptoKey,
    ) -> Result<(ChkBlock, ChkKey), BlockError> {
        if data.len() > BLOCK_PAYLOAD {
            return Err(BlockError::TooLarge(data.len()));
        }
        let mut bytes = vec![0u8; BLOCK_LEN];
        bytes[..HEADER_LEN].copy_from_slice(&HEADER);
        let (sealed, tag_out) = bytes[HEADER_LEN..].split_at_mut(SEALED_LEN);
        sealed[..data.len()].copy_from_slice(data);
        let len = u32::try_from(data.len()).map_err(|_| BlockError::TooLarge(data.len()))?;
        sealed[BLOCK_PAYLOAD..].copy_from_slice(&len.to_le_bytes());

        let crypto = key_of(sealed);
        let cipher = ChaCha20Poly1305::new(crypto.as_bytes().into());
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&NONCE), &HEADER, sealed)
            .map_err(|_| BlockError::TooLarge(data.len()))?;
        tag_out.copy_from_slice(&tag);

        let routing = RoutingKey::from_bytes(Sha256::digest(&bytes).into());
        let block = ChkBlock {
            routing_key: routing,
            bytes,
        };
        Ok((block, ChkKey { routing, crypto }))
    }

    /// Accepts bytes from outside as the block named `routing_key`, checking length,
    /// header and hash. This is what every node does before storing or relaying.
    pub fn verify(routing_key: RoutingKey, bytes: Vec<u8>) -> Result<ChkBlock, BlockError> {
        if bytes.len() != BLOCK_LEN {
            return Err(BlockError::WrongLength(bytes.len()));
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&bytes[..HEADER_LEN]);
        if header != HEADER {
            return Err(BlockError::UnknownHeader(header));
        }
        let actual: [u8; 32] = Sha256::digest(&bytes).into();
        if actual != *routing_key.as_bytes() {
            return Err(BlockError::RoutingKeyMismatch);
        }
        Ok(ChkBlock { routing_key, bytes })
    }

    /// Decrypts with the crypto key, returning the content without padding.
    pub fn decode(&self, crypto: &CryptoKey) -> Result<Vec<u8>, BlockError> {
        let mut out = Vec::with_capacity(SEALED_LEN);
        self.decode_into(crypto, &mut out)?;
        Ok(out)
    }

    /// Like [`ChkBlock::decode`], reusing `out`'s allocation; `out` is cleared first.
    pub fn decode_into(&self, crypto: &CryptoKey, out: &mut Vec<u8>) -> Result<(), BlockError> {
        out.clear();
        out.extend_from_slice(&self.bytes[HEADER_LEN..HEADER_LEN + SEALED_LEN]);
        let tag = Tag::from_slice(&self.bytes[HEADER_LEN + SEALED_LEN..]);
        let cipher = ChaCha20Poly1305::new(crypto.as_bytes().into());
        if cipher
            .decrypt_in_place_detached(Nonce::from_slice(&NONCE), &HEADER, out, tag)
            .is_err()
        {
            out.zeroize();
            out.clear();
            return Err(BlockError::DecryptionFailed);
        }
        let mut len_bytes = [0u8; LENGTH_TRAILER];
        len_bytes.copy_from_slice(&out[BLOCK_PAYLOAD..]);
        let len = u32::from_le_bytes(len_bytes) as usize;
        if len > BLOCK_PAYLOAD {
            out.zeroize();
            out.clear();
            return Err(BlockError::Malformed(
                "length field exceeds the block payload",
            ));
        }
        // Canonical form: padding must be zero, so one content has one block.
        if out[len..BLOCK_PAYLOAD].iter().any(|&b| b != 0) {
            out.zeroize();
            out.clear();
            return Err(BlockError::Malformed("non-zero padding"));
        }
        out.truncate(len);
        Ok(())
    }

    pub fn routing_key(&self) -> RoutingKey {
        self.routing_key
    }

    /// The encoded block, exactly [`BLOCK_LEN`] bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn encoding_is_convergent_and_fixed_size() {
        let (a, ka) = ChkBlock::encode(b"hello warren").unwrap();
        let (b, kb) = ChkBlock::encode(b"hello warren").unwrap();
        assert_eq!(a, b);
        assert_eq!(ka, kb);
        assert_eq!(a.as_bytes().len(), BLOCK_LEN);
        let (empty, _) = ChkBlock::encode(b"").unwrap();
        assert_eq!(empty.as_bytes().len(), BLOCK_LEN);
    }

    #[test]
    fn trailing_zeros_change_the_key() {
        let (_, a) = ChkBlock::encode(b"abc").unwrap();
        let (_, b) = ChkBlock::encode(b"abc\0").unwrap();
        assert_ne!(a.routing, b.routing);
        assert_ne!(a.crypto, b.crypto);
    }

    #[test]
    fn oversized_content_is_refused() {
        let too_big = vec![0u8; BLOCK_PAYLOAD + 1];
        assert_eq!(
            ChkBlock::encode(&too_big),
            Err(BlockError::TooLarge(BLOCK_PAYLOAD + 1))
        );
        assert!(ChkBlock::encode(&too_big[..BLOCK_PAYLOAD]).is_ok());
    }

    #[test]
    fn verify_rejects_wrong_length_header_and_key() {
        let (block, key) = ChkBlock::encode(b"x").unwrap();
        let bytes = block.into_bytes();
        assert_eq!(
            ChkBlock::verify(key.routing, bytes[..100].to_vec()),
            Err(BlockError::WrongLength(100))
        );
        let mut bad_header = bytes.clone();
        bad_header[0] = 9;
        assert!(matches!(
            ChkBlock::verify(key.routing, bad_header),
            Err(BlockError::UnknownHeader(_))
        ));
        let other = RoutingKey::from_bytes([7; 32]);
        assert_eq!(
            ChkBlock::verify(other, bytes.clone()),
            Err(BlockError::RoutingKeyMismatch)
        );
        assert!(ChkBlock::verify(key.routing, bytes).is_ok());
    }

    #[test]
    fn wrong_crypto_key_fails_cleanly() {
        let (block, _) = ChkBlock::encode(b"secret").unwrap();
        let wrong = CryptoKey::from_bytes([1; 32]);
        assert_eq!(block.decode(&wrong), Err(BlockError::DecryptionFailed));
    }

    /// Seals any 32,772-byte `sealed` exactly as `encode` does (key = its
    /// SHA-256, fixed nonce, header as aad), bypassing `encode`'s checks, so
    /// blocks whose decrypted form is not canonical can be built.
    fn seal_raw(mut sealed: Vec<u8>) -> (RoutingKey, CryptoKey, Vec<u8>) {
        assert_eq!(sealed.len(), SEALED_LEN);
        let crypto = CryptoKey::from_bytes(Sha256::digest(&sealed).into());
        let cipher = ChaCha20Poly1305::new(crypto.as_bytes().into());
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&NONCE), &HEADER, &mut sealed)
            .unwrap();
        let mut bytes = HEADER.to_vec();
        bytes.extend_from_slice(&sealed);
        bytes.extend_from_slice(&tag);
        let routing = RoutingKey::from_bytes(Sha256::digest(&bytes).into());
        (routing, crypto, bytes)
    }

    /// The sealed form of `data`: padded payload then the length trailer.
    fn sealed_form(data: &[u8], len_field: u32) -> Vec<u8> {
        let mut sealed = vec![0u8; SEALED_LEN];
        sealed[..data.len()].copy_from_slice(data);
        sealed[BLOCK_PAYLOAD..].copy_from_slice(&len_field.to_le_bytes());
        sealed
    }

    fn content() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            proptest::collection::vec(any::<u8>(), BLOCK_PAYLOAD - 512..=BLOCK_PAYLOAD),
        ]
    }

    #[test]
    fn raw_sealing_of_the_canonical_form_is_encode() {
        let data = b"the test helper builds blocks as encode does";
        let (routing, crypto, bytes) = seal_raw(sealed_form(data, data.len() as u32));
        let (block, key) = ChkBlock::encode(data).unwrap();
        assert_eq!((routing, crypto), (key.routing, key.crypto));
        assert_eq!(bytes, block.into_bytes());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trip_any_content(data in proptest::collection::vec(any::<u8>(), 0..=BLOCK_PAYLOAD)) {
            let (block, key) = ChkBlock::encode(&data).unwrap();
            let checked = ChkBlock::verify(key.routing, block.into_bytes()).unwrap();
            prop_assert_eq!(checked.decode(&key.crypto).unwrap(), data);
        }

        /// A flipped header bit fails the header check; any other flipped
        /// bit fails the routing key, and even re-hashed (a forger naming
        /// the changed bytes) fails the tag under the right crypto key.
        #[test]
        fn flipping_any_bit_is_detected(data in content(), index in 0..BLOCK_LEN, bit in 0u8..8) {
            let (block, key) = ChkBlock::encode(&data).unwrap();
            let mut bytes = block.into_bytes();
            bytes[index] ^= 1 << bit;
            let verified = ChkBlock::verify(key.routing, bytes.clone());
            if index < HEADER_LEN {
                let header = [bytes[0], bytes[1]];
                prop_assert_eq!(verified, Err(BlockError::UnknownHeader(header)));
            } else {
                prop_assert_eq!(verified, Err(BlockError::RoutingKeyMismatch));
                let own = RoutingKey::from_bytes(Sha256::digest(&bytes).into());
                let forged = ChkBlock::verify(own, bytes).unwrap();
                prop_assert_eq!(forged.decode(&key.crypto), Err(BlockError::DecryptionFailed));
            }
        }

        #[test]
        fn a_wrong_crypto_key_fails_the_tag(data in content(), wrong: [u8; 32]) {
            let (block, key) = ChkBlock::encode(&data).unwrap();
            prop_assume!(wrong != *key.crypto.as_bytes());
            prop_assert_eq!(
                block.decode(&CryptoKey::from_bytes(wrong)),
                Err(BlockError::DecryptionFailed)
            );
        }

        /// Whole-size noise: an unknown header is named; the known header
        /// reaches the hash; under its own hash it reaches the tag.
        #[test]
        fn full_size_noise_fails_at_header_hash_or_tag(
            mut bytes in proptest::collection::vec(any::<u8>(), BLOCK_LEN),
            known_header: bool, key: [u8; 32], crypto: [u8; 32],
        ) {
            if known_header {
                bytes[..HEADER_LEN].copy_from_slice(&HEADER);
            }
            let header = [bytes[0], bytes[1]];
            let result = ChkBlock::verify(RoutingKey::from_bytes(key), bytes.clone());
            if header == HEADER {
                prop_assert_eq!(result, Err(BlockError::RoutingKeyMismatch));
                let own = RoutingKey::from_bytes(Sha256::digest(&bytes).into());
                let block = ChkBlock::verify(own, bytes).unwrap();
                prop_assert_eq!(
                    block.decode(&CryptoKey::from_bytes(crypto)),
                    Err(BlockError::DecryptionFailed)
                );
            } else {
                prop_assert_eq!(result, Err(BlockError::UnknownHeader(header)));
            }
        }

        #[test]
        fn any_other_length_is_refused_first(len in 0..3 * BLOCK_LEN, fill: u8, key: [u8; 32]) {
            prop_assume!(len != BLOCK_LEN);
            prop_assert_eq!(
                ChkBlock::verify(RoutingKey::from_bytes(key), vec![fill; len]),
                Err(BlockError::WrongLength(len))
            );
        }

        /// Authentic blocks (the right key, a valid tag) whose length field
        /// claims more than a block reach the length check.
        #[test]
        fn a_length_field_past_the_payload_is_malformed(
            data in content(), len_field in (BLOCK_PAYLOAD as u32 + 1)..=u32::MAX,
        ) {
            let (routing, crypto, bytes) = seal_raw(sealed_form(&data, len_field));
            let block = ChkBlock::verify(routing, bytes).unwrap();
            let mut out = vec![0xEE; 8];
            prop_assert_eq!(
                block.decode_into(&crypto, &mut out),
                Err(BlockError::Malformed("length field exceeds the block payload"))
            );
            prop_assert!(out.is_empty(), "a refused block leaves no plaintext behind");
        }

        /// Authentic blocks with a non-zero byte anywhere in the padding
        /// reach the canonical-form check.
        #[test]
        fn non_zero_padding_is_malformed(
            data in proptest::collection::vec(any::<u8>(), 0..BLOCK_PAYLOAD - 1),
            at in any::<prop::sample::Index>(), value in 1u8..,
        ) {
            let mut sealed = sealed_form(&data, data.len() as u32);
            let position = data.len() + at.index(BLOCK_PAYLOAD - data.len());
            sealed[position] = value;
            let (routing, crypto, bytes) = seal_raw(sealed);
            let block = ChkBlock::verify(routing, bytes).unwrap();
            let mut out = vec![0xEE; 8];
            prop_assert_eq!(
                block.decode_into(&crypto, &mut out),
                Err(BlockError::Malformed("non-zero padding"))
            );
            prop_assert!(out.is_empty(), "a refused block leaves no plaintext behind");
        }
    }
}
