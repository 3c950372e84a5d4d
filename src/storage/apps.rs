//! Apps, memberships and API keys. Every read that serves a teammate is
//! scoped by membership in SQL, so a missing membership looks like a missing
//! app.

use super::{audit::write_audit, classify, with_pool, AuditEntry, Store, StoreResult};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AppRow {
    pub id: String,
    pub name: String,
    pub identity_secret_enc: Vec<u8>,
    pub created_at: i64,
}

/// An app's server-only names: properties the widget may not set and
/// events it may not track (only the customer's backend may, through the
/// REST API). Sorted, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerOnlyNames {
    pub properties: Vec<String>,
    pub events: Vec<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub app_id: String,
    pub name: String,
    pub secret_enc: Vec<u8>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl Store {
    /// Creates an app and its memberships in one transaction.
    pub async fn insert_app(&self, app: &AppRow, members: &[&str]) -> StoreResult<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO apps (id, name, identity_secret_enc, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&app.id)
                .bind(&app.name)
                .bind(&app.identity_secret_enc)
                .bind(app.created_at)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            // The app's fold mark (`fold_event_users`), from the start: its
            // events are the ids past it.
            sqlx::query("INSERT INTO event_users_folded (app_id, through) SELECT $1, COALESCE(MAX(id), 0) FROM events")
                .bind(&app.id)
                .execute(&mut *tx)
                .await?;
            for member in members {
                sqlx::query("INSERT INTO app_members (app_id, teammate_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(&app.id)
                    .bind(*member)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The apps a teammate belongs to, oldest first.
    pub async fn apps_of(&self, teammate_id: &str) -> StoreResult<Vec<AppRow>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT a.id, a.name, a.identity_secret_enc, a.created_at FROM apps a \
             JOIN app_members m ON m.app_id = a.id WHERE m.teammate_id = $1 ORDER BY a.created_at, a.id",
        )
        .bind(teammate_id)
        .fetch_all(pool)
        .await?))
    }

    /// The app, if `teammate_id` belongs to it.
    pub async fn app_of(&self, app_id: &str, teammate_id: &str) -> StoreResult<Option<AppRow>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT a.id, a.name, a.identity_secret_enc, a.created_at FROM apps a \
             JOIN app_members m ON m.app_id = a.id WHERE a.id = $1 AND m.teammate_id = $2",
        )
        .bind(app_id)
        .bind(teammate_id)
        .fetch_optional(pool)
        .await?))
    }

    pub async fn set_identity_secret(&self, app_id: &str, secret_enc: &[u8]) -> StoreResult<bool> {
        self.set_identity_secret_with(app_id, secret_enc, None).await
    }

    /// Replaces the app's sealed identity secret, with its audit row, in
    /// one transaction. False (nothing written) if there is no such app.
    pub async fn set_identity_secret_audited(
        &self,
        app_id: &str,
        secret_enc: &[u8],
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        self.set_identity_secret_with(app_id, secret_enc, Some(audit)).await
    }

    async fn set_identity_secret_with(
        &self,
        app_id: &str,
        secret_enc: &[u8],
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("UPDATE apps SET identity_secret_enc = $2 WHERE id = $1")
                .bind(app_id)
                .bind(secret_enc)
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

    /// Turns the widget's identity verification on or off, with its audit
    /// row, in one transaction. False (nothing written) if there is no
    /// such app.
    pub async fn set_identity_enforced_audited(
        &self,
        app_id: &str,
        enforced: bool,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let sql = match self {
            Store::Sqlite(_) => "UPDATE apps SET identity_enforced = CASE WHEN $2 THEN 1 ELSE 0 END WHERE id = $1",
            Store::Postgres(_) => "UPDATE apps SET identity_enforced = $2 WHERE id = $1",
        };
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(sql).bind(app_id).bind(enforced).execute(&mut *tx).await?.rows_affected() == 1;
            if done {
                write_audit!(&mut *tx, audit);
                tx.commit().await?;
            }
            done
        }))
    }

    /// Gives an existing teammate access to an app (no-op if they have it).
    pub async fn add_member(&self, app_id: &str, teammate_id: &str) -> StoreResult<()> {
        with_pool!(self, pool => { sqlx::query("INSERT INTO app_members (app_id, teammate_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(app_id)
            .bind(teammate_id)
            .execute(pool)
            .await
            .map_err(classify)?; });
        Ok(())
    }

    pub async fn insert_api_key(&self, key: &ApiKeyRow) -> StoreResult<()> {
        self.insert_api_key_with(key, None).await
    }

    /// Inserts a key and its audit row in one transaction.
    pub async fn insert_api_key_audited(&self, key: &ApiKeyRow, audit: &AuditEntry) -> StoreResult<()> {
        self.insert_api_key_with(key, Some(audit)).await
    }

    async fn insert_api_key_with(&self, key: &ApiKeyRow, audit: Option<&AuditEntry>) -> StoreResult<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO api_keys (id, app_id, name, secret_enc, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&key.id)
            .bind(&key.app_id)
            .bind(&key.name)
            .bind(&key.secret_enc)
            .bind(key.created_at)
            .bind(key.revoked_at)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            if let Some(audit) = audit {
                write_audit!(&mut *tx, audit);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// An app's keys, newest first, revoked ones included.
    pub async fn api_keys(&self, app_id: &str) -> StoreResult<Vec<ApiKeyRow>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT id, app_id, name, secret_enc, created_at, revoked_at FROM api_keys WHERE app_id = $1 \
             ORDER BY created_at DESC, id",
        )
        .bind(app_id)
        .fetch_all(pool)
        .await?))
    }

    /// One key by id, for authenticating API calls.
    pub async fn api_key(&self, key_id: &str) -> StoreResult<Option<ApiKeyRow>> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT id, app_id, name, secret_enc, created_at, revoked_at FROM api_keys WHERE id = $1",
        )
        .bind(key_id)
        .fetch_optional(pool)
        .await?))
    }

    /// Revokes a live key of `app_id`. False if there is no such live key
    /// in that app (a key of another app is never touched).
    pub async fn revoke_api_key(&self, app_id: &str, key_id: &str, now: i64) -> StoreResult<bool> {
        self.revoke_api_key_with(app_id, key_id, now, None).await
    }

    /// `revoke_api_key` with its audit row, in one transaction (no row
    /// when nothing was revoked).
    pub async fn revoke_api_key_audited(
        &self,
        app_id: &str,
        key_id: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        self.revoke_api_key_with(app_id, key_id, now, Some(audit)).await
    }

    async fn revoke_api_key_with(
        &self,
        app_id: &str,
        key_id: &str,
        now: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE api_keys SET revoked_at = $3 WHERE app_id = $1 AND id = $2 AND revoked_at IS NULL",
            )
            .bind(app_id)
            .bind(key_id)
            .bind(now)
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

    /// The app's server-only property and event names.
    pub async fn server_only_names(&self, app_id: &str) -> StoreResult<ServerOnlyNames> {
        let rows: Vec<(String, String)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT kind, name FROM server_only_names WHERE app_id = $1 ORDER BY kind, name",
        )
        .bind(app_id)
        .fetch_all(pool)
        .await?);
        let mut names = ServerOnlyNames::default();
        for (kind, name) in rows {
            match kind.as_str() {
                "property" => names.properties.push(name),
                _ => names.events.push(name),
            }
        }
        Ok(names)
    }

    /// Replaces the app's server-only names, with the change's audit row,
    /// in one transaction.
    pub async fn set_server_only_names(
        &self,
        app_id: &str,
        names: &ServerOnlyNames,
        now: i64,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let rows = names.properties.iter().map(|n| ("property", n)).chain(names.events.iter().map(|n| ("event", n)));
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM server_only_names WHERE app_id = $1").bind(app_id).execute(&mut *tx).await?;
            for (kind, name) in rows {
                sqlx::query(
                    "INSERT INTO server_only_names (app_id, kind, name, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(app_id)
                .bind(kind)
                .bind(name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            write_audit!(&mut *tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }
}
