//! Secrets: the server key that encrypts app secrets at rest, random ids and
//! tokens, and Argon2id password hashing (run off the async executor).

use std::{io::Write, path::Path};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use sha2::{Digest, Sha256};

use super::config::{ConfigError, SecretString};

const NONCE_LEN: usize = 24;
const KEY_FILE: &str = "secret.key";

/// Seals and opens secrets with the server key (XChaCha20-Poly1305). The
/// associated data names the record a ciphertext belongs to, so a sealed
/// secret copied into another row does not open.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a stored secret could not be decrypted (was SECRET_KEY changed?)")]
pub struct OpenError;

impl SecretBox {
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self { cipher: XChaCha20Poly1305::new(key.into()) }
    }

    /// The key from `SECRET_KEY`, or else from `<data_dir>/secret.key`,
    /// generated there on first start with owner-only permissions.
    pub fn load(secret_key: Option<&SecretString>, data_dir: &Path) -> Result<Self, ConfigError> {
        if let Some(s) = secret_key {
            return parse_key(s.expose()).map(|k| Self::from_key(&k)).ok_or(ConfigError::SecretKey);
        }
        let path = data_dir.join(KEY_FILE);
        let file_err = |reason: String| ConfigError::SecretKeyFile { path: path.display().to_string(), reason };
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_key(text.trim())
                .map(|k| Self::from_key(&k))
                .ok_or_else(|| file_err("does not hold 64 hexadecimal characters".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = random_bytes();
                write_owner_only(&path, hex::encode(key).as_bytes()).map_err(|e| file_err(e.to_string()))?;
                Ok(Self::from_key(&key))
            }
            Err(e) => Err(file_err(e.to_string())),
        }
    }

    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = random_bytes();
        let mut out = nonce.to_vec();
        // Encryption with a valid key and nonce cannot fail for in-memory data.
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: context.as_bytes() })
            .unwrap_or_default();
        out.extend(ct);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: context.as_bytes() })
            .map_err(|_| OpenError)
    }
}

fn parse_key(s: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(s.trim()).ok()?;
    bytes.try_into().ok()
}

fn write_owner_only(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS random source failing is unrecoverable for a server that must
    // issue unguessable tokens.
    getrandom::getrandom(&mut b).expect("the operating system's random source is unavailable");
    b
}

pub use crate::storage::new_id;

/// The associated data binding a sealed secret to its record.
pub fn identity_secret_context(app_id: &str) -> String {
    format!("app:{app_id}:identity")
}
pub fn api_key_context(key_id: &str) -> String {
    format!("api_key:{key_id}")
}

/// A 256-bit secret in URL-safe base64 (session tokens, API secrets).
pub fn new_secret() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Sessions are stored by hash, so a database leak does not leak sessions.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Argon2id with the crate's defaults (19 MiB, 2 passes), on a blocking thread.
pub async fn hash_password(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Verifies on a blocking thread. With no stored hash it still does the
/// work against a dummy, so unknown emails take as long as wrong passwords.
pub async fn verify_password(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let dummy = dummy_hash();
        let (hash, real) = match stored.as_deref() {
            Some(h) => (h, true),
            None => (dummy, false),
        };
        let Ok(parsed) = PasswordHash::new(hash) else { return false };
        let ok = argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        ok && real
    })
    .await
    .unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(b"murmur-dummy-password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_in_their_context() {
        let b = SecretBox::from_key(&[7u8; 32]);
        let sealed = b.seal("api_key:k1", b"s3cret");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(b.open("api_key:k1", &sealed).unwrap(), b"s3cret");
        assert!(b.open("api_key:k2", &sealed).is_err());
        assert!(SecretBox::from_key(&[8u8; 32]).open("api_key:k1", &sealed).is_err());
        assert!(b.open("api_key:k1", &sealed[..10]).is_err());
    }

    #[test]
    fn key_file_is_generated_once_with_owner_only_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("murmur-key-{}", new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = SecretBox::load(None, &dir).unwrap();
        let mode = std::fs::metadata(dir.join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = SecretBox::load(None, &dir).unwrap();
        assert_eq!(b.open("x", &a.seal("x", b"same key")).unwrap(), b"same key");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_secret_key_is_refused() {
        let dir = std::env::temp_dir();
        let short = SecretString::for_tests("abcd");
        assert!(matches!(SecretBox::load(Some(&short), &dir), Err(ConfigError::SecretKey)));
        let good = SecretString::for_tests(&"ab".repeat(32));
        assert!(SecretBox::load(Some(&good), &dir).is_ok());
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery".into(), Some(h.clone())).await);
        assert!(!verify_password("wrong horse battery".into(), Some(h)).await);
        assert!(!verify_password("murmur-dummy-password".into(), None).await);
    }

    #[test]
    fn ids_and_secrets_have_their_shapes() {
        assert!(crate::domain::app::is_app_id(&new_id()));
        assert_eq!(new_secret().len(), 43);
        assert_ne!(new_secret(), new_secret());
    }
}
