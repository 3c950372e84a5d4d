//! The inbox's services: the lists (open / closed, mine / unassigned / all,
//! search), one conversation with the user's profile, the team's reply,
//! starting a conversation from a profile, close / reopen, assign, and a
//! teammate's conversations. Team messages go through
//! `engine::actions::post_message` like every other message; every change
//! is announced to the open inboxes (`Engine::conversation_changed`).

use super::{apps::app_of, auth::internal, state::AppState, users};
use crate::{
    domain::{
        conversation::team_html,
        messages::{MessageText, Role},
    },
    engine::{actions::NewMessage, ActionError},
    error::AppError,
    models::{ConversationDetail, ConversationItem, ConversationSummary, InboxPage, MessageView, TeammatePage},
    storage::{AssigneeFilter, ConversationRow, ConversationTarget, InboxQuery, InboxRow, TeammateRow},
};

pub const INBOX_PAGE: i64 = 30;
const CURSOR_SEP: char = '~';

fn summary(r: &InboxRow) -> ConversationSummary {
    let name = crate::domain::messages::display_name(r.given_name.as_deref(), r.surname.as_deref())
        .or_else(|| r.user_id.clone())
        .or_else(|| r.email.clone())
        .unwrap_or_else(|| "Anonymous user".into());
    summary_of(&r.c, name, r.assignee_name.clone())
}

fn summary_of(c: &ConversationRow, user_name: String, assignee_name: Option<String>) -> ConversationSummary {
    ConversationSummary {
        id: c.id.clone(),
        user: c.app_user_id.clone(),
        user_name,
        state: c.state.clone(),
        assignee_id: c.assignee_id.clone(),
        assignee_name,
        started_by: c.started_by.clone(),
        last_text: c.last_text.clone(),
        last_activity_at: c.last_activity_at,
        unread: c.unread_team,
    }
}

fn action_error(e: ActionError) -> AppError {
    match e {
        ActionError::Invalid(i) => i.into(),
        ActionError::NoUser | ActionError::NoConversation => AppError::NotFound,
        e => internal(e),
    }
}

/// What an inbox list asks for.
pub struct ListRequest<'a> {
    pub app_id: &'a str,
    /// `open` or `closed`.
    pub state: &'a str,
    /// `mine`, `unassigned` or `all`.
    pub filter: &'a str,
    pub search: &'a str,
    /// The previous page's cursor ("" for the first page).
    pub after: &'a str,
}

pub async fn list(state: &AppState, me: &TeammateRow, r: ListRequest<'_>) -> Result<InboxPage, AppError> {
    let app = app_of(state, me, r.app_id).await?;
    let st = if r.state == "closed" { "closed" } else { "open" };
    let assignee = match r.filter {
        "mine" => AssigneeFilter::To(me.id.clone()),
        "unassigned" => AssigneeFilter::Unassigned,
        _ => AssigneeFilter::All,
    };
    let before = r.after.split_once(CURSOR_SEP).and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_string())));
    let search: String = r.search.chars().take(200).collect();
    let q = InboxQuery { app_id: &app.id, state: st, assignee, search: &search, before, limit: INBOX_PAGE + 1 };
    let mut rows = state.store.inbox(&q).await.map_err(internal)?;
    let next = if rows.len() as i64 > INBOX_PAGE {
        rows.truncate(INBOX_PAGE as usize);
        rows.last().map(|r| format!("{}{CURSOR_SEP}{}", r.c.last_activity_at, r.c.id))
    } else {
        None
    };
    let open_counts = state.store.inbox_counts(&app.id, &me.id).await.map_err(internal)?;
    let teammates = state.store.app_teammates(&app.id).await.map_err(internal)?;
    Ok(InboxPage {
        conversations: rows.iter().map(summary).collect(),
        next,
        open_counts,
        me: me.id.clone(),
        teammates: teammates.into_iter().map(|t| (t.id, t.name)).collect(),
    })
}

async fn conversation_of(state: &AppState, app_id: &str, id: &str) -> Result<ConversationRow, AppError> {
    state.store.conversation(app_id, id).await.map_err(internal)?.ok_or(AppError::NotFound)
}

/// One conversation with its messages and the user's profile; the team has
/// now read it.
pub async fn open(
    state: &AppState,
    me: &TeammateRow,
    app_id: &str,
    conversation_id: &str,
) -> Result<ConversationDetail, AppError> {
    let app = app_of(state, me, app_id).await?;
    let mut c = conversation_of(state, &app.id, conversation_id).await?;
    if state.store.conversation_read_by_team(&app.id, &c.id).await.map_err(internal)? {
        c.unread_team = 0;
        state.engine.conversation_changed(&app.id, &c.id).await;
    }
    let profile = users::profile(state, me, &app.id, &c.app_user_id).await?;
    let mut items = vec![];
    if let Some(card) = &c.card_id {
        if let Some((rendered, at)) = state.store.card_of(&c.app_user_id, card).await.map_err(internal)? {
            let card: serde_json::Value = serde_json::from_str(&rendered).unwrap_or_default();
            let sender =
                card.get("sender").and_then(|s| s.get("name")).and_then(|n| n.as_str()).unwrap_or_default().to_string();
            let html = card.get("html").and_then(|v| v.as_str()).unwrap_or_default().to_string();
            items.push(ConversationItem {
                id: c.card_id.clone().unwrap_or_default(),
                message: MessageView {
                    from_user: false,
                    name: Some(sender.clone()),
                    text: String::new(),
                    at,
                    card: Some(crate::models::CardView {
                        whisper: if c.card_id.as_deref().is_some_and(|d| d.starts_with('m')) {
                            "manual message".into()
                        } else {
                            "whisper".into()
                        },
                        state: "replied".into(),
                        sender,
                        html,
                    }),
                },
                html: None,
            });
        }
    }
    for m in state.store.conversation_messages(&c.id, 200).await.map_err(internal)? {
        let from_user = m.role == "appUser";
        items.push(ConversationItem {
            id: m.id.clone(),
            html: (!from_user).then(|| team_html(&m.text)),
            message: MessageView { from_user, name: m.name, text: m.text, at: m.created_at, card: None },
        });
    }
    let assignee_name = match &c.assignee_id {
        Some(id) => state.store.teammate_by_id(id).await.map_err(internal)?.map(|t| t.name),
        None => None,
    };
    Ok(ConversationDetail { summary: summary_of(&c, profile.name.clone(), assignee_name), items, profile })
}

/// The team's reply into a conversation, as the signed-in teammate.
pub async fn reply(
    state: &AppState,
    me: &TeammateRow,
    app_id: &str,
    conversation_id: &str,
    text: &str,
) -> Result<(), AppError> {
    let app = app_of(state, me, app_id).await?;
    let c = conversation_of(state, &app.id, conversation_id).await?;
    let text = MessageText::parse(text).map_err(|e| AppError::Field { field: "text".into(), message: e.message })?;
    let m = NewMessage {
        name: Some(me.name.clone()),
        conversation: ConversationTarget::Given(c.id.clone()),
        teammate: Some(me.id.clone()),
        ..NewMessage::new(Role::AppMaker, text)
    };
    state.engine.post_message(&app.id, &c.app_user_id, m).await.map_err(action_error)?;
    Ok(())
}

/// "Start a conversation" on a user's profile: a new conversation with the
/// teammate's first message, assigned to them. Returns its id.
pub async fn start(
    state: &AppState,
    me: &TeammateRow,
    app_id: &str,
    user_ref: &str,
    text: &str,
) -> Result<String, AppError> {
    let app = app_of(state, me, app_id).await?;
    let u = state.store.app_user(&app.id, user_ref).await.map_err(internal)?.ok_or(AppError::NotFound)?;
    let text = MessageText::parse(text).map_err(|e| AppError::Field { field: "text".into(), message: e.message })?;
    let m = NewMessage {
        name: Some(me.name.clone()),
        conversation: ConversationTarget::New,
        teammate: Some(me.id.clone()),
        ..NewMessage::new(Role::AppMaker, text)
    };
    let posted = state.engine.post_message(&app.id, &u.id, m).await.map_err(action_error)?;
    Ok(posted.conversation.id)
}

/// Closes or reopens a conversation.
pub async fn set_state(
    state: &AppState,
    me: &TeammateRow,
    app_id: &str,
    conversation_id: &str,
    open: bool,
) -> Result<(), AppError> {
    let app = app_of(state, me, app_id).await?;
    let c = state.store.set_conversation_state(&app.id, conversation_id, open, state.now()).await.map_err(internal)?;
    let c = c.ok_or(AppError::NotFound)?;
    state.engine.conversation_changed(&app.id, &c.id).await;
    Ok(())
}

/// Assigns a conversation to a teammate of the app ("" : nobody).
pub async fn assign(
    state: &AppState,
    me: &TeammateRow,
    app_id: &str,
    conversation_id: &str,
    assignee: &str,
) -> Result<(), AppError> {
    let app = app_of(state, me, app_id).await?;
    let assignee = match assignee {
        "" => None,
        id => {
            let members = state.store.app_teammates(&app.id).await.map_err(internal)?;
            if !members.iter().any(|t| t.id == id) {
                return Err(AppError::Field {
                    field: "assignee".into(),
                    message: "Choose a teammate of this app.".into(),
                });
            }
            Some(id)
        }
    };
    let c = state.store.assign_conversation(&app.id, conversation_id, assignee, state.now()).await.map_err(internal)?;
    let c = c.ok_or(AppError::NotFound)?;
    state.engine.conversation_changed(&app.id, &c.id).await;
    Ok(())
}

/// A teammate's page: the conversations they started or are assigned.
pub async fn teammate(
    state: &AppState,
    me: &TeammateRow,
    app_id: &str,
    teammate_id: &str,
) -> Result<TeammatePage, AppError> {
    let app = app_of(state, me, app_id).await?;
    let members = state.store.app_teammates(&app.id).await.map_err(internal)?;
    let t = members.into_iter().find(|t| t.id == teammate_id).ok_or(AppError::NotFound)?;
    let rows = state.store.teammate_conversations(&app.id, &t.id, 100).await.map_err(internal)?;
    Ok(TeammatePage { id: t.id, name: t.name, conversations: rows.iter().map(summary).collect() })
}

/// A user's conversations, for their profile.
pub async fn of_user(
    state: &AppState,
    app_user_id: &str,
    user_name: &str,
) -> Result<Vec<ConversationSummary>, AppError> {
    let rows = state.store.user_conversations(app_user_id, 50).await.map_err(internal)?;
    Ok(rows.iter().map(|c| summary_of(c, user_name.to_string(), None)).collect())
}

/// `GET /live/inbox/{app_id}`: the app's inbox changes as server-sent
/// events, for a signed-in teammate of the app (session cookie). Each event
/// is `change` with the conversation's id as data (`*`: reload everything,
/// some were missed). Fed on every instance by its own writes and the
/// others' notices; ends when the server stops.
pub async fn live(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::Path(app_id): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::{
        http::{header, StatusCode},
        response::{
            sse::{Event, KeepAlive, Sse},
            IntoResponse,
        },
    };
    use tokio::sync::broadcast::error::RecvError;

    let token = super::request::session_token_in(&state, &headers);
    let me = match super::auth::authenticate(&state, token.as_deref()).await {
        Ok(me) => me,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    let app = match app_of(&state, &me, &app_id).await {
        Ok(app) => app,
        Err(AppError::NotFound) => return StatusCode::NOT_FOUND.into_response(),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let app: std::sync::Arc<str> = std::sync::Arc::from(app.id);
    let events = state.engine.inbox_events();
    let closing = state.engine.hub.closing();
    // The first event says the stream is live (a client reloads on it, so
    // nothing that happened while it connected is missed).
    let stream = futures_util::stream::unfold((events, closing, true), move |(mut events, mut closing, first)| {
        let app = app.clone();
        async move {
            let change = |data: &str| Ok::<_, std::convert::Infallible>(Event::default().event("change").data(data));
            if first {
                return Some((change("*"), (events, closing, false)));
            }
            loop {
                if *closing.borrow() {
                    return None;
                }
                let next = tokio::select! {
                    e = events.recv() => e,
                    _ = closing.changed() => return None,
                };
                match next {
                    Ok(e) if e.app == app => return Some((change(&e.conversation), (events, closing, false))),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => return Some((change("*"), (events, closing, false))),
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    let mut response = Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}
