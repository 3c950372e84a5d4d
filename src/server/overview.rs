//! The overview service: an app's daily figures for the last 7, 30 or 90
//! days, read from the rollup's table (`storage::stats`), never counted
//! per request. Membership is checked first; every row read is the app's.

use super::{apps::app_of, auth::internal, state::AppState};
use crate::{
    error::AppError,
    storage::{
        stats::{day_of, DailyStats},
        TeammateRow,
    },
};

/// The ranges the page offers, in days.
pub const RANGES: [i64; 3] = [7, 30, 90];
/// The range shown when none (or another) is asked for.
pub const DEFAULT_RANGE: i64 = 30;

/// A range the page offers: `days` if it is one, else the default.
pub fn range_of(days: i64) -> i64 {
    if RANGES.contains(&days) {
        days
    } else {
        DEFAULT_RANGE
    }
}

/// What the overview shows: `range` days ending today (UTC), from
/// `first_day`, and the stored figures of those days.
#[derive(Debug, Clone)]
pub struct Overview {
    pub range: i64,
    pub first_day: i64,
    pub stats: DailyStats,
}

/// The app's figures for the last `range` days (7, 30 or 90; anything else
/// reads as 30). An app never rolled up (created since the scheduler's last
/// round) is rolled up here, once: later opens only read.
pub async fn load(state: &AppState, actor: &TeammateRow, app_id: &str, range: i64) -> Result<Overview, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let range = range_of(range);
    let now = state.now();
    let today = day_of(now);
    let first_day = today - (range - 1);
    let mut stats = state.store.daily_stats(&app.id, first_day, today).await.map_err(internal)?;
    if stats.rolled_at.is_none() {
        state.store.roll_up_stats(&app.id, now).await.map_err(internal)?;
        stats = state.store.daily_stats(&app.id, first_day, today).await.map_err(internal)?;
    }
    Ok(Overview { range, first_day, stats })
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_offered_ranges() {
        assert_eq!(super::range_of(7), 7);
        assert_eq!(super::range_of(90), 90);
        assert_eq!(super::range_of(0), 30);
        assert_eq!(super::range_of(-7), 30);
        assert_eq!(super::range_of(365), 30);
    }
}
