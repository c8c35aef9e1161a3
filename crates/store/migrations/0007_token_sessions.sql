-- Sessions never outlive the bearer token they were made from, and a token's
-- sessions can be found to bound them and to end them when it is revoked.

-- The local API token that made the session; revoking the token ends it.
ALTER TABLE sessions ADD COLUMN token_id INTEGER REFERENCES tokens(id) ON DELETE CASCADE;
-- sha256 of the bearer token (local or the identity provider's) that made the
-- session, to bound how many live sessions one token holds.
ALTER TABLE sessions ADD COLUMN bearer_hash TEXT;
-- When the credential behind the session expires; the session ends then.
ALTER TABLE sessions ADD COLUMN expires_at TEXT;
CREATE INDEX sessions_token ON sessions(token_id);
CREATE INDEX sessions_bearer ON sessions(bearer_hash, id);
CREATE INDEX sessions_created ON sessions(created_at);

CREATE INDEX tokens_user ON tokens(user_id);
