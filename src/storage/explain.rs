//! The planner's decisions (`domain::explain::Evaluation`), kept per
//! (whisper, user): the first that matched, the latest that did not. And
//! the stored facts the explainer reads beside them.

use super::{with_pool, Store, StoreResult};
use crate::domain::explain::{DeliveryFacts, Evaluation};

/// One decision to keep.
#[derive(Debug, Clone)]
pub struct EvaluationRecord {
    pub app_id: String,
    pub whisper_id: String,
    pub app_user_id: String,
    pub evaluation: Evaluation,
}

/// Rows per INSERT statement (SQLite allows 32,766 parameters; 6 per row).
const ROWS_PER_STATEMENT: usize = 200;

impl Store {
    /// Keeps a batch of decisions: a match only if none is kept for the
    /// pair yet (the first made the card), a miss replacing an older miss.
    /// Within the batch the same rule picks one row per key first (one
    /// statement may not touch a row twice on PostgreSQL).
    pub async fn record_evaluations(&self, batch: &[EvaluationRecord]) -> StoreResult<()> {
        let mut keep: std::collections::HashMap<(&str, &str, bool), &EvaluationRecord> = Default::default();
        for r in batch {
            let key = (r.whisper_id.as_str(), r.app_user_id.as_str(), r.evaluation.matched());
            match keep.get(&key) {
                Some(k) if key.2 && k.evaluation.at <= r.evaluation.at => {}
                Some(k) if !key.2 && k.evaluation.at > r.evaluation.at => {}
                _ => {
                    keep.insert(key, r);
                }
            }
        }
        let (matched, missed): (Vec<&EvaluationRecord>, Vec<&EvaluationRecord>) =
            keep.into_values().partition(|r| r.evaluation.matched());
        for (rows, matched) in [(matched, true), (missed, false)] {
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let values: Vec<String> = (0..chunk.len())
                    .map(|i| {
                        let b = i * 6;
                        format!("(${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6)
                    })
                    .collect();
                let on_conflict = if matched {
                    "DO NOTHING"
                } else {
                    "DO UPDATE SET at = excluded.at, record = excluded.record WHERE excluded.at >= evaluations.at"
                };
                let sql = format!(
                    "INSERT INTO evaluations (whisper_id, app_user_id, matched, app_id, at, record) VALUES {} \
                     ON CONFLICT (whisper_id, app_user_id, matched) {on_conflict}",
                    values.join(", ")
                );
                let records: Vec<String> = chunk
                    .iter()
                    .map(|r| serde_json::to_string(&r.evaluation).unwrap_or_else(|_| "{}".into()))
                    .collect();
                with_pool!(self, pool => {
                    let mut q = sqlx::query(&sql);
                    for (r, record) in chunk.iter().zip(&records) {
                        q = q
                            .bind(&r.whisper_id)
                            .bind(&r.app_user_id)
                            .bind(i64::from(matched))
                            .bind(&r.app_id)
                            .bind(r.evaluation.at)
                            .bind(record);
                    }
                    q.execute(pool).await?;
                });
            }
        }
        Ok(())
    }

    /// The kept decisions for a whisper and a user of `app_id`: (the first
    /// match, the latest miss). A record that no longer reads is skipped.
    pub async fn evaluations(
        &self,
        app_id: &str,
        whisper_id: &str,
        app_user_id: &str,
    ) -> StoreResult<(Option<Evaluation>, Option<Evaluation>)> {
        let rows: Vec<(i64, String)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT matched, record FROM evaluations WHERE whisper_id = $1 AND app_user_id = $2 AND app_id = $3",
        )
        .bind(whisper_id)
        .bind(app_user_id)
        .bind(app_id)
        .fetch_all(pool)
        .await?);
        let mut out = (None, None);
        for (matched, record) in rows {
            let Ok(e) = serde_json::from_str::<Evaluation>(&record) else { continue };
            if matched != 0 {
                out.0 = Some(e);
            } else {
                out.1 = Some(e);
            }
        }
        Ok(out)
    }

    /// Forgets decisions made before `before`; returns how many.
    pub async fn purge_evaluations(&self, before: i64) -> StoreResult<u64> {
        Ok(with_pool!(self, pool => sqlx::query("DELETE FROM evaluations WHERE at < $1")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected()))
    }

    /// A whisper card's delivery for a user of `app_id`, with its states.
    pub async fn whisper_delivery_facts(
        &self,
        app_id: &str,
        whisper_id: &str,
        app_user_id: &str,
    ) -> StoreResult<Option<DeliveryFacts>> {
        type Row = (i64, String, Option<i64>, Option<String>, Option<i64>, Option<i64>, Option<i64>);
        let row: Option<Row> = with_pool!(self, pool => sqlx::query_as(
            "SELECT created_at, state, sent_at, sent_via, seen_at, clicked_at, replied_at FROM deliveries \
             WHERE whisper_id = $1 AND app_user_id = $2 AND app_id = $3",
        )
        .bind(whisper_id)
        .bind(app_user_id)
        .bind(app_id)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(created_at, state, sent_at, sent_via, seen_at, clicked_at, replied_at)| DeliveryFacts {
            created_at,
            state,
            channel: None,
            sent_at,
            sent_via,
            seen_at,
            clicked_at,
            replied_at,
            failed_at: None,
            error: None,
        }))
    }

    /// A manual message's delivery for a user of `app_id`, with its states.
    pub async fn message_delivery_facts(
        &self,
        app_id: &str,
        message_id: &str,
        app_user_id: &str,
    ) -> StoreResult<Option<DeliveryFacts>> {
        type Row = (
            i64,
            String,
            String,
            Option<i64>,
            Option<String>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<String>,
        );
        let row: Option<Row> = with_pool!(self, pool => sqlx::query_as(
            "SELECT created_at, state, channel, sent_at, sent_via, seen_at, clicked_at, replied_at, failed_at, error \
             FROM message_deliveries WHERE message_id = $1 AND app_user_id = $2 AND app_id = $3",
        )
        .bind(message_id)
        .bind(app_user_id)
        .bind(app_id)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(
            |(created_at, state, channel, sent_at, sent_via, seen_at, clicked_at, replied_at, failed_at, error)| {
                DeliveryFacts {
                    created_at,
                    state,
                    channel: Some(channel),
                    sent_at,
                    sent_via,
                    seen_at,
                    clicked_at,
                    replied_at,
                    failed_at,
                    error,
                }
            },
        ))
    }

    /// When a user last tracked `name`, and how many times (None: never).
    pub async fn last_event(&self, app_user_id: &str, name: &str) -> StoreResult<Option<(i64, i64)>> {
        let sql =
            format!("SELECT MAX(created_at), COUNT(*) FROM {}", self.user_events_union("$1", "e.name = $2", None));
        let row: (Option<i64>, i64) = with_pool!(self, pool => sqlx::query_as(
            &sql,
        )
        .bind(app_user_id)
        .bind(name)
        .fetch_one(pool)
        .await?);
        Ok(row.0.map(|at| (at, row.1)))
    }
}

impl Store {
    /// An app's manual messages that went or will go out (not drafts),
    /// newest first: (id, title, state).
    pub async fn messages_to_explain(&self, app_id: &str, limit: i64) -> StoreResult<Vec<(String, String, String)>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT id, title, state FROM manual_messages WHERE app_id = $1 AND state <> 'draft' \
             ORDER BY updated_at DESC, id LIMIT $2",
        )
        .bind(app_id)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }
}
