-- Per app, the property and event names only the customer's backend (REST
-- API) may set or track; the end-user widget is refused them.
CREATE TABLE server_only_names (
    app_id     TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('property', 'event')),
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, kind, name)
);
