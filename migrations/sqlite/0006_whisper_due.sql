-- When each user is next due to be checked against the app's active
-- property-match whispers (the scheduler's index): the earliest time at
-- which time alone makes them match one they have not received. A tick
-- costs in proportion to the rows due.
CREATE TABLE whisper_due (
    app_user_id TEXT PRIMARY KEY REFERENCES app_users (id) ON DELETE CASCADE,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    due_at      INTEGER NOT NULL
);
CREATE INDEX whisper_due_at ON whisper_due (due_at);
