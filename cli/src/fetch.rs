//! `warren fetch KEY [-o PATH]`: streams verified content to disk, never
//! leaving a half-written file behind.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use warren_crypto::ChkUri;

use crate::api_client::ApiClient;
use crate::insert::{default_api, progress_bar};

/// Bytes moved per read while streaming to disk.
const COPY_CHUNK: usize = 256 * 1024;

#[derive(Debug, Args)]
pub(crate) struct FetchArgs {
    /// The key to fetch, `CHK@…[/path]`.
    pub(crate) key: String,
    /// Where to write the content (`-` for standard output) [default: the key's file name].
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
    /// The node's local API address.
    #[arg(long, env = "WARREN_API", default_value_t = default_api())]
    pub(crate) api: SocketAddr,
}

pub(crate) fn run(args: &FetchArgs) -> Result<()> {
    // Parse here first: a mistyped key deserves an answer without a node.
    let uri: ChkUri = args.key.parse().context("that is not a valid key")?;
    let output = match &args.output {
        Some(path) => path.clone(),
        None => default_output(&uri)?,
    };
    let client = ApiClient::new(args.api);
    let download = client.fetch(&args.key).context("fetch failed")?;
    if output.as_os_str() == "-" {
        let mut stdout = io::stdout().lock();
        copy_checked(download, &mut stdout, "standard output")?;
        return stdout.flush().context("cannot write to standard output");
    }
    write_atomically(download, &output)?;
    eprintln!("wrote {}", output.display());
    Ok(())
}

fn default_output(uri: &ChkUri) -> Result<PathBuf> {
    let name = uri
        .path
        .as_deref()
        .and_then(|p| p.rsplit('/').next())
        .filter(|n| !n.is_empty());
    match name {
        // Only the last path segment, and never `..`: a key must not choose where we write.
        Some(name) if name != ".." && name != "." => Ok(PathBuf::from(name)),
        _ => bail!("this key names no file; pass -o PATH (or -o - for standard output)"),
    }
}

/// Streams into `<dir>/.<name>.partial`, fsyncs, then renames over `path`:
/// the output exists only once complete and verified.
fn write_atomically(download: crate::api_client::Download, path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().context("the output path names no file")?;
    let partial = dir.join(format!(".{}.partial", name.to_string_lossy()));
    let result = (|| {
        let mut file = File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        copy_checked(download, &mut file, &path.display().to_string())?;
        file.sync_all()
            .with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::rename(&partial, path).with_context(|| format!("cannot write {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Copies with a progress bar and checks the length the node announced.
fn copy_checked(
    download: crate::api_client::Download,
    out: &mut dyn Write,
    what: &str,
) -> Result<()> {
    let bar = progress_bar(download.length.unwrap_or(0), "fetching");
    let mut reader = download.reader;
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut copied: u64 = 0;
    loop {
        // Read errors come from the node's side (the fetch failed part way);
        // write errors from ours (a full disk, say). Say which.
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => bail!("the fetch failed part way through: {err}"),
        };
        out.write_all(&buf[..n])
            .with_context(|| format!("cannot write {what}"))?;
        copied += n as u64;
        bar.set_position(copied);
    }
    bar.finish_and_clear();
    if let Some(expected) = download.length {
        if copied != expected {
            bail!("the node sent {copied} of {expected} bytes: the fetch failed part way through");
        }
    }
    Ok(())
}
