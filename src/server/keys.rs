//! A short-lived cache of API keys (app, opened secret, revoked), so that
//! authenticating a REST call does not cost a query and a decryption every
//! time. Revoking a key drops it here at once; another instance sees the
//! revocation within `TTL_MS`.
//!
//! An entry is refreshed by one request at a time (`crate::refresh`): the
//! others that find it stale wait for that one's answer.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
};

use super::crypto::{api_key_context, SecretBox};
use crate::{
    refresh::Refreshes,
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
    /// The key, from the cache if fresh, else from the database.
    pub async fn get(
        &self,
        store: &Store,
        secrets: &SecretBox,
        now: i64,
        key_id: &str,
    ) -> StoreResult<Option<CachedKey>> {
        if let Some(k) = self.fresh(key_id, now) {
            return Ok(Some(k));
        }
        // One refresh per key at a time; whoever waited for it finds the
        // entry fresh.
        let _refresh = self.refreshes.one_at_a_time(key_id).await;
        // (Fetched while this one waited: possibly at a later `now`.)
        if let Some(k) = self.cached(key_id).filter(|k| now - k.fetched_at < TTL_MS) {
            return Ok(Some(k));
        }
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

    /// The cached key if it was fetched less than `TTL_MS` before `now`.
    fn fresh(&self, key_id: &str, now: i64) -> Option<CachedKey> {
        self.cached(key_id).filter(|k| now - k.fetched_at < TTL_MS && now >= k.fetched_at)
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
