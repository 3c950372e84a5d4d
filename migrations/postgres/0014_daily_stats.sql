-- The overview's figures, pre-aggregated per app and UTC day (day = Unix
-- milliseconds / 86,400,000), so the page reads at most 90 days × a few
-- metrics instead of counting deliveries per request. Written by the
-- rollup (storage::stats): each event counted on the day it happened,
-- the user counts as a snapshot of the day at rollup time. Values are
-- absolute, so rolling up again (another instance, a retry) rewrites the
-- same numbers.
CREATE TABLE daily_stats (
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    day    BIGINT NOT NULL,
    metric TEXT NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (app_id, day, metric)
);

-- When each app was last rolled up (the next rollup recounts from that
-- day on; the page shows it as "updated").
CREATE TABLE daily_stats_rollups (
    app_id    TEXT PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    rolled_at BIGINT NOT NULL
);

-- The rollup's range counts: one index per event time, holding only the
-- rows that have that time.
CREATE INDEX deliveries_sent_at ON deliveries (app_id, sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX deliveries_seen_at ON deliveries (app_id, seen_at) WHERE seen_at IS NOT NULL;
CREATE INDEX deliveries_clicked_at ON deliveries (app_id, clicked_at) WHERE clicked_at IS NOT NULL;
CREATE INDEX deliveries_replied_at ON deliveries (app_id, replied_at) WHERE replied_at IS NOT NULL;
CREATE INDEX message_deliveries_sent_at ON message_deliveries (app_id, sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX message_deliveries_seen_at ON message_deliveries (app_id, seen_at) WHERE seen_at IS NOT NULL;
CREATE INDEX message_deliveries_clicked_at ON message_deliveries (app_id, clicked_at) WHERE clicked_at IS NOT NULL;
CREATE INDEX message_deliveries_replied_at ON message_deliveries (app_id, replied_at) WHERE replied_at IS NOT NULL;
CREATE INDEX conversations_created ON conversations (app_id, created_at);
-- The team's messages by time (first responses).
CREATE INDEX messages_team ON messages (app_id, created_at) WHERE role = 'appMaker';
