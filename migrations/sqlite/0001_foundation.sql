-- Teammates, sessions, sign-in throttling, apps, memberships, API keys.
-- Times are Unix milliseconds (INTEGER) on both backends.

CREATE TABLE teammates (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_owner      INTEGER NOT NULL DEFAULT 0 CHECK (is_owner IN (0, 1)),
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX teammates_email_key ON teammates (email);
-- At most one owner: two concurrent setups cannot both succeed.
CREATE UNIQUE INDEX teammates_one_owner ON teammates (is_owner) WHERE is_owner = 1;

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    teammate_id TEXT NOT NULL REFERENCES teammates (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_teammate ON sessions (teammate_id);

CREATE TABLE login_throttle (
    key             TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL
);

CREATE TABLE apps (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    identity_secret_enc BLOB NOT NULL,
    created_at          INTEGER NOT NULL
);

CREATE TABLE app_members (
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    teammate_id TEXT NOT NULL REFERENCES teammates (id) ON DELETE CASCADE,
    PRIMARY KEY (app_id, teammate_id)
);
CREATE INDEX app_members_teammate ON app_members (teammate_id);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    secret_enc BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX api_keys_app ON api_keys (app_id);
