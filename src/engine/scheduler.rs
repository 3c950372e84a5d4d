//! Property-match whispers as time passes. Every user whom time alone will
//! make match an active property-match whisper they have not received has
//! a due time in `whisper_due`: the earliest such time (written with the
//! user's values, in the same transaction, and for everyone when a whisper
//! is activated). A tick claims the users who are due, checks each against
//! the app's property-match whispers, delivers and reschedules, in one
//! transaction. A tick's cost follows the users due, not the user count.

use std::{collections::HashMap, sync::Arc, time::Duration};

use super::{ActionError, Engine};
use crate::storage::{AppUserRow, Planned, Received};

/// Due rows claimed per transaction.
const BATCH: i64 = 500;

impl Engine {
    /// Checks every (whisper, user) due by now, in batches, until none is
    /// left; returns how many deliveries it made. Safe to run on several
    /// instances at once (PostgreSQL: rows are claimed with SKIP LOCKED) and
    /// to interrupt (an unfinished batch is rolled back and stays due).
    pub async fn run_due(&self) -> Result<usize, ActionError> {
        let store = self.writer.store();
        let mut made = 0;
        loop {
            let now = self.now();
            let apps = store.due_apps(now, BATCH).await?;
            if apps.is_empty() {
                return Ok(made);
            }
            let mut whispers = HashMap::new();
            for app in apps {
                let live = self.planner.whispers(&self.store, &app).await?;
                whispers.insert(app, live);
            }
            let plan = |user: &AppUserRow, received: &Received| match whispers.get(&user.app_id) {
                Some(live) => live.plan_update(user, received, now, false, false),
                // Its app appeared after the whispers were loaded: check it next round.
                None => Planned { due: Some(now), sets_due: true, ..Planned::default() },
            };
            let (claimed, delivered) = store.run_due(now, BATCH, &plan).await?;
            self.publish_deliveries(&delivered).await;
            made += delivered.len();
            if (claimed as i64) < BATCH {
                return Ok(made);
            }
        }
    }

    /// Runs `run_due`, then the manual sends, the email worker and the push worker
    /// (`engine::send`), every `period` for as long as the server runs; and,
    /// in a task of its own so that a slow one never delays a delivery, the
    /// housekeeping: at most once a minute the overview's rollup
    /// (`storage::stats`), every 10 s the new events folded into who did
    /// each event and each user's events (`storage::users::fold_event_users`), every 10 minutes per
    /// app the catalog counts (`storage::users::recount_catalog`), hourly
    /// the purge of old decisions (`engine::explain`).
    pub fn start_scheduler(self: &Arc<Self>, period: Duration) {
        self.start_housekeeping(period);
        let engine = Arc::downgrade(self);
        let mut closing = self.hub.closing();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = closing.changed() => return,
                }
                let Some(engine) = engine.upgrade() else { return };
                engine.measure_lag().await;
                if let Err(e) = engine.run_due().await {
                    tracing::error!(error = %e, "the scheduler's tick failed");
                }
                // Scheduled manual messages, sends a crash interrupted, email retries.
                if let Err(e) = engine.run_sends().await {
                    tracing::error!(error = %e, "the send worker's tick failed");
                }
                if let Err(e) = engine.run_email().await {
                    tracing::error!(error = %e, "the email worker's tick failed");
                }
                if let Err(e) = engine.run_push().await {
                    tracing::error!(error = %e, "the push worker's tick failed");
                }
            }
        });
    }

    /// The overview's rollup (at most once a minute) and the purge of old
    /// decisions (hourly), checked every `period`, by the injected clock.
    fn start_housekeeping(self: &Arc<Self>, period: Duration) {
        let engine = Arc::downgrade(self);
        let mut closing = self.hub.closing();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut rolled_up_at, mut folded_at, mut purged_at) = (i64::MIN, i64::MIN, i64::MIN);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = closing.changed() => return,
                }
                let Some(engine) = engine.upgrade() else { return };
                if engine.now().saturating_sub(rolled_up_at) >= crate::storage::stats::ROLLUP_EVERY_MS {
                    rolled_up_at = engine.now();
                    if let Err(e) = engine.store.roll_up_due_stats(rolled_up_at).await {
                        tracing::error!(error = %e, "the overview's rollup failed");
                    }
                }
                if engine.now().saturating_sub(folded_at) >= crate::storage::FOLD_EVERY_MS {
                    folded_at = engine.now();
                    if let Err(e) = engine.store.fold_all_event_users().await {
                        tracing::error!(error = %e, "folding new events into who did each event failed");
                    }
                }
                // Apps whose catalog counts are older than CATALOG_RECOUNT_MS.
                if let Err(e) = engine.store.recount_due_catalogs(engine.now()).await {
                    tracing::error!(error = %e, "recounting the catalogs failed");
                }
                if engine.now().saturating_sub(purged_at) >= 3_600_000 {
                    purged_at = engine.now();
                    if let Err(e) = engine.purge_decisions().await {
                        tracing::error!(error = %e, "purging old decisions failed");
                    }
                }
            }
        });
    }

    /// With metrics on: how late each worker's oldest due item is now
    /// (`murmur_worker_lag_seconds`), before the tick works them off. One
    /// indexed query; nothing while metrics are off.
    pub async fn measure_lag(&self) {
        use crate::metrics::Worker;
        if !self.metrics.is_on() {
            return;
        }
        let oldest = match self.store.oldest_due().await {
            Ok(o) => o,
            Err(e) => return tracing::warn!(error = %e, "could not measure the workers' lag"),
        };
        let now = self.now();
        for (worker, due) in [
            (Worker::Scheduler, oldest.scheduler),
            (Worker::Sends, oldest.sends),
            (Worker::Email, oldest.email),
            (Worker::Push, oldest.push),
        ] {
            let late = due.map_or(0, |at| now.saturating_sub(at).max(0));
            self.metrics.lag(worker, Duration::from_millis(late as u64));
        }
    }

    /// A whisper was saved or its status changed: forget the app's cached
    /// whispers everywhere, and if it is an active property-match whisper,
    /// make every user who has not received it due now (the next ticks
    /// deliver to those who match and reschedule the others).
    pub async fn whisper_changed(&self, app_id: &str, whisper_id: &str) -> Result<(), ActionError> {
        self.whispers_changed(app_id).await;
        self.writer.store().schedule_everyone(app_id, whisper_id, self.now()).await?;
        Ok(())
    }
}
