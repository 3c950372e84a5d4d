//! Office hours, on both backends: the settings are validated and saved, a
//! user who writes outside the hours gets the office-hours reply once per
//! closed period (through the REST API or the widget) and then no
//! auto-response, inside the hours the auto-response fires, and a starting
//! widget is told whether the team is around and when it is back.

mod support;

use murmur::domain::whisper::from_template;
use serde_json::{json, Value};
use support::{
    shop::{rest, save_whisper, shop, Shop},
    spawn_app,
    widget::Widget,
    Backend, TestApp, TestDb, START_MS,
};

const MINUTE: i64 = 60_000;
/// START_MS is Wednesday 2026-11-18 11:06:40 UTC.
const WED_1300: i64 = START_MS + 113 * MINUTE + 20_000;

async fn save_hours(app: &TestApp, shop: &Shop, tz: &str, wednesday: &str, reply: &str) -> support::Response {
    let fields = [
        ("input[app_id]", shop.app_id.as_str()),
        ("input[enabled]", "on"),
        ("input[time_zone]", tz),
        ("input[monday]", ""),
        ("input[tuesday]", ""),
        ("input[wednesday]", wednesday),
        ("input[thursday]", ""),
        ("input[friday]", ""),
        ("input[saturday]", ""),
        ("input[sunday]", ""),
        ("input[reply]", reply),
    ];
    app.call("apps/office-hours/save", &fields, Some(&shop.owner), &[]).await
}

/// The user's conversation: (role, text) pairs, oldest first.
async fn thread(app: &TestApp, shop: &Shop, user: &str) -> Vec<(String, String)> {
    let r = rest(app, shop, "GET", &format!("/v1.1/appusers/{user}/messages"), Value::Null).await.json();
    r["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_string(), m["text"].as_str().unwrap().to_string()))
        .collect()
}

async fn say(app: &TestApp, shop: &Shop, user: &str, text: &str) {
    let body = json!({"role": "appUser", "type": "text", "text": text});
    let r = rest(app, shop, "POST", &format!("/v1.1/appusers/{user}/messages"), body).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// A widget's welcome for an anonymous device (identity is not needed for that).
async fn welcome(app: &TestApp, shop: &Shop, device: &str) -> Value {
    Widget::start(app, json!({"t": "hello", "app": shop.app_id, "device": device})).await.1
}

async fn office_hours(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    save_whisper(&app, &shop, &from_template(Some("autoresponse"), &shop.owner_id)).await;
    for (i, name) in ["Ada", "Grace"].iter().enumerate() {
        let body = json!({"userId": format!("u{}", i + 1), "givenName": name});
        assert_eq!(rest(&app, &shop, "POST", "/v1.1/appusers", body).await.status, 201);
    }

    // Bad settings are refused, field by field, and change nothing.
    let r = save_hours(&app, &shop, "Mars/Olympus", "13:00-17:00", "Away").await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("time_zone"), "{}", r.body);
    let r = save_hours(&app, &shop, "UTC", "17:00-13:00", "Away").await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("wednesday"), "{}", r.body);
    let v = app.call("apps/office-hours", &[("input[app_id]", &shop.app_id)], Some(&shop.owner), &[]).await.json();
    assert_eq!(v["hours"]["enabled"], false, "{v}");

    // Wednesdays 13:00-17:00 UTC; it is 11:06.
    let reply = "Hi {{ firstName || there }}, we're away until 13:00 UTC.";
    let r = save_hours(&app, &shop, "UTC", "13:00-17:00", reply).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = app.call("apps/office-hours", &[("input[app_id]", &shop.app_id)], Some(&shop.owner), &[]).await.json();
    assert_eq!((v["open_now"].clone(), v["back_at"].clone()), (json!(false), json!(WED_1300)), "{v}");
    let w = welcome(&app, &shop, "device-office-1").await;
    assert_eq!(w["office"], json!({"open": false, "back": WED_1300}), "{w}");

    // Closed: u1 gets the office-hours reply once, and no auto-response.
    say(&app, &shop, "u1", "hello?").await;
    app.clock.advance_ms(MINUTE);
    say(&app, &shop, "u1", "anyone?").await;
    let away = "Hi Ada, we're away until 13:00 UTC.".to_string();
    assert_eq!(
        thread(&app, &shop, "u1").await,
        [("appUser".into(), "hello?".into()), ("appMaker".into(), away.clone()), ("appUser".into(), "anyone?".into())]
    );
    let cards = |u: &str| {
        let (app, shop, u) = (&app, &shop, u.to_string());
        async move {
            let r = rest(app, shop, "GET", &format!("/v1.1/appusers/{u}"), Value::Null).await.json();
            let id = r["appUser"]["_id"].as_str().unwrap().to_string();
            app.state.store.user_deliveries(&id, 10).await.unwrap().len()
        }
    };
    assert_eq!(cards("u1").await, 0, "the office-hours reply stands in for the auto-response");

    // Open: u2's first message gets the auto-response, no office reply.
    app.clock.advance_ms(WED_1300 + 30 * MINUTE - app.state.now());
    assert_eq!(welcome(&app, &shop, "device-office-2").await["office"]["open"], true);
    say(&app, &shop, "u2", "hi there").await;
    assert_eq!(thread(&app, &shop, "u2").await, [("appUser".to_string(), "hi there".to_string())]);
    assert_eq!(cards("u2").await, 1, "the auto-response fired");

    // Closed again at 17:00: a new closed period, a new reply for u1.
    app.clock.advance_ms(4 * 60 * MINUTE);
    say(&app, &shop, "u1", "back again").await;
    let t = thread(&app, &shop, "u1").await;
    assert_eq!(t.len(), 5, "{t:?}");
    assert_eq!(t[4], ("appMaker".to_string(), away));
}

#[tokio::test]
async fn office_hours_sqlite() {
    office_hours(Backend::Sqlite).await;
}

#[tokio::test]
async fn office_hours_postgres() {
    office_hours(Backend::Postgres).await;
}
