//! The content of a `Persistence=forever` `ClientPut` sent over the
//! connection (`UploadFrom=direct`), kept until the insert is done so that
//! it survives the client going away and the node restarting.
//!
//! `<data dir>/fcp-uploads/<keyed hash of the request's name>`: a sealed
//! stream (see [`super::vault`]) bound to the request, written as the data
//! arrives and synced before the insert starts. Only a complete spool is
//! resumed; one cut short by a crash mid-upload fails to open, and the put
//! fails asking for the content again.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::blocks::request_name;
use super::queue::RequestKey;
use super::session::Chunk;
use super::vault::Vault;

/// The directory of spooled uploads, in the data directory.
pub const UPLOADS_DIR: &str = "fcp-uploads";
/// What a spool is bound to, besides its request.
const SEALED_CONTEXT: &[u8] = b"warren-fcp-upload-v1";
/// Segments read ahead of the insert.
const READ_AHEAD: usize = 4;

/// One request's spooled content.
#[derive(Debug, Clone)]
pub(super) struct Spool {
    path: PathBuf,
    context: Vec<u8>,
    vault: Arc<Vault>,
}

impl Spool {
    pub(super) fn new(data_dir: &std::path::Path, vault: Arc<Vault>, key: &RequestKey) -> Spool {
        let name = request_name(key);
        let path = data_dir.join(UPLOADS_DIR).join(vault.name("upload", &name));
        Spool {
            path,
            context: [SEALED_CONTEXT, &name].concat(),
            vault,
        }
    }

    /// The spool of file `index` of a site request.
    pub(super) fn for_site_file(
        data_dir: &std::path::Path,
        vault: Arc<Vault>,
        key: &RequestKey,
        index: usize,
    ) -> Spool {
        let mut name = request_name(key);
        name.extend_from_slice(b"\0file\0");
        name.extend_from_slice(&(index as u64).to_be_bytes());
        let path = data_dir.join(UPLOADS_DIR).join(vault.name("upload", &name));
        Spool {
            path,
            context: [SEALED_CONTEXT, &name].concat(),
            vault,
        }
    }

    /// Where the spool lives (whether or not it exists yet).
    pub(super) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Writes what `chunks` brings, until it ends, which must be after
    /// exactly `expected` bytes. An upload that ends with an error or short
    /// leaves no spool.
    pub(super) async fn receive(
        &self,
        mut chunks: mpsc::Receiver<Chunk>,
        expected: u64,
    ) -> std::io::Result<()> {
        let spool = self.clone();
        let written = tokio::task::spawn_blocking(move || {
            if let Some(dir) = spool.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let _ = std::fs::remove_file(&spool.path);
            let mut writer = spool.vault.spool_writer(&spool.path, &spool.context)?;
            let mut got = 0u64;
            while let Some(chunk) = chunks.blocking_recv() {
                let chunk = chunk?;
                got += chunk.len() as u64;
                writer.write(&chunk)?;
            }
            // A short upload is never sealed as complete: only a finished
            // stream opens, and a restart resumes from any that does.
            if got != expected {
                return Err(std::io::Error::other(format!(
                    "the upload ended after {got} of {expected} bytes"
                )));
            }
            writer.finish().map(drop)
        })
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the spooling task stopped")));
        if written.is_err() {
            self.remove().await;
        }
        written
    }

    /// The content back, a segment at a time, from a blocking thread; ends
    /// with an error if the spool is incomplete or damaged.
    pub(super) fn read(&self) -> mpsc::Receiver<Chunk> {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let spool = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut reader = match spool.vault.spool_reader(&spool.path, &spool.context) {
                Ok(reader) => reader,
                Err(err) => {
                    let _ = tx.blocking_send(Err(std::io::Error::other(err)));
                    return;
                }
            };
            loop {
                let item = match reader.next_segment() {
                    Ok(Some(segment)) => Ok(Bytes::copy_from_slice(&segment)),
                    Ok(None) => return,
                    Err(err) => Err(std::io::Error::other(err)),
                };
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    return;
                }
            }
        });
        rx
    }

    pub(super) async fn remove(&self) {
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::queue::Owner;
    use super::*;

    fn key(id: &str) -> RequestKey {
        RequestKey {
            owner: Owner::Client("c".into()),
            identifier: id.into(),
        }
    }

    async fn collect(mut rx: mpsc::Receiver<Chunk>) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = rx.recv().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn an_upload_is_spooled_sealed_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(Vault::ephemeral());
        let spool = Spool::new(dir.path(), Arc::clone(&vault), &key("u1"));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let (tx, rx) = mpsc::channel(4);
        let sent = data.clone();
        tokio::spawn(async move {
            for piece in sent.chunks(10_000) {
                tx.send(Ok(Bytes::copy_from_slice(piece))).await.unwrap();
            }
        });
        spool.receive(rx, data.len() as u64).await.unwrap();
        let on_disk = std::fs::read(spool.path()).unwrap();
        assert!(!on_disk.windows(64).any(|w| w == &data[1000..1064]));
        assert!(!spool.path().display().to_string().contains("u1"));
        assert_eq!(collect(spool.read()).await.unwrap(), data);
        // Another request's spool name does not open this one.
        let other = Spool::new(dir.path(), vault, &key("u2"));
        std::fs::copy(spool.path(), other.path()).unwrap();
        assert!(collect(other.read()).await.is_err());
        spool.remove().await;
        assert!(collect(spool.read()).await.is_err());
    }

    #[tokio::test]
    async fn an_upload_that_breaks_off_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path(), Arc::new(Vault::ephemeral()), &key("u"));
        let (tx, rx) = mpsc::channel(4);
        tx.send(Ok(Bytes::from_static(b"part of it")))
            .await
            .unwrap();
        tx.send(Err(std::io::Error::other("client went away")))
            .await
            .unwrap();
        drop(tx);
        assert!(spool.receive(rx, 100).await.is_err());
        assert!(!spool.path().exists());
        // Ended without an error, but short.
        let (tx, rx) = mpsc::channel(4);
        tx.send(Ok(Bytes::from_static(b"part of it")))
            .await
            .unwrap();
        drop(tx);
        assert!(spool.receive(rx, 100).await.is_err());
        assert!(!spool.path().exists());
    }
}
