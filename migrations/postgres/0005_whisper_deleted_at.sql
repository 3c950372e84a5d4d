-- A deleted whisper keeps its row (hidden from the dashboard) so that the
-- cards users already received stay in their conversations.
ALTER TABLE whispers ADD COLUMN deleted_at BIGINT;
