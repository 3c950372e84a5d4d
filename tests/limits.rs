//! Rate limits over HTTP (on SQLite and PostgreSQL): the REST API per API
//! key, widget connections and sign-in / setup per client address (IPv6 by
//! its /64), each answered with 429, `Retry-After` and a JSON body, changing
//! nothing; and how long the JWTs murmur accepts may live. Limits are set
//! small here and time is moved with the app's `ManualClock`: no sleeps.

mod support;

use base64::{engine::general_purpose::STANDARD, Engine};
use murmur::{api::auth::sign_app_jwt, server::jwt};
use serde_json::{json, Value};
use support::{
    shop::{shop, Shop},
    spawn_app,
    widget::Widget,
    Backend, TestApp, TestDb, START_MS,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DAY_S: i64 = 86_400;

fn basic(shop: &Shop) -> String {
    format!("Basic {}", STANDARD.encode(format!("{}:{}", shop.key_id, shop.key_secret)))
}

fn bearer(shop: &Shop, claims: Value) -> String {
    format!("Bearer {}", sign_app_jwt(&shop.key_id, &shop.key_secret, claims))
}

async fn create_user(app: &TestApp, auth: &str, user_id: &str) -> support::Response {
    post_json(app, auth, "/v1.1/appusers", &json!({"userId": user_id}).to_string()).await
}

/// A JSON body posted to the REST API with `auth`.
async fn post_json(app: &TestApp, auth: &str, path: &str, body: &str) -> support::Response {
    app.request("POST", path, &[("Authorization", auth), ("Content-Type", "application/json")], body).await
}

/// A 429 as the issue asks: `Retry-After` in whole seconds and the API's
/// JSON error shape.
fn assert_too_many(r: &support::Response, code: &str, retry_after: &str) {
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some(retry_after), "{:?}", r.headers);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{:?}", r.headers);
    let body = r.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["description"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
}

async fn rest_api_is_limited_per_key(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    // 2 a second, bursts of 3.
    let app = spawn_app(&db, &[("API_RATE_LIMIT", "2/s,3")]).await;
    let owner = app.setup_owner().await;
    let a = shop(&app, &owner, "Shop A").await;
    let b = shop(&app, &owner, "Shop B").await;

    // The burst passes, with either kind of credentials...
    let jwt = bearer(&a, json!({"iat": START_MS / 1000}));
    for (i, auth) in [basic(&a), jwt.clone(), basic(&a)].iter().enumerate() {
        assert_eq!(create_user(&app, auth, &format!("u{i}")).await.status, 201);
    }
    // ...the next request is refused before anything happens.
    let r = create_user(&app, &jwt, "u3").await;
    assert_too_many(&r, "too_many_requests", "1");
    assert!(app.state.store.app_user(&a.app_id, "u3").await.unwrap().is_none(), "the refused request wrote nothing");
    let r = app.request("GET", "/v1.1/appusers/u0", &[("Authorization", &basic(&a))], "").await;
    assert_too_many(&r, "too_many_requests", "1");

    // Another key is not affected.
    assert_eq!(create_user(&app, &basic(&b), "u3").await.status, 201);
    // Wrong credentials are refused as such (401), not counted against the key.
    let wrong = format!("Basic {}", STANDARD.encode(format!("{}:wrong", a.key_id)));
    assert_eq!(create_user(&app, &wrong, "u3").await.status, 401);

    // Half a second later one more request passes; then the key waits again.
    app.clock.advance_ms(500);
    assert_eq!(create_user(&app, &basic(&a), "u3").await.status, 201);
    assert_too_many(&create_user(&app, &basic(&a), "u4").await, "too_many_requests", "1");
    assert!(app.state.store.app_user(&a.app_id, "u4").await.unwrap().is_none());
}

#[tokio::test]
async fn rest_api_is_limited_per_key_on_sqlite() {
    rest_api_is_limited_per_key(Backend::Sqlite).await;
}

#[tokio::test]
async fn rest_api_is_limited_per_key_on_postgres() {
    rest_api_is_limited_per_key(Backend::Postgres).await;
}

/// A WebSocket upgrade of `/widget/ws` from `ip` (through a trusted proxy):
/// the status, the headers and (unless upgraded) the body.
async fn upgrade_from(app: &TestApp, ip: &str) -> support::Response {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET /widget/ws HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nX-Forwarded-For: {ip}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        app.addr,
        app.origin()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await.expect("no answer").unwrap();
        raw.extend_from_slice(&buf[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            assert!(n > 0, "connection closed mid-headers");
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_string();
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let length = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
        if status == 101 || raw.len() >= end + 4 + length || n == 0 {
            let body = if status == 101 { String::new() } else { String::from_utf8_lossy(&raw[end + 4..]).to_string() };
            return support::Response { status, headers, body };
        }
    }
}

async fn widget_connections_are_limited_per_address(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    // Bursts of 2, then one a minute, per address.
    let app = spawn_app(&db, &[("TRUST_PROXY", "true"), ("WIDGET_CONNECT_RATE_LIMIT", "1/min,2")]).await;
    for _ in 0..2 {
        assert_eq!(upgrade_from(&app, "203.0.113.1").await.status, 101);
    }
    assert_too_many(&upgrade_from(&app, "203.0.113.1").await, "too_many_connections", "60");
    // Another address is not affected.
    assert_eq!(upgrade_from(&app, "198.51.100.7").await.status, 101);
    // IPv6 counts by its /64: another address in the same /64 is the same client.
    for ip in ["2001:db8:1:2::1", "2001:db8:1:2::2"] {
        assert_eq!(upgrade_from(&app, ip).await.status, 101, "{ip}");
    }
    assert_too_many(&upgrade_from(&app, "2001:db8:1:2:ffff::9").await, "too_many_connections", "60");
    assert_eq!(upgrade_from(&app, "2001:db8:1:3::1").await.status, 101, "the next /64 is someone else");
    // A minute later, one more.
    app.clock.advance_ms(60_000);
    assert_eq!(upgrade_from(&app, "203.0.113.1").await.status, 101);
    assert_eq!(upgrade_from(&app, "203.0.113.1").await.status, 429);
}

#[tokio::test]
async fn widget_connections_are_limited_per_address_on_sqlite() {
    widget_connections_are_limited_per_address(Backend::Sqlite).await;
}

#[tokio::test]
async fn widget_connections_are_limited_per_address_on_postgres() {
    widget_connections_are_limited_per_address(Backend::Postgres).await;
}

async fn sign_in_is_limited_per_address(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    // 3 a minute (one every 20 s), bursts of 3.
    let app = spawn_app(&db, &[("TRUST_PROXY", "true"), ("SIGN_IN_RATE_LIMIT", "3/min")]).await;
    app.setup_owner().await;
    let login_from = |ip: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let fields = [("input[email]", "owner@example.com"), ("input[password]", password)];
            app.call("login", &fields, None, &[("X-Forwarded-For", ip)]).await
        }
    };
    // Three attempts from one address (two wrong, one right) use its burst...
    assert_eq!(login_from("203.0.113.9", "guess one").await.status, 401);
    assert_eq!(login_from("203.0.113.9", "guess two").await.status, 401);
    assert_eq!(login_from("203.0.113.9", "owner password 1").await.status, 200);
    // ...so the fourth waits, even with the right password: 429, a JSON body,
    // no session, and the failure counts in the database are left as they were.
    let before = app.state.store.throttle_rows(&["account:owner@example.com".to_string()]).await.unwrap().len();
    let r = login_from("203.0.113.9", "owner password 1").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("20"));
    assert_eq!(r.json()["Throttled"]["retry_after_secs"], 20);
    assert!(r.session_cookie().is_none());
    let after = app.state.store.throttle_rows(&["account:owner@example.com".to_string()]).await.unwrap().len();
    assert_eq!(before, after);
    let r = login_from("203.0.113.9", "a guess").await;
    assert_eq!(r.status, 429, "a guess is refused before its password is checked");
    // Another address is not affected; an IPv6 /64 is one address.
    assert_eq!(login_from("198.51.100.2", "owner password 1").await.status, 200);
    for ip in ["2001:db8:5:6::1", "2001:db8:5:6::2", "2001:db8:5:6::3"] {
        assert_eq!(login_from(ip, "guess").await.status, 401, "{ip}");
    }
    assert_eq!(login_from("2001:db8:5:6:aaaa::1", "owner password 1").await.status, 429);
    assert_eq!(login_from("2001:db8:5:7::1", "owner password 1").await.status, 200);
    // Twenty seconds later the address may try once more.
    app.clock.advance_ms(20_000);
    assert_eq!(login_from("203.0.113.9", "owner password 1").await.status, 200);
    assert_eq!(login_from("203.0.113.9", "owner password 1").await.status, 429);
}

#[tokio::test]
async fn sign_in_is_limited_per_address_on_sqlite() {
    sign_in_is_limited_per_address(Backend::Sqlite).await;
}

#[tokio::test]
async fn sign_in_is_limited_per_address_on_postgres() {
    sign_in_is_limited_per_address(Backend::Postgres).await;
}

#[tokio::test]
async fn setup_is_limited_per_address() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(&db, &[("SIGN_IN_RATE_LIMIT", "2/min")]).await;
    // Bad setup forms from one address: explained twice, then 429.
    let fields = [("input[name]", ""), ("input[email]", "x"), ("input[password]", "short")];
    for _ in 0..2 {
        assert_eq!(app.call("setup", &fields, None, &[]).await.status, 422);
    }
    let r = app.call("setup", &fields, None, &[]).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("30"));
    assert_eq!(r.json()["Throttled"]["retry_after_secs"], 30);
    assert_eq!(app.state.store.count_teammates().await.unwrap(), 0);
    // Half a minute later the real setup goes through.
    app.clock.advance_ms(30_000);
    app.setup_owner().await;
}

/// The REST API's JWTs live at most 30 days: `exp` at most 30 days ahead,
/// or without it an `iat` (as smooch-core makes them), good for 30 days.
async fn app_jwts_live_at_most_30_days(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let a = shop(&app, &owner, "Shop").await;
    let now_s = START_MS / 1000;

    let refused = |r: &support::Response, says: &str| {
        assert_eq!(r.status, 401, "{}", r.body);
        let body = r.json();
        assert_eq!(body["error"]["code"], "unauthorized");
        let description = body["error"]["description"].as_str().unwrap().to_string();
        assert!(description.contains(says), "{description:?} does not say {says:?}");
    };
    // Neither exp nor iat: refused, with a clear error.
    refused(&create_user(&app, &bearer(&a, json!({})), "u1").await, "no exp claim");
    // exp too far ahead.
    let far = bearer(&a, json!({"exp": now_s + 30 * DAY_S + 60}));
    refused(&create_user(&app, &far, "u1").await, "more than 30 days ahead");
    assert!(app.state.store.app_user(&a.app_id, "u1").await.unwrap().is_none(), "nothing was written");
    // exp within 30 days, and iat without exp, both pass.
    assert_eq!(create_user(&app, &bearer(&a, json!({"exp": now_s + 30 * DAY_S})), "u1").await.status, 201);
    let made_now = bearer(&a, json!({"iat": now_s}));
    assert_eq!(create_user(&app, &made_now, "u2").await.status, 201);
    // An iat in the future is refused.
    refused(&create_user(&app, &bearer(&a, json!({"iat": now_s + 3600})), "u3").await, "in the future");
    // 30 days after its iat the token has expired (Basic keyId:secret still works).
    app.clock.advance_ms(30 * DAY_S * 1000);
    refused(&create_user(&app, &made_now, "u3").await, "expired");
    assert_eq!(create_user(&app, &basic(&a), "u3").await.status, 201);
}

#[tokio::test]
async fn app_jwts_live_at_most_30_days_on_sqlite() {
    app_jwts_live_at_most_30_days(Backend::Sqlite).await;
}

#[tokio::test]
async fn app_jwts_live_at_most_30_days_on_postgres() {
    app_jwts_live_at_most_30_days(Backend::Postgres).await;
}

/// The widget's identity JWTs must have an `exp`, at most 30 days ahead.
#[tokio::test]
async fn identity_jwts_need_an_exp_within_30_days() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let a = shop(&app, &owner, "Shop").await;
    let now_s = START_MS / 1000;
    let hello =
        |token: String| json!({"t": "hello", "app": a.app_id, "device": "device-1234", "userId": "u1", "jwt": token});
    for (claims, says) in [
        (json!({"scope": "appUser", "userId": "u1"}), "no exp claim"),
        (json!({"scope": "appUser", "userId": "u1", "iat": now_s}), "no exp claim"),
        (json!({"scope": "appUser", "userId": "u1", "exp": now_s + 31 * DAY_S}), "more than 30 days ahead"),
    ] {
        let (_, v) = Widget::start(&app, hello(jwt::sign(None, &claims, a.identity.as_bytes()))).await;
        assert_eq!((v["t"].as_str(), v["code"].as_str()), (Some("error"), Some("invalid_jwt")), "{claims}: {v}");
        assert!(v["message"].as_str().unwrap().contains(says), "{claims}: {v}");
    }
    assert!(app.state.store.app_user(&a.app_id, "u1").await.unwrap().is_none(), "nobody was created");
    let claims = json!({"scope": "appUser", "userId": "u1", "exp": now_s + 30 * DAY_S});
    let (_, v) = Widget::start(&app, hello(jwt::sign(None, &claims, a.identity.as_bytes()))).await;
    assert_eq!(v["t"], "welcome", "{v}");
}

/// Event ingest sheds under overload: once the REST API events in flight
/// reach their bound (`writer::MAX_ADMITTED_EVENTS`), a single event and a
/// batch are answered 503 at once with `Retry-After` and the API's JSON
/// error body, and nothing is stored; as soon as room is given back, events
/// are accepted again. The bound is filled deterministically by holding its
/// admissions here.
async fn ingest_sheds_when_its_bound_is_reached(backend: Backend) {
    use murmur::engine::writer::MAX_ADMITTED_EVENTS;
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let a = shop(&app, &owner, "Shop").await;
    assert_eq!(create_user(&app, &a.auth(), "u1").await.status, 201);
    let json = [("Authorization", a.auth()), ("Content-Type", "application/json".to_string())];
    let headers: Vec<(&str, &str)> = json.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let track = |name: &'static str| {
        let body = json!({ "name": name }).to_string();
        let headers = headers.clone();
        let app = &app;
        async move { app.request("POST", "/v1.1/appusers/u1/events", &headers, &body).await }
    };
    let batch = |names: &[&str]| {
        let events: Vec<Value> = names.iter().map(|n| json!({"userId": "u1", "name": n})).collect();
        let body = json!({ "events": events }).to_string();
        let headers = headers.clone();
        let app = &app;
        async move { app.request("POST", "/v1.1/events", &headers, &body).await }
    };
    let stored = || async {
        app.state
            .store
            .user_events(&app.state.store.app_user(&a.app_id, "u1").await.unwrap().unwrap().id, 100)
            .await
            .unwrap()
            .len()
    };

    // All but one place taken: one event still passes, a batch of two does not.
    let held = app.state.engine.writer.admit(MAX_ADMITTED_EVENTS - 1).expect("room for the test's own hold");
    assert_eq!(track("first").await.status, 201);
    let r = batch(&["second", "third"]).await;
    assert_too_many_503(&r);
    assert_eq!(stored().await, 1, "the shed batch stored nothing");

    // Every place taken: a single event is shed too.
    let last = app.state.engine.writer.admit(1).expect("the last place");
    assert!(app.state.engine.writer.admit(1).is_none(), "the bound is reached");
    assert_too_many_503(&track("fourth").await);
    assert_eq!(stored().await, 1, "the shed event stored nothing");
    // Shed before the body is read: a body that is not even JSON gets the
    // same 503 (a quiet server answers it 400), on both endpoints; a
    // request without a valid key still gets its 401 first.
    for path in ["/v1.1/appusers/u1/events", "/v1.1/events"] {
        assert_too_many_503(&app.request("POST", path, &headers, "{not json").await);
        let anonymous = app.request("POST", path, &[("Content-Type", "application/json")], "{}").await;
        assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    }

    // Room given back: accepted again at once.
    drop((held, last));
    for path in ["/v1.1/appusers/u1/events", "/v1.1/events"] {
        assert_eq!(app.request("POST", path, &headers, "{not json").await.status, 400);
    }
    assert_eq!(track("fifth").await.status, 201);
    let r = batch(&["sixth", "seventh"]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(stored().await, 4);
}

/// Many requests that find their key's cache entry stale at once cost one
/// lookup in the database, not one each: the others wait for that one; the
/// same for an app's whispers. Past half its life an entry is refreshed by
/// one request while the others use the copy, so a busy key never goes
/// stale. On PostgreSQL a lookup per request used to queue for the pool and
/// hold every request for seconds; one at a time behind a mutex, the
/// waiters then went on one by one (RELIABILITY.md).
async fn stale_caches_are_loaded_once(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let a = shop(&app, &owner, "Shop").await;
    let state = &app.state;
    let get = || state.keys.get(&state.store, &state.secrets, state.now(), &a.key_id);
    assert!(get().await.unwrap().is_some());
    let before = state.keys.fetches();
    assert!(get().await.unwrap().is_some());
    assert_eq!(state.keys.fetches(), before, "fresh: from the cache");

    app.clock.advance_ms(murmur::server::keys::TTL_MS + 1);
    let all = futures_util::future::join_all((0..50).map(|_| get())).await;
    for key in all {
        let key = key.unwrap().expect("the key");
        assert_eq!(key.app_id, a.app_id);
    }
    assert_eq!(state.keys.fetches(), before + 1, "50 requests found it stale; one asked the database");

    app.clock.advance_ms(murmur::server::keys::TTL_MS / 2 + 1);
    let all = futures_util::future::join_all((0..50).map(|_| get())).await;
    assert!(all.into_iter().all(|k| k.unwrap().is_some_and(|k| k.app_id == a.app_id)));
    assert_eq!(state.keys.fetches(), before + 2, "past half its life: one request refreshed it");
    assert!(get().await.unwrap().is_some());
    assert_eq!(state.keys.fetches(), before + 2, "fresh again");

    // The same for the app's whispers, which every event's plan needs: 50
    // events at once (one batch) after they were dropped, one load.
    assert_eq!(create_user(&app, &a.auth(), "u1").await.status, 201);
    state.engine.whispers_changed(&a.app_id).await;
    let loads = state.engine.whisper_loads();
    let events: Vec<Value> = (0..50).map(|i| json!({"userId": "u1", "name": format!("e{}", i % 5)})).collect();
    let r = post_json(&app, &a.auth(), "/v1.1/events", &json!({ "events": events }).to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["results"].as_array().unwrap().iter().all(|e| e["status"] == 201), "{}", r.body);
    assert_eq!(state.engine.whisper_loads(), loads + 1, "50 events needed the whispers; one load");
}

#[tokio::test]
async fn stale_caches_are_loaded_once_on_sqlite() {
    stale_caches_are_loaded_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn stale_caches_are_loaded_once_on_postgres() {
    stale_caches_are_loaded_once(Backend::Postgres).await;
}

/// A shed answer: 503, `Retry-After: 1`, the API's JSON error shape.
fn assert_too_many_503(r: &support::Response) {
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("1"), "{:?}", r.headers);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{:?}", r.headers);
    let body = r.json();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert!(body["error"]["description"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
}

#[tokio::test]
async fn ingest_sheds_when_its_bound_is_reached_on_sqlite() {
    ingest_sheds_when_its_bound_is_reached(Backend::Sqlite).await;
}

#[tokio::test]
async fn ingest_sheds_when_its_bound_is_reached_on_postgres() {
    ingest_sheds_when_its_bound_is_reached(Backend::Postgres).await;
}

/// Reads what the server sends on `stream` until it closes it (at most 10 s).
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "still open 10 s later; sent so far: {}", String::from_utf8_lossy(&answer));
    String::from_utf8_lossy(&answer).to_string()
}

/// Waits (at most 10 s) until the instance counts `n` open connections.
async fn until_open(app: &TestApp, n: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.state.connections.open() != n {
        assert!(tokio::time::Instant::now() < deadline, "open: {}, waited for {n}", app.state.connections.open());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A connection from `local` (a loopback address) to the app.
async fn connect_from(app: &TestApp, local: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(app.addr).await.unwrap()
}

fn assert_refused(answer: &str, status: &str) {
    assert!(answer.starts_with(&format!("HTTP/1.1 {status} ")), "{answer}");
    assert!(answer.contains("\r\nRetry-After: 1\r\n"), "{answer}");
    let body: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections", "{answer}");
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

/// `MAX_CONNECTIONS`: one connection more than the bound is answered 503
/// at once, without a handler; once one closes, the next gets in.
#[tokio::test]
async fn connections_past_the_instance_bound_get_a_fixed_503() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(&db, &[("MAX_CONNECTIONS", "3"), ("MAX_CONNECTIONS_PER_ADDRESS", "0")]).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(app.addr).await.unwrap());
    }
    until_open(&app, 3).await;
    let mut extra = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    extra.write_all(HEALTHZ).await.unwrap();
    assert_refused(&read_until_closed(&mut extra).await, "503");
    assert_eq!(app.state.connections.open(), 3);
    drop(idle.pop());
    until_open(&app, 2).await;
    let mut next = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    next.write_all(HEALTHZ).await.unwrap();
    let answer = read_until_closed(&mut next).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

/// `MAX_CONNECTIONS_PER_ADDRESS`: one address past its bound gets 429;
/// another address is served meanwhile.
#[tokio::test]
async fn connections_past_the_address_bound_get_a_fixed_429() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(&db, &[("MAX_CONNECTIONS_PER_ADDRESS", "2")]).await;
    let _idle = [connect_from(&app, "127.0.0.1").await, connect_from(&app, "127.0.0.1").await];
    until_open(&app, 2).await;
    let mut third = connect_from(&app, "127.0.0.1").await;
    third.write_all(HEALTHZ).await.unwrap();
    assert_refused(&read_until_closed(&mut third).await, "429");
    let mut other = connect_from(&app, "127.0.0.2").await;
    other.write_all(HEALTHZ).await.unwrap();
    let answer = read_until_closed(&mut other).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

/// An open widget keeps its connection's place: it counts towards the
/// bound until it closes.
#[tokio::test]
async fn an_open_widget_counts_as_a_connection() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(&db, &[("MAX_CONNECTIONS", "1"), ("MAX_CONNECTIONS_PER_ADDRESS", "0")]).await;
    let widget = Widget::open(&app, &app.origin()).await.expect("upgraded");
    until_open(&app, 1).await;
    let mut extra = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    extra.write_all(HEALTHZ).await.unwrap();
    assert_refused(&read_until_closed(&mut extra).await, "503");
    drop(widget);
    until_open(&app, 0).await;
    assert_eq!(app.get("/healthz", None).await.status, 200);
}
