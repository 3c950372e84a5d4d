//! The first-run setup token. Whoever reaches a fresh murmur first could
//! make themselves its owner, so when murmur can be reached from other
//! machines, creating the owner account also needs a one-time token that
//! only someone with access to the server has: generated at the first start
//! while no account exists, kept in `$DATA_DIR/setup.token` (mode 0600),
//! printed in the log, and deleted once setup is done. A murmur reachable
//! only from its own machine (listening on loopback, no proxy in front, a
//! loopback `PUBLIC_URL`) needs none.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Mutex,
};

use super::crypto::{new_secret, sha256_hex};

pub const TOKEN_FILE: &str = "setup.token";

/// What the setup form checks its token against.
#[derive(Debug)]
pub struct SetupGate {
    path: PathBuf,
    /// `None`: no token is asked for (reachable only locally, or setup done).
    token: Mutex<Option<String>>,
}

/// Whether only this machine can reach murmur: it listens on a loopback
/// address, no reverse proxy forwards to it (`TRUST_PROXY`), and the public
/// URL, if set, is loopback too. A proxy on the same host makes a loopback
/// listener public, which is why the last two count.
pub fn reachable_only_locally(listen: SocketAddr, public_url: Option<&str>, trust_proxy: bool) -> bool {
    let public_is_local = public_url.is_none_or(|u| {
        url::Url::parse(u).ok().is_some_and(|u| match u.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        })
    });
    listen.ip().is_loopback() && !trust_proxy && public_is_local
}

impl SetupGate {
    /// A gate that asks for nothing (setup done, or reachable only locally);
    /// also removes a token file left from before.
    pub fn open(data_dir: &Path) -> SetupGate {
        let path = data_dir.join(TOKEN_FILE);
        let _ = std::fs::remove_file(&path);
        SetupGate { path, token: Mutex::new(None) }
    }

    /// A gate that asks for the token in `$DATA_DIR/setup.token`, made now
    /// unless an earlier start left one (so a restart keeps the token the
    /// log already showed).
    pub fn with_token(data_dir: &Path) -> std::io::Result<SetupGate> {
        let path = data_dir.join(TOKEN_FILE);
        let token = match std::fs::read_to_string(&path) {
            Ok(t) if t.trim().len() >= 32 => t.trim().to_string(),
            Ok(_) => {
                std::fs::remove_file(&path)?;
                write_token(&path)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_token(&path)?,
            Err(e) => return Err(e),
        };
        Ok(SetupGate { path, token: Mutex::new(Some(token)) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the setup form must carry a token.
    pub fn required(&self) -> bool {
        self.token.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// The token, for the log at start and for tests.
    pub fn token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `given` opens the gate (always, when no token is asked for).
    /// Compared by hash, so the time taken says nothing about the token.
    pub fn admits(&self, given: &str) -> bool {
        match &*self.token.lock().unwrap_or_else(|e| e.into_inner()) {
            None => true,
            Some(token) => sha256_hex(given.trim()) == sha256_hex(token),
        }
    }

    /// Setup is done: the token is used up, here and on disk.
    pub fn consume(&self) {
        let had = self.token.lock().unwrap_or_else(|e| e.into_inner()).take();
        if had.is_some() {
            if let Err(e) = std::fs::remove_file(&self.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot delete the used setup token");
                }
            }
        }
    }
}

fn write_token(path: &Path) -> std::io::Result<String> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let token = new_secret();
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(token.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_loopback_listener_without_a_proxy_is_local() {
        let lo: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let lo6: SocketAddr = "[::1]:3000".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        let lan: SocketAddr = "192.168.1.5:3000".parse().unwrap();
        assert!(reachable_only_locally(lo, None, false));
        assert!(reachable_only_locally(lo6, None, false));
        assert!(reachable_only_locally(lo, Some("http://localhost:3000"), false));
        assert!(reachable_only_locally(lo, Some("http://127.0.0.1:3000"), false));
        assert!(!reachable_only_locally(any, None, false));
        assert!(!reachable_only_locally(lan, None, false));
        assert!(!reachable_only_locally(lo, None, true), "a proxy forwards the world to loopback");
        assert!(!reachable_only_locally(lo, Some("https://murmur.example.com"), false));
    }

    #[test]
    fn the_token_file_is_private_kept_across_restarts_and_consumed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("murmur-setup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gate = SetupGate::with_token(&dir).unwrap();
        let token = gate.token().unwrap();
        let mode = std::fs::metadata(gate.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(SetupGate::with_token(&dir).unwrap().token().unwrap(), token, "a restart keeps it");
        assert!(!gate.admits(""));
        assert!(!gate.admits("nope"));
        assert!(gate.admits(&format!(" {token} ")));
        gate.consume();
        assert!(!gate.path().exists());
        assert!(!gate.required());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
