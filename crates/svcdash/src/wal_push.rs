//! `svcdash wal-push SOCKET FILE NAME`, PostgreSQL's `archive_command`: sends one
//! finished write-ahead log file to the svcdash server listening on the node's
//! archive socket and waits for its answer. PostgreSQL removes the file only after
//! this exits 0, which it does only when svcdash answered that the file is in the
//! backup store; anything else leaves the file where it is, and PostgreSQL tries
//! again.

use std::path::Path;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

pub async fn run(socket: &Path, file: &Path, name: &str) -> anyhow::Result<()> {
    let mut source = tokio::fs::File::open(file).await.with_context(|| format!("opening {}", file.display()))?;
    let metadata = source.metadata().await?;
    let size = metadata.len();
    // When PostgreSQL last wrote the file, which then holds everything written before:
    // svcdash may be handed it much later (after it or the store was down), while the
    // files after it hold what was written meanwhile, so the hand-over is no such bound.
    let written = metadata.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    let mut stream =
        UnixStream::connect(socket).await.with_context(|| format!("connecting to svcdash at {}", socket.display()))?;
    let sent: anyhow::Result<()> = async {
        let header = match written {
            Some(written) => format!("PUSH {name} {size} {}\n", written.as_millis()),
            None => format!("PUSH {name} {size}\n"),
        };
        stream.write_all(header.as_bytes()).await?;
        let sent = tokio::io::copy(&mut (&mut source).take(size), &mut stream).await?;
        if sent != size {
            bail!("{} ended after {sent} of {size} bytes", file.display());
        }
        stream.shutdown().await?;
        Ok(())
    }
    .await;
    // svcdash may refuse before it has read everything: its answer says why better
    // than the broken pipe this side then sees.
    let mut answer = String::new();
    let _ = (&mut stream).take(4096).read_to_string(&mut answer).await;
    match answer.strip_suffix('\n') {
        Some("OK") if sent.is_ok() => Ok(()),
        Some(error) if error.starts_with("ERR ") => bail!("svcdash did not archive {name}: {}", &error[4..]),
        _ => Err(sent.err().unwrap_or_else(|| anyhow::anyhow!("no answer")))
            .with_context(|| format!("svcdash did not archive {name}")),
    }
}
