//! The email channel: one message to one user over the app's SMTP server
//! (`lettre`), and the signed links that unsubscribe a user from email.
//!
//! A message is `multipart/alternative`: a plain-text part (the HTML body
//! through `domain::email::html_to_text`) then the HTML body in a minimal
//! document; both end with the unsubscribe link, which is also offered to
//! mail clients as `List-Unsubscribe` with RFC 8058 one-click
//! (`List-Unsubscribe-Post`). The Message-ID is made from the delivery's id,
//! so a retried delivery is the same message to its receivers.
//!
//! Transports (each with its connection pool) are kept per server settings
//! and password, so a large send reuses its connections. The password is
//! never logged: `SmtpTarget`'s `Debug` leaves it out, and errors carry
//! only the server's reply.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, Mac};
use lettre::{
    message::{
        header::{HeaderName, HeaderValue},
        Mailbox, MultiPart, SinglePart,
    },
    transport::smtp::{authentication::Credentials, PoolConfig},
    Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use sha2::{Digest, Sha256};

use crate::domain::{
    email::{html_to_text, SmtpSecurity, SmtpSettings},
    template::escape_html,
};

/// One email to one user.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    /// The delivery's id: the Message-ID is `<{message_id}@{domain of the
    /// from address}>`, so a retry of the same delivery is the same
    /// message to its receivers.
    pub message_id: String,
    /// The sender's display name (the teammate, or the app).
    pub from_name: String,
    pub to: String,
    pub to_name: Option<String>,
    pub subject: String,
    /// The sanitised HTML body (`domain::template::render_html`).
    pub html: String,
    /// The user's unsubscribe link (`unsubscribe_url`).
    pub unsubscribe_url: String,
}

/// Where an app's mail goes: its settings and its opened password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    pub settings: SmtpSettings,
    pub password: Option<String>,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTarget")
            .field("settings", &self.settings)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Loads an app's SMTP target (password opened): `None` when email is off
/// for the app or the target cannot be loaded. The server makes one
/// (`server::email::smtp_target_fn`), so engine code needs neither the
/// store's secrets nor the server key.
pub type TargetFn = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Option<SmtpTarget>> + Send>> + Send + Sync>;

/// Makes a user's unsubscribe link from (app id, app user id)
/// (`server::email::unsubscribe_url_fn`).
pub type UnsubscribeUrlFn = Arc<dyn Fn(&str, &str) -> String + Send + Sync>;

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailError {
    /// Worth trying again later: a 4xx reply, a refused or lost
    /// connection, a timeout, a TLS failure.
    Transient(String),
    /// Trying again will not help: a 5xx reply (rejected recipient,
    /// failed sign-in, message refused), a bad address, settings the
    /// server cannot use.
    Permanent(String),
}

impl MailError {
    pub fn is_transient(&self) -> bool {
        matches!(self, MailError::Transient(_))
    }
    pub fn message(&self) -> &str {
        match self {
            MailError::Transient(m) | MailError::Permanent(m) => m,
        }
    }
}

impl std::fmt::Display for MailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MailError::Transient(m) => write!(f, "temporary failure: {m}"),
            MailError::Permanent(m) => write!(f, "permanent failure: {m}"),
        }
    }
}

impl std::error::Error for MailError {}

fn from_smtp(e: &lettre::transport::smtp::Error) -> MailError {
    // The error's text is the server's reply or the network's complaint;
    // lettre never puts credentials in it.
    let text = e.to_string();
    if e.is_permanent() || e.is_client() {
        MailError::Permanent(text)
    } else {
        MailError::Transient(text)
    }
}

/// How many transports (one per distinct server, user and password) are
/// kept; beyond it the cache starts again (an old one finishes in flight).
const MAX_TRANSPORTS: usize = 64;

/// Sends email over SMTP. Cheap to share (`Arc`); transports are made on
/// first use and kept.
pub struct Mailer {
    timeout: Duration,
    transports: Mutex<HashMap<[u8; 32], AsyncSmtpTransport<Tokio1Executor>>>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

/// The cache key of a target: a digest, so the map holds no password.
fn target_key(target: &SmtpTarget) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&target.settings).unwrap_or_default());
    h.update([0xff]);
    if let Some(p) = &target.password {
        h.update([1]);
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

impl Mailer {
    /// `timeout`: for connecting, and for each whole send.
    pub fn new(timeout: Duration) -> Mailer {
        Mailer { timeout, transports: Mutex::new(HashMap::new()) }
    }

    fn transport(&self, target: &SmtpTarget) -> Result<([u8; 32], AsyncSmtpTransport<Tokio1Executor>), MailError> {
        let key = target_key(target);
        let mut cache = self.transports.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = cache.get(&key) {
            return Ok((key, t.clone()));
        }
        let s = &target.settings;
        let builder = match s.security {
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.as_str()),
            SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                .map_err(|e| MailError::Permanent(format!("cannot use {} for STARTTLS: {e}", s.host)))?,
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)
                .map_err(|e| MailError::Permanent(format!("cannot use {} for TLS: {e}", s.host)))?,
        };
        let mut builder = builder
            .port(s.port)
            .timeout(Some(self.timeout))
            .pool_config(PoolConfig::new().max_size(8).idle_timeout(Duration::from_secs(60)));
        if let Some(user) = &s.username {
            builder = builder.credentials(Credentials::new(user.clone(), target.password.clone().unwrap_or_default()));
        }
        let transport = builder.build();
        if cache.len() >= MAX_TRANSPORTS {
            // Dropped pools close their idle connections themselves.
            cache.clear();
        }
        cache.insert(key, transport.clone());
        Ok((key, transport))
    }

    /// Forgets a transport whose connection may be in an unknown state.
    async fn discard(&self, key: &[u8; 32]) {
        let removed = self.transports.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        if let Some(t) = removed {
            t.shutdown().await;
        }
    }

    /// Sends one message. `Err(Transient)`: try again later;
    /// `Err(Permanent)`: do not.
    pub async fn send(&self, target: &SmtpTarget, mail: &OutgoingMail) -> Result<(), MailError> {
        let message = build_message(&target.settings, mail)?;
        let (key, transport) = self.transport(target)?;
        match tokio::time::timeout(self.timeout, transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                let err = from_smtp(&e);
                let (host, port) = (&target.settings.host, target.settings.port);
                tracing::warn!(%host, port, error = %err, "email not sent");
                Err(err)
            }
            Err(_) => {
                // The connection was left mid-conversation: never reuse it.
                self.discard(&key).await;
                tracing::warn!(host = %target.settings.host, port = target.settings.port, "email timed out");
                Err(MailError::Transient(format!("no answer from the SMTP server within {:?}", self.timeout)))
            }
        }
    }
}

/// No line breaks or other control characters in a header's text.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_string()
}

fn parse_address(raw: &str, what: &str) -> Result<Address, MailError> {
    raw.trim().parse::<Address>().map_err(|e| MailError::Permanent(format!("{what} {raw:?} is not an address: {e}")))
}

/// The Message-ID's domain: the from address's, in ASCII (IDNA).
fn ascii_domain(domain: &str) -> String {
    url::Url::parse(&format!("http://{domain}/"))
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .filter(|h| h.is_ascii() && !h.is_empty())
        .unwrap_or_else(|| "murmur.invalid".to_string())
}

fn message_id(id: &str, from_domain: &str) -> Result<String, MailError> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b))
        && !id.starts_with('.')
        && !id.ends_with('.')
        && !id.contains("..");
    if !ok {
        return Err(MailError::Permanent(format!("{id:?} cannot be a Message-ID")));
    }
    Ok(format!("<{id}@{}>", ascii_domain(from_domain)))
}

/// The text part: the body as text, then the unsubscribe link.
pub fn text_body(mail: &OutgoingMail) -> String {
    let body = html_to_text(&mail.html);
    format!("{body}\n\n--\nUnsubscribe from these emails: {}\n", mail.unsubscribe_url)
}

/// The HTML part: the body in a minimal document, the unsubscribe link in
/// a footer.
pub fn html_body(mail: &OutgoingMail) -> String {
    let subject = escape_html(&one_line(&mail.subject));
    let url = escape_html(&mail.unsubscribe_url);
    let from = escape_html(&one_line(&mail.from_name));
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{subject}</title></head>\n\
<body style=\"margin:0;padding:0;background:#ffffff;\">\n\
<div style=\"max-width:600px;margin:0 auto;padding:24px;\
font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:16px;line-height:1.5;color:#1f2328;\">\n{html}\n\
<hr style=\"border:none;border-top:1px solid #d0d7de;margin:32px 0 16px;\">\n\
<p style=\"font-size:12px;color:#57606a;\">Sent by {from}. \
<a href=\"{url}\" style=\"color:#57606a;\">Unsubscribe</a> from these emails.</p>\n\
</div>\n</body></html>\n",
        html = mail.html,
    )
}

/// The whole message, headers and both parts.
pub fn build_message(settings: &SmtpSettings, mail: &OutgoingMail) -> Result<Message, MailError> {
    let url = mail.unsubscribe_url.trim();
    if url.is_empty() || !url.is_ascii() || url.chars().any(|c| c.is_ascii_whitespace() || c.is_ascii_control()) {
        return Err(MailError::Permanent(format!("{url:?} cannot be an unsubscribe link")));
    }
    let from = Mailbox::new(Some(one_line(&mail.from_name)).filter(|n| !n.is_empty()), {
        parse_address(&settings.from_address, "the from address")?
    });
    let to = Mailbox::new(
        mail.to_name.as_deref().map(one_line).filter(|n| !n.is_empty()),
        parse_address(&mail.to, "the recipient")?,
    );
    let unsubscribe = HeaderName::new_from_ascii_str("List-Unsubscribe");
    let one_click = HeaderName::new_from_ascii_str("List-Unsubscribe-Post");
    Message::builder()
        .from(from)
        .to(to)
        .subject(one_line(&mail.subject))
        .message_id(Some(message_id(&mail.message_id, settings.from_domain())?))
        .raw_header(HeaderValue::new(unsubscribe, format!("<{url}>")))
        .raw_header(HeaderValue::new(one_click, "List-Unsubscribe=One-Click".to_string()))
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::plain(text_body(mail)))
                .singlepart(SinglePart::html(html_body(mail))),
        )
        .map_err(|e| MailError::Permanent(format!("the message cannot be built: {e}")))
}

type HmacSha256 = Hmac<Sha256>;

const TOKEN_VERSION: &str = "u1";

fn token_mac(key: &[u8; 32], payload: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(TOKEN_VERSION.as_bytes());
    mac.update(b"\0");
    mac.update(payload);
    mac
}

/// A URL-safe token naming one user of one app, authenticated with
/// HMAC-SHA256 under `key` (`server::email::unsubscribe_key`): base64url of
/// `app_id \n app_user_id`, a dot, base64url of the MAC. It does not
/// expire: an unsubscribe link must keep working.
pub fn unsubscribe_token(key: &[u8; 32], app_id: &str, app_user_id: &str) -> String {
    let payload = format!("{app_id}\n{app_user_id}");
    let tag = token_mac(key, payload.as_bytes()).finalize().into_bytes();
    format!("{}.{}", URL_SAFE_NO_PAD.encode(payload.as_bytes()), URL_SAFE_NO_PAD.encode(tag))
}

/// The (app id, app user id) a token names, if it was made with `key` and
/// is unchanged (the MAC is checked in constant time).
pub fn read_unsubscribe_token(key: &[u8; 32], token: &str) -> Option<(String, String)> {
    if token.len() > 1024 {
        return None;
    }
    let (payload, tag) = token.split_once('.')?;
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    token_mac(key, &payload).verify_slice(&tag).ok()?;
    let text = String::from_utf8(payload).ok()?;
    let (app, user) = text.split_once('\n')?;
    (!app.is_empty() && !user.is_empty()).then(|| (app.to_string(), user.to_string()))
}

/// The unsubscribe page's address for a user: `{public_url}/unsubscribe/{token}`.
pub fn unsubscribe_url(public_url: &str, key: &[u8; 32], app_id: &str, app_user_id: &str) -> String {
    format!("{}/unsubscribe/{}", public_url.trim_end_matches('/'), unsubscribe_token(key, app_id, app_user_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [42; 32];

    #[test]
    fn tokens_round_trip_and_are_url_safe() {
        let t = unsubscribe_token(&KEY, "0123456789abcdef01234567", "89abcdef0123456789abcdef");
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'), "{t}");
        assert_eq!(
            read_unsubscribe_token(&KEY, &t),
            Some(("0123456789abcdef01234567".into(), "89abcdef0123456789abcdef".into()))
        );
        // Deterministic: the same user gets the same link in every email.
        assert_eq!(t, unsubscribe_token(&KEY, "0123456789abcdef01234567", "89abcdef0123456789abcdef"));
        assert_eq!(
            unsubscribe_url("https://m.example.com/", &KEY, "a", "u"),
            format!("https://m.example.com/unsubscribe/{}", unsubscribe_token(&KEY, "a", "u"))
        );
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let t = unsubscribe_token(&KEY, "app1", "user1");
        let (payload, tag) = t.split_once('.').unwrap();
        // Another user's payload with this token's MAC.
        let other = URL_SAFE_NO_PAD.encode("app1\nuser2");
        assert_eq!(read_unsubscribe_token(&KEY, &format!("{other}.{tag}")), None);
        // Every single-character change fails.
        for i in 0..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(b).unwrap();
            if changed != t {
                assert_eq!(read_unsubscribe_token(&KEY, &changed), None, "changed at {i}");
            }
        }
        // Another key, a cut MAC, garbage.
        assert_eq!(read_unsubscribe_token(&[1; 32], &t), None);
        assert_eq!(read_unsubscribe_token(&KEY, &format!("{payload}.{}", &tag[..tag.len() - 2])), None);
        assert_eq!(read_unsubscribe_token(&KEY, payload), None);
        for junk in ["", ".", "a.b", "!!!.???", &"A".repeat(5000)] {
            assert_eq!(read_unsubscribe_token(&KEY, junk), None, "{junk}");
        }
    }

    fn mail() -> OutgoingMail {
        OutgoingMail {
            message_id: "0a1b2c".into(),
            from_name: "Ada at Shop".into(),
            to: "bob@example.com".into(),
            to_name: Some("Bob".into()),
            subject: "Hello\r\nBcc: evil@x.io".into(),
            html: "<p>Hi <strong>Bob</strong>, see <a href=\"https://x.io/a?b=1&amp;c=2\">this</a></p>".into(),
            unsubscribe_url: "https://m.example.com/unsubscribe/tok".into(),
        }
    }

    fn settings() -> SmtpSettings {
        SmtpSettings::parse("smtp.example.com", "587", "start_tls", "", "team@shop.example").unwrap()
    }

    #[test]
    fn messages_carry_the_list_headers_and_both_parts() {
        let raw = String::from_utf8(build_message(&settings(), &mail()).unwrap().formatted()).unwrap();
        assert!(raw.contains("Message-ID: <0a1b2c@shop.example>"), "{raw}");
        assert!(raw.contains("List-Unsubscribe: <https://m.example.com/unsubscribe/tok>"), "{raw}");
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"), "{raw}");
        assert!(raw.contains("Subject: Hello  Bcc: evil@x.io"), "no header injection: {raw}");
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        let text = text_body(&mail());
        assert!(text.starts_with("Hi Bob, see this (https://x.io/a?b=1&c=2)\n"), "{text}");
        assert!(text.contains("https://m.example.com/unsubscribe/tok"));
        let html = html_body(&mail());
        assert!(html.contains("<a href=\"https://m.example.com/unsubscribe/tok\""), "{html}");
        assert!(html.contains(&mail().html));
    }

    #[test]
    fn bad_input_is_permanent() {
        let bad = |m: OutgoingMail| matches!(build_message(&settings(), &m), Err(MailError::Permanent(_)));
        assert!(bad(OutgoingMail { to: "not an address".into(), ..mail() }));
        assert!(bad(OutgoingMail { message_id: "<x>".into(), ..mail() }));
        assert!(bad(OutgoingMail { message_id: String::new(), ..mail() }));
        assert!(bad(OutgoingMail { unsubscribe_url: "https://x.io/a b".into(), ..mail() }));
        assert!(bad(OutgoingMail { unsubscribe_url: "https://x.io/\r\nX: y".into(), ..mail() }));
    }

    #[test]
    fn a_target_debug_hides_the_password() {
        let t = SmtpTarget { settings: settings(), password: Some("hunter22".into()) };
        assert!(!format!("{t:?}").contains("hunter22"));
        assert_ne!(target_key(&t), target_key(&SmtpTarget { password: Some("other".into()), ..t.clone() }));
        assert_ne!(target_key(&t), target_key(&SmtpTarget { password: None, ..t.clone() }));
    }
}
