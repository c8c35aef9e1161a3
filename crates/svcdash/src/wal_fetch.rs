//! `svcdash wal-fetch SOCKET NAME FILE`, PostgreSQL's `restore_command` during a
//! restore to a point in time: asks the svcdash server on the node's fetch socket
//! for one archived write-ahead log file and writes its plain bytes to FILE. Exits
//! 0 with the whole file written, and with an error otherwise (PostgreSQL takes a
//! failure as "not archived", and a partial file is removed).
//!
//! Plain blocking I/O in large writes: replay waits for this on every file.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

/// The longest svcdash may stay silent: it reads a segment from the backup store.
const TIMEOUT: Duration = Duration::from_secs(600);

pub fn run(socket: &Path, name: &str, file: &Path) -> anyhow::Result<()> {
    let result = fetch(socket, name, file);
    if result.is_err() {
        let _ = std::fs::remove_file(file);
    }
    result
}

fn fetch(socket: &Path, name: &str, file: &Path) -> anyhow::Result<()> {
    let mut stream =
        UnixStream::connect(socket).with_context(|| format!("connecting to svcdash at {}", socket.display()))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.write_all(format!("FETCH {name}\n").as_bytes())?;
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let mut header = String::new();
    (&mut reader).take(4096).read_line(&mut header).context("waiting for svcdash's answer")?;
    let header = header.strip_suffix('\n').context("svcdash gave no answer")?;
    let size: u64 = match header.split_once(' ') {
        Some(("OK", size)) => size.parse().context("svcdash gave a malformed size")?,
        _ if header == "NONE" => bail!("{name} is not in the archive"),
        Some(("ERR", why)) => bail!("svcdash could not fetch {name}: {why}"),
        _ => bail!("svcdash gave a malformed answer"),
    };
    let mut out = std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?;
    // Written as it arrives, in the reader's large chunks (`std::io::copy` would
    // write 8 KiB at a time).
    let mut left = size;
    while left > 0 {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            bail!("{name} ended after {} of {size} bytes", size - left);
        }
        let n = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        out.write_all(&chunk[..n])?;
        reader.consume(n);
        left -= n as u64;
    }
    Ok(())
}
