-- The users' epoch: a number that moves whenever a user is added, removed,
-- or changes its id, app or userId (what resolving an event's user reads).
-- The writer resolves a batch's users on a connection of its own while it
-- writes the batch before (`Store::resolve_ahead`); in the batch's own
-- transaction it reads the epoch, and uses what was resolved ahead only
-- if the epoch is the one that was read with it.
CREATE TABLE user_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO user_epoch (id, n) VALUES (1, 0);
CREATE TRIGGER app_users_epoch_insert AFTER INSERT ON app_users BEGIN
    UPDATE user_epoch SET n = n + 1 WHERE id = 1;
END;
CREATE TRIGGER app_users_epoch_delete AFTER DELETE ON app_users BEGIN
    UPDATE user_epoch SET n = n + 1 WHERE id = 1;
END;
CREATE TRIGGER app_users_epoch_update AFTER UPDATE OF id, app_id, user_id ON app_users BEGIN
    UPDATE user_epoch SET n = n + 1 WHERE id = 1;
END;
