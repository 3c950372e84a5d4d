-- Who has done each event: one row per (user, event name), for the
-- catalog's count of users per event (storage::users::recount_catalog).
-- It replaces the index events (app_id, name, app_user_id), which took one
-- more entry per event, each at a place of its own in the index, so that
-- every commit of a busy user's events rewrote a page per (name, user);
-- this table grows only the first time a user does an event, and a repeat
-- is one lookup (BENCHMARKS.md, "who did each event").
--
-- Kept by a trigger, so that every insert into events keeps it, whoever
-- writes; a user's rows go with the user (and with the app's users).
CREATE TABLE event_users (
    app_user_id TEXT NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    PRIMARY KEY (app_user_id, name)
) WITHOUT ROWID;
INSERT INTO event_users (app_user_id, name) SELECT DISTINCT app_user_id, name FROM events;
CREATE TRIGGER events_event_users AFTER INSERT ON events BEGIN
    INSERT OR IGNORE INTO event_users (app_user_id, name) VALUES (new.app_user_id, new.name);
END;
DROP INDEX events_app_name_user;
