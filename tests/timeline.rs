//! A user's timeline, on both backends: the storage conformance checks
//! (every source in one newest-first list, keyset pages without gaps or
//! doubles across equal times, a pending manual message as such, another
//! app's user refused), and the profile's server function over HTTP
//! (conversation changes recorded where they happen, scoped to the app).

mod support;

use std::time::Duration;

use murmur::{
    domain::{
        manual::{Audience, Kind, MessageDraft},
        whisper::{from_template, Trigger},
    },
    storage::{
        timeline::{TimelineCursor, TimelineItem, TimelineKind},
        AppRow, Store, TeammateRow,
    },
};
use serde_json::{json, Value};
use support::{
    shop::{rest, save_message, save_whisper, shop, Shop},
    spawn_app, Backend, TestApp, TestDb,
};

/// Runs raw SQL (seeding only: the timeline reads what the product wrote).
async fn exec(s: &Store, sql: &str) {
    match s {
        Store::Sqlite(p) => {
            sqlx::raw_sql(sql).execute(p).await.unwrap();
        }
        Store::Postgres(p) => {
            sqlx::raw_sql(sql).execute(p).await.unwrap();
        }
    }
}

/// Two apps, a teammate, user `u1` in `a1` and `u2` in `a2`, a whisper and a manual message in `a1`.
async fn seed(s: &Store) {
    for id in ["a1", "a2"] {
        s.insert_app(&AppRow { id: id.into(), name: id.into(), identity_secret_enc: vec![1], created_at: 1 }, &[])
            .await
            .unwrap();
    }
    let t = TeammateRow {
        id: "t1".into(),
        name: "Tess".into(),
        email: "t@x.io".into(),
        password_hash: "x".into(),
        is_owner: false,
        created_at: 1,
    };
    s.insert_teammate(&t, Some("a1")).await.unwrap();
    exec(
        s,
        "INSERT INTO app_users (id, app_id, user_id, signed_up_at, properties, created_at, updated_at) VALUES \
         ('u1', 'a1', 'ada', 1, '{}', 1, 1), ('u2', 'a2', 'bob', 1, '{}', 1, 1); \
         INSERT INTO whispers (id, app_id, name, status, definition, trigger_kind, created_at, updated_at) VALUES \
         ('w1', 'a1', 'Welcome', 'active', '{}', 'event', 1, 1); \
         INSERT INTO manual_messages (id, app_id, title, sender_name, kind, body, audience, state, created_at, updated_at) \
         VALUES ('mm1', 'a1', 'Spring sale', 'Tess', 'chat', 'Hi **there**', '{}', 'sent', 1, 1);",
    )
    .await;
}

fn kinds(items: &[TimelineItem]) -> Vec<(i64, TimelineKind)> {
    items.iter().map(|i| (i.at(), i.kind())).collect()
}

mod checks {
    use super::*;

    pub async fn every_source_newest_first(s: &Store) {
        seed(s).await;
        exec(
            s,
            "INSERT INTO events (app_id, app_user_id, name, properties, created_at) VALUES \
             ('a1', 'u1', 'signed-up', '{\"plan\":\"pro\"}', 1000), ('a1', 'u1', 'clicked', NULL, 5000), \
             ('a2', 'u2', 'elsewhere', NULL, 5000); \
             INSERT INTO deliveries (id, app_id, whisper_id, app_user_id, revision, state, rendered, sent_at, seen_at, created_at) \
             VALUES ('d1', 'a1', 'w1', 'u1', 1, 'seen', '{\"html\":\"<p>Hi</p>\"}', 2000, 2500, 2000); \
             INSERT INTO conversations (id, app_id, app_user_id, state, started_by, last_activity_at, created_at) \
             VALUES ('c1', 'a1', 'u1', 'open', 'user', 3000, 3000); \
             INSERT INTO messages (id, app_id, app_user_id, role, text, created_at, conversation_id) \
             VALUES ('x1', 'a1', 'u1', 'appUser', 'hello <b>', 3000, 'c1'); \
             INSERT INTO message_deliveries (id, app_id, message_id, app_user_id, channel, state, created_at) \
             VALUES ('mA', 'a1', 'mm1', 'u1', 'in_app', 'pending', 4000);",
        )
        .await;
        // Conversation changes are recorded where they happen, once per real change.
        assert_eq!(s.set_conversation_state("a1", "c1", false, 5000).await.unwrap().unwrap().state, "closed");
        assert_eq!(s.set_conversation_state("a1", "c1", false, 5500).await.unwrap().unwrap().state, "closed");
        assert!(s.set_conversation_state("a2", "c1", true, 5500).await.unwrap().is_none(), "another app's");
        let c = s.assign_conversation("a1", "c1", Some("t1"), 6000).await.unwrap().unwrap();
        assert_eq!(c.assignee_id.as_deref(), Some("t1"));
        s.assign_conversation("a1", "c1", Some("t1"), 6500).await.unwrap().unwrap();

        let page = s.timeline("a1", "u1", None, 50).await.unwrap().unwrap();
        assert_eq!(page.next, None);
        use TimelineKind::*;
        assert_eq!(
            kinds(&page.items),
            [
                (6000, Change),
                (5000, Change),
                (5000, Event),
                (4000, Manual),
                (3000, Message),
                (3000, Conversation),
                (2000, Card),
                (1000, Event)
            ]
        );
        match &page.items[0] {
            TimelineItem::Change(c) => {
                assert_eq!(
                    (c.change.as_str(), c.assignee_name.as_deref(), c.by_whom.as_str()),
                    ("assigned", Some("Tess"), "team")
                )
            }
            other => panic!("{other:?}"),
        }
        match &page.items[1] {
            TimelineItem::Change(c) => assert_eq!(c.change, "closed"),
            other => panic!("{other:?}"),
        }
        match &page.items[3] {
            TimelineItem::Manual(m) => {
                assert_eq!(
                    (m.state.as_str(), m.rendered.as_deref(), m.title.as_str()),
                    ("pending", None, "Spring sale")
                );
                assert_eq!(m.body, "Hi **there**");
            }
            other => panic!("{other:?}"),
        }
        match &page.items[4] {
            TimelineItem::Message(m) => assert_eq!((m.role.as_str(), m.text.as_str()), ("appUser", "hello <b>")),
            other => panic!("{other:?}"),
        }
        match &page.items[6] {
            TimelineItem::Card(c) => {
                assert_eq!((c.whisper_name.as_str(), c.state.as_str(), c.seen_at), ("Welcome", "seen", Some(2500)))
            }
            other => panic!("{other:?}"),
        }
        match &page.items[7] {
            TimelineItem::Event(e) => {
                assert_eq!(e.name, "signed-up");
                let props: Value = serde_json::from_str(e.properties.as_deref().unwrap()).unwrap();
                assert_eq!(props, json!({"plan": "pro"}));
            }
            other => panic!("{other:?}"),
        }
    }

    pub async fn pages_have_no_gaps_or_doubles_across_equal_times(s: &Store) {
        seed(s).await;
        // Many items at the same milliseconds, of every kind; the first
        // events folded (found by `events_by_user`), the others not yet
        // (past the app's mark): the pages read both.
        let event = |i: i32| {
            format!(
                "INSERT INTO events (app_id, app_user_id, name, created_at) VALUES ('a1', 'u1', 'e{i}', {});",
                100 + (i % 2) * 50
            )
        };
        exec(s, &(0..4).map(event).collect::<String>()).await;
        s.fold_event_users("a1").await.unwrap();
        let mut sql = (4..7).map(event).collect::<String>();
        for i in 0..5 {
            sql.push_str(&format!(
                "INSERT INTO conversations (id, app_id, app_user_id, state, started_by, last_activity_at, created_at) \
                 VALUES ('c{i}', 'a1', 'u1', 'open', 'user', 100, 100); \
                 INSERT INTO messages (id, app_id, app_user_id, role, text, created_at, conversation_id) \
                 VALUES ('x{i}', 'a1', 'u1', 'appUser', 'm{i}', 100, 'c{i}');"
            ));
        }
        // A user gets a whisper once: a whisper per card.
        for i in 0..4 {
            sql.push_str(&format!(
                "INSERT INTO whispers (id, app_id, name, status, definition, trigger_kind, created_at, updated_at) \
                 VALUES ('wp{i}', 'a1', 'W{i}', 'active', '{{}}', 'event', 1, 1); \
                 INSERT INTO deliveries (id, app_id, whisper_id, app_user_id, revision, state, rendered, created_at) \
                 VALUES ('d{i}', 'a1', 'wp{i}', 'u1', 1, 'pending', '{{}}', {});",
                if i == 3 { 150 } else { 100 }
            ));
        }
        exec(s, &sql).await;
        exec(
            s,
            "INSERT INTO message_deliveries (id, app_id, message_id, app_user_id, channel, state, created_at) \
             VALUES ('mA', 'a1', 'mm1', 'u1', 'in_app', 'pending', 100);",
        )
        .await;
        for (i, at) in [100, 100, 150].into_iter().enumerate() {
            s.set_conversation_state("a1", &format!("c{i}"), false, at).await.unwrap();
        }
        let all = s.timeline("a1", "u1", None, 1000).await.unwrap().unwrap();
        assert_eq!(all.items.len(), 7 + 5 + 5 + 4 + 1 + 3);
        assert!(all.items.windows(2).all(|w| w[0].at() >= w[1].at()), "newest first");
        let want: Vec<(TimelineKind, String)> = all.items.iter().map(|i| (i.kind(), i.id())).collect();
        for size in [1, 2, 3, 7, 24, 25] {
            let mut got = vec![];
            let mut cursor: Option<TimelineCursor> = None;
            loop {
                let page = s.timeline("a1", "u1", cursor.as_ref(), size).await.unwrap().unwrap();
                assert!(page.items.len() as i64 <= size);
                got.extend(page.items.iter().map(|i| (i.kind(), i.id())));
                match page.next {
                    // Through text, as the page sends it.
                    Some(c) => cursor = Some(TimelineCursor::decode(&c.encode()).unwrap()),
                    None => break,
                }
                assert!(got.len() <= want.len(), "page size {size}: more items than there are");
            }
            assert_eq!(got, want, "page size {size}");
        }
    }

    pub async fn another_apps_user_is_refused(s: &Store) {
        seed(s).await;
        exec(
            s,
            "INSERT INTO events (app_id, app_user_id, name, created_at) VALUES ('a2', 'u2', 'theirs', 10), ('a1', 'u1', 'mine', 10);",
        )
        .await;
        assert!(s.timeline("a2", "u1", None, 50).await.unwrap().is_none());
        assert!(s.timeline("a1", "u2", None, 50).await.unwrap().is_none());
        assert!(s.timeline("a1", "nobody", None, 50).await.unwrap().is_none());
        let mine = s.timeline("a1", "u1", None, 50).await.unwrap().unwrap();
        assert_eq!(mine.items.len(), 1);
        assert!(matches!(&mine.items[0], TimelineItem::Event(e) if e.name == "mine"));
    }
}

conformance!(sqlite, postgres, super::checks;
    every_source_newest_first,
    pages_have_no_gaps_or_doubles_across_equal_times,
    another_apps_user_is_refused,
);

// ---- the profile's server function, over HTTP --------------------------

const TEST_LIMIT: Duration = Duration::from_secs(180);

async fn timeline(app: &TestApp, session: &str, app_id: &str, user: &str, before: &str) -> support::Response {
    app.call(
        "users/timeline",
        &[("input[app_id]", app_id), ("input[user]", user), ("input[before]", before)],
        Some(session),
        &[],
    )
    .await
}

async fn create_user(app: &TestApp, shop: &Shop, user_id: &str) -> String {
    let r = rest(app, shop, "POST", "/v1.1/appusers", json!({"userId": user_id, "givenName": "Ada"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["appUser"]["_id"].as_str().unwrap().to_string()
}

async fn profile_flow(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[("SCHEDULER_PERIOD_MS", "0")]).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    let uid = create_user(&app, &shop, "u1").await;
    let mut d = from_template(None, &shop.owner_id);
    d.name = "Cart reminder".into();
    d.all_users = true;
    d.trigger = Trigger::Event("item-in-cart".into());
    d.text = "Still thinking?".into();
    save_whisper(&app, &shop, &d).await;
    app.clock.advance_ms(1000);
    let r = rest(
        &app,
        &shop,
        "POST",
        "/v1.1/appusers/u1/events",
        json!({"name": "item-in-cart", "properties": {"sku": "<b>x</b>"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    app.clock.advance_ms(1000);
    let r = rest(
        &app,
        &shop,
        "POST",
        "/v1.1/appusers/u1/messages",
        json!({"role": "appUser", "text": "<script>hi</script>"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let conv = r.json()["conversation"]["_id"].as_str().unwrap().to_string();
    app.clock.advance_ms(1000);
    let r = app
        .call(
            "inbox/state",
            &[("app_id", &shop.app_id), ("conversation_id", &conv), ("open", "false")],
            Some(&owner),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.clock.advance_ms(1000);
    // The user's message reopens it: recorded as the user's.
    let path = format!("/v1.1/appusers/u1/conversations/{conv}/messages");
    let r = rest(&app, &shop, "POST", &path, json!({"role": "appUser", "text": "back"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    app.clock.advance_ms(1000);
    // A manual message to the user, who is offline: pending, marked so.
    let draft = MessageDraft {
        title: "Spring sale".into(),
        sender_id: shop.owner_id.clone(),
        kind: Kind::Chat,
        body: "Sale **now**".into(),
        audience: Audience::Users { ids: vec![uid.clone()] },
        push: false,
    };
    save_message(&app, &shop, &draft, "now").await;
    // The composer started the send in the background; running it here too
    // returns once the recipients are fixed (by this run or that one).
    let mut pending_seen = false;
    for _ in 0..200 {
        app.state.engine.run_sends().await.unwrap();
        let t = timeline(&app, &owner, &shop.app_id, "u1", "").await.json();
        if t["entries"][0]["kind"] == "manual" {
            pending_seen = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(pending_seen, "the manual message's delivery appears");

    let r = timeline(&app, &owner, &shop.app_id, "u1", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = r.json();
    let entries = t["entries"].as_array().unwrap();
    let summary: Vec<(&str, &str)> =
        entries.iter().map(|e| (e["kind"].as_str().unwrap(), e["headline"].as_str().unwrap())).collect();
    assert_eq!(
        summary,
        [
            ("manual", "Message “Spring sale” (in-app chat)"),
            // At the same millisecond, the change above the message that caused it.
            ("change", "Conversation reopened by the user's message"),
            ("message", "The user wrote"),
            ("change", "Conversation closed"),
            ("message", "The user wrote"),
            ("conversation", "Conversation started by the user"),
            ("card", "Whisper “Cart reminder”"),
            ("event", "Event “item-in-cart”"),
        ],
        "{t:#}"
    );
    assert_eq!(entries[0]["pending"], true);
    assert_eq!(entries[0]["recallable"], true);
    assert_eq!(entries[0]["state"], "pending");
    // What the user typed comes back as text, for the page to show as text.
    assert_eq!(entries[4]["text"], "<script>hi</script>");
    assert_eq!(entries[4]["html"], Value::Null);
    assert_eq!(entries[6]["pending"], true, "the card waits for the user's next visit");
    assert!(entries[6]["html"].as_str().unwrap().contains("Still thinking?"));
    assert_eq!(
        entries[7]["detail"].as_str().map(|d| serde_json::from_str::<Value>(d).unwrap()),
        Some(json!({"sku": "<b>x</b>"}))
    );
    assert_eq!(t["next"], Value::Null);
    // By userId too.
    assert_eq!(timeline(&app, &owner, &shop.app_id, &uid, "").await.json(), t);

    // Another app's user is not found from this app, and a stranger to the app sees nothing.
    let other = support::shop::shop(&app, &owner, "Other").await;
    create_user(&app, &other, "stranger").await;
    assert_eq!(timeline(&app, &owner, &shop.app_id, "stranger", "").await.status, 404);
    assert_eq!(timeline(&app, &owner, &other.app_id, &uid, "").await.status, 404);
    let tess = app.add_tess(&other.app_id, &owner).await;
    assert_eq!(timeline(&app, &tess, &shop.app_id, "u1", "").await.status, 404);
    assert_eq!(timeline(&app, &tess, &other.app_id, "stranger", "").await.status, 200);
    // A cursor that is not one is refused.
    assert_eq!(timeline(&app, &owner, &shop.app_id, "u1", "nope").await.status, 400);
}

#[tokio::test]
async fn profile_timeline_sqlite() {
    tokio::time::timeout(TEST_LIMIT, profile_flow(Backend::Sqlite)).await.expect("in time");
}

#[tokio::test]
async fn profile_timeline_postgres() {
    tokio::time::timeout(TEST_LIMIT, profile_flow(Backend::Postgres)).await.expect("in time");
}
