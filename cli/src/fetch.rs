//! `warren fetch KEY [-o PATH]`: streams verified content to disk, never
//! leaving a half-written file behind.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use warren_crypto::{AnyUri, ChkUri};

use crate::api_client::ApiArgs;
use crate::insert::progress_bar;

/// Bytes moved per read while streaming to disk.
const COPY_CHUNK: usize = 256 * 1024;

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The key to fetch: `CHK@…[/path]`, `SSK@…/name[/path]`, `KSK@name`, or
    /// `USK@…/name/N[/path]` (`-1` for the newest edition).
    pub key: String,
    /// Where to write the content (`-` for standard output) [default: the key's file name].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub api: ApiArgs,
    /// Replace an existing file, and accept a hidden file name from the key.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &FetchArgs) -> Result<()> {
    // Parse here first: a mistyped key deserves an answer without a node.
    let any: AnyUri = args.key.parse().context("that is not a valid key")?;
    if any.is_insert() {
        bail!("that is an insert key (it holds the private key); fetch with its request key");
    }
    let output = match &args.output {
        Some(path) => path.clone(),
        None => default_output(&any, args.force)?,
    };
    let to_stdout = output.as_os_str() == "-";
    if !to_stdout && !args.force && output.symlink_metadata().is_ok() {
        bail!(
            "{} already exists; pass --force to replace it, or -o PATH",
            output.display()
        );
    }
    let client = args.api.client()?;
    let download = client.fetch(&args.key).context("fetch failed")?;
    if let Some(edition) = download.edition {
        eprintln!("edition {edition}");
    }
    if to_stdout {
        let mut stdout = io::stdout().lock();
        copy_checked(download, &mut stdout, "standard output")?;
        return stdout.flush().context("cannot write to standard output");
    }
    write_atomically(download, &output, args.force)?;
    eprintln!("wrote {}", output.display());
    Ok(())
}

/// The file name a key suggests: only its last path segment, never `.` or
/// `..`, and never a hidden name unless `force` (a key ending in `/.bashrc`
/// must not replace the user's shell setup).
fn default_output(uri: &AnyUri, force: bool) -> Result<PathBuf> {
    // A signed key without a path is named by its document name.
    let (path, name) = match uri {
        AnyUri::Chk(ChkUri { path, .. }) => (path.as_deref(), None),
        AnyUri::Ssk(ssk) => (ssk.path.as_deref(), Some(ssk.docname.as_str())),
        AnyUri::Usk(usk) => (usk.path.as_deref(), Some(usk.name.as_str())),
        AnyUri::Ksk(ksk) => (ksk.path.as_deref(), Some(ksk.keyword.as_str())),
        AnyUri::SskInsert(_) | AnyUri::UskInsert(_) => (None, None),
    };
    let name = path
        .and_then(|p| p.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .or(name);
    match name {
        Some(name) if name == ".." || name == "." => {
            bail!("this key names no file; pass -o PATH (or -o - for standard output)")
        }
        Some(name) if name.starts_with('.') && !force => bail!(
            "this key names a hidden file ({name}); pass -o PATH to choose a name, or --force"
        ),
        Some(name) => Ok(PathBuf::from(name)),
        None => bail!("this key names no file; pass -o PATH (or -o - for standard output)"),
    }
}

/// Streams into `<dir>/.<name>.partial`, fsyncs, then moves it to `path`:
/// the output exists only once complete and verified. Without `replace`, the
/// move fails if `path` appeared meanwhile (a hard link never overwrites).
fn write_atomically(
    download: crate::api_client::Download,
    path: &Path,
    replace: bool,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().context("the output path names no file")?;
    let partial = dir.join(format!(".{}.partial", name.to_string_lossy()));
    let result = (|| {
        let file = File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut writer = FileWriter::new(file);
        copy_checked(download, &mut writer, &path.display().to_string())?;
        writer
            .finish()
            .with_context(|| format!("cannot write {}", path.display()))?;
        if replace {
            std::fs::rename(&partial, path)
        } else {
            std::fs::hard_link(&partial, path)
        }
        .with_context(|| format!("cannot write {}", path.display()))
    })();
    // Gone in every case: renamed, linked (the link is the output), or failed.
    let _ = std::fs::remove_file(&partial);
    result
}

/// Writes a file on a thread of its own, so the disk work overlaps the
/// download instead of following it: the writer syncs every
/// [`SYNC_EVERY`] bytes, which leaves little for the final fsync. At most
/// [`WRITE_QUEUE`] chunks wait for the disk.
struct FileWriter {
    chunks: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

/// Bytes written between syncs of the output file.
const SYNC_EVERY: u64 = 16 * 1024 * 1024;
/// Chunks (of up to [`COPY_CHUNK`] bytes) queued for the writer thread.
const WRITE_QUEUE: usize = 16;

impl FileWriter {
    fn new(mut file: File) -> FileWriter {
        let (chunks, queue) = std::sync::mpsc::sync_channel::<Vec<u8>>(WRITE_QUEUE);
        let thread = std::thread::spawn(move || {
            let mut unsynced: u64 = 0;
            for chunk in queue {
                file.write_all(&chunk)?;
                unsynced += chunk.len() as u64;
                if unsynced >= SYNC_EVERY {
                    file.sync_data()?;
                    unsynced = 0;
                }
            }
            file.sync_all()
        });
        FileWriter {
            chunks: Some(chunks),
            thread: Some(thread),
        }
    }

    /// The writer thread's result: its first error, if it stopped early.
    fn join(&mut self) -> io::Result<()> {
        self.chunks = None;
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the file writer thread panicked")),
            None => Ok(()),
        }
    }

    /// Waits until every byte is written and the file synced.
    fn finish(mut self) -> io::Result<()> {
        self.join()
    }
}

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let sent = match &self.chunks {
            Some(chunks) => chunks.send(buf.to_vec()).is_ok(),
            None => false,
        };
        if sent {
            return Ok(buf.len());
        }
        // The thread stopped: it hit an error (a full disk, say). Report it.
        self.join()?;
        Err(io::Error::other("the file writer stopped"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // On an error path: let the thread finish its queue and stop.
        let _ = self.join();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn uri_with_path(path: &str) -> AnyUri {
        let (_, key) = warren_crypto::ChkBlock::encode(b"x").unwrap();
        let mut uri = ChkUri::new(key, warren_crypto::Extra::DATA);
        uri.path = Some(path.to_owned());
        AnyUri::Chk(uri)
    }

    #[test]
    fn a_key_never_chooses_a_hidden_name_or_a_directory() {
        assert_eq!(
            default_output(&uri_with_path("site/report.pdf"), false).unwrap(),
            PathBuf::from("report.pdf")
        );
        for bad in ["../x/..", "a/.", ".."] {
            assert!(default_output(&uri_with_path(bad), true).is_err(), "{bad}");
        }
        let err = default_output(&uri_with_path("home/.bashrc"), false).unwrap_err();
        assert!(err.to_string().contains("hidden file (.bashrc)"), "{err}");
        assert_eq!(
            default_output(&uri_with_path("home/.bashrc"), true).unwrap(),
            PathBuf::from(".bashrc")
        );
    }

    fn download_of(bytes: &'static [u8]) -> crate::api_client::Download {
        crate::api_client::Download {
            length: Some(bytes.len() as u64),
            edition: None,
            reader: Box::new(bytes),
        }
    }

    #[test]
    fn an_existing_file_is_kept_unless_replacing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, b"mine").unwrap();
        let err = write_atomically(download_of(b"theirs"), &path, false).unwrap_err();
        assert!(format!("{err:#}").contains("File exists"), "{err:#}");
        assert_eq!(std::fs::read(&path).unwrap(), b"mine");
        write_atomically(download_of(b"theirs"), &path, true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"theirs");
        // No partial file is left either way.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn file_writer_writes_every_byte_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let mut writer = FileWriter::new(File::create(&path).unwrap());
        let mut expected = Vec::new();
        for i in 0..200u32 {
            let chunk: Vec<u8> = (0..(i * 997 % 70_000)).map(|j| (i ^ j) as u8).collect();
            writer.write_all(&chunk).unwrap();
            expected.extend_from_slice(&chunk);
        }
        writer.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[test]
    fn file_writer_reports_a_full_disk_instead_of_hanging() {
        // /dev/full fails every write with ENOSPC.
        let file = File::options().write(true).open("/dev/full").unwrap();
        let mut writer = FileWriter::new(file);
        let chunk = vec![0u8; COPY_CHUNK];
        let err = (0..WRITE_QUEUE * 4)
            .find_map(|_| writer.write_all(&chunk).err())
            .expect("writes to a full disk fail");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    }
}
