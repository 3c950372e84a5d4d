//! A user's timeline on their profile: the signed-in teammate must belong
//! to the app, and the user to the app; pages of `PAGE_SIZE` items, newest
//! first, after a cursor (`storage::timeline`).

use super::{apps::app_of, auth::internal, state::AppState};
use crate::{
    error::AppError,
    storage::{
        timeline::{TimelineCursor, TimelinePage},
        TeammateRow,
    },
};

/// Items per page.
pub const PAGE_SIZE: i64 = 50;

/// A page of the timeline of the user `user_ref` names (murmur id or
/// userId) in the app, after `before` ("" for the newest page). The user's
/// murmur id and the page.
pub async fn page(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    user_ref: &str,
    before: &str,
) -> Result<(String, TimelinePage), AppError> {
    let app = app_of(state, actor, app_id).await?;
    let u = state.store.app_user(&app.id, user_ref).await.map_err(internal)?.ok_or(AppError::NotFound)?;
    let before = match before {
        "" => None,
        s => Some(TimelineCursor::decode(s).ok_or_else(|| AppError::Request("That page does not exist.".into()))?),
    };
    let page = state.store.timeline(&app.id, &u.id, before.as_ref(), PAGE_SIZE).await.map_err(internal)?;
    Ok((u.id, page.ok_or(AppError::NotFound)?))
}
