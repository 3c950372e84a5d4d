//! The unsubscribe link of every email (`/unsubscribe/{token}`, the token
//! from `engine::email::unsubscribe_token`): an end user's page, not the
//! dashboard's, served by the router directly (plain server-rendered HTML,
//! no Leptos, no script).
//!
//! - `GET` shows what the link does and a button; it changes nothing (mail
//!   scanners open links).
//! - `POST` (that button, or a mail client's RFC 8058 one-click request
//!   with the body `List-Unsubscribe=One-Click`) sets the user's custom
//!   boolean property `unsubscribedFromEmails` to true through the engine's
//!   user-update path (`Engine::update_user`, as the end user through
//!   murmur's signed link: `UpdateFrom::Link`), so whispers and segments see it like any
//!   other property change, then says so.
//!
//! The token is the whole credential (no cookie is involved), so the
//! cross-site guard lets a one-click request through: it carries neither
//! `Origin` nor `Sec-Fetch-Site`. A link that is not valid gets a 404 page.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use serde_json::{json, Map, Value as Json};

use super::{email::unsubscribe_key, state::AppState};
use crate::{
    domain::{template::escape_html, users::UserPatch},
    engine::{actions::UpdateFrom, email::read_unsubscribe_token, ActionError},
};

/// The custom property an unsubscribe sets (true).
pub const UNSUBSCRIBED_PROPERTY: &str = "unsubscribedFromEmails";

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
<style>body{{font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2328;background:#f6f8fa;margin:0}}\
main{{max-width:28rem;margin:15vh auto;padding:2rem;background:#fff;border:1px solid #d0d7de;border-radius:8px}}\
h1{{font-size:1.25rem;margin-top:0}}button{{font:inherit;padding:.5rem 1rem;border-radius:6px;border:1px solid #1f2328;\
background:#1f2328;color:#fff;cursor:pointer}}</style></head>\n\
<body><main>\n<h1>{title}</h1>\n{body}\n</main></body></html>\n",
        title = escape_html(title),
    );
    // The token is in the URL: the helper never tells another site about it.
    super::request::standalone_html(status, html, CSP)
}

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "This unsubscribe link is not valid",
        "<p>The link may have been cut short or changed. Open the unsubscribe link from the email again, \
         or reply to the email and ask to be removed.</p>",
    )
}

fn failed() -> Response {
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Your choice could not be recorded",
        "<p>Something went wrong on our side. Please try again in a moment, or reply to the email and ask \
         to be removed.</p>",
    )
}

/// The (app, user) the token names, with the app's name; `None` when the
/// token is not valid or the app or user is gone.
async fn subject(state: &AppState, token: &str) -> Result<Option<(String, String, String, bool)>, Response> {
    let Some((app_id, user_id)) = read_unsubscribe_token(&unsubscribe_key(&state.secrets), token) else {
        return Ok(None);
    };
    let name = state.store.app_name(&app_id).await.map_err(|e| {
        tracing::error!(error = %e, "unsubscribe page: cannot load the app");
        failed()
    })?;
    let Some(name) = name else { return Ok(None) };
    let user = state.store.app_user(&app_id, &user_id).await.map_err(|e| {
        tracing::error!(error = %e, "unsubscribe page: cannot load the user");
        failed()
    })?;
    let Some(user) = user.filter(|u| u.id == user_id) else { return Ok(None) };
    let done = user.properties.0.get(UNSUBSCRIBED_PROPERTY) == Some(&Json::Bool(true));
    Ok(Some((app_id, user_id, name, done)))
}

/// `GET /unsubscribe/{token}`: what the link does, and the button.
pub async fn show(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let (_, _, name, done) = match subject(&state, &token).await {
        Ok(Some(s)) => s,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    let name = escape_html(&name);
    if done {
        return page(
            StatusCode::OK,
            "You are unsubscribed",
            &format!("<p>You no longer receive emails from {name}.</p>"),
        );
    }
    let action = escape_html(&format!("/unsubscribe/{token}"));
    page(
        StatusCode::OK,
        "Unsubscribe from emails",
        &format!(
            "<p>Stop receiving emails from {name}?</p>\n\
             <form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>"
        ),
    )
}

/// `POST /unsubscribe/{token}`: records the unsubscribe (also RFC 8058
/// one-click; the body is not needed).
pub async fn confirm(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let (app_id, user_id, name, _) = match subject(&state, &token).await {
        Ok(Some(s)) => s,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    let mut body = Map::new();
    body.insert("properties".into(), json!({ UNSUBSCRIBED_PROPERTY: true }));
    let patch = match UserPatch::from_json(&body) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e.message, "unsubscribe: the patch does not validate");
            return failed();
        }
    };
    match state.engine.update_user(&app_id, &user_id, &patch, UpdateFrom::Link).await {
        Ok(_) => {
            tracing::info!(app = %app_id, user = %user_id, "a user unsubscribed from email");
            page(
                StatusCode::OK,
                "You are unsubscribed",
                &format!("<p>You will no longer receive emails from {}.</p>", escape_html(&name)),
            )
        }
        Err(ActionError::NoUser) => not_found(),
        Err(e) => {
            // E.g. the app already has `unsubscribedFromEmails` as another type.
            tracing::error!(app = %app_id, user = %user_id, error = %e, "unsubscribe could not be recorded");
            failed()
        }
    }
}
