-- The audit log: who did what, and when, to an app's secrets and settings,
-- to teammates and to their own sign-ins. One row per action, written in
-- the action's own transaction. No foreign keys: a row outlives the
-- teammate (their name is copied) and whatever it names. `app_id` is NULL
-- for actions on the whole deployment (a password change, signing out
-- everywhere). `detail` never holds a secret.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    app_id     TEXT,
    actor_id   TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '',
    at         INTEGER NOT NULL
);
-- Newest first per app (and, through app_id IS NULL, the deployment's),
-- read by keyset (at, id).
CREATE INDEX audit_log_app ON audit_log (app_id, at, id);
