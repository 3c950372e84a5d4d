//! kill -9 in the middle of the scheduler's work loses and duplicates
//! nothing: the real binary on PostgreSQL is killed while it delivers a
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
