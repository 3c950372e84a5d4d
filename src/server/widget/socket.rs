//! One open widget: a WebSocket from the messenger frame (served by murmur,
//! so its Origin is murmur's own). JSON text frames, one object each, with
//! a `t` naming the kind. See ARCHITECTURE.md ("The widget protocol").
//!
//! The first frame is `hello` (app, device, identity, resume point); the
//! server answers `welcome` with the conversation and the cards, counts the
//! start as an app launch and fires app-launch whispers. After that the
//! widget sends `track`, `update`, `seen`, `clicked`, `reply`, `ping`, and
//! receives `card`, `message`, `pong` and `error`.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use serde_json::{json, Map, Value};
use tokio::time::{timeout, Instant};

use super::live::{card_json, message_json};
use crate::{
    api::appusers::{pending_update, write_error},
    domain::{
        properties::Version,
        users::{check_event_name, check_event_properties, UserPatch},
        whisper::Trigger,
    },
    server::{apps::identity_secret_context, crypto::new_id, jwt::Jwt, state::AppState},
    storage::{AppUserRow, MessageRow, PendingEvent, Reaction},
};

/// Largest frame a widget may send (a reply of 4096 characters fits).
pub const MAX_FRAME: usize = 32 * 1024;
pub const MAX_REPLY_CHARS: usize = 4096;
/// The server pings this often; a widget silent for three periods is gone.
pub const HEARTBEAT: Duration = Duration::from_secs(25);
const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// Frames a widget may send in a burst, and per second after it.
const BURST: f64 = 40.0;
const PER_SECOND: f64 = 10.0;
/// How far back a resuming widget is sent messages again (it drops the
/// ones it has by id), so that clock differences between instances cannot
/// hide a message.
const RESUME_SLACK_MS: i64 = 5_000;

/// `GET /widget/ws`: upgrades to a WebSocket if the page asking is
/// murmur's own messenger frame.
pub async fn upgrade(Extension(state): Extension<Arc<AppState>>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !origin.is_some_and(|o| crate::server::csrf::same_host(o, host)) {
        tracing::warn!(origin = ?origin, "refused a widget connection from another origin");
        let body = json!({ "error": { "code": "forbidden_origin", "description": "Widget connections must come from murmur's messenger frame." } });
        return (StatusCode::FORBIDDEN, Json(body)).into_response();
    }
    // Widget frames are small (a hello is a few hundred bytes); a larger one
    // grows the buffer for as long as it needs.
    ws.read_buffer_size(512)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| run(state, socket))
}

/// Why a widget's frame was refused.
struct Refusal {
    code: &'static str,
    message: String,
    /// Close the connection (the widget should not retry as is).
    fatal: bool,
}

impl Refusal {
    fn invalid(message: impl Into<String>) -> Self {
        Refusal { code: "invalid", message: message.into(), fatal: false }
    }
    fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        Refusal { code, message: message.into(), fatal: true }
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "widget request failed");
        Refusal { code: "internal", message: "Something went wrong on our side.".into(), fatal: false }
    }
    fn frame(&self) -> String {
        json!({ "t": "error", "code": self.code, "message": self.message }).to_string()
    }
}

/// Who is on the other end, once `hello` has been accepted: the app and
/// the user (murmur's id), all an open widget keeps.
struct Session {
    app_id: String,
    id: String,
}

/// An accepted hello: the session, and what only the welcome shows.
struct Started {
    session: Session,
    user_id: Option<String>,
    given_name: Option<String>,
}

async fn send(socket: &mut WebSocket, text: String) -> bool {
    socket.send(Message::Text(text.into())).await.is_ok()
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.to_string().into() }))).await;
}

fn text_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A widget that said hello and was welcomed.
struct Open {
    session: Session,
    conn: u64,
    inbox: Arc<super::hub::Inbox>,
}

/// One widget's connection. Its task lives as long as the widget is open,
/// so its future is kept small (BENCHMARKS.md): the opening steps (hello,
/// welcome, app launch) run in a future of their own, boxed and freed once
/// done; each wake-up of the loop is handled in a boxed future that lives
/// only while it runs; and the loop is written here, not in a function of
/// its own, so that the socket is stored once. An idle connection keeps only
/// the loop's waiting state.
async fn run(state: Arc<AppState>, mut socket: WebSocket) {
    let Some(open) = Box::pin(open(&state, &mut socket)).await else { return };
    // One shared heartbeat for all connections (no timer per connection),
    // which also says when the server stops.
    let mut heartbeat = state.live.heartbeat(open.conn);
    let mut heard = Instant::now();
    let mut bucket = (BURST, Instant::now());
    let mut step = if *heartbeat.borrow() { Some(Step::Closing) } else { None };
    loop {
        let step = match step.take() {
            Some(s) => s,
            None => tokio::select! {
                frame = socket.recv() => Step::Frame(frame),
                out = open.inbox.recv() => Step::Out(out),
                _ = heartbeat.changed() => if *heartbeat.borrow_and_update() { Step::Closing } else { Step::Beat },
            },
        };
        if let Step::Frame(_) = step {
            heard = Instant::now();
        }
        if !Box::pin(act(&state, &mut socket, &open.session, &mut bucket, heard, step)).await {
            break;
        }
    }
    state.live.hub.leave(&open.session.id, open.conn);
}

/// The hello, the welcome and the app launch. `None`: the connection ends.
async fn open(state: &AppState, socket: &mut WebSocket) -> Option<Open> {
    // A shutdown that starts later, even during the hello, reaches the loop
    // through the heartbeat channel's value.
    if *state.live.closing().borrow() {
        close(socket, 1012, "restarting").await;
        return None;
    }
    // The hello, within a few seconds.
    let hello = loop {
        match timeout(HELLO_WITHIN, socket.recv()).await {
            Ok(Some(Ok(Message::Text(t)))) => break serde_json::from_str::<Value>(&t).unwrap_or(Value::Null),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    };
    let started = match start(state, &hello).await {
        Ok(s) => s,
        Err(r) => {
            let _ = send(socket, r.frame()).await;
            close(socket, 4400, r.code).await;
            return None;
        }
    };
    let (conn, inbox) = state.live.hub.join(&started.session.id);
    let welcomed = match welcome(state, &started, &hello).await {
        Ok(frame) => send(socket, frame).await,
        Err(r) => {
            let _ = send(socket, r.frame()).await;
            false
        }
    };
    let session = started.session;
    if !welcomed {
        state.live.hub.leave(&session.id, conn);
        return None;
    }
    if let Err(e) = state.live.fire(state, &session.app_id, &session.id, &Trigger::AppLaunch).await {
        tracing::error!(error = %e, "app-launch whispers failed");
    }
    Some(Open { session, conn, inbox })
}

/// What the loop does after a wake-up, outside the `select!` so that the
/// waiting state stays small.
enum Step {
    Frame(Option<Result<Message, axum::Error>>),
    Out(Option<super::hub::Frame>),
    Closing,
    Beat,
}

/// Acts on one wake-up of an open widget's loop; false ends the connection.
async fn act(
    state: &AppState,
    socket: &mut WebSocket,
    session: &Session,
    bucket: &mut (f64, Instant),
    heard: Instant,
    step: Step,
) -> bool {
    match step {
        Step::Frame(Some(Ok(Message::Text(t)))) => {
            let (tokens, refilled) = bucket;
            *tokens = (*tokens + refilled.elapsed().as_secs_f64() * PER_SECOND).min(BURST);
            *refilled = Instant::now();
            let outcome = if *tokens < 1.0 {
                Err(Refusal::invalid("Too many requests: slow down."))
            } else {
                *tokens -= 1.0;
                handle(state, session, &t).await
            };
            let reply = match outcome {
                Ok(None) => return true,
                Ok(Some(frame)) => frame,
                Err(r) if r.fatal => {
                    let _ = send(socket, r.frame()).await;
                    close(socket, 4400, r.code).await;
                    return false;
                }
                Err(r) => r.frame(),
            };
            send(socket, reply).await
        }
        Step::Frame(Some(Ok(Message::Binary(_)))) => {
            let _ = send(socket, Refusal::invalid("Send JSON text frames.").frame()).await;
            true
        }
        Step::Frame(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => true,
        Step::Frame(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => false,
        Step::Out(Some(frame)) => socket.send(Message::Text(frame.as_ref().into())).await.is_ok(),
        // Dropped by the hub for falling behind: the widget reconnects and resumes.
        Step::Out(None) => {
            close(socket, 1013, "fell behind").await;
            false
        }
        Step::Closing => {
            close(socket, 1012, "restarting").await;
            false
        }
        Step::Beat => heard.elapsed() <= HEARTBEAT * 3 && socket.send(Message::Ping(Default::default())).await.is_ok(),
    }
}

fn check_device(device: &str) -> bool {
    (8..=64).contains(&device.len()) && device.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Accepts or refuses a `hello`: the app, the device, the identity (a JWT
/// signed with the app's identity secret when the app requires it), then
/// counts an app launch.
async fn start(state: &AppState, hello: &Value) -> Result<Started, Refusal> {
    if text_field(hello, "t") != Some("hello") {
        return Err(Refusal::fatal("hello_expected", "The first frame must be a hello."));
    }
    let app_id = text_field(hello, "app").unwrap_or_default();
    let app = match state.store.widget_app(app_id).await.map_err(Refusal::internal)? {
        Some(a) => a,
        None => return Err(Refusal::fatal("unknown_app", "No such app.")),
    };
    let device = text_field(hello, "device").filter(|d| check_device(d));
    let user_id = match hello.get("userId") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) if !u.trim().is_empty() && u.chars().count() <= 128 => Some(u.as_str()),
        Some(_) => return Err(Refusal::fatal("invalid_user", "userId must be a string of 1 to 128 characters.")),
    };
    let jwt = text_field(hello, "jwt");
    let now = state.now();
    let user = match user_id {
        Some(user_id) => {
            match jwt {
                Some(token) => {
                    let secret = state
                        .secrets
                        .open(&identity_secret_context(&app.id), &app.identity_secret_enc)
                        .map_err(|_| Refusal::internal("the identity secret could not be opened"))?;
                    verify_identity(token, &secret, user_id, now)?;
                }
                None if app.identity_enforced => {
                    return Err(Refusal::fatal(
                        "identity_required",
                        "This app requires identity verification: pass a JWT signed with its identity secret.",
                    ))
                }
                None => {}
            }
            state.store.identified_user(&app.id, user_id, device, &new_id(), now).await.map_err(Refusal::internal)?
        }
        None => {
            let device = device.ok_or_else(|| Refusal::fatal("invalid_device", "A device id is required."))?;
            state.store.device_user(&app.id, device, &new_id(), now).await.map_err(Refusal::internal)?
        }
    };
    // The launch: lastSeenAt, appVersion, platform, plus any profile the page passed.
    let mut body = match hello.get("user") {
        Some(Value::Object(m)) => m.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(Refusal::fatal("invalid_user", "user must be an object.")),
    };
    body.remove("userId");
    body.remove("signedUpAt");
    if let Some(v) = hello.get("appVersion").and_then(Value::as_str) {
        if Version::parse(v).is_some() {
            body.insert("appVersion".into(), json!(v));
        }
    }
    let platform = text_field(hello, "platform").unwrap_or("web");
    body.insert("platform".into(), json!(platform.chars().take(32).collect::<String>()));
    let user = update_user(state, &app.id, &user.id, &body, Some(now)).await.map_err(|mut r| {
        r.fatal = true;
        r
    })?;
    Ok(Started { session: Session { app_id: app.id, id: user.id }, user_id: user.user_id, given_name: user.given_name })
}

fn verify_identity(token: &str, secret: &[u8], user_id: &str, now: i64) -> Result<(), Refusal> {
    let bad = |m: &str| Refusal::fatal("invalid_jwt", m.to_string());
    let jwt = Jwt::parse(token).map_err(bad)?;
    if !jwt.signed_with(secret) {
        return Err(bad("The JWT is not signed with this app's identity secret."));
    }
    if jwt.claims["scope"] != "appUser" {
        return Err(bad("The JWT must have the claim scope: \"appUser\"."));
    }
    if jwt.claims["userId"] != user_id {
        return Err(bad("The JWT's userId claim is not this user."));
    }
    jwt.check_expiry(now, true).map_err(bad)
}

/// Applies a profile patch from the widget (the same rules as the REST API).
async fn update_user(
    state: &AppState,
    app_id: &str,
    app_user_id: &str,
    body: &Map<String, Value>,
    seen: Option<i64>,
) -> Result<AppUserRow, Refusal> {
    let patch = UserPatch::from_json(body).map_err(|e| Refusal::invalid(e.message))?;
    let mut job = pending_update(app_id, app_user_id, &patch, state.now());
    // The page cannot move a user's sign-up date; the widget's start is a sighting.
    job.changes.signed_up_at = None;
    job.changes.last_seen_at = seen;
    state.ingest.update(job).await.map_err(|e| Refusal::invalid(write_error(e, app_user_id).description))
}

/// The conversation and cards for a (re)starting widget. `since` (the
/// newest message time the widget has) limits the messages resent.
async fn welcome(state: &AppState, started: &Started, hello: &Value) -> Result<String, Refusal> {
    let s = &started.session;
    let messages = match hello.get("since").and_then(Value::as_i64) {
        Some(since) => state.store.messages_since(&s.id, since - RESUME_SLACK_MS, 500).await,
        None => state.store.user_messages(&s.id, 100).await,
    }
    .map_err(Refusal::internal)?;
    let deliveries = state.store.user_deliveries(&s.id, 50).await.map_err(Refusal::internal)?;
    let pending: Vec<String> = deliveries.iter().filter(|d| d.sent_at.is_none()).map(|d| d.id.clone()).collect();
    if !pending.is_empty() {
        state.store.mark_sent(&pending, state.now()).await.map_err(Refusal::internal)?;
    }
    let cards: Vec<Value> = deliveries.iter().map(card_json).collect();
    Ok(json!({
        "t": "welcome",
        "user": { "id": s.id, "userId": started.user_id, "givenName": started.given_name },
        "messages": messages.iter().map(message_json).collect::<Vec<_>>(),
        "cards": cards,
    })
    .to_string())
}

/// One frame after the hello. `Ok(Some(frame))` is an answer to send back.
async fn handle(state: &AppState, s: &Session, text: &str) -> Result<Option<String>, Refusal> {
    let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(text) else {
        return Err(Refusal::invalid("Each frame must be a JSON object."));
    };
    let field = |k: &str| msg.get(k).and_then(Value::as_str);
    match field("t").unwrap_or_default() {
        "ping" => Ok(Some(r#"{"t":"pong"}"#.to_string())),
        "track" => {
            let name = field("name").ok_or_else(|| Refusal::invalid("track needs a name."))?;
            check_event_name(name).map_err(|e| Refusal::invalid(e.message))?;
            let properties = check_event_properties(msg.get("props")).map_err(|e| Refusal::invalid(e.message))?;
            let event = PendingEvent {
                app_id: s.app_id.clone(),
                user_ref: s.id.clone(),
                name: name.to_string(),
                at: state.now(),
                properties,
            };
            state.live.track(state, event, true).await.map_err(Refusal::internal)?;
            Ok(None)
        }
        "update" => {
            let Some(Value::Object(body)) = msg.get("user") else {
                return Err(Refusal::invalid("update needs a user object."));
            };
            let mut body = body.clone();
            body.remove("userId");
            update_user(state, &s.app_id, &s.id, &body, None).await?;
            Ok(None)
        }
        kind @ ("seen" | "clicked") => {
            let id = field("id").ok_or_else(|| Refusal::invalid("Which card? Send its id."))?;
            let r = if kind == "seen" { Reaction::Seen } else { Reaction::Clicked };
            state.store.react(&s.id, id, r, state.now()).await.map_err(Refusal::internal)?;
            Ok(None)
        }
        "reply" => {
            let text = field("text").unwrap_or_default();
            if text.trim().is_empty() || text.chars().count() > MAX_REPLY_CHARS {
                return Err(Refusal::invalid(format!("A reply is 1 to {MAX_REPLY_CHARS} characters.")));
            }
            // The current name (the page may have updated it since the hello).
            let user = state.store.app_user(&s.app_id, &s.id).await.map_err(Refusal::internal)?;
            let name =
                [user.as_ref().and_then(|u| u.given_name.as_deref()), user.as_ref().and_then(|u| u.surname.as_deref())]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
            let m = MessageRow {
                id: new_id(),
                role: "appUser".into(),
                name: (!name.is_empty()).then_some(name),
                text: text.to_string(),
                created_at: state.now(),
            };
            state.store.insert_message(&s.app_id, &s.id, &m).await.map_err(Refusal::internal)?;
            if let Some(card) = field("card") {
                state.store.react(&s.id, card, Reaction::Replied, state.now()).await.map_err(Refusal::internal)?;
            }
            state.live.publish_message(state, &s.id, &m).await;
            if state.store.user_message_count(&s.id).await.map_err(Refusal::internal)? == 1 {
                state.live.fire(state, &s.app_id, &s.id, &Trigger::FirstMessage).await.map_err(Refusal::internal)?;
            }
            Ok(None)
        }
        other => Err(Refusal::invalid(format!("Unknown frame type {other:?}."))),
    }
}
