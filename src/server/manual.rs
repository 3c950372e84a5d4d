//! Manual messages from the dashboard: the list (tabs, search, stats), the
//! composer (save as draft, schedule in the app's time zone, send now), a
//! message's page (recipients, the conversations it started) and stop.
//! Sending itself is the delivery engine's (`engine::send`).

use super::{
    apps::app_of,
    auth::{internal, teammate_view},
    crypto::new_id,
    state::AppState,
    users::{catalog_types, property_views},
};
use crate::{
    domain::{
        manual::{Audience, Kind, MessageDraft, State, Tab},
        messages::display_name,
    },
    error::AppError,
    models::{ManualComposer, ManualDetail, ManualSummary, RecipientView, UserChip},
    storage::{
        manual::{ManualRow, ManualStats},
        TeammateRow,
    },
};

/// Messages listed per page.
const PAGE: i64 = 50;

/// How the composer's message goes out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendMode {
    Draft,
    Now,
    /// At `YYYY-MM-DDTHH:MM` in the app's time zone.
    At(String),
}

fn summary(m: &ManualRow, stats: Option<&ManualStats>) -> ManualSummary {
    let s = stats.cloned().unwrap_or_default();
    let audience = serde_json::from_str::<Audience>(&m.audience).unwrap_or_default();
    let draft = MessageDraft {
        title: String::new(),
        sender_id: String::new(),
        kind: Kind::Chat,
        body: String::new(),
        audience,
        push: false,
    };
    ManualSummary {
        id: m.id.clone(),
        title: m.title.clone(),
        sender_name: m.sender_name.clone(),
        kind: m.kind.clone(),
        state: m.state.clone(),
        audience: draft.audience_summary(),
        send_at: m.send_at,
        updated_at: m.updated_at,
        recipients: m.recipients,
        pending: s.pending,
        sent: s.sent,
        seen: s.seen,
        clicked: s.clicked,
        replied: s.replied,
        failed: s.failed,
        cancelled: s.cancelled,
    }
}

fn user_label(
    id: &str,
    user_id: Option<&str>,
    given: Option<&str>,
    surname: Option<&str>,
    email: Option<&str>,
) -> String {
    display_name(given, surname)
        .or_else(|| email.map(str::to_string))
        .or_else(|| user_id.map(str::to_string))
        .unwrap_or_else(|| format!("Visitor {}", &id[..id.len().min(6)]))
}

pub async fn list(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    tab: Tab,
    search: &str,
) -> Result<Vec<ManualSummary>, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let states: Vec<&str> = tab.states().iter().map(|s| s.as_str()).collect();
    let search = search.trim();
    let search = (!search.is_empty()).then_some(search);
    if search.is_some_and(|s| s.chars().count() > 200) {
        return Err(AppError::Field { field: "search".into(), message: "Search for at most 200 characters.".into() });
    }
    let rows = state.store.list_manual(&app.id, &states, search, PAGE, 0).await.map_err(internal)?;
    let ids: Vec<String> = rows.iter().map(|m| m.id.clone()).collect();
    let stats = state.store.manual_stats(&ids).await.map_err(internal)?;
    Ok(rows.iter().map(|m| summary(m, stats.get(&m.id))).collect())
}

/// The app's time zone for scheduling: its office hours' zone, else UTC.
async fn time_zone(state: &AppState, app_id: &str) -> Result<String, AppError> {
    Ok(state.store.office_hours(app_id).await.map_err(internal)?.map(|h| h.time_zone).unwrap_or_else(|| "UTC".into()))
}

fn local_to_ms(local: &str, zone: &str) -> Option<i64> {
    let dt: jiff::civil::DateTime = local.trim().parse().ok()?;
    let tz = jiff::tz::db().get(zone).ok()?;
    Some(dt.to_zoned(tz).ok()?.timestamp().as_millisecond())
}

fn ms_to_local(ms: i64, zone: &str) -> String {
    let Ok(tz) = jiff::tz::db().get(zone) else { return String::new() };
    let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else { return String::new() };
    ts.to_zoned(tz).datetime().strftime("%Y-%m-%dT%H:%M").to_string()
}

/// The composer for a message (`id`), or a new one to `users` (a profile's
/// "New message", or a selection in the users list).
pub async fn composer(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    id: Option<&str>,
    users: &[String],
) -> Result<ManualComposer, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let zone = time_zone(state, &app.id).await?;
    let (id, msg_state, draft, send_at) = match id {
        Some(id) => {
            let m = state.store.manual(&app.id, id).await.map_err(internal)?.ok_or(AppError::NotFound)?;
            let draft = MessageDraft {
                title: m.title,
                sender_id: m.sender_id.unwrap_or_default(),
                kind: Kind::parse(&m.kind).unwrap_or(Kind::Chat),
                body: m.body,
                audience: serde_json::from_str(&m.audience).unwrap_or_default(),
                push: m.push,
            };
            let send_at = m.send_at.filter(|_| m.state == State::Scheduled.as_str());
            (Some(m.id), m.state, draft, send_at)
        }
        None => {
            let audience = if users.is_empty() {
                Audience::default()
            } else {
                Audience::Users { ids: users.iter().take(crate::domain::manual::MAX_SELECTED).cloned().collect() }
            };
            let draft = MessageDraft {
                title: String::new(),
                sender_id: actor.id.clone(),
                kind: Kind::Chat,
                body: String::new(),
                audience,
                push: false,
            };
            (None, State::Draft.as_str().to_string(), draft, None)
        }
    };
    let selected = match &draft.audience {
        Audience::Users { ids } => {
            let ids = state.store.app_user_ids(&app.id, ids).await.map_err(internal)?;
            state
                .store
                .users_by_ids(&ids)
                .await
                .map_err(internal)?
                .into_iter()
                .map(|u| UserChip {
                    name: user_label(
                        &u.id,
                        u.user_id.as_deref(),
                        u.given_name.as_deref(),
                        u.surname.as_deref(),
                        u.email.as_deref(),
                    ),
                    id: u.id,
                })
                .collect()
        }
        Audience::Segment { .. } => vec![],
    };
    let earlier = state
        .store
        .list_manual(&app.id, &["sent", "stopped"], None, 100, 0)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|m| (m.id, m.title))
        .collect();
    Ok(ManualComposer {
        id,
        state: msg_state,
        draft,
        selected,
        teammates: state.store.app_teammates(&app.id).await.map_err(internal)?.iter().map(teammate_view).collect(),
        properties: property_views(&catalog_types(state, &app.id).await?),
        earlier,
        send_at_local: send_at.map(|t| ms_to_local(t, &zone)).unwrap_or_default(),
        time_zone: zone,
        email_ready: state.store.smtp_settings(&app.id).await.map_err(internal)?.is_some(),
    })
}

/// Validates and saves a message; sends it now, schedules it, or keeps it
/// as a draft. Returns its id.
pub async fn save(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    id: Option<&str>,
    draft: MessageDraft,
    mode: SendMode,
) -> Result<String, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let types = catalog_types(state, &app.id).await?;
    let errs = draft.validate(|n| types.get(n).copied());
    if !errs.is_empty() {
        return Err(AppError::from_invalid(errs));
    }
    let team = state.store.app_teammates(&app.id).await.map_err(internal)?;
    let Some(sender) = team.iter().find(|t| t.id == draft.sender_id) else {
        return Err(AppError::Field {
            field: "sender".into(),
            message: "Choose a teammate of this app as sender.".into(),
        });
    };
    if let Audience::Users { ids } = &draft.audience {
        let known = state.store.app_user_ids(&app.id, ids).await.map_err(internal)?;
        if known.len() < ids.iter().collect::<std::collections::HashSet<_>>().len() {
            return Err(AppError::Field {
                field: "audience".into(),
                message: "A selected user is not a user of this app.".into(),
            });
        }
    }
    if draft.kind == Kind::Email
        && mode != SendMode::Draft
        && state.store.smtp_settings(&app.id).await.map_err(internal)?.is_none()
    {
        return Err(AppError::Field {
            field: "kind".into(),
            message: "Set up email (SMTP) in Settings before sending an email.".into(),
        });
    }
    let now = state.now();
    let (msg_state, send_at) = match &mode {
        SendMode::Draft => (State::Draft, None),
        // Sending from now on: no longer editable, picked up by any worker.
        SendMode::Now => (State::Sending, Some(now)),
        SendMode::At(local) => {
            let zone = time_zone(state, &app.id).await?;
            let Some(at) = local_to_ms(local, &zone) else {
                return Err(AppError::Field {
                    field: "send_at".into(),
                    message: format!("Enter a date and time (in {zone})."),
                });
            };
            if at <= now {
                return Err(AppError::Field {
                    field: "send_at".into(),
                    message: "Choose a time in the future, or send now.".into(),
                });
            }
            (State::Scheduled, Some(at))
        }
    };
    let row = ManualRow {
        id: id.map(str::to_string).unwrap_or_else(new_id),
        app_id: app.id.clone(),
        title: draft.title.trim().to_string(),
        sender_id: Some(sender.id.clone()),
        sender_name: sender.name.clone(),
        kind: draft.kind.as_str().into(),
        body: draft.body,
        audience: serde_json::to_string(&draft.audience).map_err(internal)?,
        state: msg_state.as_str().into(),
        send_at,
        recipients: None,
        created_by: Some(actor.id.clone()),
        created_at: now,
        updated_at: now,
        stopped_at: None,
        // A push goes with an in-app card only.
        push: draft.push && draft.kind.in_app(),
    };
    if id.is_some() {
        if !state.store.update_manual(&row).await.map_err(internal)? {
            return Err(AppError::Conflict {
                field: "state".into(),
                message: "This message was already sent; it can no longer be edited.".into(),
            });
        }
    } else {
        state.store.insert_manual(&row).await.map_err(internal)?;
    }
    if mode == SendMode::Now {
        // The send runs now, off the request (a big segment takes seconds).
        let engine = state.engine.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.run_sends().await {
                tracing::error!(error = %e, "a send failed to start; the scheduler's tick retries it");
            }
        });
    }
    Ok(row.id)
}

/// A message's page: stats, recipients (first page), the conversations it started.
pub async fn detail(state: &AppState, actor: &TeammateRow, app_id: &str, id: &str) -> Result<ManualDetail, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let m = state.store.manual(&app.id, id).await.map_err(internal)?.ok_or(AppError::NotFound)?;
    let stats = state.store.manual_stats(std::slice::from_ref(&m.id)).await.map_err(internal)?;
    let rows = state.store.manual_recipients(&m.id, "", 200).await.map_err(internal)?;
    let label = |r: &crate::storage::manual::RecipientRow| {
        user_label(
            &r.app_user_id,
            r.user_id.as_deref(),
            r.given_name.as_deref(),
            r.surname.as_deref(),
            r.email.as_deref(),
        )
    };
    let replied_users = rows
        .iter()
        .filter(|r| r.state == "replied")
        .map(|r| UserChip { id: r.app_user_id.clone(), name: label(r) })
        .collect();
    let recipients = rows
        .iter()
        .map(|r| RecipientView {
            app_user_id: r.app_user_id.clone(),
            name: label(r),
            state: r.state.clone(),
            sent_at: r.sent_at,
            error: r.error.clone(),
        })
        .collect();
    let conversations = state.store.manual_conversations(&app.id, &m.id).await.map_err(internal)?;
    let st = State::parse(&m.state);
    Ok(ManualDetail {
        summary: summary(&m, stats.get(&m.id)),
        body: m.body.clone(),
        recipients,
        replied_users,
        conversations,
        stoppable: matches!(st, Some(State::Scheduled | State::Sending | State::Sent)),
    })
}

/// Stops a message for good.
pub async fn stop(state: &AppState, actor: &TeammateRow, app_id: &str, id: &str) -> Result<(), AppError> {
    let app = app_of(state, actor, app_id).await?;
    if state.store.manual(&app.id, id).await.map_err(internal)?.is_none() {
        return Err(AppError::NotFound);
    }
    if !state.engine.stop_manual(&app.id, id).await.map_err(internal)? {
        return Err(AppError::Conflict {
            field: "state".into(),
            message: "Only a scheduled or sent message can be stopped, once.".into(),
        });
    }
    Ok(())
}

/// Deletes a draft or a scheduled message.
pub async fn delete(state: &AppState, actor: &TeammateRow, app_id: &str, id: &str) -> Result<(), AppError> {
    let app = app_of(state, actor, app_id).await?;
    if !state.store.delete_unsent_manual(&app.id, id).await.map_err(internal)? {
        return Err(AppError::Conflict {
            field: "state".into(),
            message: "Only a draft or a scheduled message can be deleted.".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_are_read_in_the_apps_zone() {
        // 09:00 in Paris in winter is 08:00 UTC.
        let paris = local_to_ms("2026-12-03T09:00", "Europe/Paris").unwrap();
        let utc = local_to_ms("2026-12-03T08:00", "UTC").unwrap();
        assert_eq!(paris, utc);
        assert_eq!(ms_to_local(paris, "Europe/Paris"), "2026-12-03T09:00");
        assert_eq!(local_to_ms("tomorrow", "UTC"), None);
        assert_eq!(local_to_ms("2026-12-03T09:00", "Mars/Base"), None);
    }
}
