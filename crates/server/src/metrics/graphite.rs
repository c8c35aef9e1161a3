//! Sending collections to a Graphite server over its plaintext protocol
//! (`<path> <value> <timestamp>\n`). One connection per collection, so a restarted
//! Graphite is picked up again; a failure is logged once, not at every collection.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

const TIMEOUT: Duration = Duration::from_secs(5);

pub struct Graphite {
    address: String,
    failing: bool,
}

impl Graphite {
    pub fn new(address: String) -> Self {
        Self { address, failing: false }
    }

    pub async fn send(&mut self, lines: String) {
        if lines.is_empty() {
            return;
        }
        let sent = tokio::time::timeout(TIMEOUT, async {
            let mut stream = tokio::net::TcpStream::connect(&self.address).await?;
            stream.write_all(lines.as_bytes()).await?;
            stream.shutdown().await
        })
        .await
        .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")));
        match sent {
            Ok(()) if self.failing => {
                tracing::info!(graphite = %self.address, "sending metrics to Graphite works again");
                self.failing = false;
            }
            Ok(()) => {}
            Err(e) if !self.failing => {
                tracing::warn!(graphite = %self.address, error = %e, "could not send metrics to Graphite; will keep trying");
                self.failing = true;
            }
            Err(_) => {}
        }
    }
}
