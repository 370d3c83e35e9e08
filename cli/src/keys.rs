//! `warren keys new`: a fresh signed-key pair for publishing (not the node
//! identity, which `warren keygen` makes), and reading insert keys back.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use warren_crypto::{AnyUri, SskInsertUri, UskInsertUri};

/// Longest key file read, in bytes (a key is under 200).
const MAX_KEY_FILE: u64 = 4096;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a fresh insert key (secret: it writes) and its request key (to share).
    New(NewArgs),
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The document or site name inside the key.
    #[arg(default_value = "site")]
    pub name: String,
    /// An updatable key (`USK@…/NAME/0`), for a site published in editions.
    #[arg(long)]
    pub usk: bool,
    /// Also write the insert key to this file, readable by you alone (mode 0600);
    /// refuses to replace an existing file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &KeysArgs) -> Result<()> {
    match &args.command {
        KeysCommand::New(new) => new_keys(new),
    }
}

fn new_keys(args: &NewArgs) -> Result<()> {
    let ssk = SskInsertUri::generate(&mut rand::rngs::OsRng, args.name.clone());
    // Check the name as a URI would: one spelling, no slash or control character.
    let ssk: SskInsertUri = ssk.to_string().parse().context(
        "that name cannot be a document name (1 to 256 bytes, no `/` or control characters)",
    )?;
    let (insert, request) = if args.usk {
        let usk = UskInsertUri {
            private: ssk.private,
            crypto: ssk.crypto,
            name: ssk.docname,
            edition: 0,
        };
        let request = usk
            .request_uri()
            .with_edition(warren_crypto::Edition::Latest);
        (usk.to_string(), request.to_string())
    } else {
        let request = ssk.request_uri().to_string();
        (ssk.to_string(), request)
    };
    if let Some(path) = &args.out {
        write_key_file(path, &insert)?;
        eprintln!("insert key written to {} (mode 0600)", path.display());
    }
    // Written, not println!: a closed pipe is an error to report, not a panic.
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "insert key (secret: whoever holds it can write here): {insert}"
    )
    .and_then(|()| {
        writeln!(
            out,
            "request key (share it: it reads):                     {request}"
        )
    })
    .context("cannot write to standard output")
}

/// Writes `key` to a new file that only its owner can read.
pub fn write_key_file(path: &Path, key: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the key file {}", path.display()))?;
    writeln!(file, "{key}")
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the key file {}", path.display()))
}

/// Reads an insert key from a key file (its first line).
pub fn read_key_file(path: &Path) -> Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_FILE).read_to_string(&mut text))
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// Parses the key to publish under: an SSK or USK insert key, or a KSK. The
/// error never repeats the key: it may hold a private key.
pub fn parse_insert_key(text: &str) -> Result<AnyUri> {
    let key: AnyUri = text
        .parse()
        .context("the --key is not a valid insert key")?;
    match key {
        AnyUri::SskInsert(_) | AnyUri::UskInsert(_) | AnyUri::Ksk(_) => Ok(key),
        _ => bail!(
            "the --key is a request key, which cannot write: use the insert key from `warren keys new` (or a KSK@name)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_about_an_insert_key_never_print_it() {
        let key = SskInsertUri::generate(&mut rand::rngs::OsRng, "blog");
        let text = key.to_string();
        let secret = text[4..text.find(',').unwrap()].to_owned();
        for bad in [
            format!("{text}/extra/\u{7}"),
            text.replacen(",AQEB/", ",AQIB/", 1),
            text.replacen("/blog", "/", 1),
            text.replacen("SSK@", "USK@", 1),
        ] {
            let err = parse_insert_key(&bad).unwrap_err();
            let shown = format!("{err:#} {err:?}");
            assert!(!shown.contains(&secret), "{shown}");
        }
        let request = key.request_uri().to_string();
        assert!(parse_insert_key(&request).is_err());
        assert!(matches!(parse_insert_key(&text), Ok(AnyUri::SskInsert(_))));
    }

    #[test]
    fn key_files_are_private_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blog.key");
        write_key_file(&path, "SSK@secret").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(write_key_file(&path, "SSK@other").is_err());
        assert_eq!(read_key_file(&path).unwrap(), "SSK@secret");
    }
}
