//! Content hash keys: the routing key the network sees and the crypto key it never sees.

use core::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::location::Location;

/// Length in bytes of routing and crypto keys (SHA-256 outputs).
pub const KEY_LEN: usize = 32;

/// `R = SHA-256(header ‖ ciphertext)`: names a block on the network. Public.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RoutingKey([u8; KEY_LEN]);

impl RoutingKey {
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        RoutingKey(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Where on the circle this key lives.
    pub fn location(&self) -> Location {
        Location::of_key(self)
    }
}

impl fmt::Debug for RoutingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight bytes are plenty to tell keys apart in logs.
        write!(f, "RoutingKey(")?;
        for byte in &self.0[..8] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "…)")
    }
}

/// `K = SHA-256(sealed plaintext)`: decrypts a block. Secret: only URIs carry it.
///
/// Compared in constant time, zeroized on drop, and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
pub struct CryptoKey([u8; KEY_LEN]);

impl CryptoKey {
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        CryptoKey(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl PartialEq for CryptoKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for CryptoKey {}

impl fmt::Debug for CryptoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CryptoKey(<secret>)")
    }
}

/// What a CHK's root block holds, as recorded in the key's extra bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContentKind {
    /// The block's plaintext is the content itself (at most one block).
    Data,
    /// The block's plaintext is a metadata document: a splitfile or site manifest.
    Metadata,
}

/// The extra bytes of a CHK: how to read what the keys point at.
///
/// Encoded as three bytes: `[cipher, compression, kind]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Extra {
    pub kind: ContentKind,
}

/// The only cipher suite: ChaCha20-Poly1305 with SHA-256 keys.
pub const CIPHER_CHACHA20POLY1305_SHA256: u8 = 1;
/// No compression (the only value defined so far).
pub const COMPRESSION_NONE: u8 = 0;
/// Length of the encoded extra bytes.
pub const EXTRA_LEN: usize = 3;

/// Why a CHK's extra bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtraError {
    #[error("unknown cipher suite {0} (this version knows only 1, ChaCha20-Poly1305/SHA-256)")]
    UnknownCipher(u8),
    #[error("unknown compression {0} (this version knows only 0, none)")]
    UnknownCompression(u8),
    #[error("unknown content kind {0} (expected 0 for data or 1 for metadata)")]
    UnknownKind(u8),
}

impl Extra {
    pub const DATA: Extra = Extra {
        kind: ContentKind::Data,
    };
    pub const METADATA: Extra = Extra {
        kind: ContentKind::Metadata,
    };

    pub fn to_bytes(self) -> [u8; EXTRA_LEN] {
        let kind = match self.kind {
            ContentKind::Data => 0,
            ContentKind::Metadata => 1,
        };
        [CIPHER_CHACHA20POLY1305_SHA256, COMPRESSION_NONE, kind]
    }

    pub fn from_bytes(bytes: [u8; EXTRA_LEN]) -> Result<Self, ExtraError> {
        let [cipher, compression, kind] = bytes;
        if cipher != CIPHER_CHACHA20POLY1305_SHA256 {
            return Err(ExtraError::UnknownCipher(cipher));
        }
        if compression != COMPRESSION_NONE {
            return Err(ExtraError::UnknownCompression(compression));
        }
        let kind = match kind {
            0 => ContentKind::Data,
            1 => ContentKind::Metadata,
            other => return Err(ExtraError::UnknownKind(other)),
        };
        Ok(Extra { kind })
    }
}

/// A complete content hash key: enough to find a block and read it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChkKey {
    pub routing: RoutingKey,
    pub crypto: CryptoKey,
}

impl fmt::Debug for ChkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChkKey")
            .field("routing", &self.routing)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypto_key_debug_hides_the_secret() {
        let key = CryptoKey::from_bytes([0xab; KEY_LEN]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("ab"), "{shown}");
        let chk = ChkKey {
            routing: RoutingKey::from_bytes([1; KEY_LEN]),
            crypto: key,
        };
        assert!(!format!("{chk:?}").contains("171"));
    }

    #[test]
    fn extra_round_trips_and_rejects_unknown_values() {
        for extra in [Extra::DATA, Extra::METADATA] {
            assert_eq!(Extra::from_bytes(extra.to_bytes()), Ok(extra));
        }
        assert_eq!(
            Extra::from_bytes([2, 0, 0]),
            Err(ExtraError::UnknownCipher(2))
        );
        assert_eq!(
            Extra::from_bytes([1, 1, 0]),
            Err(ExtraError::UnknownCompression(1))
        );
        assert_eq!(
            Extra::from_bytes([1, 0, 9]),
            Err(ExtraError::UnknownKind(9))
        );
    }
}
