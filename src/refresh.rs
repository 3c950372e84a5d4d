//! One refresh at a time of a cached entry (an API key, an app's active
//! whispers). When a busy server's entry goes stale, every request that
//! finds it so at once would otherwise ask the database for the same rows:
//! thousands of queries queued for the pool's connections, holding every
//! request behind them (RELIABILITY.md, "Overload": stalls of seconds every
//! time the entries expired, on PostgreSQL). With `Refreshes`, the first
//! refreshes, and the others wait for it, then find the entry fresh.

use std::hash::{DefaultHasher, Hash, Hasher};

use tokio::sync::{Mutex, MutexGuard};

/// Keys are spread over this many locks by their hash: a fixed set, so
/// unknown keys (an id nobody has) grow nothing.
const LOCKS: usize = 64;

pub struct Refreshes {
    locks: Vec<Mutex<()>>,
}

impl Default for Refreshes {
    fn default() -> Self {
        Refreshes { locks: (0..LOCKS).map(|_| Mutex::new(())).collect() }
    }
}

impl Refreshes {
    /// Waits until no other refresh of `key` (or of a key sharing its lock)
    /// is under way; the refresh this guards ends when the guard is
    /// dropped. Check the cache again once it is held: a refresh that just
    /// ended may have made the entry fresh.
    pub async fn one_at_a_time(&self, key: &str) -> MutexGuard<'_, ()> {
        let mut hash = DefaultHasher::new();
        key.hash(&mut hash);
        self.locks[hash.finish() as usize % LOCKS].lock().await
    }
}
