//! One open widget: a WebSocket from the messenger frame (served by murmur,
//! so its Origin is murmur's own). JSON text frames, one object each, with
//! a `t` naming the kind. See ARCHITECTURE.md ("The widget protocol").
//!
//! The first frame is `hello` (app, device, identity, resume point); the
//! server answers `welcome` with the conversation and the cards, counts the
//! start as an app launch and fires app-launch whispers. After that the
//! widget sends `track`, `update`, `seen`, `clicked`, `reply`, `ping`, and
//! receives `card`, `message`, `pong` and `error`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
        ConnectInfo,
    },
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use crate::{
    domain::{
        messages::{MessageText, Role},
        properties::Version,
        users::{Event, UserPatch},
    },
    engine::{
        actions::{Author, NewMessage, UpdateFrom},
        card_frame,
        hub::{Frame, Inbox},
        message_json, ActionError,
    },
    server::{apps::identity_secret_context, jwt::Jwt, state::AppState},
    storage::{ConversationTarget, Reaction},
};

/// A frame from the widget: JSON with `t` naming the kind. The protocol is
/// defined here once; `widget/messenger.js` lists the kinds it sends and
/// receives in a comment that a test checks against `ClientFrame::KINDS`
/// and `SERVER_KINDS`. Fields whose type the server checks itself (to give
/// a clear message) are kept as JSON values.
#[derive(Debug, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum ClientFrame {
    Hello(Hello),
    Track {
        name: Option<Value>,
        props: Option<Value>,
    },
    Update {
        user: Option<Value>,
    },
    Seen {
        id: String,
    },
    Clicked {
        id: String,
    },
    Reply {
        #[serde(default)]
        text: Value,
        card: Option<String>,
        /// The conversation it goes into (none: the card's, else the newest open one, else a new one).
        conversation: Option<String>,
    },
    /// The user opened a conversation: the team's messages in it are read.
    Read {
        conversation: String,
    },
    /// The browser subscribed to push (in the customer's page, with the
    /// app's public key): its endpoint and keys, and the page it was on.
    Push {
        endpoint: Option<Value>,
        keys: Option<Value>,
        page: Option<Value>,
    },
    Ping,
}

impl ClientFrame {
    /// Every kind a widget may send.
    pub const KINDS: &'static [&'static str] =
        &["hello", "track", "update", "seen", "clicked", "reply", "read", "push", "ping"];

    /// Reads one frame; the error says what was wrong in words.
    pub fn parse(text: &str) -> Result<ClientFrame, String> {
        let v: Value = serde_json::from_str(text).map_err(|_| "Each frame must be a JSON object.".to_string())?;
        let kind = v.get("t").and_then(Value::as_str).unwrap_or_default().to_string();
        if !v.is_object() {
            return Err("Each frame must be a JSON object.".into());
        }
        // No id, name or text murmur keeps may hold a NUL (PostgreSQL cannot
        // store one): refused here once, for every frame type.
        if has_nul(&v) {
            return Err("A frame cannot contain NUL characters (U+0000).".into());
        }
        if !Self::KINDS.contains(&kind.as_str()) {
            return Err(format!("Unknown frame type {kind:?}."));
        }
        serde_json::from_value(v).map_err(|e| format!("A {kind} frame is malformed: {e}."))
    }
}

/// The first frame: who the widget is and where it resumes.
#[derive(Debug, Default, Deserialize)]
pub struct Hello {
    #[serde(default)]
    pub app: String,
    pub device: Option<String>,
    #[serde(rename = "userId")]
    pub user_id: Option<Value>,
    pub jwt: Option<String>,
    pub user: Option<Value>,
    #[serde(rename = "appVersion")]
    pub app_version: Option<Value>,
    pub platform: Option<Value>,
    pub since: Option<Value>,
}

/// Every kind the server sends: `welcome`, `card`, `message`, `pong`, `error`.
pub const SERVER_KINDS: &[&str] = &["welcome", "card", "message", "pong", "error", "recall"];

/// Whether any key or string inside `v` holds U+0000.
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Largest frame a widget may send (a reply of 4096 characters fits).
pub const MAX_FRAME: usize = 32 * 1024;
/// The server pings this often; a widget silent for three periods is gone.
pub const HEARTBEAT: Duration = Duration::from_secs(25);
const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// How long one frame may take to go out. A widget that stops reading
/// fills the socket's buffers and then every send waits; past this it is
/// dropped, and its task freed (it reconnects and resumes if it is alive).
pub const SEND_WITHIN: Duration = Duration::from_secs(10);
/// Frames a widget may send in a burst, and per second after it.
const BURST: f64 = 40.0;
const PER_SECOND: f64 = 10.0;
/// Open widgets one user may have on one instance (tabs, devices); one more
/// is refused with `too_many_widgets` (close code 1013: try again later).
pub const MAX_WIDGETS_PER_USER: usize = 20;
/// How far back a resuming widget is sent messages again (it drops the
/// ones it has by id), so that clock differences between instances cannot
/// hide a message.
const RESUME_SLACK_MS: i64 = 5_000;

/// `GET /widget/ws`: upgrades to a WebSocket if the page asking is
/// murmur's own messenger frame, and its client address (an IPv6 address
/// by its /64) is within `WIDGET_CONNECT_RATE_LIMIT` (else 429).
pub async fn upgrade(
    Extension(state): Extension<Arc<AppState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    slot: Option<Extension<Arc<crate::server::connections::Slot>>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // The request's host name was checked already (`server::csrf`); its
    // page must be murmur's own (`PUBLIC_URL`'s origin when it is set).
    let host = crate::server::csrf::requested_host(&headers, state.config.trust_proxy);
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !origin.is_some_and(|o| state.config.public_host.is_own_page(o, host)) {
        tracing::warn!(origin = ?origin, "refused a widget connection from another origin");
        let body = json!({ "error": { "code": "forbidden_origin", "description": "Widget connections must come from murmur's messenger frame." } });
        return (StatusCode::FORBIDDEN, Json(body)).into_response();
    }
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr);
    let client = crate::server::limits::client_address(&headers, peer, state.config.trust_proxy);
    if let Some(ip) = client {
        if let Err(wait) = state.limits.widget_connect.check(&crate::server::limits::address_bucket(ip)) {
            tracing::info!(ip = %ip, "widget connection rate limit reached");
            let body = json!({ "error": { "code": "too_many_connections", "description": format!("Too many widget connections from this address. Try again in {wait} s.") } });
            return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, wait.to_string())], Json(body))
                .into_response();
        }
    }
    // Widget frames are small (a hello is a few hundred bytes); a larger one
    // grows the buffer for as long as it needs.
    ws.read_buffer_size(512)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| async move {
            // The connection's place in `MAX_CONNECTIONS` stays taken while the widget is open.
            let _slot = slot;
            run(state, socket, client).await
        })
}

/// Why a widget's frame was refused.
struct Refusal {
    code: &'static str,
    message: String,
    /// Close the connection (the widget should not retry as is).
    fatal: bool,
    /// The close code of a refused hello: 4400 (do not retry as is), or
    /// 1013 (try again later).
    close: u16,
}

impl Refusal {
    fn invalid(message: impl Into<String>) -> Self {
        Refusal::new("invalid", message)
    }
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Refusal { code, message: message.into(), fatal: false, close: 4400 }
    }
    fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        Refusal { fatal: true, ..Refusal::new(code, message) }
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "widget request failed");
        Refusal::new("internal", "Something went wrong on our side.")
    }
    fn frame(&self) -> String {
        json!({ "t": "error", "code": self.code, "message": self.message }).to_string()
    }
}

impl From<ActionError> for Refusal {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::Invalid(i) => Refusal::invalid(i.message),
            ActionError::TypeConflict { name, existing } => Refusal::invalid(format!(
                "Property {name:?} is a {existing} property in this app; send a {existing} value."
            )),
            ActionError::TooManyProperties | ActionError::Duplicate => Refusal::invalid(format!("{e}.")),
            ActionError::ServerOnly { .. } => Refusal::new("server_only", e.sentence()),
            ActionError::CatalogFull { .. } => Refusal::new("catalog_full", e.sentence()),
            ActionError::NoUser => Refusal::fatal("invalid_user", "This user no longer exists."),
            ActionError::NoConversation => Refusal::invalid("No such conversation."),
            ActionError::Failed(e) => Refusal::internal(e),
        }
    }
}

/// Who is on the other end, once `hello` has been accepted: the app, the
/// user (murmur's id), and whether their userId was verified with a JWT,
/// all an open widget keeps.
struct Session {
    app_id: String,
    id: String,
    verified: bool,
}

/// An accepted hello: the session and the launch's profile patch (written,
/// with app-launch whispers, once the connection has joined the hub).
struct Started {
    session: Session,
    launch: UserPatch,
    /// The app's VAPID public key while push is on (the welcome tells the
    /// messenger, which asks for permission after the user's first message).
    push_key: Option<String>,
}

/// Sends one message; false if the socket failed or took `SEND_WITHIN`.
async fn send_message(socket: &mut WebSocket, message: Message) -> bool {
    matches!(tokio::time::timeout(SEND_WITHIN, socket.send(message)).await, Ok(Ok(())))
}

async fn send(socket: &mut WebSocket, text: String) -> bool {
    send_message(socket, Message::Text(text.into())).await
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = send_message(socket, Message::Close(Some(CloseFrame { code, reason: reason.to_string().into() }))).await;
}

/// A widget that said hello and was welcomed.
struct Open {
    session: Session,
    conn: u64,
    inbox: Arc<Inbox>,
}

/// One widget's connection. Its task lives as long as the widget is open,
/// so its future is kept small (BENCHMARKS.md): the opening steps (hello,
/// welcome, app launch) run in a future of their own, boxed and freed once
/// done; each wake-up of the loop is handled in a boxed future that lives
/// only while it runs; and the loop is written here, not in a function of
/// its own, so that the socket is stored once. An idle connection keeps only
/// the loop's waiting state.
async fn run(state: Arc<AppState>, mut socket: WebSocket, client: Option<std::net::IpAddr>) {
    let Some(open) = Box::pin(open(&state, &mut socket, client)).await else { return };
    // One shared heartbeat for all connections (no timer per connection),
    // which also says when the server stops.
    let mut heartbeat = state.engine.hub.heartbeat(open.conn);
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
    state.engine.hub.leave(&open.session.id, open.conn);
}

/// The hello, the welcome and the app launch. `None`: the connection ends.
async fn open(state: &AppState, socket: &mut WebSocket, client: Option<std::net::IpAddr>) -> Option<Open> {
    // A shutdown that starts later, even during the hello, reaches the loop
    // through the heartbeat channel's value.
    if *state.engine.hub.closing().borrow() {
        close(socket, 1012, "restarting").await;
        return None;
    }
    // The hello, within a few seconds of the upgrade (pings do not extend it).
    let deadline = Instant::now() + HELLO_WITHIN;
    let hello = loop {
        match tokio::time::timeout_at(deadline, socket.recv()).await {
            Ok(Some(Ok(Message::Text(t)))) => break ClientFrame::parse(&t),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    };
    let mut since = None;
    let started = match hello {
        Ok(ClientFrame::Hello(hello)) => {
            since = hello.since.as_ref().and_then(Value::as_i64);
            start(state, hello, client).await
        }
        Ok(_) | Err(_) => Err(Refusal::fatal("hello_expected", "The first frame must be a hello.")),
    };
    let started = match started {
        Ok(s) => s,
        Err(r) => {
            let _ = send(socket, r.frame()).await;
            close(socket, r.close, r.code).await;
            return None;
        }
    };
    let Some((conn, inbox)) = state.engine.hub.try_join(&started.session.id, MAX_WIDGETS_PER_USER) else {
        let r = Refusal::fatal(
            "too_many_widgets",
            format!("This user has {MAX_WIDGETS_PER_USER} widgets open already; close one and try again."),
        );
        let _ = send(socket, r.frame()).await;
        close(socket, 1013, r.code).await;
        return None;
    };
    let session = &started.session;
    // The launch: lastSeenAt, appVersion, platform and the page's profile,
    // with the app-launch whispers planned on the updated row. Their cards
    // are queued for this connection already (it joined the hub), so the
    // welcome leaves them out; they follow it.
    let launch = UpdateFrom::Launch { verified: session.verified };
    let launched = state.engine.update_and_deliver(&session.app_id, &session.id, &started.launch, launch).await;
    let welcomed = match launched {
        Ok((user, new_cards)) => match welcome(state, &started, &user, &new_cards, since).await {
            Ok(frame) => send(socket, frame).await,
            Err(r) => {
                let _ = send(socket, r.frame()).await;
                false
            }
        },
        Err(e) => {
            let r = Refusal::from(e);
            let _ = send(socket, r.frame()).await;
            close(socket, 4400, r.code).await;
            false
        }
    };
    let session = started.session;
    if !welcomed {
        state.engine.hub.leave(&session.id, conn);
        return None;
    }
    Some(Open { session, conn, inbox })
}

/// What the loop does after a wake-up, outside the `select!` so that the
/// waiting state stays small.
enum Step {
    Frame(Option<Result<Message, axum::Error>>),
    Out(Option<Frame>),
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
        Step::Out(Some(frame)) => send_message(socket, Message::Text(frame.as_ref().into())).await,
        // Dropped by the hub for falling behind: the widget reconnects and resumes.
        Step::Out(None) => {
            close(socket, 1013, "fell behind").await;
            false
        }
        Step::Closing => {
            close(socket, 1012, "restarting").await;
            false
        }
        Step::Beat => heard.elapsed() <= HEARTBEAT * 3 && send_message(socket, Message::Ping(Default::default())).await,
    }
}

fn check_device(device: &str) -> bool {
    (8..=64).contains(&device.len()) && device.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Accepts or refuses a `hello`: the app, the device, the identity (a JWT
/// signed with the app's identity secret when the app requires it), and
/// the launch's profile patch (checked now, written once welcomed; none of
/// the app's server-only properties). A user the widget would create
/// without a verified identity counts against its client address's
/// allowance of new anonymous users (`NEW_ANONYMOUS_USER_RATE_LIMIT`).
async fn start(state: &AppState, hello: Hello, client: Option<std::net::IpAddr>) -> Result<Started, Refusal> {
    let app = match state.store.widget_app(&hello.app).await.map_err(Refusal::internal)? {
        Some(a) => a,
        None => return Err(Refusal::fatal("unknown_app", "No such app.")),
    };
    let device = hello.device.as_deref().filter(|d| check_device(d));
    let user_id = match &hello.user_id {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) if crate::domain::users::check_user_ref(u).is_ok() && !u.trim().is_empty() => {
            Some(u.as_str())
        }
        Some(_) => {
            return Err(Refusal::fatal(
                "invalid_user",
                "userId must be a string of 1 to 128 characters, without control characters.",
            ))
        }
    };
    // The launch: appVersion, platform, plus any profile the page passed.
    let mut body = match hello.user {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(Refusal::fatal("invalid_user", "user must be an object.")),
    };
    body.remove("userId");
    body.remove("signedUpAt");
    if let Some(Value::String(v)) = &hello.app_version {
        if Version::parse(v).is_some() {
            body.insert("appVersion".into(), json!(v));
        }
    }
    let platform = match &hello.platform {
        Some(Value::String(p)) if !crate::domain::text::has_control(p, false) => p.chars().take(32).collect(),
        _ => "web".to_string(),
    };
    body.insert("platform".into(), json!(platform));
    let launch = UserPatch::from_json(&body).map_err(|e| Refusal::fatal("invalid_user", e.message))?;
    let now = state.now();
    let verified = match (user_id, hello.jwt.as_deref()) {
        (Some(user_id), Some(token)) => {
            let secret = state
                .secrets
                .open(&identity_secret_context(&app.id), &app.identity_secret_enc)
                .map_err(|_| Refusal::internal("the identity secret could not be opened"))?;
            verify_identity(token, &secret, user_id, now)?;
            true
        }
        (Some(_), None) if app.identity_enforced => {
            return Err(Refusal::fatal(
                "identity_required",
                "This app requires identity verification: pass a JWT signed with its identity secret.",
            ))
        }
        _ => false,
    };
    // Refused before anything is written.
    state.engine.widget_may_set(&app.id, &launch).await.map_err(|e| match e {
        ActionError::ServerOnly { .. } => Refusal::fatal("server_only", e.sentence()),
        e => Refusal::from(e),
    })?;
    if !verified {
        new_anonymous_user(state, &app.id, user_id, device, client).await?;
    }
    let user = match user_id {
        Some(user_id) => state.engine.widget_user(&app.id, Some(user_id), device).await.map_err(|e| match e {
            ActionError::Invalid(i) => Refusal::fatal("invalid_user", i.message),
            e => Refusal::from(e),
        })?,
        None => {
            let device = device.ok_or_else(|| Refusal::fatal("invalid_device", "A device id is required."))?;
            state.engine.widget_user(&app.id, None, Some(device)).await?
        }
    };
    Ok(Started { session: Session { app_id: app.id, id: user.id, verified }, launch, push_key: app.push_key })
}

/// A widget without a verified identity is about to find or create its
/// user: if that user does not exist yet, the client address (an IPv6
/// address by its /64) must be within its allowance of new anonymous users.
async fn new_anonymous_user(
    state: &AppState,
    app_id: &str,
    user_id: Option<&str>,
    device: Option<&str>,
    client: Option<std::net::IpAddr>,
) -> Result<(), Refusal> {
    use crate::server::limits::address_bucket;
    let Some(ip) = client.filter(|_| user_id.is_some() || device.is_some()) else { return Ok(()) };
    if state.limits.new_anonymous_users.rate().is_none()
        || state.store.widget_user_exists(app_id, user_id, device).await.map_err(Refusal::internal)?
    {
        return Ok(());
    }
    state.limits.new_anonymous_users.check(&address_bucket(ip)).map_err(|wait| {
        tracing::info!(ip = %ip, app = %app_id, "new anonymous user rate limit reached");
        Refusal {
            close: 1013,
            ..Refusal::fatal(
                "too_many_new_users",
                format!("Too many new visitors from this address. Try again in {wait} s."),
            )
        }
    })
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

/// The conversation and cards for a (re)starting widget. `since` (the
/// newest message time the widget has) limits the messages resent.
async fn welcome(
    state: &AppState,
    started: &Started,
    user: &crate::storage::AppUserRow,
    just_made: &[crate::storage::DeliveryRow],
    since: Option<i64>,
) -> Result<String, Refusal> {
    let s = &started.session;
    let messages = match since {
        Some(since) => state.store.messages_since(&s.id, since.saturating_sub(RESUME_SLACK_MS), 500).await,
        None => state.store.user_messages(&s.id, 100).await,
    }
    .map_err(Refusal::internal)?;
    let mut cards = state.engine.cards_for_start(&s.id).await?;
    cards.retain(|c| !just_made.iter().any(|d| d.id == c.id));
    let office = state.engine.office_status(&s.app_id).await.map(|(open, back)| json!({ "open": open, "back": back }));
    let conversations = state.store.user_conversations(&s.id, 50).await.map_err(Refusal::internal)?;
    let head = json!({
        "t": "welcome",
        "user": { "id": s.id, "userId": user.user_id, "givenName": user.given_name },
        "messages": messages.iter().map(message_json).collect::<Vec<_>>(),
        "conversations": conversations.iter().map(conversation_json).collect::<Vec<_>>(),
        "office": office,
        "push": started.push_key,
    })
    .to_string();
    // The cards are spliced in as stored (serialised once, when planned).
    let cards: Vec<String> = cards.iter().map(card_frame).collect();
    Ok(format!(r#"{},"cards":[{}]}}"#, &head[..head.len() - 1], cards.join(",")))
}

/// A conversation as the widget lists it: the newest text, when, unread
/// team messages, and the card that started it.
fn conversation_json(c: &crate::storage::ConversationRow) -> Value {
    json!({ "id": c.id, "state": c.state, "at": c.last_activity_at, "last": c.last_text, "unread": c.unread_user,
            "card": c.card_id, "started": c.created_at })
}

/// One frame after the hello. `Ok(Some(frame))` is an answer to send back.
async fn handle(state: &AppState, s: &Session, text: &str) -> Result<Option<String>, Refusal> {
    match ClientFrame::parse(text).map_err(Refusal::invalid)? {
        ClientFrame::Ping => Ok(Some(r#"{"t":"pong"}"#.to_string())),
        ClientFrame::Hello(_) => Err(Refusal::invalid("This widget already said hello.")),
        ClientFrame::Track { name, props } => {
            let name = name.ok_or_else(|| Refusal::invalid("track needs a name."))?;
            let event = Event::parse(Some(&name), props.as_ref()).map_err(|e| Refusal::invalid(e.message))?;
            state.engine.track(&s.app_id, &s.id, event, Author::Widget { verified: s.verified }).await?;
            Ok(None)
        }
        ClientFrame::Update { user } => {
            let Some(Value::Object(mut body)) = user else {
                return Err(Refusal::invalid("update needs a user object."));
            };
            body.remove("userId");
            let patch = UserPatch::from_json(&body).map_err(|e| Refusal::invalid(e.message))?;
            state.engine.update_user(&s.app_id, &s.id, &patch, UpdateFrom::Widget { verified: s.verified }).await?;
            Ok(None)
        }
        ClientFrame::Seen { id } => {
            state.engine.react(&s.id, &id, Reaction::Seen).await?;
            Ok(None)
        }
        ClientFrame::Clicked { id } => {
            state.engine.react(&s.id, &id, Reaction::Clicked).await?;
            Ok(None)
        }
        ClientFrame::Reply { text, card, conversation } => {
            let text =
                MessageText::parse(text.as_str().unwrap_or_default()).map_err(|e| Refusal::invalid(e.message))?;
            let conversation = match conversation {
                Some(c) => ConversationTarget::Given(c),
                None => ConversationTarget::Latest,
            };
            // A card that is not this user's (another user's or app's, or
            // made up) is not linked: the reply is posted as a plain message.
            let card = match card {
                Some(c) => state.store.card_of(&s.id, &c).await.map_err(Refusal::internal)?.map(|_| c),
                None => None,
            };
            let m = NewMessage {
                name_from_user: true,
                replying_to: card,
                conversation,
                ..NewMessage::new(Role::AppUser, text)
            };
            state.engine.post_message(&s.app_id, &s.id, m).await?;
            Ok(None)
        }
        ClientFrame::Read { conversation } => {
            state.engine.conversation_read(&s.id, &conversation).await?;
            Ok(None)
        }
        ClientFrame::Push { endpoint, keys, page } => {
            subscribe(state, s, endpoint, keys, page).await?;
            Ok(None)
        }
    }
}

/// Stores a browser's push subscription for this user, if the app has
/// push on and the subscription is well-formed.
async fn subscribe(
    state: &AppState,
    s: &Session,
    endpoint: Option<Value>,
    keys: Option<Value>,
    page: Option<Value>,
) -> Result<(), Refusal> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let sub = crate::engine::push::Subscription {
        endpoint: text(endpoint.as_ref()),
        p256dh: text(keys.as_ref().and_then(|k| k.get("p256dh"))),
        auth: text(keys.as_ref().and_then(|k| k.get("auth"))),
    };
    let page = text(page.as_ref());
    let settings = state.store.push_settings(&s.app_id).await.map_err(Refusal::internal)?;
    if !settings.is_some_and(|p| p.enabled && p.public_key.is_some()) {
        return Err(Refusal::new("push_off", "Push notifications are off for this app."));
    }
    crate::engine::push::check_subscription(&sub, state.engine.push_allows_local())
        .map_err(|m| Refusal::new("invalid_subscription", m))?;
    if !crate::domain::whisper::is_http_url(&page) || page.len() > 2000 {
        return Err(Refusal::new("invalid_subscription", "page must be the http(s) address of the page."));
    }
    state
        .store
        .add_push_subscription(&s.app_id, &s.id, &sub.endpoint, &sub.p256dh, &sub.auth, &page, state.now())
        .await
        .map_err(Refusal::internal)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds `messenger.js` declares in its protocol comment.
    fn declared(prefix: &str) -> Vec<String> {
        let line = crate::widget::MESSENGER_JS
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("messenger.js lists no {prefix:?}"));
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_widget_speaks_the_protocol_defined_here() {
        assert_eq!(declared("// sends:"), ClientFrame::KINDS);
        assert_eq!(declared("// receives:"), SERVER_KINDS);
        // And every kind it sends is one the JS really sends.
        for kind in ClientFrame::KINDS {
            assert!(crate::widget::MESSENGER_JS.contains(&format!("t: \"{kind}\"")), "messenger.js never sends {kind}");
        }
        for kind in SERVER_KINDS.iter().filter(|k| **k != "pong") {
            assert!(
                crate::widget::MESSENGER_JS.contains(&format!("f.t === \"{kind}\"")),
                "messenger.js ignores {kind}"
            );
        }
    }

    #[test]
    fn frames_parse_into_the_enum() {
        assert!(matches!(ClientFrame::parse(r#"{"t":"ping"}"#), Ok(ClientFrame::Ping)));
        assert!(matches!(
            ClientFrame::parse(r#"{"t":"seen","id":"d1"}"#),
            Ok(ClientFrame::Seen { id }) if id == "d1"
        ));
        assert!(matches!(ClientFrame::parse(r#"{"t":"hello","app":"a"}"#), Ok(ClientFrame::Hello(h)) if h.app == "a"));
        assert_eq!(ClientFrame::parse(r#"{"t":"dance"}"#).unwrap_err(), "Unknown frame type \"dance\".");
        assert!(ClientFrame::parse("[1]").is_err());
        assert!(ClientFrame::parse(r#"{"t":"seen"}"#).unwrap_err().contains("malformed"));
        // NUL anywhere (a value, a key, deep inside) refuses the frame.
        for nul in [r#"{"t":"seen","id":"d\u0000"}"#, r#"{"t":"track","name":"x","props":{"k\u0000":1}}"#] {
            assert!(ClientFrame::parse(nul).unwrap_err().contains("NUL"), "{nul}");
        }
    }
}
