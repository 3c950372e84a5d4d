-- Teammates, sessions, sign-in throttling, apps, memberships, API keys.
-- Times are Unix milliseconds (BIGINT) on both backends.

CREATE TABLE teammates (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_owner      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX teammates_email_key ON teammates (email);
-- At most one owner: two concurrent setups cannot both succeed.
CREATE UNIQUE INDEX teammates_one_owner ON teammates (is_owner) WHERE is_owner;

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    teammate_id TEXT NOT NULL REFERENCES teammates (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_teammate ON sessions (teammate_id);

CREATE TABLE login_throttle (
    key             TEXT PRIMARY KEY,
    failures        BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL
);

CREATE TABLE apps (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    identity_secret_enc BYTEA NOT NULL,
    created_at          BIGINT NOT NULL
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
    secret_enc BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_app ON api_keys (app_id);
