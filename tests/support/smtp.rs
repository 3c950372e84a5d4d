//! An SMTP sink for the tests: a minimal ESMTP server on 127.0.0.1:0 that
//! keeps every message it accepts (envelope and raw data, dot-unstuffed),
//! lets a test wait for N messages without sleeping, and can answer the
//! next K commands of a stage with a given code (451, 550…). It speaks
//! greeting, EHLO/HELO (advertising 8BITMIME, SMTPUTF8 and AUTH PLAIN
//! LOGIN; no STARTTLS), AUTH, MAIL FROM, RCPT TO, DATA, RSET, NOOP, QUIT.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpListener, TcpStream,
    },
    sync::watch,
    task::JoinHandle,
};

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent after DATA (CRLF line ends, dots unstuffed).
    pub data: String,
    /// (user, password) the connection signed in with, if it did.
    pub auth: Option<(String, String)>,
}

/// Where a fault is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    MailFrom,
    RcptTo,
    /// After the message's data (its final dot).
    Data,
}

struct Fault {
    stage: Stage,
    code: u16,
    left: usize,
}

#[derive(Default)]
struct Inner {
    messages: Mutex<Vec<Received>>,
    faults: Mutex<Vec<Fault>>,
    connections: AtomicUsize,
}

pub struct SmtpSink {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    count: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner::default());
        let (tx, count) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let task = {
            let inner = inner.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    inner.connections.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(session(stream, inner.clone(), tx.clone()));
                }
            })
        };
        SmtpSink { addr, inner, count, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answers the next `times` commands of `stage` with `code`.
    pub fn fail_next(&self, stage: Stage, times: usize, code: u16) {
        self.inner.faults.lock().unwrap().push(Fault { stage, code, left: times });
    }

    pub fn messages(&self) -> Vec<Received> {
        self.inner.messages.lock().unwrap().clone()
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` messages were accepted (fails after 10 s).
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let mut count = self.count.clone();
        tokio::time::timeout(Duration::from_secs(10), count.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("the sink did not get {n} messages within 10 s ({:?} so far)", self.messages()))
            .unwrap();
        self.messages()
    }
}

fn fault(inner: &Inner, stage: Stage) -> Option<u16> {
    let mut faults = inner.faults.lock().unwrap();
    let f = faults.iter_mut().find(|f| f.stage == stage && f.left > 0)?;
    f.left -= 1;
    Some(f.code)
}

fn fault_line(code: u16) -> String {
    let text = match code / 100 {
        4 => "4.3.0 Try again later",
        _ => "5.1.1 Refused",
    };
    format!("{code} {text}\r\n")
}

/// The address inside `FROM:<a@b> PARAMS` / `TO:<a@b>`.
fn angle(arg: &str) -> String {
    let start = arg.find('<').map(|i| i + 1).unwrap_or(0);
    let end = arg[start..].find('>').map(|i| i + start).unwrap_or(arg.len());
    arg[start..end].to_string()
}

fn plain_credentials(b64: &str) -> Option<(String, String)> {
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let mut parts = raw.split(|b| *b == 0);
    let _authzid = parts.next()?;
    let user = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let pass = String::from_utf8(parts.next()?.to_vec()).ok()?;
    Some((user, pass))
}

fn b64_text(b64: &str) -> String {
    String::from_utf8(STANDARD.decode(b64.trim()).unwrap_or_default()).unwrap_or_default()
}

async fn send(w: &mut OwnedWriteHalf, s: &str) -> bool {
    w.write_all(s.as_bytes()).await.is_ok()
}

async fn read_line(lines: &mut BufReader<OwnedReadHalf>, line: &mut String) -> bool {
    line.clear();
    matches!(lines.read_line(line).await, Ok(n) if n > 0)
}

async fn session(stream: TcpStream, inner: Arc<Inner>, count: Arc<watch::Sender<usize>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if !send(&mut write, "220 sink.test ESMTP ready\r\n").await {
        return;
    }
    let (mut from, mut to, mut auth): (Option<String>, Vec<String>, Option<(String, String)>) = (None, vec![], None);
    let mut line = String::new();
    while read_line(&mut lines, &mut line).await {
        let cmd = line.trim_end_matches(['\r', '\n']).to_string();
        let upper = cmd.to_ascii_uppercase();
        let answer = if upper.starts_with("EHLO") {
            "250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 10485760\r\n".to_string()
        } else if upper.starts_with("HELO") {
            "250 sink.test\r\n".into()
        } else if let Some(rest) = upper.strip_prefix("AUTH PLAIN") {
            let arg = cmd[cmd.len() - rest.len()..].trim().to_string();
            let creds = if arg.is_empty() {
                if !send(&mut write, "334 \r\n").await || !read_line(&mut lines, &mut line).await {
                    return;
                }
                plain_credentials(&line)
            } else {
                plain_credentials(&arg)
            };
            auth = creds;
            let ok = if auth.is_some() { "235 2.7.0 Accepted\r\n" } else { "535 5.7.8 Bad credentials\r\n" };
            ok.to_string()
        } else if upper.starts_with("AUTH LOGIN") {
            if !send(&mut write, "334 VXNlcm5hbWU6\r\n").await || !read_line(&mut lines, &mut line).await {
                return;
            }
            let user = b64_text(&line);
            if !send(&mut write, "334 UGFzc3dvcmQ6\r\n").await || !read_line(&mut lines, &mut line).await {
                return;
            }
            auth = Some((user, b64_text(&line)));
            "235 2.7.0 Accepted\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            match fault(&inner, Stage::MailFrom) {
                Some(code) => fault_line(code),
                None => {
                    from = Some(angle(&cmd[10..]));
                    to.clear();
                    "250 2.1.0 OK\r\n".into()
                }
            }
        } else if upper.starts_with("RCPT TO:") {
            match (fault(&inner, Stage::RcptTo), &from) {
                (Some(code), _) => fault_line(code),
                (None, None) => "503 5.5.1 MAIL first\r\n".into(),
                (None, Some(_)) => {
                    to.push(angle(&cmd[8..]));
                    "250 2.1.5 OK\r\n".into()
                }
            }
        } else if upper == "DATA" {
            if from.is_none() || to.is_empty() {
                "503 5.5.1 RCPT first\r\n".into()
            } else {
                if !send(&mut write, "354 End data with <CR><LF>.<CR><LF>\r\n").await {
                    return;
                }
                let mut data = String::new();
                loop {
                    if !read_line(&mut lines, &mut line).await {
                        return;
                    }
                    let l = line.trim_end_matches(['\r', '\n']);
                    if l == "." {
                        break;
                    }
                    // Dot-unstuffing (RFC 5321 4.5.2).
                    data.push_str(l.strip_prefix('.').filter(|_| l.starts_with("..")).unwrap_or(l));
                    data.push_str("\r\n");
                }
                let answer = match fault(&inner, Stage::Data) {
                    Some(code) => fault_line(code),
                    None => {
                        let n = {
                            let mut m = inner.messages.lock().unwrap();
                            m.push(Received {
                                from: from.clone().unwrap_or_default(),
                                to: to.clone(),
                                data,
                                auth: auth.clone(),
                            });
                            m.len()
                        };
                        count.send_replace(n);
                        "250 2.0.0 Queued\r\n".into()
                    }
                };
                from = None;
                to.clear();
                answer
            }
        } else if upper == "RSET" {
            from = None;
            to.clear();
            "250 2.0.0 OK\r\n".into()
        } else if upper == "NOOP" {
            "250 2.0.0 OK\r\n".into()
        } else if upper == "QUIT" {
            let _ = send(&mut write, "221 2.0.0 Bye\r\n").await;
            return;
        } else {
            "502 5.5.2 Command not recognised\r\n".into()
        };
        if !send(&mut write, &answer).await {
            return;
        }
    }
}

/// A message's header (the first with that name), unfolded.
pub fn header(data: &str, name: &str) -> Option<String> {
    let head = data.split("\r\n\r\n").next()?;
    let mut out: Option<String> = None;
    let mut current: Option<String> = None;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(c) = current.as_mut() {
                c.push_str(line);
            }
            continue;
        }
        if let Some(c) = current.take() {
            if out.is_none() {
                out = Some(c);
            }
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case(name) {
                current = Some(v.trim().to_string());
            }
        }
    }
    out.or(current)
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?…?=` and `?q?`).
pub fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while !rest.is_empty() {
        if let Some(start) = rest.find("=?") {
            let between = &rest[..start];
            if !(last_was_word && between.trim().is_empty()) {
                out.push_str(between);
            }
            let word = &rest[start + 2..];
            let parts: Vec<&str> = word.splitn(3, '?').collect();
            if parts.len() == 3 {
                if let Some(end) = parts[2].find("?=") {
                    let text = &parts[2][..end];
                    let bytes = if parts[1].eq_ignore_ascii_case("b") {
                        STANDARD.decode(text).unwrap_or_default()
                    } else {
                        quoted_printable(&text.replace('_', " "))
                    };
                    out.push_str(&String::from_utf8_lossy(&bytes));
                    let consumed = 2 + parts[0].len() + 1 + parts[1].len() + 1 + end + 2;
                    rest = &rest[start + consumed..];
                    last_was_word = true;
                    continue;
                }
            }
            out.push_str(&rest[start..start + 2]);
            rest = &rest[start + 2..];
            last_was_word = false;
        } else {
            out.push_str(rest);
            break;
        }
    }
    out
}

fn quoted_printable(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if b.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if let Some(hex) = s.get(i + 1..i + 3) {
                if let Ok(v) = u8::from_str_radix(hex, 16) {
                    out.push(v);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The parts of a multipart message: (content type, decoded body), in order.
pub fn parts(data: &str) -> Vec<(String, String)> {
    let content_type = header(data, "Content-Type").unwrap_or_default();
    let Some(boundary) = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"').to_string())
    else {
        return vec![];
    };
    let delimiter = format!("--{boundary}");
    data.split(&delimiter)
        .skip(1)
        .filter(|p| !p.starts_with("--"))
        .filter_map(|p| {
            let p = p.strip_prefix("\r\n").unwrap_or(p);
            let (head, body) = p.split_once("\r\n\r\n")?;
            let head = format!("{head}\r\n\r\n");
            let ty = header(&head, "Content-Type").unwrap_or_default();
            let cte = header(&head, "Content-Transfer-Encoding").unwrap_or_default().to_ascii_lowercase();
            let body = body.strip_suffix("\r\n").unwrap_or(body);
            let decoded = match cte.as_str() {
                "base64" => {
                    String::from_utf8_lossy(&STANDARD.decode(body.replace("\r\n", "")).unwrap_or_default()).to_string()
                }
                "quoted-printable" => String::from_utf8_lossy(&quoted_printable(body)).to_string(),
                _ => body.to_string(),
            };
            Some((ty, decoded.replace("\r\n", "\n")))
        })
        .collect()
}
