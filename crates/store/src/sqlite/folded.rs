//! Lists read as one row. sqlx's SQLite driver steps a statement on a worker
//! thread of its own and hands every row to the waiting task through a channel,
//! one thread wake-up per row; for a list of a hundred backups those hand-offs
//! cost more than the query itself (the listing API served 3,000 requests a
//! second with them, on 2 cores). Here SQLite folds the rows into one JSON array
//! (`json_group_array`), which is parsed into the same row types.
//!
//! Each row is a JSON array of its columns, not an object keyed by their names:
//! neither SQLite nor serde then writes or matches a name per column, which took
//! a tenth of the listing's time. serde reads a struct from an array field by
//! field, so the columns must come in the order of the row type's fields;
//! [`folded`] checks that when it builds the query.

use serde::de::{self, DeserializeOwned, Visitor};
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

/// The fields of the struct `T`, in order, as serde's derive names them.
fn fields<'de, T: de::Deserialize<'de>>() -> &'static [&'static str] {
    let mut names = FieldNames(None);
    let _ = T::deserialize(&mut names);
    names.0.expect("a folded row type is a struct with named fields")
}

/// `json_array(a, b, …)` of the fields of `T`: one row, read back as a `T`.
pub(super) fn row<'de, T: de::Deserialize<'de>>() -> String {
    format!("json_array({})", fields::<T>().join(", "))
}

/// `select` followed by `rest` (its `WHERE …`), as one row holding a JSON array of
/// rows of `T`. The array is in no particular order: an `ORDER BY` in the
/// aggregate makes SQLite sort the JSON through a temporary b-tree, which costs
/// more than sorting the parsed rows.
///
/// Panics if the select's result columns are not `T`'s fields in order: the
/// queries are constants, so any test that reads through one finds out.
pub(super) fn folded<'de, T: de::Deserialize<'de>>(select: &str, rest: &str) -> String {
    check_columns::<T>(select);
    format!("SELECT json_group_array({}) FROM ({select} {rest})", row::<T>())
}

/// Panics unless the result columns of `select` are the fields of `T`, in order:
/// for a row type read by position.
pub(super) fn check_columns<'de, T: de::Deserialize<'de>>(select: &str) {
    let columns = result_columns(select);
    assert_eq!(columns, fields::<T>(), "the columns of a select must be its row type's fields, in order");
}

/// The rows of a [`folded`] query with one parameter.
pub(super) async fn fetch<T: DeserializeOwned>(pool: &SqlitePool, sql: &str, param: i64) -> StoreResult<Vec<T>> {
    let json: String = sqlx::query_scalar(AssertSqlSafe(sql)).bind(param).fetch_one(pool).await?;
    parse(&json)
}

/// A folded value (a list of rows, or one [`row`]) read back.
pub(super) fn parse<T: DeserializeOwned>(json: &str) -> StoreResult<T> {
    serde_json::from_str(json).map_err(|e| StoreError::Other(anyhow::anyhow!("reading a folded row: {e}")))
}

/// A deserializer that only notes the field names a struct asks for.
struct FieldNames(Option<&'static [&'static str]>);

impl<'de> de::Deserializer<'de> for &mut FieldNames {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = Some(fields);
        Err(de::Error::custom("only the field names were wanted"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Pair {
        id: i64,
        backup_seq: Option<i64>,
    }

    #[test]
    fn result_columns_are_named_as_sqlite_names_them() {
        assert_eq!(
            result_columns("SELECT b.id, b.seq, j.kind, b.seq AS backup_seq, created_at FROM backups b JOIN jobs j"),
            ["id", "seq", "kind", "backup_seq", "created_at"]
        );
    }

    #[test]
    fn the_fold_lists_every_column_in_the_order_of_the_fields() {
        assert_eq!(fields::<Pair>(), ["id", "backup_seq"]);
        assert_eq!(
            folded::<Pair>("SELECT r.id, b.seq AS backup_seq FROM restores r JOIN backups b", "WHERE r.x = ?"),
            "SELECT json_group_array(json_array(id, backup_seq)) \
             FROM (SELECT r.id, b.seq AS backup_seq FROM restores r JOIN backups b WHERE r.x = ?)"
        );
        assert_eq!(
            parse::<Vec<Pair>>("[[1,null],[2,7]]").unwrap(),
            [Pair { id: 1, backup_seq: None }, Pair { id: 2, backup_seq: Some(7) }]
        );
    }

    #[test]
    #[should_panic(expected = "in order")]
    fn columns_out_of_the_fields_order_are_refused() {
        folded::<Pair>("SELECT b.seq AS backup_seq, r.id FROM restores r JOIN backups b", "");
    }
}
