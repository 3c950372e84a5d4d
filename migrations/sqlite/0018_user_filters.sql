-- The audience filter's narrow table (issue 14, ARCHITECTURE.md "Audience
-- filters"): one row per app user with only what conditions test (the
-- built-in dates, version key and platform) and up to 16 of the app's
-- catalog properties in slots p0..p15, keyed by a small app number instead
-- of the app's 36-character id, so that counting an audience scans narrow
-- rows instead of every user's whole row and JSON. A catalog name gets the
-- lowest free slot when it is registered; names past the 16th have none
-- and are filtered from app_users as before. Triggers keep the table in
-- step with app_users inside the writing transaction: nothing in Rust
-- writes it, so no write path can miss it.
-- A slot holds exactly what json_extract(properties, '$."name"') gives, so
-- a condition on it compares the same values as one on the JSON.

-- Each app's number: 1, 2, ... in creation order (a deleted app's rows go
-- with it, below, so a number taken again starts empty).
ALTER TABLE apps ADD COLUMN no INTEGER;
UPDATE apps SET no = (SELECT COUNT(*) FROM apps a WHERE a.rowid <= apps.rowid);
CREATE UNIQUE INDEX apps_no ON apps (no);
CREATE TRIGGER apps_no AFTER INSERT ON apps WHEN new.no IS NULL BEGIN
    UPDATE apps SET no = (SELECT COALESCE(MAX(no), 0) + 1 FROM apps) WHERE id = new.id;
END;

ALTER TABLE property_catalog ADD COLUMN slot INTEGER;
UPDATE property_catalog SET slot = (
    SELECT COUNT(*) FROM property_catalog c
    WHERE c.app_id = property_catalog.app_id AND c.name < property_catalog.name)
WHERE (SELECT COUNT(*) FROM property_catalog c
       WHERE c.app_id = property_catalog.app_id AND c.name < property_catalog.name) < 16;
CREATE UNIQUE INDEX property_catalog_slot ON property_catalog (app_id, slot) WHERE slot IS NOT NULL;

CREATE TABLE user_filters (
    app_no          INTEGER NOT NULL,
    id              TEXT NOT NULL,
    signed_up_at    INTEGER NOT NULL,
    last_seen_at    INTEGER,
    app_version_key TEXT,
    platform        TEXT,
    p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15,
    PRIMARY KEY (app_no, id)
) WITHOUT ROWID;

-- The one place a user's filter row is computed: inserting a user's
-- filtered columns into this view writes that user's row, from them and
-- the catalog's slots (in place when the row exists).
CREATE VIEW user_filters_refresh AS
    SELECT app_id, id, signed_up_at, last_seen_at, app_version_key, platform, properties FROM app_users WHERE 0;
CREATE TRIGGER user_filters_refresh INSTEAD OF INSERT ON user_filters_refresh BEGIN
    INSERT INTO user_filters (app_no, id, signed_up_at, last_seen_at, app_version_key, platform, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15)
    SELECT (SELECT no FROM apps WHERE id = new.app_id), new.id, new.signed_up_at, new.last_seen_at,
           new.app_version_key, new.platform,
           max(CASE c.slot WHEN 0 THEN json_extract(new.properties, '$."' || c.name || '"') END),
           max(CASE c.slot WHEN 1 THEN json_extract(new.properties, '$."' || c.name || '"') END),
           max(CASE c.slot WHEN 2 THEN json_extract(new.properties, '$."' || c.name || '"') END),
           max(CASE c.slot WHEN 3 THEN json_extract(new.properties, '$."' || c.name || '"') END),
           max(CASE c.slot WHEN 4 THEN json_extract(new.properties, '$."' || c.name || '"') END),
           max(CASE c.slot WHEN 5 THEN json_extract(new.properties, '$."' || c.name || '"') END),
           max(CASE c.slot WHEN 6 THEN json_extract(new.properties, '$."' || c.name || '"') END),
           max(CASE c.slot WHEN 7 THEN json_extract(new.properties, '$."' || c.name || '"') END),
           max(CASE c.slot WHEN 8 THEN json_extract(new.properties, '$."' || c.name || '"') END),
           max(CASE c.slot WHEN 9 THEN json_extract(new.properties, '$."' || c.name || '"') END),
           max(CASE c.slot WHEN 10 THEN json_extract(new.properties, '$."' || c.name || '"') END),
           max(CASE c.slot WHEN 11 THEN json_extract(new.properties, '$."' || c.name || '"') END),
           max(CASE c.slot WHEN 12 THEN json_extract(new.properties, '$."' || c.name || '"') END),
           max(CASE c.slot WHEN 13 THEN json_extract(new.properties, '$."' || c.name || '"') END),
           max(CASE c.slot WHEN 14 THEN json_extract(new.properties, '$."' || c.name || '"') END),
           max(CASE c.slot WHEN 15 THEN json_extract(new.properties, '$."' || c.name || '"') END)
    FROM property_catalog c WHERE c.app_id = new.app_id AND c.slot IS NOT NULL
    ON CONFLICT (app_no, id) DO UPDATE SET
        signed_up_at = excluded.signed_up_at,
        last_seen_at = excluded.last_seen_at,
        app_version_key = excluded.app_version_key,
        platform = excluded.platform,
        p0 = excluded.p0,
        p1 = excluded.p1,
        p2 = excluded.p2,
        p3 = excluded.p3,
        p4 = excluded.p4,
        p5 = excluded.p5,
        p6 = excluded.p6,
        p7 = excluded.p7,
        p8 = excluded.p8,
        p9 = excluded.p9,
        p10 = excluded.p10,
        p11 = excluded.p11,
        p12 = excluded.p12,
        p13 = excluded.p13,
        p14 = excluded.p14,
        p15 = excluded.p15;
END;

INSERT INTO user_filters_refresh
    SELECT app_id, id, signed_up_at, last_seen_at, app_version_key, platform, properties FROM app_users;

CREATE TRIGGER app_users_filter_insert AFTER INSERT ON app_users BEGIN
    INSERT INTO user_filters_refresh
    VALUES (new.app_id, new.id, new.signed_up_at, new.last_seen_at, new.app_version_key, new.platform, new.properties);
END;

CREATE TRIGGER app_users_filter_update AFTER UPDATE ON app_users
WHEN old.app_id IS NOT new.app_id OR old.id IS NOT new.id OR old.signed_up_at IS NOT new.signed_up_at OR old.last_seen_at IS NOT new.last_seen_at OR old.app_version_key IS NOT new.app_version_key OR old.platform IS NOT new.platform OR old.properties IS NOT new.properties
BEGIN
    DELETE FROM user_filters
    WHERE app_no = (SELECT no FROM apps WHERE id = old.app_id) AND id = old.id
      AND (old.app_id IS NOT new.app_id OR old.id IS NOT new.id);
    INSERT INTO user_filters_refresh
    VALUES (new.app_id, new.id, new.signed_up_at, new.last_seen_at, new.app_version_key, new.platform, new.properties);
END;

CREATE TRIGGER app_users_filter_delete AFTER DELETE ON app_users BEGIN
    DELETE FROM user_filters WHERE app_no = (SELECT no FROM apps WHERE id = old.app_id) AND id = old.id;
END;

-- An app's deletion removes its users' rows (its users are deleted by the
-- cascade after the app's row, whose number they can no longer look up).
CREATE TRIGGER apps_filter_delete AFTER DELETE ON apps BEGIN
    DELETE FROM user_filters WHERE app_no = old.no;
END;

-- A new catalog name takes the lowest free slot, and the users who already
-- hold a value for it (stored by an anonymous widget before the name was
-- registered) get it in their row.
CREATE TRIGGER property_catalog_slot AFTER INSERT ON property_catalog WHEN new.slot IS NULL BEGIN
    UPDATE property_catalog SET slot = (
        SELECT min(s.value) FROM json_each('[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]') s
        WHERE s.value NOT IN (SELECT slot FROM property_catalog WHERE app_id = new.app_id AND slot IS NOT NULL))
    WHERE app_id = new.app_id AND name = new.name;
    INSERT INTO user_filters_refresh
    SELECT app_id, id, signed_up_at, last_seen_at, app_version_key, platform, properties FROM app_users
    WHERE app_id = new.app_id AND json_extract(properties, '$."' || new.name || '"') IS NOT NULL;
END;
