//! What the widget may write, over HTTP and the widget's WebSocket, on
//! SQLite and PostgreSQL: the app's server-only properties and events are
//! refused to the widget (an error frame, nothing written) and allowed to
//! the REST API; a widget without a verified user cannot fix a property's
//! type; the property and event catalogs are capped; new anonymous users are
//! capped per client address (IPv6 by its /64); the dashboard warns while
//! identity verification is off. Time moves with the `ManualClock`: no sleeps.

mod support;

use murmur::engine::actions::CatalogCaps;
use serde_json::{json, Value};
use support::{
    shop::{rest, shop, Shop},
    spawn_app,
    widget::Widget,
    Backend, TestApp, TestDb,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Sets the app's server-only names as `session` (one name a line).
/// These tests run one at a time: several of them at once (each its own
/// server on its own tokio runtime, in one process) have been seen to hang,
/// never on one server (cause not found yet; see the closing note of stop 19).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn set_server_only(
    app: &TestApp,
    shop: &Shop,
    session: &str,
    properties: &str,
    events: &str,
) -> support::Response {
    app.call(
        "apps/server-only",
        &[("input[app_id]", &shop.app_id), ("input[properties]", properties), ("input[events]", events)],
        Some(session),
        &[],
    )
    .await
}

/// An anonymous visitor's hello on `device`.
fn anonymous_hello(shop: &Shop, device: &str, user: Value) -> Value {
    json!({"t": "hello", "app": shop.app_id, "device": device, "user": user})
}

/// The user's custom properties as stored.
async fn stored_properties(app: &TestApp, shop: &Shop, user_ref: &str) -> Value {
    let row = app.state.store.app_user(&shop.app_id, user_ref).await.unwrap().expect("the user exists");
    Value::Object(row.properties.0)
}

async fn catalog(app: &TestApp, shop: &Shop) -> Vec<(String, String)> {
    app.state.store.property_catalog(&shop.app_id).await.unwrap().into_iter().map(|c| (c.name, c.ty)).collect()
}

async fn events_of(app: &TestApp, shop: &Shop, user_ref: &str) -> Vec<String> {
    let id = app.state.store.app_user(&shop.app_id, user_ref).await.unwrap().unwrap().id;
    app.state.store.user_events(&id, 100).await.unwrap().into_iter().map(|e| e.name).collect()
}

fn assert_error_frame(frame: &Value, code: &str, words: &str) {
    assert_eq!(frame["t"], "error", "{frame}");
    assert_eq!(frame["code"], code, "{frame}");
    let message = frame["message"].as_str().unwrap_or_default();
    assert!(message.contains(words), "{frame}");
}

async fn server_only_names_are_the_backends(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let s = shop(&app, &owner, "Shop").await;

    // Owner only, like the app's other security settings; names are checked.
    let tess = app.add_tess(&s.app_id, &owner).await;
    assert_eq!(set_server_only(&app, &s, &tess, "plan", "").await.status, 403);
    let r = set_server_only(&app, &s, &owner, "plan\n9lives", "").await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["Field"]["field"], "properties");
    let r = set_server_only(&app, &s, &owner, " plan \n\nplan\n", "subscription-cancelled\n").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let settings = app.call("apps/settings", &[("input[app_id]", &s.app_id)], Some(&tess), &[]).await.json();
    assert_eq!(settings["server_only_properties"], json!(["plan"]));
    assert_eq!(settings["server_only_events"], json!(["subscription-cancelled"]));
    let page = app.get(&format!("/apps/{}/settings", s.app_id), Some(&tess)).await;
    assert!(page.body.contains("Only the owner can change what the widget may set."), "{}", page.body);
    // The owner's form shows each list in its own field, one name a line.
    let page = app.get(&format!("/apps/{}/settings", s.app_id), Some(&owner)).await;
    for expected in [
        r#"id="server-only-properties" name="input[properties]""#,
        r#"id="server-only-events" name="input[events]""#,
        ">plan</textarea>",
        ">subscription-cancelled</textarea>",
        "One name a line, for example subscription-cancelled.",
    ] {
        assert!(page.body.contains(expected), "{expected} not in {}", page.body);
    }

    // A verified widget: refused the property and the event, with an error
    // frame; nothing is written; the connection stays open.
    let (mut w, welcome) = Widget::start(&app, s.hello("ada", "device-ada-1")).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    w.send(json!({"t": "update", "user": {"givenName": "Ada", "properties": {"plan": "gold", "seats": 3}}})).await;
    let refused = w.next().await;
    assert_error_frame(&refused, "server_only", "\"plan\" can only be set by this app's backend");
    w.send(json!({"t": "update", "user": {"properties": {"plan": null}}})).await;
    assert_error_frame(&w.next().await, "server_only", "plan");
    w.send(json!({"t": "track", "name": "subscription-cancelled"})).await;
    assert_error_frame(&w.next().await, "server_only", "\"subscription-cancelled\" can only be tracked");
    w.send(json!({"t": "track", "name": "opened-pricing"})).await;
    w.sync().await;
    assert_eq!(stored_properties(&app, &s, "ada").await, json!({}), "the refused update wrote nothing");
    assert_eq!(app.state.store.app_user(&s.app_id, "ada").await.unwrap().unwrap().given_name, None);
    assert_eq!(events_of(&app, &s, "ada").await, ["opened-pricing"]);
    assert!(!catalog(&app, &s).await.iter().any(|(n, _)| n == "plan"));

    // A hello that sets one is refused before anything is written.
    let (mut w2, first) =
        Widget::start(&app, anonymous_hello(&s, "device-new-2", json!({"properties": {"plan": "gold"}}))).await;
    assert_error_frame(&first, "server_only", "plan");
    assert_eq!(w2.next().await["t"], "closed");
    assert!(!app.state.store.widget_user_exists(&s.app_id, None, Some("device-new-2")).await.unwrap());

    // The backend may set and track them.
    let r = rest(&app, &s, "PUT", "/v1.1/appusers/ada", json!({"properties": {"plan": "gold"}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = rest(&app, &s, "POST", "/v1.1/appusers/ada/events", json!({"name": "subscription-cancelled"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(stored_properties(&app, &s, "ada").await, json!({"plan": "gold"}));
    assert_eq!(events_of(&app, &s, "ada").await, ["subscription-cancelled", "opened-pricing"]);

    // Emptying the lists gives the widget its way back (open widgets too).
    assert_eq!(set_server_only(&app, &s, &owner, "", "").await.status, 200);
    w.send(json!({"t": "update", "user": {"properties": {"plan": "silver"}}})).await;
    w.sync().await;
    assert_eq!(stored_properties(&app, &s, "ada").await, json!({"plan": "silver"}));
}

#[tokio::test]
async fn server_only_names_are_the_backends_on_sqlite() {
    let _turn = ONE_AT_A_TIME.lock().await;
    server_only_names_are_the_backends(Backend::Sqlite).await;
}

#[tokio::test]
async fn server_only_names_are_the_backends_on_postgres() {
    let _turn = ONE_AT_A_TIME.lock().await;
    server_only_names_are_the_backends(Backend::Postgres).await;
}

async fn anonymous_widgets_cannot_fix_types(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let s = shop(&app, &owner, "Shop").await;

    // An anonymous visitor's values are stored, but their types are not fixed.
    let (mut anon, welcome) =
        Widget::start(&app, anonymous_hello(&s, "device-anon-1", json!({"properties": {"tier": 3}}))).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    let anon_id = welcome["user"]["id"].as_str().unwrap().to_string();
    anon.send(json!({"t": "update", "user": {"properties": {"color": "red"}}})).await;
    anon.sync().await;
    assert_eq!(stored_properties(&app, &s, &anon_id).await, json!({"tier": 3, "color": "red"}));
    assert_eq!(catalog(&app, &s).await, [], "no type fixed by an anonymous widget");

    // The backend fixes "tier" as text; the anonymous widget must follow it.
    let r = rest(&app, &s, "POST", "/v1.1/appusers", json!({"userId": "bob", "properties": {"tier": "gold"}})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(catalog(&app, &s).await, [("tier".to_string(), "text".to_string())]);
    anon.send(json!({"t": "update", "user": {"properties": {"tier": 5}}})).await;
    assert_error_frame(&anon.next().await, "invalid", "\"tier\" is a text property");
    anon.send(json!({"t": "update", "user": {"properties": {"tier": "silver"}}})).await;
    anon.sync().await;
    assert_eq!(stored_properties(&app, &s, &anon_id).await["tier"], "silver");

    // A verified widget fixes a new type.
    let (mut ada, welcome) = Widget::start(&app, s.hello("ada", "device-ada-1")).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    ada.send(json!({"t": "update", "user": {"properties": {"seats": 2}}})).await;
    ada.sync().await;
    assert!(catalog(&app, &s).await.contains(&("seats".to_string(), "number".to_string())));

    // With identity verification off, a claimed (unverified) userId is as
    // anonymous: its values are stored, no type is fixed; and the dashboard
    // warns on the app's pages.
    for page in ["", "/users", "/settings"] {
        let r = app.get(&format!("/apps/{}{page}", s.app_id), Some(&owner)).await;
        assert_eq!(r.status, 200, "{page}");
        assert!(!r.body.contains("identity-off-warning"), "no warning while verification is on: {page}");
    }
    let r = app
        .call(
            "apps/identity-enforced",
            &[("input[app_id]", &s.app_id), ("input[enforced]", "false")],
            Some(&owner),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for page in ["", "/users", "/settings", "/whispers"] {
        let r = app.get(&format!("/apps/{}{page}", s.app_id), Some(&owner)).await;
        assert_eq!(r.status, 200, "{page}");
        assert!(r.body.contains("identity-off-warning"), "warned on {page}");
        assert!(r.body.contains("Identity verification is off for this app."), "warned on {page}");
    }
    let claim = json!({"t": "hello", "app": s.app_id, "device": "device-eve-1", "userId": "eve"});
    let (mut eve, welcome) = Widget::start(&app, claim).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    eve.send(json!({"t": "update", "user": {"properties": {"vip": true}}})).await;
    eve.sync().await;
    assert_eq!(stored_properties(&app, &s, "eve").await, json!({"vip": true}));
    assert!(!catalog(&app, &s).await.iter().any(|(n, _)| n == "vip"));
}

#[tokio::test]
async fn anonymous_widgets_cannot_fix_types_on_sqlite() {
    let _turn = ONE_AT_A_TIME.lock().await;
    anonymous_widgets_cannot_fix_types(Backend::Sqlite).await;
}

#[tokio::test]
async fn anonymous_widgets_cannot_fix_types_on_postgres() {
    let _turn = ONE_AT_A_TIME.lock().await;
    anonymous_widgets_cannot_fix_types(Backend::Postgres).await;
}

async fn catalogs_are_capped(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[("MAX_PROPERTY_NAMES", "3"), ("MAX_EVENT_NAMES", "2")]).await;
    // The caps as configured (what `AppState::open` gives the engine).
    app.state.engine.set_caps(CatalogCaps { properties: 3, events: 2 });
    let owner = app.setup_owner().await;
    let s = shop(&app, &owner, "Shop").await;
    let other = shop(&app, &owner, "Other shop").await;

    // Properties: three names fit; a fourth is refused, nothing written.
    let r = rest(&app, &s, "POST", "/v1.1/appusers", json!({"userId": "ada", "properties": {"a": 1, "b": "x"}})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = rest(&app, &s, "PUT", "/v1.1/appusers/ada", json!({"givenName": "Ada", "properties": {"c": true}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = rest(&app, &s, "PUT", "/v1.1/appusers/ada", json!({"surname": "L", "properties": {"a": 2, "d": 1}})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let body = r.json();
    assert_eq!(body["error"]["code"], "catalog_full", "{body}");
    assert!(body["error"]["description"].as_str().unwrap().contains("3 property names"), "{body}");
    let row = app.state.store.app_user(&s.app_id, "ada").await.unwrap().unwrap();
    assert_eq!((row.surname, Value::Object(row.properties.0)), (None, json!({"a": 1, "b": "x", "c": true})));
    assert_eq!(catalog(&app, &s).await.len(), 3);
    let r = rest(&app, &s, "POST", "/v1.1/appusers", json!({"userId": "bob", "properties": {"e": 1}})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(app.state.store.app_user(&s.app_id, "bob").await.unwrap().is_none(), "no user created");
    // Known names still pass; another app has its own catalog.
    let r = rest(&app, &s, "PUT", "/v1.1/appusers/ada", json!({"properties": {"a": 5}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = rest(&app, &other, "POST", "/v1.1/appusers", json!({"userId": "x", "properties": {"d": 1}})).await;
    assert_eq!(r.status, 201, "{}", r.body);

    // Events: two names fit; a third is refused, nothing written.
    for name in ["one", "two", "one"] {
        let r = rest(&app, &s, "POST", "/v1.1/appusers/ada/events", json!({"name": name})).await;
        assert_eq!(r.status, 201, "{name}: {}", r.body);
    }
    let r = rest(&app, &s, "POST", "/v1.1/appusers/ada/events", json!({"name": "three"})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "catalog_full");
    assert_eq!(events_of(&app, &s, "ada").await, ["one", "two", "one"]);
    assert_eq!(app.state.store.event_catalog(&s.app_id).await.unwrap(), ["one", "two"]);

    // The widget gets an error frame for each, and the connection goes on.
    let (mut w, welcome) = Widget::start(&app, s.hello("ada", "device-ada-1")).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    w.send(json!({"t": "update", "user": {"properties": {"f": 1}}})).await;
    assert_error_frame(&w.next().await, "catalog_full", "3 property names");
    w.send(json!({"t": "track", "name": "four"})).await;
    assert_error_frame(&w.next().await, "catalog_full", "2 event names");
    w.send(json!({"t": "track", "name": "two"})).await;
    w.sync().await;
    assert_eq!(events_of(&app, &s, "ada").await, ["two", "one", "two", "one"]);
    assert!(!stored_properties(&app, &s, "ada").await.as_object().unwrap().contains_key("f"));
}

#[tokio::test]
async fn catalogs_are_capped_on_sqlite() {
    let _turn = ONE_AT_A_TIME.lock().await;
    catalogs_are_capped(Backend::Sqlite).await;
}

#[tokio::test]
async fn catalogs_are_capped_on_postgres() {
    let _turn = ONE_AT_A_TIME.lock().await;
    catalogs_are_capped(Backend::Postgres).await;
}

/// A widget's socket from `ip`, through a trusted proxy.
async fn widget_from(app: &TestApp, ip: &str, hello: Value) -> (Widget, Value) {
    let mut req = format!("ws://{}/widget/ws", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("Origin", app.origin().parse().unwrap());
    req.headers_mut().insert("X-Forwarded-For", ip.parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.expect("upgrade refused");
    let mut w = Widget { ws };
    w.send(hello).await;
    let first = w.next().await;
    (w, first)
}

async fn new_anonymous_users_are_capped_per_address(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(
        &db,
        &[("TRUST_PROXY", "true"), ("NEW_ANONYMOUS_USER_RATE_LIMIT", "2/min"), ("WIDGET_CONNECT_RATE_LIMIT", "off")],
    )
    .await;
    let owner = app.setup_owner().await;
    let s = shop(&app, &owner, "Shop").await;
    let ip = "203.0.113.7";

    for device in ["device-one-1", "device-two-2"] {
        let (_, welcome) = widget_from(&app, ip, anonymous_hello(&s, device, json!({}))).await;
        assert_eq!(welcome["t"], "welcome", "{welcome}");
    }
    // The third new visitor from that address within the minute is refused,
    // with a frame saying when to retry, and a close that lets it retry.
    let (mut w, refused) = widget_from(&app, ip, anonymous_hello(&s, "device-three-3", json!({}))).await;
    assert_error_frame(&refused, "too_many_new_users", "Try again in 30 s");
    assert_eq!(w.next().await, json!({"t": "closed", "code": 1013}));
    assert!(!app.state.store.widget_user_exists(&s.app_id, None, Some("device-three-3")).await.unwrap());
    // Known visitors come back; verified users are not counted; other
    // addresses have their own allowance.
    let (_, welcome) = widget_from(&app, ip, anonymous_hello(&s, "device-one-1", json!({}))).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    let (_, welcome) = widget_from(&app, ip, s.hello("ada", "device-ada-1")).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    let (_, welcome) = widget_from(&app, "198.51.100.9", anonymous_hello(&s, "device-four-4", json!({}))).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");

    // IPv6 counts by /64.
    for (i, ip6) in ["2001:db8:1:2::1", "2001:db8:1:2::2"].iter().enumerate() {
        let (_, welcome) = widget_from(&app, ip6, anonymous_hello(&s, &format!("device-six-{i}"), json!({}))).await;
        assert_eq!(welcome["t"], "welcome", "{welcome}");
    }
    let (_, refused) = widget_from(&app, "2001:db8:1:2:ffff::1", anonymous_hello(&s, "device-six-9", json!({}))).await;
    assert_error_frame(&refused, "too_many_new_users", "Try again");
    let (_, welcome) = widget_from(&app, "2001:db8:1:3::1", anonymous_hello(&s, "device-six-8", json!({}))).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");

    // With identity verification off, claimed userIds are counted too.
    let r = app
        .call(
            "apps/identity-enforced",
            &[("input[app_id]", &s.app_id), ("input[enforced]", "false")],
            Some(&owner),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let claim = json!({"t": "hello", "app": s.app_id, "device": "device-claim-1", "userId": "mallory"});
    let (_, refused) = widget_from(&app, ip, claim.clone()).await;
    assert_error_frame(&refused, "too_many_new_users", "Try again");
    assert!(app.state.store.app_user(&s.app_id, "mallory").await.unwrap().is_none());

    // Half a minute later, one more new visitor passes.
    app.clock.advance_ms(30_000);
    let (_, welcome) = widget_from(&app, ip, claim).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    let (_, refused) = widget_from(&app, ip, anonymous_hello(&s, "device-three-3", json!({}))).await;
    assert_error_frame(&refused, "too_many_new_users", "Try again");
}

#[tokio::test]
async fn new_anonymous_users_are_capped_per_address_on_sqlite() {
    let _turn = ONE_AT_A_TIME.lock().await;
    new_anonymous_users_are_capped_per_address(Backend::Sqlite).await;
}

#[tokio::test]
async fn new_anonymous_users_are_capped_per_address_on_postgres() {
    let _turn = ONE_AT_A_TIME.lock().await;
    new_anonymous_users_are_capped_per_address(Backend::Postgres).await;
}
