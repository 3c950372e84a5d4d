//! The overview with the seeded users (1,000,000 by default) and 10 per
//! user of deliveries (8 whisper cards and 2 manual messages each: 10M
//! at the default), sent over 90 days, half seen, a tenth clicked, a
//! fiftieth replied, and a conversation with a team reply for a tenth of
//! the users. Seeded with `INSERT … SELECT` over `app_users`.
//!
//! Measures the rollup (the first one, counting 90 days; then a
//! scheduler's round, recounting yesterday and today), then the page's
//! read: the server function's work (`server::overview::load`: membership
//! check, the stored figures of 90 days) and its storage call alone
//! (`Store::daily_stats`), p50 and p99, beside the baseline of counting
//! one metric (whisper cards sent per day over 90 days) per request.

use std::time::Instant;

use murmur::{
    domain::whisper::from_template,
    server::{overview::load, AppState},
    storage::{
        manual::ManualRow,
        stats::{day_of, DAY_MS as DAY},
        Store, TeammateRow,
    },
};

use super::{
    inbox::{ms, percentile, timed},
    APP_ID,
};

const READER: &str = "0000000000000000000000f1";
const WHISPERS: i64 = 8;
const MESSAGES: i64 = 2;

async fn exec(store: &Store, sql: &str, now: i64) {
    let started = Instant::now();
    let rows = match store {
        Store::Sqlite(p) => sqlx::query(sql).bind(APP_ID).bind(now).execute(p).await.unwrap().rows_affected(),
        Store::Postgres(p) => sqlx::query(sql).bind(APP_ID).bind(now).execute(p).await.unwrap().rows_affected(),
    };
    eprintln!("  {rows} rows in {:.1} s: {}", started.elapsed().as_secs_f64(), &sql[..sql.len().min(60)]);
}

/// Times spread over the 90 days before `now` ($2), per user and `k`
/// (from the seeded `signed_up_at`, which is pseudo-random), and a second
/// pseudo-random number `h`.
fn spread(k: i64) -> String {
    format!(
        "SELECT id, app_id, $2 - ((signed_up_at * {}) % {}) AS t, (signed_up_at / 7 + {k}) AS h \
         FROM app_users WHERE app_id = $1",
        k + 3,
        90 * DAY
    )
}

async fn seed(store: &Store, now: i64) {
    let t = TeammateRow {
        id: READER.into(),
        name: "Overview Reader".into(),
        email: format!("{READER}@bench.example"),
        password_hash: "-".into(),
        is_owner: false,
        created_at: now,
    };
    store.insert_teammate(&t, Some(APP_ID)).await.unwrap();
    // Seen within the last 40 days (never after now).
    exec(
        store,
        &format!(
            "UPDATE app_users SET last_seen_at = CASE WHEN $2 - (signed_up_at % {}) > $2 THEN $2 \
             ELSE $2 - (signed_up_at % {}) END WHERE app_id = $1",
            40 * DAY,
            40 * DAY
        ),
        now,
    )
    .await;
    let times = "t, CASE WHEN h % 2 = 0 THEN t + 600000 END, CASE WHEN h % 10 = 0 THEN t + 700000 END, \
                 CASE WHEN h % 50 = 0 THEN t + 800000 END, t";
    for k in 0..WHISPERS {
        let w = format!("b0000000000000000000000{k}");
        store.insert_whisper(&w, APP_ID, "paused", &from_template(Some("announcement"), "t1"), now).await.unwrap();
        let sql = format!(
            "INSERT INTO deliveries (id, app_id, whisper_id, app_user_id, revision, state, rendered, sent_at, \
             seen_at, clicked_at, replied_at, created_at) \
             SELECT 'o{k}' || u.id, u.app_id, '{w}', u.id, 1, 'sent', '{{}}', {times} FROM ({}) u",
            spread(k)
        );
        exec(store, &sql, now).await;
    }
    for k in 0..MESSAGES {
        let m = format!("mb000000000000000000000{k}");
        let row = ManualRow {
            id: m.clone(),
            app_id: APP_ID.into(),
            title: "Overview".into(),
            sender_id: None,
            sender_name: "The team".into(),
            kind: "chat".into(),
            body: "Hello".into(),
            audience: r#"{"type":"segment","conditions":[]}"#.into(),
            state: "sent".into(),
            send_at: Some(now),
            recipients: None,
            created_by: None,
            created_at: now,
            updated_at: now,
            stopped_at: None,
            push: false,
        };
        store.insert_manual(&row).await.unwrap();
        let sql = format!(
            "INSERT INTO message_deliveries (id, app_id, message_id, app_user_id, channel, state, rendered, sent_at, \
             seen_at, clicked_at, replied_at, created_at) \
             SELECT 'mo{k}' || u.id, u.app_id, '{m}', u.id, 'in_app', 'sent', '{{}}', {times} FROM ({}) u",
            spread(WHISPERS + k)
        );
        exec(store, &sql, now).await;
    }
    // A conversation for a tenth of the users, answered within an hour.
    let tenth = format!("SELECT * FROM ({}) s WHERE h % 10 = 3", spread(20));
    exec(
        store,
        &format!(
            "INSERT INTO conversations (id, app_id, app_user_id, state, started_by, last_activity_at, last_text, created_at) \
             SELECT 'ov' || u.id, u.app_id, u.id, 'open', 'user', u.t, 'Hello', u.t FROM ({tenth}) u"
        ),
        now,
    )
    .await;
    for (prefix, role, delay) in [("ou", "appUser", "0"), ("ot", "appMaker", "1000 * (h % 3600)")] {
        exec(
            store,
            &format!(
                "INSERT INTO messages (id, app_id, app_user_id, role, text, created_at, conversation_id) \
                 SELECT '{prefix}' || u.id, u.app_id, u.id, '{role}', 'Hello', u.t + {delay}, 'ov' || u.id FROM ({tenth}) u"
            ),
            now,
        )
        .await;
    }
    match store {
        Store::Sqlite(p) => {
            sqlx::query("ANALYZE").execute(p).await.unwrap();
        }
        Store::Postgres(p) => {
            sqlx::query("ANALYZE").execute(p).await.unwrap();
        }
    }
}

/// The baseline: whisper cards sent per day over 90 days, counted per request.
async fn count_per_request(store: &Store, now: i64) -> usize {
    let sql = format!(
        "SELECT sent_at / {DAY}, COUNT(*) FROM deliveries WHERE app_id = $1 AND sent_at IS NOT NULL \
         AND sent_at >= $2 GROUP BY sent_at / {DAY}"
    );
    let from = (day_of(now) - 89) * DAY;
    match store {
        Store::Sqlite(p) => sqlx::query(&sql).bind(APP_ID).bind(from).fetch_all(p).await.unwrap().len(),
        Store::Postgres(p) => sqlx::query(&sql).bind(APP_ID).bind(from).fetch_all(p).await.unwrap().len(),
    }
}

pub async fn overview(state: &AppState, users: usize, now: i64, runs: usize) {
    let store = &state.store;
    let t = Instant::now();
    seed(store, now).await;
    let deliveries = users as i64 * (WHISPERS + MESSAGES);
    eprintln!("  seeded {deliveries} deliveries in {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    store.roll_up_stats(APP_ID, now).await.unwrap();
    let first = t.elapsed();
    // A scheduler's round a minute later: yesterday and today recounted.
    let t = Instant::now();
    assert_eq!(store.roll_up_due_stats(now + 60_000).await.unwrap(), 1);
    let round = t.elapsed();
    println!(
        "| overview rollup, {users} users, {deliveries} deliveries: first (90 days) | {} | a scheduler round (yesterday and today): {} | once a minute, in the background |",
        ms(first),
        ms(round)
    );
    let me = store.teammate_by_id(READER).await.unwrap().expect("the overview reader");
    let t = Instant::now();
    let days = count_per_request(store, now).await;
    let baseline = t.elapsed();
    let today = day_of(now);
    let read = timed(runs, || store.daily_stats(APP_ID, today - 89, today)).await;
    let page = load(state, &me, APP_ID, 90).await.unwrap();
    assert_eq!(page.stats.get(today, murmur::storage::stats::Metric::UsersTotal), Some(users as i64));
    let service = timed(runs, || async { load(state, &me, APP_ID, 90).await.unwrap() }).await;
    println!(
        "| overview read, 90 days: the storage call (`Store::daily_stats`) | p50 {} | p99 {} (baseline: one metric counted per request over {days} days, once: {}) | {runs} runs |",
        ms(percentile(&read, 0.5)),
        ms(percentile(&read, 0.99)),
        ms(baseline),
    );
    println!(
        "| overview read, 90 days: the server function's work (`server::overview::load`) | p50 {} | p99 {} | {runs} runs; target ≤ 100 ms |",
        ms(percentile(&service, 0.5)),
        ms(percentile(&service, 0.99)),
    );
}
