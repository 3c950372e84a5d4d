//! Conversations and the inbox, over HTTP, the widget's WebSocket and the
//! inbox's event stream, on both backends: how conversations start (a user
//! writes first, a teammate starts one, a user answers a card), a user's
//! message reopens a closed one, the REST API lists and posts into them
//! (scoped to the app), the inbox's lists, filters, search and unread
//! counts, and live updates — on two PostgreSQL instances too.

mod support;

use std::time::Duration;

use murmur::domain::whisper::{from_template, Trigger};
use serde_json::{json, Value};
use support::{
    shop::{rest, save_whisper, shop, Shop},
    spawn_app,
    widget::Widget,
    Backend, TestApp, TestDb,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const TEST_LIMIT: Duration = Duration::from_secs(120);

async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, test).await.expect("the test did not finish within 120 s");
}

async fn setup(backend: Backend) -> Option<(TestDb, TestApp, Shop)> {
    let db = TestDb::new(backend).await?;
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    Some((db, app, shop))
}

async fn create_user(app: &TestApp, shop: &Shop, user_id: &str, given: &str) {
    let r = rest(app, shop, "POST", "/v1.1/appusers", json!({"userId": user_id, "givenName": given})).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// A server function call as the owner; its JSON answer (status checked).
async fn call(app: &TestApp, shop: &Shop, endpoint: &str, fields: &[(&str, &str)]) -> Value {
    let r = app.call(endpoint, fields, Some(&shop.owner), &[]).await;
    assert_eq!(r.status, 200, "{endpoint}: {}", r.body);
    r.json()
}

/// The inbox list: `state` open/closed, `filter` all/mine/unassigned.
async fn inbox(app: &TestApp, shop: &Shop, state: &str, filter: &str, search: &str) -> Value {
    call(
        app,
        shop,
        "inbox/list",
        &[
            ("input[app_id]", &shop.app_id),
            ("input[state]", state),
            ("input[filter]", filter),
            ("input[search]", search),
            ("input[after]", ""),
        ],
    )
    .await
}

fn ids(list: &Value) -> Vec<String> {
    list["conversations"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

async fn conversations(app: &TestApp, shop: &Shop, user: &str) -> Vec<Value> {
    let r = rest(app, shop, "GET", &format!("/v1.1/appusers/{user}/conversations"), Value::Null).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["conversations"].as_array().unwrap().clone()
}

async fn set_open(app: &TestApp, shop: &Shop, conversation: &str, open: bool) {
    call(
        app,
        shop,
        "inbox/state",
        &[("app_id", &shop.app_id), ("conversation_id", conversation), ("open", if open { "true" } else { "false" })],
    )
    .await;
}

async fn rest_flow(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend).await else { return };
    create_user(&app, &shop, "u1", "Ada").await;
    assert!(conversations(&app, &shop, "u1").await.is_empty());

    // The user writes first: a conversation starts, open, unassigned, unread by the team.
    let r = rest(&app, &shop, "POST", "/v1.1/appusers/u1/messages", json!({"role": "appUser", "text": "Hello?"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let c1 = r.json()["conversation"]["_id"].as_str().unwrap().to_string();
    app.clock.advance_ms(1000);
    let list = conversations(&app, &shop, "u1").await;
    assert_eq!(list.len(), 1);
    assert_eq!((list[0]["_id"].as_str(), list[0]["state"].as_str()), (Some(c1.as_str()), Some("open")));
    assert_eq!(list[0]["startedBy"], "user");
    assert_eq!(list[0]["messages"][0]["text"], "Hello?");

    // The team answers into that conversation; the user has one unread.
    let path = format!("/v1.1/appusers/u1/conversations/{c1}/messages");
    let r = rest(&app, &shop, "POST", &path, json!({"role": "appMaker", "text": "Hi **Ada**", "name": "Olive"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["conversation"]["unreadCount"], 1);
    assert_eq!(r.json()["message"]["name"], "Olive");
    app.clock.advance_ms(1000);

    // Closed, the user's next message (no conversation named) starts a new one…
    set_open(&app, &shop, &c1, false).await;
    let r =
        rest(&app, &shop, "POST", "/v1.1/appusers/u1/messages", json!({"role": "appUser", "text": "Another thing"}))
            .await;
    let c2 = r.json()["conversation"]["_id"].as_str().unwrap().to_string();
    assert_ne!(c1, c2);
    app.clock.advance_ms(1000);
    // …while writing into the closed one reopens it.
    let r = rest(&app, &shop, "POST", &path, json!({"role": "appUser", "text": "Back to this"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["conversation"]["state"], "open");
    let list = conversations(&app, &shop, "u1").await;
    assert_eq!(list.iter().map(|c| c["_id"].as_str().unwrap()).collect::<Vec<_>>(), [c1.as_str(), c2.as_str()]);
    let texts: Vec<&str> =
        list[0]["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Hello?", "Hi **Ada**", "Back to this"]);

    // Errors are JSON; a conversation is scoped to its user and its app.
    create_user(&app, &shop, "u2", "Grace").await;
    let r = rest(
        &app,
        &shop,
        "POST",
        &format!("/v1.1/appusers/u2/conversations/{c1}/messages"),
        json!({"role": "appUser", "text": "x"}),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "not_found");
    let other = shop_in_same_server(&app, &shop).await;
    create_user(&app, &other, "u1", "Other Ada").await;
    let r = rest(
        &app,
        &other,
        "POST",
        &format!("/v1.1/appusers/u1/conversations/{c1}/messages"),
        json!({"role": "appUser", "text": "x"}),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(conversations(&app, &other, "u1").await.is_empty());
    let r = rest(&app, &shop, "POST", &path, json!({"role": "robot", "text": "x"})).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (400, Some("bad_request")));
    let r = rest(&app, &shop, "GET", "/v1.1/appusers/nobody/conversations", Value::Null).await;
    assert_eq!(r.status, 404);
    let r = app.request("GET", "/v1.1/appusers/u1/conversations", &[], "").await;
    assert_eq!(r.status, 401);
}

async fn shop_in_same_server(app: &TestApp, shop: &Shop) -> Shop {
    support::shop::shop(app, &shop.owner, "Other shop").await
}

#[tokio::test]
async fn rest_flow_sqlite() {
    bounded(rest_flow(Backend::Sqlite)).await;
}

#[tokio::test]
async fn rest_flow_postgres() {
    bounded(rest_flow(Backend::Postgres)).await;
}

async fn inbox_flow(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend).await else { return };
    create_user(&app, &shop, "u1", "Ada").await;
    create_user(&app, &shop, "u2", "Grace").await;
    let post = |user: &'static str, text: &'static str| {
        let (app, shop) = (&app, &shop);
        async move {
            let r = rest(
                app,
                shop,
                "POST",
                &format!("/v1.1/appusers/{user}/messages"),
                json!({"role": "appUser", "text": text}),
            )
            .await;
            assert_eq!(r.status, 201, "{}", r.body);
            app.clock.advance_ms(1000);
            r.json()["conversation"]["_id"].as_str().unwrap().to_string()
        }
    };
    let ada = post("u1", "Where is my parcel?").await;
    let grace = post("u2", "Refund please").await;
    post("u2", "Hello??").await;

    // Newest activity first, with the team's unread counts.
    let open = inbox(&app, &shop, "open", "all", "").await;
    assert_eq!(ids(&open), [grace.as_str(), ada.as_str()]);
    assert_eq!(open["conversations"][0]["unread"], 2);
    assert_eq!(open["conversations"][0]["user_name"], "Grace");
    assert_eq!(open["conversations"][0]["last_text"], "Hello??");
    assert_eq!(open["open_counts"], json!([2, 2, 0]));

    // Search by name and by message text.
    assert_eq!(ids(&inbox(&app, &shop, "open", "all", "ada").await), [ada.as_str()]);
    assert_eq!(ids(&inbox(&app, &shop, "open", "all", "REFUND").await), [grace.as_str()]);
    assert!(ids(&inbox(&app, &shop, "open", "all", "nothing like it").await).is_empty());

    // Opening a conversation reads it; it holds the user's profile.
    let d =
        call(&app, &shop, "inbox/conversation", &[("input[app_id]", &shop.app_id), ("input[conversation_id]", &grace)])
            .await;
    assert_eq!(d["items"].as_array().unwrap().len(), 2);
    assert_eq!(d["profile"]["name"], "Grace");
    assert_eq!(inbox(&app, &shop, "open", "all", "").await["conversations"][0]["unread"], 0);

    // Assign to me; filters follow.
    let me = open["me"].as_str().unwrap().to_string();
    call(&app, &shop, "inbox/assign", &[("app_id", &shop.app_id), ("conversation_id", &ada), ("assignee", &me)]).await;
    assert_eq!(ids(&inbox(&app, &shop, "open", "mine", "").await), [ada.as_str()]);
    assert_eq!(ids(&inbox(&app, &shop, "open", "unassigned", "").await), [grace.as_str()]);
    let r = app
        .call(
            "inbox/assign",
            &[("app_id", &shop.app_id), ("conversation_id", &ada), ("assignee", "nobody-here")],
            Some(&shop.owner),
            &[],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);

    // The team replies (light styling), then closes: it moves to Closed.
    call(
        &app,
        &shop,
        "inbox/reply",
        &[("app_id", &shop.app_id), ("conversation_id", &ada), ("text", "On its **way**")],
    )
    .await;
    let d =
        call(&app, &shop, "inbox/conversation", &[("input[app_id]", &shop.app_id), ("input[conversation_id]", &ada)])
            .await;
    let last = d["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["html"], "<p>On its <strong>way</strong></p>");
    assert_eq!(last["message"]["name"], "Olive Owner");
    set_open(&app, &shop, &ada, false).await;
    assert_eq!(ids(&inbox(&app, &shop, "open", "all", "").await), [grace.as_str()]);
    assert_eq!(ids(&inbox(&app, &shop, "closed", "all", "").await), [ada.as_str()]);
    // The teammate's page lists what they are assigned or started.
    let t = call(&app, &shop, "teammates/conversations", &[("app_id", &shop.app_id), ("teammate_id", &me)]).await;
    assert_eq!(ids(&t), [ada.as_str()]);

    // "Start a conversation" from the profile: a new one, started by and assigned to the teammate.
    let started: String = serde_json::from_value(
        call(&app, &shop, "inbox/start", &[("app_id", &shop.app_id), ("user", "u1"), ("text", "A question for you")])
            .await,
    )
    .unwrap();
    assert_ne!(started, ada);
    let list = conversations(&app, &shop, "u1").await;
    let c = list.iter().find(|c| c["_id"] == started.as_str()).unwrap();
    assert_eq!((c["startedBy"].as_str(), c["assigneeId"].as_str()), (Some("teammate"), Some(me.as_str())));
    let profile = call(&app, &shop, "users/profile", &[("input[app_id]", &shop.app_id), ("input[user]", "u1")]).await;
    assert_eq!(profile["conversations"].as_array().unwrap().len(), 2);

    // Another app's conversation is not found from this app's pages.
    let other = shop_in_same_server(&app, &shop).await;
    let r = app
        .call(
            "inbox/conversation",
            &[("input[app_id]", &other.app_id), ("input[conversation_id]", &ada)],
            Some(&shop.owner),
            &[],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // Signed out: nothing.
    let r = app
        .call(
            "inbox/list",
            &[
                ("input[app_id]", &shop.app_id),
                ("input[state]", "open"),
                ("input[filter]", "all"),
                ("input[search]", ""),
                ("input[after]", ""),
            ],
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 401);
}

/// The inbox's pages: keyset cursors walk every conversation once, newest
/// first (ties broken by id), and the list previews the team's styled
/// words without their markers.
async fn pages_and_previews(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend).await else { return };
    let n = 33;
    for i in 0..n {
        let user = format!("p{i:02}");
        create_user(&app, &shop, &user, "Pat").await;
        let text = format!("Question {i}");
        let r = rest(
            &app,
            &shop,
            "POST",
            &format!("/v1.1/appusers/{user}/messages"),
            json!({"role": "appUser", "text": text}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        // Pairs share a time: the id decides between them.
        if i % 2 == 1 {
            app.clock.advance_ms(10);
        }
    }
    let page = |after: String| {
        let (app, shop) = (&app, &shop);
        async move {
            call(
                app,
                shop,
                "inbox/list",
                &[
                    ("input[app_id]", &shop.app_id),
                    ("input[state]", "open"),
                    ("input[filter]", "all"),
                    ("input[search]", ""),
                    ("input[after]", &after),
                ],
            )
            .await
        }
    };
    let first = page(String::new()).await;
    assert_eq!(ids(&first).len(), 30);
    let next = first["next"].as_str().expect("a cursor to the older page").to_string();
    let second = page(next).await;
    assert_eq!(ids(&second).len(), n - 30);
    assert!(second["next"].is_null(), "the last page has no cursor: {second}");
    let mut all = ids(&first);
    all.extend(ids(&second));
    let times: Vec<i64> = [&first, &second]
        .iter()
        .flat_map(|p| p["conversations"].as_array().unwrap().iter().map(|c| c["last_activity_at"].as_i64().unwrap()))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    let mut distinct = all.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), n, "every conversation once: {all:?}");

    // The team's styled answer: the list shows its words.
    let c = &all[0];
    let user = first["conversations"][0]["user"].as_str().unwrap().to_string();
    let path = format!("/v1.1/appusers/{user}/conversations/{c}/messages");
    let r = rest(
        &app,
        &shop,
        "POST",
        &path,
        json!({"role": "appMaker", "text": "**Sure**, see [the guide](https://shop.example/g)"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let list = inbox(&app, &shop, "open", "all", "").await;
    let row = list["conversations"].as_array().unwrap().iter().find(|r| r["id"] == c.as_str()).unwrap().clone();
    assert_eq!(row["last_text"], "Sure, see the guide");
    // A user's words stay as typed.
    let r = rest(
        &app,
        &shop,
        "POST",
        &format!("/v1.1/appusers/{user}/messages"),
        json!({"role": "appUser", "text": "2 * 3 **is** 6"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let list = inbox(&app, &shop, "open", "all", "").await;
    let row = list["conversations"].as_array().unwrap().iter().find(|r| r["id"] == c.as_str()).unwrap().clone();
    assert_eq!(row["last_text"], "2 * 3 **is** 6");
}

#[tokio::test]
async fn pages_and_previews_sqlite() {
    bounded(pages_and_previews(Backend::Sqlite)).await;
}

#[tokio::test]
async fn pages_and_previews_postgres() {
    bounded(pages_and_previews(Backend::Postgres)).await;
}

#[tokio::test]
async fn inbox_flow_sqlite() {
    bounded(inbox_flow(Backend::Sqlite)).await;
}

#[tokio::test]
async fn inbox_flow_postgres() {
    bounded(inbox_flow(Backend::Postgres)).await;
}

/// The inbox's event stream as a test reads it.
#[derive(Debug)]
struct Live {
    stream: TcpStream,
    seen: String,
}

impl Live {
    async fn open(app: &TestApp, app_id: &str, session: Option<&str>) -> Result<Live, String> {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let cookie = session.map(|s| format!("Cookie: murmur_session={s}\r\n")).unwrap_or_default();
        let req = format!("GET /live/inbox/{app_id} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nConnection: close\r\n{cookie}\r\n", app.addr);
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut live = Live { stream, seen: String::new() };
        // The stream says it is live first (`*`).
        live.wait_for("data: *").await.map_err(|_| live.seen.clone())?;
        Ok(live)
    }

    /// Reads until `needle` has arrived (5 s at most).
    async fn wait_for(&mut self, needle: &str) -> Result<(), ()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 4096];
        while !self.seen.contains(needle) {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => return Err(()),
            }
        }
        // Consumed: the next wait looks at what comes after.
        let at = self.seen.find(needle).unwrap() + needle.len();
        self.seen = self.seen[at..].to_string();
        Ok(())
    }
}

async fn live_flow(backend: Backend) {
    let Some((_db, app, shop)) = setup(backend).await else { return };
    // Signed out, or another's app: no stream.
    assert!(Live::open(&app, &shop.app_id, None).await.unwrap_err().starts_with("HTTP/1.1 401"));
    assert!(Live::open(&app, "0123456789abcdef01234567", Some(&shop.owner))
        .await
        .unwrap_err()
        .starts_with("HTTP/1.1 404"));

    let mut live = Live::open(&app, &shop.app_id, Some(&shop.owner)).await.expect("the stream opens");
    // A card answered in the widget starts a conversation that begins with the card.
    let mut d = from_template(None, &shop.owner_id);
    d.name = "Help offer".into();
    d.all_users = true;
    d.trigger = Trigger::Event("asked".into());
    d.text = "Need help?".into();
    save_whisper(&app, &shop, &d).await;
    create_user(&app, &shop, "u1", "Ada").await;
    let (mut w, welcome) = Widget::start(&app, shop.hello("u1", "device-conv-0001")).await;
    assert_eq!(welcome["t"], "welcome");
    assert_eq!(welcome["conversations"], json!([]));
    w.send(json!({"t": "track", "name": "asked"})).await;
    let (card, _) = w.wait_for("card").await.expect("a card");
    let card_id = card["id"].as_str().unwrap().to_string();
    w.send(json!({"t": "reply", "text": "Yes <b>please</b>", "card": card_id})).await;
    let (echo, _) = w.wait_for("message").await.expect("the echo");
    let conv = echo["message"]["conversation"].as_str().unwrap().to_string();
    // The inbox hears of it at once.
    live.wait_for(&format!("data: {conv}")).await.expect("the inbox is told");
    let detail =
        call(&app, &shop, "inbox/conversation", &[("input[app_id]", &shop.app_id), ("input[conversation_id]", &conv)])
            .await;
    let items = detail["items"].as_array().unwrap();
    assert_eq!(items[0]["id"], card_id.as_str(), "the card comes first");
    assert!(items[0]["message"]["card"]["html"].as_str().unwrap().contains("Need help?"));
    assert_eq!(items[1]["message"]["text"], "Yes <b>please</b>");
    assert_eq!(detail["summary"]["started_by"], "card");

    // The teammate's reply reaches the widget live, in that conversation, styled.
    call(&app, &shop, "inbox/reply", &[("app_id", &shop.app_id), ("conversation_id", &conv), ("text", "Sure, *Ada*")])
        .await;
    let (m, _) = w.wait_for("message").await.expect("the reply");
    assert_eq!(
        (m["message"]["conversation"].as_str(), m["message"]["role"].as_str()),
        (Some(conv.as_str()), Some("appMaker"))
    );
    assert_eq!(m["message"]["html"], "<p>Sure, <em>Ada</em></p>");
    live.wait_for(&format!("data: {conv}")).await.expect("the inbox is told of the reply");

    // Closed from the inbox; the user writes into it again from the widget: it reopens.
    set_open(&app, &shop, &conv, false).await;
    live.wait_for(&format!("data: {conv}")).await.expect("the inbox is told of the close");
    w.send(json!({"t": "reply", "text": "One more thing", "conversation": conv})).await;
    w.wait_for("message").await.expect("the echo");
    live.wait_for(&format!("data: {conv}")).await.expect("the inbox is told of the message");
    assert_eq!(ids(&inbox(&app, &shop, "open", "all", "").await), [conv.as_str()]);
    // A reply into someone else's conversation is refused.
    w.send(json!({"t": "reply", "text": "x", "conversation": "ffffffffffffffffffffffff"})).await;
    let (err, _) = w.wait_for("error").await.expect("an error");
    assert_eq!(err["code"], "invalid");

    // The widget's user reads it: unread for the user goes to zero; a restart lists it.
    assert_eq!(conversations(&app, &shop, "u1").await[0]["unreadCount"], 1);
    w.send(json!({"t": "read", "conversation": conv})).await;
    w.sync().await;
    assert_eq!(conversations(&app, &shop, "u1").await[0]["unreadCount"], 0);
    let (_w2, welcome) = Widget::start(&app, shop.hello("u1", "device-conv-0002")).await;
    assert_eq!(welcome["conversations"][0]["id"], conv.as_str());
    assert_eq!(welcome["conversations"][0]["card"], card_id.as_str());
}

#[tokio::test]
async fn live_flow_sqlite() {
    bounded(live_flow(Backend::Sqlite)).await;
}

#[tokio::test]
async fn live_flow_postgres() {
    bounded(live_flow(Backend::Postgres)).await;
}

/// Two instances on one PostgreSQL database: the teammate's inbox stream
/// on A hears the widget's messages on B, and the widget on B gets the
/// teammate's reply made on A.
#[tokio::test]
async fn two_instances_postgres() {
    bounded(async {
        let Some(db) = TestDb::new(Backend::Postgres).await else { return };
        let a = spawn_app(&db, &[]).await;
        let b = spawn_app(&db, &[]).await;
        let owner = a.setup_owner().await;
        let shop = shop(&a, &owner, "Shop").await;
        create_user(&a, &shop, "u1", "Ada").await;
        let mut live = Live::open(&a, &shop.app_id, Some(&owner)).await.expect("the stream opens on A");
        let (mut w, _) = Widget::start(&b, shop.hello("u1", "device-two-0001")).await;
        w.send(json!({"t": "reply", "text": "Hello from B"})).await;
        let (echo, _) = w.wait_for("message").await.expect("the echo");
        let conv = echo["message"]["conversation"].as_str().unwrap().to_string();
        live.wait_for(&format!("data: {conv}")).await.expect("A's inbox hears of B's message");

        call(
            &a,
            &shop,
            "inbox/reply",
            &[("app_id", &shop.app_id), ("conversation_id", &conv), ("text", "Hello from A")],
        )
        .await;
        let (m, _) = w.wait_for("message").await.expect("B's widget gets A's reply");
        assert_eq!(m["message"]["text"], "Hello from A");
        live.wait_for(&format!("data: {conv}")).await.expect("and A's inbox hears of it");
        set_open(&a, &shop, &conv, false).await;
        // A close made on B reaches A's stream too.
        set_open(&b, &shop, &conv, true).await;
        live.wait_for(&format!("data: {conv}")).await.expect("A hears of the close");
        live.wait_for(&format!("data: {conv}")).await.expect("A hears of B's reopen");
    })
    .await;
}
