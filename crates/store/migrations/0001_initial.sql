-- svcdash state: instances and their nodes, bindings, keys, backups, restores,
-- the durable job queue, and local users with their grants and tokens.

CREATE TABLE instances (
    id              INTEGER PRIMARY KEY,
    guid            TEXT    NOT NULL UNIQUE,
    name            TEXT    NOT NULL,
    service_id      TEXT    NOT NULL,
    plan_id         TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    state_reason    TEXT,
    tenant_id       TEXT    NOT NULL,
    tenant_name     TEXT,
    subtenant_id    TEXT    NOT NULL,
    subtenant_name  TEXT,
    backup_guid     TEXT    NOT NULL UNIQUE,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    deleted_at      TEXT
);
-- Names are unique among the instances that are not deleted.
CREATE UNIQUE INDEX instances_live_name ON instances(name) WHERE deleted_at IS NULL;

CREATE TABLE nodes (
    id               INTEGER PRIMARY KEY,
    instance_id      INTEGER NOT NULL REFERENCES instances(id),
    node_index       INTEGER NOT NULL,
    port             INTEGER NOT NULL,
    admin_user       TEXT    NOT NULL,
    sealed_password  TEXT    NOT NULL,
    UNIQUE (instance_id, node_index)
);

CREATE TABLE bindings (
    id               INTEGER PRIMARY KEY,
    instance_id      INTEGER NOT NULL REFERENCES instances(id),
    guid             TEXT    NOT NULL,
    username         TEXT    NOT NULL,
    sealed_password  TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    UNIQUE (instance_id, guid)
);

-- Backup encryption keys, sealed under the master key.
CREATE TABLE instance_keys (
    id           INTEGER PRIMARY KEY,
    instance_id  INTEGER NOT NULL REFERENCES instances(id),
    kind         TEXT    NOT NULL,
    sealed_key   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL
);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    instance_id  INTEGER NOT NULL REFERENCES instances(id),
    kind         TEXT    NOT NULL,
    backup_id    INTEGER,
    restore_id   INTEGER,
    node_index   INTEGER,
    status       TEXT    NOT NULL,
    error        TEXT,
    created_at   TEXT    NOT NULL,
    started_at   TEXT,
    updated_at   TEXT    NOT NULL,
    finished_at  TEXT
);
CREATE INDEX jobs_status ON jobs(status, id);
CREATE INDEX jobs_instance ON jobs(instance_id, id);

CREATE TABLE backups (
    id           INTEGER PRIMARY KEY,
    instance_id  INTEGER NOT NULL REFERENCES instances(id),
    seq          INTEGER NOT NULL,
    job_id       INTEGER NOT NULL REFERENCES jobs(id),
    key_id       INTEGER NOT NULL REFERENCES instance_keys(id),
    object_key   TEXT    NOT NULL,
    size         INTEGER,
    sha256       TEXT,
    deleted_at   TEXT,
    UNIQUE (instance_id, seq)
);

CREATE TABLE restores (
    id           INTEGER PRIMARY KEY,
    instance_id  INTEGER NOT NULL REFERENCES instances(id),
    seq          INTEGER NOT NULL,
    backup_id    INTEGER NOT NULL REFERENCES backups(id),
    created_at   TEXT    NOT NULL,
    UNIQUE (instance_id, seq)
);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    password_hash  TEXT,
    created_at     TEXT    NOT NULL
);

CREATE TABLE user_grants (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    tenant_id     TEXT    NOT NULL,
    -- NULL grants the whole tenant.
    subtenant_id  TEXT
);
CREATE UNIQUE INDEX user_grants_unique ON user_grants(user_id, tenant_id, COALESCE(subtenant_id, ''));

CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  TEXT    NOT NULL,
    expires_at  TEXT
);
