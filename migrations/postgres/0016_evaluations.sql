-- The planner's decisions, kept to answer "why did (or didn't) this user
-- get this whisper?" (domain::explain). Per (whisper, user): the first
-- decision that put the user in the audience (the one that made the card:
-- a whisper goes to each user once) and the latest one that did not, so
-- the table holds at most two rows per pair; rows older than the
-- retention (90 days) are purged by the scheduler. Written after the
-- decision's commit, in batches (engine::explain): a diagnostic record,
-- not a fact the product depends on, so no foreign keys (the reads join
-- the app's whispers and users, and the purge clears what they left).
CREATE TABLE evaluations (
    whisper_id  TEXT NOT NULL,
    app_user_id TEXT NOT NULL,
    matched     BIGINT NOT NULL,
    app_id      TEXT NOT NULL,
    at          BIGINT NOT NULL,
    -- domain::explain::Evaluation as JSON.
    record      TEXT NOT NULL,
    PRIMARY KEY (whisper_id, app_user_id, matched)
);
CREATE INDEX evaluations_at ON evaluations (at);
