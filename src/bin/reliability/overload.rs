//! Part `overload`: more events than the server can store, for a while.
//!
//! murmur is started (release binary, each backend, API rate limit off so
//! per-key limits are not what sheds), with an app, a key and 100 users.
//! Then, all with single-event requests (`POST /v1.1/appusers/{userId}/events`):
//!
//! 1. **Capacity**: `--concurrency` (default 64) closed-loop keep-alive
//!    clients for `--capacity-seconds` (default 10): events stored per second.
//! 2. **Normal latency**: an open-loop load of 10 % of capacity for 10 s
//!    (as long as the recovery phase).
//! 3. **Overload**: `--factor` (default 5) × capacity, open loop, for
//!    `--seconds` (default 30): request *i* is due at *i / rate* whatever
//!    happened to the others. The client stands for several backends
//!    sending events: `--connections` (default 4,000) drivers, each with a
//!    keep-alive connection of its own, from `SOURCES` loopback addresses
//!    (127.0.0.2, .3, …; 500 each, under murmur's per-address bound of
//!    1,000). A driver takes the next request in due order, waits until it
//!    is due, sends it and waits for the answer; a due request no driver is
//!    free for waits its turn. Latency runs from the request's due time, so
//!    that wait counts (no coordinated omission), and one not answered 10 s
//!    after it was due is a timeout. A request no driver reached before the
//!    overload's end is counted as not sent rather than sent late (the
//!    client fell behind; sending the backlog afterwards would prolong the
//!    overload past its 30 s). One task per driver, not per request: a task
//!    per request (1.5 million of them) left the client's own runtime
//!    minutes behind on these two cores. (A flood of connections from one
//!    address is refused before anything is read, by
//!    `MAX_CONNECTIONS_PER_ADDRESS`; `tests/limits.rs` tests that.)
//! 4. **Recovery**: right after the overload's end, 10 % of capacity again
//!    for 10 s on fresh connections (`--concurrency` drivers), while what
//!    the overload left in flight drains.
//!
//! With `--batch N` every request carries N events on the batch endpoint
//! (`POST /v1.1/events`, users taken in turn) instead: capacity and the
//! offered load are still counted in events, so the client sends N times
//! fewer requests for the same overload, which separates what the server
//! does under overload from how many requests a client sharing its two
//! cores can write (RELIABILITY.md, "Overload").
//!
//! Reported: admitted (2xx) and shed (429/503) counts, errors and timeouts,
//! time to the first shed answer, p50/p99/max latency of admitted requests,
//! p99 of shed answers, and how long after the overload until the server
//! answers as it did before it: from then to the end of the recovery phase
//! every request admitted and each second's p99 at most 2 × the p99 of the
//! normal phase's slowest second + 5 ms (`recovered_after`).
//!
//! Checks: the server sheds; a shed answer carries `Retry-After` and the
//! REST API's JSON error body; the first shed comes within 1 s; admitted
//! p99 ≤ 1 s; no request times out (10 s); recovery within 1 s.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use crate::{
    server::{encode_request, percentile_ms, Backend, Conn, Options, Server},
    Args,
};

const USERS: usize = 100;
/// Client addresses the load's connections are spread over (round robin).
const SOURCES: u8 = 8;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const RECOVERY: Duration = Duration::from_secs(10);
/// As long as the recovery phase, so that both see the server's periodic
/// work (the scheduler's tick and housekeeping every 5 s) alike.
const NORMAL: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Status(u16),
    /// A 429/503 without `Retry-After` or the JSON error body.
    BadShed(u16),
    Error,
    TimedOut,
    /// 10 s after it was due, still waiting for one of the load's connections.
    QueuedOut,
    /// Due during the overload, but no connection was free for it before
    /// the overload's end: the client fell behind, and does not send it late.
    NotSent,
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    /// When it was due, from the phase's start.
    due: Duration,
    /// From due to answered (or failed).
    latency: Duration,
    /// From the request's first byte written to its answer (none if not sent).
    from_send: Option<Duration>,
    outcome: Outcome,
}

impl Sample {
    fn admitted(&self) -> bool {
        matches!(self.outcome, Outcome::Status(200..=299))
    }
    fn shed(&self) -> bool {
        matches!(self.outcome, Outcome::Status(429 | 503) | Outcome::BadShed(_))
    }
}

/// Requests ready to send, one per user, and what the load's connections
/// saw.
struct Load {
    addr: std::net::SocketAddr,
    requests: Vec<Vec<u8>>,
    /// Events per request (1: the single-event endpoint).
    batch: usize,
    /// Connections open now, and at most.
    open: AtomicUsize,
    peak_open: AtomicUsize,
    /// Connections opened so far: the next one's source address.
    opened: AtomicUsize,
    /// Shed answers by status and error code.
    shed_codes: Mutex<std::collections::BTreeMap<(u16, String), usize>>,
}

impl Load {
    /// Requests of `batch` events each: one event per request on
    /// `POST /v1.1/appusers/{userId}/events`, or more on the batch endpoint
    /// `POST /v1.1/events` (users taken in turn).
    fn new(server: &Server, auth: &str, batch: usize) -> Load {
        let headers = [("Authorization", auth), ("Content-Type", "application/json")];
        let requests = (0..USERS)
            .map(|u| {
                if batch == 1 {
                    let body = br#"{"name":"overload","properties":{"source":"reliability"}}"#;
                    let path = format!("/v1.1/appusers/u{u}/events");
                    return encode_request(&server.host(), "POST", &path, &headers, body);
                }
                let events: Vec<_> = (0..batch)
                    .map(|e| {
                        serde_json::json!({
                            "userId": format!("u{}", (u + e) % USERS),
                            "name": "overload",
                            "properties": {"source": "reliability"},
                        })
                    })
                    .collect();
                let body = serde_json::json!({ "events": events }).to_string();
                encode_request(&server.host(), "POST", "/v1.1/events", &headers, body.as_bytes())
            })
            .collect();
        Load {
            addr: server.addr,
            requests,
            batch,
            open: AtomicUsize::new(0),
            peak_open: AtomicUsize::new(0),
            opened: AtomicUsize::new(0),
            shed_codes: Mutex::new(Default::default()),
        }
    }

    /// Sends request `i` (due at `due`) on `conn`, opening it first when
    /// there is none (from the next source address); keeps it for the next
    /// request when the server left it open.
    async fn one(&self, conn: &mut Option<Conn>, i: usize, due: Instant, phase: Instant) -> Sample {
        let sample = |outcome| Sample { due: due - phase, latency: due.elapsed(), from_send: None, outcome };
        let deadline = tokio::time::Instant::from_std(due + REQUEST_TIMEOUT);
        let mut c = match conn.take() {
            Some(c) => c,
            None => {
                let open = self.open.fetch_add(1, Ordering::SeqCst) + 1;
                self.peak_open.fetch_max(open, Ordering::SeqCst);
                let n = self.opened.fetch_add(1, Ordering::Relaxed);
                let source = std::net::Ipv4Addr::new(127, 0, 0, 2 + (n % SOURCES as usize) as u8);
                match tokio::time::timeout_at(deadline, Conn::connect_from(self.addr, source.into())).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(_)) => {
                        self.open.fetch_sub(1, Ordering::SeqCst);
                        return sample(Outcome::Error);
                    }
                    Err(_) => {
                        self.open.fetch_sub(1, Ordering::SeqCst);
                        return sample(Outcome::TimedOut);
                    }
                }
            }
        };
        let left = REQUEST_TIMEOUT.saturating_sub(due.elapsed());
        let sent = Instant::now();
        let answer = tokio::time::timeout(left, c.send_raw(&self.requests[i % USERS], false)).await;
        let from_send = sent.elapsed();
        let outcome = match &answer {
            Ok(Ok(r)) if matches!(r.status, 429 | 503) => {
                let body = r.json();
                let code = body.as_ref().and_then(|b| b["error"]["code"].as_str()).unwrap_or("none").to_string();
                *self.shed_codes.lock().expect("not poisoned").entry((r.status, code)).or_default() += 1;
                let shaped = body.as_ref().is_some_and(|b| b["error"]["code"].is_string())
                    && r.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok());
                if shaped {
                    Outcome::Status(r.status)
                } else {
                    Outcome::BadShed(r.status)
                }
            }
            Ok(Ok(r)) => Outcome::Status(r.status),
            Ok(Err(_)) => Outcome::Error,
            Err(_) => Outcome::TimedOut,
        };
        let s = Sample { from_send: Some(from_send), ..sample(outcome) };
        if c.open && answer.is_ok_and(|a| a.is_ok()) {
            *conn = Some(c);
        } else {
            self.open.fetch_sub(1, Ordering::SeqCst);
        }
        s
    }

    /// Open loop: `rate` requests a second for `length`, request *k* due at
    /// *k / rate* (numbered from `first`), sent by `connections` drivers,
    /// each with one keep-alive connection of its own: a driver takes the
    /// next request in due order, waits until it is due, sends it and waits
    /// for the answer. A due request no driver is free for waits its turn,
    /// and its latency counts that wait (from its due time). One a driver
    /// reaches only after the phase's end is not sent (`NotSent`: the client
    /// fell behind; counted, not sent late), nor one 10 s past due
    /// (`QueuedOut`). All samples, once every driver is done.
    async fn open_loop(self: &Arc<Self>, rate: f64, length: Duration, first: usize, connections: usize) -> Vec<Sample> {
        let phase = Instant::now();
        let end = phase + length;
        let total = (rate * length.as_secs_f64()).round() as usize;
        let next = Arc::new(AtomicUsize::new(0));
        let mut drivers = tokio::task::JoinSet::new();
        for _ in 0..connections.clamp(1, total.max(1)) {
            let (load, next) = (self.clone(), next.clone());
            drivers.spawn(async move {
                let (mut conn, mut samples) = (None, vec![]);
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= total {
                        break;
                    }
                    let due = phase + Duration::from_secs_f64(k as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    let now = Instant::now();
                    let skipped = |outcome| Sample { due: due - phase, latency: now - due, from_send: None, outcome };
                    if now >= end {
                        samples.push(skipped(Outcome::NotSent));
                    } else if now >= due + REQUEST_TIMEOUT {
                        samples.push(skipped(Outcome::QueuedOut));
                    } else {
                        samples.push(load.one(&mut conn, first + k, due, phase).await);
                    }
                }
                if conn.is_some() {
                    load.open.fetch_sub(1, Ordering::SeqCst);
                }
                samples
            });
        }
        let mut samples = Vec::with_capacity(total);
        while let Some(done) = drivers.join_next().await {
            samples.extend(done.expect("a driver does not panic"));
        }
        samples
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn latencies(samples: &[Sample], keep: impl Fn(&Sample) -> bool) -> Vec<Duration> {
    let mut v: Vec<Duration> = samples.iter().filter(|s| keep(s)).map(|s| s.latency).collect();
    v.sort();
    v
}

struct Report {
    backend: Backend,
    /// Events per request.
    batch: usize,
    /// Events stored per second, closed loop.
    capacity: f64,
    normal_p50: f64,
    normal_p99: f64,
    normal_max: f64,
    normal_worst_p99: f64,
    offered: f64,
    sent_rate: f64,
    requests: usize,
    admitted: usize,
    shed_429: usize,
    shed_503: usize,
    bad_shed: usize,
    errors: usize,
    timeouts: usize,
    queued_out: usize,
    not_sent: usize,
    connections: usize,
    shed_codes: String,
    other: usize,
    first_shed: Option<Duration>,
    admitted_p50: f64,
    admitted_p99: f64,
    admitted_max: f64,
    admitted_sent_p50: f64,
    admitted_sent_p99: f64,
    shed_p99: f64,
    recovery: Option<Duration>,
    recovery_threshold: f64,
    /// The recovery phase second by second: whether a request was
    /// refused, the p99 and the slowest answer, in ms.
    recovery_seconds: Vec<(bool, f64, f64)>,
    /// The overload second by second: admitted events, and the slowest
    /// admitted answer in ms.
    overload_seconds: Vec<(usize, f64)>,
    peak_connections: usize,
    hwm_mib: f64,
}

impl Report {
    fn checks(&self) -> Vec<(String, bool)> {
        vec![
            ("sheds (429/503)".into(), self.shed_429 + self.shed_503 > 0),
            ("every shed answer has Retry-After and the JSON error body".into(), self.bad_shed == 0),
            ("first shed within 1 s".into(), self.first_shed.is_some_and(|d| d <= Duration::from_secs(1))),
            ("admitted p99 ≤ 1 s".into(), self.admitted_p99 <= 1000.0),
            ("no timeouts (10 s) or connection errors".into(), self.timeouts + self.queued_out + self.errors == 0),
            ("recovers within 1 s".into(), self.recovery.is_some_and(|d| d <= Duration::from_secs(1))),
        ]
    }
}

async fn one(args: &Args, backend: Backend) -> Result<Report, String> {
    let factor = args.number("factor", 5)? as f64;
    let seconds = args.number("seconds", 30)?;
    let capacity_seconds = args.number("capacity-seconds", 10)?;
    let concurrency = args.number("concurrency", 64)? as usize;
    let connections = args.number("connections", 4000)?.max(concurrency as u64) as usize;
    let batch = batch_size(args)?;

    let server = Server::start(Options::new(args.murmur(), backend)).await?;
    let owner = server.setup_owner("Olive Owner", "owner@example.com", "owner password 1").await?;
    let app = server.create_app(&owner, "Overload").await?;
    let key = server.create_key(&owner, &app, "load").await?;
    for u in 0..USERS {
        let r = server
            .api("POST", "/v1.1/appusers", &key, Some(&serde_json::json!({"userId": format!("u{u}")})))
            .await
            .map_err(|e| e.to_string())?;
        if r.status != 201 {
            return Err(format!("creating a user answered {}: {}", r.status, r.text()));
        }
    }
    let load = Arc::new(Load::new(&server, &key.basic(), batch));

    // 1. Capacity, closed loop.
    let stored = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(capacity_seconds);
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..concurrency {
        let (load, stored) = (load.clone(), stored.clone());
        clients.spawn(async move {
            let (mut i, mut conn) = (c, None);
            while Instant::now() < until {
                let s = load.one(&mut conn, i, Instant::now(), started).await;
                if s.admitted() {
                    stored.fetch_add(load.batch, Ordering::Relaxed);
                }
                i += concurrency;
            }
        });
    }
    while clients.join_next().await.is_some() {}
    let capacity = stored.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    if capacity < 1.0 {
        return Err(format!("{}: no event was stored while measuring capacity", backend.name()));
    }

    // Rates below are in events per second; the load sends requests.
    let per_request = batch as f64;

    // 2. Normal latency.
    let normal = load.open_loop(capacity * 0.1 / per_request, NORMAL, 0, concurrency).await;
    let normal_ok = latencies(&normal, Sample::admitted);
    let (normal_p50, normal_p99) = (percentile_ms(&normal_ok, 50.0), percentile_ms(&normal_ok, 99.0));
    let normal_max = normal_ok.last().map_or(0.0, |d| ms(*d));
    // The normal phase's slowest second, by its p99.
    let normal_worst_p99 = by_second(&normal, NORMAL.as_secs())
        .iter()
        .map(|second| p99_ms(second.iter().filter(|s| s.admitted())))
        .fold(0.0, f64::max);

    // 3. Overload, then 4. recovery as soon as the last overload request is due.
    let offered = capacity * factor;
    let overload_phase = Instant::now();
    let (overload, recovery) = {
        let over = load.open_loop(offered / per_request, Duration::from_secs(seconds), 1_000_000, connections);
        let after = async {
            tokio::time::sleep_until((overload_phase + Duration::from_secs(seconds)).into()).await;
            load.open_loop(capacity * 0.1 / per_request, RECOVERY, 2_000_000, concurrency).await
        };
        tokio::join!(over, after)
    };
    let hwm_mib = server.memory().map_or(0.0, |m| m.hwm_kib as f64 / 1024.0);

    let count = |f: &dyn Fn(&Sample) -> bool| overload.iter().filter(|s| f(s)).count();
    let first_shed = overload.iter().filter(|s| s.shed()).map(|s| s.due + s.latency).min();
    let admitted = latencies(&overload, Sample::admitted);
    let shed = latencies(&overload, Sample::shed);
    let mut admitted_from_send: Vec<Duration> =
        overload.iter().filter(|s| s.admitted()).filter_map(|s| s.from_send).collect();
    admitted_from_send.sort();
    let unsent = |s: &Sample| matches!(s.outcome, Outcome::QueuedOut | Outcome::NotSent);
    let last_send = overload.iter().filter(|s| !unsent(s)).map(|s| s.due).max();
    let sent = overload.iter().filter(|s| !unsent(s)).count();

    // Recovery: compared with the normal phase as p99 against p99, second
    // by second (see `recovered_after`).
    let threshold = Duration::from_secs_f64((2.0 * normal_worst_p99 + 5.0) / 1000.0);
    let mut rec = recovery.clone();
    rec.sort_by_key(|s| s.due);
    let recovered_from = recovered_after(&rec, threshold, RECOVERY.as_secs());

    Ok(Report {
        backend,
        batch,
        capacity,
        normal_p50,
        normal_p99,
        normal_max,
        normal_worst_p99,
        offered: offered / per_request,
        sent_rate: sent as f64 / last_send.map_or(1.0, |d| d.as_secs_f64().max(1.0)),
        requests: overload.len(),
        admitted: admitted.len(),
        shed_429: count(&|s| s.outcome == Outcome::Status(429)),
        shed_503: count(&|s| s.outcome == Outcome::Status(503)),
        bad_shed: count(&|s| matches!(s.outcome, Outcome::BadShed(_))),
        errors: count(&|s| s.outcome == Outcome::Error),
        timeouts: count(&|s| s.outcome == Outcome::TimedOut),
        queued_out: count(&|s| s.outcome == Outcome::QueuedOut),
        not_sent: count(&|s| s.outcome == Outcome::NotSent),
        connections,
        shed_codes: {
            let codes = load.shed_codes.lock().expect("not poisoned");
            codes.iter().map(|((status, code), n)| format!("{status} {code}: {n}")).collect::<Vec<_>>().join(", ")
        },
        other: count(&|s| matches!(s.outcome, Outcome::Status(c) if !(200..300).contains(&c) && c != 429 && c != 503)),
        first_shed,
        admitted_p50: percentile_ms(&admitted, 50.0),
        admitted_p99: percentile_ms(&admitted, 99.0),
        admitted_max: admitted.last().map_or(0.0, |d| ms(*d)),
        admitted_sent_p50: percentile_ms(&admitted_from_send, 50.0),
        admitted_sent_p99: percentile_ms(&admitted_from_send, 99.0),
        shed_p99: percentile_ms(&shed, 99.0),
        recovery: recovered_from,
        recovery_threshold: ms(threshold),
        recovery_seconds: by_second(&rec, RECOVERY.as_secs())
            .iter()
            .map(|second| {
                let worst = second.iter().map(|s| ms(s.latency)).fold(0.0, f64::max);
                (second.iter().any(|s| !s.admitted()), p99_ms(second.iter()), worst)
            })
            .collect(),
        overload_seconds: by_second(&overload, seconds)
            .iter()
            .map(|second| {
                let admitted = second.iter().filter(|s| s.admitted());
                (admitted.clone().count() * batch, admitted.map(|s| ms(s.latency)).fold(0.0, f64::max))
            })
            .collect(),
        peak_connections: load.peak_open.load(Ordering::SeqCst),
        hwm_mib,
    })
}

/// How long after the overload's end the server answered as it did before
/// it (`samples` sorted by due time): from the last second in which a
/// request was refused or the p99 was over `bound`, the due time of the
/// request after that second's last refused or over-bound one; zero if no
/// second was; `None` if the last second was. Seconds are compared as p99
/// against `bound` (from the p99 of the normal phase's slowest second), not
/// by their slowest answer: over thousands of answers the slowest one is
/// well past the p99 even with no load at all (the normal phase's own
/// slowest answer is reported beside it).
fn recovered_after(samples: &[Sample], bound: Duration, seconds: u64) -> Option<Duration> {
    let good = |s: &Sample| s.admitted() && s.latency <= bound;
    let windows = by_second(samples, seconds);
    let bad = |w: &Vec<&Sample>| w.iter().any(|s| !s.admitted()) || p99_ms(w.iter()) > ms(bound);
    let Some(last) = windows.iter().rposition(bad) else { return Some(Duration::ZERO) };
    if last + 1 == windows.len() {
        return None;
    }
    let w = &windows[last];
    let k = w.iter().rposition(|s| !good(s)).expect("a bad second has a bad request");
    Some(w.get(k + 1).map_or(Duration::from_secs(last as u64 + 1), |s| s.due))
}

/// The p99 latency of some samples, in ms (0 if none).
fn p99_ms<'a>(samples: impl Iterator<Item = &'a &'a Sample>) -> f64 {
    let mut l: Vec<Duration> = samples.map(|s| s.latency).collect();
    l.sort();
    percentile_ms(&l, 99.0)
}

/// The samples of a phase by the second they were due in (the first
/// `seconds` seconds), in one pass.
fn by_second(samples: &[Sample], seconds: u64) -> Vec<Vec<&Sample>> {
    let mut out = vec![Vec::new(); seconds as usize];
    for s in samples {
        if let Some(second) = out.get_mut(s.due.as_secs() as usize) {
            second.push(s);
        }
    }
    out
}

/// `--batch N`: events per request (default 1, the single-event endpoint;
/// at most the batch endpoint's limit).
fn batch_size(args: &Args) -> Result<usize, String> {
    match args.number("batch", 1)? {
        n @ 1..=1000 => Ok(n as usize),
        n => Err(format!("--batch must be 1 to 1000 events, not {n}")),
    }
}

pub async fn run(args: &Args) -> Result<bool, String> {
    let mut reports = vec![];
    for backend in args.backends()? {
        reports.push(one(args, backend).await?);
    }
    let factor = args.number("factor", 5)?;
    let seconds = args.number("seconds", 30)?;
    let shape = match batch_size(args)? {
        1 => "single events".to_string(),
        n => format!("batches of {n} events on `POST /v1.1/events`"),
    };
    println!("## overload: {factor}× the measured ingest capacity for {seconds} s ({shape}, open loop)\n");
    println!("| | {} |", reports.iter().map(|r| r.backend.name()).collect::<Vec<_>>().join(" | "));
    println!("| --- |{}", " ---: |".repeat(reports.len()));
    let row = |label: &str, f: &dyn Fn(&Report) -> String| {
        println!("| {label} | {} |", reports.iter().map(f).collect::<Vec<_>>().join(" | "));
    };
    row("capacity (closed loop)", &|r| format!("{:.0} events/s", r.capacity));
    row("normal latency (10 % of capacity, 10 s) p50 / p99 / max; p99 of its slowest second", &|r| {
        format!("{:.1} / {:.1} / {:.1} ms; {:.1} ms", r.normal_p50, r.normal_p99, r.normal_max, r.normal_worst_p99)
    });
    row("offered (target / sent)", &|r| {
        let events = |req: f64| req * r.batch as f64;
        format!(
            "{:.0} / {:.0} req/s ({:.0} / {:.0} events/s)",
            r.offered,
            r.sent_rate,
            events(r.offered),
            events(r.sent_rate)
        )
    });
    row("requests due", &|r| r.requests.to_string());
    row("admitted (2xx) requests (events)", &|r| format!("{} ({})", r.admitted, r.admitted * r.batch));
    row("shed 503 / 429", &|r| format!("{} / {}", r.shed_503, r.shed_429));
    row("shed answers by code (every phase)", &|r| r.shed_codes.clone());
    row("shed without Retry-After or JSON body", &|r| r.bad_shed.to_string());
    row("other statuses", &|r| r.other.to_string());
    row("connection errors / timeouts (10 s)", &|r| format!("{} / {}", r.errors, r.timeouts));
    row("timed out waiting for a free connection (10 s after due)", &|r| r.queued_out.to_string());
    row("not sent: no connection free before the overload's end", &|r| r.not_sent.to_string());
    row("time to first shed", &|r| r.first_shed.map_or("never".into(), |d| format!("{:.0} ms", ms(d))));
    row("admitted p50 / p99 / max", &|r| {
        format!("{:.0} / {:.0} / {:.0} ms", r.admitted_p50, r.admitted_p99, r.admitted_max)
    });
    row("admitted, from sent to answered: p50 / p99", &|r| {
        format!("{:.0} / {:.0} ms", r.admitted_sent_p50, r.admitted_sent_p99)
    });
    row("shed answers p99", &|r| format!("{:.0} ms", r.shed_p99));
    row(
        "recovered (each second from then: all admitted, p99 within 2 × the normal slowest second's + 5 ms) after",
        &|r| match r.recovery {
            Some(d) => format!("{:.0} ms (bound {:.0} ms)", ms(d), r.recovery_threshold),
            None => format!("not within {} s (bound {:.0} ms)", RECOVERY.as_secs(), r.recovery_threshold),
        },
    );
    row("overload, each second: events admitted / slowest admitted (ms)", &|r| {
        let each = r.overload_seconds.iter().map(|(n, worst)| format!("{n}/{worst:.0}"));
        each.collect::<Vec<_>>().join(" · ")
    });
    row("recovery, each second: p99 / slowest answer (ms)", &|r| {
        let each = r.recovery_seconds.iter().map(|(refused, p99, worst)| match refused {
            true => "refused".to_string(),
            false => format!("{p99:.0}/{worst:.0}"),
        });
        each.collect::<Vec<_>>().join(" · ")
    });
    row("client connections open at most / drivers", &|r| format!("{} / {}", r.peak_connections, r.connections));
    row("murmur peak RSS (VmHWM)", &|r| format!("{:.0} MiB", r.hwm_mib));
    println!("\nLatency counts from each request's due time (open loop), so a late client does not hide waiting.\n");
    let mut ok = true;
    for r in &reports {
        for (check, passed) in r.checks() {
            ok &= passed;
            println!("- {}: {check}: {}", r.backend.name(), if passed { "yes" } else { "**NO**" });
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(due_ms: u64, latency_ms: u64, status: u16) -> Sample {
        Sample {
            due: Duration::from_millis(due_ms),
            latency: Duration::from_millis(latency_ms),
            from_send: None,
            outcome: Outcome::Status(status),
        }
    }

    /// 200 answers a second for `seconds` seconds, each `latency` ms.
    fn steady(seconds: u64, latency: u64) -> Vec<Sample> {
        (0..seconds * 200).map(|i| at(i * 5, latency, 200)).collect()
    }

    #[test]
    fn recovery_is_after_the_last_refusal_or_slow_second() {
        let bound = Duration::from_millis(20);
        assert_eq!(recovered_after(&steady(10, 5), bound, 10), Some(Duration::ZERO));
        // Refused until 300 ms, then normal.
        let mut s = steady(10, 5);
        for x in s.iter_mut().take(60) {
            x.outcome = Outcome::Status(503);
        }
        assert_eq!(recovered_after(&s, bound, 10), Some(Duration::from_millis(300)));
        // One slow answer in a second is not a slow second (its p99 is
        // within the bound); a second that is slow at p99 is.
        let mut s = steady(10, 5);
        s[1500].latency = Duration::from_millis(60);
        assert_eq!(recovered_after(&s, bound, 10), Some(Duration::ZERO));
        for x in s.iter_mut().skip(1000).take(10) {
            x.latency = Duration::from_millis(60);
        }
        assert_eq!(recovered_after(&s, bound, 10), Some(Duration::from_millis(5050)));
        // Still refusing in the last second: not recovered.
        let mut s = steady(10, 5);
        s.last_mut().unwrap().outcome = Outcome::Status(503);
        assert_eq!(recovered_after(&s, bound, 10), None);
    }
}
