//! Recall, for any teammate of the app: one card (from a user's
//! timeline), a whisper's unseen cards (the whisper is paused first, so no
//! new card follows), or a manual message's (it is stopped: nobody else
//! gets it). Cards a user has seen stay.

use super::{apps::app_of, auth::internal, state::AppState};
use crate::{
    domain::{
        manual::{Kind, State},
        whisper::Status,
    },
    error::AppError,
    storage::{recall::RecallOne, TeammateRow},
};

fn conflict(message: impl Into<String>) -> AppError {
    AppError::Conflict { field: "recall".into(), message: message.into() }
}

/// Recalls one card (a whisper's or a manual message's delivery) of the app.
pub async fn card(state: &AppState, actor: &TeammateRow, app_id: &str, delivery_id: &str) -> Result<(), AppError> {
    let app = app_of(state, actor, app_id).await?;
    match state.engine.recall_card(&app.id, delivery_id, &actor.name).await.map_err(internal)? {
        RecallOne::Recalled(_) => Ok(()),
        RecallOne::Seen => Err(conflict("The user has already seen this message: it can no longer be recalled.")),
        RecallOne::Gone(state) if state == "email" => Err(conflict("An email cannot be recalled.")),
        RecallOne::Gone(state) => Err(conflict(format!("This message is {state}: there is nothing to recall."))),
        RecallOne::NotFound => Err(AppError::NotFound),
    }
}

/// Pauses a whisper (if active) and recalls its unseen cards; how many.
pub async fn whisper(state: &AppState, actor: &TeammateRow, app_id: &str, whisper_id: &str) -> Result<usize, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let w = state.store.whisper(&app.id, whisper_id).await.map_err(internal)?.ok_or(AppError::NotFound)?;
    if w.status == Status::Active.as_str() {
        // Paused first: a card planned from here on is not made.
        super::whispers::set_status(state, actor, &app.id, &w.id, Status::Paused).await?;
    }
    state.engine.recall_whisper(&app.id, &w.id, &actor.name).await.map_err(internal)
}

/// Stops a manual in-app message (if it is still going) and recalls its
/// unseen cards; how many.
pub async fn message(state: &AppState, actor: &TeammateRow, app_id: &str, message_id: &str) -> Result<usize, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let m = state.store.manual(&app.id, message_id).await.map_err(internal)?.ok_or(AppError::NotFound)?;
    if Kind::parse(&m.kind) == Some(Kind::Email) {
        return Err(conflict("An email cannot be recalled."));
    }
    if State::parse(&m.state) == Some(State::Draft) {
        return Err(conflict("A draft has not been sent: there is nothing to recall."));
    }
    state.engine.recall_manual(&app.id, &m.id, &actor.name).await.map_err(internal)
}
