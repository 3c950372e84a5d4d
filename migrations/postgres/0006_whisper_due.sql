-- When each user is next due to be checked against each active
-- property-match whisper (the scheduler's index): a row is due when
-- `due_at` has passed. A tick costs in proportion to the rows due.
CREATE TABLE whisper_due (
    whisper_id  TEXT NOT NULL REFERENCES whispers (id) ON DELETE CASCADE,
    app_user_id TEXT NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    due_at      BIGINT NOT NULL,
    PRIMARY KEY (whisper_id, app_user_id)
);
CREATE INDEX whisper_due_at ON whisper_due (due_at);
CREATE INDEX whisper_due_user ON whisper_due (app_user_id);
