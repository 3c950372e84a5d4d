//! Recall, on both backends, through the dashboard's server functions and
//! the widget's WebSocket: a pending card and a sent-but-unseen card are
//! cancelled, a seen card is refused; an open widget is told at once
//! (`{"t":"recall","ids":[…]}`), a (re)starting widget is not shown the
//! card, and a late "seen" does not bring it back; a whisper's recall
//! pauses it, a manual message's stops it; on two PostgreSQL instances a
//! widget on B hears of a recall made on A.

mod support;

use std::time::Duration;

use murmur::{
    domain::{
        manual::{Audience, Kind, MessageDraft},
        whisper::{from_template, Trigger},
    },
    storage::Store,
};
use serde_json::{json, Value};
use support::{
    shop::{rest, save_message, save_whisper, shop, Shop},
    spawn_app,
    widget::Widget,
    Backend, TestApp, TestDb,
};

const TEST_LIMIT: Duration = Duration::from_secs(180);
/// The tests run the send worker themselves.
const MANUAL: &[(&str, &str)] = &[("SCHEDULER_PERIOD_MS", "0")];

async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, test).await.expect("the test did not finish in time");
}

async fn create_user(app: &TestApp, shop: &Shop, user_id: &str) -> String {
    let r = rest(app, shop, "POST", "/v1.1/appusers", json!({"userId": user_id, "givenName": user_id})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["appUser"]["_id"].as_str().unwrap().to_string()
}

/// An active whisper for everyone, fired by event `event`; its id.
async fn whisper(app: &TestApp, shop: &Shop, event: &str, text: &str) -> String {
    let mut d = from_template(None, &shop.owner_id);
    d.name = format!("On {event}");
    d.all_users = true;
    d.trigger = Trigger::Event(event.into());
    d.text = text.into();
    save_whisper(app, shop, &d).await
}

async fn track(app: &TestApp, shop: &Shop, user: &str, event: &str) {
    let r = rest(app, shop, "POST", &format!("/v1.1/appusers/{user}/events"), json!({"name": event})).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// A recall server function as `session`: the answer.
async fn recall(app: &TestApp, session: &str, what: &str, app_id: &str, id: &str) -> support::Response {
    app.call(&format!("recall/{what}"), &[("input[app_id]", app_id), ("input[id]", id)], Some(session), &[]).await
}

/// A delivery's state and who recalled it (a whisper's or a manual message's).
async fn delivery(s: &Store, id: &str) -> (String, Option<String>, Option<i64>) {
    let table = if id.starts_with('m') { "message_deliveries" } else { "deliveries" };
    let sql = format!("SELECT state, recalled_by, seen_at FROM {table} WHERE id = $1");
    match s {
        Store::Sqlite(p) => sqlx::query_as(&sql).bind(id).fetch_one(p).await.unwrap(),
        Store::Postgres(p) => sqlx::query_as(&sql).bind(id).fetch_one(p).await.unwrap(),
    }
}

/// The ids of the cards a welcome lists.
fn welcome_cards(welcome: &Value) -> Vec<String> {
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    welcome["cards"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

async fn recall_flow(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, MANUAL).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    // Any teammate of the app may recall.
    let tess = app.add_tess(&shop.app_id, &owner).await;
    let store = app.state.store.clone();
    create_user(&app, &shop, "u1").await;
    create_user(&app, &shop, "u2").await;
    whisper(&app, &shop, "go", "Recall me").await;

    // u1's widget is open: the card is sent to it, not seen yet.
    let (mut w, welcome) = Widget::start(&app, shop.hello("u1", "device-recall-01")).await;
    assert!(welcome_cards(&welcome).is_empty());
    track(&app, &shop, "u1", "go").await;
    let (card, _) = w.wait_for("card").await.expect("the card");
    let sent = card["id"].as_str().unwrap().to_string();
    assert_eq!(delivery(&store, &sent).await.0, "sent");
    // u2 is away: their card waits, pending.
    track(&app, &shop, "u2", "go").await;
    let pending: String = match &store {
        Store::Sqlite(p) => sqlx::query_scalar(
            "SELECT d.id FROM deliveries d JOIN app_users u ON u.id = d.app_user_id WHERE u.user_id = 'u2'",
        )
        .fetch_one(p)
        .await
        .unwrap(),
        Store::Postgres(p) => sqlx::query_scalar(
            "SELECT d.id FROM deliveries d JOIN app_users u ON u.id = d.app_user_id WHERE u.user_id = 'u2'",
        )
        .fetch_one(p)
        .await
        .unwrap(),
    };
    assert_eq!(delivery(&store, &pending).await.0, "pending");

    // The sent card is recalled: the open widget is told at once.
    let r = recall(&app, &tess, "card", &shop.app_id, &sent).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (frame, before) = w.wait_for("recall").await.expect("the recall frame");
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(frame, json!({"t": "recall", "ids": [sent]}));
    assert_eq!(delivery(&store, &sent).await, ("cancelled".into(), Some("Tess Mate".into()), None));
    // A second time there is nothing to recall.
    let r = recall(&app, &tess, "card", &shop.app_id, &sent).await;
    assert_eq!(r.status, 409, "{}", r.body);
    // The pending one too; u2's widget, starting later, never shows it.
    let r = recall(&app, &owner, "card", &shop.app_id, &pending).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(delivery(&store, &pending).await.0, "cancelled");
    let (mut w2, welcome) = Widget::start(&app, shop.hello("u2", "device-recall-02")).await;
    assert!(welcome_cards(&welcome).is_empty(), "{welcome}");
    assert_eq!(delivery(&store, &pending).await.0, "cancelled", "the start did not send it");

    // A widget that reports the recalled card seen (it missed the frame)
    // does not bring it back: still cancelled, and a restart does not show it.
    w.send(json!({"t": "seen", "id": sent})).await;
    w.send(json!({"t": "clicked", "id": sent})).await;
    w.sync().await;
    assert_eq!(delivery(&store, &sent).await.0, "cancelled");
    let (_w1b, welcome) = Widget::start(&app, shop.hello("u1", "device-recall-01")).await;
    assert!(welcome_cards(&welcome).is_empty(), "{welcome}");

    // A card the user has seen cannot be recalled.
    whisper(&app, &shop, "go-seen", "Seen me").await;
    track(&app, &shop, "u2", "go-seen").await;
    let (card, _) = w2.wait_for("card").await.expect("the card");
    let seen = card["id"].as_str().unwrap().to_string();
    w2.send(json!({"t": "seen", "id": seen})).await;
    w2.sync().await;
    let r = recall(&app, &tess, "card", &shop.app_id, &seen).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("already seen"), "{}", r.body);
    assert_eq!(delivery(&store, &seen).await.0, "seen");

    // Not another app's card, nor anyone's who is not a teammate of the app.
    let other = support::shop::shop(&app, &owner, "Other").await;
    let r = recall(&app, &owner, "card", &other.app_id, &seen).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = recall(&app, &owner, "card", &shop.app_id, "nope").await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test]
async fn recall_one_card_sqlite() {
    bounded(recall_flow(Backend::Sqlite)).await;
}

#[tokio::test]
async fn recall_one_card_postgres() {
    bounded(recall_flow(Backend::Postgres)).await;
}

/// A whisper's unseen cards, and a manual message's: recalled together,
/// the whisper paused, the message stopped.
async fn bulk_flow(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, MANUAL).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    let store = app.state.store.clone();
    let u1 = create_user(&app, &shop, "u1").await;
    let u2 = create_user(&app, &shop, "u2").await;
    let u3 = create_user(&app, &shop, "u3").await;
    let wid = whisper(&app, &shop, "go", "Everyone").await;
    let (mut w1, _) = Widget::start(&app, shop.hello("u1", "device-bulk-0001")).await;
    let (mut w3, _) = Widget::start(&app, shop.hello("u3", "device-bulk-0003")).await;
    for u in ["u1", "u2", "u3"] {
        track(&app, &shop, u, "go").await;
    }
    let c1 = w1.wait_for("card").await.expect("u1's card").0["id"].as_str().unwrap().to_string();
    let c3 = w3.wait_for("card").await.expect("u3's card").0["id"].as_str().unwrap().to_string();
    w3.send(json!({"t": "seen", "id": c3})).await;
    w3.sync().await;

    let r = recall(&app, &owner, "whisper", &shop.app_id, &wid).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!(2), "u1's sent card and u2's pending one");
    assert_eq!(w1.wait_for("recall").await.expect("u1 is told").0, json!({"t": "recall", "ids": [c1]}));
    assert_eq!(delivery(&store, &c3).await.0, "seen", "u3 saw it: kept");
    let w = store.whisper(&shop.app_id, &wid).await.unwrap().unwrap();
    assert_eq!(w.status, "paused", "the whisper is paused");

    // A manual in-app message: u1 online (sent), u2 offline (pending), u3 online and sees it.
    let draft = MessageDraft {
        title: "Oops".into(),
        sender_id: shop.owner_id.clone(),
        kind: Kind::Chat,
        body: "Wrong price".into(),
        audience: Audience::Users { ids: vec![u1.clone(), u2.clone(), u3.clone()] },
        push: false,
    };
    let mid = save_message(&app, &shop, &draft, "now").await;
    app.state.engine.run_sends().await.unwrap();
    let m1 = w1.wait_for("card").await.expect("u1's message card").0["id"].as_str().unwrap().to_string();
    let m3 = w3.wait_for("card").await.expect("u3's message card").0["id"].as_str().unwrap().to_string();
    w3.send(json!({"t": "seen", "id": m3})).await;
    w3.sync().await;
    let r = recall(&app, &owner, "message", &shop.app_id, &mid).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!(2));
    assert_eq!(w1.wait_for("recall").await.expect("u1 is told").0, json!({"t": "recall", "ids": [m1]}));
    assert_eq!(delivery(&store, &m1).await.0, "cancelled");
    assert_eq!(delivery(&store, &m3).await.0, "seen");
    assert_eq!(store.manual(&shop.app_id, &mid).await.unwrap().unwrap().state, "stopped");
    // u2 starts later: neither card. u1 restarts: neither card either.
    let (_w2, welcome) = Widget::start(&app, shop.hello("u2", "device-bulk-0002")).await;
    assert!(welcome_cards(&welcome).is_empty(), "{welcome}");
    // (A sent manual-message card is listed by `Store::user_deliveries`, which
    // must leave cancelled ones out, as it does for whisper cards.)
    let (_w1b, welcome) = Widget::start(&app, shop.hello("u1", "device-bulk-0001")).await;
    assert!(welcome_cards(&welcome).is_empty(), "a recalled card is listed at a restart: {welcome}");
    // Recalling again finds nothing left.
    let r = recall(&app, &owner, "message", &shop.app_id, &mid).await;
    assert_eq!((r.status, r.json()), (200, json!(0)), "nothing left to recall");
}

#[tokio::test]
async fn recall_a_whisper_and_a_message_sqlite() {
    bounded(bulk_flow(Backend::Sqlite)).await;
}

#[tokio::test]
async fn recall_a_whisper_and_a_message_postgres() {
    bounded(bulk_flow(Backend::Postgres)).await;
}

/// Two instances on one PostgreSQL database: a widget on B loses the card
/// a teammate on A recalls.
#[tokio::test]
async fn recall_reaches_another_instance_postgres() {
    bounded(async {
        let Some(db) = TestDb::new(Backend::Postgres).await else { return };
        let a = spawn_app(&db, MANUAL).await;
        let b = spawn_app(&db, MANUAL).await;
        let owner = a.setup_owner().await;
        let shop = shop(&a, &owner, "Shop").await;
        create_user(&a, &shop, "u1").await;
        whisper(&a, &shop, "go", "Across").await;
        let (mut w, _) = Widget::start(&b, shop.hello("u1", "device-across-01")).await;
        // Tracked on A: the card reaches B's widget through A's notice.
        track(&a, &shop, "u1", "go").await;
        let id = w.wait_for("card").await.expect("the card on B").0["id"].as_str().unwrap().to_string();
        let r = recall(&a, &owner, "card", &shop.app_id, &id).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(w.wait_for("recall").await.expect("B's widget is told").0, json!({"t": "recall", "ids": [id]}));
    })
    .await;
}
