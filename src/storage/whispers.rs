//! Whispers and their delivery statistics (counted from the delivery rows
//! themselves, so they cannot drift).

use sqlx::types::Json as SqlJson;

use super::{with_pool, Store, StoreResult};
use crate::domain::whisper::WhisperDraft;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WhisperRow {
    pub id: String,
    pub app_id: String,
    pub name: String,
    pub status: String,
    pub definition: SqlJson<WhisperDraft>,
    pub revision: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WhisperStatsRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub definition: SqlJson<WhisperDraft>,
    pub updated_at: i64,
    pub exposed: i64,
    pub seen: i64,
    pub clicked: i64,
    pub replied: i64,
}

/// Why a status change did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum StatusChange {
    Done,
    NotFound,
    /// The app already has this many active whispers.
    LimitReached(i64),
}

/// The trigger's kind (serde's spelling) and event name, as stored.
fn trigger_columns(d: &WhisperDraft) -> (String, Option<String>) {
    use crate::domain::whisper::Trigger;
    let event = match &d.trigger {
        Trigger::Event(e) => Some(e.clone()),
        _ => None,
    };
    (d.trigger.kind(), event)
}

const WHISPER_COLUMNS: &str = "id, app_id, name, status, definition, revision, created_at, updated_at";

impl Store {
    pub async fn insert_whisper(
        &self,
        id: &str,
        app_id: &str,
        status: &str,
        d: &WhisperDraft,
        now: i64,
    ) -> StoreResult<()> {
        let (kind, event) = trigger_columns(d);
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO whispers (id, app_id, name, status, definition, trigger_kind, trigger_event, revision, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)",
            )
            .bind(id)
            .bind(app_id)
            .bind(d.name.trim())
            .bind(status)
            .bind(SqlJson(d))
            .bind(kind)
            .bind(&event)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Saves an edit. An active or paused whisper gets a new revision, so
    /// deliveries already made keep what they were.
    pub async fn update_whisper(&self, app_id: &str, id: &str, d: &WhisperDraft, now: i64) -> StoreResult<bool> {
        let (kind, event) = trigger_columns(d);
        Ok(with_pool!(self, pool => sqlx::query(
            "UPDATE whispers SET name = $3, definition = $4, trigger_kind = $5, trigger_event = $6, updated_at = $7, \
             revision = CASE WHEN status = 'draft' THEN revision ELSE revision + 1 END \
             WHERE app_id = $1 AND id = $2 AND deleted_at IS NULL",
        )
        .bind(app_id)
        .bind(id)
        .bind(d.name.trim())
        .bind(SqlJson(d))
        .bind(kind)
        .bind(&event)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected())
            == 1)
    }

    pub async fn whisper(&self, app_id: &str, id: &str) -> StoreResult<Option<WhisperRow>> {
        let sql =
            format!("SELECT {WHISPER_COLUMNS} FROM whispers WHERE app_id = $1 AND id = $2 AND deleted_at IS NULL");
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(app_id).bind(id).fetch_optional(pool).await?))
    }

    /// An app's whispers, newest edit first, with stats from deliveries.
    pub async fn whispers_with_stats(&self, app_id: &str) -> StoreResult<Vec<WhisperStatsRow>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT w.id, w.name, w.status, w.definition, w.updated_at, \
               COALESCE(s.exposed, 0) AS exposed, COALESCE(s.seen, 0) AS seen, \
               COALESCE(s.clicked, 0) AS clicked, COALESCE(s.replied, 0) AS replied \
             FROM whispers w LEFT JOIN ( \
               SELECT whisper_id, COUNT(sent_at) AS exposed, COUNT(seen_at) AS seen, \
                      COUNT(clicked_at) AS clicked, COUNT(replied_at) AS replied \
               FROM deliveries WHERE app_id = $1 GROUP BY whisper_id \
             ) s ON s.whisper_id = w.id \
             WHERE w.app_id = $1 AND w.deleted_at IS NULL ORDER BY w.updated_at DESC, w.id",
        )
        .bind(app_id)
        .fetch_all(pool)
        .await?))
    }

    /// Changes status; activating respects the app's limit of active
    /// whispers (checked inside the same transaction).
    pub async fn set_whisper_status(
        &self,
        app_id: &str,
        id: &str,
        status: &str,
        now: i64,
    ) -> StoreResult<StatusChange> {
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("UPDATE whispers SET status = $3, updated_at = $4 WHERE app_id = $1 AND id = $2 AND deleted_at IS NULL")
                .bind(app_id)
                .bind(id)
                .bind(status)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                StatusChange::NotFound
            } else {
                let limit: Option<i64> = sqlx::query_scalar("SELECT max_active_whispers FROM apps WHERE id = $1")
                    .bind(app_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let active: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM whispers WHERE app_id = $1 AND status = 'active'")
                    .bind(app_id)
                    .fetch_one(&mut *tx)
                    .await?;
                match limit {
                    Some(max) if status == "active" && active > max => StatusChange::LimitReached(max),
                    _ => {
                        tx.commit().await?;
                        StatusChange::Done
                    }
                }
            }
        }))
    }

    /// Deletes a whisper from the dashboard: it stops at once (its pending
    /// cards are never shown) but its row stays, hidden, so that what users
    /// already received stays in their conversations and counts.
    pub async fn delete_whisper(&self, app_id: &str, id: &str, now: i64) -> StoreResult<bool> {
        Ok(with_pool!(self, pool => sqlx::query(
            "UPDATE whispers SET status = 'paused', deleted_at = $3, updated_at = $3 \
             WHERE app_id = $1 AND id = $2 AND deleted_at IS NULL",
        )
            .bind(app_id)
            .bind(id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected())
            == 1)
    }

    pub async fn max_active_whispers(&self, app_id: &str) -> StoreResult<Option<i64>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar("SELECT max_active_whispers FROM apps WHERE id = $1")
            .bind(app_id)
            .fetch_one(pool)
            .await?))
    }

    pub async fn set_max_active_whispers(&self, app_id: &str, max: Option<i64>) -> StoreResult<()> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE apps SET max_active_whispers = $2 WHERE id = $1").bind(app_id).bind(max).execute(pool).await?;
        });
        Ok(())
    }
}
