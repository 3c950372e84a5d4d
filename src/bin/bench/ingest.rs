//! Issue 14's durable-ingest figures, side by side for one backend, each
//! beside its baseline from the same run:
//!
//! - `ingest-storage`: the ingest path called directly, no HTTP:
//!   `Engine::track` (what the REST handlers call) → the group-commit
//!   writer → `Store::track_batch`, from `IN_FLIGHT` concurrent tasks, each
//!   waiting for its event to be durable before the next; against the same
//!   tasks with one transaction per event (`EVENT_GROUP_COMMIT=false`).
//! - `ingest-http`: the real server binary (`target/release/murmur`, the
//!   bench's sibling) as a child process, loaded from this process over
//!   loopback: single events (64 connections) and batches of 100
//!   (`POST /v1.1/events`, 20 connections: 2,000 events in flight, under
//!   the server's admission bound of 2,048; the bound shrinks while events
//!   wait too long, and a shed client waits its `Retry-After`); and the
//!   batch load against a child with one transaction per event.
//! - `ingest-noop`: this benchmark re-executed as `bench serve-noop`: the
//!   same two routes with murmur's own API-key extractor and body
//!   extractors and the same validation and answer, but nothing written.
//!   What HTTP, auth and JSON cost alone on this machine.
//!
//! Hot users: `HOT_USERS` users; cold users: uniform over every seeded user
//! (1,000,000 by default). Every row reports events/s, the p50 / p99 of a
//! call (storage) or request (HTTP), and CPU from `/proc`: the machine's
//! busy CPU time per event, this process's and the child server's.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path as FsPath, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use murmur::{
    api::{
        auth::ApiApp,
        body::{JsonBatch, JsonObject},
        error::ApiError,
    },
    domain::{
        properties::format_iso8601,
        users::{check_user_ref, Event},
    },
    engine::{actions::Author, Engine},
    server::{apps::api_key_context, AppState, SystemClock},
    storage::{ApiKeyRow, DbUrl, Store},
};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

use super::{now_ms, open_state, Rng, APP_ID, CLIENTS, SECRET_KEY};

/// Users in the hot rows.
const HOT_USERS: u64 = 100;
/// Events in flight: the storage rows' tasks, and the HTTP batch rows'
/// connections × `BATCH`.
const IN_FLIGHT: usize = 2_000;
/// Events per batch request.
const BATCH: usize = 100;
/// The API key the HTTP rows use (made by `api_key`).
const KEY_ID: &str = "app_benchingest";
const KEY_SECRET: &str = "bench-ingest-secret";
/// What `/proc` counts CPU time in (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

#[derive(Clone, Copy)]
enum Users {
    /// `HOT_USERS` users.
    Hot,
    /// Uniform over this many seeded users.
    Cold(u64),
}

impl Users {
    fn pick(self, rng: &mut Rng) -> u64 {
        match self {
            Users::Hot => rng.next() % HOT_USERS,
            Users::Cold(n) => rng.next() % n,
        }
    }

    fn label(self) -> String {
        match self {
            Users::Hot => format!("hot ({HOT_USERS} users)"),
            Users::Cold(n) => format!("cold (uniform over {n} users)"),
        }
    }
}

/// CPU time so far, in ticks: the machine's (busy, all), this process's,
/// and a child's.
struct CpuMark {
    machine: (u64, u64),
    own: u64,
    child: Option<(u32, u64)>,
}

/// The machine's CPU ticks from `/proc/stat`: (busy, all); busy is all but
/// idle and iowait.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return (0, 0) };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest is in user already).
    let all: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (all - idle, all)
}

/// A process's user + system ticks, all threads (`/proc/<pid>/stat`).
fn process_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: the fields after it start past ')'.
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `after` starts at field 3.
    let n = |i: usize| f.get(i - 3).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    n(14) + n(15)
}

impl CpuMark {
    fn take(child: Option<u32>) -> Self {
        CpuMark {
            machine: machine_ticks(),
            own: process_ticks("self"),
            child: child.map(|pid| (pid, process_ticks(&pid.to_string()))),
        }
    }

    fn since(&self) -> CpuUse {
        let (busy, all) = machine_ticks();
        CpuUse {
            machine_busy_s: (busy - self.machine.0) as f64 / TICKS_PER_S,
            machine_share: (busy - self.machine.0) as f64 / ((all - self.machine.1).max(1)) as f64,
            own_s: (process_ticks("self") - self.own) as f64 / TICKS_PER_S,
            child_s: self
                .child
                .map(|(pid, t)| (process_ticks(&pid.to_string()).saturating_sub(t)) as f64 / TICKS_PER_S),
        }
    }
}

struct CpuUse {
    machine_busy_s: f64,
    /// Busy share of the machine's CPU time (both cores).
    machine_share: f64,
    own_s: f64,
    child_s: Option<f64>,
}

/// One measured row.
struct Outcome {
    events: u64,
    failed: u64,
    /// Events in batches the server shed (503, nothing written).
    shed: u64,
    elapsed: Duration,
    /// Each call's or request's time, in µs.
    latencies: Vec<u32>,
    cpu: CpuUse,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i] as f64 / 1000.0
    }

    /// `| events/s | p50 / p99 | ratio | CPU | failed / shed |` cells.
    fn cells(&self, ratio: &str, server: &str) -> String {
        let per_event = self.cpu.machine_busy_s * 1e6 / (self.events.max(1)) as f64;
        let split = match self.cpu.child_s {
            Some(child) => format!("bench {:.1} s + {server} {:.1} s", self.cpu.own_s, child),
            None => format!("bench {:.1} s", self.cpu.own_s),
        };
        format!(
            "{:.0} | {:.2} / {:.2} ms | {ratio} | {per_event:.1} µs/event; machine {:.0} % busy ({split}) | {} / {} |",
            self.rate(),
            self.percentile(0.5),
            self.percentile(0.99),
            self.cpu.machine_share * 100.0,
            self.failed,
            self.shed
        )
    }
}

/// Runs the ingest parts named in `parts` for one backend.
pub async fn run(parts: &[String], backend: &str, url: &str, dir: &FsPath, users: u64, seconds: u64) {
    let want = |p: &str| parts.iter().any(|x| x == p);
    let span = Duration::from_secs(seconds);
    let cold = Users::Cold(users);
    println!(
        "\n### durable ingest ({backend}): storage layer / HTTP out of process / no-op\n\n\
         | row | events/s | p50 / p99 per call or request | × baseline | CPU (whole machine, 2 cores) | failed / shed |\n\
         | --- | --- | --- | --- | --- | --- |"
    );
    let mut storage: Vec<(&str, &str, f64, f64)> = vec![];
    if want("ingest-storage") {
        let store = Store::connect(&DbUrl::parse(url).unwrap()).await.unwrap();
        // Whatever an earlier run left unfolded is not the rows' work.
        store.fold_event_users(APP_ID).await.unwrap();
        for u in [Users::Hot, cold] {
            let (group, ended) = storage_row(&store, true, u, span).await;
            let group_fold = Fold::run(&store, &group, ended).await;
            let (one, ended) = storage_row(&store, false, u, span).await;
            let one_fold = Fold::run(&store, &one, ended).await;
            println!(
                "| storage layer (Engine::track → writer → Store::track_batch), group commit, {IN_FLIGHT} tasks, {} | {}",
                u.label(),
                group.cells(&format!("{:.1}×", group.rate() / one.rate()), "")
            );
            println!("| {}", group_fold.cells(&group, &format!("{:.1}×", group_fold.rate / one_fold.rate)));
            println!(
                "| storage layer, one transaction per event (baseline), {IN_FLIGHT} tasks, {} | {}",
                u.label(),
                one.cells("baseline", "")
            );
            println!("| {}", one_fold.cells(&one, "baseline"));
            let label = if matches!(u, Users::Hot) { "hot" } else { "cold" };
            storage.push((label, "", group.rate(), one.rate()));
            storage.push((label, ", counting the last fold", group_fold.rate, one_fold.rate));
        }
        store.close().await;
    }
    let mut http_batch: Vec<(&str, f64)> = vec![];
    let mut noop_batch = None;
    if want("ingest-http") || want("ingest-noop") {
        let auth = api_key(url, dir).await;
        if want("ingest-http") {
            let mut server = Child::murmur(url, dir, true);
            server.ready().await;
            let mut rows = vec![];
            for (what, u) in
                [(Load::Single, Users::Hot), (Load::Single, cold), (Load::Batch, Users::Hot), (Load::Batch, cold)]
            {
                let out = http_row(&server, &auth, what, u, span).await;
                if matches!(what, Load::Batch) {
                    http_batch.push((if matches!(u, Users::Hot) { "hot" } else { "cold" }, out.rate()));
                }
                rows.push((what, u, out));
            }
            server.stop().await;
            let mut server = Child::murmur(url, dir, false);
            server.ready().await;
            let base = http_row(&server, &auth, Load::Batch, Users::Hot, span).await;
            server.stop().await;
            for (what, u, out) in &rows {
                let ratio = match what {
                    Load::Batch => format!("{:.1}× the baseline below", out.rate() / base.rate()),
                    Load::Single => "—".to_string(),
                };
                println!(
                    "| HTTP, server in its own process, {}, group commit, {} | {}",
                    what.label(),
                    u.label(),
                    out.cells(&ratio, "server")
                );
            }
            println!(
                "| HTTP, server in its own process, {}, one transaction per event (baseline), {} | {}",
                Load::Batch.label(),
                Users::Hot.label(),
                base.cells("baseline", "server")
            );
        }
        if want("ingest-noop") {
            let mut server = Child::noop(url, dir);
            server.ready().await;
            for what in [Load::Single, Load::Batch] {
                let out = http_row(&server, &auth, what, cold, span).await;
                println!(
                    "| HTTP no-op handler (same auth and JSON, nothing written), own process, {}, cold users' bodies | {}",
                    what.label(),
                    out.cells("—", "no-op server")
                );
                if matches!(what, Load::Batch) {
                    noop_batch = Some(out.rate());
                }
            }
            server.stop().await;
        }
    }
    println!();
    // Issue 14's targets, from this run's rows.
    let floor = if backend == "sqlite" { 100_000.0 } else { 50_000.0 };
    for (u, counting, rate, base) in &storage {
        let ratio = rate / base;
        println!(
            "target, storage layer {backend} ≥ {floor:.0} events/s and ≥ 15× its baseline, {u} users{counting}: {rate:.0}/s, {ratio:.1}× — {}",
            if *rate >= floor && ratio >= 15.0 { "met" } else { "not met" }
        );
    }
    if backend == "sqlite" {
        for (u, rate) in &http_batch {
            println!(
                "target, HTTP batch endpoint on SQLite ≥ 50000 events/s, {u} users: {rate:.0}/s — {}",
                if *rate >= 50_000.0 { "met" } else { "not met" }
            );
        }
    }
    if let Some(n) = noop_batch {
        println!("HTTP alone (no-op handler, batches of {BATCH}): {n:.0} events/s");
    }
}

/// What a storage row left unfolded (at most `FOLD_BESIDE` of its events),
/// folded into who did each event after the row: the fold's own time (with
/// what the fold beside the row ran on after it) and CPU, and the row's
/// rate counting it.
struct Fold {
    ids: u64,
    elapsed: Duration,
    cpu: CpuUse,
    /// The row's events over the row's time plus the fold's.
    rate: f64,
}

impl Fold {
    /// `ended`: when the row's load ended (the fold beside it may have run
    /// on after that).
    async fn run(store: &Store, row: &Outcome, ended: (Instant, CpuMark)) -> Fold {
        let (t0, mark) = ended;
        let ids = store.fold_event_users(APP_ID).await.unwrap();
        let (elapsed, cpu) = (t0.elapsed(), mark.since());
        let rate = row.events as f64 / (row.elapsed + elapsed).as_secs_f64();
        Fold { ids, elapsed, cpu, rate }
    }

    /// The row's cells after its first: `| row | rate counting the fold | … |`.
    fn cells(&self, row: &Outcome, ratio: &str) -> String {
        format!(
            "… with its events folded into who did each event (`Store::fold_event_users`) beside it every {} s, \
             and what was left folded after it: {} ids in {:.0} ms, {:.1} µs per event of the row in machine CPU \
             | {:.0} counting that last fold | — | {ratio} (each side counting its last fold) | \
             machine {:.0} % busy during the last fold | — |",
            FOLD_BESIDE.as_secs(),
            self.ids,
            self.elapsed.as_secs_f64() * 1000.0,
            self.cpu.machine_busy_s * 1e6 / (row.events.max(1)) as f64,
            self.rate,
            self.cpu.machine_share * 100.0,
        )
    }
}

/// One storage-layer row: a warm-up second, then `span` of load.
/// Also returns when the load ended (time and CPU): the fold beside it may
/// still run then (one it started before it was told to stop), work the
/// row left, which `Fold::run` counts.
async fn storage_row(store: &Store, group_commit: bool, users: Users, span: Duration) -> (Outcome, (Instant, CpuMark)) {
    let engine = Engine::start(store.clone(), Arc::new(SystemClock), group_commit, Duration::ZERO).await.unwrap();
    drive_engine(&engine, users, Duration::from_secs(1), 1).await;
    // Who did each event is folded in beside the load, as the server's
    // housekeeping does (every 10 s there; every `FOLD_BESIDE` here, so
    // that a row of seconds pays for its fold).
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let folder = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FOLD_BESIDE);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                store.fold_event_users(APP_ID).await.unwrap();
            }
        })
    };
    let mark = CpuMark::take(None);
    let (events, failed, elapsed, latencies) = drive_engine(&engine, users, span, 2).await;
    let cpu = mark.since();
    let ended = (Instant::now(), CpuMark::take(None));
    stop.send(true).unwrap();
    folder.await.unwrap();
    (Outcome { events, failed, shed: 0, elapsed, latencies, cpu }, ended)
}

/// How often a storage row folds its events into who did each event
/// beside the load.
const FOLD_BESIDE: Duration = Duration::from_secs(2);

/// `IN_FLIGHT` tasks call `Engine::track` one event at a time (each waits
/// until its event is durable) until `span` has passed. Returns the events
/// stored, the failed calls, the time until the last call returned, and
/// each call's time (µs, sorted).
async fn drive_engine(
    engine: &Arc<Engine>,
    users: Users,
    span: Duration,
    round: u64,
) -> (u64, u64, Duration, Vec<u32>) {
    let started = Instant::now();
    let deadline = started + span;
    let tasks: Vec<_> = (0..IN_FLIGHT as u64)
        .map(|t| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut rng = Rng(((round << 32) | t).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                let (mut ok, mut failed, mut latencies) = (0u64, 0u64, Vec::new());
                while Instant::now() < deadline {
                    let user = format!("user{}", users.pick(&mut rng));
                    let event = Event { name: "item-in-cart".into(), properties: None };
                    let t0 = Instant::now();
                    match engine.track(APP_ID, &user, event, Author::Backend).await {
                        Ok(_) => ok += 1,
                        Err(_) => failed += 1,
                    }
                    latencies.push(t0.elapsed().as_micros() as u32);
                }
                (ok, failed, latencies)
            })
        })
        .collect();
    let (mut ok, mut failed, mut latencies) = (0, 0, Vec::new());
    for t in tasks {
        let (o, f, l) = t.await.unwrap();
        ok += o;
        failed += f;
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    (ok, failed, elapsed, latencies)
}

/// What an HTTP row sends.
#[derive(Clone, Copy)]
enum Load {
    /// `POST /v1.1/appusers/{userId}/events`, one event, `CLIENTS` connections.
    Single,
    /// `POST /v1.1/events` with `BATCH` events, `IN_FLIGHT / BATCH` connections.
    Batch,
}

impl Load {
    fn label(self) -> String {
        match self {
            Load::Single => format!("single events, {CLIENTS} connections"),
            Load::Batch => format!("batches of {BATCH} (POST /v1.1/events), {} connections", IN_FLIGHT / BATCH),
        }
    }
}

/// Makes the HTTP rows' API key (sealed with the bench's server key) in
/// the database, and returns its `Authorization` header.
async fn api_key(url: &str, dir: &FsPath) -> String {
    let state = open_state(url, dir, true, "127.0.0.1:0".parse().unwrap()).await;
    if state.store.api_key(KEY_ID).await.unwrap().is_none() {
        let row = ApiKeyRow {
            secret_enc: state.secrets.seal(&api_key_context(KEY_ID), KEY_SECRET.as_bytes()),
            id: KEY_ID.into(),
            app_id: APP_ID.into(),
            name: "bench ingest".into(),
            created_at: now_ms(),
            revoked_at: None,
        };
        state.store.insert_api_key(&row).await.unwrap();
    }
    state.store.close().await;
    format!("Basic {}", STANDARD.encode(format!("{KEY_ID}:{KEY_SECRET}")))
}

/// One HTTP row against `server`: a warm-up second, then `span` of load.
async fn http_row(server: &Child, auth: &str, what: Load, users: Users, span: Duration) -> Outcome {
    http_load(server.addr, auth, what, users, Duration::from_secs(1), 1).await;
    let mark = CpuMark::take(Some(server.pid));
    let mut out = http_load(server.addr, auth, what, users, span, 2).await;
    out.cpu = mark.since();
    out
}

/// Closed-loop keep-alive clients in this process until `span` has passed.
/// A shed request (503) is counted as shed and its client waits the
/// answer's `Retry-After` before sending again; latencies are those of the
/// requests the server took.
async fn http_load(addr: SocketAddr, auth: &str, what: Load, users: Users, span: Duration, round: u64) -> Outcome {
    let connections = match what {
        Load::Single => CLIENTS,
        Load::Batch => IN_FLIGHT / BATCH,
    };
    let started = Instant::now();
    let deadline = started + span;
    let tasks: Vec<_> = (0..connections as u64)
        .map(|c| {
            let auth = auth.to_string();
            tokio::spawn(async move {
                let mut rng = Rng(((round << 32) | c).wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
                let stream = TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let mut stream = BufReader::new(stream);
                let (mut ok, mut failed, mut shed, mut latencies) = (0u64, 0u64, 0u64, Vec::new());
                let mut lost = 0u64;
                let mut line = String::new();
                while Instant::now() < deadline {
                    let (path, body, n) = match what {
                        Load::Single => (
                            format!("/v1.1/appusers/user{}/events", users.pick(&mut rng)),
                            "{\"name\":\"item-in-cart\"}".to_string(),
                            1,
                        ),
                        Load::Batch => {
                            let events: Vec<String> = (0..BATCH)
                                .map(|_| format!("{{\"userId\":\"user{}\",\"name\":\"item-in-cart\"}}", users.pick(&mut rng)))
                                .collect();
                            ("/v1.1/events".to_string(), format!("{{\"events\":[{}]}}", events.join(",")), BATCH as u64)
                        }
                    };
                    let request = format!(
                        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let t0 = Instant::now();
                    line.clear();
                    if stream.get_mut().write_all(request.as_bytes()).await.is_err()
                        || stream.read_line(&mut line).await.unwrap_or(0) == 0
                    {
                        // The server closed the connection: this client stops.
                        failed += n;
                        lost += 1;
                        break;
                    }
                    let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                    let (mut len, mut retry_after) = (0usize, 0u64);
                    loop {
                        line.clear();
                        stream.read_line(&mut line).await.unwrap();
                        if line == "\r\n" || line.is_empty() {
                            break;
                        }
                        let header = line.to_ascii_lowercase();
                        if let Some(v) = header.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        } else if let Some(v) = header.strip_prefix("retry-after:") {
                            retry_after = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut answer = vec![0; len];
                    stream.read_exact(&mut answer).await.unwrap();
                    if status == 503 {
                        // Shed: wait as told, as a well-behaved client
                        // would (a refusal is not a served request's time).
                        shed += n;
                        let rest = deadline.saturating_duration_since(Instant::now());
                        tokio::time::sleep(Duration::from_secs(retry_after).min(rest)).await;
                        continue;
                    }
                    latencies.push(t0.elapsed().as_micros() as u32);
                    match (status, what) {
                        (201, Load::Single) => ok += 1,
                        (200, Load::Batch) => {
                            let created = String::from_utf8_lossy(&answer).matches("\"status\":201").count() as u64;
                            ok += created;
                            failed += n - created;
                        }
                        _ => failed += n,
                    }
                }
                if lost > 0 {
                    eprintln!("a client's connection was closed by the server");
                }
                (ok, failed, shed, latencies)
            })
        })
        .collect();
    let (mut events, mut failed, mut shed, mut latencies) = (0, 0, 0, Vec::new());
    for t in tasks {
        let (o, f, s, l) = t.await.unwrap();
        events += o;
        failed += f;
        shed += s;
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let cpu = CpuUse { machine_busy_s: 0.0, machine_share: 0.0, own_s: 0.0, child_s: None };
    Outcome { events, failed, shed, elapsed, latencies, cpu }
}

/// A server in a child process, stopped (SIGTERM, then SIGKILL) when done.
struct Child {
    /// `None` once `stop` has taken it to wait for its exit.
    child: Option<std::process::Child>,
    pid: u32,
    addr: SocketAddr,
    log: PathBuf,
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

impl Child {
    fn start(mut cmd: Command, addr: SocketAddr, log: PathBuf) -> Child {
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Child { pid: child.id(), child: Some(child), addr, log }
    }

    /// `target/release/murmur` on a free port, against the bench's database.
    fn murmur(url: &str, dir: &FsPath, group_commit: bool) -> Child {
        let exe = std::env::current_exe().unwrap().with_file_name("murmur");
        assert!(
            exe.exists(),
            "{} is missing: cargo build --release --features ssr --bin murmur --bin bench",
            exe.display()
        );
        let addr = free_addr();
        let mut cmd = Command::new(exe);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        for k in ["PUBLIC_URL", "TRUST_PROXY", "METRICS_TOKEN", "MAX_CONNECTIONS", "REQUEST_TIMEOUT_MS"] {
            cmd.env_remove(k);
        }
        cmd.env("DATABASE_URL", url)
            .env("DATA_DIR", dir)
            .env("SECRET_KEY", SECRET_KEY)
            .env("LEPTOS_SITE_ADDR", addr.to_string())
            .env("LEPTOS_OUTPUT_NAME", "murmur")
            .env("LEPTOS_SITE_ROOT", "target/site")
            .env("RUST_LOG", "warn")
            .env("API_RATE_LIMIT", "off")
            .env("MAX_CONNECTIONS_PER_ADDRESS", "0")
            .env("EVENT_GROUP_COMMIT", group_commit.to_string())
            // No scheduler or housekeeping: at 1M users the first catalog
            // recount alone is seconds of a core, in the middle of a row.
            .env("SCHEDULER_PERIOD_MS", "0");
        Child::start(cmd, addr, dir.join(format!("murmur-{}.log", if group_commit { "group" } else { "one" })))
    }

    /// This benchmark as `serve-noop` on a free port.
    fn noop(url: &str, dir: &FsPath) -> Child {
        let addr = free_addr();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.arg("serve-noop").arg(url).arg(dir).arg(addr.to_string()).env("RUST_LOG", "warn");
        Child::start(cmd, addr, dir.join("noop.log"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most 60 s) until `GET /healthz` answers 200.
    async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("the server exited ({status}) before it was ready:\n{}", self.log());
            }
            if healthz(self.addr).await == Some(200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server was not ready within 60 s:\n{}", self.log());
    }

    /// SIGTERM, then waits (at most 20 s) for it to exit; SIGKILL past that.
    async fn stop(mut self) {
        let signal = |name: &str| Command::new("kill").arg(name).arg(self.pid.to_string()).status();
        let _ = signal("-TERM");
        let Some(mut child) = self.child.take() else { return };
        let exited = tokio::task::spawn_blocking(move || child.wait());
        if tokio::time::timeout(Duration::from_secs(20), exited).await.is_err() {
            eprintln!("the server did not stop within 20 s of SIGTERM; killing it");
            let _ = signal("-KILL");
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let log = self.log();
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        if !lines.is_empty() {
            eprintln!("server log ({} lines), last ones:", lines.len());
            for l in &lines[lines.len().saturating_sub(5)..] {
                eprintln!("  {}", l.chars().take(300).collect::<String>());
            }
        }
    }
}

/// `GET /healthz`'s status, or `None` (no answer within 2 s).
async fn healthz(addr: SocketAddr) -> Option<u16> {
    let ask = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(2), ask).await.ok().flatten()
}

/// `bench serve-noop <database url> <data dir> <addr>`: murmur's state on
/// the database (for its API keys), and a router with the two event routes
/// that authenticate, parse and validate as murmur's do and answer as they
/// would, writing nothing. Runs until killed.
pub async fn serve_noop(args: &[String]) {
    let [url, dir, addr] = args else { panic!("bench serve-noop <database url> <data dir> <addr>") };
    let addr: SocketAddr = addr.parse().expect("an address");
    let state = open_state(url, FsPath::new(dir), true, addr).await;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1.1/appusers/{user_id}/events", post(noop_track))
        .route("/v1.1/events", post(noop_track_batch))
        .with_state(state);
    let listener = TcpListener::bind(addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}

type Answer<T> = Result<T, ApiError>;

/// As `POST /v1.1/appusers/{userId}/events`, without the write.
async fn noop_track(
    State(state): State<AppState>,
    _app: ApiApp,
    Path(params): Path<HashMap<String, String>>,
    JsonObject(body): JsonObject,
) -> Answer<(StatusCode, Json<Value>)> {
    let user = params.get("user_id").map(String::as_str).unwrap_or("");
    check_user_ref(user).map_err(|_| ApiError::not_found(format!("No user {user:?} in this app.")))?;
    let event = Event::parse(body.get("name"), body.get("properties"))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "event": { "name": event.name, "createdAt": format_iso8601(state.now()) } })),
    ))
}

/// As `POST /v1.1/events`, without the writes.
async fn noop_track_batch(
    State(state): State<AppState>,
    _app: ApiApp,
    JsonBatch(body): JsonBatch,
) -> Answer<Json<Value>> {
    let Some(Value::Array(events)) = body.get("events") else {
        return Err(ApiError::bad_request("The body must be {\"events\": [...]}."));
    };
    if events.is_empty() || events.len() > 1000 {
        return Err(ApiError::bad_request("Send 1 to 1000 events."));
    }
    if let Some(extra) = body.keys().find(|k| *k != "events") {
        return Err(ApiError::bad_request(format!("Unknown field {extra:?}.")));
    }
    let at = format_iso8601(state.now());
    let results: Vec<Value> = events
        .iter()
        .map(|e| match noop_event(e) {
            Ok(event) => json!({ "status": 201, "event": { "name": event.name, "createdAt": at } }),
            Err(e) => json!({ "status": e.status.as_u16(), "error": { "code": e.code, "description": e.description } }),
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

/// One event of a batch, checked as murmur checks it.
fn noop_event(v: &Value) -> Answer<Event> {
    let Value::Object(o) = v else { return Err(ApiError::bad_request("Each event must be a JSON object.")) };
    if let Some(extra) = o.keys().find(|k| !matches!(k.as_str(), "userId" | "name" | "properties")) {
        return Err(ApiError::bad_request(format!("Unknown field {extra:?}.")));
    }
    let Some(Value::String(user)) = o.get("userId") else {
        return Err(ApiError::bad_request("Each event needs a userId (a string)."));
    };
    check_user_ref(user)?;
    Ok(Event::parse(o.get("name"), o.get("properties"))?)
}
