//! The REST API over HTTP, as a customer's backend uses it: app-key auth
//! (JWT and Basic), users, properties, events, messages, errors, OpenAPI.

mod support;

use base64::{engine::general_purpose::STANDARD, Engine};
use murmur::api::auth::sign_app_jwt;
use serde_json::{json, Value};
use support::{spawn_app, Backend, TestApp, TestDb};

struct Key {
    app_id: String,
    id: String,
    secret: String,
}

impl Key {
    fn jwt(&self) -> String {
        // As smooch-core makes them: iat, no exp (good for 30 days).
        format!("Bearer {}", sign_app_jwt(&self.id, &self.secret, json!({"iat": support::START_MS / 1000})))
    }
    fn basic(&self) -> String {
        format!("Basic {}", STANDARD.encode(format!("{}:{}", self.id, self.secret)))
    }
}

/// An owner session, and an app with a key.
async fn app_with_key(app: &TestApp, owner: &str, name: &str) -> Key {
    let created = app.call("apps/create", &[("input[name]", name)], Some(owner), &[]).await.json();
    let app_id = created["app"]["id"].as_str().unwrap().to_string();
    let k = app
        .call("apps/keys/create", &[("input[app_id]", &app_id), ("input[name]", "backend")], Some(owner), &[])
        .await
        .json();
    Key { app_id, id: k["id"].as_str().unwrap().into(), secret: k["secret"].as_str().unwrap().into() }
}

async fn api(app: &TestApp, method: &str, path: &str, auth: &str, body: Option<Value>) -> support::Response {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut headers = vec![("Authorization", auth)];
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    app.request(method, path, &headers, &body).await
}

async fn setup(backend: Backend) -> Option<(TestDb, TestApp, String, Key)> {
    let db = TestDb::new(backend).await?;
    let app = spawn_app(&db, &[]).await;
    let owner = app.setup_owner().await;
    let key = app_with_key(&app, &owner, "Shop").await;
    Some((db, app, owner, key))
}

fn error_code(r: &support::Response) -> String {
    r.json()["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {}", r.body)).to_string()
}

async fn users_lifecycle(backend: Backend) {
    let Some((_db, app, _owner, key)) = setup(backend).await else { return };
    let auth = key.jwt();
    let r = api(
        &app,
        "POST",
        "/v1.1/appusers",
        &auth,
        Some(json!({
            "userId": "u-1", "givenName": "Ada <b>", "surname": "Lovelace", "email": "ada@example.com",
            "signedUpAt": "2026-01-02T03:04:05Z", "appVersion": "2.10.1",
            "properties": {"plan": "gold", "seats": 3, "vip": true, "renewsAt": "2027-01-01"}
        })),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let user = &r.json()["appUser"];
    assert_eq!(user["userId"], "u-1");
    assert_eq!(user["givenName"], "Ada <b>");
    assert_eq!(user["signedUpAt"], "2026-01-02T03:04:05.000Z");
    assert_eq!(
        user["properties"],
        json!({"plan": "gold", "seats": 3, "vip": true, "renewsAt": "2027-01-01T00:00:00.000Z"})
    );
    let murmur_id = user["_id"].as_str().unwrap().to_string();

    let again = api(&app, "POST", "/v1.1/appusers", &auth, Some(json!({"userId": "u-1"}))).await;
    assert_eq!((again.status, error_code(&again).as_str()), (409, "conflict"));
    let no_id = api(&app, "POST", "/v1.1/appusers", &auth, Some(json!({"givenName": "X"}))).await;
    assert_eq!(no_id.status, 400);

    // Read by userId and by murmur's id, also through the app-scoped path.
    for path in [
        "/v1.1/appusers/u-1".to_string(),
        format!("/v1.1/appusers/{murmur_id}"),
        format!("/v1.1/apps/{}/appusers/u-1", key.app_id),
    ] {
        let r = api(&app, "GET", &path, &key.basic(), None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.json()["appUser"]["_id"], murmur_id.as_str());
    }

    // Update: fields change, properties merge, null removes.
    let r = api(
        &app,
        "PUT",
        "/v1.1/appusers/u-1",
        &auth,
        Some(json!({
            "givenName": "Ada", "properties": {"seats": 5, "vip": null, "team": "core"}
        })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let user = &r.json()["appUser"];
    assert_eq!(user["givenName"], "Ada");
    assert_eq!(user["surname"], "Lovelace");
    assert_eq!(user["properties"]["seats"], 5);
    assert_eq!(user["properties"]["team"], "core");
    assert!(user["properties"].get("vip").is_none());

    // A type conflict is refused and nothing of the request is written.
    let r = api(
        &app,
        "PUT",
        "/v1.1/appusers/u-1",
        &auth,
        Some(json!({"givenName": "Changed", "properties": {"seats": "many"}})),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "type_conflict");
    assert!(r.json()["error"]["description"].as_str().unwrap().contains("\"seats\" is a number property"));
    let now = api(&app, "GET", "/v1.1/appusers/u-1", &auth, None).await.json();
    assert_eq!(now["appUser"]["givenName"], "Ada");
    assert_eq!(now["appUser"]["properties"]["seats"], 5);

    // Too many properties after the merge: refused, nothing written.
    let many: serde_json::Map<String, Value> = (0..98).map(|i| (format!("p{i}"), json!(i))).collect();
    let r = api(&app, "PUT", "/v1.1/appusers/u-1", &auth, Some(json!({"properties": many}))).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "too_many_properties");
    assert!(api(&app, "GET", "/v1.1/appusers/u-1", &auth, None).await.json()["appUser"]["properties"]
        .get("p0")
        .is_none());

    // The catalog knows the properties and their types.
    let catalog = app.state.store.property_catalog(&key.app_id).await.unwrap();
    let types: Vec<(String, String)> = catalog.into_iter().map(|c| (c.name, c.ty)).collect();
    assert!(types.contains(&("seats".into(), "number".into())));
    assert!(types.contains(&("renewsAt".into(), "date".into())));
    assert!(types.contains(&("vip".into(), "boolean".into())));

    // Events and messages.
    let r = api(&app, "POST", "/v1.1/appusers/u-1/events", &auth, Some(json!({"name": "item-in-cart"}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(app.state.store.event_catalog(&key.app_id).await.unwrap(), ["item-in-cart"]);
    let events = app.state.store.user_events(&murmur_id, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    let r = api(&app, "POST", "/v1.1/appusers/nobody/events", &auth, Some(json!({"name": "x"}))).await;
    assert_eq!(r.status, 404);
    let r = api(&app, "POST", "/v1.1/appusers/u-1/events", &auth, Some(json!({"name": "e".repeat(200)}))).await;
    assert_eq!(r.status, 400);

    let r = api(
        &app,
        "POST",
        "/v1.1/appusers/u-1/messages",
        &auth,
        Some(json!({"role": "appUser", "type": "text", "text": "Hi <script>"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    app.clock.advance_ms(1000);
    let r = api(
        &app,
        "POST",
        "/v1.1/appusers/u-1/messages",
        &auth,
        Some(json!({"role": "appMaker", "text": "Hello!", "name": "Olive"})),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = api(&app, "POST", "/v1.1/appusers/u-1/messages", &auth, Some(json!({"role": "robot", "text": "x"}))).await;
    assert_eq!(r.status, 400);
    let list = api(&app, "GET", "/v1.1/appusers/u-1/messages", &auth, None).await.json();
    let texts: Vec<&str> = list["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Hi <script>", "Hello!"]);
    assert_eq!(
        api(&app, "GET", "/v1.1/appusers/u-1", &auth, None).await.json()["appUser"]["conversationStarted"],
        true
    );

    // Delete takes events and messages along.
    let r = api(&app, "DELETE", "/v1.1/appusers/u-1", &auth, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(api(&app, "GET", "/v1.1/appusers/u-1", &auth, None).await.status, 404);
    assert!(app.state.store.user_events(&murmur_id, 10).await.unwrap().is_empty());
    assert_eq!(api(&app, "DELETE", "/v1.1/appusers/u-1", &auth, None).await.status, 404);
}

#[tokio::test]
async fn users_lifecycle_on_sqlite() {
    users_lifecycle(Backend::Sqlite).await;
}

#[tokio::test]
async fn users_lifecycle_on_postgres() {
    users_lifecycle(Backend::Postgres).await;
}

/// Numbers up to ±1e300 survive a round trip through storage, and larger
/// ones are refused (PostgreSQL's jsonb writes f64::MAX out in all its 309
/// digits; read back, that overflowed, and the user could no longer be read
/// or changed: a 500 found by schemathesis).
async fn extreme_numbers(backend: Backend) {
    let Some((_db, app, _owner, key)) = setup(backend).await else { return };
    let auth = key.jwt();
    for too_big in [f64::MAX, -2e300] {
        let body = json!({"userId": "m", "properties": {"x": too_big}});
        let r = api(&app, "POST", "/v1.1/appusers", &auth, Some(body)).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains("from -1e300 to 1e300"), "{}", r.body);
    }
    let props = json!({"max": 1e300, "min": -1e300, "tiny": 5e-324, "big": -1.0198034900926869e270});
    // Read back from jsonb's long decimals, the last digit may differ.
    let close = |got: &Value| {
        props.as_object().unwrap().iter().all(|(k, want)| {
            let (g, w) = (got[k].as_f64().unwrap(), want.as_f64().unwrap());
            g == w || ((g - w) / w).abs() < 1e-15
        })
    };
    let r = api(&app, "POST", "/v1.1/appusers", &auth, Some(json!({"userId": "n", "properties": props}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api(&app, "PUT", "/v1.1/appusers/n", &auth, Some(json!({"givenName": "N"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = api(&app, "GET", "/v1.1/appusers/n", &auth, None).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let stored = &got.json()["appUser"]["properties"];
    assert!(close(stored), "{stored} is not {props}");
    let r = api(&app, "POST", "/v1.1/appusers/n/events", &auth, Some(json!({"name": "e", "properties": props}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn extreme_numbers_on_sqlite() {
    extreme_numbers(Backend::Sqlite).await;
}

#[tokio::test]
async fn extreme_numbers_on_postgres() {
    extreme_numbers(Backend::Postgres).await;
}

#[tokio::test]
async fn credentials_are_checked() {
    let (_db, app, owner, key) = setup(Backend::Sqlite).await.unwrap();
    let body = Some(json!({"userId": "u"}));
    for auth in [
        String::new(),
        "Bearer not.a.jwt".to_string(),
        format!("Bearer {}", sign_app_jwt(&key.id, "wrong secret", json!({}))),
        format!("Bearer {}", sign_app_jwt("app_nosuchkey", &key.secret, json!({}))),
        format!("Bearer {}", sign_app_jwt(&key.id, &key.secret, json!({"scope": "account"}))),
        format!("Basic {}", STANDARD.encode(format!("{}:wrong", key.id))),
        "Digest abc".to_string(),
    ] {
        let r = api(&app, "POST", "/v1.1/appusers", &auth, body.clone()).await;
        assert_eq!((r.status, error_code(&r).as_str()), (401, "unauthorized"), "{auth}: {}", r.body);
    }
    assert!(app.state.store.app_user(&key.app_id, "u").await.unwrap().is_none());

    // An expired JWT, judged by the injected clock.
    let exp = support::START_MS / 1000 + 60;
    let jwt = format!("Bearer {}", sign_app_jwt(&key.id, &key.secret, json!({"exp": exp})));
    assert_eq!(api(&app, "POST", "/v1.1/appusers", &jwt, body.clone()).await.status, 201);
    app.clock.advance_ms(61_000);
    let r = api(&app, "GET", "/v1.1/appusers/u", &jwt, None).await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("expired"));

    // A revoked key stops working at once.
    let r = app
        .call("apps/keys/revoke", &[("input[app_id]", &key.app_id), ("input[key_id]", &key.id)], Some(&owner), &[])
        .await;
    assert_eq!(r.status, 200);
    let r = api(&app, "GET", "/v1.1/appusers/u", &key.basic(), None).await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("revoked"));
}

#[tokio::test]
async fn a_key_of_one_app_cannot_touch_another_apps_users() {
    let (_db, app, owner, a) = setup(Backend::Sqlite).await.unwrap();
    let b = app_with_key(&app, &owner, "Other").await;
    let r = api(&app, "POST", "/v1.1/appusers", &b.jwt(), Some(json!({"userId": "bee", "givenName": "Bea"}))).await;
    assert_eq!(r.status, 201);
    for (method, path, body) in [
        ("GET", "/v1.1/appusers/bee".to_string(), None),
        ("PUT", "/v1.1/appusers/bee".to_string(), Some(json!({"givenName": "Hacked"}))),
        ("DELETE", "/v1.1/appusers/bee".to_string(), None),
        ("POST", "/v1.1/appusers/bee/messages".to_string(), Some(json!({"role": "appMaker", "text": "x"}))),
        ("POST", "/v1.1/appusers/bee/events".to_string(), Some(json!({"name": "x"}))),
        ("GET", format!("/v1.1/apps/{}/appusers/bee", b.app_id), None),
        ("POST", format!("/v1.1/apps/{}/appusers", b.app_id), Some(json!({"userId": "intruder"}))),
    ] {
        let r = api(&app, method, &path, &a.jwt(), body).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
    }
    let bee = app.state.store.app_user(&b.app_id, "bee").await.unwrap().unwrap();
    assert_eq!(bee.given_name.as_deref(), Some("Bea"));
    assert!(app.state.store.user_messages(&bee.id, 10).await.unwrap().is_empty());
    assert!(app.state.store.user_events(&bee.id, 10).await.unwrap().is_empty());
    assert!(app.state.store.app_user(&b.app_id, "intruder").await.unwrap().is_none());
}

#[tokio::test]
async fn bad_bodies_get_clear_errors() {
    let (_db, app, _owner, key) = setup(Backend::Sqlite).await.unwrap();
    let auth = key.jwt();
    let h = |ct: &'static str| vec![("Authorization", auth.as_str()), ("Content-Type", ct)];
    let r = app.request("POST", "/v1.1/appusers", &h("application/json"), "{\"userId\": \"u\",\n \"x\": }").await;
    assert_eq!((r.status, error_code(&r).as_str()), (400, "bad_request"));
    assert!(r.body.contains("line 2 column"), "{}", r.body);
    let r = app.request("POST", "/v1.1/appusers", &h("text/plain"), "{\"userId\": \"u\"}").await;
    assert_eq!((r.status, error_code(&r).as_str()), (415, "unsupported_media_type"));
    let big = json!({"userId": "u", "givenName": "x".repeat(70_000)}).to_string();
    let r = app.request("POST", "/v1.1/appusers", &h("application/json"), &big).await;
    assert_eq!((r.status, error_code(&r).as_str()), (413, "payload_too_large"));
    let r = app.request("POST", "/v1.1/appusers", &h("application/json"), "[1]").await;
    assert_eq!(r.status, 400);
    let long_name = "p".repeat(129);
    for body in [
        json!({"userId": "u", "properties": {long_name: 1}}),
        json!({"userId": "u", "properties": {"bio": "x".repeat(1025)}}),
        json!({"userId": "u", "properties": {"nested": {"a": 1}}}),
        json!({"userId": "u", "properties": {"firstName": "Ada"}}),
        json!({"userId": "u", "signedUpAt": "last tuesday"}),
        json!({"userId": "u", "givenName": 42}),
    ] {
        let r = api(&app, "POST", "/v1.1/appusers", &auth, Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
    assert!(app.state.store.app_user(&key.app_id, "u").await.unwrap().is_none(), "nothing was written");
}

#[tokio::test]
async fn openapi_description_matches_its_snapshot() {
    let (_db, app, _owner, _key) = setup(Backend::Sqlite).await.unwrap();
    let r = app.get("/v1.1/openapi.json", None).await;
    assert_eq!(r.status, 200);
    let served: Value = r.json();
    assert_eq!(served["openapi"], "3.1.0");
    assert!(served["paths"]["/v1.1/appusers/{userId}"]["put"].is_object());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/openapi.json");
    let pretty = serde_json::to_string_pretty(&served).unwrap() + "\n";
    if std::env::var("UPDATE_SNAPSHOTS").is_ok() {
        std::fs::write(path, &pretty).unwrap();
    }
    let snapshot = std::fs::read_to_string(path).expect("run with UPDATE_SNAPSHOTS=1 to create the snapshot");
    assert_eq!(pretty, snapshot, "the OpenAPI description changed: review, then UPDATE_SNAPSHOTS=1");
}

/// `POST /v1.1/events`: many events for many users in one request, each
/// answered on its own; a bad one changes nothing of the others; another
/// app's users are not found; a body that is not a batch is refused whole.
async fn batch_of_events(backend: Backend) {
    let Some((_db, app, owner, key)) = setup(backend).await else { return };
    let other = app_with_key(&app, &owner, "Other").await;
    for (k, u) in [(&key, "u-1"), (&key, "u-2"), (&other, "stranger")] {
        let r = api(&app, "POST", "/v1.1/appusers", &k.jwt(), Some(json!({"userId": u}))).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let events = json!({"events": [
        {"userId": "u-1", "name": "item-in-cart", "properties": {"sku": "A1"}},
        {"userId": "u-2", "name": "item-in-cart"},
        {"userId": "u-1", "name": ""},
        {"userId": "nobody", "name": "item-in-cart"},
        {"userId": "stranger", "name": "item-in-cart"},
        {"name": "no-user"},
        {"userId": "u-2", "name": "checkout", "extra": true},
        "not an object",
        {"userId": "u-2", "name": "paid"}
    ]});
    let r = api(&app, "POST", "/v1.1/events", &key.jwt(), Some(events)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.json()["results"].as_array().unwrap().clone();
    let statuses: Vec<i64> = results.iter().map(|x| x["status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, [201, 201, 400, 404, 404, 400, 400, 400, 201]);
    assert_eq!(results[0]["event"]["name"], "item-in-cart");
    assert_eq!(results[3]["error"]["code"], "not_found");
    let u1 = app.state.store.app_user(&key.app_id, "u-1").await.unwrap().unwrap();
    let u2 = app.state.store.app_user(&key.app_id, "u-2").await.unwrap().unwrap();
    let stranger = app.state.store.app_user(&other.app_id, "stranger").await.unwrap().unwrap();
    assert_eq!(app.state.store.user_events(&u1.id, 10).await.unwrap().len(), 1);
    let names: Vec<String> =
        app.state.store.user_events(&u2.id, 10).await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"item-in-cart".to_string()) && names.contains(&"paid".to_string()));
    assert!(app.state.store.user_events(&stranger.id, 10).await.unwrap().is_empty());
    // The app-scoped path works alike.
    let path = format!("/v1.1/apps/{}/events", key.app_id);
    let r = api(&app, "POST", &path, &key.jwt(), Some(json!({"events": [{"userId": "u-1", "name": "again"}]}))).await;
    assert_eq!((r.status, r.json()["results"][0]["status"].as_i64()), (200, Some(201)), "{}", r.body);
    // Not a batch: refused whole, nothing written.
    let too_many: Vec<Value> = (0..1001).map(|_| json!({"userId": "u-1", "name": "x"})).collect();
    for body in [json!({"events": []}), json!({"events": too_many}), json!({"events": {}}), json!({"evts": []})] {
        let r = api(&app, "POST", "/v1.1/events", &key.jwt(), Some(body)).await;
        assert_eq!((r.status, error_code(&r).as_str()), (400, "bad_request"), "{}", r.body);
    }
    assert_eq!(app.state.store.user_events(&u1.id, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn batch_of_events_on_sqlite() {
    batch_of_events(Backend::Sqlite).await;
}

#[tokio::test]
async fn batch_of_events_on_postgres() {
    batch_of_events(Backend::Postgres).await;
}
