//! The SQLite store: the embedded default. One file, WAL mode, migrations run on open.

mod archive;
mod audit;
mod backups;
mod folded;
mod instances;
mod jobs;
#[cfg(test)]
mod plans;
mod rows;
mod sessions;
mod stored_time;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs pending migrations.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
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

    /// A store that lives in memory: for tests.
    pub async fn in_memory() -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> anyhow::Result<Self> {
        let in_memory = options.get_filename() == Path::new(":memory:");
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists once per connection.
            .max_connections(if in_memory { 1 } else { 8 })
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await.context("running migrations")?;
        Ok(Self { pool })
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
