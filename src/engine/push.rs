//! Web Push (RFC 8030): one encrypted message to one browser subscription.
//!
//! - VAPID (RFC 8292): the server's P-256 key pair (`VapidKeys`) signs a
//!   short-lived ES256 JWT naming the push service's origin; the push
//!   service checks it against the public key sent beside it (`k=`), the
//!   key the browser was given when it subscribed.
//! - Payload encryption (RFC 8291, the `aes128gcm` content coding of
//!   RFC 8188): an ephemeral ECDH agreement with the subscription's `p256dh`
//!   key, mixed with its `auth` secret, gives the input keying material;
//!   the record layer (content key and nonce, the padding delimiter,
//!   AES-128-GCM, the header) is `ece-native`, the RFC 8188 half of the
//!   web-push-native project. web-push-native's own `encrypt` is not used:
//!   it declares a record size equal to the ciphertext's length, where
//!   RFC 8291 §4 requires a larger one. Here the record size is 4096, as in
//!   the RFC's example, so the example is reproduced byte for byte (tests).
//! - Transport: one HTTPS POST per message over hyper's HTTP/1 client,
//!   rustls (ring) and the webpki roots. The endpoint comes from a browser,
//!   that is from anyone, so it must be https and every address its host
//!   resolves to must be globally routable (no loopback, private,
//!   link-local, … address: the SSRF guard); the connection goes to an
//!   address that was checked, never through a second lookup. Redirects are
//!   not followed. `allow_local_http` (tests only, set in code and never
//!   from the environment) also allows http:// and loopback addresses.
//! - Outcome: the push service's answer as what the caller does next
//!   (`PushOutcome`).
//!
//! Time is injected (`now_ms`): nothing here reads the clock.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hkdf::Hkdf;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use p256::{
    ecdsa::{signature::Signer, Signature, SigningKey},
    elliptic_curve::sec1::ToEncodedPoint,
    PublicKey, SecretKey,
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_rustls::{
    rustls::{self, pki_types::ServerName},
    TlsConnector,
};
use url::{Host, Url};

/// The largest payload `Pusher::send` accepts. A push service need not take
/// a body over 4096 bytes (RFC 8030 §7.2), and the body is the payload plus
/// the 86-byte header, the 1-byte padding delimiter and the 16-byte tag.
/// Keep payloads well under it (≤ 3 KB) to leave room for growth.
pub const MAX_PAYLOAD: usize = 4096 - 86 - 1 - 16;

/// The record size declared in the body's header: larger than the single
/// record for any payload up to `MAX_PAYLOAD` (RFC 8291 §4).
const RECORD_SIZE: u32 = 4096;

/// The longest endpoint URL a subscription may carry.
const MAX_ENDPOINT: usize = 1000;

/// How long a VAPID JWT is valid (RFC 8292 allows at most 24 hours).
const VAPID_LIFETIME_S: i64 = 12 * 60 * 60;

/// A Retry-After beyond this is taken as this.
const MAX_RETRY_AFTER_MS: i64 = 24 * 60 * 60 * 1000;

/// How much of an error answer's body is kept for the outcome's reason.
const SNIPPET_BYTES: usize = 512;

/// The application server's VAPID key pair (P-256).
#[derive(Clone, PartialEq, Eq)]
pub struct VapidKeys {
    /// The public key as the widget hands it to `pushManager.subscribe`
    /// (`applicationServerKey`): the 65-byte uncompressed point, base64url
    /// without padding.
    pub public: String,
    /// The private scalar, big-endian.
    pub private: [u8; 32],
}

/// Never prints the private key.
impl std::fmt::Debug for VapidKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKeys").field("public", &self.public).finish_non_exhaustive()
    }
}

impl VapidKeys {
    /// A new key pair from the operating system's random source.
    pub fn generate() -> VapidKeys {
        Self::from_secret(&random_secret())
    }

    /// The key pair of a stored private key (32 bytes, big-endian); `None`
    /// if that is not a valid P-256 scalar.
    pub fn from_private(bytes: &[u8]) -> Option<VapidKeys> {
        // `SecretKey::from_slice` would also take (and pad) shorter input.
        if bytes.len() != 32 {
            return None;
        }
        SecretKey::from_slice(bytes).ok().map(|secret| Self::from_secret(&secret))
    }

    fn from_secret(secret: &SecretKey) -> VapidKeys {
        let mut private = [0u8; 32];
        private.copy_from_slice(&secret.to_bytes());
        VapidKeys { public: URL_SAFE_NO_PAD.encode(uncompressed(&secret.public_key())), private }
    }
}

/// A browser's push subscription, as `PushSubscription.toJSON()` gives it
/// (`endpoint` and `keys.p256dh`, `keys.auth`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub endpoint: String,
    /// The browser's ECDH public key: a 65-byte uncompressed P-256 point,
    /// base64url.
    pub p256dh: String,
    /// The browser's 16-byte authentication secret, base64url.
    pub auth: String,
}

/// Checks a subscription a widget sends before it is stored: the endpoint
/// is an https URL (http too with `allow_local_http`) of at most 1000
/// characters whose host is not a local name or non-public address
/// literal, `p256dh` is a valid uncompressed P-256 point and `auth` is 16
/// bytes. The error is a short message for the user. Host names are only
/// resolved (and their addresses checked) when sending.
pub fn check_subscription(s: &Subscription, allow_local_http: bool) -> Result<(), &'static str> {
    let url = parse_endpoint(&s.endpoint, allow_local_http)?;
    if let Some(Host::Domain(name)) = url.host() {
        // RFC 6761: these names are the machine itself.
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !allow_local_http && (name == "localhost" || name.ends_with(".localhost")) {
            return Err("The push endpoint must not be a local address.");
        }
    }
    decode_keys(s)?;
    Ok(())
}

/// How soon the push service should deliver (RFC 8030 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    VeryLow,
    Low,
    Normal,
    High,
}

impl Urgency {
    /// The `Urgency` header's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

/// One message for one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushMessage {
    /// What the service worker's `push` event reads (`event.data`); at most
    /// `MAX_PAYLOAD` bytes.
    pub payload: Vec<u8>,
    /// How long the push service keeps the message for an offline browser
    /// (the `TTL` header; 0: deliver now or never). Push services may cap it
    /// (FCM at 4 weeks).
    pub ttl_seconds: u32,
    pub urgency: Urgency,
    /// A newer message with the same topic replaces an undelivered older one
    /// (the `Topic` header): 1 to 32 characters of the base64url alphabet.
    pub topic: Option<String>,
}

/// What became of a message, as what the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The push service took it (2xx).
    Delivered,
    /// The subscription has expired or was withdrawn (404, 410): remove it.
    Gone,
    /// Try again later: 429, 5xx, a network failure or the timeout.
    /// `after_ms` is the service's Retry-After, in milliseconds from now,
    /// when it gave one (at most 24 hours).
    Retry { after_ms: Option<i64>, reason: String },
    /// Will not work as it is: any other answer (401/403: the VAPID key or
    /// JWT; 413: too large; 400…), an endpoint or address this module
    /// refuses, or an invalid subscription or message.
    Rejected(String),
}

/// Sends push messages. One per server; cheap to share.
pub struct Pusher {
    /// The VAPID `sub` claim: how the push service's operator reaches us.
    contact: String,
    /// Bounds a whole send: lookup, connection, TLS, request and answer.
    timeout: Duration,
    /// Tests only: allows http:// endpoints and loopback addresses.
    allow_local_http: bool,
    tls: TlsConnector,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("contact", &self.contact)
            .field("timeout", &self.timeout)
            .field("allow_local_http", &self.allow_local_http)
            .finish_non_exhaustive()
    }
}

/// A request ready to go, and where it goes.
struct Prepared {
    url: Url,
    request: hyper::Request<Full<Bytes>>,
}

/// The status and Retry-After of an answer, with the start of its body when
/// it is an error.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    snippet: String,
}

impl Pusher {
    /// `contact`: a `mailto:` address or an https URL (the VAPID `sub`).
    /// `timeout`: the most one `send` may take. `allow_local_http`: for
    /// tests against a local push service only.
    pub fn new(contact: String, timeout: Duration, allow_local_http: bool) -> Pusher {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        // The provider is named, not taken from the process default, so
        // another crate enabling a second rustls provider changes nothing.
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls' default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Pusher { contact, timeout, allow_local_http, tls: TlsConnector::from(Arc::new(config)) }
    }

    /// Encrypts `msg` for `sub`, signs it with `keys` and posts it to the
    /// subscription's push service. Never panics on what the browser or the
    /// push service sent; every failure is an outcome.
    pub async fn send(&self, keys: &VapidKeys, sub: &Subscription, msg: &PushMessage, now_ms: i64) -> PushOutcome {
        // Everything that can be refused is refused before any I/O.
        let prepared = match self.prepare(keys, sub, msg, now_ms) {
            Ok(p) => p,
            Err(reason) => return PushOutcome::Rejected(reason),
        };
        match tokio::time::timeout(self.timeout, self.deliver(prepared, now_ms)).await {
            Ok(outcome) => outcome,
            Err(_) => PushOutcome::Retry {
                after_ms: None,
                reason: format!("no answer from the push service within {} ms", self.timeout.as_millis()),
            },
        }
    }

    /// Checks, encrypts, signs: the request, without touching the network.
    fn prepare(
        &self,
        keys: &VapidKeys,
        sub: &Subscription,
        msg: &PushMessage,
        now_ms: i64,
    ) -> Result<Prepared, String> {
        let url = parse_endpoint(&sub.endpoint, self.allow_local_http)?;
        let (ua_public, auth) = decode_keys(sub)?;
        if msg.payload.len() > MAX_PAYLOAD {
            return Err(format!("the payload is {} bytes; a push carries at most {MAX_PAYLOAD}", msg.payload.len()));
        }
        if let Some(topic) = &msg.topic {
            if !valid_topic(topic) {
                return Err("the topic must be 1 to 32 characters of the base64url alphabet".into());
            }
        }
        let authorization = vapid_authorization(keys, &origin(&url), &self.contact, now_ms)
            .ok_or_else(|| "the VAPID private key is not a valid P-256 key".to_string())?;
        let body = encrypt(&msg.payload, &ua_public, &auth)?;

        // HTTP/1 needs the Host header spelled out; the port only when it
        // is not the scheme's default (as `origin` does).
        let host = url.host_str().unwrap_or_default();
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let mut request = hyper::Request::builder()
            .method(hyper::Method::POST)
            .uri(target)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::AUTHORIZATION, authorization)
            .header("TTL", msg.ttl_seconds.to_string())
            .header("Urgency", msg.urgency.as_str())
            .header(hyper::header::CONTENT_ENCODING, "aes128gcm")
            .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
            .header(hyper::header::CONTENT_LENGTH, body.len().to_string());
        if let Some(topic) = &msg.topic {
            request = request.header("Topic", topic.as_str());
        }
        let request =
            request.body(Full::new(Bytes::from(body))).map_err(|e| format!("could not build the request: {e}"))?;
        Ok(Prepared { url, request })
    }

    /// Resolves, checks the addresses, connects, speaks TLS and HTTP, and
    /// reads the answer.
    async fn deliver(&self, prepared: Prepared, now_ms: i64) -> PushOutcome {
        let Prepared { url, request } = prepared;
        let addresses = match self.resolve(&url).await {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        let tcp = match self.connect(&addresses).await {
            Ok(s) => s,
            Err(reason) => return PushOutcome::Retry { after_ms: None, reason },
        };
        let snippet_wait = self.timeout / 4;
        let answer = if url.scheme() == "https" {
            let name = match url.host() {
                Some(Host::Domain(d)) => ServerName::try_from(d.to_string()).map_err(|_| ()),
                Some(Host::Ipv4(ip)) => Ok(ServerName::from(IpAddr::V4(ip))),
                Some(Host::Ipv6(ip)) => Ok(ServerName::from(IpAddr::V6(ip))),
                None => Err(()),
            };
            let Ok(name) = name else {
                return PushOutcome::Rejected("the push endpoint's host is not a valid TLS server name".into());
            };
            match self.tls.connect(name, tcp).await {
                Ok(tls) => exchange(tls, request, snippet_wait).await,
                Err(e) => Err(format!("TLS with the push service failed: {e}")),
            }
        } else {
            exchange(tcp, request, snippet_wait).await
        };
        match answer {
            Ok(answer) => outcome_of(&answer, now_ms),
            Err(reason) => PushOutcome::Retry { after_ms: None, reason },
        }
    }

    /// The endpoint's addresses, all of them allowed; or the outcome when
    /// they cannot be found (retry) or one of them is refused (rejected: a
    /// name that also points inside is refused as a whole).
    async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, PushOutcome> {
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses: Vec<SocketAddr> = match url.host() {
            Some(Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Some(Host::Domain(name)) => match tokio::net::lookup_host((name, port)).await {
                Ok(found) => found.collect(),
                Err(e) => {
                    return Err(PushOutcome::Retry { after_ms: None, reason: format!("cannot resolve {name}: {e}") })
                }
            },
            None => return Err(PushOutcome::Rejected("the push endpoint has no host".into())),
        };
        if addresses.is_empty() {
            return Err(PushOutcome::Retry {
                after_ms: None,
                reason: "the push endpoint's host has no address".into(),
            });
        }
        if let Some(refused) = addresses.iter().find(|a| !address_allowed(a.ip(), self.allow_local_http)) {
            return Err(PushOutcome::Rejected(format!(
                "refused: the push endpoint's host resolves to {}, which is not a public address",
                refused.ip()
            )));
        }
        Ok(addresses)
    }

    /// A connection to the first of the (checked) addresses that answers.
    async fn connect(&self, addresses: &[SocketAddr]) -> Result<TcpStream, String> {
        // With several addresses, one that never answers must leave time
        // for the others.
        let each = if addresses.len() > 1 { self.timeout / 3 } else { self.timeout };
        let mut last = String::new();
        for address in addresses {
            match tokio::time::timeout(each, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => last = format!("cannot connect to the push service at {address}: {e}"),
                Err(_) => last = format!("no connection to the push service at {address} in time"),
            }
        }
        Err(last)
    }
}

/// Aborts the task that drives a connection when the send is over (or
/// abandoned on the timeout).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One HTTP/1.1 request on a fresh connection, and its answer. The body of
/// an error answer is read for a little while, for the reason; the answer
/// does not wait on it.
async fn exchange<T>(io: T, request: hyper::Request<Full<Bytes>>, snippet_wait: Duration) -> Result<Answer, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP with the push service failed: {e}"))?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        // Its error, if any, reaches `send_request` too.
        let _ = connection.await;
    }));
    let response = sender.send_request(request).await.map_err(|e| format!("HTTP with the push service failed: {e}"))?;
    let status = response.status().as_u16();
    let retry_after =
        response.headers().get(hyper::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let snippet = if (200..300).contains(&status) {
        String::new()
    } else {
        tokio::time::timeout(snippet_wait, read_snippet(response.into_body())).await.unwrap_or_default()
    };
    Ok(Answer { status, retry_after, snippet })
}

/// The start of a body as one line of printable text.
async fn read_snippet(mut body: Incoming) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < SNIPPET_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    bytes.extend_from_slice(data);
                }
            }
            _ => break,
        }
    }
    bytes.truncate(SNIPPET_BYTES);
    let text = String::from_utf8_lossy(&bytes);
    let line = text.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty());
    line.collect::<Vec<_>>().join(" ").chars().take(200).collect()
}

/// What an answer means for the subscription.
fn outcome_of(answer: &Answer, now_ms: i64) -> PushOutcome {
    let status = answer.status;
    let said = if answer.snippet.is_empty() {
        format!("the push service answered {status}")
    } else {
        format!("the push service answered {status}: {}", answer.snippet)
    };
    match status {
        200..=299 => PushOutcome::Delivered,
        404 | 410 => PushOutcome::Gone,
        429 | 500..=599 => PushOutcome::Retry {
            after_ms: answer.retry_after.as_deref().and_then(|v| retry_after_ms(v, now_ms)),
            reason: said,
        },
        // Everything else, redirects included (never followed: the next
        // address would not have been checked).
        _ => PushOutcome::Rejected(said),
    }
}

/// A Retry-After value (RFC 9110 §10.2.3: seconds, or an HTTP date) as
/// milliseconds from `now_ms`, between 0 and 24 hours.
fn retry_after_ms(value: &str, now_ms: i64) -> Option<i64> {
    let value = value.trim();
    let ms = match value.parse::<u64>() {
        Ok(seconds) => i64::try_from(seconds).unwrap_or(i64::MAX).saturating_mul(1000),
        Err(_) => {
            let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok()?;
            at.as_millisecond().saturating_sub(now_ms)
        }
    };
    Some(ms.clamp(0, MAX_RETRY_AFTER_MS))
}

/// The `Authorization` header of a push to a service at `audience` (the
/// endpoint's origin, `scheme://host[:port]`), RFC 8292: `vapid t=<JWT>,
/// k=<public key>`. The JWT is ES256 over `{"aud", "exp": now + 12 h,
/// "sub": contact}`. `None` if the private key is not a valid P-256 key.
pub fn vapid_authorization(keys: &VapidKeys, audience: &str, contact: &str, now_ms: i64) -> Option<String> {
    let signer = SigningKey::from_slice(&keys.private).ok()?;
    // `k` is derived from the key that signs, so the two always match.
    let public = URL_SAFE_NO_PAD.encode(signer.verifying_key().to_encoded_point(false).as_bytes());
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
    let claims = serde_json::json!({
        "aud": audience,
        "exp": now_ms.div_euclid(1000) + VAPID_LIFETIME_S,
        "sub": contact,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{claims}");
    // JWS ES256 (RFC 7518 §3.4): the signature is r ‖ s, 32 bytes each.
    let signature: Signature = signer.sign(signed.as_bytes());
    Some(format!("vapid t={signed}.{}, k={public}", URL_SAFE_NO_PAD.encode(signature.to_bytes())))
}

/// `scheme://host[:port]`, the port only when not the scheme's default.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The endpoint as a URL, if it may be posted to: its length, scheme,
/// credentials and, for an address literal, the address (names are checked
/// once resolved).
fn parse_endpoint(endpoint: &str, allow_local_http: bool) -> Result<Url, &'static str> {
    if endpoint.is_empty() {
        return Err("The push endpoint is missing.");
    }
    if endpoint.len() > MAX_ENDPOINT {
        return Err("The push endpoint is too long.");
    }
    let url = Url::parse(endpoint).map_err(|_| "The push endpoint is not a valid URL.")?;
    match url.scheme() {
        "https" => {}
        "http" if allow_local_http => {}
        _ => return Err("The push endpoint must be an https URL."),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("The push endpoint must not contain credentials.");
    }
    let literal = match url.host() {
        None => return Err("The push endpoint has no host."),
        Some(Host::Domain(_)) => None,
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
    };
    if literal.is_some_and(|ip| !address_allowed(ip, allow_local_http)) {
        return Err("The push endpoint must not be a local address.");
    }
    Ok(url)
}

/// The browser's public key and auth secret, checked.
fn decode_keys(s: &Subscription) -> Result<(PublicKey, [u8; 16]), &'static str> {
    let point = base64url(&s.p256dh).ok_or("The subscription's p256dh key is not base64url.")?;
    if point.len() != 65 || point[0] != 0x04 {
        return Err("The subscription's p256dh key is not an uncompressed P-256 key.");
    }
    let key = PublicKey::from_sec1_bytes(&point).map_err(|_| "The subscription's p256dh key is not a P-256 key.")?;
    let auth = base64url(&s.auth).ok_or("The subscription's auth secret is not base64url.")?;
    let auth: [u8; 16] = auth.try_into().map_err(|_| "The subscription's auth secret is not 16 bytes.")?;
    Ok((key, auth))
}

/// base64url, with or without padding.
fn base64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// RFC 8030 §5.4: at most 32 characters of the base64url alphabet.
fn valid_topic(topic: &str) -> bool {
    (1..=32).contains(&topic.len()) && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The 65-byte uncompressed form of a public key (0x04 ‖ x ‖ y).
fn uncompressed(key: &PublicKey) -> Vec<u8> {
    key.to_encoded_point(false).as_bytes().to_vec()
}

/// A random P-256 private key.
fn random_secret() -> SecretKey {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).expect("the operating system's random source is unavailable");
        // Zero or not below the group order (odds about 2^-32): draw again.
        if let Ok(secret) = SecretKey::from_slice(&bytes) {
            return secret;
        }
    }
}

/// The `aes128gcm` body of `payload` for a browser, with a fresh salt and
/// a fresh application-server key pair (RFC 8291 §3: never reused).
fn encrypt(payload: &[u8], ua_public: &PublicKey, auth: &[u8; 16]) -> Result<Vec<u8>, String> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).expect("the operating system's random source is unavailable");
    encrypt_with(payload, ua_public, auth, &random_secret(), salt)
}

/// RFC 8291 with a given salt and application-server key (for the test
/// vector): the ECDH secret and the auth secret combine into the input
/// keying material (§3.3, §3.4), from which ece-native derives the content
/// key and nonce and builds the single record and the header (RFC 8188,
/// with the server's public key as the key id, §4).
fn encrypt_with(
    payload: &[u8],
    ua_public: &PublicKey,
    auth: &[u8; 16],
    as_secret: &SecretKey,
    salt: [u8; 16],
) -> Result<Vec<u8>, String> {
    let as_public = uncompressed(&as_secret.public_key());
    let shared = p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua_public.as_affine());
    // IKM = HKDF-SHA-256(salt = auth, secret = ECDH,
    //                    info = "WebPush: info" 0x00 ‖ ua_public ‖ as_public, 32 bytes)
    let mut info = Vec::with_capacity(14 + 65 + 65);
    info.extend_from_slice(b"WebPush: info\0");
    info.extend_from_slice(&uncompressed(ua_public));
    info.extend_from_slice(&as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes())
        .expand(&info, &mut ikm)
        .expect("32 bytes is a valid HKDF-SHA-256 output length");
    ece_native::encrypt(ikm, salt, as_public, std::iter::once(payload.to_vec()), RECORD_SIZE)
        .map_err(|e| format!("could not encrypt the payload: {e}"))
}

/// Whether a connection to `ip` is allowed: a public address, or (with the
/// test-only override) a loopback one.
fn address_allowed(ip: IpAddr, allow_local: bool) -> bool {
    let loopback = match ip {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    };
    (allow_local && loopback) || public_address(ip)
}

/// Globally routable unicast: not this host, the local networks, shared or
/// special-purpose ranges (IANA's special-purpose registries), multicast or
/// broadcast.
fn public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => public_v4(a),
        IpAddr::V6(a) => public_v6(a),
    }
}

fn public_v4(a: Ipv4Addr) -> bool {
    let [a0, a1, a2, _] = a.octets();
    let special = a0 == 0                             // "this network", 0.0.0.0
        || a0 == 10                                   // private
        || a0 == 127                                  // loopback
        || (a0 == 100 && (64..128).contains(&a1))     // shared (CGNAT) 100.64/10
        || (a0 == 169 && a1 == 254)                   // link-local (cloud metadata)
        || (a0 == 172 && (16..32).contains(&a1))      // private
        || (a0 == 192 && a1 == 168)                   // private
        || (a0 == 192 && a1 == 0 && a2 == 0)          // IETF protocol assignments
        || (a0 == 192 && a1 == 0 && a2 == 2)          // documentation
        || (a0 == 192 && a1 == 88 && a2 == 99)        // 6to4 relay anycast
        || (a0 == 198 && (a1 == 18 || a1 == 19))      // benchmarking 198.18/15
        || (a0 == 198 && a1 == 51 && a2 == 100)       // documentation
        || (a0 == 203 && a1 == 0 && a2 == 113)        // documentation
        || a0 >= 224; // multicast, reserved, broadcast
    !special
}

fn public_v6(a: Ipv6Addr) -> bool {
    // An IPv4 address in IPv6 clothing is judged as the IPv4 address.
    if let Some(v4) = a.to_ipv4_mapped() {
        return public_v4(v4);
    }
    let s = a.segments();
    // NAT64 (64:ff9b::/96): the last 32 bits are the IPv4 destination.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return public_v4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
    }
    // 6to4 (2002::/16): bits 16 to 48 are the IPv4 destination.
    if s[0] == 0x2002 {
        return public_v4(Ipv4Addr::from(((s[1] as u32) << 16) | s[2] as u32));
    }
    // Only global unicast (2000::/3), which leaves out the unspecified and
    // loopback addresses, unique-local fc00::/7, link-local fe80::/10,
    // multicast ff00::/8 and the other special prefixes below 2000::.
    let global_unicast = s[0] & 0xe000 == 0x2000;
    let special = match s[0] {
        // 2001::/23, IETF protocol assignments (Teredo, benchmarking, …);
        // 2001:db8::/32, documentation.
        0x2001 => s[1] < 0x0200 || s[1] == 0x0db8,
        // 3fff::/20, documentation.
        0x3fff => s[1] < 0x1000,
        _ => false,
    };
    global_unicast && !special
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::{signature::Verifier, VerifyingKey};

    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    // RFC 8291 Appendix A (published test data).
    const PLAINTEXT: &str = "When I grow up, I want to be a watermelon";
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const AS_PUBLIC: &str = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const UA_PUBLIC: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    fn rfc_auth() -> [u8; 16] {
        b64(AUTH).try_into().unwrap()
    }

    #[test]
    fn encryption_reproduces_the_rfc8291_example_byte_for_byte() {
        let as_secret = SecretKey::from_slice(&b64(AS_PRIVATE)).unwrap();
        assert_eq!(uncompressed(&as_secret.public_key()), b64(AS_PUBLIC));
        let ua_public = PublicKey::from_sec1_bytes(&b64(UA_PUBLIC)).unwrap();
        let salt: [u8; 16] = b64(SALT).try_into().unwrap();
        let body = encrypt_with(PLAINTEXT.as_bytes(), &ua_public, &rfc_auth(), &as_secret, salt).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.encode(&body), BODY);
    }

    #[test]
    fn web_push_native_decrypts_what_we_encrypt() {
        // A second, maintained receiver: web-push-native's decrypt, given the
        // browser's private key.
        let ua_secret = random_secret();
        let mut auth = [0u8; 16];
        getrandom::getrandom(&mut auth).unwrap();
        let payload = br#"{"title":"Hello","body":"A new message"}"#.to_vec();
        let body = encrypt(&payload, &ua_secret.public_key(), &auth).unwrap();
        let opened = web_push_native::decrypt(body, &ua_secret, &web_push_native::Auth::clone_from_slice(&auth));
        assert_eq!(opened.unwrap(), payload);

        // The RFC's own message opens the same way.
        let ua_secret = SecretKey::from_slice(&b64(UA_PRIVATE)).unwrap();
        let opened =
            web_push_native::decrypt(b64(BODY), &ua_secret, &web_push_native::Auth::clone_from_slice(&rfc_auth()));
        assert_eq!(opened.unwrap(), PLAINTEXT.as_bytes());
    }

    #[test]
    fn every_message_has_a_fresh_salt_and_server_key_and_the_largest_fills_4096_bytes() {
        let ua_public = random_secret().public_key();
        let a = encrypt(b"same", &ua_public, &[7; 16]).unwrap();
        let b = encrypt(b"same", &ua_public, &[7; 16]).unwrap();
        assert_ne!(a[..16], b[..16], "salt");
        assert_ne!(a[21..86], b[21..86], "application server key");
        // Header: salt, record size 4096, key id length 65.
        assert_eq!(a[16..21], [0, 0, 0x10, 0, 65]);
        assert_eq!(encrypt(&vec![b'x'; MAX_PAYLOAD], &ua_public, &[7; 16]).unwrap().len(), 4096);
        assert_eq!(encrypt(b"", &ua_public, &[7; 16]).unwrap().len(), 86 + 1 + 16);
    }

    #[test]
    fn the_vapid_jwt_verifies_with_k_and_carries_the_claims() {
        let keys = VapidKeys::generate();
        let now_ms = 1_795_000_000_123;
        let header = vapid_authorization(&keys, "https://push.example.net", "mailto:ops@shop.example", now_ms).unwrap();
        let rest = header.strip_prefix("vapid t=").unwrap();
        let (token, k) = rest.split_once(", k=").unwrap();
        assert_eq!(k, keys.public);

        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let head: serde_json::Value = serde_json::from_slice(&b64(parts[0])).unwrap();
        assert_eq!(head, serde_json::json!({"typ": "JWT", "alg": "ES256"}));
        let claims: serde_json::Value = serde_json::from_slice(&b64(parts[1])).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({"aud": "https://push.example.net", "exp": 1_795_000_000 + 12 * 3600,
                               "sub": "mailto:ops@shop.example"})
        );

        let verifier = VerifyingKey::from_sec1_bytes(&b64(k)).unwrap();
        let signature = Signature::from_slice(&b64(parts[2])).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        verifier.verify(signed.as_bytes(), &signature).unwrap();
        // The signature covers the claims.
        let forged = format!("{}.{}", parts[0], URL_SAFE_NO_PAD.encode(br#"{"aud":"https://evil.example"}"#));
        assert!(verifier.verify(forged.as_bytes(), &signature).is_err());
    }

    #[test]
    fn the_audience_is_the_endpoint_origin() {
        let o = |s: &str| origin(&Url::parse(s).unwrap());
        assert_eq!(o("https://fcm.googleapis.com/fcm/send/abc:def?x=1"), "https://fcm.googleapis.com");
        assert_eq!(
            o("https://updates.push.services.mozilla.com:443/wpush/v2/x"),
            "https://updates.push.services.mozilla.com"
        );
        assert_eq!(o("https://push.example:8443/p"), "https://push.example:8443");
        assert_eq!(o("http://127.0.0.1:4000/push/1"), "http://127.0.0.1:4000");
        assert_eq!(o("https://[2001:4860::1]/p"), "https://[2001:4860::1]");
    }

    #[test]
    fn vapid_keys_come_back_from_their_private_key() {
        let keys = VapidKeys::generate();
        assert_eq!(b64(&keys.public).len(), 65);
        assert_eq!(VapidKeys::from_private(&keys.private), Some(keys.clone()));
        assert_ne!(VapidKeys::generate(), keys);
        assert_eq!(VapidKeys::from_private(&[0; 32]), None);
        assert_eq!(VapidKeys::from_private(&[0xff; 32]), None, "not below the group order");
        assert_eq!(VapidKeys::from_private(&keys.private[..31]), None);
        let rfc = VapidKeys::from_private(&b64(AS_PRIVATE)).unwrap();
        assert_eq!(rfc.public, AS_PUBLIC);
        assert!(!format!("{rfc:?}").contains(&format!("{:?}", rfc.private)));
    }

    #[test]
    fn the_address_guard_lets_only_public_addresses_through() {
        let refused = [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:a00:1::1",
            "2002:7f00:1::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ];
        for ip in refused {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!address_allowed(ip, false), "{ip} must be refused");
        }
        let allowed = [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "142.250.74.138",
            "172.15.255.255",
            "172.32.0.1",
            "192.169.0.1",
            "2001:4860:4860::8888",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ];
        for ip in allowed {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(address_allowed(ip, false), "{ip} must be allowed");
        }
        // The test override opens loopback, and only loopback.
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(address_allowed(ip.parse().unwrap(), true), "{ip} with the override");
        }
        for ip in ["10.0.0.1", "169.254.169.254", "fe80::1", "192.168.0.1"] {
            assert!(!address_allowed(ip.parse().unwrap(), true), "{ip} even with the override");
        }
    }

    #[test]
    fn answers_become_outcomes() {
        let answer = |status: u16, retry_after: Option<&str>| Answer {
            status,
            retry_after: retry_after.map(str::to_string),
            snippet: String::new(),
        };
        let now = 1_795_000_000_000;
        for s in [200, 201, 202] {
            assert_eq!(outcome_of(&answer(s, None), now), PushOutcome::Delivered);
        }
        for s in [404, 410] {
            assert_eq!(outcome_of(&answer(s, None), now), PushOutcome::Gone);
        }
        for s in [429, 500, 502, 503] {
            assert!(matches!(outcome_of(&answer(s, None), now), PushOutcome::Retry { after_ms: None, .. }), "{s}");
        }
        assert!(matches!(outcome_of(&answer(429, Some("7")), now), PushOutcome::Retry { after_ms: Some(7000), .. }));
        for s in [301, 302, 400, 401, 403, 413] {
            assert!(matches!(outcome_of(&answer(s, None), now), PushOutcome::Rejected(_)), "{s}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = 1_795_000_000_000; // 2026-11-18T…Z
        assert_eq!(retry_after_ms("7", now), Some(7000));
        assert_eq!(retry_after_ms(" 0 ", now), Some(0));
        assert_eq!(retry_after_ms("99999999999", now), Some(MAX_RETRY_AFTER_MS));
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&jiff::Timestamp::from_millisecond(now + 90_000).unwrap())
            .unwrap();
        assert_eq!(retry_after_ms(&date, now), Some(90_000));
        assert_eq!(retry_after_ms("Thu, 01 Jan 1970 00:00:01 GMT", now), Some(0), "a past date: now");
        assert_eq!(retry_after_ms("soon", now), None);
        assert_eq!(retry_after_ms("-5", now), None);
    }

    #[test]
    fn topics_follow_rfc8030() {
        assert!(valid_topic("chat-42_A"));
        assert!(valid_topic(&"a".repeat(32)));
        assert!(!valid_topic(""));
        assert!(!valid_topic(&"a".repeat(33)));
        assert!(!valid_topic("a b"));
        assert!(!valid_topic("a/b"));
        assert!(!valid_topic("a=b"));
    }
}
