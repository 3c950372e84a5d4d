//! How far behind the background workers are (`/metrics`): the earliest
//! due time in each worker's queue, one round trip, every lookup served by
//! the first entry of an index (`whisper_due_at`, `manual_messages_due`,
//! the partial `message_deliveries_email`, `push_jobs_due`).

use super::{with_pool, Store, StoreResult};

/// The earliest due time (Unix ms) in each worker's queue; `None`: empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OldestDue {
    /// Users to check against property-match whispers.
    pub scheduler: Option<i64>,
    /// Scheduled manual messages.
    pub sends: Option<i64>,
    /// Email deliveries waiting for an attempt.
    pub email: Option<i64>,
    /// Push jobs (a claimed job is held: its due time is the end of the hold).
    pub push: Option<i64>,
}

/// Each lookup reads the first entry of its index on both backends (the
/// two filtered ones are spelled `ORDER BY … LIMIT 1` so that PostgreSQL
/// never chooses to aggregate over every pending email instead).
const OLDEST_DUE: &str = "SELECT \
    (SELECT MIN(due_at) FROM whisper_due), \
    (SELECT send_at FROM manual_messages WHERE state = 'scheduled' AND send_at IS NOT NULL \
     ORDER BY send_at LIMIT 1), \
    (SELECT next_attempt_at FROM message_deliveries \
     WHERE channel = 'email' AND state = 'pending' AND next_attempt_at IS NOT NULL \
     ORDER BY next_attempt_at LIMIT 1), \
    (SELECT MIN(due_at) FROM push_jobs)";

impl Store {
    pub async fn oldest_due(&self) -> StoreResult<OldestDue> {
        let (scheduler, sends, email, push): (Option<i64>, Option<i64>, Option<i64>, Option<i64>) =
            with_pool!(self, pool => sqlx::query_as(OLDEST_DUE).fetch_one(pool).await?);
        Ok(OldestDue { scheduler, sends, email, push })
    }
}
