//! Email: the SMTP client against a sink (headers, parts, failures), the
//! unsubscribe link over real HTTP, and the SMTP settings server functions
//! (owner only, validated by field) — the last two on both backends.

mod support;

use std::time::Duration;

use murmur::{
    domain::email::SmtpSettings,
    engine::email::{unsubscribe_token, MailError, Mailer, OutgoingMail, SmtpTarget},
    server::email::{smtp_target, unsubscribe_key},
};
use serde_json::{json, Value};
use support::{
    shop::{rest, shop, Shop},
    smtp::{decode_words, header, parts, SmtpSink, Stage},
    spawn_app, Backend, TestApp, TestDb,
};

fn target(sink: &SmtpSink) -> SmtpTarget {
    let settings = SmtpSettings::parse("127.0.0.1", &sink.port().to_string(), "none", "", "team@shop.example").unwrap();
    SmtpTarget { settings, password: None }
}

fn mail(id: &str) -> OutgoingMail {
    OutgoingMail {
        message_id: id.into(),
        from_name: "Zoë from Shop".into(),
        to: "bob@example.com".into(),
        to_name: Some("Bob Builder".into()),
        subject: "Grüße from Shop 👋".into(),
        html: "<p>Hi <strong>Bob</strong>, please <a href=\"https://shop.example/r?a=1&amp;b=2\">rate us</a>.</p>\
               <p>.a line that starts with a dot</p><ul><li>one</li><li>two</li></ul><p>Schöne Grüße</p>"
            .into(),
        unsubscribe_url: "https://murmur.example/unsubscribe/abc.def".into(),
    }
}

#[tokio::test]
async fn a_message_reaches_the_server_with_its_headers_and_parts() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(Duration::from_secs(10));
    mailer.send(&target(&sink), &mail("d0123456789abcdef")).await.unwrap();
    let got = sink.wait_for(1).await;
    let m = &got[0];
    assert_eq!(m.from, "team@shop.example");
    assert_eq!(m.to, ["bob@example.com"]);
    assert_eq!(m.auth, None, "no user name: no sign-in");
    let data = &m.data;
    assert!(data.is_ascii(), "headers and bodies are encoded: {data}");

    let from = header(data, "From").unwrap();
    assert_eq!(decode_words(&from).replace('"', ""), "Zoë from Shop <team@shop.example>", "{from}");
    let to = decode_words(&header(data, "To").unwrap()).replace('"', "");
    assert_eq!(to, "Bob Builder <bob@example.com>");
    let subject = header(data, "Subject").unwrap();
    assert!(subject.to_ascii_lowercase().contains("=?utf-8?"), "non-ASCII subject is encoded: {subject}");
    assert_eq!(decode_words(&subject), "Grüße from Shop 👋");
    assert_eq!(header(data, "Message-ID").unwrap(), "<d0123456789abcdef@shop.example>");
    assert_eq!(header(data, "List-Unsubscribe").unwrap(), "<https://murmur.example/unsubscribe/abc.def>");
    assert_eq!(header(data, "List-Unsubscribe-Post").unwrap(), "List-Unsubscribe=One-Click");
    assert!(header(data, "Date").is_some());
    assert!(header(data, "Content-Type").unwrap().starts_with("multipart/alternative"), "{data}");

    let p = parts(data);
    assert_eq!(p.len(), 2, "{data}");
    assert!(p[0].0.starts_with("text/plain"), "text first: {:?}", p[0].0);
    assert!(p[1].0.starts_with("text/html"), "then HTML: {:?}", p[1].0);
    let text = &p[0].1;
    assert!(text.starts_with("Hi Bob, please rate us (https://shop.example/r?a=1&b=2).\n\n"), "{text}");
    assert!(text.contains("\n.a line that starts with a dot\n"), "dot-stuffed and unstuffed: {text}");
    assert!(text.contains("\n- one\n- two\n"), "{text}");
    assert!(text.contains("Schöne Grüße"), "{text}");
    assert!(text.contains("https://murmur.example/unsubscribe/abc.def"), "{text}");
    let html = &p[1].1;
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("<strong>Bob</strong>") && html.contains("Schöne Grüße"), "{html}");
    assert!(html.contains("<a href=\"https://murmur.example/unsubscribe/abc.def\""), "{html}");
}

#[tokio::test]
async fn a_retry_is_the_same_message_over_the_same_connection() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(Duration::from_secs(10));
    let t = target(&sink);
    for id in ["d1", "d1", "d2"] {
        mailer.send(&t, &mail(id)).await.unwrap();
        // A used connection goes back to the pool in a task of its own:
        // let it run before the next send.
        tokio::task::yield_now().await;
    }
    let got = sink.wait_for(3).await;
    let ids: Vec<_> = got.iter().map(|m| header(&m.data, "Message-ID").unwrap()).collect();
    assert_eq!(ids, ["<d1@shop.example>", "<d1@shop.example>", "<d2@shop.example>"]);
    assert_eq!(sink.connections(), 1, "the pooled connection is reused");
}

#[tokio::test]
async fn credentials_are_sent_when_a_user_name_is_set() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(Duration::from_secs(10));
    let mut t = target(&sink);
    t.settings.username = Some("mailer".into());
    t.password = Some("s3cret pass".into());
    mailer.send(&t, &mail("d3")).await.unwrap();
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].auth, Some(("mailer".to_string(), "s3cret pass".to_string())));
}

#[tokio::test]
async fn refusals_are_transient_or_permanent_by_code() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(Duration::from_secs(10));
    let t = target(&sink);

    sink.fail_next(Stage::MailFrom, 1, 451);
    let e = mailer.send(&t, &mail("f1")).await.unwrap_err();
    assert!(matches!(e, MailError::Transient(_)), "{e:?}");
    assert!(e.message().contains("451"), "{e}");

    sink.fail_next(Stage::RcptTo, 1, 550);
    let e = mailer.send(&t, &mail("f2")).await.unwrap_err();
    assert!(matches!(e, MailError::Permanent(_)), "{e:?}");

    sink.fail_next(Stage::Data, 1, 452);
    assert!(matches!(mailer.send(&t, &mail("f3")).await, Err(MailError::Transient(_))));
    sink.fail_next(Stage::Data, 1, 554);
    assert!(matches!(mailer.send(&t, &mail("f4")).await, Err(MailError::Permanent(_))));

    // A bad recipient never reaches the server.
    let bad = OutgoingMail { to: "not an address".into(), ..mail("f5") };
    assert!(matches!(mailer.send(&t, &bad).await, Err(MailError::Permanent(_))));

    // The server is fine again: the next message goes.
    mailer.send(&t, &mail("ok")).await.unwrap();
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1, "only the last one was accepted");
    assert_eq!(header(&got[0].data, "Message-ID").unwrap(), "<ok@shop.example>");
}

#[tokio::test]
async fn an_unreachable_or_silent_server_is_transient() {
    // Nothing listens on a port that was just freed.
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let closed = SmtpTarget {
        settings: SmtpSettings::parse("127.0.0.1", &port.to_string(), "none", "", "a@shop.example").unwrap(),
        password: None,
    };
    let mailer = Mailer::new(Duration::from_secs(10));
    let e = mailer.send(&closed, &mail("c1")).await.unwrap_err();
    assert!(matches!(e, MailError::Transient(_)), "{e:?}");

    // A server that accepts and never says a word: the timeout ends it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let quiet = SmtpTarget {
        settings: SmtpSettings::parse("127.0.0.1", &silent_port.to_string(), "none", "", "a@shop.example").unwrap(),
        password: None,
    };
    let e = Mailer::new(Duration::from_millis(300)).send(&quiet, &mail("c2")).await.unwrap_err();
    assert!(matches!(e, MailError::Transient(_)), "{e:?}");
    holder.abort();
}

// ---------------------------------------------------------------------------
// Over HTTP, on both backends.

async fn app_with_shop(backend: Backend) -> Option<(TestDb, TestApp, Shop)> {
    let db = TestDb::new(backend).await?;
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Shop").await;
    Some((db, app, shop))
}

async fn create_user(app: &TestApp, shop: &Shop, user_id: &str) -> String {
    let r =
        rest(app, shop, "POST", "/v1.1/appusers", json!({"userId": user_id, "email": format!("{user_id}@x.io")})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["appUser"]["_id"].as_str().unwrap().to_string()
}

async fn properties(app: &TestApp, shop: &Shop, id: &str) -> Value {
    let r = rest(app, shop, "GET", &format!("/v1.1/appusers/{id}"), Value::Null).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["appUser"]["properties"].clone()
}

const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

async fn one_click(app: &TestApp, path: &str, extra: &[(&str, &str)]) -> support::Response {
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    headers.extend_from_slice(extra);
    app.request("POST", path, &headers, ONE_CLICK).await
}

async fn unsubscribe_link(backend: Backend) {
    let Some((_db, app, shop)) = app_with_shop(backend).await else { return };
    let u1 = create_user(&app, &shop, "u1").await;
    let u2 = create_user(&app, &shop, "u2").await;
    let key = unsubscribe_key(&app.state.secrets);
    let token = unsubscribe_token(&key, &shop.app_id, &u1);
    let path = format!("/unsubscribe/{token}");

    // Tampered tokens: 404, and nothing changes.
    let (payload, mac) = token.split_once('.').unwrap();
    let flipped = {
        let mut b = payload.as_bytes().to_vec();
        b[3] = if b[3] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
    let other_user = URL_SAFE_NO_PAD.encode(format!("{}\n{u2}", shop.app_id));
    for bad in [
        format!("{flipped}.{mac}"),
        format!("{other_user}.{mac}"),
        format!("{payload}.{}", &mac[1..]),
        "nonsense".to_string(),
        unsubscribe_token(&[9; 32], &shop.app_id, &u1),
    ] {
        let p = format!("/unsubscribe/{bad}");
        let r = app.get(&p, None).await;
        assert_eq!(r.status, 404, "{bad}: {}", r.body);
        assert!(r.body.contains("This unsubscribe link is not valid"), "{}", r.body);
        let r = one_click(&app, &p, &[]).await;
        assert_eq!(r.status, 404, "{bad}: {}", r.body);
    }
    assert_eq!(properties(&app, &shop, &u1).await, json!({}));
    assert_eq!(properties(&app, &shop, &u2).await, json!({}));

    // The page asks first: opening it changes nothing (mail scanners open links).
    let page = app.get(&path, None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page.body.contains("Stop receiving emails from Shop?"), "{}", page.body);
    assert!(page.body.contains(&format!("<form method=\"post\" action=\"{path}\">")), "{}", page.body);
    assert_eq!(properties(&app, &shop, &u1).await, json!({}));

    // A cross-site form post is refused by the guard (the page's own form is same-origin).
    let r = one_click(&app, &path, &[("Origin", "http://evil.example")]).await;
    assert_eq!(r.status, 403);
    assert_eq!(properties(&app, &shop, &u1).await, json!({}));

    // RFC 8058 one-click: a POST with no Origin and no Sec-Fetch-Site.
    let r = one_click(&app, &path, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("You are unsubscribed"), "{}", r.body);
    assert_eq!(properties(&app, &shop, &u1).await, json!({"unsubscribedFromEmails": true}));
    assert_eq!(properties(&app, &shop, &u2).await, json!({}), "only that user");
    // Through the engine's update path: the property is in the app's catalog as a boolean.
    let catalog = app.state.store.property_catalog(&shop.app_id).await.unwrap();
    assert!(format!("{catalog:?}").contains("unsubscribedFromEmails"), "{catalog:?}");

    // Again: still fine; the page now says so.
    assert_eq!(one_click(&app, &path, &[]).await.status, 200);
    let page = app.get(&path, None).await;
    assert!(page.body.contains("You are unsubscribed"), "{}", page.body);

    // The page's own button: a same-origin browser post.
    let origin = app.origin();
    let p2 = format!("/unsubscribe/{}", unsubscribe_token(&key, &shop.app_id, &u2));
    let r = one_click(&app, &p2, &[("Origin", origin.as_str()), ("Sec-Fetch-Site", "same-origin")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(properties(&app, &shop, &u2).await, json!({"unsubscribedFromEmails": true}));

    // A deleted user's link: 404.
    let u3 = create_user(&app, &shop, "u3").await;
    let p3 = format!("/unsubscribe/{}", unsubscribe_token(&key, &shop.app_id, &u3));
    assert_eq!(rest(&app, &shop, "DELETE", &format!("/v1.1/appusers/{u3}"), Value::Null).await.status, 200);
    assert_eq!(one_click(&app, &p3, &[]).await.status, 404);
}

#[tokio::test]
async fn unsubscribe_link_sqlite() {
    unsubscribe_link(Backend::Sqlite).await;
}

#[tokio::test]
async fn unsubscribe_link_postgres() {
    unsubscribe_link(Backend::Postgres).await;
}

fn smtp_fields<'a>(app_id: &'a str, host: &'a str, port: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("input[app_id]", app_id),
        ("input[host]", host),
        ("input[port]", port),
        ("input[security]", "start_tls"),
        ("input[username]", "mailer"),
        ("input[password]", password),
        ("input[from_address]", "team@shop.example"),
    ]
}

async fn smtp_settings(backend: Backend) {
    let Some((_db, app, shop)) = app_with_shop(backend).await else { return };
    let owner = shop.owner.clone();
    let a = shop.app_id.as_str();
    let load = |who: String| {
        let app = &app;
        async move { app.call("apps/smtp", &[("input[app_id]", a)], Some(&who), &[]).await }
    };

    // Off until saved, and the settings page says so.
    assert_eq!(load(owner.clone()).await.json(), json!({"settings": null, "password_set": false}));
    let s = app.call("apps/settings", &[("input[app_id]", a)], Some(&owner), &[]).await.json();
    assert_eq!(s["smtp"]["settings"], Value::Null);
    let page = app.get(&format!("/apps/{a}/settings"), Some(&owner)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Email (SMTP)"), "{}", page.body);
    assert!(page.body.contains("Email is off for this app until you save these settings."), "{}", page.body);

    // Bad input: 422 by field, nothing stored.
    let r = app.call("apps/smtp/save", &smtp_fields(a, "smtp.shop.example", "70000", "pw 1"), Some(&owner), &[]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["Field"]["field"], "port");
    let r = app.call("apps/smtp/save", &smtp_fields(a, "bad host", "x", "pw 1"), Some(&owner), &[]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["Field"]["field"], "host,port");
    let r = app.call("apps/smtp/save", &smtp_fields(a, "smtp.shop.example", "587", ""), Some(&owner), &[]).await;
    assert_eq!(r.status, 422, "a user name needs a password: {}", r.body);
    assert_eq!(r.json()["Field"]["field"], "password");
    assert!(app.state.store.smtp_settings(a).await.unwrap().is_none());

    // The owner saves: sealed at rest, never sent back.
    let r =
        app.call("apps/smtp/save", &smtp_fields(a, "smtp.shop.example", "587", "s3cret pass"), Some(&owner), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = load(owner.clone()).await;
    assert_eq!(v.status, 200);
    assert!(!v.body.contains("s3cret"), "{}", v.body);
    assert_eq!(
        v.json(),
        json!({"settings": {"host": "smtp.shop.example", "port": 587, "security": "start_tls",
                            "username": "mailer", "from_address": "team@shop.example"},
               "password_set": true})
    );
    let (_, sealed) = app.state.store.smtp_settings(a).await.unwrap().unwrap();
    let sealed = sealed.unwrap();
    assert!(!sealed.windows(6).any(|w| w == b"s3cret"), "sealed at rest");
    let t = smtp_target(&app.state, a).await.unwrap().unwrap();
    assert_eq!(t.password.as_deref(), Some("s3cret pass"));
    assert_eq!(t.settings.port, 587);
    let page = app.get(&format!("/apps/{a}/settings"), Some(&owner)).await;
    assert!(page.body.contains("placeholder=\"unchanged\""), "{}", page.body);
    assert!(!page.body.contains("s3cret"));

    // An empty password keeps the stored one…
    let r = app.call("apps/smtp/save", &smtp_fields(a, "smtp.shop.example", "2525", ""), Some(&owner), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = smtp_target(&app.state, a).await.unwrap().unwrap();
    assert_eq!((t.settings.port, t.password.as_deref()), (2525, Some("s3cret pass")));
    // …but never for another server.
    let r = app.call("apps/smtp/save", &smtp_fields(a, "smtp.evil.example", "587", ""), Some(&owner), &[]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["Field"]["field"], "password");
    assert_eq!(smtp_target(&app.state, a).await.unwrap().unwrap().settings.host, "smtp.shop.example");

    // A teammate sees the settings, cannot change them.
    let tess = app.add_tess(a, &owner).await;
    let v = load(tess.clone()).await;
    assert_eq!(v.status, 200, "{}", v.body);
    assert_eq!(v.json()["password_set"], true);
    assert!(!v.body.contains("s3cret"));
    let r = app.call("apps/smtp/save", &smtp_fields(a, "smtp.tess.example", "587", "tess pw"), Some(&tess), &[]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = app.call("apps/smtp/save", &smtp_fields(a, "smtp.tess.example", "bad", "x"), Some(&tess), &[]).await;
    assert_eq!(r.status, 403, "refused before validation: {}", r.body);
    assert_eq!(app.call("apps/smtp/clear", &[("input[app_id]", a)], Some(&tess), &[]).await.status, 403);
    assert_eq!(smtp_target(&app.state, a).await.unwrap().unwrap().settings.host, "smtp.shop.example");
    let page = app.get(&format!("/apps/{a}/settings"), Some(&tess)).await;
    assert!(page.body.contains("Only the owner can change the email settings."), "{}", page.body);
    // Signed out: 401.
    assert_eq!(load(String::new()).await.status, 401);

    // Without a user name the password is dropped.
    let mut fields = smtp_fields(a, "relay.shop.example", "25", "");
    fields[3] = ("input[security]", "none");
    fields[4] = ("input[username]", "");
    assert_eq!(app.call("apps/smtp/save", &fields, Some(&owner), &[]).await.status, 200);
    let t = smtp_target(&app.state, a).await.unwrap().unwrap();
    assert_eq!((t.settings.username, t.password), (None, None));
    assert_eq!(load(owner.clone()).await.json()["password_set"], false);

    // The owner turns email off.
    let r = app.call("apps/smtp/clear", &[("input[app_id]", a)], Some(&owner), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(load(owner.clone()).await.json(), json!({"settings": null, "password_set": false}));
    assert!(smtp_target(&app.state, a).await.unwrap().is_none());
}

#[tokio::test]
async fn smtp_settings_sqlite() {
    smtp_settings(Backend::Sqlite).await;
}

#[tokio::test]
async fn smtp_settings_postgres() {
    smtp_settings(Backend::Postgres).await;
}
