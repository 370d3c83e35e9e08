//! Root copies: extra, unlinkable copies of a document's root block.
//!
//! A one-block document's only block is its root: the content itself, which
//! no erasure code protects. So that root is stored again, twice
//! ([`ROOT_COPIES`]), at other places on the key circle found from the URI
//! alone. (A root that names a tree of blocks is coded into shards instead,
//! [`crate::shards`], so that it outlives its segments.)
//!
//! ```text
//! copy key      K_i = SHA-256("warren-root-copy-key-v1" ‖ K ‖ i)      i = 1, 2, ...
//! copy block    the root's sealed plaintext S (section 1) encrypted under K_i
//!               instead of K: an ordinary CHK block at R_i = SHA-256(B_i)
//! pointer seed  s_i = SHA-256("warren-root-copy-seed-v1" ‖ K ‖ i)
//! pointer key   P_i = SHA-256("warren-root-copy-ssk-v1" ‖ K ‖ i)
//! pointer       the SSK document "root-copy" of seed s_i and crypto key P_i,
//!               kind 0, holding the 32 bytes R_i
//! ```
//!
//! A fetcher that cannot find `R` derives pointer `i` from `K`, reads `R_i`
//! from it, fetches and decrypts the copy with `K_i`, and accepts its content
//! only if re-encoding it (section 1) gives `R` again: a squatted pointer or a
//! forged copy is refused, never used. Re-encoding also gives back the very
//! root block, so nothing past the root knows a copy was used.
//!
//! Nodes see only an SSK and a CHK block like any other; without `K` they
//! cannot tell that either is a copy, nor of what (threat model in
//! `docs/THREAT_MODEL.md`, "Root copies").

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::block::{BlockError, ChkBlock};
use crate::key::{ChkKey, CryptoKey, RoutingKey, KEY_LEN};
use crate::ssk::{HashedName, SskBlock, SskBlockError, SskPayload, SskPrivateKey};

/// Extra copies of a one-block document's root (Fred inserts top blocks
/// 1 + 2 times). Its only block is its data: nothing else outlives it.
pub const ROOT_COPIES: u8 = 2;

/// Extra copies inserted for a root: none when it names a tree of blocks
/// (its shards stand in for them), [`ROOT_COPIES`] when it is the whole
/// document.
pub fn copies_for(names_a_tree: bool) -> u8 {
    if names_a_tree {
        0
    } else {
        ROOT_COPIES
    }
}
/// Domain of the copy's crypto key.
pub const COPY_KEY_DOMAIN: &[u8] = b"warren-root-copy-key-v1";
/// Domain of the pointer's signing seed.
pub const POINTER_SEED_DOMAIN: &[u8] = b"warren-root-copy-seed-v1";
/// Domain of the pointer's crypto key.
pub const POINTER_CRYPTO_DOMAIN: &[u8] = b"warren-root-copy-ssk-v1";
/// The pointer's SSK document name.
pub const POINTER_NAME: &str = "root-copy";

/// Why a root copy was refused or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    #[error("root copy block: {0}")]
    Block(#[from] BlockError),
    #[error("root copy pointer: {0}")]
    Pointer(#[from] SskBlockError),
    #[error("root copy pointer does not hold a routing key")]
    BadPointer,
    #[error("root copy does not re-encode to the root it claims to copy: forged or squatted")]
    NotTheRoot,
    #[error("root shard is malformed")]
    BadShard,
    #[error("root shard code: {0}")]
    Code(String),
}

/// What one root copy is made of, ready to insert.
#[derive(Debug, Clone)]
pub struct RootCopy {
    pub block: ChkBlock,
    pub pointer: SskBlock,
}

/// Where copy `index` of the root `root` lives, and how to read it.
#[derive(Debug, Clone)]
pub struct CopyLocator {
    pub index: u8,
    /// Routing key of the pointer (an SSK key).
    pub pointer_key: RoutingKey,
    pointer_crypto: CryptoKey,
    copy_crypto: CryptoKey,
}

pub(crate) fn derive(domain: &[u8], root: &CryptoKey, index: u8) -> [u8; KEY_LEN] {
    let mut h = Sha256::new();
    h.update(domain);
    h.update(root.as_bytes());
    h.update([index]);
    h.finalize().into()
}

/// The signing key, crypto key and hashed name of an SSK whose seed and
/// crypto key follow from the root key (KSK-like: whoever holds the URI can
/// find it, nobody without it).
pub(crate) fn derived_ssk(
    (seed_domain, crypto_domain, doc_name): (&[u8], &[u8], &str),
    root: &CryptoKey,
    index: u8,
) -> (SskPrivateKey, CryptoKey, HashedName) {
    let seed = Zeroizing::new(derive(seed_domain, root, index));
    let crypto = CryptoKey::from_bytes(derive(crypto_domain, root, index));
    let name = HashedName::of(&crypto, doc_name);
    (SskPrivateKey::from_seed(&seed), crypto, name)
}

fn pointer_keys(root: &CryptoKey, index: u8) -> (SskPrivateKey, CryptoKey, HashedName) {
    derived_ssk(
        (POINTER_SEED_DOMAIN, POINTER_CRYPTO_DOMAIN, POINTER_NAME),
        root,
        index,
    )
}

/// Copies `1..=count` of the root whose plaintext is `content` (what the
/// root block decodes to); `root` is the key `ChkBlock::encode(content)`
/// gives. `count` is [`copies_for`] the document.
pub fn root_copies(content: &[u8], root: &ChkKey, count: u8) -> Result<Vec<RootCopy>, CopyError> {
    (1..=count)
        .map(|index| {
            let (block, _) = ChkBlock::encode_under(content, |k| {
                CryptoKey::from_bytes(derive(COPY_KEY_DOMAIN, k, index))
            })?;
            let (private, crypto, name) = pointer_keys(&root.crypto, index);
            let payload = SskPayload::Data(block.routing_key().as_bytes().to_vec());
            let pointer = SskBlock::encode(&private, &crypto, &name, &payload)?;
            Ok(RootCopy { block, pointer })
        })
        .collect()
}

/// Where each copy of `root` may live, in the order a fetcher tries them. A
/// URI does not say which kind of root it names, so a fetcher tries these
/// for any root (a tree's are simply not found).
pub fn copy_locators(root: &ChkKey) -> Vec<CopyLocator> {
    (1..=ROOT_COPIES)
        .map(|index| {
            let (private, pointer_crypto, name) = pointer_keys(&root.crypto, index);
            let pk_hash = private.public_key().hash();
            CopyLocator {
                index,
                pointer_key: crate::ssk::routing_key(&pk_hash, &name),
                pointer_crypto,
                copy_crypto: CryptoKey::from_bytes(derive(COPY_KEY_DOMAIN, &root.crypto, index)),
            }
        })
        .collect()
}

impl CopyLocator {
    /// The copy's routing key, read from its pointer (already verified
    /// against [`CopyLocator::pointer_key`] by whoever fetched it).
    pub fn read_pointer(&self, pointer: &SskBlock) -> Result<RoutingKey, CopyError> {
        match pointer.decode(&self.pointer_crypto)? {
            SskPayload::Data(bytes) => {
                let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CopyError::BadPointer)?;
                Ok(RoutingKey::from_bytes(key))
            }
            SskPayload::Chk(_) => Err(CopyError::BadPointer),
        }
    }

    /// The root block itself, rebuilt from its copy: decrypts `copy` and
    /// re-encodes the content, which must give `root` again.
    pub fn restore(&self, copy: &ChkBlock, root: &ChkKey) -> Result<ChkBlock, CopyError> {
        let content = Zeroizing::new(copy.decode(&self.copy_crypto)?);
        let (block, key) = ChkBlock::encode(&content)?;
        if key != *root {
            return Err(CopyError::NotTheRoot);
        }
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_restore_the_root_and_live_elsewhere() {
        let content = b"Hello, Warren!";
        let (root_block, root) = ChkBlock::encode(content).unwrap();
        let copies = root_copies(content, &root, copies_for(false)).unwrap();
        let locators = copy_locators(&root);
        assert_eq!(copies.len(), usize::from(ROOT_COPIES));
        assert_eq!(locators.len(), copies.len());
        assert!(root_copies(content, &root, copies_for(true))
            .unwrap()
            .is_empty());
        for (copy, locator) in copies.iter().zip(&locators) {
            assert_ne!(copy.block.routing_key(), root.routing);
            assert_eq!(copy.pointer.routing_key(), locator.pointer_key);
            let at = locator.read_pointer(&copy.pointer).unwrap();
            assert_eq!(at, copy.block.routing_key());
            assert_eq!(locator.restore(&copy.block, &root).unwrap(), root_block);
        }
        assert_ne!(copies[0].block.routing_key(), copies[1].block.routing_key());
        assert_ne!(locators[0].pointer_key, locators[1].pointer_key);
    }

    #[test]
    fn a_copy_of_another_root_is_refused() {
        let (_, root) = ChkBlock::encode(b"the real root").unwrap();
        let (_, other) = ChkBlock::encode(b"an impostor").unwrap();
        let forged = root_copies(b"an impostor", &other, ROOT_COPIES).unwrap();
        let locator = &copy_locators(&root)[0];
        // Decrypting under the wrong copy key fails, or re-encoding gives
        // another root: either way the copy is not used.
        assert!(locator.restore(&forged[0].block, &root).is_err());
        let plain = ChkBlock::encode(b"an impostor").unwrap().0;
        assert!(locator.restore(&plain, &root).is_err());
    }

    #[test]
    fn copies_are_deterministic() {
        let (_, root) = ChkBlock::encode(b"same").unwrap();
        let a = root_copies(b"same", &root, ROOT_COPIES).unwrap();
        let b = root_copies(b"same", &root, ROOT_COPIES).unwrap();
        assert_eq!(a[1].block, b[1].block);
        assert_eq!(a[1].pointer, b[1].pointer);
    }

    #[test]
    fn known_answer_vectors() {
        // Pinned in docs/PROTOCOL.md section 6.6 and recomputed there by
        // scripts/check_vectors.py.
        let content = b"Hello, Warren!";
        let (_, root) = ChkBlock::encode(content).unwrap();
        let copies = root_copies(content, &root, ROOT_COPIES).unwrap();
        let locators = copy_locators(&root);
        let expected = [
            (
                "245ea9a9438dc7d34a25e8cd63d3b6ac51f4305395790cb02a97ba9d60be00a3",
                "ee90b5c51c5bed2997869371a6c6dcff509194159466a559a0a59d0238f4a3d6",
                "5eb908c0d1aa3aefb8e98c4c57196641bfe3f28390515b1c986a19e29afd55d0",
            ),
            (
                "b291c2ce3b041e58aa96a0e3a578a2ec2bb87ecea7498f9e8cbdb9741d29a5ee",
                "d14ad0268a24aed35cc4a8a782318c30b23cf2dc1a85721c703776e767eeafd8",
                "1523e891ebcf6f15c326c12daec622c3e1790955eb2223c05aa14b423864f422",
            ),
        ];
        for ((copy, locator), (r, p, sha)) in copies.iter().zip(&locators).zip(expected) {
            assert_eq!(hex(copy.block.routing_key().as_bytes()), r);
            assert_eq!(hex(locator.pointer_key.as_bytes()), p);
            assert_eq!(hex(&Sha256::digest(copy.pointer.as_bytes())), sha);
        }
    }

    fn hex(bytes: &[u8]) -> String {
        use core::fmt::Write as _;
        bytes.iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }
}
