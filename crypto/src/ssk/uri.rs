//! `SSK@`, `USK@` and `KSK@` URIs, and [`AnyUri`] for "any key a user pastes".
//!
//! ```text
//! SSK@<H>,<K>,AQEA/<docname>[/<path>]          request: H = SHA-256(public key)
//! SSK@<s>,<K>,AQEB/<docname>[/<path>]          insert:  s = Ed25519 seed (secret)
//! USK@<H>,<K>,AQEA/<name>/<edition>[/<path>]   edition N ≥ 0, or -1 / latest
//! USK@<s>,<K>,AQEB/<name>/<edition>
//! KSK@<keyword>[/<path>]
//! ```
//!
//! Keys are unpadded base64url like a CHK's; the third part is the settings
//! bytes `[cipher 1, signature 1 = Ed25519, 0 request | 1 insert]`.

use core::fmt;
use core::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::{ksk_keys, routing_key, HashedName, PubKeyHash, SskPrivateKey, MAX_NAME_LEN};
use crate::key::{CryptoKey, RoutingKey, CIPHER_CHACHA20POLY1305_SHA256, KEY_LEN};
use crate::uri::{decode_part, ChkUri, UriError, UriPart, MAX_URI_LEN};

/// Signature algorithm byte: Ed25519 (the only one).
pub const SIGNATURE_ED25519: u8 = 1;
const SETTINGS_LEN: usize = 3;
const SETTINGS_REQUEST: [u8; SETTINGS_LEN] = [CIPHER_CHACHA20POLY1305_SHA256, SIGNATURE_ED25519, 0];
const SETTINGS_INSERT: [u8; SETTINGS_LEN] = [CIPHER_CHACHA20POLY1305_SHA256, SIGNATURE_ED25519, 1];

/// Which edition of a USK a fetch asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Edition {
    /// The newest the network holds (`-1` or `latest`).
    Latest,
    /// The newest the network holds that is at least this one.
    AtLeast(u64),
}

impl Edition {
    /// Where an edition search starts.
    pub fn start(self) -> u64 {
        match self {
            Edition::Latest => 0,
            Edition::AtLeast(n) => n,
        }
    }
}

impl fmt::Display for Edition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Edition::Latest => f.write_str("-1"),
            Edition::AtLeast(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for Edition {
    type Err = UriError;

    fn from_str(text: &str) -> Result<Self, UriError> {
        match text {
            "-1" | "latest" => Ok(Edition::Latest),
            // Digits only: one edition has one spelling apart from leading zeros.
            n if !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()) => n
                .parse()
                .map(Edition::AtLeast)
                .map_err(|_| UriError::BadEdition),
            _ => Err(UriError::BadEdition),
        }
    }
}

/// A request URI of a signed subspace key: reads document `docname`.
#[derive(Clone, PartialEq, Eq)]
pub struct SskUri {
    pub pk_hash: PubKeyHash,
    pub crypto: CryptoKey,
    pub docname: String,
    /// A path inside the document (a site), without the leading `/`.
    pub path: Option<String>,
}

/// An insert URI of a signed subspace key: writes document `docname`. Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SskInsertUri {
    pub private: SskPrivateKey,
    pub crypto: CryptoKey,
    pub docname: String,
}

/// A request URI of an updatable key: editions `name-0`, `name-1`, … of an SSK.
#[derive(Clone, PartialEq, Eq)]
pub struct UskUri {
    pub pk_hash: PubKeyHash,
    pub crypto: CryptoKey,
    pub name: String,
    pub edition: Edition,
    pub path: Option<String>,
}

/// An insert URI of an updatable key, for edition `edition`. Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct UskInsertUri {
    pub private: SskPrivateKey,
    pub crypto: CryptoKey,
    pub name: String,
    pub edition: u64,
}

/// A keyword key: an SSK whose keys anyone can derive from `keyword`.
#[derive(Clone, PartialEq, Eq)]
pub struct KskUri {
    pub keyword: String,
    pub path: Option<String>,
}

/// Any URI a user may paste, request or insert.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AnyUri {
    Chk(ChkUri),
    Ssk(SskUri),
    SskInsert(SskInsertUri),
    Usk(UskUri),
    UskInsert(UskInsertUri),
    Ksk(KskUri),
}

fn usk_docname(name: &str, edition: u64) -> String {
    format!("{name}-{edition}")
}

impl SskUri {
    pub fn hashed_name(&self) -> HashedName {
        HashedName::of(&self.crypto, &self.docname)
    }

    /// The routing key the network looks this document up under.
    pub fn routing_key(&self) -> RoutingKey {
        routing_key(&self.pk_hash, &self.hashed_name())
    }

    #[must_use]
    pub fn with_path(mut self, path: Option<String>) -> Self {
        self.path = path;
        self
    }
}

impl SskInsertUri {
    /// A fresh key pair for document `docname`.
    pub fn generate(rng: &mut impl rand_core::CryptoRngCore, docname: impl Into<String>) -> Self {
        let private = SskPrivateKey::generate(rng);
        let mut crypto = [0u8; KEY_LEN];
        rng.fill_bytes(&mut crypto);
        SskInsertUri {
            private,
            crypto: CryptoKey::from_bytes(crypto),
            docname: docname.into(),
        }
    }

    pub fn hashed_name(&self) -> HashedName {
        HashedName::of(&self.crypto, &self.docname)
    }

    /// The URI readers use: the public key's hash instead of the private key.
    pub fn request_uri(&self) -> SskUri {
        SskUri {
            pk_hash: self.private.public_key().hash(),
            crypto: self.crypto.clone(),
            docname: self.docname.clone(),
            path: None,
        }
    }

    pub fn routing_key(&self) -> RoutingKey {
        self.request_uri().routing_key()
    }
}

impl UskUri {
    /// The SSK holding edition `edition`.
    pub fn edition_uri(&self, edition: u64) -> SskUri {
        SskUri {
            pk_hash: self.pk_hash,
            crypto: self.crypto.clone(),
            docname: usk_docname(&self.name, edition),
            path: None,
        }
    }

    #[must_use]
    pub fn with_edition(mut self, edition: Edition) -> Self {
        self.edition = edition;
        self
    }
}

impl UskInsertUri {
    /// The SSK insert URI of this edition.
    pub fn edition_insert_uri(&self) -> SskInsertUri {
        SskInsertUri {
            private: self.private.clone(),
            crypto: self.crypto.clone(),
            docname: usk_docname(&self.name, self.edition),
        }
    }

    /// The URI readers use for this edition.
    pub fn request_uri(&self) -> UskUri {
        UskUri {
            pk_hash: self.private.public_key().hash(),
            crypto: self.crypto.clone(),
            name: self.name.clone(),
            edition: Edition::AtLeast(self.edition),
            path: None,
        }
    }
}

impl KskUri {
    /// The derived SSK insert URI: anyone who knows the keyword can write it.
    pub fn insert_uri(&self) -> SskInsertUri {
        let (private, crypto) = ksk_keys(&self.keyword);
        SskInsertUri {
            private,
            crypto,
            docname: self.keyword.clone(),
        }
    }

    /// The derived SSK request URI.
    pub fn request_uri(&self) -> SskUri {
        self.insert_uri().request_uri().with_path(self.path.clone())
    }
}

/// A document name or keyword: not empty, bounded, no control characters,
/// and no whitespace at either end (a URI is trimmed when parsed, so such a
/// name would not survive being printed and pasted back).
fn check_name(name: &str) -> Result<(), UriError> {
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name.chars().any(char::is_control)
        || name.trim() != name
    {
        return Err(UriError::BadDocName);
    }
    Ok(())
}

fn check_path(path: Option<&str>) -> Result<Option<String>, UriError> {
    match path {
        None | Some("") => Ok(None),
        // Trailing whitespace would be trimmed off when the URI is parsed again.
        Some(p) if p.chars().any(char::is_control) || p.trim_end() != p => Err(UriError::BadPath),
        Some(p) => Ok(Some(p.to_owned())),
    }
}

/// The three comma-separated parts of an SSK or USK: key, crypto key, settings.
fn parse_keys(keys: &str) -> Result<([u8; KEY_LEN], CryptoKey, bool), UriError> {
    let parts: Vec<&str> = keys.split(',').collect();
    let [first, crypto, settings] = parts[..] else {
        return Err(UriError::WrongPartCount(parts.len()));
    };
    let first = decode_part::<KEY_LEN>(first, UriPart::RoutingKey)?;
    let crypto = CryptoKey::from_bytes(decode_part::<KEY_LEN>(crypto, UriPart::CryptoKey)?);
    let insert = match decode_part::<SETTINGS_LEN>(settings, UriPart::Extra)? {
        SETTINGS_REQUEST => false,
        SETTINGS_INSERT => true,
        _ => return Err(UriError::UnknownSettings),
    };
    Ok((first, crypto, insert))
}

impl FromStr for AnyUri {
    type Err = UriError;

    fn from_str(text: &str) -> Result<Self, UriError> {
        if text.len() > MAX_URI_LEN {
            return Err(UriError::TooLong(text.len()));
        }
        let trimmed = text.trim();
        let bare = trimmed.strip_prefix("warren:").unwrap_or(trimmed);
        let bare = bare.strip_prefix('/').unwrap_or(bare);
        let Some((scheme, rest)) = bare.split_once('@') else {
            return Err(UriError::MissingScheme);
        };
        match scheme {
            "CHK" => bare.parse().map(AnyUri::Chk),
            "KSK" => {
                let (keyword, path) = match rest.split_once('/') {
                    Some((k, p)) => (k, Some(p)),
                    None => (rest, None),
                };
                check_name(keyword)?;
                Ok(AnyUri::Ksk(KskUri {
                    keyword: keyword.to_owned(),
                    path: check_path(path)?,
                }))
            }
            "SSK" | "USK" => {
                let Some((keys, after)) = rest.split_once('/') else {
                    return Err(UriError::MissingDocName);
                };
                let (first, crypto, insert) = parse_keys(keys)?;
                let (name, after) = match after.split_once('/') {
                    Some((n, a)) => (n, Some(a)),
                    None => (after, None),
                };
                check_name(name)?;
                let name = name.to_owned();
                if scheme == "SSK" {
                    let path = check_path(after)?;
                    return Ok(if insert {
                        if path.is_some() {
                            return Err(UriError::InsertKeyPath);
                        }
                        AnyUri::SskInsert(SskInsertUri {
                            private: SskPrivateKey::from_seed(&first),
                            crypto,
                            docname: name,
                        })
                    } else {
                        AnyUri::Ssk(SskUri {
                            pk_hash: PubKeyHash::from_bytes(first),
                            crypto,
                            docname: name,
                            path,
                        })
                    });
                }
                let Some(after) = after else {
                    return Err(UriError::BadEdition);
                };
                let (edition, path) = match after.split_once('/') {
                    Some((e, p)) => (e, Some(p)),
                    None => (after, None),
                };
                let edition: Edition = edition.parse()?;
                let path = check_path(path)?;
                if insert {
                    let (Edition::AtLeast(edition), None) = (edition, path) else {
                        return Err(UriError::BadEdition);
                    };
                    return Ok(AnyUri::UskInsert(UskInsertUri {
                        private: SskPrivateKey::from_seed(&first),
                        crypto,
                        name,
                        edition,
                    }));
                }
                Ok(AnyUri::Usk(UskUri {
                    pk_hash: PubKeyHash::from_bytes(first),
                    crypto,
                    name,
                    edition,
                    path,
                }))
            }
            s if s.len() <= 8 && s.chars().all(|c| c.is_ascii_alphabetic()) => {
                Err(UriError::UnsupportedScheme(s.to_owned()))
            }
            _ => Err(UriError::MissingScheme),
        }
    }
}

impl AnyUri {
    /// Whether this URI holds a private key (an insert URI).
    pub fn is_insert(&self) -> bool {
        matches!(self, AnyUri::SskInsert(_) | AnyUri::UskInsert(_))
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn write_path(f: &mut fmt::Formatter<'_>, path: Option<&String>) -> fmt::Result {
    match path {
        Some(p) => write!(f, "/{p}"),
        None => Ok(()),
    }
}

impl fmt::Display for SskUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SSK@{},{},{}/{}",
            b64(self.pk_hash.as_bytes()),
            b64(self.crypto.as_bytes()),
            b64(&SETTINGS_REQUEST),
            self.docname
        )?;
        write_path(f, self.path.as_ref())
    }
}

/// Prints the secret: only for the author's own key file and terminal.
impl fmt::Display for SskInsertUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SSK@{},{},{}/{}",
            b64(self.private.seed().as_ref()),
            b64(self.crypto.as_bytes()),
            b64(&SETTINGS_INSERT),
            self.docname
        )
    }
}

impl fmt::Display for UskUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "USK@{},{},{}/{}/{}",
            b64(self.pk_hash.as_bytes()),
            b64(self.crypto.as_bytes()),
            b64(&SETTINGS_REQUEST),
            self.name,
            self.edition
        )?;
        write_path(f, self.path.as_ref())
    }
}

/// Prints the secret: only for the author's own key file and terminal.
impl fmt::Display for UskInsertUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "USK@{},{},{}/{}/{}",
            b64(self.private.seed().as_ref()),
            b64(self.crypto.as_bytes()),
            b64(&SETTINGS_INSERT),
            self.name,
            self.edition
        )
    }
}

impl fmt::Display for KskUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KSK@{}", self.keyword)?;
        write_path(f, self.path.as_ref())
    }
}

impl fmt::Display for AnyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyUri::Chk(u) => u.fmt(f),
            AnyUri::Ssk(u) => u.fmt(f),
            AnyUri::SskInsert(u) => u.fmt(f),
            AnyUri::Usk(u) => u.fmt(f),
            AnyUri::UskInsert(u) => u.fmt(f),
            AnyUri::Ksk(u) => u.fmt(f),
        }
    }
}

impl fmt::Debug for SskUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The crypto key and name are secrets: show what the network sees.
        f.debug_struct("SskUri")
            .field("routing", &self.routing_key())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SskInsertUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SskInsertUri(<secret>)")
    }
}

impl fmt::Debug for UskUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UskUri")
            .field("edition", &self.edition)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for UskInsertUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UskInsertUri(<secret>)")
    }
}

impl fmt::Debug for KskUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KskUri").finish_non_exhaustive()
    }
}

macro_rules! from_any {
    ($ty:ident, $variant:ident, $what:literal) => {
        impl FromStr for $ty {
            type Err = UriError;

            fn from_str(text: &str) -> Result<Self, UriError> {
                match text.parse::<AnyUri>()? {
                    AnyUri::$variant(u) => Ok(u),
                    _ => Err(UriError::WrongKeyType($what)),
                }
            }
        }
    };
}

from_any!(SskUri, Ssk, "an SSK@ request key");
from_any!(SskInsertUri, SskInsert, "an SSK@ insert key");
from_any!(UskUri, Usk, "a USK@ request key");
from_any!(UskInsertUri, UskInsert, "a USK@ insert key");
from_any!(KskUri, Ksk, "a KSK@ key");
