//! Refreshing a cached entry (an API key, an app's active whispers) without
//! a stampede and without a convoy.
//!
//! When a busy server's entry went stale, every request that found it so
//! asked the database for the same rows: thousands of queries queued for
//! the pool, holding every request behind them. Then one refresh at a time
//! behind a mutex: the others waited for it, but each then took the mutex
//! in turn just to see the entry fresh, one wake-up after another through
//! a runtime thousands of tasks deep, and every request stalled for
//! seconds each time the entry expired (RELIABILITY.md, "Overload").
//!
//! Now an entry is refreshed ahead of time: past half its life, the first
//! request that finds it so refreshes it while every other keeps using the
//! copy, which is still within its life. Only an entry that is missing or
//! past its life is waited for, and those who wait are let go together
//! once the load ends (they share a read lock; the loader holds the write
//! lock).

use std::{
    future::Future,
    hash::{DefaultHasher, Hash, Hasher},
    time::Duration,
};

use tokio::sync::RwLock;

/// Keys are spread over this many locks by their hash: a fixed set, so
/// unknown keys (an id nobody has) grow nothing.
const LOCKS: usize = 64;

/// What a cache holds for a key, as of now.
pub enum Look<T> {
    /// Within the first half of its life: use it.
    Fresh(T),
    /// Within its life but past half of it: use it; refresh it unless
    /// someone already is.
    Aging(T),
    /// Missing, or past its life: it must be loaded.
    Stale,
}

impl<T> Look<T> {
    /// What a cached `value` is at `age` (`None`: from a later time than
    /// now, as when a clock went back) for an entry that lives `life`.
    pub fn of(value: T, age: Option<Duration>, life: Duration) -> Look<T> {
        match age {
            Some(age) if age < life / 2 => Look::Fresh(value),
            Some(age) if age < life => Look::Aging(value),
            _ => Look::Stale,
        }
    }
}

pub struct Refreshes {
    locks: Vec<RwLock<()>>,
}

impl Default for Refreshes {
    fn default() -> Self {
        Refreshes { locks: (0..LOCKS).map(|_| RwLock::new(())).collect() }
    }
}

impl Refreshes {
    fn lock(&self, key: &str) -> &RwLock<()> {
        let mut hash = DefaultHasher::new();
        key.hash(&mut hash);
        &self.locks[hash.finish() as usize % LOCKS]
    }

    /// The entry for `key`: `look` reads the cache, `load` reads the
    /// database and stores what it read in the cache (and returns it).
    /// At most one load per key (per lock) runs at a time, except for an
    /// entry a load did not make fresh (an unknown key): those who waited
    /// for it then load on their own, at once, rather than one by one.
    pub async fn get<T, E, F, L>(&self, key: &str, look: F, load: impl FnOnce() -> L) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: Fn() -> Look<T>,
        L: Future<Output = Result<T, E>>,
    {
        let lock = self.lock(key);
        match look() {
            Look::Fresh(v) => Ok(v),
            Look::Aging(v) => {
                // Someone else is refreshing it (or waiting for it): the
                // copy is still good.
                let Ok(_loading) = lock.try_write() else { return Ok(v) };
                match look() {
                    Look::Fresh(v) => Ok(v),
                    // A refresh that fails does not fail the request: the
                    // copy is still good, and the next request tries again.
                    Look::Aging(copy) => match load().await {
                        Ok(fresh) => Ok(fresh),
                        Err(e) => {
                            tracing::warn!(key, error = %e, "refreshing a cached entry failed; using the copy");
                            Ok(copy)
                        }
                    },
                    // Dropped meanwhile (a revoked key, a changed whisper):
                    // no copy to fall back on.
                    Look::Stale => load().await,
                }
            }
            Look::Stale => {
                // Load it, or if a load is under way wait for its end, with
                // everyone else who waits for it.
                let _loading = match lock.try_write() {
                    Ok(loading) => Some(loading),
                    Err(_) => {
                        drop(lock.read().await);
                        None
                    }
                };
                match look() {
                    Look::Fresh(v) | Look::Aging(v) => Ok(v),
                    Look::Stale => load().await,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    };

    /// A cache of one value with its state set by the test.
    struct Cell {
        state: Mutex<(u32, u8)>, // value; 0 fresh, 1 aging, 2 stale
        loads: AtomicUsize,
    }

    impl Cell {
        fn new(state: u8) -> Self {
            Cell { state: Mutex::new((1, state)), loads: AtomicUsize::new(0) }
        }
        fn look(&self) -> Look<u32> {
            let (v, s) = *self.state.lock().unwrap();
            match s {
                0 => Look::Fresh(v),
                1 => Look::Aging(v),
                _ => Look::Stale,
            }
        }
        /// A load that ends when `done` fires, storing value 2, fresh.
        async fn load(&self, done: impl Future<Output = ()>) -> Result<u32, &'static str> {
            self.loads.fetch_add(1, Ordering::Relaxed);
            done.await;
            *self.state.lock().unwrap() = (2, 0);
            Ok(2)
        }
    }

    #[tokio::test]
    async fn an_aging_entry_is_served_while_it_is_refreshed() {
        let (cell, r) = (Cell::new(1), Refreshes::default());
        let (finish, done) = tokio::sync::oneshot::channel::<()>();
        let mut refresh = Box::pin(r.get("k", || cell.look(), || cell.load(done.map(|_| ()))));
        assert!(refresh.as_mut().now_or_never().is_none(), "the refresh waits for its load");
        // Another request meanwhile gets the old copy at once, and loads nothing.
        let other = r.get("k", || cell.look(), || cell.load(std::future::pending()));
        assert_eq!(other.now_or_never(), Some(Ok(1)));
        assert_eq!(cell.loads.load(Ordering::Relaxed), 1);
        finish.send(()).unwrap();
        assert_eq!(refresh.await, Ok(2));
        assert_eq!(r.get("k", || cell.look(), || cell.load(std::future::pending())).await, Ok(2));
        assert_eq!(cell.loads.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn those_who_wait_for_a_load_go_together() {
        let (cell, r) = (Cell::new(2), Refreshes::default());
        let (finish, done) = tokio::sync::oneshot::channel::<()>();
        let mut loading = Box::pin(r.get("k", || cell.look(), || cell.load(done.map(|_| ()))));
        assert!(loading.as_mut().now_or_never().is_none());
        let mut first = Box::pin(r.get("k", || cell.look(), || cell.load(std::future::pending())));
        let mut second = Box::pin(r.get("k", || cell.look(), || cell.load(std::future::pending())));
        assert!(first.as_mut().now_or_never().is_none(), "a stale entry is waited for");
        assert!(second.as_mut().now_or_never().is_none());
        finish.send(()).unwrap();
        assert_eq!(loading.await, Ok(2));
        // The second waiter goes on without the first being polled again:
        // no waiter holds the others back.
        assert_eq!(second.as_mut().now_or_never(), Some(Ok(2)));
        assert_eq!(first.as_mut().now_or_never(), Some(Ok(2)));
        assert_eq!(cell.loads.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_failed_refresh_of_an_aging_entry_gives_the_copy() {
        let (cell, r) = (Cell::new(1), Refreshes::default());
        let failing = || async { Err::<u32, &str>("the database is away") };
        assert_eq!(r.get("k", || cell.look(), failing).await, Ok(1));
        // A stale entry has no copy to give: the error goes to the caller.
        *cell.state.lock().unwrap() = (1, 2);
        assert_eq!(r.get("k", || cell.look(), failing).await, Err("the database is away"));
        // Nor has one dropped between the first look and the refresh (a
        // revoked key): its old copy is not given either.
        let looks = AtomicUsize::new(0);
        let dropped = || match looks.fetch_add(1, Ordering::Relaxed) {
            0 => Look::Aging(1),
            _ => Look::Stale,
        };
        assert_eq!(r.get("k", dropped, failing).await, Err("the database is away"));
    }

    #[tokio::test]
    async fn an_entry_no_load_makes_fresh_is_loaded_by_each_at_once() {
        let (cell, r) = (Cell::new(2), Refreshes::default());
        let unknown = || async {
            cell.loads.fetch_add(1, Ordering::Relaxed);
            Err::<u32, &str>("no such key")
        };
        assert_eq!(r.get("k", || cell.look(), unknown).await, Err("no such key"));
        assert_eq!(r.get("k", || cell.look(), unknown).await, Err("no such key"));
        assert_eq!(cell.loads.load(Ordering::Relaxed), 2);
    }
}
