//! `reliability fuzz`: bad inputs over every public route of a running
//! murmur, and what they must not do.
//!
//! Two apps, A and B, each with users, a conversation with messages, an
//! event, a whisper (active: it gives widget cards), a manual message
//! (draft) and an API key. The fuzzer acts as Alice, a teammate of A only,
//! with A's API key, as anonymous widgets of A, and as nobody; B's ids are
//! the "other app's" ids it slips into everything. Requests (N in all,
//! default 200,000; a widget frame counts as one) are generated from a seed:
//!
//! - `rest`: every operation of `/v1.1/openapi.json` (fetched from the
//!   server and walked), path parameters from A, B, unknown and odd values,
//!   bodies generated from the schema and then mutated (wrong types,
//!   missing and extra fields, NUL bytes, invalid UTF-8, huge strings, 1 MiB+
//!   bodies, 10,000-deep nesting, wrong content types, bad or missing auth,
//!   A's key on B's paths);
//! - `server-fn`: every server function (`SERVER_FNS`, checked against the
//!   `#[server]`s of `src/pages/*.rs` at start and in a test) as Alice with
//!   random and mutated `input[...]` fields including B's ids, as the owner
//!   for the owner-only ones (A only), without a session, with a forged
//!   session, and cross-site;
//! - `page`: the dashboard's pages with odd ids, and murmur's other GET
//!   routes (widget files, demo, unsubscribe, the live inbox stream, ...);
//! - `widget`: `/widget/ws` with every frame kind, valid and mutated, B's
//!   ids, binary and oversized frames, bad origins;
//! - `raw`: malformed HTTP (bad request lines, huge and bad headers, bad
//!   `Content-Length`, chunked garbage, slow partial headers with a bound).
//!
//! Checks: no panic in murmur's log and the process alive, no 5xx (nor a
//! widget `internal` error), no cross-app acceptance (a 2xx to Alice or A's
//! key naming app B; any answer carrying B's data; B's records, read
//! through B's key and the owner before and after, unchanged), no 2xx to
//! a cross-site server-function call, memory growth (end of run less
//! after warm-up) < 50 MiB, and `/healthz`, timed every 100 ms on a
//! connection of its own, always under 50 ms.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use murmur::domain::{
    conditions::{Condition, Operator},
    manual::{Audience, Kind as ManualKind, MessageDraft},
    whisper::from_template,
};
use serde_json::{json, Map, Value};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

use crate::{
    server::{percentile_ms, raw_exchange, ApiKey, Backend, Conn, HealthProbe, Options, RawOutcome, Server},
    Args,
};

/// Every server function: endpoint below `/api/`, whether its arguments
/// are one `input` struct (`input[field]`) or top-level, and the fields.
/// `server_fns_match_the_source` (and every run) checks this against
/// `src/pages/*.rs`.
pub const SERVER_FNS: &[(&str, bool, &[&str])] = &[
    ("account", true, &[]),
    ("account/password", true, &["current_password", "new_password", "confirm_password"]),
    ("account/sign-out-everywhere", true, &[]),
    ("apps/create", true, &["name"]),
    ("apps/audit-log", true, &["app_id", "after"]),
    ("session", true, &[]),
    ("setup/status", true, &[]),
    ("setup", true, &["name", "email", "password", "setup_token"]),
    ("login", true, &["email", "password"]),
    ("logout", true, &[]),
    ("why/choices", true, &["app_id"]),
    ("why/explain", true, &["app_id", "user", "kind", "id"]),
    ("dashboard", false, &["app_id"]),
    ("inbox/list", true, &["app_id", "state", "filter", "search", "after"]),
    ("inbox/conversation", true, &["app_id", "conversation_id"]),
    ("inbox/reply", false, &["app_id", "conversation_id", "text"]),
    ("inbox/state", false, &["app_id", "conversation_id", "open"]),
    ("inbox/assign", false, &["app_id", "conversation_id", "assignee"]),
    ("inbox/start", false, &["app_id", "user", "text"]),
    ("teammates/conversations", false, &["app_id", "teammate_id"]),
    ("messages/list", true, &["app_id", "tab", "search"]),
    ("messages/load", true, &["app_id", "message_id", "users"]),
    ("messages/detail", true, &["app_id", "message_id", "users"]),
    ("messages/save", true, &["app_id", "message_id", "draft", "mode", "send_at"]),
    ("messages/stop", true, &["app_id", "message_id", "users"]),
    ("messages/delete", true, &["app_id", "message_id", "users"]),
    ("apps/office-hours", true, &["app_id"]),
    (
        "apps/office-hours/save",
        true,
        &[
            "app_id",
            "enabled",
            "time_zone",
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
            "reply",
        ],
    ),
    ("apps/overview", true, &["app_id", "range"]),
    ("apps/push", true, &["app_id"]),
    ("apps/push/keys", true, &["app_id"]),
    ("apps/push/enabled", true, &["app_id", "enabled"]),
    ("recall/card", true, &["app_id", "id"]),
    ("recall/whisper", true, &["app_id", "id"]),
    ("recall/message", true, &["app_id", "id"]),
    ("apps/settings", true, &["app_id"]),
    ("apps/keys/create", true, &["app_id", "name"]),
    ("apps/keys/revoke", true, &["app_id", "key_id"]),
    ("apps/identity-secret/roll", true, &["app_id"]),
    ("apps/identity-enforced", true, &["app_id", "enforced"]),
    ("apps/server-only", true, &["app_id", "properties", "events"]),
    ("teammates/add", true, &["app_id", "name", "email", "password"]),
    ("teammates/remove", true, &["app_id", "teammate_id"]),
    ("apps/whisper-limit", true, &["app_id", "max_active"]),
    ("apps/smtp", true, &["app_id"]),
    ("apps/smtp/save", true, &["app_id", "host", "port", "security", "username", "password", "from_address"]),
    ("apps/smtp/clear", true, &["app_id"]),
    ("users/timeline", true, &["app_id", "user", "before"]),
    ("users/list", true, &["app_id", "search", "conditions", "sort", "descending", "after"]),
    ("users/profile", true, &["app_id", "user"]),
    ("users/catalog", true, &["app_id"]),
    ("whispers/list", true, &["app_id"]),
    ("whispers/editor", true, &["app_id", "whisper_id", "template"]),
    ("whispers/save", true, &["app_id", "whisper_id", "draft", "activate"]),
    ("whispers/status", true, &["app_id", "whisper_id", "status"]),
    ("whispers/duplicate", true, &["app_id", "whisper_id"]),
    ("whispers/delete", true, &["app_id", "whisper_id"]),
    ("whispers/audience", true, &["app_id", "all_users", "conditions"]),
];

/// Server functions only the owner may use: fuzzed as the owner too, on A only.
const OWNER_ONLY: &[&str] = &[
    "apps/audit-log",
    "apps/keys/create",
    "apps/keys/revoke",
    "apps/identity-secret/roll",
    "apps/server-only",
    "teammates/add",
    "teammates/remove",
    "apps/whisper-limit",
    "apps/smtp",
    "apps/smtp/save",
    "apps/smtp/clear",
    "apps/push/keys",
    "apps/push/enabled",
];

/// Server functions that end a session: never sent with Alice's own.
const ENDS_SESSION: &[&str] = &["logout", "account/sign-out-everywhere"];

/// The server functions of `src/pages/*.rs`: endpoint, whether the one
/// argument is `input` (a struct), and the field (or argument) names.
pub fn server_fns_in_source(root: &Path) -> Result<BTreeMap<String, (bool, BTreeSet<String>)>, String> {
    let dir = root.join("src/pages");
    let mut sources = vec![];
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            sources.push(std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?);
        }
    }
    let all = sources.join("\n");
    // `pub struct Name { pub field: T, ... }` → field names.
    let struct_fields = |name: &str| -> Option<BTreeSet<String>> {
        let start = all.find(&format!("pub struct {name} {{"))?;
        let body = &all[start..];
        let body = &body[..body.find("\n}")?];
        Some(
            body.lines()
                .skip(1)
                .filter_map(|l| l.trim().strip_prefix("pub "))
                .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
                .collect(),
        )
    };
    let mut out = BTreeMap::new();
    for src in &sources {
        let mut rest = src.as_str();
        while let Some(at) = rest.find("#[server(") {
            rest = &rest[at..];
            let attr_end = rest.find(")]").ok_or("unclosed #[server(")?;
            let attr = &rest[..attr_end];
            let endpoint = attr
                .split("endpoint = \"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .ok_or_else(|| format!("a #[server] without endpoint: {attr}"))?
                .to_string();
            let sig_start = rest.find("fn ").ok_or("no fn after #[server]")?;
            let sig = &rest[sig_start..];
            let args = &sig[sig.find('(').ok_or("no (")? + 1..sig.find(')').ok_or("no )")?];
            let args: Vec<(&str, &str)> =
                args.split(',').filter_map(|a| a.split_once(':')).map(|(n, t)| (n.trim(), t.trim())).collect();
            let entry = match args.as_slice() {
                [("input", ty)] => {
                    let ty = ty.rsplit("::").next().unwrap_or(ty);
                    (true, struct_fields(ty).ok_or_else(|| format!("struct {ty} of {endpoint} not found"))?)
                }
                [] => (true, BTreeSet::new()),
                many => (false, many.iter().map(|(n, _)| n.to_string()).collect()),
            };
            out.insert(endpoint, entry);
            rest = &rest[attr_end..];
        }
    }
    Ok(out)
}

/// Whether `SERVER_FNS` is what the source has; the differences if not.
pub fn check_server_fns(root: &Path) -> Result<(), String> {
    let source = server_fns_in_source(root)?;
    let listed: BTreeMap<String, (bool, BTreeSet<String>)> = SERVER_FNS
        .iter()
        .map(|(e, nested, f)| (e.to_string(), (*nested, f.iter().map(|s| s.to_string()).collect())))
        .collect();
    if source == listed {
        return Ok(());
    }
    let mut diff = vec![];
    for (e, v) in &source {
        match listed.get(e) {
            None => diff.push(format!("{e}: in src/pages but not in SERVER_FNS ({v:?})")),
            Some(l) if l != v => diff.push(format!("{e}: SERVER_FNS has {l:?}, src/pages has {v:?}")),
            _ => {}
        }
    }
    for e in listed.keys().filter(|e| !source.contains_key(*e)) {
        diff.push(format!("{e}: in SERVER_FNS but no longer in src/pages"));
    }
    Err(format!("SERVER_FNS (src/bin/reliability/fuzz.rs) is stale:\n  {}", diff.join("\n  ")))
}

/// splitmix64: small, seedable, good enough to pick inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    /// True with probability `percent` / 100.
    pub fn pct(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    pub fn hex(&mut self, chars: usize) -> String {
        (0..chars).map(|_| char::from_digit((self.next() % 16) as u32, 16).unwrap_or('0')).collect()
    }
}

/// One app's fixtures; for B, every id is the "other app's".
#[derive(Clone, Debug, Default)]
struct AppData {
    app_id: String,
    key: Option<ApiKey>,
    identity_secret: String,
    /// In every name and text of this app's data (never in an id).
    marker: String,
    /// The customer's userIds.
    user_ids: Vec<String>,
    /// murmur's `_id`s of those users.
    murmur_ids: Vec<String>,
    conversation_ids: Vec<String>,
    message_ids: Vec<String>,
    whisper_ids: Vec<String>,
    manual_ids: Vec<String>,
    card_ids: Vec<String>,
}

impl AppData {
    fn key(&self) -> &ApiKey {
        self.key.as_ref().expect("the app has a key")
    }
    /// Every id of this app's records (not the customer's userIds).
    fn internal_ids(&self) -> Vec<String> {
        let mut v = vec![self.app_id.clone()];
        for list in [
            &self.murmur_ids,
            &self.conversation_ids,
            &self.message_ids,
            &self.whisper_ids,
            &self.manual_ids,
            &self.card_ids,
        ] {
            v.extend(list.iter().cloned());
        }
        v
    }
}

/// A REST operation of the OpenAPI description.
#[derive(Clone, Debug)]
struct RestOp {
    method: String,
    path: String,
    body: Option<Value>,
}

/// What the fuzzer knows.
struct World {
    host: String,
    origin: String,
    addr: std::net::SocketAddr,
    a: AppData,
    b: AppData,
    alice: String,
    alice_id: String,
    owner: String,
    owner_id: String,
    ops: Vec<RestOp>,
    schemas: Value,
    /// Strings that must never reach a fuzz request's answer (B's markers,
    /// B's key secret), and ids that may only come back if the request named them.
    b_markers: Vec<String>,
    b_ids: Vec<String>,
}

/// How a request touches the other app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cross {
    None,
    /// Names app B itself with A's credentials (Alice, A's key): any 2xx is a failure.
    App,
    /// Names B's records inside app A: a 2xx must carry none of B's data.
    Ids,
    /// A server function called from another site: any 2xx is a failure.
    Site,
}

enum Kind {
    /// On the worker's keep-alive connection (or a fresh one if `fresh`).
    Http {
        bytes: Vec<u8>,
        head: bool,
        fresh: bool,
        stream: bool,
    },
    /// On a fresh connection: the answer within `wait`, or none.
    Raw {
        bytes: Vec<u8>,
        wait: Duration,
    },
    /// Partial headers, then wait for the server to close (bounded).
    Slow {
        bytes: Vec<u8>,
        wait: Duration,
    },
    Widget {
        origin: Option<String>,
        frames: Vec<WsOut>,
    },
}

enum WsOut {
    Text(String),
    Binary(Vec<u8>),
}

struct Case {
    category: &'static str,
    label: String,
    cross: Cross,
    kind: Kind,
}

/// Figures of one backend's run.
#[derive(Default)]
struct Stats {
    requests: BTreeMap<&'static str, u64>,
    statuses: BTreeMap<String, u64>,
    fivexx: u64,
    fivexx_samples: Vec<String>,
    widget_internal: u64,
    cross_accepted: u64,
    cross_samples: Vec<String>,
    cross_2xx_benign: u64,
    cross_refused: u64,
    site_accepted: u64,
    leaks: u64,
    no_answer: u64,
    no_answer_samples: Vec<String>,
    timeouts: u64,
    timeout_samples: Vec<String>,
}

fn sample(list: &mut Vec<String>, s: String) {
    if list.len() < 20 {
        list.push(s);
    }
}

/// The request as text, shortened for the report.
fn show(bytes: &[u8], max: usize) -> String {
    let s: String = String::from_utf8_lossy(&bytes[..bytes.len().min(max)])
        .chars()
        .map(|c| match c {
            '\r' => "\\r".to_string(),
            '\n' => "\\n".to_string(),
            '\0' => "\\0".to_string(),
            c if c.is_control() => format!("\\u{{{:x}}}", c as u32),
            c => c.to_string(),
        })
        .collect();
    if bytes.len() > max {
        format!("{s}… ({} bytes)", bytes.len())
    } else {
        s
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

impl World {
    /// Which of B's data an answer carries that the request did not.
    fn leak(&self, request: &[u8], answer: &[u8]) -> Option<String> {
        for m in &self.b_markers {
            if contains(answer, m.as_bytes()) {
                return Some(m.clone());
            }
        }
        for id in &self.b_ids {
            if contains(answer, id.as_bytes()) && !contains(request, id.as_bytes()) {
                return Some(id.clone());
            }
        }
        None
    }
}

// ---------------------------------------------------------------- values

/// Odd strings: empty, huge, NUL, control characters, injections, numbers.
fn odd_string(rng: &mut Rng) -> String {
    match rng.below(24) {
        0 => String::new(),
        1 => " ".into(),
        2 => "\0".into(),
        3 => "a\0b".into(),
        4 => "x".repeat(5_000),
        5 => "é".repeat(70_000),
        6 => "😀".repeat(300),
        7 => "\u{202e}\u{200b}\u{feff}".into(),
        8 => "' OR '1'='1' --".into(),
        9 => "\"; DROP TABLE users; --".into(),
        10 => "<script>alert(1)</script>".into(),
        11 => "../../../../etc/passwd".into(),
        12 => "-1".into(),
        13 => "99999999999999999999999999".into(),
        14 => "1e309".into(),
        15 => "NaN".into(),
        16 => "null".into(),
        17 => "{}".into(),
        18 => "[]".into(),
        19 => "\r\n\t".into(),
        20 => "%00%ff".into(),
        21 => "{{ firstName || {{ x }} }}".into(),
        22 => "\u{7f}\u{1}\u{1b}[31m".into(),
        _ => rng.hex(24).to_uppercase(),
    }
}

/// An id: A's (mostly), B's (marked), unknown, or odd.
fn pick_id(rng: &mut Rng, a: &[String], b: &[String], cross: &mut Cross, allow_b: bool) -> String {
    let roll = rng.below(100);
    if roll < 55 && !a.is_empty() {
        rng.pick(a).clone()
    } else if roll < 75 && allow_b && !b.is_empty() {
        if *cross == Cross::None {
            *cross = Cross::Ids;
        }
        rng.pick(b).clone()
    } else if roll < 88 {
        rng.hex(24)
    } else {
        odd_string(rng)
    }
}

/// RFC 3986 path segment / query value encoding.
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn sample_conditions(rng: &mut Rng) -> String {
    let c = Condition {
        property: rng.pick(&["plan", "signedUpAt", "email", "seats", "appVersion", "nope", ""]).to_string(),
        operator: *rng.pick(&[Operator::Is, Operator::IsNot, Operator::Contains]),
        value: if rng.pct(70) { "gold".into() } else { odd_string(rng) },
    };
    let mut v = serde_json::to_value(vec![c]).unwrap_or(json!([]));
    if rng.pct(30) {
        mutate_json(&mut v, rng, 0);
    }
    v.to_string()
}

// ---------------------------------------------------------------- JSON

fn gen_schema(schema: &Value, schemas: &Value, rng: &mut Rng, depth: usize) -> Value {
    if depth > 6 {
        return Value::Null;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or("");
        return gen_schema(&schemas[name], schemas, rng, depth + 1);
    }
    for k in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = schema.get(k).and_then(Value::as_array) {
            if !list.is_empty() {
                return gen_schema(rng.pick(list), schemas, rng, depth + 1);
            }
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.is_empty() {
            return rng.pick(e).clone();
        }
    }
    match schema.get("type").and_then(Value::as_str).unwrap_or("object") {
        "object" => {
            let mut m = Map::new();
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    if required.contains(&k.as_str()) || rng.pct(70) {
                        m.insert(k.clone(), gen_schema(s, schemas, rng, depth + 1));
                    }
                }
            }
            if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
                for _ in 0..rng.below(4) {
                    let name = rng.pick(&["plan", "seats", "vip", "renewsAt", "team", "x"]).to_string();
                    m.insert(name, gen_schema(extra, schemas, rng, depth + 1));
                }
            }
            Value::Object(m)
        }
        "array" => {
            let items = schema.get("items").cloned().unwrap_or(json!({}));
            Value::Array((0..1 + rng.below(3)).map(|_| gen_schema(&items, schemas, rng, depth + 1)).collect())
        }
        "string" => {
            if schema.get("format").and_then(Value::as_str) == Some("date-time") {
                json!(rng.pick(&["2026-01-02T03:04:05Z", "2026-13-40T99:00:00Z", "yesterday", "1970-01-01T00:00:00Z"]))
            } else if rng.pct(85) {
                json!(rng.pick(&["u-1", "Ada", "gold", "hello there", "ada@example.com", "signed_up", "2.10.1", "web"]))
            } else {
                json!(odd_string(rng))
            }
        }
        "integer" => json!(rng.below(1000) as i64 - 10),
        "number" => json!(rng.pick(&[0.5, -1.0, 3.0, 1e300, 12345.678])),
        "boolean" => json!(rng.pct(50)),
        _ => Value::Null,
    }
}

/// A wrong-typed value.
fn wrong_value(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(1.5e300),
        4 => json!([1, "two", null]),
        5 => json!({"nested": {"deeper": [{}]}}),
        6 => json!(odd_string(rng)),
        7 => json!("a\u{0}b"),
        8 => json!(u64::MAX),
        _ => json!(""),
    }
}

/// Mutates a JSON value in place: a wrong type, a missing or extra field, odd strings.
fn mutate_json(v: &mut Value, rng: &mut Rng, depth: usize) {
    match v {
        Value::Object(m) if !m.is_empty() && depth < 4 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = rng.pick(&keys).clone();
            match rng.below(5) {
                0 => {
                    m.remove(&k);
                }
                1 => {
                    m.insert(odd_string(rng), wrong_value(rng));
                }
                2 => {
                    m.insert(k, wrong_value(rng));
                }
                _ => {
                    if let Some(inner) = m.get_mut(&k) {
                        mutate_json(inner, rng, depth + 1);
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() && depth < 4 => {
            let i = rng.below(a.len());
            if rng.pct(50) {
                a[i] = wrong_value(rng);
            } else {
                mutate_json(&mut a[i], rng, depth + 1);
            }
        }
        _ => *v = wrong_value(rng),
    }
}

fn deep_json(depth: usize, object: bool) -> Vec<u8> {
    let mut s = Vec::with_capacity(depth * 6);
    for _ in 0..depth {
        s.extend_from_slice(if object { b"{\"a\":" } else { b"[" });
    }
    s.extend_from_slice(b"1");
    for _ in 0..depth {
        s.extend_from_slice(if object { b"}" } else { b"]" });
    }
    s
}

/// A body as bytes from a JSON value, sometimes broken on the wire.
fn body_bytes(v: &Value, rng: &mut Rng) -> (Vec<u8>, bool) {
    let mut b = v.to_string().into_bytes();
    let mut fresh = false;
    match rng.below(40) {
        0 => b.truncate(b.len() / 2),
        1 => {
            let at = rng.below(b.len().max(1));
            b.splice(at..at, [0xff, 0xfe, 0xc3].iter().copied());
        }
        2 => {
            let at = rng.below(b.len().max(1));
            b.insert(at, 0);
        }
        3 => b = b"\xef\xbb\xbf".iter().chain(b.iter()).copied().collect(),
        4 => b = b"null".to_vec(),
        5 => b = b"[]".to_vec(),
        6 => b = b"12".to_vec(),
        7 => b.clear(),
        8 => {
            b = deep_json(10_000, rng.pct(50));
            fresh = true;
        }
        9 => {
            // Over 1 MiB.
            b = format!("{{\"userId\":\"big\",\"givenName\":\"{}\"}}", "A".repeat(1_100_000)).into_bytes();
            fresh = true;
        }
        10 => {
            let many: Map<String, Value> = (0..30_000).map(|i| (format!("p{i}"), json!(i))).collect();
            b = json!({ "properties": many }).to_string().into_bytes();
            fresh = true;
        }
        11 => b = b"{\"a\":\"\\ud800\"}".to_vec(),
        12 => b = b"{\"a\":1,\"a\":2}".to_vec(),
        _ => {}
    }
    (b, fresh)
}

// ---------------------------------------------------------------- generators

fn gen_rest(w: &World, rng: &mut Rng) -> Case {
    let op = rng.pick(&w.ops).clone();
    let mut cross = Cross::None;
    let mut path = op.path.clone();
    if path.contains("{appId}") {
        let roll = rng.below(100);
        let v = if roll < 70 {
            w.a.app_id.clone()
        } else if roll < 85 {
            cross = Cross::App;
            w.b.app_id.clone()
        } else if roll < 95 {
            rng.hex(24)
        } else {
            odd_string(rng)
        };
        path = path.replace("{appId}", &pct(&v));
    }
    if path.contains("{userId}") {
        let mut a_ids = w.a.user_ids.clone();
        a_ids.extend(w.a.murmur_ids.iter().cloned());
        let v = if rng.pct(10) {
            // B's customer userIds: A may have (or create) users with the same.
            rng.pick(&w.b.user_ids).clone()
        } else {
            pick_id(rng, &a_ids, &w.b.murmur_ids, &mut cross, true)
        };
        path = path.replace("{userId}", &pct(&v));
    }
    if path.contains("{conversationId}") {
        let v = pick_id(rng, &w.a.conversation_ids, &w.b.conversation_ids, &mut cross, true);
        path = path.replace("{conversationId}", &pct(&v));
    }
    if rng.pct(8) {
        let q = rng.pick(&["limit", "before", "after", "offset", "userId"]);
        let v = if rng.pct(50) { "%FF%FE".to_string() } else { pct(&odd_string(rng)) };
        path = format!("{path}?{q}={v}");
    }
    if rng.pct(3) {
        path = path.replace("/appusers", "/appusers/%2e%2e");
    }
    let method = if rng.pct(92) {
        op.method.clone()
    } else {
        rng.pick(&["PATCH", "OPTIONS", "HEAD", "TRACE", "DELETE", "PUT", "FOO"]).to_string()
    };
    let key = w.a.key();
    let auth: Option<Vec<u8>> = match rng.below(100) {
        0..=69 => Some(key.basic().into_bytes()),
        70..=79 => Some(
            format!(
                "Bearer {}",
                murmur::api::auth::sign_app_jwt(
                    &key.id,
                    &key.secret,
                    json!({"iat": unix_now() - rng.below(100) as i64})
                )
            )
            .into_bytes(),
        ),
        80 => None,
        81 => Some(b"Basic !!!notbase64!!!".to_vec()),
        82 => {
            use base64::Engine;
            let b = w.b.key();
            Some(
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", b.id, key.secret))
                )
                .into_bytes(),
            )
        }
        83 => {
            use base64::Engine;
            Some(
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:wrong", key.id)))
                    .into_bytes(),
            )
        }
        84 => Some(b"Bearer eyJhbGciOiJub25lIn0.eyJzY29wZSI6ImFwcCJ9.".to_vec()),
        85 => Some(format!("Bearer {}", "a".repeat(9000)).into_bytes()),
        86 => Some(b"Basic \xff\xfe\x00".to_vec()),
        87 => Some(b"Basic".to_vec()),
        88 => {
            use base64::Engine;
            Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("no-colon")).into_bytes())
        }
        89 => Some(
            format!(
                "Bearer {}",
                murmur::api::auth::sign_app_jwt(&key.id, &key.secret, json!({"exp": 99_999_999_999_i64, "scope": 7}))
            )
            .into_bytes(),
        ),
        _ => Some(key.basic().into_bytes()),
    };
    let authed = auth.as_ref().is_some_and(|a| a == key.basic().as_bytes() || a.starts_with(b"Bearer ey"));
    if !authed && cross == Cross::App {
        cross = Cross::Ids;
    }
    let (mut body, mut fresh) = (Vec::new(), false);
    if let Some(schema) = &op.body {
        let mut v = gen_schema(schema, &w.schemas, rng, 0);
        // Slip B's and odd ids into the body's ids (batch events' userId).
        if let Some(events) = v.get_mut("events").and_then(Value::as_array_mut) {
            for e in events.iter_mut() {
                if rng.pct(30) {
                    e["userId"] = json!(pick_id(rng, &w.a.user_ids, &w.b.murmur_ids, &mut cross, true));
                } else {
                    e["userId"] = json!(rng.pick(&w.a.user_ids));
                }
            }
        }
        if rng.pct(40) {
            for _ in 0..1 + rng.below(3) {
                mutate_json(&mut v, rng, 0);
            }
        }
        (body, fresh) = body_bytes(&v, rng);
    } else if rng.pct(5) {
        body = b"{\"junk\":true}".to_vec();
    }
    let ctype = match rng.below(100) {
        0..=84 => Some("application/json"),
        85..=87 => None,
        88 => Some("text/plain"),
        89 => Some("application/json; charset=latin1"),
        90 => Some("multipart/form-data; boundary=x"),
        91 => Some("application/x-www-form-urlencoded"),
        92 => Some("application/json\u{0}"),
        93 => Some("application/vnd.api+json"),
        _ => Some("application/json"),
    };
    let mut headers: Vec<(String, Vec<u8>)> = vec![];
    if let Some(a) = auth {
        headers.push(("Authorization".into(), a));
    }
    if !body.is_empty() || op.body.is_some() {
        if let Some(c) = ctype {
            headers.push(("Content-Type".into(), c.as_bytes().to_vec()));
        }
    }
    let label = format!("{method} {path}");
    let head = method == "HEAD";
    let bytes = build(&w.host, &method, &path, &headers, &body);
    Case { category: "rest", label, cross, kind: Kind::Http { bytes, head, fresh, stream: false } }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A request with byte-valued headers (so invalid bytes can be sent).
fn build(host: &str, method: &str, path: &str, headers: &[(String, Vec<u8>)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || !matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS" | "TRACE") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A value for a server function's field.
fn field_value(w: &World, rng: &mut Rng, field: &str, cross: &mut Cross, allow_b: bool, owner: bool) -> String {
    let a = &w.a;
    let b = &w.b;
    let odd = rng.pct(12);
    if odd {
        return odd_string(rng);
    }
    match field {
        "app_id" => {
            let roll = rng.below(100);
            if roll < 75 {
                a.app_id.clone()
            } else if roll < 90 && allow_b {
                *cross = Cross::App;
                b.app_id.clone()
            } else {
                rng.hex(24)
            }
        }
        "conversation_id" => pick_id(rng, &a.conversation_ids, &b.conversation_ids, cross, allow_b),
        "user" | "users" => {
            let mut ids = a.murmur_ids.clone();
            ids.extend(a.user_ids.iter().cloned());
            let id = pick_id(rng, &ids, &b.murmur_ids, cross, allow_b);
            if field == "users" && rng.pct(50) {
                format!("{id},{}", rng.pick(&a.murmur_ids))
            } else {
                id
            }
        }
        "whisper_id" => {
            if rng.pct(20) {
                "new".into()
            } else {
                pick_id(rng, &a.whisper_ids, &b.whisper_ids, cross, allow_b)
            }
        }
        "message_id" => {
            if rng.pct(20) {
                "new".into()
            } else {
                pick_id(rng, &a.manual_ids, &b.manual_ids, cross, allow_b)
            }
        }
        "id" => {
            let mut ids = a.card_ids.clone();
            ids.extend(a.whisper_ids.iter().cloned());
            ids.extend(a.manual_ids.iter().cloned());
            let mut bids = b.card_ids.clone();
            bids.extend(b.whisper_ids.iter().cloned());
            bids.extend(b.manual_ids.iter().cloned());
            pick_id(rng, &ids, &bids, cross, allow_b)
        }
        "teammate_id" | "assignee" => {
            // Never Alice's own id as the owner (removing her would end the run's session).
            let mine = if owner { vec![] } else { vec![w.alice_id.clone(), w.owner_id.clone()] };
            let v = pick_id(rng, &mine, &[], cross, false);
            if field == "assignee" && rng.pct(20) {
                String::new()
            } else {
                v
            }
        }
        "key_id" => rng.hex(24),
        "kind" => rng.pick(&["whisper", "message", "card", "x"]).to_string(),
        "draft" => {
            if rng.pct(50) {
                let mut d =
                    from_template(Some(*rng.pick(&["welcome", "rating", "announcement", "reengage"])), &w.alice_id);
                d.name = format!("fuzz {}", rng.hex(4));
                let mut v = serde_json::to_value(&d).unwrap_or(json!({}));
                if rng.pct(50) {
                    mutate_json(&mut v, rng, 0);
                }
                v.to_string()
            } else {
                let ids = if rng.pct(70) {
                    vec![rng.pick(&a.murmur_ids).clone()]
                } else {
                    vec![pick_id(rng, &a.murmur_ids, &b.murmur_ids, cross, allow_b)]
                };
                let d = MessageDraft {
                    title: format!("fuzz {}", rng.hex(4)),
                    sender_id: if rng.pct(80) { w.alice_id.clone() } else { rng.hex(24) },
                    kind: *rng.pick(&[ManualKind::Chat, ManualKind::Announcement, ManualKind::Email]),
                    body: "Hello {{ firstName || there }}".into(),
                    audience: if rng.pct(50) {
                        Audience::Users { ids }
                    } else {
                        Audience::Segment { conditions: vec![], not_received: vec![] }
                    },
                    push: rng.pct(10),
                };
                let mut v = serde_json::to_value(&d).unwrap_or(json!({}));
                if rng.pct(50) {
                    mutate_json(&mut v, rng, 0);
                }
                v.to_string()
            }
        }
        "conditions" => sample_conditions(rng),
        "mode" => rng.pick(&["draft", "now", "at", "later", ""]).to_string(),
        "send_at" => rng.pick(&["2030-01-01T10:00", "2020-01-01T00:00", "tomorrow", ""]).to_string(),
        "open" | "descending" | "activate" | "all_users" | "enabled" | "enforced" => {
            rng.pick(&["true", "false", "on", "1", "yes", ""]).to_string()
        }
        "range" | "max_active" | "port" => {
            rng.pick(&["7", "30", "90", "0", "-5", "1e9", "99999999999999999999"]).to_string()
        }
        "state" => rng.pick(&["open", "closed", "all", "snoozed"]).to_string(),
        "filter" => rng.pick(&["all", "mine", "unassigned", "x"]).to_string(),
        "tab" => rng.pick(&["sent", "drafts", "scheduled", "x"]).to_string(),
        "sort" => rng.pick(&["lastSeenAt", "signedUpAt", "name", "plan", "x"]).to_string(),
        "status" => rng.pick(&["active", "paused", "draft", "deleted"]).to_string(),
        "template" => rng.pick(&["welcome", "rating", "none", ""]).to_string(),
        "time_zone" => rng.pick(&["Europe/Paris", "UTC", "Mars/Olympus", ""]).to_string(),
        "monday" | "tuesday" | "wednesday" | "thursday" | "friday" | "saturday" | "sunday" => {
            rng.pick(&["09:00-17:00", "", "25:00-26:00", "17:00-09:00", "09:00-12:00,13:00-17:00"]).to_string()
        }
        "security" => rng.pick(&["starttls", "tls", "none", "x"]).to_string(),
        "host" => rng.pick(&["smtp.example.com", "127.0.0.1", "", "a b"]).to_string(),
        "email" | "from_address" => rng.pick(&["x@example.com", "not-an-email", "tess@example.com", ""]).to_string(),
        "password" | "current_password" | "new_password" | "confirm_password" => {
            rng.pick(&["short", "a long enough password", ""]).to_string()
        }
        "after" | "before" => rng.pick(&["", "1795000000000", "abc", "-1"]).to_string(),
        "properties" | "events" => rng.pick(&["plan, seats", "", "a,,b", "signed_up"]).to_string(),
        _ => rng.pick(&["fuzz", "Hello there", "Shop", "ada@example.com", "x"]).to_string(),
    }
}

fn gen_server_fn(w: &World, rng: &mut Rng) -> Case {
    let (endpoint, nested, fields) = *rng.pick(SERVER_FNS);
    let owner_only = OWNER_ONLY.contains(&endpoint);
    let as_owner = owner_only && rng.pct(50);
    let mut cross = Cross::None;
    let roll = rng.below(100);
    // Who calls: Alice, the owner (owner-only functions on A), nobody, a
    // forged session, or Alice from another site.
    let (session, origin, site): (Option<String>, Option<String>, Option<(&str, &str)>) =
        if ENDS_SESSION.contains(&endpoint) {
            (if rng.pct(50) { Some(rng.hex(43)) } else { None }, Some(w.origin.clone()), None)
        } else if as_owner {
            (Some(w.owner.clone()), Some(w.origin.clone()), None)
        } else if roll < 78 {
            (Some(w.alice.clone()), Some(w.origin.clone()), None)
        } else if roll < 86 {
            (None, Some(w.origin.clone()), None)
        } else if roll < 91 {
            (Some(rng.hex(43)), Some(w.origin.clone()), None)
        } else if roll < 96 {
            cross = Cross::Site;
            (
                Some(w.alice.clone()),
                Some(rng.pick(&["http://evil.example", "null", "http://127.0.0.1:1"]).to_string()),
                None,
            )
        } else {
            cross = Cross::Site;
            (Some(w.alice.clone()), None, Some(("Sec-Fetch-Site", "cross-site")))
        };
    let alice = session.as_deref() == Some(w.alice.as_str());
    let mut pairs: Vec<(String, String)> = vec![];
    for f in fields {
        if rng.pct(6) {
            continue; // missing
        }
        let mut c = Cross::None;
        let v = field_value(w, rng, f, &mut c, !as_owner, as_owner);
        if alice && cross != Cross::Site && c != Cross::None && cross != Cross::App {
            cross = c;
        }
        let name = if nested { format!("input[{f}]") } else { f.to_string() };
        pairs.push((name, v));
    }
    if as_owner && endpoint == "apps/identity-secret/roll" {
        // Never A's own: its widgets' JWTs are signed with the secret it has.
        for (k, v) in pairs.iter_mut() {
            if k == "input[app_id]" && *v == w.a.app_id {
                *v = rng.hex(24);
            }
        }
    }
    if rng.pct(6) {
        pairs.push((format!("input[{}]", odd_string(rng)), odd_string(rng)));
    }
    if rng.pct(3) && !pairs.is_empty() {
        let dup = pairs[rng.below(pairs.len())].clone();
        pairs.push((dup.0, odd_string(rng)));
    }
    let mut body = crate::server::form_encode(&pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>())
        .into_bytes();
    let mut fresh = false;
    match rng.below(50) {
        0 => body.extend_from_slice(b"&input[name]=%zz%"),
        1 => body.extend_from_slice(b"&input[app_id]=%FF%FE%00"),
        2 => {
            body = b"input".to_vec();
            for _ in 0..10_000 {
                body.extend_from_slice(b"[a]");
            }
            body.extend_from_slice(b"=1");
            fresh = true;
        }
        3 => {
            body.extend_from_slice(format!("&input[text]={}", "A".repeat(1_200_000)).as_bytes());
            fresh = true;
        }
        4 => body = b"\xff\xfe\x00\x01=\x80".to_vec(),
        5 => body = b"input=1&input[app_id]=2".to_vec(),
        6 => body = format!("{{\"input\":{{\"app_id\":\"{}\"}}}}", w.a.app_id).into_bytes(),
        _ => {}
    }
    let ctype = match rng.below(100) {
        0..=91 => "application/x-www-form-urlencoded",
        92 => "application/json",
        93 => "multipart/form-data",
        94 => "text/plain",
        95 => "application/x-www-form-urlencoded; charset=utf-16",
        _ => "application/x-www-form-urlencoded",
    };
    let method = if rng.pct(96) { "POST" } else { *rng.pick(&["GET", "PUT", "DELETE"]) };
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        ("Content-Type".into(), ctype.as_bytes().to_vec()),
        ("Accept".into(), if rng.pct(80) { b"application/json".to_vec() } else { b"text/html".to_vec() }),
    ];
    if let Some(o) = origin {
        headers.push(("Origin".into(), o.into_bytes()));
    }
    if let Some((k, v)) = site {
        headers.push((k.into(), v.as_bytes().to_vec()));
    }
    if let Some(s) = session {
        headers.push(("Cookie".into(), Server::cookie(&s).into_bytes()));
    }
    let path = format!("/api/{endpoint}");
    let who = if as_owner {
        "owner"
    } else if alice {
        "alice"
    } else {
        "anonymous"
    };
    let label = format!("{method} {path} as {who}: {}", show(&body, 300));
    let bytes = build(&w.host, method, &path, &headers, &body);
    Case { category: "server-fn", label, cross, kind: Kind::Http { bytes, head: false, fresh, stream: false } }
}

fn gen_page(w: &World, rng: &mut Rng) -> Case {
    let mut cross = Cross::None;
    let app = {
        let roll = rng.below(100);
        if roll < 70 {
            w.a.app_id.clone()
        } else if roll < 85 {
            cross = Cross::App;
            w.b.app_id.clone()
        } else if roll < 95 {
            rng.hex(24)
        } else {
            pct(&odd_string(rng))
        }
    };
    let mut c2 = Cross::None;
    let mut id = |rng: &mut Rng, a: &[String], b: &[String]| pct(&pick_id(rng, a, b, &mut c2, true));
    let mut stream = false;
    let mut method = "GET";
    let path = match rng.below(30) {
        0 => "/".to_string(),
        1 => "/setup".into(),
        2 => "/login".into(),
        3 => "/new-app".into(),
        4 => "/account".into(),
        5 => format!("/apps/{app}"),
        6 => format!("/apps/{app}/whispers"),
        7 => format!("/apps/{app}/whispers/{}", id(rng, &w.a.whisper_ids, &w.b.whisper_ids)),
        8 => format!("/apps/{app}/users"),
        9 => format!("/apps/{app}/users/{}", id(rng, &w.a.murmur_ids, &w.b.murmur_ids)),
        10 => format!("/apps/{app}/messages"),
        11 => format!("/apps/{app}/messages/{}", id(rng, &w.a.manual_ids, &w.b.manual_ids)),
        12 => format!("/apps/{app}/inbox"),
        13 => format!("/apps/{app}/inbox/{}", id(rng, &w.a.conversation_ids, &w.b.conversation_ids)),
        14 => format!("/apps/{app}/teammates/{}", id(rng, std::slice::from_ref(&w.alice_id), &[])),
        15 => format!("/apps/{app}/settings"),
        16 => format!("/apps/{app}/audit"),
        17 => "/healthz".into(),
        18 => rng
            .pick(&["/widget/loader.js", "/widget/messenger.js", "/widget/messenger.css", "/widget/push-sw.js"])
            .to_string(),
        19 => format!("/widget/frame?app={app}&origin={}", pct(&odd_string(rng))),
        20 => format!("/unsubscribe/{}", pct(&odd_string(rng))),
        21 => {
            method = "POST";
            format!("/unsubscribe/{}", rng.hex(40))
        }
        22 => "/demo/demo.js".into(),
        23 => format!("/demo/{app}"),
        24 => {
            stream = true;
            format!("/live/inbox/{app}")
        }
        25 => rng.pick(&["/metrics", "/pkg/murmur.js", "/favicon.ico", "/v1.1/openapi.json"]).to_string(),
        26 => rng
            .pick(&[
                "/pkg/../Cargo.toml",
                "/widget/%2e%2e/%2e%2e/Cargo.toml",
                "/%00",
                "/apps/",
                "/apps//users",
                "/%FF%FE",
            ])
            .to_string(),
        27 => format!("/{}", pct(&odd_string(rng))),
        28 => format!("/apps/{app}/users?search={}&after={}", pct(&odd_string(rng)), pct(&odd_string(rng))),
        _ => format!("/apps/{app}/inbox?state={}", pct(&odd_string(rng))),
    };
    if c2 != Cross::None && cross == Cross::None {
        cross = Cross::Ids;
    }
    // Pages as Alice (mostly), nobody, a forged session.
    let session = match rng.below(10) {
        0..=6 => Some(w.alice.clone()),
        7 | 8 => None,
        _ => Some(rng.hex(43)),
    };
    if session.as_deref() != Some(w.alice.as_str()) && cross == Cross::App {
        cross = Cross::Ids;
    }
    // A page naming B that answers 200 is judged by its content (the app
    // frame may render a "not found" view), not its status.
    if cross == Cross::App {
        cross = Cross::Ids;
    }
    let method = if rng.pct(4) { *rng.pick(&["HEAD", "OPTIONS", "DELETE"]) } else { method };
    let mut headers: Vec<(String, Vec<u8>)> = vec![(
        "Accept".into(),
        rng.pick(&[&b"text/html"[..], b"*/*", b"application/json", b"text/event-stream"]).to_vec(),
    )];
    if let Some(s) = session {
        headers.push(("Cookie".into(), Server::cookie(&s).into_bytes()));
    }
    if method == "POST" {
        headers.push(("Origin".into(), w.origin.clone().into_bytes()));
        headers.push(("Content-Type".into(), b"application/x-www-form-urlencoded".to_vec()));
    }
    let label = format!("{method} {path}");
    let bytes = build(&w.host, method, &path, &headers, b"");
    Case { category: "page", label, cross, kind: Kind::Http { bytes, head: method == "HEAD", fresh: stream, stream } }
}

fn gen_widget(w: &World, rng: &mut Rng) -> Case {
    let a = &w.a;
    let b = &w.b;
    let mut cross = Cross::None;
    let origin = match rng.below(100) {
        0..=91 => Some(w.origin.clone()),
        92..=94 => Some("http://evil.example".to_string()),
        95 => Some("null".to_string()),
        96 => Some(format!("{}.evil.example", w.origin)),
        _ => None,
    };
    let mut frames = vec![];
    let hello_user = match rng.below(10) {
        0..=3 => json!(rng.pick(&a.user_ids)),
        4..=6 => json!(format!("fuzz-{}", rng.hex(6))),
        // B's customer userIds name A's users with the same userId (or make one).
        7 => json!(rng.pick(&b.user_ids)),
        8 => Value::Null,
        _ => wrong_value(rng),
    };
    let mut hello = json!({"t": "hello", "app": a.app_id, "device": rng.hex(16), "userId": hello_user});
    // Identity verification is on: a signed JWT for a userId (mostly), else none or a bad one.
    if let Some(uid) = hello["userId"].as_str().map(String::from) {
        match rng.below(20) {
            0 => {}
            1 => hello["jwt"] = json!(Server::widget_jwt(&w.b.identity_secret, &uid)),
            2 => hello["jwt"] = json!(Server::widget_jwt(&a.identity_secret, "someone-else")),
            _ => hello["jwt"] = json!(Server::widget_jwt(&a.identity_secret, &uid)),
        }
    }
    if rng.pct(30) {
        hello["user"] = json!({"givenName": "Fuzz", "email": "fuzz@example.com", "properties": {"plan": "gold"}});
    }
    if rng.pct(15) {
        hello["since"] = if rng.pct(50) { json!(0) } else { wrong_value(rng) };
    }
    if rng.pct(10) {
        hello["appVersion"] = if rng.pct(50) { json!("1.2.3") } else { wrong_value(rng) };
    }
    match rng.below(30) {
        0 => hello["app"] = json!(rng.hex(24)),
        1 => hello["app"] = json!(odd_string(rng)),
        2 => hello["jwt"] = json!("eyJhbGciOiJIUzI1NiJ9.e30.bad"),
        3 => hello["t"] = json!("track"),
        4 => {
            mutate_json(&mut hello, rng, 0);
        }
        5 => hello["app"] = wrong_value(rng),
        _ => {}
    }
    if rng.pct(3) {
        frames.push(WsOut::Binary(vec![0xff; 10]));
    }
    frames.push(WsOut::Text(hello.to_string()));
    let n = 1 + rng.below(8);
    let mut id = |rng: &mut Rng, a: &[String], b: &[String]| json!(pick_id(rng, a, b, &mut cross, true));
    for _ in 0..n {
        let f = match rng.below(16) {
            0 => {
                json!({"t": "track", "name": rng.pick(&["signed_up", "clicked_buy", ""]), "props": {"plan": "gold", "n": 3}})
            }
            1 => json!({"t": "track", "name": wrong_value(rng), "props": wrong_value(rng)}),
            2 => {
                json!({"t": "update", "user": {"givenName": "Widget", "email": "w@example.com", "properties": {"plan": "silver", "seats": 2}}})
            }
            3 => json!({"t": "update", "user": wrong_value(rng)}),
            4 => json!({"t": "seen", "id": id(rng, &a.card_ids, &b.card_ids)}),
            5 => json!({"t": "clicked", "id": id(rng, &a.card_ids, &b.card_ids)}),
            6 => json!({"t": "reply", "text": "hello from the widget"}),
            7 => {
                json!({"t": "reply", "text": "into a conversation", "conversation": id(rng, &a.conversation_ids, &b.conversation_ids)})
            }
            8 => json!({"t": "reply", "text": wrong_value(rng), "card": id(rng, &a.card_ids, &b.card_ids)}),
            9 => json!({"t": "read", "conversation": id(rng, &a.conversation_ids, &b.conversation_ids)}),
            10 => {
                json!({"t": "push", "endpoint": rng.pick(&["https://fcm.googleapis.com/fcm/send/x", "http://127.0.0.1:1/", "junk"]), "keys": {"p256dh": "BAD", "auth": "x"}, "page": "https://shop.example/"})
            }
            11 => {
                json!({"t": "push", "endpoint": wrong_value(rng), "keys": wrong_value(rng), "page": wrong_value(rng)})
            }
            12 => json!({"t": "ping"}),
            13 => json!({"t": rng.pick(&["hello", "nope", "", "PING"]), "app": a.app_id}),
            14 => json!([1, 2, 3]),
            _ => {
                let mut v = json!({"t": "reply", "text": "x"});
                mutate_json(&mut v, rng, 0);
                v
            }
        };
        match rng.below(100) {
            0 => frames.push(WsOut::Text("{not json".into())),
            1 => frames.push(WsOut::Binary(vec![0, 159, 146, 150])),
            2 => frames.push(WsOut::Text(format!("{{\"t\":\"reply\",\"text\":\"{}\"}}", "x".repeat(40_000)))),
            3 => frames.push(WsOut::Text(String::from_utf8_lossy(&deep_json(10_000, rng.pct(50))).into_owned())),
            _ => frames.push(WsOut::Text(f.to_string())),
        }
    }
    let label = frames
        .iter()
        .map(|f| match f {
            WsOut::Text(t) => show(t.as_bytes(), 200),
            WsOut::Binary(b) => format!("<binary {} bytes>", b.len()),
        })
        .collect::<Vec<_>>()
        .join(" | ");
    Case {
        category: "widget",
        label: format!("ws (origin {origin:?}): {label}"),
        cross,
        kind: Kind::Widget { origin, frames },
    }
}

fn gen_raw(w: &World, rng: &mut Rng) -> Case {
    let host = &w.host;
    let wait = Duration::from_secs(3);
    let (label, bytes): (&str, Vec<u8>) = match rng.below(26) {
        0 => ("garbage request line", b"GARBAGE\r\n\r\n".to_vec()),
        1 => ("no target", b"GET\r\n\r\n".to_vec()),
        2 => ("HTTP/9.9", format!("GET / HTTP/9.9\r\nHost: {host}\r\n\r\n").into_bytes()),
        3 => ("100 KiB path", format!("GET /{} HTTP/1.1\r\nHost: {host}\r\n\r\n", "a".repeat(100_000)).into_bytes()),
        4 => ("NUL in method", format!("G\0T / HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()),
        5 => {
            let mut s = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n");
            for i in 0..500 {
                s.push_str(&format!("X-H{i}: v\r\n"));
            }
            s.push_str("\r\n");
            ("500 headers", s.into_bytes())
        }
        6 => (
            "100 KiB header",
            format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Big: {}\r\n\r\n", "b".repeat(100_000)).into_bytes(),
        ),
        7 => ("space in header name", format!("GET / HTTP/1.1\r\nHost: {host}\r\nBad Header: x\r\n\r\n").into_bytes()),
        8 => {
            let mut b = format!("GET /apps HTTP/1.1\r\nHost: {host}\r\nCookie: murmur_session=").into_bytes();
            b.extend_from_slice(b"\xff\xfe\x00\x7f\r\n\r\n");
            ("bad bytes in a header value", b)
        }
        9 => (
            "Content-Length: abc",
            format!("POST /v1.1/appusers HTTP/1.1\r\nHost: {host}\r\nContent-Length: abc\r\n\r\n{{}}").into_bytes(),
        ),
        10 => (
            "Content-Length: -1",
            format!("POST /api/login HTTP/1.1\r\nHost: {host}\r\nContent-Length: -1\r\n\r\n").into_bytes(),
        ),
        11 => (
            "two Content-Lengths",
            format!("POST /api/login HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nab")
                .into_bytes(),
        ),
        12 => (
            "Content-Length beyond the body",
            format!(
                "POST /v1.1/appusers HTTP/1.1\r\nHost: {host}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"userId\":",
                w.a.key().basic()
            )
            .into_bytes(),
        ),
        13 => (
            "chunked garbage",
            format!(
                "POST /v1.1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
                w.a.key().basic()
            )
            .into_bytes(),
        ),
        14 => (
            "chunk size overflow",
            format!(
                "POST /api/login HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nx\r\n"
            )
            .into_bytes(),
        ),
        15 => (
            "Content-Length and chunked",
            format!(
                "POST /api/login HTTP/1.1\r\nHost: {host}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            )
            .into_bytes(),
        ),
        16 => ("no Host, HTTP/1.0", b"GET /healthz HTTP/1.0\r\n\r\n".to_vec()),
        17 => ("two Hosts", format!("GET / HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\n\r\n").into_bytes()),
        18 => ("absolute-form URI", format!("GET http://evil.example/ HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()),
        19 => (
            "Expect: 100-continue without the body",
            format!(
                "POST /v1.1/appusers HTTP/1.1\r\nHost: {host}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 5000000\r\n\r\n",
                w.a.key().basic()
            )
            .into_bytes(),
        ),
        20 => (
            "websocket upgrade with a bad key",
            format!(
                "GET /widget/ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 99\r\nSec-WebSocket-Key: !!\r\n\r\n",
                w.origin
            )
            .into_bytes(),
        ),
        21 => (
            "valid request then pipelined garbage",
            format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n\x00\x01\x02garbage\r\n\r\n").into_bytes(),
        ),
        22 => ("bare LF line ends", format!("GET /healthz HTTP/1.1\nHost: {host}\n\n").into_bytes()),
        23 => ("obs-fold header", format!("GET / HTTP/1.1\r\nHost: {host}\r\nX-A: a\r\n  folded\r\n\r\n").into_bytes()),
        24 => {
            let mut b = vec![0u8; 2048];
            for x in b.iter_mut() {
                *x = (rng.next() & 0xff) as u8;
            }
            ("random bytes", b)
        }
        _ => (
            "HEAD with a body",
            format!("HEAD /healthz HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\n\r\nabc").into_bytes(),
        ),
    };
    Case { category: "raw", label: label.to_string(), cross: Cross::None, kind: Kind::Raw { bytes, wait } }
}

fn gen_slow(w: &World, rng: &mut Rng) -> Case {
    let host = &w.host;
    let bytes = match rng.below(3) {
        0 => format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").into_bytes(),
        1 => b"GET / HT".to_vec(),
        _ => format!("POST /api/login HTTP/1.1\r\nHost: {host}\r\nContent-Length: 50\r\n\r\ninput").into_bytes(),
    };
    let label = format!("partial request, then silence: {}", show(&bytes, 80));
    Case { category: "raw", label, cross: Cross::None, kind: Kind::Slow { bytes, wait: Duration::from_secs(70) } }
}

fn gen_case(w: &World, rng: &mut Rng, index: u64) -> Case {
    // A slow sender now and then (each holds a worker for the server's
    // header or body timeout).
    if index % 4_000 == 1_999 {
        return gen_slow(w, rng);
    }
    match rng.below(100) {
        0..=37 => gen_rest(w, rng),
        38..=67 => gen_server_fn(w, rng),
        68..=79 => gen_page(w, rng),
        80..=91 => gen_widget(w, rng),
        _ => gen_raw(w, rng),
    }
}

// ---------------------------------------------------------------- running

struct Shared {
    world: World,
    stats: Mutex<Stats>,
    done: AtomicU64,
    next: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn record(&self, case: &Case, status: Result<u16, &'static str>, request: &[u8], answer: &[u8]) {
        self.done.fetch_add(1, Ordering::Relaxed);
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        *s.requests.entry(case.category).or_default() += 1;
        let key = match status {
            Ok(code) => code.to_string(),
            Err(what) => what.to_string(),
        };
        *s.statuses.entry(key).or_default() += 1;
        let label = || format!("[{}] {}", case.category, case.label);
        match status {
            Ok(code) if code >= 500 => {
                s.fivexx += 1;
                sample(&mut s.fivexx_samples, format!("{code} ← {}", label()));
            }
            Ok(code) if (200..300).contains(&code) => match case.cross {
                Cross::App => {
                    s.cross_accepted += 1;
                    sample(&mut s.cross_samples, format!("{code} to a request naming app B ← {}", label()));
                }
                Cross::Site => {
                    s.site_accepted += 1;
                    sample(&mut s.cross_samples, format!("{code} to a cross-site call ← {}", label()));
                }
                Cross::Ids => s.cross_2xx_benign += 1,
                Cross::None => {}
            },
            Ok(_) if case.cross != Cross::None => s.cross_refused += 1,
            Err("no answer") => {
                s.no_answer += 1;
                sample(&mut s.no_answer_samples, label());
            }
            Err("timeout") => {
                s.timeouts += 1;
                sample(&mut s.timeout_samples, label());
            }
            _ => {}
        }
        if let Some(what) = self.world.leak(request, answer) {
            s.leaks += 1;
            sample(&mut s.cross_samples, format!("answer carried B's {what:?} ← {}", label()));
        }
    }
}

const REQUEST_WITHIN: Duration = Duration::from_secs(20);

async fn run_http(
    shared: &Shared,
    conn: &mut Option<Conn>,
    case: &Case,
    bytes: &[u8],
    head: bool,
    fresh: bool,
    stream: bool,
) {
    let addr = shared.world.addr;
    if fresh || stream {
        let outcome = if stream {
            // Only the head of a stream (the live inbox): then drop it.
            let attempt = async {
                let mut c = Conn::connect(addr).await?;
                c.send_raw(bytes, true).await
            };
            match tokio::time::timeout(REQUEST_WITHIN, attempt).await {
                Ok(Ok(r)) => RawOutcome::Answered(r),
                Ok(Err(_)) => RawOutcome::Closed,
                Err(_) => RawOutcome::TimedOut,
            }
        } else {
            raw_exchange(addr, bytes, REQUEST_WITHIN).await
        };
        match outcome {
            RawOutcome::Answered(r) => shared.record(case, Ok(r.status), bytes, &r.body),
            // A huge body may be refused by closing before it is all read.
            RawOutcome::Closed => shared.record(case, Err("closed (large body)"), bytes, b""),
            RawOutcome::TimedOut => shared.record(case, Err("timeout"), bytes, b""),
            RawOutcome::Failed(_) => shared.record(case, Err("connect failed"), bytes, b""),
        }
        return;
    }
    for attempt in 0..2 {
        let reused = conn.as_ref().is_some_and(|c| c.open);
        if !reused {
            *conn = match Conn::connect(addr).await {
                Ok(c) => Some(c),
                Err(_) => {
                    shared.record(case, Err("connect failed"), bytes, b"");
                    return;
                }
            };
        }
        let c = conn.as_mut().expect("connected");
        match tokio::time::timeout(REQUEST_WITHIN, c.send_raw(bytes, head)).await {
            Ok(Ok(r)) => {
                shared.record(case, Ok(r.status), bytes, &r.body);
                return;
            }
            Ok(Err(_)) => {
                *conn = None;
                // A kept-alive connection the server had closed: once more on a new one.
                if reused && attempt == 0 {
                    continue;
                }
                shared.record(case, Err("no answer"), bytes, b"");
                return;
            }
            Err(_) => {
                *conn = None;
                shared.record(case, Err("timeout"), bytes, b"");
                return;
            }
        }
    }
}

async fn run_widget(shared: &Shared, case: &Case, origin: &Option<String>, frames: &[WsOut]) {
    let w = &shared.world;
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(w.addr).await.map_err(|_| Err("connect failed"))?;
        // Linger 0: closed with a reset (no TIME_WAIT); it does not block.
        #[allow(deprecated)]
        let _ = stream.set_linger(Some(Duration::ZERO));
        let mut req = format!("ws://{}/widget/ws", w.host).into_client_request().map_err(|_| Err("bad request"))?;
        req.headers_mut().insert("Host", w.host.parse().map_err(|_| Err("bad host"))?);
        if let Some(o) = origin {
            if let Ok(v) = o.parse() {
                req.headers_mut().insert("Origin", v);
            }
        }
        let (ws, _) = match tokio_tungstenite::client_async(req, stream).await {
            Ok(x) => x,
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                let body = r.body().clone().unwrap_or_default();
                return Err(Ok((r.status().as_u16(), body)));
            }
            Err(_) => return Err(Err("no answer")),
        };
        Ok::<_, Result<(u16, Vec<u8>), &'static str>>(ws)
    };
    let sent_bytes: Vec<u8> = frames
        .iter()
        .flat_map(|f| match f {
            WsOut::Text(t) => t.as_bytes().to_vec(),
            WsOut::Binary(b) => b.clone(),
        })
        .collect();
    let mut ws = match tokio::time::timeout(REQUEST_WITHIN, attempt).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(Ok((status, body)))) => {
            shared.record(case, Ok(status), &sent_bytes, &body);
            return;
        }
        Ok(Err(Err(what))) => {
            shared.record(case, Err(what), &sent_bytes, b"");
            return;
        }
        Err(_) => {
            shared.record(case, Err("timeout"), &sent_bytes, b"");
            return;
        }
    };
    shared.record(case, Ok(101), b"", b"");
    let frame_case = Case {
        category: "widget-frame",
        label: case.label.clone(),
        cross: case.cross,
        kind: Kind::Raw { bytes: vec![], wait: Duration::ZERO },
    };
    let mut answers: Vec<u8> = vec![];
    let mut internal = false;
    let mut closed = false;
    let mut sent = 0u64;
    for f in frames {
        let m = match f {
            WsOut::Text(t) => Message::Text(t.clone().into()),
            WsOut::Binary(b) => Message::Binary(b.clone().into()),
        };
        if ws.send(m).await.is_err() {
            break;
        }
        sent += 1;
    }
    // Then a ping frame, and everything up to its pong (or the close).
    let _ = ws.send(Message::Text(r#"{"t":"ping"}"#.into())).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut timed_out = false;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                answers.extend_from_slice(t.as_bytes());
                answers.push(b'\n');
                if t.contains(r#""code":"internal""#) {
                    internal = true;
                }
                if t.contains(r#""t":"pong""#) {
                    break;
                }
            }
            Ok(Some(Ok(Message::Close(c)))) => {
                answers.extend_from_slice(format!("<close {c:?}>").as_bytes());
                closed = true;
                break;
            }
            Ok(None) => {
                closed = true;
                break;
            }
            Ok(Some(Err(e))) => {
                answers.extend_from_slice(format!("<error {e}>").as_bytes());
                closed = true;
                break;
            }
            Ok(Some(Ok(_))) => {}
            Err(_) => {
                timed_out = true;
                break;
            }
        }
    }
    let _ = ws.close(None).await;
    if std::env::var_os("RELIABILITY_DEBUG_WS").is_some() {
        eprintln!("WS {}\n  → {}", case.label, String::from_utf8_lossy(&answers));
    }
    let outcome: &'static str = if internal {
        "ws: internal error frame"
    } else if timed_out {
        "timeout"
    } else if closed {
        "ws frame (then closed by server)"
    } else {
        "ws frame (answered up to the pong)"
    };
    for i in 0..sent.max(1) {
        // One record per frame; the answers are judged once.
        let ans: &[u8] = if i == 0 { &answers } else { b"" };
        shared.record(&frame_case, Err(outcome), &sent_bytes, ans);
    }
    if internal {
        let mut s = shared.stats.lock().unwrap_or_else(|e| e.into_inner());
        s.widget_internal += 1;
        sample(&mut s.fivexx_samples, format!("widget `internal` error frame ← {}", case.label));
    }
}

async fn run_slow(shared: &Shared, case: &Case, bytes: &[u8], wait: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    let Ok(mut c) = Conn::connect(shared.world.addr).await else {
        shared.record(case, Err("connect failed"), bytes, b"");
        return;
    };
    if c.stream().write_all(bytes).await.is_err() {
        shared.record(case, Err("closed"), bytes, b"");
        return;
    }
    let mut buf = vec![0u8; 4096];
    let mut got = vec![];
    let outcome = loop {
        match tokio::time::timeout_at(tokio::time::Instant::from_std(started + wait), c.stream().read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break Ok(()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break Err(()),
        }
    };
    let status = std::str::from_utf8(&got).ok().and_then(|s| s.split(' ').nth(1)).and_then(|s| s.parse::<u16>().ok());
    match (outcome, status) {
        (_, Some(code)) => shared.record(case, Ok(code), bytes, &got),
        (Ok(()), None) => shared.record(case, Err("closed by server (slow sender)"), bytes, b""),
        (Err(()), None) => shared.record(case, Err("still open after 70 s (slow sender)"), bytes, b""),
    }
}

async fn worker(shared: Arc<Shared>, seed: u64, total: u64, deadline: Instant) {
    let mut conn: Option<Conn> = None;
    loop {
        if shared.stop.load(Ordering::Relaxed)
            || Instant::now() > deadline
            || shared.done.load(Ordering::Relaxed) >= total
        {
            break;
        }
        let index = shared.next.fetch_add(1, Ordering::Relaxed);
        let mut rng = Rng::new(seed ^ index.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let case = gen_case(&shared.world, &mut rng, index);
        match &case.kind {
            Kind::Http { bytes, head, fresh, stream } => {
                run_http(&shared, &mut conn, &case, bytes, *head, *fresh, *stream).await
            }
            Kind::Raw { bytes, wait } => {
                let outcome = raw_exchange(shared.world.addr, bytes, *wait).await;
                match outcome {
                    RawOutcome::Answered(r) => shared.record(&case, Ok(r.status), bytes, &r.body),
                    RawOutcome::Closed => shared.record(&case, Err("closed"), bytes, b""),
                    RawOutcome::TimedOut => shared.record(&case, Err("no answer within 3 s (raw)"), bytes, b""),
                    RawOutcome::Failed(_) => shared.record(&case, Err("connect failed"), bytes, b""),
                }
            }
            Kind::Slow { bytes, wait } => run_slow(&shared, &case, bytes, *wait).await,
            Kind::Widget { origin, frames } => run_widget(&shared, &case, origin, frames).await,
        }
    }
}

// ---------------------------------------------------------------- fixtures

async fn rest_json(server: &Server, method: &str, path: &str, key: &ApiKey, body: Value) -> Result<Value, String> {
    let r = server.api(method, path, key, Some(&body)).await.map_err(|e| format!("{method} {path}: {e}"))?;
    if !(200..300).contains(&r.status) {
        return Err(format!("{method} {path} answered {}: {}", r.status, r.text()));
    }
    r.json().ok_or_else(|| format!("{method} {path}: not JSON"))
}

async fn call_json(server: &Server, endpoint: &str, fields: &[(&str, &str)], session: &str) -> Result<Value, String> {
    let r = server.call(endpoint, fields, Some(session)).await.map_err(|e| format!("{endpoint}: {e}"))?;
    if r.status != 200 {
        return Err(format!("{endpoint} answered {}: {}", r.status, r.text()));
    }
    r.json().ok_or_else(|| format!("{endpoint}: not JSON: {}", r.text()))
}

/// Users, an event, a conversation, a team conversation, a whisper (active),
/// a manual message (draft), widget cards.
async fn fill_app(server: &Server, data: &mut AppData, session: &str, sender_id: &str) -> Result<(), String> {
    let key = data.key().clone();
    let m = data.marker.clone();
    for i in 1..=3 {
        let user_id = format!("{}-user-{i}", &data.app_id[..6]);
        let v = rest_json(
            server,
            "POST",
            "/v1.1/appusers",
            &key,
            json!({"userId": user_id, "givenName": format!("{m} Given{i}"), "surname": format!("{m} Sur"),
                   "email": format!("{m}{i}@example.com"), "properties": {"plan": format!("{m} plan"), "seats": i}}),
        )
        .await?;
        data.murmur_ids.push(v["appUser"]["_id"].as_str().unwrap_or_default().to_string());
        data.user_ids.push(user_id);
    }
    let u1 = data.user_ids[0].clone();
    rest_json(server, "POST", &format!("/v1.1/appusers/{u1}/events"), &key, json!({"name": "signed_up"})).await?;
    let v = rest_json(
        server,
        "POST",
        &format!("/v1.1/appusers/{u1}/messages"),
        &key,
        json!({"role": "appUser", "type": "text", "text": format!("{m} hello from the user")}),
    )
    .await?;
    data.message_ids.push(v["message"]["_id"].as_str().unwrap_or_default().to_string());
    data.conversation_ids.push(v["conversation"]["_id"].as_str().unwrap_or_default().to_string());
    // A conversation the team starts (inbox/start).
    let r = server
        .call(
            "inbox/start",
            &[("app_id", &data.app_id), ("user", &data.murmur_ids[1]), ("text", &format!("{m} team says hi"))],
            Some(session),
        )
        .await
        .map_err(|e| e.to_string())?;
    if let Some(id) = r.json().and_then(|v| v.as_str().map(String::from)) {
        data.conversation_ids.push(id);
    }
    // A whisper at app launch, active (the widgets' cards).
    let mut d = from_template(Some("welcome"), sender_id);
    d.name = format!("{m} whisper");
    let draft = serde_json::to_string(&d).map_err(|e| e.to_string())?;
    let v = call_json(
        server,
        "whispers/save",
        &[
            ("input[app_id]", &data.app_id),
            ("input[whisper_id]", "new"),
            ("input[draft]", &draft),
            ("input[activate]", "true"),
        ],
        session,
    )
    .await?;
    data.whisper_ids.push(v.as_str().unwrap_or_default().to_string());
    // A manual message, saved as a draft.
    let md = MessageDraft {
        title: format!("{m} manual"),
        sender_id: sender_id.into(),
        kind: ManualKind::Chat,
        body: format!("{m} manual body"),
        audience: Audience::Users { ids: vec![data.murmur_ids[0].clone()] },
        push: false,
    };
    let draft = serde_json::to_string(&md).map_err(|e| e.to_string())?;
    let v = call_json(
        server,
        "messages/save",
        &[
            ("input[app_id]", &data.app_id),
            ("input[message_id]", "new"),
            ("input[draft]", &draft),
            ("input[mode]", "draft"),
            ("input[send_at]", ""),
        ],
        session,
    )
    .await?;
    data.manual_ids.push(v.as_str().unwrap_or_default().to_string());
    // A widget for the second user: the welcome whisper's card.
    let cards = widget_cards(server, &data.app_id, &data.user_ids[1], &data.identity_secret).await?;
    data.card_ids.extend(cards);
    Ok(())
}

/// Opens a widget as `user_id` of `app_id` and collects the card ids it is sent.
async fn widget_cards(server: &Server, app_id: &str, user_id: &str, secret: &str) -> Result<Vec<String>, String> {
    let stream = tokio::net::TcpStream::connect(server.addr).await.map_err(|e| e.to_string())?;
    let mut req = format!("ws://{}/widget/ws", server.host()).into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert("Origin", server.origin().parse().map_err(|_| "origin")?);
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.map_err(|e| format!("widget: {e}"))?;
    let jwt = Server::widget_jwt(secret, user_id);
    ws.send(Message::Text(
        json!({"t": "hello", "app": app_id, "device": "fixture", "userId": user_id, "jwt": jwt}).to_string().into(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    ws.send(Message::Text(r#"{"t":"ping"}"#.into())).await.map_err(|e| e.to_string())?;
    let mut cards = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap_or_default();
            match v["t"].as_str() {
                Some("card") => cards.extend(v["id"].as_str().map(String::from)),
                Some("welcome") => {
                    for c in v["cards"].as_array().into_iter().flatten() {
                        cards.extend(c["id"].as_str().map(String::from));
                    }
                }
                Some("pong") => break,
                Some("error") => return Err(format!("widget hello refused: {t}")),
                _ => {}
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(cards)
}

/// B's records as B's key and the owner see them (compared before and after).
async fn snapshot(server: &Server, b: &AppData, owner: &str) -> Result<Value, String> {
    let key = b.key();
    let mut snap = Map::new();
    for (uid, mid) in b.user_ids.iter().zip(&b.murmur_ids) {
        for suffix in ["", "/messages", "/conversations"] {
            let path = format!("/v1.1/appusers/{uid}{suffix}");
            let r = server.api("GET", &path, key, None).await.map_err(|e| e.to_string())?;
            snap.insert(path.clone(), json!({"status": r.status, "body": r.json()}));
        }
        let r = server
            .call("users/profile", &[("input[app_id]", &b.app_id), ("input[user]", mid)], Some(owner))
            .await
            .map_err(|e| e.to_string())?;
        snap.insert(format!("users/profile {mid}"), json!({"status": r.status, "body": r.json()}));
    }
    let app = [("input[app_id]", b.app_id.as_str())];
    for endpoint in [
        "whispers/list",
        "users/catalog",
        "apps/settings",
        "apps/office-hours",
        "apps/smtp",
        "apps/push",
        "why/choices",
    ] {
        let r = server.call(endpoint, &app, Some(owner)).await.map_err(|e| e.to_string())?;
        snap.insert(endpoint.into(), json!({"status": r.status, "body": r.json()}));
    }
    for (endpoint, fields) in [
        (
            "users/list",
            vec![
                ("input[search]", ""),
                ("input[conditions]", "[]"),
                ("input[sort]", "signedUpAt"),
                ("input[descending]", "false"),
                ("input[after]", ""),
            ],
        ),
        ("messages/list", vec![("input[tab]", "drafts"), ("input[search]", "")]),
        (
            "inbox/list",
            vec![("input[state]", "open"), ("input[filter]", "all"), ("input[search]", ""), ("input[after]", "")],
        ),
    ] {
        let mut f = vec![("input[app_id]", b.app_id.as_str())];
        f.extend(fields);
        let r = server.call(endpoint, &f, Some(owner)).await.map_err(|e| e.to_string())?;
        snap.insert(endpoint.into(), json!({"status": r.status, "body": r.json()}));
    }
    for id in &b.manual_ids {
        let r = server
            .call(
                "messages/detail",
                &[("input[app_id]", &b.app_id), ("input[message_id]", id), ("input[users]", "")],
                Some(owner),
            )
            .await
            .map_err(|e| e.to_string())?;
        snap.insert(format!("messages/detail {id}"), json!({"status": r.status, "body": r.json()}));
    }
    for id in &b.conversation_ids {
        let r = server
            .call("inbox/conversation", &[("input[app_id]", &b.app_id), ("input[conversation_id]", id)], Some(owner))
            .await
            .map_err(|e| e.to_string())?;
        snap.insert(format!("inbox/conversation {id}"), json!({"status": r.status, "body": r.json()}));
    }
    Ok(Value::Object(snap))
}

/// Paths where two JSON values differ (at most `max`).
fn differences(a: &Value, b: &Value, path: &str, out: &mut Vec<String>, max: usize) {
    if out.len() >= max || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                differences(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{path}/{k}"),
                    out,
                    max,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(p, q, &format!("{path}/{i}"), out, max);
            }
        }
        _ => out.push(format!("{path}: {} → {}", short(a), short(b))),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 160 {
        format!("{}…", &s[..s.char_indices().nth(160).map_or(s.len(), |(i, _)| i)])
    } else {
        s
    }
}

async fn build_world(server: &Server) -> Result<World, String> {
    let owner = server.setup_owner("Olive Owner", "owner@example.com", "owner password 1").await?;
    let me = call_json(server, "session", &[], &owner).await?;
    let owner_id = me["me"]["id"].as_str().ok_or("no owner id in session")?.to_string();
    let (a_id, a_secret) = server.create_app_with_secret(&owner, "App A").await?;
    let (b_id, b_secret) = server.create_app_with_secret(&owner, "App B").await?;
    let r = server
        .call(
            "teammates/add",
            &[
                ("input[app_id]", &a_id),
                ("input[name]", "Alice A"),
                ("input[email]", "alice@example.com"),
                ("input[password]", "alice password 1"),
            ],
            Some(&owner),
        )
        .await
        .map_err(|e| e.to_string())?;
    let alice_id = r
        .json()
        .and_then(|v| v["id"].as_str().map(String::from))
        .ok_or_else(|| format!("teammates/add: {}", r.text()))?;
    let alice = server.login("alice@example.com", "alice password 1").await?;
    let mut a = AppData {
        app_id: a_id.clone(),
        key: Some(server.create_key(&owner, &a_id, "fuzz A").await?),
        identity_secret: a_secret,
        marker: format!("amark{}", crate::server::random_hex(5)),
        ..Default::default()
    };
    let mut b = AppData {
        app_id: b_id.clone(),
        key: Some(server.create_key(&owner, &b_id, "fuzz B").await?),
        identity_secret: b_secret,
        marker: format!("bmark{}", crate::server::random_hex(5)),
        ..Default::default()
    };
    fill_app(server, &mut a, &alice, &alice_id).await?;
    fill_app(server, &mut b, &owner, &owner_id).await?;
    let r = server.request("GET", "/v1.1/openapi.json", &[], b"").await.map_err(|e| e.to_string())?;
    let doc = r.json().ok_or("openapi.json is not JSON")?;
    let mut ops = vec![];
    for (path, item) in doc["paths"].as_object().ok_or("openapi.json has no paths")? {
        for (method, op) in item.as_object().into_iter().flatten() {
            let body = op.pointer("/requestBody/content/application~1json/schema").cloned();
            ops.push(RestOp { method: method.to_uppercase(), path: path.clone(), body });
        }
    }
    let mut b_markers = vec![b.marker.clone(), b.key().secret.clone(), b.identity_secret.clone()];
    b_markers.retain(|s| !s.is_empty());
    let mut b_ids = b.internal_ids();
    b_ids.push(b.key().id.clone());
    b_ids.retain(|s| s.len() >= 8);
    Ok(World {
        host: server.host(),
        origin: server.origin(),
        addr: server.addr,
        schemas: doc["components"]["schemas"].clone(),
        a,
        b,
        alice,
        alice_id,
        owner,
        owner_id,
        ops,
        b_markers,
        b_ids,
    })
}

// ---------------------------------------------------------------- report

struct Report {
    backend: Backend,
    seed: u64,
    requests_target: u64,
    seconds: f64,
    stats: Stats,
    ops: usize,
    died: Option<String>,
    panics: (usize, Vec<String>),
    rss_start: u64,
    rss_peak: u64,
    rss_end: u64,
    hwm: u64,
    health: Vec<Duration>,
    health_failures: u64,
    b_changes: Vec<String>,
    fixture: String,
}

impl Report {
    fn total(&self) -> u64 {
        self.stats.requests.values().sum()
    }
    fn health_max(&self) -> f64 {
        self.health.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
    fn checks(&self) -> Vec<(String, bool)> {
        let growth = self.rss_end as i64 - self.rss_start as i64;
        vec![
            (format!("requests ≥ {}: {}", self.requests_target, self.total()), self.total() >= self.requests_target),
            (format!("process alive, panics in log: {}", self.panics.0), self.died.is_none() && self.panics.0 == 0),
            (
                format!(
                    "5xx responses: {}; widget `internal` errors: {}",
                    self.stats.fivexx, self.stats.widget_internal
                ),
                self.stats.fivexx == 0 && self.stats.widget_internal == 0,
            ),
            (
                format!(
                    "cross-app accepted: {} (2xx naming app B: {}, answers with B's data: {}, B's records changed: {})",
                    self.stats.cross_accepted + self.stats.leaks + self.b_changes.len() as u64,
                    self.stats.cross_accepted,
                    self.stats.leaks,
                    self.b_changes.len()
                ),
                self.stats.cross_accepted == 0 && self.stats.leaks == 0 && self.b_changes.is_empty(),
            ),
            (
                format!("cross-site server-function calls accepted: {}", self.stats.site_accepted),
                self.stats.site_accepted == 0,
            ),
            (format!("well-formed requests without an answer: {}", self.stats.no_answer), self.stats.no_answer == 0),
            (
                format!("memory growth (end − after warm-up): {:.1} MiB < 50 MiB", growth as f64 / 1024.0),
                growth < 50 * 1024,
            ),
            (
                format!(
                    "/healthz max {:.1} ms < 50 ms, every probe 200 ({} not)",
                    self.health_max(),
                    self.health_failures
                ),
                self.health_max() < 50.0 && self.health_failures == 0,
            ),
        ]
    }
    fn passed(&self) -> bool {
        self.checks().iter().all(|(_, ok)| *ok)
    }
    fn print(&self) {
        let s = &self.stats;
        println!("\n## Fuzz — {}\n", self.backend.name());
        println!(
            "Seed {} · {} REST operations from /v1.1/openapi.json · {} server functions · {:.0} s · {:.0} requests/s\n",
            self.seed,
            self.ops,
            SERVER_FNS.len(),
            self.seconds,
            self.total() as f64 / self.seconds.max(0.001)
        );
        println!("{}\n", self.fixture);
        println!("| check | result |\n| --- | --- |");
        for (what, ok) in self.checks() {
            println!("| {what} | {} |", if ok { "PASS" } else { "**FAIL**" });
        }
        println!("\n| category | requests |\n| --- | ---: |");
        for (c, n) in &s.requests {
            println!("| {c} | {n} |");
        }
        println!("| **total** | **{}** |", self.total());
        println!("\n| status / outcome | count |\n| --- | ---: |");
        for (k, n) in &s.statuses {
            println!("| {k} | {n} |");
        }
        println!(
            "\nCross-app: {} requests named B's app or records; {} were refused (non-2xx), {} answered 2xx without any of B's data (e.g. A's own user created with B's userId, an empty search).",
            s.cross_refused + s.cross_2xx_benign + s.cross_accepted, s.cross_refused, s.cross_2xx_benign
        );
        let mib = |k: u64| k as f64 / 1024.0;
        println!(
            "\n| memory | MiB |\n| --- | ---: |\n| RSS after warm-up | {:.1} |\n| RSS peak (sampled) | {:.1} |\n| RSS end | {:.1} |\n| VmHWM | {:.1} |\n| growth (end − warm-up) | {:.1} |",
            mib(self.rss_start), mib(self.rss_peak), mib(self.rss_end), mib(self.hwm), mib(self.rss_end) - mib(self.rss_start)
        );
        let mut h = self.health.clone();
        h.sort();
        println!(
            "\n| /healthz (every 100 ms, own connection) | value |\n| --- | ---: |\n| probes | {} |\n| p50 | {:.2} ms |\n| p99 | {:.2} ms |\n| max | {:.2} ms |\n| not 200 / no answer | {} |",
            h.len(), percentile_ms(&h, 50.0), percentile_ms(&h, 99.0), self.health_max(), self.health_failures
        );
        let lists: [(&str, &Vec<String>); 4] = [
            ("5xx and internal errors (first 20)", &s.fivexx_samples),
            ("cross-app / cross-site acceptances (first 20)", &s.cross_samples),
            ("well-formed requests without an answer (first 20)", &s.no_answer_samples),
            ("timeouts (first 20)", &s.timeout_samples),
        ];
        for (title, list) in lists {
            if !list.is_empty() {
                println!("\n{title}:\n");
                for l in list {
                    println!("- `{}`", l.replace('`', "'"));
                }
            }
        }
        if !self.b_changes.is_empty() {
            println!("\nB's records changed:\n");
            for c in &self.b_changes {
                println!("- `{c}`");
            }
        }
        if let Some(d) = &self.died {
            println!("\nThe server died: {d}");
        }
        if !self.panics.1.is_empty() {
            println!("\nPanics in murmur's log:\n");
            for p in &self.panics.1 {
                println!("- `{p}`");
            }
        }
    }
}

async fn run_backend(args: &Args, backend: Backend, seed: u64) -> Result<Report, String> {
    let total = args.number("requests", 200_000)?;
    let concurrency = args.number("concurrency", 48)?.max(1);
    let max_seconds = args.number("max-seconds", 1_800)?;
    let opts = Options::new(args.murmur(), backend)
        .env("WIDGET_CONNECT_RATE_LIMIT", "off")
        .env("NEW_ANONYMOUS_USER_RATE_LIMIT", "off");
    eprintln!("[{}] starting {} …", backend.name(), opts.binary.display());
    let mut server = Server::start(opts).await?;
    eprintln!("[{}] murmur at {} (log {})", backend.name(), server.addr, server.log_path().display());
    let world = build_world(&server).await?;
    let fixture = format!(
        "Fixtures: apps A and B, each with {} users, {} conversations, {} whisper, {} manual message, {} widget card(s), an API key; Alice is a teammate of A only.",
        world.b.user_ids.len(),
        world.b.conversation_ids.len(),
        world.b.whisper_ids.len(),
        world.b.manual_ids.len(),
        world.b.card_ids.len()
    );
    // Reading marks conversations read by the team: the second snapshot is the baseline.
    snapshot(&server, &world.b, &world.owner).await?;
    let before = snapshot(&server, &world.b, &world.owner).await?;
    let warmup = (total / 40).clamp(1, 5_000);
    let shared = Arc::new(Shared {
        world,
        stats: Mutex::new(Stats::default()),
        done: AtomicU64::new(0),
        next: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(max_seconds);
    let mut tasks = vec![];
    for _ in 0..concurrency {
        tasks.push(tokio::spawn(worker(shared.clone(), seed, total, deadline)));
    }
    // The probe: /healthz every 100 ms on its own connection, memory, liveness.
    let mut probe = HealthProbe::new(server.addr);
    let mut health = vec![];
    let mut health_failures = 0u64;
    let (mut rss_start, mut rss_peak) = (0u64, 0u64);
    let mut died = None;
    let mut last_print = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(status) = server.exited() {
            died = Some(format!("murmur exited: {status}; log tail:\n{}", server.log_tail(30)));
            shared.stop.store(true, Ordering::Relaxed);
            break;
        }
        let (status, took) = probe.probe(Duration::from_secs(5)).await;
        health.push(took);
        if status != Some(200) {
            health_failures += 1;
        }
        let done = shared.done.load(Ordering::Relaxed);
        if let Some(m) = server.memory() {
            if rss_start == 0 && done >= warmup {
                rss_start = m.rss_kib;
            }
            if rss_start > 0 {
                rss_peak = rss_peak.max(m.rss_kib);
            }
        }
        if last_print.elapsed() > Duration::from_secs(15) {
            last_print = Instant::now();
            eprintln!(
                "[{}] {done}/{total} requests, {:.0} s, RSS {} KiB",
                backend.name(),
                started.elapsed().as_secs_f64(),
                server.memory().map_or(0, |m| m.rss_kib)
            );
        }
        if tasks.iter().all(|t| t.is_finished()) {
            break;
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    // Let the last writes land (the group commit, deliveries): wait until
    // /healthz answers again, then take the end figures.
    let _ = probe.probe(Duration::from_secs(5)).await;
    let mem = server.memory().unwrap_or_default();
    if rss_start == 0 {
        rss_start = mem.rss_kib;
    }
    let shared = Arc::try_unwrap(shared).map_err(|_| "workers still hold the state")?;
    let world = shared.world;
    let mut b_changes = vec![];
    if died.is_none() {
        let after = snapshot(&server, &world.b, &world.owner).await?;
        differences(&before, &after, "", &mut b_changes, 20);
    }
    let panics = server.panics(10);
    Ok(Report {
        backend,
        seed,
        requests_target: total,
        seconds,
        stats: shared.stats.into_inner().unwrap_or_else(|e| e.into_inner()),
        ops: world.ops.len(),
        died,
        panics,
        rss_start,
        rss_peak: rss_peak.max(mem.rss_kib),
        rss_end: mem.rss_kib,
        hwm: mem.hwm_kib,
        health,
        health_failures,
        b_changes,
        fixture,
    })
}

/// The `fuzz` part: each backend in turn; true if every check passed.
pub async fn run(args: &Args) -> Result<bool, String> {
    check_server_fns(&crate::server::repo_root())?;
    let seed = match args.get("seed") {
        Some(s) => s.parse().map_err(|_| format!("--seed must be a number, not {s:?}"))?,
        None => unix_now() as u64,
    };
    println!("# murmur reliability: bad inputs (fuzz)\n");
    println!(
        "`reliability fuzz --requests {} --seed {seed}` against {}",
        args.number("requests", 200_000)?,
        args.murmur().display()
    );
    let mut ok = true;
    for backend in args.backends()? {
        let report = run_backend(args, backend, seed).await?;
        report.print();
        ok &= report.passed();
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_fns_match_the_source() {
        check_server_fns(&crate::server::repo_root()).unwrap();
    }

    #[test]
    fn cases_are_reproducible_from_the_seed() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!((0..10).map(|_| a.next()).collect::<Vec<_>>(), (0..10).map(|_| b.next()).collect::<Vec<_>>());
    }

    #[test]
    fn b_markers_in_answers_are_leaks() {
        let w = World {
            host: String::new(),
            origin: String::new(),
            addr: "127.0.0.1:1".parse().unwrap(),
            a: AppData::default(),
            b: AppData::default(),
            alice: String::new(),
            alice_id: String::new(),
            owner: String::new(),
            owner_id: String::new(),
            ops: vec![],
            schemas: Value::Null,
            b_markers: vec!["bmark123".into()],
            b_ids: vec!["0123456789abcdef".into()],
        };
        assert!(w.leak(b"GET /x", b"{\"name\":\"bmark123 Given\"}").is_some());
        assert!(w.leak(b"GET /0123456789abcdef", b"{\"error\":\"0123456789abcdef\"}").is_none());
        assert!(w.leak(b"GET /x", b"{\"id\":\"0123456789abcdef\"}").is_some());
    }
}
