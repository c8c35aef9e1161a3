-- Base backups of archiving PostgreSQL instances, one per backup that took one,
-- and restores to a point in time. A base backup is recorded only once its object
-- is complete in the store and the write-ahead log up to its end is archived.
CREATE TABLE base_backups (
    backup_id     INTEGER PRIMARY KEY REFERENCES backups(id),
    instance_id   INTEGER NOT NULL REFERENCES instances(id),
    object_key    TEXT    NOT NULL,
    key_id        INTEGER NOT NULL REFERENCES instance_keys(id),
    size          INTEGER NOT NULL,
    sha256        TEXT    NOT NULL,
    plain_size    INTEGER NOT NULL,
    -- The timeline the server was on, and the first and last segments a restore
    -- from it needs before it is consistent.
    timeline      INTEGER NOT NULL,
    start_wal     TEXT    NOT NULL,
    end_wal       TEXT    NOT NULL,
    started_at    TEXT    NOT NULL,
    -- Targets from this moment on can be reached from it.
    finished_at   TEXT    NOT NULL
);
CREATE INDEX base_backups_by_instance ON base_backups (instance_id, finished_at);

-- Set on restores to a point in time: the target, and once it succeeded, the
-- timeline the instance went on with.
ALTER TABLE restores ADD COLUMN target_time TEXT;
ALTER TABLE restores ADD COLUMN timeline INTEGER;
