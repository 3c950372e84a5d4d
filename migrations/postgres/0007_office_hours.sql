-- Office hours (JSON, see domain::office_hours; NULL: never set), and what
-- kind of team message a message is (NULL: written by a teammate or the API;
-- 'office_hours': the automatic reply outside office hours).
ALTER TABLE apps ADD COLUMN office_hours TEXT;
ALTER TABLE messages ADD COLUMN kind TEXT;
