//! `warren fetch KEY [-o PATH]`: streams verified content to disk, never
//! leaving a half-written file behind.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use warren_crypto::ChkUri;

use crate::api_client::ApiArgs;
use crate::insert::progress_bar;

/// Bytes moved per read while streaming to disk.
const COPY_CHUNK: usize = 256 * 1024;

#[derive(Debug, Args)]
pub(crate) struct FetchArgs {
    /// The key to fetch, `CHK@…[/path]`.
    pub(crate) key: String,
    /// Where to write the content (`-` for standard output) [default: the key's file name].
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

pub(crate) fn run(args: &FetchArgs) -> Result<()> {
    // Parse here first: a mistyped key deserves an answer without a node.
    let uri: ChkUri = args.key.parse().context("that is not a valid key")?;
    let output = match &args.output {
        Some(path) => path.clone(),
        None => default_output(&uri)?,
    };
    let client = args.api.client()?;
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
        let file = File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut writer = FileWriter::new(file);
        copy_checked(download, &mut writer, &path.display().to_string())?;
        writer
            .finish()
            .with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::rename(&partial, path).with_context(|| format!("cannot write {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
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
