-- SQLite's step 0023 adds the users' epoch, with which its one writer
-- resolves a batch's users ahead of the batch's transaction. PostgreSQL's
-- writers resolve them in their own transactions, in parallel: nothing to
-- add here.
SELECT 1;
