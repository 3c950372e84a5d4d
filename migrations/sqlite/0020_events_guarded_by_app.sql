-- PostgreSQL's step 0020 drops the foreign keys from events and
-- event_users to app_users (a query per row there) and keeps what they
-- guaranteed with a trigger and an advisory lock per app. SQLite keeps its
-- foreign keys: the check is a lookup in the writer's warm page cache, and
-- its one writer never races a deletion. Nothing changes here.
SELECT 1;
