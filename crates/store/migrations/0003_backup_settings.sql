-- Each instance's backup settings, as its managers set them (API V1 backups-config).
-- No row: the operator's defaults apply.
CREATE TABLE backup_settings (
    instance_id               INTEGER PRIMARY KEY REFERENCES instances(id),
    min_backup_count          INTEGER NOT NULL CHECK (min_backup_count >= 0),
    retention_time_days       INTEGER NOT NULL CHECK (retention_time_days >= 0),
    exclude_from_auto_backup  INTEGER NOT NULL DEFAULT 0,
    updated_at                TEXT    NOT NULL
);
