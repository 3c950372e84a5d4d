-- The audience filter's narrow table (issue 14, ARCHITECTURE.md "Audience
-- filters"): one row per app user with the columns conditions test (the
-- built-in dates, version key and platform) and up to 16 of the app's
-- catalog properties in slots p0..p15, so that counting an audience scans
-- narrow rows instead of every user's whole row and JSON. A catalog name
-- gets the lowest free slot when it is registered; names past the 16th have
-- none and are filtered from app_users as before. Triggers keep the table in
-- step with app_users inside the writing transaction: nothing in Rust
-- writes it, so no write path can miss it.
-- A slot holds exactly what properties ->> 'name' gives, as text, so a
-- condition on it (cast as the condition's type) compares the same values
-- as one on the JSON.
ALTER TABLE property_catalog ADD COLUMN slot INTEGER;
UPDATE property_catalog p SET slot = r.n
FROM (SELECT app_id, name, row_number() OVER (PARTITION BY app_id ORDER BY name) - 1 AS n FROM property_catalog) r
WHERE r.app_id = p.app_id AND r.name = p.name AND r.n < 16;
CREATE UNIQUE INDEX property_catalog_slot ON property_catalog (app_id, slot) WHERE slot IS NOT NULL;

CREATE TABLE user_filters (
    app_id          TEXT NOT NULL,
    id              TEXT NOT NULL,
    signed_up_at    BIGINT NOT NULL,
    last_seen_at    BIGINT,
    app_version_key TEXT COLLATE "C",
    platform        TEXT,
    p0 TEXT,
    p1 TEXT,
    p2 TEXT,
    p3 TEXT,
    p4 TEXT,
    p5 TEXT,
    p6 TEXT,
    p7 TEXT,
    p8 TEXT,
    p9 TEXT,
    p10 TEXT,
    p11 TEXT,
    p12 TEXT,
    p13 TEXT,
    p14 TEXT,
    p15 TEXT,
    PRIMARY KEY (app_id, id)
);

INSERT INTO user_filters (app_id, id, signed_up_at, last_seen_at, app_version_key, platform, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15)
    SELECT u.app_id, u.id, u.signed_up_at, u.last_seen_at, u.app_version_key, u.platform,
           max(CASE c.slot WHEN 0 THEN u.properties ->> c.name END),
           max(CASE c.slot WHEN 1 THEN u.properties ->> c.name END),
           max(CASE c.slot WHEN 2 THEN u.properties ->> c.name END),
           max(CASE c.slot WHEN 3 THEN u.properties ->> c.name END),
           max(CASE c.slot WHEN 4 THEN u.properties ->> c.name END),
           max(CASE c.slot WHEN 5 THEN u.properties ->> c.name END),
           max(CASE c.slot WHEN 6 THEN u.properties ->> c.name END),
           max(CASE c.slot WHEN 7 THEN u.properties ->> c.name END),
           max(CASE c.slot WHEN 8 THEN u.properties ->> c.name END),
           max(CASE c.slot WHEN 9 THEN u.properties ->> c.name END),
           max(CASE c.slot WHEN 10 THEN u.properties ->> c.name END),
           max(CASE c.slot WHEN 11 THEN u.properties ->> c.name END),
           max(CASE c.slot WHEN 12 THEN u.properties ->> c.name END),
           max(CASE c.slot WHEN 13 THEN u.properties ->> c.name END),
           max(CASE c.slot WHEN 14 THEN u.properties ->> c.name END),
           max(CASE c.slot WHEN 15 THEN u.properties ->> c.name END)
    FROM app_users u LEFT JOIN property_catalog c ON c.app_id = u.app_id AND c.slot IS NOT NULL
    GROUP BY u.app_id, u.id;

CREATE FUNCTION app_users_filter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM user_filters WHERE app_id = OLD.app_id AND id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO user_filters (app_id, id, signed_up_at, last_seen_at, app_version_key, platform, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15)
        SELECT NEW.app_id, NEW.id, NEW.signed_up_at, NEW.last_seen_at, NEW.app_version_key, NEW.platform,
               max(CASE c.slot WHEN 0 THEN NEW.properties ->> c.name END),
           max(CASE c.slot WHEN 1 THEN NEW.properties ->> c.name END),
           max(CASE c.slot WHEN 2 THEN NEW.properties ->> c.name END),
           max(CASE c.slot WHEN 3 THEN NEW.properties ->> c.name END),
           max(CASE c.slot WHEN 4 THEN NEW.properties ->> c.name END),
           max(CASE c.slot WHEN 5 THEN NEW.properties ->> c.name END),
           max(CASE c.slot WHEN 6 THEN NEW.properties ->> c.name END),
           max(CASE c.slot WHEN 7 THEN NEW.properties ->> c.name END),
           max(CASE c.slot WHEN 8 THEN NEW.properties ->> c.name END),
           max(CASE c.slot WHEN 9 THEN NEW.properties ->> c.name END),
           max(CASE c.slot WHEN 10 THEN NEW.properties ->> c.name END),
           max(CASE c.slot WHEN 11 THEN NEW.properties ->> c.name END),
           max(CASE c.slot WHEN 12 THEN NEW.properties ->> c.name END),
           max(CASE c.slot WHEN 13 THEN NEW.properties ->> c.name END),
           max(CASE c.slot WHEN 14 THEN NEW.properties ->> c.name END),
           max(CASE c.slot WHEN 15 THEN NEW.properties ->> c.name END)
        FROM property_catalog c WHERE c.app_id = NEW.app_id AND c.slot IS NOT NULL;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER app_users_filter AFTER INSERT OR DELETE ON app_users
    FOR EACH ROW EXECUTE FUNCTION app_users_filter();
CREATE TRIGGER app_users_filter_update AFTER UPDATE ON app_users
    FOR EACH ROW WHEN (OLD.app_id IS DISTINCT FROM NEW.app_id OR OLD.id IS DISTINCT FROM NEW.id OR OLD.signed_up_at IS DISTINCT FROM NEW.signed_up_at OR OLD.last_seen_at IS DISTINCT FROM NEW.last_seen_at OR OLD.app_version_key IS DISTINCT FROM NEW.app_version_key OR OLD.platform IS DISTINCT FROM NEW.platform OR OLD.properties IS DISTINCT FROM NEW.properties)
    EXECUTE FUNCTION app_users_filter();

-- A new catalog name takes the lowest free slot (one registration at a time
-- per app: the advisory lock), and the users who already hold a value for it
-- (stored by an anonymous widget before the name was registered) get it in
-- their row.
CREATE FUNCTION property_catalog_slot() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('property_catalog_slot:' || NEW.app_id));
    NEW.slot := (SELECT min(s) FROM generate_series(0, 15) s
                 WHERE s NOT IN (SELECT slot FROM property_catalog WHERE app_id = NEW.app_id AND slot IS NOT NULL));
    RETURN NEW;
END $$;
CREATE TRIGGER property_catalog_slot BEFORE INSERT ON property_catalog
    FOR EACH ROW WHEN (NEW.slot IS NULL) EXECUTE FUNCTION property_catalog_slot();
CREATE FUNCTION property_catalog_backfill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('UPDATE user_filters f SET %I = u.properties ->> $2 FROM app_users u '
                   'WHERE u.app_id = $1 AND u.properties ? $2 AND f.app_id = u.app_id AND f.id = u.id',
                   'p' || NEW.slot)
        USING NEW.app_id, NEW.name;
    RETURN NULL;
END $$;
CREATE TRIGGER property_catalog_backfill AFTER INSERT ON property_catalog
    FOR EACH ROW WHEN (NEW.slot IS NOT NULL) EXECUTE FUNCTION property_catalog_backfill();
