//! The overview: the daily rollup on both backends (each event counted on
//! the day it happened, the user snapshot, median first response, reruns
//! idempotent, older days kept, one app's rows never in another's), and the
//! page over HTTP (renders for a teammate of the app with its charts and
//! numbers, refuses an app the teammate cannot see).

mod support;

use std::sync::Arc;

use murmur::{
    domain::whisper::from_template,
    storage::{
        manual::{ManualRow, PendingCard},
        new_id,
        stats::{DailyStats, Metric, DAY_MS},
        AppRow, AppUserChanges, ConversationTarget, Joining, MessageRow, NewAppUser, NewDelivery, OfficeReply,
        PendingMessage, PostedMessage, Reaction, Store, TeammateRow,
    },
};
use serde_json::{json, Value};
use support::{
    shop::{rest, shop},
    spawn_app, Backend, TestDb,
};

const HOUR: i64 = 3_600_000;
const MIN: i64 = 60_000;
/// Day A (UTC day number), B the day after, C the day after that.
const A: i64 = 20_000;
const B: i64 = A + 1;
const C: i64 = A + 2;

fn at(day: i64, ms: i64) -> i64 {
    day * DAY_MS + ms
}

async fn app(s: &Store, id: &str) {
    s.insert_app(&AppRow { id: id.into(), name: id.into(), identity_secret_enc: vec![1], created_at: 0 }, &[])
        .await
        .unwrap();
}

async fn user(s: &Store, app_id: &str, id: &str) {
    let u = NewAppUser {
        id: id.into(),
        app_id: app_id.into(),
        user_id: Some(format!("user-{id}")),
        given_name: None,
        surname: None,
        email: None,
        signed_up_at: at(A, 0),
        app_version: None,
        app_version_key: None,
        platform: None,
        properties: Default::default(),
        now: at(A, 0),
    };
    s.create_app_user(&u, &[]).await.unwrap();
}

async fn seen(s: &Store, app_id: &str, id: &str, when: i64) {
    let c = AppUserChanges { last_seen_at: Some(when), ..Default::default() };
    s.update_app_user(app_id, id, &c, &[], 500, when).await.unwrap();
}

/// A whisper card for `user`, made at `when`: sent then, or pending.
async fn card(s: &Store, app_id: &str, whisper: &str, user: &str, id: &str, when: i64, sent: bool) {
    let d = NewDelivery {
        id: id.into(),
        app_id: app_id.into(),
        whisper_id: whisper.into(),
        app_user_id: user.into(),
        revision: 1,
        rendered: "{}".into(),
        now: when,
        sent,
    };
    assert!(s.insert_delivery(&d).await.unwrap());
}

/// A manual in-app message to `users`, their cards claimed (sent) at `when`;
/// the delivery ids.
async fn manual(s: &Store, app_id: &str, id: &str, users: &[&str], when: i64) -> Vec<String> {
    let m = ManualRow {
        id: id.into(),
        app_id: app_id.into(),
        title: "Hello".into(),
        sender_id: None,
        sender_name: "Team".into(),
        kind: "chat".into(),
        body: "Hi".into(),
        audience: "{}".into(),
        state: "sent".into(),
        send_at: Some(when),
        recipients: Some(users.len() as i64),
        created_by: None,
        created_at: when,
        updated_at: when,
        stopped_at: None,
        push: false,
    };
    s.insert_manual(&m).await.unwrap();
    let mut cards = vec![];
    for u in users {
        // Recipients are fixed by the send's INSERT … SELECT; here, one row each.
        let delivery = format!("m{}", new_id());
        let sql = "INSERT INTO message_deliveries (id, app_id, message_id, app_user_id, channel, state, created_at) \
                   VALUES ($1, $2, $3, $4, 'in_app', 'pending', $5)";
        match s {
            Store::Sqlite(p) => {
                sqlx::query(sql).bind(&delivery).bind(app_id).bind(id).bind(u).bind(when).execute(p).await.unwrap();
            }
            Store::Postgres(p) => {
                sqlx::query(sql).bind(&delivery).bind(app_id).bind(id).bind(u).bind(when).execute(p).await.unwrap();
            }
        }
        let c = PendingCard {
            delivery_id: delivery.clone(),
            app_user_id: u.to_string(),
            message_id: id.into(),
            created_at: when,
        };
        cards.push((c, "{}".to_string()));
    }
    let claimed = s.claim_cards(&cards, when).await.unwrap();
    assert_eq!(claimed.len(), users.len());
    claimed.into_iter().map(|d| d.id).collect()
}

/// A message into `target` at `when`: a user's (`teammate` None) or a
/// teammate's, with the office-hours reply when `office` (a user's only).
async fn say(
    s: &Store,
    app_id: &str,
    user: &str,
    teammate: Option<&str>,
    target: ConversationTarget,
    when: i64,
    office: bool,
) -> PostedMessage {
    let office_reply = office.then(|| OfficeReply {
        id: new_id(),
        since: 0,
        name: None,
        text: Arc::new(|_: &murmur::storage::AppUserRow| "We are closed".to_string()),
    });
    let m = PendingMessage {
        app_id: app_id.into(),
        user_ref: user.into(),
        message: MessageRow {
            id: new_id(),
            role: if teammate.is_some() { "appMaker" } else { "appUser" }.into(),
            name: None,
            text: "hello".into(),
            created_at: when,
            conversation_id: None,
        },
        name_from_user: false,
        office_reply,
        joining: Joining { target, card: None, teammate: teammate.map(String::from), new_id: new_id() },
    };
    s.insert_messages_batch(&[m], vec![None]).await.unwrap().pop().unwrap().unwrap()
}

fn values(stats: &DailyStats, metric: Metric, days: std::ops::RangeInclusive<i64>) -> Vec<Option<i64>> {
    days.map(|d| stats.get(d, metric)).collect()
}

/// Two apps with whispers, manual messages and conversations over days A
/// and B; the rollup on day C.
async fn seed(s: &Store) {
    app(s, "app1").await;
    app(s, "app2").await;
    let tess = TeammateRow {
        id: "t1".into(),
        name: "Tess".into(),
        email: "tess@x.io".into(),
        password_hash: "-".into(),
        is_owner: false,
        created_at: 0,
    };
    s.insert_teammate(&tess, Some("app1")).await.unwrap();
    for u in ["u1", "u2", "u3", "u4", "u5"] {
        user(s, "app1", u).await;
    }
    user(s, "app2", "v1").await;
    let now = at(C, 12 * HOUR);
    // Seen 1 hour, 3 days, 20 days and 40 days before the rollup; u5 never.
    seen(s, "app1", "u1", now - HOUR).await;
    seen(s, "app1", "u2", now - 3 * DAY_MS).await;
    seen(s, "app1", "u3", now - 20 * DAY_MS).await;
    seen(s, "app1", "u4", now - 40 * DAY_MS).await;
    seen(s, "app2", "v1", now - HOUR).await;

    s.insert_whisper("w1", "app1", "active", &from_template(Some("announcement"), "t1"), 0).await.unwrap();
    s.insert_whisper("w2", "app2", "active", &from_template(Some("announcement"), "t1"), 0).await.unwrap();
    // d1: sent A 10:00, seen B 09:00, clicked B 09:05.
    card(s, "app1", "w1", "u1", "d1", at(A, 10 * HOUR), true).await;
    assert!(s.react("u1", "d1", Reaction::Seen, at(B, 9 * HOUR)).await.unwrap());
    assert!(s.react("u1", "d1", Reaction::Clicked, at(B, 9 * HOUR + 5 * MIN)).await.unwrap());
    // d2: made pending A 11:00, sent A 11:30, seen A 12:00, replied B 01:00 (clicked then too).
    card(s, "app1", "w1", "u2", "d2", at(A, 11 * HOUR), false).await;
    s.mark_sent(&["d2".into()], at(A, 11 * HOUR + 30 * MIN)).await.unwrap();
    assert!(s.react("u2", "d2", Reaction::Seen, at(A, 12 * HOUR)).await.unwrap());
    assert!(s.react("u2", "d2", Reaction::Replied, at(B, HOUR)).await.unwrap());
    // d3: pending, never sent.
    card(s, "app1", "w1", "u3", "d3", at(A, 13 * HOUR), false).await;
    // Another app's card, seen.
    card(s, "app2", "w2", "v1", "e1", at(A, 10 * HOUR), true).await;
    assert!(s.react("v1", "e1", Reaction::Seen, at(A, 10 * HOUR)).await.unwrap());

    // A manual message sent A 15:00 to u1 and u2; u1 sees it B 02:00 and clicks B 03:00.
    let m = manual(s, "app1", "mm1", &["u1", "u2"], at(A, 15 * HOUR)).await;
    let of_u1 = delivery_of(s, &m, "u1").await;
    assert!(s.react("u1", &of_u1, Reaction::Seen, at(B, 2 * HOUR)).await.unwrap());
    assert!(s.react("u1", &of_u1, Reaction::Clicked, at(B, 3 * HOUR)).await.unwrap());
    manual(s, "app2", "mm2", &["v1"], at(A, 15 * HOUR)).await;

    // c1: u1 writes A 08:00, the team answers at 08:10 and again at 09:00.
    let c1 = say(s, "app1", "u1", None, ConversationTarget::Latest, at(A, 8 * HOUR), false).await;
    assert!(c1.started);
    let c1 = ConversationTarget::Given(c1.conversation.id);
    say(s, "app1", "u1", Some("t1"), c1.clone(), at(A, 8 * HOUR + 10 * MIN), false).await;
    say(s, "app1", "u1", Some("t1"), c1, at(A, 9 * HOUR), false).await;
    // c2: u2 writes A 20:00 out of hours (the auto-reply is no response);
    // the team answers B 00:30, after 4 h 30 min.
    let c2 = say(s, "app1", "u2", None, ConversationTarget::Latest, at(A, 20 * HOUR), true).await;
    assert!(c2.reply.is_some(), "the office-hours reply");
    let c2 = ConversationTarget::Given(c2.conversation.id);
    say(s, "app1", "u2", Some("t1"), c2, at(B, 30 * MIN), false).await;
    // c3: Tess starts one with u3 on B 10:00; u3 answers, Tess too: no first response to wait for.
    let c3 = say(s, "app1", "u3", Some("t1"), ConversationTarget::New, at(B, 10 * HOUR), false).await;
    assert!(c3.started);
    say(s, "app1", "u3", None, ConversationTarget::Latest, at(B, 10 * HOUR + 5 * MIN), false).await;
    let c3 = ConversationTarget::Given(c3.conversation.id);
    say(s, "app1", "u3", Some("t1"), c3, at(B, 10 * HOUR + 10 * MIN), false).await;
    // c4: u4 writes B 11:00, answered after 2 min.
    let c4 = say(s, "app1", "u4", None, ConversationTarget::Latest, at(B, 11 * HOUR), false).await;
    let c4 = ConversationTarget::Given(c4.conversation.id);
    say(s, "app1", "u4", Some("t1"), c4, at(B, 11 * HOUR + 2 * MIN), false).await;
    // Another app's conversation, answered after a minute.
    let o = say(s, "app2", "v1", None, ConversationTarget::Latest, at(A, 8 * HOUR), false).await;
    say(s, "app2", "v1", None, ConversationTarget::Given(o.conversation.id), at(A, 8 * HOUR + MIN), false).await;
}

/// Of a message's delivery ids, `user`'s.
async fn delivery_of(s: &Store, ids: &[String], user: &str) -> String {
    let sql = "SELECT id FROM message_deliveries WHERE app_user_id = $1";
    let mine: Vec<String> = match s {
        Store::Sqlite(p) => sqlx::query_scalar(sql).bind(user).fetch_all(p).await.unwrap(),
        Store::Postgres(p) => sqlx::query_scalar(sql).bind(user).fetch_all(p).await.unwrap(),
    };
    ids.iter().find(|i| mine.contains(i)).unwrap().clone()
}

mod checks {
    use super::*;

    pub async fn each_event_counts_on_its_own_day(s: &Store) {
        seed(s).await;
        let now = at(C, 12 * HOUR);
        assert_eq!(s.roll_up_due_stats(now).await.unwrap(), 2, "both apps, never rolled up");
        let st = s.daily_stats("app1", A - 1, C).await.unwrap();
        assert_eq!(st.rolled_at, Some(now));
        let days = A - 1..=C;
        let check = |m: Metric, want: [Option<i64>; 4]| assert_eq!(values(&st, m, days.clone()), want, "{m:?}");
        let z = Some(0);
        check(Metric::WhisperSent, [z, Some(2), z, z]);
        check(Metric::WhisperSeen, [z, Some(1), Some(1), z]);
        check(Metric::WhisperClicked, [z, z, Some(2), z]);
        check(Metric::WhisperReplied, [z, z, Some(1), z]);
        check(Metric::MessageSent, [z, Some(2), z, z]);
        check(Metric::MessageSeen, [z, z, Some(1), z]);
        check(Metric::MessageClicked, [z, z, Some(1), z]);
        check(Metric::MessageReplied, [z, z, z, z]);
        check(Metric::ConversationsOpened, [z, Some(2), Some(2), z]);
        check(Metric::FirstResponses, [z, Some(1), Some(2), z]);
        // A: 10 min. B: the median of 4 h 30 min and 2 min.
        check(Metric::FirstResponseMs, [None, Some(10 * MIN), Some((270 * MIN + 2 * MIN) / 2), None]);
        // The snapshot is today's only.
        check(Metric::UsersTotal, [None, None, None, Some(5)]);
        check(Metric::Active1d, [None, None, None, Some(1)]);
        check(Metric::Active7d, [None, None, None, Some(2)]);
        check(Metric::Active30d, [None, None, None, Some(3)]);
        // Never rolled up: the last 90 days were counted, no further.
        assert_eq!(s.daily_stats("app1", C - 89, C - 89).await.unwrap().get(C - 89, Metric::WhisperSent), Some(0));
        assert!(s.daily_stats("app1", C - 90, C - 90).await.unwrap().values.is_empty());

        // The other app has its own figures, none of app1's.
        let other = s.daily_stats("app2", A - 1, C).await.unwrap();
        let o = |m: Metric| values(&other, m, A..=C);
        assert_eq!(o(Metric::WhisperSent), [Some(1), z, z]);
        assert_eq!(o(Metric::WhisperSeen), [Some(1), z, z]);
        assert_eq!(o(Metric::MessageSent), [Some(1), z, z]);
        assert_eq!(o(Metric::ConversationsOpened), [Some(1), z, z]);
        assert_eq!(o(Metric::FirstResponses), [z, z, z], "v1's second message is no team reply");
        assert_eq!(o(Metric::UsersTotal), [None, None, Some(1)]);
        assert_eq!(o(Metric::Active1d), [None, None, Some(1)]);
        assert!(s.daily_stats("nope", A, C).await.unwrap().values.is_empty());
    }

    pub async fn rolling_up_again_changes_nothing(s: &Store) {
        seed(s).await;
        let now = at(C, 12 * HOUR);
        s.roll_up_stats("app1", now).await.unwrap();
        let first = s.daily_stats("app1", C - 100, C).await.unwrap();
        s.roll_up_stats("app1", now).await.unwrap();
        s.roll_up_stats("app1", now).await.unwrap();
        assert_eq!(s.daily_stats("app1", C - 100, C).await.unwrap(), first);
        // Two at once (PostgreSQL: two instances' rollups) agree too.
        let (a, b) = tokio::join!(s.roll_up_stats("app1", now), s.roll_up_stats("app1", now));
        a.unwrap();
        b.unwrap();
        assert_eq!(s.daily_stats("app1", C - 100, C).await.unwrap(), first);
        // Within a minute nothing is due again; app2 (never rolled up) is.
        assert_eq!(s.roll_up_due_stats(now + 30_000).await.unwrap(), 1);
        assert_eq!(s.roll_up_due_stats(now + 59_000).await.unwrap(), 0);
        assert_eq!(s.roll_up_due_stats(now + 60_000).await.unwrap(), 1, "app1 again");
        assert_eq!(s.daily_stats("app1", C - 100, C).await.unwrap().values, first.values);
    }

    pub async fn yesterday_is_recounted_and_older_days_are_kept(s: &Store) {
        seed(s).await;
        s.roll_up_due_stats(at(C, 12 * HOUR)).await.unwrap();
        // A card sent in the last second of C, after C's last rollup.
        card(s, "app1", "w1", "u4", "d4", at(C, DAY_MS - 1_000), true).await;
        s.roll_up_due_stats(at(C + 1, 30_000)).await.unwrap();
        let st = s.daily_stats("app1", C, C + 1).await.unwrap();
        assert_eq!(st.get(C, Metric::WhisperSent), Some(1), "counted on its own day");
        assert_eq!(st.get(C + 1, Metric::WhisperSent), Some(0));
        assert_eq!(st.get(C, Metric::UsersTotal), Some(5), "C keeps its own snapshot");
        assert_eq!(st.get(C + 1, Metric::UsersTotal), Some(5));
        assert_eq!(st.get(C + 1, Metric::Active1d), Some(1), "u1 was seen 13 hours ago");
        assert_eq!(st.get(C + 1, Metric::Active7d), Some(2));

        // u1 is deleted with their cards and conversation: days before the
        // last rollup keep their numbers; today's snapshot follows.
        assert!(s.delete_app_user("app1", "u1").await.unwrap());
        let later = at(C + 4, 8 * HOUR);
        s.roll_up_due_stats(later).await.unwrap();
        let st = s.daily_stats("app1", A, C + 4).await.unwrap();
        assert_eq!(st.get(A, Metric::WhisperSent), Some(2));
        assert_eq!(st.get(A, Metric::FirstResponseMs), Some(10 * MIN));
        assert_eq!(st.get(C, Metric::WhisperSent), Some(1));
        assert_eq!(st.get(C + 4, Metric::UsersTotal), Some(4));
        for d in C + 2..=C + 3 {
            assert_eq!(st.get(d, Metric::WhisperSent), Some(0), "the days the server was down are counted");
            assert_eq!(st.get(d, Metric::UsersTotal), None, "but have no snapshot");
        }
    }
}

conformance!(sqlite, postgres, super::checks;
    each_event_counts_on_its_own_day,
    rolling_up_again_changes_nothing,
    yesterday_is_recounted_and_older_days_are_kept,
);

// ---- the page ----

/// The overview's server function as `session`.
async fn overview(app: &support::TestApp, session: &str, app_id: &str, range: &str) -> support::Response {
    app.call("apps/overview", &[("input[app_id]", app_id), ("input[range]", range)], Some(session), &[]).await
}

fn series(v: &Value, key: &str) -> Vec<Value> {
    v["series"].as_array().unwrap().iter().find(|s| s["key"] == key).unwrap()["values"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_page_shows_the_figures_to_the_apps_teammates_only() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop1 = shop(&app, &owner, "Shop").await;
    let other = shop(&app, &owner, "Other shop").await;
    for u in ["ada", "bob"] {
        let r = rest(&app, &shop1, "POST", "/v1.1/appusers", json!({"userId": u})).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let tess = app.add_tess(&shop1.app_id, &owner).await;

    // The first open counts an app never rolled up; the range is 7 days.
    let page = app.get(&format!("/apps/{}?range=7", shop1.app_id), Some(&tess)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    // Without the hydration markers (`<!>`).
    let b = &page.body.replace("<!>", "");
    assert!(b.contains("<h1>Overview</h1>"), "{b}");
    for chart in ["chart-users", "chart-whispers", "chart-messages", "chart-conversations", "chart-first-response"] {
        assert!(b.contains(&format!(r#"data-testid="{chart}""#)), "{chart}: {b}");
    }
    assert_eq!(b.matches("<svg").count(), 6, "one SVG per chart");
    assert!(b.contains(r#"role="img""#) && b.contains("<table"), "{b}");
    assert!(b.contains(r#"aria-current="page">Last 7 days</a>"#), "{b}");
    // The numbers as text: two users, in the summary and the table's 7 rows.
    assert!(b.contains(r#"data-testid="stat-users" class="stat"><dt>Users</dt><dd>2</dd>"#), "{b}");
    assert!(b.contains("Updated 11:06 UTC"), "the rollup's time, from the injected clock: {b}");
    assert_eq!(b.matches("<tr><th scope=\"row\">").count(), 6 * 7 + 5, "7 days per table, and the totals rows");

    // The server function: 7 values per series, the users as of today.
    let r = overview(&app, &tess, &shop1.app_id, "7").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["range"], 7);
    let users = series(&v, "users");
    assert_eq!(users.len(), 7);
    assert_eq!(users[6], 2);
    assert_eq!(series(&v, "whisper_sent"), vec![json!(0); 7]);
    // Any other range reads as 30 days.
    let r = overview(&app, &tess, &shop1.app_id, "365").await;
    assert_eq!(r.json()["range"], 30);

    // Tess is not a teammate of the other shop: no figures, on the page or by the function.
    let r = overview(&app, &tess, &other.app_id, "30").await;
    assert_eq!(r.status, 404, "{}", r.body);
    let page = app.get(&format!("/apps/{}", other.app_id), Some(&tess)).await;
    assert!(page.body.contains("This app does not exist, or you do not have access to it."), "{}", page.body);
    assert!(!page.body.contains("<svg"), "{}", page.body);
    let r = overview(&app, "not-a-session", &shop1.app_id, "30").await;
    assert_eq!(r.status, 401, "{}", r.body);
    // The owner sees the other shop's (empty) figures.
    let r = overview(&app, &owner, &other.app_id, "90").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(series(&r.json(), "users").last().unwrap(), &json!(0));
}
