//! An app as the tests use it: created by the owner through the dashboard's
//! server functions, with an API key (REST calls) and its identity secret
//! (widget JWTs), and whispers saved and activated the same way.

use murmur::{api::auth::sign_app_jwt, domain::whisper::WhisperDraft, server::jwt};
use serde_json::{json, Value};

use super::{Response, TestApp, START_MS};

pub struct Shop {
    pub app_id: String,
    pub identity: String,
    pub key_id: String,
    pub key_secret: String,
    /// The owner's session token.
    pub owner: String,
    /// The owner's teammate id (a whisper's sender).
    pub owner_id: String,
}

impl Shop {
    /// An identity JWT for `user_id`, good for an hour from the tests' start.
    pub fn token(&self, user_id: &str) -> String {
        self.token_with(user_id, &self.identity, json!(START_MS / 1000 + 3600))
    }
    pub fn token_with(&self, user_id: &str, secret: &str, exp: Value) -> String {
        jwt::sign(None, &json!({"scope": "appUser", "userId": user_id, "exp": exp}), secret.as_bytes())
    }
    /// A widget's hello as `user_id` on `device`, with its JWT.
    pub fn hello(&self, user_id: &str, device: &str) -> Value {
        json!({"t": "hello", "app": self.app_id, "device": device, "userId": user_id, "jwt": self.token(user_id),
               "appVersion": "2.1.0", "platform": "web"})
    }
    /// The REST API's Authorization header.
    pub fn auth(&self) -> String {
        // As smooch-core makes them: iat, no exp (good for 30 days).
        format!("Bearer {}", sign_app_jwt(&self.key_id, &self.key_secret, json!({"iat": START_MS / 1000})))
    }
}

/// Creates an app named `name` as the owner (`owner`: their session), with an API key.
pub async fn shop(app: &TestApp, owner: &str, name: &str) -> Shop {
    let created = app.call("apps/create", &[("input[name]", name)], Some(owner), &[]).await.json();
    let app_id = created["app"]["id"].as_str().unwrap().to_string();
    let identity = created["identity_secret"].as_str().unwrap().to_string();
    let k = app
        .call("apps/keys/create", &[("input[app_id]", &app_id), ("input[name]", "backend")], Some(owner), &[])
        .await
        .json();
    let owner_id = app.state.store.owner().await.unwrap().unwrap().id;
    Shop {
        app_id,
        identity,
        key_id: k["id"].as_str().unwrap().into(),
        key_secret: k["secret"].as_str().unwrap().into(),
        owner: owner.to_string(),
        owner_id,
    }
}

/// A REST call with the app's key (`body` null: none).
pub async fn rest(app: &TestApp, shop: &Shop, method: &str, path: &str, body: Value) -> Response {
    // Signed now by the app's clock, however far a test has moved it.
    let auth =
        format!("Bearer {}", sign_app_jwt(&shop.key_id, &shop.key_secret, json!({"iat": app.state.now() / 1000})));
    let body = if body.is_null() { String::new() } else { body.to_string() };
    app.request(method, path, &[("Authorization", &auth), ("Content-Type", "application/json")], &body).await
}

/// Saves and activates a whisper through the dashboard; returns its id.
pub async fn save_whisper(app: &TestApp, shop: &Shop, d: &WhisperDraft) -> String {
    let draft = serde_json::to_string(d).unwrap();
    let r = app
        .call(
            "whispers/save",
            &[
                ("input[app_id]", &shop.app_id),
                ("input[whisper_id]", "new"),
                ("input[draft]", &draft),
                ("input[activate]", "true"),
            ],
            Some(&shop.owner),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// Creates a user over the REST API with a name and a `plan`; returns
/// their murmur id.
pub async fn create_user(app: &TestApp, shop: &Shop, user_id: &str, given: &str, plan: &str) -> String {
    let r = rest(
        app,
        shop,
        "POST",
        "/v1.1/appusers",
        json!({"userId": user_id, "givenName": given, "properties": {"plan": plan}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["appUser"]["_id"].as_str().unwrap().to_string()
}

/// Saves a manual message through the composer's server function as the
/// owner (`mode`: "now", "draft"); returns its id.
pub async fn save_message(app: &TestApp, shop: &Shop, d: &murmur::domain::manual::MessageDraft, mode: &str) -> String {
    let draft = serde_json::to_string(d).unwrap();
    let r = app
        .call(
            "messages/save",
            &[
                ("input[app_id]", &shop.app_id),
                ("input[message_id]", "new"),
                ("input[draft]", &draft),
                ("input[mode]", mode),
                ("input[send_at]", ""),
            ],
            Some(&shop.owner),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_str().unwrap().to_string()
}
