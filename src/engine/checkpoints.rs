//! SQLite's WAL checkpoints, beside the writer instead of on its thread.
//!
//! A commit appends the pages it changed to the WAL; a checkpoint copies
//! them back into the database file and syncs it. Left to SQLite, the
//! connection whose commit takes the WAL past 1,000 pages does that, so the
//! single writer (`engine::writer`) copied the pages it had changed into
//! the database file every few batches (every batch with cold users) and
//! waited for a second fsync, while every request waited for it. Here a connection
//! of its own checkpoints every `CHECKPOINT_EVERY`, without taking any lock
//! the writer needs (PASSIVE): a page changed in that time is copied once,
//! and the copying and its fsync run on the other core. The writer still
//! checkpoints once the WAL is past `storage::WRITER_WAL_PAGES` (64 MiB):
//! it copies what the checkpointer has not yet, and as its checkpoint ends
//! between two of its transactions, the next one starts the WAL again from
//! its beginning (a checkpoint elsewhere would have to hold writes back to
//! get there), so the WAL stays about that long.
//!
//! Durability does not change: a commit is durable once its pages are
//! synced in the WAL (`synchronous=FULL`), whenever they are checkpointed.

use std::time::Duration;

use tokio::sync::watch;

use crate::storage::{Store, StoreError};

/// How often the checkpointer checkpoints.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// The checkpointer's last pass: the WAL's pages and how many of them were
/// in the database file after it (`None` before the first pass). Cloned by
/// whoever waits for a pass; the checkpointer stops once every clone is
/// dropped.
pub type Checkpoints = watch::Receiver<Option<(i64, i64)>>;

/// Starts the checkpointer on its own connection (SQLite; `None` on
/// PostgreSQL). Returns once that connection is open.
pub async fn start(store: &Store) -> Result<Option<Checkpoints>, StoreError> {
    let Some(own) = store.for_checkpoints().await? else { return Ok(None) };
    let (passes, seen) = watch::channel(None);
    tokio::spawn(run(own, passes));
    Ok(Some(seen))
}

async fn run(store: Store, passes: watch::Sender<Option<(i64, i64)>>) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if passes.is_closed() {
            break;
        }
        match store.checkpoint().await {
            Ok(pass) => {
                passes.send_replace(pass);
            }
            Err(e) => tracing::warn!(error = %e, "checkpointing the WAL failed"),
        }
    }
    store.close().await;
}
