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
    let size = source.metadata().await?.len();
    let mut stream =
        UnixStream::connect(socket).await.with_context(|| format!("connecting to svcdash at {}", socket.display()))?;
    let sent: anyhow::Result<()> = async {
        stream.write_all(format!("PUSH {name} {size}\n").as_bytes()).await?;
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
