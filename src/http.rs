//! The server binary's start and its HTTP router: health check, the REST
//! API, the widget, the Leptos pages and server functions, static files,
//! `/metrics`, the cross-site guard in front of all of it, page redirects
//! made real, and around every request its id, log span and metrics.

use std::{process::ExitCode, sync::Arc};

use axum::{
    body::Body,
    extract::{ConnectInfo, MatchedPath, State},
    http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use leptos::config::get_configuration;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::{
    pages::{shell, App},
    server::{csrf, unsubscribe, AppState, Settings, SystemClock},
};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/unsubscribe/{token}", get(unsubscribe::show).post(unsubscribe::confirm))
        .route("/live/inbox/{app_id}", get(crate::server::conversations::live))
        .route("/demo/demo.js", get(crate::server::demo::script))
        .route("/demo/{app_id}", get(crate::server::demo::page))
        .merge(metrics_route(&state))
        .merge(crate::api::router())
        .merge(crate::widget::router(&state))
        .merge(crate::server::assets::router(&pkg_url(&state), &pkg_dir(&state), loader_override(&state)))
        .merge(pages(&state))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(middleware::from_fn(real_page_redirects))
        .layer(middleware::from_fn(server_fn_client_errors))
        .layer(middleware::from_fn(refuse_nul))
        .layer(middleware::from_fn_with_state(state.clone(), csrf::refuse_foreign_requests))
        .layer(middleware::from_fn_with_state(state.clone(), request_deadline))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The dashboard's pages and server functions; the pages (HTML, 200)
/// compressed, brotli or gzip as the browser accepts: a page carries its
/// data for hydration, and the overview's was 68 KB as plain HTML. Server
/// functions' JSON is left as it is (`server_fn_client_errors` reads error
/// bodies), and so are redirects, whose page is not sent. (`/pkg` is
/// compressed ahead of time, `server::assets`.)
fn pages(state: &AppState) -> Router<AppState> {
    let routes = generate_route_list(App);
    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
    };
    Router::new()
        .leptos_routes_with_context(state, routes, context, {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .layer(tower_http::compression::CompressionLayer::new().compress_when(html_page))
}

fn html_page(status: StatusCode, _: axum::http::Version, headers: &HeaderMap, _: &axum::http::Extensions) -> bool {
    let html =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/html"));
    status == StatusCode::OK && html && !headers.contains_key(header::LOCATION)
}

/// Answers 408 (and closes the connection) a request not answered within
/// `REQUEST_TIMEOUT_MS` of its headers: one whose body never arrives in
/// full (a `Content-Length` larger than what is sent, an
/// `Expect: 100-continue` never followed) or that takes too long to
/// handle. A streamed answer (pages, the inbox's live updates, a widget's
/// WebSocket) counts until its head is ready.
async fn request_deadline(State(state): State<AppState>, req: Request<Body>, next: Next) -> Response {
    match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let body = serde_json::json!({ "error": {
                "code": "request_timeout",
                "description": "The request was not received and answered in time.",
            } });
            (StatusCode::REQUEST_TIMEOUT, [(header::CONNECTION, "close")], Json(body)).into_response()
        }
    }
}

/// `GET /metrics` while metrics are on (`METRICS_TOKEN`); otherwise there is
/// no such route, and the path is not found like any other.
fn metrics_route(state: &AppState) -> Router<AppState> {
    match state.metrics.is_on() {
        true => Router::new().route("/metrics", get(metrics)),
        false => Router::new(),
    }
}

/// The metrics in the Prometheus text format, for `Authorization: Bearer
/// <METRICS_TOKEN>` only (a 401 in the REST API's error shape otherwise).
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if !state.metrics.authorized(authorization) {
        let mut refused =
            crate::api::error::ApiError::unauthorized("Send the metrics token as a bearer token.").into_response();
        refused.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return refused;
    }
    state.metrics.password_checks(state.passwords.checks());
    match state.metrics.render(state.engine.hub.connections()) {
        Some(text) => {
            ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE), (header::CACHE_CONTROL, "no-store")], text)
                .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A request id as a client or proxy may give it: short, and only
/// characters that are safe in a log line and a header.
fn acceptable_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Around every request (outermost, after routing): its id (the caller's
/// `X-Request-Id` if acceptable, else a new one), set on the request and
/// echoed on the response; a log span carrying the id, the method and the
/// matched route (never the raw path, which may hold a token), so every log
/// line of the request shows them; and the request's metrics.
async fn observe(State(state): State<AppState>, mut req: Request<Body>, next: Next) -> Response {
    let given = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).filter(|id| acceptable_request_id(id));
    let id = match given {
        Some(id) => id.to_string(),
        None => crate::storage::new_id(),
    };
    let value = HeaderValue::from_str(&id).expect("a request id is a valid header value");
    req.headers_mut().insert(REQUEST_ID.clone(), value.clone());
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %method,
        route = %route.as_deref().unwrap_or("unmatched"),
    );
    let started = std::time::Instant::now();
    let mut res = next.run(req).instrument(span).await;
    state.metrics.http_request(method.as_str(), route.as_deref(), res.status().as_u16(), started.elapsed());
    res.headers_mut().insert(REQUEST_ID.clone(), value);
    res
}

/// Where the dashboard's built files are served (`/pkg`) and read from.
fn pkg_url(state: &AppState) -> String {
    format!("/{}", state.leptos_options.site_pkg_dir.trim_matches('/'))
}

fn pkg_dir(state: &AppState) -> std::path::PathBuf {
    std::path::Path::new(&*state.leptos_options.site_root).join(&*state.leptos_options.site_pkg_dir)
}

/// The chunk loader that takes each page's files from its bundle, if the
/// server packed them when it started (`server::bundles`).
fn loader_override(state: &AppState) -> Option<(String, std::path::PathBuf)> {
    let options = &state.leptos_options;
    options
        .hash_files
        .then(|| crate::server::bundles::loader_override(&pkg_dir(state), std::path::Path::new(&*options.hash_file)))
        .flatten()
}

/// A page that redirects (`<Redirect>` while rendering: setup needed, not
/// signed in, `/` to the first app) gets a `Location` header from
/// leptos_axum, but a 302 status only if the request's `Accept` names
/// `text/html`; a plain HTTP client (curl, a crawler, `Accept: */*`) would
/// get 200 and an empty page. Every page GET answering with a `Location`
/// is made a 302 with no body here. Server functions (`/api/…`) are left
/// alone: their client reads the `Location` of a 200 itself.
async fn real_page_redirects(req: Request<Body>, next: Next) -> Response {
    let page = matches!(*req.method(), Method::GET | Method::HEAD) && !req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    let redirect = page
        && matches!(res.status(), StatusCode::OK | StatusCode::FOUND)
        && res.headers().contains_key(header::LOCATION);
    if !redirect {
        return res;
    }
    // The rendered page (the empty shell) is not sent.
    let (mut parts, _page) = res.into_parts();
    parts.status = StatusCode::FOUND;
    for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::CONTENT_SECURITY_POLICY] {
        parts.headers.remove(name);
    }
    // leptos_axum's marker for its server-function client, meaningless here.
    parts.headers.remove(leptos::server_fn::redirect::REDIRECT_HEADER);
    Response::from_parts(parts, Body::empty())
}

/// A server function's request that cannot be decoded (a missing or
/// malformed field, a body that is not a form, a broken body) gets its
/// error from leptos with status 500 whatever the error; the client's
/// mistake is answered with its `AppError`'s status instead (400 for
/// `AppError::Request`). A real `AppError::Internal` stays 500.
async fn server_fn_client_errors(req: Request<Body>, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    if !api || res.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    // An error body is a JSON `AppError`; a decoding error may quote the
    // request (bounded by the request body limit).
    let Ok(bytes) = axum::body::to_bytes(body, 8 * 1024 * 1024).await else {
        return Response::from_parts(parts, Body::empty());
    };
    if let Ok(e) = serde_json::from_slice::<crate::error::AppError>(&bytes) {
        parts.status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Largest server-function body (a form) read to look for NUL.
const MAX_FORM_BODY: usize = 2 * 1024 * 1024;

/// No path, query or server-function field may hold U+0000 (raw or
/// `%00`): nothing murmur stores or looks up can contain one, and
/// PostgreSQL refuses it in text, so such a request would otherwise fail
/// deep inside (500). 400 (a REST path: 404, it names nothing).
async fn refuse_nul(req: Request<Body>, next: Next) -> Response {
    let refuse = |what: &str| {
        let body = serde_json::json!({
            "error": { "code": "bad_request", "description": format!("The request's {what} cannot contain NUL characters (U+0000).") }
        });
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    };
    let uri = req.uri();
    let encoded_nul = |s: &str| s.contains('\0') || s.to_ascii_lowercase().contains("%00");
    if encoded_nul(uri.path()) || uri.query().is_some_and(encoded_nul) {
        if uri.path().starts_with("/v1.1/") {
            // The REST API's ids in the path name nothing then (as an
            // unknown user id does): 404.
            let body = serde_json::json!({
                "error": { "code": "not_found", "description": "No user or conversation has an id with a NUL character (U+0000)." }
            });
            return (StatusCode::NOT_FOUND, Json(body)).into_response();
        }
        return refuse("address");
    }
    if !(req.method() == Method::POST && uri.path().starts_with("/api/")) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BODY).await else {
        let body = serde_json::json!({ "error": { "code": "too_large", "description": "The request is too large." } });
        return (StatusCode::PAYLOAD_TOO_LARGE, Json(body)).into_response();
    };
    if bytes.contains(&0) || bytes.windows(3).any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0') {
        return refuse("fields");
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// 200 when the database answers, 503 when it does not.
/// On a connection of its own (`AppState::health`), so a busy shared pool
/// does not delay it.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.health.ping().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "status": "ok", "database": state.store.backend_name() }))),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "unavailable", "database": state.store.backend_name() })),
            )
        }
    }
}

/// What the binary does: read configuration, open the database, serve until
/// SIGTERM or Ctrl-C. Bad configuration is one clear line and exit code 2.
pub async fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is a configuration error.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("murmur: cannot read .env: {e}");
            return ExitCode::from(2);
        }
    }
    let settings = match Settings::from_env(|k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("murmur: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings);

    let leptos_options = match get_configuration(Some(&settings.site_config)) {
        Ok(conf) => conf.leptos_options,
        Err(e) => {
            eprintln!("murmur: cannot read site configuration {}: {e}", settings.site_config);
            return ExitCode::from(2);
        }
    };
    // The database and the server key before the port: a configuration
    // error is reported as itself even when the port is taken (say, by a
    // murmur already running there).
    let addr = leptos_options.site_addr;
    let state = match AppState::open(&settings, leptos_options, Arc::new(SystemClock)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("murmur: {e}");
            return ExitCode::from(1);
        }
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("murmur: cannot listen on {addr}: {e}");
            state.store.close().await;
            return ExitCode::from(1);
        }
    };
    tracing::info!(%addr, backend = state.store.backend_name(), public_url = %state.config.public_url, "murmur listening");
    if let Err(e) = serve(listener, state.clone(), shutdown_signal()).await {
        eprintln!("murmur: server error: {e}");
        return ExitCode::from(1);
    }
    state.store.close().await;
    tracing::info!("murmur stopped");
    ExitCode::SUCCESS
}

/// Serves the app on `listener` until `shutdown` completes, letting requests
/// in flight finish. HTTP/1 with upgrades (the widget's WebSocket), and a
/// header-read timeout: a client that does not send a request's headers in
/// time (slowloris), or stays idle that long between requests, is
/// disconnected. (`axum::serve` has no such timeout, hence hyper's own
/// connection builder here.)
pub async fn serve(
    mut listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Its `accept` retries (and logs) what a server should not stop for.
    use axum::serve::Listener;
    use hyper_util::rt::{TokioIo, TokioTimer};

    crate::server::assets::prepare(pkg_dir(&state));
    crate::server::assets::prepare(pkg_dir(&state).join(crate::server::bundles::DIR));
    state.engine.listen();
    state.engine.hub.start_heartbeat(crate::widget::socket::HEARTBEAT);
    if let Some(period) = state.config.scheduler_period {
        state.engine.start_scheduler(period);
    }
    let hub = state.engine.hub.clone();
    let connections = state.connections.clone();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(state.config.header_read_timeout);
    let app = router(state);
    // Each connection holds a receiver: `stop` asks them to finish, and the
    // sender's `closed` says when the last one has.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        // Past a bound, a fixed answer and no more (`server::connections`).
        let slot = match connections.try_open(remote.ip()) {
            Ok(slot) => Arc::new(slot),
            Err(why) => {
                connections.refuse(stream, why);
                continue;
            }
        };
        let app = app.clone();
        let held = slot.clone();
        let service = hyper::service::service_fn(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(remote));
            // A WebSocket keeps the connection's place once upgraded.
            req.extensions_mut().insert(held.clone());
            tower::ServiceExt::oneshot(app.clone(), req)
        });
        let conn = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stopping.wait_for(|stop| *stop) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    // Open widgets are told to reconnect (to another instance, or to this one once back).
    hub.close_all();
    drop((listener, stopping));
    let _ = stop.send(true);
    stop.closed().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received, finishing requests in flight");
}

fn init_logging(settings: &Settings) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if settings.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}
