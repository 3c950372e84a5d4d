-- Whispers (automated messages), their deliveries, and the per-app limit
-- on active whispers (NULL: unlimited).

ALTER TABLE apps ADD COLUMN max_active_whispers INTEGER;

CREATE TABLE whispers (
    id            TEXT PRIMARY KEY,
    app_id        TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('draft', 'active', 'paused')),
    -- Audience, trigger, text, sender and buttons (domain::whisper::WhisperDraft).
    definition    TEXT NOT NULL,
    -- The trigger again, as columns, for finding the whispers an event fires.
    trigger_kind  TEXT NOT NULL,
    trigger_event TEXT,
    -- Bumped when an active whisper is edited: deliveries keep the revision
    -- (and text) they were made with.
    revision      INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX whispers_app ON whispers (app_id, status, trigger_kind, trigger_event);

-- One row per (whisper, user): a user receives a given whisper at most once.
CREATE TABLE deliveries (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    whisper_id  TEXT NOT NULL REFERENCES whispers (id) ON DELETE CASCADE,
    app_user_id TEXT NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    revision    INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'seen', 'clicked', 'replied', 'cancelled', 'failed')),
    -- The message exactly as delivered; never rewritten.
    rendered    TEXT NOT NULL,
    sent_at     INTEGER,
    seen_at     INTEGER,
    clicked_at  INTEGER,
    replied_at  INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX deliveries_once ON deliveries (whisper_id, app_user_id);
CREATE INDEX deliveries_user ON deliveries (app_user_id);
