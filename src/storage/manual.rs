//! Manual messages and their deliveries (one row per message and user).
//!
//! Recipients are fixed from SQL (`INSERT … SELECT` over the app's users),
//! in chunks of users in id order, each chunk one transaction that also
//! moves the message's `fix_cursor`: a crash resumes after the last chunk
//! committed, and the unique (message, user) row makes a repeated chunk
//! deliver nothing twice. On PostgreSQL each chunk locks the message row
//! (`FOR UPDATE SKIP LOCKED`), so several instances never fix the same one
//! at once. A stop cancels every pending delivery in the transaction that
//! marks the message stopped; publishing claims rows `pending → sent`, so
//! nothing is published after a stop commits.

use std::collections::HashMap;

use super::{audience::Compiled, with_pool, AppUserRow, DeliveryRow, Store, StoreResult};

/// Users covered per recipient-fixing transaction.
pub const FIX_CHUNK: i64 = 5_000;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ManualRow {
    pub id: String,
    pub app_id: String,
    pub title: String,
    pub sender_id: Option<String>,
    pub sender_name: String,
    pub kind: String,
    pub body: String,
    /// `domain::manual::Audience` as JSON.
    pub audience: String,
    pub state: String,
    pub send_at: Option<i64>,
    pub recipients: Option<i64>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub stopped_at: Option<i64>,
    /// In-app: also as a push to recipients who are not online.
    pub push: bool,
}

const MANUAL_COLUMNS: &str = "id, app_id, title, sender_id, sender_name, kind, body, audience, state, send_at, \
                              recipients, created_by, created_at, updated_at, stopped_at, push";

/// What became of a message's deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManualStats {
    pub recipients: i64,
    pub pending: i64,
    pub sent: i64,
    pub seen: i64,
    pub clicked: i64,
    pub replied: i64,
    pub failed: i64,
    pub cancelled: i64,
}

/// A due message's recipients, as the engine compiled them.
pub struct RecipientQuery {
    /// `Some`: exactly these users (murmur ids), if they are the app's.
    pub users: Option<Vec<String>>,
    /// The segment's conditions over `app_users u` (parameters numbered from `$7`).
    pub conditions: Compiled,
    /// Less the users who received any of these messages.
    pub not_received: Vec<String>,
    /// Email: only users with an address who have not unsubscribed.
    pub email: bool,
}

/// The first parameter number a segment's compiled conditions may use.
pub const RECIPIENT_FIRST_PARAM: usize = 7;

/// One step of fixing recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FixStep {
    /// A chunk was fixed; more users remain.
    More,
    /// Every recipient is fixed: the message is `sent`, with this many.
    Done(i64),
    /// Not due, stopped, or being fixed by another instance.
    Skipped,
}

/// An email delivery claimed for an attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EmailJob {
    pub id: String,
    pub app_id: String,
    pub message_id: String,
    pub app_user_id: String,
    pub attempts: i64,
}

/// A recipient as the message's page lists them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecipientRow {
    pub delivery_id: String,
    pub app_user_id: String,
    pub user_id: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub email: Option<String>,
    pub state: String,
    pub sent_at: Option<i64>,
    pub seen_at: Option<i64>,
    pub error: Option<String>,
}

/// A pending in-app delivery with what its card needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingCard {
    pub delivery_id: String,
    pub app_user_id: String,
    pub message_id: String,
    pub created_at: i64,
}

/// `LIKE` pattern for "contains `q`" (case-insensitive on both backends
/// through `lower`), with the wildcards in `q` escaped.
fn contains_pattern(q: &str) -> String {
    let mut p = String::from("%");
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// `$n` … as a list of `count` placeholders from `first`.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

impl Store {
    pub async fn insert_manual(&self, m: &ManualRow) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO manual_messages ({MANUAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        );
        with_pool!(self, pool => {
            sqlx::query(&sql)
                .bind(&m.id).bind(&m.app_id).bind(&m.title).bind(&m.sender_id).bind(&m.sender_name)
                .bind(&m.kind).bind(&m.body).bind(&m.audience).bind(&m.state).bind(m.send_at)
                .bind(m.recipients).bind(&m.created_by).bind(m.created_at).bind(m.updated_at).bind(m.stopped_at).bind(m.push)
                .execute(pool).await?;
        });
        Ok(())
    }

    /// Rewrites a draft or scheduled message (title … state, send time).
    /// False if it is not (or no longer) editable.
    pub async fn update_manual(&self, m: &ManualRow) -> StoreResult<bool> {
        Ok(with_pool!(self, pool => sqlx::query(
            "UPDATE manual_messages SET title = $3, sender_id = $4, sender_name = $5, kind = $6, body = $7, \
             audience = $8, state = $9, send_at = $10, updated_at = $11, push = $12 \
             WHERE id = $1 AND app_id = $2 AND state IN ('draft', 'scheduled')",
        )
        .bind(&m.id).bind(&m.app_id).bind(&m.title).bind(&m.sender_id).bind(&m.sender_name).bind(&m.kind)
        .bind(&m.body).bind(&m.audience).bind(&m.state).bind(m.send_at).bind(m.updated_at).bind(m.push)
        .execute(pool).await?.rows_affected())
            == 1)
    }

    /// Deletes a draft or scheduled message (sent ones stay: their cards are
    /// in users' conversations). False if there is none such.
    pub async fn delete_unsent_manual(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        Ok(with_pool!(self, pool => sqlx::query(
            "DELETE FROM manual_messages WHERE id = $1 AND app_id = $2 AND state IN ('draft', 'scheduled')",
        )
        .bind(id).bind(app_id).execute(pool).await?.rows_affected())
            == 1)
    }

    pub async fn manual(&self, app_id: &str, id: &str) -> StoreResult<Option<ManualRow>> {
        let sql = format!("SELECT {MANUAL_COLUMNS} FROM manual_messages WHERE id = $1 AND app_id = $2");
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(id).bind(app_id).fetch_optional(pool).await?))
    }

    /// A message by id alone (the engine's workers).
    pub async fn manual_by_id(&self, id: &str) -> StoreResult<Option<ManualRow>> {
        let sql = format!("SELECT {MANUAL_COLUMNS} FROM manual_messages WHERE id = $1");
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    /// The app's messages in `states`, newest first, whose title or sender
    /// name contains `search` (any case).
    pub async fn list_manual(
        &self,
        app_id: &str,
        states: &[&str],
        search: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<ManualRow>> {
        let list = placeholders(4, states.len());
        let filter = if search.is_some() {
            format!(
                " AND (lower(title) LIKE ${n} ESCAPE '\\' OR lower(sender_name) LIKE ${n} ESCAPE '\\')",
                n = 4 + states.len()
            )
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT {MANUAL_COLUMNS} FROM manual_messages WHERE app_id = $1 AND state IN ({list}){filter} \
             ORDER BY COALESCE(send_at, updated_at) DESC, id DESC LIMIT $2 OFFSET $3"
        );
        Ok(with_pool!(self, pool => {
            let mut q = sqlx::query_as(&sql).bind(app_id).bind(limit).bind(offset);
            for s in states {
                q = q.bind(*s);
            }
            if let Some(s) = search {
                q = q.bind(contains_pattern(s));
            }
            q.fetch_all(pool).await?
        }))
    }

    /// Each message's delivery counts.
    pub async fn manual_stats(&self, ids: &[String]) -> StoreResult<HashMap<String, ManualStats>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sum = |state: &str| match self {
            Store::Sqlite(_) => format!("SUM(CASE WHEN state = '{state}' THEN 1 ELSE 0 END)"),
            Store::Postgres(_) => format!("SUM(CASE WHEN state = '{state}' THEN 1 ELSE 0 END)::bigint"),
        };
        let sql = format!(
            "SELECT message_id, COUNT(*), {}, COUNT(sent_at), COUNT(seen_at), COUNT(clicked_at), COUNT(replied_at), {}, {} \
             FROM message_deliveries WHERE message_id IN ({}) GROUP BY message_id",
            sum("pending"),
            sum("failed"),
            sum("cancelled"),
            placeholders(1, ids.len())
        );
        type Counts = (String, i64, i64, i64, i64, i64, i64, i64, i64);
        let rows: Vec<Counts> = with_pool!(self, pool => {
            let mut q = sqlx::query_as(&sql);
            for id in ids {
                q = q.bind(id);
            }
            q.fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, recipients, pending, sent, seen, clicked, replied, failed, cancelled)| {
                (id, ManualStats { recipients, pending, sent, seen, clicked, replied, failed, cancelled })
            })
            .collect())
    }

    /// The messages due to have their recipients fixed at `now`: scheduled
    /// ones whose time has come, and sends a crash interrupted.
    pub async fn due_sends(&self, now: i64, limit: i64) -> StoreResult<Vec<String>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM manual_messages WHERE (state = 'scheduled' AND send_at <= $1) OR state = 'sending' \
             ORDER BY send_at, id LIMIT $2",
        )
        .bind(now).bind(limit).fetch_all(pool).await?))
    }

    /// Fixes the next chunk of a due message's recipients: one transaction
    /// that inserts their pending deliveries (`INSERT … SELECT`), moves the
    /// cursor, and when no user is left marks the message `sent` with its
    /// recipient count. `at`: the send's start (the time conditions are
    /// evaluated at, and the deliveries' creation time).
    pub async fn fix_recipients(
        &self,
        message_id: &str,
        now: i64,
        q: &RecipientQuery,
        at: i64,
    ) -> StoreResult<FixStep> {
        let pg = matches!(self, Store::Postgres(_));
        let lock = if pg {
            "SELECT app_id, fix_cursor FROM manual_messages WHERE id = $1 \
             AND ((state = 'scheduled' AND send_at <= $2) OR state = 'sending') FOR UPDATE SKIP LOCKED"
        } else {
            "SELECT app_id, fix_cursor FROM manual_messages WHERE id = $1 \
             AND ((state = 'scheduled' AND send_at <= $2) OR state = 'sending')"
        };
        let (id_expr, json_list, email_filter) = if pg {
            (
                "'m' || replace(gen_random_uuid()::text, '-', '')",
                "SELECT jsonb_array_elements_text($6::jsonb)",
                "u.email IS NOT NULL AND u.email <> '' \
                 AND COALESCE(u.properties->>'unsubscribedFromEmails', '') <> 'true'",
            )
        } else {
            (
                "'m' || lower(hex(randomblob(12)))",
                "SELECT value FROM json_each($6)",
                "u.email IS NOT NULL AND u.email <> '' \
                 AND COALESCE(json_extract(u.properties, '$.\"unsubscribedFromEmails\"'), 0) <> 1",
            )
        };
        let mut filter = String::new();
        if q.users.is_some() {
            filter.push_str(&format!(" AND u.id IN ({})", json_list.replace("$6", "$5")));
        }
        if !q.not_received.is_empty() {
            filter.push_str(&format!(
                " AND NOT EXISTS (SELECT 1 FROM message_deliveries r WHERE r.app_user_id = u.id \
                 AND r.sent_at IS NOT NULL AND r.message_id IN ({json_list}))"
            ));
        }
        if q.email {
            filter.push_str(&format!(" AND {email_filter}"));
        }
        let channel = if q.email { "email" } else { "in_app" };
        // $1 message, $2 app, $3 after (cursor), $4 upto (chunk end), $5 users, $6 not received, $7… conditions.
        let insert = format!(
            "INSERT INTO message_deliveries (id, app_id, message_id, app_user_id, channel, state, next_attempt_at, created_at) \
             SELECT {id_expr}, u.app_id, $1, u.id, '{channel}', 'pending', {next}, {at} FROM app_users u \
             WHERE u.app_id = $2 AND u.id > $3 AND {{upto_filter}}{filter} AND ({cond}) \
             ON CONFLICT (message_id, app_user_id) DO NOTHING",
            next = if q.email { at.to_string() } else { "NULL".into() },
            cond = q.conditions.sql,
        );
        // The chunk's bound is a plain range on (app_id, id) (an `OR` with
        // "no bound" would make the planners scan every user per chunk).
        let bounded = insert.replace("{upto_filter}", "u.id <= $4");
        let unbounded = insert.replace("{upto_filter}", "$4 = ''");
        let users_json = serde_json::to_string(q.users.as_deref().unwrap_or_default()).unwrap_or_default();
        let not_received_json = serde_json::to_string(&q.not_received).unwrap_or_default();
        Ok(with_pool!(self, pool => {
            let mut tx = match self {
                Store::Sqlite(_) => pool.begin_with("BEGIN IMMEDIATE").await?,
                Store::Postgres(_) => pool.begin().await?,
            };
            let row: Option<(String, Option<String>)> =
                sqlx::query_as(lock).bind(message_id).bind(now).fetch_optional(&mut *tx).await?;
            let Some((app_id, cursor)) = row else {
                return Ok(FixStep::Skipped);
            };
            let after = cursor.unwrap_or_default();
            // The chunk's last user: `FIX_CHUNK` users on (a selection is one chunk).
            let upto: Option<String> = if q.users.is_some() {
                None
            } else {
                sqlx::query_scalar(
                    "SELECT id FROM app_users WHERE app_id = $1 AND id > $2 ORDER BY id LIMIT 1 OFFSET $3",
                )
                .bind(&app_id).bind(&after).bind(FIX_CHUNK - 1)
                .fetch_optional(&mut *tx).await?
            };
            let sql = if upto.is_some() { &bounded } else { &unbounded };
            let mut ins = sqlx::query(sql)
                .bind(message_id).bind(&app_id).bind(&after).bind(upto.clone().unwrap_or_default())
                .bind(&users_json).bind(&not_received_json);
            for p in &q.conditions.params {
                ins = match p {
                    super::audience::Param::Text(s) => ins.bind(s.clone()),
                    super::audience::Param::Real(x) => ins.bind(*x),
                    super::audience::Param::Int(i) => ins.bind(*i),
                };
            }
            ins.execute(&mut *tx).await?;
            let step = match upto {
                Some(upto) => {
                    sqlx::query("UPDATE manual_messages SET state = 'sending', fix_cursor = $2, send_at = COALESCE(send_at, $3) WHERE id = $1")
                        .bind(message_id).bind(upto).bind(now).execute(&mut *tx).await?;
                    FixStep::More
                }
                None => {
                    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM message_deliveries WHERE message_id = $1")
                        .bind(message_id).fetch_one(&mut *tx).await?;
                    sqlx::query(
                        "UPDATE manual_messages SET state = 'sent', recipients = $2, fix_cursor = NULL, updated_at = $3 WHERE id = $1",
                    )
                    .bind(message_id).bind(n).bind(now).execute(&mut *tx).await?;
                    FixStep::Done(n)
                }
            };
            tx.commit().await?;
            step
        }))
    }

    /// Stops a message for good: cancels its pending deliveries in the same
    /// transaction. `None` if it cannot be stopped (a draft, or stopped
    /// already); else how many deliveries were cancelled.
    pub async fn stop_manual(&self, app_id: &str, id: &str, now: i64) -> StoreResult<Option<u64>> {
        Ok(with_pool!(self, pool => {
            let mut tx = match self {
                Store::Sqlite(_) => pool.begin_with("BEGIN IMMEDIATE").await?,
                Store::Postgres(_) => pool.begin().await?,
            };
            let n = sqlx::query(
                "UPDATE manual_messages SET state = 'stopped', stopped_at = $3, updated_at = $3, fix_cursor = NULL \
                 WHERE id = $1 AND app_id = $2 AND state IN ('scheduled', 'sending', 'sent')",
            )
            .bind(id).bind(app_id).bind(now).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Ok(None);
            }
            let cancelled = sqlx::query("UPDATE message_deliveries SET state = 'cancelled' WHERE message_id = $1 AND state = 'pending'")
                .bind(id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Some(cancelled)
        }))
    }

    /// Of `users`, those with a pending in-app delivery of `message_id`.
    pub async fn pending_cards_of(&self, message_id: &str, users: &[String]) -> StoreResult<Vec<PendingCard>> {
        let mut out = vec![];
        for chunk in users.chunks(500) {
            let sql = format!(
                "SELECT id AS delivery_id, app_user_id, message_id, created_at FROM message_deliveries \
                 WHERE message_id = $1 AND state = 'pending' AND channel = 'in_app' AND app_user_id IN ({})",
                placeholders(2, chunk.len())
            );
            let rows: Vec<PendingCard> = with_pool!(self, pool => {
                let mut q = sqlx::query_as(&sql).bind(message_id);
                for u in chunk {
                    q = q.bind(u);
                }
                q.fetch_all(pool).await?
            });
            out.extend(rows);
        }
        Ok(out)
    }

    /// A user's pending in-app deliveries (a starting widget's user).
    pub async fn pending_cards_for_user(&self, app_user_id: &str) -> StoreResult<Vec<PendingCard>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT id AS delivery_id, app_user_id, message_id, created_at FROM message_deliveries \
             WHERE app_user_id = $1 AND state = 'pending' AND channel = 'in_app' ORDER BY created_at, id LIMIT 50",
        )
        .bind(app_user_id).fetch_all(pool).await?))
    }

    /// Claims pending in-app deliveries as sent with their rendered cards,
    /// in one transaction; returns the rows actually claimed (a delivery
    /// cancelled by a stop, or claimed elsewhere, is not).
    pub async fn claim_cards(&self, cards: &[(PendingCard, String)], now: i64) -> StoreResult<Vec<DeliveryRow>> {
        let mut out = Vec::with_capacity(cards.len());
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (c, rendered) in cards {
                let n = sqlx::query(
                    "UPDATE message_deliveries SET state = 'sent', sent_at = $2, rendered = $3, sent_via = 'widget' WHERE id = $1 AND state = 'pending'",
                )
                .bind(&c.delivery_id).bind(now).bind(rendered).execute(&mut *tx).await?.rows_affected();
                if n == 1 {
                    out.push(DeliveryRow {
                        id: c.delivery_id.clone(),
                        app_user_id: c.app_user_id.clone(),
                        whisper_id: c.message_id.clone(),
                        state: "sent".into(),
                        rendered: rendered.clone(),
                        sent_at: Some(now),
                        seen_at: None,
                        created_at: now,
                    });
                }
            }
            tx.commit().await?;
        });
        Ok(out)
    }

    /// Claims up to `limit` email deliveries due at `now` for an attempt:
    /// each is held until `now + window` (a crash mid-attempt retries after
    /// that), its attempt counted. PostgreSQL instances never claim the same row.
    pub async fn claim_emails(&self, now: i64, window: i64, limit: i64) -> StoreResult<Vec<EmailJob>> {
        let pick = match self {
            Store::Sqlite(_) => {
                "SELECT id FROM message_deliveries WHERE channel = 'email' AND state = 'pending' AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at LIMIT $2"
            }
            Store::Postgres(_) => {
                "SELECT id FROM message_deliveries WHERE channel = 'email' AND state = 'pending' AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED"
            }
        };
        let sql = format!(
            "UPDATE message_deliveries SET attempts = attempts + 1, next_attempt_at = $3 WHERE id IN ({pick}) \
             RETURNING id, app_id, message_id, app_user_id, attempts"
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as(&sql).bind(now).bind(limit).bind(now + window).fetch_all(pool).await?),
        )
    }

    /// Records an email attempt's outcome: sent; or failed for good; or to
    /// retry at `retry_at`. A delivery stopped meanwhile that did go out is
    /// still recorded as sent.
    pub async fn email_outcome(&self, id: &str, now: i64, outcome: Result<(), (&str, Option<i64>)>) -> StoreResult<()> {
        with_pool!(self, pool => {
            match outcome {
                Ok(()) => sqlx::query(
                    "UPDATE message_deliveries SET state = 'sent', sent_at = $2, sent_via = 'email', error = NULL, next_attempt_at = NULL \
                     WHERE id = $1 AND state IN ('pending', 'cancelled')",
                )
                .bind(id).bind(now).execute(pool).await?,
                Err((error, Some(at))) => sqlx::query(
                    "UPDATE message_deliveries SET next_attempt_at = $2, error = $3 WHERE id = $1 AND state = 'pending'",
                )
                .bind(id).bind(at).bind(error).execute(pool).await?,
                Err((error, None)) => sqlx::query(
                    "UPDATE message_deliveries SET state = 'failed', failed_at = $2, error = $3, next_attempt_at = NULL \
                     WHERE id = $1 AND state = 'pending'",
                )
                .bind(id).bind(now).bind(error).execute(pool).await?,
            };
        });
        Ok(())
    }

    /// Users by murmur id (the send workers render for them).
    pub async fn users_by_ids(&self, ids: &[String]) -> StoreResult<Vec<AppUserRow>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql =
                format!("SELECT {} FROM app_users WHERE id IN ({})", self.user_columns(), placeholders(1, chunk.len()));
            let rows: Vec<AppUserRow> = with_pool!(self, pool => {
                let mut q = sqlx::query_as(&sql);
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(pool).await?
            });
            out.extend(rows);
        }
        Ok(out)
    }

    /// A message's recipients, in id order from `after`.
    pub async fn manual_recipients(&self, message_id: &str, after: &str, limit: i64) -> StoreResult<Vec<RecipientRow>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT d.id AS delivery_id, d.app_user_id, u.user_id, u.given_name, u.surname, u.email, d.state, \
             d.sent_at, d.seen_at, d.error FROM message_deliveries d JOIN app_users u ON u.id = d.app_user_id \
             WHERE d.message_id = $1 AND d.app_user_id > $2 ORDER BY d.app_user_id LIMIT $3",
        )
        .bind(message_id).bind(after).bind(limit).fetch_all(pool).await?))
    }

    /// The manual messages a user has received (pending ones are not
    /// shown until sent), newest first, with their titles and kinds.
    pub async fn user_manual(
        &self,
        app_user_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<(String, String, String, String, i64)>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT m.id, m.title, m.kind, d.state, d.sent_at FROM message_deliveries d \
             JOIN manual_messages m ON m.id = d.message_id \
             WHERE d.app_user_id = $1 AND d.sent_at IS NOT NULL ORDER BY d.sent_at DESC, d.id DESC LIMIT $2",
        )
        .bind(app_user_id).bind(limit).fetch_all(pool).await?))
    }

    /// The ids among `ids` that are users of `app_id`.
    pub async fn app_user_ids(&self, app_id: &str, ids: &[String]) -> StoreResult<Vec<String>> {
        let mut out = vec![];
        for chunk in ids.chunks(500) {
            let sql =
                format!("SELECT id FROM app_users WHERE app_id = $1 AND id IN ({})", placeholders(2, chunk.len()));
            let rows: Vec<String> = with_pool!(self, pool => {
                let mut q = sqlx::query_scalar(&sql).bind(app_id);
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(pool).await?
            });
            out.extend(rows);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("Ann"), "%ann%");
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
