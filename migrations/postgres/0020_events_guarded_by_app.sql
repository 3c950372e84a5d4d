-- Events and who did each event no longer check their user with a foreign
-- key: on PostgreSQL the check is a query per row (~8 µs per event of a
-- user not in cache, BENCHMARKS.md, "PostgreSQL's cold ingest row"). What
-- the key guaranteed is kept another way:
-- - a deleted user's rows go with the user: a statement trigger on
--   app_users deletes them (one statement for all the users deleted);
-- - no event is written for a user being deleted: writers of events hold a
--   shared advisory lock on the app until they commit, and whoever deletes
--   or merges an app's users holds it exclusively (storage::users,
--   `users_guard`), so a deletion waits for the batches in flight and
--   their events are then seen and deleted by the trigger.
ALTER TABLE events DROP CONSTRAINT events_app_user_id_fkey;
ALTER TABLE event_users DROP CONSTRAINT event_users_app_user_id_fkey;
CREATE FUNCTION app_users_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM events WHERE app_user_id IN (SELECT id FROM gone);
    DELETE FROM event_users WHERE app_user_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
CREATE TRIGGER app_users_gone AFTER DELETE ON app_users
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION app_users_gone();
