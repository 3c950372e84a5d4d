//! ```text
//! cargo build --release --features ssr --bin murmur --bin wsbench
//! target/release/wsbench [--connections N] [--rate R] [--seconds S]
//!     [--target murmur|socketio|socketio-durable|all] [--database sqlite|postgres]
//!     [--timeout S] [--event-group-commit true|false] [--ping-every S]
//!     [--storm-new PERCENT] [--storm-concurrency N] [--svg FILE] [--csv FILE]
//!     [--pg-admin URL] [--manual-send-at S] [--offline-users N]
//!     [--inbox-rate R]
//! bench/widget.sh [RUNS]      (build, then the full comparison RUNS times)
//! ```
//!
//! murmur runs with this program's environment, so murmur's settings can
//! be varied from outside: `COMMIT_WINDOW_MS=0 target/release/wsbench …`.
//!
//! The end-user widget's WebSocket under load, beside two socket.io@4
//! servers (npm, Node.js) measured the same way in the same run, one server
//! at a time, each started as a child process on 127.0.0.1:
//! - `murmur`: `target/release/murmur` (next to this program), seeded
//!   before it starts with one app (identity verification off) and K active
//!   whispers for everyone, whisper k on the event `bench-event-k` (a
//!   whisper reaches a user once, so a user's k-th track uses event k: K is
//!   the number of tracks per user the run needs). Every track is stored
//!   (group commit unless `--event-group-commit false`) and every card is a
//!   unique delivery row, marked sent, then `seen`. On SQLite (a file in a
//!   temp dir) or, with `--database postgres`, on a fresh PostgreSQL
//!   database created (and dropped at the end) through `--pg-admin`
//!   (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! - `socketio`: `bench/socketio`, relay only: a `track` emits a card of
//!   the same shape to the user's room, nothing is stored. The reference
//!   for the cost of the push itself.
//! - `socketio-durable`: `bench/socketio-durable`, the same plus what
//!   murmur stores per card, in SQLite (better-sqlite3, WAL,
//!   `synchronous=FULL`): an event row and a delivery row per track, in
//!   tables shaped like murmur's, written in one transaction per
//!   event-loop tick before that tick's cards are emitted; a `seen`
//!   updates the delivery row. Always SQLite, whatever `--database` says.
//!
//! The Node.js servers run with `node --expose-gc`; before their RSS is
//! read, `GET /gc` makes them collect garbage, so the figure is live
//! memory, not garbage not yet collected. When a baseline's
//! `node_modules` is missing, this program runs `npm ci` there first (its
//! `package-lock.json` pins every version).
//!
//! The load client behaves like `widget/messenger.js`: each connection
//! says hello (murmur) or connects to its user's room (socket.io), sends
//! `seen` for every card it receives, and pings every `--ping-every`
//! seconds (default 20, like the widget) from a random phase, counting the
//! pongs. For each server:
//! - its RSS idle, then with N widget connections open and welcomed (one
//!   user each, at most 100 handshakes at a time), settled 3 s: the growth
//!   per connection (and from the first half of them to all, the marginal
//!   growth);
//! - R tracks per second for S seconds (default 60), spread round-robin
//!   over the connections, each answered by a card pushed to that user's
//!   widget: per card, its send time (from the start of the window) and
//!   the latency from sending the track to receiving the card on the same
//!   connection;
//! - CPU over the window (first track to the last card, or to the end of a
//!   10 s wait for missing ones): the whole machine's busy time from
//!   `/proc/stat` (user + nice + system + irq + softirq + steal, all CPUs)
//!   less this program's own CPU time (`/proc/self/stat`) over the same
//!   window, per card delivered: what serving the cards cost the machine,
//!   database server (PostgreSQL) and kernel included. Also the server
//!   process's own CPU time (`/proc/<pid>/stat`), per card;
//! - a reconnect storm: after the window, every widget drops its
//!   connection at once and reconnects (at most `--storm-concurrency`
//!   handshakes in flight, default 500, below the servers' accept
//!   backlogs); `--storm-new` percent of them (default 20) come back as a
//!   new user (murmur: a fresh device id and userId, so murmur creates the
//!   user; socket.io: a new room). The time from the drop until the last
//!   one is welcomed (murmur) or connected and in its room (socket.io,
//!   whose CONNECT packet is sent in the same tick as the room is joined).
//!
//! With `--inbox-rate R` (murmur only), a teammate's inbox is open (the
//! dashboard's event stream `/live/inbox/{app}`, with a session seeded for
//! the app's owner) and R users per second write to the team during the
//! track window, each a different widget's first message (a `reply` frame
//! with no card: a new conversation). Per message: the time from sending
//! the frame to the inbox hearing of its conversation (the page then
//! reloads its list, whose server time `bench --parts inbox` measures).
//!
//! Output (stdout): a markdown header with the commit, one table row per
//! server that can be pasted into BENCHMARKS.md, and a detailed table.
//! A plot of latency against send time (per 100 ms of send time: p50, p99
//! and max; one panel per server) goes to `--svg`, by default
//! `bench/results/widget-<target>-<database>.svg`; `--csv` also writes
//! every card's send time and latency. murmur does not log the sizes of
//! its write batches, so they are not reported.
//!
//! Everything is bounded: an overall timeout (default 1,200 s) that drops
//! the servers (killed), temp dirs and PostgreSQL database, and a watchdog
//! thread that kills them and exits if even that hangs. When the
//! open-files limit is too low for N connections it re-executes itself
//! under `ulimit -n` (up to the hard limit).

use std::{
    collections::{HashMap, VecDeque},
    fmt::Write as _,
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
    sync::{mpsc, watch, Notify, Semaphore},
};
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, protocol::WebSocketConfig, Message},
    MaybeTlsStream, WebSocketStream,
};

const APP_ID: &str = "0123456789abcdef01234567";
const OWNER_ID: &str = "00000000000000000000000a";
const SECRET_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// Handshakes in flight at once while the connections are opened (below the
/// servers' accept backlogs).
const CONNECTING: usize = 100;
const SETTLE: Duration = Duration::from_secs(3);
/// After the last track, how long cards still in flight are waited for.
const DRAIN: Duration = Duration::from_secs(10);
/// How long the reconnect storm may take before the stragglers are given up.
const STORM_LIMIT: Duration = Duration::from_secs(120);
/// Bins of the latency plot.
const BIN: Duration = Duration::from_millis(100);
const DEFAULT_PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Murmur,
    SocketIo,
    SocketIoDurable,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Murmur => "murmur",
            Kind::SocketIo => "socketio",
            Kind::SocketIoDurable => "socketio-durable",
        }
    }
    fn socketio(self) -> bool {
        matches!(self, Kind::SocketIo | Kind::SocketIoDurable)
    }
    /// The baseline's directory under `bench/`.
    fn node_dir(self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("bench").join(self.name())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

struct Args {
    connections: usize,
    rate: u64,
    seconds: u64,
    targets: Vec<Kind>,
    target_name: String,
    /// murmur's database (the durable baseline always uses SQLite).
    database: Backend,
    timeout: u64,
    /// murmur's EVENT_GROUP_COMMIT (its default, true, unless given).
    group_commit: Option<bool>,
    ping_every: Duration,
    /// Percent of the reconnecting widgets that come back as a new user.
    storm_new: usize,
    storm_concurrency: usize,
    svg: PathBuf,
    csv: Option<PathBuf>,
    pg_admin: String,
    /// A manual message to every user of the app, sent this many seconds
    /// into the track window (murmur only).
    manual_send_at: Option<f64>,
    /// Users seeded besides the widgets' (never online): the send's segment.
    offline_users: usize,
    /// Users writing to the team per second during the track window, each
    /// a different widget's first message (a new conversation), timed until
    /// a teammate's open inbox (`/live/inbox`) hears of it (murmur only; 0: off).
    inbox_rate: f64,
}

fn args() -> Args {
    let mut a = Args {
        connections: 10_000,
        rate: 1_000,
        seconds: 60,
        targets: vec![Kind::Murmur, Kind::SocketIo, Kind::SocketIoDurable],
        target_name: "all".into(),
        database: Backend::Sqlite,
        timeout: 1_200,
        group_commit: None,
        ping_every: Duration::from_secs(20),
        storm_new: 20,
        storm_concurrency: 500,
        svg: PathBuf::new(),
        csv: None,
        pg_admin: std::env::var("WSBENCH_PG_ADMIN").unwrap_or_else(|_| DEFAULT_PG_ADMIN.into()),
        manual_send_at: None,
        offline_users: 0,
        inbox_rate: 0.0,
    };
    let mut svg = None;
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
            "--ping-every" => a.ping_every = Duration::from_secs_f64(v.parse().expect("--ping-every S")),
            "--storm-new" => a.storm_new = v.parse().expect("--storm-new PERCENT"),
            "--storm-concurrency" => a.storm_concurrency = v.parse().expect("--storm-concurrency N"),
            "--svg" => svg = Some(PathBuf::from(v)),
            "--csv" => a.csv = Some(PathBuf::from(v)),
            "--pg-admin" => a.pg_admin = v,
            "--manual-send-at" => a.manual_send_at = Some(v.parse().expect("--manual-send-at S")),
            "--offline-users" => a.offline_users = v.parse().expect("--offline-users N"),
            "--inbox-rate" => a.inbox_rate = v.parse().expect("--inbox-rate R"),
            "--database" => {
                a.database = match v.as_str() {
                    "sqlite" => Backend::Sqlite,
                    "postgres" => Backend::Postgres,
                    other => panic!("--database sqlite|postgres, not {other:?}"),
                }
            }
            "--target" => {
                a.targets = match v.as_str() {
                    "murmur" => vec![Kind::Murmur],
                    "socketio" => vec![Kind::SocketIo],
                    "socketio-durable" => vec![Kind::SocketIoDurable],
                    "both" => vec![Kind::Murmur, Kind::SocketIo],
                    "all" => vec![Kind::Murmur, Kind::SocketIo, Kind::SocketIoDurable],
                    other => panic!("--target murmur|socketio|socketio-durable|all, not {other:?}"),
                };
                a.target_name = v;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(a.connections > 0 && a.rate > 0 && a.seconds > 0, "counts must be positive");
    assert!(a.storm_new <= 100 && a.storm_concurrency > 0, "--storm-new 0..=100, --storm-concurrency ≥ 1");
    assert!(a.ping_every >= Duration::from_millis(100), "--ping-every at least 0.1 s");
    a.svg = svg.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results").join(format!(
            "widget-{}-{}.svg",
            a.target_name,
            a.database.name()
        ))
    });
    a
}

impl Args {
    /// Tracks each user sends at most (and murmur's whispers, one per round).
    fn rounds(&self) -> usize {
        (self.rate as usize * self.seconds as usize).div_ceil(self.connections)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A small per-connection random generator (xorshift64*): phases and ids.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
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
/// PostgreSQL databases made for murmur: (admin URL, name), dropped at the end.
static PG_DATABASES: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
/// The manual send's report line, and when (from the window's start) it
/// was requested and its last card arrived.
#[allow(clippy::type_complexity)]
static MANUAL_REPORT: Mutex<Vec<(String, Duration, Option<Duration>)>> = Mutex::new(Vec::new());
/// The inbox's report line (user message → open inbox).
static INBOX_REPORT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The bench owner's dashboard session (seeded), for the inbox's live stream.
const INBOX_SESSION: &str = "bench-inbox-session-0123456789abcdef";
/// A widget's trigger that means "write to the team" rather than "track".
const WRITE: usize = usize::MAX;

/// A teammate's open inbox: reads `/live/inbox/{app}` (server-sent events)
/// and notes when each conversation's first change arrived, until `stop`;
/// `live` is notified when the stream goes live and on every change.
async fn inbox_listener(
    addr: SocketAddr,
    heard: Arc<Mutex<HashMap<String, Instant>>>,
    live: Arc<Notify>,
    mut stop: watch::Receiver<Phase>,
) -> Result<(), String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("inbox: {e}"))?;
    let mut stream = BufReader::new(stream);
    let req = format!(
        "GET /live/inbox/{APP_ID} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nCookie: murmur_session={INBOX_SESSION}\r\n\r\n"
    );
    stream.get_mut().write_all(req.as_bytes()).await.map_err(|e| format!("inbox: {e}"))?;
    let mut line = String::new();
    stream.read_line(&mut line).await.map_err(|e| format!("inbox: {e}"))?;
    if !line.contains(" 200 ") {
        return Err(format!("inbox stream refused: {}", line.trim()));
    }
    loop {
        line.clear();
        let read = tokio::select! {
            r = stream.read_line(&mut line) => r,
            _ = stop.wait_for(|p| *p == Phase::Stop) => return Ok(()),
        };
        match read {
            Ok(0) => return Err("inbox stream closed".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("inbox: {e}")),
        }
        // Chunk sizes come on lines of their own; the events' lines are whole.
        if let Some(data) = line.trim_end().strip_prefix("data:") {
            let data = data.trim();
            if data != "*" {
                heard.lock().unwrap().entry(data.to_string()).or_insert_with(Instant::now);
            }
            live.notify_one();
        }
    }
}

/// Which widget started each of the app's conversations: conversation id → widget index.
async fn conversation_starters(url: &str) -> HashMap<String, usize> {
    let store = Store::connect(&DbUrl::parse(url).unwrap()).await.unwrap();
    let sql =
        "SELECT c.id, u.user_id FROM conversations c JOIN app_users u ON u.id = c.app_user_id WHERE c.app_id = $1";
    let rows: Vec<(String, Option<String>)> = match &store {
        Store::Sqlite(p) => sqlx::query_as(sql).bind(APP_ID).fetch_all(p).await.unwrap(),
        Store::Postgres(p) => sqlx::query_as(sql).bind(APP_ID).fetch_all(p).await.unwrap(),
    };
    store.close().await;
    rows.into_iter().filter_map(|(c, u)| Some((c, u?.strip_prefix("bench-")?.parse().ok()?))).collect()
}

/// Schedules a manual message to every user of the bench app, due now: the
/// server's send worker fixes the recipients and pushes it to the open widgets.
async fn schedule_manual_send(url: &str) {
    let store = Store::connect(&DbUrl::parse(url).unwrap()).await.unwrap();
    let now = now_ms();
    let m = murmur::storage::manual::ManualRow {
        id: "5e0d00000000000000000001".into(),
        app_id: APP_ID.into(),
        title: "Everyone".into(),
        sender_id: Some(OWNER_ID.into()),
        sender_name: "Bench Owner".into(),
        kind: "chat".into(),
        body: "Hello {{ firstName || there }}, **news**".into(),
        audience: r#"{"type":"segment","conditions":[]}"#.into(),
        state: "scheduled".into(),
        send_at: Some(now),
        recipients: None,
        created_by: None,
        created_at: now,
        updated_at: now,
        stopped_at: None,
        push: false,
    };
    store.insert_manual(&m).await.unwrap();
    store.close().await;
}

/// A server child process and its temp dir (log, database); killed and
/// removed when dropped, including when a phase times out.
struct Server {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
    /// A Node.js server: `GET /gc` before its RSS is read.
    node: bool,
    /// Its database, if it has one (read at the end to count the rows).
    db_url: Option<String>,
}

impl Server {
    fn start(mut cmd: Command, dir: PathBuf, addr: SocketAddr, node: bool, db_url: Option<String>) -> Server {
        let log = std::fs::File::create(dir.join("server.log")).expect("server log");
        cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        CLEANUP.lock().unwrap().push((child.id(), dir.clone()));
        Server { child, dir, addr, node, db_url }
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
            if http_get(self.addr, "/healthz", Duration::from_secs(2))
                .await
                .is_some_and(|a| a.starts_with(b"HTTP/1.1 200"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("server not ready within 30 s:\n{}", self.log());
    }

    /// Resident memory (VmRSS, RssAnon) in KiB; a Node.js server collects
    /// its garbage first.
    async fn rss(&self) -> (u64, u64) {
        if self.node {
            match http_get(self.addr, "/gc", Duration::from_secs(30)).await {
                Some(a) if a.starts_with(b"HTTP/1.1 200") => {}
                other => panic!(
                    "GET /gc failed ({:?}): is node started with --expose-gc?",
                    other.map(|a| String::from_utf8_lossy(&a).into_owned())
                ),
            }
        }
        rss_kib(self.pid())
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

/// One HTTP/1.1 GET on a fresh connection: the whole answer, or `None`.
async fn http_get(addr: SocketAddr, path: &str, within: Duration) -> Option<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    tokio::time::timeout(within, s.read_to_end(&mut answer)).await.ok()?.ok()?;
    Some(answer)
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
        for (admin, name) in PG_DATABASES.lock().map(|c| c.clone()).unwrap_or_default() {
            let _ = Command::new("timeout")
                .args(["30", "psql", &admin, "-c", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")])
                .status();
        }
        std::process::exit(3);
    });
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn temp_dir(kind: Kind) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("murmur-wsbench-{}-{}", std::process::id(), kind.name()));
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

/// The whole machine's busy CPU time, in seconds, all CPUs: user + nice +
/// system + irq + softirq + steal from `/proc/stat` (guest time is already
/// inside user; idle and iowait are not busy).
fn machine_busy_seconds(ticks_per_second: f64) -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().find(|l| l.starts_with("cpu ")).unwrap_or_default();
    let f: Vec<u64> = line.split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0)).collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal guest guest_nice
    (at(0) + at(1) + at(2) + at(5) + at(6) + at(7)) as f64 / ticks_per_second
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

/// The CPU clocks read at the start and the end of a window.
#[derive(Clone, Copy)]
struct Clocks {
    server: f64,
    machine: f64,
    client: f64,
    at: Instant,
}

impl Clocks {
    fn read(pid: u32, ticks: f64) -> Clocks {
        Clocks {
            server: cpu_seconds(pid, ticks),
            machine: machine_busy_seconds(ticks),
            client: cpu_seconds(std::process::id(), ticks),
            at: Instant::now(),
        }
    }
    fn since(&self, before: &Clocks) -> Cpu {
        Cpu {
            server: self.server - before.server,
            machine: self.machine - before.machine,
            client: self.client - before.client,
            wall: self.at - before.at,
        }
    }
}

/// CPU seconds used over a window.
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: f64,
    machine: f64,
    client: f64,
    wall: Duration,
}

impl Cpu {
    /// The machine's busy time less the load client's.
    fn machine_less_client(&self) -> f64 {
        (self.machine - self.client).max(0.0)
    }
}

fn command_output(cmd: &str, args: &[&str], dir: &Path) -> String {
    Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The servers

fn whisper_id(round: usize) -> String {
    format!("{:024x}", 0xb0000 + round)
}

fn event_name(round: usize) -> String {
    format!("bench-event-{round}")
}

/// One app without identity verification, its owner, and `rounds` active
/// whispers for everyone, whisper k on the event `bench-event-k`.
async fn seed_murmur(url: &str, rounds: usize, offline_users: usize) {
    let store = Store::connect(&DbUrl::parse(url).unwrap()).await.unwrap();
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
    let hash = murmur::server::crypto::sha256_hex(INBOX_SESSION);
    store.insert_session(&hash, OWNER_ID, now, now + 7 * 86_400_000).await.unwrap();
    let app = AppRow { id: APP_ID.into(), name: "bench".into(), identity_secret_enc: vec![0], created_at: now };
    store.insert_app(&app, &[OWNER_ID]).await.unwrap();
    store.set_identity_enforced(APP_ID, false).await.unwrap();
    for round in 0..rounds {
        let mut d = from_template(None, OWNER_ID);
        d.name = format!("Bench card {round}");
        d.all_users = true;
        d.conditions = vec![];
        d.trigger = Trigger::Event(event_name(round));
        d.text = "Hi {{ firstName || there }}, your **cart** is waiting.".into();
        d.buttons = vec![
            Button { label: "Checkout".into(), action: ButtonAction::Link("https://shop.example/checkout".into()) },
            Button { label: "I have a question".into(), action: ButtonAction::Reply("I have a question".into()) },
        ];
        let errs = d.validate(|_| None);
        assert!(errs.is_empty(), "bench whisper does not validate: {errs:?}");
        store.insert_whisper(&whisper_id(round), APP_ID, "active", &d, now).await.unwrap();
    }
    if offline_users > 0 {
        let sql = match &store {
            Store::Sqlite(_) => format!(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {offline_users}) \
                 INSERT INTO app_users (id, app_id, user_id, signed_up_at, properties, created_at, updated_at) \
                 SELECT printf('0ff%021x', n), '{APP_ID}', 'offline' || n, {now}, jsonb('{{}}'), {now}, {now} FROM g"
            ),
            Store::Postgres(_) => format!(
                "INSERT INTO app_users (id, app_id, user_id, signed_up_at, properties, created_at, updated_at) \
                 SELECT '0ff' || lpad(to_hex(g), 21, '0'), '{APP_ID}', 'offline' || g, {now}, '{{}}', {now}, {now} \
                 FROM generate_series(1, {offline_users}) g"
            ),
        };
        match &store {
            Store::Sqlite(p) => sqlx::query(&sql).execute(p).await.map(|_| ()).unwrap(),
            Store::Postgres(p) => sqlx::query(&sql).execute(p).await.map(|_| ()).unwrap(),
        }
    }
    store.close().await;
}

/// A fresh PostgreSQL database for murmur: its URL (dropped by `drop_pg_databases`).
async fn create_pg_database(admin: &str) -> String {
    use sqlx::Connection;
    let name = format!("murmur_wsbench_{}", std::process::id());
    let mut c = sqlx::PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL for --database postgres at {admin}: {e}"));
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await.unwrap();
    let _ = c.close().await;
    PG_DATABASES.lock().unwrap().push((admin.to_string(), name.clone()));
    let base = admin.rsplit_once('/').expect("--pg-admin postgres://…/db").0;
    format!("{base}/{name}")
}

async fn drop_pg_databases() {
    use sqlx::Connection;
    let dbs: Vec<(String, String)> = std::mem::take(&mut *PG_DATABASES.lock().unwrap());
    for (admin, name) in dbs {
        let dropped = async {
            let mut c = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await?;
            c.close().await
        };
        match tokio::time::timeout(Duration::from_secs(30), dropped).await {
            Ok(Ok(())) => {}
            other => eprintln!("wsbench: could not drop the database {name}: {:?}", other.map(|r| r.err())),
        }
    }
}

async fn start_murmur(dir: PathBuf, a: &Args) -> Server {
    let url = match a.database {
        Backend::Sqlite => format!("sqlite://{}", dir.join("murmur.db").display()),
        Backend::Postgres => create_pg_database(&a.pg_admin).await,
    };
    seed_murmur(&url, a.rounds(), a.offline_users).await;
    let exe = std::env::current_exe().unwrap().with_file_name("murmur");
    assert!(
        exe.exists(),
        "{} is missing: cargo build --release --features ssr --bin murmur --bin wsbench",
        exe.display()
    );
    let addr = free_addr();
    let mut cmd = Command::new(exe);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DATABASE_URL", &url)
        .env("DATA_DIR", &dir)
        .env("SECRET_KEY", SECRET_KEY)
        .env("LEPTOS_SITE_ADDR", addr.to_string())
        .env("LEPTOS_OUTPUT_NAME", "murmur")
        .env("LEPTOS_SITE_ROOT", "target/site")
        .env("RUST_LOG", "warn")
        // Every widget connects from 127.0.0.1: no per-address limit, and
        // room for every widget of the run.
        .env("WIDGET_CONNECT_RATE_LIMIT", "off")
        .env("MAX_CONNECTIONS_PER_ADDRESS", "0")
        .env("MAX_CONNECTIONS", "1000000");
    if let Some(g) = a.group_commit {
        cmd.env("EVENT_GROUP_COMMIT", g.to_string());
    }
    if a.manual_send_at.is_some() && std::env::var("SCHEDULER_PERIOD_MS").is_err() {
        // The send worker picks the message up within 100 ms.
        cmd.env("SCHEDULER_PERIOD_MS", "100");
    }
    let mut s = Server::start(cmd, dir, addr, false, Some(url));
    s.ready().await;
    s
}

fn node_package_version(kind: Kind, package: &str) -> String {
    let pkg = std::fs::read_to_string(kind.node_dir().join("node_modules").join(package).join("package.json"))
        .unwrap_or_default();
    serde_json::from_str::<Value>(&pkg).ok().and_then(|v| v["version"].as_str().map(String::from)).unwrap_or_default()
}

/// Runs `npm ci` in the baseline's directory when its packages are missing
/// (at most 15 minutes: better-sqlite3 may compile from source).
fn ensure_node_modules(kind: Kind) {
    let dir = kind.node_dir();
    let marker = match kind {
        Kind::SocketIoDurable => "node_modules/better-sqlite3/build/Release/better_sqlite3.node",
        _ => "node_modules/socket.io/package.json",
    };
    if dir.join(marker).exists() {
        return;
    }
    eprintln!("{}: {} is missing; running npm ci in {}", kind.name(), marker, dir.display());
    let status = Command::new("timeout")
        .args(["900", "npm", "ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .unwrap_or_else(|e| panic!("cannot run npm ci in {}: {e}", dir.display()));
    assert!(status.success() && dir.join(marker).exists(), "npm ci in {} failed ({status})", dir.display());
}

async fn start_node(kind: Kind, dir: PathBuf) -> Server {
    ensure_node_modules(kind);
    let addr = free_addr();
    let mut cmd = Command::new("node");
    cmd.current_dir(kind.node_dir()).arg("--expose-gc").arg("server.js").arg(addr.port().to_string());
    let mut db_url = None;
    if kind == Kind::SocketIoDurable {
        let db = dir.join("durable.db");
        cmd.arg(&db);
        db_url = Some(format!("sqlite://{}", db.display()));
    }
    let mut s = Server::start(cmd, dir, addr, true, db_url);
    s.ready().await;
    s
}

/// What the server stored, read from its database at the end: events,
/// deliveries, deliveries seen, and (murmur) users.
/// Waits (at most 30 s) until the server has stored at least `cards`
/// deliveries and every one is seen: the seen reports sent so far are
/// written. A server that stores nothing has nothing to wait for.
async fn seen_written(server: &Server, cards: u64) {
    let Some(url) = &server.db_url else { return };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match stored_rows(url, false).await {
            Ok([_, Some(deliveries), Some(seen), _]) if deliveries >= cards as i64 && seen >= deliveries => return,
            Ok(_) => {}
            Err(e) => {
                eprintln!("  could not read the stored rows: {e}");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("  the seen reports were not all written within 30 s");
}

async fn stored_rows(url: &str, users: bool) -> Result<[Option<i64>; 4], String> {
    use sqlx::Connection;
    let queries = [
        Some("SELECT COUNT(*) FROM events"),
        Some("SELECT COUNT(*) FROM deliveries"),
        Some("SELECT COUNT(*) FROM deliveries WHERE state = 'seen'"),
        users.then_some("SELECT COUNT(*) FROM app_users"),
    ];
    let mut out = [None; 4];
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&format!("{url}?mode=ro")).await.map_err(|e| e.to_string())?;
        for (q, o) in queries.iter().zip(&mut out) {
            if let Some(q) = q {
                *o = Some(sqlx::query_scalar::<_, i64>(q).fetch_one(&mut c).await.map_err(|e| e.to_string())?);
            }
        }
        let _ = c.close().await;
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.map_err(|e| e.to_string())?;
        for (q, o) in queries.iter().zip(&mut out) {
            if let Some(q) = q {
                *o = Some(sqlx::query_scalar::<_, i64>(q).fetch_one(&mut c).await.map_err(|e| e.to_string())?);
            }
        }
        let _ = c.close().await;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// The load client

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What one connection saw.
#[derive(Default)]
struct Seen {
    welcomed: bool,
    /// Per card: when its track was sent, and the latency.
    cards: Vec<(Instant, Duration)>,
    /// Closed by the server (or failed) before the end of the run.
    lost: bool,
}

/// The phases a widget follows after it is welcomed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Run,
    /// Drop the connection and reconnect; the time the storm began.
    Storm(Instant),
    Stop,
}

/// Shared by all connections of one target.
struct Shared {
    kind: Kind,
    addr: SocketAddr,
    ping_every: Duration,
    storm_new: usize,
    cards: AtomicU64,
    errors: AtomicU64,
    /// Error frames (murmur's answer to a frame it could not handle).
    refused: AtomicU64,
    first_error: Mutex<Option<String>>,
    card_bytes: AtomicU64,
    seens: AtomicU64,
    pings: AtomicU64,
    pongs: AtomicU64,
    /// Cards that came with a welcome after the storm, still unseen.
    welcome_unseen: AtomicU64,
    /// Notified when a card arrives.
    arrived: Notify,
    /// Cards of the manual message (ids starting with `m`), and when the
    /// first and the last arrived.
    manual_cards: AtomicU64,
    manual_span: Mutex<Option<(Instant, Instant)>>,
    /// When each widget (by index) wrote to the team.
    writes: Mutex<HashMap<usize, Instant>>,
    connecting: Semaphore,
    storm_connecting: Semaphore,
}

impl Shared {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap();
        if first.is_none() {
            *first = Some(what);
        }
    }

    fn track_frame(&self, round: usize) -> String {
        let name = event_name(round);
        match self.kind {
            Kind::Murmur => json!({"t": "track", "name": name}).to_string(),
            _ => format!(r#"42["track",{}]"#, json!({ "name": name })),
        }
    }

    fn seen_frame(&self, id: &str) -> String {
        match self.kind {
            Kind::Murmur => json!({"t": "seen", "id": id}).to_string(),
            _ => format!(r#"42["seen",{}]"#, json!({ "id": id })),
        }
    }

    fn ping_frame(&self) -> &'static str {
        match self.kind {
            Kind::Murmur => r#"{"t":"ping"}"#,
            _ => r#"42["ping"]"#,
        }
    }

    /// Whether connection `i` comes back from the storm as a new user:
    /// exactly `storm_new` percent of them, spread evenly.
    fn new_after_storm(&self, i: usize) -> bool {
        (i + 1) * self.storm_new / 100 > i * self.storm_new / 100
    }
}

/// Opens the socket and completes the protocol's handshake: murmur's
/// hello/welcome, or Engine.IO open + socket.io connect to "/". Returns
/// the socket and the ids of unseen cards that came with the welcome.
async fn open(shared: &Shared, i: usize, fresh: bool) -> Result<(Ws, Vec<String>), String> {
    let addr = shared.addr;
    let user = if fresh { format!("bench-storm-{i}") } else { format!("bench-{i}") };
    let url = match shared.kind {
        Kind::Murmur => format!("ws://{addr}/widget/ws"),
        _ => format!("ws://{addr}/socket.io/?EIO=4&transport=websocket&user={user}"),
    };
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert("Origin", format!("http://{addr}").parse().unwrap());
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut unseen = Vec::new();
    match shared.kind {
        Kind::Murmur => {
            let device = if fresh { format!("bench-storm-{i:08}") } else { format!("bench-device-{i:08}") };
            // As messenger.js says it (identity verification is off, so a
            // userId needs no JWT).
            let hello = json!({"t": "hello", "app": APP_ID, "device": device, "platform": "web",
                               "since": null, "userId": user});
            send(&mut ws, hello.to_string()).await?;
            let first = next_text(&mut ws).await?;
            let v: Value = serde_json::from_str(&first).map_err(|e| format!("{e}: {first}"))?;
            if v["t"] != "welcome" {
                return Err(format!("expected welcome, got {first}"));
            }
            for c in v["cards"].as_array().into_iter().flatten() {
                if c["seen"] == false {
                    unseen.extend(c["id"].as_str().map(String::from));
                }
            }
        }
        _ => {
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
    Ok((ws, unseen))
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

/// A handshake with a 30 s bound, counted as an error when it fails.
async fn open_bounded(shared: &Shared, i: usize, fresh: bool, permits: &Semaphore) -> Option<(Ws, Vec<String>)> {
    let permit = permits.acquire().await.unwrap();
    let opened = tokio::time::timeout(Duration::from_secs(30), open(shared, i, fresh)).await;
    drop(permit);
    match opened {
        Ok(Ok(o)) => Some(o),
        Ok(Err(e)) => {
            shared.error(e);
            None
        }
        Err(_) => {
            shared.error("handshake timed out (30 s)".into());
            None
        }
    }
}

/// What a text frame from the server asks of the widget: the id of a card
/// to mark seen.
fn on_text(shared: &Shared, seen: &mut Seen, pending: &mut VecDeque<Instant>, t: &str) -> Option<String> {
    let (kind, body) = match shared.kind {
        Kind::Murmur => {
            let v: Value = serde_json::from_str(t).unwrap_or_default();
            (v["t"].as_str().unwrap_or_default().to_string(), v)
        }
        _ => match t.strip_prefix("42") {
            Some(event) => {
                let v: Value = serde_json::from_str(event).unwrap_or_default();
                (v[0].as_str().unwrap_or_default().to_string(), v[1].clone())
            }
            None => return None,
        },
    };
    match kind.as_str() {
        "card" if body["id"].as_str().is_some_and(|id| id.starts_with('m')) => {
            // The manual message: not an answer to a track.
            let now = Instant::now();
            shared.manual_cards.fetch_add(1, Ordering::Relaxed);
            let mut span = shared.manual_span.lock().unwrap();
            *span = Some(span.map_or((now, now), |(first, _)| (first, now)));
            shared.arrived.notify_one();
            body["id"].as_str().map(String::from)
        }
        "card" => {
            let Some(sent_at) = pending.pop_front() else {
                shared.error(format!("unexpected card: {t}"));
                return None;
            };
            seen.cards.push((sent_at, sent_at.elapsed()));
            shared.card_bytes.store(t.len() as u64, Ordering::Relaxed);
            shared.cards.fetch_add(1, Ordering::Relaxed);
            shared.arrived.notify_one();
            if body["seen"] == true {
                return None;
            }
            body["id"].as_str().map(String::from)
        }
        "pong" => {
            shared.pongs.fetch_add(1, Ordering::Relaxed);
            None
        }
        "error" => {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            shared.error(t.to_string());
            None
        }
        _ => None,
    }
}

/// One widget: opens, reports ready, sends a track (of the round given)
/// whenever told, times each card and answers it with `seen`, pings from a
/// random phase, drops and reopens its connection in the storm, and holds
/// the connection until `Stop`.
async fn widget(
    shared: Arc<Shared>,
    i: usize,
    ready: mpsc::UnboundedSender<(usize, bool)>,
    mut tracks: mpsc::UnboundedReceiver<usize>,
    mut phase: watch::Receiver<Phase>,
    storm_report: mpsc::UnboundedSender<Option<Duration>>,
) -> Seen {
    let mut seen = Seen::default();
    let Some((mut ws, _)) = open_bounded(&shared, i, false, &shared.connecting).await else {
        let _ = ready.send((i, false));
        return seen;
    };
    seen.welcomed = true;
    let _ = ready.send((i, true));
    drop(ready);
    let mut storm_report = Some(storm_report);
    let mut rng = Rng::new(i as u64 + u64::from(std::process::id()) * 1_000_003);
    // Like messenger.js's 20 s interval, from a random phase.
    let first = tokio::time::Instant::now() + shared.ping_every.mul_f64(rng.unit());
    let mut ping = tokio::time::interval_at(first, shared.ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending: VecDeque<Instant> = VecDeque::new();
    let mut tracks_open = true;
    let mut to_mark: Vec<String> = Vec::new();
    'run: loop {
        for id in to_mark.drain(..) {
            if let Err(e) = send(&mut ws, shared.seen_frame(&id)).await {
                shared.error(format!("send seen: {e}"));
                seen.lost = true;
                break 'run;
            }
            shared.seens.fetch_add(1, Ordering::Relaxed);
        }
        tokio::select! {
            round = tracks.recv(), if tracks_open => match round {
                Some(WRITE) => {
                    let frame = json!({"t": "reply", "text": format!("Hello from widget {i}, a question about my order")});
                    shared.writes.lock().unwrap().insert(i, Instant::now());
                    if let Err(e) = send(&mut ws, frame.to_string()).await {
                        shared.error(format!("send reply: {e}"));
                        seen.lost = true;
                        break;
                    }
                }
                Some(round) => {
                    pending.push_back(Instant::now());
                    if let Err(e) = send(&mut ws, shared.track_frame(round)).await {
                        shared.error(format!("send track: {e}"));
                        seen.lost = true;
                        break;
                    }
                }
                None => tracks_open = false,
            },
            _ = ping.tick() => {
                if let Err(e) = send(&mut ws, shared.ping_frame().into()).await {
                    shared.error(format!("send ping: {e}"));
                    seen.lost = true;
                    break;
                }
                shared.pings.fetch_add(1, Ordering::Relaxed);
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if shared.kind.socketio() && &*t == "2" {
                        // Engine.IO heartbeat.
                        let _ = send(&mut ws, "3".into()).await;
                    }
                    to_mark.extend(on_text(&shared, &mut seen, &mut pending, &t));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    shared.error(format!("connection {i}: {e}"));
                    seen.lost = true;
                    break;
                }
                None => {
                    shared.error(format!("connection {i} closed by the server"));
                    seen.lost = true;
                    break;
                }
            },
            changed = phase.changed() => {
                let now = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Stop };
                match now {
                    Phase::Run => {}
                    Phase::Stop => break,
                    Phase::Storm(began) => {
                        let Some(report) = storm_report.take() else { continue };
                        // Dropped at once: a close frame, no wait for the answer.
                        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                        drop(ws);
                        let fresh = shared.new_after_storm(i);
                        match open_bounded(&shared, i, fresh, &shared.storm_connecting).await {
                            Some((reopened, unseen)) => {
                                let _ = report.send(Some(began.elapsed()));
                                ws = reopened;
                                shared.welcome_unseen.fetch_add(unseen.len() as u64, Ordering::Relaxed);
                                // messenger.js marks the welcome's unseen cards seen as it shows them.
                                to_mark.extend(unseen);
                            }
                            None => {
                                let _ = report.send(None);
                                seen.lost = true;
                                return seen;
                            }
                        }
                    }
                }
            }
        }
    }
    seen
}

// ---------------------------------------------------------------------------
// One server's run

/// The reconnect storm's figures.
#[derive(Default)]
struct Storm {
    /// Widgets connected when the storm began (each reports once).
    asked: usize,
    welcomed: usize,
    new_users: usize,
    /// From the drop to the last welcome.
    all_welcomed: Option<Duration>,
    p50: Duration,
    p99: Duration,
    cpu: Cpu,
}

/// The figures for one server.
struct Outcome {
    kind: Kind,
    label: String,
    database: &'static str,
    asked: usize,
    welcomed: usize,
    connect_time: Duration,
    rss_idle: (u64, u64),
    /// RSS with the first half open, and how many that was.
    rss_half: ((u64, u64), usize),
    rss_held: (u64, u64),
    tracks: usize,
    rounds: usize,
    cards: usize,
    lost: usize,
    errors: u64,
    refused: u64,
    first_error: Option<String>,
    card_bytes: u64,
    seens: u64,
    /// Unseen cards that came with the storm's welcomes (marked seen then).
    welcome_unseen: u64,
    pings: u64,
    pongs: u64,
    /// First track to last card.
    phase: Duration,
    /// Per card: send time from the window's start, and latency; by send time.
    samples: Vec<(Duration, Duration)>,
    /// Latencies, sorted.
    latencies: Vec<Duration>,
    /// First track to the last card, or to the end of the wait for missing ones.
    cpu: Cpu,
    /// The machine's busy time less the client's, per second, while the
    /// connections were open and idle (pings only), before the tracks.
    background: f64,
    max_send_lag: Duration,
    storm: Storm,
    /// Rows in the server's database at the end: events, deliveries, seen, users.
    stored: Option<Result<[Option<i64>; 4], String>>,
    /// The write batches, where the server tells them.
    batches: String,
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
    fn per_card_us(&self, seconds: f64) -> f64 {
        seconds * 1e6 / self.cards.max(1) as f64
    }
    fn pct(&self, q: f64) -> Duration {
        percentile(&self.latencies, q)
    }
}

/// The `q` quantile (nearest rank) of sorted values.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn measure(kind: Kind, server: &Server, a: &Args, ticks: f64) -> Outcome {
    let pid = server.pid();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = server.rss().await;
    let shared = Arc::new(Shared {
        kind,
        addr: server.addr,
        ping_every: a.ping_every,
        storm_new: a.storm_new,
        cards: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        first_error: Mutex::new(None),
        card_bytes: AtomicU64::new(0),
        seens: AtomicU64::new(0),
        pings: AtomicU64::new(0),
        pongs: AtomicU64::new(0),
        welcome_unseen: AtomicU64::new(0),
        arrived: Notify::new(),
        manual_cards: AtomicU64::new(0),
        manual_span: Mutex::new(None),
        writes: Mutex::new(HashMap::new()),
        connecting: Semaphore::new(CONNECTING),
        storm_connecting: Semaphore::new(a.storm_concurrency),
    });
    let (phase_tx, phase_rx) = watch::channel(Phase::Run);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (storm_tx, mut storm_rx) = mpsc::unbounded_channel();
    let mut triggers = Vec::with_capacity(a.connections);
    let mut tasks = Vec::with_capacity(a.connections);
    // Two halves, each settled and measured: the growth from the first half
    // to the second is the marginal cost of a connection, once whatever
    // grows once (buffers, caches, thread-local pools) has grown.
    let mut open = Vec::with_capacity(a.connections);
    let mut connect_time = Duration::ZERO;
    let mut rss_half = ((0, 0), 0);
    let mut background = 0.0;
    let half = a.connections / 2;
    for range in [0..half, half..a.connections] {
        let connect_started = Instant::now();
        for i in range.clone() {
            let (tx, rx) = mpsc::unbounded_channel();
            triggers.push(tx);
            tasks.push(tokio::spawn(widget(
                shared.clone(),
                i,
                ready_tx.clone(),
                rx,
                phase_rx.clone(),
                storm_tx.clone(),
            )));
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
        let settle_from = Clocks::read(pid, ticks);
        tokio::time::sleep(SETTLE).await;
        if range.start == 0 {
            rss_half = (server.rss().await, open.len());
        } else {
            let idle = Clocks::read(pid, ticks).since(&settle_from);
            background = idle.machine_less_client() / idle.wall.as_secs_f64();
        }
    }
    drop(ready_tx);
    drop(storm_tx);
    let rss_held = server.rss().await;
    // The connections in a random order, so that a user's tracks are not
    // always its neighbour's in time.
    let mut rng = Rng::new(u64::from(std::process::id()));
    for k in (1..open.len()).rev() {
        open.swap(k, (rng.next() % (k as u64 + 1)) as usize);
    }

    // The tracks: `rate` per second, round-robin over the open connections,
    // round k using event k (murmur's whisper k), each user at most `rounds` times.
    let n = open.len().max(1);
    let rounds = a.rounds();
    let tracks = ((a.rate * a.seconds) as usize).min(open.len() * rounds);
    eprintln!("  {tracks} tracks at {}/s ({rounds} per user at most)", a.rate);
    // A teammate's open inbox, live before the window starts.
    let inbox = (a.inbox_rate > 0.0 && kind == Kind::Murmur).then(|| {
        let heard = Arc::new(Mutex::new(HashMap::new()));
        let live = Arc::new(Notify::new());
        let task = tokio::spawn(inbox_listener(server.addr, heard.clone(), live.clone(), phase_rx.clone()));
        (heard, live, task)
    });
    if let Some((_, live, task)) = &inbox {
        if tokio::time::timeout(Duration::from_secs(10), live.notified()).await.is_err() || task.is_finished() {
            shared.error("the inbox stream did not go live within 10 s".into());
        }
    }
    // Each write is a different widget's (a new conversation each).
    let writes = if inbox.is_some() { ((a.inbox_rate * a.seconds as f64) as usize).min(open.len()) } else { 0 };
    let mut written = 0;
    let before = Clocks::read(pid, ticks);
    let started = Instant::now();
    let mut sent = 0;
    let mut max_send_lag = Duration::ZERO;
    let mut manual_requested: Option<Instant> = None;
    while sent < tracks {
        if let (Some(at), None, Some(url)) = (a.manual_send_at, manual_requested, &server.db_url) {
            if started.elapsed().as_secs_f64() >= at {
                manual_requested = Some(Instant::now());
                let url = url.clone();
                tokio::spawn(async move { schedule_manual_send(&url).await });
            }
        }
        let due = ((started.elapsed().as_secs_f64() * a.rate as f64) as usize + 1).min(tracks);
        while sent < due {
            let scheduled = Duration::from_secs_f64(sent as f64 / a.rate as f64);
            max_send_lag = max_send_lag.max(started.elapsed().saturating_sub(scheduled));
            let _ = triggers[open[sent % n]].send(sent / n);
            sent += 1;
        }
        let writes_due = ((started.elapsed().as_secs_f64() * a.inbox_rate) as usize).min(writes);
        while written < writes_due {
            // Spread over the connections, away from the tracks' order.
            let _ = triggers[open[(written * 7919 + n / 2) % n]].send(WRITE);
            written += 1;
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
    let cpu = Clocks::read(pid, ticks).since(&before);
    if let (Some((heard, live, task)), Some(url)) = (inbox, &server.db_url) {
        while written < writes {
            let _ = triggers[open[(written * 7919 + n / 2) % n]].send(WRITE);
            written += 1;
        }
        // Until the inbox has heard of as many conversations as there were writes (bounded).
        let until = tokio::time::Instant::now() + DRAIN;
        while heard.lock().unwrap().len() < writes {
            if tokio::time::timeout_at(until, live.notified()).await.is_err() {
                break;
            }
        }
        task.abort();
        let starters = conversation_starters(url).await;
        let writes_at = shared.writes.lock().unwrap().clone();
        let first = heard.lock().unwrap().clone();
        let mut latencies: Vec<Duration> = starters
            .iter()
            .filter_map(|(c, i)| Some(first.get(c)?.saturating_duration_since(*writes_at.get(i)?)))
            .collect();
        latencies.sort();
        let line = if latencies.is_empty() {
            format!(
                "| user message → open inbox, {} widgets online | none heard of {writes} written | — | — |",
                thousands(open.len())
            )
        } else {
            format!(
                "| user message → open inbox (its live stream), {} widgets online, {:.0} messages/s beside {} tracks/s | p50 {} ms, p99 {} ms, max {} ms | {} of {} heard | target p99 ≤ 100 ms |",
                thousands(open.len()),
                a.inbox_rate,
                a.rate,
                ms(percentile(&latencies, 0.5)),
                ms(percentile(&latencies, 0.99)),
                ms(*latencies.last().unwrap()),
                thousands(latencies.len()),
                thousands(writes),
            )
        };
        eprintln!("  {line}");
        INBOX_REPORT.lock().unwrap().push(line);
    }
    if let Some(requested) = manual_requested {
        // Every open widget gets the message (bounded wait).
        let until = Instant::now() + Duration::from_secs(60);
        while (shared.manual_cards.load(Ordering::Relaxed) as usize) < open.len() {
            let wait = shared.arrived.notified();
            if tokio::time::timeout_at(until.into(), wait).await.is_err() {
                break;
            }
        }
        let got = shared.manual_cards.load(Ordering::Relaxed);
        let span = *shared.manual_span.lock().unwrap();
        let line = match span {
            Some((first, last)) => {
                let spread = (last - first).as_secs_f64();
                format!(
                    "| manual message to {} users ({} online) during the load | first card {:.2} s after the send was requested, last {:.2} s | {} of {} online widgets got it | {:.0} deliveries/s to online widgets |",
                    thousands(a.offline_users + open.len()),
                    thousands(open.len()),
                    (first - requested).as_secs_f64(),
                    (last - requested).as_secs_f64(),
                    thousands(got as usize),
                    thousands(open.len()),
                    got as f64 / spread.max(0.001),
                )
            }
            None => {
                format!("| manual message during the load | no card arrived within 60 s | 0 of {} | — |", open.len())
            }
        };
        eprintln!("  {line}");
        MANUAL_REPORT.lock().unwrap().push((
            line,
            requested.saturating_duration_since(started),
            span.map(|(_, l)| l.saturating_duration_since(started)),
        ));
    }
    drop(triggers);
    let cards_in_window = shared.cards.load(Ordering::Relaxed);
    eprintln!("  {cards_in_window} of {tracks} cards in {:.1} s", cpu.wall.as_secs_f64());

    // The reconnect storm, once the window's seen reports are written.
    seen_written(server, cards_in_window).await;
    let storm_before = Clocks::read(pid, ticks);
    let began = Instant::now();
    let _ = phase_tx.send(Phase::Storm(began));
    let mut storm = Storm::default();
    let mut times = Vec::new();
    let storm_until = tokio::time::Instant::now() + STORM_LIMIT;
    while let Ok(Some(report)) = tokio::time::timeout_at(storm_until, storm_rx.recv()).await {
        storm.asked += 1;
        if let Some(t) = report {
            times.push(t);
        }
    }
    storm.cpu = Clocks::read(pid, ticks).since(&storm_before);
    times.sort();
    storm.welcomed = times.len();
    storm.new_users = open.iter().filter(|&&i| shared.new_after_storm(i)).count();
    storm.all_welcomed = times.last().copied();
    storm.p50 = percentile(&times, 0.5);
    storm.p99 = percentile(&times, 0.99);
    eprintln!(
        "  storm: {} of {} back in {:.2} s",
        storm.welcomed,
        storm.asked,
        storm.all_welcomed.unwrap_or_default().as_secs_f64()
    );
    // The welcomes' seen reports written before stopping.
    seen_written(server, cards_in_window).await;
    let stored = match &server.db_url {
        Some(url) => Some(
            tokio::time::timeout(Duration::from_secs(30), stored_rows(url, kind == Kind::Murmur))
                .await
                .unwrap_or_else(|_| Err("timed out".into())),
        ),
        None => None,
    };
    let batches = match kind {
        Kind::Murmur => "not reported (murmur does not log them)".to_string(),
        Kind::SocketIo => "none (nothing is written)".to_string(),
        Kind::SocketIoDurable => write_batches(server).await,
    };

    let _ = phase_tx.send(Phase::Stop);
    let mut samples = Vec::with_capacity(tracks);
    let mut lost = 0;
    let mut last_card = started;
    for t in tasks {
        if let Ok(Ok(seen)) = tokio::time::timeout(Duration::from_secs(30), t).await {
            for (sent_at, latency) in seen.cards {
                samples.push((sent_at.saturating_duration_since(started), latency));
                last_card = last_card.max(sent_at + latency);
            }
            lost += usize::from(seen.welcomed && seen.lost);
        }
    }
    samples.sort();
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.1).collect();
    latencies.sort();
    let phase = last_card - started;
    // murmur inherits this program's environment (COMMIT_WINDOW_MS, say).
    let window = std::env::var("COMMIT_WINDOW_MS").map(|w| format!(", COMMIT_WINDOW_MS={w}")).unwrap_or_default();
    let node = command_output("node", &["--version"], Path::new("."));
    let label = match (kind, a.group_commit) {
        (Kind::Murmur, None) => format!("murmur{window}"),
        (Kind::Murmur, Some(g)) => format!("murmur, EVENT_GROUP_COMMIT={g}{window}"),
        (Kind::SocketIo, _) => {
            format!("socket.io {} (Node.js {node}), relay only", node_package_version(kind, "socket.io"))
        }
        (Kind::SocketIoDurable, _) => format!(
            "socket.io {} + better-sqlite3 {} (Node.js {node})",
            node_package_version(kind, "socket.io"),
            node_package_version(kind, "better-sqlite3")
        ),
    };
    let database = match (kind, a.database) {
        (Kind::Murmur, Backend::Sqlite) | (Kind::SocketIoDurable, _) => "SQLite",
        (Kind::Murmur, Backend::Postgres) => "PostgreSQL",
        (Kind::SocketIo, _) => "none",
    };
    let first_error = shared.first_error.lock().unwrap().clone();
    Outcome {
        kind,
        label,
        database,
        asked: a.connections,
        welcomed: open.len(),
        connect_time,
        rss_idle,
        rss_half,
        rss_held,
        tracks,
        rounds,
        cards: latencies.len(),
        lost,
        errors: shared.errors.load(Ordering::Relaxed),
        refused: shared.refused.load(Ordering::Relaxed),
        first_error,
        card_bytes: shared.card_bytes.load(Ordering::Relaxed),
        seens: shared.seens.load(Ordering::Relaxed),
        welcome_unseen: shared.welcome_unseen.load(Ordering::Relaxed),
        pings: shared.pings.load(Ordering::Relaxed),
        pongs: shared.pongs.load(Ordering::Relaxed),
        phase,
        samples,
        latencies,
        cpu,
        background,
        max_send_lag,
        storm,
        stored,
        batches,
    }
}

/// The durable baseline's write batches (`GET /stats`), the whole run's.
async fn write_batches(server: &Server) -> String {
    let answer = http_get(server.addr, "/stats", Duration::from_secs(5)).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&answer);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    // The JSON object, whatever the transfer encoding.
    let body = match (body.find('{'), body.rfind('}')) {
        (Some(from), Some(to)) if from < to => &body[from..=to],
        _ => body,
    };
    let v: Value = serde_json::from_str(body).unwrap_or_default();
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    if n("batches") == 0 {
        return format!("unknown (GET /stats: {:?})", text.lines().next().unwrap_or_default());
    }
    format!(
        "{} transactions, {:.1} tracks + {:.1} seens each on average, largest {}",
        thousands(n("batches") as usize),
        n("tracks") as f64 / n("batches") as f64,
        n("seens") as f64 / n("batches") as f64,
        n("largest")
    )
}

async fn run(a: &Args) -> Vec<Outcome> {
    let ticks = clock_ticks();
    let mut outcomes = Vec::new();
    for &kind in &a.targets {
        eprintln!("{}: starting", kind.name());
        let dir = temp_dir(kind);
        let server = match kind {
            Kind::Murmur => start_murmur(dir, a).await,
            _ => start_node(kind, dir).await,
        };
        let o = measure(kind, &server, a, ticks).await;
        drop(server);
        drop_pg_databases().await;
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

fn storm_cell(s: &Storm) -> String {
    match s.all_welcomed {
        Some(t) if s.welcomed == s.asked => format!("{:.2} s", t.as_secs_f64()),
        Some(t) => format!("{:.2} s ({} of {} back)", t.as_secs_f64(), thousands(s.welcomed), thousands(s.asked)),
        None => format!("none back (0 of {})", thousands(s.asked)),
    }
}

fn report(a: &Args, outcomes: &[Outcome], svg: Option<&Path>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"], root);
    let dirty = !command_output("git", &["status", "--porcelain", "--untracked-files=no"], root).is_empty();
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"], root);
    println!(
        "\n### Widget connections: {} widgets, {} tracks/s for {} s, murmur on {} — commit {commit}{}, {date}\n",
        thousands(a.connections),
        thousands(a.rate as usize),
        a.seconds,
        if a.database == Backend::Sqlite { "SQLite" } else { "PostgreSQL" },
        if dirty { " (with uncommitted changes)" } else { "" },
    );
    println!(
        "`wsbench --connections {} --rate {} --seconds {} --target {} --database {}`; loopback, one server at a \
         time, the load client on the same machine ({} cores). Latency: track sent → card received. CPU per card, \
         machine: all CPUs' busy time less the load client's, over first track → last card; server only: the \
         server process's user + system time. RSS per idle connection: growth with all connections open, settled \
         (Node.js after a forced GC). Storm: all widgets drop and reconnect at once ({} % as new users, at most {} \
         handshakes in flight): drop → last welcome.\n",
        a.connections,
        a.rate,
        a.seconds,
        a.target_name,
        a.database.name(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        a.storm_new,
        a.storm_concurrency,
    );
    println!(
        "| server | database | p50 | p99 | max | cards delivered / expected | CPU per card, machine | \
         CPU per card, server only | RSS per idle connection | reconnect storm: all welcomed |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for o in outcomes {
        println!(
            "| {} | {} | {} ms | {} ms | {} ms | {} / {} | {:.0} µs | {:.0} µs | {:.2} KiB | {} |",
            o.label,
            o.database,
            ms(o.pct(0.50)),
            ms(o.pct(0.99)),
            ms(o.pct(1.0)),
            thousands(o.cards),
            thousands(o.tracks),
            o.per_card_us(o.cpu.machine_less_client()),
            o.per_card_us(o.cpu.server),
            o.per_conn_kib(),
            storm_cell(&o.storm),
        );
    }

    for line in INBOX_REPORT.lock().unwrap().iter() {
        println!("\n| inbox | latency | heard | note |\n| --- | --- | --- | --- |\n{line}");
    }
    for (line, from, to) in MANUAL_REPORT.lock().unwrap().iter() {
        // Track → card latency for the tracks sent while the send ran.
        let during = outcomes.iter().find(|o| o.kind == Kind::Murmur).map(|o| {
            let to = to.unwrap_or(o.phase);
            let mut l: Vec<Duration> =
                o.samples.iter().filter(|(at, _)| *at >= *from && *at <= to).map(|(_, l)| *l).collect();
            l.sort();
            (percentile(&l, 0.5), percentile(&l, 0.99), l.len())
        });
        println!("\n| manual send | when | reach | throughput |\n| --- | --- | --- | --- |\n{line}");
        if let Some((p50, p99, n)) = during {
            println!(
                "\nWhile the send ran ({} tracks sent between the request and the last card): track → card p50 {} ms, p99 {} ms.",
                thousands(n),
                ms(p50),
                ms(p99)
            );
        }
    }
    println!("\n<details><summary>Details</summary>\n");
    let header: Vec<&str> = outcomes.iter().map(|o| o.kind.name()).collect();
    println!("| measure | {} |\n| --- |{}", header.join(" | "), " --- |".repeat(outcomes.len()));
    let row = |name: &str, cells: Vec<String>| println!("| {name} | {} |", cells.join(" | "));
    let each = |f: &dyn Fn(&Outcome) -> String| outcomes.iter().map(f).collect::<Vec<_>>();
    row("connections welcomed", each(&|o| format!("{} of {}", thousands(o.welcomed), thousands(o.asked))));
    row(
        &format!("time to open and welcome them ({CONNECTING} handshakes at a time)"),
        each(&|o| format!("{:.1} s", o.connect_time.as_secs_f64())),
    );
    row(
        "server RSS idle → with the connections (settled 3 s)",
        each(&|o| format!("{} → {}", mib(o.rss_idle.0), mib(o.rss_held.0))),
    );
    row("memory per connection (RSS growth ÷ connections)", each(&|o| format!("{:.2} KiB", o.per_conn_kib())));
    row(
        "of which anonymous memory (RssAnon growth ÷ connections)",
        each(&|o| format!("{:.2} KiB", o.anon_per_conn_kib())),
    );
    row(
        "marginal: RSS growth from the first half of the connections to all ÷ the second half",
        each(&|o| format!("{:.2} KiB", o.marginal_kib())),
    );
    row(
        "tracks sent (rounds per user) → cards received (answered with an error)",
        each(&|o| {
            format!(
                "{} ({}) → {} ({})",
                thousands(o.tracks),
                o.rounds,
                thousands(o.cards),
                thousands(o.refused as usize)
            )
        }),
    );
    row(
        "achieved rate (cards ÷ first track to last card)",
        each(&|o| format!("{:.0}/s", o.cards as f64 / o.phase.as_secs_f64().max(1e-9))),
    );
    row("card frame size", each(&|o| format!("{} bytes", o.card_bytes)));
    row(
        "latency p50 / p95 / p99 / p99.9 / max",
        each(&|o| {
            format!(
                "{} / {} / {} / {} / {} ms",
                ms(o.pct(0.50)),
                ms(o.pct(0.95)),
                ms(o.pct(0.99)),
                ms(o.pct(0.999)),
                ms(o.pct(1.0))
            )
        }),
    );
    row(
        &format!("CPU window: first track to last card or {} s wait for missing ones", DRAIN.as_secs()),
        each(&|o| format!("{:.1} s", o.cpu.wall.as_secs_f64())),
    );
    row(
        "machine busy (all CPUs) / load client / machine less client, over the window",
        each(&|o| format!("{:.2} / {:.2} / {:.2} s", o.cpu.machine, o.cpu.client, o.cpu.machine_less_client())),
    );
    row("server process CPU (user + system) over the window", each(&|o| format!("{:.2} s", o.cpu.server)));
    row(
        "CPU per card: machine less client / server process only",
        each(&|o| format!("{:.0} / {:.0} µs", o.per_card_us(o.cpu.machine_less_client()), o.per_card_us(o.cpu.server))),
    );
    row(
        "machine less client while idle (connections open, pings only), before the tracks",
        each(&|o| format!("{:.0} % of a core", o.background * 100.0)),
    );
    row(
        "seen frames sent (of which for unseen cards in the storm's welcomes)",
        each(&|o| format!("{} ({})", thousands(o.seens as usize), thousands(o.welcome_unseen as usize))),
    );
    row(
        "pings sent → pongs received",
        each(&|o| format!("{} → {}", thousands(o.pings as usize), thousands(o.pongs as usize))),
    );
    row(
        "storm: back / asked (new users); p50 / p99 of the reconnect times, and the last welcome",
        each(&|o| {
            format!(
                "{} / {} ({}); {:.2} / {:.2} s, {}",
                thousands(o.storm.welcomed),
                thousands(o.storm.asked),
                thousands(o.storm.new_users),
                o.storm.p50.as_secs_f64(),
                o.storm.p99.as_secs_f64(),
                storm_cell(&o.storm)
            )
        }),
    );
    row(
        "storm: server CPU / machine less client",
        each(&|o| format!("{:.2} / {:.2} s", o.storm.cpu.server, o.storm.cpu.machine_less_client())),
    );
    row(
        "connections lost during the run / other errors",
        each(&|o| format!("{} / {}", o.lost, o.errors.saturating_sub(o.refused))),
    );
    row("load client: latest track behind its schedule", each(&|o| format!("{} ms", ms(o.max_send_lag))));
    row(
        "stored at the end: events / deliveries (seen) / users",
        each(&|o| match &o.stored {
            None => "nothing (no database)".into(),
            Some(Err(e)) => format!("could not read: {e}"),
            Some(Ok([events, deliveries, seen, users])) => {
                let n = |v: &Option<i64>| v.map_or("–".into(), |v| thousands(v as usize));
                format!("{} / {} ({}) / {}", n(events), n(deliveries), n(seen), n(users))
            }
        }),
    );
    row("write batches (whole run)", each(&|o| o.batches.clone()));
    println!("\n</details>\n");
    for o in outcomes.iter().filter(|o| o.background > 0.25) {
        println!(
            "**Warning:** while {}'s connections were idle, the machine (less the load client) was {:.0} % of a core \
             busy: something else was running, and the CPU per card (machine) includes it.\n",
            o.kind.name(),
            o.background * 100.0
        );
    }
    if let Some(svg) = svg {
        let shown = svg.strip_prefix(root).unwrap_or(svg);
        println!("Latency against send time: `{}`\n", shown.display());
    }
    for o in outcomes {
        if let Some(e) = &o.first_error {
            eprintln!("{}: first error: {}", o.kind.name(), e.chars().take(300).collect::<String>());
        }
    }
}

// ---------------------------------------------------------------------------
// The plot

/// Latency (log scale) against send time, per `BIN` of send time: p50, p99
/// and max; one panel per server.
fn svg(a: &Args, outcomes: &[Outcome]) -> String {
    const W: f64 = 960.0;
    const H: f64 = 300.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 48.0;
    const BOTTOM: f64 = 40.0;
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let span = outcomes
        .iter()
        .filter_map(|o| o.samples.last().map(|s| s.0.as_secs_f64()))
        .fold(a.seconds as f64, f64::max)
        .max(1.0);
    let worst = outcomes.iter().filter_map(|o| o.latencies.last()).max().copied().unwrap_or_default();
    // Decades from 0.1 ms to the one above the worst latency (at least 100 ms).
    let (lo, hi) = (-1.0f64, (worst.as_secs_f64() * 1000.0).max(100.0).log10().ceil());
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x_tick = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0].into_iter().find(|t| span / t <= 12.0).unwrap_or(300.0);
    let mut s = String::new();
    let total_h = H * outcomes.len().max(1) as f64;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{total_h}" viewBox="0 0 {W} {total_h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{total_h}" fill="white"/>"#);
    for (p, o) in outcomes.iter().enumerate() {
        let y0 = H * p as f64;
        let x = |t: f64| LEFT + t / span * plot_w;
        let y = |ms: f64| y0 + TOP + plot_h * (1.0 - (ms.max(0.1).log10() - lo) / (hi - lo));
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="{}" font-size="14" font-weight="bold">{} ({})</text><text x="{LEFT}" y="{}">p50 {} ms, p99 {} ms, max {} ms, {} of {} cards</text>"#,
            y0 + 18.0,
            esc(&o.label),
            o.database,
            y0 + 36.0,
            ms(o.pct(0.5)),
            ms(o.pct(0.99)),
            ms(o.pct(1.0)),
            thousands(o.cards),
            thousands(o.tracks)
        );
        // Axes and grid.
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>"##,
            y0 + TOP
        );
        let mut d = lo;
        while d <= hi + 1e-9 {
            let v = 10f64.powf(d);
            let yy = y(v);
            let label = if v >= 1000.0 { format!("{} s", v / 1000.0) } else { format!("{v} ms") };
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                yy + 4.0
            );
            d += 1.0;
        }
        let mut t = 0.0;
        while t <= span + 1e-9 {
            let xx = x(t);
            let _ = writeln!(
                s,
                r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{}" y2="{}" stroke="#eee"/><text x="{xx:.1}" y="{}" text-anchor="middle">{t} s</text>"##,
                y0 + TOP,
                y0 + TOP + plot_h,
                y0 + TOP + plot_h + 16.0
            );
            t += x_tick;
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">send time (from the first track)</text>"#,
            LEFT + plot_w / 2.0,
            y0 + H - 6.0
        );
        // Per bin: p50, p99, max.
        let bins = (span / BIN.as_secs_f64()).ceil() as usize + 1;
        let mut per_bin: Vec<Vec<Duration>> = vec![Vec::new(); bins];
        for (at, lat) in &o.samples {
            let b = ((at.as_secs_f64() / BIN.as_secs_f64()) as usize).min(bins - 1);
            per_bin[b].push(*lat);
        }
        for v in &mut per_bin {
            v.sort();
        }
        // max under the others, wider, so that it shows where p99 is the same.
        for (q, colour, width, name) in
            [(1.0, "#d62728", 2.5, "max"), (0.99, "#ff7f0e", 1.2, "p99"), (0.5, "#1f77b4", 1.2, "p50")]
        {
            let mut path = String::new();
            let mut pen_down = false;
            for (b, v) in per_bin.iter().enumerate() {
                if v.is_empty() {
                    pen_down = false;
                    continue;
                }
                let xx = x((b as f64 + 0.5) * BIN.as_secs_f64());
                let yy = y(percentile(v, q).as_secs_f64() * 1000.0);
                let _ = write!(path, "{}{xx:.1},{yy:.1} ", if pen_down { "L" } else { "M" });
                pen_down = true;
            }
            let _ = writeln!(
                s,
                r#"<path d="{path}" fill="none" stroke="{colour}" stroke-width="{width}"><title>{name}</title></path>"#
            );
        }
        for (k, (colour, name)) in [("#1f77b4", "p50"), ("#ff7f0e", "p99"), ("#d62728", "max")].iter().enumerate() {
            let lx = LEFT + plot_w - 210.0 + 70.0 * k as f64;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" x2="{}" y1="{}" y2="{}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{name}</text>"#,
                lx + 20.0,
                y0 + 32.0,
                y0 + 32.0,
                lx + 24.0,
                y0 + 36.0
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" font-size="11" fill="#555">per {} ms of send time</text>"##,
            LEFT + 4.0,
            y0 + TOP + 12.0,
            BIN.as_millis()
        );
    }
    s.push_str("</svg>\n");
    s
}

fn write_outputs(a: &Args, outcomes: &[Outcome]) -> Option<PathBuf> {
    let mut written = None;
    if let Some(parent) = a.svg.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    match std::fs::write(&a.svg, svg(a, outcomes)) {
        Ok(()) => {
            eprintln!("wsbench: wrote {}", a.svg.display());
            written = Some(a.svg.clone());
        }
        Err(e) => eprintln!("wsbench: could not write {}: {e}", a.svg.display()),
    }
    if let Some(csv) = &a.csv {
        let mut out = String::from("server,database,send_ms,latency_ms\n");
        for o in outcomes {
            for (at, lat) in &o.samples {
                let _ = writeln!(
                    out,
                    "{},{},{:.3},{:.3}",
                    o.kind.name(),
                    o.database,
                    at.as_secs_f64() * 1000.0,
                    lat.as_secs_f64() * 1000.0
                );
            }
        }
        match std::fs::write(csv, out) {
            Ok(()) => eprintln!("wsbench: wrote {}", csv.display()),
            Err(e) => eprintln!("wsbench: could not write {}: {e}", csv.display()),
        }
    }
    written
}

#[tokio::main]
async fn main() {
    let a = args();
    ensure_open_files(a.connections as u64 + 1024);
    watchdog(Duration::from_secs(a.timeout + 60));
    eprintln!(
        "wsbench: {} connections, {} tracks/s for {} s, targets {:?}, murmur on {}, timeout {} s",
        a.connections,
        a.rate,
        a.seconds,
        a.targets,
        a.database.name(),
        a.timeout
    );
    // The run's future is dropped (servers killed, temp dirs removed) before any exit.
    let finished = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(a.timeout), run(&a)) => Some(r.ok()),
        _ = tokio::signal::ctrl_c() => None,
    };
    drop_pg_databases().await;
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
    let svg = write_outputs(&a, &outcomes);
    report(&a, &outcomes, svg.as_deref());
}
