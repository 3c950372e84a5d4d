//! Apps and their secrets: creation (the creator and the owner get access),
//! API keys (secret shown once, sealed at rest), identity-verification
//! secret, what the widget may set (server-only names), settings view.
//! Every call checks membership first. Each change to keys, the identity
//! secret, identity verification and server-only names writes its audit
//! row (`auth::audit_entry`) in the change's own transaction.

use super::{
    auth::{audit_entry, internal, teammate_view},
    crypto::{new_id, new_secret},
    state::AppState,
};
use crate::{
    domain::{
        app::{install_snippet, AppName},
        audit::AuditAction,
        parse_name,
    },
    error::AppError,
    models::{ApiKeyView, AppSettings, AppSummary, CreatedApp, NewApiKey},
    storage::{ApiKeyRow, AppRow, ServerOnlyNames, TeammateRow},
};

pub use super::crypto::{api_key_context, identity_secret_context};

pub fn summary(a: &AppRow) -> AppSummary {
    AppSummary { id: a.id.clone(), name: a.name.clone() }
}

pub async fn apps_of(state: &AppState, actor: &TeammateRow) -> Result<Vec<AppSummary>, AppError> {
    Ok(state.store.apps_of(&actor.id).await.map_err(internal)?.iter().map(summary).collect())
}

/// The app if the teammate belongs to it; otherwise `NotFound` (an app one
/// cannot see does not exist, as far as one can tell).
pub async fn app_of(state: &AppState, actor: &TeammateRow, app_id: &str) -> Result<AppRow, AppError> {
    if !crate::domain::app::is_app_id(app_id) {
        return Err(AppError::NotFound);
    }
    state.store.app_of(app_id, &actor.id).await.map_err(internal)?.ok_or(AppError::NotFound)
}

pub async fn create_app(state: &AppState, actor: &TeammateRow, name: &str) -> Result<CreatedApp, AppError> {
    let name = AppName::parse(name)?;
    let id = new_id();
    let identity_secret = new_secret();
    let row = AppRow {
        identity_secret_enc: state.secrets.seal(&identity_secret_context(&id), identity_secret.as_bytes()),
        id,
        name: name.as_str().to_string(),
        created_at: state.now(),
    };
    // The owner administers the whole deployment, so sees every app.
    let owner = if actor.is_owner { None } else { owner_id(state).await? };
    let members: Vec<&str> = std::iter::once(actor.id.as_str()).chain(owner.as_deref()).collect();
    state.store.insert_app(&row, &members).await.map_err(internal)?;
    tracing::info!(app = %row.id, "app created");
    Ok(CreatedApp { app: summary(&row), identity_secret })
}

async fn owner_id(state: &AppState) -> Result<Option<String>, AppError> {
    // The owner is the first teammate by construction; look them up by flag.
    let apps_owner = state.store.owner().await.map_err(internal)?;
    Ok(apps_owner.map(|t| t.id))
}

pub async fn settings(state: &AppState, actor: &TeammateRow, app_id: &str) -> Result<AppSettings, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let keys = state.store.api_keys(&app.id).await.map_err(internal)?;
    let teammates = state.store.app_teammates(&app.id).await.map_err(internal)?;
    let server_only = state.store.server_only_names(&app.id).await.map_err(internal)?;
    Ok(AppSettings {
        snippet: install_snippet(&state.config.public_url, &app.id),
        app: summary(&app),
        keys: keys
            .iter()
            .map(|k| ApiKeyView {
                id: k.id.clone(),
                name: k.name.clone(),
                created_at: k.created_at,
                revoked: k.revoked_at.is_some(),
            })
            .collect(),
        teammates: teammates.iter().map(teammate_view).collect(),
        can_manage_teammates: actor.is_owner,
        can_manage_secrets: actor.is_owner,
        office: super::office::load(state, actor, &app.id).await?,
        smtp: super::email::get_smtp(state, actor, &app.id).await?,
        push: super::push::push_view(state, actor, &app.id).await?,
        max_active_whispers: state.store.max_active_whispers(&app.id).await.map_err(internal)?,
        identity_enforced: identity_enforced(state, &app.id).await?,
        server_only_properties: server_only.properties,
        server_only_events: server_only.events,
    })
}

/// Whether the app's widget requires a signed JWT for identified users.
pub async fn identity_enforced(state: &AppState, app_id: &str) -> Result<bool, AppError> {
    Ok(state.store.widget_app(app_id).await.map_err(internal)?.is_some_and(|a| a.identity_enforced))
}

/// Most names each server-only list may hold.
pub const MAX_SERVER_ONLY_NAMES: usize = 200;

/// Reads a list of names, one a line (blank lines skipped), each checked by
/// `check`; sorted, without duplicates.
fn name_list(
    field: &'static str,
    text: &str,
    check: impl Fn(&str) -> Result<(), crate::domain::Invalid>,
) -> Result<Vec<String>, AppError> {
    let mut names = Vec::new();
    for name in text.lines().map(str::trim).filter(|n| !n.is_empty()) {
        check(name).map_err(|e| AppError::Field { field: field.into(), message: e.message })?;
        names.push(name.to_string());
    }
    names.sort();
    names.dedup();
    if names.len() > MAX_SERVER_ONLY_NAMES {
        return Err(AppError::Field {
            field: field.into(),
            message: format!("List at most {MAX_SERVER_ONLY_NAMES} names."),
        });
    }
    Ok(names)
}

/// Replaces the custom properties the widget may not set and the events it
/// may not track (one name a line); the backend still may. Owner only,
/// like the app's other security settings. Open widgets on every instance
/// follow at once (the engine's cached copy of the app is dropped).
pub async fn set_server_only(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    properties: &str,
    events: &str,
) -> Result<(), AppError> {
    let app = owned_app(state, actor, app_id).await?;
    let names = ServerOnlyNames {
        properties: name_list("properties", properties, crate::domain::properties::check_custom_name)?,
        events: name_list("events", events, crate::domain::users::check_event_name)?,
    };
    let listed = |names: &[String]| if names.is_empty() { "none".to_string() } else { names.join(", ") };
    let detail = format!("properties: {}; events: {}", listed(&names.properties), listed(&names.events));
    let audit = audit_entry(state, actor, Some(&app.id), AuditAction::ServerOnlyNamesChanged, &detail);
    state.store.set_server_only_names(&app.id, &names, state.now(), &audit).await.map_err(internal)?;
    state.engine.whispers_changed(&app.id).await;
    tracing::info!(app = %app.id, properties = names.properties.len(), events = names.events.len(), "server-only names set");
    Ok(())
}

/// The app, if the teammate belongs to it and is the owner: `NotFound` for
/// an app they cannot see, `Forbidden` for one they can see but not
/// administer.
pub async fn owned_app(state: &AppState, actor: &TeammateRow, app_id: &str) -> Result<AppRow, AppError> {
    let app = app_of(state, actor, app_id).await?;
    if !actor.is_owner {
        return Err(AppError::Forbidden);
    }
    Ok(app)
}

/// Turns the widget's identity verification on or off. Owner only.
pub async fn set_identity_enforced(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    enforced: bool,
) -> Result<(), AppError> {
    let app = owned_app(state, actor, app_id).await?;
    let action = if enforced { AuditAction::IdentityRequired } else { AuditAction::IdentityNotRequired };
    let audit = audit_entry(state, actor, Some(&app.id), action, "");
    state.store.set_identity_enforced_audited(&app.id, enforced, &audit).await.map_err(internal)?;
    tracing::info!(app = %app.id, enforced, "identity verification set");
    Ok(())
}

/// A new API key; its secret is returned once. Owner only.
pub async fn create_api_key(
    state: &AppState,
    actor: &TeammateRow,
    app_id: &str,
    name: &str,
) -> Result<NewApiKey, AppError> {
    let app = owned_app(state, actor, app_id).await?;
    let name = parse_name("name", "a key name", name, 80)?;
    let id = format!("app_{}", new_id());
    let secret = new_secret();
    let row = ApiKeyRow {
        secret_enc: state.secrets.seal(&api_key_context(&id), secret.as_bytes()),
        id: id.clone(),
        app_id: app.id,
        name: name.clone(),
        created_at: state.now(),
        revoked_at: None,
    };
    // The audit row names the key (never its secret).
    let audit = audit_entry(state, actor, Some(&row.app_id), AuditAction::ApiKeyCreated, &format!("{name} ({id})"));
    state.store.insert_api_key_audited(&row, &audit).await.map_err(internal)?;
    tracing::info!(key = %id, app = %row.app_id, "api key created");
    Ok(NewApiKey { id, name, secret })
}

/// Owner only.
pub async fn revoke_api_key(state: &AppState, actor: &TeammateRow, app_id: &str, key_id: &str) -> Result<(), AppError> {
    let app = owned_app(state, actor, app_id).await?;
    let key = state.store.api_key(key_id).await.map_err(internal)?.filter(|k| k.app_id == app.id);
    let Some(key) = key else { return Err(AppError::NotFound) };
    let audit =
        audit_entry(state, actor, Some(&app.id), AuditAction::ApiKeyRevoked, &format!("{} ({})", key.name, key.id));
    if !state.store.revoke_api_key_audited(&app.id, key_id, state.now(), &audit).await.map_err(internal)? {
        return Err(AppError::NotFound);
    }
    state.keys.forget(key_id);
    tracing::info!(key = %key_id, app = %app.id, "api key revoked");
    Ok(())
}

/// Replaces the identity-verification secret; the new one is returned once.
/// Owner only: whoever holds it can sign a JWT for any user of the app.
pub async fn roll_identity_secret(state: &AppState, actor: &TeammateRow, app_id: &str) -> Result<String, AppError> {
    let app = owned_app(state, actor, app_id).await?;
    let secret = new_secret();
    let sealed = state.secrets.seal(&identity_secret_context(&app.id), secret.as_bytes());
    let audit = audit_entry(state, actor, Some(&app.id), AuditAction::IdentitySecretRolled, "");
    state.store.set_identity_secret_audited(&app.id, &sealed, &audit).await.map_err(internal)?;
    tracing::info!(app = %app.id, "identity secret rolled");
    Ok(secret)
}
