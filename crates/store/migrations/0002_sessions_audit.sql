-- Sign-in sessions, pending single sign-on flows, the audit log, and read-only grants.

-- 'manage' may change the instance (backups, restores, settings); 'read' may look.
ALTER TABLE user_grants ADD COLUMN role TEXT NOT NULL DEFAULT 'manage' CHECK (role IN ('read', 'manage'));

CREATE TABLE sessions (
    id             INTEGER PRIMARY KEY,
    -- sha256 of the cookie value; the value itself is never stored.
    token_hash     TEXT    NOT NULL UNIQUE,
    -- Stable identity: 'local:<name>', or '<provider>:<sub claim>'.
    subject        TEXT    NOT NULL,
    user_name      TEXT    NOT NULL,
    csrf_token     TEXT    NOT NULL,
    -- JSON the identity provider's side needs (groups, token expiry); never secrets.
    claims         TEXT    NOT NULL DEFAULT '{}',
    -- The provider's access and refresh tokens, sealed under the master key.
    sealed_tokens  TEXT,
    created_at     TEXT    NOT NULL,
    last_seen_at   TEXT    NOT NULL
);
CREATE INDEX sessions_last_seen ON sessions(last_seen_at);

CREATE TABLE login_flows (
    -- sha256 of the OAuth2 `state`: a flow is consumed once.
    state_hash     TEXT    PRIMARY KEY,
    -- sha256 of the cookie that ties the flow to the browser that began it.
    browser_hash   TEXT    NOT NULL,
    sealed_verifier TEXT   NOT NULL,
    nonce          TEXT    NOT NULL,
    return_to      TEXT    NOT NULL,
    created_at     TEXT    NOT NULL
);

CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY,
    at             TEXT    NOT NULL,
    actor          TEXT    NOT NULL,
    action         TEXT    NOT NULL,
    -- The instance's guid rather than a reference: the log outlives instances.
    instance_guid  TEXT,
    outcome        TEXT    NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    detail         TEXT,
    remote_addr    TEXT
);
CREATE INDEX audit_log_instance ON audit_log(instance_guid, id);
