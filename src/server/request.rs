//! What a server function needs from the request it serves: the shared
//! state, the session cookie, the client address, and a way to answer with
//! the right status and cookies.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::ConnectInfo,
    http::{header, request::Parts, HeaderValue, StatusCode},
};
use leptos::prelude::use_context;
use leptos_axum::ResponseOptions;

use super::state::AppState;
use crate::error::AppError;

/// The session cookie's name over plain http (local development).
pub const SESSION_COOKIE: &str = "murmur_session";
/// Its name when `PUBLIC_URL` is https: browsers keep a `__Host-` cookie
/// only if it is `Secure`, has `Path=/` and no `Domain`, so a sibling
/// subdomain or a plain-http page cannot plant or overwrite it.
pub const SESSION_COOKIE_HTTPS: &str = "__Host-murmur_session";

/// The session cookie's name on this instance (only that one is read).
pub fn session_cookie_name(state: &AppState) -> &'static str {
    if state.config.public_url.starts_with("https://") {
        SESSION_COOKIE_HTTPS
    } else {
        SESSION_COOKIE
    }
}
pub use super::auth::SESSION_TTL_MS;

pub fn state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState missing from the server function context");
        AppError::Internal
    })
}

fn parts() -> Option<Parts> {
    use_context::<Parts>()
}

/// The session token from the request's cookies, if any.
pub fn session_token() -> Option<String> {
    let parts = parts()?;
    let state = use_context::<AppState>()?;
    session_token_in(&state, &parts.headers)
}

/// The session token among `headers`' cookies, under this instance's name.
pub fn session_token_in(state: &AppState, headers: &axum::http::HeaderMap) -> Option<String> {
    let cookies = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok());
    session_token_from(session_cookie_name(state), cookies)
}

pub fn session_token_from<'a>(name: &str, cookie_headers: impl Iterator<Item = &'a str>) -> Option<String> {
    cookie_headers
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty())
}

/// The client's address: the socket peer, or with `TRUST_PROXY` the
/// address the proxy appended last to `X-Forwarded-For`.
pub fn client_ip(state: &AppState) -> Option<IpAddr> {
    let parts = parts()?;
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    super::limits::client_address(&parts.headers, peer, state.config.trust_proxy)
}

fn served_over_https(state: &AppState) -> bool {
    if state.config.public_url.starts_with("https://") {
        return true;
    }
    state.config.trust_proxy
        && parts()
            .and_then(|p| p.headers.get("x-forwarded-proto").cloned())
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// Sets (or, with `None`, clears) the session cookie on the response.
pub fn set_session_cookie(state: &AppState, token: Option<&str>) {
    let Some(res) = use_context::<ResponseOptions>() else { return };
    let name = session_cookie_name(state);
    // A `__Host-` cookie must be `Secure` whatever the request looked like.
    let secure = if name == SESSION_COOKIE_HTTPS || served_over_https(state) { "; Secure" } else { "" };
    let cookie = match token {
        Some(t) => format!("{name}={t}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}", SESSION_TTL_MS / 1000),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    };
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.append_header(header::SET_COOKIE, v);
    }
}

/// Passes a server function's result through, giving an error its HTTP
/// status when the function was called over HTTP (not during page render).
/// A plain HTML form's post (it accepts `text/html`: the sign-in and setup
/// pages, sent without the WASM client) keeps the framework's answer
/// instead, a 302 back to the form's page with the error in its address,
/// which the page shows beside the field (`pages::shell`).
pub fn respond<T>(result: Result<T, AppError>) -> Result<T, AppError> {
    if let Err(e) = &result {
        let over_http = parts().is_some_and(|p| p.uri.path().starts_with("/api/") && !is_form_post(&p.headers));
        if over_http {
            if let Some(res) = use_context::<ResponseOptions>() {
                res.set_status(StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST));
                if let AppError::Throttled { retry_after_secs } = e {
                    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                        res.insert_header(header::RETRY_AFTER, v);
                    }
                }
            }
        }
    }
    result
}

/// A form's on/off field, sent as "true" or "false"; anything else is
/// refused with a message beside `field`.
pub fn on_off(value: &str, field: &str) -> Result<bool, AppError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(AppError::Field { field: field.into(), message: "Choose on or off.".into() }),
    }
}

/// A browser's own form submission (no script): it asks for HTML, where the
/// dashboard's client asks for JSON.
pub fn is_form_post(headers: &axum::http::HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}

/// The shared state and the signed-in teammate, or `Unauthenticated`.
pub async fn signed_in() -> Result<(AppState, crate::storage::TeammateRow), AppError> {
    let state = state()?;
    let teammate = super::auth::authenticate(&state, session_token().as_deref()).await?;
    Ok((state, teammate))
}

/// The body of most server functions: with the signed-in teammate, run
/// `service`, and answer with the right status.
pub async fn as_teammate<T, Fut>(
    service: impl FnOnce(AppState, crate::storage::TeammateRow) -> Fut,
) -> Result<T, AppError>
where
    Fut: std::future::Future<Output = Result<T, AppError>>,
{
    let result = match signed_in().await {
        Ok((state, teammate)) => service(state, teammate).await,
        Err(e) => Err(e),
    };
    respond(result)
}

/// A page served outside the dashboard (the unsubscribe page, the demo
/// page): HTML, never cached, its own Content-Security-Policy, no referrer
/// to other sites (its URL may hold a token), no type sniffing.
pub fn standalone_html(status: axum::http::StatusCode, html: String, csp: &'static str) -> axum::response::Response {
    use axum::{
        http::{header, HeaderValue},
        response::IntoResponse,
    };
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let headers = ["a=1; murmur_session=tok; b=2"];
        assert_eq!(session_token_from(SESSION_COOKIE, headers.into_iter()).as_deref(), Some("tok"));
        assert_eq!(session_token_from(SESSION_COOKIE, ["murmur_session="].into_iter()), None);
        assert_eq!(session_token_from(SESSION_COOKIE, ["x=murmur_session"].into_iter()), None);
    }

    #[test]
    fn reads_only_the_cookie_name_in_use() {
        let both = ["murmur_session=plain; __Host-murmur_session=host"];
        assert_eq!(session_token_from(SESSION_COOKIE_HTTPS, both.into_iter()).as_deref(), Some("host"));
        assert_eq!(session_token_from(SESSION_COOKIE, both.into_iter()).as_deref(), Some("plain"));
        assert_eq!(session_token_from(SESSION_COOKIE_HTTPS, ["murmur_session=plain"].into_iter()), None);
    }
}
