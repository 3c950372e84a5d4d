//! Web Push, both backends: the storage of keys, subscriptions and the push
//! outbox; and the whole path — a widget hands over a subscription, a card
//! made while the user is away goes out as a push through a push service
//! the test runs (which checks VAPID and decrypts with its own RFC 8291
//! code), the card is `sent` via push, a gone subscription is forgotten, a
//! 5xx is retried with backoff — with the clock moved, never slept.

mod support;

use murmur::{
    domain::{
        conditions::{Condition, Operator},
        whisper::{from_template, Trigger, WhisperDraft},
    },
    engine::webpush::{PUSH_BACKOFF_MS, PUSH_GRACE_MS},
    storage::{push::PushKind, AppRow, NewAppUser, NewDelivery, Store},
};
use serde_json::json;
use support::{
    push_service::{FakePushService, Reply},
    shop::{rest, save_message, save_whisper, shop, Shop},
    spawn_app,
    widget::Widget,
    Backend, TestApp, TestDb,
};

fn app(id: &str) -> AppRow {
    AppRow { id: id.into(), name: format!("App {id}"), identity_secret_enc: vec![1, 2, 3], created_at: 1 }
}

fn user(i: usize) -> NewAppUser {
    NewAppUser {
        id: format!("id{i:03}"),
        app_id: "app1".into(),
        user_id: Some(format!("user-{i}")),
        given_name: None,
        surname: None,
        email: None,
        signed_up_at: 1,
        app_version: None,
        app_version_key: None,
        platform: None,
        properties: serde_json::Map::new(),
        now: 1,
    }
}

async fn keys_subscriptions_and_jobs(s: &Store) {
    s.insert_app(&app("app1"), &[]).await.unwrap();
    for i in 1..=3 {
        s.create_app_user(&user(i), &[]).await.unwrap();
    }
    // No keys: push cannot be turned on.
    let p = s.push_settings("app1").await.unwrap().unwrap();
    assert!(!p.enabled && p.public_key.is_none() && p.private_enc.is_none());
    assert!(!s.set_push_enabled("app1", true).await.unwrap());
    assert!(s.push_settings("nope").await.unwrap().is_none());
    assert!(s.set_vapid_keys("app1", "PUBLIC", &[7; 40]).await.unwrap());
    assert!(s.set_push_enabled("app1", true).await.unwrap());
    let p = s.push_settings("app1").await.unwrap().unwrap();
    assert!(p.enabled);
    assert_eq!(p.public_key.as_deref(), Some("PUBLIC"));
    assert_eq!(p.private_enc, Some(vec![7; 40]));
    assert_eq!(s.widget_app("app1").await.unwrap().unwrap().push_key.as_deref(), Some("PUBLIC"));
    assert!(s.set_push_enabled("app1", false).await.unwrap());
    assert_eq!(s.widget_app("app1").await.unwrap().unwrap().push_key, None, "off: the widget is not told");
    assert!(s.set_push_enabled("app1", true).await.unwrap());

    // Subscriptions: the same endpoint again moves to its new user; a user
    // keeps at most ten (the oldest go).
    s.add_push_subscription("app1", "id001", "https://p.example/a", "K", "A", "https://shop.example/", 10)
        .await
        .unwrap();
    s.add_push_subscription("app1", "id002", "https://p.example/a", "K2", "A2", "https://shop.example/x", 20)
        .await
        .unwrap();
    assert!(s.push_subscriptions_of("id001").await.unwrap().is_empty());
    let subs = s.push_subscriptions_of("id002").await.unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!((subs[0].p256dh.as_str(), subs[0].page_url.as_str()), ("K2", "https://shop.example/x"));
    for i in 0..12 {
        s.add_push_subscription(
            "app1",
            "id003",
            &format!("https://p.example/{i}"),
            "K",
            "A",
            "https://s.example/",
            100 + i,
        )
        .await
        .unwrap();
    }
    let subs = s.push_subscriptions_of("id003").await.unwrap();
    assert_eq!(subs.len(), 10);
    assert_eq!(subs[0].endpoint, "https://p.example/11", "newest first");
    assert!(subs.iter().all(|x| x.endpoint != "https://p.example/0" && x.endpoint != "https://p.example/1"));
    assert_eq!(s.push_subscription_count("app1").await.unwrap(), 11);

    // Jobs: only for users with a subscription; queued once.
    s.insert_whisper("w1", "app1", "active", &from_template(Some("announcement"), "t1"), 10).await.unwrap();
    let d = |id: &str, u: &str| NewDelivery {
        id: id.into(),
        app_id: "app1".into(),
        whisper_id: "w1".into(),
        app_user_id: u.into(),
        revision: 1,
        rendered: "{}".into(),
        now: 100,
        sent: false,
    };
    assert_eq!(s.insert_deliveries_batch(&[d("d1", "id001"), d("d2", "id002")]).await.unwrap(), [true, true]);
    let jobs = |v: &[(&str, &str)]| -> Vec<(String, String, String)> {
        v.iter().map(|(d, u)| (d.to_string(), "app1".to_string(), u.to_string())).collect()
    };
    s.queue_push(PushKind::Whisper, &jobs(&[("d1", "id001"), ("d2", "id002")]), 500, 100).await.unwrap();
    s.queue_push(PushKind::Whisper, &jobs(&[("d2", "id002")]), 900, 100).await.unwrap();
    assert_eq!(s.push_jobs_waiting().await.unwrap(), 1, "id001 has no subscription");
    // Not due before its time; claimed once within the window.
    assert!(s.claim_push_jobs(499, 1000, 10).await.unwrap().is_empty());
    let claimed = s.claim_push_jobs(500, 1000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].delivery_id.as_str(), claimed[0].kind.as_str(), claimed[0].attempts), ("d2", "whisper", 1));
    assert!(s.claim_push_jobs(1499, 1000, 10).await.unwrap().is_empty(), "held for the window");
    assert_eq!(s.claim_push_jobs(1500, 1000, 10).await.unwrap()[0].attempts, 2, "retried after it");
    s.push_job_retry("d2", 5000).await.unwrap();
    assert!(s.claim_push_jobs(4999, 1000, 10).await.unwrap().is_empty());
    // Pushed: sent via push, once; the widget cannot mark it again.
    assert!(s.mark_whisper_pushed("d2", 600).await.unwrap());
    assert!(!s.mark_whisper_pushed("d2", 700).await.unwrap());
    let d2 = s.delivery("d2").await.unwrap().unwrap();
    assert_eq!((d2.state.as_str(), d2.sent_at), ("sent", Some(600)));
    assert_eq!(s.sent_via("d2").await.unwrap().as_deref(), Some("push"));
    s.mark_sent(&["d1".to_string()], 650).await.unwrap();
    assert_eq!(s.sent_via("d1").await.unwrap().as_deref(), Some("widget"));
    s.push_job_done("d2").await.unwrap();
    assert_eq!(s.push_jobs_waiting().await.unwrap(), 0);

    // New keys forget every subscription and job of the app.
    s.queue_push(PushKind::Whisper, &jobs(&[("d2", "id002")]), 900, 100).await.unwrap();
    assert!(s.set_vapid_keys("app1", "PUBLIC2", &[8; 40]).await.unwrap());
    assert_eq!(s.push_subscription_count("app1").await.unwrap(), 0);
    assert_eq!(s.push_jobs_waiting().await.unwrap(), 0);
}

fn whisper(shop: &Shop, name: &str, trigger: Trigger, push: bool) -> WhisperDraft {
    let mut d = from_template(None, &shop.owner_id);
    d.name = name.into();
    d.all_users = true;
    d.trigger = trigger;
    d.text = "Hi {{ firstName || there }}, <your> **cart** is waiting.".into();
    d.push = push;
    d
}

/// Waits until the user has no widget open on this instance.
async fn until_offline(app: &TestApp, user: &str) {
    let hub = &app.state.engine.hub;
    let mut departures = hub.departures();
    tokio::time::timeout(std::time::Duration::from_secs(5), departures.wait_for(|_| !hub.is_online(user)))
        .await
        .expect("the widget never left")
        .unwrap();
}

async fn track(app: &TestApp, shop: &Shop, user: &str, event: &str) {
    let r = rest(app, shop, "POST", &format!("/v1.1/appusers/{user}/events"), json!({"name": event})).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

async fn push_path(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Push shop").await;
    let app_ref = [("input[app_id]", shop.app_id.as_str())];
    // Push cannot be on without keys; the owner makes them, then turns it on.
    let on = [("input[app_id]", shop.app_id.as_str()), ("input[enabled]", "true")];
    let r = app.call("apps/push/enabled", &on, Some(&owner), &[]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(app.call("apps/push/keys", &app_ref, Some(&owner), &[]).await.status, 200);
    // The switch's field says on or off, nothing else: refused beside it.
    let garbled = [("input[app_id]", shop.app_id.as_str()), ("input[enabled]", "yes")];
    let r = app.call("apps/push/enabled", &garbled, Some(&owner), &[]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["Field"]["field"], "push", "{}", r.body);
    assert_eq!(app.call("apps/push", &app_ref, Some(&owner), &[]).await.json()["enabled"], false);
    assert_eq!(app.call("apps/push/enabled", &on, Some(&owner), &[]).await.status, 200);
    let view = app.call("apps/push", &app_ref, Some(&owner), &[]).await.json();
    assert_eq!(view["enabled"], true);
    let public_key = view["public_key"].as_str().unwrap().to_string();
    assert!(!view.to_string().contains("private"), "the private key never leaves the server: {view}");

    // The push service runs here, on loopback over http: allowed for tests only.
    app.state.engine.set_push(murmur::server::push::channel(
        app.state.secrets.clone(),
        "mailto:ops@shop.example".into(),
        true,
    ));
    let service = FakePushService::start(vec![]).await;
    service.set_now(app.state.now());
    let browser = service.subscribe();

    // The widget learns the key, and hands over the browser's subscription.
    let (mut w, welcome) = Widget::start(&app, shop.hello("ada", "device-ada-0001")).await;
    assert_eq!(welcome["push"], public_key.as_str());
    let ada = welcome["user"]["id"].as_str().unwrap().to_string();
    let subscription = |endpoint: &str, p256dh: &str, page: &str| json!({"t": "push", "endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": browser.auth}, "page": page});
    for bad in [
        subscription("ftp://push.example/x", &browser.p256dh, "https://shop.example/"),
        subscription(&browser.endpoint, "bm90LWEta2V5", "https://shop.example/"),
        subscription(&browser.endpoint, &browser.p256dh, "javascript:alert(1)"),
    ] {
        w.send(bad).await;
        let (e, _) = w.wait_for("error").await.unwrap();
        assert_eq!(e["code"], "invalid_subscription", "{e}");
    }
    assert_eq!(app.state.store.push_subscription_count(&shop.app_id).await.unwrap(), 0);
    w.send(subscription(&browser.endpoint, &browser.p256dh, "https://shop.example/cart?x=1")).await;
    w.sync().await;
    assert_eq!(app.state.store.push_subscription_count(&shop.app_id).await.unwrap(), 1);

    // Online: the card goes to the widget, and never by push.
    save_whisper(&app, &shop, &whisper(&shop, "Cart nudge", Trigger::Event("item-in-cart".into()), true)).await;
    save_whisper(&app, &shop, &whisper(&shop, "Price drop", Trigger::Event("price-drop".into()), true)).await;
    save_whisper(&app, &shop, &whisper(&shop, "In-app only", Trigger::Event("price-drop".into()), false)).await;
    save_whisper(&app, &shop, &whisper(&shop, "Restock", Trigger::Event("restock".into()), true)).await;
    let r = rest(&app, &shop, "PUT", "/v1.1/appusers/ada", json!({"properties": {"plan": "silver"}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut gold = whisper(&shop, "Gold welcome", Trigger::PropertyMatch, true);
    gold.all_users = false;
    gold.conditions = vec![Condition { property: "plan".into(), operator: Operator::Is, value: "gold".into() }];
    save_whisper(&app, &shop, &gold).await;
    track(&app, &shop, "ada", "item-in-cart").await;
    let (card, _) = w.wait_for("card").await.unwrap();
    app.clock.advance_ms(PUSH_GRACE_MS);
    assert_eq!(app.state.engine.run_push().await.unwrap(), 0);
    assert!(service.received().is_empty());
    assert_eq!(app.state.store.sent_via(card["id"].as_str().unwrap()).await.unwrap().as_deref(), Some("widget"));

    // Away: after the grace period the card goes out as a push, encrypted
    // for the browser, signed with the app's VAPID key; the in-app-only
    // whisper's card waits for the widget.
    drop(w);
    until_offline(&app, &ada).await;
    track(&app, &shop, "ada", "price-drop").await;
    assert_eq!(app.state.engine.run_push().await.unwrap(), 0, "not before the grace period");
    app.clock.advance_ms(PUSH_GRACE_MS);
    service.set_now(app.state.now());
    assert_eq!(app.state.engine.run_push().await.unwrap(), 1);
    let got = service.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].vapid_key, public_key);
    assert_eq!(got[0].claims["sub"], "mailto:ops@shop.example");
    assert_eq!(got[0].header("ttl"), Some("86400"));
    assert_eq!(got[0].header("urgency"), Some("normal"));
    let note: serde_json::Value = serde_json::from_slice(&got[0].payload).unwrap();
    let cards = app.state.store.user_cards(&ada, 10).await.unwrap();
    let (pushed, _) = cards.iter().find(|(_, name)| name == "Price drop").unwrap();
    let (in_app, _) = cards.iter().find(|(_, name)| name == "In-app only").unwrap();
    assert_eq!(note["title"], "Olive Owner");
    assert_eq!(note["body"], "Hi there, <your> cart is waiting.");
    assert_eq!(note["tag"], pushed.id.as_str());
    assert_eq!(note["url"], format!("https://shop.example/cart?x=1#murmur-open={}", pushed.id));
    assert_eq!(app.state.store.sent_via(&pushed.id).await.unwrap().as_deref(), Some("push"));
    assert_eq!(app.state.store.delivery(&pushed.id).await.unwrap().unwrap().state, "sent");
    assert_eq!(app.state.store.delivery(&in_app.id).await.unwrap().unwrap().state, "pending");
    assert_eq!(app.state.store.push_jobs_waiting().await.unwrap(), 0);
    // Nothing more goes out on later ticks.
    app.clock.advance_ms(3_600_000);
    assert_eq!(app.state.engine.run_push().await.unwrap(), 0);
    assert_eq!(service.received().len(), 1);

    // A push service in trouble (503): retried after the backoff, not before.
    service.then(Reply::status(503));
    track(&app, &shop, "ada", "restock").await;
    app.clock.advance_ms(PUSH_GRACE_MS);
    service.set_now(app.state.now());
    assert_eq!(app.state.engine.run_push().await.unwrap(), 0);
    assert_eq!(service.received().len(), 2);
    assert_eq!(app.state.store.push_jobs_waiting().await.unwrap(), 1);
    app.clock.advance_ms(PUSH_BACKOFF_MS[0] - 1);
    assert_eq!(app.state.engine.run_push().await.unwrap(), 0);
    assert_eq!(service.received().len(), 2, "not before the backoff");
    app.clock.advance_ms(1);
    service.set_now(app.state.now());
    assert_eq!(app.state.engine.run_push().await.unwrap(), 1);
    assert_eq!(service.received().len(), 3);

    // The browser unsubscribed (410): the subscription is forgotten, and
    // the card stays in-app.
    // (a property-match whisper this time: ada becomes gold)
    service.unsubscribe(&browser.id);
    let r = rest(&app, &shop, "PUT", "/v1.1/appusers/ada", json!({"properties": {"plan": "gold"}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(app.state.store.user_cards(&ada, 10).await.unwrap().iter().any(|(_, n)| n == "Gold welcome"));
    app.clock.advance_ms(PUSH_GRACE_MS);
    service.set_now(app.state.now());
    assert_eq!(app.state.engine.run_push().await.unwrap(), 0);
    assert_eq!(service.received().last().unwrap().status, 410);
    assert_eq!(app.state.store.push_subscription_count(&shop.app_id).await.unwrap(), 0);
    assert_eq!(app.state.store.push_jobs_waiting().await.unwrap(), 0);
    assert!(service.problems().is_empty(), "{:?}", service.problems());

    // The pushed cards are in the widget when it next opens.
    // (a JWT good from the clock's new time)
    let mut hello = shop.hello("ada", "device-ada-0001");
    hello["jwt"] = shop.token_with("ada", &shop.identity, json!(app.state.now() / 1000 + 3600)).into();
    let (_w, welcome) = Widget::start(&app, hello).await;
    let shown: Vec<&str> = welcome["cards"].as_array().unwrap().iter().filter_map(|c| c["id"].as_str()).collect();
    assert!(shown.contains(&pushed.id.as_str()) && shown.contains(&in_app.id.as_str()), "{shown:?}");
}

/// A manual in-app message sent "also as push" reaches its recipients who
/// are away; one without a subscription, or online, gets it in-app only.
async fn manual_message_push(backend: Backend) {
    use murmur::domain::manual::{Audience, Kind, MessageDraft};
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Push shop").await;
    let app_ref = [("input[app_id]", shop.app_id.as_str())];
    assert_eq!(app.call("apps/push/keys", &app_ref, Some(&owner), &[]).await.status, 200);
    let on = [("input[app_id]", shop.app_id.as_str()), ("input[enabled]", "true")];
    assert_eq!(app.call("apps/push/enabled", &on, Some(&owner), &[]).await.status, 200);
    app.state.engine.set_push(murmur::server::push::channel(
        app.state.secrets.clone(),
        "https://murmur.example".into(),
        true,
    ));
    let service = FakePushService::start(vec![]).await;
    service.set_now(app.state.now());
    let mut ids = vec![];
    let mut open = vec![];
    for name in ["ann", "bob", "cy"] {
        let (mut w, welcome) = Widget::start(&app, shop.hello(name, &format!("device-{name}-0001"))).await;
        ids.push(welcome["user"]["id"].as_str().unwrap().to_string());
        if name != "cy" {
            let b = service.subscribe();
            w.send(json!({"t": "push", "endpoint": b.endpoint, "keys": {"p256dh": b.p256dh, "auth": b.auth},
                          "page": format!("https://shop.example/{name}")}))
                .await;
            w.sync().await;
        }
        if name == "bob" {
            // bob stays online.
            open.push(w);
        }
    }
    until_offline(&app, &ids[0]).await;
    until_offline(&app, &ids[2]).await;
    let draft = MessageDraft {
        title: "Spring sale".into(),
        sender_id: shop.owner_id.clone(),
        kind: Kind::Chat,
        body: "Hello {{ firstName || there }}, **20%** off".into(),
        audience: Audience::Users { ids: ids.clone() },
        push: true,
    };
    save_message(&app, &shop, &draft, "now").await;
    app.state.engine.run_sends().await.unwrap();
    // The composer's own send may still be publishing: wait until bob's
    // widget has the card (the publishing is done).
    open[0].wait_for("card").await.unwrap();
    app.clock.advance_ms(PUSH_GRACE_MS);
    service.set_now(app.state.now());
    assert_eq!(app.state.engine.run_push().await.unwrap(), 1, "ann only: bob is online, cy has no subscription");
    let got = service.received();
    assert_eq!(got.len(), 1);
    let note: serde_json::Value = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!(note["body"], "Hello there, 20% off");
    assert!(note["url"].as_str().unwrap().starts_with("https://shop.example/ann#murmur-open="), "{note}");
    assert_eq!(got[0].claims["sub"], "https://murmur.example");
}

mod backends {
    use super::*;

    #[tokio::test]
    async fn push_path_sqlite() {
        push_path(Backend::Sqlite).await;
    }
    #[tokio::test]
    async fn push_path_postgres() {
        push_path(Backend::Postgres).await;
    }
    #[tokio::test]
    async fn manual_message_push_sqlite() {
        manual_message_push(Backend::Sqlite).await;
    }
    #[tokio::test]
    async fn manual_message_push_postgres() {
        manual_message_push(Backend::Postgres).await;
    }
}

conformance!(sqlite, postgres, super; keys_subscriptions_and_jobs);
