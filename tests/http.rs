//! Black-box HTTP tests: the whole app on port 0 with a fresh database,
//! driven the way a browser drives it (server-function form posts).

mod support;

use support::{spawn_app, Backend, TestApp, TestDb};

async fn sqlite_app(extra: &[(&str, &str)]) -> (TestDb, TestApp) {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(&db, extra).await;
    (db, app)
}

#[tokio::test]
async fn healthz_checks_the_database() {
    let (_db, app) = sqlite_app(&[]).await;
    let r = app.get("/healthz", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["database"], "sqlite");
    // Every connection of the shared pool busy (as under a flood): the
    // health check, on a connection of its own, still answers at once.
    let murmur::storage::Store::Sqlite(pool) = &app.state.store else { unreachable!() };
    let mut held = vec![];
    for _ in 0..pool.options().get_max_connections() {
        held.push(pool.acquire().await.unwrap());
    }
    assert_eq!(pool.num_idle(), 0, "the shared pool is exhausted");
    let r = tokio::time::timeout(std::time::Duration::from_secs(3), app.get("/healthz", None)).await;
    assert_eq!(r.expect("healthz waited behind the shared pool").status, 200);
    drop(held);
    // The database unreachable from its connection: 503.
    app.state.health.close().await;
    let r = app.get("/healthz", None).await;
    assert_eq!(r.status, 503);
}

#[tokio::test]
async fn first_run_shows_setup_and_creates_one_owner() {
    let (_db, app) = sqlite_app(&[]).await;
    let page = app.get("/setup", None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Create the owner account"), "{}", page.body);
    // Visiting / before setup redirects there.
    let home = app.get("/", None).await;
    assert_eq!(home.status, 302, "{}", home.body);
    assert_eq!(home.header("location"), Some("/setup"));

    // Bad input: every field reported, nothing written.
    let r = app
        .call("setup", &[("input[name]", " "), ("input[email]", "nope"), ("input[password]", "short")], None, &[])
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    for needle in ["Enter a name.", "Enter an email address like name@example.com.", "Use at least 10 characters"] {
        assert!(r.body.contains(needle), "{needle} missing from {}", r.body);
    }
    assert_eq!(app.state.store.count_teammates().await.unwrap(), 0);

    let token = app.setup_owner().await;
    assert_eq!(app.state.store.count_teammates().await.unwrap(), 1);
    let owner = app.state.store.owner().await.unwrap().unwrap();
    assert!(owner.password_hash.starts_with("$argon2id$"), "hashed with Argon2id");
    assert!(!owner.password_hash.contains("owner password 1"));

    // A second setup is refused and writes nothing.
    let r = app
        .call(
            "setup",
            &[("input[name]", "Mallory"), ("input[email]", "m@example.com"), ("input[password]", "mallory password")],
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("Setup is already complete"));
    assert_eq!(app.state.store.count_teammates().await.unwrap(), 1);

    // The setup session is a real session.
    let r = app.call("session", &[], Some(&token), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["me"]["name"], "Olive Owner");
    assert_eq!(r.json()["me"]["initials"], "OO");
}

#[tokio::test]
async fn session_cookie_is_httponly_samesite_and_secure_over_https() {
    let (_db, app) = sqlite_app(&[]).await;
    let r = app
        .call(
            "setup",
            &[("input[name]", "Olive"), ("input[email]", "o@example.com"), ("input[password]", "owner password 1")],
            None,
            &[],
        )
        .await;
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");

    let (_db2, app2) = sqlite_app(&[("PUBLIC_URL", "https://murmur.example.com")]).await;
    let r = app2
        .call(
            "setup",
            &[
                ("input[name]", "Olive"),
                ("input[email]", "o@example.com"),
                ("input[password]", "owner password 1"),
                ("input[setup_token]", &app2.setup_token()),
            ],
            None,
            &[],
        )
        .await;
    let cookie = r.header("set-cookie").unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn sign_in_sign_out_and_wrong_password() {
    let (_db, app) = sqlite_app(&[]).await;
    app.setup_owner().await;
    let wrong = app.login("owner@example.com", "not the password").await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(wrong.json(), "BadCredentials");
    assert!(wrong.session_cookie().is_none());
    let unknown = app.login("nobody@example.com", "owner password 1").await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.body, wrong.body, "unknown email and wrong password look alike");

    let ok = app.login("OWNER@example.com ", "owner password 1").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let token = ok.session_cookie().unwrap();
    assert_eq!(app.call("session", &[], Some(&token), &[]).await.json()["me"]["email"], "owner@example.com");

    let out = app.call("logout", &[], Some(&token), &[]).await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    // The session is gone on the server, not just in the browser.
    assert!(app.call("session", &[], Some(&token), &[]).await.json()["me"].is_null());
    let r = app.call("apps/create", &[("input[name]", "Shop")], Some(&token), &[]).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn sessions_expire() {
    let (_db, app) = sqlite_app(&[]).await;
    let token = app.setup_owner().await;
    app.clock.advance_ms(31 * 24 * 60 * 60 * 1000);
    assert!(app.call("session", &[], Some(&token), &[]).await.json()["me"].is_null());
}

#[tokio::test]
async fn sign_in_is_throttled_per_account_but_the_owner_gets_back_in_soon() {
    let (_db, app) = sqlite_app(&[("TRUST_PROXY", "true")]).await;
    app.setup_owner().await;
    let from = |ip: &'static str| [("X-Forwarded-For", ip)];
    let login_from = |ip: &'static str, password: &'static str| {
        let app = &app;
        async move {
            app.call("login", &[("input[email]", "owner@example.com"), ("input[password]", password)], None, &from(ip))
                .await
        }
    };
    // Five free failures from an attacker...
    for _ in 0..5 {
        assert_eq!(login_from("203.0.113.9", "guess").await.status, 401);
    }
    // ...then the account waits, even for the right password from elsewhere.
    let r = login_from("198.51.100.1", "owner password 1").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["Throttled"]["retry_after_secs"], 1);
    // Doubling waits, capped at a minute for the account.
    for _ in 0..20 {
        app.clock.advance_ms(60_000);
        assert_eq!(login_from("203.0.113.9", "guess").await.status, 401);
    }
    let r = login_from("198.51.100.1", "owner password 1").await;
    assert_eq!(r.status, 429);
    let wait: i64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(wait <= 60, "the owner waits at most a minute, not {wait}s");
    app.clock.advance_ms(wait * 1000);
    let r = login_from("198.51.100.1", "owner password 1").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn sign_in_is_throttled_per_client_address_across_accounts() {
    let (_db, app) = sqlite_app(&[("TRUST_PROXY", "true")]).await;
    app.setup_owner().await;
    let headers = [("X-Forwarded-For", "203.0.113.7")];
    for i in 0..20 {
        let email = format!("user{i}@example.com");
        let r = app.call("login", &[("input[email]", &email), ("input[password]", "guess")], None, &headers).await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r =
        app.call("login", &[("input[email]", "fresh@example.com"), ("input[password]", "guess")], None, &headers).await;
    assert_eq!(r.status, 429, "the 21st guess from one address waits");
    // Another address is not affected.
    let r = app
        .call(
            "login",
            &[("input[email]", "owner@example.com"), ("input[password]", "owner password 1")],
            None,
            &[("X-Forwarded-For", "198.51.100.2")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn cross_site_requests_are_refused_and_change_nothing() {
    let (_db, app) = sqlite_app(&[]).await;
    let fields = [("input[name]", "Eve"), ("input[email]", "eve@example.com"), ("input[password]", "eve password 12")];
    for headers in [
        vec![("Origin", "http://evil.example")],
        vec![("Origin", "null")],
        vec![("Sec-Fetch-Site", "cross-site"), ("Origin", "http://evil.example")],
        vec![("Sec-Fetch-Site", "same-site")],
        vec![("Referer", "http://evil.example/attack.html")],
    ] {
        let r = app.call("setup", &fields, None, &headers).await;
        assert_eq!(r.status, 403, "{headers:?}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "cross_site_request");
    }
    assert_eq!(app.state.store.count_teammates().await.unwrap(), 0);

    // With a real session, a cross-site form still cannot act.
    let token = app.setup_owner().await;
    let r = app
        .call("apps/create", &[("input[name]", "Evil app")], Some(&token), &[("Origin", "https://evil.example")])
        .await;
    assert_eq!(r.status, 403);
    let me = app.state.store.owner().await.unwrap().unwrap();
    assert!(app.state.store.apps_of(&me.id).await.unwrap().is_empty());
    // The same request from the page's own origin works.
    let r =
        app.call("apps/create", &[("input[name]", "Shop")], Some(&token), &[("Sec-Fetch-Site", "same-origin")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn apps_keys_and_secrets() {
    let (_db, app) = sqlite_app(&[]).await;
    let token = app.setup_owner().await;
    let r = app.call("apps/create", &[("input[name]", "  ")], Some(&token), &[]).await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("Enter an app name."));

    let created = app.call("apps/create", &[("input[name]", "Shop <script>")], Some(&token), &[]).await.json();
    let app_id = created["app"]["id"].as_str().unwrap().to_string();
    let identity_secret = created["identity_secret"].as_str().unwrap().to_string();
    assert_eq!(identity_secret.len(), 43);

    // Settings: the snippet in its final form; no secret anywhere.
    let s = app.call("apps/settings", &[("input[app_id]", &app_id)], Some(&token), &[]).await;
    assert_eq!(s.status, 200, "{}", s.body);
    let snippet = s.json()["snippet"].as_str().unwrap().to_string();
    assert!(snippet.contains(&format!("Murmur.init({{ appId: \"{app_id}\" }})")));
    assert!(snippet.contains(&format!("\"{}/widget/loader.js\"", app.origin())));
    assert!(!s.body.contains(&identity_secret));

    let k = app
        .call("apps/keys/create", &[("input[app_id]", &app_id), ("input[name]", "backend")], Some(&token), &[])
        .await;
    assert_eq!(k.status, 200, "{}", k.body);
    let key = k.json();
    let (key_id, secret) = (key["id"].as_str().unwrap().to_string(), key["secret"].as_str().unwrap().to_string());
    assert!(key_id.starts_with("app_"));
    let s = app.call("apps/settings", &[("input[app_id]", &app_id)], Some(&token), &[]).await;
    assert!(s.body.contains(&key_id) && !s.body.contains(&secret), "the secret is shown once");

    // Sealed at rest under the server key, and it opens again.
    let row = app.state.store.api_key(&key_id).await.unwrap().unwrap();
    assert!(!row.secret_enc.windows(secret.len()).any(|w| w == secret.as_bytes()));
    let opened = app.state.secrets.open(&murmur::server::apps::api_key_context(&key_id), &row.secret_enc).unwrap();
    assert_eq!(opened, secret.as_bytes());
    let app_row =
        app.state.store.app_of(&app_id, &app.state.store.owner().await.unwrap().unwrap().id).await.unwrap().unwrap();
    let opened = app
        .state
        .secrets
        .open(&murmur::server::apps::identity_secret_context(&app_id), &app_row.identity_secret_enc)
        .unwrap();
    assert_eq!(opened, identity_secret.as_bytes());

    // Revoke; a second revoke is a 404.
    let r = app
        .call("apps/keys/revoke", &[("input[app_id]", &app_id), ("input[key_id]", &key_id)], Some(&token), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .call("apps/keys/revoke", &[("input[app_id]", &app_id), ("input[key_id]", &key_id)], Some(&token), &[])
        .await;
    assert_eq!(r.status, 404);

    // Rolling the identity secret returns a new one, once.
    let r = app.call("apps/identity-secret/roll", &[("input[app_id]", &app_id)], Some(&token), &[]).await;
    let rolled: String = serde_json::from_str(&r.body).unwrap();
    assert_ne!(rolled, identity_secret);
}

#[tokio::test]
async fn teammates_see_only_their_apps_and_only_the_owner_manages_the_team() {
    let (_db, app) = sqlite_app(&[]).await;
    let owner = app.setup_owner().await;
    let a = app.call("apps/create", &[("input[name]", "A")], Some(&owner), &[]).await.json()["app"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = app.call("apps/create", &[("input[name]", "B")], Some(&owner), &[]).await.json()["app"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let add = |email: &'static str, password: &'static str| {
        let (app, owner, a) = (&app, owner.clone(), a.clone());
        async move { app.add_teammate(&a, &owner, "Tess Mate", email, password).await }
    };
    let r = add("tess@example.com", "short").await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("Use at least 10 characters"));
    let r = add("owner@example.com", "a long password").await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("A teammate with this email already exists."));
    assert_eq!(app.state.store.count_teammates().await.unwrap(), 1);
    let r = add("tess@example.com", "tess password 1").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tess_id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["initials"], "TM");

    let tess = app.login("tess@example.com", "tess password 1").await.session_cookie().unwrap();
    let info = app.call("session", &[], Some(&tess), &[]).await.json();
    let names: Vec<_> = info["apps"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["A"], "Tess sees only app A");
    // App B does not exist as far as Tess can tell.
    assert_eq!(app.call("dashboard", &[("app_id", &b)], Some(&tess), &[]).await.status, 404);
    assert_eq!(app.call("apps/settings", &[("input[app_id]", &b)], Some(&tess), &[]).await.status, 404);
    let kb =
        app.call("apps/keys/create", &[("input[app_id]", &b), ("input[name]", "k")], Some(&owner), &[]).await.json();
    let r = app
        .call(
            "apps/keys/revoke",
            &[("input[app_id]", &b), ("input[key_id]", kb["id"].as_str().unwrap())],
            Some(&tess),
            &[],
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(app.state.store.api_key(kb["id"].as_str().unwrap()).await.unwrap().unwrap().revoked_at.is_none());
    // A key of app B cannot be revoked through app A either.
    let r = app
        .call(
            "apps/keys/revoke",
            &[("input[app_id]", &a), ("input[key_id]", kb["id"].as_str().unwrap())],
            Some(&owner),
            &[],
        )
        .await;
    assert_eq!(r.status, 404);
    // Tess cannot manage the team.
    let r = app.add_teammate(&a, &tess, "X", "x@example.com", "x password 12").await;
    assert_eq!(r.status, 403);
    // A teammate's new app is visible to the owner too.
    let c = app.call("apps/create", &[("input[name]", "C")], Some(&tess), &[]).await.json()["app"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.call("dashboard", &[("app_id", &c)], Some(&owner), &[]).await.status, 200);

    // The owner removes Tess: her session ends.
    let owner_id = app.state.store.owner().await.unwrap().unwrap().id;
    let r = app
        .call("teammates/remove", &[("input[app_id]", &a), ("input[teammate_id]", &owner_id)], Some(&owner), &[])
        .await;
    assert_eq!(r.status, 409, "the owner cannot be removed");
    let r = app
        .call("teammates/remove", &[("input[app_id]", &a), ("input[teammate_id]", &tess_id)], Some(&owner), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(app.call("session", &[], Some(&tess), &[]).await.json()["me"].is_null());
}

#[tokio::test]
async fn pages_redirect_and_unknown_paths_are_404() {
    let (_db, app) = sqlite_app(&[]).await;
    let owner = app.setup_owner().await;
    assert_eq!(app.get("/", None).await.header("location"), Some("/login"));
    assert_eq!(app.get("/", Some(&owner)).await.header("location"), Some("/new-app"));
    let id = app.call("apps/create", &[("input[name]", "Shop")], Some(&owner), &[]).await.json()["app"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.get("/", Some(&owner)).await.header("location"), Some(format!("/apps/{id}").as_str()));
    let page = app.get(&format!("/apps/{id}"), Some(&owner)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"data-testid="chart-whispers""#) && page.body.contains("<svg"), "{}", page.body);
    assert_eq!(app.get(&format!("/apps/{id}/settings"), None).await.header("location"), Some("/login"));
    assert_eq!(app.get("/no/such/page", None).await.status, 404);
}

/// The sign-in and setup pages are plain HTML forms, sent without the WASM
/// client: a browser with no script sets murmur up, is told a wrong
/// password beside the field, and signs in, by posting the forms as a
/// browser does (it asks for HTML and names the page it posts from).
#[tokio::test]
async fn sign_in_and_setup_work_as_plain_forms_without_the_client() {
    let (_db, app) = sqlite_app(&[]).await;
    let origin = app.origin();
    // A browser's own post of the form on `page`: it asks for HTML and
    // names the page.
    let post = |endpoint: &'static str, page: &'static str, fields: Vec<(&'static str, String)>| {
        let (app, origin) = (&app, origin.clone());
        async move {
            let referer = format!("{origin}{page}");
            let headers = [
                ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
                ("Origin", origin.as_str()),
                ("Referer", referer.as_str()),
            ];
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.call(endpoint, &fields, None, &headers).await
        }
    };
    let without_client = |page: &support::Response| {
        page.body.contains(r#"<body data-hydrated="true""#)
            && !page.body.contains("modulepreload")
            && !page.body.contains(".wasm")
    };

    let setup = app.get("/setup", None).await;
    assert_eq!(setup.status, 200);
    assert!(without_client(&setup), "{}", setup.body);
    assert!(setup.body.contains(r#"action="/api/setup""#), "{}", setup.body);
    let fields = vec![
        ("input[name]", "Olive Owner".to_string()),
        ("input[email]", "owner@example.com".to_string()),
        ("input[password]", "owner password 1".to_string()),
        ("input[setup_token]", app.setup_token()),
    ];
    let created = post("setup", "/setup", fields).await;
    assert_eq!((created.status, created.header("location")), (302, Some("/")), "{}", created.body);
    let owner = created.session_cookie().expect("setup signs the owner in");
    assert_eq!(app.get("/", Some(&owner)).await.header("location"), Some("/new-app"));

    let login = app.get("/login", None).await;
    assert_eq!(login.status, 200);
    assert!(without_client(&login), "{}", login.body);
    assert!(login.body.contains("murmur-form:"), "the script that keeps typed values: {}", login.body);
    // A page that needs the client still gets it.
    let app_page = app.get("/new-app", Some(&owner)).await;
    assert!(app_page.body.contains("modulepreload") && !app_page.body.contains("data-hydrated"), "{}", app_page.body);

    let creds = |password: &str| {
        vec![("input[email]", "owner@example.com".to_string()), ("input[password]", password.to_string())]
    };
    let wrong = post("login", "/login", creds("not the password")).await;
    assert_eq!(wrong.status, 302, "{}", wrong.body);
    assert!(wrong.session_cookie().is_none());
    let back = wrong.header("location").unwrap().to_string();
    let back = back.strip_prefix(&origin).expect("back to the sign-in page");
    assert!(back.starts_with("/login?") && back.contains("__err="), "{back}");
    let shown = app.get(back, None).await;
    assert_eq!(shown.status, 200);
    assert!(without_client(&shown), "{}", shown.body);
    assert!(shown.body.contains("Wrong email or password."), "{}", shown.body);
    assert!(shown.body.contains(r#"role="alert""#), "{}", shown.body);

    let ok = post("login", "/login", creds("owner password 1")).await;
    assert_eq!((ok.status, ok.header("location")), (302, Some("/")), "{}", ok.body);
    let token = ok.session_cookie().expect("signed in");
    assert_eq!(app.call("session", &[], Some(&token), &[]).await.json()["me"]["email"], "owner@example.com");
    assert_eq!(app.get("/login", Some(&token)).await.header("location"), Some("/"));
}

/// A server-function request that cannot be decoded (a field missing, a
/// body that is not the form, bytes that are not UTF-8, a broken chunked
/// body) is the client's mistake: 400 with the error, never 500 (leptos
/// answers 500 for every error it makes itself). Found by `reliability fuzz`.
#[tokio::test]
async fn undecodable_server_function_requests_are_400_not_500() {
    let (_db, app) = sqlite_app(&[]).await;
    let owner = app.setup_owner().await;
    let (cookie, origin) = (app.cookie(&owner), app.origin());
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", cookie.as_str()),
        ("Origin", origin.as_str()),
    ];
    for (endpoint, body) in [
        ("apps/create", ""),
        ("apps/create", "input=1&input[name]=2"),
        ("apps/settings", "input%5Bnope%5D=x"),
        ("setup", "%FF%FE=%80&input[name]=%FF"),
        ("inbox/state", "app_id=a&conversation_id=b&open=maybe"),
    ] {
        let r = app.request("POST", &format!("/api/{endpoint}"), &headers, body).await;
        assert_eq!(r.status, 400, "{endpoint} {body:?}: {}", r.body);
        assert!(r.body.contains("Request"), "{}", r.body);
    }
    // A chunked body whose chunk size overflows.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let req = format!(
        "POST /api/login HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nffffffffffffffffffff\r\nx\r\n",
        app.addr,
        app.origin()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.starts_with("HTTP/1.1 500"), "{answer}");
}

/// Sessions live in the database: two server instances on one PostgreSQL
/// database accept each other's sessions, and a session survives a restart.
#[tokio::test]
async fn sessions_work_across_instances_and_restarts_on_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let a = spawn_app(&db, &[]).await;
    let b = spawn_app(&db, &[]).await;
    let token = a.setup_owner().await;
    let r = b.call("session", &[], Some(&token), &[]).await;
    assert_eq!(r.json()["me"]["email"], "owner@example.com");
    let r = b.call("apps/create", &[("input[name]", "Made on B")], Some(&token), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    drop(a);
    let c = spawn_app(&db, &[]).await;
    let info = c.call("session", &[], Some(&token), &[]).await.json();
    assert_eq!(info["apps"][0]["name"], "Made on B");
    for app in [b, c] {
        app.state.store.close().await;
    }
}

/// Many wrong sign-ins at once on one account: each is counted before its
/// password is checked, so only the account's free attempts cost a check
/// (not one each), and the rest are told to wait.
async fn parallel_wrong_sign_ins_check_at_most_the_allowance(backend: Backend) {
    use murmur::server::auth::throttle::ACCOUNT;
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    app.setup_owner().await;
    let checks_before = app.state.passwords.checks();
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (addr, origin) = (app.addr, app.origin());
        attempts.spawn(async move {
            let body = support::form_encode(&[
                ("input[email]", "owner@example.com"),
                ("input[password]", &format!("guess number {i}")),
            ]);
            let headers = [
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Accept", "application/json"),
                ("Origin", origin.as_str()),
            ];
            support::raw_request(addr, "POST", "/api/login", &headers, &body).await.status
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = attempts.join_next().await {
        statuses.push(status.unwrap());
    }
    let checks = app.state.passwords.checks() - checks_before;
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    let waiting = statuses.iter().filter(|s| **s == 429).count();
    assert!(checks <= ACCOUNT.free as u64, "{checks} password checks for 40 guesses at once");
    assert_eq!((wrong, waiting), (checks as usize, 40 - checks as usize), "{statuses:?}");
    // Counted per account and per client address (the socket's peer).
    let keys = ["account:owner@example.com".to_string(), "address:127.0.0.1".to_string()];
    let rows = app.state.store.throttle_rows(&keys).await.unwrap();
    let failures: Vec<_> = rows.iter().map(|r| (r.key.as_str(), r.failures)).collect();
    assert_eq!(failures, [(keys[0].as_str(), checks as i64), (keys[1].as_str(), checks as i64)]);
    // The owner gets in once the wait is over, and that clears the count.
    app.clock.advance_ms(ACCOUNT.cap_secs * 1000);
    assert_eq!(app.login("owner@example.com", "owner password 1").await.status, 200);
    assert!(app.state.store.throttle_rows(&keys).await.unwrap().is_empty());
}

#[tokio::test]
async fn parallel_wrong_sign_ins_check_at_most_the_allowance_on_sqlite() {
    parallel_wrong_sign_ins_check_at_most_the_allowance(Backend::Sqlite).await;
}

#[tokio::test]
async fn parallel_wrong_sign_ins_check_at_most_the_allowance_on_postgres() {
    parallel_wrong_sign_ins_check_at_most_the_allowance(Backend::Postgres).await;
}

#[tokio::test]
async fn only_the_owner_creates_and_revokes_keys_and_rolls_the_identity_secret() {
    let (_db, app) = sqlite_app(&[]).await;
    let owner = app.setup_owner().await;
    let created = app.call("apps/create", &[("input[name]", "Shop")], Some(&owner), &[]).await.json();
    let app_id = created["app"]["id"].as_str().unwrap().to_string();
    let tess = app.add_tess(&app_id, &owner).await;
    let key = app
        .call("apps/keys/create", &[("input[app_id]", &app_id), ("input[name]", "backend")], Some(&owner), &[])
        .await
        .json();
    let key_id = key["id"].as_str().unwrap().to_string();
    let owner_id = app.state.store.owner().await.unwrap().unwrap().id;
    let (store, app_ref, owner_ref) = (&app.state.store, app_id.as_str(), owner_id.as_str());
    let identity_secret =
        move || async move { store.app_of(app_ref, owner_ref).await.unwrap().unwrap().identity_secret_enc };
    let sealed_before = identity_secret().await;

    // Tess can see the app's settings, but not touch its secrets.
    let s = app.call("apps/settings", &[("input[app_id]", &app_id)], Some(&tess), &[]).await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(s.json()["can_manage_secrets"], false);
    let r =
        app.call("apps/keys/create", &[("input[app_id]", &app_id), ("input[name]", "mine")], Some(&tess), &[]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r =
        app.call("apps/keys/revoke", &[("input[app_id]", &app_id), ("input[key_id]", &key_id)], Some(&tess), &[]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = app.call("apps/identity-secret/roll", &[("input[app_id]", &app_id)], Some(&tess), &[]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = app
        .call("apps/identity-enforced", &[("input[app_id]", &app_id), ("input[enforced]", "false")], Some(&tess), &[])
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Nothing changed.
    let keys = app.state.store.api_keys(&app_id).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].revoked_at.is_none());
    assert_eq!(identity_secret().await, sealed_before);

    // The owner can do all of it.
    let s = app.call("apps/settings", &[("input[app_id]", &app_id)], Some(&owner), &[]).await;
    assert_eq!(s.json()["can_manage_secrets"], true);
    let r =
        app.call("apps/keys/create", &[("input[app_id]", &app_id), ("input[name]", "two")], Some(&owner), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .call("apps/keys/revoke", &[("input[app_id]", &app_id), ("input[key_id]", &key_id)], Some(&owner), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.call("apps/identity-secret/roll", &[("input[app_id]", &app_id)], Some(&owner), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(identity_secret().await, sealed_before);
}

/// Slowloris: a client that starts a request and never finishes its
/// headers is disconnected after the header-read timeout; one that sends
/// them in time is served.
#[tokio::test]
async fn a_client_that_does_not_finish_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_db, app) = sqlite_app(&[("HEADER_READ_TIMEOUT_MS", "300")]).await;
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: murmur\r\nX-Slow: a").await.unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "the connection was still open 10 s later");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    // The server itself is fine.
    assert_eq!(app.get("/healthz", None).await.status, 200);
}

/// A request whose body never arrives in full (a `Content-Length` larger
/// than what is sent, or `Expect: 100-continue` and then nothing) is
/// answered 408 within `REQUEST_TIMEOUT_MS` and its connection closed,
/// instead of holding it; the server itself is fine.
#[tokio::test]
async fn a_request_whose_body_never_arrives_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_db, app) = sqlite_app(&[("REQUEST_TIMEOUT_MS", "300")]).await;
    let head = |extra: &str| {
        format!(
            "POST /api/login HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 1000\r\n{extra}\r\n",
            app.host(),
            app.origin()
        )
    };
    for (request, continued) in [(head("") + "email=a", false), (head("Expect: 100-continue\r\n"), true)] {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        assert!(closed.is_ok(), "the connection was still open 10 s later");
        let answer = String::from_utf8_lossy(&answer).to_string();
        let answer = match continued {
            true => answer.strip_prefix("HTTP/1.1 100 Continue\r\n\r\n").expect("100 Continue first").to_string(),
            false => answer,
        };
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        let body: serde_json::Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["error"]["code"], "request_timeout", "{answer}");
    }
    assert_eq!(app.get("/healthz", None).await.status, 200);
}

/// One GET on a fresh connection; the status, headers (lower-case names)
/// and the body's bytes as sent (no transfer or content decoding but chunks).
async fn get_bytes(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let (status, headers, body) = raw_get(app, path, headers).await;
    assert!(!headers.iter().any(|(k, _)| k == "transfer-encoding"), "files are sent with a length");
    (status, headers, body)
}

/// A page as sent: a length, or chunks (decoded here, not decompressed).
async fn get_page(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let (status, headers, body) = raw_get(app, path, headers).await;
    if header(&headers, "transfer-encoding") != Some("chunked") {
        return (status, headers, body);
    }
    let (mut rest, mut joined) = (&body[..], vec![]);
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16).unwrap();
        rest = &rest[eol + 2..];
        if size == 0 {
            return (status, headers, joined);
        }
        joined.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

async fn raw_get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    app.get_raw(path, headers).await
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The dashboard's pages are sent compressed when the browser accepts it
/// (a page carries its data for hydration); a redirect's page is not sent.
#[tokio::test]
async fn dashboard_pages_are_sent_compressed() {
    let (_db, app) = sqlite_app(&[]).await;
    let (status, headers, body) = get_page(&app, "/setup", &[("Accept-Encoding", "gzip, deflate, br")]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), Some("br"));
    assert!(header(&headers, "vary").is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")));
    let mut html = vec![];
    brotli::BrotliDecompress(&mut &body[..], &mut html).unwrap();
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains("Welcome to murmur"), "{html}");
    assert!(body.len() * 2 < html.len(), "{} bytes for {}", body.len(), html.len());

    let (_, headers, body) = get_page(&app, "/setup", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    let mut gunzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut gunzipped).unwrap();
    // The same page (each answer has its own CSP nonce, of one length).
    assert!(gunzipped.contains("Welcome to murmur"));
    assert_eq!(gunzipped.len(), html.len());

    let (_, headers, body) = get_page(&app, "/setup", &[]).await;
    assert_eq!(header(&headers, "content-encoding"), None);
    let plain = String::from_utf8(body).unwrap();
    assert!(plain.contains("Welcome to murmur"));
    assert_eq!(plain.len(), html.len());

    // A redirect (to setup, on a fresh instance) stays a bare 302.
    let (status, headers, body) = get_page(&app, "/login", &[("Accept-Encoding", "br")]).await;
    assert_eq!(status, 302);
    assert_eq!(header(&headers, "content-encoding"), None);
    assert!(body.is_empty());
}

/// `/pkg`: the brotli or gzip twin the browser accepts (written at start),
/// else the file; revalidated with `Last-Modified` (304 with no body); a
/// new build's file is never answered with the old build's twin.
#[tokio::test]
async fn dashboard_files_are_served_compressed_and_revalidated() {
    let site = support::temp_dir();
    let pkg = site.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let build = |n: u32| -> Vec<u8> {
        (0..4_000u32).flat_map(|i| format!("function f{i}() {{ return {}; }}\n", i * n).into_bytes()).collect()
    };
    std::fs::write(pkg.join("murmur.js"), build(1)).unwrap();
    murmur::server::assets::precompress(&pkg).unwrap();
    let root = site.display().to_string();
    let (_db, app) = sqlite_app(&[("LEPTOS_SITE_ROOT", &root)]).await;

    let (status, headers, body) = get_bytes(&app, "/pkg/murmur.js", &[("Accept-Encoding", "gzip, deflate, br")]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), Some("br"));
    assert!(header(&headers, "vary").is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")));
    assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
    let mut unpacked = vec![];
    brotli::BrotliDecompress(&mut &body[..], &mut unpacked).unwrap();
    assert_eq!(unpacked, build(1));
    assert!(body.len() * 4 < unpacked.len(), "{} bytes for {}", body.len(), unpacked.len());

    let (_, headers, body) = get_bytes(&app, "/pkg/murmur.js", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    let mut gunzipped = vec![];
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut gunzipped).unwrap();
    assert_eq!(gunzipped, build(1));

    let (_, headers, body) = get_bytes(&app, "/pkg/murmur.js", &[]).await;
    assert_eq!(header(&headers, "content-encoding"), None);
    assert_eq!(body, build(1));

    // A repeat visit: 304, nothing but headers.
    let since = header(&headers, "last-modified").expect("Last-Modified").to_string();
    let (status, _, body) =
        get_bytes(&app, "/pkg/murmur.js", &[("Accept-Encoding", "br"), ("If-Modified-Since", &since)]).await;
    assert_eq!((status, body.len()), (304, 0));

    // A new build, then a (re)start: the old twins are gone before it answers.
    std::fs::write(pkg.join("murmur.js"), build(2)).unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    std::fs::File::options().write(true).open(pkg.join("murmur.js")).unwrap().set_modified(later).unwrap();
    drop(app);
    let (_db2, app) = sqlite_app(&[("LEPTOS_SITE_ROOT", &root)]).await;
    let (status, headers, body) = get_bytes(&app, "/pkg/murmur.js", &[("Accept-Encoding", "br")]).await;
    assert_eq!(status, 200);
    let served = if header(&headers, "content-encoding") == Some("br") {
        let mut unpacked = vec![];
        brotli::BrotliDecompress(&mut &body[..], &mut unpacked).unwrap();
        unpacked
    } else {
        body
    };
    assert_eq!(served, build(2), "the new build, never the old build's twin");
    let _ = std::fs::remove_dir_all(&site);
}

/// The `/pkg/…` URLs a page links (scripts, WASM, style sheet).
fn pkg_links(html: &str) -> Vec<String> {
    let mut links: Vec<String> = html
        .match_indices("/pkg/")
        .map(|(i, _)| html[i..].split(['"', '\'', ' ', ')']).next().unwrap().to_string())
        .collect();
    links.sort();
    links.dedup();
    links
}

/// With a hash file naming files that are in the site, the dashboard links
/// its files by their hashed names, and those are cached for good
/// (`immutable`, br when accepted); a fixed name, or a hashed name that is
/// not there (an old build's), is revalidated.
#[tokio::test]
async fn hashed_dashboard_files_are_linked_and_immutable() {
    let site = support::temp_dir();
    let pkg = site.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let (js, wasm, css) = ("Jz1vb2K3m9Q-x_AbCdEfGh", "Wz9aQ8b7C6d5E4f3G2h1I0", "Cs-_SsAaBbCcDdEeFfGgHh");
    let body = |kind: &str| -> Vec<u8> {
        (0..2_000u32).flat_map(|i| format!("/* {kind} */ .c{i} {{ width: {i}px; }}\n").into_bytes()).collect()
    };
    std::fs::write(pkg.join(format!("murmur.{js}.js")), body("js")).unwrap();
    std::fs::write(pkg.join(format!("murmur.{wasm}.wasm")), body("wasm")).unwrap();
    std::fs::write(pkg.join(format!("murmur.{css}.css")), body("css")).unwrap();
    std::fs::write(pkg.join("murmur.js"), body("fixed")).unwrap();
    murmur::server::assets::precompress(&pkg).unwrap();
    // The hash file outside the site root (whose files are served).
    let hash_dir = support::temp_dir();
    let hash_file = hash_dir.join("hash.txt");
    std::fs::write(&hash_file, format!("js: {js}\nwasm: {wasm}\ncss: {css}\n")).unwrap();
    let root = site.display().to_string();
    let hash_name = hash_file.display().to_string();
    let (_db, app) = sqlite_app(&[("LEPTOS_SITE_ROOT", &root), ("LEPTOS_HASH_FILE", &hash_name)]).await;
    assert!(app.state.leptos_options.hash_files);

    // A page with the client (the sign-in and setup pages have none).
    let page = app.get("/no/such/page", None).await;
    assert_eq!(page.status, 404);
    let links = pkg_links(&page.body);
    for name in [format!("murmur.{js}.js"), format!("murmur.{wasm}.wasm"), format!("murmur.{css}.css")] {
        assert!(links.contains(&format!("/pkg/{name}")), "{name} not linked: {links:?}");
    }
    assert!(links.iter().all(|l| murmur::server::assets::carries_hash(l)), "an unhashed link: {links:?}");
    for link in &links {
        let (status, headers, _) = get_bytes(&app, link, &[("Accept-Encoding", "gzip, deflate, br")]).await;
        assert_eq!(status, 200, "{link}");
        assert_eq!(header(&headers, "cache-control"), Some(murmur::server::assets::IMMUTABLE), "{link}");
        assert_eq!(header(&headers, "content-encoding"), Some("br"), "{link}");
        assert_eq!(header(&headers, "vary"), Some("accept-encoding"), "{link}");
    }
    let (status, headers, _) = get_bytes(&app, "/pkg/murmur.js", &[("Accept-Encoding", "br")]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
    let (status, headers, _) = get_bytes(&app, "/pkg/murmur.AAAAAAAAAAAAAAAAAAAAAA.js", &[]).await;
    assert_eq!(status, 404);
    assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
    drop(app);

    // The hash file gone: the fixed names, revalidated.
    std::fs::remove_file(&hash_file).unwrap();
    let (_db2, app) = sqlite_app(&[("LEPTOS_SITE_ROOT", &root), ("LEPTOS_HASH_FILE", &hash_name)]).await;
    assert!(!app.state.leptos_options.hash_files);
    let page = app.get("/no/such/page", None).await;
    let links = pkg_links(&page.body);
    assert!(links.contains(&"/pkg/murmur.js".to_string()), "{links:?}");
    assert!(links.contains(&"/pkg/murmur.css".to_string()), "{links:?}");
    assert!(!links.iter().any(|l| murmur::server::assets::carries_hash(l)), "{links:?}");
    let (_, headers, _) = get_bytes(&app, "/pkg/murmur.js", &[]).await;
    assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
    let _ = std::fs::remove_dir_all(&site);
    let _ = std::fs::remove_dir_all(&hash_dir);
}

/// The real build (`cargo leptos build`, `hash-files = true`): a test's
/// server (a binary in `target/debug/deps`) finds `target/debug/hash.txt`
/// and links the built files by their hashed names, which are there and
/// immutable. Skipped when nothing is built, except with `CI=true`.
#[tokio::test]
async fn the_built_dashboard_links_its_hashed_files() {
    if !std::path::Path::new("target/site/pkg").is_dir() {
        assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "no target/site/pkg: run `cargo leptos build` first");
        eprintln!("skipped: no target/site/pkg (run `cargo leptos build`)");
        return;
    }
    let (_db, app) = sqlite_app(&[]).await;
    assert!(app.state.leptos_options.hash_files, "no hash file matching target/site was found");
    // A page with the client (the sign-in and setup pages have none).
    let page = app.get("/no/such/page", None).await;
    let links = pkg_links(&page.body);
    for ext in [".js", ".wasm", ".css"] {
        assert!(
            links.iter().any(|l| l.ends_with(ext) && murmur::server::assets::carries_hash(l)),
            "no hashed {ext}: {links:?}"
        );
    }
    for link in &links {
        let (status, headers, _) = get_bytes(&app, link, &[("Accept-Encoding", "br")]).await;
        assert_eq!(status, 200, "{link}");
        assert_eq!(header(&headers, "cache-control"), Some(murmur::server::assets::IMMUTABLE), "{link}");
    }
}

/// U+0000 in a server function's field, a page's address or a widget frame
/// is refused up front: PostgreSQL cannot store it, and such requests were
/// 500s there (found by `reliability fuzz`).
async fn nul_bytes_are_refused(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let r = app.call("users/timeline", &[("input[app_id]", "a\u{0}b"), ("input[user]", "u")], Some(&owner), &[]).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("NUL"), "{}", r.body);
    let r = app.call("apps/create", &[("input[name]", "Shop\u{0}")], Some(&owner), &[]).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let page = app.get("/apps/a%00b/users", Some(&owner)).await;
    assert_eq!(page.status, 400, "{}", page.body);
    let rest = app.request("GET", "/v1.1/apps/a%00b/appusers/u", &[], "").await;
    assert_eq!(rest.status, 404, "{}", rest.body);
    let (mut w, first) =
        support::widget::Widget::start(&app, serde_json::json!({"t": "hello", "app": "a\u{0}b"})).await;
    assert_eq!(first["t"], "error", "{first}");
    // Refused as any malformed hello (not an internal error).
    assert_eq!(first["code"], "hello_expected", "{first}");
    w.ws.close(None).await.ok();
}

#[tokio::test]
async fn nul_bytes_are_refused_on_sqlite() {
    nul_bytes_are_refused(Backend::Sqlite).await;
}

#[tokio::test]
async fn nul_bytes_are_refused_on_postgres() {
    nul_bytes_are_refused(Backend::Postgres).await;
}
