//! The audit log: one row per audited action, written by `write_audit!`
//! inside the transaction of the change it records (so a change is never
//! without its row, nor a row without its change), and read newest first
//! by keyset.

use super::{with_pool, Store, StoreResult};
use crate::domain::audit::AuditAction;

/// A row to write: who did what, where, when. `detail` is shown as is
/// (names and ids, never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// None for an action on the whole deployment.
    pub app_id: Option<String>,
    pub actor_id: String,
    /// Copied, so the row still names a teammate who was removed since.
    pub actor_name: String,
    pub action: AuditAction,
    pub detail: String,
    /// From the injected clock.
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub app_id: Option<String>,
    pub actor_id: String,
    pub actor_name: String,
    /// `AuditAction::code`.
    pub action: String,
    pub detail: String,
    pub at: i64,
}

/// Inserts an `AuditEntry` on `$conn` (a transaction's connection, inside
/// `with_pool!`, so it compiles for each backend).
macro_rules! write_audit {
    ($conn:expr, $entry:expr) => {{
        let entry: &$crate::storage::AuditEntry = $entry;
        sqlx::query(
            "INSERT INTO audit_log (app_id, actor_id, actor_name, action, detail, at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(entry.app_id.as_deref())
        .bind(&entry.actor_id)
        .bind(&entry.actor_name)
        .bind(entry.action.code())
        .bind(&entry.detail)
        .bind(entry.at)
        .execute($conn)
        .await?;
    }};
}
pub(crate) use write_audit;

const AUDIT_COLUMNS: &str = "id, app_id, actor_id, actor_name, action, detail, at";

impl Store {
    /// One page of the audit log as an app's page shows it: the app's rows
    /// and the deployment's (`app_id` NULL), newest first, after the
    /// keyset `before` (`at`, `id` of the last row of the previous page).
    /// Each half is read from the `audit_log_app` index, at most `limit`
    /// rows, and the two are merged. The keyset is a row comparison, which
    /// PostgreSQL (unlike `at < $2 OR (at = $2 AND id < $3)`) uses as the
    /// index scan's bound, so a deep page costs no more than the first.
    pub async fn audit_log(&self, app_id: &str, before: Option<(i64, i64)>, limit: i64) -> StoreResult<Vec<AuditRow>> {
        let (at, id) = before.unwrap_or((i64::MAX, i64::MAX));
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM ( \
               SELECT {AUDIT_COLUMNS} FROM (SELECT {AUDIT_COLUMNS} FROM audit_log WHERE app_id = $1 \
                 AND (at, id) < ($2, $3) ORDER BY at DESC, id DESC LIMIT $4) AS of_app \
               UNION ALL \
               SELECT {AUDIT_COLUMNS} FROM (SELECT {AUDIT_COLUMNS} FROM audit_log WHERE app_id IS NULL \
                 AND (at, id) < ($2, $3) ORDER BY at DESC, id DESC LIMIT $4) AS of_deployment \
             ) AS merged ORDER BY at DESC, id DESC LIMIT $4"
        );
        Ok(with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(app_id)
            .bind(at)
            .bind(id)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }
}
