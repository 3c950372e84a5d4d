-- Web Push: per-app VAPID keys (the private key sealed like the other
-- secrets) and an on/off switch; per manual message "also as push";
-- the browsers' subscriptions (made in the customer's page, sent over the
-- widget socket); and the push outbox (one job per delivery that may go
-- out as a push if it is still unseen when due). A whisper's choice lives
-- in its definition (JSON).
ALTER TABLE apps ADD COLUMN push_enabled INTEGER NOT NULL DEFAULT 0 CHECK (push_enabled IN (0, 1));
ALTER TABLE apps ADD COLUMN vapid_public TEXT;
ALTER TABLE apps ADD COLUMN vapid_private_enc BLOB;
ALTER TABLE manual_messages ADD COLUMN push INTEGER NOT NULL DEFAULT 0 CHECK (push IN (0, 1));
-- How a sent delivery reached the user: 'widget', 'push' or 'email'
-- (NULL for rows sent before this was recorded).
ALTER TABLE deliveries ADD COLUMN sent_via TEXT;
ALTER TABLE message_deliveries ADD COLUMN sent_via TEXT;

CREATE TABLE push_subscriptions (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    app_user_id TEXT NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    endpoint    TEXT NOT NULL,
    p256dh      TEXT NOT NULL,
    auth        TEXT NOT NULL,
    -- The customer's page the subscription was made on: a click on a
    -- notification opens it with the messenger open.
    page_url    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX push_subscriptions_endpoint ON push_subscriptions (app_id, endpoint);
CREATE INDEX push_subscriptions_user ON push_subscriptions (app_user_id);

CREATE TABLE push_jobs (
    -- A whisper delivery's or a manual message delivery's id.
    delivery_id TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('whisper', 'message')),
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    app_user_id TEXT NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    attempts    INTEGER NOT NULL DEFAULT 0,
    -- When the job may run: after a grace period (a widget open anywhere
    -- takes the card first), then after each retry's backoff; a claimed
    -- job is held until then.
    due_at      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX push_jobs_due ON push_jobs (due_at);
