//! `warren insert FILE|DIR [--key INSERT-KEY]`: the key on stdout, progress
//! on stderr. With `--key`, the content (as CHKs) is published under a
//! signed key and its request key printed.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::api_client::{ApiArgs, ApiClient};

/// Most files a directory insert takes, so a mistaken `warren insert /` stops early.
const MAX_SITE_FILES: usize = 10_000;

#[derive(Debug, Args)]
pub struct InsertArgs {
    /// The file or directory to insert.
    pub path: PathBuf,
    #[command(flatten)]
    pub api: ApiArgs,
    /// Content type to record (guessed from the file name if not given).
    #[arg(long)]
    pub content_type: Option<String>,
    /// Publish under this insert key: `SSK@…/name`, `USK@…/name/N` (from
    /// `warren keys new`) or `KSK@name`. Prefer --key-file: a command line
    /// is visible to other users of this machine.
    #[arg(long, conflicts_with = "key_file")]
    pub key: Option<String>,
    /// Read the insert key from this file (as `warren keys new --out` writes it).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// With a USK key: publish as the edition after the newest the network holds.
    #[arg(long)]
    pub next_edition: bool,
}

pub fn run(args: &InsertArgs) -> Result<()> {
    let key = match (&args.key, &args.key_file) {
        (Some(key), _) => Some(crate::keys::parse_insert_key(key)?),
        (None, Some(path)) => Some(crate::keys::parse_insert_key(&crate::keys::read_key_file(
            path,
        )?)?),
        (None, None) if args.next_edition => bail!("--next-edition needs a USK --key"),
        (None, None) => None,
    };
    let client = args.api.client()?;
    if let Some(key) = key {
        return publish(&client, args, &key);
    }
    let meta = std::fs::metadata(&args.path)
        .with_context(|| format!("cannot read {}", args.path.display()))?;
    let uri = if meta.is_dir() {
        // The trailing slash makes a browser resolve the site's relative
        // links under the key: …/index.html, …/css/style.css.
        format!("{}/", insert_dir(&client, &args.path)?)
    } else {
        let bar = progress_bar(meta.len(), "inserting");
        let content_type = args
            .content_type
            .clone()
            .unwrap_or_else(|| guess_type(&args.path));
        let uri = insert_file(&client, &args.path, &content_type, &bar)?;
        bar.finish_and_clear();
        with_file_name(uri, &args.path)
    };
    // The key depends only on the content and its type, so an insert of
    // the same file is a refresh of the key it had: say so, since a node
    // cannot tell whether the network still held the blocks.
    eprintln!(
        "inserted; the same file inserted again gives this key and refreshes it \
         (`warren reinsert KEY` does so from the key alone)"
    );
    println!("{uri}");
    Ok(())
}

/// Inserts the file or directory as CHKs, then signs a pointer to them under `key`.
fn publish(client: &ApiClient, args: &InsertArgs, key: &warren_crypto::AnyUri) -> Result<()> {
    let meta = std::fs::metadata(&args.path)
        .with_context(|| format!("cannot read {}", args.path.display()))?;
    let (content, site) = if meta.is_dir() {
        (insert_dir(client, &args.path)?, true)
    } else {
        let bar = progress_bar(meta.len(), "inserting");
        let content_type = args
            .content_type
            .clone()
            .unwrap_or_else(|| guess_type(&args.path));
        let uri = insert_file(client, &args.path, &content_type, &bar)?;
        bar.finish_and_clear();
        (uri, false)
    };
    // The key itself travels to the node in the request body only.
    let published = client
        .publish(&key.to_string(), &content, args.next_edition)
        .context("publishing under the key failed")?;
    if let Some(edition) = published.edition {
        eprintln!("published edition {edition}");
    }
    let slash = if site { "/" } else { "" };
    println!("{}{slash}", published.uri);
    Ok(())
}

/// Adds the file name to a single-file key, so `fetch` knows what to call it.
fn with_file_name(uri: String, path: &Path) -> String {
    match path.file_name().and_then(|n| n.to_str()) {
        Some(name) => format!("{uri}/{name}"),
        None => uri,
    }
}

pub fn insert_file(
    client: &ApiClient,
    path: &Path,
    content_type: &str,
    bar: &ProgressBar,
) -> Result<String> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = bar.wrap_read(file);
    client
        .insert(&mut reader as &mut dyn Read, Some(content_type))
        .with_context(|| format!("inserting {} failed", path.display()))
}

fn insert_dir(client: &ApiClient, root: &Path) -> Result<String> {
    let mut files = Vec::new();
    collect_files(root, root, &mut files)?;
    if files.is_empty() {
        bail!("{} holds no files to insert", root.display());
    }
    let total: u64 = files.iter().map(|(_, _, len)| len).sum();
    let bar = progress_bar(total, "inserting site");
    let mut entries = Vec::new();
    for (relative, path, size) in &files {
        let content_type = guess_type(path);
        let uri = insert_file(client, path, &content_type, &bar)?;
        entries.push(serde_json::json!({
            "path": relative, "uri": uri, "content_type": content_type, "size": size,
        }));
    }
    bar.finish_and_clear();
    if !files
        .iter()
        .any(|(relative, _, _)| relative == "index.html")
    {
        eprintln!(
            "note: {} has no index.html; browse it by file path",
            root.display()
        );
    }
    client.insert_site(&serde_json::json!({ "entries": entries }))
}

/// Regular files under `dir`, as (path relative to root with `/`, path, size).
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf, u64)>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(root, &path, out)?;
        } else if kind.is_file() {
            let relative = path
                .strip_prefix(root)?
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((relative, path.clone(), entry.metadata()?.len()));
            if out.len() > MAX_SITE_FILES {
                bail!("{} holds more than {MAX_SITE_FILES} files", root.display());
            }
        }
        // Symlinks and special files are skipped: a site is what is really there.
    }
    Ok(())
}

/// The content type recorded for a file: the node's guesser on its name,
/// `application/octet-stream` when it knows none.
pub fn guess_type(path: &Path) -> String {
    path.file_name()
        .and_then(|name| name.to_str())
        .and_then(warren_node::client::content_type_for_name)
        .unwrap_or_else(|| "application/octet-stream".to_owned())
}

pub fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}
