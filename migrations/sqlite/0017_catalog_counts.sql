-- The dashboard's catalog counts (how many users have each property, how
-- many did each event), kept beside the catalog and recounted in the
-- background (storage::users::recount_catalog) at most every 10 minutes
-- per app, so that opening the catalog reads a few hundred rows instead of
-- scanning every user once per property. NULL: not counted yet.
ALTER TABLE property_catalog ADD COLUMN users INTEGER;
ALTER TABLE event_catalog ADD COLUMN users INTEGER;
CREATE TABLE catalog_counts (
    app_id     TEXT PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    counted_at INTEGER NOT NULL
);
-- Distinct users per event name, read from the index alone.
CREATE INDEX events_app_name_user ON events (app_id, name, app_user_id);
DROP INDEX events_app_name;
