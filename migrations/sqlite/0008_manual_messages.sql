-- Manual messages (sent by a teammate to one user, a selection or a
-- segment), their deliveries (one row per message and user), and each
-- app's SMTP settings for email.

CREATE TABLE manual_messages (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    -- The sending teammate; the name is kept for display and search even
    -- after the teammate is removed.
    sender_id   TEXT,
    sender_name TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('chat', 'announcement', 'email')),
    body        TEXT NOT NULL,
    -- domain::manual::Audience as JSON (users, or conditions).
    audience    TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('draft', 'scheduled', 'sending', 'sent', 'stopped')),
    -- When a scheduled message is due (and when a sent one started).
    send_at     INTEGER,
    -- How many recipients were fixed when the send started.
    recipients  INTEGER,
    -- Recipients are fixed in chunks of users in id order, each chunk one
    -- transaction: the last user id covered (a crash resumes after it).
    fix_cursor  TEXT,
    created_by  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    stopped_at  INTEGER
);
CREATE INDEX manual_messages_app ON manual_messages (app_id, state, updated_at);
CREATE INDEX manual_messages_due ON manual_messages (state, send_at);
-- Users of an app in id order (recipients are fixed in chunks of them).
CREATE INDEX app_users_app_id ON app_users (app_id, id);

-- One row per (message, user): fixed when the send starts.
CREATE TABLE message_deliveries (
    id              TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    message_id      TEXT NOT NULL REFERENCES manual_messages (id) ON DELETE CASCADE,
    app_user_id     TEXT NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    channel         TEXT NOT NULL CHECK (channel IN ('in_app', 'email')),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'seen', 'clicked', 'replied', 'cancelled', 'failed')),
    -- The card (in-app) as delivered; NULL until sent.
    rendered        TEXT,
    -- Email: attempts made, and when the next may start (an attempt in
    -- progress holds the row until then).
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    error           TEXT,
    sent_at         INTEGER,
    seen_at         INTEGER,
    clicked_at      INTEGER,
    replied_at      INTEGER,
    failed_at       INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX message_deliveries_once ON message_deliveries (message_id, app_user_id);
CREATE INDEX message_deliveries_user ON message_deliveries (app_user_id, state);
CREATE INDEX message_deliveries_email ON message_deliveries (next_attempt_at) WHERE channel = 'email' AND state = 'pending';

-- SMTP settings (JSON, domain::email::SmtpSettings; NULL: email off) and
-- the sealed SMTP password.
ALTER TABLE apps ADD COLUMN smtp_settings TEXT;
ALTER TABLE apps ADD COLUMN smtp_password_enc BLOB;
