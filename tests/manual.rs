//! Manual messages through the dashboard's server functions and the
//! widget's WebSocket, on both backends: a selection gets the message live
//! (online) or at the next visit (offline), a segment is evaluated at send
//! time, scheduled sends wait for the app's time, a stop cancels what is
//! pending for good, "has not received" excludes earlier recipients, the
//! list searches by title and sender, bad input changes nothing; recipients
//! fixed in chunks resume after an interruption without doubles; and on
//! PostgreSQL two instances running one scheduled send deliver it once.

mod support;

use std::time::Duration;

use murmur::{
    domain::{
        conditions::{Condition, Operator},
        manual::{Audience, Kind, MessageDraft},
    },
    storage::{manual::FIX_CHUNK, Store},
};
use serde_json::{json, Value};
use support::{
    shop::{rest, shop, Shop},
    spawn_app,
    widget::Widget,
    Backend, TestApp, TestDb,
};

const TEST_LIMIT: Duration = Duration::from_secs(240);
/// The tests run the send worker themselves.
const MANUAL: &[(&str, &str)] = &[("SCHEDULER_PERIOD_MS", "0")];

async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, test).await.expect("the test did not finish in time");
}

async fn setup(backend: Backend) -> Option<(TestDb, TestApp, Shop)> {
    let db = TestDb::new(backend).await?;
    let app = spawn_app(&db, MANUAL).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    Some((db, app, shop))
}

fn draft(shop: &Shop, title: &str, audience: Audience) -> MessageDraft {
    MessageDraft {
        title: title.into(),
        sender_id: shop.owner_id.clone(),
        kind: Kind::Chat,
        body: "Hello {{ firstName || there }}, **news**".into(),
        audience,
        push: false,
    }
}

/// Saves a message through the composer's server function.
async fn save(app: &TestApp, shop: &Shop, id: &str, d: &MessageDraft, mode: &str, at: &str) -> support::Response {
    let draft = serde_json::to_string(d).unwrap();
    app.call(
        "messages/save",
        &[
            ("input[app_id]", &shop.app_id),
            ("input[message_id]", id),
            ("input[draft]", &draft),
            ("input[mode]", mode),
            ("input[send_at]", at),
        ],
        Some(&shop.owner),
        &[],
    )
    .await
}

async fn send_now(app: &TestApp, shop: &Shop, d: &MessageDraft) -> String {
    let r = save(app, shop, "new", d, "now", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json().as_str().unwrap().to_string();
    // The composer started the send in the background; run it here too (the
    // two cannot both fix a chunk) so the test knows it is done.
    app.state.engine.run_sends().await.unwrap();
    wait_state(app, shop, &id, "sent").await;
    id
}

/// A message from the list (the tab it is on), by id.
async fn listed(app: &TestApp, shop: &Shop, tab: &str, search: &str) -> Vec<Value> {
    let r = app
        .call(
            "messages/list",
            &[("input[app_id]", &shop.app_id), ("input[tab]", tab), ("input[search]", search)],
            Some(&shop.owner),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().unwrap().clone()
}

async fn detail(app: &TestApp, shop: &Shop, id: &str) -> Value {
    let r = app
        .call(
            "messages/detail",
            &[("input[app_id]", &shop.app_id), ("input[message_id]", id), ("input[users]", "")],
            Some(&shop.owner),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// Waits (bounded) until the message reaches `state`: the background send
/// may still hold the last chunk.
async fn wait_state(app: &TestApp, shop: &Shop, id: &str, state: &str) {
    for _ in 0..200 {
        if detail(app, shop, id).await["summary"]["state"] == state {
            return;
        }
        app.state.engine.run_sends().await.unwrap();
        tokio::task::yield_now().await;
    }
    panic!("message {id} never reached {state}");
}

/// Waits (bounded) until the message's stats show `key` = `want`: a send
/// started by "Send now" runs in the background too, and may hold an email
/// attempt that the test's own run found claimed.
async fn wait_stat(app: &TestApp, shop: &Shop, id: &str, key: &str, want: i64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let d = detail(app, shop, id).await;
        if d["summary"][key] == want {
            return d;
        }
        // Lets the background attempt finish and record its outcome.
        app.state.engine.run_email().await.unwrap();
        tokio::task::yield_now().await;
    }
    panic!("{key} of {id} never reached {want}: {}", detail(app, shop, id).await);
}

async fn user(app: &TestApp, shop: &Shop, user_id: &str, props: Value) -> String {
    let mut body = props.clone();
    body["userId"] = json!(user_id);
    let mut r = rest(app, shop, "POST", "/v1.1/appusers", body).await;
    if r.status == 409 {
        r = rest(app, shop, "PUT", &format!("/v1.1/appusers/{user_id}"), props).await;
    }
    assert!(r.status == 200 || r.status == 201, "{}", r.body);
    r.json()["appUser"]["_id"].as_str().unwrap().to_string()
}

/// `YYYY-MM-DDTHH:MM` (UTC, the zone of an app without office hours), an
/// hour from the test clock's now, rounded down to the minute.
fn in_an_hour(app: &TestApp) -> String {
    use murmur::server::Clock;
    let at = app.clock.now_ms() + 3_600_000;
    let t = jiff::Timestamp::from_millisecond(at).unwrap().to_zoned(jiff::tz::TimeZone::UTC).datetime();
    t.strftime("%Y-%m-%dT%H:%M").to_string()
}

async fn widget(app: &TestApp, shop: &Shop, user_id: &str) -> (Widget, Value) {
    let (w, welcome) = Widget::start(app, shop.hello(user_id, &format!("dev-{user_id}"))).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    (w, welcome)
}

fn cards_of(welcome: &Value) -> Vec<Value> {
    welcome["cards"].as_array().cloned().unwrap_or_default()
}

async fn count(store: &Store, sql: &str, bind: &str) -> i64 {
    match store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).bind(bind).fetch_one(p).await.unwrap(),
        Store::Postgres(p) => sqlx::query_scalar(sql).bind(bind).fetch_one(p).await.unwrap(),
    }
}

// ---------------------------------------------------------------------------

async fn selection_live_and_later(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend).await else { return };
    let ann = user(&app, &shop, "ann", json!({"givenName": "Ann"})).await;
    let bob = user(&app, &shop, "bob", json!({"givenName": "Bob"})).await;
    let _cy = user(&app, &shop, "cy", json!({})).await;
    let (mut ann_w, _) = widget(&app, &shop, "ann").await;

    let id =
        send_now(&app, &shop, &draft(&shop, "Hi both", Audience::Users { ids: vec![ann.clone(), bob.clone()] })).await;
    // Ann is online: the card comes live, personalised and styled.
    let (card, _) = ann_w.wait_for("card").await.expect("Ann's card");
    assert!(card["id"].as_str().unwrap().starts_with('m'));
    let html = card["card"]["html"].as_str().unwrap();
    assert!(html.contains("Hello Ann") && html.contains("<strong>news</strong>"), "{html}");
    // Bob is offline: pending, not on his profile yet.
    let d = detail(&app, &shop, &id).await;
    assert_eq!(d["summary"]["recipients"], 2);
    assert_eq!(d["summary"]["sent"], 1);
    assert_eq!(d["summary"]["pending"], 1);
    let profile = |u: String| {
        let app = &app;
        let shop = &shop;
        async move {
            app.call("users/profile", &[("input[app_id]", &shop.app_id), ("input[user]", &u)], Some(&shop.owner), &[])
                .await
                .json()
        }
    };
    assert_eq!(profile(bob.clone()).await["manual"].as_array().unwrap().len(), 0, "pending is not shown");
    assert_eq!(profile(ann.clone()).await["manual"][0][1], "Hi both");
    // Bob's next visit shows it, once.
    let (mut bob_w, welcome) = widget(&app, &shop, "bob").await;
    let cards = cards_of(&welcome);
    assert_eq!(cards.len(), 1, "{welcome}");
    assert!(cards[0]["card"]["html"].as_str().unwrap().contains("Hello Bob"));
    assert_eq!(profile(bob.clone()).await["manual"][0][1], "Hi both");
    // Seen and replied are counted; the reply is in the conversation.
    let card_id = cards[0]["id"].as_str().unwrap().to_string();
    bob_w.send(json!({"t": "seen", "id": card_id})).await;
    bob_w.send(json!({"t": "reply", "text": "Thanks!", "card": card_id})).await;
    bob_w.wait_for("message").await.expect("the reply, echoed");
    bob_w.sync().await;
    let d = detail(&app, &shop, &id).await;
    assert_eq!(d["summary"]["sent"], 2);
    assert_eq!(d["summary"]["seen"], 1, "{d}");
    assert_eq!(d["summary"]["replied"], 1, "{d}");
    assert_eq!(d["replied_users"][0]["id"], bob.as_str(), "the conversation it started");
    assert_eq!(d["conversations"][0][0], bob.as_str(), "{d}");
    assert!(d["conversations"][0][1].as_str().is_some_and(|c| !c.is_empty()));
    // A second visit does not bring it twice.
    let (_w2, welcome) = widget(&app, &shop, "bob").await;
    assert_eq!(cards_of(&welcome).len(), 1);
    // Nobody else got it.
    assert_eq!(count(&app.state.store, "SELECT COUNT(*) FROM message_deliveries WHERE message_id = $1", &id).await, 2);
}

async fn segment_at_send_time_and_stop(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend).await else { return };
    for i in 0..5 {
        user(&app, &shop, &format!("gold{i}"), json!({"properties": {"plan": "gold"}})).await;
    }
    user(&app, &shop, "silver", json!({"properties": {"plan": "silver"}})).await;
    let gold = vec![Condition { property: "plan".into(), operator: Operator::Is, value: "gold".into() }];
    let (mut online, _) = widget(&app, &shop, "gold0").await;
    let id = send_now(
        &app,
        &shop,
        &draft(&shop, "Gold news", Audience::Segment { conditions: gold.clone(), not_received: vec![] }),
    )
    .await;
    online.wait_for("card").await.expect("the online gold user's card");
    let d = detail(&app, &shop, &id).await;
    assert_eq!(d["summary"]["recipients"], 5);
    // Silver turns gold after the send: never gets it.
    user(&app, &shop, "silver", json!({"properties": {"plan": "gold"}})).await;
    let (_w, welcome) = widget(&app, &shop, "silver").await;
    assert!(cards_of(&welcome).is_empty(), "{welcome}");

    // Stop: the four pending are cancelled; what was delivered stays counted.
    let stop = |id: String| {
        let app = &app;
        let shop = &shop;
        async move {
            app.call(
                "messages/stop",
                &[("input[app_id]", &shop.app_id), ("input[message_id]", &id), ("input[users]", "")],
                Some(&shop.owner),
                &[],
            )
            .await
        }
    };
    assert_eq!(stop(id.clone()).await.status, 200);
    let d = detail(&app, &shop, &id).await;
    assert_eq!(d["summary"]["state"], "stopped");
    assert_eq!(d["summary"]["sent"], 1);
    assert_eq!(d["summary"]["cancelled"], 4);
    assert_eq!(d["stoppable"], false);
    let (_w, welcome) = widget(&app, &shop, "gold1").await;
    assert!(cards_of(&welcome).is_empty(), "a stopped message reaches nobody new: {welcome}");
    // It can never be resumed or stopped again, nor edited.
    assert_eq!(stop(id.clone()).await.status, 409);
    let r = save(&app, &shop, &id, &draft(&shop, "Again", Audience::default()), "now", "").await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(listed(&app, &shop, "stopped", "").await.iter().any(|m| m["id"] == id.as_str()));

    // "Has not received": gold users who did not get the first (all but gold0).
    let again = send_now(
        &app,
        &shop,
        &draft(&shop, "Gold news again", Audience::Segment { conditions: gold, not_received: vec![id.clone()] }),
    )
    .await;
    let d = detail(&app, &shop, &again).await;
    assert_eq!(d["summary"]["recipients"], 5, "gold1..4 and the new gold user: {d}");
    let got: Vec<&str> =
        d["recipients"].as_array().unwrap().iter().map(|r| r["app_user_id"].as_str().unwrap()).collect();
    let gold0 = app.state.store.app_user(&shop.app_id, "gold0").await.unwrap().unwrap().id;
    assert!(!got.contains(&gold0.as_str()));
}

async fn scheduling_list_and_bad_input(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend).await else { return };
    user(&app, &shop, "ann", json!({})).await;
    // Scheduled for 10:00 in the app's zone (UTC: no office hours set).
    let local = in_an_hour(&app);
    let r = save(&app, &shop, "new", &draft(&shop, "Later", Audience::default()), "at", &local).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json().as_str().unwrap().to_string();
    assert_eq!(app.state.engine.run_sends().await.unwrap(), 0, "not yet");
    assert!(listed(&app, &shop, "scheduled", "").await.iter().any(|m| m["id"] == id.as_str()));
    app.clock.advance_ms(3_660_000);
    assert_eq!(app.state.engine.run_sends().await.unwrap(), 1);
    assert_eq!(detail(&app, &shop, &id).await["summary"]["recipients"], 1);
    assert_eq!(app.state.engine.run_sends().await.unwrap(), 0, "once");

    // Drafts; search by title or sender name, any case.
    let r = save(&app, &shop, "new", &draft(&shop, "Spring sale", Audience::default()), "draft", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let drafts = listed(&app, &shop, "draft", "SPRING").await;
    assert_eq!(drafts.len(), 1);
    assert_eq!(listed(&app, &shop, "draft", "autumn").await.len(), 0);
    let owner_name = drafts[0]["sender_name"].as_str().unwrap().to_string();
    let part = &owner_name[1..owner_name.len().min(4)];
    assert_eq!(listed(&app, &shop, "sent", part).await.len(), 1, "found by part of the sender's name");
    assert_eq!(listed(&app, &shop, "sent", "100%_").await.len(), 0, "wildcards are literal");

    // Bad input: a clear field error, nothing written.
    let before = listed(&app, &shop, "draft", "").await.len();
    let r = save(&app, &shop, "new", &draft(&shop, " ", Audience::default()), "now", "").await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r =
        save(&app, &shop, "new", &draft(&shop, "x", Audience::Users { ids: vec!["abcdef".into()] }), "now", "").await;
    assert_eq!(r.status, 422, "a user of no app: {}", r.body);
    let r = save(&app, &shop, "new", &draft(&shop, "x", Audience::default()), "at", "yesterday").await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = save(&app, &shop, "new", &draft(&shop, "x", Audience::default()), "at", "2020-01-01T10:00").await;
    assert_eq!(r.status, 422, "the past: {}", r.body);
    let mut email = draft(&shop, "x", Audience::default());
    email.kind = Kind::Email;
    let r = save(&app, &shop, "new", &email, "now", "").await;
    assert_eq!(r.status, 422, "email without SMTP settings: {}", r.body);
    assert_eq!(listed(&app, &shop, "draft", "").await.len(), before);
    assert_eq!(listed(&app, &shop, "scheduled", "").await.len(), 0);

    // Another app's teammate sees none of it.
    let other = other_app(&app, &shop).await;
    let r = app
        .call(
            "messages/detail",
            &[("input[app_id]", &other.0), ("input[message_id]", &id), ("input[users]", "")],
            Some(&other.1),
            &[],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
}

/// A second app of the same owner: a message id of the first app is not
/// found through it.
async fn other_app(app: &TestApp, shop: &Shop) -> (String, String) {
    let created = app.call("apps/create", &[("input[name]", "Other")], Some(&shop.owner), &[]).await.json();
    (created["app"]["id"].as_str().unwrap().to_string(), shop.owner.clone())
}

async fn chunks_resume_without_doubles(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend).await else { return };
    let n = FIX_CHUNK as usize * 2 + 17;
    seed_users(&app.state.store, &shop.app_id, n).await;
    let r = save(&app, &shop, "new", &draft(&shop, "Everyone", Audience::default()), "at", &in_an_hour(&app)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json().as_str().unwrap().to_string();
    use murmur::server::Clock;
    app.clock.advance_ms(3_660_000);
    // One chunk, then an "interruption": the message stays `sending`.
    let q = murmur::storage::manual::RecipientQuery {
        users: None,
        conditions: app.state.store.compile_conditions(&[], 0, murmur::storage::manual::RECIPIENT_FIRST_PARAM),
        not_received: vec![],
        email: false,
    };
    let now = app.clock.now_ms();
    let step = app.state.store.fix_recipients(&id, now, &q, now).await.unwrap();
    assert_eq!(step, murmur::storage::manual::FixStep::More);
    assert_eq!(detail(&app, &shop, &id).await["summary"]["state"], "sending");
    // The worker resumes after the chunk committed.
    assert_eq!(app.state.engine.run_sends().await.unwrap(), 1);
    let d = detail(&app, &shop, &id).await;
    assert_eq!(d["summary"]["recipients"], n as i64);
    let distinct = count(
        &app.state.store,
        "SELECT COUNT(DISTINCT app_user_id) FROM message_deliveries WHERE message_id = $1",
        &id,
    )
    .await;
    assert_eq!(distinct, n as i64);
}

async fn seed_users(store: &Store, app_id: &str, n: usize) {
    let sql = "INSERT INTO app_users (id, app_id, user_id, signed_up_at, properties, created_at, updated_at) \
               VALUES ($1, $2, $3, 0, '{}', 0, 0)";
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        match store {
            Store::Sqlite(p) => {
                let mut tx = p.begin().await.unwrap();
                for i in chunk {
                    let sql = sql.replace("'{}'", "jsonb('{}')");
                    sqlx::query(&sql)
                        .bind(format!("{i:024x}"))
                        .bind(app_id)
                        .bind(format!("seed{i}"))
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
            Store::Postgres(p) => {
                let mut tx = p.begin().await.unwrap();
                for i in chunk {
                    sqlx::query(sql)
                        .bind(format!("{i:024x}"))
                        .bind(app_id)
                        .bind(format!("seed{i}"))
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
        }
    }
}

/// A stop during a big send: the send never finishes as `sent`, nothing
/// pending is published after the stop commits, and what the widgets got
/// is exactly what the stats count as sent.
async fn stop_during_a_big_send(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend).await else { return };
    let n = FIX_CHUNK as usize * 3;
    seed_users(&app.state.store, &shop.app_id, n).await;
    // Online users spread over the chunks (ids are in seed order).
    let mut widgets = vec![];
    for i in (0..n).step_by(n / 12) {
        widgets.push(widget(&app, &shop, &format!("seed{i}")).await.0);
    }
    let r = save(&app, &shop, "new", &draft(&shop, "Oops", Audience::default()), "at", &in_an_hour(&app)).await;
    let id = r.json().as_str().unwrap().to_string();
    app.clock.advance_ms(3_660_000);
    // One chunk fixed, then the stop commits, then the worker goes on.
    let q = murmur::storage::manual::RecipientQuery {
        users: None,
        conditions: app.state.store.compile_conditions(&[], 0, murmur::storage::manual::RECIPIENT_FIRST_PARAM),
        not_received: vec![],
        email: false,
    };
    use murmur::server::Clock;
    let now = app.clock.now_ms();
    app.state.store.fix_recipients(&id, now, &q, now).await.unwrap();
    let fields = [("input[app_id]", shop.app_id.as_str()), ("input[message_id]", id.as_str()), ("input[users]", "")];
    let stopped = app.call("messages/stop", &fields, Some(&shop.owner), &[]);
    let (stopped, worker) = tokio::join!(stopped, app.state.engine.run_sends());
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    worker.unwrap();
    assert_eq!(app.state.engine.run_sends().await.unwrap(), 0, "a stopped send never finishes");
    let d = detail(&app, &shop, &id).await;
    assert_eq!(d["summary"]["state"], "stopped");
    assert_eq!(d["summary"]["pending"], 0, "{d}");
    // Whatever the widgets received is what was counted as sent, and
    // nothing arrives after the stop.
    let mut received = 0;
    for w in &mut widgets {
        w.send(json!({"t": "ping"})).await;
        loop {
            let v = w.next_any().await.expect("the pong");
            match v["t"].as_str() {
                Some("pong") => break,
                Some("card") => received += 1,
                _ => {}
            }
        }
    }
    let sent = d["summary"]["sent"].as_i64().unwrap();
    assert_eq!(received, sent, "{d}");
    // A recipient of a later chunk who comes online now gets nothing.
    let user = format!("seed{}", n - 1);
    let mut hello = shop.hello(&user, "late-device");
    hello["jwt"] = json!(shop.token_with(&user, &shop.identity, json!(now / 1000 + 3600)));
    let (_w, welcome) = Widget::start(&app, hello).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    assert!(cards_of(&welcome).is_empty(), "{welcome}");
}

/// Email to a segment over SMTP (the tests' own sink): only users with an
/// address who have not unsubscribed; personalised; a transient refusal is
/// retried after the backoff (the clock moves), a permanent one fails the
/// delivery; the unsubscribe link works and keeps the user out of the next.
async fn email_to_a_segment(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend).await else { return };
    let sink = support::smtp::SmtpSink::start().await;
    let port = sink.port().to_string();
    let r = app
        .call(
            "apps/smtp/save",
            &[
                ("input[app_id]", &shop.app_id),
                ("input[host]", "127.0.0.1"),
                ("input[port]", &port),
                ("input[security]", "none"),
                ("input[username]", ""),
                ("input[password]", ""),
                ("input[from_address]", "team@shop.example"),
            ],
            Some(&shop.owner),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    user(&app, &shop, "ann", json!({"givenName": "Ann", "email": "ann@example.com", "properties": {"plan": "gold"}}))
        .await;
    user(&app, &shop, "bob", json!({"givenName": "Bob", "email": "bob@example.com", "properties": {"plan": "gold"}}))
        .await;
    user(&app, &shop, "cy", json!({"givenName": "Cy", "properties": {"plan": "gold"}})).await;
    user(&app, &shop, "dee", json!({"email": "dee@example.com", "properties": {"plan": "free"}})).await;
    let gold = vec![Condition { property: "plan".into(), operator: Operator::Is, value: "gold".into() }];
    let mut d = draft(&shop, "Gold news", Audience::Segment { conditions: gold.clone(), not_received: vec![] });
    d.kind = Kind::Email;
    // The first attempt of one of them is refused for now (451).
    sink.fail_next(support::smtp::Stage::MailFrom, 1, 451);
    let id = send_now(&app, &shop, &d).await;
    app.state.engine.run_email().await.unwrap();
    sink.wait_for(1).await;
    let dd = wait_stat(&app, &shop, &id, "sent", 1).await;
    assert_eq!(dd["summary"]["recipients"], 2, "gold users with an address: {dd}");
    assert_eq!(dd["summary"]["pending"], 1, "one waits for its retry: {dd}");
    // Before the backoff nothing is retried; after it, the retry goes out.
    app.state.engine.run_email().await.unwrap();
    assert_eq!(sink.messages().len(), 1);
    app.clock.advance_ms(61_000);
    app.state.engine.run_email().await.unwrap();
    let got2 = sink.wait_for(2).await;
    wait_stat(&app, &shop, &id, "sent", 2).await;
    let mail = got2.iter().find(|m| m.to.iter().any(|t| t.contains("ann@"))).unwrap();
    assert!(mail.data.contains("Hello Ann"), "{}", mail.data);
    // Ann unsubscribes through the link in her mail.
    let link = support::smtp::header(&mail.data, "List-Unsubscribe").unwrap();
    let link = link.trim().trim_start_matches('<').trim_end_matches('>').to_string();
    let path = link.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
    let r = app
        .request("POST", &path, &[("Content-Type", "application/x-www-form-urlencoded")], "List-Unsubscribe=One-Click")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ann = app.state.store.app_user(&shop.app_id, "ann").await.unwrap().unwrap();
    assert_eq!(ann.properties.0.get("unsubscribedFromEmails"), Some(&json!(true)));
    // The next email skips her; a permanent refusal fails Bob's for good.
    sink.fail_next(support::smtp::Stage::RcptTo, 1, 550);
    d.title = "More gold news".into();
    let id2 = send_now(&app, &shop, &d).await;
    let dd = wait_stat(&app, &shop, &id2, "failed", 1).await;
    assert_eq!(dd["summary"]["recipients"], 1, "Ann unsubscribed: {dd}");
    assert_eq!(dd["summary"]["pending"], 0, "{dd}");
    assert_eq!(sink.messages().len(), 2, "nothing more was sent");
}

/// Two instances on one PostgreSQL database run the same due send at once:
/// every recipient gets exactly one delivery, and the send finishes once.
#[tokio::test]
async fn two_instances_send_once_postgres() {
    bounded(async {
        let Some(db) = TestDb::new(Backend::Postgres).await else { return };
        let a = spawn_app(&db, MANUAL).await;
        let owner = a.setup_owner().await;
        let shop = shop(&a, &owner, "Shop").await;
        let b = spawn_app(&db, MANUAL).await;
        let n = FIX_CHUNK as usize + 100;
        seed_users(&a.state.store, &shop.app_id, n).await;
        let r = save(&a, &shop, "new", &draft(&shop, "Once", Audience::default()), "at", &in_an_hour(&a)).await;
        let id = r.json().as_str().unwrap().to_string();
        a.clock.advance_ms(3_660_000);
        b.clock.advance_ms(3_660_000);
        let (ra, rb) = tokio::join!(a.state.engine.run_sends(), b.state.engine.run_sends());
        let finished = ra.unwrap() + rb.unwrap();
        // One of them may find the last chunk taken and leave it: run again until done.
        let finished = finished + a.state.engine.run_sends().await.unwrap();
        assert_eq!(finished, 1, "the send finished once");
        let total = count(&a.state.store, "SELECT COUNT(*) FROM message_deliveries WHERE message_id = $1", &id).await;
        assert_eq!(total, n as i64);
        assert_eq!(detail(&a, &shop, &id).await["summary"]["recipients"], n as i64);
    })
    .await;
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                bounded(super::$name(Backend::Sqlite)).await;
            }
            #[tokio::test]
            async fn postgres() {
                bounded(super::$name(Backend::Postgres)).await;
            }
        }
    };
}

both!(selection_live_and_later);
both!(segment_at_send_time_and_stop);
both!(scheduling_list_and_bad_input);
both!(chunks_resume_without_doubles);
both!(stop_during_a_big_send);
both!(email_to_a_segment);
