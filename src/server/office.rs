//! The office-hours settings service: load with the current status, save
//! after validation (the time zone must exist in the bundled database).

use super::{apps::app_of, auth::internal, state::AppState};
use crate::{
    domain::office_hours::OfficeHours,
    engine::office::{known_time_zone, time_zone_names, Schedule},
    error::AppError,
    models::OfficeHoursView,
    storage::TeammateRow,
};

pub async fn load(state: &AppState, actor: &TeammateRow, app_id: &str) -> Result<OfficeHoursView, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let hours = state.store.office_hours(&app.id).await.map_err(internal)?.unwrap_or_default();
    let now = state.now();
    let status = Schedule::of(&hours).map(|s| (s.is_open(now), s.next_open(now)));
    Ok(OfficeHoursView {
        open_now: status.map(|s| s.0),
        back_at: status.and_then(|s| s.1),
        hours,
        time_zones: time_zone_names(),
    })
}

pub async fn save(state: &AppState, actor: &TeammateRow, app_id: &str, hours: OfficeHours) -> Result<(), AppError> {
    let app = app_of(state, actor, app_id).await?;
    if !known_time_zone(&hours.time_zone) {
        return Err(AppError::Field {
            field: "time_zone".into(),
            message: format!("{:?} is not a time zone murmur knows: pick one from the list.", hours.time_zone),
        });
    }
    state.store.set_office_hours(&app.id, &hours).await.map_err(internal)?;
    // The widget and the message path read office hours with the app's whispers.
    state.engine.whispers_changed(&app.id).await;
    Ok(())
}
