//! Lists read as one row. sqlx's SQLite driver steps a statement on a worker
//! thread of its own and hands every row to the waiting task through a channel,
//! one thread wake-up per row; for a list of a hundred backups those hand-offs
//! cost more than the query itself (the listing API served 3,000 requests a
//! second with them, on 2 cores). Here SQLite folds the rows into one JSON array
//! (`json_group_array`), which is parsed into the same row types.

use serde::de::DeserializeOwned;
use sqlx::{AssertSqlSafe, SqlitePool};

use crate::{StoreError, StoreResult};

/// The names of the result columns of `SELECT a.x, b.y AS z, c FROM …`: what
/// follows the last `.` or ` AS ` of each item of the select list.
fn result_columns(select: &str) -> Vec<&str> {
    let list = select.trim_start().strip_prefix("SELECT ").unwrap_or(select);
    let list = list.split(" FROM ").next().unwrap_or(list);
    list.split(',')
        .map(|item| {
            let item = item.trim();
            let name = item.rsplit_once(" AS ").map_or(item, |(_, alias)| alias);
            name.rsplit_once('.').map_or(name, |(_, column)| column)
        })
        .collect()
}

/// `select` followed by `rest` (its `WHERE …`), as one row holding a JSON array
/// of objects keyed by the result columns. The array is in no particular order:
/// an `ORDER BY` in the aggregate makes SQLite sort the JSON objects through a
/// temporary b-tree, which costs more than sorting the parsed rows.
pub(super) fn folded(select: &str, rest: &str) -> String {
    let fields: Vec<String> = result_columns(select).iter().map(|c| format!("'{c}', {c}")).collect();
    format!("SELECT json_group_array(json_object({})) FROM ({select} {rest})", fields.join(", "))
}

/// The rows of a [`folded`] query with one parameter.
pub(super) async fn fetch<T: DeserializeOwned>(pool: &SqlitePool, sql: &str, param: i64) -> StoreResult<Vec<T>> {
    let json: String = sqlx::query_scalar(AssertSqlSafe(sql)).bind(param).fetch_one(pool).await?;
    parse(&json)
}

/// A folded value (a list of rows, or one row as an object) read back.
pub(super) fn parse<T: DeserializeOwned>(json: &str) -> StoreResult<T> {
    serde_json::from_str(json).map_err(|e| StoreError::Other(anyhow::anyhow!("reading a folded row: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_columns_are_named_as_sqlite_names_them() {
        assert_eq!(
            result_columns("SELECT b.id, b.seq, j.kind, b.seq AS backup_seq, created_at FROM backups b JOIN jobs j"),
            ["id", "seq", "kind", "backup_seq", "created_at"]
        );
    }

    #[test]
    fn the_fold_keys_every_column() {
        assert_eq!(
            folded("SELECT r.id, b.seq AS backup_seq FROM restores r JOIN backups b", "WHERE r.x = ?"),
            "SELECT json_group_array(json_object('id', id, 'backup_seq', backup_seq)) \
             FROM (SELECT r.id, b.seq AS backup_seq FROM restores r JOIN backups b WHERE r.x = ?)"
        );
    }
}
