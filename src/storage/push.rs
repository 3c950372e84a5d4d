//! Web Push: each app's VAPID keys and switch, the browsers' subscriptions,
//! and the push outbox (`push_jobs`: one row per delivery that goes out as
//! a push if it is still unseen when due).

use super::{classify, new_id, with_pool, Store, StoreResult};

/// An app's push settings: on/off, and its VAPID key pair (the private key
/// sealed) once generated.
#[derive(Clone, sqlx::FromRow)]
pub struct PushSettings {
    pub enabled: bool,
    pub public_key: Option<String>,
    pub private_enc: Option<Vec<u8>>,
}

impl std::fmt::Debug for PushSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSettings")
            .field("enabled", &self.enabled)
            .field("public_key", &self.public_key)
            .field("private_enc", &self.private_enc.as_ref().map(|_| "<sealed>"))
            .finish()
    }
}

/// A browser's subscription, as the widget sent it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PushSubscriptionRow {
    pub id: String,
    pub app_id: String,
    pub app_user_id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub page_url: String,
    pub created_at: i64,
}

/// What a delivery is, for the push worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    Whisper,
    Message,
}

impl PushKind {
    fn as_str(self) -> &'static str {
        match self {
            PushKind::Whisper => "whisper",
            PushKind::Message => "message",
        }
    }
}

/// A claimed push job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PushJob {
    pub delivery_id: String,
    pub kind: String,
    pub app_id: String,
    pub app_user_id: String,
    pub attempts: i64,
}

/// How many subscriptions one user keeps (their browsers and devices); the
/// oldest go first.
pub const MAX_SUBSCRIPTIONS_PER_USER: i64 = 10;

impl Store {
    /// The app's push settings; `None` if there is no such app.
    pub async fn push_settings(&self, app_id: &str) -> StoreResult<Option<PushSettings>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT push_enabled AS enabled, vapid_public AS public_key, vapid_private_enc AS private_enc FROM apps WHERE id = $1",
        )
        .bind(app_id)
        .fetch_optional(pool)
        .await?))
    }

    /// Stores a new VAPID key pair (every subscription made with the old
    /// public key is useless now, so they go in the same transaction).
    /// False if there is no such app.
    pub async fn set_vapid_keys(&self, app_id: &str, public_key: &str, private_enc: &[u8]) -> StoreResult<bool> {
        let n = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("UPDATE apps SET vapid_public = $2, vapid_private_enc = $3 WHERE id = $1")
                .bind(app_id)
                .bind(public_key)
                .bind(private_enc)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM push_subscriptions WHERE app_id = $1").bind(app_id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM push_jobs WHERE app_id = $1").bind(app_id).execute(&mut *tx).await?;
            tx.commit().await?;
            n
        });
        Ok(n == 1)
    }

    /// Turns push on or off; on needs keys. False if there is no such app
    /// (or no keys to turn on with).
    pub async fn set_push_enabled(&self, app_id: &str, enabled: bool) -> StoreResult<bool> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE apps SET push_enabled = $2 WHERE id = $1 AND (vapid_public IS NOT NULL OR NOT $2)",
        )
        .bind(app_id)
        .bind(enabled)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// How many browsers are subscribed in the app.
    pub async fn push_subscription_count(&self, app_id: &str) -> StoreResult<i64> {
        Ok(with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM push_subscriptions WHERE app_id = $1")
            .bind(app_id)
            .fetch_one(pool)
            .await?))
    }

    /// Stores a browser's subscription for a user. The same endpoint again
    /// (a browser re-subscribing, or another user signing in on it) replaces
    /// the old row; past `MAX_SUBSCRIPTIONS_PER_USER` the user's oldest go.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_push_subscription(
        &self,
        app_id: &str,
        app_user_id: &str,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        page_url: &str,
        now: i64,
    ) -> StoreResult<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM push_subscriptions WHERE app_id = $1 AND endpoint = $2")
                .bind(app_id)
                .bind(endpoint)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO push_subscriptions (id, app_id, app_user_id, endpoint, p256dh, auth, page_url, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(new_id())
            .bind(app_id)
            .bind(app_user_id)
            .bind(endpoint)
            .bind(p256dh)
            .bind(auth)
            .bind(page_url)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            sqlx::query(
                "DELETE FROM push_subscriptions WHERE app_user_id = $1 AND id NOT IN \
                 (SELECT id FROM push_subscriptions WHERE app_user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)",
            )
            .bind(app_user_id)
            .bind(MAX_SUBSCRIPTIONS_PER_USER)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// A user's subscriptions, newest first.
    pub async fn push_subscriptions_of(&self, app_user_id: &str) -> StoreResult<Vec<PushSubscriptionRow>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT id, app_id, app_user_id, endpoint, p256dh, auth, page_url, created_at FROM push_subscriptions \
             WHERE app_user_id = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(app_user_id)
        .fetch_all(pool)
        .await?))
    }

    /// Forgets a subscription (the push service said it is gone).
    pub async fn remove_push_subscription(&self, id: &str) -> StoreResult<()> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM push_subscriptions WHERE id = $1").bind(id).execute(pool).await?;
        });
        Ok(())
    }

    /// Queues push jobs for new deliveries `(delivery id, app, user)`, due at
    /// `due_at`, for the users who have a subscription (the others are
    /// skipped in the same statement). A delivery already queued stays as it is.
    pub async fn queue_push(
        &self,
        kind: PushKind,
        deliveries: &[(String, String, String)],
        due_at: i64,
        now: i64,
    ) -> StoreResult<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (id, app, user) in deliveries {
                sqlx::query(
                    "INSERT INTO push_jobs (delivery_id, kind, app_id, app_user_id, attempts, due_at, created_at) \
                     SELECT $1, $2, $3, $4, 0, $5, $6 WHERE EXISTS (SELECT 1 FROM push_subscriptions WHERE app_user_id = $4) \
                     ON CONFLICT (delivery_id) DO NOTHING",
                )
                .bind(id)
                .bind(kind.as_str())
                .bind(app)
                .bind(user)
                .bind(due_at)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Queues push jobs for a manual message's in-app cards still pending,
    /// for the recipients who have a subscription: one statement.
    pub async fn queue_message_push(&self, message_id: &str, due_at: i64, now: i64) -> StoreResult<u64> {
        Ok(with_pool!(self, pool => sqlx::query(
            "INSERT INTO push_jobs (delivery_id, kind, app_id, app_user_id, attempts, due_at, created_at) \
             SELECT md.id, 'message', md.app_id, md.app_user_id, 0, $2, $3 FROM message_deliveries md \
             WHERE md.message_id = $1 AND md.channel = 'in_app' AND md.state = 'pending' \
               AND EXISTS (SELECT 1 FROM push_subscriptions s WHERE s.app_user_id = md.app_user_id) \
             ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind(message_id)
        .bind(due_at)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()))
    }

    /// Claims up to `limit` jobs due at `now`: each is held until
    /// `now + window` (a worker that dies mid-send leaves it to be retried
    /// then), its attempt counted. Safe on several instances at once.
    pub async fn claim_push_jobs(&self, now: i64, window: i64, limit: i64) -> StoreResult<Vec<PushJob>> {
        let pick = match self {
            Store::Sqlite(_) => "SELECT delivery_id FROM push_jobs WHERE due_at <= $1 ORDER BY due_at LIMIT $2",
            Store::Postgres(_) => {
                "SELECT delivery_id FROM push_jobs WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED"
            }
        };
        let sql = format!(
            "UPDATE push_jobs SET attempts = attempts + 1, due_at = $3 WHERE delivery_id IN ({pick}) \
             RETURNING delivery_id, kind, app_id, app_user_id, attempts"
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as(&sql).bind(now).bind(limit).bind(now + window).fetch_all(pool).await?),
        )
    }

    /// A job is finished (sent, or nothing left to send).
    pub async fn push_job_done(&self, delivery_id: &str) -> StoreResult<()> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM push_jobs WHERE delivery_id = $1").bind(delivery_id).execute(pool).await?;
        });
        Ok(())
    }

    /// A job is tried again at `due_at`.
    pub async fn push_job_retry(&self, delivery_id: &str, due_at: i64) -> StoreResult<()> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE push_jobs SET due_at = $2 WHERE delivery_id = $1")
                .bind(delivery_id)
                .bind(due_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// How many push jobs wait (all apps): for tests and operators.
    pub async fn push_jobs_waiting(&self) -> StoreResult<i64> {
        Ok(with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM push_jobs").fetch_one(pool).await?))
    }

    /// A whisper card reached its user by push: `sent`, via push. False if
    /// it had been sent meanwhile (or is gone).
    pub async fn mark_whisper_pushed(&self, delivery_id: &str, now: i64) -> StoreResult<bool> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE deliveries SET state = 'sent', sent_at = $2, sent_via = 'push' WHERE id = $1 AND sent_at IS NULL AND state = 'pending'",
        )
        .bind(delivery_id)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// A manual message's in-app card reached its user by push: `sent`, via
    /// push, with the card as rendered (the widget shows it when it next
    /// opens). False if it was sent or stopped meanwhile.
    pub async fn mark_message_pushed(&self, delivery_id: &str, rendered: &str, now: i64) -> StoreResult<bool> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE message_deliveries SET state = 'sent', sent_at = $2, rendered = $3, sent_via = 'push' \
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(delivery_id)
        .bind(now)
        .bind(rendered)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// A manual message's in-app delivery if it is still pending: its
    /// message's id.
    pub async fn pending_message_delivery(&self, delivery_id: &str) -> StoreResult<Option<String>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(
            "SELECT message_id FROM message_deliveries WHERE id = $1 AND state = 'pending' AND channel = 'in_app'",
        )
        .bind(delivery_id)
        .fetch_optional(pool)
        .await?))
    }

    /// How a delivery was sent ('widget', 'push', 'email'), if recorded.
    pub async fn sent_via(&self, delivery_id: &str) -> StoreResult<Option<String>> {
        let whisper: Option<Option<String>> = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT sent_via FROM deliveries WHERE id = $1",
        )
        .bind(delivery_id)
        .fetch_optional(pool)
        .await?);
        if let Some(via) = whisper {
            return Ok(via);
        }
        let message: Option<Option<String>> = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT sent_via FROM message_deliveries WHERE id = $1",
        )
        .bind(delivery_id)
        .fetch_optional(pool)
        .await?);
        Ok(message.flatten())
    }
}
