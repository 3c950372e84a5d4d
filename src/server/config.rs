//! Settings from the environment (and `.env`), validated once at start.
//! Every variable is documented in README.md.

use std::path::{Path, PathBuf};

use super::limits::Rate;
use crate::storage::DbUrl;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("DATABASE_URL is malformed ({0})")]
    DatabaseUrl(String),
    #[error("data directory {path} is not writable: {reason}")]
    DataDir { path: String, reason: String },
    #[error("SECRET_KEY must be 64 hexadecimal characters (32 bytes); generate one with `openssl rand -hex 32`")]
    SecretKey,
    #[error("secret key file {path}: {reason}")]
    SecretKeyFile { path: String, reason: String },
    #[error("PUBLIC_URL must be an absolute http(s) URL such as https://murmur.example.com ({0})")]
    PublicUrl(String),
    #[error("{name} must be true or false, not {value:?}")]
    Bool { name: &'static str, value: String },
    #[error("{name} must be a whole number from {min} to {max}, not {value:?}")]
    Number { name: &'static str, value: String, min: u64, max: u64 },
    #[error("{name} must be a rate such as 100/s, 30/min or 500/h, optionally with a burst (100/s,200), or off; not {value:?}")]
    Rate { name: &'static str, value: String },
    #[error("METRICS_TOKEN must be 16 to 256 characters of letters, digits and - . _ ~ + / (generate one with `openssl rand -hex 32`)")]
    MetricsToken,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DbUrl,
    pub data_dir: PathBuf,
    /// The raw SECRET_KEY, if given (checked, never logged).
    pub secret_key: Option<SecretString>,
    /// Origin the dashboard and snippet are served from, if it differs from
    /// the listening address (behind a proxy).
    pub public_url: Option<String>,
    /// Trust `X-Forwarded-For` / `X-Forwarded-Proto` from a reverse proxy.
    pub trust_proxy: bool,
    pub log_json: bool,
    /// Group commit for tracked events (`EVENT_GROUP_COMMIT`, default true).
    pub group_commit: bool,
    /// How long a batch of tracked events waits after its first event for
    /// more to join it (`COMMIT_WINDOW_MS`, 0 to 50, default 2): fewer,
    /// larger commits for a few milliseconds of latency.
    pub commit_window: std::time::Duration,
    /// Path of the run-time site configuration (Leptos.toml).
    pub site_config: String,
    /// How long a client has to send a request's headers, from the moment
    /// the server waits for them (`HEADER_READ_TIMEOUT_MS`, default 10 s);
    /// a connection that takes longer, or stays idle that long between
    /// requests, is closed (slowloris).
    pub header_read_timeout: std::time::Duration,
    /// How long a request may take from its headers to its answer's head,
    /// its body's upload included (`REQUEST_TIMEOUT_MS`, default 30 s);
    /// past it the answer is 408 and the connection is closed.
    pub request_timeout: std::time::Duration,
    /// Connections this instance keeps open at once, widgets' WebSockets
    /// included (`MAX_CONNECTIONS`, default 10,000); one more is answered
    /// 503 and closed (`server::connections`).
    pub max_connections: usize,
    /// Connections one client address may keep open at once
    /// (`MAX_CONNECTIONS_PER_ADDRESS`, default 1,000; 0: no bound; not
    /// counted with `TRUST_PROXY`, where every connection is the proxy's).
    pub max_connections_per_address: Option<usize>,
    /// How often the property-match scheduler ticks (`SCHEDULER_PERIOD_MS`,
    /// default 5 s; 0 turns it off on this instance, e.g. for tests that
    /// tick it themselves as they move the clock).
    pub scheduler_period: Option<std::time::Duration>,
    /// REST API calls per API key (`API_RATE_LIMIT`, default 100/s with
    /// bursts of 200; `None`: no limit).
    pub api_rate: Option<Rate>,
    /// Widget connections per client address (`WIDGET_CONNECT_RATE_LIMIT`,
    /// default 20/s with bursts of 100).
    pub widget_connect_rate: Option<Rate>,
    /// Sign-in and setup attempts per client address (`SIGN_IN_RATE_LIMIT`,
    /// default 30/min).
    pub sign_in_rate: Option<Rate>,
    /// New users a widget without a verified identity may create per client
    /// address (`NEW_ANONYMOUS_USER_RATE_LIMIT`, default 60/min).
    pub new_anonymous_user_rate: Option<Rate>,
    /// Per-app caps on the property and event catalogs (`MAX_PROPERTY_NAMES`,
    /// default 500; `MAX_EVENT_NAMES`, default 1,000).
    pub catalog_caps: crate::engine::actions::CatalogCaps,
    /// The bearer token `/metrics` asks for (`METRICS_TOKEN`; checked, never
    /// logged). `None`: no metrics are kept and `/metrics` is not found.
    pub metrics_token: Option<SecretString>,
}

/// The default rate limits (README's configuration table).
pub const DEFAULT_API_RATE: Rate = Rate::new(100, std::time::Duration::from_secs(1), 200);
pub const DEFAULT_WIDGET_CONNECT_RATE: Rate = Rate::new(20, std::time::Duration::from_secs(1), 100);
pub const DEFAULT_SIGN_IN_RATE: Rate = Rate::new(30, std::time::Duration::from_secs(60), 30);
pub const DEFAULT_NEW_ANONYMOUS_USER_RATE: Rate = Rate::new(60, std::time::Duration::from_secs(60), 60);

/// A string that does not print itself.
#[derive(Clone)]
pub struct SecretString(String);

impl SecretString {
    pub fn expose(&self) -> &str {
        &self.0
    }
    #[cfg(test)]
    pub fn for_tests(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl Settings {
    /// Reads settings through `var` (the process environment in `main`, a
    /// map in tests) and checks them, creating the data directory.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let non_empty = |k: &str| var(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let data_dir = PathBuf::from(non_empty("DATA_DIR").unwrap_or_else(|| "data".into()));
        ensure_writable(&data_dir)?;
        let database = match non_empty("DATABASE_URL") {
            Some(url) => DbUrl::parse(&url).map_err(ConfigError::DatabaseUrl)?,
            None => DbUrl::Sqlite(format!("sqlite://{}", data_dir.join("murmur.db").display())),
        };
        let public_url = match non_empty("PUBLIC_URL") {
            Some(u) => Some(parse_public_url(&u)?),
            None => None,
        };
        Ok(Settings {
            database,
            data_dir,
            secret_key: match non_empty("SECRET_KEY") {
                Some(k) if crate::server::crypto::parse_key(&k).is_none() => return Err(ConfigError::SecretKey),
                k => k.map(SecretString),
            },
            public_url,
            trust_proxy: parse_bool("TRUST_PROXY", non_empty("TRUST_PROXY"))?,
            group_commit: non_empty("EVENT_GROUP_COMMIT")
                .map_or(Ok(true), |v| parse_bool("EVENT_GROUP_COMMIT", Some(v)))?,
            commit_window: std::time::Duration::from_millis(parse_number(
                "COMMIT_WINDOW_MS",
                non_empty("COMMIT_WINDOW_MS"),
                2,
                0..=50,
            )?),
            header_read_timeout: std::time::Duration::from_millis(parse_number(
                "HEADER_READ_TIMEOUT_MS",
                non_empty("HEADER_READ_TIMEOUT_MS"),
                10_000,
                1..=600_000,
            )?),
            request_timeout: std::time::Duration::from_millis(parse_number(
                "REQUEST_TIMEOUT_MS",
                non_empty("REQUEST_TIMEOUT_MS"),
                30_000,
                1..=3_600_000,
            )?),
            max_connections: parse_number("MAX_CONNECTIONS", non_empty("MAX_CONNECTIONS"), 10_000, 1..=1_000_000)?
                as usize,
            max_connections_per_address: match parse_number(
                "MAX_CONNECTIONS_PER_ADDRESS",
                non_empty("MAX_CONNECTIONS_PER_ADDRESS"),
                1_000,
                0..=1_000_000,
            )? {
                0 => None,
                n => Some(n as usize),
            },
            scheduler_period: match parse_number(
                "SCHEDULER_PERIOD_MS",
                non_empty("SCHEDULER_PERIOD_MS"),
                5_000,
                0..=3_600_000,
            )? {
                0 => None,
                ms => Some(std::time::Duration::from_millis(ms)),
            },
            api_rate: parse_rate("API_RATE_LIMIT", non_empty("API_RATE_LIMIT"), DEFAULT_API_RATE)?,
            widget_connect_rate: parse_rate(
                "WIDGET_CONNECT_RATE_LIMIT",
                non_empty("WIDGET_CONNECT_RATE_LIMIT"),
                DEFAULT_WIDGET_CONNECT_RATE,
            )?,
            sign_in_rate: parse_rate("SIGN_IN_RATE_LIMIT", non_empty("SIGN_IN_RATE_LIMIT"), DEFAULT_SIGN_IN_RATE)?,
            new_anonymous_user_rate: parse_rate(
                "NEW_ANONYMOUS_USER_RATE_LIMIT",
                non_empty("NEW_ANONYMOUS_USER_RATE_LIMIT"),
                DEFAULT_NEW_ANONYMOUS_USER_RATE,
            )?,
            catalog_caps: {
                let d = crate::engine::actions::CatalogCaps::DEFAULT;
                let cap = |name: &'static str, default: i64| {
                    parse_number(name, non_empty(name), default as u64, 1..=1_000_000).map(|n| n as i64)
                };
                crate::engine::actions::CatalogCaps {
                    properties: cap("MAX_PROPERTY_NAMES", d.properties)?,
                    events: cap("MAX_EVENT_NAMES", d.events)?,
                }
            },
            metrics_token: match non_empty("METRICS_TOKEN") {
                Some(t) if !is_bearer_token(&t) => return Err(ConfigError::MetricsToken),
                t => t.map(SecretString),
            },
            log_json: non_empty("LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json")),
            site_config: non_empty("LEPTOS_CONFIG").unwrap_or_else(|| "Leptos.toml".into()),
        })
    }
}

fn parse_bool(name: &'static str, v: Option<String>) -> Result<bool, ConfigError> {
    match v.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") | Some("0") | Some("no") => Ok(false),
        Some("true") | Some("1") | Some("yes") => Ok(true),
        Some(_) => Err(ConfigError::Bool { name, value: v.unwrap_or_default() }),
    }
}

fn parse_number(
    name: &'static str,
    v: Option<String>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    match v {
        None => Ok(default),
        Some(v) => v.parse().ok().filter(|n| range.contains(n)).ok_or(ConfigError::Number {
            name,
            value: v,
            min: *range.start(),
            max: *range.end(),
        }),
    }
}

fn parse_rate(name: &'static str, v: Option<String>, default: Rate) -> Result<Option<Rate>, ConfigError> {
    match v {
        None => Ok(Some(default)),
        Some(v) => Rate::parse(&v).ok_or(ConfigError::Rate { name, value: v }),
    }
}

/// A token a client can send as `Authorization: Bearer …` unchanged (RFC
/// 6750's token68 characters), long enough not to be guessed.
fn is_bearer_token(t: &str) -> bool {
    (16..=256).contains(&t.len())
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

fn parse_public_url(raw: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(raw).map_err(|e| ConfigError::PublicUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::PublicUrl(format!("{raw:?} is not http(s)")));
    }
    Ok(url.origin().ascii_serialization())
}

/// Creates the directory if needed and proves it is writable now, rather
/// than failing at the first write.
fn ensure_writable(dir: &Path) -> Result<(), ConfigError> {
    let err = |reason: String| ConfigError::DataDir { path: dir.display().to_string(), reason };
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let probe = dir.join(".murmur-write-test");
    std::fs::write(&probe, b"ok").map_err(|e| err(e.to_string()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_env(|k| map.get(k).cloned())
    }

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("murmur-config-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn defaults_to_sqlite_in_data_dir() {
        let dir = tmp();
        let s = settings(&[("DATA_DIR", dir.to_str().unwrap())]).unwrap();
        assert!(matches!(s.database, DbUrl::Sqlite(ref u) if u.ends_with("murmur.db")));
        assert!(!s.trust_proxy);
        assert_eq!(s.site_config, "Leptos.toml");
    }

    #[test]
    fn malformed_database_url_is_a_clear_error() {
        let dir = tmp();
        let e = settings(&[("DATA_DIR", dir.to_str().unwrap()), ("DATABASE_URL", "mysql://x")]).unwrap_err();
        assert!(e.to_string().starts_with("DATABASE_URL is malformed"), "{e}");
        let e = settings(&[("DATA_DIR", dir.to_str().unwrap()), ("DATABASE_URL", "postgres://u@h:notaport/db")])
            .unwrap_err();
        assert!(e.to_string().starts_with("DATABASE_URL is malformed"), "{e}");
    }

    #[test]
    fn unwritable_data_dir_is_a_clear_error() {
        let e = settings(&[("DATA_DIR", "/proc/murmur-cannot-be-here")]).unwrap_err();
        assert!(e.to_string().starts_with("data directory /proc/murmur-cannot-be-here is not writable"), "{e}");
    }

    #[test]
    fn public_url_is_reduced_to_an_origin() {
        let dir = tmp();
        let s = settings(&[("DATA_DIR", dir.to_str().unwrap()), ("PUBLIC_URL", "https://m.example.com/x/")]).unwrap();
        assert_eq!(s.public_url.as_deref(), Some("https://m.example.com"));
        assert!(settings(&[("DATA_DIR", dir.to_str().unwrap()), ("PUBLIC_URL", "ftp://x")]).is_err());
    }

    #[test]
    fn commit_window_is_bounded() {
        let dir = tmp();
        let d = dir.to_str().unwrap();
        assert_eq!(settings(&[("DATA_DIR", d)]).unwrap().commit_window, std::time::Duration::from_millis(2));
        let s = settings(&[("DATA_DIR", d), ("COMMIT_WINDOW_MS", "0")]).unwrap();
        assert!(s.commit_window.is_zero());
        for bad in ["51", "-1", "2.5", "soon"] {
            let e = settings(&[("DATA_DIR", d), ("COMMIT_WINDOW_MS", bad)]).unwrap_err();
            assert_eq!(e.to_string(), format!("COMMIT_WINDOW_MS must be a whole number from 0 to 50, not {bad:?}"));
        }
    }

    #[test]
    fn scheduler_period_can_be_turned_off() {
        let d = "/tmp";
        assert_eq!(settings(&[("DATA_DIR", d)]).unwrap().scheduler_period, Some(std::time::Duration::from_secs(5)));
        assert_eq!(settings(&[("DATA_DIR", d), ("SCHEDULER_PERIOD_MS", "0")]).unwrap().scheduler_period, None);
        assert!(settings(&[("DATA_DIR", d), ("SCHEDULER_PERIOD_MS", "soon")]).is_err());
    }

    #[test]
    fn header_read_timeout_is_bounded() {
        let dir = tmp();
        let d = dir.to_str().unwrap();
        let s = settings(&[("DATA_DIR", d)]).unwrap();
        assert_eq!(s.header_read_timeout, std::time::Duration::from_secs(10));
        let s = settings(&[("DATA_DIR", d), ("HEADER_READ_TIMEOUT_MS", "250")]).unwrap();
        assert_eq!(s.header_read_timeout, std::time::Duration::from_millis(250));
        let e = settings(&[("DATA_DIR", d), ("HEADER_READ_TIMEOUT_MS", "0")]).unwrap_err();
        assert_eq!(e.to_string(), "HEADER_READ_TIMEOUT_MS must be a whole number from 1 to 600000, not \"0\"");
    }

    #[test]
    fn request_timeout_and_connection_bounds_are_read() {
        let dir = tmp();
        let d = dir.to_str().unwrap();
        let s = settings(&[("DATA_DIR", d)]).unwrap();
        assert_eq!(s.request_timeout, std::time::Duration::from_secs(30));
        assert_eq!((s.max_connections, s.max_connections_per_address), (10_000, Some(1_000)));
        let s = settings(&[
            ("DATA_DIR", d),
            ("REQUEST_TIMEOUT_MS", "500"),
            ("MAX_CONNECTIONS", "64"),
            ("MAX_CONNECTIONS_PER_ADDRESS", "0"),
        ])
        .unwrap();
        assert_eq!(s.request_timeout, std::time::Duration::from_millis(500));
        assert_eq!((s.max_connections, s.max_connections_per_address), (64, None));
        let e = settings(&[("DATA_DIR", d), ("MAX_CONNECTIONS", "0")]).unwrap_err();
        assert_eq!(e.to_string(), "MAX_CONNECTIONS must be a whole number from 1 to 1000000, not \"0\"");
        assert!(settings(&[("DATA_DIR", d), ("REQUEST_TIMEOUT_MS", "soon")]).is_err());
        assert!(settings(&[("DATA_DIR", d), ("MAX_CONNECTIONS_PER_ADDRESS", "-1")]).is_err());
    }

    #[test]
    fn rate_limits_have_defaults_and_can_be_turned_off() {
        let d = "/tmp";
        let s = settings(&[("DATA_DIR", d)]).unwrap();
        assert_eq!(s.api_rate, Some(DEFAULT_API_RATE));
        assert_eq!(s.api_rate.unwrap().to_string(), "100/s,200");
        assert_eq!(s.widget_connect_rate, Some(DEFAULT_WIDGET_CONNECT_RATE));
        assert_eq!(s.sign_in_rate.unwrap().to_string(), "30/min,30");
        let s = settings(&[
            ("DATA_DIR", d),
            ("API_RATE_LIMIT", "off"),
            ("WIDGET_CONNECT_RATE_LIMIT", "0"),
            ("SIGN_IN_RATE_LIMIT", "5/min,10"),
        ])
        .unwrap();
        assert_eq!((s.api_rate, s.widget_connect_rate), (None, None));
        assert_eq!(s.sign_in_rate.unwrap().to_string(), "5/min,10");
        let e = settings(&[("DATA_DIR", d), ("API_RATE_LIMIT", "lots")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "API_RATE_LIMIT must be a rate such as 100/s, 30/min or 500/h, optionally with a burst (100/s,200), or off; not \"lots\""
        );
    }

    #[test]
    fn a_malformed_secret_key_is_a_configuration_error() {
        let dir = tmp();
        let d = dir.to_str().unwrap();
        for bad in ["short", &"ab".repeat(31), &"zz".repeat(32)] {
            let e = settings(&[("DATA_DIR", d), ("SECRET_KEY", bad)]).unwrap_err();
            assert!(matches!(e, ConfigError::SecretKey), "{bad}: {e}");
        }
        assert!(settings(&[("DATA_DIR", d), ("SECRET_KEY", &"AB".repeat(32))]).is_ok());
    }

    #[test]
    fn secrets_do_not_print() {
        let dir = tmp();
        let key = "deadbeef".repeat(8);
        let token = "cafebabe".repeat(4);
        let s =
            settings(&[("DATA_DIR", dir.to_str().unwrap()), ("SECRET_KEY", &key), ("METRICS_TOKEN", &token)]).unwrap();
        assert!(!format!("{s:?}").contains("deadbeef"));
        assert!(!format!("{s:?}").contains("cafebabe"));
    }

    #[test]
    fn a_metrics_token_is_optional_and_checked() {
        let d = "/tmp";
        assert!(settings(&[("DATA_DIR", d)]).unwrap().metrics_token.is_none());
        assert!(settings(&[("DATA_DIR", d), ("METRICS_TOKEN", " ")]).unwrap().metrics_token.is_none());
        let s = settings(&[("DATA_DIR", d), ("METRICS_TOKEN", "scrape-Token_0123.~+/")]).unwrap();
        assert_eq!(s.metrics_token.unwrap().expose(), "scrape-Token_0123.~+/");
        for bad in ["short", "has a space in it!", "quote\"0123456789abcdef", &"x".repeat(257)] {
            let e = settings(&[("DATA_DIR", d), ("METRICS_TOKEN", bad)]).unwrap_err();
            assert!(matches!(e, ConfigError::MetricsToken), "{bad}: {e}");
            assert!(!e.to_string().contains(bad), "the error does not repeat the token");
        }
    }
}
