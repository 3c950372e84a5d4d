//! The server binary as an operator meets it: bad configuration is one
//! clear line and a non-zero exit (never a panic), and SIGTERM stops it
//! cleanly.
//!
//! No test here listens on murmur's default address, 127.0.0.1:3000: a
//! newcomer runs these while murmur is open there. The tests hold that port
//! themselves when it is free, so a test that used it would fail here too.

mod support;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Holds 127.0.0.1:3000 (murmur's default) for the whole run if it is free;
/// if it is not, something else already holds it, which is the same case.
fn default_port_taken() {
    static HELD: std::sync::OnceLock<Option<std::net::TcpListener>> = std::sync::OnceLock::new();
    HELD.get_or_init(|| std::net::TcpListener::bind("127.0.0.1:3000").ok());
}

/// A port something else is listening on, held as long as the value lives.
fn taken_port() -> (std::net::TcpListener, String) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    (taken, addr)
}

/// The binary, with a clean environment and `vars`.
fn murmur(vars: &[(&str, &str)]) -> Command {
    default_port_taken();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_murmur"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    for k in
        ["DATABASE_URL", "DATA_DIR", "SECRET_KEY", "PUBLIC_URL", "TRUST_PROXY", "LEPTOS_SITE_ADDR", "RUST_BACKTRACE"]
    {
        cmd.env_remove(k);
    }
    cmd.env("RUST_LOG", "warn");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the binary, which must fail with `code` and `message`. Unless `vars`
/// name a listen address, it is given one that is already taken: a
/// configuration error must be reported before the port is bound.
fn fails_clearly(vars: &[(&str, &str)], code: i32, message: &str) {
    let (_taken, addr) = taken_port();
    let mut vars = vars.to_vec();
    if !vars.iter().any(|(k, _)| *k == "LEPTOS_SITE_ADDR") {
        vars.push(("LEPTOS_SITE_ADDR", &addr));
    }
    let out = murmur(&vars).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(stderr.contains(message), "expected {message:?} in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn malformed_database_url() {
    let dir = support::temp_dir();
    let dir = dir.to_str().unwrap();
    fails_clearly(
        &[("DATA_DIR", dir), ("DATABASE_URL", "mysql://localhost/db")],
        2,
        "configuration error: DATABASE_URL is malformed",
    );
    fails_clearly(&[("DATA_DIR", dir), ("DATABASE_URL", "postgres://u@h:99999999/db")], 2, "DATABASE_URL is malformed");
}

#[test]
fn unwritable_data_dir() {
    fails_clearly(&[("DATA_DIR", "/proc/murmur")], 2, "data directory /proc/murmur is not writable");
}

#[test]
fn bad_secret_key() {
    let dir = support::temp_dir();
    fails_clearly(
        &[("DATA_DIR", dir.to_str().unwrap()), ("SECRET_KEY", "short")],
        2,
        "configuration error: SECRET_KEY must be 64 hexadecimal characters",
    );
}

#[test]
fn malformed_key_file() {
    let dir = support::temp_dir();
    std::fs::write(dir.join("secret.key"), "not a key").unwrap();
    fails_clearly(&[("DATA_DIR", dir.to_str().unwrap())], 1, "does not hold 64 hexadecimal characters");
}

#[test]
fn port_in_use() {
    let (_taken, addr) = taken_port();
    let dir = support::temp_dir();
    fails_clearly(
        &[("DATA_DIR", dir.to_str().unwrap()), ("LEPTOS_SITE_ADDR", &addr)],
        1,
        &format!("cannot listen on {addr}"),
    );
}

#[test]
fn unreachable_postgres_is_a_clear_error() {
    let dir = support::temp_dir();
    fails_clearly(
        &[("DATA_DIR", dir.to_str().unwrap()), ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")],
        1,
        "cannot open the database",
    );
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    // A port free a moment ago (the binary binds it itself).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let dir = support::temp_dir();
    let mut child = murmur(&[("DATA_DIR", dir.to_str().unwrap()), ("LEPTOS_SITE_ADDR", &addr), ("RUST_LOG", "info")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            use std::io::{Read, Write};
            s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
                .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "server did not become healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A data directory of its own got a generated key, owner-only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("secret.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut logs = String::new();
    use std::io::Read;
    child.stdout.take().unwrap().read_to_string(&mut logs).unwrap();
    assert!(exit.success(), "exit {exit:?}; logs: {logs}");
    assert!(logs.contains("murmur stopped"), "{logs}");
    let _ = std::fs::remove_dir_all(&dir);
}
