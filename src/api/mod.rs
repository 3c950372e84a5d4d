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
        body: Some("AppUserInput"),
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

/// The OpenAPI 3 description of the REST API, from `ENDPOINTS`.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for prefix in ["/v1.1", "/v1.1/apps/{appId}"] {
        for e in ENDPOINTS {
            let mut params = vec![];
            if prefix.contains("{appId}") {
                params.push(json!({"name": "appId", "in": "path", "required": true, "schema": {"type": "string"}}));
            }
            if e.path.contains("{userId}") {
                params.push(json!({"name": "userId", "in": "path", "required": true, "description": "The customer's userId, or murmur's _id", "schema": {"type": "string"}}));
            }
            if e.path.contains("{conversationId}") {
                params.push(json!({"name": "conversationId", "in": "path", "required": true, "description": "One of the user's conversations (its _id)", "schema": {"type": "string"}}));
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
            if let Some(body) = e.body {
                op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
            }
            let entry = paths.entry(format!("{prefix}{}", e.path)).or_insert_with(|| json!({}));
            entry[e.method] = op;
        }
    }
    json!({
        "openapi": "3.0.3",
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
                }
            },
            "schemas": {
                "AppUserInput": {"type": "object", "properties": {
                    "userId": {"type": "string", "maxLength": 128},
                    "givenName": {"type": "string", "nullable": true, "maxLength": 128},
                    "surname": {"type": "string", "nullable": true, "maxLength": 128},
                    "email": {"type": "string", "nullable": true, "maxLength": 254},
                    "signedUpAt": {"type": "string", "format": "date-time"},
                    "appVersion": {"type": "string", "nullable": true},
                    "platform": {"type": "string", "nullable": true},
                    "properties": {"type": "object", "maxProperties": 100, "additionalProperties": {"oneOf": [{"type": "string", "maxLength": 1024}, {"type": "number"}, {"type": "boolean"}], "nullable": true}, "description": "ISO 8601 strings are dates. A property keeps the type it first had."}
                }},
                "AppUser": {"type": "object", "properties": {
                    "_id": {"type": "string"}, "userId": {"type": "string", "nullable": true},
                    "givenName": {"type": "string", "nullable": true}, "surname": {"type": "string", "nullable": true},
                    "email": {"type": "string", "nullable": true}, "signedUpAt": {"type": "string", "format": "date-time"},
                    "lastSeenAt": {"type": "string", "format": "date-time", "nullable": true},
                    "appVersion": {"type": "string", "nullable": true}, "platform": {"type": "string", "nullable": true},
                    "properties": {"type": "object"}, "conversationStarted": {"type": "boolean"},
                    "clients": {"type": "array", "items": {}}, "pendingClients": {"type": "array", "items": {}}
                }},
                "AppUserResponse": {"type": "object", "properties": {"appUser": {"$ref": "#/components/schemas/AppUser"}}},
                "MessageInput": {"type": "object", "required": ["role", "text"], "properties": {
                    "role": {"type": "string", "enum": ["appUser", "appMaker"]}, "type": {"type": "string", "enum": ["text"]},
                    "text": {"type": "string", "maxLength": 4096}, "name": {"type": "string", "maxLength": 128}
                }},
                "Message": {"type": "object", "properties": {
                    "_id": {"type": "string"}, "role": {"type": "string"}, "type": {"type": "string"}, "text": {"type": "string"},
                    "name": {"type": "string", "nullable": true}, "authorId": {"type": "string", "nullable": true},
                    "received": {"type": "number", "description": "Unix seconds"}, "source": {"type": "object"}
                }},
                "Conversation": {"type": "object", "properties": {
                    "_id": {"type": "string"}, "unreadCount": {"type": "integer", "description": "The team's messages the user has not read"},
                    "state": {"type": "string", "enum": ["open", "closed"]}, "assigneeId": {"type": "string", "nullable": true},
                    "startedBy": {"type": "string", "enum": ["user", "teammate", "card"]}, "cardId": {"type": "string", "nullable": true},
                    "lastUpdatedAt": {"type": "number", "description": "Unix seconds"}, "createdAt": {"type": "string", "format": "date-time"}
                }},
                "ConversationWithMessages": {"allOf": [{"$ref": "#/components/schemas/Conversation"}, {"type": "object", "properties": {"messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}}}}]},
                "ConversationsResponse": {"type": "object", "properties": {"conversations": {"type": "array", "items": {"$ref": "#/components/schemas/ConversationWithMessages"}}}},
                "MessageResponse": {"type": "object", "properties": {"message": {"$ref": "#/components/schemas/Message"}, "conversation": {"$ref": "#/components/schemas/Conversation"}}},
                "MessagesResponse": {"type": "object", "properties": {"messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}}, "conversation": {"$ref": "#/components/schemas/Conversation"}, "previous": {"type": "string", "nullable": true}}},
                "EventInput": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "maxLength": 128}, "properties": {"type": "object", "maxProperties": 50, "description": "Optional, at most 8 KiB as JSON."}}},
                "EventBatchInput": {"type": "object", "required": ["events"], "additionalProperties": false, "properties": {"events": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {
                    "type": "object", "required": ["userId", "name"], "additionalProperties": false, "properties": {
                        "userId": {"type": "string", "minLength": 1, "maxLength": 128, "description": "The customer's userId, or murmur's _id"},
                        "name": {"type": "string", "minLength": 1, "maxLength": 128},
                        "properties": {"type": "object", "maxProperties": 50, "description": "Optional, at most 8 KiB as JSON."}
                    }}}}, "description": "At most 1 MiB in all."},
                "EventBatchResponse": {"type": "object", "properties": {"results": {"type": "array", "description": "One per event, in order", "items": {"type": "object", "properties": {
                    "status": {"type": "integer", "description": "201, or the error's status (400, 404, 422)"},
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
