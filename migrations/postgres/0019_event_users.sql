-- Who has done each event: one row per (user, event name), for the
-- catalog's count of users per event (storage::users::recount_catalog).
-- It replaces the index events (app_id, name, app_user_id), which took one
-- more entry per event, each at a place of its own in the index; this
-- table grows only the first time a user does an event, and a repeat is
-- one lookup (BENCHMARKS.md, "who did each event").
--
-- Kept by a statement trigger, so that every insert into events keeps it,
-- whoever writes, once per statement (a batch of events is one statement).
-- The pairs go in key order, so that two batches naming the same new pairs
-- wait for each other instead of deadlocking. A user's rows go with the
-- user (and with the app's users).
CREATE TABLE event_users (
    app_user_id TEXT NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    PRIMARY KEY (app_user_id, name)
);
INSERT INTO event_users (app_user_id, name) SELECT DISTINCT app_user_id, name FROM events;
CREATE FUNCTION events_event_users() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_users (app_user_id, name)
    SELECT DISTINCT app_user_id, name FROM new_events ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER events_event_users AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION events_event_users();
DROP INDEX events_app_name_user;
