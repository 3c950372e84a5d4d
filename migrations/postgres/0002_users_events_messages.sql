-- End users of an app, their custom properties, events and messages, and
-- the per-app catalogs of property and event names.

CREATE TABLE app_users (
    id              TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    user_id         TEXT,
    given_name      TEXT,
    surname         TEXT,
    email           TEXT,
    signed_up_at    BIGINT NOT NULL,
    last_seen_at    BIGINT,
    app_version     TEXT,
    -- appVersion as text whose order is version order (see domain::properties::Version::sort_key).
    app_version_key TEXT COLLATE "C",
    platform        TEXT,
    properties      JSONB NOT NULL DEFAULT '{}',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX app_users_user_id ON app_users (app_id, user_id);
CREATE INDEX app_users_signed_up ON app_users (app_id, signed_up_at, id);
CREATE INDEX app_users_last_seen ON app_users (app_id, last_seen_at, id);

CREATE TABLE property_catalog (
    app_id     TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    ty         TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);

CREATE TABLE events (
    id          BIGSERIAL PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    app_user_id TEXT NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX events_user ON events (app_user_id, created_at);
CREATE INDEX events_app_name ON events (app_id, name);

CREATE TABLE event_catalog (
    app_id     TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);

CREATE TABLE messages (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    app_user_id TEXT NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('appUser', 'appMaker')),
    name        TEXT,
    text        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX messages_user ON messages (app_user_id, created_at);
