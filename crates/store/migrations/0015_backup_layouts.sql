-- Where the pieces of a backup lie: the compressed frames of its object and the
-- engine's layout of its dump (a PostgreSQL archive's tables), for restores that
-- load several pieces at once. Backups without one restore as one stream.
CREATE TABLE backup_layouts (
    backup_id  INTEGER PRIMARY KEY REFERENCES backups(id),
    layout     TEXT    NOT NULL
);
