//! `svcdash wal-push SOCKET FILE NAME`, PostgreSQL's `archive_command`: sends one
//! finished write-ahead log file to the svcdash server listening on the node's
//! archive socket and waits for its answer. PostgreSQL removes the file only after
//! this exits 0, which it does only when svcdash answered that the file is in the
//! backup store; anything else leaves the file where it is, and PostgreSQL tries
//! again.
//!
//! Plain blocking I/O: PostgreSQL waits for this on every file, and `std::io::copy`
//! from a file to a socket is one `sendfile` loop in the kernel.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};

/// The longest svcdash may take to answer: it writes the file to the backup store.
const TIMEOUT: Duration = Duration::from_secs(600);

pub fn run(socket: &Path, file: &Path, name: &str) -> anyhow::Result<()> {
    let mut source = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let metadata = source.metadata()?;
    let size = metadata.len();
    // When PostgreSQL last wrote the file, which then holds everything written before:
    // svcdash may be handed it much later (after it or the store was down), while the
    // files after it hold what was written meanwhile, so the hand-over is no such bound.
    let written = metadata.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    let mut stream =
        UnixStream::connect(socket).with_context(|| format!("connecting to svcdash at {}", socket.display()))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let sent: anyhow::Result<()> = (|| {
        let header = match written {
            Some(written) => format!("PUSH {name} {size} {}\n", written.as_millis()),
            None => format!("PUSH {name} {size}\n"),
        };
        stream.write_all(header.as_bytes())?;
        let sent = std::io::copy(&mut (&mut source).take(size), &mut stream)?;
        if sent != size {
            bail!("{} ended after {sent} of {size} bytes", file.display());
        }
        stream.shutdown(Shutdown::Write)?;
        Ok(())
    })();
    // svcdash may refuse before it has read everything: its answer says why better
    // than the broken pipe this side then sees.
    let mut answer = String::new();
    let _ = (&mut stream).take(4096).read_to_string(&mut answer);
    match answer.strip_suffix('\n') {
        Some("OK") if sent.is_ok() => Ok(()),
        Some(error) if error.starts_with("ERR ") => bail!("svcdash did not archive {name}: {}", &error[4..]),
        _ => Err(sent.err().unwrap_or_else(|| anyhow::anyhow!("no answer")))
            .with_context(|| format!("svcdash did not archive {name}")),
    }
}
