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

    /// Checks `exp` (seconds since the epoch) against `now_ms`; a token
    /// without `exp` passes only when `required` is false.
    pub fn check_expiry(&self, now_ms: i64, required: bool) -> Result<(), &'static str> {
        match self.claims.get("exp") {
            None if required => Err("The JWT has no exp claim."),
            None => Ok(()),
            Some(exp) => {
                let exp = exp.as_f64().ok_or("The JWT's exp must be a number.")?;
                if (exp * 1000.0) as i64 <= now_ms {
                    Err("The JWT has expired.")
                } else {
                    Ok(())
                }
            }
        }
    }
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

    #[test]
    fn expiry_optional_or_required() {
        let jwt = Jwt::parse(&sign(Some("k"), &json!({"scope": "app"}), b"s")).unwrap();
        assert_eq!(jwt.kid.as_deref(), Some("k"));
        assert!(jwt.check_expiry(0, false).is_ok());
        assert!(jwt.check_expiry(0, true).is_err());
    }
}
