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
    body::JsonObject,
    error::{ApiError, ApiResult},
};
use crate::{
    domain::{
        properties::{format_iso8601, PropType, Value, Version, MAX_CUSTOM_PROPERTIES},
        users::{check_event_name, check_event_properties, UserPatch},
    },
    server::{crypto::new_id, AppState},
    storage::{
        AppUserChanges, AppUserRow, MessageRow, NewAppUser, PendingEvent, PendingUpdate, Properties, UserWriteError,
    },
};

type Params = Path<HashMap<String, String>>;

fn user_ref(params: &HashMap<String, String>) -> ApiResult<&str> {
    params.get("user_id").map(String::as_str).ok_or_else(|| ApiError::bad_request("Missing user id."))
}

fn no_user(user: &str) -> ApiError {
    ApiError::not_found(format!("No user {user:?} in this app."))
}

/// Splits a patch's custom properties into the JSON to store (dates as
/// milliseconds, nulls as removals) and the types to register.
fn stored_properties(patch: &UserPatch) -> (Properties, Vec<(String, &'static str)>) {
    let mut props = Map::new();
    let mut types = Vec::new();
    for (name, value) in &patch.properties {
        let stored = match value {
            None => Json_::Null,
            Some(Value::Date(ms)) => json!(ms),
            Some(v) => v.to_json(),
        };
        if let Some(v) = value {
            types.push((name.clone(), v.ty().as_str()));
        }
        props.insert(name.clone(), stored);
    }
    (props, types)
}

pub(crate) fn write_error(e: UserWriteError, user: &str) -> ApiError {
    match e {
        UserWriteError::TypeConflict { name, existing } => ApiError::bad_request(format!(
            "Property {name:?} is a {existing} property in this app; send a {existing} value."
        )),
        UserWriteError::TooManyProperties => {
            ApiError::bad_request(format!("A user can have at most {MAX_CUSTOM_PROPERTIES} custom properties."))
        }
        UserWriteError::NotFound => no_user(user),
        UserWriteError::Duplicate => ApiError::conflict(format!("A user with userId {user:?} already exists.")),
        UserWriteError::Store(e) => ApiError::internal(e),
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

/// A validated patch of the user `user_ref`, ready for the update writer.
pub(crate) fn pending_update(app_id: &str, user_ref: &str, patch: &UserPatch, now: i64) -> PendingUpdate {
    let (properties, types) = stored_properties(patch);
    let changes = AppUserChanges {
        given_name: patch.given_name.clone(),
        surname: patch.surname.clone(),
        email: patch.email.clone(),
        signed_up_at: patch.signed_up_at,
        app_version: version_change(patch),
        platform: patch.platform.clone(),
        properties,
        last_seen_at: None,
    };
    PendingUpdate {
        app_id: app_id.to_string(),
        user_ref: user_ref.to_string(),
        changes,
        types,
        max_properties: MAX_CUSTOM_PROPERTIES as i64,
        now,
    }
}

fn version_change(patch: &UserPatch) -> Option<Option<(String, String)>> {
    patch
        .app_version
        .as_ref()
        .map(|v| v.as_ref().and_then(|s| Version::parse(s).map(|parsed| (s.clone(), parsed.sort_key()))))
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
    let row = state.store.create_app_user(&new, &types).await.map_err(|e| write_error(e, &user_id))?;
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
    if patch.user_id.as_deref().is_some_and(|id| id != user) {
        return Err(ApiError::bad_request("userId cannot be changed."));
    }
    let job = pending_update(&app.app_id, user, &patch, state.now());
    let row = state.ingest.update(job).await.map_err(|e| write_error(e, user))?;
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
    Path(params): Params,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, Json<Json_>)> {
    let user = user_ref(&params)?;
    let name = body.get("name").and_then(Json_::as_str).ok_or_else(|| ApiError::bad_request("name is required."))?;
    check_event_name(name)?;
    let properties = check_event_properties(body.get("properties"))?;
    let at = state.now();
    let event =
        PendingEvent { app_id: app.app_id.clone(), user_ref: user.to_string(), name: name.to_string(), at, properties };
    if state.live.track(&state, event, false).await.map_err(ApiError::internal)?.is_none() {
        return Err(no_user(user));
    }
    Ok((StatusCode::CREATED, Json(json!({ "event": { "name": name, "createdAt": format_iso8601(at) } }))))
}

pub const MAX_MESSAGE_CHARS: usize = 4096;
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

/// `POST /v1.1/appusers/{userId}/messages`: a text message from the user
/// (`role: "appUser"`) or the team (`role: "appMaker"`).
pub async fn post_message(
    State(state): State<AppState>,
    app: ApiApp,
    Path(params): Params,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, Json<Json_>)> {
    let u = find(&state, &app, user_ref(&params)?).await?;
    let role = match body.get("role").and_then(Json_::as_str) {
        Some(r @ ("appUser" | "appMaker")) => r,
        _ => return Err(ApiError::bad_request("role must be \"appUser\" or \"appMaker\".")),
    };
    match body.get("type").and_then(Json_::as_str) {
        None | Some("text") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!("Message type {other:?} is not supported; use \"text\".")))
        }
    }
    let text = body.get("text").and_then(Json_::as_str).unwrap_or("");
    if text.trim().is_empty() || text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::bad_request(format!("text must be 1 to {MAX_MESSAGE_CHARS} characters.")));
    }
    let name = match body.get("name") {
        None | Some(Json_::Null) => None,
        Some(Json_::String(n)) if n.chars().count() <= 128 => Some(n.clone()),
        Some(_) => return Err(ApiError::bad_request("name must be a string of at most 128 characters.")),
    };
    let m = MessageRow { id: new_id(), role: role.to_string(), name, text: text.to_string(), created_at: state.now() };
    state.store.insert_message(&app.app_id, &u.id, &m).await?;
    // Live to the user's open widgets; an offline user gets it when their widget next starts.
    state.live.publish_message(&state, &u.id, &m).await;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "message": message_json(&m, &u), "conversation": { "_id": u.id, "unreadCount": 0 } })),
    ))
}
