//! An app's SMTP settings (JSON, `domain::email::SmtpSettings`; NULL: email
//! off) and its sealed SMTP password, both beside the app.

use super::{audit::write_audit, with_pool, AuditEntry, Store, StoreResult};

/// What a save does to the stored (sealed) SMTP password.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordChange {
    /// Leave it as it is.
    Keep,
    /// Store this sealed password.
    Set(Vec<u8>),
    /// Remove it.
    Clear,
}

impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PasswordChange::Keep => "Keep",
            PasswordChange::Set(_) => "Set(<sealed>)",
            PasswordChange::Clear => "Clear",
        })
    }
}

impl Store {
    /// The app's SMTP settings as stored (JSON) and its sealed password;
    /// `None` when email is off (or there is no such app).
    pub async fn smtp_settings(&self, app_id: &str) -> StoreResult<Option<(String, Option<Vec<u8>>)>> {
        let row: Option<(Option<String>, Option<Vec<u8>>)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT smtp_settings, smtp_password_enc FROM apps WHERE id = $1",
        )
        .bind(app_id)
        .fetch_optional(pool)
        .await?);
        Ok(row.and_then(|(settings, password)| settings.map(|s| (s, password))))
    }

    /// Stores the app's SMTP settings (`None`: email off) and changes its
    /// password as told. False if there is no such app.
    pub async fn set_smtp_settings(
        &self,
        app_id: &str,
        settings_json: Option<&str>,
        password_enc: PasswordChange,
    ) -> StoreResult<bool> {
        self.set_smtp_settings_with(app_id, settings_json, password_enc, None).await
    }

    /// `set_smtp_settings` with its audit row, in one transaction (no row
    /// when there is no such app).
    pub async fn set_smtp_settings_audited(
        &self,
        app_id: &str,
        settings_json: Option<&str>,
        password_enc: PasswordChange,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        self.set_smtp_settings_with(app_id, settings_json, password_enc, Some(audit)).await
    }

    async fn set_smtp_settings_with(
        &self,
        app_id: &str,
        settings_json: Option<&str>,
        password_enc: PasswordChange,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        let (sql, sealed) = match &password_enc {
            PasswordChange::Keep => ("UPDATE apps SET smtp_settings = $2 WHERE id = $1", None),
            PasswordChange::Set(sealed) => {
                ("UPDATE apps SET smtp_settings = $2, smtp_password_enc = $3 WHERE id = $1", Some(sealed.as_slice()))
            }
            PasswordChange::Clear => {
                ("UPDATE apps SET smtp_settings = $2, smtp_password_enc = NULL WHERE id = $1", None)
            }
        };
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut query = sqlx::query(sql).bind(app_id).bind(settings_json);
            if let Some(sealed) = sealed {
                query = query.bind(sealed);
            }
            let done = query.execute(&mut *tx).await?.rows_affected() == 1;
            if done {
                if let Some(audit) = audit {
                    write_audit!(&mut *tx, audit);
                }
                tx.commit().await?;
            }
            done
        }))
    }

    /// The app's name, by id alone (pages shown to an app's end users).
    pub async fn app_name(&self, app_id: &str) -> StoreResult<Option<String>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar("SELECT name FROM apps WHERE id = $1")
            .bind(app_id)
            .fetch_optional(pool)
            .await?))
    }
}
