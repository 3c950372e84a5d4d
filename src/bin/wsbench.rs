//! ```text
//! cargo build --release --features ssr --bin murmur --bin wsbench
//! target/release/wsbench [--connections N] [--rate R] [--seconds S]
//!     [--target murmur|socketio|both] [--timeout S] [--event-group-commit true|false]
//! ```
//!
//! murmur runs with this program's environment, so murmur's settings can
//! be varied from outside: `COMMIT_WINDOW_MS=0 target/release/wsbench …`.
//!
//! The end-user widget's WebSocket under load, beside a socket.io@4 server
//! (npm, `bench/socketio`: run `npm ci` there first) doing the same push
//! without a database, measured the same way in the same run. For each
//! server, started as a child process on 127.0.0.1, one after the other:
//! - its RSS idle, then with N widget connections open and welcomed (one
//!   user each, at most 100 handshakes at a time), settled 3 s: the growth
//!   per connection (and from the first half of them to all, the marginal
//!   growth);
//! - R tracks per second for S seconds (at most N: each user tracks once),
//!   each answered by a card pushed to that user's widget: the latency from
//!   sending the track to receiving the card on the same connection;
//! - the server's CPU time (user + system, all threads) from the first
//!   track to the last card, per card delivered.
//!
//! murmur gets one app (identity verification off) with one active whisper
//! for everyone on the event `bench-event`, seeded into a fresh SQLite
//! database before it starts (`target/release/murmur`, next to this
//! program); every track is stored (group commit unless
//! `--event-group-commit false`) and every card is a unique delivery row,
//! marked sent. The socket.io server
//! keeps nothing: a `track` emits a card of the same shape to the user's
//! room.
//!
//! Everything is bounded: an overall timeout (default 600 s) that drops
//! the servers (killed) and temp dirs, and a watchdog thread that kills
//! them and exits if even that hangs. When the open-files limit is too
//! low for N connections it re-executes itself under `ulimit -n` (up to
//! the hard limit).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use murmur::{
    domain::whisper::{from_template, Button, ButtonAction, Trigger},
    storage::{AppRow, DbUrl, Store, TeammateRow},
};
use serde_json::{json, Value};
use tokio::{
    net::TcpStream,
    sync::{mpsc, oneshot, watch, Notify, Semaphore},
};
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, protocol::WebSocketConfig, Message},
    MaybeTlsStream, WebSocketStream,
};

const APP_ID: &str = "0123456789abcdef01234567";
const OWNER_ID: &str = "00000000000000000000000a";
const WHISPER_ID: &str = "00000000000000000000000b";
const SECRET_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const EVENT: &str = "bench-event";
/// Handshakes in flight at once (below the servers' accept backlog, 128 here).
const CONNECTING: usize = 100;
const SETTLE: Duration = Duration::from_secs(3);
/// After the last track, how long cards still in flight are waited for.
const DRAIN: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Murmur,
    SocketIo,
}

struct Args {
    connections: usize,
    rate: u64,
    seconds: u64,
    targets: Vec<Kind>,
    timeout: u64,
    /// murmur's EVENT_GROUP_COMMIT (its default, true, unless given).
    group_commit: Option<bool>,
}

fn args() -> Args {
    let mut a = Args {
        connections: 10_000,
        rate: 1_000,
        seconds: 10,
        targets: vec![Kind::Murmur, Kind::SocketIo],
        timeout: 600,
        group_commit: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--connections" => a.connections = v.parse().expect("--connections N"),
            "--rate" => a.rate = v.parse().expect("--rate R"),
            "--seconds" => a.seconds = v.parse().expect("--seconds S"),
            "--timeout" => a.timeout = v.parse().expect("--timeout S"),
            "--event-group-commit" => a.group_commit = Some(v.parse().expect("--event-group-commit true|false")),
            "--target" => {
                a.targets = match v.as_str() {
                    "murmur" => vec![Kind::Murmur],
                    "socketio" => vec![Kind::SocketIo],
                    "both" => vec![Kind::Murmur, Kind::SocketIo],
                    other => panic!("--target murmur|socketio|both, not {other:?}"),
                }
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(a.connections > 0 && a.rate > 0 && a.seconds > 0, "counts must be positive");
    a
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

// ---------------------------------------------------------------------------
// Limits, child processes and /proc

/// `(soft, hard)` open-files limits of this process (`None` = unlimited).
fn open_files_limit() -> Option<(Option<u64>, Option<u64>)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut f = line["Max open files".len()..].split_whitespace();
    let parse = |s: &str| s.parse::<u64>().ok();
    Some((parse(f.next()?), parse(f.next()?)))
}

/// Re-executes this program under `ulimit -n` when the soft limit is below
/// `need` (the servers, started from here, inherit it too).
fn ensure_open_files(need: u64) {
    let Some((Some(soft), hard)) = open_files_limit() else { return };
    if soft >= need {
        return;
    }
    let target = hard.map_or(need, |h| h.min(need.max(soft)));
    if std::env::var_os("WSBENCH_ULIMIT").is_some() || target <= soft {
        eprintln!("wsbench: open-files limit {soft} is below the {need} needed; some connections will fail");
        return;
    }
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().expect("own path");
    eprintln!("wsbench: raising the open-files limit from {soft} to {target} (ulimit -n)");
    let err = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n "$0" && exec "$@""#)
        .arg(target.to_string())
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env("WSBENCH_ULIMIT", "1")
        .exec();
    panic!("could not re-execute under ulimit: {err}");
}

/// Children and temp dirs the watchdog must clean up if all else fails.
static CLEANUP: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

/// A server child process and its temp dir (log, database); killed and
/// removed when dropped, including when a phase times out.
struct Server {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Server {
    fn start(mut cmd: Command, dir: PathBuf, addr: SocketAddr) -> Server {
        let log = std::fs::File::create(dir.join("server.log")).expect("server log");
        cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        CLEANUP.lock().unwrap().push((child.id(), dir.clone()));
        Server { child, dir, addr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's log so far, for diagnostics.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Waits for `GET /healthz` → 200 (at most 30 s).
    async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited ({status}) before it was ready:\n{}", self.log());
            }
            if let Ok(mut s) = TcpStream::connect(self.addr).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let req = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr);
                let mut answer = Vec::new();
                if s.write_all(req.as_bytes()).await.is_ok()
                    && tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut answer)).await.is_ok()
                    && answer.starts_with(b"HTTP/1.1 200")
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("server not ready within 30 s:\n{}", self.log());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = self.log();
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        if !lines.is_empty() {
            eprintln!("server log ({} lines), last ones:", lines.len());
            for l in &lines[lines.len().saturating_sub(5)..] {
                eprintln!("  {}", l.chars().take(300).collect::<String>());
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        CLEANUP.lock().unwrap().retain(|(pid, _)| *pid != self.child.id());
    }
}

/// If the run overshoots its own timeout by a minute, kill what it started and exit.
fn watchdog(after: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        eprintln!("wsbench: watchdog: still running after {} s; killing the servers", after.as_secs());
        for (pid, dir) in CLEANUP.lock().map(|c| c.clone()).unwrap_or_default() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(3);
    });
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn temp_dir(kind: Kind) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("murmur-wsbench-{}-{kind:?}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Resident memory of `pid`, in KiB: (VmRSS, RssAnon).
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// CPU time (user + system, all threads) of `pid`, in seconds.
fn cpu_seconds(pid: u32, ticks_per_second: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces): state is the
    // 3rd field of the line, utime the 14th, stime the 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<u64> = rest.split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0)).collect();
    (f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)) as f64 / ticks_per_second
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------------------
// The two servers

/// One app without identity verification, its owner, and one active
/// whisper for everyone on `bench-event`.
async fn seed_murmur(db: &Path) {
    let store = Store::connect(&DbUrl::parse(&format!("sqlite://{}", db.display())).unwrap()).await.unwrap();
    store.migrate().await.unwrap();
    let now = now_ms();
    let owner = TeammateRow {
        id: OWNER_ID.into(),
        name: "Bench Owner".into(),
        email: "owner@bench.example".into(),
        // Never signs in.
        password_hash: "-".into(),
        is_owner: true,
        created_at: now,
    };
    store.insert_teammate(&owner, None).await.unwrap();
    let app = AppRow { id: APP_ID.into(), name: "bench".into(), identity_secret_enc: vec![0], created_at: now };
    store.insert_app(&app, &[OWNER_ID]).await.unwrap();
    store.set_identity_enforced(APP_ID, false).await.unwrap();
    let mut d = from_template(None, OWNER_ID);
    d.name = "Bench card".into();
    d.all_users = true;
    d.conditions = vec![];
    d.trigger = Trigger::Event(EVENT.into());
    d.text = "Hi {{ firstName || there }}, your **cart** is waiting.".into();
    d.buttons = vec![
        Button { label: "Checkout".into(), action: ButtonAction::Link("https://shop.example/checkout".into()) },
        Button { label: "I have a question".into(), action: ButtonAction::Reply("I have a question".into()) },
    ];
    let errs = d.validate(|_| None);
    assert!(errs.is_empty(), "bench whisper does not validate: {errs:?}");
    store.insert_whisper(WHISPER_ID, APP_ID, "active", &d, now).await.unwrap();
    store.close().await;
}

async fn start_murmur(dir: PathBuf, group_commit: Option<bool>) -> Server {
    let db = dir.join("murmur.db");
    seed_murmur(&db).await;
    let exe = std::env::current_exe().unwrap().with_file_name("murmur");
    assert!(
        exe.exists(),
        "{} is missing: cargo build --release --features ssr --bin murmur --bin wsbench",
        exe.display()
    );
    let addr = free_addr();
    let mut cmd = Command::new(exe);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("DATA_DIR", &dir)
        .env("SECRET_KEY", SECRET_KEY)
        .env("LEPTOS_SITE_ADDR", addr.to_string())
        .env("LEPTOS_OUTPUT_NAME", "murmur")
        .env("LEPTOS_SITE_ROOT", "target/site")
        .env("RUST_LOG", "warn");
    if let Some(g) = group_commit {
        cmd.env("EVENT_GROUP_COMMIT", g.to_string());
    }
    let mut s = Server::start(cmd, dir, addr);
    s.ready().await;
    s
}

fn socketio_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/socketio")
}

fn socketio_version() -> String {
    let pkg = std::fs::read_to_string(socketio_dir().join("node_modules/socket.io/package.json")).unwrap_or_default();
    serde_json::from_str::<Value>(&pkg).ok().and_then(|v| v["version"].as_str().map(String::from)).unwrap_or_default()
}

async fn start_socketio(dir: PathBuf) -> Server {
    assert!(
        socketio_dir().join("node_modules/socket.io").exists(),
        "socket.io is not installed: cd bench/socketio && npm ci"
    );
    let addr = free_addr();
    let mut cmd = Command::new("node");
    cmd.current_dir(socketio_dir()).arg("server.js").arg(addr.port().to_string());
    let mut s = Server::start(cmd, dir, addr);
    s.ready().await;
    s
}

// ---------------------------------------------------------------------------
// The load client

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What one connection saw.
#[derive(Default)]
struct Seen {
    welcomed: bool,
    latency: Option<Duration>,
    received: Option<Instant>,
    /// Closed by the server (or failed) before the end of the run.
    lost: bool,
}

/// Shared by all connections of one target.
struct Shared {
    kind: Kind,
    addr: SocketAddr,
    cards: AtomicU64,
    errors: AtomicU64,
    /// Error frames (murmur's answer to a track it could not handle).
    refused: AtomicU64,
    first_error: Mutex<Option<String>>,
    card_bytes: AtomicU64,
    /// Notified when a card arrives.
    arrived: Notify,
    connecting: Semaphore,
}

impl Shared {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap();
        if first.is_none() {
            *first = Some(what);
        }
    }
}

fn track_frame(kind: Kind) -> &'static str {
    match kind {
        Kind::Murmur => r#"{"t":"track","name":"bench-event"}"#,
        Kind::SocketIo => r#"42["track",{}]"#,
    }
}

/// Opens the socket and completes the protocol's handshake: murmur's
/// hello/welcome, or Engine.IO open + socket.io connect to "/".
async fn open(shared: &Shared, i: usize) -> Result<Ws, String> {
    let addr = shared.addr;
    let url = match shared.kind {
        Kind::Murmur => format!("ws://{addr}/widget/ws"),
        Kind::SocketIo => format!("ws://{addr}/socket.io/?EIO=4&transport=websocket&user=bench-{i}"),
    };
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert("Origin", format!("http://{addr}").parse().unwrap());
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    match shared.kind {
        Kind::Murmur => {
            let hello = json!({"t": "hello", "app": APP_ID, "device": format!("bench-device-{i:08}"),
                               "userId": format!("bench-{i}")});
            send(&mut ws, hello.to_string()).await?;
            let first = next_text(&mut ws).await?;
            let v: Value = serde_json::from_str(&first).map_err(|e| format!("{e}: {first}"))?;
            if v["t"] != "welcome" {
                return Err(format!("expected welcome, got {first}"));
            }
        }
        Kind::SocketIo => {
            let open = next_text(&mut ws).await?;
            if !open.starts_with('0') {
                return Err(format!("expected an Engine.IO open packet, got {open}"));
            }
            send(&mut ws, "40".into()).await?;
            let connected = next_text(&mut ws).await?;
            if !connected.starts_with("40") {
                return Err(format!("expected a socket.io connect packet, got {connected}"));
            }
        }
    }
    Ok(ws)
}

async fn send(ws: &mut Ws, text: String) -> Result<(), String> {
    ws.send(Message::Text(text.into())).await.map_err(|e| format!("send: {e}"))
}

async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(Message::Close(c))) => return Err(format!("closed: {c:?}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("closed".into()),
        }
    }
}

/// One widget: opens, reports ready, sends its one track when told, times
/// the card, and holds the connection until `stop`.
async fn widget(
    shared: Arc<Shared>,
    i: usize,
    ready: mpsc::UnboundedSender<(usize, bool)>,
    track: oneshot::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen::default();
    let permit = shared.connecting.acquire().await.unwrap();
    let opened = tokio::time::timeout(Duration::from_secs(30), open(&shared, i)).await;
    drop(permit);
    let mut ws = match opened {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            shared.error(e);
            let _ = ready.send((i, false));
            return seen;
        }
        Err(_) => {
            shared.error("handshake timed out (30 s)".into());
            let _ = ready.send((i, false));
            return seen;
        }
    };
    seen.welcomed = true;
    let _ = ready.send((i, true));
    let mut track = Some(track);
    let mut sent_at: Option<Instant> = None;
    loop {
        tokio::select! {
            go = async { track.as_mut().unwrap().await }, if track.is_some() => {
                track = None;
                if go.is_ok() {
                    sent_at = Some(Instant::now());
                    if let Err(e) = ws.send(Message::Text(track_frame(shared.kind).into())).await {
                        shared.error(format!("send track: {e}"));
                        seen.lost = true;
                        break;
                    }
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let card = match shared.kind {
                        Kind::Murmur => {
                            let v: Value = serde_json::from_str(&t).unwrap_or_default();
                            if v["t"] == "error" {
                                shared.refused.fetch_add(1, Ordering::Relaxed);
                                shared.error(t.to_string());
                            }
                            v["t"] == "card"
                        }
                        Kind::SocketIo => {
                            if &*t == "2" {
                                // Engine.IO heartbeat.
                                let _ = ws.send(Message::Text("3".into())).await;
                            }
                            t.starts_with(r#"42["card""#)
                        }
                    };
                    if card {
                        match (sent_at, seen.latency) {
                            (Some(at), None) => {
                                seen.received = Some(Instant::now());
                                seen.latency = Some(at.elapsed());
                                shared.card_bytes.store(t.len() as u64, Ordering::Relaxed);
                                shared.cards.fetch_add(1, Ordering::Relaxed);
                                shared.arrived.notify_one();
                            }
                            _ => shared.error(format!("unexpected card: {t}")),
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    shared.error(format!("connection {i}: {e}"));
                    seen.lost = true;
                    break;
                }
                None => {
                    seen.lost = true;
                    break;
                }
            },
            _ = stop.changed() => break,
        }
    }
    seen
}

/// The figures for one server.
struct Outcome {
    label: String,
    asked: usize,
    welcomed: usize,
    connect_time: Duration,
    rss_idle: (u64, u64),
    /// RSS with the first half open, and how many that was.
    rss_half: ((u64, u64), usize),
    rss_held: (u64, u64),
    tracks: usize,
    cards: usize,
    lost: usize,
    errors: u64,
    refused: u64,
    first_error: Option<String>,
    card_bytes: u64,
    /// First track to last card.
    phase: Duration,
    latencies: Vec<Duration>,
    cpu: f64,
    /// First track to the last card, or to the end of the wait for missing ones.
    cpu_window: Duration,
    client_cpu: f64,
    max_send_lag: Duration,
}

impl Outcome {
    fn per_conn_kib(&self) -> f64 {
        (self.rss_held.0 as f64 - self.rss_idle.0 as f64) / self.welcomed.max(1) as f64
    }
    fn anon_per_conn_kib(&self) -> f64 {
        (self.rss_held.1 as f64 - self.rss_idle.1 as f64) / self.welcomed.max(1) as f64
    }
    /// RSS growth per connection from the first half to all.
    fn marginal_kib(&self) -> f64 {
        let ((rss, _), n) = self.rss_half;
        (self.rss_held.0 as f64 - rss as f64) / (self.welcomed.saturating_sub(n)).max(1) as f64
    }
    fn cpu_per_card_us(&self) -> f64 {
        self.cpu * 1e6 / self.cards.max(1) as f64
    }
    fn pct(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((q * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len()) - 1;
        self.latencies[i]
    }
}

async fn measure(kind: Kind, server: &Server, a: &Args, ticks: f64) -> Outcome {
    let pid = server.pid();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = rss_kib(pid);
    let shared = Arc::new(Shared {
        kind,
        addr: server.addr,
        cards: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        first_error: Mutex::new(None),
        card_bytes: AtomicU64::new(0),
        arrived: Notify::new(),
        connecting: Semaphore::new(CONNECTING),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let mut triggers = Vec::with_capacity(a.connections);
    let mut tasks = Vec::with_capacity(a.connections);
    // Two halves, each settled and measured: the growth from the first half
    // to the second is the marginal cost of a connection, once whatever
    // grows once (buffers, caches, thread-local pools) has grown.
    let mut open = Vec::with_capacity(a.connections);
    let mut connect_time = Duration::ZERO;
    let mut rss_half = ((0, 0), 0);
    let half = a.connections / 2;
    for range in [0..half, half..a.connections] {
        let connect_started = Instant::now();
        for i in range.clone() {
            let (tx, rx) = oneshot::channel();
            triggers.push(Some(tx));
            tasks.push(tokio::spawn(widget(shared.clone(), i, ready_tx.clone(), rx, stop_rx.clone())));
        }
        // Every connection reports once, welcomed or not (each handshake is bounded).
        for _ in range.clone() {
            match ready_rx.recv().await {
                Some((i, true)) => open.push(i),
                Some((_, false)) => {}
                None => break,
            }
        }
        connect_time += connect_started.elapsed();
        eprintln!("  {} of {} connections welcomed", open.len(), range.end);
        tokio::time::sleep(SETTLE).await;
        if range.start == 0 {
            rss_half = (rss_kib(pid), open.len());
        }
    }
    drop(ready_tx);
    let rss_held = rss_kib(pid);

    // The tracks: `rate` per second, each open connection at most once.
    let tracks = open.len().min((a.rate * a.seconds) as usize);
    let cpu_before = cpu_seconds(pid, ticks);
    let client_before = cpu_seconds(std::process::id(), ticks);
    let started = Instant::now();
    let mut sent = 0;
    let mut max_send_lag = Duration::ZERO;
    while sent < tracks {
        let due = ((started.elapsed().as_secs_f64() * a.rate as f64) as usize + 1).min(tracks);
        while sent < due {
            let scheduled = Duration::from_secs_f64(sent as f64 / a.rate as f64);
            max_send_lag = max_send_lag.max(started.elapsed().saturating_sub(scheduled));
            if let Some(tx) = triggers[open[sent]].take() {
                let _ = tx.send(());
            }
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let drain_until = tokio::time::Instant::now() + DRAIN;
    while (shared.cards.load(Ordering::Relaxed) as usize) < tracks {
        let wait = shared.arrived.notified();
        if tokio::time::timeout_at(drain_until, wait).await.is_err() {
            break;
        }
    }
    let cpu = cpu_seconds(pid, ticks) - cpu_before;
    let cpu_window = started.elapsed();
    let client_cpu = cpu_seconds(std::process::id(), ticks) - client_before;

    let _ = stop_tx.send(true);
    drop(triggers);
    let mut latencies = Vec::with_capacity(tracks);
    let mut lost = 0;
    let mut last_card = started;
    for t in tasks {
        if let Ok(Ok(seen)) = tokio::time::timeout(Duration::from_secs(30), t).await {
            latencies.extend(seen.latency);
            last_card = last_card.max(seen.received.unwrap_or(started));
            lost += usize::from(seen.welcomed && seen.lost);
        }
    }
    latencies.sort();
    let phase = last_card - started;
    // murmur inherits this program's environment (COMMIT_WINDOW_MS, say).
    let window = std::env::var("COMMIT_WINDOW_MS").map(|w| format!(", COMMIT_WINDOW_MS={w}")).unwrap_or_default();
    let label = match (kind, a.group_commit) {
        (Kind::Murmur, None) => format!("murmur{window}"),
        (Kind::Murmur, Some(g)) => format!("murmur, EVENT_GROUP_COMMIT={g}{window}"),
        (Kind::SocketIo, _) => format!("socket.io {}", socketio_version()),
    };
    let first_error = shared.first_error.lock().unwrap().clone();
    Outcome {
        label,
        asked: a.connections,
        welcomed: open.len(),
        connect_time,
        rss_idle,
        rss_half,
        rss_held,
        tracks,
        cards: latencies.len(),
        lost,
        errors: shared.errors.load(Ordering::Relaxed),
        refused: shared.refused.load(Ordering::Relaxed),
        first_error,
        card_bytes: shared.card_bytes.load(Ordering::Relaxed),
        phase,
        latencies,
        cpu,
        cpu_window,
        client_cpu,
        max_send_lag,
    }
}

async fn run(a: &Args) -> Vec<Outcome> {
    let ticks = clock_ticks();
    let mut outcomes = Vec::new();
    for &kind in &a.targets {
        eprintln!("{kind:?}: starting");
        let dir = temp_dir(kind);
        let server = match kind {
            Kind::Murmur => start_murmur(dir, a.group_commit).await,
            Kind::SocketIo => start_socketio(dir).await,
        };
        let o = measure(kind, &server, a, ticks).await;
        drop(server);
        // Let the closed sockets' TIME_WAIT and the CPU settle before the next one.
        tokio::time::sleep(Duration::from_secs(2)).await;
        outcomes.push(o);
    }
    outcomes
}

// ---------------------------------------------------------------------------
// Report

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn report(a: &Args, outcomes: &[Outcome]) {
    println!(
        "\n{} connections per server, {} tracks/s for {} s (each user once), loopback, one server at a time\n",
        thousands(a.connections),
        thousands(a.rate as usize),
        a.seconds
    );
    let header: Vec<&str> = outcomes.iter().map(|o| o.label.as_str()).collect();
    let ratio = outcomes.len() == 2 && outcomes[0].label.starts_with("murmur");
    println!(
        "| measure | {} |{}\n| --- |{}{}",
        header.join(" | "),
        if ratio { " socket.io ÷ murmur (target ≥ 3×) |" } else { "" },
        " --- |".repeat(outcomes.len()),
        if ratio { " --- |" } else { "" }
    );
    let row = |name: &str, cells: Vec<String>, r: Option<String>| {
        let r = if ratio { format!(" {} |", r.unwrap_or_default()) } else { String::new() };
        println!("| {name} | {} |{r}", cells.join(" | "));
    };
    let ratio_of = |f: &dyn Fn(&Outcome) -> f64| {
        ratio.then(|| {
            let (m, s) = (f(&outcomes[0]), f(&outcomes[1]));
            let r = s / m;
            if !(m > 0.0 && r > 0.0) {
                "–".into()
            } else if r >= 1.0 {
                format!("**{r:.2}×** (murmur better)")
            } else {
                format!("**{r:.3}×** (murmur {:.1}× worse)", 1.0 / r)
            }
        })
    };
    row(
        "connections welcomed",
        outcomes.iter().map(|o| format!("{} of {}", thousands(o.welcomed), thousands(o.asked))).collect(),
        None,
    );
    row(
        &format!("time to open and welcome them ({CONNECTING} handshakes at a time)"),
        outcomes.iter().map(|o| format!("{:.1} s", o.connect_time.as_secs_f64())).collect(),
        None,
    );
    row(
        "server RSS idle → with the connections (settled 3 s)",
        outcomes.iter().map(|o| format!("{} → {}", mib(o.rss_idle.0), mib(o.rss_held.0))).collect(),
        None,
    );
    row(
        "**memory per connection** (RSS growth ÷ connections)",
        outcomes.iter().map(|o| format!("**{:.2} KiB**", o.per_conn_kib())).collect(),
        ratio_of(&|o: &Outcome| o.per_conn_kib()),
    );
    row(
        "of which anonymous memory (RssAnon growth ÷ connections)",
        outcomes.iter().map(|o| format!("{:.2} KiB", o.anon_per_conn_kib())).collect(),
        ratio_of(&|o: &Outcome| o.anon_per_conn_kib()),
    );
    row(
        "marginal: RSS growth from the first half of the connections to all ÷ the second half",
        outcomes.iter().map(|o| format!("{:.2} KiB", o.marginal_kib())).collect(),
        ratio_of(&|o: &Outcome| o.marginal_kib()),
    );
    row(
        "tracks sent → cards received (tracks answered with an error)",
        outcomes
            .iter()
            .map(|o| format!("{} → {} ({})", thousands(o.tracks), thousands(o.cards), thousands(o.refused as usize)))
            .collect(),
        None,
    );
    row(
        "achieved rate (cards ÷ first track to last card)",
        outcomes.iter().map(|o| format!("{:.0}/s", o.cards as f64 / o.phase.as_secs_f64())).collect(),
        None,
    );
    row("card frame size", outcomes.iter().map(|o| format!("{} bytes", o.card_bytes)).collect(), None);
    row(
        "**event-to-card latency** p50 / p95 / **p99** / max",
        outcomes
            .iter()
            .map(|o| {
                format!("{} / {} / **{}** / {} ms", ms(o.pct(0.50)), ms(o.pct(0.95)), ms(o.pct(0.99)), ms(o.pct(1.0)))
            })
            .collect(),
        ratio_of(&|o: &Outcome| o.pct(0.99).as_secs_f64()).map(|r| format!("p99: {r}")),
    );
    row(
        &format!("server CPU (user + system), first track to last card or {} s wait for missing ones", DRAIN.as_secs()),
        outcomes.iter().map(|o| format!("{:.2} s in {:.1} s", o.cpu, o.cpu_window.as_secs_f64())).collect(),
        None,
    );
    row(
        "**CPU per delivered message**",
        outcomes.iter().map(|o| format!("**{:.0} µs**", o.cpu_per_card_us())).collect(),
        ratio_of(&|o: &Outcome| o.cpu_per_card_us()),
    );
    row(
        "CPU per track sent (whether or not its card came)",
        outcomes.iter().map(|o| format!("{:.0} µs", o.cpu * 1e6 / o.tracks.max(1) as f64)).collect(),
        ratio_of(&|o: &Outcome| o.cpu / o.tracks.max(1) as f64),
    );
    row(
        "connections lost during the run / other errors",
        outcomes.iter().map(|o| format!("{} / {}", o.lost, o.errors - o.refused)).collect(),
        None,
    );
    row(
        "load client (same 2 cores): its CPU over the same phase",
        outcomes.iter().map(|o| format!("{:.2} s", o.client_cpu)).collect(),
        None,
    );
    row(
        "load client: latest track behind its schedule",
        outcomes.iter().map(|o| format!("{} ms", ms(o.max_send_lag))).collect(),
        None,
    );
    for o in outcomes {
        if let Some(e) = &o.first_error {
            eprintln!("{}: first error: {}", o.label, e.chars().take(300).collect::<String>());
        }
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    ensure_open_files(a.connections as u64 + 512);
    watchdog(Duration::from_secs(a.timeout + 60));
    eprintln!(
        "wsbench: {} connections, {} tracks/s for {} s, targets {:?}, timeout {} s",
        a.connections, a.rate, a.seconds, a.targets, a.timeout
    );
    // Both futures are dropped (servers killed, temp dirs removed) before any exit.
    let finished = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(a.timeout), run(&a)) => Some(r.ok()),
        _ = tokio::signal::ctrl_c() => None,
    };
    let outcomes = match finished {
        Some(Some(o)) => o,
        Some(None) => {
            eprintln!("wsbench: timed out after {} s (servers stopped)", a.timeout);
            std::process::exit(2);
        }
        None => {
            eprintln!("wsbench: interrupted (servers stopped)");
            std::process::exit(130);
        }
    };
    report(&a, &outcomes);
}
