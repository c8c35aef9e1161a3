//! Throughput of the backup pipeline alone, without an engine or svcdash around it:
//! a file is uploaded through zstd and age into a local object store and read back,
//! in rounds, and the wall and CPU time of each direction is printed. It shows what
//! the pipeline costs on this machine next to the engines' own tools (bench/).
//!
//! ```text
//! cargo run --release -p backup --example pipeline -- FILE [ROUNDS] [ZSTD_LEVEL] [SINK_COMMAND]
//! ```
//!
//! SINK_COMMAND (run by `sh -c`) reads the restored bytes on its standard input, as an
//! engine's loader does; without it they are dropped in-process.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use anyhow::Context;
use backup::keys::BackupKey;
use backup::{BackupStorage, PipelineOptions};
use tokio::io::AsyncWrite;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = PathBuf::from(args.next().context("usage: pipeline FILE [ROUNDS] [ZSTD_LEVEL] [SINK_COMMAND]")?);
    let rounds: u32 = args.next().map_or(Ok(3), |a| a.parse()).context("ROUNDS")?;
    let mut options = PipelineOptions::default();
    if let Some(level) = args.next() {
        options.zstd_level = level.parse().context("ZSTD_LEVEL")?;
    }
    let sink_command = args.next();
    let size = std::fs::metadata(&file)?.len();
    let store = tempfile::tempdir()?;
    let storage = BackupStorage::open(&format!("file://{}", store.path().display()), [])?;
    let key = BackupKey::generate();
    println!("{} ({:.1} MiB), zstd level {}, {} round(s)", file.display(), mib(size), options.zstd_level, rounds);
    println!("{:<10} {:>8} {:>8} {:>10} {:>11}", "direction", "wall s", "cpu s", "MiB/s", "stored MiB");
    for round in 1..=rounds {
        let source = tokio::fs::File::open(&file).await?;
        let (started, cpu) = (Instant::now(), cpu_seconds());
        let stored = backup::upload(&storage, "bench", source, async { Ok(()) }, key.recipient(), &options).await?;
        report("upload", round, size, started, cpu, Some(stored.size));

        let (sink, child): (Box<dyn AsyncWrite + Send + Unpin>, _) = match &sink_command {
            Some(command) => {
                let mut child = tokio::process::Command::new("sh")
                    .args(["-c", command])
                    .stdin(Stdio::piped())
                    .spawn()
                    .context("starting the sink command")?;
                let stdin = child.stdin.take().context("no stdin")?;
                // A 1 MiB pipe, as the engines give their loaders.
                nix::fcntl::fcntl(&stdin, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20))?;
                (Box::new(stdin), Some(child))
            }
            None => (Box::new(tokio::io::sink()), None),
        };
        let (started, cpu) = (Instant::now(), cpu_seconds());
        let plain = backup::download(&storage, "bench", &stored.sha256, key.identity(), sink).await?;
        if let Some(mut child) = child {
            anyhow::ensure!(child.wait().await?.success(), "the sink command failed");
        }
        anyhow::ensure!(plain == size, "read back {plain} bytes of {size}");
        report("download", round, size, started, cpu, None);
    }
    Ok(())
}

fn report(direction: &str, round: u32, size: u64, started: Instant, cpu: f64, stored: Option<u64>) {
    let wall = started.elapsed().as_secs_f64();
    let stored = stored.map_or_else(String::new, |s| format!("{:.1}", mib(s)));
    println!(
        "{:<10} {:>8.2} {:>8.2} {:>10.0} {:>11}",
        format!("{direction}#{round}"),
        wall,
        cpu_seconds() - cpu,
        mib(size) / wall,
        stored
    );
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// User and system time of this process and its reaped children, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().filter_map(|f| f.parse().ok()).collect())
        .unwrap_or_default();
    // utime, stime, cutime and cstime are fields 14-17; `fields` starts at field 4
    // (field 3, the state, is a letter and was dropped).
    fields.get(10..14).map_or(0.0, |t| t.iter().sum::<f64>() / 100.0)
}
