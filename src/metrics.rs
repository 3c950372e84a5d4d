//! Operational metrics of one server instance, served at `GET /metrics` in
//! the Prometheus text format (0.0.4) when `METRICS_TOKEN` is set.
//!
//! Each `Engine` owns one `Metrics` (and `AppState` shares it), holding its
//! own recorder of the `metrics` facade, rendered by
//! `metrics-exporter-prometheus`. No recorder is installed process-wide:
//! several servers in one process (the tests) keep separate counts, and
//! the engine records through its handle rather than the global macros.
//! Until `turn_on` (no token configured) every call here is a no-op, so an
//! instance without metrics keeps nothing.
//!
//! What is kept (names are stable; README lists them):
//!
//! - `murmur_http_requests_total{method,route,status}` and
//!   `murmur_http_request_duration_seconds{method,route}`: per matched
//!   route template (`/v1.1/appusers/{userId}`), never the raw path;
//!   requests no route matched are `route="unmatched"`.
//! - `murmur_widget_connections`: widgets open on this instance, read from
//!   the hub when scraped.
//! - `murmur_events_ingested_total`: events stored by the writer.
//! - `murmur_commit_batch_size{kind}`, `murmur_commit_duration_seconds{kind}`:
//!   the writer's group commits (jobs per transaction, and the time to
//!   write and commit them), by kind of job.
//! - `murmur_deliveries_created_total{source}`: cards made (`whisper`: a
//!   whisper's card for a user; `message`: a manual message's recipient).
//! - `murmur_deliveries_sent_total{channel}`: cards recorded as sent, by
//!   how they went out (`widget`, `push`, `email`).
//! - `murmur_worker_lag_seconds{worker}`: at each scheduler tick, how late
//!   the oldest due item of each worker is (`scheduler`: property-match
//!   checks; `sends`: scheduled manual messages; `email`; `push`).
//! - `murmur_password_checks_total`: password checks (Argon2) run by
//!   sign-ins and password changes, read from `Passwords` when scraped.

use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use ::metrics::{Key, KeyName, Label, Level, Metadata, Recorder, Unit};
use hmac::{Hmac, Mac};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use sha2::Sha256;

/// The Prometheus text exposition format's media type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often histogram samples are folded into their buckets when nobody
/// scrapes (a scrape folds them too); without it they would pile up.
const UPKEEP: Duration = Duration::from_secs(5);

const HTTP_REQUESTS: &str = "murmur_http_requests_total";
const HTTP_DURATION: &str = "murmur_http_request_duration_seconds";
const WIDGETS: &str = "murmur_widget_connections";
const EVENTS: &str = "murmur_events_ingested_total";
const BATCH_SIZE: &str = "murmur_commit_batch_size";
const COMMIT_DURATION: &str = "murmur_commit_duration_seconds";
const CREATED: &str = "murmur_deliveries_created_total";
const SENT: &str = "murmur_deliveries_sent_total";
const LAG: &str = "murmur_worker_lag_seconds";
const PASSWORD_CHECKS: &str = "murmur_password_checks_total";

static META: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// How a card went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Widget,
    Push,
    Email,
}

/// What made a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Whisper,
    Message,
}

/// A background worker whose backlog is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Worker {
    /// Property-match whispers as time passes (`whisper_due`).
    Scheduler,
    /// Scheduled manual messages.
    Sends,
    Email,
    Push,
}

/// A kind of job the writer commits in batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Users,
    Events,
    Updates,
    Messages,
    Reactions,
    Sent,
    Deliveries,
}

impl Channel {
    fn label(self) -> &'static str {
        match self {
            Channel::Widget => "widget",
            Channel::Push => "push",
            Channel::Email => "email",
        }
    }
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Whisper => "whisper",
            Source::Message => "message",
        }
    }
}

impl Worker {
    fn label(self) -> &'static str {
        match self {
            Worker::Scheduler => "scheduler",
            Worker::Sends => "sends",
            Worker::Email => "email",
            Worker::Push => "push",
        }
    }
}

impl Commit {
    fn label(self) -> &'static str {
        match self {
            Commit::Users => "users",
            Commit::Events => "events",
            Commit::Updates => "updates",
            Commit::Messages => "messages",
            Commit::Reactions => "reactions",
            Commit::Sent => "sent",
            Commit::Deliveries => "deliveries",
        }
    }
}

/// One instance's metrics: off (every call a no-op) until `turn_on`.
#[derive(Default)]
pub struct Metrics {
    on: OnceLock<On>,
}

struct On {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    token: Token,
}

/// The scrape token, kept as an HMAC under a random key so that a
/// presented token is compared in constant time whatever its length.
struct Token {
    key: [u8; 32],
    mac: Vec<u8>,
}

impl Token {
    fn new(token: &str) -> Token {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).expect("the operating system's random source is unavailable");
        let mac = Self::mac(&key, token).finalize().into_bytes().to_vec();
        Token { key, mac }
    }

    fn mac(key: &[u8; 32], token: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(token.as_bytes());
        mac
    }

    fn matches(&self, presented: &str) -> bool {
        Self::mac(&self.key, presented).verify_slice(&self.mac).is_ok()
    }
}

impl Metrics {
    /// Starts keeping metrics, scraped with `token` (once; later calls do
    /// nothing). Needs a Tokio runtime: histogram upkeep runs on a task
    /// that ends with this value.
    pub fn turn_on(self: &Arc<Self>, token: &str) {
        if self.on.get().is_some() {
            return;
        }
        let recorder = recorder();
        let handle = recorder.handle();
        if self.on.set(On { recorder, handle, token: Token::new(token) }).is_err() {
            return;
        }
        let metrics = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(metrics) = metrics.upgrade() else { return };
                if let Some(on) = metrics.on.get() {
                    on.handle.run_upkeep();
                }
            }
        });
    }

    pub fn is_on(&self) -> bool {
        self.on.get().is_some()
    }

    /// Whether an `Authorization` header value carries the scrape token
    /// (`Bearer <token>`). Always false while metrics are off.
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some(on) = self.on.get() else { return false };
        let Some((scheme, token)) = authorization.and_then(|a| a.trim().split_once(' ')) else { return false };
        scheme.eq_ignore_ascii_case("bearer") && on.token.matches(token.trim())
    }

    /// The metrics in the Prometheus text format, with the gauges read at
    /// scrape time set first. `None` while metrics are off.
    pub fn render(&self, widget_connections: usize) -> Option<String> {
        let on = self.on.get()?;
        on.recorder.register_gauge(&Key::from_static_name(WIDGETS), &META).set(widget_connections as f64);
        Some(on.handle.render())
    }

    /// One HTTP request answered: its matched route (`None`: no route
    /// matched), method, status and time to the response's head.
    pub fn http_request(&self, method: &str, route: Option<&str>, status: u16, elapsed: Duration) {
        let Some(on) = self.on.get() else { return };
        let method = known_method(method);
        let route = route.unwrap_or("unmatched").to_string();
        let labels = vec![Label::from_static_parts("method", method), Label::new("route", route.clone())];
        let timing = Key::from_parts(HTTP_DURATION, labels);
        on.recorder.register_histogram(&timing, &META).record(elapsed.as_secs_f64());
        let labels = vec![
            Label::from_static_parts("method", method),
            Label::new("route", route),
            Label::new("status", status.to_string()),
        ];
        on.recorder.register_counter(&Key::from_parts(HTTP_REQUESTS, labels), &META).increment(1);
    }

    /// Events stored.
    pub fn events_ingested(&self, n: u64) {
        self.count(Key::from_static_name(EVENTS), n);
    }

    /// A batch of `jobs` of one kind written and committed since `started`.
    pub fn committed(&self, kind: Commit, jobs: usize, started: Instant) {
        let Some(on) = self.on.get() else { return };
        let labels = [Label::from_static_parts("kind", kind.label())];
        let size = Key::from_parts(BATCH_SIZE, labels.to_vec());
        on.recorder.register_histogram(&size, &META).record(jobs as f64);
        let time = Key::from_parts(COMMIT_DURATION, labels.to_vec());
        on.recorder.register_histogram(&time, &META).record(started.elapsed().as_secs_f64());
    }

    /// Cards made.
    pub fn deliveries_created(&self, source: Source, n: usize) {
        if n > 0 {
            self.count(Key::from_parts(CREATED, vec![Label::from_static_parts("source", source.label())]), n as u64);
        }
    }

    /// Cards recorded as sent.
    pub fn deliveries_sent(&self, channel: Channel, n: usize) {
        if n > 0 {
            self.count(Key::from_parts(SENT, vec![Label::from_static_parts("channel", channel.label())]), n as u64);
        }
    }

    /// How late a worker's oldest due item is (0: none is due).
    pub fn lag(&self, worker: Worker, late: Duration) {
        let Some(on) = self.on.get() else { return };
        let key = Key::from_parts(LAG, vec![Label::from_static_parts("worker", worker.label())]);
        on.recorder.register_gauge(&key, &META).set(late.as_secs_f64());
    }

    /// Password checks run since the start (`Passwords::checks`), set when
    /// scraped.
    pub fn password_checks(&self, total: u64) {
        let Some(on) = self.on.get() else { return };
        on.recorder.register_counter(&Key::from_static_name(PASSWORD_CHECKS), &META).absolute(total);
    }

    fn count(&self, key: Key, n: u64) {
        if let Some(on) = self.on.get() {
            on.recorder.register_counter(&key, &META).increment(n);
        }
    }
}

/// A method as a label: the standard ones by name, anything else `other`
/// (a client cannot add series by inventing methods).
fn known_method(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("other")
}

/// A recorder with buckets for each histogram and a HELP line for each metric.
fn recorder() -> PrometheusRecorder {
    const SECONDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    const JOBS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0];
    let buckets = |b: PrometheusBuilder, name: &str, values: &[f64]| {
        b.set_buckets_for_metric(Matcher::Full(name.to_string()), values).expect("buckets are not empty")
    };
    let b = buckets(PrometheusBuilder::new(), HTTP_DURATION, SECONDS);
    let b = buckets(b, COMMIT_DURATION, SECONDS);
    let recorder = buckets(b, BATCH_SIZE, JOBS).build_recorder();
    let help: [(&'static str, Option<Unit>, &'static str); 10] = [
        (HTTP_REQUESTS, None, "HTTP requests answered, by method, matched route and status."),
        (
            HTTP_DURATION,
            Some(Unit::Seconds),
            "Time to answer an HTTP request (to the response's head), by method and matched route.",
        ),
        (WIDGETS, None, "Widget connections open on this instance."),
        (EVENTS, None, "Tracked events stored."),
        (BATCH_SIZE, Some(Unit::Count), "Jobs written per group commit, by kind of job."),
        (COMMIT_DURATION, Some(Unit::Seconds), "Time to write and commit one batch, by kind of job."),
        (CREATED, None, "Cards made: a whisper's for a user, or a manual message's for a recipient."),
        (SENT, None, "Cards recorded as sent, by channel."),
        (LAG, Some(Unit::Seconds), "How late the oldest due item of a background worker was at its last tick."),
        (PASSWORD_CHECKS, None, "Password checks (Argon2) run by sign-ins and password changes."),
    ];
    for (name, unit, text) in help {
        let name = KeyName::from_const_str(name);
        if name.as_str().ends_with("_total") {
            recorder.describe_counter(name, unit, text.into());
        } else if matches!(name.as_str(), HTTP_DURATION | BATCH_SIZE | COMMIT_DURATION) {
            recorder.describe_histogram(name, unit, text.into());
        } else {
            recorder.describe_gauge(name, unit, text.into());
        }
    }
    recorder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn off_keeps_nothing_and_refuses_every_token() {
        let m = Arc::new(Metrics::default());
        m.events_ingested(3);
        assert!(!m.is_on());
        assert!(m.render(1).is_none());
        assert!(!m.authorized(Some("Bearer anything-at-all-here")));
    }

    #[tokio::test]
    async fn renders_the_prometheus_text_format() {
        let m = Arc::new(Metrics::default());
        m.turn_on("0123456789abcdef");
        m.events_ingested(2);
        m.events_ingested(1);
        m.http_request("GET", Some("/v1.1/appusers/{userId}"), 200, Duration::from_millis(3));
        m.http_request("BREW", None, 404, Duration::from_millis(1));
        m.deliveries_sent(Channel::Push, 1);
        m.lag(Worker::Email, Duration::from_millis(1500));
        m.committed(Commit::Events, 5, Instant::now());
        m.password_checks(7);
        let text = m.render(4).unwrap();
        for line in [
            "# TYPE murmur_events_ingested_total counter",
            "murmur_events_ingested_total 3",
            r#"murmur_http_requests_total{method="GET",route="/v1.1/appusers/{userId}",status="200"} 1"#,
            r#"murmur_http_requests_total{method="other",route="unmatched",status="404"} 1"#,
            r#"murmur_http_request_duration_seconds_bucket{method="GET",route="/v1.1/appusers/{userId}",le="0.005"} 1"#,
            r#"murmur_deliveries_sent_total{channel="push"} 1"#,
            r#"murmur_worker_lag_seconds{worker="email"} 1.5"#,
            r#"murmur_commit_batch_size_bucket{kind="events",le="4"} 0"#,
            r#"murmur_commit_batch_size_bucket{kind="events",le="8"} 1"#,
            "murmur_widget_connections 4",
            "murmur_password_checks_total 7",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }

    #[tokio::test]
    async fn only_the_token_as_a_bearer_token_is_authorized() {
        let m = Arc::new(Metrics::default());
        m.turn_on("0123456789abcdef");
        assert!(m.authorized(Some("Bearer 0123456789abcdef")));
        assert!(m.authorized(Some("bearer 0123456789abcdef")));
        for wrong in
            ["Bearer 0123456789abcde", "Bearer 0123456789abcdefg", "Basic 0123456789abcdef", "0123456789abcdef", ""]
        {
            assert!(!m.authorized(Some(wrong)), "{wrong}");
        }
        assert!(!m.authorized(None));
    }
}
