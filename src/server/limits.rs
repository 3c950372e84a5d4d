//! Rate limits, answered with 429 and `Retry-After`: REST API calls per API
//! key, widget connections per client address, sign-in and setup attempts
//! per client address (an IPv6 address counts by its /64).
//!
//! Each limit is a keyed GCRA limiter from `governor`, in memory on this
//! instance (a limit is per instance: several instances behind a balancer
//! together let through up to that many times the rate). Time comes from
//! murmur's injected `Clock`, so tests move it instead of sleeping. The
//! limiters keep one small state per key seen lately; keys idle long
//! enough to be indistinguishable from new ones are swept once a minute,
//! and a limiter that still holds `MAX_KEYS` keys after a sweep starts
//! afresh, so memory stays bounded whatever the number of addresses.

use std::{
    hash::Hash,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    num::NonZeroU32,
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc, PoisonError, RwLock,
    },
    time::Duration,
};

use axum::http::HeaderMap;
use governor::{middleware::NoOpMiddleware, nanos::Nanos, state::keyed::DashMapStateStore, Quota, RateLimiter};

use crate::clock::Clock;

/// A rate: `count` per `per`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
    pub burst: u32,
}

/// Largest count or burst a rate may name.
const MAX_COUNT: u32 = 1_000_000;

impl Rate {
    pub const fn new(count: u32, per: Duration, burst: u32) -> Rate {
        Rate { count, per, burst }
    }

    /// Reads `100/s`, `30/min`, `500/h`, optionally followed by `,BURST`
    /// (default: the count); `off` or `0` is no limit (`None`).
    pub fn parse(text: &str) -> Option<Option<Rate>> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") || text == "0" {
            return Some(None);
        }
        let (rate, burst) = match text.split_once(',') {
            Some((r, b)) => (r.trim(), Some(b.trim())),
            None => (text, None),
        };
        let (count, unit) = rate.split_once('/')?;
        let count: u32 = count.trim().parse().ok().filter(|c| (1..=MAX_COUNT).contains(c))?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return None,
        };
        let burst = match burst {
            None => count,
            Some(b) => b.parse().ok().filter(|b| (1..=MAX_COUNT).contains(b))?,
        };
        Some(Some(Rate { count, per, burst }))
    }

    fn quota(&self) -> Quota {
        let burst = NonZeroU32::new(self.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        // At most a million per second: the period is at least a microsecond.
        let period = (self.per / self.count.max(1)).max(Duration::from_micros(1));
        Quota::with_period(period).unwrap_or_else(|| Quota::per_second(burst)).allow_burst(burst)
    }
}

impl Rate {
    /// In words, e.g. "100 a second, in bursts of up to 200".
    pub fn describe(&self) -> String {
        let unit = match self.per.as_secs() {
            1 => "second",
            60 => "minute",
            _ => "hour",
        };
        format!("{} a {unit}, in bursts of up to {}", self.count, self.burst)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit},{}", self.count, self.burst)
    }
}

/// murmur's injected clock as a `governor` clock (nanoseconds since the
/// Unix epoch, at the millisecond resolution of `Clock`).
#[derive(Clone)]
pub struct InjectedClock(pub Arc<dyn Clock>);

impl governor::clock::Clock for InjectedClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::new((self.0.now_ms().max(0) as u64).saturating_mul(1_000_000))
    }
}

type Limiter<K> = RateLimiter<K, DashMapStateStore<K>, InjectedClock, NoOpMiddleware<Nanos>>;

/// Keys a limiter holds at most (a few MB), and how often idle ones are swept.
pub const MAX_KEYS: usize = 100_000;
const SWEEP_EVERY_MS: i64 = 60_000;
/// How often (in checks) the number of keys is looked at between sweeps.
const COUNT_EVERY: u64 = 1024;

/// One rate limit, per key; `None` as the rate lets everything through.
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    rate: Option<Rate>,
    clock: InjectedClock,
    limiter: RwLock<Limiter<K>>,
    max_keys: usize,
    last_sweep_ms: AtomicI64,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    pub fn new(rate: Option<Rate>, clock: Arc<dyn Clock>, max_keys: usize) -> Self {
        let clock = InjectedClock(clock);
        let now = clock.0.now_ms();
        KeyedLimit {
            limiter: RwLock::new(Self::fresh(rate, &clock)),
            rate,
            clock,
            max_keys: max_keys.max(1),
            last_sweep_ms: AtomicI64::new(now),
            checks: AtomicU64::new(0),
        }
    }

    fn fresh(rate: Option<Rate>, clock: &InjectedClock) -> Limiter<K> {
        let quota = rate.map_or_else(|| Quota::per_second(NonZeroU32::MIN), |r| r.quota());
        RateLimiter::dashmap_with_clock(quota, clock.clone())
    }

    pub fn rate(&self) -> Option<Rate> {
        self.rate
    }

    /// Counts one request under `key`: `Ok`, or `Err(seconds)` to wait
    /// before the next one can pass (at least 1).
    pub fn check(&self, key: &K) -> Result<(), u64> {
        if self.rate.is_none() {
            return Ok(());
        }
        self.housekeeping();
        let limiter = self.limiter.read().unwrap_or_else(PoisonError::into_inner);
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&self.clock));
            // Whole seconds, rounded up: a client that waits that long passes.
            (wait.as_millis().div_ceil(1000) as u64).max(1)
        })
    }

    /// How many keys the limiter holds now.
    pub fn len(&self) -> usize {
        self.limiter.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Once a minute (or when the limiter looks full), drop the keys whose
    /// state is the same as a new key's; if it is still full, start afresh.
    fn housekeeping(&self) {
        let now = self.clock.0.now_ms();
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        let due = now - last >= SWEEP_EVERY_MS;
        let full = || n % COUNT_EVERY == 0 && self.len() >= self.max_keys;
        if !(due || full()) {
            return;
        }
        // One caller sweeps; the others go on.
        if self.last_sweep_ms.compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            return;
        }
        self.sweep();
    }

    /// Drops idle keys now (also called by tests).
    pub fn sweep(&self) {
        let still_full = {
            let limiter = self.limiter.read().unwrap_or_else(PoisonError::into_inner);
            limiter.retain_recent();
            limiter.shrink_to_fit();
            limiter.len() >= self.max_keys
        };
        if still_full {
            tracing::warn!(keys = self.max_keys, "rate limiter full of active keys: starting afresh");
            *self.limiter.write().unwrap_or_else(PoisonError::into_inner) = Self::fresh(self.rate, &self.clock);
        }
    }
}

/// Every limit of this instance (`AppState::limits`).
pub struct Limits {
    /// REST API calls per API key id (`API_RATE_LIMIT`).
    pub api: KeyedLimit<String>,
    /// Widget WebSocket upgrades per client address (`WIDGET_CONNECT_RATE_LIMIT`).
    pub widget_connect: KeyedLimit<IpAddr>,
    /// Sign-in and setup attempts per client address (`SIGN_IN_RATE_LIMIT`).
    pub sign_in: KeyedLimit<IpAddr>,
    /// Users created by widgets without a verified identity, per client
    /// address (`NEW_ANONYMOUS_USER_RATE_LIMIT`, `widget::socket`).
    pub new_anonymous_users: KeyedLimit<IpAddr>,
}

impl Limits {
    pub fn new(settings: &super::Settings, clock: Arc<dyn Clock>) -> Limits {
        Limits {
            api: KeyedLimit::new(settings.api_rate, clock.clone(), MAX_KEYS),
            widget_connect: KeyedLimit::new(settings.widget_connect_rate, clock.clone(), MAX_KEYS),
            sign_in: KeyedLimit::new(settings.sign_in_rate, clock.clone(), MAX_KEYS),
            new_anonymous_users: KeyedLimit::new(settings.new_anonymous_user_rate, clock, MAX_KEYS),
        }
    }
}

/// The address a per-address limit counts under: an IPv4 address (also
/// when written as IPv4-mapped IPv6) as is, an IPv6 address by its /64,
/// since one host is usually given a whole /64.
pub fn address_bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
    }
}

/// The client's address: the socket peer, or with `TRUST_PROXY` the
/// address the proxy appended last to `X-Forwarded-For`.
pub fn client_address(headers: &HeaderMap, peer: Option<SocketAddr>, trust_proxy: bool) -> Option<IpAddr> {
    if trust_proxy {
        let forwarded = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|ip| ip.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    peer.map(|p| p.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn rates_are_read_with_an_optional_burst() {
        assert_eq!(Rate::parse("100/s"), Some(Some(Rate::new(100, Duration::from_secs(1), 100))));
        assert_eq!(Rate::parse(" 100/s,200 "), Some(Some(Rate::new(100, Duration::from_secs(1), 200))));
        assert_eq!(Rate::parse("30/min"), Some(Some(Rate::new(30, Duration::from_secs(60), 30))));
        assert_eq!(Rate::parse("5/h, 1"), Some(Some(Rate::new(5, Duration::from_secs(3600), 1))));
        assert_eq!(Rate::parse("off"), Some(None));
        assert_eq!(Rate::parse("0"), Some(None));
        for bad in ["", "100", "100/day", "0/s", "-1/s", "1/s,0", "1/s,x", "2000000/s", "ten/s"] {
            assert_eq!(Rate::parse(bad), None, "{bad}");
        }
        assert_eq!(Rate::new(100, Duration::from_secs(1), 200).to_string(), "100/s,200");
        assert_eq!(Rate::new(30, Duration::from_secs(60), 30).describe(), "30 a minute, in bursts of up to 30");
    }

    #[test]
    fn a_burst_then_the_rate_by_the_injected_clock() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let limit = KeyedLimit::new(Some(Rate::new(2, Duration::from_secs(1), 3)), clock.clone(), 10);
        for _ in 0..3 {
            assert_eq!(limit.check(&"a"), Ok(()));
        }
        assert_eq!(limit.check(&"a"), Err(1), "the burst is spent");
        assert_eq!(limit.check(&"b"), Ok(()), "another key has its own");
        clock.advance_ms(500);
        assert_eq!(limit.check(&"a"), Ok(()), "one more every half second");
        assert_eq!(limit.check(&"a"), Err(1));
        let slow = KeyedLimit::new(Some(Rate::new(1, Duration::from_secs(60), 1)), clock.clone(), 10);
        assert_eq!(slow.check(&"a"), Ok(()));
        assert_eq!(slow.check(&"a"), Err(60));
        clock.advance_ms(59_001);
        assert_eq!(slow.check(&"a"), Err(1), "rounded up");
        let off = KeyedLimit::new(None, clock, 10);
        for _ in 0..1000 {
            assert_eq!(off.check(&"a"), Ok(()));
        }
        assert!(off.is_empty());
    }

    #[test]
    fn idle_keys_are_swept_and_memory_stays_bounded() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let limit = KeyedLimit::new(Some(Rate::new(10, Duration::from_secs(1), 10)), clock.clone(), 100);
        for k in 0..50u32 {
            limit.check(&k).unwrap();
        }
        assert_eq!(limit.len(), 50);
        clock.advance_ms(2_000);
        limit.sweep();
        assert_eq!(limit.len(), 0, "idle keys are the same as new ones: dropped");
        // A flood of new keys never holds more than the cap (plus the keys
        // seen between two counts).
        for k in 0..10_000u32 {
            limit.check(&k).unwrap();
        }
        assert!(limit.len() <= 100 + COUNT_EVERY as usize, "{} keys", limit.len());
        // The minute's sweep runs by itself.
        clock.advance_ms(SWEEP_EVERY_MS);
        limit.check(&0).unwrap();
        assert_eq!(limit.len(), 1);
    }

    #[test]
    fn addresses_count_by_ipv4_or_ipv6_64() {
        let b = |s: &str| address_bucket(s.parse().unwrap());
        assert_eq!(b("203.0.113.9"), b("::ffff:203.0.113.9"));
        assert_eq!(b("2001:db8:1:2::1"), b("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_ne!(b("2001:db8:1:2::1"), b("2001:db8:1:3::1"));
        assert_eq!(b("2001:db8:1:2:aaaa::1").to_string(), "2001:db8:1:2::");
    }

    #[test]
    fn the_client_address_trusts_the_proxy_only_when_told() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "198.51.100.1, 203.0.113.5".parse().unwrap());
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(client_address(&headers, Some(peer), false), Some(peer.ip()));
        assert_eq!(client_address(&headers, Some(peer), true), Some("203.0.113.5".parse().unwrap()));
        assert_eq!(client_address(&HeaderMap::new(), Some(peer), true), Some(peer.ip()));
        assert_eq!(client_address(&HeaderMap::new(), None, true), None);
    }
}
