//! The client side of a node's local HTTP API, used by `insert`, `fetch`,
//! `status`, `testnet` and `demo`. Blocking: the CLI does one thing at a time.
//!
//! Every call carries the node's per-start token, read from the token file
//! (`api.token` in the node's data directory) at each request, so a client
//! made before the node finished starting, or kept across a restart, works.

use std::io::{BufRead as _, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use warren_node::http::framed;

use crate::config::{default_data_dir, DEFAULT_API_PORT};

/// Largest token file read.
const MAX_TOKEN_BYTES: u64 = 1024;

/// How a command finds the node's API: its address and its token.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The node's local API address.
    #[arg(long, env = "WARREN_API", default_value_t = default_api())]
    pub api: SocketAddr,
    /// The node's data directory, where it writes its API token `api.token`
    /// [default: the platform data dir].
    #[arg(long, env = "WARREN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The API token file itself, if not in the data directory.
    #[arg(long, env = "WARREN_API_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

pub fn default_api() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], DEFAULT_API_PORT))
}

impl ApiArgs {
    pub fn client(&self) -> Result<ApiClient> {
        let token_file = match (&self.token_file, &self.data_dir) {
            (Some(file), _) => file.clone(),
            (None, Some(dir)) => dir.join(warren_node::http::API_TOKEN_FILE),
            (None, None) => default_data_dir()?.join(warren_node::http::API_TOKEN_FILE),
        };
        Ok(ApiClient::new(self.api, &token_file))
    }
}

/// How long to wait for the node to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one read may stall before the transfer is given up.
const READ_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest JSON answer accepted from the API.
const MAX_JSON_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    addr: SocketAddr,
    agent: ureq::Agent,
    token_file: PathBuf,
}

/// A streaming fetch: the content reader and the length the node announced.
pub struct Download {
    pub length: Option<u64>,
    /// For a USK: the edition the node found.
    pub edition: Option<u64>,
    pub reader: Box<dyn Read + Send>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct UriAnswer {
    uri: String,
}

/// What `/api/publish` answered: the request key, and a USK's edition.
#[derive(Debug, Deserialize)]
pub struct Published {
    pub uri: String,
    pub edition: Option<u64>,
}

/// What `/api/reinsert` answered at the end.
#[derive(Debug, Deserialize)]
pub struct Reinserted {
    /// The key the content has now (the same as asked, unless it changed).
    pub uri: String,
    /// Whether it is the key asked for: the document was refreshed.
    pub refreshed: bool,
    /// Blocks inserted.
    pub blocks: u64,
}

/// One line of `/api/reinsert`'s answer.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ReinsertLine {
    Progress { progress: u64, total: u64 },
    Done(Reinserted),
    Failed { error: String },
}

impl ApiClient {
    /// A client for the node at `addr` whose token is in `token_file`.
    pub fn new(addr: SocketAddr, token_file: &Path) -> ApiClient {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        ApiClient {
            base: format!("http://{addr}"),
            addr,
            agent,
            token_file: token_file.to_path_buf(),
        }
    }

    /// A client for a node whose data directory is `data_dir`.
    pub fn for_data_dir(addr: SocketAddr, data_dir: &Path) -> ApiClient {
        ApiClient::new(addr, &data_dir.join(warren_node::http::API_TOKEN_FILE))
    }

    /// `Bearer <token>`, read afresh: the node writes a new token each start.
    /// A missing file sends an empty token: the node's refusal (or its
    /// absence) then says what is wrong.
    fn authorization(&self) -> String {
        let mut token = String::new();
        let _ = std::fs::File::open(&self.token_file)
            .and_then(|file| file.take(MAX_TOKEN_BYTES).read_to_string(&mut token));
        format!("Bearer {}", token.trim())
    }

    /// Turns transport failures into a line a user can act on.
    fn explain(&self, err: ureq::Error) -> anyhow::Error {
        match err {
            ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::ConnectionRefused => anyhow!(
                "no Warren node is answering at {}: start one with `warren node`, or pass --api",
                self.addr
            ),
            ureq::Error::ConnectionFailed => anyhow!(
                "cannot connect to a Warren node at {}: start one with `warren node`, or pass --api",
                self.addr
            ),
            other => anyhow!("talking to the node at {} failed: {other}", self.addr),
        }
    }

    fn check(
        &self,
        mut response: ureq::http::Response<ureq::Body>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_JSON_BYTES)
            .read_to_string()
            .unwrap_or_default();
        // The node answers errors as {"error": "..."}; show just the message.
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or(text);
        if status == ureq::http::StatusCode::UNAUTHORIZED {
            return Err(anyhow!(
                "the node at {} refused the API token read from {} (pass that node's --data-dir, or --token-file)",
                self.addr,
                self.token_file.display()
            ));
        }
        Err(anyhow!("{}", message.trim()))
    }

    pub fn status(&self) -> Result<serde_json::Value> {
        let response = self
            .agent
            .get(format!("{}/api/status", self.base))
            .header("authorization", self.authorization())
            .call()
            .map_err(|e| self.explain(e))?;
        self.read_json(response)
            .context("the node's status is not valid JSON")
    }

    /// Streams `reader` to the node, which encodes and inserts it; returns the URI.
    pub fn insert(&self, reader: &mut dyn Read, content_type: Option<&str>) -> Result<String> {
        let mut request = self
            .agent
            .post(format!("{}/api/insert", self.base))
            .header("authorization", self.authorization());
        if let Some(content_type) = content_type {
            request = request.query("content_type", content_type);
        }
        let response = request
            .send(ureq::SendBody::from_reader(reader))
            .map_err(|e| self.explain(e))?;
        self.read_uri(response)
    }

    /// Inserts a site manifest over already-inserted files; returns the site URI.
    pub fn insert_site(&self, manifest: &serde_json::Value) -> Result<String> {
        let body = serde_json::to_vec(manifest)?;
        let response = self
            .agent
            .post(format!("{}/api/site", self.base))
            .header("authorization", self.authorization())
            .header("content-type", "application/json")
            .send(&body[..])
            .map_err(|e| self.explain(e))?;
        self.read_uri(response)
    }

    /// Publishes the CHK `uri` under the insert key `key` (sent in the body,
    /// never in the URL); returns the request key.
    pub fn publish(&self, key: &str, uri: &str, next_edition: bool) -> Result<Published> {
        let body = serde_json::to_vec(
            &serde_json::json!({ "key": key, "uri": uri, "next_edition": next_edition }),
        )?;
        let response = self
            .agent
            .post(format!("{}/api/publish", self.base))
            .header("authorization", self.authorization())
            .header("content-type", "application/json")
            .send(&body[..])
            .map_err(|e| self.explain(e))?;
        self.read_json(response)
            .context("the node's answer is not the expected JSON")
    }

    fn read_uri(&self, response: ureq::http::Response<ureq::Body>) -> Result<String> {
        let answer: UriAnswer = self
            .read_json(response)
            .context("the node's answer is not the expected JSON")?;
        Ok(answer.uri)
    }

    /// A successful answer's JSON body, at most `MAX_JSON_BYTES`; an error
    /// answer becomes its message.
    fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        response: ureq::http::Response<ureq::Body>,
    ) -> Result<T> {
        let mut response = self.check(response)?;
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_JSON_BYTES)
            .read_to_string()?;
        Ok(serde_json::from_str(&text)?)
    }

    /// Asks the node to fetch `key` and insert what it names again; calls
    /// `on_progress(blocks inserted, blocks known)` as the node reports.
    pub fn reinsert(&self, key: &str, on_progress: &mut dyn FnMut(u64, u64)) -> Result<Reinserted> {
        let body = serde_json::to_vec(&serde_json::json!({ "key": key }))?;
        let response = self
            .agent
            .post(format!("{}/api/reinsert", self.base))
            .header("authorization", self.authorization())
            .header("content-type", "application/json")
            .send(&body[..])
            .map_err(|e| self.explain(e))?;
        let response = self.check(response)?;
        let reader = response
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .reader();
        let mut lines = std::io::BufReader::new(reader);
        let mut line = String::new();
        loop {
            line.clear();
            // Each line is one small JSON object: a longer one is not the node.
            let read = (&mut lines)
                .take(MAX_JSON_BYTES)
                .read_line(&mut line)
                .context("the node stopped answering during the reinsert")?;
            if read == 0 {
                bail!("the node ended its answer without saying how the reinsert went");
            }
            let answer: ReinsertLine = serde_json::from_str(line.trim())
                .context("the node's answer is not the expected JSON")?;
            match answer {
                ReinsertLine::Progress { progress, total } => on_progress(progress, total),
                ReinsertLine::Done(done) => return Ok(done),
                ReinsertLine::Failed { error } => bail!("{}", error.trim()),
            }
        }
    }

    /// Starts fetching `key`; the node verifies every block before sending it on.
    pub fn fetch(&self, key: &str) -> Result<Download> {
        let response = self
            .agent
            .get(format!(
                "{}/api/fetch/{}",
                self.base,
                key.trim_start_matches('/')
            ))
            .header("authorization", self.authorization())
            .header(framed::FRAMED_HEADER, "1")
            .call()
            .map_err(|e| self.explain(e))?;
        let response = self.check(response)?;
        let edition = response
            .headers()
            .get(warren_node::signed::EDITION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        // A node that frames its answer says why a fetch ended early; one
        // that does not (older) sends the plain content.
        let framed_length = response
            .headers()
            .get(framed::FRAMED_HEADER)
            .is_some()
            .then(|| {
                response
                    .headers()
                    .get(framed::LENGTH_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
            });
        let body = response.into_body();
        let body_length = body.content_length();
        let reader = body.into_with_config().limit(u64::MAX).reader();
        let (length, reader): (_, Box<dyn Read + Send>) = match framed_length {
            Some(length) => (length, Box::new(framed::FramedReader::new(reader))),
            None => (body_length, Box::new(reader)),
        };
        Ok(Download {
            length,
            edition,
            reader,
        })
    }
}
