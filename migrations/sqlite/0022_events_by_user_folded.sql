-- A user's events are found through `events_by_user`, folded in later with
-- who did each event (step 0021, `storage::users::fold_event_users`), no
-- longer through the index `events (app_user_id, created_at)`: with users
-- spread over the whole index, that was one entry at a random place per
-- event inside the writer's transaction (one page read, changed and
-- written to the WAL per event of a user not in cache). The fold inserts
-- an app's new events in key order, many per page. The events written
-- since an app's mark are a range of ids: readers take a user's events
-- from both (`storage::users::user_events_union`).
CREATE TABLE events_by_user (
    app_user_id TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    event_id    INTEGER NOT NULL,
    PRIMARY KEY (app_user_id, created_at, event_id)
) WITHOUT ROWID;

-- Every app has its mark from its creation on (`Store::insert_app`).
INSERT INTO event_users_folded (app_id, through)
SELECT id, 0 FROM apps WHERE id NOT IN (SELECT app_id FROM event_users_folded);

INSERT INTO events_by_user (app_user_id, created_at, event_id)
SELECT e.app_user_id, e.created_at, e.id FROM events e
JOIN event_users_folded f ON f.app_id = e.app_id WHERE e.id <= f.through;

-- The events table again, without its foreign key to app_users: deleting
-- a user would scan every event for theirs without the index. A deleted
-- user's events go with them by the trigger below; the writer resolves
-- each event's user in the transaction that writes it (one writer: no
-- deletion in between). The id sequence carries over (AUTOINCREMENT: no
-- id is used twice, so no event id falls behind a mark).
CREATE TABLE events_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    app_user_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    properties  TEXT
);
INSERT INTO events_new (id, app_id, app_user_id, name, created_at, properties)
SELECT id, app_id, app_user_id, name, created_at, properties FROM events ORDER BY id;
INSERT INTO sqlite_sequence (name, seq)
SELECT 'events_new', seq FROM sqlite_sequence WHERE name = 'events'
AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events_new');
UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'events'))
WHERE name = 'events_new';
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;

-- A deleted user's events: those folded, found by the index, and those
-- since the app's mark, a range of ids. While the app itself is being
-- deleted its events go with it (their app_id's key) and the app's row is
-- gone already: no range is scanned per user then.
CREATE TRIGGER app_users_events_gone AFTER DELETE ON app_users BEGIN
    DELETE FROM events WHERE id IN (SELECT event_id FROM events_by_user WHERE app_user_id = old.id);
    DELETE FROM events
    WHERE id > COALESCE(
        (SELECT f.through FROM event_users_folded f JOIN apps a ON a.id = f.app_id WHERE f.app_id = old.app_id),
        (SELECT MAX(id) FROM events))
    AND app_user_id = old.id;
    DELETE FROM events_by_user WHERE app_user_id = old.id;
END;
