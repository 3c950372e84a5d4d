//! kill -9 in the middle of the scheduler's work, of a manual message's
//! send, or of sustained event ingest (20 times, both backends), loses and
//! duplicates nothing (ingest: every acknowledged event is stored, once).
//!
//! The scheduler: the real binary on PostgreSQL is killed while it delivers
//! a property-match whisper to thousands of due users; every user is then
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

/// `db` migrated, with one app: its URL, a store on it, and the time the app was made.
async fn migrated_with_app(db: &TestDb, id: &str, name: &str) -> (String, Store, i64) {
    let url = match &db.url {
        DbUrl::Sqlite(u) | DbUrl::Postgres(u) => u.clone(),
    };
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let now = now_ms();
    let app = AppRow { id: id.into(), name: name.into(), identity_secret_enc: vec![1; 40], created_at: now };
    store.insert_app(&app, &[]).await.unwrap();
    (url, store, now)
}

/// kill -9 of the server 20 times while it fixes the recipients of a
/// 100,000-user in-app send: after the restarts every recipient has
/// exactly one delivery and the message is sent once, with that count.
async fn kill_9_during_a_send(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let (url, store, now) = migrated_with_app(&db, "sendapp001", "Send").await;
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

/// Acknowledged events of the ingest test: kill -9 this many times per backend.
const INGEST_KILLS: usize = 20;
/// Concurrent clients: the first `SINGLE_CLIENTS` post one event per
/// request, the others batches of `BATCH_SIZE` (`POST /v1.1/events`).
const SINGLE_CLIENTS: usize = 4;
const BATCH_CLIENTS: usize = 2;
const BATCH_SIZE: usize = 10;
const INGEST_APP: &str = "ingestapp1";
const INGEST_KEY: &str = "app_ingestkey1";
const INGEST_SECRET: &str = "ingest-secret";
const INGEST_USERS: usize = 8;

/// The binary on a port of its own, with the API rate limit off (the
/// clients here would exceed a key's default allowance).
fn start_ingest(url: &str, data_dir: &std::path::Path) -> (Child, std::net::SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DATABASE_URL", url)
        .env("DATA_DIR", data_dir)
        .env("SECRET_KEY", TEST_SECRET_KEY)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("API_RATE_LIMIT", "off")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

/// One request on a fresh connection: the status and body of a complete
/// answer, or `None` when the connection failed or the answer was cut off
/// (the server was killed): such a request is not acknowledged.
async fn post_once(addr: std::net::SocketAddr, path: &str, auth: &str, body: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))?
        .1
        .trim()
        .parse()
        .ok()?;
    let body = &raw[end + 4..];
    (body.len() == length).then(|| (status, String::from_utf8_lossy(body).into_owned()))
}

/// Waits (bounded) until the server answers its health check.
async fn until_healthy(addr: std::net::SocketAddr, server: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let mut raw = Vec::new();
            if s.write_all(req.as_bytes()).await.is_ok()
                && s.read_to_end(&mut raw).await.is_ok()
                && raw.starts_with(b"HTTP/1.1 200")
            {
                return;
            }
        }
        assert!(server.try_wait().unwrap().is_none(), "the server exited before answering");
        assert!(Instant::now() < deadline, "the server did not become healthy within 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What the clients of one run share: the events acknowledged (2xx for
/// the request, and 201 for the event in a batch's answer), and whether
/// the server has been killed (clients stop at their next failure).
#[derive(Default)]
struct Acks {
    keys: std::sync::Mutex<Vec<String>>,
    count: std::sync::atomic::AtomicUsize,
    killed: std::sync::atomic::AtomicBool,
    /// Requests that failed before the kill (should be none).
    early_failures: std::sync::atomic::AtomicUsize,
    /// Told after each answer.
    progress: tokio::sync::Notify,
}

/// One client: posts events with keys `r{round}c{client}n{n}` until the
/// server goes away; each acknowledged key is recorded.
async fn ingest_client(addr: std::net::SocketAddr, round: usize, client: usize, acks: std::sync::Arc<Acks>) {
    use std::sync::atomic::Ordering;
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{INGEST_KEY}:{INGEST_SECRET}"))
    );
    let batch = client >= SINGLE_CLIENTS;
    let mut n = 0usize;
    loop {
        let key = |n: usize| format!("r{round}c{client}n{n}");
        let user = |n: usize| format!("u{}", (client + n) % INGEST_USERS);
        let answer = if batch {
            let events: Vec<serde_json::Value> = (n..n + BATCH_SIZE)
                .map(|i| serde_json::json!({"userId": user(i), "name": "ingested", "properties": {"k": key(i)}}))
                .collect();
            let body = serde_json::json!({ "events": events }).to_string();
            let path = format!("/v1.1/apps/{INGEST_APP}/events");
            post_once(addr, &path, &auth, &body).await.map(|(status, body)| {
                let mut acked = vec![];
                if (200..300).contains(&status) {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let results = v["results"].as_array().expect("a batch answer lists results");
                    assert_eq!(results.len(), BATCH_SIZE, "{body}");
                    for (i, r) in results.iter().enumerate() {
                        if r["status"] == 201 {
                            acked.push(key(n + i));
                        }
                    }
                }
                (status, acked)
            })
        } else {
            let body = serde_json::json!({"name": "ingested", "properties": {"k": key(n)}}).to_string();
            let path = format!("/v1.1/apps/{INGEST_APP}/appusers/{}/events", user(n));
            post_once(addr, &path, &auth, &body)
                .await
                .map(|(status, _)| (status, if (200..300).contains(&status) { vec![key(n)] } else { vec![] }))
        };
        n += if batch { BATCH_SIZE } else { 1 };
        match answer {
            Some((status, acked)) => {
                assert!((200..300).contains(&status), "an event request was refused: {status}");
                let k = acked.len();
                acks.keys.lock().unwrap().extend(acked);
                acks.count.fetch_add(k, Ordering::SeqCst);
                acks.progress.notify_one();
            }
            None if acks.killed.load(Ordering::SeqCst) => return,
            None => {
                acks.early_failures.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Every stored event's key, with how many times it is stored.
async fn stored_keys(store: &Store) -> std::collections::HashMap<String, i64> {
    let rows: Vec<(Option<String>, i64)> = match store {
        Store::Sqlite(p) => {
            sqlx::query_as("SELECT json_extract(properties, '$.k'), COUNT(*) FROM events WHERE app_id = $1 GROUP BY 1")
                .bind(INGEST_APP)
                .fetch_all(p)
                .await
                .unwrap()
        }
        Store::Postgres(p) => {
            sqlx::query_as("SELECT properties->>'k', COUNT(*) FROM events WHERE app_id = $1 GROUP BY 1")
                .bind(INGEST_APP)
                .fetch_all(p)
                .await
                .unwrap()
        }
    };
    rows.into_iter().map(|(k, n)| (k.expect("every event has its key"), n)).collect()
}

/// kill -9 of the server 20 times during sustained event ingest (single
/// events and batches from concurrent clients), each time after a different
/// number of acknowledged events: after the restarts every event whose
/// request was acknowledged (2xx; 201 for the event in a batch) is in the
/// database, and no event is stored twice (clients never resend, and the
/// API promises one stored event per accepted event). Events in flight at
/// the kill may or may not be stored.
async fn kill_9_during_ingest(backend: Backend) {
    use std::sync::{atomic::Ordering, Arc};
    let Some(db) = TestDb::new(backend).await else { return };
    let (url, store, now) = migrated_with_app(&db, INGEST_APP, "Ingest").await;
    let hex: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&TEST_SECRET_KEY[2 * i..2 * i + 2], 16).unwrap()).collect();
    let secrets = murmur::server::crypto::SecretBox::from_key(&hex.try_into().unwrap());
    store
        .insert_api_key(&murmur::storage::ApiKeyRow {
            id: INGEST_KEY.into(),
            app_id: INGEST_APP.into(),
            name: "ingest".into(),
            secret_enc: secrets.seal(&murmur::server::crypto::api_key_context(INGEST_KEY), INGEST_SECRET.as_bytes()),
            created_at: now,
            revoked_at: None,
        })
        .await
        .unwrap();
    for u in 0..INGEST_USERS {
        let sql = match &store {
            Store::Sqlite(_) => {
                "INSERT INTO app_users (id, app_id, user_id, signed_up_at, properties, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, jsonb('{}'), $4, $4)"
            }
            Store::Postgres(_) => {
                "INSERT INTO app_users (id, app_id, user_id, signed_up_at, properties, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, '{}', $4, $4)"
            }
        };
        let (id, user_id) = (format!("{u:024x}"), format!("u{u}"));
        match &store {
            Store::Sqlite(p) => {
                sqlx::query(sql).bind(id).bind(INGEST_APP).bind(user_id).bind(now).execute(p).await.map(|_| ())
            }
            Store::Postgres(p) => {
                sqlx::query(sql).bind(id).bind(INGEST_APP).bind(user_id).bind(now).execute(p).await.map(|_| ())
            }
        }
        .unwrap();
    }

    let started = Instant::now();
    let mut acked: Vec<String> = vec![];
    let mut early_failures = 0;
    for round in 0..INGEST_KILLS {
        let (mut server, addr) = start_ingest(&url, &db.data_dir);
        until_healthy(addr, &mut server).await;
        let acks = Arc::new(Acks::default());
        let clients: Vec<_> = (0..SINGLE_CLIENTS + BATCH_CLIENTS)
            .map(|c| tokio::spawn(ingest_client(addr, round, c, acks.clone())))
            .collect();
        // Kill after a varying number of acknowledged events (not after a
        // time): 40 to 400 or so.
        let target = 40 + (round * 97) % 360;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while acks.count.load(Ordering::SeqCst) < target {
            let waited = tokio::time::timeout_at(deadline, acks.progress.notified()).await;
            assert!(
                waited.is_ok(),
                "round {round}: only {} events acknowledged in 30 s",
                acks.count.load(Ordering::SeqCst)
            );
            assert!(clients.iter().any(|c| !c.is_finished()), "every client stopped");
        }
        server.kill().unwrap(); // SIGKILL
        acks.killed.store(true, Ordering::SeqCst);
        server.wait().unwrap();
        for c in clients {
            c.await.unwrap();
        }
        early_failures += acks.early_failures.load(Ordering::SeqCst);
        acked.extend(std::mem::take(&mut *acks.keys.lock().unwrap()));
    }
    // A last start recovers the database as a restart would; then stop it.
    let (mut server, addr) = start_ingest(&url, &db.data_dir);
    until_healthy(addr, &mut server).await;
    server.kill().unwrap();
    server.wait().unwrap();

    let stored = stored_keys(&store).await;
    let lost: Vec<&String> = acked.iter().filter(|k| !stored.contains_key(*k)).collect();
    let twice: Vec<(&String, &i64)> = stored.iter().filter(|(_, n)| **n > 1).collect();
    let unacked_stored = stored.len() - (acked.len() - lost.len());
    eprintln!(
        "{backend:?}: {INGEST_KILLS} kills in {:.1} s; {} events acknowledged, {} stored ({} of them in flight at a kill); \
         {early_failures} requests failed before a kill",
        started.elapsed().as_secs_f64(),
        acked.len(),
        stored.len(),
        unacked_stored,
    );
    assert!(lost.is_empty(), "{} acknowledged events lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    assert!(twice.is_empty(), "events stored twice: {:?}", &twice[..twice.len().min(5)]);
    assert_eq!(early_failures, 0, "requests failed while the server was up");
    store.close().await;
}

#[tokio::test]
async fn kill_9_during_ingest_loses_no_acknowledged_event_sqlite() {
    kill_9_during_ingest(Backend::Sqlite).await;
}

#[tokio::test]
async fn kill_9_during_ingest_loses_no_acknowledged_event_postgres() {
    kill_9_during_ingest(Backend::Postgres).await;
}
