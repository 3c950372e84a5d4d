//! The overview's daily figures (`daily_stats`, migration 0014): per app
//! and UTC day (Unix milliseconds / 86,400,000), whispers and manual
//! messages sent / seen / clicked / replied, conversations opened, first
//! responses and their median time, and the users and active users as a
//! snapshot of the day.
//!
//! The rollup recounts, per app, the days from the one it last ran on
//! (at least yesterday) through today, each event on the day it happened
//! (sent on `sent_at`'s day, seen on `seen_at`'s…), with one range count
//! per metric on an index of that time; older days keep their stored
//! values. An app never rolled up gets its last `MAX_DAYS` days counted
//! once (bounded backfill). Values are absolute and upserted, so rolling
//! up again, or on several instances at once, writes the same numbers.
//! The page reads at most `MAX_DAYS` × `Metric::ALL` rows by primary key.

use std::collections::{BTreeMap, HashMap};

use super::{with_pool, Store, StoreResult};

pub const DAY_MS: i64 = 86_400_000;
/// The most days the overview shows, and a backfill counts.
pub const MAX_DAYS: i64 = 90;
/// An app is rolled up again only once its last rollup is this old.
pub const ROLLUP_EVERY_MS: i64 = 60_000;

/// What is counted per day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Snapshot: the app's users.
    UsersTotal,
    /// Snapshot: users seen within the last 1, 7 and 30 days.
    Active1d,
    Active7d,
    Active30d,
    WhisperSent,
    WhisperSeen,
    WhisperClicked,
    WhisperReplied,
    MessageSent,
    MessageSeen,
    MessageClicked,
    MessageReplied,
    ConversationsOpened,
    /// Conversations whose first team reply came that day.
    FirstResponses,
    /// The median time to those replies, from the conversation's start, in
    /// milliseconds (no row on a day without one).
    FirstResponseMs,
}

impl Metric {
    pub const ALL: [Metric; 15] = [
        Metric::UsersTotal,
        Metric::Active1d,
        Metric::Active7d,
        Metric::Active30d,
        Metric::WhisperSent,
        Metric::WhisperSeen,
        Metric::WhisperClicked,
        Metric::WhisperReplied,
        Metric::MessageSent,
        Metric::MessageSeen,
        Metric::MessageClicked,
        Metric::MessageReplied,
        Metric::ConversationsOpened,
        Metric::FirstResponses,
        Metric::FirstResponseMs,
    ];

    /// The stored name.
    pub fn code(self) -> &'static str {
        match self {
            Metric::UsersTotal => "users",
            Metric::Active1d => "active_1d",
            Metric::Active7d => "active_7d",
            Metric::Active30d => "active_30d",
            Metric::WhisperSent => "whisper_sent",
            Metric::WhisperSeen => "whisper_seen",
            Metric::WhisperClicked => "whisper_clicked",
            Metric::WhisperReplied => "whisper_replied",
            Metric::MessageSent => "message_sent",
            Metric::MessageSeen => "message_seen",
            Metric::MessageClicked => "message_clicked",
            Metric::MessageReplied => "message_replied",
            Metric::ConversationsOpened => "conversations",
            Metric::FirstResponses => "first_responses",
            Metric::FirstResponseMs => "first_response_ms",
        }
    }

    pub fn from_code(code: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.code() == code)
    }
}

/// Counted per day of an event's time: the metric, the table and its time
/// column (each with a partial index on (app_id, time), migration 0014).
const EVENT_COUNTS: [(Metric, &str, &str); 9] = [
    (Metric::WhisperSent, "deliveries", "sent_at"),
    (Metric::WhisperSeen, "deliveries", "seen_at"),
    (Metric::WhisperClicked, "deliveries", "clicked_at"),
    (Metric::WhisperReplied, "deliveries", "replied_at"),
    (Metric::MessageSent, "message_deliveries", "sent_at"),
    (Metric::MessageSeen, "message_deliveries", "seen_at"),
    (Metric::MessageClicked, "message_deliveries", "clicked_at"),
    (Metric::MessageReplied, "message_deliveries", "replied_at"),
    (Metric::ConversationsOpened, "conversations", "created_at"),
];

/// An app's stored figures for a range of days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DailyStats {
    /// When the app was last rolled up (None: never).
    pub rolled_at: Option<i64>,
    /// (day, metric) → value; a missing pair was not counted.
    pub values: HashMap<(i64, Metric), i64>,
}

impl DailyStats {
    pub fn get(&self, day: i64, metric: Metric) -> Option<i64> {
        self.values.get(&(day, metric)).copied()
    }
}

/// The UTC day of a time in milliseconds.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The median of a non-empty list (the mean of the middle two when even).
fn median(mut v: Vec<i64>) -> i64 {
    v.sort_unstable();
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2
    }
}

impl Store {
    /// The apps whose last rollup is older than `ROLLUP_EVERY_MS` (or who
    /// have none), rolled up one after the other; how many. Errors stop the
    /// round (the next one retries).
    pub async fn roll_up_due_stats(&self, now: i64) -> StoreResult<usize> {
        let apps: Vec<String> = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT a.id FROM apps a LEFT JOIN daily_stats_rollups r ON r.app_id = a.id \
             WHERE r.rolled_at IS NULL OR r.rolled_at <= $1 ORDER BY a.id",
        )
        .bind(now - ROLLUP_EVERY_MS)
        .fetch_all(pool)
        .await?);
        for app in &apps {
            self.roll_up_stats(app, now).await?;
        }
        Ok(apps.len())
    }

    /// When `app_id` was last rolled up.
    pub async fn stats_rolled_at(&self, app_id: &str) -> StoreResult<Option<i64>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar("SELECT rolled_at FROM daily_stats_rollups WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(pool)
            .await?))
    }

    /// Recounts `app_id`'s figures from the day of its last rollup (at the
    /// latest yesterday; the last `MAX_DAYS` days if never) through today,
    /// and takes today's user snapshot. The counts are read first, then
    /// written in one short transaction.
    pub async fn roll_up_stats(&self, app_id: &str, now: i64) -> StoreResult<()> {
        let today = day_of(now);
        let oldest = today - (MAX_DAYS - 1);
        let first = match self.stats_rolled_at(app_id).await? {
            Some(at) => day_of(at).min(today - 1).max(oldest),
            None => oldest,
        };
        let (from, until) = (first * DAY_MS, (today + 1) * DAY_MS);
        // Every (day, metric) of the range gets a value, 0 when nothing
        // happened: a recount overwrites what an earlier one found.
        let mut values: BTreeMap<(i64, Metric), i64> = BTreeMap::new();
        for day in first..=today {
            for (metric, _, _) in EVENT_COUNTS {
                values.insert((day, metric), 0);
            }
            values.insert((day, Metric::FirstResponses), 0);
        }
        for (metric, table, column) in EVENT_COUNTS {
            let sql = format!(
                "SELECT {column} / {DAY_MS} AS day, COUNT(*) AS n FROM {table} \
                 WHERE app_id = $1 AND {column} IS NOT NULL AND {column} >= $2 AND {column} < $3 \
                 GROUP BY {column} / {DAY_MS}"
            );
            let rows: Vec<(i64, i64)> = with_pool!(self, pool => sqlx::query_as(&sql)
                .bind(app_id)
                .bind(from)
                .bind(until)
                .fetch_all(pool)
                .await?);
            for (day, n) in rows {
                values.insert((day, metric), n);
            }
        }
        // First responses: each conversation's first team reply (a teammate's
        // or the customer's backend's, not the office-hours auto-reply) in
        // the range, none earlier in it, with the conversation's start. A
        // conversation a teammate started has no first response to wait for.
        let sql = String::from(
            "SELECT c.created_at, m.created_at FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE m.app_id = $1 AND m.role = 'appMaker' AND m.created_at >= $2 AND m.created_at < $3 \
               AND (m.kind IS NULL OR m.kind <> 'office_hours') AND c.app_id = $1 AND c.started_by <> 'teammate' \
               AND NOT EXISTS (SELECT 1 FROM messages p WHERE p.conversation_id = m.conversation_id \
                 AND p.role = 'appMaker' AND (p.kind IS NULL OR p.kind <> 'office_hours') \
                 AND (p.created_at < m.created_at OR (p.created_at = m.created_at AND p.id < m.id)))",
        );
        let replies: Vec<(i64, i64)> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(app_id)
            .bind(from)
            .bind(until)
            .fetch_all(pool)
            .await?);
        let mut waits: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (started, replied) in replies {
            waits.entry(day_of(replied)).or_default().push((replied - started).max(0));
        }
        let mut medians: BTreeMap<i64, Option<i64>> = (first..=today).map(|d| (d, None)).collect();
        for (day, w) in waits {
            values.insert((day, Metric::FirstResponses), w.len() as i64);
            medians.insert(day, Some(median(w)));
        }
        // Today's snapshot of the users.
        let total: i64 = with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM app_users WHERE app_id = $1")
            .bind(app_id)
            .fetch_one(pool)
            .await?);
        let (d30, d7, d1): (i64, Option<i64>, Option<i64>) = with_pool!(self, pool => sqlx::query_as(
            "SELECT COUNT(*), SUM(CASE WHEN last_seen_at > $3 THEN 1 ELSE 0 END), \
                    SUM(CASE WHEN last_seen_at > $4 THEN 1 ELSE 0 END) \
             FROM app_users WHERE app_id = $1 AND last_seen_at > $2",
        )
        .bind(app_id)
        .bind(now - 30 * DAY_MS)
        .bind(now - 7 * DAY_MS)
        .bind(now - DAY_MS)
        .fetch_one(pool)
        .await?);
        values.insert((today, Metric::UsersTotal), total);
        values.insert((today, Metric::Active30d), d30);
        values.insert((today, Metric::Active7d), d7.unwrap_or(0));
        values.insert((today, Metric::Active1d), d1.unwrap_or(0));
        for (day, m) in &medians {
            if let Some(m) = m {
                values.insert((*day, Metric::FirstResponseMs), *m);
            }
        }
        let rows: Vec<(i64, Metric, i64)> = values.into_iter().map(|((d, m), n)| (d, m, n)).collect();
        let gone: Vec<i64> = medians.into_iter().filter(|(_, m)| m.is_none()).map(|(d, _)| d).collect();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Rows in key order on every instance: concurrent rollups of one
            // app wait for each other instead of deadlocking.
            for chunk in rows.chunks(100) {
                let placeholders: Vec<String> = (0..chunk.len())
                    .map(|i| format!("($1, ${}, ${}, ${})", 3 * i + 2, 3 * i + 3, 3 * i + 4))
                    .collect();
                let sql = format!(
                    "INSERT INTO daily_stats (app_id, day, metric, n) VALUES {} \
                     ON CONFLICT (app_id, day, metric) DO UPDATE SET n = excluded.n",
                    placeholders.join(", ")
                );
                let mut q = sqlx::query(&sql).bind(app_id);
                for (day, metric, n) in chunk {
                    q = q.bind(*day).bind(metric.code()).bind(*n);
                }
                q.execute(&mut *tx).await?;
            }
            // A day whose replies are gone (a deleted user) has no median.
            for day in &gone {
                sqlx::query("DELETE FROM daily_stats WHERE app_id = $1 AND day = $2 AND metric = $3")
                    .bind(app_id)
                    .bind(*day)
                    .bind(Metric::FirstResponseMs.code())
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO daily_stats_rollups (app_id, rolled_at) VALUES ($1, $2) \
                 ON CONFLICT (app_id) DO UPDATE SET rolled_at = excluded.rolled_at",
            )
            .bind(app_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// `app_id`'s stored figures for days `first..=last`, and when they
    /// were rolled up: a primary-key range read.
    pub async fn daily_stats(&self, app_id: &str, first: i64, last: i64) -> StoreResult<DailyStats> {
        let rows: Vec<(i64, String, i64)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT day, metric, n FROM daily_stats WHERE app_id = $1 AND day >= $2 AND day <= $3",
        )
        .bind(app_id)
        .bind(first)
        .bind(last)
        .fetch_all(pool)
        .await?);
        let values =
            rows.into_iter().filter_map(|(day, code, n)| Metric::from_code(&code).map(|m| ((day, m), n))).collect();
        Ok(DailyStats { rolled_at: self.stats_rolled_at(app_id).await?, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_days() {
        assert_eq!(median(vec![5]), 5);
        assert_eq!(median(vec![9, 1, 5]), 5);
        assert_eq!(median(vec![4, 1, 10, 2]), 3);
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(-1), -1);
        for m in Metric::ALL {
            assert_eq!(Metric::from_code(m.code()), Some(m));
        }
    }
}
