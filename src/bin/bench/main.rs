//! `cargo run --release --features ssr --bin bench -- [--users N] [--seconds S] [--backend sqlite|postgres|both]
//!  [--parts audience,ingest,scheduler,send,inbox,overview,catalog,ingest-storage,ingest-http,ingest-noop]
//!  [--conversations N]`
//!
//! Seeds N users (default 1,000,000) with custom properties on each backend,
//! then measures, each beside its baseline from the same run:
//! - the audience count for three conditions (relative date, custom text,
//!   version) against a hand-written query over typed columns, and against
//!   one written by hand over murmur's own `app_users` rows;
//! - the users list's first page with that filter;
//! - durable event ingest over HTTP from 64 concurrent keep-alive clients,
//!   group commit against one transaction per request; and property
//!   updates (PUT, one transaction per request);
//! - the property-match scheduler (`scheduler.rs`): ticks at 100 / 1,000 /
//!   10,000 due users against a naive full re-evaluation, and property
//!   updates with and without due-time maintenance;
//! - a manual message to every seeded user (`send.rs`): recipients fixed
//!   and queued, against the application-side way;
//! - the inbox's first page with `--conversations` conversations (default
//!   100,000, at most N) per filter (`inbox.rs`), against one hand-written
//!   query for the page's rows;
//! - the overview (`overview.rs`): 10 deliveries per user over 90 days
//!   (10M at the default), the daily rollup, and the page's read (p50 and
//!   p99) beside counting one metric per request;
//! - the users page's catalog counts (`catalog.rs`): 20 property names, 10
//!   events per user (10M at the default) over 20 names, the stored
//!   counts' read (p50, p99, max) and their recount, beside one count per
//!   name;
//! - issue 14's durable ingest three ways (`ingest.rs`): the ingest path
//!   called directly (`ingest-storage`), the real server binary in a child
//!   process loaded over HTTP (`ingest-http`), and the same requests to a
//!   handler that writes nothing, in a child process too (`ingest-noop`),
//!   hot and cold users, each beside its one-transaction-per-event baseline.
//!
//! Everything listens on 127.0.0.1 and every load is bounded in time.

mod catalog;
mod inbox;
mod ingest;
mod overview;
mod scheduler;
mod seed;
mod send;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD, Engine};
use leptos::config::LeptosOptions;
use murmur::{
    domain::{
        conditions::{Condition, Operator},
        properties::{PropType, Version},
    },
    server::{apps::api_key_context, AppState, Settings, SystemClock},
    storage::{
        audience::{SortKey, UserListQuery},
        ApiKeyRow, AppRow, AppUserChanges, DbUrl, PendingUpdate, Store,
    },
};
use seed::{HandWritten, Seed, SeedUser};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

const APP_ID: &str = "0123456789abcdef01234567";
const SECRET_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const DAY: i64 = 86_400_000;
const CLIENTS: usize = 64;

struct Args {
    users: usize,
    seconds: u64,
    backends: Vec<&'static str>,
    /// Which parts run: audience, ingest, scheduler, send, inbox, overview,
    /// catalog, ingest-storage, ingest-http, ingest-noop (all by default).
    parts: Vec<String>,
    conversations: usize,
}

fn args() -> Args {
    let mut a = Args {
        users: 1_000_000,
        seconds: 10,
        backends: vec!["sqlite", "postgres"],
        parts: [
            "audience",
            "ingest",
            "scheduler",
            "send",
            "inbox",
            "overview",
            "catalog",
            "ingest-storage",
            "ingest-http",
            "ingest-noop",
        ]
        .map(String::from)
        .to_vec(),
        conversations: 100_000,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--users" => a.users = v.parse().expect("--users N"),
            "--seconds" => a.seconds = v.parse().expect("--seconds S"),
            "--backend" => {
                a.backends = match v.as_str() {
                    "sqlite" => vec!["sqlite"],
                    "postgres" => vec!["postgres"],
                    _ => vec!["sqlite", "postgres"],
                }
            }
            "--conversations" => a.conversations = v.parse().expect("--conversations N"),
            "--parts" => a.parts = v.split(',').map(str::to_string).collect(),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Deterministic pseudo-random numbers (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

async fn seed(store: &Store, n: usize, now: i64) -> Duration {
    let started = Instant::now();
    store.create_bench_table().await.unwrap();
    store
        .insert_app(
            &AppRow { id: APP_ID.into(), name: "bench".into(), identity_secret_enc: vec![0], created_at: now },
            &[],
        )
        .await
        .unwrap();
    // The seeded custom properties are in the app's catalog, as the write
    // path would have put them (each gets a slot in `user_filters`).
    scheduler::exec(
        store,
        &format!(
            "INSERT INTO property_catalog (app_id, name, ty, created_at) VALUES \
             ('{APP_ID}', 'plan', 'text', {now}), ('{APP_ID}', 'seats', 'number', {now}), \
             ('{APP_ID}', 'vip', 'boolean', {now}) ON CONFLICT DO NOTHING"
        ),
    )
    .await;
    let mut rng = Rng(0x5EED);
    let versions = ["1.9", "2.0", "2.9", "2.10", "2.11.1", "3.0", "3.1"];
    let plans = ["free", "free", "free", "bronze", "silver", "silver", "gold"];
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let r = rng.next();
        let version = versions[(r % versions.len() as u64) as usize];
        batch.push(SeedUser {
            id: format!("{i:024x}"),
            user_id: format!("user{i}"),
            signed_up_at: now - ((r >> 8) % (60 * DAY as u64)) as i64,
            app_version: version.into(),
            app_version_key: Version::parse(version).unwrap().sort_key(),
            plan: plans[((r >> 40) % plans.len() as u64) as usize].into(),
            seats: ((r >> 20) % 50) as i64,
            vip: (r >> 50) % 10 == 0,
        });
        if batch.len() == 10_000 || i + 1 == n {
            store.seed_users(APP_ID, &batch, now).await.unwrap();
            batch.clear();
        }
    }
    store.analyze().await.unwrap();
    started.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn time<F, Fut, T>(runs: usize, mut f: F) -> (Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f().await);
        times.push(t.elapsed());
    }
    (median(times), last.unwrap())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn audience(store: &Store, db: &DbUrl, now: i64) {
    let catalog = |n: &str| match n {
        "plan" => Some(PropType::Text),
        "seats" => Some(PropType::Number),
        "vip" => Some(PropType::Boolean),
        _ => None,
    };
    let conditions = [
        Condition { property: "signedUpAt".into(), operator: Operator::MoreThanDaysAgo, value: "5".into() },
        Condition { property: "plan".into(), operator: Operator::Is, value: "gold".into() },
        Condition { property: "appVersion".into(), operator: Operator::GreaterThan, value: "2.9".into() },
    ];
    let checked: Vec<_> = conditions.iter().map(|c| c.check(catalog).unwrap()).collect();
    // Warm the cache for both, then take medians of 5.
    store.count_audience(APP_ID, &checked, now).await.unwrap();
    let v29 = Version::parse("2.9").unwrap().sort_key();
    store.bench_hand_count(HandWritten::Typed, APP_ID, now - 5 * DAY, "gold", &v29).await.unwrap();
    store.bench_hand_count(HandWritten::OwnRows, APP_ID, now - 5 * DAY, "gold", &v29).await.unwrap();
    // The three in turn, 11 rounds, medians: the machine's speed drifts
    // (±20 % from minute to minute here), and each round sees the same.
    let (mut murmur_ts, mut typed_ts, mut own_ts) = (vec![], vec![], vec![]);
    let (mut matching, mut typed_n, mut own_n) = (0, 0, 0);
    for _ in 0..11 {
        let (t, n) = time(1, || store.count_audience(APP_ID, &checked, now)).await;
        murmur_ts.push(t);
        matching = n.unwrap();
        let (t, n) = time(1, || store.bench_hand_count(HandWritten::Typed, APP_ID, now - 5 * DAY, "gold", &v29)).await;
        typed_ts.push(t);
        typed_n = n.unwrap();
        let (t, n) =
            time(1, || store.bench_hand_count(HandWritten::OwnRows, APP_ID, now - 5 * DAY, "gold", &v29)).await;
        own_ts.push(t);
        own_n = n.unwrap();
    }
    let (murmur_t, typed_t, own_t) = (median(murmur_ts), median(typed_ts), median(own_ts));
    assert_eq!(matching, typed_n, "both queries count the same users");
    assert_eq!(matching, own_n, "both queries count the same users");
    println!(
        "| audience count, 3 conditions ({matching} users match) | {} | hand-written SQL on typed columns: {} | {:.2}× |",
        ms(murmur_t),
        ms(typed_t),
        murmur_t.as_secs_f64() / typed_t.as_secs_f64()
    );
    println!(
        "| audience count, the same | {} | hand-written SQL on murmur's own app_users rows: {} | {:.2}× (that baseline: {:.2}× the typed one) |",
        ms(murmur_t),
        ms(own_t),
        murmur_t.as_secs_f64() / own_t.as_secs_f64(),
        own_t.as_secs_f64() / typed_t.as_secs_f64()
    );
    let q = UserListQuery {
        app_id: APP_ID,
        search: "",
        conditions: &checked,
        now,
        sort: SortKey::SignedUp,
        descending: true,
        after: None,
        limit: 26,
    };
    let (page_t, rows) = time(5, || store.list_users(&q)).await;
    let rows = rows.unwrap();
    let unfiltered = UserListQuery { conditions: &[], app_id: q.app_id, search: q.search, after: None, ..q };
    let (plain_t, _) = time(5, || store.list_users(&unfiltered)).await;
    println!(
        "| users list, first page (26 rows) with that filter | {} | same page without a filter: {} | target < 100 ms |",
        ms(page_t),
        ms(plain_t)
    );
    assert_eq!(rows.len(), 26);
    filter_upkeep(store, now, "statistics from ANALYZE").await;
    if matches!(store, Store::Sqlite(_)) {
        // murmur itself never runs ANALYZE on SQLite. With SQLite's STAT4
        // statistics, an update whose user lookup has an OR is prepared
        // again at each execution, and with it the trigger's program; so
        // measure as murmur runs too, on new connections (a connection
        // reads the statistics when it opens), then restore them.
        scheduler::exec(store, "DELETE FROM sqlite_stat1").await;
        scheduler::exec(store, "DELETE FROM sqlite_stat4").await;
        let fresh = Store::connect(db).await.unwrap();
        filter_upkeep(&fresh, now, "no statistics, as murmur runs").await;
        fresh.close().await;
        store.analyze().await.unwrap();
    }
}

/// What keeping `user_filters` in step costs user writes: 10,000 users'
/// `seats` changed through `Store::update_app_users_batch` in batches of
/// 100 (as the writer's group commit does), with the table's update
/// trigger switched off (the baseline: the same writes before migration
/// 0018) and on, alternately, three rounds each. The last round is on, so
/// the table ends in step again.
async fn filter_upkeep(store: &Store, now: i64, stats: &str) {
    let saved: Vec<(String, String)> = match store {
        Store::Sqlite(p) => sqlx::query_as(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name = 'app_users_filter_update'",
        )
        .fetch_all(p)
        .await
        .unwrap(),
        Store::Postgres(_) => vec![],
    };
    let switch = |on: bool| {
        let saved = saved.clone();
        async move {
            match store {
                Store::Sqlite(_) if on => {
                    for (_, sql) in &saved {
                        scheduler::exec(store, sql).await;
                    }
                }
                Store::Sqlite(_) => {
                    scheduler::exec(store, "DROP TRIGGER IF EXISTS app_users_filter_update").await;
                }
                Store::Postgres(_) => {
                    let verb = if on { "ENABLE" } else { "DISABLE" };
                    scheduler::exec(store, &format!("ALTER TABLE app_users {verb} TRIGGER app_users_filter_update"))
                        .await;
                }
            }
        }
    };
    const USERS: usize = 10_000;
    let mut rates = (Vec::new(), Vec::new());
    for round in 0..6 {
        let on = round % 2 == 1;
        switch(on).await;
        let started = Instant::now();
        for chunk in (0..USERS).collect::<Vec<_>>().chunks(100) {
            let batch: Vec<PendingUpdate> = chunk
                .iter()
                .map(|&i| PendingUpdate {
                    app_id: APP_ID.into(),
                    user_ref: format!("{i:024x}"),
                    changes: AppUserChanges {
                        properties: [("seats".to_string(), serde_json::json!(100 + round))].into_iter().collect(),
                        ..Default::default()
                    },
                    types: vec![("seats".into(), "number")],
                    max_properties: 100,
                    fix_types: true,
                    max_catalog: 100,
                    now,
                })
                .collect();
            let plans = batch.iter().map(|_| None).collect();
            for out in store.update_app_users_batch(&batch, plans).await.unwrap() {
                out.unwrap();
            }
        }
        let rate = USERS as f64 / started.elapsed().as_secs_f64();
        if on {
            rates.1.push(rate)
        } else {
            rates.0.push(rate)
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (off, on) = (median(&mut rates.0), median(&mut rates.1));
    println!(
        "| user property updates, batches of 100, narrow table kept in step ({stats}) | {on:.0}/s | the same without its trigger: {off:.0}/s | {:+.1} % |",
        (on / off - 1.0) * 100.0
    );
}

/// murmur's state on `url`, for a server on `addr`.
async fn open_state(url: &str, data_dir: &std::path::Path, group_commit: bool, addr: std::net::SocketAddr) -> AppState {
    let vars = [
        ("DATABASE_URL", url.to_string()),
        ("DATA_DIR", data_dir.display().to_string()),
        ("SECRET_KEY", SECRET_KEY.to_string()),
        ("EVENT_GROUP_COMMIT", group_commit.to_string()),
        // murmur's default unless this program's environment sets it.
        ("COMMIT_WINDOW_MS", std::env::var("COMMIT_WINDOW_MS").unwrap_or_default()),
        // The ingest load is one API key at full speed: no rate limit.
        ("API_RATE_LIMIT", "off".to_string()),
    ];
    let settings = Settings::from_env(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    let options = LeptosOptions::builder().output_name("murmur").site_root("target/site").site_addr(addr).build();
    AppState::open(&settings, options, Arc::new(SystemClock)).await.unwrap()
}

/// Runs murmur on 127.0.0.1:0 against `url`.
async fn start_server(url: &str, data_dir: &std::path::Path, group_commit: bool) -> (std::net::SocketAddr, AppState) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = open_state(url, data_dir, group_commit, addr).await;
    let s = state.clone();
    tokio::spawn(async move { murmur::server::serve(listener, s, std::future::pending()).await });
    (addr, state)
}

/// 64 keep-alive clients send requests for `seconds`; returns successes/s.
/// What the ingest load sends.
#[derive(Clone, Copy)]
enum Load {
    /// One event per request.
    Events,
    /// One property update per request.
    Puts,
    /// `n` events (for `n` users) per request, through `POST /v1.1/events`.
    Batch(usize),
}

/// Runs the load for `seconds` with `CLIENTS` connections; returns writes
/// (events or updates) per second, and the failed ones.
async fn load(addr: std::net::SocketAddr, auth: String, seconds: u64, kind: Load) -> (f64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (ok, failed, auth) = (ok.clone(), failed.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut stream = BufReader::new(stream);
            let mut i = 0u64;
            let mut line = String::new();
            while Instant::now() < deadline {
                let user = format!("user{}", (c as u64 * 7919 + i) % 1000);
                let (method, path, body, writes) = match kind {
                    Load::Puts => {
                        ("PUT", format!("/v1.1/appusers/{user}"), format!("{{\"properties\":{{\"seats\":{i}}}}}"), 1)
                    }
                    Load::Events => (
                        "POST",
                        format!("/v1.1/appusers/{user}/events"),
                        "{\"name\":\"item-in-cart\"}".to_string(),
                        1,
                    ),
                    Load::Batch(n) => {
                        let events: Vec<String> = (0..n as u64)
                            .map(|j| {
                                let u = (c as u64 * 7919 + i * n as u64 + j * 131) % 1000;
                                format!("{{\"userId\":\"user{u}\",\"name\":\"item-in-cart\"}}")
                            })
                            .collect();
                        ("POST", "/v1.1/events".to_string(), format!("{{\"events\":[{}]}}", events.join(",")), n as u64)
                    }
                };
                let req = format!(
                    "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                stream.get_mut().write_all(req.as_bytes()).await.unwrap();
                line.clear();
                stream.read_line(&mut line).await.unwrap();
                let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                let mut len = 0usize;
                loop {
                    line.clear();
                    stream.read_line(&mut line).await.unwrap();
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                stream.read_exact(&mut body).await.unwrap();
                if status == 201 || status == 200 && !matches!(kind, Load::Batch(_)) {
                    ok.fetch_add(writes, Ordering::Relaxed);
                } else if status == 200 {
                    // A batch: each event has its own status.
                    let text = String::from_utf8_lossy(&body);
                    let created = text.matches("\"status\":201").count() as u64;
                    ok.fetch_add(created, Ordering::Relaxed);
                    failed.fetch_add(writes - created, Ordering::Relaxed);
                } else {
                    failed.fetch_add(writes, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (ok.load(Ordering::Relaxed) as f64 / seconds as f64, failed.load(Ordering::Relaxed))
}

async fn ingest(url: &str, data_dir: &std::path::Path, seconds: u64) {
    let mut results = Vec::new();
    for (label, group, kind) in [
        ("events, group commit", true, Load::Events),
        ("events, one transaction per request", false, Load::Events),
        ("property updates (PUT), group commit", true, Load::Puts),
        ("property updates (PUT), one transaction per request", false, Load::Puts),
        ("events in batches of 100 (POST /v1.1/events), group commit", true, Load::Batch(100)),
        ("events in batches of 100, one transaction per event", false, Load::Batch(100)),
    ] {
        let tag = match kind {
            Load::Events => "e",
            Load::Puts => "p",
            Load::Batch(_) => "b",
        };
        let (addr, state) = start_server(url, data_dir, group).await;
        let key_id = format!("app_bench{}{tag}", if group { "g" } else { "b" });
        let secret = "bench-secret";
        if state.store.api_key(&key_id).await.unwrap().is_none() {
            let row = ApiKeyRow {
                secret_enc: state.secrets.seal(&api_key_context(&key_id), secret.as_bytes()),
                id: key_id.clone(),
                app_id: APP_ID.into(),
                name: "bench".into(),
                created_at: now_ms(),
                revoked_at: None,
            };
            state.store.insert_api_key(&row).await.unwrap();
        }
        let auth = format!("Basic {}", STANDARD.encode(format!("{key_id}:{secret}")));
        let (rate, failed) = load(addr, auth, seconds, kind).await;
        results.push((label, rate, failed));
        // Each load's server keeps its pool otherwise: PostgreSQL's
        // connections would run out before the benchmark drops its database.
        state.store.close().await;
    }
    // What keeping the planner's decisions costs (`engine::explain`): events
    // that fire an event whisper ("item-in-cart" for "plan is gold"), on one
    // server with group commit, decisions kept (murmur's default) and then
    // not kept (the baseline), the same load.
    let (addr, state) = start_server(url, data_dir, true).await;
    let now = now_ms();
    scheduler::exec(
        &state.store,
        &format!(
            "INSERT INTO property_catalog (app_id, name, ty, created_at) VALUES ('{APP_ID}', 'plan', 'text', {now}) \
             ON CONFLICT DO NOTHING"
        ),
    )
    .await;
    let mut cart = murmur::domain::whisper::from_template(None, "t1");
    cart.name = "Cart".into();
    cart.all_users = false;
    cart.conditions = vec![Condition { property: "plan".into(), operator: Operator::Is, value: "gold".into() }];
    cart.trigger = murmur::domain::whisper::Trigger::Event("item-in-cart".into());
    cart.text = "Your cart misses you.".into();
    cart.buttons = vec![];
    state.store.insert_whisper("bench-cart", APP_ID, "active", &cart, now).await.unwrap();
    state.engine.whispers_changed(APP_ID).await;
    let auth = format!("Basic {}", STANDARD.encode("app_benchgb:bench-secret"));
    let (kept, _) = load(addr, auth.clone(), seconds, Load::Batch(100)).await;
    state.engine.decisions_settled().await;
    let dropped = state.engine.decisions_dropped();
    state.engine.set_keep_decisions(false);
    let (not_kept, _) = load(addr, auth, seconds, Load::Batch(100)).await;
    exec_cleanup(&state.store).await;
    state.store.close().await;
    // Each kind (events, updates) against its own per-request baseline.
    for (i, (label, rate, failed)) in results.iter().enumerate() {
        let baseline = results[i / 2 * 2 + 1].1;
        println!(
            "| durable ingest, {label}, {CLIENTS} clients | {rate:.0} writes/s | {:.1}× the per-request baseline | {failed} failed |",
            rate / baseline
        );
    }
    println!(
        "| durable ingest, batches of 100 events firing an event whisper, decisions kept, {CLIENTS} clients | {kept:.0} writes/s | {not_kept:.0} writes/s with decisions not kept | {:+.1} % ({dropped} decisions dropped) |",
        (kept / not_kept - 1.0) * 100.0
    );
}

/// Removes the decisions benchmark's whisper (the other parts do not expect it).
async fn exec_cleanup(store: &Store) {
    scheduler::exec(store, "DELETE FROM deliveries WHERE whisper_id = 'bench-cart'").await;
    scheduler::exec(store, "DELETE FROM whispers WHERE id = 'bench-cart'").await;
}

#[tokio::main]
async fn main() {
    // The no-op server of `ingest-noop`, run as a child process.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("serve-noop") {
        return ingest::serve_noop(&argv[2..]).await;
    }
    let a = args();
    println!("bench: {} users, {} s per load, backends {:?}\n", a.users, a.seconds, a.backends);
    for backend in &a.backends {
        let dir = std::env::temp_dir().join(format!("murmur-bench-{}-{backend}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (url, pg_name) = match *backend {
            "sqlite" => (format!("sqlite://{}", dir.join("bench.db").display()), None),
            _ => {
                use sqlx::Connection;
                let admin = std::env::var("TEST_DATABASE_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
                let name = format!("murmur_bench_{}", std::process::id());
                let mut c = sqlx::PgConnection::connect(&admin).await.expect("PostgreSQL for the benchmark");
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await.unwrap();
                let base = admin.rsplit_once('/').unwrap().0.to_string();
                (format!("{base}/{name}"), Some((admin, name)))
            }
        };
        let db = DbUrl::parse(&url).unwrap();
        let store = Store::connect(&db).await.unwrap();
        store.migrate().await.unwrap();
        let now = now_ms();
        let took = seed(&store, a.users, now).await;
        println!("## {backend}\n\nseeded {} users in {:.1} s\n", a.users, took.as_secs_f64());
        println!("| measure | murmur | baseline (same run) | ratio / note |\n| --- | --- | --- | --- |");
        if a.parts.iter().any(|p| p == "audience") {
            audience(&store, &db, now).await;
        }
        if a.parts.iter().any(|p| p == "scheduler") {
            scheduler::scheduler(&store, a.users, a.seconds, now).await;
        }
        if a.parts.iter().any(|p| p == "send") {
            send::send(&store, a.users, now).await;
        }
        store.close().await;
        if a.parts.iter().any(|p| p == "inbox") {
            let state = open_state(&url, &dir, true, "127.0.0.1:0".parse().unwrap()).await;
            inbox::inbox(&state, a.conversations.min(a.users), now, 500).await;
            state.store.close().await;
        }
        if a.parts.iter().any(|p| p == "overview") {
            let state = open_state(&url, &dir, true, "127.0.0.1:0".parse().unwrap()).await;
            overview::overview(&state, a.users, now, 500).await;
            state.store.close().await;
        }
        if a.parts.iter().any(|p| p == "catalog") {
            let state = open_state(&url, &dir, true, "127.0.0.1:0".parse().unwrap()).await;
            catalog::catalog_part(&state, a.users, now, 200, 3).await;
            state.store.close().await;
        }
        if a.parts.iter().any(|p| p == "ingest") {
            ingest(&url, &dir, a.seconds).await;
        }
        if a.parts.iter().any(|p| p.starts_with("ingest-")) {
            ingest::run(&a.parts, backend, &url, &dir, a.users as u64, a.seconds).await;
        }
        println!();
        if let Some((admin, name)) = pg_name {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await.unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
