//! SSK blocks: a small signed, encrypted payload under a routing key the
//! author alone can write.
//!
//! ```text
//! sealed  S  = data ‖ zero padding to 1024 bytes ‖ len(data) u16 LE ‖ kind u8   (1027)
//! enc key E  = SHA-256("warren-ssk-key-v1" ‖ K ‖ N)
//! nonce   IV = SHA-256("warren-ssk-nonce-v1" ‖ E ‖ S)[0..12]
//! header  Hd = [SSK_FORMAT_VERSION, CIPHER_CHACHA20POLY1305_SHA256]             (2)
//! aad     A  = Hd ‖ P ‖ N ‖ IV
//! cipher  C  = ChaCha20-Poly1305(E, IV, A).seal(S)                              (1043)
//! body    B  = Hd ‖ P ‖ N ‖ IV ‖ C                                              (1121)
//! sig     G  = Ed25519-sign(s, "warren-ssk-block-v1" ‖ B)                        (64)
//! block      = B ‖ G                                                            (1185)
//! ```
//!
//! The nonce is derived from the plaintext (deterministic, SIV-like), so one
//! content under one name always makes the same block (Ed25519 signatures are
//! deterministic too) and two contents never share a nonce under one key.
//! `kind` is 0 for inline data, 1 for a pointer: the payload is then the text
//! of a `CHK@` URI holding the content.

use core::fmt;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use ed25519_dalek::{Signature, Signer as _};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::{routing_key, verifying_key, HashedName, SskPrivateKey, SskPublicKey};
use crate::key::{CryptoKey, RoutingKey, CIPHER_CHACHA20POLY1305_SHA256, KEY_LEN};
use crate::uri::ChkUri;

/// Bytes of inline content one SSK block carries at most.
pub const SSK_PAYLOAD: usize = 1024;
/// Sealed plaintext: padded payload, u16 length, kind byte.
pub const SSK_SEALED_LEN: usize = SSK_PAYLOAD + 3;
/// Version of the SSK block format in the header's first byte.
pub const SSK_FORMAT_VERSION: u8 = 1;
/// Bytes of the plain header.
pub const SSK_HEADER_LEN: usize = 2;
/// Bytes of the derived nonce.
pub const SSK_NONCE_LEN: usize = 12;
/// Bytes of the Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
const TAG_LEN: usize = 16;

const AT_PK: usize = SSK_HEADER_LEN;
const AT_NAME: usize = AT_PK + KEY_LEN;
const AT_NONCE: usize = AT_NAME + KEY_LEN;
const AT_SEALED: usize = AT_NONCE + SSK_NONCE_LEN;
const AT_TAG: usize = AT_SEALED + SSK_SEALED_LEN;
/// Where the signature starts: everything before it is signed.
pub const SSK_SIGNED_LEN: usize = AT_TAG + TAG_LEN;
/// Size of every SSK block, on the wire and on disk.
pub const SSK_BLOCK_LEN: usize = SSK_SIGNED_LEN + SIGNATURE_LEN;

const HEADER: [u8; SSK_HEADER_LEN] = [SSK_FORMAT_VERSION, CIPHER_CHACHA20POLY1305_SHA256];
/// Domain separator of the payload encryption key.
pub const ENC_KEY_DOMAIN: &[u8] = b"warren-ssk-key-v1";
/// Domain separator of the derived nonce.
pub const NONCE_DOMAIN: &[u8] = b"warren-ssk-nonce-v1";
/// Domain separator prefixed to the signed bytes.
pub const SIGNATURE_DOMAIN: &[u8] = b"warren-ssk-block-v1";

const KIND_DATA: u8 = 0;
const KIND_CHK: u8 = 1;

/// What an SSK block's payload holds.
#[derive(Clone, PartialEq, Eq)]
pub enum SskPayload {
    /// The content itself, at most [`SSK_PAYLOAD`] bytes.
    Data(Vec<u8>),
    /// The content lives under this CHK (a file, or a site's manifest).
    Chk(ChkUri),
}

impl fmt::Debug for SskPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SskPayload::Data(d) => write!(f, "Data({} bytes)", d.len()),
            SskPayload::Chk(uri) => f.debug_tuple("Chk").field(uri).finish(),
        }
    }
}

/// Why an SSK block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SskBlockError {
    #[error("content of {0} bytes does not fit in one SSK block (at most {SSK_PAYLOAD}); insert it as a CHK and point to it")]
    TooLarge(usize),
    #[error("an SSK block is {SSK_BLOCK_LEN} bytes, this one is {0}")]
    WrongLength(usize),
    #[error("SSK block header {0:02x?} is not a known format (expected {HEADER:02x?})")]
    UnknownHeader([u8; SSK_HEADER_LEN]),
    #[error("SSK block's public key and name do not give its routing key: forged or misplaced")]
    RoutingKeyMismatch,
    #[error("SSK block's public key is not a valid Ed25519 key")]
    BadPublicKey,
    #[error("SSK block's signature does not verify: forged or corrupt")]
    BadSignature,
    #[error("SSK block does not decrypt under this key: wrong key, or a forged block")]
    DecryptionFailed,
    #[error("decrypted SSK block is malformed: {0}")]
    Malformed(&'static str),
}

/// An SSK block whose routing key and signature have been checked.
#[derive(Clone, PartialEq, Eq)]
pub struct SskBlock {
    routing_key: RoutingKey,
    bytes: Vec<u8>,
}

impl fmt::Debug for SskBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SskBlock")
            .field("routing_key", &self.routing_key)
            .finish_non_exhaustive()
    }
}

/// `SHA-256("warren-ssk-key-v1" ‖ K ‖ N)`.
fn encryption_key(crypto: &CryptoKey, name: &HashedName) -> Zeroizing<[u8; KEY_LEN]> {
    let mut h = Sha256::new();
    h.update(ENC_KEY_DOMAIN);
    h.update(crypto.as_bytes());
    h.update(name.as_bytes());
    Zeroizing::new(h.finalize().into())
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGNATURE_DOMAIN.len() + body.len());
    msg.extend_from_slice(SIGNATURE_DOMAIN);
    msg.extend_from_slice(body);
    msg
}

impl SskBlock {
    /// Signs and encrypts `payload` as document `name` of the subspace of `private`.
    pub fn encode(
        private: &SskPrivateKey,
        crypto: &CryptoKey,
        name: &HashedName,
        payload: &SskPayload,
    ) -> Result<SskBlock, SskBlockError> {
        let (kind, data) = match payload {
            SskPayload::Data(d) => (KIND_DATA, Zeroizing::new(d.clone())),
            SskPayload::Chk(uri) => (KIND_CHK, Zeroizing::new(uri.to_string().into_bytes())),
        };
        if data.len() > SSK_PAYLOAD {
            return Err(SskBlockError::TooLarge(data.len()));
        }
        let public = private.public_key();
        let mut bytes = vec![0u8; SSK_BLOCK_LEN];
        bytes[..AT_PK].copy_from_slice(&HEADER);
        bytes[AT_PK..AT_NAME].copy_from_slice(public.as_bytes());
        bytes[AT_NAME..AT_NONCE].copy_from_slice(name.as_bytes());
        {
            let sealed = &mut bytes[AT_SEALED..AT_TAG];
            sealed[..data.len()].copy_from_slice(&data);
            let len = u16::try_from(data.len()).map_err(|_| SskBlockError::TooLarge(data.len()))?;
            sealed[SSK_PAYLOAD..SSK_PAYLOAD + 2].copy_from_slice(&len.to_le_bytes());
            sealed[SSK_PAYLOAD + 2] = kind;
        }
        let key = encryption_key(crypto, name);
        let mut h = Sha256::new();
        h.update(NONCE_DOMAIN);
        h.update(key.as_ref());
        h.update(&bytes[AT_SEALED..AT_TAG]);
        let nonce = h.finalize();
        bytes[AT_NONCE..AT_SEALED].copy_from_slice(&nonce[..SSK_NONCE_LEN]);

        let (aad, rest) = bytes.split_at_mut(AT_SEALED);
        let (sealed, tail) = rest.split_at_mut(SSK_SEALED_LEN);
        let cipher = ChaCha20Poly1305::new(key.as_ref().into());
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&aad[AT_NONCE..]), aad, sealed)
            .map_err(|_| SskBlockError::TooLarge(data.len()))?;
        tail[..TAG_LEN].copy_from_slice(&tag);

        let signature = private
            .signing_key()
            .sign(&signed_message(&bytes[..SSK_SIGNED_LEN]));
        bytes[SSK_SIGNED_LEN..].copy_from_slice(&signature.to_bytes());
        let routing_key = routing_key(&public.hash(), name);
        Ok(SskBlock { routing_key, bytes })
    }

    /// Accepts bytes from outside as the SSK block named `routing_key`: checks
    /// length, header, that its public key and hashed name give `routing_key`,
    /// and its signature. What every node does before storing or relaying.
    pub fn verify(routing_key: RoutingKey, bytes: Vec<u8>) -> Result<SskBlock, SskBlockError> {
        if bytes.len() != SSK_BLOCK_LEN {
            return Err(SskBlockError::WrongLength(bytes.len()));
        }
        let mut header = [0u8; SSK_HEADER_LEN];
        header.copy_from_slice(&bytes[..SSK_HEADER_LEN]);
        if header != HEADER {
            return Err(SskBlockError::UnknownHeader(header));
        }
        let block = SskBlock { routing_key, bytes };
        if super::routing_key(&block.public_key().hash(), &block.hashed_name()) != routing_key {
            return Err(SskBlockError::RoutingKeyMismatch);
        }
        let key = verifying_key(&block.public_key()).ok_or(SskBlockError::BadPublicKey)?;
        let mut sig = [0u8; SIGNATURE_LEN];
        sig.copy_from_slice(&block.bytes[SSK_SIGNED_LEN..]);
        key.verify_strict(
            &signed_message(&block.bytes[..SSK_SIGNED_LEN]),
            &Signature::from_bytes(&sig),
        )
        .map_err(|_| SskBlockError::BadSignature)?;
        Ok(block)
    }

    /// Decrypts with the URI's crypto key.
    pub fn decode(&self, crypto: &CryptoKey) -> Result<SskPayload, SskBlockError> {
        let key = encryption_key(crypto, &self.hashed_name());
        let mut sealed = Zeroizing::new(self.bytes[AT_SEALED..AT_TAG].to_vec());
        let cipher = ChaCha20Poly1305::new(key.as_ref().into());
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&self.bytes[AT_NONCE..AT_SEALED]),
                &self.bytes[..AT_SEALED],
                &mut sealed,
                Tag::from_slice(&self.bytes[AT_TAG..SSK_SIGNED_LEN]),
            )
            .map_err(|_| SskBlockError::DecryptionFailed)?;
        let len = usize::from(u16::from_le_bytes([
            sealed[SSK_PAYLOAD],
            sealed[SSK_PAYLOAD + 1],
        ]));
        if len > SSK_PAYLOAD {
            return Err(SskBlockError::Malformed("length field exceeds the payload"));
        }
        // Canonical form: one content has one block.
        if sealed[len..SSK_PAYLOAD].iter().any(|&b| b != 0) {
            return Err(SskBlockError::Malformed("non-zero padding"));
        }
        let mut data = sealed[..len].to_vec();
        match sealed[SSK_PAYLOAD + 2] {
            KIND_DATA => Ok(SskPayload::Data(data)),
            KIND_CHK => {
                let parsed = core::str::from_utf8(&data)
                    .ok()
                    .and_then(|t| t.parse::<ChkUri>().ok());
                data.zeroize();
                parsed
                    .map(SskPayload::Chk)
                    .ok_or(SskBlockError::Malformed("pointer is not a CHK URI"))
            }
            _ => {
                data.zeroize();
                Err(SskBlockError::Malformed("unknown payload kind"))
            }
        }
    }

    pub fn routing_key(&self) -> RoutingKey {
        self.routing_key
    }

    /// The signer's public key, as carried in the block.
    pub fn public_key(&self) -> SskPublicKey {
        let mut pk = [0u8; KEY_LEN];
        pk.copy_from_slice(&self.bytes[AT_PK..AT_NAME]);
        SskPublicKey::from_bytes(pk)
    }

    /// The hashed document name, as carried in the block.
    pub fn hashed_name(&self) -> HashedName {
        let mut n = [0u8; KEY_LEN];
        n.copy_from_slice(&self.bytes[AT_NAME..AT_NONCE]);
        HashedName::from_bytes(n)
    }

    /// The encoded block, exactly [`SSK_BLOCK_LEN`] bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}
