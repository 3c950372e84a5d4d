//! Who is calling the REST API: an app, proven by one of its API keys,
//! either as `Authorization: Bearer <JWT>` (HS256 signed with the key's
//! secret, `kid` = key id, claim `scope: "app"`, as the smooch-core client
//! makes them) or as `Basic keyId:secret`. A JWT lives at most 30 days
//! (`jwt::Lifetime::App`). Each key is then held to the REST API's rate
//! limit (`API_RATE_LIMIT`, 429 beyond it).

use std::collections::HashMap;

use axum::{
    extract::{FromRequestParts, Path},
    http::{header, request::Parts},
};
use base64::{engine::general_purpose::STANDARD, Engine};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::server::{
    jwt::{self, Jwt, Lifetime},
    AppState,
};

/// The app a request acts for.
#[derive(Debug, Clone)]
pub struct ApiApp {
    pub app_id: String,
    pub key_id: String,
}

fn unauthorized() -> ApiError {
    ApiError::unauthorized("Invalid or missing credentials: use a JWT signed with an app key, or Basic keyId:secret.")
}

impl FromRequestParts<AppState> for ApiApp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(unauthorized)?;
        let (scheme, credentials) = header.split_once(' ').ok_or_else(unauthorized)?;
        let (key_id, proof) = match scheme.to_ascii_lowercase().as_str() {
            "bearer" => {
                let jwt = Jwt::parse(credentials.trim()).map_err(ApiError::unauthorized)?;
                let kid = jwt.kid.clone().ok_or_else(|| ApiError::unauthorized("The JWT header has no kid."))?;
                (kid, Proof::Jwt(jwt))
            }
            "basic" => {
                let decoded = STANDARD.decode(credentials.trim()).map_err(|_| unauthorized())?;
                let text = String::from_utf8(decoded).map_err(|_| unauthorized())?;
                let (id, secret) = text.split_once(':').ok_or_else(unauthorized)?;
                (id.to_string(), Proof::Secret(secret.to_string()))
            }
            _ => return Err(unauthorized()),
        };
        let key = state.keys.get(&state.store, &state.secrets, state.now(), &key_id).await?.ok_or_else(unauthorized)?;
        if key.revoked {
            return Err(ApiError::unauthorized("This API key has been revoked."));
        }
        let secret = &key.secret;
        match proof {
            Proof::Jwt(jwt) => {
                if !jwt.signed_with(secret) {
                    return Err(unauthorized());
                }
                if jwt.claims["scope"] != "app" {
                    return Err(ApiError::unauthorized("The JWT must have the claim scope: \"app\"."));
                }
                jwt.check_lifetime(state.now(), Lifetime::App).map_err(ApiError::unauthorized)?;
            }
            Proof::Secret(given) => {
                // Compare digests: equal-length, so the comparison time says nothing.
                if Sha256::digest(given.as_bytes()) != Sha256::digest(secret) {
                    return Err(unauthorized());
                }
            }
        }
        // Account-style paths name the app: a key of another app sees nothing.
        if let Ok(Path(params)) = Path::<HashMap<String, String>>::from_request_parts(parts, state).await {
            if let Some(app_id) = params.get("app_id") {
                if *app_id != key.app_id {
                    return Err(ApiError::not_found(format!("No app {app_id:?}.")));
                }
            }
        }
        // Each key has its own allowance (`API_RATE_LIMIT`): a 429 here
        // comes before the body is read, so nothing changes.
        if let Err(wait) = state.limits.api.check(&key_id) {
            let rate = state.limits.api.rate().map(|r| r.describe()).unwrap_or_default();
            return Err(ApiError::too_many_requests(
                wait,
                format!("Too many requests with this API key (at most {rate}). Try again in {wait} s."),
            ));
        }
        Ok(ApiApp { app_id: key.app_id, key_id })
    }
}

enum Proof {
    Jwt(Jwt),
    Secret(String),
}

/// Signs a JWT the way a customer's backend does (tests and tools).
pub fn sign_app_jwt(key_id: &str, secret: &str, extra_claims: serde_json::Value) -> String {
    let mut claims = serde_json::json!({"scope": "app"});
    if let (Some(c), Some(extra)) = (claims.as_object_mut(), extra_claims.as_object()) {
        c.extend(extra.clone());
    }
    jwt::sign(Some(key_id), &claims, secret.as_bytes())
}
