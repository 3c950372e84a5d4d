//! The demo page over HTTP, on both backends: teammates of the app only,
//! test users (`demo-…`) only, a fresh test user by default, an identity
//! token for that user signed with the app's secret, the whisper to try
//! described, everything typed shown as text, and its own CSP.

mod support;

use murmur::{
    domain::whisper::{from_template, Trigger},
    server::jwt::Jwt,
};
use serde_json::Value;
use support::{
    shop::{save_whisper, shop},
    spawn_app, Backend, TestDb,
};

fn config(body: &str) -> Value {
    let start = body.find(r#"<script type="application/json" id="murmur-demo">"#).expect("the page's config");
    let rest = &body[start..];
    let json = &rest[rest.find('>').unwrap() + 1..rest.find("</script>").unwrap()];
    serde_json::from_str(json).unwrap()
}

async fn demo_page(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let shop = shop(&app, &owner, "Bean <b>&</b> Co").await;
    let path = format!("/demo/{}", shop.app_id);

    // Signed out: to the sign-in page.
    let r = app.get(&path, None).await;
    assert!(r.status == 303 || r.status == 302 || r.status == 307, "{} {}", r.status, r.body);
    assert_eq!(r.header("location"), Some("/login"));

    // No user named: a fresh test user.
    let r = app.get(&path, Some(&owner)).await;
    assert!((300..400).contains(&r.status), "{}", r.status);
    let to = r.header("location").unwrap().to_string();
    assert!(to.starts_with(&format!("{path}?user=demo-")), "{to}");

    // A real user cannot be acted as.
    let r = app.get(&format!("{path}?user=ann"), Some(&owner)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("test users"), "{}", r.body);

    // The page: the widget as a customer installs it, its own CSP, the
    // app's name as text, and a token for the test user only.
    let r = app.get(&format!("{path}?user=demo-ann"), Some(&owner)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(r.body.contains("Bean &lt;b&gt;&amp;&lt;/b&gt; Co"), "the app's name is escaped");
    assert!(!r.body.contains("<b>&</b>"));
    assert!(r.body.contains(r#"<script src="/demo/demo.js"></script>"#));
    let c = config(&r.body);
    assert_eq!(c["appId"], shop.app_id.as_str());
    assert_eq!(c["userId"], "demo-ann");
    assert_eq!(c["loader"], "/widget/loader.js");
    let jwt = Jwt::parse(c["jwt"].as_str().unwrap()).unwrap();
    assert!(jwt.signed_with(shop.identity.as_bytes()), "signed with the app's identity secret");
    assert_eq!(jwt.claims["userId"], "demo-ann");
    assert_eq!(jwt.claims["scope"], "appUser");
    jwt.check_expiry(app.state.now(), true).unwrap();

    // "Try this whisper": what fires it, for whom, and its event prefilled.
    let mut d = from_template(None, &shop.owner_id);
    d.name = "Cart <nudge>".into();
    d.trigger = Trigger::Event("item-in-cart".into());
    d.all_users = true;
    d.text = "Your cart misses you.".into();
    let whisper = save_whisper(&app, &shop, &d).await;
    let r = app.get(&format!("{path}?user=demo-ann&whisper={whisper}"), Some(&owner)).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Trying \u{201c}Cart &lt;nudge&gt;\u{201d}: it fires when the user tracks \u{201c}item-in-cart\u{201d}, for everyone."), "{}", r.body);
    assert!(r.body.contains(r#"value="item-in-cart""#));
    // The "new test user" link keeps the whisper.
    assert!(r.body.contains(&format!("&amp;whisper={whisper}\" data-testid=\"demo-new-user\"")), "{}", r.body);

    // Another app's teammate: not found.
    let other = support::shop::shop(&app, &owner, "Other").await;
    let tess = app.add_tess(&other.app_id, &owner).await;
    let r = app.get(&format!("{path}?user=demo-ann"), Some(&tess)).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // The script.
    let r = app.get("/demo/demo.js", None).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/javascript"));
    assert!(r.body.contains("Murmur.init"));
}

#[tokio::test]
async fn demo_page_on_sqlite() {
    demo_page(Backend::Sqlite).await;
}

#[tokio::test]
async fn demo_page_on_postgres() {
    demo_page(Backend::Postgres).await;
}
