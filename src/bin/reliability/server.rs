//! The real murmur binary, started as a separate process for the
//! reliability campaign, and a small HTTP/1.1 client to talk to it.
//!
//! What this module gives the parts of `reliability` (`fuzz`, and others):
//!
//! - [`Server::start`]: murmur on `127.0.0.1:<free port>` (never 3000) with
//!   the repository root as its working directory, a fresh temporary
//!   `DATA_DIR`, a random `SECRET_KEY`, `RUST_LOG=warn`, `API_RATE_LIMIT=off`
//!   (unless the caller sets it), and either a SQLite file in `DATA_DIR` or a
//!   fresh PostgreSQL database `murmur_rel_<random>` created through
//!   [`Options::pg_admin_url`] and dropped when the [`Server`] is dropped.
//!   It returns once `/healthz` answers 200 (bounded by
//!   [`Options::ready_within`]). Its stdout and stderr go to
//!   [`Server::log_path`]; [`Server::panics`] counts `panicked at` lines there.
//! - [`Server::kill_and_restart`]: SIGKILL, then the same binary with the same
//!   environment (same port, same database), waiting for `/healthz` again.
//! - [`Server::memory`]: `VmRSS` and `VmHWM` of the process (`/proc/<pid>/status`).
//! - [`Server::exited`]: whether the process has died (panic = abort, crash).
//! - Accounts: [`Server::setup_owner`] (with the one-time token of
//!   `$DATA_DIR/setup.token` when there is one), [`Server::login`],
//!   [`Server::create_app`], [`Server::create_key`], all through the server
//!   functions as the browser calls them ([`Server::call`]: a same-origin form
//!   post with the session cookie), and [`Server::api`] for the REST API
//!   with a key's Basic auth.
//! - The client: [`Conn`] (one keep-alive connection, well-formed requests
//!   or arbitrary bytes), [`request`] (one request on a fresh connection) and
//!   [`raw_exchange`] (arbitrary bytes, the answer or what happened instead,
//!   bounded in time). Every request names `Host: 127.0.0.1:<port>`, the
//!   server's own address.
//!
//! Nothing here sleeps for timing: waits poll a condition with a bound.
#![allow(dead_code)]

use std::{
    fs::File,
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD, Engine};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Where `CREATE DATABASE` / `DROP DATABASE` are run for the PostgreSQL backend.
pub const DEFAULT_PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The session cookie's name over plain http (`server::request`).
pub const SESSION_COOKIE: &str = "murmur_session";
/// Largest response body the client keeps (the rest is read and dropped).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Largest response head the client accepts.
const MAX_HEAD: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// `sqlite`, `postgres` or `both`.
    pub fn parse_list(s: &str) -> Result<Vec<Backend>, String> {
        match s {
            "sqlite" => Ok(vec![Backend::Sqlite]),
            "postgres" | "postgresql" | "pg" => Ok(vec![Backend::Postgres]),
            "both" => Ok(vec![Backend::Sqlite, Backend::Postgres]),
            _ => Err(format!("--backend must be sqlite, postgres or both, not {s:?}")),
        }
    }
}

/// How to start murmur.
#[derive(Clone, Debug)]
pub struct Options {
    /// The murmur binary (`--murmur PATH`; default `target/release/murmur`).
    pub binary: PathBuf,
    pub backend: Backend,
    /// Extra environment, set after (and so over) the defaults.
    pub env: Vec<(String, String)>,
    pub pg_admin_url: String,
    /// How long a start may take until `/healthz` answers.
    pub ready_within: Duration,
}

impl Options {
    pub fn new(binary: impl Into<PathBuf>, backend: Backend) -> Options {
        Options {
            binary: binary.into(),
            backend,
            env: vec![],
            pg_admin_url: std::env::var("RELIABILITY_PG_ADMIN").unwrap_or_else(|_| DEFAULT_PG_ADMIN.into()),
            ready_within: Duration::from_secs(60),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Options {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// The repository root (murmur's working directory: `Leptos.toml`, `target/site`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::getrandom(&mut b).expect("the OS has randomness");
    hex::encode(b)
}

/// A free port on 127.0.0.1 (a moment ago), never 3000 (murmur's default,
/// where a developer's own murmur may run).
pub fn free_port() -> io::Result<u16> {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if port != 3000 {
            return Ok(port);
        }
    }
}

/// A PostgreSQL database of the run's own, dropped with it.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    async fn create(admin_url: &str) -> Result<(PgDatabase, String), String> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .map_err(|e| format!("PostgreSQL at {admin_url} is unreachable: {e}"))?;
        let name = format!("murmur_rel_{}", random_hex(6));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .map_err(|e| format!("CREATE DATABASE {name}: {e}"))?;
        let _ = conn.close().await;
        let base = admin_url.rsplit_once('/').map(|(b, _)| b.to_string()).ok_or("malformed admin URL")?;
        let url = format!("{base}/{name}");
        Ok((PgDatabase { admin_url: admin_url.into(), name }, url))
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Drop may run inside a runtime: a thread and a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await;
                }
            });
        })
        .join();
    }
}

/// The process's memory, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Resident now.
    pub rss_kib: u64,
    /// The highest resident size so far (since this process started).
    pub hwm_kib: u64,
}

/// An API key as the REST API takes it (Basic `id:secret`).
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub app_id: String,
    pub id: String,
    pub secret: String,
}

impl ApiKey {
    pub fn basic(&self) -> String {
        format!("Basic {}", STANDARD.encode(format!("{}:{}", self.id, self.secret)))
    }
}

/// A running murmur process (killed, and its database dropped, on drop).
pub struct Server {
    pub addr: SocketAddr,
    pub backend: Backend,
    binary: PathBuf,
    env: Vec<(String, String)>,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    ready_within: Duration,
    /// Declared after `child` so the process is gone before the database is dropped.
    pg: Option<PgDatabase>,
    /// How many times the process was started.
    pub starts: u32,
}

impl Server {
    /// Starts murmur and waits until `/healthz` answers 200.
    pub async fn start(opts: Options) -> Result<Server, String> {
        if !opts.binary.exists() {
            return Err(format!(
                "{} does not exist: build it with `cargo build --release --features ssr --bin murmur`",
                opts.binary.display()
            ));
        }
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let data_dir = std::env::temp_dir().join(format!("murmur_rel_{}_{}", std::process::id(), random_hex(4)));
        std::fs::create_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
        let (pg, database_url) = match opts.backend {
            Backend::Sqlite => (None, format!("sqlite://{}", data_dir.join("murmur.db").display())),
            Backend::Postgres => {
                let (db, url) = PgDatabase::create(&opts.pg_admin_url).await?;
                (Some(db), url)
            }
        };
        let mut env: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), database_url),
            ("DATA_DIR".into(), data_dir.display().to_string()),
            ("SECRET_KEY".into(), random_hex(32)),
            ("LEPTOS_SITE_ADDR".into(), addr.to_string()),
            ("RUST_LOG".into(), "warn".into()),
        ];
        if !opts.env.iter().any(|(k, _)| k == "API_RATE_LIMIT") {
            env.push(("API_RATE_LIMIT".into(), "off".into()));
        }
        for (k, v) in &opts.env {
            env.retain(|(n, _)| n != k);
            env.push((k.clone(), v.clone()));
        }
        let log_path = data_dir.join("murmur.log");
        let mut server = Server {
            addr,
            backend: opts.backend,
            binary: opts.binary,
            env,
            data_dir,
            log_path,
            child: None,
            ready_within: opts.ready_within,
            pg,
            starts: 0,
        };
        server.spawn()?;
        server.wait_healthy().await?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("{}: {e}", self.log_path.display()))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        // `RELIABILITY_SERVER_CPUS=0`: murmur runs on those CPUs only
        // (`taskset`, which execs it: same process), so that a load client
        // pinned elsewhere (`taskset -c 1 reliability …`) does not share them.
        let mut cmd = match std::env::var("RELIABILITY_SERVER_CPUS") {
            Ok(cpus) if !cpus.is_empty() => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(&self.binary);
                c
            }
            _ => Command::new(&self.binary),
        };
        cmd.current_dir(repo_root());
        // Whatever the developer's shell has for murmur is not this run's.
        for k in [
            "DATABASE_URL",
            "DATA_DIR",
            "SECRET_KEY",
            "PUBLIC_URL",
            "TRUST_PROXY",
            "LEPTOS_SITE_ADDR",
            "METRICS_TOKEN",
            "API_RATE_LIMIT",
            "WIDGET_CONNECT_RATE_LIMIT",
            "SIGN_IN_RATE_LIMIT",
            "NEW_ANONYMOUS_USER_RATE_LIMIT",
            "MAX_CONNECTIONS",
            "MAX_CONNECTIONS_PER_ADDRESS",
            "REQUEST_TIMEOUT_MS",
            "RUST_BACKTRACE",
        ] {
            cmd.env_remove(k);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null()).stdout(Stdio::from(log)).stderr(Stdio::from(log2));
        let child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// Waits (bounded by `ready_within`) until `/healthz` answers 200.
    pub async fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + self.ready_within;
        loop {
            if let Some(status) = self.exited() {
                return Err(format!("murmur exited ({status}) while starting; log:\n{}", self.log_tail(40)));
            }
            if let Ok(Ok(r)) =
                tokio::time::timeout(Duration::from_secs(2), request(self.addr, "GET", "/healthz", &[], b"")).await
            {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "murmur did not answer /healthz within {:?}; log:\n{}",
                    self.ready_within,
                    self.log_tail(40)
                ));
            }
            // Poll the condition again shortly (bounded by the deadline above).
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL (no clean shutdown), waited for.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILL, then the same binary with the same environment (port,
    /// database, data directory, secret key); returns once `/healthz` answers.
    pub async fn kill_and_restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()?;
        self.wait_healthy().await
    }

    /// `Some(status)` once the process has ended (or was never started).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten(),
            None => Some(std::os::unix::process::ExitStatusExt::from_raw(0)),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `VmRSS` and `VmHWM` from `/proc/<pid>/status`.
    pub fn memory(&self) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let kib = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        };
        Some(Memory { rss_kib: kib("VmRSS:")?, hwm_kib: kib("VmHWM:")? })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// murmur's stdout and stderr (all starts, appended).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read(&self.log_path).unwrap_or_default();
        let log = String::from_utf8_lossy(&log);
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Lines of the log that report a panic (`panicked at`), at most `max`,
    /// and how many there are in all.
    pub fn panics(&self, max: usize) -> (usize, Vec<String>) {
        let log = std::fs::read(&self.log_path).unwrap_or_default();
        let log = String::from_utf8_lossy(&log);
        let hits: Vec<&str> = log.lines().filter(|l| l.contains("panicked at")).collect();
        (hits.len(), hits.iter().take(max).map(|s| s.to_string()).collect())
    }

    /// `127.0.0.1:<port>`, the `Host` every request names.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:<port>`, the server's own origin.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `Cookie` header value for a session token.
    pub fn cookie(token: &str) -> String {
        format!("{SESSION_COOKIE}={token}")
    }

    /// One request on a fresh connection.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        request(self.addr, method, path, headers, body).await
    }

    /// A server function as the browser calls it: a same-origin form post
    /// of `fields` (`input[name]` …) to `/api/<endpoint>`, with the session.
    pub async fn call(&self, endpoint: &str, fields: &[(&str, &str)], session: Option<&str>) -> io::Result<Response> {
        let origin = self.origin();
        let cookie = session.map(Server::cookie);
        let mut headers = vec![
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Accept", "application/json"),
            ("Origin", origin.as_str()),
        ];
        if let Some(c) = &cookie {
            headers.push(("Cookie", c.as_str()));
        }
        self.request("POST", &format!("/api/{endpoint}"), &headers, form_encode(fields).as_bytes()).await
    }

    /// The first-run setup token murmur asks for, if any (`$DATA_DIR/setup.token`).
    pub fn setup_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("setup.token")).map(|t| t.trim().to_string()).unwrap_or_default()
    }

    /// Creates the owner account (first-run setup); their session token.
    pub async fn setup_owner(&self, name: &str, email: &str, password: &str) -> Result<String, String> {
        let token = self.setup_token();
        let fields = [
            ("input[name]", name),
            ("input[email]", email),
            ("input[password]", password),
            ("input[setup_token]", token.as_str()),
        ];
        let r = self.call("setup", &fields, None).await.map_err(|e| format!("setup: {e}"))?;
        if r.status != 200 {
            return Err(format!("setup answered {}: {}", r.status, r.text()));
        }
        r.session_cookie().ok_or_else(|| "setup set no session cookie".into())
    }

    /// Signs in; the session token.
    pub async fn login(&self, email: &str, password: &str) -> Result<String, String> {
        let r = self
            .call("login", &[("input[email]", email), ("input[password]", password)], None)
            .await
            .map_err(|e| format!("login: {e}"))?;
        if r.status != 200 {
            return Err(format!("login answered {}: {}", r.status, r.text()));
        }
        r.session_cookie().ok_or_else(|| "login set no session cookie".into())
    }

    /// Creates an app as `session`'s teammate; its id.
    pub async fn create_app(&self, session: &str, name: &str) -> Result<String, String> {
        Ok(self.create_app_with_secret(session, name).await?.0)
    }

    /// Creates an app; its id and its identity secret (widgets' JWTs:
    /// identity verification is on for a new app).
    pub async fn create_app_with_secret(&self, session: &str, name: &str) -> Result<(String, String), String> {
        let r = self.call("apps/create", &[("input[name]", name)], Some(session)).await.map_err(|e| e.to_string())?;
        let v = r.json().ok_or_else(|| format!("apps/create answered {}: {}", r.status, r.text()))?;
        match (v["app"]["id"].as_str(), v["identity_secret"].as_str()) {
            (Some(id), Some(secret)) => Ok((id.into(), secret.into())),
            _ => Err(format!("apps/create answered {}: {v}", r.status)),
        }
    }

    /// A widget's identity JWT for `user_id`, signed with the app's identity secret (1 h).
    pub fn widget_jwt(identity_secret: &str, user_id: &str) -> String {
        let exp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64 + 3600);
        murmur::server::jwt::sign(
            None,
            &serde_json::json!({"scope": "appUser", "userId": user_id, "exp": exp}),
            identity_secret.as_bytes(),
        )
    }

    /// Creates an API key for `app_id`.
    pub async fn create_key(&self, session: &str, app_id: &str, name: &str) -> Result<ApiKey, String> {
        let r = self
            .call("apps/keys/create", &[("input[app_id]", app_id), ("input[name]", name)], Some(session))
            .await
            .map_err(|e| e.to_string())?;
        let v = r.json().ok_or_else(|| format!("apps/keys/create answered {}: {}", r.status, r.text()))?;
        match (v["id"].as_str(), v["secret"].as_str()) {
            (Some(id), Some(secret)) => Ok(ApiKey { app_id: app_id.into(), id: id.into(), secret: secret.into() }),
            _ => Err(format!("apps/keys/create answered {}: {v}", r.status)),
        }
    }

    /// A REST call with `key`'s Basic auth and a JSON body.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        key: &ApiKey,
        body: Option<&serde_json::Value>,
    ) -> io::Result<Response> {
        let auth = key.basic();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut headers = vec![("Authorization", auth.as_str())];
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        self.request(method, path, &headers, body.as_bytes()).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        // The PostgreSQL database (if any) is dropped after this, as a field.
        if std::env::var_os("RELIABILITY_KEEP_DATA").is_none() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// `application/x-www-form-urlencoded`, as browsers encode it.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// One HTTP response.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The server said `Connection: close` (or the body ran to the end of the stream).
    pub closes: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The session token a `Set-Cookie` carries, if any.
    pub fn session_cookie(&self) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, c)| c.strip_prefix("murmur_session=").or_else(|| c.strip_prefix("__Host-murmur_session=")))
            .map(|rest| rest.split(';').next().unwrap_or("").to_string())
            .filter(|t| !t.is_empty())
    }
}

/// A request's bytes: request line, `Host`, the headers, `Content-Length`
/// (unless a header sets `Content-Length` or `Transfer-Encoding`), the body.
pub fn encode_request(host: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        req.push_str(k);
        req.push_str(": ");
        req.push_str(v);
        req.push_str("\r\n");
    }
    let framed = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding"));
    if !framed && (!body.is_empty() || !matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS")) {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    out.extend_from_slice(body);
    out
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    host: String,
    /// False once the server closed it (or said it would).
    pub open: bool,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        Self::opened(TcpStream::connect(addr).await?, addr)
    }

    /// From a given local address (another loopback address is another
    /// client as far as per-address bounds go).
    pub async fn connect_from(addr: SocketAddr, local: std::net::IpAddr) -> io::Result<Conn> {
        let socket = if local.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.bind(SocketAddr::new(local, 0))?;
        Self::opened(socket.connect(addr).await?, addr)
    }

    fn opened(stream: TcpStream, addr: SocketAddr) -> io::Result<Conn> {
        stream.set_nodelay(true)?;
        // Closed with a reset, so many short connections leave no TIME_WAIT
        // behind on this side (ephemeral ports are finite). With a zero
        // linger the close does not block (the deprecation is about others).
        #[allow(deprecated)]
        stream.set_linger(Some(Duration::ZERO))?;
        Ok(Conn { stream, buf: Vec::new(), host: addr.to_string(), open: true })
    }

    /// A well-formed request (see [`encode_request`]).
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let bytes = encode_request(&self.host, method, path, headers, body);
        self.send_raw(&bytes, method == "HEAD").await
    }

    /// Arbitrary bytes; then one response is read.
    pub async fn send_raw(&mut self, bytes: &[u8], head: bool) -> io::Result<Response> {
        if !self.open {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "connection closed"));
        }
        if let Err(e) = self.stream.write_all(bytes).await {
            self.open = false;
            return Err(e);
        }
        let r = read_response(&mut self.stream, &mut self.buf, head).await;
        match &r {
            Ok(resp) if !resp.closes => {}
            _ => self.open = false,
        }
        r
    }

    /// The raw stream (for partial writes, slow senders).
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}

/// One request on a fresh connection (`Connection: close`).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut conn = Conn::connect(addr).await?;
    let mut h = headers.to_vec();
    h.push(("Connection", "close"));
    conn.send(method, path, &h, body).await
}

/// What became of arbitrary bytes sent on a fresh connection.
#[derive(Debug)]
pub enum RawOutcome {
    /// A response (the first one).
    Answered(Response),
    /// The server closed (or reset) the connection without a response.
    Closed,
    /// Nothing came back within the bound.
    TimedOut,
    /// Connecting or writing failed.
    Failed(io::Error),
}

/// Sends `bytes` on a fresh connection and reads one response, bounded by `within`.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], within: Duration) -> RawOutcome {
    let attempt = async {
        let mut conn = match Conn::connect(addr).await {
            Ok(c) => c,
            Err(e) => return RawOutcome::Failed(e),
        };
        // A server may answer (400) and close before it read everything.
        if let Err(e) = conn.stream.write_all(bytes).await {
            let mut buf = Vec::new();
            return match read_response(&mut conn.stream, &mut buf, false).await {
                Ok(r) => RawOutcome::Answered(r),
                Err(_) if e.kind() == io::ErrorKind::BrokenPipe || e.kind() == io::ErrorKind::ConnectionReset => {
                    RawOutcome::Closed
                }
                Err(_) => RawOutcome::Failed(e),
            };
        }
        let mut buf = Vec::new();
        match read_response(&mut conn.stream, &mut buf, false).await {
            Ok(r) => RawOutcome::Answered(r),
            Err(_) => RawOutcome::Closed,
        }
    };
    tokio::time::timeout(within, attempt).await.unwrap_or(RawOutcome::TimedOut)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Reads one response from `stream`; `buf` holds bytes read past it (kept
/// for the next response on a keep-alive connection).
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> io::Result<Response> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    loop {
        // Skip interim 1xx responses (100 Continue).
        let end = loop {
            if let Some(p) = find(buf, b"\r\n\r\n") {
                break p;
            }
            if buf.len() > MAX_HEAD {
                return Err(bad("response head too large"));
            }
            if fill(stream, buf).await? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a response"));
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("status"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let get =
            |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.to_ascii_lowercase());
        let mut closes = get("connection").is_some_and(|v| v.contains("close")) || status_line.starts_with("HTTP/1.0");
        let mut body = Vec::new();
        if head_only || status == 204 || status == 304 || status == 101 {
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let eol = loop {
                    if let Some(p) = find(buf, b"\r\n") {
                        break p;
                    }
                    if fill(stream, buf).await? == 0 {
                        return Err(bad("chunked body cut short"));
                    }
                };
                let size_text = String::from_utf8_lossy(&buf[..eol]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| bad("chunk size"))?;
                buf.drain(..eol + 2);
                if size == 0 {
                    // Trailers (none expected) up to the empty line.
                    loop {
                        if let Some(p) = find(buf, b"\r\n") {
                            let line_empty = p == 0;
                            buf.drain(..p + 2);
                            if line_empty {
                                break;
                            }
                            continue;
                        }
                        if fill(stream, buf).await? == 0 {
                            break;
                        }
                    }
                    break;
                }
                while buf.len() < size + 2 {
                    if fill(stream, buf).await? == 0 {
                        return Err(bad("chunk cut short"));
                    }
                }
                if body.len() < MAX_BODY {
                    body.extend_from_slice(&buf[..size]);
                }
                buf.drain(..size + 2);
            }
        } else if let Some(len) = get("content-length") {
            let len: usize = len.trim().parse().map_err(|_| bad("content-length"))?;
            while buf.len() < len {
                if fill(stream, buf).await? == 0 {
                    return Err(bad("body cut short"));
                }
                if buf.len() > MAX_BODY && len > MAX_BODY {
                    // Keep the first MAX_BODY bytes only.
                    return Err(bad("response body too large"));
                }
            }
            body = buf.drain(..len).collect();
        } else {
            // Until the end of the stream.
            while fill(stream, buf).await? > 0 {
                if buf.len() > MAX_BODY {
                    return Err(bad("response body too large"));
                }
            }
            body = std::mem::take(buf);
            closes = true;
        }
        return Ok(Response { status, headers, body, closes });
    }
}

/// `/healthz` timed on its own keep-alive connection (reconnecting when needed).
pub struct HealthProbe {
    addr: SocketAddr,
    conn: Option<Conn>,
}

impl HealthProbe {
    pub fn new(addr: SocketAddr) -> HealthProbe {
        HealthProbe { addr, conn: None }
    }

    /// One `/healthz`: its status (`None`: no answer within `within`) and how long it took.
    pub async fn probe(&mut self, within: Duration) -> (Option<u16>, Duration) {
        let started = Instant::now();
        let attempt = async {
            if self.conn.as_ref().is_none_or(|c| !c.open) {
                self.conn = Some(Conn::connect(self.addr).await?);
            }
            let conn = self.conn.as_mut().expect("connected above");
            conn.send("GET", "/healthz", &[], b"").await
        };
        let outcome = tokio::time::timeout(within, attempt).await;
        let took = started.elapsed();
        match outcome {
            Ok(Ok(r)) => (Some(r.status), took),
            Ok(Err(_)) | Err(_) => {
                self.conn = None;
                (None, took)
            }
        }
    }
}

/// Percentile (0–100) of durations, in ms.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_is_the_browsers() {
        assert_eq!(form_encode(&[("input[name]", "a b&c")]), "input%5Bname%5D=a+b%26c");
    }

    #[test]
    fn requests_are_framed() {
        let r = encode_request("127.0.0.1:1", "POST", "/x", &[("A", "b")], b"{}");
        assert_eq!(r, b"POST /x HTTP/1.1\r\nHost: 127.0.0.1:1\r\nA: b\r\nContent-Length: 2\r\n\r\n{}");
        let r = encode_request("h", "GET", "/", &[], b"");
        assert_eq!(r, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    }
}
