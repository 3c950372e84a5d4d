//! The delivery engine's rules, over HTTP and the widget's WebSocket only,
//! on both backends: a paused whisper shows nothing (not even what was
//! pending), first-message whispers fire for REST messages (once), control
//! characters are refused before they reach the database, a userId cannot
//! take another user's murmur id, and deleting a whisper leaves the cards
//! users already received. And on SQLite, the writer's WAL reaches the
//! database file through the checkpointer beside it.

mod support;

use std::time::Duration;

use murmur::domain::{
    conditions::{Condition, Operator},
    whisper::{from_template, Button, ButtonAction, Trigger, WhisperDraft},
};
use serde_json::{json, Value};
use support::{
    shop::{create_user, rest, save_whisper, shop, Shop},
    spawn_app,
    widget::Widget,
    Backend, TestApp, TestDb, START_MS,
};

/// Every test here is bounded: a server that stops answering fails it.
const TEST_LIMIT: Duration = Duration::from_secs(120);

async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, test).await.expect("the test did not finish within 120 s");
}

// ---------------------------------------------------------------------------
// Helpers (copied from tests/widget.rs, trimmed).

/// A server started on its own database, with an owner and an app with a key.
async fn setup(backend: Backend, extra: &[(&str, &str)]) -> Option<(TestDb, TestApp, Shop)> {
    let db = TestDb::new(backend).await?;
    let app = spawn_app(&db, extra).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    Some((db, app, shop))
}

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

async fn delete_whisper(app: &TestApp, shop: &Shop, id: &str) {
    let r = app
        .call("whispers/delete", &[("input[app_id]", &shop.app_id), ("input[whisper_id]", id)], Some(&shop.owner), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The whisper's (exposed, seen, clicked, replied) from the whispers list.
async fn stats(app: &TestApp, shop: &Shop, id: &str) -> [i64; 4] {
    let r = app.call("whispers/list", &[("input[app_id]", &shop.app_id)], Some(&shop.owner), &[]).await;
    let list = r.json();
    let w = list.as_array().unwrap().iter().find(|w| w["id"] == id).unwrap().clone();
    ["exposed", "seen", "clicked", "replied"].map(|k| w[k].as_i64().unwrap())
}

/// The dashboard's profile of a user (custom properties, events, messages).
async fn profile(app: &TestApp, shop: &Shop, user: &str) -> Value {
    let r = app
        .call("users/profile", &[("input[app_id]", &shop.app_id), ("input[user]", user)], Some(&shop.owner), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// The dashboard's catalog of the app's properties and events.
async fn catalog(app: &TestApp, shop: &Shop) -> Value {
    let r = app.call("users/catalog", &[("input[app_id]", &shop.app_id)], Some(&shop.owner), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// On item-in-cart, for plan = gold, personalised, with a link and a reply button.
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

/// Opens a widget for `user` and returns the cards it has on start: those
/// in the welcome, or, if the welcome has none, a card pushed right after
/// it (either is "the user has the card"); the widget stays open.
async fn cards_on_start(app: &TestApp, shop: &Shop, user: &str, device: &str) -> (Widget, Vec<Value>) {
    let (mut w, welcome) = Widget::start(app, shop.hello(user, device)).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    let cards = welcome["cards"].as_array().unwrap().clone();
    if !cards.is_empty() {
        return (w, cards);
    }
    match w.wait_for("card").await {
        Ok((card, _)) => (w, vec![card]),
        Err(_) => (w, vec![]),
    }
}

/// A refusal of the REST API: 400 with `{"error": {"code", "description"}}`.
fn refused_400(what: &str, r: &support::Response) -> Option<String> {
    let body: Option<Value> = serde_json::from_str(&r.body).ok();
    let code = body.as_ref().and_then(|b| b["error"]["code"].as_str());
    if r.status == 400 && code.is_some() {
        None
    } else {
        Some(format!("{what}: expected 400 with a JSON error, got {} {}", r.status, r.body))
    }
}

// ---------------------------------------------------------------------------
// 1. A paused whisper's pending delivery is not shown; resumed, it is.

async fn pause_hides_pending_cards(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend, &[]).await else { return };
    create_user(&app, &shop, "u1", "Ada", "gold").await;
    let wid = save_whisper(&app, &shop, &cart_whisper(&shop)).await;

    // u1 has no widget open: the event makes a pending delivery.
    let r = rest(&app, &shop, "POST", "/v1.1/appusers/u1/events", json!({"name": "item-in-cart"})).await;
    assert_eq!(r.status, 201, "{}", r.body);

    // Paused: u1's next start shows nothing of it.
    set_status(&app, &shop, &wid, "paused").await;
    let (mut w, welcome) = Widget::start(&app, shop.hello("u1", "device-pause-1")).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    assert_eq!(
        welcome["cards"].as_array().unwrap().len(),
        0,
        "a paused whisper's pending card was shown in the welcome: {welcome}"
    );
    w.sync().await;
    drop(w);

    // Resumed: the card is there on the next start.
    set_status(&app, &shop, &wid, "active").await;
    let (_w, cards) = cards_on_start(&app, &shop, "u1", "device-pause-2").await;
    assert_eq!(cards.len(), 1, "the resumed whisper's card: {cards:?}");
    let html = cards[0]["card"]["html"].as_str().unwrap();
    assert!(html.starts_with("<p>Hi Ada, your <strong>cart</strong> is waiting."), "{html}");
}

#[tokio::test]
async fn pause_hides_pending_cards_sqlite() {
    bounded(pause_hides_pending_cards(Backend::Sqlite)).await;
}

#[tokio::test]
async fn pause_hides_pending_cards_postgres() {
    bounded(pause_hides_pending_cards(Backend::Postgres)).await;
}

// ---------------------------------------------------------------------------
// 2. A user's first message through the REST API fires first-message whispers, once.

async fn first_message_from_rest(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend, &[]).await else { return };
    let mut thanks = from_template(None, &shop.owner_id);
    thanks.name = "Thanks".into();
    thanks.all_users = true;
    thanks.trigger = Trigger::FirstMessage;
    thanks.text = "Thanks for writing! We answer within a day.".into();
    let wid = save_whisper(&app, &shop, &thanks).await;
    create_user(&app, &shop, "u1", "Ada", "gold").await;
    create_user(&app, &shop, "u2", "Grace", "gold").await;
    let first = json!({"role": "appUser", "type": "text", "text": "hi"});

    // u1, no widget open: the card waits for the next start.
    let r = rest(&app, &shop, "POST", "/v1.1/appusers/u1/messages", first.clone()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (_w1, cards) = cards_on_start(&app, &shop, "u1", "device-first-1").await;
    assert_eq!(cards.len(), 1, "u1's first message through REST made no card: {cards:?}");
    assert_eq!(cards[0]["card"]["html"], "<p>Thanks for writing! We answer within a day.</p>");
    // The team sees the card in u1's conversation, after the message that caused it.
    let thread = profile(&app, &shop, "u1").await["messages"].clone();
    assert_eq!(thread.as_array().unwrap().len(), 2, "{thread}");
    assert_eq!((thread[0]["text"].as_str(), thread[0]["card"].is_null()), (Some("hi"), true), "{thread}");
    assert_eq!(thread[1]["card"]["whisper"], "Thanks", "{thread}");
    assert_eq!(thread[1]["card"]["html"], "<p>Thanks for writing! We answer within a day.</p>");

    // u2, widget open: two first messages at once make one card, pushed live.
    let (mut w2, welcome) = Widget::start(&app, shop.hello("u2", "device-first-2")).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    let (a, b) = tokio::join!(
        rest(&app, &shop, "POST", "/v1.1/appusers/u2/messages", first.clone()),
        rest(&app, &shop, "POST", "/v1.1/appusers/u2/messages", json!({"role": "appUser", "text": "hello?"})),
    );
    assert_eq!((a.status, b.status), (201, 201), "{} / {}", a.body, b.body);
    match w2.wait_for("card").await {
        Ok((card, _)) => assert_eq!(card["card"]["html"], "<p>Thanks for writing! We answer within a day.</p>"),
        Err(frames) => panic!("u2's concurrent first messages through REST pushed no card; frames: {frames:?}"),
    }
    // Exactly one: a fresh start of u2 lists one card, and the whisper counts two users in all.
    let (_w3, welcome) = Widget::start(&app, shop.hello("u2", "device-first-3")).await;
    assert_eq!(welcome["cards"].as_array().unwrap().len(), 1, "{welcome}");
    assert_eq!(stats(&app, &shop, &wid).await[0], 2, "one card for u1 and one for u2");
}

#[tokio::test]
async fn first_message_from_rest_sqlite() {
    bounded(first_message_from_rest(Backend::Sqlite)).await;
}

#[tokio::test]
async fn first_message_from_rest_postgres() {
    bounded(first_message_from_rest(Backend::Postgres)).await;
}

/// The users page's catalog: an app never counted is counted on its first
/// view (a small app at once), and the panel says when.
async fn catalog_counts_on_first_view(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend, &[]).await else { return };
    create_user(&app, &shop, "u1", "Ada", "gold").await;
    create_user(&app, &shop, "u2", "Grace", "silver").await;
    let r = rest(&app, &shop, "POST", "/v1.1/appusers/u1/events", json!({"name": "item-in-cart"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let c = catalog(&app, &shop).await;
    assert!(c["counted"].as_str().unwrap().starts_with("Users counted at "), "{c}");
    assert!(c["properties"].as_array().unwrap().iter().any(|p| p[0] == "plan" && p[2] == 2), "{c}");
    assert!(c["events"].as_array().unwrap().iter().any(|e| e[0] == "item-in-cart" && e[1] == 1), "{c}");
}

#[tokio::test]
async fn catalog_counts_on_first_view_sqlite() {
    catalog_counts_on_first_view(Backend::Sqlite).await;
}

#[tokio::test]
async fn catalog_counts_on_first_view_postgres() {
    catalog_counts_on_first_view(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------
// 3. U+0000 anywhere in a REST request: 400 (in a path's user id: 404, no such user),
// nothing written, the server unharmed.

async fn control_characters_over_rest(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend, &[]).await else { return };
    create_user(&app, &shop, "u1", "Ada", "gold").await;
    let nul = "a\u{0}b";
    let mut failures = vec![];
    let cases: Vec<(&str, &str, String, Value)> = vec![
        (
            "event property value",
            "POST",
            "/v1.1/appusers/u1/events".into(),
            json!({"name": "x", "properties": {"k": nul}}),
        ),
        (
            "event property key",
            "POST",
            "/v1.1/appusers/u1/events".into(),
            json!({"name": "x", "properties": {nul: "v"}}),
        ),
        ("event name", "POST", "/v1.1/appusers/u1/events".into(), json!({"name": "x\u{0}y"})),
        ("user property value", "PUT", "/v1.1/appusers/u1".into(), json!({"properties": {"k": nul}})),
        (
            "message text",
            "POST",
            "/v1.1/appusers/u1/messages".into(),
            json!({"role": "appUser", "type": "text", "text": nul}),
        ),
    ];
    for (what, method, path, body) in cases {
        let r = rest(&app, &shop, method, &path, body).await;
        failures.extend(refused_400(what, &r));
    }
    // A user id with a control character names no user (none can have one).
    let r = rest(&app, &shop, "POST", "/v1.1/appusers/a%00b/events", json!({"name": "x"})).await;
    if r.status != 404 || !r.body.contains("No user") {
        failures.push(format!("user ref in the path: expected 404 No user, got {} {}", r.status, r.body));
    }

    // Nothing of it was written.
    let u1 = rest(&app, &shop, "GET", "/v1.1/appusers/u1", Value::Null).await;
    assert_eq!(u1.status, 200, "{}", u1.body);
    if u1.json()["appUser"]["properties"].get("k").is_some() {
        failures.push(format!("the property k was written: {}", u1.body));
    }
    let messages = rest(&app, &shop, "GET", "/v1.1/appusers/u1/messages", Value::Null).await.json();
    if !messages["messages"].as_array().unwrap().is_empty() {
        failures.push(format!("a message was written: {messages}"));
    }
    let p = profile(&app, &shop, "u1").await;
    if !p["events"].as_array().unwrap().is_empty() {
        failures.push(format!("an event was written: {}", p["events"]));
    }
    let c = catalog(&app, &shop).await;
    if c["events"].as_array().unwrap().iter().any(|e| e[0] == "x") {
        failures.push(format!("the event catalog took \"x\": {}", c["events"]));
    }
    if c["properties"].as_array().unwrap().iter().any(|p| p[0] == "k") {
        failures.push(format!("the property catalog took \"k\": {}", c["properties"]));
    }

    // The server is unharmed: a well-formed event is stored.
    let r =
        rest(&app, &shop, "POST", "/v1.1/appusers/u1/events", json!({"name": "ok", "properties": {"k": "ab"}})).await;
    if r.status != 201 {
        failures.push(format!("a well-formed event afterwards: expected 201, got {} {}", r.status, r.body));
    }
    assert!(failures.is_empty(), "{backend:?}:\n  {}", failures.join("\n  "));
}

#[tokio::test]
async fn control_characters_over_rest_sqlite() {
    bounded(control_characters_over_rest(Backend::Sqlite)).await;
}

#[tokio::test]
async fn control_characters_over_rest_postgres() {
    bounded(control_characters_over_rest(Backend::Postgres)).await;
}

/// U+0000 in a widget's track: an error frame, the socket stays open, and
/// REST events tracked at the same moment (which may share its commit) are stored.
async fn control_characters_over_the_widget(backend: Backend) {
    // The longest commit window, so the REST tracks below join the widget's batch.
    let Some((_db, app, shop)) = setup(backend, &[("COMMIT_WINDOW_MS", "50")]).await else { return };
    create_user(&app, &shop, "u2", "Grace", "gold").await;
    let (mut w, welcome) = Widget::start(&app, shop.hello("u1", "device-nul-1")).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    // A first, valid track (the app's whispers are loaded once, not during the race below).
    w.send(json!({"t": "track", "name": "warm-up"})).await;
    w.sync().await;

    let mut failures = vec![];
    for props in [json!({"k": "a\u{0}b"}), json!({"a\u{0}b": "v"})] {
        w.send(json!({"t": "track", "name": "item-in-cart", "props": props.clone()})).await;
        w.send(json!({"t": "ping"})).await;
        let tracks = (0..4).map(|_| {
            let (addr, auth) = (app.addr, shop.auth());
            tokio::spawn(async move {
                let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
                support::raw_request(addr, "POST", "/v1.1/appusers/u2/events", &headers, r#"{"name":"meanwhile"}"#)
                    .await
            })
        });
        let tracks: Vec<_> = tracks.collect();
        // Everything up to the pong: the answer to the track, then the pong (the connection stays).
        let mut before_pong = vec![];
        let mut open = false;
        while let Some(v) = w.next_any().await {
            if v["t"] == "pong" {
                open = true;
                break;
            }
            let closed = v["t"] == "closed";
            before_pong.push(v);
            if closed {
                break;
            }
        }
        match before_pong.first() {
            Some(v) if v["t"] == "error" && v["code"] == "invalid" => {}
            Some(other) => {
                failures.push(format!("{props}: expected an error frame with code \"invalid\", got {other}"))
            }
            None if open => failures.push(format!("{props}: the track was accepted (the pong came first, no error)")),
            None => failures.push(format!("{props}: no answer to the track")),
        }
        if !open {
            failures.push(format!("{props}: the connection did not answer the ping after the track: {before_pong:?}"));
        }
        for t in tracks {
            let r = t.await.unwrap();
            if r.status != 201 {
                failures.push(format!("{props}: a concurrent REST track answered {} {}", r.status, r.body));
            }
        }
        if !open {
            break;
        }
    }
    let p = profile(&app, &shop, "u1").await;
    let names: Vec<&str> = p["events"].as_array().unwrap().iter().filter_map(|e| e[0].as_str()).collect();
    if names != ["warm-up"] {
        failures.push(format!("u1's events should be only the warm-up: {names:?}"));
    }
    assert!(failures.is_empty(), "{backend:?}:\n  {}", failures.join("\n  "));
}

#[tokio::test]
async fn control_characters_over_the_widget_sqlite() {
    bounded(control_characters_over_the_widget(Backend::Sqlite)).await;
}

#[tokio::test]
async fn control_characters_over_the_widget_postgres() {
    bounded(control_characters_over_the_widget(Backend::Postgres)).await;
}

// ---------------------------------------------------------------------------
// 4. A userId cannot be another user's murmur id (`_id`).

async fn user_id_cannot_be_another_users_id(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend, &[]).await else { return };
    let r = rest(&app, &shop, "POST", "/v1.1/appusers", json!({"userId": "alice", "givenName": "Alice"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let alice_id = r.json()["appUser"]["_id"].as_str().unwrap().to_string();

    let mut failures = vec![];
    let r = rest(&app, &shop, "POST", "/v1.1/appusers", json!({"userId": alice_id, "givenName": "Bob"})).await;
    let code = serde_json::from_str::<Value>(&r.body).ok().and_then(|b| b["error"]["code"].as_str().map(String::from));
    if !((400..500).contains(&r.status) && code.is_some()) {
        failures.push(format!(
            "a user whose userId is alice's _id: expected a 4xx JSON error, got {} {}",
            r.status, r.body
        ));
    }
    let r = rest(&app, &shop, "GET", &format!("/v1.1/appusers/{alice_id}"), Value::Null).await;
    let u = serde_json::from_str::<Value>(&r.body).unwrap_or_default();
    if r.status != 200 || u["appUser"]["_id"] != alice_id.as_str() || u["appUser"]["userId"] != "alice" {
        failures.push(format!("GET by alice's _id: expected alice, got {} {}", r.status, r.body));
    }
    assert!(failures.is_empty(), "{backend:?}:\n  {}", failures.join("\n  "));
}

#[tokio::test]
async fn user_id_cannot_be_another_users_id_sqlite() {
    bounded(user_id_cannot_be_another_users_id(Backend::Sqlite)).await;
}

#[tokio::test]
async fn user_id_cannot_be_another_users_id_postgres() {
    bounded(user_id_cannot_be_another_users_id(Backend::Postgres)).await;
}

// ---------------------------------------------------------------------------
// 5. Deleting a whisper leaves the cards users already received.

async fn deleted_whisper_keeps_received_cards(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend, &[]).await else { return };
    create_user(&app, &shop, "u1", "Ada", "gold").await;
    let wid = save_whisper(&app, &shop, &cart_whisper(&shop)).await;
    let (mut w, welcome) = Widget::start(&app, shop.hello("u1", "device-del-1")).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    w.send(json!({"t": "track", "name": "item-in-cart"})).await;
    let card = w.next().await;
    assert_eq!(card["t"], "card", "{card}");
    drop(w);

    delete_whisper(&app, &shop, &wid).await;
    let (_w, welcome) = Widget::start(&app, shop.hello("u1", "device-del-2")).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    let cards = welcome["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 1, "the card u1 received is gone after the whisper was deleted: {welcome}");
    assert_eq!(cards[0]["id"], card["id"]);
    assert_eq!(cards[0]["card"], card["card"], "the card as it was delivered");
    // And the team still sees it in u1's conversation on the dashboard.
    let thread = profile(&app, &shop, "u1").await["messages"].clone();
    assert_eq!(thread.as_array().unwrap().len(), 1, "{thread}");
    assert_eq!(thread[0]["card"]["html"], card["card"]["html"], "{thread}");
}

#[tokio::test]
async fn deleted_whisper_keeps_received_cards_sqlite() {
    bounded(deleted_whisper_keeps_received_cards(Backend::Sqlite)).await;
}

#[tokio::test]
async fn deleted_whisper_keeps_received_cards_postgres() {
    bounded(deleted_whisper_keeps_received_cards(Backend::Postgres)).await;
}

/// The Welcome template reaches a user on their first app launch, even if
/// the backend created them days before.
async fn welcome_on_first_launch(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend, &[]).await else { return };
    let signed = murmur::domain::properties::format_iso8601(START_MS - 10 * 86_400_000);
    let r =
        rest(&app, &shop, "POST", "/v1.1/appusers", json!({"userId": "u1", "givenName": "Ada", "signedUpAt": signed}))
            .await;
    assert_eq!(r.status, 201, "{}", r.body);
    save_whisper(&app, &shop, &from_template(Some("welcome"), &shop.owner_id)).await;
    // (created 10 days ago; their identity token is good for an hour from the start)
    app.clock.advance_ms(30 * 60_000);
    let (mut w, welcome) = Widget::start(&app, shop.hello("u1", "device-welcome-1")).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    match w.wait_for("card").await {
        Ok((card, _)) => assert!(card["card"]["html"].as_str().unwrap().contains("Hi Ada, welcome!"), "{card}"),
        Err(frames) => panic!("no welcome card on the first launch: {frames:?}"),
    }
    drop(w);
    // Once ever: the next launch shows the same card, nothing new.
    let (_w, again) = Widget::start(&app, shop.hello("u1", "device-welcome-2")).await;
    assert_eq!(again["cards"].as_array().unwrap().len(), 1, "{again}");
}

#[tokio::test]
async fn welcome_on_first_launch_sqlite() {
    bounded(welcome_on_first_launch(Backend::Sqlite)).await;
}

#[tokio::test]
async fn welcome_on_first_launch_postgres() {
    bounded(welcome_on_first_launch(Backend::Postgres)).await;
}

// ---------------------------------------------------------------------------
// SQLite's WAL is checkpointed beside the writer.

/// How many events the database file alone (a copy of it without its WAL)
/// holds; `None` while a copy cannot be read (taken mid-checkpoint).
async fn events_in_the_file_alone(db: &TestDb) -> Option<i64> {
    use sqlx::Connection;
    let copy = support::temp_dir();
    std::fs::copy(db.data_dir.join("murmur.db"), copy.join("copy.db")).ok()?;
    let url = format!("sqlite://{}", copy.join("copy.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.ok()?;
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(&mut conn).await.ok();
    let _ = conn.close().await;
    let _ = std::fs::remove_dir_all(&copy);
    n
}

/// The writer's commits reach the database file without the writer
/// checkpointing (it does only past 64 MiB of WAL, and nothing else
/// writes enough here to): the checkpointer copies them in beside it.
#[tokio::test]
async fn the_writers_wal_is_checkpointed_beside_it_sqlite() {
    bounded(async {
        let Some((db, app, shop)) = setup(Backend::Sqlite, &[]).await else { return };
        create_user(&app, &shop, "u1", "Ada", "gold").await;
        for name in ["opened", "paid", "closed"] {
            let r = rest(&app, &shop, "POST", "/v1.1/appusers/u1/events", json!({ "name": name })).await;
            assert_eq!(r.status, 201, "{}", r.body);
        }
        // Each pass of the checkpointer, until the file holds them (the
        // test's bound fails it otherwise).
        let mut passes = app.state.engine.writer.checkpoints().expect("SQLite has a checkpointer");
        while events_in_the_file_alone(&db).await != Some(3) {
            passes.changed().await.expect("the checkpointer runs");
        }
    })
    .await;
}
