-- The widget: identity verification per app (on by default), anonymous
-- visitors known by the widget's device id, and properties on events
-- (`Murmur.track(name, props)`).

ALTER TABLE apps ADD COLUMN identity_enforced BOOLEAN NOT NULL DEFAULT TRUE;

ALTER TABLE app_users ADD COLUMN device_id TEXT;
CREATE UNIQUE INDEX app_users_device ON app_users (app_id, device_id);

ALTER TABLE events ADD COLUMN properties JSONB;
