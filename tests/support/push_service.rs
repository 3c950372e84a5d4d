//! A push service for the tests, in the role FCM or Mozilla's autopush play
//! for real browsers (RFC 8030), on 127.0.0.1:0 over plain HTTP/1.1.
//!
//! `subscribe` plays the browser: it makes the subscription's ECDH key pair
//! and auth secret and returns the endpoint (`POST /push/{id}`) with the
//! public parts. Every request is checked as a strict push service would:
//! the VAPID `Authorization` (RFC 8292: an ES256 JWT that verifies against
//! `k`, `aud` the origin the request was addressed to, `exp` after now and
//! at most 24 hours ahead, a `sub`), `Content-Encoding: aes128gcm`, a `TTL`,
//! a valid `Urgency` and `Topic` when present, a body of at most 4096
//! bytes. The body is then decrypted by the decryptor below, written from
//! RFC 8291 and RFC 8188 on RustCrypto primitives; it shares no code with
//! `murmur::engine::push` or web-push-native.
//!
//! Answers follow a plan (a queue of `Reply`s; 201 once it is empty); an
//! unknown subscription gets 404 and a withdrawn one 410. A request that
//! fails a check is answered 4xx and kept in `problems`, so a test sees why.
//! `wait_for` waits for N accepted requests without sleeping.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{
        atomic::{AtomicI64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use aes_gcm::{aead::Aead, Aes128Gcm, KeyInit, Nonce};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hkdf::Hkdf;
use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, Request, Response};
use p256::{
    ecdsa::{signature::Verifier, Signature, VerifyingKey},
    elliptic_curve::sec1::ToEncodedPoint,
    PublicKey, SecretKey,
};
use sha2::Sha256;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

/// A browser's subscription at this service, as `PushSubscription.toJSON()`
/// would give it.
#[derive(Debug, Clone)]
pub struct FakeSubscription {
    /// The service's handle on it (the last path segment).
    pub id: String,
    pub endpoint: String,
    /// The browser's public key, base64url (65-byte uncompressed point).
    pub p256dh: String,
    /// The browser's auth secret, base64url (16 bytes).
    pub auth: String,
}

/// How the service answers one accepted request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply { status, retry_after: None }
    }

    pub fn retry_after(status: u16, value: &str) -> Reply {
        Reply { status, retry_after: Some(value.to_string()) }
    }
}

/// One request that passed the checks.
#[derive(Debug, Clone)]
pub struct Received {
    /// The subscription's id.
    pub subscription: String,
    /// The decrypted payload (empty for an unknown or withdrawn subscription,
    /// which the service cannot decrypt).
    pub payload: Vec<u8>,
    /// The request's headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The VAPID public key (`k`), base64url.
    pub vapid_key: String,
    /// The JWT's claims.
    pub claims: serde_json::Value,
    /// The record size the body declared.
    pub record_size: u32,
    /// What the service answered.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// A browser's private side of a subscription.
struct Browser {
    secret: SecretKey,
    auth: [u8; 16],
    withdrawn: bool,
}

struct Inner {
    port: u16,
    /// The service's "now" for `exp`, in Unix milliseconds.
    now_ms: AtomicI64,
    browsers: Mutex<HashMap<String, Browser>>,
    plan: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
    problems: Mutex<Vec<String>>,
    connections: AtomicUsize,
    /// (accepted, problems) so far, for `wait_for`.
    counts: watch::Sender<(usize, usize)>,
    next_id: AtomicUsize,
}

pub struct FakePushService {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl Drop for FakePushService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakePushService {
    /// Starts the service; `plan` answers the first accepted requests in
    /// order, then 201. Its clock starts at the system's time (`set_now`).
    pub async fn start(plan: Vec<Reply>) -> FakePushService {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let inner = Arc::new(Inner {
            port: addr.port(),
            now_ms: AtomicI64::new(now),
            browsers: Mutex::new(HashMap::new()),
            plan: Mutex::new(plan.into()),
            received: Mutex::new(Vec::new()),
            problems: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            counts: watch::channel((0, 0)).0,
            next_id: AtomicUsize::new(1),
        });
        let task = {
            let inner = inner.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    inner.connections.fetch_add(1, Ordering::SeqCst);
                    let inner = inner.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let inner = inner.clone();
                            async move { Ok::<_, std::convert::Infallible>(handle(&inner, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        FakePushService { addr, inner, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:{port}`: the `aud` a push to an endpoint here names.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// Sets the service's clock (the JWT's `exp` is judged against it).
    pub fn set_now(&self, now_ms: i64) {
        self.inner.now_ms.store(now_ms, Ordering::SeqCst);
    }

    /// Queues how the next accepted request (after those already planned) is
    /// answered.
    pub fn then(&self, reply: Reply) {
        self.inner.plan.lock().unwrap().push_back(reply);
    }

    /// A new subscription, as a browser would make it.
    pub fn subscribe(&self) -> FakeSubscription {
        let secret = random_secret();
        let mut auth = [0u8; 16];
        getrandom::getrandom(&mut auth).unwrap();
        let id = format!("sub{}", self.inner.next_id.fetch_add(1, Ordering::SeqCst));
        let p256dh = URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes());
        self.inner.browsers.lock().unwrap().insert(id.clone(), Browser { secret, auth, withdrawn: false });
        FakeSubscription {
            endpoint: format!("{}/push/{id}", self.origin()),
            id,
            p256dh,
            auth: URL_SAFE_NO_PAD.encode(auth),
        }
    }

    /// The browser withdraws the subscription: later pushes get 410.
    pub fn unsubscribe(&self, id: &str) {
        if let Some(b) = self.inner.browsers.lock().unwrap().get_mut(id) {
            b.withdrawn = true;
        }
    }

    /// Every accepted request so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// Why requests were refused so far.
    pub fn problems(&self) -> Vec<String> {
        self.inner.problems.lock().unwrap().clone()
    }

    /// How many TCP connections were accepted.
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests were accepted; fails at once if one
    /// was refused, and after 10 s otherwise.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let mut counts = self.inner.counts.subscribe();
        let waited = tokio::time::timeout(Duration::from_secs(10), counts.wait_for(|(ok, bad)| *ok >= n || *bad > 0));
        if waited.await.is_err() {
            panic!("the push service did not get {n} pushes within 10 s ({} so far)", self.received().len());
        }
        let problems = self.problems();
        assert!(problems.is_empty(), "the push service refused a push: {problems:?}");
        self.received()
    }
}

/// A refusal: its status and reason.
type Refusal = (u16, String);

async fn handle(inner: &Inner, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (status, retry_after, body) = match accept(inner, req).await {
        Ok(reply) => (reply.status, reply.retry_after, String::new()),
        Err((status, reason)) => {
            inner.problems.lock().unwrap().push(reason.clone());
            (status, None, reason)
        }
    };
    inner.counts.send_replace((inner.received.lock().unwrap().len(), inner.problems.lock().unwrap().len()));
    let mut response = Response::builder().status(status);
    if let Some(value) = retry_after {
        response = response.header("Retry-After", value);
    }
    response.body(Full::new(Bytes::from(body))).unwrap()
}

/// Checks and decrypts one request, and records it; the reply it gets.
async fn accept(inner: &Inner, req: Request<hyper::body::Incoming>) -> Result<Reply, Refusal> {
    if req.method() != hyper::Method::POST {
        return Err((405, format!("method {} (a push is a POST)", req.method())));
    }
    let id = req
        .uri()
        .path()
        .strip_prefix("/push/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| (404, format!("path {} (not /push/{{id}})", req.uri().path())))?
        .to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());

    // The origin the request was addressed to, by the Host header: it must
    // be this service's, under a name that means this machine.
    let host = header("host").ok_or((400, "no Host header".to_string()))?;
    let port = inner.port;
    if ![format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")].iter().any(|h| h == host) {
        return Err((400, format!("Host {host} is not this service")));
    }
    let authorization = header("authorization").ok_or((401, "no Authorization header".to_string()))?;
    let vapid = check_vapid(authorization, &format!("http://{host}"), inner.now_ms.load(Ordering::SeqCst))
        .map_err(|e| (403, format!("VAPID: {e}")))?;
    if header("content-encoding") != Some("aes128gcm") {
        return Err((415, format!("Content-Encoding {:?} (not aes128gcm)", header("content-encoding"))));
    }
    match header("ttl").map(str::parse::<u64>) {
        Some(Ok(_)) => {}
        other => return Err((400, format!("TTL {other:?} (a number of seconds is required)"))),
    }
    if let Some(u) = header("urgency") {
        if !["very-low", "low", "normal", "high"].contains(&u) {
            return Err((400, format!("Urgency {u}")));
        }
    }
    if let Some(t) = header("topic") {
        if t.is_empty() || t.len() > 32 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err((400, format!("Topic {t}")));
        }
    }
    let body = req.into_body().collect().await.map_err(|e| (400, format!("body: {e}")))?.to_bytes();
    if body.len() > 4096 {
        return Err((413, format!("a body of {} bytes (at most 4096)", body.len())));
    }

    let keys = {
        let browsers = inner.browsers.lock().unwrap();
        browsers.get(&id).map(|b| (b.secret.clone(), b.auth, b.withdrawn))
    };
    let (payload, record_size, reply) = match keys {
        None => (Vec::new(), 0, Reply::status(404)),
        Some((_, _, true)) => (Vec::new(), 0, Reply::status(410)),
        Some((secret, auth, false)) => {
            let opened = decrypt(&body, &secret, &auth).map_err(|e| (400, format!("decryption: {e}")))?;
            let reply = inner.plan.lock().unwrap().pop_front().unwrap_or(Reply::status(201));
            (opened.payload, opened.record_size, reply)
        }
    };
    inner.received.lock().unwrap().push(Received {
        subscription: id,
        payload,
        headers: headers.clone(),
        vapid_key: vapid.key,
        claims: vapid.claims,
        record_size,
        status: reply.status,
    });
    Ok(reply)
}

/// A VAPID authorization that passed.
#[derive(Debug, Clone)]
pub struct Vapid {
    /// `k`, base64url.
    pub key: String,
    pub claims: serde_json::Value,
}

/// Checks an `Authorization: vapid t=…, k=…` header (RFC 8292) for a push
/// service at `origin` whose clock reads `now_ms`.
pub fn check_vapid(authorization: &str, origin: &str, now_ms: i64) -> Result<Vapid, String> {
    let (scheme, params) = authorization.split_once(' ').ok_or("not `vapid t=…, k=…`")?;
    if !scheme.eq_ignore_ascii_case("vapid") {
        return Err(format!("scheme {scheme} (not vapid)"));
    }
    let (mut token, mut key) = (None, None);
    for param in params.split(',') {
        match param.trim().split_once('=') {
            Some(("t", v)) => token = Some(v.trim()),
            Some(("k", v)) => key = Some(v.trim()),
            _ => return Err(format!("parameter {param:?}")),
        }
    }
    let (token, key) = (token.ok_or("no t")?, key.ok_or("no k")?);
    let key_bytes = URL_SAFE_NO_PAD.decode(key).map_err(|_| "k is not base64url")?;
    if key_bytes.len() != 65 || key_bytes[0] != 4 {
        return Err("k is not an uncompressed P-256 point".into());
    }
    let verifier = VerifyingKey::from_sec1_bytes(&key_bytes).map_err(|_| "k is not a P-256 key")?;

    let parts: Vec<&str> = token.split('.').collect();
    let [head, claims, signature] = parts[..] else { return Err("the JWT has not three parts".into()) };
    let json = |part: &str| -> Result<serde_json::Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| "a JWT part is not base64url")?;
        serde_json::from_slice(&bytes).map_err(|_| "a JWT part is not JSON".to_string())
    };
    let head = json(head)?;
    if head["alg"] != "ES256" || head["typ"] != "JWT" {
        return Err(format!("JWT header {head}"));
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| "the signature is not base64url")?;
    let signature = Signature::from_slice(&signature).map_err(|_| "the signature is not 64 bytes of r ‖ s")?;
    let signed = &token[..token.rfind('.').unwrap()];
    verifier.verify(signed.as_bytes(), &signature).map_err(|_| "the signature does not verify with k")?;

    let claims = json(claims)?;
    if claims["aud"] != origin {
        return Err(format!("aud {} is not {origin}", claims["aud"]));
    }
    let exp = claims["exp"].as_i64().ok_or("no numeric exp")?;
    let now = now_ms.div_euclid(1000);
    if exp <= now {
        return Err(format!("exp {exp} is not after now ({now})"));
    }
    if exp > now + 24 * 3600 {
        return Err(format!("exp {exp} is more than 24 hours after now ({now})"));
    }
    let sub = claims["sub"].as_str().unwrap_or_default();
    if !(sub.starts_with("mailto:") || sub.starts_with("https://")) {
        return Err(format!("sub {:?} is not a mailto: or https: contact", claims["sub"]));
    }
    Ok(Vapid { key: key.to_string(), claims })
}

/// The keys RFC 8291 derives for one message (its Appendix A lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageKeys {
    pub ecdh_secret: Vec<u8>,
    /// HKDF-Extract(auth secret, ECDH secret).
    pub prk_key: Vec<u8>,
    pub ikm: Vec<u8>,
    /// HKDF-Extract(salt, IKM).
    pub prk: Vec<u8>,
    pub cek: Vec<u8>,
    pub nonce: Vec<u8>,
}

/// A decrypted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub payload: Vec<u8>,
    pub record_size: u32,
    /// The application server's public key (the header's key id).
    pub sender_key: Vec<u8>,
    pub keys: MessageKeys,
}

/// RFC 8291 §3.3–3.4 and RFC 8188 §2.2: the keys a browser derives from its
/// private key, its auth secret, the sender's public key and the salt.
pub fn derive_keys(
    ua_secret: &SecretKey,
    auth: &[u8; 16],
    sender_key: &[u8],
    salt: &[u8],
) -> Result<MessageKeys, String> {
    let sender = PublicKey::from_sec1_bytes(sender_key).map_err(|_| "the sender's key is not a P-256 point")?;
    let shared = p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), sender.as_affine());
    let ecdh_secret = shared.raw_secret_bytes().to_vec();
    let ua_public = ua_secret.public_key().to_encoded_point(false);

    // PRK_key = HMAC(auth_secret, ecdh_secret);
    // IKM = HMAC(PRK_key, "WebPush: info" 0x00 ‖ ua_public ‖ as_public ‖ 0x01)
    let (prk_key, webpush) = Hkdf::<Sha256>::extract(Some(auth), &ecdh_secret);
    let mut key_info = b"WebPush: info\x00".to_vec();
    key_info.extend_from_slice(ua_public.as_bytes());
    key_info.extend_from_slice(sender_key);
    let mut ikm = [0u8; 32];
    webpush.expand(&key_info, &mut ikm).map_err(|e| e.to_string())?;

    // PRK = HMAC(salt, IKM); CEK = first 16 bytes of HMAC(PRK, cek_info ‖
    // 0x01), NONCE = first 12 of HMAC(PRK, nonce_info ‖ 0x01).
    let (prk, content) = Hkdf::<Sha256>::extract(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    content.expand(b"Content-Encoding: aes128gcm\x00", &mut cek).map_err(|e| e.to_string())?;
    let mut nonce = [0u8; 12];
    content.expand(b"Content-Encoding: nonce\x00", &mut nonce).map_err(|e| e.to_string())?;
    Ok(MessageKeys {
        ecdh_secret,
        prk_key: prk_key.to_vec(),
        ikm: ikm.to_vec(),
        prk: prk.to_vec(),
        cek: cek.to_vec(),
        nonce: nonce.to_vec(),
    })
}

/// Decrypts an `aes128gcm` push message body as a browser does: the header
/// (salt 16 ‖ rs 4 ‖ idlen 1 ‖ keyid, RFC 8188 §2.1) with the sender's key as
/// key id (RFC 8291 §4), then one record (a push message has exactly one)
/// whose padding ends in the last-record delimiter 0x02.
pub fn decrypt(body: &[u8], ua_secret: &SecretKey, auth: &[u8; 16]) -> Result<Opened, String> {
    if body.len() < 21 {
        return Err(format!("{} bytes: shorter than the header", body.len()));
    }
    let salt = &body[..16];
    let record_size = u32::from_be_bytes(body[16..20].try_into().unwrap());
    let id_len = body[20] as usize;
    if id_len != 65 {
        return Err(format!("key id of {id_len} bytes (the sender's 65-byte public key is expected)"));
    }
    let sender_key = body.get(21..21 + id_len).ok_or("the body ends inside the key id")?;
    let record = &body[21 + id_len..];
    // RFC 8188: rs is at least 18. RFC 8291 §4: rs is larger than the single
    // record, which is then also the last.
    if record_size < 18 {
        return Err(format!("record size {record_size} (at least 18)"));
    }
    if record.len() as u64 >= record_size as u64 {
        return Err(format!("a record of {} bytes for a record size of {record_size} (must be larger)", record.len()));
    }
    if record.len() < 17 {
        return Err(format!("a record of {} bytes (the tag and delimiter need 17)", record.len()));
    }
    let keys = derive_keys(ua_secret, auth, sender_key, salt)?;
    // The only record has sequence number 0: its nonce is NONCE itself.
    let cipher = Aes128Gcm::new_from_slice(&keys.cek).map_err(|e| e.to_string())?;
    let mut plain =
        cipher.decrypt(Nonce::from_slice(&keys.nonce), record).map_err(|_| "the record does not authenticate")?;
    // Padding: the delimiter, then zeros.
    while plain.last() == Some(&0) {
        plain.pop();
    }
    match plain.pop() {
        Some(2) => {}
        Some(d) => return Err(format!("delimiter {d} (the last record ends with 2)")),
        None => return Err("no padding delimiter".into()),
    }
    Ok(Opened { payload: plain, record_size, sender_key: sender_key.to_vec(), keys })
}

/// A random P-256 private key, for a browser.
pub fn random_secret() -> SecretKey {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).unwrap();
        if let Ok(secret) = SecretKey::from_slice(&bytes) {
            return secret;
        }
    }
}
