//! An app's office hours (stored as JSON beside the app).

use super::{with_pool, Store, StoreResult};
use crate::domain::office_hours::OfficeHours;

impl Store {
    /// The app's office hours; `None` if they were never set.
    pub async fn office_hours(&self, app_id: &str) -> StoreResult<Option<OfficeHours>> {
        let row: Option<Option<String>> = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT office_hours FROM apps WHERE id = $1",
        )
        .bind(app_id)
        .fetch_optional(pool)
        .await?);
        Ok(row.flatten().and_then(|text| serde_json::from_str(&text).ok()))
    }

    pub async fn set_office_hours(&self, app_id: &str, hours: &OfficeHours) -> StoreResult<bool> {
        let text = serde_json::to_string(hours).unwrap_or_default();
        Ok(with_pool!(self, pool => sqlx::query("UPDATE apps SET office_hours = $2 WHERE id = $1")
            .bind(app_id)
            .bind(text)
            .execute(pool)
            .await?
            .rows_affected())
            == 1)
    }
}
