//! Part `signin`: many wrong sign-ins at once on one account.
//!
//! murmur is started (release binary, each backend) with metrics on, an
//! owner is set up, and `--attempts` (default 500) sign-ins with a wrong
//! password are fired at the owner's account at the same moment: every
//! connection is opened first, then all requests are written together.
//! Measured: the resident memory before, its peak (`VmHWM`, the highest
//! since the process started) and after; the answers (401 wrong password,
//! 429 throttled); and how many password checks (Argon2) actually ran,
//! read from `murmur_password_checks_total` on `/metrics` before and after.
//!
//! Two runs per backend:
//! - **one address**: every attempt from 127.0.0.1 (no `TRUST_PROXY`): the
//!   per-address rate limit (`SIGN_IN_RATE_LIMIT`, 30 a minute in bursts of
//!   30) refuses most in memory, and the account's failure throttle the rest;
//! - **500 addresses**: with `TRUST_PROXY=true` each attempt names its own
//!   address in `X-Forwarded-For` (10.x.y.1), so every attempt passes the
//!   per-address limit and only the account's throttle (in the database,
//!   counted before the check) stands between them and Argon2.
//!
//! Checks: peak resident memory < 150 MB (MiB here), at most the account
//! throttle's allowance of password checks (5 free failures, then one more
//! after 1 s, 2 s, 4 s… from the last: `server::auth::throttle::ACCOUNT`,
//! computed for the time the burst took), and every answer a 401 or 429.

use std::{sync::Arc, time::Duration, time::Instant};

use crate::{
    server::{form_encode, percentile_ms, random_hex, Backend, Conn, Options, Server},
    Args,
};

const OWNER_EMAIL: &str = "owner@example.com";
const OWNER_PASSWORD: &str = "owner password 1";
/// The account throttle's free failures (`server::auth::throttle::ACCOUNT`).
const ACCOUNT_FREE: u64 = 5;
const LIMIT_MIB: f64 = 150.0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Spread {
    OneAddress,
    ManyAddresses,
}

impl Spread {
    fn label(self, n: usize) -> String {
        match self {
            Spread::OneAddress => "one address (127.0.0.1)".into(),
            Spread::ManyAddresses => format!("{n} addresses (TRUST_PROXY, X-Forwarded-For)"),
        }
    }
}

struct Outcome {
    backend: Backend,
    spread: Spread,
    attempts: usize,
    rss_before_mib: f64,
    hwm_before_mib: f64,
    hwm_after_mib: f64,
    rss_after_mib: f64,
    unauthorized: usize,
    throttled: usize,
    other: Vec<String>,
    checks: u64,
    allowance: u64,
    took: Duration,
    p50_ms: f64,
    p99_ms: f64,
}

impl Outcome {
    fn passed(&self) -> bool {
        self.hwm_after_mib < LIMIT_MIB && self.checks <= self.allowance && self.other.is_empty()
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The account throttle's allowance over `elapsed`: the free failures,
/// then one more each time the doubling wait (1 s, 2 s, 4 s, …) has passed.
fn allowance(elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    let mut extra = 0;
    while ((1u64 << (extra + 1)) - 1) as f64 <= secs {
        extra += 1;
    }
    ACCOUNT_FREE + extra
}

/// `murmur_password_checks_total` from `/metrics`.
async fn password_checks(server: &Server, token: &str) -> Result<u64, String> {
    let auth = format!("Bearer {token}");
    let r = server.request("GET", "/metrics", &[("Authorization", &auth)], b"").await.map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("/metrics answered {}", r.status));
    }
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix("murmur_password_checks_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .ok_or_else(|| "/metrics has no murmur_password_checks_total".into())
}

async fn one(args: &Args, backend: Backend, spread: Spread, attempts: usize) -> Result<Outcome, String> {
    let token = random_hex(16);
    let mut opts = Options::new(args.murmur(), backend).env("METRICS_TOKEN", &token);
    if spread == Spread::ManyAddresses {
        opts = opts.env("TRUST_PROXY", "true");
    }
    let server = Server::start(opts).await?;
    server.setup_owner("Olive Owner", OWNER_EMAIL, OWNER_PASSWORD).await?;
    let checks_before = password_checks(&server, &token).await?;
    let before = server.memory().ok_or("no /proc status for murmur")?;

    // Every connection first, then every request at once.
    let body = form_encode(&[("input[email]", OWNER_EMAIL), ("input[password]", "not the password")]);
    let origin = server.origin();
    let go = Arc::new(tokio::sync::Barrier::new(attempts + 1));
    let mut tasks = Vec::with_capacity(attempts);
    for i in 0..attempts {
        let mut conn = Conn::connect(server.addr).await.map_err(|e| format!("connect: {e}"))?;
        let (go, body, origin) = (go.clone(), body.clone(), origin.clone());
        let forwarded = format!("10.{}.{}.1", i / 250, i % 250);
        tasks.push(tokio::spawn(async move {
            let mut headers = vec![
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Accept", "application/json"),
                ("Origin", origin.as_str()),
                ("Connection", "close"),
            ];
            if spread == Spread::ManyAddresses {
                headers.push(("X-Forwarded-For", forwarded.as_str()));
            }
            go.wait().await;
            let started = Instant::now();
            let r = tokio::time::timeout(
                Duration::from_secs(120),
                conn.send("POST", "/api/login", &headers, body.as_bytes()),
            )
            .await;
            let status = match r {
                Ok(Ok(r)) => Ok(r.status),
                Ok(Err(e)) => Err(format!("error: {e}")),
                Err(_) => Err("no answer within 120 s".to_string()),
            };
            (status, started.elapsed())
        }));
    }
    let started = Instant::now();
    go.wait().await;
    let mut latencies = Vec::with_capacity(attempts);
    let (mut unauthorized, mut throttled, mut other) = (0, 0, vec![]);
    for t in tasks {
        let (status, took) = t.await.map_err(|e| e.to_string())?;
        latencies.push(took);
        match status {
            Ok(401) => unauthorized += 1,
            Ok(429) => throttled += 1,
            Ok(s) => other.push(format!("status {s}")),
            Err(e) => other.push(e),
        }
    }
    let took = started.elapsed();
    latencies.sort();
    let after = server.memory().ok_or("no /proc status for murmur")?;
    let checks = password_checks(&server, &token).await? - checks_before;
    Ok(Outcome {
        backend,
        spread,
        attempts,
        rss_before_mib: mib(before.rss_kib),
        hwm_before_mib: mib(before.hwm_kib),
        hwm_after_mib: mib(after.hwm_kib),
        rss_after_mib: mib(after.rss_kib),
        unauthorized,
        throttled,
        other,
        checks,
        allowance: allowance(took),
        took,
        p50_ms: percentile_ms(&latencies, 50.0),
        p99_ms: percentile_ms(&latencies, 99.0),
    })
}

pub async fn run(args: &Args) -> Result<bool, String> {
    let attempts = args.number("attempts", 500)? as usize;
    let mut outcomes = vec![];
    for backend in args.backends()? {
        for spread in [Spread::OneAddress, Spread::ManyAddresses] {
            outcomes.push(one(args, backend, spread, attempts).await?);
        }
    }
    println!("## signin: {attempts} parallel wrong sign-ins on one account\n");
    println!(
        "| backend | from | RSS before | peak RSS (VmHWM) | RSS after | 401 | 429 | other | password checks | allowance | \
         all answered in | p50 / p99 | < {LIMIT_MIB} MiB and ≤ allowance |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    let mut ok = true;
    for o in &outcomes {
        ok &= o.passed();
        println!(
            "| {} | {} | {:.1} MiB | {:.1} MiB (before: {:.1}) | {:.1} MiB | {} | {} | {} | {} | {} | {:.2} s | {:.0} / {:.0} ms | {} |",
            o.backend.name(),
            o.spread.label(o.attempts),
            o.rss_before_mib,
            o.hwm_after_mib,
            o.hwm_before_mib,
            o.rss_after_mib,
            o.unauthorized,
            o.throttled,
            o.other.len(),
            o.checks,
            o.allowance,
            o.took.as_secs_f64(),
            o.p50_ms,
            o.p99_ms,
            if o.passed() { "yes" } else { "**NO**" },
        );
    }
    for o in outcomes.iter().filter(|o| !o.other.is_empty()) {
        println!(
            "\n{} / {}: unexpected answers, e.g. {:?}",
            o.backend.name(),
            o.spread.label(o.attempts),
            &o.other[..o.other.len().min(5)]
        );
    }
    println!(
        "\nAllowance: the account throttle's {ACCOUNT_FREE} free failures, plus one per doubling wait (1 s, 2 s, 4 s, …) \
         that fits in the time the burst took. Peak RSS is the process's VmHWM (its highest since it started)."
    );
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_grows_with_each_doubling_wait() {
        assert_eq!(allowance(Duration::from_millis(999)), 5);
        assert_eq!(allowance(Duration::from_millis(1000)), 6);
        assert_eq!(allowance(Duration::from_millis(2999)), 6);
        assert_eq!(allowance(Duration::from_secs(3)), 7);
        assert_eq!(allowance(Duration::from_secs(7)), 8);
    }
}
