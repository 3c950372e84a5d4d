//! Web Push settings of an app: its VAPID key pair (made here on demand,
//! the private key sealed like the other secrets) and the on/off switch.
//! Anyone on the app sees them; only the owner changes them. Sending is the
//! engine's (`engine::webpush`).

use super::{
    apps::{app_of, owned_app},
    auth::internal,
    crypto::SecretBox,
    state::AppState,
};
use crate::{
    engine::{
        push::{Pusher, VapidKeys},
        webpush::{PushChannel, PUSH_GRACE_MS},
    },
    error::AppError,
    models::PushView,
    storage::TeammateRow,
};

/// The associated data binding a sealed VAPID private key to its app.
pub fn vapid_key_context(app_id: &str) -> String {
    format!("app:{app_id}:vapid")
}

/// The VAPID subject push services may contact: murmur's public URL when
/// it is https, else a `mailto:` at its host (push services accept only
/// `https:` and `mailto:` subjects).
pub fn vapid_contact(public_url: &str) -> String {
    if public_url.starts_with("https://") {
        return public_url.to_string();
    }
    let host = url::Url::parse(public_url).ok().and_then(|u| u.host_str().map(str::to_string));
    format!("mailto:push@{}", host.unwrap_or_else(|| "localhost".into()))
}

/// The engine's push channel: `contact` is the VAPID subject
/// (`vapid_contact`); `allow_local_http` is for tests only (a push service
/// on loopback over http).
pub fn channel(secrets: std::sync::Arc<SecretBox>, contact: String, allow_local_http: bool) -> PushChannel {
    PushChannel {
        pusher: Pusher::new(contact, std::time::Duration::from_secs(15), allow_local_http),
        open_key: Box::new(move |app_id, sealed| secrets.open(&vapid_key_context(app_id), sealed).ok()),
        grace_ms: PUSH_GRACE_MS,
        allow_local_http,
    }
}

pub async fn push_view(state: &AppState, actor: &TeammateRow, app_id: &str) -> Result<PushView, AppError> {
    let app = app_of(state, actor, app_id).await?;
    let settings = state.store.push_settings(&app.id).await.map_err(internal)?.ok_or(AppError::NotFound)?;
    let subscriptions = state.store.push_subscription_count(&app.id).await.map_err(internal)?;
    Ok(PushView {
        enabled: settings.enabled,
        public_key: settings.public_key,
        subscriptions,
        can_manage: actor.is_owner,
        service_worker: crate::widget::PUSH_SW_JS.to_string(),
    })
}

/// Makes a new VAPID key pair (the browsers subscribed with the old one
/// are forgotten: their subscriptions cannot be used with a new key).
/// Owner only.
pub async fn generate_keys(state: &AppState, actor: &TeammateRow, app_id: &str) -> Result<(), AppError> {
    let app = owned_app(state, actor, app_id).await?;
    let keys = VapidKeys::generate();
    let sealed = state.secrets.seal(&vapid_key_context(&app.id), &keys.private);
    if !state.store.set_vapid_keys(&app.id, &keys.public, &sealed).await.map_err(internal)? {
        return Err(AppError::NotFound);
    }
    tracing::info!(app = %app.id, "push keys generated");
    Ok(())
}

/// Turns push on (needs keys) or off. Owner only.
pub async fn set_enabled(state: &AppState, actor: &TeammateRow, app_id: &str, enabled: bool) -> Result<(), AppError> {
    let app = owned_app(state, actor, app_id).await?;
    if !state.store.set_push_enabled(&app.id, enabled).await.map_err(internal)? {
        return Err(AppError::Field { field: "push".into(), message: "Generate the push keys first.".into() });
    }
    tracing::info!(app = %app.id, enabled, "push switched");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vapid_subject_is_https_or_mailto() {
        assert_eq!(vapid_contact("https://murmur.example.com"), "https://murmur.example.com");
        assert_eq!(vapid_contact("http://127.0.0.1:3000"), "mailto:push@127.0.0.1");
        assert_eq!(vapid_contact("http://murmur.internal:8080"), "mailto:push@murmur.internal");
        assert_eq!(vapid_contact("nonsense"), "mailto:push@localhost");
    }
}
