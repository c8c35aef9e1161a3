//! The reads every request makes (its bearer token or session, an instance's
//! backups), run on the calling task's own thread.
//!
//! sqlx's SQLite driver steps every statement on a worker thread of its own: a
//! query is two thread wake-ups, and under load the futex calls and context
//! switches of those hand-offs took about half of the server's CPU, more than
//! the queries themselves (`bench/api-load.py`, perf). A read of the state store
//! is a few tens of microseconds from SQLite's page cache, less than the
//! hand-off, so these run inline on connections of their own. SQLite in WAL mode
//! lets them read beside sqlx's writers without waiting for them.
//!
//! A read does not wait for another connection's lock on the calling thread:
//! the connections have no busy timeout, and a read SQLite answers "busy" (a
//! checkpoint resetting the log, say) runs again on the blocking pool, where it
//! may wait as long as sqlx's connections do. What a read costs still grows with
//! what it reads: a listing reads every backup of its instance.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::{StoreError, StoreResult};

/// Read-only connections to the store's file, opened as reads need them and
/// kept for the next, up to [`MAX_IDLE`]: reads on the calling thread need one
/// per runtime worker, reads waiting on the blocking pool one each.
#[derive(Debug)]
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// How long a read that SQLite answered "busy" may wait on the blocking pool.
    busy_timeout: Duration,
}

/// Connections kept between reads; more are closed when their read ends.
const MAX_IDLE: usize = 16;

impl Readers {
    pub(super) fn new(path: PathBuf, busy_timeout: Duration) -> Arc<Self> {
        Arc::new(Self { path, idle: Mutex::new(Vec::new()), busy_timeout })
    }

    /// What `read` returns from a connection; `NotFound` when it asked for a row
    /// there is not.
    pub(super) async fn read<T, F>(self: &Arc<Self>, read: F) -> StoreResult<T>
    where
        F: Fn(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let connection = self.take()?;
        match read(&connection) {
            Err(e) if is_busy(&e) => {
                let readers = Arc::clone(self);
                tokio::task::spawn_blocking(move || readers.read_waiting(connection, read))
                    .await
                    .map_err(|e| StoreError::Other(anyhow::anyhow!("a read of the state store failed: {e}")))?
            }
            result => {
                self.give_back(connection);
                result.map_err(into_store_error)
            }
        }
    }

    /// `read` again, allowed to wait for the lock: on the blocking pool only.
    fn read_waiting<T>(
        &self,
        connection: Connection,
        read: impl Fn(&Connection) -> rusqlite::Result<T>,
    ) -> StoreResult<T> {
        connection.busy_timeout(self.busy_timeout).map_err(into_store_error)?;
        let result = read(&connection);
        if connection.busy_timeout(Duration::ZERO).is_ok() {
            self.give_back(connection);
        }
        result.map_err(into_store_error)
    }

    fn take(&self) -> StoreResult<Connection> {
        if let Some(connection) = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Ok(connection);
        }
        self.open().map_err(|e| StoreError::Other(anyhow::anyhow!("opening a reader of the state store: {e}")))
    }

    /// Keeps `connection` for the next read, unless enough are kept or it is
    /// still in a transaction (whose rollback failed): that one would read an
    /// old snapshot from then on.
    fn give_back(&self, connection: Connection) {
        if !connection.is_autocommit() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        // Read-write and `query_only` rather than SQLITE_OPEN_READ_ONLY: a
        // read-only connection to a WAL database cannot always map the shared
        // index, and these must read exactly what the writers see.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.path, flags)?;
        connection.pragma_update(None, "query_only", true)?;
        connection.busy_timeout(Duration::ZERO)?;
        Ok(connection)
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

fn into_store_error(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        e => StoreError::Other(anyhow::anyhow!("reading the state store: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_file() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let writer = Connection::open(&path).unwrap();
        writer.pragma_update(None, "journal_mode", "wal").unwrap();
        writer.execute_batch("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('one');").unwrap();
        (dir, path)
    }

    fn value(c: &Connection) -> rusqlite::Result<String> {
        c.prepare_cached("SELECT v FROM t")?.query_row([], |row| row.get(0))
    }

    #[tokio::test]
    async fn a_read_sees_what_was_written_and_its_connection_is_kept() {
        let (_dir, path) = store_file();
        let readers = Readers::new(path.clone(), Duration::from_secs(5));
        assert_eq!(readers.read(value).await.unwrap(), "one");
        Connection::open(&path).unwrap().execute("UPDATE t SET v = 'two'", []).unwrap();
        assert_eq!(readers.read(value).await.unwrap(), "two");
        assert_eq!(readers.idle.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_connection_left_in_a_transaction_is_not_kept() {
        let (_dir, path) = store_file();
        let readers = Readers::new(path, Duration::from_secs(5));
        readers.read(|c| c.execute_batch("BEGIN; SELECT v FROM t;")).await.unwrap();
        assert_eq!(readers.idle.lock().unwrap().len(), 0);
        assert_eq!(readers.read(value).await.unwrap(), "one");
        assert_eq!(readers.idle.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_missing_row_is_not_found_and_a_reader_cannot_write() {
        let (_dir, path) = store_file();
        let readers = Readers::new(path, Duration::from_secs(5));
        let missing = readers.read(|c| c.query_row("SELECT v FROM t WHERE v = 'x'", [], |r| r.get::<_, String>(0)));
        assert!(matches!(missing.await, Err(StoreError::NotFound)));
        let write = readers.read(|c| c.execute("DELETE FROM t", [])).await;
        assert!(matches!(write, Err(StoreError::Other(_))), "{write:?}");
        assert_eq!(readers.read(value).await.unwrap(), "one");
    }

    #[tokio::test]
    async fn a_busy_read_waits_on_the_blocking_pool() {
        // An exclusive lock in rollback-journal mode makes every reader busy;
        // the read must wait for its release instead of failing.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let writer = Connection::open(&path).unwrap();
        writer.execute_batch("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('one');").unwrap();
        writer.execute_batch("BEGIN EXCLUSIVE; UPDATE t SET v = 'two';").unwrap();
        let readers = Readers::new(path, Duration::from_secs(30));
        let read = tokio::spawn({
            let readers = Arc::clone(&readers);
            async move { readers.read(value).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!read.is_finished(), "the read should wait for the lock");
        writer.execute_batch("COMMIT").unwrap();
        assert_eq!(read.await.unwrap().unwrap(), "two");
    }
}
