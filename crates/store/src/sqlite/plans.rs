//! The reads behind every listing request use indexes, so a listing costs the
//! same with a thousand backups in the state as with a hundred thousand.

use sqlx::AssertSqlSafe;

use super::SqliteStore;

/// SQLite's plan for `sql`, one step per line (`SEARCH b USING INDEX …`).
async fn plan(store: &SqliteStore, sql: &str) -> Vec<String> {
    let rows: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}"))).fetch_all(&store.pool).await.unwrap();
    rows.into_iter().map(|(_, _, _, detail)| detail).collect()
}

#[tokio::test]
async fn listing_reads_search_indexes_and_scan_no_table() {
    let store = SqliteStore::temporary().await.unwrap();
    let reads = [
        ("backups", super::backups::BACKUPS.as_str()),
        ("restores", super::backups::RESTORES.as_str()),
        ("restore jobs", super::backups::RESTORE_JOBS.as_str()),
        ("current key", super::instances::CURRENT_KEY),
        ("instance", super::instances::INSTANCE_BY_GUID.as_str()),
        ("listing", super::backups::LISTING.as_str()),
        ("listed backups", super::backups::BACKUP_ROWS.as_str()),
        ("overview", super::backups::OVERVIEW.as_str()),
    ];
    for (what, sql) in reads {
        let steps = plan(&store, sql).await;
        // A subquery flattened into the aggregate shows no step of its own.
        let tables: Vec<&String> = steps.iter().filter(|s| s.starts_with("SEARCH") || s.starts_with("SCAN")).collect();
        assert!(!tables.is_empty(), "{what}: no table read in {steps:?}");
        for step in tables {
            assert!(
                step.starts_with("SEARCH") && step.contains("USING"),
                "{what} reads a whole table: {step} in {steps:?}"
            );
        }
    }
}
