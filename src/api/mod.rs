//! The REST API for a customer's backend, wire-compatible with the parts of
//! the Smooch v1.1 API that murmur implements. One table (`ENDPOINTS`)
//! builds both the router and the OpenAPI description, so they cannot drift.

pub mod appusers;
pub mod auth;
pub mod body;
pub mod error;

use axum::{
    routing::{delete, get, post, put, MethodRouter},
    Json, Router,
};
use serde_json::{json, Map, Value};

use crate::server::AppState;

#[derive(Debug, Clone, Copy)]
enum Op {
    CreateUser,
    GetUser,
    UpdateUser,
    DeleteUser,
    ListMessages,
    PostMessage,
    TrackEvent,
    TrackEvents,
    ListConversations,
    PostToConversation,
}

struct Endpoint {
    op: Op,
    method: &'static str,
    /// Below `/v1.1` (and below `/v1.1/apps/{appId}`).
    path: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
    status: u16,
    response: &'static str,
}

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        op: Op::CreateUser,
        method: "post",
        path: "/appusers",
        summary: "Pre-create a user",
        body: Some("AppUserCreate"),
        status: 201,
        response: "AppUserResponse",
    },
    Endpoint {
        op: Op::GetUser,
        method: "get",
        path: "/appusers/{userId}",
        summary: "Get a user by userId or _id",
        body: None,
        status: 200,
        response: "AppUserResponse",
    },
    Endpoint {
        op: Op::UpdateUser,
        method: "put",
        path: "/appusers/{userId}",
        summary: "Update a user; properties are merged, null removes one",
        body: Some("AppUserInput"),
        status: 200,
        response: "AppUserResponse",
    },
    Endpoint {
        op: Op::DeleteUser,
        method: "delete",
        path: "/appusers/{userId}",
        summary: "Delete a user with their events and messages",
        body: None,
        status: 200,
        response: "Empty",
    },
    Endpoint {
        op: Op::ListMessages,
        method: "get",
        path: "/appusers/{userId}/messages",
        summary: "The user's conversation, oldest first",
        body: None,
        status: 200,
        response: "MessagesResponse",
    },
    Endpoint {
        op: Op::PostMessage,
        method: "post",
        path: "/appusers/{userId}/messages",
        summary: "Post a text message as the user or the team",
        body: Some("MessageInput"),
        status: 201,
        response: "MessageResponse",
    },
    Endpoint {
        op: Op::TrackEvent,
        method: "post",
        path: "/appusers/{userId}/events",
        summary: "Track an event the user did (murmur's addition)",
        body: Some("EventInput"),
        status: 201,
        response: "EventResponse",
    },
    Endpoint {
        op: Op::TrackEvents,
        method: "post",
        path: "/events",
        summary: "Track many events at once, for any users of the app; each is answered on its own (murmur's addition)",
        body: Some("EventBatchInput"),
        status: 200,
        response: "EventBatchResponse",
    },
    Endpoint {
        op: Op::ListConversations,
        method: "get",
        path: "/appusers/{userId}/conversations",
        summary: "The user's conversations, newest activity first, each with its messages",
        body: None,
        status: 200,
        response: "ConversationsResponse",
    },
    Endpoint {
        op: Op::PostToConversation,
        method: "post",
        path: "/appusers/{userId}/conversations/{conversationId}/messages",
        summary: "Post a text message into one of the user's conversations (a user's message reopens it)",
        body: Some("MessageInput"),
        status: 201,
        response: "MessageResponse",
    },
];

fn handler(op: Op) -> MethodRouter<AppState> {
    match op {
        Op::CreateUser => post(appusers::create),
        Op::GetUser => get(appusers::get),
        Op::UpdateUser => put(appusers::update),
        Op::DeleteUser => delete(appusers::delete),
        Op::ListMessages => get(appusers::list_messages),
        Op::PostMessage => post(appusers::post_message),
        Op::TrackEvent => post(appusers::track),
        Op::TrackEvents => post(appusers::track_batch),
        Op::ListConversations => get(appusers::list_conversations),
        Op::PostToConversation => post(appusers::post_to_conversation),
    }
}

/// `{userId}` in the documentation is `{user_id}` in the router (and
/// `{conversationId}`, `{conversation_id}`).
fn router_path(p: &str) -> String {
    p.replace("{userId}", "{user_id}").replace("{conversationId}", "{conversation_id}")
}

pub fn router() -> Router<AppState> {
    let mut users = Router::new();
    let mut paths: Vec<&str> = ENDPOINTS.iter().map(|e| e.path).collect();
    paths.dedup();
    for path in paths {
        let methods =
            ENDPOINTS.iter().filter(|e| e.path == path).fold(MethodRouter::new(), |m, e| m.merge(handler(e.op)));
        users = users.route(&router_path(path), methods);
    }
    Router::new()
        .route("/v1.1/openapi.json", get(|| async { Json(openapi()) }))
        .nest("/v1.1/apps/{app_id}", users.clone())
        .nest("/v1.1", users)
}

/// Text on one line: no control characters (what `domain::text` refuses).
const ONE_LINE: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// As `ONE_LINE`, with at least one character that is not a space.
const NOT_BLANK_ONE_LINE: &str =
    "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// Text that may hold tabs and line breaks, but no other control character.
const MULTI_LINE: &str = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$";
const NOT_BLANK_MULTI_LINE: &str = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$";
/// A version `domain::properties::Version` reads: parts that start with digits.
const VERSION: &str = "^[vV]?[0-9]{1,9}([^.0-9\\u0000-\\u001f\\u007f-\\u009f][^.\\u0000-\\u001f\\u007f-\\u009f]*)?(\\.[0-9]{1,9}([^.0-9\\u0000-\\u001f\\u007f-\\u009f][^.\\u0000-\\u001f\\u007f-\\u009f]*)?)*$";

/// The OpenAPI 3.1 description of the REST API, from `ENDPOINTS`.
pub fn openapi() -> Value {
    let builtin_names: Vec<&str> = crate::domain::properties::BUILTINS
        .iter()
        .flat_map(|b| std::iter::once(b.name).chain(b.aliases.iter().copied()))
        .collect();
    let mut paths = Map::new();
    for prefix in ["/v1.1", "/v1.1/apps/{appId}"] {
        for e in ENDPOINTS {
            let mut params = vec![];
            if prefix.contains("{appId}") {
                params.push(json!({"name": "appId", "in": "path", "required": true, "schema": {"type": "string"}}));
            }
            if e.path.contains("{userId}") {
                params.push(json!({"name": "userId", "in": "path", "required": true, "description": "The customer's userId, or murmur's _id", "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": ONE_LINE}}));
            }
            if e.path.contains("{conversationId}") {
                params.push(json!({"name": "conversationId", "in": "path", "required": true, "description": "One of the user's conversations (its _id)", "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": ONE_LINE}}));
            }
            let mut op = json!({
                "summary": e.summary,
                "operationId": format!("{:?}{}", e.op, if prefix.contains("{appId}") { "InApp" } else { "" }),
                "parameters": params,
                "responses": {
                    e.status.to_string(): {"description": "Success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", e.response)}}}},
                    "429": {"$ref": "#/components/responses/TooManyRequests"},
                    "default": {"description": "Error (400, 401, 404, 409, 413, 415, ...)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                }
            });
            if matches!(e.op, Op::TrackEvent | Op::TrackEvents) {
                op["responses"]["503"] = json!({"$ref": "#/components/responses/Overloaded"});
            }
            if let Some(body) = e.body {
                op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
            }
            let entry = paths.entry(format!("{prefix}{}", e.path)).or_insert_with(|| json!({}));
            entry[e.method] = op;
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "murmur REST API", "version": "1.1", "description": "Smooch v1.1-compatible users, messages and events. \
            Each API key may make a limited number of requests (by default 100 a second, in bursts of up to 200; \
            the server's API_RATE_LIMIT setting): beyond it the answer is 429 with a Retry-After header \
            (seconds to wait) and an Error body with code too_many_requests, and nothing is changed."},
        "servers": [{"url": "/"}],
        "security": [{"jwt": []}, {"basic": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "jwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "HS256 with an app key's secret; header kid = key id; claim scope: \"app\"; \
                    a token lives at most 30 days: exp (seconds) at most 30 days ahead, or without exp an iat (it is then good for 30 days after it)"},
                "basic": {"type": "http", "scheme": "basic", "description": "keyId:secret"}
            },
            "responses": {
                "TooManyRequests": {
                    "description": "Too many requests with this API key: wait Retry-After seconds; nothing was changed",
                    "headers": {"Retry-After": {"description": "Seconds to wait before the next request can pass", "schema": {"type": "integer", "minimum": 1}}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                },
                "Overloaded": {
                    "description": "More events are arriving than the server can store right now (code overloaded): wait Retry-After seconds; nothing was stored",
                    "headers": {"Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer", "minimum": 1}}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                }
            },
            "schemas": {
                "AppUserCreate": {"allOf": [{"$ref": "#/components/schemas/AppUserInput"}, {"type": "object", "required": ["userId"], "properties": {
                    "userId": {"type": "string", "maxLength": 128, "pattern": NOT_BLANK_ONE_LINE}}}]},
                "AppUserInput": {"type": "object", "description": "Other fields are ignored (Smooch clients send some murmur does not keep); \
                    a userId in an update must be the user's own (it cannot be changed).", "properties": {
                    "givenName": {"type": ["string", "null"], "maxLength": 128, "pattern": ONE_LINE},
                    "surname": {"type": ["string", "null"], "maxLength": 128, "pattern": ONE_LINE},
                    "email": {"type": ["string", "null"], "maxLength": 254, "pattern": ONE_LINE},
                    "signedUpAt": {"type": "string", "format": "date-time"},
                    "appVersion": {"type": ["string", "null"], "maxLength": 64, "pattern": VERSION, "description": "Such as 2.10.1 (a leading v is dropped)"},
                    "platform": {"type": ["string", "null"], "maxLength": 32, "pattern": ONE_LINE},
                    "properties": {"type": ["object", "null"], "maxProperties": 100,
                        "propertyNames": {"minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z_-][A-Za-z0-9_-]*$", "not": {"enum": builtin_names}},
                        "additionalProperties": {"anyOf": [{"type": "string", "maxLength": 1024, "pattern": MULTI_LINE}, {"type": "number", "minimum": -1e300, "maximum": 1e300}, {"type": "boolean"}, {"type": "null"}]},
                        "description": "Custom properties (null removes one). ISO 8601 strings are dates. A property keeps the type it first had: \
                            a value of another type is refused with 409 type_conflict, as is a write that would give the user more than 100 \
                            or the app more than its catalog allows."}
                }},
                "AppUser": {"type": "object", "properties": {
                    "_id": {"type": "string"}, "userId": {"type": ["string", "null"]},
                    "givenName": {"type": ["string", "null"]}, "surname": {"type": ["string", "null"]},
                    "email": {"type": ["string", "null"]}, "signedUpAt": {"type": "string", "format": "date-time"},
                    "lastSeenAt": {"type": ["string", "null"], "format": "date-time"},
                    "appVersion": {"type": ["string", "null"]}, "platform": {"type": ["string", "null"]},
                    "properties": {"type": "object"}, "conversationStarted": {"type": "boolean"},
                    "clients": {"type": "array", "items": {}}, "pendingClients": {"type": "array", "items": {}}
                }},
                "AppUserResponse": {"type": "object", "properties": {"appUser": {"$ref": "#/components/schemas/AppUser"}}},
                "MessageInput": {"type": "object", "required": ["role", "text"], "properties": {
                    "role": {"type": "string", "enum": ["appUser", "appMaker"]}, "type": {"type": "string", "enum": ["text"]},
                    "text": {"type": "string", "maxLength": 4096, "pattern": NOT_BLANK_MULTI_LINE}, "name": {"type": ["string", "null"], "maxLength": 128, "pattern": ONE_LINE}
                }},
                "Message": {"type": "object", "properties": {
                    "_id": {"type": "string"}, "role": {"type": "string"}, "type": {"type": "string"}, "text": {"type": "string"},
                    "name": {"type": ["string", "null"]}, "authorId": {"type": ["string", "null"]},
                    "received": {"type": "number", "description": "Unix seconds"}, "source": {"type": "object"}
                }},
                "Conversation": {"type": "object", "properties": {
                    "_id": {"type": "string"}, "unreadCount": {"type": "integer", "description": "The team's messages the user has not read"},
                    "state": {"type": "string", "enum": ["open", "closed"]}, "assigneeId": {"type": ["string", "null"]},
                    "startedBy": {"type": "string", "enum": ["user", "teammate", "card"]}, "cardId": {"type": ["string", "null"]},
                    "lastUpdatedAt": {"type": "number", "description": "Unix seconds"}, "createdAt": {"type": "string", "format": "date-time"}
                }},
                "ConversationWithMessages": {"allOf": [{"$ref": "#/components/schemas/Conversation"}, {"type": "object", "properties": {"messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}}}}]},
                "ConversationsResponse": {"type": "object", "properties": {"conversations": {"type": "array", "items": {"$ref": "#/components/schemas/ConversationWithMessages"}}}},
                "MessageResponse": {"type": "object", "properties": {"message": {"$ref": "#/components/schemas/Message"}, "conversation": {"$ref": "#/components/schemas/Conversation"}}},
                "MessagesResponse": {"type": "object", "properties": {"messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}}, "conversation": {"$ref": "#/components/schemas/Conversation"}, "previous": {"type": ["string", "null"]}}},
                "EventInput": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "maxLength": 128, "pattern": NOT_BLANK_ONE_LINE}, "properties": {"$ref": "#/components/schemas/EventProperties"}}},
                "EventProperties": {"type": ["object", "null"], "maxProperties": 50, "propertyNames": {"minLength": 1, "maxLength": 64, "pattern": ONE_LINE},
                    "additionalProperties": {"anyOf": [{"type": "string", "maxLength": 200, "pattern": MULTI_LINE}, {"type": "number", "minimum": -1e300, "maximum": 1e300}, {"type": "boolean"}, {"type": "null"}]},
                    "description": "Optional, flat."},
                "EventBatchInput": {"type": "object", "required": ["events"], "additionalProperties": false, "properties": {"events": {"type": "array", "minItems": 1, "maxItems": 1000,
                    "description": "Events, each an EventBatchItem. Each is checked and answered on its own, in its result: one that is not \
                        a well-formed EventBatchItem gets status 400 there, and the others are still tracked, so any item is accepted here.",
                    "items": {}}}, "description": "At most 1 MiB in all."},
                "EventBatchItem": {"type": "object", "required": ["userId", "name"], "properties": {
                    "userId": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": ONE_LINE, "description": "The customer's userId, or murmur's _id"},
                    "name": {"type": "string", "maxLength": 128, "pattern": NOT_BLANK_ONE_LINE},
                    "properties": {"$ref": "#/components/schemas/EventProperties"}
                }},
                "EventBatchResponse": {"type": "object", "properties": {"results": {"type": "array", "description": "One per event, in order", "items": {"type": "object", "properties": {
                    "status": {"type": "integer", "description": "201, or the error's status (400, 404, 409)"},
                    "event": {"type": "object", "properties": {"name": {"type": "string"}, "createdAt": {"type": "string", "format": "date-time"}}},
                    "error": {"type": "object", "properties": {"code": {"type": "string"}, "description": {"type": "string"}}}
                }}}}},
                "EventResponse": {"type": "object", "properties": {"event": {"type": "object", "properties": {"name": {"type": "string"}, "createdAt": {"type": "string", "format": "date-time"}}}}},
                "Empty": {"type": "object"},
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {"code": {"type": "string"}, "description": {"type": "string"}}}}}
            }
        }
    })
}
