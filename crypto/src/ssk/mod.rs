//! Signed subspace keys (`SSK@`), keyword keys (`KSK@`) and updatable
//! editions (`USK@`): names only their author can write to.
//!
//! ```text
//! key pair      Ed25519 seed s (32 bytes, the insert URI's secret), public key P
//! pk hash       H = SHA-256(P)                                  (in the request URI)
//! hashed name   N = SHA-256("warren-ssk-name-v1" ‖ K ‖ name)    (K: the URI's crypto key)
//! routing key   R = SHA-256("warren-ssk-routing-v1" ‖ H ‖ N)
//! ```
//!
//! A node sees `R` in a request and `P`, `N` in the block: it checks
//! `SHA-256("warren-ssk-routing-v1" ‖ SHA-256(P) ‖ N) = R` and the signature,
//! without learning the name (hashed under `K`) or reading the payload
//! (encrypted under a key derived from `K`). See [`block`] for the layout and
//! `docs/PROTOCOL.md` for the whole specification.
//!
//! A `KSK@name` is an SSK whose seed and crypto key are derived from `name`
//! alone, so anyone who knows (or guesses) the name can read it — and write it
//! first. A `USK@…/name/N` is the SSK document `name-N`.

pub mod block;
pub mod uri;
pub mod usk;

use core::fmt;

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::key::{CryptoKey, RoutingKey, KEY_LEN};

pub use block::{SskBlock, SskBlockError, SskPayload, SSK_BLOCK_LEN, SSK_PAYLOAD};
pub use uri::{AnyUri, Edition, KskUri, SskInsertUri, SskUri, UskInsertUri, UskUri};
pub use usk::{EditionSearch, SearchStep, HOLE_TOLERANCE};

/// Domain separator of the hashed document name.
pub const NAME_DOMAIN: &[u8] = b"warren-ssk-name-v1";
/// Domain separator of the SSK routing key.
pub const ROUTING_DOMAIN: &[u8] = b"warren-ssk-routing-v1";
/// Domain separator of a KSK's Ed25519 seed.
pub const KSK_SEED_DOMAIN: &[u8] = b"warren-ksk-v1";
/// Domain separator of a KSK's crypto key.
pub const KSK_CRYPTO_DOMAIN: &[u8] = b"warren-ksk-crypto-v1";
/// Longest document name (or KSK keyword), in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// An Ed25519 public key as carried in an SSK block (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SskPublicKey([u8; KEY_LEN]);

impl SskPublicKey {
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SskPublicKey(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// `SHA-256(P)`: what a request URI carries instead of the key itself.
    pub fn hash(&self) -> PubKeyHash {
        PubKeyHash(Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for SskPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SskPublicKey({:02x?}…)", &self.0[..4])
    }
}

/// `SHA-256(public key)`: identifies a subspace in a request URI.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PubKeyHash([u8; KEY_LEN]);

impl PubKeyHash {
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PubKeyHash(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for PubKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PubKeyHash({:02x?}…)", &self.0[..4])
    }
}

/// A document name hashed under the URI's crypto key: routable, not readable.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashedName([u8; KEY_LEN]);

impl HashedName {
    /// `SHA-256("warren-ssk-name-v1" ‖ K ‖ name)`.
    pub fn of(crypto: &CryptoKey, name: &str) -> Self {
        let mut h = Sha256::new();
        h.update(NAME_DOMAIN);
        h.update(crypto.as_bytes());
        h.update(name.as_bytes());
        HashedName(h.finalize().into())
    }

    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        HashedName(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for HashedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HashedName({:02x?}…)", &self.0[..4])
    }
}

/// `SHA-256("warren-ssk-routing-v1" ‖ H ‖ N)`: where an SSK block lives.
pub fn routing_key(pk_hash: &PubKeyHash, name: &HashedName) -> RoutingKey {
    let mut h = Sha256::new();
    h.update(ROUTING_DOMAIN);
    h.update(pk_hash.as_bytes());
    h.update(name.as_bytes());
    RoutingKey::from_bytes(h.finalize().into())
}

/// An Ed25519 signing key: the secret of an insert URI.
///
/// Never printed by `Debug`, compared in constant time, zeroized on drop
/// (`ed25519-dalek`'s `zeroize` feature).
#[derive(Clone)]
pub struct SskPrivateKey(SigningKey);

impl SskPrivateKey {
    /// A fresh random key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut seed = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// The key whose RFC 8032 seed is `seed`.
    pub fn from_seed(seed: &[u8; KEY_LEN]) -> Self {
        SskPrivateKey(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed, as an insert URI carries it. Secret.
    pub fn seed(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.0.to_bytes())
    }

    pub fn public_key(&self) -> SskPublicKey {
        SskPublicKey(self.0.verifying_key().to_bytes())
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.0
    }
}

impl PartialEq for SskPrivateKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bytes().ct_eq(&other.0.to_bytes()).into()
    }
}

impl Eq for SskPrivateKey {}

impl fmt::Debug for SskPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SskPrivateKey(<secret>)")
    }
}

/// The seed and crypto key of `KSK@keyword`: anyone can derive both.
pub fn ksk_keys(keyword: &str) -> (SskPrivateKey, CryptoKey) {
    let mut seed = Zeroizing::new([0u8; KEY_LEN]);
    let mut h = Sha256::new();
    h.update(KSK_SEED_DOMAIN);
    h.update(keyword.as_bytes());
    seed.copy_from_slice(&h.finalize());
    let mut h = Sha256::new();
    h.update(KSK_CRYPTO_DOMAIN);
    h.update(keyword.as_bytes());
    (
        SskPrivateKey::from_seed(&seed),
        CryptoKey::from_bytes(h.finalize().into()),
    )
}

/// Parses a public key from a block; `None` for bytes that are not a curve point.
pub(crate) fn verifying_key(pk: &SskPublicKey) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(pk.as_bytes()).ok()
}

#[cfg(test)]
mod tests;
