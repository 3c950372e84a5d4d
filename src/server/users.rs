//! The users pages' services: the filtered, searched, sorted list with its
//! live count, and one user's profile.

use std::collections::HashMap;

use super::{apps::app_of, auth::internal, state::AppState};
use crate::{
    domain::{
        conditions::{check_all, Condition},
        properties::{PropType, BUILTINS},
    },
    error::AppError,
    models::{PropertyValue, PropertyView, UserProfile, UserSummary, UsersPage},
    storage::{
        audience::{RowProps, SortKey, UserListQuery},
        AppUserRow, TeammateRow,
    },
};

pub const PAGE_SIZE: i64 = 25;
const CURSOR_SEP: char = '\u{1f}';

/// The app's custom property types, by name.
pub async fn catalog_types(state: &AppState, app_id: &str) -> Result<HashMap<String, PropType>, AppError> {
    state.store.property_types(app_id).await.map_err(internal)
}

/// The name the dashboard shows: their name, else their userId.
fn display_name(u: &AppUserRow) -> String {
    crate::domain::messages::display_name(u.given_name.as_deref(), u.surname.as_deref())
        .or_else(|| u.user_id.clone())
        .unwrap_or_else(|| "Anonymous user".into())
}

pub struct ListRequest<'a> {
    pub app_id: &'a str,
    pub search: &'a str,
    pub conditions_json: &'a str,
    pub sort: &'a str,
    pub descending: bool,
    pub after: &'a str,
}

pub async fn list(state: &AppState, actor: &TeammateRow, r: ListRequest<'_>) -> Result<UsersPage, AppError> {
    let app = app_of(state, actor, r.app_id).await?;
    let types = catalog_types(state, &app.id).await?;
    let conditions: Vec<Condition> = if r.conditions_json.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(r.conditions_json).map_err(|_| AppError::Field {
            field: "conditions".into(),
            message: "The filter could not be read.".into(),
        })?
    };
    let checked = check_all(&conditions, |n| types.get(n).copied())?;
    let after = r.after.split_once(CURSOR_SEP).map(|(v, id)| (v.to_string(), id.to_string()));
    let sort = SortKey::parse(r.sort);
    let q = UserListQuery {
        app_id: &app.id,
        search: r.search,
        conditions: &checked,
        now: state.now(),
        sort,
        descending: r.descending,
        after,
        limit: PAGE_SIZE + 1,
    };
    let (mut rows, matching) =
        (state.store.list_users(&q).await.map_err(internal)?, state.store.count_users(&q).await.map_err(internal)?);
    let next = if rows.len() as i64 > PAGE_SIZE {
        rows.truncate(PAGE_SIZE as usize);
        rows.last().map(|u| format!("{}{CURSOR_SEP}{}", sort.value_of(u), u.id))
    } else {
        None
    };
    let properties = property_views(&types);
    Ok(UsersPage {
        users: rows
            .iter()
            .map(|u| UserSummary {
                id: u.id.clone(),
                user_id: u.user_id.clone(),
                name: display_name(u),
                email: u.email.clone(),
                signed_up_at: u.signed_up_at,
                last_seen_at: u.last_seen_at,
            })
            .collect(),
        matching,
        next,
        properties,
    })
}

/// What the condition builder offers: built-ins, then custom properties by name.
pub fn property_views(types: &HashMap<String, PropType>) -> Vec<PropertyView> {
    let mut properties: Vec<PropertyView> =
        BUILTINS.iter().map(|b| PropertyView { name: b.name.into(), ty: b.ty, builtin: true }).collect();
    let mut custom: Vec<PropertyView> =
        types.iter().map(|(n, t)| PropertyView { name: n.clone(), ty: *t, builtin: false }).collect();
    custom.sort_by(|a, b| a.name.cmp(&b.name));
    properties.extend(custom);
    properties
}

/// A user's property values as text, by name, for personalised text
/// (`domain::whisper::lookup` finds them, aliases included).
pub fn personal_values(u: &AppUserRow, types: &HashMap<String, PropType>) -> Vec<(String, String)> {
    RowProps { row: u, types }.personal_values()
}

pub use crate::domain::properties::value_text;

pub async fn profile(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    user_ref: &str,
) -> Result<UserProfile, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let u = state.store.app_user(&app.id, user_ref).await.map_err(internal)?.ok_or(AppError::NotFound)?;
    let types = catalog_types(state, &app.id).await?;
    let props = RowProps { row: &u, types: &types };
    use crate::domain::conditions::UserProps;
    let show = value_text;
    let builtin = BUILTINS
        .iter()
        .map(|b| PropertyValue {
            name: b.name.into(),
            ty: b.ty.as_str().into(),
            value: props.builtin(b).map(show).unwrap_or_default(),
        })
        .collect();
    let mut custom: Vec<PropertyValue> = u
        .properties
        .0
        .keys()
        .map(|name| PropertyValue {
            name: name.clone(),
            ty: types.get(name).map(|t| t.as_str()).unwrap_or("text").into(),
            value: props.custom(name).map(show).unwrap_or_default(),
        })
        .collect();
    custom.sort_by(|a, b| a.name.cmp(&b.name));
    let events = state.store.user_events(&u.id, 50).await.map_err(internal)?;
    let messages = state.store.user_messages(&u.id, 50).await.map_err(internal)?;
    let cards = state.store.user_cards(&u.id, 50).await.map_err(internal)?;
    let manual = state.store.user_manual(&u.id, 50).await.map_err(internal)?;
    let conversations = super::conversations::of_user(state, &u.id, &display_name(&u)).await?;
    Ok(UserProfile {
        conversations,
        manual,
        id: u.id.clone(),
        user_id: u.user_id.clone(),
        name: display_name(&u),
        builtin,
        custom,
        events: events.into_iter().map(|e| (e.name, e.created_at, e.properties)).collect(),
        messages: thread(messages, cards),
    })
}

/// Messages and whisper cards in one thread, in the order they were made.
fn thread(
    messages: Vec<crate::storage::MessageRow>,
    cards: Vec<(crate::storage::DeliveryRow, String)>,
) -> Vec<crate::models::MessageView> {
    use crate::models::{CardView, MessageView};
    let mut out: Vec<MessageView> = messages
        .into_iter()
        .map(|m| MessageView {
            from_user: m.role == "appUser",
            name: m.name,
            text: m.text,
            at: m.created_at,
            card: None,
        })
        .collect();
    for (d, whisper) in cards {
        let card: serde_json::Value = serde_json::from_str(&d.rendered).unwrap_or_default();
        let text = |k: &str| card.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let sender = card.get("sender").and_then(|s| s.get("name")).and_then(|n| n.as_str()).unwrap_or_default();
        out.push(MessageView {
            from_user: false,
            name: Some(sender.to_string()),
            text: String::new(),
            at: d.created_at,
            card: Some(CardView { whisper, state: d.state, sender: sender.to_string(), html: text("html") }),
        });
    }
    // Stable: a card and the reply it caused keep their order at the same millisecond.
    out.sort_by_key(|m| m.at);
    out
}

/// How long a page view waits for the first count of an app's catalog
/// before it answers without it (the count goes on in the background).
const FIRST_COUNT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn catalog(state: &AppState, actor: &TeammateRow, app_id: &str) -> Result<crate::models::Catalog, AppError> {
    let app = app_of(state, actor, app_id).await?;
    // Counted in the background every few minutes (the scheduler's
    // housekeeping). An app never counted yet (new, or from before the
    // counts were kept) is counted now, on a task of its own: a small app's
    // counts are there at once; at 1M users the count takes seconds
    // (BENCHMARKS.md), and the page answers without waiting for it.
    let counted_at = match state.store.catalog_counted_at(&app.id).await.map_err(internal)? {
        Some(at) => Some(at),
        None => {
            // One first count per app at a time, however often the page is opened meanwhile.
            static COUNTING: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
            let counting = || COUNTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let first = {
                let mut c = counting();
                let first = !c.contains(&app.id);
                if first {
                    c.push(app.id.clone());
                }
                first
            };
            if first {
                let (store, id, now) = (state.store.clone(), app.id.clone(), state.now());
                let count = tokio::spawn(async move {
                    let counted = store.recount_catalog(&id, now).await;
                    if let Err(e) = &counted {
                        tracing::error!(error = %e, app = %id, "counting an app's catalog failed");
                    }
                    counting().retain(|a| *a != id);
                    counted.is_ok()
                });
                // Counted in time: when; failed, or still counting: not yet.
                matches!(tokio::time::timeout(FIRST_COUNT_WAIT, count).await, Ok(Ok(true))).then_some(now)
            } else {
                None
            }
        }
    };
    let counted = match counted_at {
        Some(at) => {
            let minutes = at.rem_euclid(86_400_000) / 60_000;
            format!(
                "Users counted at {:02}:{:02} UTC (recounted every {} minutes).",
                minutes / 60,
                minutes % 60,
                crate::storage::CATALOG_RECOUNT_MS / 60_000
            )
        }
        None => "Counting users now: the counts appear when this page is opened again.".to_string(),
    };
    Ok(crate::models::Catalog {
        properties: state.store.property_catalog_counts(&app.id).await.map_err(internal)?,
        events: state.store.event_catalog_counts(&app.id).await.map_err(internal)?,
        counted,
    })
}
