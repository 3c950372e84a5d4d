//! Secrets: the server key that encrypts app secrets at rest, random ids and
//! tokens, and Argon2id password hashing (run off the async executor, a few
//! at a time).

use std::{io::Write, path::Path};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::config::{ConfigError, SecretString};

const NONCE_LEN: usize = 24;
const KEY_FILE: &str = "secret.key";

/// Seals and opens secrets with the server key (XChaCha20-Poly1305). The
/// associated data names the record a ciphertext belongs to, so a sealed
/// secret copied into another row does not open.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    /// HMAC-SHA256 keyed with the server key: derives keys for other
    /// purposes (`derive_key`).
    derive: Hmac<Sha256>,
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
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
            // HMAC takes a key of any length.
            derive: <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length"),
        }
    }

    /// A 32-byte key for one `purpose` (e.g. `"unsubscribe"`), derived
    /// from the server key: HMAC-SHA256(server key, label ‖ purpose). A
    /// derived key can be handed to other code without it being able to
    /// open sealed secrets, and one purpose's key says nothing of another's.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut mac = self.derive.clone();
        mac.update(b"murmur derived key\0");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
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

/// A server key written as 64 hexadecimal characters.
pub(crate) fn parse_key(s: &str) -> Option<[u8; 32]> {
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
pub fn smtp_password_context(app_id: &str) -> String {
    format!("app:{app_id}:smtp")
}

/// A 256-bit secret in URL-safe base64 (session tokens, API secrets).
pub fn new_secret() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Sessions are stored by hash, so a database leak does not leak sessions.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// How many password hashes or checks run at once. Each Argon2id run takes
/// 19 MiB and a core for a few tens of milliseconds; more at once would only
/// queue on the cores and grow memory (many parallel sign-ins once took the
/// server from 50 MB to 1.7 GB).
pub const PASSWORD_PERMITS: usize = 2;

/// The most Argon2 memory one run may use (a stored hash asking for more is
/// refused rather than followed): 64 MiB, three times the default.
const MAX_ARGON2_BLOCKS: usize = 64 * 1024;

/// Argon2id password hashing and checking (the crate's defaults: 19 MiB,
/// 2 passes), on blocking threads, at most `PASSWORD_PERMITS` at once; the
/// others wait their turn. Each run works in one of `PASSWORD_PERMITS`
/// memory areas allocated once and reused (an area allocated per run is
/// kept by the allocator of whichever thread ran it, so resident memory grew
/// by 19 MiB per blocking thread). Counts the checks it made (tests read it).
pub struct Passwords {
    permits: tokio::sync::Semaphore,
    memory: std::sync::Mutex<Vec<Vec<argon2::Block>>>,
    checks: std::sync::atomic::AtomicU64,
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new(PASSWORD_PERMITS)
    }
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords").field("checks", &self.checks()).finish()
    }
}

impl Passwords {
    pub fn new(permits: usize) -> Self {
        Self {
            permits: tokio::sync::Semaphore::new(permits.max(1)),
            memory: Default::default(),
            checks: Default::default(),
        }
    }

    /// How many password checks (`verify`) have run.
    pub fn checks(&self) -> u64 {
        self.checks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `work` on a blocking thread with a memory area, once a permit
    /// is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<argon2::Block>) -> T + Send + 'static,
    ) -> Result<T, String> {
        // The semaphore is never closed.
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let mut memory = self.memory.lock().ok().and_then(|mut m| m.pop()).unwrap_or_default();
        let (out, memory) =
            tokio::task::spawn_blocking(move || (work(&mut memory), memory)).await.map_err(|e| e.to_string())?;
        if let Ok(mut m) = self.memory.lock() {
            m.push(memory);
        }
        Ok(out)
    }

    pub async fn hash(&self, password: String) -> Result<String, String> {
        self.run(move |memory| hash_with(password.as_bytes(), memory).map_err(|e| e.to_string())).await?
    }

    /// Checks a password. With no stored hash it still does the work against
    /// a dummy, so unknown emails take as long as wrong passwords.
    pub async fn verify(&self, password: String, stored: Option<String>) -> bool {
        self.checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.run(move |memory| match stored {
            Some(hash) => verify_with(password.as_bytes(), &hash, memory),
            None => {
                let _ = verify_with(password.as_bytes(), dummy_hash(memory), memory);
                false
            }
        })
        .await
        .unwrap_or(false)
    }
}

/// Argon2 into `out`, in `memory` (grown to the size `params` need).
fn argon2_into(
    argon: argon2::Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Vec<argon2::Block>,
) -> Result<(), argon2::Error> {
    let blocks = argon.params().block_count();
    if blocks > MAX_ARGON2_BLOCKS {
        return Err(argon2::Error::MemoryTooMuch);
    }
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::default());
    }
    argon.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
}

/// A new Argon2id hash of `password` in the PHC string format, with the
/// crate's default parameters and a random salt.
fn hash_with(password: &[u8], memory: &mut Vec<argon2::Block>) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{rand_core::OsRng, Output, ParamsString, PasswordHash, SaltString};
    let argon = argon2::Argon2::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes)?;
    let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
    argon2_into(argon.clone(), password, salt_bytes, &mut out, memory)?;
    let hash = PasswordHash {
        algorithm: argon2::Algorithm::default().ident(),
        version: Some(argon2::Version::default().into()),
        params: ParamsString::try_from(argon.params())?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out)?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored` (compared in
/// constant time).
fn verify_with(password: &[u8], stored: &str, memory: &mut Vec<argon2::Block>) -> bool {
    use argon2::password_hash::{Output, PasswordHash};
    let mut check = || -> Result<bool, argon2::password_hash::Error> {
        let parsed = PasswordHash::new(stored)?;
        let algorithm = argon2::Algorithm::try_from(parsed.algorithm)?;
        let version = parsed.version.map(argon2::Version::try_from).transpose()?.unwrap_or_default();
        let params = argon2::Params::try_from(&parsed)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return Ok(false) };
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
        let mut out = vec![0u8; expected.len()];
        argon2_into(argon2::Argon2::new(algorithm, version, params), password, salt_bytes, &mut out, memory)?;
        Ok(Output::new(&out)? == expected)
    };
    check().unwrap_or(false)
}

fn dummy_hash(memory: &mut Vec<argon2::Block>) -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_with(b"murmur-dummy-password", memory).unwrap_or_default())
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
    fn derived_keys_differ_by_purpose_and_server_key() {
        let b = SecretBox::from_key(&[7u8; 32]);
        assert_eq!(b.derive_key("unsubscribe"), SecretBox::from_key(&[7u8; 32]).derive_key("unsubscribe"));
        assert_ne!(b.derive_key("unsubscribe"), b.derive_key("other"));
        assert_ne!(b.derive_key("unsubscribe"), SecretBox::from_key(&[8u8; 32]).derive_key("unsubscribe"));
        assert_ne!(b.derive_key("unsubscribe"), [7u8; 32]);
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
        let p = Passwords::default();
        let h = p.hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(p.verify("correct horse battery".into(), Some(h.clone())).await);
        assert!(!p.verify("wrong horse battery".into(), Some(h.clone())).await);
        assert!(!p.verify("murmur-dummy-password".into(), None).await);
        assert_eq!(p.checks(), 3);
        // The PHC strings are the crate's own, both ways.
        use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(argon2::Argon2::default().verify_password(b"correct horse battery", &parsed).is_ok());
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let theirs = argon2::Argon2::default().hash_password(b"their password", &salt).unwrap().to_string();
        assert!(p.verify("their password".into(), Some(theirs.clone())).await);
        assert!(!p.verify("not their password".into(), Some(theirs)).await);
        // Other parameters (an older hash) are followed, not assumed.
        let small = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(1024, 1, 1, None).unwrap(),
        );
        let old = small.hash_password(b"old password", &salt).unwrap().to_string();
        assert!(p.verify("old password".into(), Some(old)).await);
        assert!(!p.verify("x".into(), Some("not a hash".into())).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn at_most_the_permitted_number_of_password_runs_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let p = std::sync::Arc::new(Passwords::new(2));
        let (now, most) = (std::sync::Arc::new(AtomicUsize::new(0)), std::sync::Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (p, now, most) = (p.clone(), now.clone(), most.clone());
                tokio::spawn(async move {
                    p.run(move |_| {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        now.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!((1..=2).contains(&most), "{most} ran at once");
    }

    #[test]
    fn ids_and_secrets_have_their_shapes() {
        assert!(crate::domain::app::is_app_id(&new_id()));
        assert_eq!(new_secret().len(), 43);
        assert_ne!(new_secret(), new_secret());
    }
}
