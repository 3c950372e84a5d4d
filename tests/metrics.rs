//! `/metrics` (off without `METRICS_TOKEN`, else for the token only, in the
//! Prometheus text format) and request ids, on both backends. Each server
//! keeps its own metrics, so the numbers a test reads are its own.

mod support;

use std::sync::{Arc, Mutex, OnceLock};

use murmur::domain::{
    conditions::{Condition, Operator},
    whisper::{from_template, Trigger},
};
use serde_json::json;
use support::{
    shop::{rest, save_whisper, shop},
    spawn_app,
    widget::Widget,
    Backend, Response, TestApp, TestDb,
};

const TOKEN: &str = "scrape-me_0123456789abcdef";
/// The scheduler's own timer off: the lag test ticks it itself.
const ON: &[(&str, &str)] = &[("METRICS_TOKEN", TOKEN), ("SCHEDULER_PERIOD_MS", "0")];

async fn get_metrics(app: &TestApp, authorization: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = authorization.map(|a| ("Authorization", a)).into_iter().collect();
    app.request("GET", "/metrics", &headers, "").await
}

async fn scrape(app: &TestApp) -> String {
    let r = get_metrics(app, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// The value of one series (`name{labels}` exactly as rendered); 0 when it
/// has not been recorded yet.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap_or_else(|e| panic!("{series}: {v:?}: {e}")))
}

#[tokio::test]
async fn metrics_are_not_found_without_a_token() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(&db, &[]).await;
    assert!(!app.state.metrics.is_on());
    assert_eq!(get_metrics(&app, None).await.status, 404);
    assert_eq!(get_metrics(&app, Some("Bearer anything-you-like-here")).await.status, 404);
    // Nothing is kept either.
    app.request("GET", "/healthz", &[], "").await;
    assert!(app.state.metrics.render(0).is_none());
}

#[tokio::test]
async fn metrics_ask_for_the_token() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(&db, ON).await;
    let wrong_token = format!("Bearer {TOKEN}x");
    let basic = format!("Basic {TOKEN}");
    for authorization in [None, Some("Bearer nope-not-the-token-at-all"), Some(wrong_token.as_str()), Some(&basic)] {
        let r = get_metrics(&app, authorization).await;
        assert_eq!(r.status, 401, "{authorization:?}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "unauthorized", "{}", r.body);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert!(!r.body.contains(TOKEN));
    }
    let r = get_metrics(&app, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let content_type = r.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    assert!(r.body.contains("# TYPE murmur_http_requests_total counter"), "{}", r.body);
    // The refused scrapes were requests like any other.
    let refused = r#"murmur_http_requests_total{method="GET",route="/metrics",status="401"}"#;
    assert_eq!(value(&r.body, refused), 4.0, "{}", r.body);
}

async fn counts_requests_events_deliveries_and_widgets(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, ON).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    let user = "buyer-7f3a9c";
    let r = rest(&app, &shop, "POST", "/v1.1/appusers", json!({"userId": user, "givenName": "Ada"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut paid = from_template(None, &shop.owner_id);
    paid.name = "Thanks".into();
    paid.all_users = true;
    paid.trigger = Trigger::Event("paid".into());
    paid.text = "Thank you!".into();
    save_whisper(&app, &shop, &paid).await;

    // Two widgets of the user open on this instance.
    let (_tab1, welcome) = Widget::start(&app, shop.hello(user, "device-aaaa-1")).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    let (mut tab2, _) = Widget::start(&app, shop.hello(user, "device-aaaa-2")).await;

    let before = scrape(&app).await;
    assert_eq!(value(&before, "murmur_widget_connections"), 2.0, "{before}");
    let path = format!("/v1.1/appusers/{user}/events");
    for name in ["viewed", "added", "paid"] {
        let r = rest(&app, &shop, "POST", &path, json!({"name": name})).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = rest(&app, &shop, "POST", "/v1.1/appusers/nobody-here/events", json!({"name": "paid"})).await;
    assert_eq!(r.status, 404, "{}", r.body);
    // The route's template, as the router spells its parameter.
    let events = "/v1.1/appusers/{user_id}/events";
    // "paid" made a card, which the open widgets took.
    assert_eq!(tab2.wait_for("card").await.map(|(c, _)| c["t"].clone()).ok(), Some(json!("card")));

    let tracked =
        |status: u16| format!(r#"murmur_http_requests_total{{method="POST",route="{events}",status="{status}"}}"#);
    let after = scrape(&app).await;
    assert_eq!(value(&after, &tracked(201)) - value(&before, &tracked(201)), 3.0, "{after}");
    assert_eq!(value(&after, &tracked(404)) - value(&before, &tracked(404)), 1.0, "{after}");
    let timed = format!(r#"murmur_http_request_duration_seconds_count{{method="POST",route="{events}"}}"#);
    assert_eq!(value(&after, &timed) - value(&before, &timed), 4.0, "{after}");
    // Routes by their templates: no user id, no app id in any series.
    assert!(!after.contains(user) && !after.contains("nobody-here"), "{after}");
    assert!(!after.contains(&shop.app_id), "{after}");
    // Stored events: the unknown user's was not.
    let ingested = "murmur_events_ingested_total";
    assert_eq!(value(&after, ingested) - value(&before, ingested), 3.0, "{after}");
    // Every event job (the refused one too) went through a group commit.
    let jobs = r#"murmur_commit_batch_size_sum{kind="events"}"#;
    assert_eq!(value(&after, jobs) - value(&before, jobs), 4.0, "{after}");
    assert!(value(&after, r#"murmur_commit_duration_seconds_count{kind="events"}"#) >= 1.0, "{after}");
    // The card: made, and sent to the widgets open here.
    let made = r#"murmur_deliveries_created_total{source="whisper"}"#;
    let sent = r#"murmur_deliveries_sent_total{channel="widget"}"#;
    assert_eq!(value(&after, made) - value(&before, made), 1.0, "{after}");
    assert_eq!(value(&after, sent) - value(&before, sent), 1.0, "{after}");
    assert_eq!(value(&after, "murmur_widget_connections"), 2.0, "{after}");
    let (_tab3, _) = Widget::start(&app, shop.hello(user, "device-aaaa-3")).await;
    assert_eq!(value(&scrape(&app).await, "murmur_widget_connections"), 3.0);
}

#[tokio::test]
async fn counts_requests_events_deliveries_and_widgets_on_sqlite() {
    counts_requests_events_deliveries_and_widgets(Backend::Sqlite).await;
}

#[tokio::test]
async fn counts_requests_events_deliveries_and_widgets_on_postgres() {
    counts_requests_events_deliveries_and_widgets(Backend::Postgres).await;
}

async fn worker_lag_is_how_late_the_oldest_due_item_is(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, ON).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    let r = rest(&app, &shop, "POST", "/v1.1/appusers", json!({"userId": "u1", "properties": {"plan": "free"}})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Activating a property-match whisper makes every user due now.
    let mut gold = from_template(None, &shop.owner_id);
    gold.name = "Gold".into();
    gold.trigger = Trigger::PropertyMatch;
    gold.all_users = false;
    gold.conditions = vec![Condition { property: "plan".into(), operator: Operator::Is, value: "gold".into() }];
    gold.text = "Welcome to gold".into();
    save_whisper(&app, &shop, &gold).await;
    let lag = |worker: &str| format!(r#"murmur_worker_lag_seconds{{worker="{worker}"}}"#);

    app.clock.advance_ms(90_000);
    app.state.engine.measure_lag().await;
    let text = scrape(&app).await;
    assert_eq!(value(&text, &lag("scheduler")), 90.0, "{text}");
    for idle in ["sends", "email", "push"] {
        assert!(text.contains(&format!("{} 0", lag(idle))), "{idle}: {text}");
    }
    // The tick works the user off (not a match: nothing is due any more).
    app.state.engine.run_due().await.unwrap();
    app.state.engine.measure_lag().await;
    assert_eq!(value(&scrape(&app).await, &lag("scheduler")), 0.0);
}

#[tokio::test]
async fn worker_lag_on_sqlite() {
    worker_lag_is_how_late_the_oldest_due_item_is(Backend::Sqlite).await;
}

#[tokio::test]
async fn worker_lag_on_postgres() {
    worker_lag_is_how_late_the_oldest_due_item_is(Backend::Postgres).await;
}

/// Every log line of the process, for the test that reads them.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber in this test binary");
        logs
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn requests_carry_an_id_in_the_response_and_the_logs() {
    let logs = logs();
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(&db, &[]).await;
    let id_of = |r: &Response| r.header("x-request-id").unwrap_or_else(|| panic!("no request id: {r:?}")).to_string();

    // A safe id is kept.
    let r = app.request("GET", "/healthz", &[("X-Request-Id", "edge-4f2a_B9")], "").await;
    assert_eq!(id_of(&r), "edge-4f2a_B9");
    let longest = "a".repeat(64);
    assert_eq!(id_of(&app.request("GET", "/healthz", &[("X-Request-Id", &longest)], "").await), longest);
    // Anything else is replaced by a new one; none given, one is made.
    let too_long = "a".repeat(65);
    let mut made = vec![];
    for given in [Some("has space"), Some("semi;colon"), Some("quote\"d"), Some(too_long.as_str()), None] {
        let headers: Vec<(&str, &str)> = given.map(|g| ("X-Request-Id", g)).into_iter().collect();
        let id = id_of(&app.request("GET", "/healthz", &headers, "").await);
        assert!(Some(id.as_str()) != given, "{id}");
        assert!(id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        made.push(id);
    }
    made.sort();
    made.dedup();
    assert_eq!(made.len(), 5, "every made id is new");
    // Other routes (a page, the REST API, a miss) carry one too.
    for path in ["/setup", "/v1.1/appusers/x", "/no/such/page"] {
        let r = app.request("GET", path, &[("X-Request-Id", "same-everywhere")], "").await;
        assert_eq!(id_of(&r), "same-everywhere", "{path}");
    }

    // What the request logs shows its id.
    app.state.health.close().await;
    let r = app.request("GET", "/healthz", &[("X-Request-Id", "trace-me-0042")], "").await;
    assert_eq!((r.status, id_of(&r).as_str()), (503, "trace-me-0042"));
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let line = text.lines().find(|l| l.contains("health check failed") && l.contains("trace-me-0042"));
    assert!(line.is_some(), "no log line of the request shows its id:\n{text}");
    let line = line.unwrap();
    assert!(line.contains("route=/healthz"), "{line}");
}
