//! Whisper authoring: list with stats, editor data, save with validation,
//! status changes (respecting the app's active limit), duplicate, delete,
//! and the live audience preview.

use super::{
    apps::app_of,
    auth::{internal, teammate_view},
    crypto::new_id,
    state::AppState,
    users::{catalog_types, personal_values, property_views},
};
use crate::{
    domain::{
        conditions::check_all,
        whisper::{from_template, Status, WhisperDraft},
    },
    error::AppError,
    models::{AudiencePreview, SampleUser, WhisperEditor, WhisperSummary},
    storage::{
        audience::{SortKey, UserListQuery},
        StatusChange, TeammateRow,
    },
};

pub async fn list(state: &AppState, actor: &TeammateRow, app_id: &str) -> Result<Vec<WhisperSummary>, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let rows = state.store.whispers_with_stats(&app.id).await.map_err(internal)?;
    Ok(rows
        .into_iter()
        .map(|w| WhisperSummary {
            trigger: w.definition.0.trigger.summary(),
            audience: w.definition.0.audience_summary(),
            id: w.id,
            name: w.name,
            status: w.status,
            exposed: w.exposed,
            seen: w.seen,
            clicked: w.clicked,
            replied: w.replied,
            updated_at: w.updated_at,
        })
        .collect())
}

/// The editor for a whisper (`id`), or for a new one from a template.
pub async fn editor(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    id: Option<&str>,
    template: Option<&str>,
) -> Result<WhisperEditor, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let (id, status, draft) = match id {
        Some(id) => {
            let w = state.store.whisper(&app.id, id).await.map_err(internal)?.ok_or(AppError::NotFound)?;
            (Some(w.id), w.status, w.definition.0)
        }
        None => (None, Status::Draft.as_str().to_string(), from_template(template, &actor.id)),
    };
    let properties = property_views(&catalog_types(state, &app.id).await?);
    Ok(WhisperEditor {
        id,
        status,
        draft,
        teammates: state.store.app_teammates(&app.id).await.map_err(internal)?.iter().map(teammate_view).collect(),
        properties,
        events: state.store.event_catalog(&app.id).await.map_err(internal)?,
    })
}

/// Validates and saves; with `activate`, also makes it active. Returns the id.
pub async fn save(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    id: Option<&str>,
    draft: WhisperDraft,
    activate: bool,
) -> Result<String, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let types = catalog_types(state, &app.id).await?;
    let errs = draft.validate(|n| types.get(n).copied());
    if !errs.is_empty() {
        return Err(AppError::from_invalid(errs));
    }
    let team = state.store.app_teammates(&app.id).await.map_err(internal)?;
    if !team.iter().any(|t| t.id == draft.sender_id) {
        return Err(AppError::Field {
            field: "sender".into(),
            message: "Choose a teammate of this app as sender.".into(),
        });
    }
    let now = state.now();
    let id = match id {
        Some(id) => {
            if !state.store.update_whisper(&app.id, id, &draft, now).await.map_err(internal)? {
                return Err(AppError::NotFound);
            }
            id.to_string()
        }
        None => {
            let id = new_id();
            state.store.insert_whisper(&id, &app.id, Status::Draft.as_str(), &draft, now).await.map_err(internal)?;
            id
        }
    };
    // An active whisper edited: users are checked against its new audience.
    state.engine.whisper_changed(&app.id, &id).await.map_err(internal)?;
    if activate {
        // Just validated against the catalog: no need to load and check again.
        apply_status(state, &app.id, &id, Status::Active).await?;
    }
    Ok(id)
}

pub async fn set_status(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    id: &str,
    status: Status,
) -> Result<(), AppError> {
    let app = app_of(state, actor, app_id).await?;
    if status == Status::Active {
        // A stored draft may predate a catalog change: check again.
        let w = state.store.whisper(&app.id, id).await.map_err(internal)?.ok_or(AppError::NotFound)?;
        let types = catalog_types(state, &app.id).await?;
        let errs = w.definition.0.validate(|n| types.get(n).copied());
        if !errs.is_empty() {
            return Err(AppError::from_invalid(errs));
        }
    }
    apply_status(state, &app.id, id, status).await
}

/// Stores a status change, within the app's limit of active whispers.
async fn apply_status(state: &AppState, app_id: &str, id: &str, status: Status) -> Result<(), AppError> {
    match state.store.set_whisper_status(app_id, id, status.as_str(), state.now()).await.map_err(internal)? {
        StatusChange::Done => {
            state.engine.whisper_changed(app_id, id).await.map_err(internal)?;
            Ok(())
        }
        StatusChange::NotFound => Err(AppError::NotFound),
        StatusChange::LimitReached(max) => Err(AppError::Conflict {
            field: "form".into(),
            message: format!("This app is limited to {max} active whispers: pause one first."),
        }),
    }
}

pub async fn duplicate(state: &AppState, actor: &TeammateRow, app_id: &str, id: &str) -> Result<String, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let w = state.store.whisper(&app.id, id).await.map_err(internal)?.ok_or(AppError::NotFound)?;
    let mut draft = w.definition.0;
    draft.name = format!("Copy of {}", draft.name).chars().take(120).collect();
    let new = new_id();
    state.store.insert_whisper(&new, &app.id, Status::Draft.as_str(), &draft, state.now()).await.map_err(internal)?;
    Ok(new)
}

pub async fn delete(state: &AppState, actor: &TeammateRow, app_id: &str, id: &str) -> Result<(), AppError> {
    let app = app_of(state, actor, app_id).await?;
    if !state.store.delete_whisper(&app.id, id, state.now()).await.map_err(internal)? {
        return Err(AppError::NotFound);
    }
    state.engine.whispers_changed(&app.id).await;
    Ok(())
}

/// How many users match now, and a few of them to personalise the preview.
pub async fn audience_preview(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    all_users: bool,
    conditions: &[crate::domain::conditions::Condition],
) -> Result<AudiencePreview, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let types = catalog_types(state, &app.id).await?;
    let checked = if all_users { Vec::new() } else { check_all(conditions, |n| types.get(n).copied())? };
    let q = UserListQuery {
        app_id: &app.id,
        search: "",
        conditions: &checked,
        now: state.now(),
        sort: SortKey::LastSeen,
        descending: true,
        after: None,
        limit: 5,
    };
    let count = state.store.count_users(&q).await.map_err(internal)?;
    let rows = state.store.list_users(&q).await.map_err(internal)?;
    let samples = rows
        .iter()
        .map(|u| {
            let values = personal_values(u, &types);
            let name = crate::domain::messages::display_name(u.given_name.as_deref(), u.surname.as_deref())
                .unwrap_or_default();
            SampleUser {
                id: u.id.clone(),
                name: if name.is_empty() { u.user_id.clone().unwrap_or_else(|| u.id.clone()) } else { name },
                values,
            }
        })
        .collect();
    // Time changes who matches only through "N days ago" dates.
    let relative = checked.iter().any(|c| {
        use crate::domain::conditions::Test;
        matches!(c.test, Test::OlderThanDays(_) | Test::NewerThanDays(_) | Test::ExactlyDays(_))
    });
    let forecast = if relative {
        state.store.audience_forecast(&app.id, &checked, state.now(), 7).await.map_err(internal)?
    } else {
        Vec::new()
    };
    Ok(AudiencePreview { count, samples, forecast })
}

/// Sets the app's limit on active whispers (None: unlimited). Owner only.
pub async fn set_limit(state: &AppState, actor: &TeammateRow, app_id: &str, max: Option<i64>) -> Result<(), AppError> {
    let app = app_of(state, actor, app_id).await?;
    if !actor.is_owner {
        return Err(AppError::Forbidden);
    }
    if max.is_some_and(|m| !(0..=10_000).contains(&m)) {
        return Err(AppError::Field {
            field: "max_active".into(),
            message: "Enter a number from 0 to 10000, or leave empty.".into(),
        });
    }
    state.store.set_max_active_whispers(&app.id, max).await.map_err(internal)
}
