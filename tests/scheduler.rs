//! Property-match whispers as time passes, on both backends: a simulated
//! 30 days, hour by hour (the injected clock moves; nothing sleeps), over
//! users with random sign-up and last-seen times, several whispers, profile
//! changes through the REST API and users created on the way, checked
//! against a brute-force oracle that evaluates every user at every hour.
//! And on PostgreSQL, two instances ticking at once deliver each match once.

mod support;

use std::{collections::BTreeSet, time::Duration};

use murmur::{
    domain::{
        conditions::{matches_all, Checked, Condition, Operator, UserProps},
        properties::{Builtin, PropType, Value},
        whisper::{from_template, Trigger, WhisperDraft},
    },
    storage::{AppUserChanges, NewAppUser, Store},
};
use serde_json::json;
use support::{
    shop::{rest, save_whisper, shop, Shop},
    spawn_app, Backend, TestDb, START_MS,
};

const HOUR: i64 = 3_600_000;
/// These tests tick the scheduler themselves as they move the clock: the
/// instances' own timer is off (it would tick at moments the test does not
/// choose, with a clock the test is moving).
const MANUAL: &[(&str, &str)] = &[("SCHEDULER_PERIOD_MS", "0")];
const DAY: i64 = 24 * HOUR;

fn cond(property: &str, operator: Operator, value: &str) -> Condition {
    Condition { property: property.into(), operator, value: value.into() }
}

fn whisper(shop: &Shop, name: &str, conditions: Vec<Condition>) -> WhisperDraft {
    let mut d = from_template(None, &shop.owner_id);
    d.name = name.into();
    d.trigger = Trigger::PropertyMatch;
    d.conditions = conditions;
    d.text = format!("{name} for {{{{ firstName || you }}}}");
    d
}

/// Every (whisper id, murmur user id, hour of the simulation) delivered.
async fn deliveries(store: &Store) -> BTreeSet<(String, String, i64)> {
    let sql = "SELECT whisper_id, app_user_id, created_at FROM deliveries";
    let rows: Vec<(String, String, i64)> = match store {
        Store::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        Store::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
    };
    rows.into_iter()
        .map(|(w, u, at)| {
            assert_eq!((at - START_MS) % HOUR, 0, "delivered at a tick");
            (w, u, (at - START_MS) / HOUR)
        })
        .collect()
}

/// A user as the oracle sees them at some hour.
struct Sim {
    signed_up: i64,
    last_seen: Option<i64>,
    plan: &'static str,
}

impl UserProps for Sim {
    fn builtin(&self, b: &Builtin) -> Option<Value> {
        match b.name {
            "signedUpAt" => Some(Value::Date(self.signed_up)),
            "lastSeenAt" => self.last_seen.map(Value::Date),
            _ => None,
        }
    }
    fn custom(&self, name: &str) -> Option<Value> {
        (name == "plan").then(|| Value::Text(self.plan.to_string()))
    }
}

/// A simulated user: murmur id, values, from which hour they exist, and
/// the hour their plan turns gold (if it does).
struct SimUser {
    id: String,
    user_id: String,
    signed_up: i64,
    last_seen: Option<i64>,
    plan: &'static str,
    from_hour: i64,
    gold_at: Option<i64>,
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: i64) -> i64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as i64).rem_euclid(n)
    }
}

const HOURS: i64 = 30 * 24;
const USERS: usize = 1500;
const GOLD_HOUR: i64 = 100;
const NEWCOMERS_HOUR: i64 = 200;

async fn thirty_days(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, MANUAL).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    let store = app.state.store.clone();
    let mut rng = Rng(42);

    // The users, before any whisper: random sign-up and last-seen times.
    let mut users = vec![];
    for i in 0..USERS {
        let signed_up = START_MS - rng.below(12 * DAY);
        let last_seen = (rng.below(5) > 0).then(|| signed_up.max(START_MS - rng.below(9 * DAY)));
        let plan = if rng.below(3) == 0 { "gold" } else { "free" };
        let row = store
            .create_app_user(
                &NewAppUser {
                    id: murmur::storage::new_id(),
                    app_id: shop.app_id.clone(),
                    user_id: Some(format!("user-{i}")),
                    given_name: None,
                    surname: None,
                    email: None,
                    signed_up_at: signed_up,
                    app_version: None,
                    app_version_key: None,
                    platform: None,
                    properties: json!({ "plan": plan }).as_object().unwrap().clone(),
                    now: START_MS,
                },
                &[("plan".into(), "text")],
            )
            .await
            .unwrap();
        if let Some(seen) = last_seen {
            let changes = AppUserChanges { last_seen_at: Some(seen), ..AppUserChanges::default() };
            store.update_app_user(&shop.app_id, &row.id, &changes, &[], 100, START_MS).await.unwrap();
        }
        let gold_at = (plan == "free" && i % 7 == 0).then_some(GOLD_HOUR);
        users.push(SimUser {
            id: row.id,
            user_id: format!("user-{i}"),
            signed_up,
            last_seen,
            plan,
            from_hour: 0,
            gold_at,
        });
    }

    // Five property-match whispers, activated at hour 0.
    let drafts = [
        from_template(Some("rating"), &shop.owner_id),
        from_template(Some("reengage"), &shop.owner_id),
        whisper(
            &shop,
            "Gold after two days",
            vec![cond("plan", Operator::Is, "gold"), cond("signedUpAt", Operator::MoreThanDaysAgo, "2")],
        ),
        whisper(&shop, "Ten days exactly", vec![cond("signedUpAt", Operator::ExactlyDaysAgo, "10")]),
        whisper(&shop, "Brand new", vec![cond("signedUpAt", Operator::LessThanDaysAgo, "1")]),
    ];
    assert!(drafts.iter().all(|d| d.trigger == Trigger::PropertyMatch), "Rating and Re-engage watch the user base");
    let mut whispers = vec![];
    for d in &drafts {
        let id = save_whisper(&app, &shop, d).await;
        let types = |n: &str| (n == "plan").then_some(PropType::Text);
        let checked: Vec<Checked> = d.conditions.iter().map(|c| c.check(types).unwrap()).collect();
        whispers.push((id, checked));
    }

    // Thirty days, hour by hour.
    for hour in 0..=HOURS {
        if hour > 0 {
            app.clock.advance_ms(HOUR);
        }
        let now = START_MS + hour * HOUR;
        if hour == GOLD_HOUR {
            // Profile changes through the REST API: some users turn gold.
            for u in users.iter().filter(|u| u.gold_at == Some(hour)) {
                let r = rest(
                    &app,
                    &shop,
                    "PUT",
                    &format!("/v1.1/appusers/{}", u.user_id),
                    json!({"properties": {"plan": "gold"}}),
                )
                .await;
                assert_eq!(r.status, 200, "{}", r.body);
            }
        }
        if hour == NEWCOMERS_HOUR {
            // Users created through the REST API while the whispers run.
            for i in 0..40 {
                let signed_up = now - rng.below(3 * DAY);
                let user_id = format!("newcomer-{i}");
                let body = json!({"userId": user_id, "signedUpAt": murmur::domain::properties::format_iso8601(signed_up),
                                  "properties": {"plan": "gold"}});
                let r = rest(&app, &shop, "POST", "/v1.1/appusers", body).await;
                assert_eq!(r.status, 201, "{}", r.body);
                let id = r.json()["appUser"]["_id"].as_str().unwrap().to_string();
                users.push(SimUser {
                    id,
                    user_id,
                    // The API keeps seconds.
                    signed_up: signed_up / 1000 * 1000,
                    last_seen: None,
                    plan: "gold",
                    from_hour: hour,
                    gold_at: None,
                });
            }
        }
        app.state.engine.run_due().await.unwrap();
    }
    assert_eq!(store.due_count(START_MS + HOURS * HOUR).await.unwrap(), 0, "nothing left due");

    // The oracle: each user at every hour, with the values they had then.
    let mut expected = BTreeSet::new();
    for u in &users {
        for (wid, checked) in &whispers {
            let first = (u.from_hour..=HOURS).find(|&h| {
                let plan = if u.gold_at.is_some_and(|g| h >= g) { "gold" } else { u.plan };
                let sim = Sim { signed_up: u.signed_up, last_seen: u.last_seen, plan };
                matches_all(checked, &sim, START_MS + h * HOUR)
            });
            if let Some(h) = first {
                expected.insert((wid.clone(), u.id.clone(), h));
            }
        }
    }
    let got = deliveries(&store).await;
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(&expected).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, extra {extra:?}");
    // The simulation exercised every kind of arrival.
    let hours: BTreeSet<i64> = got.iter().map(|d| d.2).collect();
    assert!(hours.contains(&0) && hours.contains(&GOLD_HOUR) && hours.contains(&NEWCOMERS_HOUR));
    assert!(hours.len() > 50, "deliveries spread over the month: {}", hours.len());
    assert!(got.len() > USERS, "{} deliveries", got.len());
}

#[tokio::test]
async fn thirty_days_against_an_oracle_sqlite() {
    tokio::time::timeout(Duration::from_secs(300), thirty_days(Backend::Sqlite)).await.unwrap();
}

#[tokio::test]
async fn thirty_days_against_an_oracle_postgres() {
    tokio::time::timeout(Duration::from_secs(300), thirty_days(Backend::Postgres)).await.unwrap();
}

/// Two instances on one PostgreSQL database tick at once: every match is
/// delivered once, and neither takes a row the other took.
#[tokio::test]
async fn two_instances_deliver_each_match_once() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let (a, b) = (spawn_app(&db, MANUAL).await, spawn_app(&db, MANUAL).await);
    let owner = a.setup_owner().await;
    let shop = shop(&a, &owner, "Shop").await;
    for i in 0..600 {
        let seen = START_MS - (if i % 3 == 0 { 2 } else { 8 }) * DAY;
        let r = rest(&a, &shop, "POST", "/v1.1/appusers", json!({"userId": format!("u{i}")})).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.json()["appUser"]["_id"].as_str().unwrap().to_string();
        let changes = AppUserChanges { last_seen_at: Some(seen), ..AppUserChanges::default() };
        a.state.store.update_app_user(&shop.app_id, &id, &changes, &[], 100, START_MS).await.unwrap();
    }
    save_whisper(&a, &shop, &from_template(Some("reengage"), &shop.owner_id)).await;
    let (ma, mb) = tokio::join!(a.state.engine.run_due(), b.state.engine.run_due());
    let (ma, mb) = (ma.unwrap(), mb.unwrap());
    assert_eq!(ma + mb, 400, "each of the 400 users seen 8 days ago once ({ma} + {mb})");
    assert_eq!(deliveries(&a.state.store).await.len(), 400);
    // The 200 seen 2 days ago are due in 5 days; move both clocks there.
    assert_eq!(a.state.store.due_count(START_MS).await.unwrap(), 0);
    for app in [&a, &b] {
        app.clock.advance_ms(5 * DAY + HOUR);
    }
    let (ma, mb) = tokio::join!(a.state.engine.run_due(), b.state.engine.run_due());
    assert_eq!(ma.unwrap() + mb.unwrap(), 200);
    assert_eq!(deliveries(&a.state.store).await.len(), 600);
}

/// A marketer activates Re-engage and moves no clock: users who were last
/// seen more than 7 days ago get it now, the others 7 days after their
/// last visit, and a user who comes back (their widget starts) is
/// rescheduled from that visit.
#[tokio::test]
async fn reengage_follows_the_last_visit() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else { return };
    let app = spawn_app(&db, MANUAL).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    let mut ids = vec![];
    for (i, days) in [10, 3, 1].into_iter().enumerate() {
        let r = rest(&app, &shop, "POST", "/v1.1/appusers", json!({"userId": format!("u{i}")})).await;
        let id = r.json()["appUser"]["_id"].as_str().unwrap().to_string();
        let changes = AppUserChanges { last_seen_at: Some(START_MS - days * DAY), ..AppUserChanges::default() };
        app.state.store.update_app_user(&shop.app_id, &id, &changes, &[], 100, START_MS).await.unwrap();
        ids.push(id);
    }
    save_whisper(&app, &shop, &from_template(Some("reengage"), &shop.owner_id)).await;
    let engine = &app.state.engine;
    let who = |d: &BTreeSet<(String, String, i64)>| {
        let mut v: Vec<usize> = d.iter().map(|(_, u, _)| ids.iter().position(|i| i == u).unwrap()).collect();
        v.sort();
        v
    };
    engine.run_due().await.unwrap();
    assert_eq!(who(&deliveries(&app.state.store).await), [0], "seen 10 days ago: at once");

    // Day 4, one hour later: u1 (seen 3 days before the start) is due.
    app.clock.advance_ms(4 * DAY + HOUR);
    engine.run_due().await.unwrap();
    let d = deliveries(&app.state.store).await;
    assert_eq!(who(&d), [0, 1]);
    assert!(d.iter().any(|(_, u, h)| u == &ids[1] && *h == 4 * 24 + 1), "{d:?}");
    // u2 comes back now: its widget starts (an app launch).
    engine
        .update_user(
            &shop.app_id,
            &ids[2],
            &Default::default(),
            murmur::engine::actions::UpdateFrom::Launch { verified: true },
        )
        .await
        .unwrap();
    // Its old due time (7 days after the first visit) passes: nothing.
    app.clock.advance_ms(2 * DAY);
    engine.run_due().await.unwrap();
    assert_eq!(who(&deliveries(&app.state.store).await), [0, 1], "u2 came back");
    // 7 days after it came back: u2 gets it.
    app.clock.advance_ms(5 * DAY + HOUR);
    engine.run_due().await.unwrap();
    assert_eq!(who(&deliveries(&app.state.store).await), [0, 1, 2]);
}

/// The editor's live count forecasts how many users will start matching
/// in each of the next 7 days, as time alone passes.
async fn forecast(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, MANUAL).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    for k in 1..=9 {
        let signed = murmur::domain::properties::format_iso8601(START_MS - k * DAY);
        let r =
            rest(&app, &shop, "POST", "/v1.1/appusers", json!({"userId": format!("u{k}"), "signedUpAt": signed})).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let conditions = serde_json::to_string(&[cond("signedUpAt", Operator::MoreThanDaysAgo, "5")]).unwrap();
    let r = app
        .call(
            "whispers/audience",
            &[("input[app_id]", &shop.app_id), ("input[all_users]", "false"), ("input[conditions]", &conditions)],
            Some(&shop.owner),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["count"], 4, "signed up 6 to 9 days ago: {v}");
    assert_eq!(v["forecast"], json!([1, 1, 1, 1, 1, 0, 0]), "one more each day, then nobody left: {v}");
}

#[tokio::test]
async fn forecast_sqlite() {
    forecast(Backend::Sqlite).await;
}

#[tokio::test]
async fn forecast_postgres() {
    forecast(Backend::Postgres).await;
}
