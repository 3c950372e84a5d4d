//! Recall: in-app cards no one has seen yet — a whisper's deliveries, a
//! manual message's in-app deliveries — set to `cancelled`, with when and
//! by whom. A card is recallable while it is `pending` or `sent` and has
//! no `seen_at`; one statement per recall, so a card reported seen at the
//! same moment is either recalled before (and the report leaves it
//! cancelled) or seen before (and not recalled).

use super::{with_pool, Store, StoreResult};

/// A card that was recalled: whose, which.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RecalledCard {
    pub app_user_id: String,
    pub id: String,
}

/// What recalling one card did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecallOne {
    Recalled(RecalledCard),
    /// The user has seen it: it stays.
    Seen,
    /// It is not an in-app card that can still be shown (cancelled
    /// already, failed, or an email): its state.
    Gone(String),
    NotFound,
}

/// The condition that makes a card recallable.
const RECALLABLE: &str = "state IN ('pending', 'sent') AND seen_at IS NULL";

/// The table of a card id: a manual message's delivery ids start with `m`.
fn table_of(delivery_id: &str) -> (&'static str, &'static str) {
    if delivery_id.starts_with('m') {
        ("message_deliveries", " AND channel = 'in_app'")
    } else {
        ("deliveries", "")
    }
}

impl Store {
    /// Recalls one card (a whisper's or a manual message's delivery) of the app.
    pub async fn recall_card(&self, app_id: &str, delivery_id: &str, by: &str, now: i64) -> StoreResult<RecallOne> {
        let (table, in_app) = table_of(delivery_id);
        let update = format!(
            "UPDATE {table} SET state = 'cancelled', recalled_at = $3, recalled_by = $4 \
             WHERE id = $1 AND app_id = $2{in_app} AND {RECALLABLE} RETURNING app_user_id, id"
        );
        let recalled: Option<RecalledCard> = with_pool!(self, pool => sqlx::query_as(&update)
            .bind(delivery_id).bind(app_id).bind(now).bind(by).fetch_optional(pool).await?);
        if let Some(r) = recalled {
            return Ok(RecallOne::Recalled(r));
        }
        let select = match table {
            "deliveries" => "SELECT state, seen_at, 'in_app' FROM deliveries WHERE id = $1 AND app_id = $2",
            _ => "SELECT state, seen_at, channel FROM message_deliveries WHERE id = $1 AND app_id = $2",
        };
        let row: Option<(String, Option<i64>, String)> =
            with_pool!(self, pool => sqlx::query_as(select).bind(delivery_id).bind(app_id).fetch_optional(pool).await?);
        Ok(match row {
            None => RecallOne::NotFound,
            Some((_, Some(_), _)) => RecallOne::Seen,
            Some((state, None, channel)) if channel == "in_app" => RecallOne::Gone(state),
            Some(_) => RecallOne::Gone("email".into()),
        })
    }

    /// Recalls every unseen card of a whisper of the app.
    pub async fn recall_whisper_cards(
        &self,
        app_id: &str,
        whisper_id: &str,
        by: &str,
        now: i64,
    ) -> StoreResult<Vec<RecalledCard>> {
        let sql = format!(
            "UPDATE deliveries SET state = 'cancelled', recalled_at = $3, recalled_by = $4 \
             WHERE whisper_id = $1 AND app_id = $2 AND {RECALLABLE} RETURNING app_user_id, id"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(whisper_id).bind(app_id).bind(now).bind(by).fetch_all(pool).await?))
    }

    /// Recalls every unseen in-app card of a manual message of the app.
    pub async fn recall_manual_cards(
        &self,
        app_id: &str,
        message_id: &str,
        by: &str,
        now: i64,
    ) -> StoreResult<Vec<RecalledCard>> {
        let sql = format!(
            "UPDATE message_deliveries SET state = 'cancelled', recalled_at = $3, recalled_by = $4 \
             WHERE message_id = $1 AND app_id = $2 AND channel = 'in_app' AND {RECALLABLE} RETURNING app_user_id, id"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(message_id).bind(app_id).bind(now).bind(by).fetch_all(pool).await?))
    }

    /// How many cards of a whisper or a manual message (`m…` deliveries
    /// when `manual`) could still be recalled.
    pub async fn recallable_count(&self, app_id: &str, source_id: &str, manual: bool) -> StoreResult<i64> {
        let sql = if manual {
            format!(
                "SELECT COUNT(*) FROM message_deliveries WHERE message_id = $1 AND app_id = $2 \
                 AND channel = 'in_app' AND {RECALLABLE}"
            )
        } else {
            format!("SELECT COUNT(*) FROM deliveries WHERE whisper_id = $1 AND app_id = $2 AND {RECALLABLE}")
        };
        Ok(with_pool!(self, pool => sqlx::query_scalar(&sql).bind(source_id).bind(app_id).fetch_one(pool).await?))
    }
}
