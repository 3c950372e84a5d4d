//! The widget's WebSocket and real-time delivery, on both backends and
//! across two server instances on PostgreSQL: identity, app launch, event-
//! triggered whispers delivered once per user and pushed to every open
//! widget, delivery states feeding the whispers list, replies, team messages
//! live and on the next start, pause/resume, and bad input.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use murmur::{
    domain::{
        conditions::{Condition, Operator},
        whisper::{from_template, Button, ButtonAction, Trigger, WhisperDraft},
    },
    server::jwt,
};
use serde_json::{json, Value};
use support::{
    shop::{create_user, rest, save_whisper, shop, Shop},
    spawn_app,
    widget::Widget,
    Backend, TestApp, TestDb, START_MS,
};
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, Message},
    MaybeTlsStream,
};

async fn set_status(app: &TestApp, shop: &Shop, id: &str, status: &str) {
    let r = app
        .call(
            "whispers/status",
            &[("input[app_id]", &shop.app_id), ("input[whisper_id]", id), ("input[status]", status)],
            Some(&shop.owner),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn stats(app: &TestApp, shop: &Shop, id: &str) -> [i64; 4] {
    let r = app.call("whispers/list", &[("input[app_id]", &shop.app_id)], Some(&shop.owner), &[]).await;
    let list = r.json();
    let w = list.as_array().unwrap().iter().find(|w| w["id"] == id).unwrap().clone();
    ["exposed", "seen", "clicked", "replied"].map(|k| w[k].as_i64().unwrap())
}

/// `n` REST tracks of item-in-cart for `user`, all at once, spread over
/// `addrs` in turn; their statuses.
async fn track_concurrently(addrs: &[std::net::SocketAddr], shop: &Shop, user: &str, n: usize) -> Vec<u16> {
    let path = format!("/v1.1/appusers/{user}/events");
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (addr, auth, path) = (addrs[i % addrs.len()], shop.auth(), path.clone());
            tokio::spawn(async move {
                let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
                support::raw_request(addr, "POST", &path, &headers, r#"{"name":"item-in-cart"}"#).await.status
            })
        })
        .collect();
    let mut statuses = Vec::with_capacity(n);
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

/// The issue's whisper: on item-in-cart, for plan = gold, personalised, with a link and a reply button.
fn cart_whisper(shop: &Shop) -> WhisperDraft {
    let mut d = from_template(None, &shop.owner_id);
    d.name = "Cart nudge".into();
    d.all_users = false;
    d.conditions = vec![Condition { property: "plan".into(), operator: Operator::Is, value: "gold".into() }];
    d.trigger = Trigger::Event("item-in-cart".into());
    d.text = "Hi {{ firstName || there }}, your **cart** is waiting.".into();
    d.buttons = vec![
        Button { label: "Checkout".into(), action: ButtonAction::Link("https://shop.example/checkout".into()) },
        Button { label: "I have a question".into(), action: ButtonAction::Reply("I have a question".into()) },
    ];
    d
}

async fn delivery_flow(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    create_user(&app, &shop, "u1", "Ada <script>alert(1)</script>", "gold").await;
    create_user(&app, &shop, "u2", "Grace", "gold").await;
    create_user(&app, &shop, "u3", "Linus", "free").await;
    let wid = save_whisper(&app, &shop, &cart_whisper(&shop)).await;

    // Two tabs of u1: widget start is an app launch.
    app.clock.advance_ms(1_000);
    let (mut tab1, welcome) = Widget::start(&app, shop.hello("u1", "device-aaaa-1")).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    assert_eq!(welcome["user"]["userId"], "u1");
    let (mut tab2, welcome2) = Widget::start(&app, shop.hello("u1", "device-aaaa-2")).await;
    assert_eq!(welcome2["t"], "welcome");
    let u1 = app.state.store.app_user(&shop.app_id, "u1").await.unwrap().unwrap();
    assert_eq!(u1.last_seen_at, Some(START_MS + 1_000));
    assert_eq!((u1.app_version.as_deref(), u1.platform.as_deref()), (Some("2.1.0"), Some("web")));

    // track → the card, personalised and escaped, on both tabs at once.
    tab1.send(json!({"t": "track", "name": "item-in-cart", "props": {"sku": "A-1"}})).await;
    let card = tab1.next().await;
    assert_eq!(card["t"], "card", "{card}");
    let html = card["card"]["html"].as_str().unwrap();
    assert!(
        html.contains("Hi Ada &lt;script&gt;alert(1)&lt;/script&gt;, your <strong>cart</strong> is waiting."),
        "{html}"
    );
    assert!(!html.contains("<script"));
    assert_eq!(card["card"]["sender"]["name"], "Olive Owner");
    assert_eq!(card["card"]["buttons"][0]["kind"], "link");
    assert_eq!(tab2.next().await["id"], card["id"]);
    let id = card["id"].as_str().unwrap().to_string();
    let events = app.state.store.user_events(&u1.id, 10).await.unwrap();
    let props: Value = serde_json::from_str(events[0].properties.as_deref().unwrap()).unwrap();
    assert_eq!((events[0].name.as_str(), props), ("item-in-cart", json!({"sku": "A-1"})));

    // Tracking again, from either path, delivers nothing new.
    tab2.send(json!({"t": "track", "name": "item-in-cart"})).await;
    let r = rest(&app, &shop, "POST", "/v1.1/appusers/u1/events", json!({"name": "item-in-cart"})).await;
    assert_eq!(r.status, 201);
    tab1.quiet(300).await;
    tab2.quiet(50).await;
    assert_eq!(stats(&app, &shop, &wid).await, [1, 0, 0, 0]);

    // Another user cannot report on u1's card: while it is still unseen,
    // u3's seen, clicked and a reply naming it leave it unseen.
    let (mut other, _) = Widget::start(&app, shop.hello("u3", "device-cccc-1")).await;
    other.send(json!({"t": "seen", "id": id})).await;
    other.send(json!({"t": "clicked", "id": id})).await;
    other.send(json!({"t": "reply", "text": "hijack", "card": id})).await;
    assert_eq!(other.next().await["t"], "message");
    other.sync().await;
    assert_eq!(stats(&app, &shop, &wid).await, [1, 0, 0, 0], "u3's reports changed u1's card");
    // Nor does u3's conversation point at u1's card (found by `reliability
    // fuzz`: a card id of another app was kept and shown in this app's answers).
    let convs = rest(&app, &shop, "GET", "/v1.1/appusers/u3/conversations", Value::Null).await.json();
    assert_eq!(convs["conversations"][0]["cardId"], Value::Null, "{convs}");
    assert_eq!(convs["conversations"][0]["startedBy"], "user", "{convs}");
    let (peek, welcome) = Widget::start(&app, shop.hello("u1", "device-aaaa-3")).await;
    let cards = welcome["cards"].as_array().unwrap();
    assert_eq!((cards.len(), cards[0]["id"].as_str(), cards[0]["seen"].as_bool()), (1, Some(id.as_str()), Some(false)));
    drop(peek);

    // seen → clicked → replied, as the widget reports them.
    tab1.send(json!({"t": "seen", "id": id})).await;
    tab1.sync().await;
    assert_eq!(stats(&app, &shop, &wid).await, [1, 1, 0, 0]);
    tab1.send(json!({"t": "clicked", "id": id})).await;
    tab1.send(json!({"t": "reply", "text": "Is <b>shipping</b> free?", "card": id})).await;
    let echo = tab1.next().await;
    assert_eq!((echo["t"].as_str(), echo["message"]["role"].as_str()), (Some("message"), Some("appUser")));
    assert_eq!(echo["message"]["text"], "Is <b>shipping</b> free?");
    assert_eq!(tab2.next().await["message"]["id"], echo["message"]["id"]);
    assert_eq!(stats(&app, &shop, &wid).await, [1, 1, 1, 1]);

    // The reply is in the conversation, through the REST API.
    let msgs = rest(&app, &shop, "GET", "/v1.1/appusers/u1/messages", Value::Null).await.json();
    assert_eq!(msgs["messages"][0]["text"], "Is <b>shipping</b> free?");
    assert_eq!(msgs["messages"][0]["role"], "appUser");

    // A team message through the REST API reaches both tabs live.
    let r = rest(
        &app,
        &shop,
        "POST",
        "/v1.1/appusers/u1/messages",
        json!({"role": "appMaker", "type": "text", "text": "Yes, over $50.", "name": "Olive"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    for tab in [&mut tab1, &mut tab2] {
        let m = tab.next().await;
        assert_eq!((m["t"].as_str(), m["message"]["text"].as_str()), (Some("message"), Some("Yes, over $50.")));
    }

    // ...and an offline user on their next start, resuming from where they were.
    let (mut grace, welcome) = Widget::start(&app, shop.hello("u2", "device-bbbb-1")).await;
    let since = START_MS + 1_000;
    assert!(welcome["messages"].as_array().unwrap().is_empty());
    drop(grace);
    app.clock.advance_ms(60_000);
    let r =
        rest(&app, &shop, "POST", "/v1.1/appusers/u2/messages", json!({"role": "appMaker", "text": "Welcome back"}))
            .await;
    assert_eq!(r.status, 201);
    let mut hello = shop.hello("u2", "device-bbbb-1");
    hello["since"] = json!(since);
    let (g, welcome) = Widget::start(&app, hello).await;
    grace = g;
    assert_eq!(welcome["messages"][0]["text"], "Welcome back", "{welcome}");

    // Paused: nothing for u2. Resumed: the card.
    set_status(&app, &shop, &wid, "paused").await;
    grace.send(json!({"t": "track", "name": "item-in-cart"})).await;
    grace.sync().await;
    grace.quiet(200).await;
    set_status(&app, &shop, &wid, "active").await;
    grace.send(json!({"t": "track", "name": "item-in-cart"})).await;
    let card = grace.next().await;
    assert_eq!(card["t"], "card");
    assert!(card["card"]["html"].as_str().unwrap().starts_with("<p>Hi Grace,"));
    // u3 is not in the audience (plan = free).
    other.send(json!({"t": "track", "name": "item-in-cart"})).await;
    other.sync().await;
    assert_eq!(stats(&app, &shop, &wid).await[0], 2);

    // A card pushed while a user was offline is waiting on their next start.
    drop(other);
    rest(&app, &shop, "PUT", "/v1.1/appusers/u3", json!({"properties": {"plan": "gold"}})).await;
    let r = rest(&app, &shop, "POST", "/v1.1/appusers/u3/events", json!({"name": "item-in-cart"})).await;
    assert_eq!(r.status, 201);
    assert_eq!(stats(&app, &shop, &wid).await[0], 2, "not exposed while offline");
    let (_w, welcome) = Widget::start(&app, shop.hello("u3", "device-cccc-1")).await;
    let cards = welcome["cards"].as_array().unwrap();
    assert_eq!((cards.len(), cards[0]["seen"].as_bool()), (1, Some(false)), "{welcome}");
    assert_eq!(stats(&app, &shop, &wid).await[0], 3);
}

#[tokio::test]
async fn delivery_flow_sqlite() {
    delivery_flow(Backend::Sqlite).await;
}

#[tokio::test]
async fn delivery_flow_postgres() {
    delivery_flow(Backend::Postgres).await;
}

async fn identity_and_bad_input(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop_a = shop(&app, &owner, "A").await;
    let shop_b = shop(&app, &owner, "B").await;
    let refused = |v: &Value, code: &str| {
        assert_eq!((v["t"].as_str(), v["code"].as_str()), (Some("error"), Some(code)), "{v}");
    };

    // Identity verification is on by default: a userId alone is refused.
    let (_, v) =
        Widget::start(&app, json!({"t": "hello", "app": shop_a.app_id, "device": "device-1234", "userId": "u1"})).await;
    refused(&v, "identity_required");
    // Forged (wrong secret), another app's secret, expired, someone else's, wrong scope, garbage.
    let exp = json!(START_MS / 1000 + 60);
    for token in [
        shop_a.token_with("u1", "not-the-secret", exp.clone()),
        shop_a.token_with("u1", &shop_b.identity, exp.clone()),
        shop_a.token_with("u1", &shop_a.identity, json!(START_MS / 1000 - 1)),
        shop_a.token_with("u2", &shop_a.identity, exp.clone()),
        jwt::sign(None, &json!({"scope": "app", "userId": "u1", "exp": exp}), shop_a.identity.as_bytes()),
        jwt::sign(None, &json!({"scope": "appUser", "userId": "u1"}), shop_a.identity.as_bytes()),
        "a.b.c".to_string(),
    ] {
        let (_, v) = Widget::start(
            &app,
            json!({"t": "hello", "app": shop_a.app_id, "device": "device-1234", "userId": "u1", "jwt": token}),
        )
        .await;
        refused(&v, "invalid_jwt");
    }
    assert!(app.state.store.app_user(&shop_a.app_id, "u1").await.unwrap().is_none(), "nobody was created");
    let (_, v) =
        Widget::start(&app, json!({"t": "hello", "app": "0123456789abcdef01234567", "device": "device-1234"})).await;
    refused(&v, "unknown_app");
    let (_, v) = Widget::start(&app, json!({"t": "hello", "app": shop_a.app_id, "device": "<x>"})).await;
    refused(&v, "invalid_device");
    let (_, v) = Widget::start(&app, json!({"t": "track", "name": "x"})).await;
    refused(&v, "hello_expected");

    // Another origin cannot open a widget connection at all.
    assert_eq!(Widget::open(&app, "https://evil.example").await.err(), Some(403));
    let mut no_origin = format!("ws://{}/widget/ws", app.addr).into_client_request().unwrap();
    no_origin.headers_mut().remove("Origin");
    assert!(tokio_tungstenite::connect_async(no_origin).await.is_err());

    // Bad frames after the hello: a clear error, the connection stays, nothing is written.
    let (mut w, v) = Widget::start(&app, shop_a.hello("u1", "device-1234")).await;
    assert_eq!(v["t"], "welcome");
    let u1 = app.state.store.app_user(&shop_a.app_id, "u1").await.unwrap().unwrap();
    for bad in [
        json!({"t": "track", "name": "x".repeat(129)}),
        json!({"t": "track", "name": ""}),
        json!({"t": "track", "name": "ok", "props": {"big": "x".repeat(9000)}}),
        json!({"t": "track", "name": "ok", "props": [1, 2]}),
        json!({"t": "reply", "text": "   "}),
        json!({"t": "reply", "text": "x".repeat(4097)}),
        json!({"t": "update", "user": {"properties": {"plan": {"nested": true}}}}),
        json!({"t": "nonsense"}),
    ] {
        w.send(bad.clone()).await;
        let v = w.next().await;
        assert_eq!((v["t"].as_str(), v["code"].as_str()), (Some("error"), Some("invalid")), "{bad} → {v}");
    }
    w.ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(w.next().await["code"], "invalid");
    assert!(app.state.store.user_events(&u1.id, 10).await.unwrap().is_empty());
    assert!(app.state.store.user_messages(&u1.id, 10).await.unwrap().is_empty());
    // A frame larger than the limit closes the connection.
    w.ws.send(Message::Text("x".repeat(64 * 1024).into())).await.ok();
    let end = tokio::time::timeout(Duration::from_secs(5), w.ws.next()).await.unwrap();
    assert!(matches!(end, None | Some(Err(_)) | Some(Ok(Message::Close(_)))), "{end:?}");

    // A REST track with app A's key for app B's user: not found, nothing written.
    let (_wb, v) = Widget::start(&app, shop_b.hello("b-user", "device-5678")).await;
    assert_eq!(v["t"], "welcome");
    let r = rest(&app, &shop_a, "POST", "/v1.1/appusers/b-user/events", json!({"name": "item-in-cart"})).await;
    assert_eq!(r.status, 404, "{}", r.body);
    for bad in [json!({"name": "x", "properties": [1]}), json!({"name": "x", "properties": {"b": "x".repeat(9000)}})] {
        let r = rest(&app, &shop_b, "POST", "/v1.1/appusers/b-user/events", bad).await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
    let b_user = app.state.store.app_user(&shop_b.app_id, "b-user").await.unwrap().unwrap();
    assert!(app.state.store.user_events(&b_user.id, 10).await.unwrap().is_empty());

    // An app that turns enforcement off accepts a bare userId.
    app.state.store.set_identity_enforced(&shop_b.app_id, false).await.unwrap();
    let (_, v) =
        Widget::start(&app, json!({"t": "hello", "app": shop_b.app_id, "device": "device-9999", "userId": "plain"}))
            .await;
    assert_eq!(v["t"], "welcome", "{v}");
}

#[tokio::test]
async fn identity_and_bad_input_sqlite() {
    identity_and_bad_input(Backend::Sqlite).await;
}

#[tokio::test]
async fn identity_and_bad_input_postgres() {
    identity_and_bad_input(Backend::Postgres).await;
}

async fn anonymous_then_identified(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    let mut welcome_whisper = from_template(Some("announcement"), &shop.owner_id);
    welcome_whisper.name = "Hello".into();
    welcome_whisper.text = "Welcome, {{ firstName || friend }}!".into();
    assert_eq!(welcome_whisper.trigger, Trigger::AppLaunch);
    save_whisper(&app, &shop, &welcome_whisper).await;
    let mut thanks = from_template(None, &shop.owner_id);
    thanks.name = "Thanks".into();
    thanks.all_users = true;
    thanks.trigger = Trigger::FirstMessage;
    thanks.text = "Thanks for writing! We answer within a day.".into();
    save_whisper(&app, &shop, &thanks).await;

    // An anonymous visitor: created on first sight; the app-launch whisper fires.
    let device = "anon-device-0001";
    let (mut w, v) = Widget::start(&app, json!({"t": "hello", "app": shop.app_id, "device": device})).await;
    assert_eq!(v["t"], "welcome");
    assert!(v["user"]["userId"].is_null());
    let anon_id = v["user"]["id"].clone();
    let card = w.next().await;
    assert_eq!(card["card"]["html"], "<p>Welcome, friend!</p>");
    w.send(json!({"t": "reply", "text": "hi, I'm browsing"})).await;
    assert_eq!(w.next().await["t"], "message");
    // The first message fires the first-message whisper; a second does not.
    assert_eq!(w.next().await["card"]["html"], "<p>Thanks for writing! We answer within a day.</p>");
    app.clock.advance_ms(1_000);
    w.send(json!({"t": "reply", "text": "still here"})).await;
    assert_eq!(w.next().await["t"], "message");
    w.quiet(200).await;
    w.send(json!({"t": "track", "name": "viewed-pricing"})).await;
    w.sync().await;
    // The housekeeping has folded the visitor's event into who did each
    // event and each user's events; a second is not folded yet.
    app.state.store.fold_event_users(&shop.app_id).await.unwrap();
    w.send(json!({"t": "track", "name": "viewed-docs"})).await;
    w.sync().await;
    drop(w);

    // Logging in on that device merges the visitor's history into the user.
    let (mut w, v) = Widget::start(&app, shop.hello("known", device)).await;
    assert_eq!(v["user"]["userId"], "known");
    assert_eq!(v["messages"][0]["text"], "hi, I'm browsing", "{v}");
    assert_eq!(v["cards"].as_array().unwrap().len(), 2, "the cards moved over: {v}");
    w.quiet(300).await; // and is not delivered twice
    let known = app.state.store.app_user(&shop.app_id, "known").await.unwrap().unwrap();
    let events = app.state.store.user_events(&known.id, 10).await.unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["viewed-docs", "viewed-pricing"], "folded or not, both moved");
    let r = rest(&app, &shop, "GET", "/v1.1/appusers/known/messages", Value::Null).await.json();
    assert_eq!(r["messages"].as_array().unwrap().len(), 2);
    let anon_id = anon_id.as_str().unwrap();
    assert!(app.state.store.app_user(&shop.app_id, anon_id).await.unwrap().is_none(), "the anonymous user is gone");
    // Who did each event moved over too: the catalog still counts them.
    app.state.store.recount_catalog(&shop.app_id, murmur::clock::Clock::now_ms(&*app.clock)).await.unwrap();
    let counts = app.state.store.event_catalog_counts(&shop.app_id).await.unwrap();
    assert_eq!(counts, [("viewed-docs".to_string(), Some(1)), ("viewed-pricing".to_string(), Some(1))], "{counts:?}");
}

#[tokio::test]
async fn anonymous_then_identified_sqlite() {
    anonymous_then_identified(Backend::Sqlite).await;
}

#[tokio::test]
async fn anonymous_then_identified_postgres() {
    anonymous_then_identified(Backend::Postgres).await;
}

/// A stopping server tells open widgets to reconnect (1012, service restart).
#[tokio::test]
async fn shutdown_closes_widgets() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    let (mut w, v) = Widget::start(&app, json!({"t": "hello", "app": shop.app_id, "device": "device-stop-1"})).await;
    assert_eq!(v["t"], "welcome");
    drop(app);
    assert_eq!(w.next().await, json!({"t": "closed", "code": 1012}));
}

/// Many concurrent tracks for one user: one delivery, one card.
async fn concurrent_tracks(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    create_user(&app, &shop, "u1", "Ada", "gold").await;
    let wid = save_whisper(&app, &shop, &cart_whisper(&shop)).await;
    let (mut w, _) = Widget::start(&app, shop.hello("u1", "device-0000-1")).await;
    for status in track_concurrently(&[app.addr], &shop, "u1", 24).await {
        assert_eq!(status, 201);
    }
    assert_eq!(w.next().await["t"], "card");
    w.quiet(300).await;
    assert_eq!(stats(&app, &shop, &wid).await[0], 1);
}

#[tokio::test]
async fn concurrent_tracks_sqlite() {
    concurrent_tracks(Backend::Sqlite).await;
}

#[tokio::test]
async fn concurrent_tracks_postgres() {
    concurrent_tracks(Backend::Postgres).await;
}

/// Two instances on one PostgreSQL database: an event tracked on A reaches
/// a widget on B; a message posted on B reaches a widget on A; a pause on A
/// stops deliveries made on B; concurrent tracks on both deliver once.
#[tokio::test]
async fn two_instances_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let a = spawn_app(&db, &[]).await;
    let b = spawn_app(&db, &[]).await;
    let owner = a.setup_owner().await;
    let shop = shop(&a, &owner, "Shop").await;
    for u in ["u1", "u2", "u3"] {
        create_user(&a, &shop, u, "Ada", "gold").await;
    }
    let wid = save_whisper(&a, &shop, &cart_whisper(&shop)).await;
    let (mut on_b, v) = Widget::start(&b, shop.hello("u1", "device-b-0001")).await;
    assert_eq!(v["t"], "welcome");
    let (mut on_a, _) = Widget::start(&a, shop.hello("u1", "device-a-0001")).await;

    let r = rest(&a, &shop, "POST", "/v1.1/appusers/u1/events", json!({"name": "item-in-cart"})).await;
    assert_eq!(r.status, 201);
    let card = on_b.next().await;
    assert_eq!(card["t"], "card", "{card}");
    assert_eq!(on_a.next().await["id"], card["id"]);

    let r = rest(&b, &shop, "POST", "/v1.1/appusers/u1/messages", json!({"role": "appMaker", "text": "From B"})).await;
    assert_eq!(r.status, 201);
    assert_eq!(on_a.next().await["message"]["text"], "From B");
    assert_eq!(on_b.next().await["message"]["text"], "From B");

    // Concurrent tracks for u2 on both instances: one delivery.
    let (mut u2_b, _) = Widget::start(&b, shop.hello("u2", "device-b-0002")).await;
    for status in track_concurrently(&[a.addr, b.addr], &shop, "u2", 16).await {
        assert_eq!(status, 201);
    }
    assert_eq!(u2_b.next().await["t"], "card");
    u2_b.quiet(300).await;

    // Paused on A: B stops delivering at once (its cache hears about it).
    // Each instance has evaluated the app's whispers already, so both hold a copy.
    assert!(b.state.engine.holds_whispers_of(&shop.app_id));
    set_status(&a, &shop, &wid, "paused").await;
    // B hears of it (NOTIFY) and drops its copy.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while b.state.engine.holds_whispers_of(&shop.app_id) {
        assert!(tokio::time::Instant::now() < deadline, "B never heard of the pause");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (mut u3_b, _) = Widget::start(&b, shop.hello("u3", "device-b-0003")).await;
    u3_b.send(json!({"t": "track", "name": "item-in-cart"})).await;
    u3_b.sync().await;
    u3_b.quiet(200).await;
    assert_eq!(stats(&a, &shop, &wid).await[0], 2);
}

/// A widget that stops reading: once the socket's buffers are full the
/// server's sends wait, and after `SEND_WITHIN` the server drops the
/// connection (its task is freed) instead of waiting forever.
#[tokio::test]
async fn a_widget_that_stops_reading_is_dropped() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    // A small receive window, so that a few frames fill what the network holds.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.addr).await.unwrap();
    let mut req = format!("ws://{}/widget/ws", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("Origin", app.origin().parse().unwrap());
    let (ws, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream)).await.unwrap();
    let mut w = Widget { ws };
    w.send(shop.hello("u1", "device-deaf-01")).await;
    assert_eq!(w.next().await["t"], "welcome");

    // The widget reads nothing more; the team sends it 4 MB of messages.
    let text = "\u{1F600}".repeat(murmur::domain::messages::MAX_MESSAGE_CHARS);
    for _ in 0..256 {
        let body = json!({"role": "appMaker", "text": text});
        assert_eq!(rest(&app, &shop, "POST", "/v1.1/appusers/u1/messages", body).await.status, 201);
    }
    // Once the server has given up on it, the connection is gone: what the
    // widget sends is refused (reset) rather than buffered for a stuck task.
    let deadline = tokio::time::Instant::now() + murmur::widget::socket::SEND_WITHIN + Duration::from_secs(20);
    loop {
        if w.ws.send(Message::Ping(Vec::new().into())).await.is_err() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server still holds the connection of a widget that stopped reading"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One user may have `MAX_WIDGETS_PER_USER` widgets open on an instance;
/// one more is refused (try again later) until one closes.
#[tokio::test]
async fn a_user_has_at_most_so_many_widgets_open() {
    use murmur::widget::socket::MAX_WIDGETS_PER_USER;
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Tabs").await;
    let mut open = vec![];
    for _ in 0..MAX_WIDGETS_PER_USER {
        let (w, welcome) = Widget::start(&app, shop.hello("tabby", "device-tabby-01")).await;
        assert_eq!(welcome["t"], "welcome", "{welcome}");
        open.push(w);
    }
    let (mut extra, refused) = Widget::start(&app, shop.hello("tabby", "device-tabby-01")).await;
    assert_eq!(
        (refused["t"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("too_many_widgets")),
        "{refused}"
    );
    assert_eq!(extra.next().await["code"], 1013);
    // Another user is not affected.
    let (_other, welcome) = Widget::start(&app, shop.hello("someone", "device-someone-1")).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    // One tab closes: there is room again.
    open.pop();
    let hub = &app.state.engine.hub;
    let mut departures = hub.departures();
    tokio::time::timeout(Duration::from_secs(5), departures.wait_for(|_| hub.connections() <= MAX_WIDGETS_PER_USER))
        .await
        .expect("the closed widget never left")
        .unwrap();
    let (_again, welcome) = Widget::start(&app, shop.hello("tabby", "device-tabby-01")).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
}
