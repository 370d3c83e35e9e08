//! The API's per-start secret. A new random token is made each time the node
//! starts and written to `<data dir>/api.token`, readable by the owner only;
//! `warren insert/fetch/status` read it there and send it as
//! `Authorization: Bearer …`. A web page cannot read the file, so it cannot
//! use the API; a restarted node invalidates every old token.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use rand::RngCore as _;
use subtle::ConstantTimeEq as _;

/// Name of the token file in the data directory.
pub const API_TOKEN_FILE: &str = "api.token";
/// Random bytes in a token (written as hex).
const TOKEN_BYTES: usize = 32;

/// The API token of this run of the node.
#[derive(Clone)]
pub struct ApiToken(Arc<str>);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(…)")
    }
}

impl ApiToken {
    /// A fresh token from the operating system's random source.
    pub fn generate() -> ApiToken {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let hex = bytes.iter().fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        });
        ApiToken(hex.into())
    }

    /// Writes the token to `path` with mode 0600: first to a new file beside
    /// it (created with that mode, so it is never readable by others, even
    /// for a moment), then renamed over the old one.
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        let partial = path.with_extension("token.partial");
        let _ = std::fs::remove_file(&partial);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&partial)?;
        file.write_all(self.0.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&partial, path)
    }

    /// Whether `offered` is this token; compared in constant time.
    pub fn matches(&self, offered: &str) -> bool {
        let (ours, theirs) = (self.0.as_bytes(), offered.trim().as_bytes());
        ours.len() == theirs.len() && bool::from(ours.ct_eq(theirs))
    }

    /// The token's text, for the `Authorization` header.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_per_start_and_match_only_themselves() {
        let (a, b) = (ApiToken::generate(), ApiToken::generate());
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.as_str().len(), 2 * TOKEN_BYTES);
        assert!(a.matches(a.as_str()));
        assert!(!a.matches(b.as_str()));
        assert!(!a.matches(""));
        assert!(!a.matches(&a.as_str()[1..]));
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_readable_by_its_owner_only_and_replaced_on_restart() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(API_TOKEN_FILE);
        let first = ApiToken::generate();
        first.write_file(&path).unwrap();
        let second = ApiToken::generate();
        second.write_file(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), second.as_str());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
