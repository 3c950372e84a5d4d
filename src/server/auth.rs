//! Teammate accounts and sessions: first-run setup, sign-in with throttling,
//! sign-out, a teammate's own account (changing their password, signing out
//! everywhere), the owner adding and removing teammates, and the audit log
//! those and the app's security settings write (`audit_entry`), which the
//! owner reads.

use super::{
    crypto::{new_id, new_secret, sha256_hex},
    state::AppState,
};
use crate::{
    domain::{
        audit::{self, AuditAction},
        teammate::{initials, Email, NewPassword, NewTeammate},
    },
    error::AppError,
    models::{AccountView, AuditEntryView, AuditPage, TeammateView},
    storage::{AuditEntry, AuditRow, StoreError, TeammateRow, ThrottleAllowance},
};

/// How long a sign-in lasts at most.
pub const SESSION_TTL_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// A session unused for this long ends (idle timeout).
pub const SESSION_IDLE_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// How often a session in use records that it was seen (not on every
/// request: a write per page view would be wasted).
pub const SESSION_SEEN_EVERY_MS: i64 = 60 * 1000;

/// Logs an internal failure and hides it from the client. One database
/// refusal is the input's fault, not the server's: text with U+0000, which
/// PostgreSQL cannot store (inputs are checked for it, and this is the net
/// under those checks): a 400 that says so.
pub fn internal<E: std::fmt::Display + 'static>(e: E) -> AppError {
    if (&e as &dyn std::any::Any).downcast_ref::<StoreError>().is_some_and(StoreError::refused_nul) {
        tracing::warn!(error = %e, "the database refused a U+0000 character");
        return AppError::Request("Text cannot contain the character U+0000.".into());
    }
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

/// Creates the owner account on a fresh install and signs them in, given
/// the setup token when one is asked for (`server::setup`). Returns the new
/// session token.
pub async fn setup_owner(
    state: &AppState,
    name: &str,
    email: &str,
    password: &str,
    setup_token: &str,
) -> Result<String, AppError> {
    // The client address from the request being served (none outside one).
    attempt_rate(state, super::request::client_ip(state))?;
    if !setup_needed(state).await? {
        return Err(already_set_up());
    }
    if !state.setup.admits(setup_token) {
        tracing::warn!("setup refused: wrong or missing setup token");
        let message = if setup_token.trim().is_empty() {
            "Enter the setup token from murmur's log (or the setup.token file in its data directory)."
        } else {
            "This is not the setup token. Copy it from murmur's log or the setup.token file in its data directory."
        };
        return Err(AppError::Field { field: "setup_token".into(), message: message.into() });
    }
    let new = NewTeammate::parse(name, email, password).map_err(AppError::from_invalid)?;
    let row = new_row(state, new, true).await?;
    // The unique owner index decides a race between two setups.
    state.store.insert_teammate(&row, None).await.map_err(|e| match e {
        StoreError::Duplicate => already_set_up(),
        e => store_err(e),
    })?;
    tracing::info!(teammate = %row.id, "owner account created");
    state.setup.consume();
    start_session(state, &row.id).await
}

async fn new_row(state: &AppState, new: NewTeammate, is_owner: bool) -> Result<TeammateRow, AppError> {
    let password_hash = state.passwords.hash(new.password.expose().to_string()).await.map_err(internal)?;
    Ok(TeammateRow {
        id: new_id(),
        name: new.name.as_str().to_string(),
        email: new.email.as_str().to_string(),
        password_hash,
        is_owner,
        created_at: state.now(),
    })
}

async fn start_session(state: &AppState, teammate_id: &str) -> Result<String, AppError> {
    let token = new_secret();
    let now = state.now();
    state.store.insert_session(&sha256_hex(&token), teammate_id, now, now + SESSION_TTL_MS).await.map_err(store_err)?;
    Ok(token)
}

/// The teammate a session token belongs to, if the session has neither
/// expired nor been idle for `SESSION_IDLE_MS`; using it counts as activity.
pub async fn authenticate(state: &AppState, token: Option<&str>) -> Result<TeammateRow, AppError> {
    let token = token.ok_or(AppError::Unauthenticated)?;
    let hash = sha256_hex(token);
    let now = state.now();
    let (teammate, last_seen) = state
        .store
        .active_session_teammate(&hash, now, now - SESSION_IDLE_MS)
        .await
        .map_err(store_err)?
        .ok_or(AppError::Unauthenticated)?;
    if now - last_seen >= SESSION_SEEN_EVERY_MS {
        state.store.touch_session(&hash, now).await.map_err(store_err)?;
    }
    Ok(teammate)
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
///
/// An attempt is counted as a failure *before* its password is checked
/// (and the count cleared if it was right), in one statement that also
/// checks the allowance: many guesses at once get at most the allowance's
/// password checks, never one each.
pub mod throttle {
    use crate::storage::ThrottleAllowance;

    pub const ACCOUNT: ThrottleAllowance = ThrottleAllowance { free: 5, cap_secs: 60 };
    pub const ADDRESS: ThrottleAllowance = ThrottleAllowance { free: 20, cap_secs: 15 * 60 };
    pub const FORGET_AFTER_MS: i64 = 24 * 60 * 60 * 1000;

    /// Seconds left before another attempt is allowed, given the last failure.
    pub fn retry_after_secs(failures: i64, last_failure_at: i64, now: i64, allowance: ThrottleAllowance) -> i64 {
        if now - last_failure_at >= FORGET_AFTER_MS {
            return 0;
        }
        let until = last_failure_at + allowance.delay_secs(failures) * 1000;
        ((until - now).max(0) + 999) / 1000
    }

    /// The client address a throttle counts under: an IPv4 address (also
    /// when written as IPv4-mapped IPv6) as is, an IPv6 address by its /64,
    /// since one host is usually given a whole /64.
    pub fn address_key(ip: std::net::IpAddr) -> String {
        match crate::server::limits::address_bucket(ip) {
            std::net::IpAddr::V4(v4) => format!("address:{v4}"),
            std::net::IpAddr::V6(prefix) => format!("address:{prefix}/64"),
        }
    }
}

/// Sign-in and setup attempts from one client address (an IPv6 address by
/// its /64) are rate-limited in memory (`SIGN_IN_RATE_LIMIT`, default
/// 30 a minute), before anything else: whatever the account, and whether
/// the password is right or not. (The failure throttle above is another
/// matter: it slows guessing, in the database, across instances.)
fn attempt_rate(state: &AppState, ip: Option<std::net::IpAddr>) -> Result<(), AppError> {
    let Some(ip) = ip else { return Ok(()) };
    state.limits.sign_in.check(&super::limits::address_bucket(ip)).map_err(|wait| {
        tracing::info!(ip = %ip, "sign-in rate limit reached");
        AppError::Throttled { retry_after_secs: wait }
    })
}

/// Signs in with email and password. Returns the new session token.
pub async fn sign_in(
    state: &AppState,
    email: &str,
    password: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<String, AppError> {
    attempt_rate(state, ip)?;
    let email = match Email::parse(email) {
        Ok(e) => e,
        Err(invalid) => return Err(invalid.into()),
    };
    if password.is_empty() {
        return Err(AppError::Field { field: "password".into(), message: "Enter your password.".into() });
    }
    let now = state.now();
    let keys = count_attempt(state, email.as_str(), ip, now).await?;

    let teammate = state.store.teammate_by_email(email.as_str()).await.map_err(store_err)?;
    let ok = state.passwords.verify(password.to_string(), teammate.as_ref().map(|t| t.password_hash.clone())).await;
    let Some(teammate) = teammate.filter(|_| ok) else {
        // Already counted.
        tracing::info!(ip = ?ip, "failed sign-in");
        return Err(AppError::BadCredentials);
    };
    clear_attempts(state, &keys).await?;
    let _ = state.store.delete_stale_sessions(now, now - SESSION_IDLE_MS).await;
    tracing::info!(teammate = %teammate.id, "signed in");
    start_session(state, &teammate.id).await
}

/// Counts a password attempt for the account `email` (and the client
/// address, if known) before the password is checked, or refuses it with
/// `Throttled`. Each key counts the attempt if its allowance lets it
/// through; one that does not refuses it, and the keys counted before it
/// take their count back, so only attempts that reach a password check are
/// counted (a guess at a throttled account does not use up its address's).
/// Returns the keys to clear once the password proved right.
async fn count_attempt(
    state: &AppState,
    email: &str,
    ip: Option<std::net::IpAddr>,
    now: i64,
) -> Result<Vec<(String, ThrottleAllowance)>, AppError> {
    let account_key = format!("account:{email}");
    let keys: Vec<(String, ThrottleAllowance)> = ip
        .map(|ip| (throttle::address_key(ip), throttle::ADDRESS))
        .into_iter()
        .chain(std::iter::once((account_key, throttle::ACCOUNT)))
        .collect();
    let forget_before = now - throttle::FORGET_AFTER_MS;
    for (i, (key, allowance)) in keys.iter().enumerate() {
        if !state.store.throttle_attempt(key, now, forget_before, *allowance).await.map_err(store_err)? {
            for (earlier, _) in &keys[..i] {
                state.store.throttle_take_back(earlier).await.map_err(store_err)?;
            }
            return Err(throttled(state, key, *allowance, now).await?);
        }
    }
    Ok(keys)
}

async fn clear_attempts(state: &AppState, keys: &[(String, ThrottleAllowance)]) -> Result<(), AppError> {
    for (key, _) in keys {
        state.store.throttle_clear(key).await.map_err(store_err)?;
    }
    Ok(())
}

/// The refusal of an attempt that `key`'s allowance did not let through.
async fn throttled(state: &AppState, key: &str, allowance: ThrottleAllowance, now: i64) -> Result<AppError, AppError> {
    let rows = state.store.throttle_rows(&[key.to_string()]).await.map_err(store_err)?;
    let wait = rows.iter().map(|r| throttle::retry_after_secs(r.failures, r.last_failure_at, now, allowance)).max();
    // At least a second: the row may have moved on since it refused.
    Ok(AppError::Throttled { retry_after_secs: wait.unwrap_or(0).max(1) as u64 })
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
    let row = new_row(state, new, false).await?;
    let audit = audit_entry(state, actor, Some(app_id), AuditAction::TeammateAdded, &teammate_detail(&row));
    state.store.insert_teammate_audited(&row, app_id, &audit).await.map_err(|e| match e {
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
    let audit = audit_entry(state, actor, Some(app_id), AuditAction::TeammateRemoved, &teammate_detail(target));
    if !state.store.delete_teammate_audited(teammate_id, &audit).await.map_err(store_err)? {
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

/// How the audit log names a teammate who was added or removed.
fn teammate_detail(t: &TeammateRow) -> String {
    format!("{} <{}>", t.name, t.email)
}

/// The audit row of an action `actor` takes now (on `app_id`, or on the
/// whole deployment). `detail` names what it was done to: never a secret.
pub fn audit_entry(
    state: &AppState,
    actor: &TeammateRow,
    app_id: Option<&str>,
    action: AuditAction,
    detail: &str,
) -> AuditEntry {
    AuditEntry {
        app_id: app_id.map(str::to_string),
        actor_id: actor.id.clone(),
        actor_name: actor.name.clone(),
        action,
        detail: audit::detail(detail),
        at: state.now(),
    }
}

/// The signed-in teammate's account: who they are, how many sessions they have.
pub async fn account(state: &AppState, actor: &TeammateRow) -> Result<AccountView, AppError> {
    let now = state.now();
    let sessions = state.store.count_sessions(&actor.id, now, now - SESSION_IDLE_MS).await.map_err(store_err)?;
    Ok(AccountView { me: teammate_view(actor), sessions })
}

/// What the change-password form sends.
pub struct PasswordChange<'a> {
    pub current: &'a str,
    pub new: &'a str,
    pub confirm: &'a str,
}

/// A teammate changes their own password. The current one is required and
/// checked like a sign-in (the same per-address rate limit and the same
/// throttle, counted before the check, so a stolen session cannot guess
/// it faster than a sign-in could); the new one follows the password
/// rules. The session `token` stays signed in; every other session of the
/// teammate ends, in the transaction that stores the new hash. Returns how
/// many sessions ended.
pub async fn change_password(
    state: &AppState,
    actor: &TeammateRow,
    token: Option<&str>,
    form: PasswordChange<'_>,
    ip: Option<std::net::IpAddr>,
) -> Result<u64, AppError> {
    let token = token.ok_or(AppError::Unauthenticated)?;
    if form.current.is_empty() {
        return Err(AppError::Field {
            field: "current_password".into(),
            message: "Enter your current password.".into(),
        });
    }
    let new = NewPassword::parse(form.new)
        .map_err(|e| AppError::Field { field: "new_password".into(), message: e.message })?;
    if form.confirm != form.new {
        return Err(AppError::Field {
            field: "confirm_password".into(),
            message: "This does not match the new password.".into(),
        });
    }
    attempt_rate(state, ip)?;
    let keys = count_attempt(state, &actor.email, ip, state.now()).await?;
    if !state.passwords.verify(form.current.to_string(), Some(actor.password_hash.clone())).await {
        // Counted, like a failed sign-in.
        tracing::info!(teammate = %actor.id, ip = ?ip, "wrong current password");
        return Err(AppError::Field {
            field: "current_password".into(),
            message: "This is not your current password.".into(),
        });
    }
    clear_attempts(state, &keys).await?;
    if new.expose() == form.current {
        return Err(AppError::Field {
            field: "new_password".into(),
            message: "Choose a new password, not your current one.".into(),
        });
    }
    let new_hash = state.passwords.hash(new.expose().to_string()).await.map_err(internal)?;
    let audit = audit_entry(state, actor, None, AuditAction::PasswordChanged, "");
    // Stored only if the hash is still the one just checked: of two changes
    // at once, one wins and the other is told.
    let ended = state
        .store
        .change_password(&actor.id, &actor.password_hash, &new_hash, &sha256_hex(token), &audit)
        .await
        .map_err(store_err)?
        .ok_or_else(|| AppError::Conflict {
            field: "form".into(),
            message: "Your password was just changed in another session. Reload the page.".into(),
        })?;
    tracing::info!(teammate = %actor.id, other_sessions_ended = ended, "password changed");
    Ok(ended)
}

/// Ends every session of the teammate, this one included. Returns how many.
pub async fn sign_out_everywhere(state: &AppState, actor: &TeammateRow) -> Result<u64, AppError> {
    let audit = audit_entry(state, actor, None, AuditAction::SignedOutEverywhere, "");
    let ended = state.store.end_sessions(&actor.id, &audit).await.map_err(store_err)?;
    tracing::info!(teammate = %actor.id, sessions = ended, "signed out everywhere");
    Ok(ended)
}

/// Rows on one page of the audit log.
pub const AUDIT_PAGE: i64 = 50;
const AUDIT_CURSOR_SEP: char = '~';

fn audit_view(r: &AuditRow) -> AuditEntryView {
    AuditEntryView {
        at: r.at,
        actor_id: r.actor_id.clone(),
        actor_name: r.actor_name.clone(),
        label: AuditAction::from_code(&r.action).map_or_else(|| r.action.clone(), |a| a.label().to_string()),
        action: r.action.clone(),
        detail: r.detail.clone(),
        deployment_wide: r.app_id.is_none(),
    }
}

/// One page of the audit log of `app_id` (with the deployment-wide rows),
/// newest first, after the cursor `after` ("" for the newest page). Owner
/// only: `NotFound` for an app the teammate cannot see, `Forbidden` for
/// one they can.
pub async fn audit_log(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    after: &str,
) -> Result<AuditPage, AppError> {
    let app = super::apps::app_of(state, actor, app_id).await?;
    if !actor.is_owner {
        return Err(AppError::Forbidden);
    }
    let before = after
        .split_once(AUDIT_CURSOR_SEP)
        .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.parse::<i64>().ok()?)));
    let mut rows = state.store.audit_log(&app.id, before, AUDIT_PAGE + 1).await.map_err(store_err)?;
    let next = if rows.len() as i64 > AUDIT_PAGE {
        rows.truncate(AUDIT_PAGE as usize);
        rows.last().map(|r| format!("{}{AUDIT_CURSOR_SEP}{}", r.at, r.id))
    } else {
        None
    };
    Ok(AuditPage { entries: rows.iter().map(audit_view).collect(), next })
}

#[cfg(test)]
mod tests {
    use super::throttle::*;

    #[test]
    fn a_few_failures_are_free_then_waits_double_up_to_a_cap() {
        assert_eq!(ACCOUNT.delay_secs(4), 0);
        assert_eq!(ACCOUNT.delay_secs(5), 1);
        assert_eq!(ACCOUNT.delay_secs(6), 2);
        assert_eq!(ACCOUNT.delay_secs(9), 16);
        assert_eq!(ACCOUNT.delay_secs(500), 60);
        assert_eq!(ADDRESS.delay_secs(500), 900);
    }

    #[test]
    fn retry_after_counts_down_and_is_forgotten() {
        let t0 = 1_000_000;
        assert_eq!(retry_after_secs(10, t0, t0, ACCOUNT), 32);
        assert_eq!(retry_after_secs(10, t0, t0 + 31_500, ACCOUNT), 1);
        assert_eq!(retry_after_secs(10, t0, t0 + 32_000, ACCOUNT), 0);
        assert_eq!(retry_after_secs(100, t0, t0 + FORGET_AFTER_MS, ADDRESS), 0);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_ipv4_as_is() {
        let key = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(key("203.0.113.9"), "address:203.0.113.9");
        assert_eq!(key("::ffff:203.0.113.9"), "address:203.0.113.9");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "address:2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::1"), "address:::/64");
    }
}
