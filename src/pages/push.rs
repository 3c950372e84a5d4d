//! Settings → Push: the app's Web Push keys, its switch, and the service
//! worker file the customer serves from their own site (the subscription
//! must be made in their page, the messenger being a frame of murmur's).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::widgets::{last_error, Form, FormError};
use crate::{error::AppError, models::PushView};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushRef {
    pub app_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushSwitch {
    pub app_id: String,
    /// "true" or "false" (a form's field).
    pub enabled: String,
}

#[server(prefix = "/api", endpoint = "apps/push", output = crate::wire::Json)]
pub async fn load_push(input: PushRef) -> Result<PushView, AppError> {
    use crate::server::{push, request};
    request::as_teammate(|state, me| async move { push::push_view(&state, &me, &input.app_id).await }).await
}

#[server(prefix = "/api", endpoint = "apps/push/keys", output = crate::wire::Json)]
pub async fn generate_push_keys(input: PushRef) -> Result<(), AppError> {
    use crate::server::{push, request};
    request::as_teammate(|state, me| async move { push::generate_keys(&state, &me, &input.app_id).await }).await
}

#[server(prefix = "/api", endpoint = "apps/push/enabled", output = crate::wire::Json)]
pub async fn set_push_enabled(input: PushSwitch) -> Result<(), AppError> {
    use crate::server::{push, request};
    request::as_teammate(|state, me| async move {
        let enabled = request::on_off(&input.enabled, "push")?;
        push::set_enabled(&state, &me, &input.app_id, enabled).await
    })
    .await
}

/// Push notifications: its data comes with the settings page's, which
/// reloads after a change.
#[component]
pub fn PushPanel(
    app_id: String,
    v: PushView,
    keys: ServerAction<GeneratePushKeys>,
    switch: ServerAction<SetPushEnabled>,
) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="push-h">
            <h2 id="push-h">"Push notifications"</h2>
            <p>"Reach people who are not on your site: whispers and in-app messages marked “also send as push” go to their browser as a notification. The messenger asks for permission only right after a person sends their first message, once per device."</p>
            <PushSettings app_id v keys switch/>
        </section>
    }
}

#[component]
fn PushSettings(
    app_id: String,
    v: PushView,
    keys: ServerAction<GeneratePushKeys>,
    switch: ServerAction<SetPushEnabled>,
) -> impl IntoView {
    let keys_error = last_error(keys.value());
    let switch_error = last_error(switch.value());
    let status = match (&v.public_key, v.enabled) {
        (None, _) => "Off: no push keys yet.".to_string(),
        (Some(_), false) => "Off.".to_string(),
        (Some(_), true) => {
            format!("On: {} subscribed browser{}.", v.subscriptions, if v.subscriptions == 1 { "" } else { "s" })
        }
    };
    let has_keys = v.public_key.is_some();
    let enabled = v.enabled;
    let switch_app = app_id.clone();
    let sw = v.service_worker.clone();
    view! {
        <p data-testid="push-status">{status}</p>
        {v.public_key.clone().map(|k| view! { <p>"Public key: " <code class="secret" data-testid="push-key">{k}</code></p> })}
        {if v.can_manage {
            view! {
                <Form action=keys>
                    <input type="hidden" name="input[app_id]" value=app_id/>
                    <FormError error=keys_error/>
                    <button type="submit">{if has_keys { "Replace push keys" } else { "Generate push keys" }}</button>
                    {has_keys.then(|| view! { <p class="hint">"Replacing the keys forgets every subscribed browser: each subscribes again after its next message."</p> })}
                </Form>
                <Form action=switch>
                    <input type="hidden" name="input[app_id]" value=switch_app/>
                    <input type="hidden" name="input[enabled]" value=if enabled { "false" } else { "true" }/>
                    <button type="submit" disabled=!has_keys>{if enabled { "Turn push off" } else { "Turn push on" }}</button>
                    <p class="field-error" aria-live="polite">
                        {move || switch_error.get().and_then(|e| e.field_message("push"))}
                    </p>
                </Form>
            }.into_any()
        } else {
            view! { <p class="muted">"Only the owner can change push settings."</p> }.into_any()
        }}
        <h3>"On your site"</h3>
        <p>"1. Serve this file from your site, e.g. at " <code>"/murmur-sw.js"</code> " (" <a href="/widget/push-sw.js" download="murmur-sw.js">"download it"</a> "):"</p>
        <pre class="snippet" aria-label="Service worker"><code>{sw}</code></pre>
        <p>"2. Pass its path when you start the widget: " <code>"Murmur.init({ appId, serviceWorker: \"/murmur-sw.js\" })"</code> "."</p>
    }
}
