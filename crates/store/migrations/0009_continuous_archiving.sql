-- PostgreSQL instances that archive their write-ahead log, and the segments that
-- reached the backup store. A segment is recorded only once its object is
-- complete in the store; PostgreSQL is told it is archived only after that.
ALTER TABLE instances ADD COLUMN continuous_archiving INTEGER NOT NULL DEFAULT 0;

CREATE TABLE wal_segments (
    id              INTEGER PRIMARY KEY,
    instance_id     INTEGER NOT NULL REFERENCES instances(id),
    -- PostgreSQL's file name: a segment, a timeline history or a partial segment.
    name            TEXT    NOT NULL,
    timeline        INTEGER NOT NULL,
    object_key      TEXT    NOT NULL,
    -- The instance key it is encrypted with.
    key_id          INTEGER NOT NULL REFERENCES instance_keys(id),
    -- Of the stored (compressed, encrypted) object.
    size            INTEGER NOT NULL,
    sha256          TEXT    NOT NULL,
    -- Of the file as PostgreSQL handed it over: a repeated push must match it.
    plain_size      INTEGER NOT NULL,
    plain_sha256    TEXT    NOT NULL,
    handed_over_at  TEXT    NOT NULL,
    archived_at     TEXT    NOT NULL,
    UNIQUE (instance_id, name)
);
