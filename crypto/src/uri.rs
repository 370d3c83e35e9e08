//! Warren URIs: `CHK@<routing key>,<crypto key>,<extra>[/name]`.
//!
//! Keys are unpadded base64url (RFC 4648 §5): 43 characters for a 32-byte key,
//! 4 for the 3 extra bytes. Everything between `@` and the first `/` is the
//! secret that reads the content; the routing key alone is what the network sees.
//! An optional `warren:` prefix, as browsers and clipboard tools add, is accepted.

use core::fmt;
use core::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::key::{ChkKey, CryptoKey, Extra, ExtraError, RoutingKey, EXTRA_LEN, KEY_LEN};

/// Longest URI accepted, in bytes: keys plus a generous path.
pub const MAX_URI_LEN: usize = 4096;

/// A parsed content hash key URI.
#[derive(Clone, PartialEq, Eq)]
pub struct ChkUri {
    pub key: ChkKey,
    pub extra: Extra,
    /// The path after the keys (a file name, or a path inside a site), without the leading `/`.
    pub path: Option<String>,
}

impl fmt::Debug for ChkUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URI is a secret: show only what the network would see.
        f.debug_struct("ChkUri")
            .field("routing", &self.key.routing)
            .field("extra", &self.extra)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Which part of a URI was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriPart {
    RoutingKey,
    CryptoKey,
    Extra,
}

impl fmt::Display for UriPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UriPart::RoutingKey => "routing key (first part)",
            UriPart::CryptoKey => "crypto key (second part)",
            UriPart::Extra => "extra bytes (third part)",
        })
    }
}

/// Why a URI was refused, worded for the person who pasted it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    #[error("key is {0} bytes long; the limit is {MAX_URI_LEN}")]
    TooLong(usize),
    #[error("not a Warren key: expected it to start with `CHK@`")]
    MissingScheme,
    #[error("`{0}@` keys are not supported by this version (only `CHK@`)")]
    UnsupportedScheme(String),
    #[error("a CHK key has three comma-separated parts after `CHK@`, this one has {0}: was it cut short when copied?")]
    WrongPartCount(usize),
    #[error("the {0} is not valid base64url: was the key mistyped?")]
    BadBase64(UriPart),
    #[error("the {part} decodes to {actual} bytes, expected {expected}: was the key cut short?")]
    WrongLength {
        part: UriPart,
        expected: usize,
        actual: usize,
    },
    #[error("the extra bytes are not understood")]
    Extra(#[from] ExtraError),
    #[error("the path after the key contains a control character")]
    BadPath,
    #[error("an `SSK@` or `USK@` key needs a document name after its keys (`SSK@…/name`)")]
    MissingDocName,
    #[error("the document name is empty, longer than 256 bytes, or holds a control character")]
    BadDocName,
    #[error("a `USK@` key needs an edition after its name (`USK@…/name/N`, N ≥ 0, or -1 for the newest; an insert key needs N ≥ 0 and no path)")]
    BadEdition,
    #[error("the settings (third part) of this key are not understood")]
    UnknownSettings,
    #[error("this is not {0}")]
    WrongKeyType(&'static str),
    #[error(
        "an insert key names a document, not a path inside it: drop what follows the document name"
    )]
    InsertKeyPath,
}

pub(crate) fn decode_part<const N: usize>(text: &str, part: UriPart) -> Result<[u8; N], UriError> {
    // The whole URI is already bounded by MAX_URI_LEN; the decoder is strict
    // (no padding, no stray trailing bits), so one key has exactly one spelling.
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| UriError::BadBase64(part))?;
    let actual = bytes.len();
    bytes.try_into().map_err(|_| UriError::WrongLength {
        part,
        expected: N,
        actual,
    })
}

impl FromStr for ChkUri {
    type Err = UriError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > MAX_URI_LEN {
            return Err(UriError::TooLong(text.len()));
        }
        let text = text.trim();
        let text = text.strip_prefix("warren:").unwrap_or(text);
        let text = text.strip_prefix('/').unwrap_or(text);
        let Some((scheme, rest)) = text.split_once('@') else {
            return Err(UriError::MissingScheme);
        };
        if scheme != "CHK" {
            return if scheme.len() <= 8 && scheme.chars().all(|c| c.is_ascii_alphabetic()) {
                Err(UriError::UnsupportedScheme(scheme.to_owned()))
            } else {
                Err(UriError::MissingScheme)
            };
        }
        let (keys, path) = match rest.split_once('/') {
            Some((keys, path)) => (keys, Some(path)),
            None => (rest, None),
        };
        let parts: Vec<&str> = keys.split(',').collect();
        let [routing, crypto, extra] = parts[..] else {
            return Err(UriError::WrongPartCount(parts.len()));
        };
        let routing = RoutingKey::from_bytes(decode_part::<KEY_LEN>(routing, UriPart::RoutingKey)?);
        let crypto = CryptoKey::from_bytes(decode_part::<KEY_LEN>(crypto, UriPart::CryptoKey)?);
        let extra = Extra::from_bytes(decode_part::<EXTRA_LEN>(extra, UriPart::Extra)?)?;
        let path = match path {
            None | Some("") => None,
            Some(p) if p.chars().any(char::is_control) => return Err(UriError::BadPath),
            Some(p) => Some(p.to_owned()),
        };
        Ok(ChkUri {
            key: ChkKey { routing, crypto },
            extra,
            path,
        })
    }
}

impl fmt::Display for ChkUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CHK@{},{},{}",
            URL_SAFE_NO_PAD.encode(self.key.routing.as_bytes()),
            URL_SAFE_NO_PAD.encode(self.key.crypto.as_bytes()),
            URL_SAFE_NO_PAD.encode(self.extra.to_bytes()),
        )?;
        if let Some(path) = &self.path {
            write!(f, "/{path}")?;
        }
        Ok(())
    }
}

impl ChkUri {
    pub fn new(key: ChkKey, extra: Extra) -> Self {
        ChkUri {
            key,
            extra,
            path: None,
        }
    }

    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::block::ChkBlock;

    fn sample() -> ChkUri {
        let (_, key) = ChkBlock::encode(b"Hello, Warren!\n").unwrap();
        ChkUri::new(key, Extra::DATA)
    }

    #[test]
    fn round_trips_with_and_without_path() {
        let uri = sample();
        let text = uri.to_string();
        assert_eq!(text.parse::<ChkUri>().unwrap(), uri);
        let named = uri.with_path("site/index.html");
        assert_eq!(named.to_string().parse::<ChkUri>().unwrap(), named);
        assert!(named.to_string().ends_with("/site/index.html"));
    }

    #[test]
    fn accepts_prefixes_a_browser_adds() {
        let uri = sample();
        assert_eq!(format!("warren:{uri}").parse::<ChkUri>().unwrap(), uri);
        assert_eq!(format!("/{uri}").parse::<ChkUri>().unwrap(), uri);
        assert_eq!(format!(" {uri}\n").parse::<ChkUri>().unwrap(), uri);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let text = sample().to_string();
        assert_eq!("hello".parse::<ChkUri>(), Err(UriError::MissingScheme));
        assert_eq!(
            text.replacen("CHK", "SSK", 1).parse::<ChkUri>(),
            Err(UriError::UnsupportedScheme("SSK".into()))
        );
        let cut = &text[..text.rfind(',').unwrap()];
        assert_eq!(cut.parse::<ChkUri>(), Err(UriError::WrongPartCount(2)));
        let short = text.replacen(&text[4..8], "", 1);
        assert!(matches!(
            short.parse::<ChkUri>(),
            Err(UriError::WrongLength {
                part: UriPart::RoutingKey,
                ..
            })
        ));
        let bad = text.replacen(&text[4..5], "*", 1);
        assert_eq!(
            bad.parse::<ChkUri>(),
            Err(UriError::BadBase64(UriPart::RoutingKey))
        );
        let bad_extra = format!("{}AgAA", &text[..text.len() - 4]);
        assert_eq!(
            bad_extra.parse::<ChkUri>(),
            Err(UriError::Extra(ExtraError::UnknownCipher(2)))
        );
        assert_eq!(
            "x".repeat(5000).parse::<ChkUri>(),
            Err(UriError::TooLong(5000))
        );
        let with_control = format!("{text}/a\u{7}b");
        assert_eq!(with_control.parse::<ChkUri>(), Err(UriError::BadPath));
    }

    #[test]
    fn debug_does_not_reveal_the_crypto_key() {
        let uri = sample();
        let secret = URL_SAFE_NO_PAD.encode(uri.key.crypto.as_bytes());
        assert!(!format!("{uri:?}").contains(&secret));
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in ".{0,300}") {
            let _ = text.parse::<ChkUri>();
        }

        #[test]
        fn any_key_round_trips(r: [u8; 32], k: [u8; 32], meta: bool, path in proptest::option::of("[a-zA-Z0-9._/-]{1,40}")) {
            let extra = if meta { Extra::METADATA } else { Extra::DATA };
            let uri = ChkUri {
                key: ChkKey { routing: RoutingKey::from_bytes(r), crypto: CryptoKey::from_bytes(k) },
                extra,
                path,
            };
            prop_assert_eq!(uri.to_string().parse::<ChkUri>().unwrap(), uri);
        }
    }
}
