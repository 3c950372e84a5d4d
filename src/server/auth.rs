//! Teammate accounts and sessions: first-run setup, sign-in with throttling,
//! sign-out, and the owner adding and removing teammates.

use super::{
    crypto::{hash_password, new_id, new_secret, sha256_hex, verify_password},
    state::AppState,
};
use crate::{
    domain::teammate::{initials, Email, NewTeammate},
    error::AppError,
    models::TeammateView,
    storage::{StoreError, TeammateRow},
};

/// How long a sign-in lasts.
pub const SESSION_TTL_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// Logs an internal failure and hides it from the client.
pub fn internal(e: impl std::fmt::Display) -> AppError {
    tracing::error!(error = %e, "internal error");
    AppError::Internal
}

fn store_err(e: StoreError) -> AppError {
    internal(e)
}

pub fn teammate_view(t: &TeammateRow) -> TeammateView {
    TeammateView {
        id: t.id.clone(),
        name: t.name.clone(),
        initials: initials(&t.name),
        email: t.email.clone(),
        is_owner: t.is_owner,
    }
}

pub async fn setup_needed(state: &AppState) -> Result<bool, AppError> {
    Ok(state.store.count_teammates().await.map_err(store_err)? == 0)
}

fn already_set_up() -> AppError {
    AppError::Conflict { field: "form".into(), message: "Setup is already complete: sign in instead.".into() }
}

/// Creates the owner account on a fresh install and signs them in.
/// Returns the new session token.
pub async fn setup_owner(state: &AppState, name: &str, email: &str, password: &str) -> Result<String, AppError> {
    if !setup_needed(state).await? {
        return Err(already_set_up());
    }
    let new = NewTeammate::parse(name, email, password).map_err(AppError::from_invalid)?;
    let row = new_row(new, true, state.now()).await?;
    // The unique owner index decides a race between two setups.
    state.store.insert_teammate(&row, None).await.map_err(|e| match e {
        StoreError::Duplicate => already_set_up(),
        e => store_err(e),
    })?;
    tracing::info!(teammate = %row.id, "owner account created");
    start_session(state, &row.id).await
}

async fn new_row(new: NewTeammate, is_owner: bool, now: i64) -> Result<TeammateRow, AppError> {
    let password_hash = hash_password(new.password.expose().to_string()).await.map_err(internal)?;
    Ok(TeammateRow {
        id: new_id(),
        name: new.name.as_str().to_string(),
        email: new.email.as_str().to_string(),
        password_hash,
        is_owner,
        created_at: now,
    })
}

async fn start_session(state: &AppState, teammate_id: &str) -> Result<String, AppError> {
    let token = new_secret();
    let now = state.now();
    state.store.insert_session(&sha256_hex(&token), teammate_id, now, now + SESSION_TTL_MS).await.map_err(store_err)?;
    Ok(token)
}

/// The teammate a session token belongs to.
pub async fn authenticate(state: &AppState, token: Option<&str>) -> Result<TeammateRow, AppError> {
    let token = token.ok_or(AppError::Unauthenticated)?;
    state
        .store
        .session_teammate(&sha256_hex(token), state.now())
        .await
        .map_err(store_err)?
        .ok_or(AppError::Unauthenticated)
}

pub async fn sign_out(state: &AppState, token: Option<&str>) -> Result<(), AppError> {
    if let Some(token) = token {
        state.store.delete_session(&sha256_hex(token)).await.map_err(store_err)?;
    }
    Ok(())
}

/// Sign-in throttling. Each account and each client address may fail a few
/// times freely; after that every further failure doubles the wait before
/// the next try, up to a cap. The account cap is short (the real owner is
/// never locked out for long); the address cap is long (one machine guessing
/// many accounts is slowed hard). Counts are forgotten a day after the last
/// failure and cleared by a successful sign-in.
pub mod throttle {
    pub const ACCOUNT_FREE: i64 = 5;
    pub const ACCOUNT_CAP_SECS: i64 = 60;
    pub const ADDRESS_FREE: i64 = 20;
    pub const ADDRESS_CAP_SECS: i64 = 15 * 60;
    pub const FORGET_AFTER_MS: i64 = 24 * 60 * 60 * 1000;

    /// Seconds to wait after `failures` failures (0 = may try now).
    pub fn delay_secs(failures: i64, free: i64, cap_secs: i64) -> i64 {
        if failures < free {
            return 0;
        }
        let doublings = (failures - free).min(30) as u32;
        (1i64 << doublings).min(cap_secs)
    }

    /// Seconds left before another attempt is allowed, given the last failure.
    pub fn retry_after_secs(failures: i64, last_failure_at: i64, now: i64, free: i64, cap_secs: i64) -> i64 {
        if now - last_failure_at >= FORGET_AFTER_MS {
            return 0;
        }
        let until = last_failure_at + delay_secs(failures, free, cap_secs) * 1000;
        ((until - now).max(0) + 999) / 1000
    }
}

fn throttle_keys(email: &str, ip: Option<std::net::IpAddr>) -> (String, Option<String>) {
    (format!("account:{email}"), ip.map(|ip| format!("address:{ip}")))
}

/// Signs in with email and password. Returns the new session token.
pub async fn sign_in(
    state: &AppState,
    email: &str,
    password: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<String, AppError> {
    let email = match Email::parse(email) {
        Ok(e) => e,
        Err(invalid) => return Err(invalid.into()),
    };
    if password.is_empty() {
        return Err(AppError::Field { field: "password".into(), message: "Enter your password.".into() });
    }
    let now = state.now();
    let (account_key, address_key) = throttle_keys(email.as_str(), ip);
    let keys: Vec<String> = std::iter::once(account_key.clone()).chain(address_key.clone()).collect();
    let rows = state.store.throttle_rows(&keys).await.map_err(store_err)?;
    let wait = rows
        .iter()
        .map(|r| {
            let (free, cap) = if r.key == account_key {
                (throttle::ACCOUNT_FREE, throttle::ACCOUNT_CAP_SECS)
            } else {
                (throttle::ADDRESS_FREE, throttle::ADDRESS_CAP_SECS)
            };
            throttle::retry_after_secs(r.failures, r.last_failure_at, now, free, cap)
        })
        .max()
        .unwrap_or(0);
    if wait > 0 {
        return Err(AppError::Throttled { retry_after_secs: wait as u64 });
    }

    let teammate = state.store.teammate_by_email(email.as_str()).await.map_err(store_err)?;
    let ok = verify_password(password.to_string(), teammate.as_ref().map(|t| t.password_hash.clone())).await;
    let Some(teammate) = teammate.filter(|_| ok) else {
        let forget_before = now - throttle::FORGET_AFTER_MS;
        for key in &keys {
            state.store.throttle_fail(key, now, forget_before).await.map_err(store_err)?;
        }
        tracing::info!(ip = ?ip, "failed sign-in");
        return Err(AppError::BadCredentials);
    };
    for key in &keys {
        state.store.throttle_clear(key).await.map_err(store_err)?;
    }
    let _ = state.store.delete_expired_sessions(now).await;
    tracing::info!(teammate = %teammate.id, "signed in");
    start_session(state, &teammate.id).await
}

/// The owner adds a teammate with access to `app_id`.
pub async fn add_teammate(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    name: &str,
    email: &str,
    password: &str,
) -> Result<TeammateView, AppError> {
    require_owner_of(state, actor, app_id).await?;
    let new = NewTeammate::parse(name, email, password).map_err(AppError::from_invalid)?;
    let row = new_row(new, false, state.now()).await?;
    state.store.insert_teammate(&row, Some(app_id)).await.map_err(|e| match e {
        StoreError::Duplicate => {
            AppError::Conflict { field: "email".into(), message: "A teammate with this email already exists.".into() }
        }
        e => store_err(e),
    })?;
    tracing::info!(teammate = %row.id, app = %app_id, "teammate added");
    Ok(teammate_view(&row))
}

/// The owner removes a teammate (who must have access to `app_id`); their
/// sessions end at once.
pub async fn remove_teammate(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    teammate_id: &str,
) -> Result<(), AppError> {
    require_owner_of(state, actor, app_id).await?;
    let members = state.store.app_teammates(app_id).await.map_err(store_err)?;
    let target = members.iter().find(|t| t.id == teammate_id).ok_or(AppError::NotFound)?;
    if target.is_owner {
        return Err(AppError::Conflict { field: "form".into(), message: "The owner cannot be removed.".into() });
    }
    if !state.store.delete_teammate(teammate_id).await.map_err(store_err)? {
        return Err(AppError::NotFound);
    }
    tracing::info!(teammate = %teammate_id, "teammate removed");
    Ok(())
}

async fn require_owner_of(state: &AppState, actor: &TeammateRow, app_id: &str) -> Result<(), AppError> {
    state.store.app_of(app_id, &actor.id).await.map_err(store_err)?.ok_or(AppError::NotFound)?;
    if !actor.is_owner {
        return Err(AppError::Forbidden);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::throttle::*;

    #[test]
    fn a_few_failures_are_free_then_waits_double_up_to_a_cap() {
        assert_eq!(delay_secs(4, ACCOUNT_FREE, ACCOUNT_CAP_SECS), 0);
        assert_eq!(delay_secs(5, ACCOUNT_FREE, ACCOUNT_CAP_SECS), 1);
        assert_eq!(delay_secs(6, ACCOUNT_FREE, ACCOUNT_CAP_SECS), 2);
        assert_eq!(delay_secs(9, ACCOUNT_FREE, ACCOUNT_CAP_SECS), 16);
        assert_eq!(delay_secs(500, ACCOUNT_FREE, ACCOUNT_CAP_SECS), 60);
        assert_eq!(delay_secs(500, ADDRESS_FREE, ADDRESS_CAP_SECS), 900);
    }

    #[test]
    fn retry_after_counts_down_and_is_forgotten() {
        let t0 = 1_000_000;
        assert_eq!(retry_after_secs(10, t0, t0, ACCOUNT_FREE, ACCOUNT_CAP_SECS), 32);
        assert_eq!(retry_after_secs(10, t0, t0 + 31_500, ACCOUNT_FREE, ACCOUNT_CAP_SECS), 1);
        assert_eq!(retry_after_secs(10, t0, t0 + 32_000, ACCOUNT_FREE, ACCOUNT_CAP_SECS), 0);
        assert_eq!(retry_after_secs(100, t0, t0 + FORGET_AFTER_MS, ADDRESS_FREE, ADDRESS_CAP_SECS), 0);
    }
}
