//! Runs the backup pipeline on a file (say, a saved `pg_dump -Fc -Z0` output) into a
//! local store and prints wall time and size, to compare with `zstd | age` on the
//! same input: `cargo run --release -p backup --example encode_file -- FILE [LEVEL] [WORKERS]`.

use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = args.next().expect("usage: encode_file FILE [LEVEL] [WORKERS]");
    let level = args.next().map_or(Ok(2), |l| l.parse())?;
    let workers = args.next().map_or(Ok(2), |w| w.parse())?;
    let out = tempfile::tempdir()?;
    let storage = backup::BackupStorage::open(&format!("file://{}", out.path().display()), Vec::new())?;
    let options = backup::PipelineOptions { zstd_level: level, zstd_workers: workers, ..Default::default() };
    let key = backup::keys::BackupKey::generate();
    let source = tokio::fs::File::open(&file).await?;
    let started = Instant::now();
    let stored = backup::upload(&storage, "bench", source, async { Ok(()) }, key.recipient(), &options).await?;
    println!(
        "level {level} workers {workers}: {:.2} s, {} -> {} bytes",
        started.elapsed().as_secs_f64(),
        stored.plain_size,
        stored.size
    );
    Ok(())
}
