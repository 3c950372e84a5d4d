//! The email (SMTP) settings service, and what the email channel needs
//! from the server: each app's SMTP target with its password opened, and
//! the key and links that unsubscribe a user.
//!
//! Any teammate of the app sees the settings (never the password: only
//! whether one is stored); only the owner saves or clears them (others get
//! 403). The password is sealed with the server key
//! (`smtp_password_context`). An empty password field keeps the stored
//! one, except that a stored password is never sent to another server
//! than the one it was saved for: after the host or the security changes,
//! it must be typed again.

use std::sync::Arc;

use super::{
    apps::app_of,
    auth::{audit_entry, internal},
    crypto::{smtp_password_context, SecretBox},
    state::AppState,
};
use crate::{
    domain::{
        audit::AuditAction,
        email::{check_password, SmtpSettings},
        Invalid,
    },
    engine::email::{unsubscribe_url, MailError, SmtpTarget},
    error::AppError,
    models::SmtpView,
    storage::{email::PasswordChange, Store, TeammateRow},
};

pub use crate::engine::email::{TargetFn, UnsubscribeUrlFn};

/// The purpose the unsubscribe key is derived for (`SecretBox::derive_key`).
pub const UNSUBSCRIBE_KEY_PURPOSE: &str = "unsubscribe";

/// The key that signs unsubscribe links, derived from the server key: the
/// same on every instance sharing `SECRET_KEY`, so a link made by one is
/// honoured by all.
pub fn unsubscribe_key(secrets: &SecretBox) -> [u8; 32] {
    secrets.derive_key(UNSUBSCRIBE_KEY_PURPOSE)
}

/// The SMTP settings form, as typed.
#[derive(Clone, Default)]
pub struct SmtpForm {
    pub host: String,
    pub port: String,
    /// `none`, `start_tls` or `tls` (`SmtpSecurity::as_str`).
    pub security: String,
    /// Empty: the server takes mail without signing in.
    pub username: String,
    /// Empty: keep the stored password.
    pub password: String,
    pub from_address: String,
}

impl std::fmt::Debug for SmtpForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpForm")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &if self.password.is_empty() { "" } else { "<redacted>" })
            .field("from_address", &self.from_address)
            .finish()
    }
}

/// The stored settings and whether a password is stored. Settings that no
/// longer read (a bad row) show as none, and are logged.
async fn stored(store: &Store, app_id: &str) -> Result<(Option<SmtpSettings>, Option<Vec<u8>>), AppError> {
    let Some((json, sealed)) = store.smtp_settings(app_id).await.map_err(internal)? else {
        return Ok((None, None));
    };
    match serde_json::from_str::<SmtpSettings>(&json) {
        Ok(s) => Ok((Some(s), sealed)),
        Err(e) => {
            tracing::error!(app = %app_id, error = %e, "stored SMTP settings cannot be read");
            Ok((None, sealed))
        }
    }
}

/// The app's SMTP settings, for any teammate of the app.
pub async fn get_smtp(state: &AppState, actor: &TeammateRow, app_id: &str) -> Result<SmtpView, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let (settings, sealed) = stored(&state.store, &app.id).await?;
    Ok(SmtpView { password_set: settings.is_some() && sealed.is_some(), settings })
}

/// The app, if the teammate belongs to it (else 404) and is the owner
/// (else 403).
async fn owned_app(state: &AppState, actor: &TeammateRow, app_id: &str) -> Result<String, AppError> {
    let app = app_of(state, actor, app_id).await?;
    if !actor.is_owner {
        return Err(AppError::Forbidden);
    }
    Ok(app.id)
}

/// Saves the app's SMTP settings (email is on from now). Owner only.
pub async fn save_smtp(state: &AppState, actor: &TeammateRow, app_id: &str, form: SmtpForm) -> Result<(), AppError> {
    let app_id = owned_app(state, actor, app_id).await?;
    let parsed = SmtpSettings::parse(&form.host, &form.port, &form.security, &form.username, &form.from_address);
    let password = check_password(&form.password);
    let (settings, password) = match (parsed, password) {
        (Ok(s), Ok(p)) => (s, p),
        (s, p) => {
            let errs: Vec<Invalid> = s.err().unwrap_or_default().into_iter().chain(p.err()).collect();
            return Err(AppError::from_invalid(errs));
        }
    };
    let (before, sealed) = stored(&state.store, &app_id).await?;
    let change = match (&settings.username, password) {
        (None, Some(_)) => {
            return Err(Invalid::new("username", "Enter the user name that goes with this password.").into());
        }
        (None, None) => PasswordChange::Clear,
        (Some(_), Some(p)) => PasswordChange::Set(state.secrets.seal(&smtp_password_context(&app_id), p.as_bytes())),
        (Some(_), None) => {
            let same_server = before
                .as_ref()
                .is_some_and(|b| b.host.eq_ignore_ascii_case(&settings.host) && b.security == settings.security);
            match (sealed.is_some(), same_server) {
                (true, true) => PasswordChange::Keep,
                (true, false) => {
                    return Err(Invalid::new(
                        "password",
                        "Enter the password again: a saved password is only sent to the server it was saved for.",
                    )
                    .into())
                }
                (false, _) => return Err(Invalid::new("password", "Enter the password for this user name.").into()),
            }
        }
    };
    let json = serde_json::to_string(&settings).map_err(internal)?;
    // The row names the server and the sender, never the password.
    let detail = format!("{}:{} from {}", settings.host, settings.port, settings.from_address);
    let audit = audit_entry(state, actor, Some(&app_id), AuditAction::SmtpSaved, &detail);
    if !state.store.set_smtp_settings_audited(&app_id, Some(&json), change, &audit).await.map_err(internal)? {
        return Err(AppError::NotFound);
    }
    tracing::info!(app = %app_id, host = %settings.host, port = settings.port, "SMTP settings saved");
    Ok(())
}

/// Turns email off: forgets the settings and the password. Owner only.
pub async fn clear_smtp(state: &AppState, actor: &TeammateRow, app_id: &str) -> Result<(), AppError> {
    let app_id = owned_app(state, actor, app_id).await?;
    let audit = audit_entry(state, actor, Some(&app_id), AuditAction::SmtpCleared, "");
    state.store.set_smtp_settings_audited(&app_id, None, PasswordChange::Clear, &audit).await.map_err(internal)?;
    tracing::info!(app = %app_id, "SMTP settings cleared");
    Ok(())
}

/// An app's SMTP target, its password opened; `Ok(None)` when email is
/// off for the app. A database failure is `Transient`; settings that do
/// not read, or a password the server key does not open (was
/// `SECRET_KEY` changed?), are `Permanent` until the owner saves them
/// again.
pub async fn load_smtp_target(
    store: &Store,
    secrets: &SecretBox,
    app_id: &str,
) -> Result<Option<SmtpTarget>, MailError> {
    let stored = store.smtp_settings(app_id).await.map_err(|e| {
        tracing::error!(app = %app_id, error = %e, "cannot load SMTP settings");
        MailError::Transient(format!("cannot load the SMTP settings: {e}"))
    })?;
    let Some((json, sealed)) = stored else { return Ok(None) };
    let settings: SmtpSettings = serde_json::from_str(&json).map_err(|e| {
        tracing::error!(app = %app_id, error = %e, "stored SMTP settings cannot be read");
        MailError::Permanent("the stored SMTP settings cannot be read: save them again in Settings".into())
    })?;
    let password = match (&settings.username, sealed) {
        (Some(_), Some(sealed)) => {
            let opened = secrets.open(&smtp_password_context(app_id), &sealed).map_err(|e| {
                tracing::error!(app = %app_id, error = %e, "the SMTP password cannot be opened");
                MailError::Permanent(format!("{e}: enter the SMTP password again in Settings"))
            })?;
            Some(
                String::from_utf8(opened)
                    .map_err(|_| MailError::Permanent("the stored SMTP password is not text".into()))?,
            )
        }
        _ => None,
    };
    Ok(Some(SmtpTarget { settings, password }))
}

/// `load_smtp_target` with the server's store and key.
pub async fn smtp_target(state: &AppState, app_id: &str) -> Result<Option<SmtpTarget>, MailError> {
    load_smtp_target(&state.store, &state.secrets, app_id).await
}

/// A `TargetFn` over `store` and `secrets`: `None` when email is off for
/// the app or the target cannot be loaded (the cause is logged).
pub fn smtp_target_fn(store: Store, secrets: Arc<SecretBox>) -> TargetFn {
    Arc::new(move |app_id: String| {
        let (store, secrets) = (store.clone(), secrets.clone());
        Box::pin(async move { load_smtp_target(&store, &secrets, &app_id).await.ok().flatten() })
    })
}

/// An `UnsubscribeUrlFn` for this server (its public URL and unsubscribe
/// key): `{public_url}/unsubscribe/{token}`.
pub fn unsubscribe_url_fn(public_url: String, secrets: &SecretBox) -> UnsubscribeUrlFn {
    let key = unsubscribe_key(secrets);
    Arc::new(move |app_id: &str, app_user_id: &str| unsubscribe_url(&public_url, &key, app_id, app_user_id))
}
