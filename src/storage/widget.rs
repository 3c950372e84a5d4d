//! What the widget needs from the database: the app's identity settings,
//! anonymous and identified users (and merging the one into the other),
//! deliveries of whispers and the conversation since a point in time.

use super::{with_pool, AppUserRow, MessageRow, Planned, Store, StoreError, StoreResult};

/// Inserts deliveries (`&[NewDelivery]`) inside the open transaction `$tx`,
/// `ON CONFLICT DO NOTHING`; evaluates to the set of ids actually created.
/// A macro so that one body serves both backends' transactions.
macro_rules! insert_deliveries {
    ($tx:ident, $batch:expr) => {{
        let mut created = std::collections::HashSet::<String>::new();
        for chunk in $batch.chunks(200) {
            let sql = $crate::storage::widget::insert_deliveries_sql(chunk.len());
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for d in chunk {
                q = q
                    .bind(&d.id)
                    .bind(&d.app_id)
                    .bind(&d.whisper_id)
                    .bind(&d.app_user_id)
                    .bind(d.revision)
                    .bind(d.state())
                    .bind(&d.rendered)
                    .bind(d.sent.then_some(d.now))
                    .bind(d.now);
            }
            created.extend(q.fetch_all(&mut *$tx).await?);
        }
        created
    }};
}
pub(crate) use insert_deliveries;

/// Records a plan's due time for one user inside the open transaction
/// `$tx` (see `Planned`): set, moved, or dropped.
macro_rules! set_due {
    ($tx:ident, $app_id:expr, $user_id:expr, $planned:expr) => {{
        let planned: &$crate::storage::Planned = &$planned;
        match (planned.sets_due, planned.due) {
            (false, _) => {}
            (true, None) => {
                sqlx::query("DELETE FROM whisper_due WHERE app_user_id = $1").bind($user_id).execute(&mut *$tx).await?;
            }
            (true, Some(at)) => {
                // Written only when it changes.
                sqlx::query(
                    "INSERT INTO whisper_due (app_user_id, app_id, due_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (app_user_id) DO UPDATE SET due_at = excluded.due_at \
                     WHERE whisper_due.due_at <> excluded.due_at",
                )
                .bind($user_id)
                .bind($app_id)
                .bind(at)
                .execute(&mut *$tx)
                .await?;
            }
        }
    }};
}
pub(crate) use set_due;

/// The multi-row insert of `rows` deliveries (nine parameters each).
pub(crate) fn insert_deliveries_sql(rows: usize) -> String {
    const COLS: usize = 9;
    let values = (0..rows)
        .map(|i| {
            let p: Vec<String> = (1..=COLS).map(|c| format!("${}", i * COLS + c)).collect();
            format!("({})", p.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO deliveries (id, app_id, whisper_id, app_user_id, revision, state, rendered, sent_at, created_at) \
         VALUES {values} ON CONFLICT (whisper_id, app_user_id) DO NOTHING RETURNING id"
    )
}

/// A starting widget's user to find or create (see `Store::widget_users_batch`).
#[derive(Debug, Clone)]
pub struct WidgetUser {
    pub app_id: String,
    /// An identified user; `None`: the device's anonymous user.
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    /// The id a new user gets.
    pub new_id: String,
    pub now: i64,
}

/// An app as the widget sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WidgetApp {
    pub id: String,
    pub identity_secret_enc: Vec<u8>,
    pub identity_enforced: bool,
    /// The app's VAPID public key while push is on.
    pub push_key: Option<String>,
}

/// A card delivered (or about to be) to one user: a whisper's, or a
/// manual message's (its id starts with `m`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub app_user_id: String,
    /// The whisper, or the manual message.
    pub whisper_id: String,
    pub state: String,
    /// The card as JSON (`server::widget::Card`), exactly as delivered.
    pub rendered: String,
    pub sent_at: Option<i64>,
    pub seen_at: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub app_id: String,
    pub whisper_id: String,
    pub app_user_id: String,
    pub revision: i64,
    pub rendered: String,
    pub now: i64,
    /// Made while the user has a widget open on this instance: stored as
    /// `sent` at once (it is pushed right after), else `pending`.
    pub sent: bool,
}

impl NewDelivery {
    /// The row as stored, once inserted.
    pub fn row(&self) -> DeliveryRow {
        DeliveryRow {
            id: self.id.clone(),
            app_user_id: self.app_user_id.clone(),
            whisper_id: self.whisper_id.clone(),
            state: self.state().into(),
            rendered: self.rendered.clone(),
            sent_at: self.sent.then_some(self.now),
            seen_at: None,
            created_at: self.now,
        }
    }

    pub(crate) fn state(&self) -> &'static str {
        if self.sent {
            "sent"
        } else {
            "pending"
        }
    }
}

/// What the widget reports about a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reaction {
    Seen,
    Clicked,
    Replied,
}

const DELIVERY_COLUMNS: &str =
    "d.id, d.app_user_id, d.whisper_id, d.state, d.rendered, d.sent_at, d.seen_at, d.created_at";

impl Store {
    pub async fn widget_app(&self, app_id: &str) -> StoreResult<Option<WidgetApp>> {
        Ok(with_pool!(self, pool => {
            let row: Option<(String, Vec<u8>, i64, Option<String>)> = match self {
                Store::Sqlite(_) => sqlx::query_as(
                    "SELECT id, identity_secret_enc, identity_enforced, CASE WHEN push_enabled = 1 THEN vapid_public END \
                     FROM apps WHERE id = $1",
                ),
                Store::Postgres(_) => sqlx::query_as(
                    "SELECT id, identity_secret_enc, identity_enforced::int4::int8, CASE WHEN push_enabled THEN vapid_public END \
                     FROM apps WHERE id = $1",
                ),
            }
            .bind(app_id)
            .fetch_optional(pool)
            .await?;
            row.map(|(id, identity_secret_enc, e, push_key)| WidgetApp {
                id,
                identity_secret_enc,
                identity_enforced: e != 0,
                push_key,
            })
        }))
    }

    pub async fn set_identity_enforced(&self, app_id: &str, enforced: bool) -> StoreResult<()> {
        let sql = match self {
            Store::Sqlite(_) => "UPDATE apps SET identity_enforced = CASE WHEN $2 THEN 1 ELSE 0 END WHERE id = $1",
            Store::Postgres(_) => "UPDATE apps SET identity_enforced = $2 WHERE id = $1",
        };
        with_pool!(self, pool => {
            sqlx::query(sql).bind(app_id).bind(enforced).execute(pool).await?;
        });
        Ok(())
    }

    /// Finds or creates the users of starting widgets, in one transaction
    /// (one commit for a storm of reconnecting widgets), each in its own
    /// savepoint: an identified user (`user_id`, merging the device's
    /// anonymous user into them) or a device's anonymous user. A `user_id`
    /// equal to another user's murmur id is refused (`Duplicate`).
    pub async fn widget_users_batch(&self, batch: &[WidgetUser]) -> StoreResult<Vec<StoreResult<AppUserRow>>> {
        let empty = match self {
            Store::Sqlite(_) => "jsonb('{}')",
            Store::Postgres(_) => "'{}'",
        };
        let insert_identified = format!(
            "INSERT INTO app_users (id, app_id, user_id, signed_up_at, properties, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, {empty}, $4, $4) ON CONFLICT (app_id, user_id) DO NOTHING"
        );
        let insert_device = format!(
            "INSERT INTO app_users (id, app_id, device_id, signed_up_at, properties, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, {empty}, $4, $4) ON CONFLICT (app_id, device_id) DO NOTHING"
        );
        let by_user_id = format!("SELECT {} FROM app_users WHERE app_id = $1 AND user_id = $2", self.user_columns());
        let by_device = format!("SELECT {} FROM app_users WHERE app_id = $1 AND device_id = $2", self.user_columns());
        let mut out = Vec::with_capacity(batch.len());
        with_pool!(self, pool => {
            let mut tx = match self {
                Store::Sqlite(_) => pool.begin_with("BEGIN IMMEDIATE").await?,
                Store::Postgres(_) => pool.begin().await?,
            };
            for job in batch {
                let mut sp = sqlx::Acquire::begin(&mut tx).await?;
                let result: StoreResult<AppUserRow> = async {
                    // Insert unless there, then read: on PostgreSQL a delete
                    // committed between the two (the user was there, then
                    // is not) leaves nothing to read, and the insert is
                    // tried again (`RACES` times at most).
                    const RACES: usize = 3;
                    let Some(user_id) = &job.user_id else {
                        let device = job.device_id.as_deref().unwrap_or_default();
                        for _ in 0..RACES {
                            sqlx::query(&insert_device).bind(&job.new_id).bind(&job.app_id).bind(device).bind(job.now)
                                .execute(&mut *sp).await?;
                            let row = sqlx::query_as(&by_device).bind(&job.app_id).bind(device).fetch_optional(&mut *sp).await?;
                            if let Some(row) = row {
                                return Ok(row);
                            }
                        }
                        return Err(sqlx::Error::RowNotFound.into());
                    };
                    if super::users::id_taken!(sp, &job.app_id, user_id) {
                        return Err(super::StoreError::Duplicate);
                    }
                    let mut found: Option<AppUserRow> = None;
                    for _ in 0..RACES {
                        sqlx::query(&insert_identified).bind(&job.new_id).bind(&job.app_id).bind(user_id).bind(job.now)
                            .execute(&mut *sp).await?;
                        found = sqlx::query_as(&by_user_id).bind(&job.app_id).bind(user_id).fetch_optional(&mut *sp).await?;
                        if found.is_some() {
                            break;
                        }
                    }
                    let Some(row) = found else { return Err(sqlx::Error::RowNotFound.into()) };
                    let Some(device) = &job.device_id else { return Ok(row) };
                    let anon: Option<String> = sqlx::query_scalar(
                        "SELECT id FROM app_users WHERE app_id = $1 AND device_id = $2 AND user_id IS NULL AND id <> $3",
                    )
                    .bind(&job.app_id)
                    .bind(device)
                    .bind(&row.id)
                    .fetch_optional(&mut *sp)
                    .await?;
                    if let Some(anon) = anon {
                        // The app's users held from event writers
                        // (`users_guard`): the anonymous user's events in
                        // flight land before they are moved.
                        if let Some(guard) = self.users_guard(true) {
                            sqlx::query(guard).bind(&job.app_id).execute(&mut *sp).await?;
                        }
                        // Conversations first: their messages point at them.
                        // Events: the anonymous user's, folded or not
                        // (`user_events_union`), then the index itself.
                        let events = format!(
                            "UPDATE events SET app_user_id = $1 WHERE id IN (SELECT id FROM {})",
                            self.user_events_union("$2", "TRUE", None)
                        );
                        for sql in [
                            "UPDATE conversations SET app_user_id = $1 WHERE app_user_id = $2",
                            "UPDATE messages SET app_user_id = $1 WHERE app_user_id = $2",
                            &events,
                            "UPDATE events_by_user SET app_user_id = $1 WHERE app_user_id = $2",
                        ] {
                            sqlx::query(sql).bind(&row.id).bind(&anon).execute(&mut *sp).await?;
                        }
                        sqlx::query(
                            "UPDATE deliveries SET app_user_id = $1 WHERE app_user_id = $2 \
                             AND whisper_id NOT IN (SELECT whisper_id FROM deliveries WHERE app_user_id = $1)",
                        )
                        .bind(&row.id)
                        .bind(&anon)
                        .execute(&mut *sp)
                        .await?;
                        // Who did each event: the anonymous user's pairs
                        // (folded already) become theirs before they go.
                        sqlx::query(
                            "INSERT INTO event_users (app_user_id, name) \
                             SELECT $1, name FROM event_users WHERE app_user_id = $2 ON CONFLICT DO NOTHING",
                        )
                        .bind(&row.id)
                        .bind(&anon)
                        .execute(&mut *sp)
                        .await?;
                        sqlx::query("DELETE FROM app_users WHERE id = $1").bind(&anon).execute(&mut *sp).await?;
                    }
                    Ok(row)
                }
                .await;
                if result.is_ok() {
                    sp.commit().await?;
                } else {
                    sp.rollback().await?;
                }
                out.push(result);
            }
            tx.commit().await?;
        });
        Ok(out)
    }

    /// Records a delivery unless the user already has one for this whisper
    /// (on any server instance): true if this call created it.
    pub async fn insert_delivery(&self, d: &NewDelivery) -> StoreResult<bool> {
        Ok(self.insert_deliveries_batch(std::slice::from_ref(d)).await?[0])
    }

    /// Records several deliveries in one transaction (one durable commit);
    /// per delivery, whether it was created (false: the user already had
    /// that whisper, from an earlier call, another instance, or earlier in
    /// this same batch).
    pub async fn insert_deliveries_batch(&self, batch: &[NewDelivery]) -> StoreResult<Vec<bool>> {
        let created = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let created = insert_deliveries!(tx, batch);
            tx.commit().await?;
            created
        });
        Ok(batch.iter().map(|d| created.contains(&d.id)).collect())
    }

    /// Marks deliveries as sent (pushed to an open widget); idempotent.
    pub async fn mark_sent(&self, ids: &[String], now: i64) -> StoreResult<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for id in ids {
                sqlx::query("UPDATE deliveries SET state = 'sent', sent_at = $2, sent_via = 'widget' WHERE id = $1 AND sent_at IS NULL AND state = 'pending'")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records what users did with cards of theirs, in one transaction:
    /// `(app_user_id, delivery_id, reaction, at)`. Each step implies the
    /// ones before it (a click was seen, and sent); times are kept from the
    /// first report. Per report, false if the delivery is not that user's.
    pub async fn react_batch(&self, batch: &[(String, String, Reaction, i64)]) -> StoreResult<Vec<bool>> {
        let sql = |rank: i64| {
            format!(
                "UPDATE deliveries SET \
                   sent_at = COALESCE(sent_at, $3), \
                   seen_at = COALESCE(seen_at, $3), \
                   clicked_at = {}, \
                   replied_at = {}, \
                   state = CASE WHEN state IN ('pending', 'sent') OR (state = 'seen' AND $4 >= 2) \
                                OR (state = 'clicked' AND $4 >= 3) THEN $5 ELSE state END \
                 WHERE id = $1 AND app_user_id = $2 AND state <> 'cancelled'",
                if rank >= 2 { "COALESCE(clicked_at, $3)" } else { "clicked_at" },
                if rank >= 3 { "COALESCE(replied_at, $3)" } else { "replied_at" },
            )
        };
        let sqls = [sql(1), sql(2), sql(3)];
        // A manual message's delivery ids start with 'm' (never a hex digit).
        let message_sqls = sqls.clone().map(|s| s.replacen("UPDATE deliveries", "UPDATE message_deliveries", 1));
        let mut out = Vec::with_capacity(batch.len());
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (user, delivery, r, now) in batch {
                let (state, rank) = match r {
                    Reaction::Seen => ("seen", 1i64),
                    Reaction::Clicked => ("clicked", 2),
                    Reaction::Replied => ("replied", 3),
                };
                let sql = if delivery.starts_with('m') { &message_sqls } else { &sqls };
                let n = sqlx::query(&sql[rank as usize - 1])
                    .bind(delivery)
                    .bind(user)
                    .bind(now)
                    .bind(rank)
                    .bind(state)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                out.push(n == 1);
            }
            tx.commit().await?;
        });
        Ok(out)
    }

    /// One report: a batch of one.
    pub async fn react(&self, app_user_id: &str, delivery_id: &str, r: Reaction, now: i64) -> StoreResult<bool> {
        let one = (app_user_id.to_string(), delivery_id.to_string(), r, now);
        Ok(self.react_batch(std::slice::from_ref(&one)).await?[0])
    }

    /// A user's deliveries the widget may show, oldest first, the last
    /// `limit`: every one already sent, and the pending ones of whispers
    /// still active (a paused whisper's pending cards wait for its resume).
    pub async fn user_deliveries(&self, app_user_id: &str, limit: i64) -> StoreResult<Vec<DeliveryRow>> {
        // Whisper cards, and the manual messages' in-app cards already sent
        // (a pending one is claimed and rendered by the engine at start).
        let sql = format!(
            "SELECT * FROM (SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.app_user_id = $1 AND d.state NOT IN ('cancelled', 'failed') \
               AND (d.sent_at IS NOT NULL OR EXISTS (SELECT 1 FROM whispers w WHERE w.id = d.whisper_id AND w.status = 'active')) \
             UNION ALL SELECT m.id, m.app_user_id, m.message_id AS whisper_id, m.state, m.rendered, m.sent_at, m.seen_at, \
               m.sent_at AS created_at FROM message_deliveries m WHERE m.app_user_id = $1 AND m.channel = 'in_app' \
               AND m.sent_at IS NOT NULL AND m.rendered IS NOT NULL AND m.state <> 'cancelled') c \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let mut rows: Vec<DeliveryRow> =
            with_pool!(self, pool => sqlx::query_as(&sql).bind(app_user_id).bind(limit).fetch_all(pool).await?);
        rows.reverse();
        Ok(rows)
    }

    /// A user's whisper cards as the team sees them (pending ones too),
    /// newest `limit`, oldest first, with each whisper's name.
    pub async fn user_cards(&self, app_user_id: &str, limit: i64) -> StoreResult<Vec<(DeliveryRow, String)>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS}, w.name AS whisper_name FROM deliveries d JOIN whispers w ON w.id = d.whisper_id \
             WHERE d.app_user_id = $1 ORDER BY d.created_at DESC, d.id DESC LIMIT $2"
        );
        #[derive(sqlx::FromRow)]
        struct CardRow {
            #[sqlx(flatten)]
            d: DeliveryRow,
            whisper_name: String,
        }
        let rows: Vec<CardRow> =
            with_pool!(self, pool => sqlx::query_as(&sql).bind(app_user_id).bind(limit).fetch_all(pool).await?);
        Ok(rows.into_iter().rev().map(|r| (r.d, r.whisper_name)).collect())
    }

    pub async fn delivery(&self, id: &str) -> StoreResult<Option<DeliveryRow>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.id = $1");
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    /// One message with its user's id.
    pub async fn message(&self, id: &str) -> StoreResult<Option<(String, MessageRow)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            app_user_id: String,
            #[sqlx(flatten)]
            m: MessageRow,
        }
        let row: Option<Row> = with_pool!(self, pool => sqlx::query_as(
            "SELECT app_user_id, id, role, name, text, created_at, conversation_id FROM messages WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|r| (r.app_user_id, r.m)))
    }

    /// A user's messages from `since` (inclusive), oldest first, at most `limit`.
    pub async fn messages_since(&self, app_user_id: &str, since: i64, limit: i64) -> StoreResult<Vec<MessageRow>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT id, role, name, text, created_at, conversation_id FROM messages WHERE app_user_id = $1 AND created_at >= $2 \
             ORDER BY created_at, id LIMIT $3",
        )
        .bind(app_user_id)
        .bind(since)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    /// The app's active whispers.
    pub async fn active_whispers(&self, app_id: &str) -> StoreResult<Vec<super::WhisperRow>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT id, app_id, name, status, definition, revision, created_at, updated_at FROM whispers \
             WHERE app_id = $1 AND status = 'active' ORDER BY created_at, id",
        )
        .bind(app_id)
        .fetch_all(pool)
        .await?))
    }

    /// Makes every user of the app who has not received the whisper due
    /// now (if it is an active property-match whisper): the scheduler's
    /// next ticks check each of them once and keep the ones who will match
    /// later at their time. One statement: durable at once, so a crash
    /// loses none of them.
    pub async fn schedule_everyone(&self, app_id: &str, whisper_id: &str, now: i64) -> StoreResult<u64> {
        // On PostgreSQL a user being deleted meanwhile can be read here and
        // gone by the insert (its foreign key fails): the statement is then
        // run again, and that user is no longer read. (Holding every user's
        // row instead would write a lock into each of them.)
        let mut attempt = 0;
        loop {
            let result = with_pool!(self, pool => sqlx::query(
                "INSERT INTO whisper_due (app_user_id, app_id, due_at) \
                 SELECT u.id, u.app_id, $3 FROM whispers w JOIN app_users u ON u.app_id = w.app_id \
                 WHERE w.app_id = $1 AND w.id = $2 AND w.status = 'active' AND w.deleted_at IS NULL \
                   AND w.trigger_kind = 'property_match' \
                   AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.whisper_id = w.id AND d.app_user_id = u.id) \
                 ON CONFLICT (app_user_id) DO UPDATE SET due_at = excluded.due_at \
                 WHERE excluded.due_at < whisper_due.due_at",
            )
            .bind(app_id)
            .bind(whisper_id)
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
            .map_err(StoreError::from);
            match result {
                Ok(rows) => return Ok(rows),
                Err(e) if attempt < 3 && e.foreign_key_failed() => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The apps with users due at `now` (the scheduler loads their
    /// whispers before it claims rows).
    pub async fn due_apps(&self, now: i64, limit: i64) -> StoreResult<Vec<String>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT DISTINCT app_id FROM (SELECT app_id FROM whisper_due WHERE due_at <= $1 ORDER BY due_at LIMIT $2) d",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    /// One scheduler tick: claims up to `limit` due users (on PostgreSQL
    /// with `FOR UPDATE SKIP LOCKED`, so instances share the work and never
    /// take the same row), asks `plan` what each user gets now (given the
    /// whispers they have received) and when they are next due, stores the
    /// deliveries and the new due times, and drops the claimed rows — all in
    /// one transaction, in a few statements per batch: a crash loses
    /// nothing (the rows stay due) and the unique delivery row makes a retry
    /// deliver nothing twice. Returns the claimed count and the new
    /// deliveries.
    pub async fn run_due(
        &self,
        now: i64,
        limit: i64,
        plan: &(dyn Fn(&AppUserRow, &super::Received) -> Planned + Sync),
    ) -> StoreResult<(usize, Vec<DeliveryRow>)> {
        let claim = match self {
            Store::Sqlite(_) => "SELECT app_user_id FROM whisper_due WHERE due_at <= $1 ORDER BY due_at LIMIT $2",
            Store::Postgres(_) => {
                "SELECT app_user_id FROM whisper_due WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED"
            }
        };
        let mut delivered = vec![];
        let claimed = with_pool!(self, pool => {
            let mut tx = match self {
                Store::Sqlite(_) => pool.begin_with("BEGIN IMMEDIATE").await?,
                Store::Postgres(_) => pool.begin().await?,
            };
            let ids: Vec<String> = sqlx::query_scalar(claim).bind(now).bind(limit).fetch_all(&mut *tx).await?;
            if !ids.is_empty() {
                let list = (0..ids.len()).map(|i| format!("${}", i + 1)).collect::<Vec<_>>().join(", ");
                let sql = format!("DELETE FROM whisper_due WHERE app_user_id IN ({list})");
                let mut q = sqlx::query(&sql);
                for id in &ids {
                    q = q.bind(id);
                }
                q.execute(&mut *tx).await?;
                let sql = format!("SELECT {} FROM app_users WHERE id IN ({list})", self.user_columns());
                let mut q = sqlx::query_as::<_, AppUserRow>(&sql);
                for id in &ids {
                    q = q.bind(id);
                }
                let users = q.fetch_all(&mut *tx).await?;
                let sql = format!("SELECT app_user_id, whisper_id FROM deliveries WHERE app_user_id IN ({list})");
                let mut q = sqlx::query_as::<_, (String, String)>(&sql);
                for id in &ids {
                    q = q.bind(id);
                }
                let mut received: std::collections::HashMap<String, super::Received> = Default::default();
                for (user, whisper) in q.fetch_all(&mut *tx).await? {
                    received.entry(user).or_default().insert(whisper);
                }
                let none = super::Received::default();
                let mut planned = vec![];
                let mut due: Vec<(&AppUserRow, i64)> = vec![];
                for user in &users {
                    let p = plan(user, received.get(&user.id).unwrap_or(&none));
                    if let Some(at) = p.due {
                        due.push((user, at));
                    }
                    planned.extend(p.deliveries);
                }
                let created = insert_deliveries!(tx, planned);
                delivered.extend(planned.iter().filter(|d| created.contains(&d.id)).map(NewDelivery::row));
                for chunk in due.chunks(300) {
                    let values = (0..chunk.len())
                        .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "INSERT INTO whisper_due (app_user_id, app_id, due_at) VALUES {values} \
                         ON CONFLICT (app_user_id) DO UPDATE SET due_at = excluded.due_at"
                    );
                    let mut q = sqlx::query(&sql);
                    for (user, at) in chunk {
                        q = q.bind(&user.id).bind(&user.app_id).bind(*at);
                    }
                    q.execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            ids.len()
        });
        Ok((claimed, delivered))
    }

    /// How many rows are due at `now` (for tests and the dashboard).
    pub async fn due_count(&self, now: i64) -> StoreResult<i64> {
        Ok(with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM whisper_due WHERE due_at <= $1")
            .bind(now)
            .fetch_one(pool)
            .await?))
    }

    /// Tells every server instance listening (PostgreSQL) on `murmur`.
    pub async fn notify(&self, payload: &str) -> StoreResult<()> {
        self.notify_all(&[payload.to_string()]).await
    }

    /// Several notices in one round trip.
    pub async fn notify_all(&self, payloads: &[String]) -> StoreResult<()> {
        if let (Store::Postgres(pool), false) = (self, payloads.is_empty()) {
            sqlx::query("SELECT pg_notify('murmur', p) FROM unnest($1::text[]) AS p")
                .bind(payloads)
                .execute(pool)
                .await?;
        }
        Ok(())
    }
}
