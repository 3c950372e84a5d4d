-- The users' epoch: a number that moves whenever a userId may stop naming
-- the murmur id it named: a user with a userId deleted, a user's id, app
-- or userId changed, or a user added whose murmur id is another user's
-- userId of the same app (a reference is looked up as a murmur id first).
-- SQLite's one writer remembers which murmur id each userId it resolved
-- named (`storage::UserIds`); in each batch's transaction it reads the
-- epoch, and forgets all it remembered when the epoch has moved.
CREATE TABLE user_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO user_epoch (id, n) VALUES (1, 0);
CREATE TRIGGER app_users_epoch_delete AFTER DELETE ON app_users
WHEN old.user_id IS NOT NULL BEGIN
    UPDATE user_epoch SET n = n + 1 WHERE id = 1;
END;
CREATE TRIGGER app_users_epoch_update AFTER UPDATE OF id, app_id, user_id ON app_users
WHEN old.id IS NOT new.id OR old.app_id IS NOT new.app_id OR old.user_id IS NOT new.user_id BEGIN
    UPDATE user_epoch SET n = n + 1 WHERE id = 1;
END;
CREATE TRIGGER app_users_epoch_insert AFTER INSERT ON app_users
WHEN EXISTS (SELECT 1 FROM app_users x WHERE x.app_id = new.app_id AND x.user_id = new.id) BEGIN
    UPDATE user_epoch SET n = n + 1 WHERE id = 1;
END;
