//! Web Push transport (`engine::push`) against a push service the test runs
//! (`support::push_service`), which checks VAPID and decrypts with its own
//! RFC 8291 code: the RFC's example through that decryptor, a push end to
//! end with its headers, the push service's answers as outcomes, and the
//! SSRF guard (refused endpoints never reach the network), the https path
//! and subscription checks. No real push service, no sleeps.

mod support;

use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use murmur::engine::push::{
    check_subscription, vapid_authorization, PushMessage, PushOutcome, Pusher, Subscription, Urgency, VapidKeys,
    MAX_PAYLOAD,
};
use p256::{elliptic_curve::sec1::ToEncodedPoint, SecretKey};
use support::{
    push_service::{check_vapid, decrypt, derive_keys, FakePushService, FakeSubscription, Reply},
    START_MS,
};
use tokio::{io::AsyncReadExt, net::TcpListener};

const NOW: i64 = START_MS;
const CONTACT: &str = "mailto:ops@shop.example";

fn b64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn sub(s: &FakeSubscription) -> Subscription {
    Subscription { endpoint: s.endpoint.clone(), p256dh: s.p256dh.clone(), auth: s.auth.clone() }
}

fn message(payload: &[u8]) -> PushMessage {
    PushMessage { payload: payload.to_vec(), ttl_seconds: 3600, urgency: Urgency::Normal, topic: None }
}

/// A pusher for the local push service (http and loopback allowed).
fn local_pusher() -> Pusher {
    Pusher::new(CONTACT.into(), Duration::from_secs(10), true)
}

/// A pusher as in production.
fn strict_pusher() -> Pusher {
    Pusher::new(CONTACT.into(), Duration::from_secs(5), false)
}

async fn service() -> FakePushService {
    let svc = FakePushService::start(vec![]).await;
    svc.set_now(NOW);
    svc
}

#[test]
fn the_independent_decryptor_opens_the_rfc8291_example() {
    // RFC 8291 Appendix A: the keys, salt and message, and the intermediate
    // values it publishes.
    let ua_secret = SecretKey::from_slice(&b64("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")).unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.encode(ua_secret.public_key().to_sec1_bytes()),
        // to_sec1_bytes is uncompressed for p256's PublicKey.
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
    );
    let auth: [u8; 16] = b64("BTBZMqHH6r4Tts7J_aSIgg").try_into().unwrap();
    let body = b64(concat!(
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml",
        "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT",
        "pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
    ));
    let opened = decrypt(&body, &ua_secret, &auth).unwrap();
    assert_eq!(opened.payload, b"When I grow up, I want to be a watermelon");
    assert_eq!(opened.record_size, 4096);
    assert_eq!(
        opened.sender_key,
        b64("BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8")
    );
    let k = &opened.keys;
    assert_eq!(k.ecdh_secret, b64("kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs"));
    assert_eq!(k.prk_key, b64("Snr3JMxaHVDXHWJn5wdC52WjpCtd2EIEGBykDcZW32k"));
    assert_eq!(k.ikm, b64("S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg"));
    assert_eq!(k.prk, b64("09_eUZGrsvxChDCGRCdkLiDXrReGOEVeSCdCcPBSJSc"));
    assert_eq!(k.cek, b64("oIhVW04MRdy2XN9CiKLxTg"));
    assert_eq!(k.nonce, b64("4h_95klXJ5E_qnoN"));
    assert_eq!(derive_keys(&ua_secret, &auth, &opened.sender_key, &body[..16]).unwrap(), opened.keys);

    // The wrong auth secret, or one flipped bit of the message, and nothing opens.
    let mut wrong = auth;
    wrong[0] ^= 1;
    assert!(decrypt(&body, &ua_secret, &wrong).is_err());
    let mut tampered = body.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(decrypt(&tampered, &ua_secret, &auth).is_err());
}

#[tokio::test]
async fn a_push_arrives_decrypted_with_valid_vapid_and_its_headers() {
    let svc = service().await;
    let browser = svc.subscribe();
    let keys = VapidKeys::generate();
    let pusher = local_pusher();
    let payload = br#"{"title":"Zo\u00eb from Shop","body":"Your order has shipped \u2728","url":"/orders/7"}"#;
    let msg = PushMessage {
        payload: payload.to_vec(),
        ttl_seconds: 86_400,
        urgency: Urgency::High,
        topic: Some("conversation-42".into()),
    };
    assert_eq!(pusher.send(&keys, &sub(&browser), &msg, NOW).await, PushOutcome::Delivered);

    let got = svc.wait_for(1).await;
    let r = &got[0];
    assert_eq!(r.subscription, browser.id);
    assert_eq!(r.payload, payload);
    assert_eq!(r.status, 201);
    assert_eq!(r.record_size, 4096);
    assert_eq!(r.vapid_key, keys.public);
    assert_eq!(r.claims, serde_json::json!({"aud": svc.origin(), "exp": NOW / 1000 + 12 * 3600, "sub": CONTACT}),);
    assert_eq!(r.header("TTL"), Some("86400"));
    assert_eq!(r.header("Urgency"), Some("high"));
    assert_eq!(r.header("Topic"), Some("conversation-42"));
    assert_eq!(r.header("Content-Encoding"), Some("aes128gcm"));
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));

    // The smallest and the largest payloads, no topic, each urgency; the
    // endpoint by name (resolved, then checked).
    let by_name = Subscription { endpoint: browser.endpoint.replace("127.0.0.1", "localhost"), ..sub(&browser) };
    let big = vec![b'x'; MAX_PAYLOAD];
    let cases = [(Vec::new(), Urgency::VeryLow), (big.clone(), Urgency::Low), (b"hi".to_vec(), Urgency::Normal)];
    for (payload, urgency) in &cases {
        let msg = PushMessage { payload: payload.clone(), ttl_seconds: 0, urgency: *urgency, topic: None };
        assert_eq!(pusher.send(&keys, &by_name, &msg, NOW).await, PushOutcome::Delivered);
    }
    let got = svc.wait_for(4).await;
    for (r, (payload, urgency)) in got[1..].iter().zip(&cases) {
        assert_eq!(&r.payload, payload);
        assert_eq!(r.header("Urgency"), Some(urgency.as_str()));
        assert_eq!(r.header("TTL"), Some("0"));
        assert_eq!(r.header("Topic"), None);
        assert_eq!(r.claims["aud"], format!("http://localhost:{}", svc.port()));
    }
    assert_eq!(got[2].header("Content-Length"), Some("4096"), "the largest payload fills 4096 bytes");

    // One byte more is refused before anything is sent.
    let connections = svc.connections();
    let too_big = message(&vec![b'x'; MAX_PAYLOAD + 1]);
    assert!(matches!(pusher.send(&keys, &sub(&browser), &too_big, NOW).await, PushOutcome::Rejected(_)));
    let bad_topic = PushMessage { topic: Some("not a topic".into()), ..message(b"x") };
    assert!(matches!(pusher.send(&keys, &sub(&browser), &bad_topic, NOW).await, PushOutcome::Rejected(_)));
    assert_eq!(svc.connections(), connections);
    assert!(svc.problems().is_empty());
}

#[tokio::test]
async fn the_push_services_answers_become_outcomes() {
    let svc = service().await;
    let browser = svc.subscribe();
    let keys = VapidKeys::generate();
    let pusher = local_pusher();
    let date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&jiff::Timestamp::from_millisecond(NOW + 30_000).unwrap())
        .unwrap();
    for reply in [
        Reply::status(410),
        Reply::status(404),
        Reply::retry_after(429, "7"),
        Reply::status(500),
        Reply::retry_after(503, &date),
        Reply::status(400),
        Reply::status(403),
        Reply::status(413),
        Reply::status(302),
    ] {
        svc.then(reply);
    }
    let (s, hello) = (sub(&browser), message(b"hello"));
    let send = || pusher.send(&keys, &s, &hello, NOW);
    assert_eq!(send().await, PushOutcome::Gone, "410");
    assert_eq!(send().await, PushOutcome::Gone, "404");
    assert!(matches!(send().await, PushOutcome::Retry { after_ms: Some(7000), .. }), "429 with Retry-After: 7");
    assert!(matches!(send().await, PushOutcome::Retry { after_ms: None, .. }), "500");
    assert!(matches!(send().await, PushOutcome::Retry { after_ms: Some(30_000), .. }), "503 with a date");
    for status in ["400", "403", "413", "302"] {
        match send().await {
            PushOutcome::Rejected(reason) => assert!(reason.contains(status), "{reason}"),
            other => panic!("{status}: {other:?}"),
        }
    }
    assert_eq!(send().await, PushOutcome::Delivered, "the plan is over: 201");
    let got = svc.wait_for(10).await;
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [410, 404, 429, 500, 503, 400, 403, 413, 302, 201]);
    assert!(got.iter().all(|r| r.payload == b"hello"), "every one was well-formed");

    // A subscription the browser withdrew, and one the service never had.
    svc.unsubscribe(&browser.id);
    assert_eq!(send().await, PushOutcome::Gone);
    let unknown = Subscription { endpoint: format!("{}/push/nobody", svc.origin()), ..sub(&browser) };
    assert_eq!(pusher.send(&keys, &unknown, &message(b"x"), NOW).await, PushOutcome::Gone);

    // The service refuses a JWT that has expired by its clock.
    let fresh = svc.subscribe();
    let outcome = pusher.send(&keys, &sub(&fresh), &message(b"x"), NOW - 13 * 3600 * 1000).await;
    assert!(matches!(&outcome, PushOutcome::Rejected(r) if r.contains("403")), "{outcome:?}");
    assert_eq!(svc.problems().len(), 1);
}

#[tokio::test]
async fn refused_endpoints_never_reach_the_network() {
    let svc = service().await;
    let browser = svc.subscribe();
    let keys = VapidKeys::generate();
    let pusher = strict_pusher();
    let port = svc.port();
    let path = format!("/push/{}", browser.id);
    let endpoints = [
        format!("http://127.0.0.1:{port}{path}"),
        format!("https://127.0.0.1:{port}{path}"),
        format!("https://localhost:{port}{path}"),
        format!("https://[::1]:{port}{path}"),
        format!("https://[::ffff:127.0.0.1]:{port}{path}"),
        format!("https://0x7f000001:{port}{path}"),
        "https://10.0.0.1/push/x".into(),
        "https://172.16.5.4/push/x".into(),
        "https://192.168.1.1/push/x".into(),
        "https://100.64.0.1/push/x".into(),
        "https://169.254.169.254/latest/meta-data/".into(),
        "https://0.0.0.0/push/x".into(),
        "https://[fe80::1]/push/x".into(),
        "https://[fd00::1]/push/x".into(),
        "http://push.example.com/push/x".into(),
        "ftp://push.example.com/push/x".into(),
    ];
    for endpoint in &endpoints {
        let s = Subscription { endpoint: endpoint.clone(), ..sub(&browser) };
        match pusher.send(&keys, &s, &message(b"secret"), NOW).await {
            PushOutcome::Rejected(_) => {}
            other => panic!("{endpoint}: {other:?}"),
        }
    }
    assert_eq!(svc.connections(), 0, "a refused endpoint must not be connected to");

    // The same service is reachable with the test override.
    assert_eq!(local_pusher().send(&keys, &sub(&browser), &message(b"ok"), NOW).await, PushOutcome::Delivered);
    assert_eq!(svc.connections(), 1);
}

#[test]
fn subscriptions_are_checked_before_they_are_kept() {
    let good_key = URL_SAFE_NO_PAD.encode(support::push_service::random_secret().public_key().to_sec1_bytes());
    let good = Subscription {
        endpoint: "https://fcm.googleapis.com/fcm/send/dGVzdA:APA91b".into(),
        p256dh: good_key.clone(),
        auth: URL_SAFE_NO_PAD.encode([9u8; 16]),
    };
    assert_eq!(check_subscription(&good, false), Ok(()));
    let padded = Subscription { auth: format!("{}==", good.auth), ..good.clone() };
    assert_eq!(check_subscription(&padded, false), Ok(()), "padding is tolerated");

    let with = |endpoint: &str, p256dh: &str, auth: &str| Subscription {
        endpoint: endpoint.into(),
        p256dh: p256dh.into(),
        auth: auth.into(),
    };
    let a = good.auth.as_str();
    let e = good.endpoint.as_str();
    let k = good_key.as_str();
    let compressed =
        URL_SAFE_NO_PAD.encode(support::push_service::random_secret().public_key().to_encoded_point(true).as_bytes());
    let mut off_curve = b64(k);
    off_curve[64] ^= 1;
    let off_curve = URL_SAFE_NO_PAD.encode(off_curve);
    let long = format!("https://push.example.com/{}", "a".repeat(1000));
    let bad = [
        with("http://push.example.com/x", k, a),
        with("ftp://push.example.com/x", k, a),
        with("push.example.com/x", k, a),
        with("", k, a),
        with(&long, k, a),
        with("https://user:pw@push.example.com/x", k, a),
        with("https://127.0.0.1/x", k, a),
        with("https://localhost/x", k, a),
        with("https://a.localhost/x", k, a),
        with("https://[::1]/x", k, a),
        with("https://10.1.2.3/x", k, a),
        with("https://169.254.169.254/x", k, a),
        with("https://[fe80::1]/x", k, a),
        with(e, "***not base64***", a),
        with(e, &format!("+{}", &k[1..]), a),
        with(e, &format!("{}/", &k[..k.len() - 1]), a),
        with(e, &k[..k.len() - 2], a),
        with(e, &compressed, a),
        with(e, &off_curve, a),
        with(e, "", a),
        with(e, k, "***"),
        with(e, k, &URL_SAFE_NO_PAD.encode([9u8; 15])),
        with(e, k, &URL_SAFE_NO_PAD.encode([9u8; 17])),
    ];
    for s in &bad {
        assert!(check_subscription(s, false).is_err(), "{s:?} must be refused");
    }
    // The override admits the local service's http endpoint, and no more.
    assert_eq!(check_subscription(&with("http://127.0.0.1:4000/push/1", k, a), true), Ok(()));
    assert_eq!(check_subscription(&with("http://localhost:4000/push/1", k, a), true), Ok(()));
    assert!(check_subscription(&with("http://10.0.0.1/push/1", k, a), true).is_err());
    assert!(check_subscription(&with("ftp://127.0.0.1/push/1", k, a), true).is_err());
}

#[tokio::test]
async fn an_https_endpoint_gets_tls_with_the_host_name() {
    // A server that only listens: the first bytes it gets must be a TLS
    // ClientHello naming the host (SNI).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let first_bytes = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 2048];
        let mut got = 0;
        // Until the whole ClientHello record (5-byte header + length) is in.
        while got < 5 || got < 5 + u16::from_be_bytes([buf[3], buf[4]]) as usize {
            let n = stream.read(&mut buf[got..]).await.unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.truncate(got);
        buf // dropping the stream ends the handshake
    });
    let svc = service().await;
    let browser = svc.subscribe();
    let s = Subscription { endpoint: format!("https://localhost:{port}/push/x"), ..sub(&browser) };
    let outcome = local_pusher().send(&VapidKeys::generate(), &s, &message(b"x"), NOW).await;
    assert!(matches!(outcome, PushOutcome::Retry { after_ms: None, .. }), "{outcome:?}");
    let hello = first_bytes.await.unwrap();
    assert_eq!(hello[0], 0x16, "a TLS handshake record");
    assert_eq!(hello[1], 0x03);
    assert_eq!(hello[5], 0x01, "a ClientHello");
    assert!(hello.windows(9).any(|w| w == b"localhost"), "the server name is sent");
}

#[tokio::test]
async fn a_push_service_that_never_answers_is_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        // Accepts, reads, never answers (the connection stays open).
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 8192];
        while stream.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
    });
    let svc = service().await;
    let browser = svc.subscribe();
    let s = Subscription { endpoint: format!("http://127.0.0.1:{port}/push/x"), ..sub(&browser) };
    let pusher = Pusher::new(CONTACT.into(), Duration::from_millis(300), true);
    match pusher.send(&VapidKeys::generate(), &s, &message(b"x"), NOW).await {
        PushOutcome::Retry { after_ms: None, reason } => assert!(reason.contains("300 ms"), "{reason}"),
        other => panic!("{other:?}"),
    }
    held.abort();
}

#[test]
fn the_push_service_checks_vapid_strictly() {
    let keys = VapidKeys::generate();
    let origin = "http://127.0.0.1:4000";
    let header = vapid_authorization(&keys, origin, CONTACT, NOW).unwrap();
    let ok = check_vapid(&header, origin, NOW).unwrap();
    assert_eq!(ok.key, keys.public);
    assert_eq!(ok.claims["sub"], CONTACT);

    // Another key's k, a flipped signature, another origin, a contact that
    // is neither mailto: nor https:, expired, more than 24 hours ahead.
    let other = VapidKeys::generate();
    let (t, _) = header.split_once(", k=").unwrap();
    assert!(check_vapid(&format!("{t}, k={}", other.public), origin, NOW).is_err());
    let mut sig = b64(header.split('.').nth(2).unwrap().split(',').next().unwrap());
    sig[10] ^= 1;
    let flipped = {
        let (signed, rest) = header.rsplit_once('.').unwrap();
        let k = rest.split_once(", k=").unwrap().1;
        format!("{signed}.{}, k={k}", URL_SAFE_NO_PAD.encode(&sig))
    };
    assert!(check_vapid(&flipped, origin, NOW).is_err());
    assert!(check_vapid(&header, "http://127.0.0.1:4001", NOW).is_err());
    assert!(check_vapid(&vapid_authorization(&keys, origin, "ops", NOW).unwrap(), origin, NOW).is_err());
    assert!(check_vapid(&header, origin, NOW + 12 * 3600 * 1000).is_err(), "expired");
    assert!(check_vapid(&header, origin, NOW - 13 * 3600 * 1000).is_err(), "too far ahead");
    assert!(check_vapid(&header.replace("vapid ", "WebPush "), origin, NOW).is_err());
}
