-- Who did each event (`event_users`, step 0019) is no longer kept by a
-- statement trigger on every insert into events: that was one more index
-- entry at a random place per event, inside the writer's transaction. The
-- events written since the last fold are folded in later, in key order, by
-- `storage::users::fold_event_users` (the housekeeping, and every catalog
-- recount first); `through` is the last event id folded, per app.
DROP TRIGGER events_event_users ON events;
DROP FUNCTION events_event_users();
CREATE TABLE event_users_folded (
    app_id  TEXT PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    through BIGINT NOT NULL
);
-- The trigger kept every event so far.
INSERT INTO event_users_folded (app_id, through)
SELECT id, COALESCE((SELECT MAX(id) FROM events), 0) FROM apps;
