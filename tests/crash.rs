//! kill -9 in the middle of the scheduler's work, or of a manual message's
//! send (20 times, both backends), loses and duplicates nothing. The scheduler: the real binary on PostgreSQL is killed while it delivers a
//! property-match whisper to thousands of due users; every user is then
//! either delivered or still due, and after a restart every one of them has
//! it exactly once.

mod support;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use murmur::{
    domain::{
        conditions::{Condition, Operator},
        whisper::{from_template, Trigger},
    },
    storage::{AppRow, DbUrl, Store},
};
use support::{Backend, TestDb, TEST_SECRET_KEY};

const USERS: i64 = 6000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn start(url: &str, data_dir: &std::path::Path) -> Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    Command::new(env!("CARGO_BIN_EXE_murmur"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DATABASE_URL", url)
        .env("DATA_DIR", data_dir)
        .env("SECRET_KEY", TEST_SECRET_KEY)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Waits (bounded) until `sql` counts at least `n`.
async fn until(pool: &sqlx::PgPool, sql: &str, n: i64, within: Duration) -> i64 {
    let deadline = Instant::now() + within;
    loop {
        let c = count(pool, sql).await;
        if c >= n || Instant::now() > deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn kill_9_during_a_tick_loses_and_duplicates_nothing() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let DbUrl::Postgres(url) = db.url.clone() else { unreachable!() };
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let Store::Postgres(pool) = store.clone() else { unreachable!() };

    // An app, USERS users who signed up 3 days ago, and an active
    // "signed up more than 1 day ago" whisper: everyone is due now.
    let now = now_ms();
    store
        .insert_app(
            &AppRow {
                id: "crashapp01".into(),
                name: "Crash".into(),
                identity_secret_enc: vec![1; 40],
                created_at: now,
            },
            &[],
        )
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO app_users (id, app_id, user_id, signed_up_at, properties, created_at, updated_at) \
         SELECT 'user' || g, 'crashapp01', 'u' || g, $1, '{}', $1, $1 FROM generate_series(1, $2) g",
    )
    .bind(now - 3 * 86_400_000)
    .bind(USERS)
    .execute(&pool)
    .await
    .unwrap();
    let mut d = from_template(None, "nobody");
    d.name = "Day one".into();
    d.trigger = Trigger::PropertyMatch;
    d.conditions =
        vec![Condition { property: "signedUpAt".into(), operator: Operator::MoreThanDaysAgo, value: "1".into() }];
    d.text = "Hello {{ firstName || there }}".into();
    store.insert_whisper("crashwhisp01", "crashapp01", "active", &d, now).await.unwrap();
    assert_eq!(store.schedule_everyone("crashapp01", "crashwhisp01", now).await.unwrap(), USERS as u64);

    let delivered = "SELECT COUNT(*) FROM deliveries";
    let due = "SELECT COUNT(*) FROM whisper_due";
    // The first instance starts delivering; kill -9 it part way.
    let mut first = start(&url, &db.data_dir);
    let seen = until(&pool, delivered, 1, Duration::from_secs(60)).await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let (d1, q1) = (count(&pool, delivered).await, count(&pool, due).await);
    assert!(seen > 0, "the scheduler never delivered");
    assert!(d1 < USERS, "killed too late to test anything: {d1} delivered");
    assert_eq!(d1 + q1, USERS, "every user is delivered or still due ({d1} + {q1})");

    // A new instance finishes the work: everyone exactly once.
    let mut second = start(&url, &db.data_dir);
    let done = until(&pool, delivered, USERS, Duration::from_secs(120)).await;
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(done, USERS);
    assert_eq!(count(&pool, due).await, 0);
    let distinct = count(&pool, "SELECT COUNT(DISTINCT app_user_id) FROM deliveries").await;
    assert_eq!(distinct, USERS, "no user twice");
    store.close().await;
}

/// Recipients of a manual message being fixed (in chunks).
const RECIPIENTS: i64 = 100_000;
const KILLS: usize = 20;

async fn count_any(store: &Store, sql: &str) -> i64 {
    match store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        Store::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
    }
}

fn start_with(url: &str, data_dir: &std::path::Path, period_ms: &str) -> Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    Command::new(env!("CARGO_BIN_EXE_murmur"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DATABASE_URL", url)
        .env("DATA_DIR", data_dir)
        .env("SECRET_KEY", TEST_SECRET_KEY)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("SCHEDULER_PERIOD_MS", period_ms)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// kill -9 of the server 20 times while it fixes the recipients of a
/// 100,000-user in-app send: after the restarts every recipient has
/// exactly one delivery and the message is sent once, with that count.
async fn kill_9_during_a_send(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let url = match &db.url {
        DbUrl::Sqlite(u) | DbUrl::Postgres(u) => u.clone(),
    };
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let now = now_ms();
    let app =
        AppRow { id: "sendapp001".into(), name: "Send".into(), identity_secret_enc: vec![1; 40], created_at: now };
    store.insert_app(&app, &[]).await.unwrap();
    let seed = match &store {
        Store::Sqlite(_) => {
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $2) \
             INSERT INTO app_users (id, app_id, user_id, signed_up_at, properties, created_at, updated_at) \
             SELECT printf('%024x', n), 'sendapp001', 'u' || n, $1, jsonb('{}'), $1, $1 FROM g"
        }
        Store::Postgres(_) => {
            "INSERT INTO app_users (id, app_id, user_id, signed_up_at, properties, created_at, updated_at) \
             SELECT lpad(to_hex(g), 24, '0'), 'sendapp001', 'u' || g, $1, '{}', $1, $1 FROM generate_series(1, $2) g"
        }
    };
    match &store {
        Store::Sqlite(p) => sqlx::query(seed).bind(now).bind(RECIPIENTS).execute(p).await.map(|_| ()).unwrap(),
        Store::Postgres(p) => sqlx::query(seed).bind(now).bind(RECIPIENTS).execute(p).await.map(|_| ()).unwrap(),
    }
    store
        .insert_manual(&murmur::storage::manual::ManualRow {
            id: "5e0d000000000000000000aa".into(),
            app_id: "sendapp001".into(),
            title: "Everyone".into(),
            sender_id: None,
            sender_name: "The team".into(),
            kind: "chat".into(),
            body: "Hello {{ firstName || there }}".into(),
            audience: r#"{"type":"segment","conditions":[]}"#.into(),
            state: "scheduled".into(),
            send_at: Some(now),
            recipients: None,
            created_by: None,
            created_at: now,
            updated_at: now,
            stopped_at: None,
            push: false,
        })
        .await
        .unwrap();

    let fixed = "SELECT COUNT(*) FROM message_deliveries";
    let sent = "SELECT COUNT(*) FROM manual_messages WHERE state = 'sent'";
    let mut kills_mid_send = 0;
    let mut last = 0;
    for _ in 0..KILLS {
        let mut server = start_with(&url, &db.data_dir, "20");
        // Wait for progress (a chunk committed) or the end, then kill: the
        // worker is in the middle of its next chunk.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let c = count_any(&store, fixed).await;
            if c > last || count_any(&store, sent).await == 1 || Instant::now() > deadline {
                break;
            }
            tokio::task::yield_now().await;
        }
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        let c = count_any(&store, fixed).await;
        if count_any(&store, sent).await == 0 {
            kills_mid_send += 1;
        }
        assert!(c >= last, "a committed chunk was lost: {c} < {last}");
        last = c;
    }
    // A last instance finishes what is left.
    let mut server = start_with(&url, &db.data_dir, "20");
    let deadline = Instant::now() + Duration::from_secs(120);
    while count_any(&store, sent).await == 0 && Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(kills_mid_send >= 1, "no kill landed during the send");
    assert_eq!(count_any(&store, sent).await, 1, "the send finished");
    assert_eq!(count_any(&store, fixed).await, RECIPIENTS, "every recipient has a delivery");
    let distinct = count_any(&store, "SELECT COUNT(DISTINCT app_user_id) FROM message_deliveries").await;
    assert_eq!(distinct, RECIPIENTS, "nobody twice");
    let recorded = count_any(&store, "SELECT recipients FROM manual_messages").await;
    assert_eq!(recorded, RECIPIENTS);
    eprintln!("{backend:?}: {kills_mid_send} of {KILLS} kills landed during the send");
    store.close().await;
}

#[tokio::test]
async fn kill_9_during_a_send_sqlite() {
    kill_9_during_a_send(Backend::Sqlite).await;
}

#[tokio::test]
async fn kill_9_during_a_send_postgres() {
    kill_9_during_a_send(Backend::Postgres).await;
}
