//! "Why did (or didn't) this user get this message?": gathers the stored
//! facts (the whisper or manual message, the user, the delivery and its
//! states, the planner's kept decisions, the user's last event of the
//! trigger's name) and hands them to `domain::explain` for the words.

use super::{apps::app_of, auth::internal, state::AppState};
use crate::{
    domain::{
        conditions::{next_match, Checked, Condition},
        explain::{
            explain_message, explain_whisper, ConditionResult, Evaluation, MessageFacts, Outcome, TriggerFact,
            WhisperFacts,
        },
        manual::Audience,
    },
    engine::explain::RETENTION_DAYS,
    error::AppError,
    models::{Explanation, WhyChoice},
    storage::{audience::RowProps, AppUserRow, TeammateRow},
};

/// The name the answer uses: their name, else their userId, else email.
fn user_label(u: &AppUserRow) -> String {
    crate::domain::messages::display_name(u.given_name.as_deref(), u.surname.as_deref())
        .or_else(|| u.user_id.clone())
        .or_else(|| u.email.clone())
        .unwrap_or_else(|| "This anonymous user".into())
}

/// What can be asked about: the app's whispers and its manual messages that
/// were sent or scheduled (newest first, at most 200 of each).
pub async fn choices(state: &AppState, actor: &TeammateRow, app_id: &str) -> Result<Vec<WhyChoice>, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let mut out: Vec<WhyChoice> = state
        .store
        .whispers_with_stats(&app.id)
        .await
        .map_err(internal)?
        .into_iter()
        .take(200)
        .map(|w| WhyChoice { kind: "whisper".into(), id: w.id, label: format!("Whisper: {} ({})", w.name, w.status) })
        .collect();
    let messages = state.store.messages_to_explain(&app.id, 200).await.map_err(internal)?;
    out.extend(messages.into_iter().map(|(id, title, state)| WhyChoice {
        kind: "message".into(),
        id,
        label: format!("Message: {title} ({state})"),
    }));
    Ok(out)
}

/// The answer for one user (`user_ref`: userId or murmur id) and one
/// whisper or manual message (`kind`: `whisper` or `message`).
pub async fn explain(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    user_ref: &str,
    kind: &str,
    id: &str,
) -> Result<Explanation, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let user_ref = user_ref.trim();
    if user_ref.is_empty() {
        return Err(AppError::Field { field: "user".into(), message: "Enter a userId.".into() });
    }
    let Some(user) = state.store.app_user(&app.id, user_ref).await.map_err(internal)? else {
        return Err(AppError::Field { field: "user".into(), message: format!("No user {user_ref:?} in this app.") });
    };
    let label = user_label(&user);
    // Decisions made a moment ago are on their way to the table.
    state.engine.decisions_settled().await;
    match kind {
        "whisper" => {
            let w = state.store.whisper(&app.id, id).await.map_err(internal)?.ok_or(AppError::NotFound)?;
            let trigger = TriggerFact::of(&w.definition.0.trigger);
            let last_event = match &trigger {
                TriggerFact::Event { name } => state.store.last_event(&user.id, name).await.map_err(internal)?,
                _ => None,
            };
            let (matched, mut unmatched) = state.store.evaluations(&app.id, &w.id, &user.id).await.map_err(internal)?;
            let delivery = state.store.whisper_delivery_facts(&app.id, &w.id, &user.id).await.map_err(internal)?;
            // Property-match misses are not stored: every change to the
            // user's values is checked at once, so their current values
            // are the ones the last check used.
            let current = trigger == TriggerFact::Match && delivery.is_none() && matched.is_none();
            if current {
                unmatched = Some(check_now(state, &app.id, &user, &w).await?);
            }
            let facts = WhisperFacts {
                user: label.clone(),
                whisper: w.name.clone(),
                status: w.status.clone(),
                status_since: w.updated_at,
                trigger,
                delivery,
                matched,
                unmatched,
                unmatched_is_current: current,
                last_event,
                retention_days: RETENTION_DAYS,
            };
            Ok(Explanation { user: label, user_id: user.id, subject: w.name, answer: explain_whisper(&facts) })
        }
        "message" => {
            let m = state.store.manual(&app.id, id).await.map_err(internal)?.ok_or(AppError::NotFound)?;
            let delivery = state.store.message_delivery_facts(&app.id, &m.id, &user.id).await.map_err(internal)?;
            let audience: Audience = serde_json::from_str(&m.audience).unwrap_or_default();
            let (chosen, conditions_now) = match &audience {
                Audience::Users { ids } => (Some(ids.contains(&user.id)), vec![]),
                Audience::Segment { conditions, .. } => {
                    (None, conditions_now(state, &app.id, &user, conditions).await?)
                }
            };
            let facts = MessageFacts {
                user: label.clone(),
                title: m.title.clone(),
                state: m.state.clone(),
                send_at: m.send_at,
                stopped_at: m.stopped_at,
                recipients: m.recipients,
                delivery,
                chosen,
                conditions_now,
                signed_up_at: user.signed_up_at,
            };
            Ok(Explanation { user: label, user_id: user.id, subject: m.title, answer: explain_message(&facts) })
        }
        _ => Err(AppError::Field { field: "subject".into(), message: "Pick a whisper or a message.".into() }),
    }
}

/// A property-match whisper's audience against the user's values now.
async fn check_now(
    state: &AppState,
    app_id: &str,
    user: &AppUserRow,
    w: &crate::storage::WhisperRow,
) -> Result<Evaluation, AppError> {
    let d = &w.definition.0;
    let types = super::users::catalog_types(state, app_id).await?;
    let props = RowProps { row: user, types: &types };
    let now = state.clock.now_ms();
    let checked: Vec<(&Condition, Checked)> = if d.all_users {
        vec![]
    } else {
        d.conditions.iter().filter_map(|raw| raw.check(|n| types.get(n).copied()).ok().map(|c| (raw, c))).collect()
    };
    let conditions = checked.iter().map(|(raw, c)| ConditionResult::of(raw, c, &props, now)).collect();
    let only: Vec<Checked> = checked.into_iter().map(|(_, c)| c).collect();
    let outcome = match next_match(&only, &props, now) {
        Some(t) if t <= now => Outcome::Matched,
        Some(t) => Outcome::MatchesAt { at: t },
        None => Outcome::NotMatched,
    };
    Ok(Evaluation {
        at: now,
        revision: w.revision,
        trigger: TriggerFact::Match,
        all_users: d.all_users,
        conditions,
        outcome,
    })
}

/// A segment's conditions against the user's values now.
async fn conditions_now(
    state: &AppState,
    app_id: &str,
    user: &AppUserRow,
    conditions: &[Condition],
) -> Result<Vec<ConditionResult>, AppError> {
    let types = super::users::catalog_types(state, app_id).await?;
    let props = RowProps { row: user, types: &types };
    let now = state.clock.now_ms();
    Ok(conditions
        .iter()
        .filter_map(|raw| raw.check(|n| types.get(n).copied()).ok().map(|c| ConditionResult::of(raw, &c, &props, now)))
        .collect())
}
