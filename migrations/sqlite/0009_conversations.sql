-- Conversations: threads between one user and the team. Every message
-- belongs to one; existing messages go into one conversation per user.

CREATE TABLE conversations (
    id               TEXT PRIMARY KEY,
    app_id           TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    app_user_id      TEXT NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    state            TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    -- The teammate it is assigned to (NULL: unassigned).
    assignee_id      TEXT REFERENCES teammates (id) ON DELETE SET NULL,
    -- Who started it: the user, a teammate (starter_id), or a card the user
    -- answered (card_id: a whisper's or a manual message's delivery).
    started_by       TEXT NOT NULL CHECK (started_by IN ('user', 'teammate', 'card')),
    starter_id       TEXT REFERENCES teammates (id) ON DELETE SET NULL,
    card_id          TEXT,
    -- The newest message's time and text (the inbox list shows both).
    last_activity_at INTEGER NOT NULL,
    last_text        TEXT NOT NULL DEFAULT '',
    -- The user's messages the team has not read, and the team's the user has not.
    unread_team      INTEGER NOT NULL DEFAULT 0,
    unread_user      INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL
);
-- The inbox's lists: newest activity first, per state, optionally per assignee.
CREATE INDEX conversations_inbox ON conversations (app_id, state, last_activity_at, id);
CREATE INDEX conversations_assignee ON conversations (app_id, assignee_id, state, last_activity_at, id);
CREATE INDEX conversations_user ON conversations (app_user_id, last_activity_at);
CREATE INDEX conversations_starter ON conversations (starter_id);
CREATE INDEX conversations_card ON conversations (card_id);

ALTER TABLE messages ADD COLUMN conversation_id TEXT REFERENCES conversations (id) ON DELETE CASCADE;

INSERT INTO conversations (id, app_id, app_user_id, state, started_by, last_activity_at, last_text, created_at)
SELECT lower(hex(randomblob(12))), m.app_id, m.app_user_id, 'open', 'user', MAX(m.created_at),
       COALESCE((SELECT l.text FROM messages l WHERE l.app_user_id = m.app_user_id ORDER BY l.created_at DESC, l.id DESC LIMIT 1), ''),
       MIN(m.created_at)
FROM messages m GROUP BY m.app_id, m.app_user_id;

UPDATE messages SET conversation_id = (SELECT c.id FROM conversations c WHERE c.app_user_id = messages.app_user_id);

CREATE INDEX messages_conversation ON messages (conversation_id, created_at);
