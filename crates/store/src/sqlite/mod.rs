//! The SQLite store: the embedded default. One file, WAL mode, migrations run on open.

mod archive;
mod audit;
mod backups;
mod folded;
mod instances;
mod jobs;
#[cfg(test)]
mod plans;
mod readers;
mod rows;
mod sessions;
mod stored_time;
mod users;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    readers: Arc<readers::Readers>,
    /// The files of a [`SqliteStore::temporary`] store, removed with its last clone.
    _temporary: Option<Arc<TemporaryFiles>>,
}

/// How long a statement waits for another connection's lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs pending migrations.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // The CLI and a starting server may open a new database at the same moment;
        // SQLite gives sqlx's migrator no lock, so a file lock keeps them from both
        // creating the tables.
        let lock_path = path.with_extension("db.lock");
        let lock = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path)?;
            file.lock()?;
            Ok(file)
        })
        .await
        .context("waiting for the state store's lock")?
        .with_context(|| format!("locking state store {}", path.display()))?;
        let store = Self::connect(options).await.with_context(|| format!("opening state store {}", path.display()));
        drop(lock);
        store
    }

    /// A store in a file of its own under the system's temporary directory,
    /// removed when the last clone of the store is dropped: for tests. A file
    /// rather than `:memory:`, which exists once per connection, so that tests
    /// read through the same connections as the server.
    pub async fn temporary() -> anyhow::Result<Self> {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let name = format!(
            "svcdash-store-{}-{}-{}.db",
            std::process::id(),
            nanos.as_nanos(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        // A new, empty file (an empty database to SQLite), never one found there;
        // only a file made here is removed.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let files = Arc::new(TemporaryFiles(path));
        let mut store = Self::open(&files.0).await?;
        store._temporary = Some(files);
        Ok(store)
    }

    async fn connect(options: SqliteConnectOptions) -> anyhow::Result<Self> {
        let path = options.get_filename().to_owned();
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        sqlx::migrate!("./migrations").run(&pool).await.context("running migrations")?;
        Ok(Self { pool, readers: readers::Readers::new(path, BUSY_TIMEOUT), _temporary: None })
    }
}

/// A temporary store's database file, and SQLite's files beside it.
#[derive(Debug)]
struct TemporaryFiles(PathBuf);

impl Drop for TemporaryFiles {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

impl SqliteStore {
    /// A write transaction that takes SQLite's write lock at once. A deferred one
    /// that reads first (the next sequence number, say) fails with "database is
    /// locked" when another writer commits in between; waiting for the lock up
    /// front lets the busy timeout handle contention instead.
    async fn write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

/// The one place "now" comes from, so stored timestamps share one format.
fn now() -> DateTime<Utc> {
    Utc::now()
}

/// A timestamp as sqlx writes it, for the inline readers to compare stored ones
/// with: text compares as time only in the same form.
fn as_stored(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}
