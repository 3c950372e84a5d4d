//! The property-match scheduler at scale: 100 active property-match
//! whispers with date conditions over the seeded users. A tick (every due
//! check until none is left) timed at 100, 1,000 and 10,000 due users with
//! a million more due later in the index; beside it, the naive way (each
//! tick re-evaluates every whisper over every user). And property updates
//! through the engine with and without the due-time maintenance.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use murmur::{
    domain::{
        conditions::{Checked, Condition, Operator},
        properties::PropType,
        users::UserPatch,
        whisper::{from_template, Trigger},
    },
    engine::{actions::UpdateFrom, Engine},
    server::SystemClock,
    storage::Store,
};

use super::{ms, APP_ID, DAY};

const WHISPERS: usize = 100;

fn whisper_id(i: usize) -> String {
    format!("{i:012x}{:012x}", 0xbe_u64)
}

pub(crate) async fn exec(store: &Store, sql: &str) {
    match store {
        Store::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()).unwrap(),
        Store::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()).unwrap(),
    }
}

/// Makes `n` users due now, starting at user `from`; they are moved to a
/// sign-up 61 days ago, so each matches its seat count's whisper (and a
/// gold user a second one).
async fn make_due(store: &Store, from: usize, n: usize, now: i64) {
    exec(
        store,
        &format!(
            "UPDATE app_users SET signed_up_at = {} WHERE id IN ({})",
            now - 61 * DAY,
            (from..from + n).map(|i| format!("'{i:024x}'")).collect::<Vec<_>>().join(",")
        ),
    )
    .await;
    let rows: Vec<String> = (from..from + n).map(|i| format!("('{i:024x}', '{APP_ID}', {})", now - 1)).collect();
    for chunk in rows.chunks(1000) {
        let sql = format!(
            "INSERT INTO whisper_due (app_user_id, app_id, due_at) VALUES {} \
             ON CONFLICT (app_user_id) DO UPDATE SET due_at = excluded.due_at",
            chunk.join(",")
        );
        exec(store, &sql).await;
    }
}

pub async fn scheduler(store: &Store, users: usize, seconds: u64, now: i64) {
    // 100 whispers, each for one seat count, with a date condition: whisper
    // i is "seats = i mod 50 and signed up more than 5 days ago", and from
    // 50 on also "plan is gold and signed up more than 30 days ago". A user
    // matches one or two of them, as in an app whose whispers target
    // different people.
    // The seeded properties' types, as the API would have registered them.
    let sql = format!(
        "INSERT INTO property_catalog (app_id, name, ty, created_at) VALUES \
         ('{APP_ID}', 'plan', 'text', {now}), ('{APP_ID}', 'seats', 'number', {now}), ('{APP_ID}', 'vip', 'boolean', {now}) \
         ON CONFLICT DO NOTHING"
    );
    exec(store, &sql).await;
    let mut checked: Vec<Vec<Checked>> = vec![];
    for i in 0..WHISPERS {
        let mut d = from_template(None, "bench");
        d.name = format!("Seats {i}");
        d.trigger = Trigger::PropertyMatch;
        d.text = "Hi {{ firstName || there }}".into();
        let c = |p: &str, operator, v: String| Condition { property: p.into(), operator, value: v };
        d.conditions = vec![c("seats", Operator::Equals, (i % 50).to_string())];
        if i < 50 {
            d.conditions.push(c("signedUpAt", Operator::MoreThanDaysAgo, "5".into()));
        } else {
            d.conditions.push(c("plan", Operator::Is, "gold".into()));
            d.conditions.push(c("signedUpAt", Operator::MoreThanDaysAgo, "30".into()));
        }
        let types = |n: &str| match n {
            "plan" => Some(PropType::Text),
            "seats" => Some(PropType::Number),
            _ => None,
        };
        checked.push(d.conditions.iter().map(|c| c.check(types).unwrap()).collect());
        store.insert_whisper(&whisper_id(i), APP_ID, "active", &d, now).await.unwrap();
    }
    let engine = Engine::start(store.clone(), Arc::new(SystemClock), true, Duration::ZERO).await.unwrap();
    // Every user due later, so the index is as large as it gets.
    let sql = format!(
        "INSERT INTO whisper_due (app_user_id, app_id, due_at) SELECT id, app_id, {} FROM app_users",
        now + 30 * DAY
    );
    exec(store, &sql).await;
    // Warm: the whispers cache and the statements.
    make_due(store, 0, 10, now).await;
    engine.run_due().await.unwrap();

    let mut from = 10;
    for n in [100, 1_000, 10_000] {
        if from + n > users {
            break;
        }
        make_due(store, from, n, now).await;
        let started = Instant::now();
        let made = engine.run_due().await.unwrap();
        let took = started.elapsed();
        println!("| scheduler tick, {n} users due (of {users} users due later, 100 whispers) | {} | | {:.1} µs per due user, {made} deliveries |",
            ms(took), took.as_secs_f64() * 1e6 / n as f64);
        from += n;
    }
    // The naive tick: every whisper over every user (timed on 5, scaled to 100).
    let started = Instant::now();
    for c in checked.iter().take(5) {
        store.count_audience(APP_ID, c, now).await.unwrap();
    }
    let naive = started.elapsed() * (WHISPERS as u32 / 5);
    println!("| naive tick: re-evaluate 100 whispers over {users} users | {} (5 timed, ×20) | | independent of how many are due |", ms(naive));

    // Property updates through the engine, 32 at a time: with the 100
    // property-match whispers active (plan + due times replaced per update)
    // and with none (the same update, no plan).
    // The users updated: signed up less than 4 days ago (none matches a
    // whisper yet, so an update delivers nothing: what is measured is the
    // due-time upkeep itself, not deliveries).
    let recent: Vec<String> = {
        let sql = "SELECT id FROM app_users WHERE app_id = $1 AND signed_up_at > $2 ORDER BY id LIMIT 20000";
        match store {
            Store::Sqlite(p) => sqlx::query_scalar(sql).bind(APP_ID).bind(now - 4 * DAY).fetch_all(p).await.unwrap(),
            Store::Postgres(p) => sqlx::query_scalar(sql).bind(APP_ID).bind(now - 4 * DAY).fetch_all(p).await.unwrap(),
        }
    };
    let recent = Arc::new(recent);
    let rate = |label: &'static str| {
        let (engine, recent) = (engine.clone(), recent.clone());
        async move {
            let done = Arc::new(AtomicU64::new(0));
            let stop = Instant::now() + Duration::from_secs(seconds);
            let mut tasks = vec![];
            for t in 0..32usize {
                let (engine, done, recent) = (engine.clone(), done.clone(), recent.clone());
                tasks.push(tokio::spawn(async move {
                    let mut i = t;
                    while Instant::now() < stop {
                        let user = &recent[(i * 7919) % recent.len()];
                        let body = serde_json::json!({"properties": {"vip": i % 2 == 0}});
                        let patch = UserPatch::from_json(body.as_object().unwrap()).unwrap();
                        engine.update_user(APP_ID, user, &patch, UpdateFrom::Api).await.unwrap();
                        done.fetch_add(1, Ordering::Relaxed);
                        i += 32;
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let r = done.load(Ordering::Relaxed) as f64 / seconds as f64;
            (label, r)
        }
    };
    let (_, with) = rate("with").await;
    exec(store, "UPDATE whispers SET status = 'paused'").await;
    engine.whispers_changed(APP_ID).await;
    let (_, without) = rate("without").await;
    println!("| property updates with 100 property-match whispers (due times maintained), 32 at a time | {with:.0}/s | {without:.0}/s without them | {:+.1} % |",
        (with / without - 1.0) * 100.0);
}
