//! Hardening of the dashboard's pages, at the HTTP level: first-run setup
//! cannot be taken over (a one-time setup token unless murmur is reachable
//! only from its own machine), page redirects are real redirects for any
//! client, dashboard pages carry a CSP with a per-response nonce and refuse
//! to be framed, the session cookie is `__Host-` prefixed over https, and
//! sessions end after a while unused (both backends).

mod support;

use murmur::server::auth::{SESSION_IDLE_MS, SESSION_TTL_MS};
use support::{spawn_app, spawn_app_on, Backend, Response, TestApp, TestDb};

/// These tests render many pages; leptos pages rendered at the same time on
/// several test runtimes of one process now and then never finish (seen at
/// HEAD too, with plain GETs), so the tests here take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn sqlite_app(extra: &[(&str, &str)]) -> (TestDb, TestApp) {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(&db, extra).await;
    (db, app)
}

/// A GET the way curl sends it: no `text/html` in `Accept`.
async fn plain_get(app: &TestApp, path: &str, session: Option<&str>) -> Response {
    let cookie = session.map(|t| app.cookie(t));
    let mut headers = vec![("Accept", "*/*")];
    if let Some(c) = &cookie {
        headers.push(("Cookie", c.as_str()));
    }
    app.request("GET", path, &headers, "").await
}

fn assert_redirect(r: &Response, to: &str) {
    assert_eq!(r.status, 302, "a real redirect to {to}: {:?} {}", r.headers, r.body);
    assert_eq!(r.header("location"), Some(to));
    assert!(r.body.is_empty(), "a redirect has no page: {}", r.body);
    assert!(r.header("serverfnredirect").is_none(), "{:?}", r.headers);
}

async fn setup_with(app: &TestApp, token: Option<&str>) -> Response {
    let mut fields = vec![
        ("input[name]", "Olive Owner"),
        ("input[email]", "owner@example.com"),
        ("input[password]", "owner password 1"),
    ];
    if let Some(t) = token {
        fields.push(("input[setup_token]", t));
    }
    app.call("setup", &fields, None, &[]).await
}

// ---- setup token ----

#[tokio::test]
async fn setup_reachable_from_other_machines_needs_the_one_time_token() {
    let _turn = ONE_AT_A_TIME.lock().await;
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app_on(&db, &[], "0.0.0.0").await;
    let file = db.data_dir.join("setup.token");
    let token = app.setup_token();
    assert!(token.len() >= 32, "a token is made: {token:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token, "kept in $DATA_DIR/setup.token");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600, "only the owner reads it");

    // The page asks for it.
    let status = app.call("setup/status", &[], None, &[]).await.json();
    assert_eq!(status["token_required"], true);
    let page = app.get("/setup", None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Setup token") && page.body.contains(r#"name="input[setup_token]""#), "{}", page.body);

    // A restart before setup keeps the same token (the log already showed it).
    let again = spawn_app_on(&db, &[], "0.0.0.0").await;
    assert_eq!(again.setup_token(), token);
    drop(again);

    // Missing or wrong: refused beside the field, nothing created.
    for (given, says) in
        [(None, "Enter the setup token"), (Some(""), "Enter the setup token"), (Some("guess"), "not the setup token")]
    {
        let r = setup_with(&app, given).await;
        assert_eq!(r.status, 422, "{given:?}: {}", r.body);
        assert_eq!(r.json()["Field"]["field"], "setup_token", "{}", r.body);
        assert!(r.body.contains(says), "{given:?}: {}", r.body);
        assert!(r.session_cookie().is_none());
        assert_eq!(app.state.store.count_teammates().await.unwrap(), 0, "{given:?} created nothing");
    }
    let r = setup_with(&app, Some(&token[..token.len() - 1])).await;
    assert_eq!(r.status, 422, "a prefix is not the token");

    // The right one sets murmur up, once, and is used up.
    let r = setup_with(&app, Some(&format!(" {token}\n"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.session_cookie().is_some());
    assert_eq!(app.state.store.count_teammates().await.unwrap(), 1);
    assert!(!file.exists(), "consumed when setup completes");
    assert!(!app.state.setup.required());
    let r = setup_with(&app, Some(&token)).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(app.state.store.count_teammates().await.unwrap(), 1);

    // Once set up, a start makes no token.
    let later = spawn_app_on(&db, &[], "0.0.0.0").await;
    assert!(later.setup_token().is_empty());
    assert!(!file.exists());
}

#[tokio::test]
async fn a_proxy_in_front_of_a_loopback_listener_still_needs_the_token() {
    let _turn = ONE_AT_A_TIME.lock().await;
    for extra in [("TRUST_PROXY", "true"), ("PUBLIC_URL", "https://murmur.example.com")] {
        let (_db, app) = sqlite_app(&[extra]).await;
        assert!(!app.setup_token().is_empty(), "{extra:?}");
        assert_eq!(setup_with(&app, None).await.status, 422, "{extra:?}");
        assert_eq!(app.state.store.count_teammates().await.unwrap(), 0);
    }
}

#[tokio::test]
async fn a_loopback_only_murmur_needs_no_token() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (db, app) = sqlite_app(&[]).await;
    assert!(app.setup_token().is_empty());
    assert!(!db.data_dir.join("setup.token").exists());
    assert_eq!(app.call("setup/status", &[], None, &[]).await.json()["token_required"], false);
    let page = app.get("/setup", None).await;
    assert!(!page.body.contains("Setup token"), "{}", page.body);
    let r = setup_with(&app, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

// ---- real redirects ----

#[tokio::test]
async fn page_redirects_are_real_302s_for_plain_http_clients() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_db, app) = sqlite_app(&[]).await;
    // A fresh instance: everything leads to setup.
    assert_redirect(&plain_get(&app, "/", None).await, "/setup");
    assert_redirect(&plain_get(&app, "/login", None).await, "/setup");
    assert_redirect(&plain_get(&app, "/new-app", None).await, "/setup");
    let bare = app.request("GET", "/", &[], "").await;
    assert_redirect(&bare, "/setup");
    let head = app.request("HEAD", "/", &[], "").await;
    assert_eq!((head.status, head.header("location")), (302, Some("/setup")));
    // A browser (text/html) gets the same.
    assert_redirect(&app.get("/", None).await, "/setup");

    let owner = app.setup_owner().await;
    let id = app.call("apps/create", &[("input[name]", "Shop")], Some(&owner), &[]).await.json()["app"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Signed out: pages that need a session send the client to sign in.
    assert_redirect(&plain_get(&app, "/", None).await, "/login");
    assert_redirect(&plain_get(&app, "/new-app", None).await, "/login");
    for page in ["", "/whispers", "/users", "/messages", "/inbox", "/settings"] {
        assert_redirect(&plain_get(&app, &format!("/apps/{id}{page}"), None).await, "/login");
        assert_redirect(&plain_get(&app, &format!("/apps/{id}{page}"), Some("not-a-session")).await, "/login");
    }
    // Signed in: / leads to the first app, /login home, pages render.
    assert_redirect(&plain_get(&app, "/", Some(&owner)).await, &format!("/apps/{id}"));
    assert_redirect(&plain_get(&app, "/login", Some(&owner)).await, "/");
    let page = plain_get(&app, &format!("/apps/{id}/settings"), Some(&owner)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.header("location").is_none());
    assert_eq!(plain_get(&app, "/new-app", Some(&owner)).await.status, 200);
    assert_eq!(plain_get(&app, "/login", None).await.status, 200);
    assert_eq!(plain_get(&app, "/no/such/page", None).await.status, 404);

    // Server functions keep leptos' own protocol: their client follows the
    // Location of a 200 (a 302 would make fetch follow it and lose the body).
    let r = app
        .call("login", &[("input[email]", "owner@example.com"), ("input[password]", "owner password 1")], None, &[])
        .await;
    assert_eq!((r.status, r.header("location")), (200, Some("/")), "{}", r.body);
}

// ---- headers ----

/// The nonce of a page's CSP, checked against every script on the page.
fn csp_nonce(r: &Response) -> String {
    let csp = r.header("content-security-policy").unwrap_or_else(|| panic!("no CSP: {:?}", r.headers));
    for part in
        ["default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'", "'wasm-unsafe-eval'"]
    {
        assert!(csp.contains(part), "{part} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("'unsafe-eval'"), "{csp}");
    let script_src = csp.split(';').map(str::trim).find(|d| d.starts_with("script-src ")).unwrap();
    let nonce = script_src
        .split(' ')
        .find_map(|s| s.strip_prefix("'nonce-").and_then(|s| s.strip_suffix('\'')))
        .unwrap_or_else(|| panic!("no nonce in {script_src}"))
        .to_string();
    assert!(nonce.len() >= 16, "{nonce}");
    assert!(script_src.starts_with("script-src 'self' "), "{script_src}");
    let scripts = r.body.matches("<script").count();
    assert!(scripts >= 1, "the hydration script is inline: {}", r.body);
    assert_eq!(
        r.body.matches(&format!("<script type=\"module\" nonce=\"{nonce}\"")).count()
            + r.body.matches(&format!("<script nonce=\"{nonce}\"")).count(),
        scripts,
        "every inline script carries the nonce: {}",
        r.body
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    nonce
}

#[tokio::test]
async fn dashboard_pages_have_a_csp_with_a_fresh_nonce_and_cannot_be_framed() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_db, app) = sqlite_app(&[]).await;
    let first = csp_nonce(&app.get("/setup", None).await);
    let second = csp_nonce(&app.get("/setup", None).await);
    assert_ne!(first, second, "a nonce is used once");
    let owner = app.setup_owner().await;
    csp_nonce(&app.get("/login", None).await);
    let id = app.call("apps/create", &[("input[name]", "Shop")], Some(&owner), &[]).await.json()["app"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for page in ["", "/whispers", "/users", "/settings"] {
        let r = app.get(&format!("/apps/{id}{page}"), Some(&owner)).await;
        assert_eq!(r.status, 200, "{page}");
        csp_nonce(&r);
    }
    let missing = app.get("/no/such/page", None).await;
    assert_eq!(missing.status, 404);
    csp_nonce(&missing);

    // The widget's frame lives in customers' pages: its own CSP, framable.
    let frame = app.get("/widget/frame", None).await;
    assert_eq!(frame.status, 200);
    assert!(frame.header("content-security-policy").unwrap().contains("frame-ancestors *"));
    assert!(frame.header("x-frame-options").is_none());
    assert!(!frame.header("content-security-policy").unwrap().contains("'nonce-"));
    // The unsubscribe page keeps its own.
    let unsub = app.get("/unsubscribe/not-a-token", None).await;
    let csp = unsub.header("content-security-policy").unwrap();
    assert!(!csp.contains("'nonce-") && !csp.contains("wasm-unsafe-eval"), "{csp}");
}

#[tokio::test]
async fn the_session_cookie_is_host_prefixed_over_https_and_only_that_name_is_read() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_db, app) = sqlite_app(&[("PUBLIC_URL", "https://murmur.example.com")]).await;
    let r = setup_with(&app, Some(&app.setup_token())).await;
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(cookie.starts_with("__Host-murmur_session="), "{cookie}");
    for part in ["; Path=/", "; Secure", "; HttpOnly", "; SameSite=Lax"] {
        assert!(cookie.contains(part), "{part} missing from {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    let token = r.session_cookie().unwrap();
    assert_eq!(me(&app, &format!("__Host-murmur_session={token}")).await["email"], "owner@example.com");
    assert!(me(&app, &format!("murmur_session={token}")).await.is_null(), "the plain name is not read over https");
    let out = app.call("logout", &[], Some(&token), &[]).await;
    assert!(out.header("set-cookie").unwrap().starts_with("__Host-murmur_session=; "), "{out:?}");

    // Plain http (local development) keeps the plain name.
    let (_db2, local) = sqlite_app(&[]).await;
    let r = setup_with(&local, None).await;
    assert!(r.header("set-cookie").unwrap().starts_with("murmur_session="));
    let token = r.session_cookie().unwrap();
    assert!(!me(&local, &format!("murmur_session={token}")).await.is_null());
    assert!(me(&local, &format!("__Host-murmur_session={token}")).await.is_null());
}

/// Who the session in `cookie` (a whole `Cookie` header) belongs to.
async fn me(app: &TestApp, cookie: &str) -> serde_json::Value {
    app.call("session", &[], None, &[("Cookie", cookie)]).await.json()["me"].clone()
}

// ---- idle sessions ----

async fn idle_sessions_end(backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let signed_in = |token: String| {
        let app = &app;
        async move { !app.call("session", &[], Some(&token), &[]).await.json()["me"].is_null() }
    };
    let day = 24 * 60 * 60 * 1000;
    // Used every few days, a session lasts until its absolute end.
    let mut used = 0;
    while used + 6 * day < SESSION_TTL_MS {
        app.clock.advance_ms(6 * day);
        used += 6 * day;
        assert!(signed_in(owner.clone()).await, "in use at day {}", used / day);
    }
    app.clock.advance_ms(SESSION_TTL_MS - used);
    assert!(!signed_in(owner.clone()).await, "ended at its absolute end");

    // Left alone for the idle timeout, it ends, on pages too.
    let r = app.login("owner@example.com", "owner password 1").await;
    let token = r.session_cookie().unwrap();
    app.clock.advance_ms(SESSION_IDLE_MS - 60_000);
    assert!(signed_in(token.clone()).await, "just under the idle timeout");
    app.clock.advance_ms(SESSION_IDLE_MS - 1);
    assert!(signed_in(token.clone()).await, "the last use counted as activity");
    app.clock.advance_ms(SESSION_IDLE_MS);
    assert!(!signed_in(token.clone()).await, "idle for {SESSION_IDLE_MS} ms");
    assert_redirect(&plain_get(&app, "/new-app", Some(&token)).await, "/login");
    let r = app.call("apps/create", &[("input[name]", "Late")], Some(&token), &[]).await;
    assert_eq!(r.status, 401);
    // A new sign-in works, and clears the ended sessions from the store.
    let r = app.login("owner@example.com", "owner password 1").await;
    assert!(signed_in(r.session_cookie().unwrap()).await);
    app.state.store.close().await;
}

#[tokio::test]
async fn idle_sessions_end_on_sqlite() {
    idle_sessions_end(Backend::Sqlite).await;
}

#[tokio::test]
async fn idle_sessions_end_on_postgres() {
    idle_sessions_end(Backend::Postgres).await;
}

// ---- host names (DNS rebinding) ----

/// A page at `evil.example` whose name resolves to murmur's address: the
/// browser sends `Host: evil.example` and calls it same-origin.
#[tokio::test]
async fn a_rebound_host_name_gets_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_db, app) = sqlite_app(&[("PUBLIC_URL", "https://murmur.example.com")]).await;
    let owner = setup_with(&app, Some(&app.setup_token())).await.session_cookie().unwrap();
    let cookie = app.cookie(&owner);
    let evil = [("Host", "evil.example"), ("Cookie", cookie.as_str()), ("Accept", "text/html")];

    // Pages, server functions (even "same-origin" to the browser), the widget's files.
    let page = app.request("GET", "/", &evil, "").await;
    assert_eq!(page.status, 421, "{:?}", page);
    assert_eq!(page.json()["error"]["code"], "wrong_host");
    assert!(page.json()["error"]["description"].as_str().unwrap().contains("murmur.example.com"));
    let rebound_call = [
        ("Host", "evil.example"),
        ("Origin", "https://evil.example"),
        ("Sec-Fetch-Site", "same-origin"),
        ("Cookie", cookie.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let r = app.request("POST", "/api/apps/create", &rebound_call, "input%5Bname%5D=Stolen").await;
    assert_eq!(r.status, 421, "{}", r.body);
    assert_eq!(app.request("GET", "/widget/frame", &evil, "").await.status, 421);
    let murmur::storage::Store::Sqlite(pool) = &app.state.store else { unreachable!() };
    let apps: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apps").fetch_one(pool).await.unwrap();
    assert_eq!(apps, 0, "no app was created");

    // The public name passes; the origin must be the public origin too.
    assert_eq!(app.request("GET", "/", &[("Accept", "text/html"), ("Cookie", &cookie)], "").await.status, 302);
    let wrong_origin = [
        ("Origin", "http://murmur.example.com"),
        ("Cookie", cookie.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let r = app.request("POST", "/api/apps/create", &wrong_origin, "input%5Bname%5D=Plain").await;
    assert_eq!(r.status, 403, "http is not the https origin: {}", r.body);
    let r = app.call("apps/create", &[("input[name]", "Shop")], Some(&owner), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Health checks, metrics and the key-authenticated REST API are exempt.
    assert_eq!(app.request("GET", "/healthz", &[("Host", "10.0.0.7:3000")], "").await.status, 200);
    let api = app.request("GET", "/v1.1/apps/nope/appusers/u1", &[("Host", "murmur:3000")], "").await;
    assert_eq!(api.status, 401, "{}", api.body);

    // The widget's socket: only from the public origin.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let open = |origin: &str, host: String| {
        let mut req = format!("ws://{}/widget/ws", app.addr).into_client_request().unwrap();
        req.headers_mut().insert("Origin", origin.parse().unwrap());
        req.headers_mut().insert("Host", host.parse().unwrap());
        async move {
            match tokio_tungstenite::connect_async(req).await {
                Ok(_) => 101,
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
                Err(e) => panic!("{e}"),
            }
        }
    };
    assert_eq!(open("https://murmur.example.com", app.host()).await, 101);
    assert_eq!(open("http://evil.example", "evil.example".into()).await, 421);
    assert_eq!(open("http://127.0.0.1", app.host()).await, 403, "only the public origin");
}

#[tokio::test]
async fn without_a_public_url_only_addresses_and_localhost_are_answered() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_db, app) = sqlite_app(&[]).await;
    let port = app.addr.port();
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let r = app.request("GET", "/login", &[("Host", &host), ("Accept", "text/html")], "").await;
        assert_eq!(r.status, 302, "{host}: {:?}", r.status);
    }
    let r =
        app.request("GET", "/login", &[("Host", &format!("evil.example:{port}")), ("Accept", "text/html")], "").await;
    assert_eq!(r.status, 421);
    assert!(r.json()["error"]["description"].as_str().unwrap().contains("Set PUBLIC_URL"));
}

#[tokio::test]
async fn a_trusted_proxy_names_the_public_host() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_db, app) = sqlite_app(&[("PUBLIC_URL", "https://murmur.example.com"), ("TRUST_PROXY", "true")]).await;
    let through = [("Host", "127.0.0.1:3000"), ("X-Forwarded-Host", "murmur.example.com"), ("Accept", "text/html")];
    // Answered (murmur is new: to the setup page).
    assert_eq!(app.request("GET", "/login", &through, "").await.status, 302);
    let rebound = [("Host", "127.0.0.1:3000"), ("X-Forwarded-Host", "evil.example"), ("Accept", "text/html")];
    assert_eq!(app.request("GET", "/login", &rebound, "").await.status, 421);
    // Without TRUST_PROXY the header is not believed.
    let (_db2, direct) = sqlite_app(&[("PUBLIC_URL", "https://murmur.example.com")]).await;
    assert_eq!(direct.request("GET", "/login", &rebound[..1], "").await.status, 421);
    let forged = [("Host", "evil.example"), ("X-Forwarded-Host", "murmur.example.com"), ("Accept", "text/html")];
    assert_eq!(direct.request("GET", "/login", &forged, "").await.status, 421);
}
