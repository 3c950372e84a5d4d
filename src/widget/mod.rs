//! The end-user widget: its static files (loader, messenger frame), the
//! WebSocket each open widget holds (delivery itself is `crate::engine`).
//!
//! The widget is plain JavaScript, not Leptos: see ARCHITECTURE.md ("Why
//! the widget is not WASM"). Its files are compiled into the binary.

pub mod socket;

use std::sync::LazyLock;

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use sha2::{Digest, Sha256};

use crate::server::AppState;

pub const LOADER_JS: &str = include_str!("../../widget/loader.js");
pub const MESSENGER_JS: &str = include_str!("../../widget/messenger.js");
pub const MESSENGER_CSS: &str = include_str!("../../widget/messenger.css");
/// The service worker a customer serves from their own site for Web Push.
pub const PUSH_SW_JS: &str = include_str!("../../widget/push-sw.js");
const FRAME_HTML: &str = include_str!("../../widget/frame.html");

/// A short content hash, so the frame can reference its script and style
/// with long-lived caching and still pick up a new release.
fn version(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..6])
}

static FRAME: LazyLock<String> =
    LazyLock::new(|| FRAME_HTML.replace("{{v}}", &version(&[MESSENGER_JS, MESSENGER_CSS])));

/// The messenger frame's policy: only murmur's own script, style and
/// socket; no inline script, no plugins, no forms; embeddable anywhere.
const FRAME_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors *";

fn asset(body: &'static str, content_type: &'static str, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        body,
    )
        .into_response()
}

async fn loader() -> Response {
    // The snippet's URL never changes: cache briefly so releases spread.
    asset(LOADER_JS, "text/javascript; charset=utf-8", "public, max-age=300")
}

async fn messenger_js() -> Response {
    asset(MESSENGER_JS, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable")
}

async fn messenger_css() -> Response {
    asset(MESSENGER_CSS, "text/css; charset=utf-8", "public, max-age=31536000, immutable")
}

async fn push_sw() -> Response {
    // Offered for download (Settings → Push); the customer serves their copy.
    let mut r = asset(PUSH_SW_JS, "text/javascript; charset=utf-8", "public, max-age=300");
    r.headers_mut()
        .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"murmur-sw.js\""));
    r
}

async fn frame() -> Response {
    let mut r = asset(FRAME.as_str(), "text/html; charset=utf-8", "public, max-age=300");
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(FRAME_CSP));
    r.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

/// The widget's routes. Open widgets share one `Arc` of the state instead of
/// each keeping a copy for as long as it is open.
pub fn router(state: &AppState) -> Router<AppState> {
    let files = Router::new()
        .route("/widget/loader.js", get(loader))
        .route("/widget/messenger.js", get(messenger_js))
        .route("/widget/messenger.css", get(messenger_css))
        .route("/widget/frame", get(frame))
        .route("/widget/push-sw.js", get(push_sw))
        .layer(tower_http::compression::CompressionLayer::new());
    files.route("/widget/ws", get(socket::upgrade).layer(axum::Extension(std::sync::Arc::new(state.clone()))))
}
