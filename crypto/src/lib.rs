//! Warren's content keys and blocks: pure functions, no IO.
//!
//! Content is cut into fixed-size blocks, each encrypted under the SHA-256 of
//! its own plaintext (convergent encryption) and named by the SHA-256 of the
//! result. A node can check any block against its name without being able to
//! read it; whoever holds the URI can. Locations on the routing circle, node
//! identities and noderefs live here too, so every other crate shares one
//! definition of them.
//!
//! ```
//! use warren_crypto::{ChkBlock, ChkUri, Extra};
//!
//! let (block, key) = ChkBlock::encode(b"Hello, Warren!")?;
//! let uri = ChkUri::new(key, Extra::DATA);
//! let text = uri.to_string(); // CHK@<routing>,<crypto>,AQAA
//!
//! // Any node can verify the block against the routing key alone...
//! let parsed: ChkUri = text.parse()?;
//! let checked = ChkBlock::verify(parsed.key.routing, block.into_bytes())?;
//! // ...but only a holder of the URI can decrypt it.
//! assert_eq!(checked.decode(&parsed.key.crypto)?, b"Hello, Warren!");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod block;
pub mod copies;
pub mod fuzzing;
pub mod identity;
pub mod key;
pub mod location;
pub mod metadata;
pub mod shards;
pub mod splitfile;
pub mod ssk;
pub mod uri;

pub use block::{BlockError, ChkBlock, BLOCK_LEN, BLOCK_PAYLOAD};
pub use identity::{NodeIdentity, NodePublicKey, NodeRef, NodeRefError, PROTOCOL_VERSION};
pub use key::{ChkKey, ContentKind, CryptoKey, Extra, RoutingKey};
pub use location::Location;
pub use metadata::{Metadata, MetadataError};
pub use splitfile::{
    encode_bytes, ContentFetcher, EncodeError, Encoded, FetchError, SiteBuilder, SiteEntry,
    SplitfileConfig, SplitfileEncoder,
};
pub use ssk::{
    AnyUri, Edition, KskUri, SskBlock, SskBlockError, SskInsertUri, SskPayload, SskUri,
    UskInsertUri, UskUri, SSK_BLOCK_LEN,
};
pub use uri::{ChkUri, UriError};
