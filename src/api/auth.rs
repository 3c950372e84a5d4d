//! Who is calling the REST API: an app, proven by one of its API keys,
//! either as `Authorization: Bearer <JWT>` (HS256 signed with the key's
//! secret, `kid` = key id, claim `scope: "app"`, as the smooch-core client
//! makes them) or as `Basic keyId:secret`.

use std::collections::HashMap;

use axum::{
    extract::{FromRequestParts, Path},
    http::{header, request::Parts},
};
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::server::AppState;

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
                let jwt = Jwt::parse(credentials.trim())?;
                (jwt.kid.clone(), Proof::Jwt(jwt))
            }
            "basic" => {
                let decoded = STANDARD.decode(credentials.trim()).map_err(|_| unauthorized())?;
                let text = String::from_utf8(decoded).map_err(|_| unauthorized())?;
                let (id, secret) = text.split_once(':').ok_or_else(unauthorized)?;
                (id.to_string(), Proof::Secret(secret.to_string()))
            }
            _ => return Err(unauthorized()),
        };
        let key = state.keys.get(state, &key_id).await?.ok_or_else(unauthorized)?;
        if key.revoked {
            return Err(ApiError::unauthorized("This API key has been revoked."));
        }
        let secret = &key.secret;
        match proof {
            Proof::Jwt(jwt) => jwt.verify(secret, state.now())?,
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
        Ok(ApiApp { app_id: key.app_id, key_id })
    }
}

enum Proof {
    Jwt(Jwt),
    Secret(String),
}

struct Jwt {
    kid: String,
    signing_input: String,
    signature: Vec<u8>,
    claims: serde_json::Value,
}

impl Jwt {
    fn parse(token: &str) -> Result<Jwt, ApiError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(ApiError::unauthorized("Malformed JWT."));
        };
        let json = |seg: &str| -> Option<serde_json::Value> {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg.trim_end_matches('=')).ok()?).ok()
        };
        let header = json(h).ok_or_else(|| ApiError::unauthorized("Malformed JWT header."))?;
        let claims = json(p).ok_or_else(|| ApiError::unauthorized("Malformed JWT payload."))?;
        if header["alg"] != "HS256" {
            return Err(ApiError::unauthorized("JWTs must be signed with HS256."));
        }
        let kid = header["kid"].as_str().ok_or_else(|| ApiError::unauthorized("The JWT header has no kid."))?;
        let signature = URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| ApiError::unauthorized("Malformed JWT signature."))?;
        Ok(Jwt { kid: kid.to_string(), signing_input: format!("{h}.{p}"), signature, claims })
    }

    fn verify(&self, secret: &[u8], now_ms: i64) -> Result<(), ApiError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(ApiError::internal)?;
        mac.update(self.signing_input.as_bytes());
        mac.verify_slice(&self.signature).map_err(|_| unauthorized())?;
        if self.claims["scope"] != "app" {
            return Err(ApiError::unauthorized("The JWT must have the claim scope: \"app\"."));
        }
        if let Some(exp) = self.claims.get("exp") {
            let exp = exp.as_f64().ok_or_else(|| ApiError::unauthorized("The JWT's exp must be a number."))?;
            if (exp * 1000.0) as i64 <= now_ms {
                return Err(ApiError::unauthorized("The JWT has expired."));
            }
        }
        Ok(())
    }
}

/// Signs a JWT the way a customer's backend does (tests and tools).
pub fn sign_app_jwt(key_id: &str, secret: &str, extra_claims: serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": key_id}).to_string());
    let mut claims = serde_json::json!({"scope": "app"});
    if let (Some(c), Some(extra)) = (claims.as_object_mut(), extra_claims.as_object()) {
        c.extend(extra.clone());
    }
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{header}.{payload}").as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{sig}")
}
