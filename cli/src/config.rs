//! The node's configuration: a TOML file in the data directory, overridden by
//! flags and environment variables (clap resolves those before we get here).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use warren_store::Eviction;

/// Name of the config file inside a node's data directory.
pub const CONFIG_FILE: &str = "config.toml";
/// Default peer-to-peer port.
pub const DEFAULT_P2P_PORT: u16 = 9470;
/// Default browser gateway port, as Freenet's FProxy.
pub const DEFAULT_GATEWAY_PORT: u16 = 8888;
/// Default local API port (the CLI, the status and upload pages, metrics):
/// a separate origin from the gateway, so content never shares one with it.
pub const DEFAULT_API_PORT: u16 = 8889;
/// Default largest upload through the API, in MiB.
pub const DEFAULT_UPLOAD_LIMIT_MIB: u64 = 4096;
/// Default FCP port, as in Freenet.
pub const DEFAULT_FCP_PORT: u16 = warren_node::fcp::DEFAULT_FCP_PORT;
/// Default long-term store size.
pub const DEFAULT_STORE_MIB: u64 = 1024;
/// Default cache size.
pub const DEFAULT_CACHE_MIB: u64 = 256;
/// The lowest bandwidth limit, KiB/s: below it one block takes longer than
/// the link's idle timeout allows for a frame, and links would time out.
pub const MIN_BANDWIDTH_KIB: u64 = 16;

/// What `config.toml` may hold. Every field is optional; absent means default.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address for peer-to-peer links, e.g. "0.0.0.0:9470".
    pub listen: Option<SocketAddr>,
    /// Address other nodes should dial, if different from `listen`.
    pub advertise: Option<SocketAddr>,
    /// Local API address; must be a loopback address unless `api_allow_remote`.
    pub api: Option<SocketAddr>,
    /// Browser gateway address; must be a loopback address unless `api_allow_remote`.
    pub gateway: Option<SocketAddr>,
    /// Largest upload (browser form or `warren insert`) in MiB.
    pub upload_limit_mib: Option<u64>,
    /// Opt-in to serving the API beyond loopback (dangerous: it can insert and fetch).
    #[serde(default)]
    pub api_allow_remote: bool,
    /// FCP 2.0 address (Freenet's client protocol); loopback unless `fcp_allow_remote`.
    pub fcp: Option<SocketAddr>,
    /// Opt-in to serving FCP beyond loopback (dangerous: it can insert and fetch).
    #[serde(default)]
    pub fcp_allow_remote: bool,
    /// Noderefs of peers to connect to, in their pasteable text form.
    #[serde(default)]
    pub peers: Vec<String>,
    /// Pins this node's location on the circle: a 64-bit fixed-point fraction
    /// in 16 hex digits (TOML integers stop at 2^63). Leave it out: the node
    /// picks one at random on first start and keeps it in `state.toml`.
    #[serde(default, with = "hex_location")]
    pub location: Option<u64>,
    /// Long-term store size in MiB.
    pub store_mib: Option<u64>,
    /// Cache size in MiB.
    pub cache_mib: Option<u64>,
    /// Which block a full store or cache gives up: "random" (as Fred's
    /// datastore, the default) or "lru" (least recently used).
    #[serde(default, with = "eviction_name")]
    pub store_eviction: Option<Eviction>,
    /// Only the configured `peers`: no announcement, no path folding, no strangers kept.
    pub friends_only: Option<bool>,
    /// Opennet seeds' noderefs (besides `seednodes.txt` in the data directory).
    #[serde(default)]
    pub seeds: Vec<String>,
    /// Opennet peers this node aims for.
    pub target_peers: Option<usize>,
    /// Fetches at the maximum HTL take a fixed random walk before routing
    /// toward the key (`docs/THREAT_MODEL.md`: against a neighbour's
    /// downloader test; costs about 2.5x the hops).
    pub max_htl_walk: Option<bool>,
    /// Most KiB per second all peer links together may send (absent: unlimited).
    pub bandwidth_out_kib: Option<u64>,
    /// Most KiB per second all peer links together may receive (absent: unlimited).
    pub bandwidth_in_kib: Option<u64>,
}

impl FileConfig {
    /// Reads `<data_dir>/config.toml`, or the default config if there is none.
    pub fn load(data_dir: &Path) -> Result<FileConfig> {
        let path = data_dir.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("{} is not a valid Warren config", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self, data_dir: &Path) -> Result<()> {
        let path = data_dir.join(CONFIG_FILE);
        let text = toml::to_string_pretty(self).context("cannot serialise config")?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Name of the file in the data directory holding what the node chose for
/// itself (its location, the port it got). Kept apart from `config.toml`,
/// which is the user's and is never rewritten.
pub const STATE_FILE: &str = "state.toml";

/// What a node chose for itself and keeps across restarts.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeState {
    /// Where this node sits on the circle (16 hex digits).
    #[serde(default, with = "hex_location")]
    pub location: Option<u64>,
    /// The peer-to-peer port it got when configured with port 0, tried again
    /// on the next start so peers that know it can dial it back.
    pub listen_port: Option<u16>,
}

impl NodeState {
    /// Reads `<data_dir>/state.toml`, or an empty state if there is none.
    pub fn load(data_dir: &Path) -> Result<NodeState> {
        let path = data_dir.join(STATE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| {
                format!(
                    "{} is damaged; delete it to let the node choose again",
                    path.display()
                )
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(NodeState::default()),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the state atomically (temporary file, fsync, rename).
    pub fn save(&self, data_dir: &Path) -> Result<()> {
        use std::io::Write as _;
        let path = data_dir.join(STATE_FILE);
        let tmp = data_dir.join(format!("{STATE_FILE}.tmp"));
        let text = toml::to_string_pretty(self).context("cannot serialise the node state")?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(
                b"# Chosen by this node and kept across restarts; not a config file.\n",
            )?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().with_context(|| format!("cannot write {}", path.display()))
    }
}

mod eviction_name {
    use serde::{Deserialize as _, Deserializer, Serializer};
    use warren_store::Eviction;

    #[allow(clippy::ref_option, clippy::trivially_copy_pass_by_ref)] // serde's `with` hands us `&Option<T>`
    pub(super) fn serialize<S: Serializer>(
        value: &Option<Eviction>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(policy) => s.serialize_str(policy.name()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Eviction>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| text.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

mod hex_location {
    use serde::{Deserialize as _, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // serde's `with` hands us `&Option<T>`
    pub(super) fn serialize<S: Serializer>(value: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_str(&format!("{v:016x}")),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| {
            u64::from_str_radix(t.trim_start_matches("0x"), 16)
                .map_err(|_| serde::de::Error::custom("location must be 16 hexadecimal digits"))
        })
        .transpose()
    }
}

/// The platform data directory (e.g. `~/.local/share/warren`), used when no
/// `--data-dir` or `WARREN_DATA_DIR` is given.
pub fn default_data_dir() -> Result<PathBuf> {
    directories::ProjectDirs::from("org", "warren", "warren")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .context("cannot find a home directory for the data dir; pass --data-dir")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_gives_defaults_and_saved_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let empty = FileConfig::load(dir.path()).unwrap();
        assert!(empty.listen.is_none() && empty.peers.is_empty());
        let config = FileConfig {
            listen: Some("127.0.0.1:4000".parse().unwrap()),
            peers: vec!["warren-noderef:v1:x".into()],
            store_mib: Some(10),
            store_eviction: Some(Eviction::Random),
            location: Some(u64::MAX - 5),
            ..FileConfig::default()
        };
        config.save(dir.path()).unwrap();
        let back = FileConfig::load(dir.path()).unwrap();
        assert_eq!(back.listen, config.listen);
        assert_eq!(back.peers, config.peers);
        assert_eq!(back.store_mib, Some(10));
        assert_eq!(back.store_eviction, Some(Eviction::Random));
        assert_eq!(FileConfig::default().store_eviction, None);
        assert_eq!(back.location, Some(u64::MAX - 5));
    }

    #[test]
    fn node_state_round_trips_and_leaves_the_config_alone() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(NodeState::load(dir.path()).unwrap(), NodeState::default());
        let config = "# my relay\nstore_mib = 10 # small\n";
        std::fs::write(dir.path().join(CONFIG_FILE), config).unwrap();
        let state = NodeState {
            location: Some(u64::MAX - 1),
            listen_port: Some(4242),
        };
        state.save(dir.path()).unwrap();
        assert_eq!(NodeState::load(dir.path()).unwrap(), state);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap(),
            config
        );
    }

    #[test]
    fn store_eviction_is_read_by_name_and_a_bad_name_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CONFIG_FILE);
        std::fs::write(&path, "store_eviction = \"lru\"\n").unwrap();
        let config = FileConfig::load(dir.path()).unwrap();
        assert_eq!(config.store_eviction, Some(Eviction::Lru));
        std::fs::write(&path, "store_eviction = \"fifo\"\n").unwrap();
        let err = format!("{:#}", FileConfig::load(dir.path()).unwrap_err());
        assert!(err.contains("fifo") && err.contains("random"), "{err}");
    }

    #[test]
    fn unknown_keys_are_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "lisen = \"x\"\n").unwrap();
        let err = format!("{:#}", FileConfig::load(dir.path()).unwrap_err());
        assert!(
            err.contains("config.toml") && err.contains("lisen"),
            "{err}"
        );
    }
}
