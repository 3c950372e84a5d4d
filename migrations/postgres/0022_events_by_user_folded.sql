-- A user's events are found through `events_by_user`, folded in later with
-- who did each event (step 0021, `storage::users::fold_event_users`), no
-- longer through the index `events (app_user_id, created_at)`: with users
-- spread over the whole index, that was one entry at a random place per
-- event inside the writer's transaction (a page read, changed and logged
-- per event of a user not in cache). The fold inserts an app's new events
-- in key order, many per page. The events written since an app's mark are
-- a range of ids: readers take a user's events from both
-- (`storage::users::user_events_union`).
CREATE TABLE events_by_user (
    app_user_id TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    event_id    BIGINT NOT NULL,
    PRIMARY KEY (app_user_id, created_at, event_id)
);

-- Every app has its mark from its creation on (`Store::insert_app`).
INSERT INTO event_users_folded (app_id, through)
SELECT id, 0 FROM apps WHERE id NOT IN (SELECT app_id FROM event_users_folded);

INSERT INTO events_by_user (app_user_id, created_at, event_id)
SELECT e.app_user_id, e.created_at, e.id FROM events e
JOIN event_users_folded f ON f.app_id = e.app_id WHERE e.id <= f.through;

DROP INDEX events_user;

-- A deleted user's events (step 0020's trigger): those folded, found by
-- the index, and those since their app's mark, a range of ids.
CREATE OR REPLACE FUNCTION app_users_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM events e USING events_by_user x
    WHERE x.app_user_id IN (SELECT id FROM gone) AND e.id = x.event_id;
    DELETE FROM events
    WHERE id > (SELECT COALESCE(MIN(f.through), 0) FROM event_users_folded f
                WHERE f.app_id IN (SELECT app_id FROM gone))
    AND app_user_id IN (SELECT id FROM gone);
    DELETE FROM events_by_user WHERE app_user_id IN (SELECT id FROM gone);
    DELETE FROM event_users WHERE app_user_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
