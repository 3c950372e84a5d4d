-- The per-user timeline and recall.
--
-- Each source of the timeline is read newest first per user, by keyset
-- (time, id): indexes on (user, time, id) for the sources that had none.
CREATE INDEX deliveries_user_time ON deliveries (app_user_id, created_at, id);
CREATE INDEX message_deliveries_user_time ON message_deliveries (app_user_id, created_at, id);
CREATE INDEX conversations_user_started ON conversations (app_user_id, created_at, id);

-- A conversation's state and assignee changes: closed or reopened (by a
-- teammate, or reopened by the user's message), assigned or unassigned.
-- Found through the conversation (whose user moves when an anonymous
-- visitor logs in), so no user column here.
CREATE TABLE conversation_changes (
    id              BIGSERIAL PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    change          TEXT NOT NULL CHECK (change IN ('closed', 'reopened', 'assigned', 'unassigned')),
    -- The teammate assigned (with 'assigned'); NULL otherwise.
    assignee_id     TEXT REFERENCES teammates (id) ON DELETE SET NULL,
    -- 'team' or 'user' (a user's message reopens a closed conversation).
    by_whom         TEXT NOT NULL CHECK (by_whom IN ('team', 'user')),
    at              BIGINT NOT NULL
);
CREATE INDEX conversation_changes_conversation ON conversation_changes (conversation_id, at, id);

-- Recall: a card cancelled before the user saw it keeps when, and by whom
-- (the teammate's name, copied).
ALTER TABLE deliveries ADD COLUMN recalled_at BIGINT;
ALTER TABLE deliveries ADD COLUMN recalled_by TEXT;
ALTER TABLE message_deliveries ADD COLUMN recalled_at BIGINT;
ALTER TABLE message_deliveries ADD COLUMN recalled_by TEXT;
