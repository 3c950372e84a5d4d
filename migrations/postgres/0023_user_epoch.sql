-- The users' epoch: a number that moves whenever a userId may stop naming
-- the murmur id it named: users with a userId deleted, a user's id, app or
-- userId changed, or users added whose murmur id is another user's userId
-- of the same app (a reference is looked up as a murmur id first). The
-- writers remember which murmur id each userId they resolved named
-- (`storage::UserIds`); in each batch's transaction, under its apps'
-- guard (`users_guard`: no user of theirs is deleted before it commits),
-- they read the epoch, and forget all they remembered when it has moved.
-- Deletes and inserts move it once per statement.
CREATE TABLE user_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO user_epoch (id, n) VALUES (1, 0);

CREATE FUNCTION user_epoch_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE user_epoch SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END $$;

CREATE FUNCTION user_epoch_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM gone WHERE user_id IS NOT NULL) THEN
        UPDATE user_epoch SET n = n + 1 WHERE id = 1;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION user_epoch_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM added a JOIN app_users x ON x.app_id = a.app_id AND x.user_id = a.id) THEN
        UPDATE user_epoch SET n = n + 1 WHERE id = 1;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER app_users_epoch_delete AFTER DELETE ON app_users
REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION user_epoch_gone();
CREATE TRIGGER app_users_epoch_insert AFTER INSERT ON app_users
REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION user_epoch_added();
CREATE TRIGGER app_users_epoch_update AFTER UPDATE OF id, app_id, user_id ON app_users
FOR EACH ROW WHEN (old.id IS DISTINCT FROM new.id OR old.app_id IS DISTINCT FROM new.app_id
                   OR old.user_id IS DISTINCT FROM new.user_id)
EXECUTE FUNCTION user_epoch_move();
