//! Bounds on open connections, checked as each one is accepted, before a
//! byte of it is read: at most `MAX_CONNECTIONS` on this instance, and at
//! most `MAX_CONNECTIONS_PER_ADDRESS` from one client address (an IPv6
//! address by its /64; not counted behind a trusted proxy, whose address
//! every connection shares). A widget's WebSocket keeps the slot of the
//! connection it was upgraded from, so open widgets count too.
//!
//! A connection past a bound is answered at once with a fixed response
//! (503 `too_many_connections` for the instance, 429 for one address, both
//! with `Retry-After` and the REST API's JSON error body) and closed: no
//! request is parsed, no handler runs, and the connections already open
//! keep the server's time. Those answers are themselves bounded
//! (`MAX_REFUSING`): past that many, a connection is just closed.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::limits::address_bucket;

/// Refusals being written at once; past this a connection is closed unanswered.
const MAX_REFUSING: usize = 1024;
/// How long a refusal may take to go out, and to read what the client had sent.
const REFUSAL_WITHIN: Duration = Duration::from_secs(1);

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The instance holds `MAX_CONNECTIONS` already.
    Instance,
    /// This client address holds `MAX_CONNECTIONS_PER_ADDRESS` already.
    Address,
}

impl Refused {
    /// The whole HTTP response sent in its place.
    pub fn response(self) -> Vec<u8> {
        let (status, description) = match self {
            Refused::Instance => {
                ("503 Service Unavailable", "This server has as many connections open as it takes. Try again shortly.")
            }
            Refused::Address => (
                "429 Too Many Requests",
                "Too many connections are open from this address. Close some, or try again shortly.",
            ),
        };
        let body =
            serde_json::json!({ "error": { "code": "too_many_connections", "description": description } }).to_string();
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

/// The open connections of this instance, in all and per client address.
#[derive(Debug)]
pub struct Connections {
    max: usize,
    /// `None`: not counted per address.
    max_per_address: Option<usize>,
    open: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    refusing: AtomicUsize,
}

/// One open connection's place in the count, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    connections: Arc<Connections>,
    address: Option<IpAddr>,
}

impl Connections {
    pub fn new(max: usize, max_per_address: Option<usize>) -> Arc<Connections> {
        Arc::new(Connections {
            max,
            max_per_address,
            open: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
            refusing: AtomicUsize::new(0),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Takes a place for a connection from `peer`, or says which bound it is past.
    pub fn try_open(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refused> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Instance);
        }
        let address = match self.max_per_address {
            None => None,
            Some(max) => {
                let bucket = address_bucket(peer);
                let mut per = self.per_address.lock().unwrap_or_else(PoisonError::into_inner);
                let count = per.entry(bucket).or_insert(0);
                if *count >= max {
                    drop(per);
                    self.open.fetch_sub(1, Ordering::AcqRel);
                    return Err(Refused::Address);
                }
                *count += 1;
                Some(bucket)
            }
        };
        Ok(Slot { connections: self.clone(), address })
    }

    /// Answers a refused connection with its fixed response and closes it,
    /// on a task of its own (or closes it at once when too many refusals
    /// are being written already).
    pub fn refuse(self: &Arc<Self>, mut stream: tokio::net::TcpStream, why: Refused) {
        if self.refusing.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSING {
            self.refusing.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let answer = async {
                stream.write_all(&why.response()).await?;
                stream.shutdown().await?;
                // Read what the client had sent, so that closing does not
                // reset the connection before it reads the answer.
                let mut sink = [0u8; 4096];
                while stream.read(&mut sink).await? > 0 {}
                std::io::Result::Ok(())
            };
            let _ = tokio::time::timeout(REFUSAL_WITHIN, answer).await;
            this.refusing.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let connections = &self.connections;
        if let Some(address) = self.address {
            let mut per = connections.per_address.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = per.get_mut(&address) {
                *count -= 1;
                if *count == 0 {
                    per.remove(&address);
                }
            }
        }
        connections.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_instance_bound_counts_every_connection_until_it_closes() {
        let c = Connections::new(2, None);
        let a = c.try_open(ip("10.0.0.1")).unwrap();
        let _b = c.try_open(ip("10.0.0.2")).unwrap();
        assert_eq!(c.try_open(ip("10.0.0.3")).unwrap_err(), Refused::Instance);
        assert_eq!(c.open(), 2);
        drop(a);
        assert_eq!(c.open(), 1);
        c.try_open(ip("10.0.0.3")).unwrap();
    }

    #[test]
    fn the_address_bound_counts_an_ipv6_host_by_its_slash_64() {
        let c = Connections::new(100, Some(2));
        let a = c.try_open(ip("2001:db8::1")).unwrap();
        let _b = c.try_open(ip("2001:db8::ffff:2")).unwrap();
        assert_eq!(c.try_open(ip("2001:db8::3")).unwrap_err(), Refused::Address);
        // A refusal takes no place: another address still gets in.
        assert_eq!(c.open(), 2);
        let _other = c.try_open(ip("2001:db8:0:1::1")).unwrap();
        let _v4 = c.try_open(ip("192.0.2.1")).unwrap();
        drop(a);
        c.try_open(ip("2001:db8::3")).unwrap();
        assert!(c.per_address.lock().unwrap().len() <= 3);
    }

    #[test]
    fn an_address_with_no_connection_left_is_forgotten() {
        let c = Connections::new(100, Some(5));
        let slots: Vec<_> = (0..5).map(|_| c.try_open(ip("192.0.2.9")).unwrap()).collect();
        drop(slots);
        assert!(c.per_address.lock().unwrap().is_empty());
        assert_eq!(c.open(), 0);
    }

    #[test]
    fn refusals_are_whole_http_responses_with_a_json_body() {
        for (why, status) in [(Refused::Instance, "503"), (Refused::Address, "429")] {
            let text = String::from_utf8(why.response()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
            assert!(head.contains("\r\nRetry-After: 1"));
            assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(json["error"]["code"], "too_many_connections");
        }
    }
}
