//! The demo page: try an app's whispers and messages without a website.
//!
//! `GET /demo/{app_id}` is a plain shop page with the widget installed the
//! way a customer installs it (the loader, its frame, its socket): none of
//! the dashboard's code or styles run there, so what the teammate sees is
//! what an end user sees. The page is for the app's teammates only (it
//! carries an identity token), and only for test users whose userId starts
//! with `demo-`, so the demo cannot act as a real user. The teammate picks
//! a test user (a fresh one by default: a whisper goes to each user once),
//! sets properties and tracks events with buttons (the widget's own
//! `updateUser` and `track`), and sees whispers and messages arrive.
//! `?whisper=<id>` (the editor's "Try this whisper") shows what fires that
//! whisper and prefills its event.

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::{apps::app_of, crypto::identity_secret_context, state::AppState};
use crate::domain::{template::escape_html, whisper::Trigger};

/// The page's script (`widget/demo.js`).
pub const DEMO_JS: &str = include_str!("../../widget/demo.js");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; frame-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// How long the test user's identity token is good for.
const TOKEN_SECS: i64 = 3600;

#[derive(Debug, Default, Deserialize)]
pub struct DemoQuery {
    pub user: Option<String>,
    pub whisper: Option<String>,
}

/// A test user's id: `demo-` and 1 to 40 letters, digits, `-` or `_`.
pub fn is_demo_user(id: &str) -> bool {
    id.strip_prefix("demo-").is_some_and(|rest| {
        (1..=40).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// A fresh test user id.
fn fresh_user() -> String {
    format!("demo-{}", &crate::storage::new_id()[..10].to_ascii_lowercase())
}

pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        DEMO_JS,
    )
        .into_response()
}

fn plain(status: StatusCode, title: &str, text: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t}</h1><p>{}</p><p><a href=\"/\">Back to murmur</a></p></body></html>",
        escape_html(text),
        t = escape_html(title)
    );
    super::request::standalone_html(status, html, CSP)
}

/// A query string value, percent-encoded.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn page(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    Query(q): Query<DemoQuery>,
    headers: HeaderMap,
) -> Response {
    let token = super::request::session_token_in(&state, &headers);
    let Ok(me) = super::auth::authenticate(&state, token.as_deref()).await else {
        return Redirect::to("/login").into_response();
    };
    let app = match app_of(&state, &me, &app_id).await {
        Ok(app) => app,
        Err(crate::error::AppError::NotFound) => {
            return plain(StatusCode::NOT_FOUND, "No such app", "This app does not exist, or you are not on its team.")
        }
        Err(_) => return plain(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "Please try again."),
    };
    let whisper_q = q.whisper.as_deref().map(|w| format!("&whisper={}", enc(w))).unwrap_or_default();
    let user = match q.user.as_deref() {
        Some(u) if is_demo_user(u) => u.to_string(),
        Some(_) => {
            return plain(
                StatusCode::BAD_REQUEST,
                "Not a test user",
                "The demo acts only as test users, whose userId starts with \"demo-\" followed by up to 40 letters, digits, - or _.",
            )
        }
        None => return Redirect::to(&format!("/demo/{}?user={}{whisper_q}", app.id, fresh_user())).into_response(),
    };
    let secret = match state.secrets.open(&identity_secret_context(&app.id), &app.identity_secret_enc) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "opening an identity secret for the demo failed");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "Please try again.");
        }
    };
    let exp = state.now() / 1000 + TOKEN_SECS;
    let jwt = super::jwt::sign(None, &json!({"scope": "appUser", "userId": user, "exp": exp}), &secret);
    // The whisper to try, if any (scoped to the app).
    let whisper = match q.whisper.as_deref() {
        Some(id) => state.store.whisper(&app.id, id).await.ok().flatten(),
        None => None,
    };
    let (hint, event) = match &whisper {
        None => ("".to_string(), String::new()),
        Some(w) => {
            let d = &w.definition.0;
            let fires = match &d.trigger {
                Trigger::Event(name) => format!("when the user tracks \u{201c}{}\u{201d}", escape_html(name)),
                Trigger::AppLaunch => "when the user opens the app (this page loading)".into(),
                Trigger::FirstMessage => "when the user sends their first message".into(),
                Trigger::PropertyMatch => "as soon as the user matches its audience".into(),
            };
            let audience = if d.all_users || d.conditions.is_empty() {
                "everyone".to_string()
            } else {
                d.conditions
                    .iter()
                    .map(|c| {
                        let ty = crate::domain::properties::builtin(&c.property)
                            .map(|b| b.ty)
                            .unwrap_or(crate::domain::properties::PropType::Text);
                        escape_html(&format!("{} {} {}", c.property, c.operator.label(ty), c.value))
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let status = if w.status == "active" {
                String::new()
            } else {
                format!(" <strong>It is {}: activate it to see it here.</strong>", escape_html(&w.status))
            };
            let hint = format!(
                "<p class=\"hint\" data-testid=\"demo-whisper\">Trying \u{201c}{}\u{201d}: it fires {fires}, for {audience}.{status}</p>",
                escape_html(&w.name)
            );
            let event = match &d.trigger {
                Trigger::Event(name) => name.clone(),
                _ => String::new(),
            };
            (hint, event)
        }
    };
    // Data for the script, as JSON that cannot end the script element.
    let config = json!({ "appId": app.id, "userId": user, "jwt": jwt, "loader": "/widget/loader.js" })
        .to_string()
        .replace('<', "\\u003c");
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>Demo shop · {app_name}</title>
<style>
body{{font:16px/1.5 Georgia,serif;margin:0;background:#fffaf3;color:#2b2118}}
header{{background:#6b3e26;color:#fff;padding:1rem 2rem}} header h1{{margin:0;font-size:1.4rem}}
main{{display:grid;grid-template-columns:22rem 1fr;gap:2rem;padding:2rem;max-width:70rem}}
.products{{display:grid;grid-template-columns:repeat(auto-fill,minmax(10rem,1fr));gap:1rem}}
.product{{background:#fff;border:1px solid #e4d5c3;border-radius:6px;padding:1rem}}
aside{{background:#fff;border:2px dashed #b08a6a;border-radius:8px;padding:1rem;font:14px/1.4 system-ui,sans-serif}}
aside h2{{font-size:1rem;margin:.2rem 0 .6rem}} aside label{{display:block;margin:.4rem 0}} aside input{{width:9rem}}
.row{{display:flex;gap:.3rem;margin:.2rem 0}} .hint{{background:#fff3d6;padding:.5rem;border-radius:4px}}
#demo-log{{max-height:10rem;overflow:auto;padding-left:1.2rem;color:#5a4a3a}}
</style></head>
<body>
<header><h1>Demo shop</h1><p>A plain page with the {app_name} widget installed, as on your website.</p></header>
<main>
<aside aria-label="murmur demo controls">
<h2>murmur demo</h2>
{hint}
<p>Test user: <code data-testid="demo-user">{user}</code> <a href="/demo/{app_id}?user={fresh}{whisper_q}" data-testid="demo-new-user">New test user</a></p>
<form id="demo-props"><fieldset><legend>Properties</legend>
<div id="demo-prop-rows"></div>
<button type="button" id="demo-add-prop">Add property</button> <button type="submit" data-testid="demo-save-props">Save properties</button>
</fieldset></form>
<form id="demo-track"><label>Event <input id="demo-event" data-testid="demo-event" value="{event}" required maxlength="100"></label>
<button type="submit" data-testid="demo-track">Track event</button></form>
<p><a href="/apps/{app_id}/users/{user}">This user's profile</a> · <a href="/apps/{app_id}/whispers">Whispers</a></p>
<ol id="demo-log" aria-live="polite"></ol>
</aside>
<section><h2>Our coffees</h2><div class="products">
<div class="product"><h3>House blend</h3><p>$12</p></div>
<div class="product"><h3>Ethiopia Guji</h3><p>$16</p></div>
<div class="product"><h3>Decaf</h3><p>$11</p></div>
</div></section>
</main>
<script type="application/json" id="murmur-demo">{config}</script>
<script src="/demo/demo.js"></script>
</body></html>
"#,
        app_name = escape_html(&app.name),
        app_id = escape_html(&app.id),
        user = escape_html(&user),
        fresh = fresh_user(),
        whisper_q = escape_html(&whisper_q),
        event = escape_html(&event),
    );
    super::request::standalone_html(StatusCode::OK, html, CSP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_demo_users() {
        assert!(is_demo_user("demo-ann"));
        assert!(is_demo_user("demo-a_b-9"));
        for bad in ["ann", "demo-", "demo-<x>", "Demo-ann", "demo-ann ", &format!("demo-{}", "a".repeat(41))] {
            assert!(!is_demo_user(bad), "{bad}");
        }
        assert!(is_demo_user(&fresh_user()));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(enc("a b&c"), "a%20b%26c");
    }
}
