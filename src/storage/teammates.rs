//! Teammates, their sessions and the sign-in throttle.

use super::{audit::write_audit, classify, with_pool, AuditEntry, Store, StoreResult};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeammateRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub is_owner: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ThrottleRow {
    pub key: String,
    pub failures: i64,
    pub last_failure_at: i64,
}

/// How many failed attempts a throttle key may make: `free` at once, then
/// one more after each wait, the waits doubling from one second up to
/// `cap_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleAllowance {
    pub free: i64,
    pub cap_secs: i64,
}

impl ThrottleAllowance {
    /// Seconds to wait after `failures` failures (0 = may try now).
    pub fn delay_secs(&self, failures: i64) -> i64 {
        if failures < self.free {
            return 0;
        }
        let doublings = (failures - self.free).min(30) as u32;
        (1i64 << doublings).min(self.cap_secs)
    }

    /// How many doublings past `free` reach the cap.
    fn doublings_to_cap(&self) -> i64 {
        (0..31).find(|k| (1i64 << k) >= self.cap_secs).unwrap_or(31)
    }
}

const TEAMMATE_COLUMNS: &str = "t.id, t.name, t.email, t.password_hash, t.is_owner, t.created_at";

impl Store {
    pub async fn count_teammates(&self) -> StoreResult<i64> {
        let n: i64 =
            with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM teammates").fetch_one(pool).await?);
        Ok(n)
    }

    /// Inserts a teammate and, when `app_id` is given, their membership of
    /// that app, in one transaction. `Duplicate` for a taken email or a
    /// second owner.
    pub async fn insert_teammate(&self, t: &TeammateRow, app_id: Option<&str>) -> StoreResult<()> {
        self.insert_teammate_with(t, app_id, None).await
    }

    /// A teammate added to `app_id` by the owner: `insert_teammate` with the
    /// audit row in the same transaction.
    pub async fn insert_teammate_audited(&self, t: &TeammateRow, app_id: &str, audit: &AuditEntry) -> StoreResult<()> {
        self.insert_teammate_with(t, Some(app_id), Some(audit)).await
    }

    async fn insert_teammate_with(
        &self,
        t: &TeammateRow,
        app_id: Option<&str>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO teammates (id, name, email, password_hash, is_owner, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&t.id)
            .bind(&t.name)
            .bind(&t.email)
            .bind(&t.password_hash)
            .bind(t.is_owner)
            .bind(t.created_at)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            if let Some(app_id) = app_id {
                sqlx::query("INSERT INTO app_members (app_id, teammate_id) VALUES ($1, $2)")
                    .bind(app_id)
                    .bind(&t.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
            }
            if let Some(audit) = audit {
                write_audit!(&mut *tx, audit);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn teammate_by_email(&self, email: &str) -> StoreResult<Option<TeammateRow>> {
        let sql = format!("SELECT {TEAMMATE_COLUMNS} FROM teammates t WHERE t.email = $1");
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(email).fetch_optional(pool).await?))
    }

    pub async fn teammate_by_id(&self, id: &str) -> StoreResult<Option<TeammateRow>> {
        let sql = format!("SELECT {TEAMMATE_COLUMNS} FROM teammates t WHERE t.id = $1");
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    /// Teammates who can open `app_id`, owner first, then by name.
    pub async fn app_teammates(&self, app_id: &str) -> StoreResult<Vec<TeammateRow>> {
        let sql = format!(
            "SELECT {TEAMMATE_COLUMNS} FROM teammates t JOIN app_members m ON m.teammate_id = t.id \
             WHERE m.app_id = $1 ORDER BY t.is_owner DESC, t.name, t.id"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(app_id).fetch_all(pool).await?))
    }

    /// Deletes a teammate who is not the owner; their sessions and
    /// memberships go with them (foreign keys cascade). False if nothing was
    /// deleted.
    pub async fn delete_teammate(&self, id: &str) -> StoreResult<bool> {
        self.delete_teammate_with(id, None).await
    }

    /// `delete_teammate` with its audit row, in one transaction (no row
    /// when nothing was deleted).
    pub async fn delete_teammate_audited(&self, id: &str, audit: &AuditEntry) -> StoreResult<bool> {
        self.delete_teammate_with(id, Some(audit)).await
    }

    async fn delete_teammate_with(&self, id: &str, audit: Option<&AuditEntry>) -> StoreResult<bool> {
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("DELETE FROM teammates WHERE id = $1 AND is_owner = $2")
                .bind(id)
                .bind(false)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if done {
                if let Some(audit) = audit {
                    write_audit!(&mut *tx, audit);
                }
                tx.commit().await?;
            }
            done
        }))
    }

    /// Replaces a teammate's password hash if it is still `old_hash` (the
    /// one the current password was checked against), ends every session
    /// of theirs but `keep_session` (a token hash), and writes the audit
    /// row, in one transaction. None (nothing written) if the hash had
    /// changed meanwhile; else how many sessions ended.
    pub async fn change_password(
        &self,
        teammate_id: &str,
        old_hash: &str,
        new_hash: &str,
        keep_session: &str,
        audit: &AuditEntry,
    ) -> StoreResult<Option<u64>> {
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query("UPDATE teammates SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
                .bind(teammate_id)
                .bind(old_hash)
                .bind(new_hash)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if changed {
                let ended = sqlx::query("DELETE FROM sessions WHERE teammate_id = $1 AND token_hash <> $2")
                    .bind(teammate_id)
                    .bind(keep_session)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                write_audit!(&mut *tx, audit);
                tx.commit().await?;
                Some(ended)
            } else {
                None
            }
        }))
    }

    /// Ends every session of a teammate, with the audit row, in one
    /// transaction. How many sessions ended.
    pub async fn end_sessions(&self, teammate_id: &str, audit: &AuditEntry) -> StoreResult<u64> {
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let ended = sqlx::query("DELETE FROM sessions WHERE teammate_id = $1")
                .bind(teammate_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            write_audit!(&mut *tx, audit);
            tx.commit().await?;
            ended
        }))
    }

    /// How many live sessions a teammate has: not expired at `now` and
    /// seen after `idle_before`.
    pub async fn count_sessions(&self, teammate_id: &str, now: i64, idle_before: i64) -> StoreResult<i64> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE teammate_id = $1 AND expires_at > $2 AND last_seen_at > $3",
        )
        .bind(teammate_id)
        .bind(now)
        .bind(idle_before)
        .fetch_one(pool)
        .await?))
    }

    pub async fn insert_session(
        &self,
        token_hash: &str,
        teammate_id: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        with_pool!(self, pool => { sqlx::query(
            "INSERT INTO sessions (token_hash, teammate_id, created_at, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $3)",
        )
        .bind(token_hash)
        .bind(teammate_id)
        .bind(now)
        .bind(expires_at)
        .execute(pool)
        .await
        .map_err(classify)?; });
        Ok(())
    }

    /// The teammate a live (unexpired) session belongs to.
    pub async fn session_teammate(&self, token_hash: &str, now: i64) -> StoreResult<Option<TeammateRow>> {
        let sql = format!(
            "SELECT {TEAMMATE_COLUMNS} FROM sessions s JOIN teammates t ON t.id = s.teammate_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(token_hash).bind(now).fetch_optional(pool).await?))
    }

    /// The teammate a session belongs to and when the session was last
    /// seen, if it has not expired and was seen after `idle_before`.
    pub async fn active_session_teammate(
        &self,
        token_hash: &str,
        now: i64,
        idle_before: i64,
    ) -> StoreResult<Option<(TeammateRow, i64)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            teammate: TeammateRow,
            last_seen_at: i64,
        }
        let sql = format!(
            "SELECT {TEAMMATE_COLUMNS}, s.last_seen_at FROM sessions s JOIN teammates t ON t.id = s.teammate_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3"
        );
        let row: Option<Row> = with_pool!(self, pool => sqlx::query_as(&sql).bind(token_hash).bind(now).bind(idle_before).fetch_optional(pool).await?);
        Ok(row.map(|r| (r.teammate, r.last_seen_at)))
    }

    /// Records that a session was used at `now`.
    pub async fn touch_session(&self, token_hash: &str, now: i64) -> StoreResult<()> {
        with_pool!(self, pool => { sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE token_hash = $1 AND last_seen_at < $2").bind(token_hash).bind(now).execute(pool).await?; });
        Ok(())
    }

    /// Deletes sessions that have expired or were last seen before `idle_before`.
    pub async fn delete_stale_sessions(&self, now: i64, idle_before: i64) -> StoreResult<u64> {
        Ok(with_pool!(self, pool => sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(now)
            .bind(idle_before)
            .execute(pool)
            .await?
            .rows_affected()))
    }

    pub async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        with_pool!(self, pool => { sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(pool).await?; });
        Ok(())
    }

    pub async fn delete_expired_sessions(&self, now: i64) -> StoreResult<u64> {
        Ok(
            with_pool!(self, pool => sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now).execute(pool).await?.rows_affected()),
        )
    }

    pub async fn throttle_rows(&self, keys: &[String]) -> StoreResult<Vec<ThrottleRow>> {
        let mut rows = Vec::with_capacity(keys.len());
        for key in keys {
            let row: Option<ThrottleRow> = with_pool!(self, pool => sqlx::query_as(
                "SELECT key, failures, last_failure_at FROM login_throttle WHERE key = $1",
            )
            .bind(key)
            .fetch_optional(pool)
            .await?);
            rows.extend(row);
        }
        Ok(rows)
    }

    /// Records one more failed attempt for `key` if its allowance lets one
    /// through at `now`, and says whether it did. The check and the count
    /// are one statement, so of many attempts at once exactly as many pass
    /// as the allowance has room for. A count whose last failure is older
    /// than `forget_before` starts again from one.
    pub async fn throttle_attempt(
        &self,
        key: &str,
        now: i64,
        forget_before: i64,
        allowance: ThrottleAllowance,
    ) -> StoreResult<bool> {
        // The wait after `failures` failures, in milliseconds (the same
        // rule as `ThrottleAllowance::delay_secs`): none below `free`, then
        // 1 s doubling per failure up to the cap.
        let recorded: Option<String> = with_pool!(self, pool => sqlx::query_scalar(
            "INSERT INTO login_throttle (key, failures, last_failure_at) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN login_throttle.last_failure_at < $3 THEN 1 ELSE login_throttle.failures + 1 END, \
               last_failure_at = excluded.last_failure_at \
             WHERE login_throttle.last_failure_at < $3 \
                OR login_throttle.failures < $4 \
                OR login_throttle.last_failure_at + CASE \
                     WHEN login_throttle.failures - $4 >= $5 THEN $6 \
                     ELSE (CAST(1 AS BIGINT) << CAST(login_throttle.failures - $4 AS INTEGER)) * 1000 \
                   END <= $2 \
             RETURNING key",
        )
        .bind(key)
        .bind(now)
        .bind(forget_before)
        .bind(allowance.free)
        .bind(allowance.doublings_to_cap())
        .bind(allowance.cap_secs * 1000)
        .fetch_optional(pool)
        .await?);
        Ok(recorded.is_some())
    }

    /// Takes back one recorded attempt of `key` (one that was refused by
    /// another key's allowance, so never checked a password).
    pub async fn throttle_take_back(&self, key: &str) -> StoreResult<()> {
        with_pool!(self, pool => { sqlx::query(
            "UPDATE login_throttle SET failures = failures - 1 WHERE key = $1 AND failures > 0",
        )
        .bind(key)
        .execute(pool)
        .await?; });
        Ok(())
    }

    pub async fn throttle_clear(&self, key: &str) -> StoreResult<()> {
        with_pool!(self, pool => { sqlx::query("DELETE FROM login_throttle WHERE key = $1").bind(key).execute(pool).await?; });
        Ok(())
    }
}

impl Store {
    /// The owner account, if setup is done.
    pub async fn owner(&self) -> StoreResult<Option<TeammateRow>> {
        let sql = format!("SELECT {TEAMMATE_COLUMNS} FROM teammates t WHERE t.is_owner = $1");
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(true).fetch_optional(pool).await?))
    }
}
