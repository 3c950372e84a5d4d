//! HS256 JSON Web Tokens: the REST API's app tokens (`scope: "app"`, signed
//! with an API key) and the widget's identity tokens (`scope: "appUser"`,
//! signed with the app's identity secret) are both read here.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub struct Jwt {
    pub kid: Option<String>,
    pub claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

/// Longest token accepted (a real one is a few hundred bytes).
const MAX_LEN: usize = 8192;

impl Jwt {
    /// Splits and decodes a token; the error says what is wrong with it.
    pub fn parse(token: &str) -> Result<Jwt, &'static str> {
        if token.len() > MAX_LEN {
            return Err("The JWT is too long.");
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err("Malformed JWT.");
        };
        let decode = |seg: &str| -> Option<Value> {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg.trim_end_matches('=')).ok()?).ok()
        };
        let header = decode(h).ok_or("Malformed JWT header.")?;
        let claims = decode(p).filter(Value::is_object).ok_or("Malformed JWT payload.")?;
        if header["alg"] != "HS256" {
            return Err("JWTs must be signed with HS256.");
        }
        let signature = URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|_| "Malformed JWT signature.")?;
        Ok(Jwt {
            kid: header["kid"].as_str().map(str::to_string),
            claims,
            signing_input: format!("{h}.{p}"),
            signature,
        })
    }

    /// Whether `secret` made the signature (constant-time comparison).
    pub fn signed_with(&self, secret: &[u8]) -> bool {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return false };
        mac.update(self.signing_input.as_bytes());
        mac.verify_slice(&self.signature).is_ok()
    }

    /// Checks `exp` against `now_ms`: with `required` (the widget's
    /// identity tokens) as `Lifetime::Identity`, else as `Lifetime::App`.
    pub fn check_expiry(&self, now_ms: i64, required: bool) -> Result<(), &'static str> {
        self.check_lifetime(now_ms, if required { Lifetime::Identity } else { Lifetime::App })
    }

    /// Checks how long the token lives, against `now_ms` (the injected
    /// clock): no token lives more than `MAX_LIFETIME_MS` (30 days).
    ///
    /// - With `exp` (seconds since the epoch): it must be in the future and
    ///   at most 30 days ahead.
    /// - Without `exp`: an identity token is refused; an app token (the
    ///   smooch-core client makes them with `iat` and no `exp`) must have
    ///   `iat`, and is good for 30 days after it (an `iat` more than
    ///   5 minutes in the future is refused). Neither claim: refused.
    pub fn check_lifetime(&self, now_ms: i64, kind: Lifetime) -> Result<(), &'static str> {
        let millis = |name: &str| -> Result<Option<i64>, ()> {
            match self.claims.get(name) {
                None => Ok(None),
                Some(v) => v.as_f64().map(|secs| Some((secs * 1000.0) as i64)).ok_or(()),
            }
        };
        let exp = millis("exp").map_err(|_| "The JWT's exp must be a number (seconds since 1970).")?;
        match (exp, kind) {
            (Some(exp), _) if exp <= now_ms => Err("The JWT has expired."),
            (Some(exp), _) if exp > now_ms.saturating_add(MAX_LIFETIME_MS) => {
                Err("The JWT's exp is more than 30 days ahead: murmur accepts tokens that live at most 30 days.")
            }
            (Some(_), _) => Ok(()),
            (None, Lifetime::Identity) => {
                Err("The JWT has no exp claim: an identity token must expire, at most 30 days ahead.")
            }
            (None, Lifetime::App) => {
                let iat = millis("iat").map_err(|_| "The JWT's iat must be a number (seconds since 1970).")?;
                match iat {
                    None => Err("The JWT has no exp claim (and no iat): an app token must say when it expires \
                         (exp, at most 30 days ahead) or when it was made (iat: it is then good for 30 days)."),
                    Some(iat) if iat > now_ms.saturating_add(IAT_SKEW_MS) => Err("The JWT's iat is in the future."),
                    Some(iat) if iat.saturating_add(MAX_LIFETIME_MS) <= now_ms => Err(
                        "The JWT has expired: an app token without exp is good for 30 days after its iat; sign a new one.",
                    ),
                    Some(_) => Ok(()),
                }
            }
        }
    }
}

/// The longest any JWT lives: `exp` at most this far ahead, or (an app
/// token without `exp`) this long after its `iat`.
pub const MAX_LIFETIME_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// How far ahead of murmur's clock an `iat` may be (clocks differ a little).
const IAT_SKEW_MS: i64 = 5 * 60 * 1000;

/// Whose token it is, for `Jwt::check_lifetime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// The widget's identity token (`scope: "appUser"`): `exp` required.
    Identity,
    /// A REST API app token (`scope: "app"`): `exp`, or else `iat`.
    App,
}

/// Signs claims with HS256 (the way a customer's backend does; tests and
/// tools use it). `kid` goes in the header when given.
pub fn sign(kid: Option<&str>, claims: &Value, secret: &[u8]) -> String {
    let mut header = json!({"alg": "HS256", "typ": "JWT"});
    if let Some(k) = kid {
        header["kid"] = json!(k);
    }
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{header}.{payload}").as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tampering() {
        let t = sign(None, &json!({"scope": "appUser", "userId": "u1", "exp": 2_000}), b"secret");
        let jwt = Jwt::parse(&t).unwrap();
        assert!(jwt.signed_with(b"secret"));
        assert!(!jwt.signed_with(b"other"));
        assert_eq!(jwt.kid, None);
        assert!(jwt.check_expiry(1_999_999, true).is_ok());
        assert!(jwt.check_expiry(2_000_000, true).is_err());
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(json!({"scope": "appUser", "userId": "admin", "exp": 2_000}).to_string());
        parts[1] = &forged;
        assert!(!Jwt::parse(&parts.join(".")).unwrap().signed_with(b"secret"));
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), parts[1]);
        assert!(Jwt::parse(&none).is_err());
        assert!(Jwt::parse("a.b").is_err());
        assert!(Jwt::parse(&"a".repeat(9000)).is_err());
    }

    fn token(claims: Value) -> Jwt {
        Jwt::parse(&sign(Some("k"), &claims, b"s")).unwrap()
    }

    #[test]
    fn no_token_lives_more_than_30_days() {
        const DAY_S: i64 = 86_400;
        let now_s = 1_795_000_000;
        let now = now_s * 1000;
        for kind in [Lifetime::Identity, Lifetime::App] {
            assert!(token(json!({"exp": now_s + 30 * DAY_S})).check_lifetime(now, kind).is_ok());
            let e = token(json!({"exp": now_s + 30 * DAY_S + 1})).check_lifetime(now, kind).unwrap_err();
            assert!(e.contains("more than 30 days ahead"), "{e}");
            assert_eq!(token(json!({"exp": now_s})).check_lifetime(now, kind), Err("The JWT has expired."));
            assert!(token(json!({"exp": "soon"})).check_lifetime(now, kind).is_err());
        }
        // Without exp: an identity token is refused whatever its iat.
        let e = token(json!({"iat": now_s})).check_lifetime(now, Lifetime::Identity).unwrap_err();
        assert!(e.contains("no exp claim"), "{e}");
        // An app token needs iat, and is good for 30 days after it.
        let e = token(json!({"scope": "app"})).check_lifetime(now, Lifetime::App).unwrap_err();
        assert!(e.starts_with("The JWT has no exp claim (and no iat)"), "{e}");
        assert!(token(json!({"iat": now_s})).check_lifetime(now, Lifetime::App).is_ok());
        assert!(token(json!({"iat": now_s - 30 * DAY_S + 1})).check_lifetime(now, Lifetime::App).is_ok());
        let e = token(json!({"iat": now_s - 30 * DAY_S})).check_lifetime(now, Lifetime::App).unwrap_err();
        assert!(e.contains("expired"), "{e}");
        assert!(token(json!({"iat": now_s + 60})).check_lifetime(now, Lifetime::App).is_ok(), "a little skew");
        let e = token(json!({"iat": now_s + 3600})).check_lifetime(now, Lifetime::App).unwrap_err();
        assert_eq!(e, "The JWT's iat is in the future.");
        // The old call: `required` is an identity token.
        assert!(token(json!({"iat": now_s})).check_expiry(now, true).is_err());
        assert!(token(json!({"iat": now_s})).check_expiry(now, false).is_ok());
    }
}
