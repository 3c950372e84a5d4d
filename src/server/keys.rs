//! A short-lived cache of API keys (app, opened secret, revoked), so that
//! authenticating a REST call does not cost a query and a decryption every
//! time. Revoking a key drops it here at once; another instance sees the
//! revocation within `TTL_MS`.
//!
//! An entry is refreshed ahead of its expiry by one request at a time
//! (`crate::refresh`), so that a busy key is never waited for.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::Duration,
};

use super::crypto::{api_key_context, SecretBox};
use crate::{
    refresh::{Look, Refreshes},
    storage::{Store, StoreResult},
};

pub const TTL_MS: i64 = 5_000;

#[derive(Clone)]
pub struct CachedKey {
    pub app_id: String,
    pub secret: Vec<u8>,
    pub revoked: bool,
    fetched_at: i64,
}

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, CachedKey>>,
    refreshes: Refreshes,
    fetches: AtomicUsize,
}

impl KeyCache {
    /// The key, from the cache while it is within `TTL_MS`, else from the
    /// database (`crate::refresh`: past half its life one request refreshes
    /// it while the others keep using it; a missing or expired key is waited
    /// for, and one request loads it). `None`: no such key.
    pub async fn get(
        &self,
        store: &Store,
        secrets: &SecretBox,
        now: i64,
        key_id: &str,
    ) -> StoreResult<Option<CachedKey>> {
        let look = || match self.cached(key_id) {
            Some(k) => {
                let age = u64::try_from(now - k.fetched_at).ok().map(Duration::from_millis);
                Look::of(Some(k), age, Duration::from_millis(TTL_MS as u64))
            }
            None => Look::Stale,
        };
        self.refreshes.get(key_id, look, || self.load(store, secrets, now, key_id)).await
    }

    /// Reads the key from the database into the cache.
    async fn load(&self, store: &Store, secrets: &SecretBox, now: i64, key_id: &str) -> StoreResult<Option<CachedKey>> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let Some(row) = store.api_key(key_id).await? else { return Ok(None) };
        let Ok(secret) = secrets.open(&api_key_context(&row.id), &row.secret_enc) else {
            tracing::error!(key = %row.id, "an API key secret could not be decrypted");
            return Ok(None);
        };
        let key = CachedKey { app_id: row.app_id, secret, revoked: row.revoked_at.is_some(), fetched_at: now };
        if let Ok(mut m) = self.entries.lock() {
            m.insert(key_id.to_string(), key.clone());
        }
        Ok(Some(key))
    }

    fn cached(&self, key_id: &str) -> Option<CachedKey> {
        self.entries.lock().ok().and_then(|m| m.get(key_id).cloned())
    }

    /// How many times a key was looked up in the database.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::Relaxed)
    }

    pub fn forget(&self, key_id: &str) {
        if let Ok(mut m) = self.entries.lock() {
            m.remove(key_id);
        }
    }
}
