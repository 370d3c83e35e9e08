//! Node identities and noderefs.
//!
//! A node's long-term identity is an X25519 key pair: the static key of its
//! Noise handshakes. A [`NodeRef`] is everything another node needs to reach it,
//! with a one-line text form a person can paste:
//!
//! ```text
//! warren-noderef:v1:<public key, base64url>:<location, 16 hex digits>:<address>
//! ```

use core::fmt;
use core::str::FromStr;
use std::net::SocketAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::location::Location;

/// Protocol version this code speaks; carried in noderefs and handshakes.
pub const PROTOCOL_VERSION: u16 = 1;
/// Longest noderef text accepted.
pub const MAX_NODEREF_LEN: usize = 512;
const NODEREF_PREFIX: &str = "warren-noderef:v";

/// A node's long-term X25519 identity. The secret half is zeroized on drop.
pub struct NodeIdentity {
    secret: StaticSecret,
    public: NodePublicKey,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self::from_secret_bytes(StaticSecret::random_from_rng(rng).to_bytes())
    }

    pub fn from_secret_bytes(bytes: [u8; 32]) -> Self {
        let secret = StaticSecret::from(bytes);
        let public = NodePublicKey(PublicKey::from(&secret).to_bytes());
        NodeIdentity { secret, public }
    }

    /// The secret key, for saving to the node's identity file.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    pub fn public(&self) -> NodePublicKey {
        self.public
    }
}

/// A node's public identity key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodePublicKey(pub [u8; 32]);

impl fmt::Debug for NodePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Node({})", &self.to_string()[..8])
    }
}

impl fmt::Display for NodePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

/// What one node needs to reach another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRef {
    pub identity: NodePublicKey,
    pub location: Location,
    pub address: SocketAddr,
    pub version: u16,
}

/// Why a noderef was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeRefError {
    #[error("noderef is {0} bytes long; the limit is {MAX_NODEREF_LEN}")]
    TooLong(usize),
    #[error("not a noderef: expected it to start with `warren-noderef:v`")]
    MissingPrefix,
    #[error("noderef has a bad version number")]
    BadVersion,
    #[error("noderef version {0} is newer than this node understands ({PROTOCOL_VERSION})")]
    UnsupportedVersion(u16),
    #[error("a noderef has four `:`-separated fields after the prefix; was it cut short?")]
    MissingField,
    #[error("the public key is not 43 characters of base64url")]
    BadKey,
    #[error("the location is not 16 hexadecimal digits")]
    BadLocation,
    #[error("the address is not an IP address and port, such as 127.0.0.1:5000 or [::1]:5000")]
    BadAddress,
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{NODEREF_PREFIX}{}:{}:{:016x}:{}",
            self.version, self.identity, self.location.0, self.address
        )
    }
}

impl FromStr for NodeRef {
    type Err = NodeRefError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > MAX_NODEREF_LEN {
            return Err(NodeRefError::TooLong(text.len()));
        }
        let rest = text
            .trim()
            .strip_prefix(NODEREF_PREFIX)
            .ok_or(NodeRefError::MissingPrefix)?;
        // The address comes last because IPv6 addresses contain colons.
        let mut fields = rest.splitn(4, ':');
        let mut next = || fields.next().ok_or(NodeRefError::MissingField);
        let version_text = next()?;
        let key_text = next()?;
        let location_text = next()?;
        let address_text = next()?;

        if version_text.is_empty() || !version_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NodeRefError::BadVersion);
        }
        let version: u16 = version_text.parse().map_err(|_| NodeRefError::BadVersion)?;
        if version > PROTOCOL_VERSION {
            return Err(NodeRefError::UnsupportedVersion(version));
        }
        let key_bytes = URL_SAFE_NO_PAD
            .decode(key_text)
            .map_err(|_| NodeRefError::BadKey)?;
        let identity = NodePublicKey(key_bytes.try_into().map_err(|_| NodeRefError::BadKey)?);
        if location_text.len() != 16 || !location_text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NodeRefError::BadLocation);
        }
        let location = Location(
            u64::from_str_radix(location_text, 16).map_err(|_| NodeRefError::BadLocation)?,
        );
        let address = address_text.parse().map_err(|_| NodeRefError::BadAddress)?;
        Ok(NodeRef {
            identity,
            location,
            address,
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::SeedableRng;

    use super::*;

    fn sample() -> NodeRef {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let id = NodeIdentity::generate(&mut rng);
        NodeRef {
            identity: id.public(),
            location: Location(0x0123_4567_89ab_cdef),
            address: "127.0.0.1:5000".parse().unwrap(),
            version: PROTOCOL_VERSION,
        }
    }

    #[test]
    fn identity_survives_saving() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let id = NodeIdentity::generate(&mut rng);
        let again = NodeIdentity::from_secret_bytes(*id.secret_bytes());
        assert_eq!(id.public(), again.public());
        assert!(!format!("{id:?}").contains(&format!("{:?}", *id.secret_bytes())));
    }

    #[test]
    fn noderef_text_round_trips_v4_and_v6() {
        let mut node = sample();
        assert_eq!(node.to_string().parse::<NodeRef>().unwrap(), node);
        node.address = "[::1]:6000".parse().unwrap();
        let text = node.to_string();
        assert!(text.starts_with("warren-noderef:v1:"));
        assert_eq!(text.parse::<NodeRef>().unwrap(), node);
    }

    #[test]
    fn noderef_errors_name_the_field() {
        let text = sample().to_string();
        assert_eq!("hello".parse::<NodeRef>(), Err(NodeRefError::MissingPrefix));
        assert_eq!(
            text.replace(":v1:", ":v9:").parse::<NodeRef>(),
            Err(NodeRefError::UnsupportedVersion(9))
        );
        let cut = &text[..text.rfind(':').unwrap()];
        // Cutting the port leaves "…:127.0.0.1" as the address.
        assert_eq!(cut.parse::<NodeRef>(), Err(NodeRefError::BadAddress));
        assert_eq!(
            "warren-noderef:v1:abc".parse::<NodeRef>(),
            Err(NodeRefError::MissingField)
        );
        assert_eq!(
            text.replace("0123456789abcdef", "0123").parse::<NodeRef>(),
            Err(NodeRefError::BadLocation)
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in ".{0,200}") {
            let _ = text.parse::<NodeRef>();
            let _ = format!("warren-noderef:v1:{text}").parse::<NodeRef>();
        }

        #[test]
        fn any_noderef_round_trips(key: [u8; 32], loc: u64, ip: [u8; 4], port: u16) {
            let node = NodeRef {
                identity: NodePublicKey(key),
                location: Location(loc),
                address: SocketAddr::from((ip, port)),
                version: PROTOCOL_VERSION,
            };
            prop_assert_eq!(node.to_string().parse::<NodeRef>().unwrap(), node);
        }
    }
}
