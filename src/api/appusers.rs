//! `/v1.1/appusers`: create, read, update and delete a customer's users,
//! their events and their conversation's messages.

use std::collections::HashMap;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde_json::{json, Map, Value as Json_};

use super::{
    auth::ApiApp,
    body::{JsonBatch, JsonObject},
    error::{ApiError, ApiResult},
};
use crate::{
    domain::{
        messages::{parse_author_name, MessageText, Role},
        properties::{format_iso8601, PropType},
        users::{check_user_ref, Event, UserPatch},
    },
    engine::{
        actions::{stored_properties, version_change, Author, NewMessage, UpdateFrom},
        writer::Admission,
        ActionError,
    },
    server::{crypto::new_id, AppState},
    storage::{AppUserRow, ConversationRow, ConversationTarget, MessageRow, NewAppUser},
};

type Params = Path<HashMap<String, String>>;

/// The user the path names (their userId or murmur's `_id`). Every route
/// with a user in its path acts on an existing user, and no user can have
/// an id that is not a valid one (too long, control characters): such a
/// path names no user, 404.
fn user_ref(params: &HashMap<String, String>) -> ApiResult<&str> {
    let user = params.get("user_id").map(String::as_str).ok_or_else(|| ApiError::bad_request("Missing user id."))?;
    check_user_ref(user).map_err(|_| no_user(user))?;
    Ok(user)
}

fn no_user(user: &str) -> ApiError {
    ApiError::not_found(format!("No user {user:?} in this app."))
}

/// An end-user action's error as the REST API answers it.
pub(crate) fn action_error(e: ActionError, user: &str) -> ApiError {
    match e {
        ActionError::Invalid(i) => ApiError::bad_request(i.message),
        // Well-formed, but in conflict with what the app or the user has
        // already: 409, so a client (and the OpenAPI description) can tell
        // these from malformed input.
        ActionError::TypeConflict { name, existing } => ApiError::new(
            StatusCode::CONFLICT,
            "type_conflict",
            format!("Property {name:?} is a {existing} property in this app; send a {existing} value."),
        ),
        ActionError::TooManyProperties => {
            ApiError::new(StatusCode::CONFLICT, "too_many_properties", e.to_string() + ".")
        }
        // Only the widget is bound by the server-only list; kept for completeness.
        ActionError::ServerOnly { .. } => ApiError::new(StatusCode::FORBIDDEN, "server_only", e.sentence()),
        ActionError::CatalogFull { .. } => ApiError::new(StatusCode::CONFLICT, "catalog_full", e.sentence()),
        ActionError::NoUser => no_user(user),
        ActionError::NoConversation => ApiError::not_found(format!("No such conversation for user {user:?}.")),
        ActionError::Duplicate => ApiError::conflict(format!("A user with userId {user:?} already exists.")),
        ActionError::Failed(e) => ApiError::internal(e),
    }
}

/// The `appUser` JSON (Smooch's shape plus murmur's built-ins).
async fn app_user_json(state: &AppState, u: &AppUserRow, conversation_started: bool) -> ApiResult<Json_> {
    let catalog = state.store.property_catalog(&u.app_id).await?;
    let dates: Vec<&str> =
        catalog.iter().filter(|c| c.ty == PropType::Date.as_str()).map(|c| c.name.as_str()).collect();
    let properties: Map<String, Json_> = u
        .properties
        .0
        .iter()
        .map(|(k, v)| {
            let v = match (dates.contains(&k.as_str()), v.as_i64()) {
                (true, Some(ms)) => json!(format_iso8601(ms)),
                _ => v.clone(),
            };
            (k.clone(), v)
        })
        .collect();
    Ok(json!({
        "_id": u.id,
        "userId": u.user_id,
        "givenName": u.given_name,
        "surname": u.surname,
        "email": u.email,
        "signedUpAt": format_iso8601(u.signed_up_at),
        "lastSeenAt": u.last_seen_at.map(format_iso8601),
        "appVersion": u.app_version,
        "platform": u.platform,
        "properties": properties,
        "conversationStarted": conversation_started,
        "clients": [],
        "pendingClients": [],
    }))
}

/// `POST /v1.1/appusers`: pre-creates a user known by `userId`.
pub async fn create(
    State(state): State<AppState>,
    app: ApiApp,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, Json<Json_>)> {
    let patch = UserPatch::from_json(&body)?;
    let user_id = patch.user_id.clone().ok_or_else(|| ApiError::bad_request("userId is required."))?;
    let (properties, types) = stored_properties(&patch);
    let now = state.now();
    let version = version_change(&patch).flatten();
    let new = NewAppUser {
        id: new_id(),
        app_id: app.app_id.clone(),
        user_id: Some(user_id.clone()),
        given_name: patch.given_name.clone().flatten(),
        surname: patch.surname.clone().flatten(),
        email: patch.email.clone().flatten(),
        signed_up_at: patch.signed_up_at.unwrap_or(now),
        app_version: version.as_ref().map(|v| v.0.clone()),
        app_version_key: version.map(|v| v.1),
        platform: patch.platform.clone().flatten(),
        properties: properties.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        now,
    };
    let row = state
        .store
        .create_app_user_capped(&new, &types, state.engine.caps().properties)
        .await
        .map_err(|e| action_error(e.into(), &user_id))?;
    Ok((StatusCode::CREATED, Json(json!({ "appUser": app_user_json(&state, &row, false).await? }))))
}

async fn find(state: &AppState, app: &ApiApp, user: &str) -> ApiResult<AppUserRow> {
    state.store.app_user(&app.app_id, user).await?.ok_or_else(|| no_user(user))
}

async fn started(state: &AppState, u: &AppUserRow) -> ApiResult<bool> {
    Ok(!state.store.user_messages(&u.id, 1).await?.is_empty())
}

/// `GET /v1.1/appusers/{userId}` (the userId or murmur's `_id`).
pub async fn get(State(state): State<AppState>, app: ApiApp, Path(params): Params) -> ApiResult<Json<Json_>> {
    let u = find(&state, &app, user_ref(&params)?).await?;
    let started = started(&state, &u).await?;
    Ok(Json(json!({ "appUser": app_user_json(&state, &u, started).await? })))
}

/// `PUT /v1.1/appusers/{userId}`: updates fields and merges properties (a
/// property set to null is removed).
pub async fn update(
    State(state): State<AppState>,
    app: ApiApp,
    Path(params): Params,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Json_>> {
    let user = user_ref(&params)?;
    let patch = UserPatch::from_json(&body)?;
    let row = state
        .engine
        .update_user(&app.app_id, user, &patch, UpdateFrom::Api)
        .await
        .map_err(|e| action_error(e, user))?;
    let started = started(&state, &row).await?;
    Ok(Json(json!({ "appUser": app_user_json(&state, &row, started).await? })))
}

/// `DELETE /v1.1/appusers/{userId}`: the user, their events and messages.
pub async fn delete(State(state): State<AppState>, app: ApiApp, Path(params): Params) -> ApiResult<Json<Json_>> {
    let user = user_ref(&params)?;
    if !state.store.delete_app_user(&app.app_id, user).await? {
        return Err(no_user(user));
    }
    Ok(Json(json!({})))
}

/// `POST /v1.1/appusers/{userId}/events` `{"name": "item-in-cart"}`.
pub async fn track(
    State(state): State<AppState>,
    app: ApiApp,
    _: EventRoom,
    Path(params): Params,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, Json<Json_>)> {
    let user = user_ref(&params)?;
    let event = Event::parse(body.get("name"), body.get("properties"))?;
    let _room = admit(&state, 1)?;
    let name = event.name.clone();
    let at = state.engine.track(&app.app_id, user, event, Author::Backend).await.map_err(|e| action_error(e, user))?;
    Ok((StatusCode::CREATED, Json(json!({ "event": { "name": name, "createdAt": format_iso8601(at) } }))))
}

/// Sheds a request that carries events before its body is read when the
/// writer's gate is already full (`Writer::full`): under overload most
/// requests are refused, and parsing each one's JSON only to refuse it
/// took the cores the writer needed. Placed after `ApiApp` (a request
/// without a valid key still gets its 401) and before the body's
/// extractor. `admit` still decides for the requests this lets through.
pub struct EventRoom;

impl axum::extract::FromRequestParts<AppState> for EventRoom {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.engine.writer.full() {
            return Err(overloaded());
        }
        Ok(EventRoom)
    }
}

fn overloaded() -> ApiError {
    ApiError::overloaded(
        1,
        "murmur is taking in more events than it can store right now; nothing was stored. Try again in 1 s.",
    )
}

/// Room in the writer's queue for `n` events from the REST API, or a 503
/// (with `Retry-After`; nothing written) when the events in flight are at
/// their bound (`writer::MAX_ADMITTED_EVENTS`): under overload the API
/// sheds at once rather than let every request wait longer and longer.
pub(crate) fn admit(state: &AppState, n: usize) -> ApiResult<Option<Admission>> {
    if n == 0 {
        return Ok(None);
    }
    state.engine.writer.admit(n).map(Some).ok_or_else(overloaded)
}

/// The most events one batch may carry.
pub const MAX_BATCH_EVENTS: usize = 1000;

/// `POST /v1.1/events` `{"events": [{"userId": "u1", "name": "item-in-cart",
/// "properties": {…}}, …]}`: up to `MAX_BATCH_EVENTS` events, for any users
/// of the app. Each is validated and answered on its own, in order
/// (`results[i]`: `status` 201 with the `event`, or the status and `error`
/// the single-event endpoint would give); the valid ones are written
/// together (they reach the engine's writer at once, so few commits carry
/// them all). The answer is 200 unless the body itself is unusable, or the
/// server sheds the whole batch (503, nothing written: `admit`).
pub async fn track_batch(
    State(state): State<AppState>,
    app: ApiApp,
    _: EventRoom,
    JsonBatch(body): JsonBatch,
) -> ApiResult<Json<Json_>> {
    let Some(Json_::Array(events)) = body.get("events") else {
        return Err(ApiError::bad_request("The body must be {\"events\": [...]}."));
    };
    if events.is_empty() || events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::bad_request(format!("Send 1 to {MAX_BATCH_EVENTS} events.")));
    }
    if let Some(extra) = body.keys().find(|k| *k != "events") {
        return Err(ApiError::bad_request(format!("Unknown field {extra:?}.")));
    }
    let checked: Vec<Result<(String, Event), ApiError>> = events.iter().map(check_batch_event).collect();
    let _room = admit(&state, checked.iter().filter(|c| c.is_ok()).count())?;
    let writes = checked.iter().map(|c| {
        let state = &state;
        let app_id = app.app_id.as_str();
        async move {
            let (user, event) = c.as_ref().map_err(Clone::clone)?;
            let name = event.name.clone();
            let at = state
                .engine
                .track(app_id, user, event.clone(), Author::Backend)
                .await
                .map_err(|e| action_error(e, user))?;
            Ok::<_, ApiError>(json!({ "name": name, "createdAt": format_iso8601(at) }))
        }
    });
    let results: Vec<Json_> = futures_util::future::join_all(writes)
        .await
        .into_iter()
        .map(|r| match r {
            Ok(event) => json!({ "status": 201, "event": event }),
            Err(e) => json!({ "status": e.status.as_u16(), "error": { "code": e.code, "description": e.description } }),
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

/// One event of a batch: `userId`, `name`, optional `properties`.
fn check_batch_event(v: &Json_) -> Result<(String, Event), ApiError> {
    let Json_::Object(o) = v else { return Err(ApiError::bad_request("Each event must be a JSON object.")) };
    if let Some(extra) = o.keys().find(|k| !matches!(k.as_str(), "userId" | "name" | "properties")) {
        return Err(ApiError::bad_request(format!("Unknown field {extra:?}.")));
    }
    let user = match o.get("userId") {
        Some(Json_::String(u)) => u,
        _ => return Err(ApiError::bad_request("Each event needs a userId (a string).")),
    };
    check_user_ref(user)?;
    let event = Event::parse(o.get("name"), o.get("properties"))?;
    Ok((user.clone(), event))
}

const PAGE: i64 = 100;

fn message_json(m: &MessageRow, u: &AppUserRow) -> Json_ {
    json!({
        "_id": m.id,
        "role": m.role,
        "type": "text",
        "text": m.text,
        "name": m.name,
        "authorId": if m.role == "appUser" { Some(&u.id) } else { None },
        "received": m.created_at as f64 / 1000.0,
        "source": { "type": "api" },
    })
}

/// `GET /v1.1/appusers/{userId}/messages`: the conversation, oldest first.
pub async fn list_messages(State(state): State<AppState>, app: ApiApp, Path(params): Params) -> ApiResult<Json<Json_>> {
    let u = find(&state, &app, user_ref(&params)?).await?;
    let messages = state.store.user_messages(&u.id, PAGE).await?;
    Ok(Json(json!({
        "messages": messages.iter().map(|m| message_json(m, &u)).collect::<Vec<_>>(),
        "conversation": { "_id": u.id, "unreadCount": 0 },
        "previous": null,
    })))
}

/// The conversation JSON: Smooch's `_id` and `unreadCount` (the user's
/// unread messages), and murmur's state, assignee and origin.
fn conversation_json(c: &ConversationRow) -> Json_ {
    json!({
        "_id": c.id,
        "unreadCount": c.unread_user,
        "state": c.state,
        "assigneeId": c.assignee_id,
        "startedBy": c.started_by,
        "cardId": c.card_id,
        "lastUpdatedAt": c.last_activity_at as f64 / 1000.0,
        "createdAt": format_iso8601(c.created_at),
    })
}

/// A message posted through the REST API: role, type, text, name.
fn new_message(body: &Map<String, Json_>) -> ApiResult<NewMessage> {
    let role = match body.get("role").and_then(Json_::as_str).and_then(Role::parse) {
        Some(r) => r,
        None => return Err(ApiError::bad_request("role must be \"appUser\" or \"appMaker\".")),
    };
    match body.get("type") {
        None => {}
        Some(Json_::String(t)) if t == "text" => {}
        Some(Json_::String(other)) => {
            return Err(ApiError::bad_request(format!("Message type {other:?} is not supported; use \"text\".")))
        }
        Some(_) => return Err(ApiError::bad_request("type must be the string \"text\".")),
    }
    let text = MessageText::parse(body.get("text").and_then(Json_::as_str).unwrap_or(""))?;
    let name = match body.get("name") {
        None | Some(Json_::Null) => None,
        Some(Json_::String(n)) => parse_author_name(Some(n))?,
        Some(_) => return Err(ApiError::bad_request("name must be a string of at most 128 characters.")),
    };
    // The name given (or none), as Smooch does.
    Ok(NewMessage { name, ..NewMessage::new(role, text) })
}

/// `POST /v1.1/appusers/{userId}/messages`: a text message from the user
/// (`role: "appUser"`) or the team (`role: "appMaker"`), into the user's
/// newest open conversation (a new one if none is open).
pub async fn post_message(
    State(state): State<AppState>,
    app: ApiApp,
    Path(params): Params,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, Json<Json_>)> {
    let user = user_ref(&params)?;
    let given = new_message(&body)?;
    let p = state.engine.post_message(&app.app_id, user, given).await.map_err(|e| action_error(e, user))?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "message": message_json(&p.message, &p.user), "conversation": conversation_json(&p.conversation) }),
        ),
    ))
}

/// `GET /v1.1/appusers/{userId}/conversations`: the user's conversations,
/// newest activity first, each with its messages (oldest first, the last 100).
pub async fn list_conversations(
    State(state): State<AppState>,
    app: ApiApp,
    Path(params): Params,
) -> ApiResult<Json<Json_>> {
    let u = find(&state, &app, user_ref(&params)?).await?;
    let mut out = vec![];
    for c in state.store.user_conversations(&u.id, PAGE).await? {
        let messages = state.store.conversation_messages(&c.id, PAGE).await?;
        let mut j = conversation_json(&c);
        j["messages"] = messages.iter().map(|m| message_json(m, &u)).collect();
        out.push(j);
    }
    Ok(Json(json!({ "conversations": out })))
}

/// `POST /v1.1/appusers/{userId}/conversations/{conversationId}/messages`:
/// a message into that conversation (a user's message reopens it).
pub async fn post_to_conversation(
    State(state): State<AppState>,
    app: ApiApp,
    Path(params): Params,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, Json<Json_>)> {
    let user = user_ref(&params)?;
    let conversation = params
        .get("conversation_id")
        .filter(|c| !c.is_empty() && c.len() <= 64)
        .ok_or_else(|| ApiError::not_found("No such conversation."))?;
    let given = NewMessage { conversation: ConversationTarget::Given(conversation.clone()), ..new_message(&body)? };
    let p = state.engine.post_message(&app.app_id, user, given).await.map_err(|e| action_error(e, user))?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "message": message_json(&p.message, &p.user), "conversation": conversation_json(&p.conversation) }),
        ),
    ))
}
