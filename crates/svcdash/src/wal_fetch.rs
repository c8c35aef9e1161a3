//! `svcdash wal-fetch SOCKET NAME FILE`, PostgreSQL's `restore_command` during a
//! restore to a point in time: asks the svcdash server on the node's fetch socket
//! for one archived write-ahead log file and writes its plain bytes to FILE. Exits
//! 0 with the whole file written, and with an error otherwise (PostgreSQL takes a
//! failure as "not archived", and a partial file is removed).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The longest a fetch may take: the server reads a segment from the backup store.
const TIMEOUT: Duration = Duration::from_secs(600);

pub async fn run(socket: &Path, name: &str, file: &Path) -> anyhow::Result<()> {
    let fetched = tokio::time::timeout(TIMEOUT, fetch(socket, name, file)).await;
    let result =
        fetched.unwrap_or_else(|_| Err(anyhow::anyhow!("svcdash did not answer within {} s", TIMEOUT.as_secs())));
    if result.is_err() {
        let _ = tokio::fs::remove_file(file).await;
    }
    result
}

async fn fetch(socket: &Path, name: &str, file: &Path) -> anyhow::Result<()> {
    let mut stream =
        UnixStream::connect(socket).await.with_context(|| format!("connecting to svcdash at {}", socket.display()))?;
    stream.write_all(format!("FETCH {name}\n").as_bytes()).await?;
    let mut reader = BufReader::new(stream);
    let mut header = String::new();
    (&mut reader).take(4096).read_line(&mut header).await?;
    let header = header.strip_suffix('\n').context("svcdash gave no answer")?;
    let size: u64 = match header.split_once(' ') {
        Some(("OK", size)) => size.parse().context("svcdash gave a malformed size")?,
        _ if header == "NONE" => bail!("{name} is not in the archive"),
        Some(("ERR", why)) => bail!("svcdash could not fetch {name}: {why}"),
        _ => bail!("svcdash gave a malformed answer"),
    };
    let mut out = tokio::fs::File::create(file).await.with_context(|| format!("creating {}", file.display()))?;
    let copied = tokio::io::copy(&mut (&mut reader).take(size), &mut out).await?;
    if copied != size {
        bail!("{name} ended after {copied} of {size} bytes");
    }
    out.flush().await?;
    Ok(())
}
